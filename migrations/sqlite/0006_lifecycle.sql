-- Every state change of a SIM: who, when, from, to, why.
CREATE TABLE sim_state_history (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    sim_id       TEXT NOT NULL REFERENCES sims (id),
    from_state   TEXT NOT NULL,
    to_state     TEXT NOT NULL,
    reason       TEXT,
    actor        TEXT NOT NULL,
    auth_method  TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL
);
CREATE INDEX sim_state_history_sim ON sim_state_history (sim_id, occurred_at);

-- Domain events (the outbox), written in the transaction of the change they describe, for
-- webhook delivery. Payloads carry ids, ICCIDs, states and counters: never a secret.
CREATE TABLE domain_events (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    event_type   TEXT NOT NULL,
    sim_id       TEXT,
    payload      TEXT NOT NULL,
    occurred_at  INTEGER NOT NULL
);
CREATE INDEX domain_events_time ON domain_events (tenant_id, occurred_at);
