//! Wrapped keys: the root-key check, tenant KEK versions and per-SIM DEKs, and the encrypted
//! secret fields. Only ciphertext passes through here.
//!
//! A tenant KEK version's row is authenticated: its MAC covers the tenant, version, state and
//! retirement time (which version wraps new DEKs), and every read checks it. The wrapping
//! itself needs no MAC: its AES-GCM associated data binds it to tenant and version already.

mod deks;

// The DEK half, at the paths its callers use (`keys::dek`, `keys::shred`, …).
pub use deks::*;

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::TenantId;
use crate::domain::keys::{KeyState, TenantKey};
use crate::vault::{IntegrityKey, Purpose, RowParts};

/// The root-key check blob, if this database has one; inside a transaction, locked until it
/// ends (PostgreSQL).
pub async fn root_check(conn: impl Into<Conn<'_>>) -> StoreResult<Option<(i64, Vec<u8>)>> {
    let mut conn = conn.into();
    let lock = conn.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT format, wrapped FROM root_key_check WHERE id = 1{lock}"
    ));
    Ok(on_conn!(conn, c => sqlx::query_as(sql).fetch_optional(c).await)?)
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
#[derive(sqlx::FromRow)]
struct TenantKeyRow {
    tenant_id: String,
    version: i64,
    format: i64,
    wrapped_key: Vec<u8>,
    state: String,
    wrapped_deks: i64,
    created_at: i64,
    retired_at: Option<i64>,
}

impl TryFrom<TenantKeyRow> for TenantKey {
    type Error = StoreError;
    fn try_from(r: TenantKeyRow) -> StoreResult<Self> {
        Ok(TenantKey {
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            version: r.version,
            format: r.format,
            wrapped_key: r.wrapped_key,
            state: KeyState::parse(&r.state)?,
            wrapped_deks: r.wrapped_deks,
            created_at: r.created_at,
            retired_at: r.retired_at,
        })
    }
}

const KEY_COLUMNS: &str =
    "tenant_id, version, format, wrapped_key, state, wrapped_deks, created_at, retired_at, mac";

/// A KEK version's row with its MAC, as read.
#[derive(sqlx::FromRow)]
struct StoredKey {
    #[sqlx(flatten)]
    row: TenantKeyRow,
    mac: Option<Vec<u8>>,
}

/// What a KEK version's MAC covers, in this order.
fn key_parts(tenant: &str, version: i64, state: &str, retired_at: Option<i64>) -> RowParts {
    RowParts::default()
        .text(tenant)
        .int(version)
        .text(state)
        .opt_int(retired_at)
}

fn key_mac(integrity: &IntegrityKey, row: &TenantKey) -> Vec<u8> {
    let parts = key_parts(
        row.tenant_id.as_str(),
        row.version,
        row.state.as_str(),
        row.retired_at,
    );
    integrity.mac_row(Purpose::TenantKey, &parts).to_vec()
}

/// [`key_mac`] of a row as stored, whatever its state's text.
fn stored_key_mac(integrity: &IntegrityKey, row: &TenantKeyRow) -> Vec<u8> {
    let parts = key_parts(&row.tenant_id, row.version, &row.state, row.retired_at);
    integrity.mac_row(Purpose::TenantKey, &parts).to_vec()
}

impl StoredKey {
    /// The one way from a stored KEK row to a [`TenantKey`]: checked against its MAC.
    fn checked(self, integrity: &IntegrityKey) -> StoreResult<TenantKey> {
        let r = &self.row;
        integrity.check_row(
            Purpose::TenantKey,
            &format!("{}/v{}", r.tenant_id, r.version),
            &key_parts(&r.tenant_id, r.version, &r.state, r.retired_at),
            self.mac.as_deref(),
        )?;
        self.row.try_into()
    }
}

fn checked_all(integrity: &IntegrityKey, rows: Vec<StoredKey>) -> StoreResult<Vec<TenantKey>> {
    rows.into_iter().map(|r| r.checked(integrity)).collect()
}

/// The newest active KEK version of a tenant. Every version of the tenant is read and checked
/// (a handful of rows), so that no tampered state can steer the choice by hiding a row from a
/// filter.
pub async fn active_kek(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
) -> StoreResult<Option<TenantKey>> {
    Ok(keks(conn, integrity, tenant)
        .await?
        .into_iter()
        .filter(|r| r.state == KeyState::Active)
        .max_by_key(|r| r.version))
}

/// One KEK version of a tenant.
pub async fn kek(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    version: i64,
) -> StoreResult<Option<TenantKey>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 AND version = $2"
    ));
    let row: Option<StoredKey> = on_conn!(conn, c => sqlx::query_as(sql)
        .bind(tenant.as_str())
        .bind(version)
        .fetch_optional(c)
        .await)?;
    row.map(|r| r.checked(integrity)).transpose()
}

/// Every KEK version of a tenant, oldest first.
pub async fn keks(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
) -> StoreResult<Vec<TenantKey>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 ORDER BY version"
    ));
    let rows = on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(c).await)?;
    checked_all(integrity, rows)
}

/// Adds a KEK version unless that version exists already (say, made by another replica at
/// the same moment: PostgreSQL waits for its commit). Returns whether this row was added.
pub async fn insert_kek(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    row: &TenantKey,
) -> StoreResult<bool> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tenant_keys (tenant_id, version, format, wrapped_key, state, wrapped_deks, \
         created_at, retired_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (tenant_id, version) DO NOTHING")
        .bind(row.tenant_id.as_str())
        .bind(row.version)
        .bind(row.format)
        .bind(&row.wrapped_key)
        .bind(row.state.as_str())
        .bind(row.wrapped_deks)
        .bind(row.created_at)
        .bind(row.retired_at)
        .bind(key_mac(integrity, row))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))
    .map_err(StoreError::from_write)
}

/// Moves a checked KEK row to `state` (and `retired_at`), with its new MAC.
async fn set_state(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    mut row: TenantKey,
    state: KeyState,
    retired_at: Option<i64>,
) -> StoreResult<()> {
    row.state = state;
    row.retired_at = retired_at;
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET state = $3, retired_at = $4, mac = $5 \
         WHERE tenant_id = $1 AND version = $2")
        .bind(row.tenant_id.as_str())
        .bind(row.version)
        .bind(row.state.as_str())
        .bind(row.retired_at)
        .bind(key_mac(integrity, &row))
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A tenant's KEK versions below `version` in `state`, checked and locked (with `extra`, a
/// further condition on `tenant_keys`).
async fn below_in_state(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    version: i64,
    state: KeyState,
    extra: &str,
) -> StoreResult<Vec<TenantKey>> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys WHERE tenant_id = $1 AND version < $2 \
         AND state = $3{extra} ORDER BY version{lock}"
    ));
    let rows = on_tx!(tx, c => sqlx::query_as(sql)
        .bind(tenant.as_str())
        .bind(version)
        .bind(state.as_str())
        .fetch_all(&mut *c)
        .await)?;
    checked_all(integrity, rows)
}

/// Marks every active KEK version of a tenant below `version` as retiring.
pub async fn retire_older(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    version: i64,
) -> StoreResult<()> {
    for row in below_in_state(tx, integrity, tenant, version, KeyState::Active, "").await? {
        set_state(tx, integrity, row, KeyState::Retiring, None).await?;
    }
    Ok(())
}

/// Retires the retiring versions below `version` that no DEK uses any more.
pub async fn retire_unused(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    version: i64,
    now: i64,
) -> StoreResult<()> {
    const UNUSED: &str = " AND NOT EXISTS (SELECT 1 FROM sim_deks d \
        WHERE d.tenant_id = tenant_keys.tenant_id AND d.kek_version = tenant_keys.version)";
    for row in below_in_state(tx, integrity, tenant, version, KeyState::Retiring, UNUSED).await? {
        set_state(tx, integrity, row, KeyState::Retired, Some(now)).await?;
    }
    Ok(())
}

/// Adds `n` to the count of DEKs wrapped under a version.
pub async fn count_wraps(tx: &mut Tx, tenant: &TenantId, version: i64, n: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET wrapped_deks = wrapped_deks + $3 WHERE tenant_id = $1 AND version = $2")
        .bind(tenant.as_str())
        .bind(version)
        .bind(n)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// Every tenant KEK version of every tenant, locked for update (root-key rotation).
pub async fn all_keks_for_update(
    tx: &mut Tx,
    integrity: &IntegrityKey,
) -> StoreResult<Vec<TenantKey>> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {KEY_COLUMNS} FROM tenant_keys ORDER BY tenant_id, version{lock}"
    ));
    let rows = on_tx!(tx, c => sqlx::query_as(sql).fetch_all(&mut *c).await)?;
    checked_all(integrity, rows)
}

/// Gives every KEK version its MAC (adoption of a database from before row integrity).
/// Returns how many rows.
pub async fn adopt(tx: &mut Tx, integrity: &IntegrityKey) -> StoreResult<u64> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {KEY_COLUMNS} FROM tenant_keys"));
    let rows: Vec<StoredKey> = on_tx!(tx, c => sqlx::query_as(sql).fetch_all(&mut *c).await)?;
    let adopted = rows.len() as u64;
    for StoredKey { row, .. } in rows {
        on_tx!(tx, c => sqlx::query(
            "UPDATE tenant_keys SET mac = $3 WHERE tenant_id = $1 AND version = $2")
            .bind(row.tenant_id.as_str())
            .bind(row.version)
            .bind(stored_key_mac(integrity, &row))
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(adopted)
}

/// Replaces the wrapping of one KEK version.
pub async fn rewrap_kek(
    tx: &mut Tx,
    tenant: &TenantId,
    version: i64,
    format: i64,
    wrapped: &[u8],
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tenant_keys SET format = $3, wrapped_key = $4 WHERE tenant_id = $1 AND version = $2")
        .bind(tenant.as_str())
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
