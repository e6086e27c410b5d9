//! SIM inventory rows, authenticated: every row written carries a MAC over the SIM's binding
//! (id, tenant, ICCID, IMSI, EID), state, tombstone, PIN/PUK counters and AuC data, and every
//! row read is checked before it becomes a [`Sim`] (so is the SIM's link, read with it).
//!
//! Must never: return a SIM (or its secrets) whose row fails its check, or write a covered
//! column without the new MAC in the same statement.

use std::sync::LazyLock;

use sqlx::types::Json;

use super::{Db, SqlBuilder, StoreError, StoreResult, Tx, bind_all, on_pool, on_tx};
use crate::domain::TenantId;
use crate::domain::keys::{SealedSecret, WrappedDek};
use crate::domain::usage::DataAmount;
use crate::domain::{Eid, Imei, Imsi, Msisdn, Sim};
use crate::vault::IntegrityKey;

mod authenticity;
mod list;
mod row;
pub use authenticity::adopt;
use authenticity::sim_mac;
pub use list::{ExportCursor, count, export_page, list};
use row::{SimRow, labels_json, secret_fields_text, usage_text};

pub use crate::domain::SimKey;

/// Every column of a SIM row, in the order [`bind_sim!`] binds them, the MAC last: the one list
/// every statement here is built from (see [`SQL`]).
const COLUMNS: &str = "id, tenant_id, iccid, imsi, msisdn, imei, eid, sim_type, state, state_reason, \
    carrier_status, vendor, tags, group_id, device_id, compatibility_zones, is_attached, \
    esim_profile_state, metadata, created_at, updated_at, last_synced_at, deleted_at, \
    secret_fields, pin_max, puk_max, pin1_remaining, pin2_remaining, puk1_remaining, puk2_remaining, consumed_data, data_limit, \
    consumed_mb, amf, sqn, ind_bitlen, communication_plan, rate_plan, mno_integration_id, \
    conditions, first_imei, mac";

/// The columns an update keys on: they never change once written.
const KEY_COLUMNS: usize = 3;

/// The statements built from [`COLUMNS`], once.
struct Statements {
    columns: usize,
    /// The columns, each as `s.{column}`.
    prefixed: String,
    insert: String,
    /// An insert of many rows, up to `VALUES ` (the placeholders follow).
    insert_many: String,
    update: String,
}

static SQL: LazyLock<Statements> = LazyLock::new(|| {
    let columns: Vec<&str> = COLUMNS.split(", ").collect();
    let n = columns.len();
    let list = columns.join(", ");
    let update: Vec<String> = columns
        .iter()
        .enumerate()
        .skip(KEY_COLUMNS)
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    let keys: Vec<String> = columns[..KEY_COLUMNS]
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{c} = ${}", i + 1))
        .collect();
    Statements {
        columns: n,
        prefixed: columns
            .iter()
            .map(|c| format!("s.{c}"))
            .collect::<Vec<_>>()
            .join(", "),
        insert: format!(
            "INSERT INTO sims ({list}) VALUES {}",
            super::placeholders(1, n)
        ),
        insert_many: format!("INSERT INTO sims ({list}) VALUES "),
        update: format!(
            "UPDATE sims SET {} WHERE {}",
            update.join(", "),
            keys.join(" AND ")
        ),
    }
});

/// The SIM's link, and its group's data limit, as columns of the SIM's own row: scalar
/// subqueries on the unique `links.sim_id` and the group's key, so no join changes the row
/// count, the ordering or a `FOR UPDATE`.
fn link_columns(table: &str) -> String {
    [
        ("id", "link_id"),
        ("name", "link_name"),
        ("plan_ids", "link_plan_ids"),
        ("mac", "link_mac"),
    ]
    .iter()
    .map(|(c, alias)| {
        format!(", (SELECT l.{c} FROM links l WHERE l.sim_id = {table}.id) AS {alias}")
    })
    .chain(std::iter::once(format!(
        ", (SELECT g.data_limit FROM groups g WHERE g.id = {table}.group_id \
         AND g.tenant_id = {table}.tenant_id) AS group_data_limit"
    )))
    .collect()
}

/// Binds every column of `sim`, in the order of [`COLUMNS`] (`$1` … `$41`; the MAC is `$42`).
macro_rules! bind_sim {
    ($query:expr, $sim:expr) => {{
        let sim: &Sim = $sim;
        $query
            .bind(sim.id.to_string())
            .bind(sim.tenant_id.as_str())
            .bind(sim.iccid.as_str())
            .bind(sim.imsi.as_ref().map(Imsi::as_str))
            .bind(sim.msisdn.as_ref().map(Msisdn::as_str))
            .bind(sim.imei.as_ref().map(Imei::as_str))
            .bind(sim.eid.as_ref().map(Eid::as_str))
            .bind(sim.sim_type.as_str())
            .bind(sim.state.as_str())
            .bind(&sim.state_reason)
            .bind(&sim.carrier_status)
            .bind(&sim.vendor)
            .bind(labels_json(&sim.tags))
            .bind(&sim.group_id)
            .bind(&sim.device_id)
            .bind(labels_json(&sim.compatibility_zones))
            .bind(sim.is_attached)
            .bind(&sim.esim_profile_state)
            .bind(Json(serde_json::Value::Object(sim.metadata.clone())))
            .bind(sim.created_at)
            .bind(sim.updated_at)
            .bind(sim.last_synced_at)
            .bind(sim.deleted_at)
            .bind(secret_fields_text(&sim.secret_fields))
            .bind(sim.counters.pin_max)
            .bind(sim.counters.puk_max)
            .bind(sim.counters.pin1)
            .bind(sim.counters.pin2)
            .bind(sim.counters.puk1)
            .bind(sim.counters.puk2)
            .bind(usage_text(sim.consumed_data))
            .bind(usage_text(sim.data_limit))
            .bind(sim.consumed_data.map(DataAmount::megabytes))
            .bind(hex::encode(sim.auth.amf))
            .bind(i64::try_from(sim.auth.sqn).unwrap_or(i64::MAX))
            .bind(i64::from(sim.auth.ind_bitlen))
            .bind(&sim.carrier.communication_plan)
            .bind(&sim.carrier.rate_plan)
            .bind(&sim.carrier.mno_integration_id)
            .bind(crate::domain::condition::to_text(&sim.conditions))
            .bind(sim.first_imei.as_ref().map(Imei::as_str))
    }};
}

/// Inserts a new SIM. A duplicate ICCID (in any tenant) is [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, integrity: &IntegrityKey, sim: &Sim) -> StoreResult<()> {
    let sql: &'static str = &SQL.insert;
    on_tx!(tx, c => bind_sim!(sqlx::query(sql), sim)
        .bind(sim_mac(integrity, sim))
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

/// Inserts many new SIMs in few statements; a SIM whose ICCID exists already (in any tenant,
/// or earlier in `sims`) is skipped. Returns the ids of those inserted.
pub async fn insert_many(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    sims: &[Sim],
) -> StoreResult<Vec<String>> {
    const CHUNK: usize = 400; // 42 values a row, well under both backends' bind limits
    let mut inserted = Vec::with_capacity(sims.len());
    for chunk in sims.chunks(CHUNK) {
        let sql = format!(
            "{}{} ON CONFLICT DO NOTHING RETURNING id",
            SQL.insert_many,
            super::placeholders(chunk.len(), SQL.columns)
        );
        let ids: Vec<String> = on_tx!(tx, c => {
            let mut q = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()));
            for sim in chunk {
                q = bind_sim!(q, sim).bind(sim_mac(integrity, sim));
            }
            q.fetch_all(&mut *c).await
        })
        .map_err(StoreError::from_write)?;
        inserted.extend(ids);
    }
    Ok(inserted)
}

/// Writes back every field of an existing SIM, with its new MAC; its id, tenant and ICCID
/// never change.
pub async fn update(tx: &mut Tx, integrity: &IntegrityKey, sim: &Sim) -> StoreResult<()> {
    let sql: &'static str = &SQL.update;
    let done = on_tx!(tx, c => bind_sim!(sqlx::query(sql), sim)
        .bind(sim_mac(integrity, sim))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))
    .map_err(StoreError::from_write)?;
    if done == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

fn key_clause(b: &mut SqlBuilder, key: &SimKey) {
    match key {
        SimKey::Id(id) => b.push(" AND id = ").bind_text(id.to_string()),
        SimKey::Iccid(iccid) => b.push(" AND iccid = ").bind_text(iccid.clone()),
    };
}

fn select_one(tenant_id: &TenantId, key: &SimKey) -> SqlBuilder {
    let mut b = SqlBuilder::default();
    b.push("SELECT ")
        .push(COLUMNS)
        .push(&link_columns("sims"))
        .push(" FROM sims WHERE tenant_id = ");
    b.bind_text(tenant_id);
    key_clause(&mut b, key);
    b.push(" AND deleted_at IS NULL");
    b
}

/// A live (not deleted) SIM of `tenant_id`; another tenant's SIM is `None` like a missing one.
pub async fn get(
    db: &Db,
    integrity: &IntegrityKey,
    tenant_id: &TenantId,
    key: &SimKey,
) -> StoreResult<Option<Sim>> {
    let b = select_one(tenant_id, key);
    let sql = sqlx::AssertSqlSafe(b.sql);
    let row: Option<SimRow> = on_pool!(db, p => bind_all!(sqlx::query_as(sql), &b.binds)
        .fetch_optional(p)
        .await)?;
    row.map(|r| r.into_sim(integrity)).transpose()
}

/// Like [`get`], inside a transaction, locking the row against concurrent writers until the
/// transaction ends (PostgreSQL `FOR UPDATE`; SQLite holds the database write lock already).
pub async fn get_for_update(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    tenant_id: &TenantId,
    key: &SimKey,
) -> StoreResult<Option<Sim>> {
    let mut b = select_one(tenant_id, key);
    b.push(tx.row_lock());
    let sql = sqlx::AssertSqlSafe(b.sql);
    let row: Option<SimRow> = on_tx!(tx, c => bind_all!(sqlx::query_as(sql), &b.binds)
        .fetch_optional(&mut *c)
        .await)?;
    row.map(|r| r.into_sim(integrity)).transpose()
}

#[derive(sqlx::FromRow)]
struct SimWithSecretRow {
    #[sqlx(flatten)]
    sim: SimRow,
    dek_kek_version: Option<i64>,
    dek_format: Option<i64>,
    dek_wrapped: Option<Vec<u8>>,
    secret_field: Option<String>,
    secret_format: Option<i64>,
    secret_ciphertext: Option<Vec<u8>>,
}

/// A live SIM with its wrapped DEK and encrypted fields, in one round trip and one consistent
/// read (the secret-read path).
pub async fn get_with_secrets(
    db: &Db,
    integrity: &IntegrityKey,
    tenant_id: &TenantId,
    key: &SimKey,
) -> StoreResult<Option<(Sim, Option<(WrappedDek, Vec<SealedSecret>)>)>> {
    let mut b = SqlBuilder::default();
    b.push("SELECT ");
    b.push(&SQL.prefixed);
    b.push(
        ", d.kek_version AS dek_kek_version, d.format AS dek_format, d.wrapped_dek AS dek_wrapped, \
         x.field AS secret_field, x.format AS secret_format, x.ciphertext AS secret_ciphertext \
         FROM sims s LEFT JOIN sim_deks d ON d.sim_id = s.id LEFT JOIN sim_secrets x ON x.sim_id = s.id \
         WHERE s.tenant_id = ",
    );
    b.bind_text(tenant_id);
    match key {
        SimKey::Id(id) => b.push(" AND s.id = ").bind_text(id.to_string()),
        SimKey::Iccid(iccid) => b.push(" AND s.iccid = ").bind_text(iccid.clone()),
    };
    b.push(" AND s.deleted_at IS NULL");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let found: Vec<SimWithSecretRow> = on_pool!(db, p => bind_all!(sqlx::query_as(sql), &b.binds)
        .fetch_all(p)
        .await)?;
    let mut found = found.into_iter();
    let Some(first) = found.next() else {
        return Ok(None);
    };
    let dek = match (
        first.dek_kek_version,
        first.dek_format,
        first.dek_wrapped.clone(),
    ) {
        (Some(kek_version), Some(format), Some(wrapped_dek)) => Some(WrappedDek {
            kek_version,
            format,
            wrapped_dek,
        }),
        _ => None,
    };
    let secret =
        |r: &SimWithSecretRow| match (&r.secret_field, r.secret_format, &r.secret_ciphertext) {
            (Some(field), Some(format), Some(ciphertext)) => Some(SealedSecret {
                field: field.clone(),
                format,
                ciphertext: ciphertext.clone(),
            }),
            _ => None,
        };
    let mut secrets: Vec<_> = secret(&first).into_iter().collect();
    secrets.extend(found.filter_map(|r| secret(&r)));
    let sim = first.sim.into_sim(integrity)?;
    Ok(Some((sim, dek.map(|d| (d, secrets)))))
}

/// A SIM claimed for an upstream sync round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncClaim {
    pub id: String,
    pub tenant_id: TenantId,
    pub iccid: String,
}

/// A [`SyncClaim`] as read.
#[derive(sqlx::FromRow)]
struct SyncClaimRow {
    id: String,
    tenant_id: String,
    iccid: String,
}

/// Claims up to `limit` live SIMs due for a sync at `now`, making them due again at `next`.
/// Replicas claim disjoint sets (PostgreSQL `SKIP LOCKED`; SQLite's single writer), so each
/// SIM is synced by one of them per round.
pub async fn claim_due(db: &Db, now: i64, next: i64, limit: i64) -> StoreResult<Vec<SyncClaim>> {
    let mut tx = db.begin().await?;
    let sql = sqlx::AssertSqlSafe(tx.claim_batch(
        "SELECT id FROM sims WHERE sync_due_at <= $1 AND deleted_at IS NULL \
         ORDER BY sync_due_at, id LIMIT $3",
        "UPDATE sims SET sync_due_at = $2 FROM picked WHERE id = picked.pick \
         RETURNING id, tenant_id, iccid",
    ));
    let claimed: Vec<SyncClaimRow> = on_tx!(&mut tx, c => sqlx::query_as(sql).bind(now).bind(next).bind(limit).fetch_all(&mut *c).await)?;
    tx.commit().await?;
    claimed
        .into_iter()
        .map(|r| {
            Ok(SyncClaim {
                tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
                id: r.id,
                iccid: r.iccid,
            })
        })
        .collect()
}

/// Makes a SIM due for a sync again at `at` (after a failed attempt, with backoff).
pub async fn reschedule_sync(db: &Db, id: &str, at: i64) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query("UPDATE sims SET sync_due_at = $2 WHERE id = $1")
        .bind(id)
        .bind(at)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_built_from_the_one_column_list() {
        assert_eq!(
            SQL.update,
            "UPDATE sims SET imsi = $4, msisdn = $5, imei = $6, eid = $7, sim_type = $8, \
             state = $9, state_reason = $10, carrier_status = $11, vendor = $12, tags = $13, \
             group_id = $14, device_id = $15, compatibility_zones = $16, is_attached = $17, \
             esim_profile_state = $18, metadata = $19, created_at = $20, updated_at = $21, \
             last_synced_at = $22, deleted_at = $23, secret_fields = $24, pin_max = $25, \
             puk_max = $26, pin1_remaining = $27, pin2_remaining = $28, puk1_remaining = $29, \
             puk2_remaining = $30, consumed_data = $31, data_limit = $32, consumed_mb = $33, \
             amf = $34, sqn = $35, ind_bitlen = $36, communication_plan = $37, rate_plan = $38, \
             mno_integration_id = $39, conditions = $40, first_imei = $41, mac = $42 \
             WHERE id = $1 AND tenant_id = $2 AND iccid = $3"
        );
        assert_eq!(SQL.columns, 42);
        assert!(
            SQL.insert
                .starts_with("INSERT INTO sims (id, tenant_id, iccid, imsi, ")
        );
        assert!(SQL.insert.ends_with("first_imei, mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39, $40, $41, $42)"));
        assert!(SQL.prefixed.starts_with("s.id, s.tenant_id, "));
        assert!(SQL.prefixed.ends_with(", s.first_imei, s.mac"));
    }
}
