-- Web console sign-in: single-use console links and server-side sessions, shared by every
-- replica. Neither table holds a token, only its SHA-256: whoever reads the database cannot
-- sign in with what it finds there.

-- A console link (`simvault console-link`). HMAC-SHA256 under the console-ticket subkey over
-- its id, token hash, tenant, subject, roles, created_at and expires_at: a row forged or
-- changed without the keys signs nobody in. used_at is not covered: it is set once, by the
-- conditional UPDATE that redeems the ticket (two redemptions give one session), and clearing
-- it again would help only someone who already holds the link.
CREATE TABLE console_tickets (
    id                   TEXT PRIMARY KEY,
    token_hash           BLOB NOT NULL UNIQUE,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    subject              TEXT NOT NULL,
    roles                TEXT NOT NULL,                 -- comma-separated role names
    created_at           INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    used_at              INTEGER,
    mac                  BLOB NOT NULL
);

-- A console session. HMAC-SHA256 under the console-session subkey over its id, token hash,
-- tenant, subject, roles, created_at, last_seen_at, expires_at and ended_at: every column that
-- decides whether the session holds and as whom. A row whose MAC fails is refused and
-- reported, never obeyed. Times are microseconds since the Unix epoch.
CREATE TABLE console_sessions (
    id                   TEXT PRIMARY KEY,
    token_hash           BLOB NOT NULL UNIQUE,
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    subject              TEXT NOT NULL,
    roles                TEXT NOT NULL,                 -- comma-separated role names
    created_at           INTEGER NOT NULL,
    last_seen_at         INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,
    ended_at             INTEGER,
    mac                  BLOB NOT NULL
);

-- Sessions of a person (ending them all on sign-out everywhere, listing them for admins).
CREATE INDEX console_sessions_subject ON console_sessions (tenant_id, subject);
