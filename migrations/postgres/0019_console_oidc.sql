-- Console sign-in through the identity provider: a sign-in begun (GET /console/login/oidc) and
-- not yet finished at the callback. The row is found by the SHA-256 of the state sent to the
-- provider (the state itself is not stored) and deleted by the callback whatever its outcome,
-- so each sign-in is finished at most once. binding_hash is the SHA-256 of the random value of
-- the browser cookie that began it: a callback from another browser is refused. The nonce and
-- the PKCE verifier are useless without the authorization code, which never reaches the
-- database. HMAC-SHA256 under the console-OIDC-login subkey over id, state_hash, binding_hash,
-- nonce, verifier, created_at and expires_at: a row forged or changed without the keys
-- finishes no sign-in. Times are microseconds since the Unix epoch; rows live 10 minutes.
CREATE TABLE console_oidc_logins (
    id                   TEXT PRIMARY KEY,
    state_hash           BYTEA NOT NULL UNIQUE,
    binding_hash         BYTEA NOT NULL,
    nonce                TEXT NOT NULL,
    verifier             TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,
    mac                  BYTEA NOT NULL
);

-- Sweeping sign-ins never finished.
CREATE INDEX console_oidc_logins_expires ON console_oidc_logins (expires_at);
