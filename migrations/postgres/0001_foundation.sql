-- Foundation schema (PostgreSQL, the scale-out store).
-- Conventions as in the SQLite tree: ids are UUID text; instants are BIGINT microseconds since
-- the Unix epoch (UTC); every tenant-owned row carries tenant_id and every query filters on it.

-- Trigram indexes for substring search. Installed in `public` so that every schema (one per
-- test, or one per deployment) finds the operator class there.
CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    created_at  BIGINT NOT NULL
);

-- Client certificate identities registered by `simvault cert issue`.
CREATE TABLE client_identities (
    identity    TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    roles       TEXT NOT NULL,          -- comma-separated role names
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE sims (
    id                   TEXT PRIMARY KEY,
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
    tags                 JSONB NOT NULL DEFAULT '[]',
    group_id             TEXT,
    device_id            TEXT,
    compatibility_zones  JSONB NOT NULL DEFAULT '[]',
    is_attached          BOOLEAN NOT NULL DEFAULT FALSE,
    esim_profile_state   TEXT,
    metadata             JSONB NOT NULL DEFAULT '{}',
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    last_synced_at       BIGINT,
    deleted_at           BIGINT,
    -- What `search` matches: every identifier, lower-cased (UUIDs are hex).
    search_text          TEXT GENERATED ALWAYS AS (
        lower(id) || ' ' || iccid || ' ' || coalesce(msisdn, '') || ' ' || coalesce(imsi, '')
        || ' ' || coalesce(imei, '') || ' ' || coalesce(eid, '')
    ) STORED
);

CREATE INDEX sims_tenant_updated ON sims (tenant_id, updated_at, id);
CREATE INDEX sims_tenant_created ON sims (tenant_id, created_at, id);
CREATE INDEX sims_tenant_iccid ON sims (tenant_id, iccid);
CREATE INDEX sims_tenant_imsi ON sims (tenant_id, imsi, id);
CREATE INDEX sims_tenant_msisdn ON sims (tenant_id, msisdn, id);
CREATE INDEX sims_tenant_state ON sims (tenant_id, state, id);
CREATE INDEX sims_tenant_group ON sims (tenant_id, group_id);
CREATE INDEX sims_tenant_vendor ON sims (tenant_id, vendor);
CREATE INDEX sims_tags ON sims USING gin (tags);
CREATE INDEX sims_search_trgm ON sims USING gin (search_text public.gin_trgm_ops);
CREATE INDEX sims_iccid_trgm ON sims USING gin (iccid public.gin_trgm_ops);

CREATE TABLE plans (
    id                   TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    name                 TEXT NOT NULL,
    compatibility_zones  JSONB NOT NULL DEFAULT '[]',
    created_at           BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

CREATE INDEX plans_tenant_created ON plans (tenant_id, created_at, id);
