//! Per-SIM DEKs (wrapped under a tenant KEK version) and the sealed secret fields they
//! encrypt; the DEK counts and stale DEKs that KEK rotation works through.

use crate::domain::TenantId;
use crate::domain::keys::{StaleDek, WrappedDek};
use crate::store::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};

/// A SIM's wrapped DEK as stored.
#[derive(sqlx::FromRow)]
struct DekRow {
    kek_version: i64,
    format: i64,
    wrapped_dek: Vec<u8>,
}

impl From<DekRow> for WrappedDek {
    fn from(r: DekRow) -> Self {
        WrappedDek {
            kek_version: r.kek_version,
            format: r.format,
            wrapped_dek: r.wrapped_dek,
        }
    }
}

pub async fn dek(
    conn: impl Into<Conn<'_>>,
    sim_id: &crate::domain::SimId,
) -> StoreResult<Option<WrappedDek>> {
    let mut conn = conn.into();
    let row: Option<DekRow> = on_conn!(conn, c => sqlx::query_as(
        "SELECT kek_version, format, wrapped_dek FROM sim_deks WHERE sim_id = $1")
        .bind(sim_id.to_string())
        .fetch_optional(c)
        .await)?;
    Ok(row.map(WrappedDek::from))
}

pub async fn insert_dek(
    tx: &mut Tx,
    tenant: &TenantId,
    sim_id: &crate::domain::SimId,
    row: &WrappedDek,
    now: i64,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_deks (sim_id, tenant_id, kek_version, format, wrapped_dek, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $6)")
        .bind(sim_id.to_string())
        .bind(tenant.as_str())
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
    tenant: &TenantId,
    deks: &[(String, WrappedDek)],
    now: i64,
) -> StoreResult<()> {
    for chunk in deks.chunks(1000) {
        let sql = format!(
            "INSERT INTO sim_deks (sim_id, tenant_id, kek_version, format, wrapped_dek, created_at, updated_at) \
             VALUES {}",
            crate::store::placeholders(chunk.len(), 7)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for (sim_id, row) in chunk {
                q = q
                    .bind(sim_id)
                    .bind(tenant.as_str())
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
            crate::store::placeholders(chunk.len(), 5)
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
    sim_id: &crate::domain::SimId,
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
    conn: impl Into<Conn<'_>>,
    sim_id: &crate::domain::SimId,
    field: &str,
) -> StoreResult<Option<(i64, Vec<u8>)>> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_as(
        "SELECT format, ciphertext FROM sim_secrets WHERE sim_id = $1 AND field = $2")
        .bind(sim_id.to_string())
        .bind(field)
        .fetch_optional(c)
        .await)?)
}

pub async fn delete_secret(
    tx: &mut Tx,
    sim_id: &crate::domain::SimId,
    field: &str,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query("DELETE FROM sim_secrets WHERE sim_id = $1 AND field = $2")
        .bind(sim_id.to_string())
        .bind(field)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Crypto-shredding: destroys a SIM's DEK and every ciphertext made with it.
pub async fn shred(tx: &mut Tx, sim_id: &crate::domain::SimId) -> StoreResult<()> {
    let id = sim_id.to_string();
    on_tx!(tx, c => {
        sqlx::query("DELETE FROM sim_secrets WHERE sim_id = $1").bind(&id).execute(&mut *c).await?;
        sqlx::query("DELETE FROM sim_deks WHERE sim_id = $1").bind(&id).execute(&mut *c).await.map(|_| ())
    })?;
    Ok(())
}

/// How many DEKs of a tenant are wrapped under a version below `version`.
pub async fn count_below(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    version: i64,
) -> StoreResult<i64> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_scalar(
        "SELECT count(*) FROM sim_deks WHERE tenant_id = $1 AND kek_version < $2")
        .bind(tenant.as_str())
        .bind(version)
        .fetch_one(c)
        .await)?)
}

/// How many DEKs each KEK version of a tenant wraps now.
pub async fn dek_counts(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
) -> StoreResult<Vec<(i64, i64)>> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_as(
        "SELECT kek_version, count(*) FROM sim_deks WHERE tenant_id = $1 GROUP BY kek_version")
        .bind(tenant.as_str())
        .fetch_all(c)
        .await)?)
}

/// A DEK still wrapped under an older KEK version, as stored.
#[derive(sqlx::FromRow)]
struct StaleDekRow {
    sim_id: String,
    kek_version: i64,
    format: i64,
    wrapped_dek: Vec<u8>,
}

/// Up to `limit` of a tenant's DEKs wrapped under versions below `version`, in SIM id order
/// after `after`.
pub async fn stale_deks(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    version: i64,
    after: &str,
    limit: i64,
) -> StoreResult<Vec<StaleDek>> {
    let mut conn = conn.into();
    let rows: Vec<StaleDekRow> = on_conn!(conn, c => sqlx::query_as(
        "SELECT sim_id, kek_version, format, wrapped_dek FROM sim_deks \
         WHERE tenant_id = $1 AND kek_version < $2 AND sim_id > $3 ORDER BY sim_id LIMIT $4")
        .bind(tenant.as_str())
        .bind(version)
        .bind(after)
        .bind(limit)
        .fetch_all(c)
        .await)?;
    Ok(rows
        .into_iter()
        .map(|r| StaleDek {
            sim_id: r.sim_id,
            kek_version: r.kek_version,
            format: r.format,
            wrapped_dek: r.wrapped_dek,
        })
        .collect())
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
