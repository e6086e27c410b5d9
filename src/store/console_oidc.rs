//! Console sign-ins through the identity provider, between their start and the callback.
//!
//! Rows come back exactly as stored, MAC included: the service verifies the MAC before
//! believing one. A row is taken (deleted and returned) in one statement, so that of two
//! callbacks with the same state at most one gets it.

use super::{StoreError, StoreResult, Tx, on_tx};
use crate::domain::Timestamp;
use crate::domain::console::StoredOidcLogin;

#[derive(sqlx::FromRow)]
struct LoginRow {
    id: String,
    state_hash: Vec<u8>,
    binding_hash: Vec<u8>,
    nonce: String,
    verifier: String,
    created_at: i64,
    expires_at: i64,
    mac: Vec<u8>,
}

impl From<LoginRow> for StoredOidcLogin {
    fn from(r: LoginRow) -> Self {
        StoredOidcLogin {
            id: r.id,
            state_hash: r.state_hash,
            binding_hash: r.binding_hash,
            nonce: r.nonce,
            verifier: r.verifier,
            created_at: r.created_at,
            expires_at: r.expires_at,
            mac: r.mac,
        }
    }
}

/// Stores a new sign-in (its MAC given), sweeping those expired before `now`.
pub async fn insert_login(tx: &mut Tx, l: &StoredOidcLogin, now: Timestamp) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("DELETE FROM console_oidc_logins WHERE expires_at <= $1")
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_oidc_logins \
         (id, state_hash, binding_hash, nonce, verifier, created_at, expires_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(&l.id)
        .bind(&l.state_hash)
        .bind(&l.binding_hash)
        .bind(&l.nonce)
        .bind(&l.verifier)
        .bind(l.created_at)
        .bind(l.expires_at)
        .bind(&l.mac)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// Deletes the sign-in whose state hashes to `state_hash` and returns it as it was stored,
/// expired or not; `None` when there is none (never begun, or taken already).
pub async fn take_login(tx: &mut Tx, state_hash: &[u8]) -> StoreResult<Option<StoredOidcLogin>> {
    let row: Option<LoginRow> = on_tx!(tx, c => sqlx::query_as(
        "DELETE FROM console_oidc_logins WHERE state_hash = $1 \
         RETURNING id, state_hash, binding_hash, nonce, verifier, created_at, expires_at, mac")
        .bind(state_hash)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(StoredOidcLogin::from))
}
