//! Registered client-certificate identities.
//!
//! Rows come back exactly as stored, MAC included: this module does not judge them (the
//! caller verifies the MAC before obeying a row), and it never filters on a column an
//! attacker could change to hide a row from that check (revocation is read, not filtered).

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::TenantId;
use crate::domain::identity::{ClientIdentity, UnverifiedIdentity};

/// A stored identity with its lifecycle and MAC.
#[derive(sqlx::FromRow)]
struct IdentityRow {
    identity: String,
    tenant_id: String,
    name: String,
    roles: String,
    created_at: i64,
    revoked_at: Option<i64>,
    mac: Option<Vec<u8>>,
}

impl TryFrom<IdentityRow> for UnverifiedIdentity {
    type Error = crate::store::StoreError;
    fn try_from(r: IdentityRow) -> StoreResult<Self> {
        Ok(UnverifiedIdentity {
            identity: r.identity,
            tenant_id: r.tenant_id,
            name: r.name,
            roles: r.roles,
            created_at: r.created_at,
            revoked_at: r.revoked_at,
            mac: r.mac,
        })
    }
}

const COLUMNS: &str = "identity, tenant_id, name, roles, created_at, revoked_at, mac";

/// Registers `identity` (without a MAC: give it one with [`set_mac`] in the same
/// transaction); an identity registered before, revoked or not, is [`StoreError::Conflict`].
pub async fn register(tx: &mut Tx, row: &ClientIdentity, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO client_identities (identity, tenant_id, name, roles, created_at) \
         VALUES ($1, $2, $3, $4, $5)")
        .bind(&row.identity)
        .bind(row.tenant_id.as_str())
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
/// Unauthenticated: for the storage contract; the server reads [`find`] and checks the MAC.
pub async fn find_active(
    conn: impl Into<Conn<'_>>,
    identity: &str,
) -> StoreResult<Option<ClientIdentity>> {
    find(conn, identity)
        .await?
        .filter(|row| row.revoked_at.is_none())
        .map(|row| {
            Ok(ClientIdentity {
                identity: row.identity,
                tenant_id: crate::store::stored_tenant(&row.tenant_id)?,
                name: row.name,
                roles: row.roles,
            })
        })
        .transpose()
}

/// The stored row of `identity`, revoked or not; inside a transaction, locked until it ends
/// (PostgreSQL).
pub async fn find(
    conn: impl Into<Conn<'_>>,
    identity: &str,
) -> StoreResult<Option<UnverifiedIdentity>> {
    let mut conn = conn.into();
    let lock = conn.row_lock();
    let row: Option<IdentityRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM client_identities WHERE identity = $1{lock}")))
        .bind(identity)
        .fetch_optional(c)
        .await)?;
    row.map(UnverifiedIdentity::try_from).transpose()
}

/// Every stored identity (of `tenant`, if given), by tenant and name.
pub async fn list(
    conn: impl Into<Conn<'_>>,
    tenant: Option<&TenantId>,
) -> StoreResult<Vec<UnverifiedIdentity>> {
    let mut conn = conn.into();
    let rows: Vec<IdentityRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM client_identities \
         WHERE ($1 IS NULL OR tenant_id = $1) ORDER BY tenant_id, name, identity")))
        .bind(tenant.map(TenantId::as_str))
        .fetch_all(c)
        .await)?;
    rows.into_iter().map(UnverifiedIdentity::try_from).collect()
}

/// Stores the MAC of `identity`'s row.
pub async fn set_mac(tx: &mut Tx, identity: &str, mac: &[u8]) -> StoreResult<()> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE client_identities SET mac = $2 WHERE identity = $1")
        .bind(identity)
        .bind(mac)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    if n == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Marks `identity` revoked at `now` with its new MAC, if it is not revoked yet; returns
/// whether it was.
pub async fn revoke(tx: &mut Tx, identity: &str, now: i64, mac: &[u8]) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE client_identities SET revoked_at = $2, mac = $3 \
         WHERE identity = $1 AND revoked_at IS NULL")
        .bind(identity)
        .bind(now)
        .bind(mac)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
