-- SIM groups and devices become resources of their tenant. A SIM belongs to at most one of
-- each; its group_id / device_id are real foreign keys (ON DELETE RESTRICT), so the database
-- itself refuses a SIM naming a group or device that does not exist.
CREATE TABLE groups (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    name                 TEXT NOT NULL,
    description          TEXT,
    data_limit           TEXT,                          -- JSON {amount, unit}, or NULL
    imei_lock            INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX groups_tenant_created ON groups (tenant_id, created_at, id);

CREATE TABLE devices (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    name                 TEXT NOT NULL,
    imei                 TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',    -- JSON object
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX devices_tenant_created ON devices (tenant_id, created_at, id);

-- Today's free-text labels become groups and devices of that name, per tenant: only labels a
-- live SIM carries (a tombstone's label names nothing anyone manages), never an empty one.
-- Deleted SIMs (tombstones) lose their label: they name no group or device afterwards.
-- The new ids are random and unique, in the canonical UUID text form. On SQLite they have the
-- version-4 layout; on PostgreSQL they are md5() digests cast to uuid (gen_random_uuid is built
-- in only from PostgreSQL 13), so their version and variant bits are arbitrary: they are not
-- v4 UUIDs, and nothing may rely on an id's version.
INSERT INTO groups (id, tenant_id, name, description, data_limit, imei_lock, created_at, updated_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       tenant_id, group_id, NULL, NULL, 0, min(created_at), min(created_at)
FROM sims
WHERE deleted_at IS NULL AND group_id IS NOT NULL AND group_id <> ''
GROUP BY tenant_id, group_id;

INSERT INTO devices (id, tenant_id, name, imei, metadata, created_at, updated_at)
SELECT lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || substr(hex(randomblob(2)), 2)
             || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || substr(hex(randomblob(2)), 2)
             || '-' || hex(randomblob(6))),
       tenant_id, device_id, NULL, '{}', min(created_at), min(created_at)
FROM sims
WHERE deleted_at IS NULL AND device_id IS NOT NULL AND device_id <> ''
GROUP BY tenant_id, device_id;

-- Each label becomes its group's or device's id; tombstones and empty labels name nothing.
-- PostgreSQL rewrites the columns in place and adds the foreign keys to them; SQLite adds a
-- foreign key only with a new column, so there the label column is renamed, the keyed column
-- added and filled from it, and the label dropped.
DROP INDEX sims_tenant_group;
ALTER TABLE sims RENAME COLUMN group_id TO group_label;
ALTER TABLE sims RENAME COLUMN device_id TO device_label;
ALTER TABLE sims ADD COLUMN group_id TEXT REFERENCES groups (id) ON DELETE RESTRICT;
ALTER TABLE sims ADD COLUMN device_id TEXT REFERENCES devices (id) ON DELETE RESTRICT;
UPDATE sims SET
    group_id = (SELECT g.id FROM groups g WHERE g.tenant_id = sims.tenant_id AND g.name = sims.group_label),
    device_id = (SELECT d.id FROM devices d WHERE d.tenant_id = sims.tenant_id AND d.name = sims.device_label)
WHERE deleted_at IS NULL;
ALTER TABLE sims DROP COLUMN group_label;
ALTER TABLE sims DROP COLUMN device_label;
CREATE INDEX sims_tenant_group ON sims (tenant_id, group_id);
-- A group's or device's delete looks for the SIMs naming it by these.
CREATE INDEX sims_group ON sims (group_id);
CREATE INDEX sims_device ON sims (device_id);
