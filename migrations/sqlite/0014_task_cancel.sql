-- Tasks can be cancelled: a task's status and an item's status gain `cancelled`, and a task
-- counts its cancelled items (pending = total - completed - failed - cancelled).
--
-- SQLite changes a CHECK constraint only by rebuilding the table. `task_items` refers to
-- `tasks`, so both are rebuilt: the new items table refers to the new tasks table, the old
-- tables (then referred to by nothing) are dropped, and renaming the new tasks table rewrites
-- the reference to its final name. No foreign key is ever left dangling.
CREATE TABLE tasks_new (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    type             TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    params           TEXT NOT NULL DEFAULT '{}',   -- JSON
    total_items      INTEGER NOT NULL DEFAULT 0,
    completed_items  INTEGER NOT NULL DEFAULT 0,
    failed_items     INTEGER NOT NULL DEFAULT 0,
    error            TEXT,
    lease_owner      TEXT,
    lease_until      INTEGER,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    kek_version      INTEGER,
    wrapped_key      BLOB,
    cancelled_items  INTEGER NOT NULL DEFAULT 0
);
INSERT INTO tasks_new (id, tenant_id, type, status, params, total_items, completed_items,
                       failed_items, error, lease_owner, lease_until, created_at, updated_at,
                       kek_version, wrapped_key)
    SELECT id, tenant_id, type, status, params, total_items, completed_items, failed_items,
           error, lease_owner, lease_until, created_at, updated_at, kek_version, wrapped_key
    FROM tasks;

CREATE TABLE task_items_new (
    task_id      TEXT NOT NULL REFERENCES tasks_new (id),
    seq          INTEGER NOT NULL,
    line         INTEGER,
    status       TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'cancelled')),
    input        BLOB,
    sim_id       TEXT,
    result       TEXT,
    error        TEXT,
    lease_owner  TEXT,
    lease_until  INTEGER,
    PRIMARY KEY (task_id, seq)
);
INSERT INTO task_items_new (task_id, seq, line, status, input, sim_id, result, error,
                            lease_owner, lease_until)
    SELECT task_id, seq, line, status, input, sim_id, result, error, lease_owner, lease_until
    FROM task_items;

DROP TABLE task_items;
DROP TABLE tasks;
ALTER TABLE tasks_new RENAME TO tasks;
ALTER TABLE task_items_new RENAME TO task_items;

CREATE INDEX tasks_claimable ON tasks (status, created_at);
CREATE INDEX tasks_tenant ON tasks (tenant_id, created_at);
CREATE INDEX task_items_status ON task_items (task_id, status, seq);
