-- Subscriber authentication data for the authentication centre: the AMF put into AUTN, the
-- last sequence number issued (SQN = SEQ || IND, 48 bits, TS 33.102 Annex C) and the IND width.
ALTER TABLE sims ADD COLUMN amf TEXT NOT NULL DEFAULT '8000';
ALTER TABLE sims ADD COLUMN sqn BIGINT NOT NULL DEFAULT 0;
ALTER TABLE sims ADD COLUMN ind_bitlen BIGINT NOT NULL DEFAULT 5;
