//! Tenants.

use crate::domain::TenantId;

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};

/// Creates a tenant; an existing one is [`StoreError::Conflict`].
pub async fn create(tx: &mut Tx, id: &TenantId, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, $2)")
        .bind(id.as_str())
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn exists(conn: impl Into<Conn<'_>>, id: &TenantId) -> StoreResult<bool> {
    let mut conn = conn.into();
    let n: i64 = on_conn!(conn, c => sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(id.as_str())
        .fetch_one(c)
        .await)?;
    Ok(n > 0)
}
