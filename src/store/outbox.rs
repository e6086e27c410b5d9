//! The domain-event outbox: events written in the transaction of the change they record,
//! read back oldest first, and marked dispatched once fanned out to webhooks.
//!
//! Events go in only as [`DomainEvent`]s (each gets its id here); they come out as the
//! [`EventRow`]s that were written.

use super::{Conn, StoreResult, Tx, on_conn, on_tx};
use crate::domain::TenantId;
use crate::domain::event::DomainEvent;
pub use crate::domain::event::EventRow;

/// Columns of an event, in the order [`insert`] binds them.
const COLUMNS: &str = "id, tenant_id, event_type, sim_id, payload, occurred_at";

/// Writes events to the outbox inside `tx`, in few statements.
pub async fn insert(tx: &mut Tx, events: &[DomainEvent]) -> StoreResult<()> {
    for chunk in events.chunks(1000) {
        let sql = format!(
            "INSERT INTO domain_events ({COLUMNS}) VALUES {}",
            super::placeholders(chunk.len(), 6)
        );
        let rows: Vec<EventRow> = chunk.iter().map(row).collect();
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for e in &rows {
                q = q
                    .bind(&e.id)
                    .bind(e.tenant_id.as_str())
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

/// An event as it is written: a new id, its kind's name and its payload's text.
fn row(e: &DomainEvent) -> EventRow {
    EventRow {
        id: uuid::Uuid::new_v4().to_string(),
        tenant_id: e.tenant_id.to_string(),
        event_type: e.kind().as_str().to_owned(),
        sim_id: e.sim_id().map(|id| id.to_string()),
        payload: e.payload().to_string(),
        occurred_at: e.occurred_at,
    }
}

/// A tenant's events, oldest first.
pub async fn events(conn: impl Into<Conn<'_>>, tenant: &TenantId) -> StoreResult<Vec<EventRow>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM domain_events WHERE tenant_id = $1 ORDER BY occurred_at, id"
    ));
    Ok(on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(c).await)?)
}

/// Whether any event waits to be fanned out, read without taking a write lock (SQLite has
/// one writer: idle workers must not queue for it every poll).
pub async fn any_undispatched(conn: impl Into<Conn<'_>>) -> StoreResult<bool> {
    let mut conn = conn.into();
    let found: Option<String> = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT id FROM domain_events WHERE dispatched = 0 LIMIT 1")
        .fetch_optional(c)
        .await)?;
    Ok(found.is_some())
}

/// Up to `limit` events not yet fanned out, oldest first, locked until `tx` ends
/// (PostgreSQL skips events another replica is fanning out).
pub async fn undispatched(tx: &mut Tx, limit: i64) -> StoreResult<Vec<EventRow>> {
    let lock = tx.skip_locked();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM domain_events WHERE dispatched = 0 ORDER BY occurred_at LIMIT $1{lock}"
    ));
    Ok(on_tx!(tx, c => sqlx::query_as(sql).bind(limit).fetch_all(&mut *c).await)?)
}

/// Marks these events fanned out.
pub async fn mark_dispatched(tx: &mut Tx, ids: &[String]) -> StoreResult<()> {
    for chunk in ids.chunks(1000) {
        let mut b = super::SqlBuilder::default();
        b.push("UPDATE domain_events SET dispatched = 1 WHERE id IN ")
            .bind_texts(chunk.iter().cloned());
        let sql = sqlx::AssertSqlSafe(b.sql);
        on_tx!(tx, c => super::bind_all!(sqlx::query(sql), &b.binds).execute(&mut *c).await.map(|_| ()))?;
    }
    Ok(())
}
