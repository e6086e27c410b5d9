-- Authenticated client identities (storage is untrusted).

-- HMAC-SHA256, under the row-integrity key's client-identity subkey, over the identity, its
-- tenant, name, roles, created_at and revoked_at. A row whose MAC does not verify (or is NULL)
-- is refused and reported, never obeyed. Rows from before this migration are given their MAC
-- once, when a process holding the root key first opens the database.
ALTER TABLE client_identities ADD COLUMN mac BLOB;

-- `simvault cert list --tenant T`.
CREATE INDEX client_identities_tenant ON client_identities (tenant_id, name);
