//! Wrapped keys: the root-key check, tenant KEK versions and per-SIM DEKs, and the encrypted
//! secret fields. Only ciphertext passes through here.

use super::{Db, StoreError, StoreResult, Tx, on_pool, on_tx};

/// The root-key check blob, if this database has one.
pub async fn root_check(db: &Db) -> StoreResult<Option<(i64, Vec<u8>)>> {
    Ok(
        on_pool!(db, p => sqlx::query_as("SELECT format, wrapped FROM root_key_check WHERE id = 1")
        .fetch_optional(p)
        .await)?,
    )
}

/// Stores the root-key check unless another process stored one first.
pub async fn insert_root_check(
    tx: &mut Tx,
    format: i64,
    wrapped: &[u8],
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO root_key_check (id, format, wrapped, created_at) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO NOTHING")
        .bind(format)
        .bind(wrapped)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A tenant KEK version as stored (wrapped by the root key).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct TenantKeyRow {
    pub tenant_id: String,
    pub version: i64,
    pub format: i64,
    pub wrapped_key: Vec<u8>,
    pub state: String,
    pub wrapped_deks: i64,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "tenant_id, version, format, wrapped_key, state, wrapped_deks, created_at, retired_at";

/// The newest active KEK version of a tenant.
pub async fn active_kek(tx: &mut Tx, tenant: &str) -> StoreResult<Option<TenantKeyRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 AND state = 'active' \
         ORDER BY version DESC LIMIT 1"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as(sql).bind(tenant).fetch_optional(&mut *c).await)?)
}

fn kek_sql() -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 AND version = $2"
    ))
}

/// One KEK version of a tenant.
pub async fn kek(db: &Db, tenant: &str, version: i64) -> StoreResult<Option<TenantKeyRow>> {
    let sql = kek_sql();
    Ok(on_pool!(db, p => sqlx::query_as(sql).bind(tenant).bind(version).fetch_optional(p).await)?)
}

/// One KEK version of a tenant, read inside `tx` (a transaction holding locks must not wait
/// for a second pooled connection: under load that deadlocks against the pool).
pub async fn kek_in(tx: &mut Tx, tenant: &str, version: i64) -> StoreResult<Option<TenantKeyRow>> {
    let sql = kek_sql();
    Ok(
        on_tx!(tx, c => sqlx::query_as(sql).bind(tenant).bind(version).fetch_optional(&mut *c).await)?,
    )
}

/// Every KEK version of a tenant, oldest first.
pub async fn keks(db: &Db, tenant: &str) -> StoreResult<Vec<TenantKeyRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 ORDER BY version"
    ));
    Ok(on_pool!(db, p => sqlx::query_as(sql).bind(tenant).fetch_all(p).await)?)
}

/// Adds a KEK version unless that version exists already (say, made by another replica at
/// the same moment: PostgreSQL waits for its commit). Returns whether this row was added.
pub async fn insert_kek(tx: &mut Tx, row: &TenantKeyRow) -> StoreResult<bool> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tenant_keys (tenant_id, version, format, wrapped_key, state, wrapped_deks, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, version) DO NOTHING")
        .bind(&row.tenant_id)
        .bind(row.version)
        .bind(row.format)
        .bind(&row.wrapped_key)
        .bind(&row.state)
        .bind(row.wrapped_deks)
        .bind(row.created_at)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))
    .map_err(StoreError::from_write)
}

/// A SIM's wrapped DEK.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DekRow {
    pub kek_version: i64,
    pub format: i64,
    pub wrapped_dek: Vec<u8>,
}

pub async fn dek(tx: &mut Tx, sim_id: &uuid::Uuid) -> StoreResult<Option<DekRow>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT kek_version, format, wrapped_dek FROM sim_deks WHERE sim_id = $1")
        .bind(sim_id.to_string())
        .fetch_optional(&mut *c)
        .await)?)
}

pub async fn insert_dek(
    tx: &mut Tx,
    tenant: &str,
    sim_id: &uuid::Uuid,
    row: &DekRow,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_deks (sim_id, tenant_id, kek_version, format, wrapped_dek, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(sim_id.to_string())
        .bind(tenant)
        .bind(row.kek_version)
        .bind(row.format)
        .bind(&row.wrapped_dek)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// Inserts the DEKs of new SIMs of one tenant: `(sim id, wrapped DEK)`.
pub async fn insert_deks(
    tx: &mut Tx,
    tenant: &str,
    deks: &[(String, DekRow)],
    now: i64,
) -> StoreResult<()> {
    for chunk in deks.chunks(1000) {
        let sql = format!(
            "INSERT INTO sim_deks (sim_id, tenant_id, kek_version, format, wrapped_dek, created_at, updated_at) \
             VALUES {}",
            super::placeholders(chunk.len(), 7)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for (sim_id, row) in chunk {
                q = q
                    .bind(sim_id)
                    .bind(tenant)
                    .bind(row.kek_version)
                    .bind(row.format)
                    .bind(&row.wrapped_dek)
                    .bind(now)
                    .bind(now);
            }
            q.execute(&mut *c).await.map(|_| ())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// One sealed secret field of a new SIM.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub sim_id: String,
    pub field: &'static str,
    pub ciphertext: Vec<u8>,
}

/// Inserts the sealed fields of new SIMs.
pub async fn insert_secrets(
    tx: &mut Tx,
    secrets: &[NewSecret],
    format: i64,
    now: i64,
) -> StoreResult<()> {
    for chunk in secrets.chunks(2000) {
        let sql = format!(
            "INSERT INTO sim_secrets (sim_id, field, format, ciphertext, updated_at) VALUES {}",
            super::placeholders(chunk.len(), 5)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for s in chunk {
                q = q
                    .bind(&s.sim_id)
                    .bind(s.field)
                    .bind(format)
                    .bind(&s.ciphertext)
                    .bind(now);
            }
            q.execute(&mut *c).await.map(|_| ())
        })
        .map_err(StoreError::from_write)?;
    }
    Ok(())
}

/// Writes one encrypted field (insert or replace).
pub async fn put_secret(
    tx: &mut Tx,
    sim_id: &uuid::Uuid,
    field: &str,
    format: i64,
    ciphertext: &[u8],
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_secrets (sim_id, field, format, ciphertext, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (sim_id, field) DO UPDATE SET format = excluded.format, \
         ciphertext = excluded.ciphertext, updated_at = excluded.updated_at")
        .bind(sim_id.to_string())
        .bind(field)
        .bind(format)
        .bind(ciphertext)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// One encrypted field of a SIM: `(format, ciphertext)`.
pub async fn secret(
    tx: &mut Tx,
    sim_id: &uuid::Uuid,
    field: &str,
) -> StoreResult<Option<(i64, Vec<u8>)>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT format, ciphertext FROM sim_secrets WHERE sim_id = $1 AND field = $2")
        .bind(sim_id.to_string())
        .bind(field)
        .fetch_optional(&mut *c)
        .await)?)
}

pub async fn delete_secret(tx: &mut Tx, sim_id: &uuid::Uuid, field: &str) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("DELETE FROM sim_secrets WHERE sim_id = $1 AND field = $2")
        .bind(sim_id.to_string())
        .bind(field)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// One encrypted field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRow {
    pub field: String,
    pub format: i64,
    pub ciphertext: Vec<u8>,
}

/// Crypto-shredding: destroys a SIM's DEK and every ciphertext made with it.
pub async fn shred(tx: &mut Tx, sim_id: &uuid::Uuid) -> StoreResult<()> {
    let id = sim_id.to_string();
    on_tx!(tx, c => {
        sqlx::query("DELETE FROM sim_secrets WHERE sim_id = $1").bind(&id).execute(&mut *c).await?;
        sqlx::query("DELETE FROM sim_deks WHERE sim_id = $1").bind(&id).execute(&mut *c).await.map(|_| ())
    })?;
    Ok(())
}

/// Marks every active KEK version of a tenant below `version` as retiring.
pub async fn retire_older(tx: &mut Tx, tenant: &str, version: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET state = 'retiring' WHERE tenant_id = $1 AND version < $2 AND state = 'active'")
        .bind(tenant)
        .bind(version)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Retires the retiring versions below `version` that no DEK uses any more.
pub async fn retire_unused(tx: &mut Tx, tenant: &str, version: i64, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET state = 'retired', retired_at = $3 \
         WHERE tenant_id = $1 AND version < $2 AND state = 'retiring' \
         AND NOT EXISTS (SELECT 1 FROM sim_deks d WHERE d.tenant_id = tenant_keys.tenant_id \
                         AND d.kek_version = tenant_keys.version)")
        .bind(tenant)
        .bind(version)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// How many DEKs of a tenant are wrapped under a version below `version`.
pub async fn count_below(db: &Db, tenant: &str, version: i64) -> StoreResult<i64> {
    Ok(on_pool!(db, p => sqlx::query_scalar(
        "SELECT count(*) FROM sim_deks WHERE tenant_id = $1 AND kek_version < $2")
        .bind(tenant)
        .bind(version)
        .fetch_one(p)
        .await)?)
}

/// How many DEKs each KEK version of a tenant wraps now.
pub async fn dek_counts(db: &Db, tenant: &str) -> StoreResult<Vec<(i64, i64)>> {
    Ok(on_pool!(db, p => sqlx::query_as(
        "SELECT kek_version, count(*) FROM sim_deks WHERE tenant_id = $1 GROUP BY kek_version")
        .bind(tenant)
        .fetch_all(p)
        .await)?)
}

/// A DEK still wrapped under an older KEK version.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StaleDek {
    pub sim_id: String,
    pub kek_version: i64,
    pub format: i64,
    pub wrapped_dek: Vec<u8>,
}

/// Up to `limit` of a tenant's DEKs wrapped under versions below `version`, in SIM id order
/// after `after`.
pub async fn stale_deks(
    tx: &mut Tx,
    tenant: &str,
    version: i64,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<StaleDek>> {
    Ok(on_tx!(tx, c => sqlx::query_as(
        "SELECT sim_id, kek_version, format, wrapped_dek FROM sim_deks \
         WHERE tenant_id = $1 AND kek_version < $2 AND sim_id > $3 ORDER BY sim_id LIMIT $4")
        .bind(tenant)
        .bind(version)
        .bind(after)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?)
}

/// Replaces a DEK's wrapping, if it is still the one that was read.
pub async fn rewrap_dek(
    tx: &mut Tx,
    sim_id: &str,
    old_version: i64,
    new_version: i64,
    wrapped: &[u8],
    now: i64,
) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE sim_deks SET kek_version = $1, wrapped_dek = $2, updated_at = $3 \
         WHERE sim_id = $4 AND kek_version = $5")
        .bind(new_version)
        .bind(wrapped)
        .bind(now)
        .bind(sim_id)
        .bind(old_version)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?)
}

/// Adds `n` to the count of DEKs wrapped under a version.
pub async fn count_wraps(tx: &mut Tx, tenant: &str, version: i64, n: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET wrapped_deks = wrapped_deks + $3 WHERE tenant_id = $1 AND version = $2")
        .bind(tenant)
        .bind(version)
        .bind(n)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Every tenant KEK version of every tenant, locked for update (root-key rotation).
pub async fn all_keks_for_update(tx: &mut Tx) -> StoreResult<Vec<TenantKeyRow>> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys ORDER BY tenant_id, version{lock}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as(sql).fetch_all(&mut *c).await)?)
}

/// Replaces the wrapping of one KEK version.
pub async fn rewrap_kek(
    tx: &mut Tx,
    tenant: &str,
    version: i64,
    format: i64,
    wrapped: &[u8],
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET format = $3, wrapped_key = $4 WHERE tenant_id = $1 AND version = $2")
        .bind(tenant)
        .bind(version)
        .bind(format)
        .bind(wrapped)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Replaces the root-key check (root-key rotation).
pub async fn replace_root_check(
    tx: &mut Tx,
    format: i64,
    wrapped: &[u8],
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE root_key_check SET format = $1, wrapped = $2, created_at = $3 WHERE id = 1")
        .bind(format)
        .bind(wrapped)
        .bind(now)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The root-key check as seen inside a transaction (locked on PostgreSQL).
pub async fn root_check_in(tx: &mut Tx) -> StoreResult<Option<(i64, Vec<u8>)>> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT format, wrapped FROM root_key_check WHERE id = 1{lock}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as(sql).fetch_optional(&mut *c).await)?)
}
