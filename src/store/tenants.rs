//! Tenants.

use super::{Db, StoreError, StoreResult, Tx, on_pool, on_tx};

/// Creates a tenant; an existing one is [`StoreError::Conflict`].
pub async fn create(tx: &mut Tx, id: &str, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, $2)")
        .bind(id)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn exists(db: &Db, id: &str) -> StoreResult<bool> {
    let n: i64 = on_pool!(db, p => sqlx::query_scalar("SELECT count(*) FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_one(p)
        .await)?;
    Ok(n > 0)
}
