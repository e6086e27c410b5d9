-- A SIM's conditions (`data_limit_exceeded`, `unauthorized_imei`), comma-separated as last
-- evaluated, and the first IMEI upstream reported for it (what an IMEI lock allows when the
-- SIM has no device). Existing SIMs start in no condition; the next report or change of one
-- of its inputs evaluates them.
ALTER TABLE sims ADD COLUMN conditions TEXT NOT NULL DEFAULT '';
ALTER TABLE sims ADD COLUMN first_imei TEXT;
-- The best knowledge of the first IMEI of a SIM already in a device: the one it is in now.
UPDATE sims SET first_imei = imei WHERE imei IS NOT NULL;
