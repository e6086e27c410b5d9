//! Tenants.

use super::{Db, StoreError, StoreResult, on_pool};

/// Creates a tenant; an existing one is [`StoreError::Conflict`].
pub async fn create(db: &Db, id: &str, now: i64) -> StoreResult<()> {
    on_pool!(db, p => sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, $2)")
        .bind(id)
        .bind(now)
        .execute(p)
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

pub async fn list(db: &Db) -> StoreResult<Vec<String>> {
    Ok(
        on_pool!(db, p => sqlx::query_scalar("SELECT id FROM tenants ORDER BY id")
        .fetch_all(p)
        .await)?,
    )
}
