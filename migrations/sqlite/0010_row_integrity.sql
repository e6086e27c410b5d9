-- Row integrity: an HMAC-SHA256 under a subkey of the database's integrity key (inside the
-- root-key check) over each security-relevant row's identity and content. NULL only in a
-- database from before row integrity, until it is adopted at the first start; after that a
-- row without a MAC is refused like one whose MAC does not verify.
ALTER TABLE sims ADD COLUMN mac BLOB;
ALTER TABLE tenant_keys ADD COLUMN mac BLOB;
ALTER TABLE webhooks ADD COLUMN mac BLOB;
ALTER TABLE links ADD COLUMN mac BLOB;
