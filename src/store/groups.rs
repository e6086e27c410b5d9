//! SIM groups and devices. A SIM names them by id through real foreign keys (ON DELETE
//! RESTRICT); the counts and SIM lists read here are of live SIMs only (tombstones excluded).

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::condition::Surroundings;
use crate::domain::usage::DataAmount;
use crate::domain::{Device, DeviceId, Group, GroupId, Imei, SimId, TenantId};

const GROUP_COLUMNS: &str = "g.id, g.tenant_id, g.name, g.description, g.data_limit, g.imei_lock, \
    g.created_at, g.updated_at, \
    (SELECT count(*) FROM sims s WHERE s.tenant_id = g.tenant_id AND s.group_id = g.id \
     AND s.deleted_at IS NULL) AS sim_count";

const DEVICE_COLUMNS: &str =
    "d.id, d.tenant_id, d.name, d.imei, d.metadata, d.created_at, d.updated_at";

#[derive(sqlx::FromRow)]
struct GroupRow {
    id: String,
    tenant_id: String,
    name: String,
    description: Option<String>,
    data_limit: Option<String>,
    imei_lock: bool,
    created_at: i64,
    updated_at: i64,
    sim_count: i64,
}

impl TryFrom<GroupRow> for Group {
    type Error = StoreError;
    fn try_from(r: GroupRow) -> StoreResult<Group> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("groups.{what}"));
        Ok(Group {
            id: r.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: TenantId::parse(&r.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            name: r.name,
            description: r.description,
            data_limit: stored_limit(r.data_limit)?,
            imei_lock: r.imei_lock,
            sim_count: u64::try_from(r.sim_count).map_err(|_| corrupt("sim_count"))?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

/// A group's stored data limit, checked as a request's would be.
fn stored_limit(text: Option<String>) -> StoreResult<Option<DataAmount>> {
    text.map(|t| {
        DataAmount::parse_text(&t).ok_or_else(|| StoreError::Corrupt("groups.data_limit".into()))
    })
    .transpose()
}

fn data_limit_text(limit: Option<&DataAmount>) -> StoreResult<Option<String>> {
    limit
        .map(|l| serde_json::to_string(l).map_err(|e| StoreError::Corrupt(e.to_string())))
        .transpose()
}

/// Creates a group; a group of the same name in the tenant is [`StoreError::Conflict`].
pub async fn insert_group(tx: &mut Tx, group: &Group) -> StoreResult<()> {
    let limit = data_limit_text(group.data_limit.as_ref())?;
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO groups (id, tenant_id, name, description, data_limit, imei_lock, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
        .bind(group.id.to_string())
        .bind(group.tenant_id.as_str())
        .bind(&group.name)
        .bind(&group.description)
        .bind(&limit)
        .bind(group.imei_lock)
        .bind(group.created_at)
        .bind(group.updated_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// Writes a group's fields back; a name taken by another group is [`StoreError::Conflict`].
pub async fn update_group(tx: &mut Tx, group: &Group) -> StoreResult<()> {
    let limit = data_limit_text(group.data_limit.as_ref())?;
    on_tx!(tx, c => sqlx::query(
        "UPDATE groups SET name = $1, description = $2, data_limit = $3, imei_lock = $4, updated_at = $5 \
         WHERE tenant_id = $6 AND id = $7")
        .bind(&group.name)
        .bind(&group.description)
        .bind(&limit)
        .bind(group.imei_lock)
        .bind(group.updated_at)
        .bind(group.tenant_id.as_str())
        .bind(group.id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

pub async fn get_group(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    id: &GroupId,
) -> StoreResult<Option<Group>> {
    let mut conn = conn.into();
    let sql = format!("SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 AND g.id = $2");
    let row: Option<GroupRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(c)
        .await)?;
    row.map(Group::try_from).transpose()
}

/// What a SIM belongs to, told by the type of the id that names it: a group or a device.
pub trait Member: std::fmt::Display + std::str::FromStr<Err = uuid::Error> {
    /// Its table (one of ours, never input).
    const TABLE: &'static str;
    /// The column of `sims` that names it.
    const SIM_COLUMN: &'static str;
}

impl Member for GroupId {
    const TABLE: &'static str = "groups";
    const SIM_COLUMN: &'static str = "group_id";
}

impl Member for DeviceId {
    const TABLE: &'static str = "devices";
    const SIM_COLUMN: &'static str = "device_id";
}

/// The live SIMs of the tenant's group or device `id`, oldest first.
pub async fn members<I: Member>(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    id: &I,
) -> StoreResult<Vec<SimId>> {
    let mut conn = conn.into();
    member_sims(&mut conn, I::SIM_COLUMN, tenant, &id.to_string()).await
}

/// What the conditions of a SIM in group `group` bound to device `device` (canonical ids, as
/// the SIM names them) depend on, as stored.
pub async fn surroundings(
    tx: &mut Tx,
    tenant: &TenantId,
    group: Option<&str>,
    device: Option<&str>,
) -> StoreResult<Surroundings> {
    let mut out = Surroundings::default();
    if let Some(group) = group {
        let row: Option<(Option<String>, bool)> = on_tx!(tx, c => sqlx::query_as(
            "SELECT data_limit, imei_lock FROM groups WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(group)
            .fetch_optional(&mut *c)
            .await)?;
        // The SIM's foreign key names a group of its tenant: none is a row out of place.
        let (limit, lock) = row.ok_or_else(|| StoreError::Corrupt("sims.group_id".into()))?;
        out.group_data_limit = stored_limit(limit)?;
        out.imei_lock = lock;
    }
    if let Some(device) = device {
        let imei: Option<Option<String>> = on_tx!(tx, c => sqlx::query_scalar(
            "SELECT imei FROM devices WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(device)
            .fetch_optional(&mut *c)
            .await)?;
        let imei = imei.ok_or_else(|| StoreError::Corrupt("sims.device_id".into()))?;
        out.device = Some(
            imei.map(|s| Imei::parse(&s))
                .transpose()
                .map_err(|_| StoreError::Corrupt("devices.imei".into()))?,
        );
    }
    Ok(out)
}

/// Locks the tenant's group or device `id` for its deletion until `tx` ends (PostgreSQL
/// `FOR UPDATE`, which waits for SIMs joining it, holding it `FOR KEY SHARE`, to commit).
/// Whether it exists.
pub async fn lock<I: Member>(tx: &mut Tx, tenant: &TenantId, id: &I) -> StoreResult<bool> {
    let lock = tx.row_lock();
    select_row::<I>(tx, tenant, "id", &id.to_string(), lock)
        .await
        .map(|found| found.is_some())
}

/// Locks the tenant's group or device `id` for a change of its fields until `tx` ends
/// (PostgreSQL `FOR NO KEY UPDATE`: SIMs may join it meanwhile). Whether it exists.
pub async fn hold<I: Member>(tx: &mut Tx, tenant: &TenantId, id: &I) -> StoreResult<bool> {
    let lock = tx.no_key_update();
    select_row::<I>(tx, tenant, "id", &id.to_string(), lock)
        .await
        .map(|found| found.is_some())
}

/// Whether the tenant's group or device `id` exists, holding it (PostgreSQL `FOR KEY SHARE`)
/// until `tx` ends, so that a SIM joining it cannot race its deletion: the delete waits for
/// the join and then sees the member.
pub async fn share<I: Member>(tx: &mut Tx, tenant: &TenantId, id: &I) -> StoreResult<bool> {
    let lock = tx.key_share();
    select_row::<I>(tx, tenant, "id", &id.to_string(), lock)
        .await
        .map(|found| found.is_some())
}

/// The id of the tenant's group or device named `name`, holding it as [`share`] does.
pub async fn share_named<I: Member>(
    tx: &mut Tx,
    tenant: &TenantId,
    name: &str,
) -> StoreResult<Option<I>> {
    let lock = tx.key_share();
    select_row::<I>(tx, tenant, "name", name, lock).await
}

/// The id of the tenant's row of `I::TABLE` whose `column` (a literal of ours) is `value`,
/// selected with `lock`; a stored id that does not parse is corrupt.
async fn select_row<I: Member>(
    tx: &mut Tx,
    tenant: &TenantId,
    column: &'static str,
    value: &str,
    lock: &'static str,
) -> StoreResult<Option<I>> {
    let table = I::TABLE;
    let sql = format!("SELECT id FROM {table} WHERE tenant_id = $1 AND {column} = $2{lock}");
    let found: Option<String> = on_tx!(tx, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(value)
        .fetch_optional(&mut *c)
        .await)?;
    found
        .map(|id| super::stored_id(&format!("{table}.id"), &id))
        .transpose()
}

/// One page of the tenant's groups, oldest first, and the total.
pub async fn list_groups(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    limit: u32,
    offset: u64,
) -> StoreResult<(Vec<Group>, u64)> {
    let mut conn = conn.into();
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let total: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT count(*) FROM groups WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(c)
        .await)?;
    let sql = format!(
        "SELECT {GROUP_COLUMNS} FROM groups g WHERE g.tenant_id = $1 \
         ORDER BY g.created_at, g.id LIMIT $2 OFFSET $3"
    );
    let rows: Vec<GroupRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let groups = rows
        .into_iter()
        .map(Group::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((groups, u64::try_from(total).unwrap_or(0)))
}

/// Deletes the tenant's group `id` when no live SIM is in it: whether it was deleted. Tombstones
/// that still name it let go of it first (a deleted SIM keeps no group).
pub async fn delete_group(tx: &mut Tx, tenant: &TenantId, id: &GroupId) -> StoreResult<bool> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sims SET group_id = NULL WHERE tenant_id = $1 AND group_id = $2 AND deleted_at IS NOT NULL")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    let done = on_tx!(tx, c => sqlx::query(
        "DELETE FROM groups WHERE tenant_id = $1 AND id = $2 \
         AND NOT EXISTS (SELECT 1 FROM sims s WHERE s.tenant_id = groups.tenant_id AND s.group_id = groups.id)")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}

#[derive(sqlx::FromRow)]
struct DeviceRow {
    id: String,
    tenant_id: String,
    name: String,
    imei: Option<String>,
    metadata: String,
    created_at: i64,
    updated_at: i64,
}

impl DeviceRow {
    fn into_device(self, sim_ids: Vec<SimId>) -> StoreResult<Device> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("devices.{what}"));
        Ok(Device {
            id: self.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: TenantId::parse(&self.tenant_id).map_err(|_| corrupt("tenant_id"))?,
            name: self.name,
            imei: self
                .imei
                .map(|s| Imei::parse(&s).map_err(|_| corrupt("imei")))
                .transpose()?,
            metadata: serde_json::from_str(&self.metadata).map_err(|_| corrupt("metadata"))?,
            sim_ids,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

/// Creates a device; a device of the same name in the tenant is [`StoreError::Conflict`].
pub async fn insert_device(tx: &mut Tx, device: &Device) -> StoreResult<()> {
    let metadata = serde_json::Value::Object(device.metadata.clone()).to_string();
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO devices (id, tenant_id, name, imei, metadata, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)")
        .bind(device.id.to_string())
        .bind(device.tenant_id.as_str())
        .bind(&device.name)
        .bind(device.imei.as_ref().map(Imei::as_str))
        .bind(&metadata)
        .bind(device.created_at)
        .bind(device.updated_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// Writes a device's fields back; a name taken by another device is [`StoreError::Conflict`].
pub async fn update_device(tx: &mut Tx, device: &Device) -> StoreResult<()> {
    let metadata = serde_json::Value::Object(device.metadata.clone()).to_string();
    on_tx!(tx, c => sqlx::query(
        "UPDATE devices SET name = $1, imei = $2, metadata = $3, updated_at = $4 \
         WHERE tenant_id = $5 AND id = $6")
        .bind(&device.name)
        .bind(device.imei.as_ref().map(Imei::as_str))
        .bind(&metadata)
        .bind(device.updated_at)
        .bind(device.tenant_id.as_str())
        .bind(device.id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

async fn device_sims(conn: &mut Conn<'_>, tenant: &TenantId, id: &str) -> StoreResult<Vec<SimId>> {
    member_sims(conn, DeviceId::SIM_COLUMN, tenant, id).await
}

async fn member_sims(
    conn: &mut Conn<'_>,
    column: &'static str,
    tenant: &TenantId,
    id: &str,
) -> StoreResult<Vec<SimId>> {
    let sql = format!(
        "SELECT id FROM sims WHERE tenant_id = $1 AND {column} = $2 AND deleted_at IS NULL \
         ORDER BY created_at, id"
    );
    let ids: Vec<String> = on_conn!(*conn, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(id)
        .fetch_all(c)
        .await)?;
    ids.iter()
        .map(|s| SimId::parse(s).map_err(|_| StoreError::Corrupt("sims.id".into())))
        .collect()
}

pub async fn get_device(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    id: &DeviceId,
) -> StoreResult<Option<Device>> {
    let mut conn = conn.into();
    let sql =
        format!("SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.tenant_id = $1 AND d.id = $2");
    let row: Option<DeviceRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(c)
        .await)?;
    let Some(row) = row else { return Ok(None) };
    let sims = device_sims(&mut conn, tenant, &row.id).await?;
    row.into_device(sims).map(Some)
}

/// One page of the tenant's devices, oldest first, and the total.
pub async fn list_devices(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    limit: u32,
    offset: u64,
) -> StoreResult<(Vec<Device>, u64)> {
    let mut conn = conn.into();
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let total: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT count(*) FROM devices WHERE tenant_id = $1")
        .bind(tenant.as_str())
        .fetch_one(c)
        .await)?;
    let sql = format!(
        "SELECT {DEVICE_COLUMNS} FROM devices d WHERE d.tenant_id = $1 \
         ORDER BY d.created_at, d.id LIMIT $2 OFFSET $3"
    );
    let rows: Vec<DeviceRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
        .bind(tenant.as_str())
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let mut devices = Vec::with_capacity(rows.len());
    for row in rows {
        let sims = device_sims(&mut conn, tenant, &row.id).await?;
        devices.push(row.into_device(sims)?);
    }
    Ok((devices, u64::try_from(total).unwrap_or(0)))
}

/// [`delete_group`] for a device.
pub async fn delete_device(tx: &mut Tx, tenant: &TenantId, id: &DeviceId) -> StoreResult<bool> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE sims SET device_id = NULL WHERE tenant_id = $1 AND device_id = $2 AND deleted_at IS NOT NULL")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    let done = on_tx!(tx, c => sqlx::query(
        "DELETE FROM devices WHERE tenant_id = $1 AND id = $2 \
         AND NOT EXISTS (SELECT 1 FROM sims s WHERE s.tenant_id = devices.tenant_id AND s.device_id = devices.id)")
        .bind(tenant.as_str())
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(done == 1)
}
