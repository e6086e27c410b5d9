-- The carrier's plan and integration fields on a SIM (the device platform's `communication_plan`,
-- `rate_plan` and `mno_integration_id`): descriptive text, filtered on exactly
-- (no index: a filter on them scans the tenant's rows, and imports stay lean).
ALTER TABLE sims ADD COLUMN communication_plan TEXT;
ALTER TABLE sims ADD COLUMN rate_plan TEXT;
ALTER TABLE sims ADD COLUMN mno_integration_id TEXT;
