//! Plans.

use sqlx::types::Json;

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::{Plan, TenantId};

#[derive(sqlx::FromRow)]
struct PlanRow {
    id: String,
    tenant_id: String,
    name: String,
    compatibility_zones: Json<serde_json::Value>,
    created_at: i64,
}

impl TryFrom<PlanRow> for Plan {
    type Error = StoreError;
    fn try_from(r: PlanRow) -> StoreResult<Plan> {
        Ok(Plan {
            id: r
                .id
                .parse()
                .map_err(|_| StoreError::Corrupt("plans.id".into()))?,
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            name: r.name,
            compatibility_zones: super::json_labels(&r.compatibility_zones.0)?,
            created_at: r.created_at,
        })
    }
}

/// Creates a plan; a plan of the same name in the tenant is [`StoreError::Conflict`].
pub async fn insert(tx: &mut Tx, plan: &Plan) -> StoreResult<()> {
    let zones = Json(serde_json::Value::Array(
        plan.compatibility_zones
            .iter()
            .cloned()
            .map(serde_json::Value::String)
            .collect(),
    ));
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO plans (id, tenant_id, name, compatibility_zones, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(plan.id.to_string())
        .bind(plan.tenant_id.as_str())
        .bind(&plan.name)
        .bind(zones)
        .bind(plan.created_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)?;
    Ok(())
}

pub async fn get(
    conn: impl Into<Conn<'_>>,
    tenant_id: &TenantId,
    id: uuid::Uuid,
) -> StoreResult<Option<Plan>> {
    let mut conn = conn.into();
    let row: Option<PlanRow> = on_conn!(conn, c => sqlx::query_as(
        "SELECT id, tenant_id, name, compatibility_zones, created_at FROM plans WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id.as_str())
        .bind(id.to_string())
        .fetch_optional(c)
        .await)?;
    row.map(Plan::try_from).transpose()
}

/// One page of the tenant's plans, oldest first, and the total.
pub async fn list(
    conn: impl Into<Conn<'_>>,
    tenant_id: &TenantId,
    limit: u32,
    offset: u64,
) -> StoreResult<(Vec<Plan>, u64)> {
    let mut conn = conn.into();
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let total: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT count(*) FROM plans WHERE tenant_id = $1")
        .bind(tenant_id.as_str())
        .fetch_one(c)
        .await)?;
    let rows: Vec<PlanRow> = on_conn!(conn, c => sqlx::query_as(
        "SELECT id, tenant_id, name, compatibility_zones, created_at FROM plans \
         WHERE tenant_id = $1 ORDER BY created_at, id LIMIT $2 OFFSET $3")
        .bind(tenant_id.as_str())
        .bind(i64::from(limit))
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let plans = rows
        .into_iter()
        .map(Plan::try_from)
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((plans, u64::try_from(total).unwrap_or(0)))
}
