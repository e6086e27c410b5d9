-- Durable background tasks (key rotation now; bulk provisioning and imports later).
-- A worker claims a task by taking its lease; a task whose lease has run out (its worker
-- died) is claimed again and resumes where its recorded progress stopped.
CREATE TABLE tasks (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    type             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed')),
    params           JSONB NOT NULL DEFAULT '{}',
    total_items      BIGINT NOT NULL DEFAULT 0,
    completed_items  BIGINT NOT NULL DEFAULT 0,
    failed_items     BIGINT NOT NULL DEFAULT 0,
    error            TEXT,
    lease_owner      TEXT,
    lease_until      BIGINT,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);
CREATE INDEX tasks_claimable ON tasks (status, created_at);
CREATE INDEX tasks_tenant ON tasks (tenant_id, created_at);
