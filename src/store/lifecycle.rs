//! SIM state history.

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::SimState;

pub use crate::domain::audit::HistoryRow;

/// A [`HistoryRow`] as stored: its tenant and states are parsed on the way out.
#[derive(sqlx::FromRow)]
struct StoredHistory {
    id: String,
    tenant_id: String,
    sim_id: String,
    from_state: String,
    to_state: String,
    reason: Option<String>,
    actor: String,
    auth_method: String,
    occurred_at: i64,
}

fn stored_state(column: &str, s: &str) -> StoreResult<SimState> {
    s.parse()
        .map_err(|()| StoreError::Corrupt(format!("{column} column {s:?} names no state")))
}

impl TryFrom<StoredHistory> for HistoryRow {
    type Error = StoreError;
    fn try_from(r: StoredHistory) -> StoreResult<Self> {
        Ok(HistoryRow {
            tenant_id: super::stored_tenant(&r.tenant_id)?,
            from_state: stored_state("from_state", &r.from_state)?,
            to_state: stored_state("to_state", &r.to_state)?,
            id: r.id,
            sim_id: r.sim_id,
            reason: r.reason,
            actor: r.actor,
            auth_method: r.auth_method,
            occurred_at: r.occurred_at,
        })
    }
}

pub async fn insert_history(tx: &mut Tx, h: &HistoryRow) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_state_history (id, tenant_id, sim_id, from_state, to_state, reason, actor, \
         auth_method, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&h.id)
        .bind(h.tenant_id.as_str())
        .bind(&h.sim_id)
        .bind(h.from_state.as_str())
        .bind(h.to_state.as_str())
        .bind(&h.reason)
        .bind(&h.actor)
        .bind(&h.auth_method)
        .bind(h.occurred_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A page of a SIM's history, newest first, and the total.
pub async fn history(
    conn: impl Into<Conn<'_>>,
    sim_id: &str,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<HistoryRow>, i64)> {
    let mut conn = conn.into();
    let rows: Vec<StoredHistory> = on_conn!(conn, c => sqlx::query_as(
        "SELECT id, tenant_id, sim_id, from_state, to_state, reason, actor, auth_method, occurred_at \
         FROM sim_state_history WHERE sim_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2 OFFSET $3")
        .bind(sim_id)
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let total: i64 = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM sim_state_history WHERE sim_id = $1")
        .bind(sim_id)
        .fetch_one(c)
        .await)?;
    let rows = rows
        .into_iter()
        .map(HistoryRow::try_from)
        .collect::<StoreResult<_>>()?;
    Ok((rows, total))
}
