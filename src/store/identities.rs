//! Registered client-certificate identities.

use super::{Db, StoreError, StoreResult, Tx, on_pool, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct IdentityRow {
    pub identity: String,
    pub tenant_id: String,
    pub name: String,
    /// Comma-separated role names.
    pub roles: String,
}

/// Registers `identity`; an identity registered before is [`StoreError::Conflict`].
pub async fn register(tx: &mut Tx, row: &IdentityRow, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO client_identities (identity, tenant_id, name, roles, created_at) \
         VALUES ($1, $2, $3, $4, $5)")
        .bind(&row.identity)
        .bind(&row.tenant_id)
        .bind(&row.name)
        .bind(&row.roles)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// The registration of `identity`, unless it was never registered or has been revoked.
pub async fn find_active(db: &Db, identity: &str) -> StoreResult<Option<IdentityRow>> {
    Ok(on_pool!(db, p => sqlx::query_as(
        "SELECT identity, tenant_id, name, roles FROM client_identities \
         WHERE identity = $1 AND revoked_at IS NULL")
        .bind(identity)
        .fetch_optional(p)
        .await)?)
}
