//! Durable background tasks and their leases; listing and cancelling them is in [`control`].

mod control;
pub use control::{
    Cancelled, TaskFilter, begin_item, cancel, fail, keep_item, list, live_sim_ids, rollback_item,
};

use sqlx::types::Json;

use super::{Conn, Db, StoreError, StoreResult, Tx, on_conn, on_pool, on_tx, sql_text};
use crate::domain::task::{ItemStatus, TaskItem, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{TaskId, TenantId};

/// `('pending', 'running')`: the states of an unfinished task, for `IN`.
fn unfinished() -> String {
    format!(
        "({}, {})",
        sql_text(TaskStatus::Pending.as_str()),
        sql_text(TaskStatus::Running.as_str())
    )
}

fn running() -> String {
    sql_text(TaskStatus::Running.as_str())
}

fn pending_item() -> String {
    sql_text(ItemStatus::Pending.as_str())
}

#[derive(sqlx::FromRow)]
struct TaskRow {
    id: String,
    tenant_id: String,
    #[sqlx(rename = "type")]
    kind: String,
    status: String,
    params: Json<serde_json::Value>,
    total_items: i64,
    completed_items: i64,
    failed_items: i64,
    cancelled_items: i64,
    error: Option<String>,
    created_at: i64,
    updated_at: i64,
    kek_version: Option<i64>,
    wrapped_key: Option<Vec<u8>>,
}

impl TryFrom<TaskRow> for TaskRecord {
    type Error = StoreError;
    fn try_from(r: TaskRow) -> StoreResult<Self> {
        Ok(TaskRecord {
            id: super::stored_id("tasks.id", &r.id)?,
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            kind: TaskKind::parse(&r.kind)?,
            status: TaskStatus::parse(&r.status)?,
            params: r.params.0,
            total_items: r.total_items,
            completed_items: r.completed_items,
            failed_items: r.failed_items,
            cancelled_items: r.cancelled_items,
            error: r.error,
            created_at: r.created_at,
            updated_at: r.updated_at,
            kek_version: r.kek_version,
            wrapped_key: r.wrapped_key,
        })
    }
}

const COLUMNS: &str = "id, tenant_id, type, status, params, total_items, completed_items, \
    failed_items, cancelled_items, error, created_at, updated_at, kek_version, wrapped_key";

pub async fn insert(tx: &mut Tx, task: &TaskRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tasks (id, tenant_id, type, status, params, total_items, completed_items, \
         failed_items, cancelled_items, error, created_at, updated_at, kek_version, wrapped_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)")
        .bind(task.id.to_string())
        .bind(task.tenant_id.as_str())
        .bind(task.kind.as_str())
        .bind(task.status.as_str())
        .bind(Json(&task.params))
        .bind(task.total_items)
        .bind(task.completed_items)
        .bind(task.failed_items)
        .bind(task.cancelled_items)
        .bind(&task.error)
        .bind(task.created_at)
        .bind(task.updated_at)
        .bind(task.kek_version)
        .bind(&task.wrapped_key)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A tenant's task; another tenant's is `None`.
pub async fn get(
    conn: impl Into<Conn<'_>>,
    tenant: &TenantId,
    id: &TaskId,
) -> StoreResult<Option<TaskRecord>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
    ));
    let row: Option<TaskRow> = on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).bind(id.to_string()).fetch_optional(c).await)?;
    row.map(TaskRecord::try_from).transpose()
}

/// Takes the lease of the oldest unfinished task of `kind` whose lease is free or expired.
/// Two workers never hold one lease: the update re-checks the lease it takes.
pub async fn claim(
    db: &Db,
    kind: TaskKind,
    owner: &str,
    now: i64,
    lease_until: i64,
) -> StoreResult<Option<TaskRecord>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT id FROM tasks WHERE type = $1 AND status IN {} \
         AND (lease_until IS NULL OR lease_until < $2) ORDER BY created_at LIMIT 1",
        unfinished()
    ));
    let candidate: Option<String> = on_pool!(db, p => sqlx::query_scalar(sql)
        .bind(kind.as_str())
        .bind(now)
        .fetch_optional(p)
        .await)?;
    let Some(id) = candidate else { return Ok(None) };
    let mut tx = db.begin().await?;
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = {}, lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id = $4 AND status IN {} AND (lease_until IS NULL OR lease_until < $3)",
        running(),
        unfinished()
    ));
    let taken = on_tx!(&mut tx, c => sqlx::query(sql)
        .bind(owner)
        .bind(lease_until)
        .bind(now)
        .bind(&id)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    if !taken {
        return Ok(None);
    }
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"));
    let row: TaskRow =
        on_tx!(&mut tx, c => sqlx::query_as(sql).bind(&id).fetch_one(&mut *c).await)?;
    tx.commit().await?;
    Ok(Some(row.try_into()?))
}

/// Records progress and extends the lease, only while `owner` still holds it.
/// Returns whether it does.
pub async fn progress(
    tx: &mut Tx,
    id: &TaskId,
    owner: &str,
    completed_delta: i64,
    failed_delta: i64,
    now: i64,
    lease_until: i64,
) -> StoreResult<bool> {
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET completed_items = completed_items + $1, failed_items = failed_items + $2, \
         lease_until = $3, updated_at = $4 WHERE id = $5 AND lease_owner = $6 AND status = {}",
        running()
    ));
    Ok(on_tx!(tx, c => sqlx::query(sql)
        .bind(completed_delta)
        .bind(failed_delta)
        .bind(lease_until)
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?)
}

/// Ends a task (`completed` or `failed`) and releases its lease.
pub async fn finish(
    tx: &mut Tx,
    id: &TaskId,
    owner: &str,
    status: TaskStatus,
    error: Option<&str>,
    now: i64,
) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE tasks SET status = $1, error = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $4 AND lease_owner = $5")
        .bind(status.as_str())
        .bind(error)
        .bind(now)
        .bind(id.to_string())
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?)
}

/// Gives up a lease early (shutdown), so another worker can resume the task at once.
pub async fn release(db: &Db, id: &TaskId, owner: &str) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
        .bind(id.to_string())
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    tx.commit().await
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    task_id: String,
    seq: i64,
    line: Option<i64>,
    status: String,
    input: Option<Vec<u8>>,
    sim_id: Option<String>,
    result: Option<String>,
    error: Option<String>,
}

impl TryFrom<ItemRow> for TaskItem {
    type Error = StoreError;
    fn try_from(r: ItemRow) -> StoreResult<Self> {
        Ok(TaskItem {
            task_id: super::stored_id("task_items.task_id", &r.task_id)?,
            seq: r.seq,
            line: r.line,
            status: ItemStatus::parse(&r.status)?,
            input: r.input,
            sim_id: r.sim_id,
            result: r.result,
            error: r.error,
        })
    }
}

const ITEM_COLUMNS: &str = "task_id, seq, line, status, input, sim_id, result, error";

/// Queues items (any number: written in chunks).
pub async fn insert_items(tx: &mut Tx, items: &[TaskItem]) -> StoreResult<()> {
    const CHUNK: usize = 1000;
    for chunk in items.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO task_items ({ITEM_COLUMNS}) VALUES {}",
            super::placeholders(chunk.len(), 8)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for i in chunk {
                q = q
                    .bind(i.task_id.to_string())
                    .bind(i.seq)
                    .bind(i.line)
                    .bind(i.status.as_str())
                    .bind(&i.input)
                    .bind(&i.sim_id)
                    .bind(&i.result)
                    .bind(&i.error);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// The oldest unfinished task of one of `kinds` with items nobody holds a live lease on.
pub async fn with_claimable_items(
    conn: impl Into<Conn<'_>>,
    kinds: &[TaskKind],
    now: i64,
) -> StoreResult<Option<TaskRecord>> {
    let mut conn = conn.into();
    let mut b = super::SqlBuilder::default();
    b.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM tasks t WHERE t.status IN ")
        .push(&unfinished())
        .push(" AND t.type IN (");
    for (i, kind) in kinds.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind_text(kind.as_str());
    }
    b.push(") AND EXISTS (SELECT 1 FROM task_items i WHERE i.task_id = t.id AND i.status = ")
        .push(&pending_item())
        .push(" AND (i.lease_until IS NULL OR i.lease_until < ")
        .bind(super::Bind::Int(now))
        .push(")) ORDER BY t.created_at LIMIT 1");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let row: Option<TaskRow> = on_conn!(conn, c => super::bind_all!(sqlx::query_as(sql), &b.binds).fetch_optional(c).await)?;
    row.map(TaskRecord::try_from).transpose()
}

/// Unfinished tasks of `kinds` with no pending item left (their last worker stopped between
/// its last batch and finishing the task).
pub async fn without_pending(
    conn: impl Into<Conn<'_>>,
    kinds: &[TaskKind],
) -> StoreResult<Vec<TaskId>> {
    let mut conn = conn.into();
    let mut b = super::SqlBuilder::default();
    b.push("SELECT t.id FROM tasks t WHERE t.status IN ")
        .push(&unfinished())
        .push(" AND t.type IN (");
    for (i, kind) in kinds.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.bind_text(kind.as_str());
    }
    b.push(") AND NOT EXISTS (SELECT 1 FROM task_items i WHERE i.task_id = t.id AND i.status = ")
        .push(&pending_item())
        .push(") ORDER BY t.created_at LIMIT 100");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let ids: Vec<String> = on_conn!(conn, c => super::bind_all!(sqlx::query_scalar(sql), &b.binds).fetch_all(c).await)?;
    ids.iter()
        .map(|id| super::stored_id("tasks.id", id))
        .collect()
}

/// Leases up to `limit` pending items of a task to `owner` until `until`, oldest first,
/// skipping items another worker holds (PostgreSQL `FOR UPDATE SKIP LOCKED`, so replicas
/// take disjoint batches; SQLite's single writer serialises the claim). Returns them in order.
pub async fn claim_items(
    db: &Db,
    task_id: &TaskId,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> StoreResult<Vec<TaskItem>> {
    let mut tx = db.begin().await?;
    let sql = sqlx::AssertSqlSafe(tx.claim_batch(
        &format!(
            "SELECT seq FROM task_items WHERE task_id = $3 AND status = {} \
             AND (lease_until IS NULL OR lease_until < $4) ORDER BY seq LIMIT $5",
            pending_item()
        ),
        &format!(
            "UPDATE task_items SET lease_owner = $1, lease_until = $2 FROM picked \
             WHERE task_id = $3 AND seq = picked.pick RETURNING {ITEM_COLUMNS}"
        ),
    ));
    let mut rows: Vec<ItemRow> = on_tx!(&mut tx, c => sqlx::query_as(sql)
        .bind(owner)
        .bind(until)
        .bind(task_id.to_string())
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *c)
        .await)?;
    tx.commit().await?;
    rows.sort_by_key(|r| r.seq);
    rows.into_iter().map(TaskItem::try_from).collect()
}

/// Inside the transaction that records their outcome: which of `items` (in `seq` order)
/// `owner` still holds (pending, leased to it), locking them (PostgreSQL) in `seq` order, as
/// a cancel does, until the transaction ends. Items whose lease ran out and went to another
/// worker are not among them.
pub async fn still_held(
    tx: &mut Tx,
    task_id: &TaskId,
    owner: &str,
    items: &[TaskItem],
) -> StoreResult<std::collections::HashSet<i64>> {
    let mut held = std::collections::HashSet::with_capacity(items.len());
    for chunk in items.chunks(1000) {
        let list: Vec<String> = chunk.iter().map(|i| i.seq.to_string()).collect();
        let lock = tx.row_lock();
        // The seqs are integers we formatted ourselves: no injection.
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT seq FROM task_items WHERE task_id = $1 AND lease_owner = $2 \
             AND status = {} AND seq IN ({}) ORDER BY seq{lock}",
            pending_item(),
            list.join(", ")
        ));
        let rows: Vec<i64> = on_tx!(tx, c => sqlx::query_scalar(sql)
            .bind(task_id.to_string())
            .bind(owner)
            .fetch_all(&mut *c)
            .await)?;
        held.extend(rows);
    }
    Ok(held)
}

/// An item's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub seq: i64,
    pub succeeded: bool,
    pub sim_id: Option<String>,
    pub result: Option<String>,
    pub error: Option<String>,
}

/// Records outcomes of a task's items (clearing their input and lease) and the task's counts.
pub async fn record_outcomes(
    tx: &mut Tx,
    task_id: &TaskId,
    outcomes: &[Outcome],
    now: i64,
) -> StoreResult<()> {
    if outcomes.is_empty() {
        // A batch that held none of its items any more (leased again, or cancelled).
        return Ok(());
    }
    for chunk in outcomes.chunks(1000) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let b = i * 5 + 1;
                format!(
                    "(CAST(${} AS BIGINT), ${}, ${}, ${}, ${})",
                    b + 1,
                    b + 2,
                    b + 3,
                    b + 4,
                    b + 5
                )
            })
            .collect();
        let sql = sqlx::AssertSqlSafe(format!(
            "WITH v (seq, status, sim_id, result, error) AS (VALUES {}) \
             UPDATE task_items SET status = v.status, sim_id = COALESCE(v.sim_id, task_items.sim_id), \
             result = v.result, error = v.error, input = NULL, lease_owner = NULL, lease_until = NULL \
             FROM v WHERE task_items.task_id = $1 AND task_items.seq = v.seq",
            values.join(", ")
        ));
        on_tx!(tx, c => {
            let mut q = sqlx::query(sql).bind(task_id.to_string());
            for o in chunk {
                q = q
                    .bind(o.seq)
                    .bind(if o.succeeded {
                        ItemStatus::Succeeded
                    } else {
                        ItemStatus::Failed
                    }
                    .as_str())
                    .bind(&o.sim_id)
                    .bind(&o.result)
                    .bind(&o.error);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    let done = outcomes.iter().filter(|o| o.succeeded).count();
    let failed = outcomes.len() - done;
    // A task cancelled meanwhile stays cancelled (its batch, holding none of its items any
    // more, recorded nothing).
    let sql = sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET status = CASE WHEN status = {} THEN {} ELSE status END, \
         completed_items = completed_items + $1, \
         failed_items = failed_items + $2, updated_at = $3 WHERE id = $4",
        sql_text(TaskStatus::Pending.as_str()),
        running()
    ));
    on_tx!(tx, c => sqlx::query(sql)
        .bind(i64::try_from(done).unwrap_or(i64::MAX))
        .bind(i64::try_from(failed).unwrap_or(i64::MAX))
        .bind(now)
        .bind(task_id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The task, locked until `tx` ends, if it is still unfinished and has no pending item.
pub async fn lock_if_done(tx: &mut Tx, id: &TaskId) -> StoreResult<Option<TaskRecord>> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND status IN {}{lock}",
        unfinished()
    ));
    let row: Option<TaskRow> =
        on_tx!(tx, c => sqlx::query_as(sql).bind(id.to_string()).fetch_optional(&mut *c).await)?;
    let Some(row) = row else { return Ok(None) };
    let count = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM task_items WHERE task_id = $1 AND status = {}",
        pending_item()
    ));
    let pending: i64 = on_tx!(tx, c => sqlx::query_scalar(count)
        .bind(id.to_string())
        .fetch_one(&mut *c)
        .await)?;
    (pending == 0).then(|| row.try_into()).transpose()
}

/// Ends a bulk task and destroys its data key.
pub async fn complete(tx: &mut Tx, id: &TaskId, status: TaskStatus, now: i64) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "UPDATE tasks SET status = $1, wrapped_key = NULL, lease_owner = NULL, lease_until = NULL, \
         updated_at = $2 WHERE id = $3")
        .bind(status.as_str())
        .bind(now)
        .bind(id.to_string())
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A page of a task's items in request order, optionally of one status, and how many match.
pub async fn items(
    conn: impl Into<Conn<'_>>,
    task_id: &TaskId,
    status: Option<ItemStatus>,
    offset: i64,
    limit: i64,
) -> StoreResult<(Vec<TaskItem>, i64)> {
    let mut conn = conn.into();
    let filter = if status.is_some() {
        " AND status = $2"
    } else {
        " AND $2 IS NULL"
    };
    let page_sql = sqlx::AssertSqlSafe(format!(
        "SELECT task_id, seq, line, status, NULL AS input, sim_id, result, error FROM task_items \
         WHERE task_id = $1{filter} ORDER BY seq LIMIT $3 OFFSET $4"
    ));
    let count_sql = sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM task_items WHERE task_id = $1{filter}"
    ));
    let rows: Vec<ItemRow> = on_conn!(conn, c => sqlx::query_as(page_sql)
        .bind(task_id.to_string())
        .bind(status.map(ItemStatus::as_str))
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let total = on_conn!(conn, c => sqlx::query_scalar(count_sql)
        .bind(task_id.to_string())
        .bind(status.map(ItemStatus::as_str))
        .fetch_one(c)
        .await)?;
    let items = rows
        .into_iter()
        .map(TaskItem::try_from)
        .collect::<StoreResult<_>>()?;
    Ok((items, total))
}
