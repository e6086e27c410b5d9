//! Links made by bulk provisioning, authenticated: each row carries a MAC over its id, tenant,
//! SIM and plans, checked on every read (a link pointed at another SIM is refused).

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::{Link, SimId, TenantId};
use crate::vault::{IntegrityKey, Purpose, RowParts};

#[derive(sqlx::FromRow)]
struct LinkRow {
    id: String,
    tenant_id: String,
    sim_id: String,
    name: String,
    plan_ids: String,
    task_id: Option<String>,
    created_at: i64,
    mac: Option<Vec<u8>>,
}

const COLUMNS: &str = "id, tenant_id, sim_id, name, plan_ids, task_id, created_at, mac";

/// What a link's MAC covers, in this order (also checked where a SIM is read with its link).
pub(super) fn link_parts(
    id: &uuid::Uuid,
    tenant: &str,
    sim_id: &SimId,
    name: &str,
    plan_ids: &[uuid::Uuid],
) -> RowParts {
    let mut parts = RowParts::default()
        .text(&id.to_string())
        .text(tenant)
        .text(&sim_id.to_string())
        .text(name)
        .int(i64::try_from(plan_ids.len()).unwrap_or(i64::MAX));
    for plan in plan_ids {
        parts = parts.text(&plan.to_string());
    }
    parts
}

fn parts_of(link: &Link) -> RowParts {
    link_parts(
        &link.id,
        link.tenant_id.as_str(),
        &link.sim_id,
        &link.name,
        &link.plan_ids,
    )
}

fn link_mac(key: &IntegrityKey, link: &Link) -> Vec<u8> {
    key.mac_row(Purpose::Link, &parts_of(link)).to_vec()
}

impl LinkRow {
    /// The one way from a stored row to a [`Link`]: parsed, then checked against its MAC.
    fn into_link(mut self, key: &IntegrityKey) -> StoreResult<Link> {
        let mac = self.mac.take();
        let link = self.parse_unauthenticated()?;
        key.check_row(
            Purpose::Link,
            &link.id.to_string(),
            &parts_of(&link),
            mac.as_deref(),
        )?;
        Ok(link)
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("links.{what}"))
}

impl LinkRow {
    /// Only [`LinkRow::into_link`] and adoption (which gives rows their first MAC) may call this.
    fn parse_unauthenticated(self) -> StoreResult<Link> {
        let r = self;
        Ok(Link {
            id: r.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            sim_id: r.sim_id.parse().map_err(|_| corrupt("sim_id"))?,
            name: r.name,
            plan_ids: serde_json::from_str(&r.plan_ids).map_err(|_| corrupt("plan_ids"))?,
            task_id: r
                .task_id
                .map(|t| t.parse())
                .transpose()
                .map_err(|_| corrupt("task_id"))?,
            created_at: r.created_at,
        })
    }
}

/// Why a link could not be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The SIM has a link already.
    SimLinked,
    /// The tenant has a link of this name already.
    NameTaken,
}

/// Makes a link, unless the SIM is linked or the name taken (checked by the unique
/// constraints, so concurrent workers cannot both succeed).
pub async fn insert(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    link: &Link,
) -> StoreResult<Result<(), Refused>> {
    let plan_ids = serde_json::to_string(&link.plan_ids).map_err(|_| corrupt("plan_ids"))?;
    let inserted = on_tx!(tx, c => sqlx::query(
        "INSERT INTO links (id, tenant_id, sim_id, name, plan_ids, task_id, created_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING")
        .bind(link.id.to_string())
        .bind(link.tenant_id.as_str())
        .bind(link.sim_id.to_string())
        .bind(&link.name)
        .bind(plan_ids)
        .bind(link.task_id.map(|t| t.to_string()))
        .bind(link.created_at)
        .bind(link_mac(integrity, link))
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    if inserted {
        return Ok(Ok(()));
    }
    let linked: i64 = on_tx!(tx, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM links WHERE sim_id = $1")
        .bind(link.sim_id.to_string())
        .fetch_one(&mut *c)
        .await)?;
    Ok(Err(if linked > 0 {
        Refused::SimLinked
    } else {
        Refused::NameTaken
    }))
}

pub async fn get(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    id: uuid::Uuid,
) -> StoreResult<Option<Link>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM links WHERE tenant_id = $1 AND id = $2"
    ));
    let row: Option<LinkRow> = on_conn!(conn, c => sqlx::query_as(sql)
        .bind(tenant.as_str())
        .bind(id.to_string())
        .fetch_optional(c)
        .await)?;
    row.map(|r| r.into_link(integrity)).transpose()
}

/// The links of these SIMs (of one tenant).
pub async fn for_sims(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    sim_ids: &[String],
) -> StoreResult<Vec<Link>> {
    let mut conn = conn.into();
    if sim_ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut b = super::SqlBuilder::default();
    b.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM links WHERE tenant_id = ")
        .bind_text(tenant.as_str())
        .push(" AND sim_id IN (");
    for (i, id) in sim_ids.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind_text(id.clone());
    }
    b.push(")");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let rows: Vec<LinkRow> =
        on_conn!(conn, c => super::bind_all!(sqlx::query_as(sql), &b.binds).fetch_all(c).await)?;
    rows.into_iter().map(|r| r.into_link(integrity)).collect()
}

/// A page of the tenant's links (oldest first), optionally of one SIM, and how many match.
pub async fn list(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    sim_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<Link>, i64)> {
    let mut conn = conn.into();
    let filter = if sim_id.is_some() {
        " AND sim_id = $2"
    } else {
        " AND $2 IS NULL"
    };
    let page = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM links WHERE tenant_id = $1{filter} ORDER BY created_at, name \
         LIMIT $3 OFFSET $4"
    ));
    let count = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM links WHERE tenant_id = $1{filter}"
    ));
    let rows: Vec<LinkRow> = on_conn!(conn, c => sqlx::query_as(page)
        .bind(tenant.as_str())
        .bind(sim_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let total: i64 = on_conn!(conn, c => sqlx::query_scalar(count)
        .bind(tenant.as_str())
        .bind(sim_id)
        .fetch_one(c)
        .await)?;
    Ok((
        rows.into_iter()
            .map(|r| r.into_link(integrity))
            .collect::<StoreResult<_>>()?,
        total,
    ))
}

/// Gives every link its MAC (adoption of a database from before row integrity). Returns how
/// many rows.
pub async fn adopt(tx: &mut Tx, key: &IntegrityKey) -> StoreResult<u64> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM links"));
    let rows: Vec<LinkRow> = on_tx!(tx, c => sqlx::query_as(sql).fetch_all(&mut *c).await)?;
    let mut adopted = 0u64;
    for row in rows {
        let link = row.parse_unauthenticated()?;
        on_tx!(tx, c => sqlx::query("UPDATE links SET mac = $1 WHERE id = $2")
            .bind(link_mac(key, &link))
            .bind(link.id.to_string())
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
        adopted += 1;
    }
    Ok(adopted)
}
