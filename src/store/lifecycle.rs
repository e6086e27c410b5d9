//! SIM state history and the domain-event outbox.

use super::{Conn, StoreResult, Tx, on_conn, on_tx};

pub use crate::domain::audit::HistoryRow;

pub async fn insert_history(tx: &mut Tx, h: &HistoryRow) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO sim_state_history (id, tenant_id, sim_id, from_state, to_state, reason, actor, \
         auth_method, occurred_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&h.id)
        .bind(&h.tenant_id)
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

/// A domain event for the outbox.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub sim_id: Option<String>,
    pub payload: String,
    pub occurred_at: i64,
}

pub async fn insert_event(tx: &mut Tx, e: &EventRow) -> StoreResult<()> {
    insert_events(tx, std::slice::from_ref(e)).await
}

/// Writes events to the outbox, in few statements.
pub async fn insert_events(tx: &mut Tx, events: &[EventRow]) -> StoreResult<()> {
    for chunk in events.chunks(1000) {
        let sql = format!(
            "INSERT INTO domain_events (id, tenant_id, event_type, sim_id, payload, occurred_at) VALUES {}",
            super::placeholders(chunk.len(), 6)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for e in chunk {
                q = q
                    .bind(&e.id)
                    .bind(&e.tenant_id)
                    .bind(&e.event_type)
                    .bind(&e.sim_id)
                    .bind(&e.payload)
                    .bind(e.occurred_at);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A tenant's events, oldest first.
pub async fn events(conn: impl Into<Conn<'_>>, tenant: &str) -> StoreResult<Vec<EventRow>> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_as(
        "SELECT id, tenant_id, event_type, sim_id, payload, occurred_at FROM domain_events \
         WHERE tenant_id = $1 ORDER BY occurred_at, id")
        .bind(tenant)
        .fetch_all(c)
        .await)?)
}
