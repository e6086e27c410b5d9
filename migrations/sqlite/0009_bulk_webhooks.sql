-- Bulk tasks' items, links, webhooks and their deliveries.

-- One row per unit of a bulk task, in request order. Workers claim pending items with a lease;
-- an item's outcome commits in the transaction of the change it made. An import item's input
-- holds secrets: it is sealed under the task's key and cleared once the item is done.
CREATE TABLE task_items (
    task_id      TEXT NOT NULL REFERENCES tasks (id),
    seq          INTEGER NOT NULL,
    line         INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    input        BLOB,
    sim_id       TEXT,
    result       TEXT,
    error        TEXT,
    lease_owner  TEXT,
    lease_until  INTEGER,
    PRIMARY KEY (task_id, seq)
);
CREATE INDEX task_items_status ON task_items (task_id, status, seq);

-- A bulk task's own data key (import items), wrapped under the tenant KEK; destroyed when the
-- task ends.
ALTER TABLE tasks ADD COLUMN kek_version INTEGER;
ALTER TABLE tasks ADD COLUMN wrapped_key BLOB;

-- Links made by bulk provisioning: one per SIM, names unique per tenant.
CREATE TABLE links (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    sim_id      TEXT NOT NULL UNIQUE REFERENCES sims (id),
    name        TEXT NOT NULL,
    plan_ids    TEXT NOT NULL DEFAULT '[]',
    task_id     TEXT,
    created_at  INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX links_tenant_created ON links (tenant_id, created_at, id);

-- Webhook subscriptions. The signing secret is sealed under the tenant KEK.
CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,
    description  TEXT,
    kek_version  INTEGER NOT NULL,
    secret       BLOB NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX webhooks_tenant ON webhooks (tenant_id, created_at);

-- One delivery per (webhook, event): attempts, the next one's time, and the lease of the
-- replica sending it.
CREATE TABLE webhook_deliveries (
    id               TEXT PRIMARY KEY,
    webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    tenant_id        TEXT NOT NULL,
    event_id         TEXT NOT NULL,
    event_type       TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    next_attempt_at  INTEGER NOT NULL,
    lease_owner      TEXT,
    lease_until      INTEGER,
    last_status      INTEGER,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    delivered_at     INTEGER,
    UNIQUE (webhook_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

-- Events not yet fanned out to subscriptions. Events from before webhooks existed have
-- nobody to go to.
ALTER TABLE domain_events ADD COLUMN dispatched INTEGER NOT NULL DEFAULT 0;
UPDATE domain_events SET dispatched = 1;
CREATE INDEX domain_events_undispatched ON domain_events (occurred_at) WHERE dispatched = 0;
