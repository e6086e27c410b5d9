-- Audit records name their SIM's ICCID in a column too, so that reviewers can filter by it.
ALTER TABLE audit_events ADD COLUMN iccid TEXT;
CREATE INDEX audit_events_subject ON audit_events (tenant_id, subject, seq);
CREATE INDEX audit_events_sim ON audit_events (tenant_id, sim_id, seq);
CREATE INDEX audit_events_iccid ON audit_events (tenant_id, iccid, seq);

-- Signed checkpoints: an Ed25519 signature over a chain's head at a moment. Rewriting the
-- whole table (recomputing every hash) or cutting its tail together with audit_heads still
-- disagrees with the signed hashes, which only the signing key can make.
CREATE TABLE audit_checkpoints (
    tenant_id  TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    hash       TEXT NOT NULL,
    signed_at  INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    signature  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
