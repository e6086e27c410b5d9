//! A tenant's tasks as a list, and cancelling one.

use super::{COLUMNS, TaskRow, pending_item, unfinished};
use crate::domain::task::{ItemStatus, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{TaskId, TenantId};
use crate::store::{Bind, Conn, SqlBuilder, StoreResult, Tx, bind_all, on_conn, on_tx, sql_text};

/// Which of a tenant's tasks to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub kind: Option<TaskKind>,
    pub status: Option<TaskStatus>,
}

/// A page of `tenant`'s tasks matching `filter`, newest first (ties by id, so pages never
/// overlap), and how many match.
pub async fn list(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    filter: TaskFilter,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<TaskRecord>, i64)> {
    let mut conn = conn.into();
    let mut wh = SqlBuilder::default();
    wh.push(" FROM tasks WHERE tenant_id = ")
        .bind_text(tenant.as_str());
    if let Some(kind) = filter.kind {
        wh.push(" AND type = ").bind_text(kind.as_str());
    }
    if let Some(status) = filter.status {
        wh.push(" AND status = ").bind_text(status.as_str());
    }
    let count = sqlx::AssertSqlSafe(format!("SELECT COUNT(*){}", wh.sql));
    let total: i64 =
        on_conn!(conn, c => bind_all!(sqlx::query_scalar(count), &wh.binds).fetch_one(c).await)?;
    let mut page = SqlBuilder {
        sql: format!("SELECT {COLUMNS}{}", wh.sql),
        binds: wh.binds,
    };
    page.push(" ORDER BY created_at DESC, id DESC LIMIT ")
        .bind(Bind::Int(limit))
        .push(" OFFSET ")
        .bind(Bind::Int(offset));
    let sql = sqlx::AssertSqlSafe(page.sql);
    let rows: Vec<TaskRow> =
        on_conn!(conn, c => bind_all!(sqlx::query_as(sql), &page.binds).fetch_all(c).await)?;
    let tasks = rows
        .into_iter()
        .map(TaskRecord::try_from)
        .collect::<StoreResult<_>>()?;
    Ok((tasks, total))
}

/// Cancels unfinished task `id` inside `tx`: its pending items become `cancelled` (their
/// input, sealed secrets of an import, cleared), the task `cancelled` with their count, its
/// own key destroyed and its lease released. Items a worker holds in a transaction not yet
/// committed are waited for (PostgreSQL row locks; SQLite has one writer), and once that
/// commits they are done and stay so. Returns the number of items cancelled, or `None` when the
/// task had ended already (nothing changed).
pub async fn cancel(tx: &mut Tx, id: &TaskId, now: i64) -> StoreResult<Option<i64>> {
    // Items first, then the task: the order in which a worker's batch locks them.
    let items = sqlx::AssertSqlSafe(format!(
        "UPDATE task_items SET status = {}, input = NULL, lease_owner = NULL, lease_until = NULL \
         WHERE task_id = $1 AND status = {}",
        sql_text(ItemStatus::Cancelled.as_str()),
        pending_item()
    ));
    let cancelled = on_tx!(tx, c => sqlx::query(items)
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let cancelled = i64::try_from(cancelled).unwrap_or(i64::MAX);
    let task = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = {}, cancelled_items = cancelled_items + $1, wrapped_key = NULL, \
         lease_owner = NULL, lease_until = NULL, updated_at = $2 WHERE id = $3 AND status IN {}",
        sql_text(TaskStatus::Cancelled.as_str()),
        unfinished()
    ));
    let ended = on_tx!(tx, c => sqlx::query(task)
        .bind(cancelled)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    Ok(ended.then_some(cancelled))
}
