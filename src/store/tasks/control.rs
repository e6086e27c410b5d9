//! A tenant's tasks as a list; cancelling one, or failing one that cannot be worked on; and
//! what a batch of bulk changes reads and undoes item by item.

use std::collections::HashMap;

use super::{COLUMNS, TaskRow, pending_item, unfinished};
use crate::domain::task::{ItemStatus, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{TaskId, TenantId};
use crate::store::{Bind, Conn, SqlBuilder, StoreResult, Tx, bind_all, on_conn, on_tx, sql_text};
use crate::vault::IntegrityKey;

/// Which of a tenant's tasks to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub kind: Option<TaskKind>,
    pub status: Option<TaskStatus>,
}

/// A page of `tenant`'s tasks matching `filter`, newest first (ties by id, so pages never
/// overlap), and how many match; each read as its owner reads it (`TaskRow::into_task`).
pub async fn list(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
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
        .map(|r| r.into_task(integrity))
        .collect::<StoreResult<_>>()?;
    Ok((tasks, total))
}

/// Locks `task_id`'s pending items in the order of their `seq` (PostgreSQL; SQLite has one
/// writer), the order a worker's batch locks them in ([`super::still_held`]), so that ending
/// them cannot deadlock against a batch. Items a worker holds in a transaction not yet
/// committed are waited for, and once that commits they are done and not among them.
/// Returns how many are pending.
async fn lock_pending(tx: &mut Tx, task_id: &TaskId) -> StoreResult<i64> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT seq FROM task_items WHERE task_id = $1 AND status = {} ORDER BY seq{}",
        pending_item(),
        tx.row_lock()
    ));
    let seqs: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(sql)
        .bind(task_id.to_string())
        .fetch_all(&mut *c)
        .await)?;
    Ok(i64::try_from(seqs.len()).unwrap_or(i64::MAX))
}

/// How [`cancel`] left a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// It had ended already: nothing changed.
    Ended,
    /// Every item was done (its last batch committed, the task not yet finished): nothing
    /// changed, the task is to be finished as its worker would.
    NothingPending,
    /// This many pending items were cancelled, and the task with them.
    Items(i64),
}

/// Cancels unfinished task `id` inside `tx`: its pending items become `cancelled` (their
/// input, sealed secrets of an import, cleared), the task `cancelled` with their count, its
/// own key destroyed and its lease released. Items a worker holds in a transaction not yet
/// committed are waited for ([`lock_pending`]).
pub async fn cancel(tx: &mut Tx, id: &TaskId, now: i64) -> StoreResult<Cancelled> {
    if lock_pending(tx, id).await? == 0 {
        return Ok(if is_unfinished(tx, id).await? {
            Cancelled::NothingPending
        } else {
            Cancelled::Ended
        });
    }
    let ended = end_pending(
        tx,
        id,
        (ItemStatus::Cancelled, TaskStatus::Cancelled),
        None,
        now,
    )
    .await?;
    Ok(ended.map_or(Cancelled::Ended, Cancelled::Items))
}

/// What [`fail`] left of a task: how many pending items it failed, and the task's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failed {
    pub items: i64,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
}

/// Fails unfinished task `id` inside `tx` for `error` (it cannot be worked on, its row
/// perhaps failing its check: nothing but its counts is read back): its pending items fail
/// with it, its own key is destroyed and its lease released. `None` when the task had ended
/// already (nothing changed).
pub async fn fail(tx: &mut Tx, id: &TaskId, error: &str, now: i64) -> StoreResult<Option<Failed>> {
    lock_pending(tx, id).await?;
    let Some(items) = end_pending(
        tx,
        id,
        (ItemStatus::Failed, TaskStatus::Failed),
        Some(error),
        now,
    )
    .await?
    else {
        return Ok(None);
    };
    let (total_items, completed_items, failed_items): (i64, i64, i64) = on_tx!(tx, c => sqlx::query_as(
        "SELECT total_items, completed_items, failed_items FROM tasks WHERE id = $1")
        .bind(id.to_string())
        .fetch_one(&mut *c)
        .await)?;
    Ok(Some(Failed {
        items,
        total_items,
        completed_items,
        failed_items,
    }))
}

async fn is_unfinished(tx: &mut Tx, id: &TaskId) -> StoreResult<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM tasks WHERE id = $1 AND status IN {}",
        unfinished()
    ));
    let n: i64 = on_tx!(tx, c => sqlx::query_scalar(sql)
        .bind(id.to_string())
        .fetch_one(&mut *c)
        .await)?;
    Ok(n > 0)
}

/// Ends task `id`'s pending items (locked by the caller) as `item`, counted as the task's
/// cancelled or failed items, and the task as `task` with `error`: inputs cleared, leases
/// released, the task's key destroyed. `None` when the task had ended already.
async fn end_pending(
    tx: &mut Tx,
    id: &TaskId,
    (item, task): (ItemStatus, TaskStatus),
    error: Option<&str>,
    now: i64,
) -> StoreResult<Option<i64>> {
    // Items first, then the task: the order in which a worker's batch locks them.
    let items = sqlx::AssertSqlSafe(format!(
        "UPDATE task_items SET status = {}, error = $1, input = NULL, lease_owner = NULL, \
         lease_until = NULL WHERE task_id = $2 AND status = {}",
        sql_text(item.as_str()),
        pending_item()
    ));
    let ended = on_tx!(tx, c => sqlx::query(items)
        .bind(error)
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    let ended = i64::try_from(ended).unwrap_or(i64::MAX);
    let counted = if item == ItemStatus::Cancelled {
        "cancelled_items"
    } else {
        "failed_items"
    };
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = {}, {counted} = {counted} + $1, error = COALESCE($2, error), \
         wrapped_key = NULL, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $4 AND status IN {}",
        sql_text(task.as_str()),
        unfinished()
    ));
    let changed = on_tx!(tx, c => sqlx::query(sql)
        .bind(ended)
        .bind(error)
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    Ok(changed.then_some(ended))
}

/// The ids of `tenant`'s live SIMs named by `iccids`, by ICCID, read inside `tx` without
/// locking them (a bulk change locks its SIMs afterwards, in the order of their ids).
pub async fn live_sim_ids(
    tx: &mut Tx,
    tenant: &TenantId,
    iccids: &[&str],
) -> StoreResult<HashMap<String, String>> {
    let mut found = HashMap::with_capacity(iccids.len());
    for chunk in iccids.chunks(1000) {
        let mut b = SqlBuilder::default();
        b.push("SELECT iccid, id FROM sims WHERE tenant_id = ")
            .bind_text(tenant.as_str())
            .push(" AND deleted_at IS NULL AND iccid IN ")
            .bind_texts(chunk.iter().copied());
        let sql = sqlx::AssertSqlSafe(b.sql);
        let rows: Vec<(String, String)> = on_tx!(tx, c => bind_all!(sqlx::query_as(sql), &b.binds)
            .fetch_all(&mut *c)
            .await)?;
        found.extend(rows);
    }
    Ok(found)
}

/// A point inside `tx` that [`rollback_item`] returns to: what one item of a batch wrote is
/// undone when the item fails, and the rest of the batch goes on.
pub async fn begin_item(tx: &mut Tx) -> StoreResult<()> {
    item_statement(tx, "SAVEPOINT batch_item").await
}

/// Keeps what the item begun by [`begin_item`] wrote.
pub async fn keep_item(tx: &mut Tx) -> StoreResult<()> {
    item_statement(tx, "RELEASE SAVEPOINT batch_item").await
}

/// Undoes what the item begun by [`begin_item`] wrote.
pub async fn rollback_item(tx: &mut Tx) -> StoreResult<()> {
    item_statement(tx, "ROLLBACK TO SAVEPOINT batch_item").await?;
    keep_item(tx).await
}

async fn item_statement(tx: &mut Tx, sql: &'static str) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(sql).execute(&mut *c).await.map(|_| ()))?;
    Ok(())
}
