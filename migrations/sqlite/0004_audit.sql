-- The audit log: one record per security-relevant request, hash-chained per tenant.
-- Each record's hash is SHA-256 over the previous record's hash and the record's canonical
-- text, so editing, deleting or reordering rows breaks the chain; audit_heads remembers each
-- chain's end so that cutting off its tail is detected too.
CREATE TABLE audit_events (
    tenant_id    TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    occurred_at  INTEGER NOT NULL,
    action       TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    subject      TEXT NOT NULL,
    sim_id       TEXT,
    record       TEXT NOT NULL,    -- canonical JSON; names fields, never values
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_events_time ON audit_events (tenant_id, occurred_at);

CREATE TABLE audit_heads (
    tenant_id  TEXT PRIMARY KEY,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL
);
