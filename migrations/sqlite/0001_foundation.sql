-- Foundation schema (SQLite, the embedded default).
-- Conventions: ids are UUID text; instants are INTEGER microseconds since the Unix epoch (UTC),
-- portable and totally ordered; every tenant-owned row carries tenant_id and every query filters
-- on it.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  INTEGER NOT NULL
);

-- Client certificate identities (SAN URI, else subject CN) registered by `simvault cert issue`,
-- mapped to a tenant and roles. A certificate must also chain to the configured client CA.
CREATE TABLE client_identities (
    identity    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,          -- comma-separated role names
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);

CREATE TABLE sims (
    -- Integer alias of the rowid: the full-text index below refers to it.
    pk                   INTEGER PRIMARY KEY,
    id                   TEXT NOT NULL UNIQUE,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    -- Unique across all tenants, tombstones included: an ICCID names one physical card forever.
    iccid                TEXT NOT NULL UNIQUE,
    imsi                 TEXT,
    msisdn               TEXT,
    imei                 TEXT,
    eid                  TEXT,
    sim_type             TEXT NOT NULL CHECK (sim_type IN ('physical', 'esim')),
    state                TEXT NOT NULL CHECK (state IN ('inventory', 'active', 'suspended', 'blocked', 'retired')),
    state_reason         TEXT,
    carrier_status       TEXT,
    vendor               TEXT,
    tags                 TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    group_id             TEXT,
    device_id            TEXT,
    compatibility_zones  TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    is_attached          INTEGER NOT NULL DEFAULT 0,
    esim_profile_state   TEXT,
    metadata             TEXT NOT NULL DEFAULT '{}',   -- JSON object
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_synced_at       INTEGER,
    deleted_at           INTEGER                       -- tombstone
);

-- Listing sorts within a tenant; each index ends in id, the tie-break.
CREATE INDEX sims_tenant_updated ON sims (tenant_id, updated_at, id);
CREATE INDEX sims_tenant_created ON sims (tenant_id, created_at, id);
CREATE INDEX sims_tenant_iccid ON sims (tenant_id, iccid);
CREATE INDEX sims_tenant_imsi ON sims (tenant_id, imsi, id);
CREATE INDEX sims_tenant_msisdn ON sims (tenant_id, msisdn, id);
CREATE INDEX sims_tenant_state ON sims (tenant_id, state, id);
CREATE INDEX sims_tenant_group ON sims (tenant_id, group_id);
CREATE INDEX sims_tenant_vendor ON sims (tenant_id, vendor);

-- Substring search (`search`, `iccid` filters) through an FTS5 trigram index, so that a
-- `%term%` match of 3 or more characters does not scan the table. Case-insensitive.
CREATE VIRTUAL TABLE sims_fts USING fts5 (
    id, iccid, msisdn, imsi, imei, eid,
    tokenize = 'trigram'
);

CREATE TRIGGER sims_fts_insert AFTER INSERT ON sims BEGIN
    INSERT INTO sims_fts (rowid, id, iccid, msisdn, imsi, imei, eid)
    VALUES (new.pk, new.id, new.iccid, new.msisdn, new.imsi, new.imei, new.eid);
END;

CREATE TRIGGER sims_fts_update AFTER UPDATE OF msisdn, imsi, imei, eid ON sims BEGIN
    DELETE FROM sims_fts WHERE rowid = old.pk;
    INSERT INTO sims_fts (rowid, id, iccid, msisdn, imsi, imei, eid)
    VALUES (new.pk, new.id, new.iccid, new.msisdn, new.imsi, new.imei, new.eid);
END;

CREATE TRIGGER sims_fts_delete AFTER DELETE ON sims BEGIN
    DELETE FROM sims_fts WHERE rowid = old.pk;
END;

CREATE TABLE plans (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    name                 TEXT NOT NULL,
    compatibility_zones  TEXT NOT NULL DEFAULT '[]',   -- JSON array of strings
    created_at           INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX plans_tenant_created ON plans (tenant_id, created_at, id);
