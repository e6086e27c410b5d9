//! SIM state history.

use super::{Conn, StoreResult, Tx, on_conn, on_tx};

pub use crate::domain::audit::HistoryRow;

pub async fn insert_history(tx: &mut Tx, h: &HistoryRow) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_state_history (id, tenant_id, sim_id, from_state, to_state, reason, actor, \
         auth_method, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&h.id)
        .bind(h.tenant_id.as_str())
        .bind(&h.sim_id)
        .bind(&h.from_state)
        .bind(&h.to_state)
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
    let rows = on_conn!(conn, c => sqlx::query_as(
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
    Ok((rows, total))
}
