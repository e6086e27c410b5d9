-- What the carrier's system reports: data used this billing period and its limit (JSON
-- {amount, unit}), the usage in MB for sorting, and when the SIM is next due for a sync
-- (claimed per round by one replica).
ALTER TABLE sims ADD COLUMN consumed_data TEXT;
ALTER TABLE sims ADD COLUMN data_limit TEXT;
ALTER TABLE sims ADD COLUMN consumed_mb DOUBLE PRECISION;
ALTER TABLE sims ADD COLUMN sync_due_at BIGINT NOT NULL DEFAULT 0;
CREATE INDEX sims_sync_due ON sims (sync_due_at);
CREATE INDEX sims_consumed ON sims (tenant_id, consumed_mb);
