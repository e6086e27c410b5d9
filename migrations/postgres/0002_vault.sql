-- The vault: envelope encryption of SIM secrets (PostgreSQL).
--   root key (outside the database) ─wraps─► tenant KEK (versioned) ─wraps─► per-SIM DEK ─encrypts─► each secret field
-- Every wrapped key and ciphertext is stored as nonce ‖ ciphertext ‖ tag (AES-256-GCM) beside a
-- format version and the version of the key that wrapped it. Associated data binds each to its
-- place (tenant, SIM, field, key version), so a blob copied elsewhere fails to decrypt.

-- Proves at start-up that the configured root key is the one these keys were wrapped under.
CREATE TABLE root_key_check (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    format      BIGINT NOT NULL,
    wrapped     BYTEA NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE tenant_keys (
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    version      BIGINT NOT NULL,
    format       BIGINT NOT NULL,
    wrapped_key  BYTEA NOT NULL,            -- the KEK, wrapped by the root key
    state        TEXT NOT NULL CHECK (state IN ('active', 'retiring', 'retired')),
    wrapped_deks BIGINT NOT NULL DEFAULT 0,   -- DEKs ever wrapped under this version
    created_at   BIGINT NOT NULL,
    retired_at   BIGINT,
    PRIMARY KEY (tenant_id, version)
);

-- One data-encryption key per SIM. Deleting the row destroys the SIM's secrets for good.
CREATE TABLE sim_deks (
    sim_id       TEXT PRIMARY KEY REFERENCES sims(id),
    tenant_id    TEXT NOT NULL,
    kek_version  BIGINT NOT NULL,
    format       BIGINT NOT NULL,
    wrapped_dek  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, kek_version) REFERENCES tenant_keys(tenant_id, version)
);
CREATE INDEX sim_deks_tenant_version ON sim_deks (tenant_id, kek_version);

CREATE TABLE sim_secrets (
    sim_id      TEXT NOT NULL REFERENCES sim_deks(sim_id),
    field       TEXT NOT NULL CHECK (field IN ('pin1', 'pin2', 'puk1', 'puk2', 'ki', 'opc', 'activation_code')),
    format      BIGINT NOT NULL,
    ciphertext  BYTEA NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (sim_id, field)
);

-- What the SIM resource shows without decrypting anything: which fields are set, and the
-- card's retry counters (remaining attempts; NULL until the PIN/PUK is set).
ALTER TABLE sims ADD COLUMN secret_fields TEXT NOT NULL DEFAULT '';
ALTER TABLE sims ADD COLUMN pin_max BIGINT NOT NULL DEFAULT 3;
ALTER TABLE sims ADD COLUMN puk_max BIGINT NOT NULL DEFAULT 10;
ALTER TABLE sims ADD COLUMN pin1_remaining BIGINT;
ALTER TABLE sims ADD COLUMN pin2_remaining BIGINT;
ALTER TABLE sims ADD COLUMN puk1_remaining BIGINT;
ALTER TABLE sims ADD COLUMN puk2_remaining BIGINT;
