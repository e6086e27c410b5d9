//! Durable background tasks and their leases; their items are in [`items`], listing and
//! cancelling tasks in [`control`].
//!
//! Task rows are authenticated (storage is untrusted): a task's MAC covers what decides whom
//! the worker acts as and what it does — its id, tenant, type, creation time, key version
//! and its parameters (the actor who queued it among them) as canonical JSON — and each
//! item's MAC covers what the worker does for it. Progress counts, status, errors and leases
//! are not covered: they change with every batch and decide nothing about authority (a
//! status set back to `pending` reruns nothing an item's MAC does not vouch for: a done
//! item's input is cleared, and its MAC no longer verifies). What the worker obeys is read
//! through [`runnable`], [`claim`] and [`lock_if_done`], which hand it nothing of a row that
//! fails its check (or has no MAC: queued before task rows were authenticated), only enough
//! to fail the task. Must never: give the worker parameters or inputs whose MAC did not
//! verify.

mod control;
mod items;
pub use control::{
    Cancelled, TaskFilter, begin_item, cancel, fail, keep_item, list, live_sim_ids, rollback_item,
};
pub use items::{Leased, Outcome, claim_items, insert_items, items, record_outcomes, still_held};

use sqlx::types::Json;

use super::{Conn, Db, StoreResult, Tx, on_conn, on_pool, on_tx, sql_text};
use crate::domain::task::{ItemStatus, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{TaskId, TenantId};
use crate::vault::{IntegrityFailure, IntegrityKey, Purpose, RowParts};

/// Why a stored task or item is not to be obeyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unauthentic {
    /// It has no MAC: queued before task rows were authenticated (or its MAC was removed;
    /// either way nothing vouches for it).
    Unsealed,
    /// Its MAC does not verify: changed in storage.
    Tampered(IntegrityFailure),
}

impl Unauthentic {
    fn of(failure: IntegrityFailure, mac: Option<&[u8]>) -> Unauthentic {
        if mac.is_none() {
            Unauthentic::Unsealed
        } else {
            Unauthentic::Tampered(failure)
        }
    }
}

/// A stored task that is not to be run: what its row claims it is (unauthenticated: enough
/// to fail it and say so, nothing to act on) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub id: TaskId,
    pub tenant_id: TenantId,
    pub kind: TaskKind,
    pub why: Unauthentic,
}

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
    mac: Option<Vec<u8>>,
}

/// What a task's MAC covers, in this order (never reorder: every stored MAC would fail).
fn task_parts(task: &TaskRecord) -> RowParts {
    RowParts::default()
        .text(&task.id.to_string())
        .text(task.tenant_id.as_str())
        .text(task.kind.as_str())
        .int(task.created_at)
        .opt_int(task.kek_version)
        .json(&task.params)
}

fn task_mac(key: &IntegrityKey, task: &TaskRecord) -> Vec<u8> {
    key.mac_row(Purpose::Task, &task_parts(task)).to_vec()
}

impl TaskRow {
    /// The row as its owner reads it (`GET /v1/tasks`): checked against its MAC, a row
    /// that fails refused. A task without a MAC, queued before task rows were
    /// authenticated, is read as stored: reading it decides nothing (the worker never runs
    /// it, see [`TaskRow::into_runnable`]), and refusing it would make every task of an
    /// upgraded database unreadable.
    fn into_task(mut self, key: &IntegrityKey) -> StoreResult<TaskRecord> {
        let mac = self.mac.take();
        let task = self.parse_unauthenticated()?;
        if mac.is_some() {
            check(key, &task, mac.as_deref())?;
        }
        Ok(task)
    }

    /// The row as the worker may obey it, or (when its MAC is missing or does not verify)
    /// only what it takes to fail it.
    fn into_runnable(mut self, key: &IntegrityKey) -> StoreResult<Result<TaskRecord, Refused>> {
        let mac = self.mac.take();
        let task = self.parse_unauthenticated()?;
        Ok(match check(key, &task, mac.as_deref()) {
            Ok(()) => Ok(task),
            Err(failure) => Err(Refused {
                why: Unauthentic::of(failure, mac.as_deref()),
                id: task.id,
                tenant_id: task.tenant_id,
                kind: task.kind,
            }),
        })
    }
}

fn check(
    key: &IntegrityKey,
    task: &TaskRecord,
    mac: Option<&[u8]>,
) -> Result<(), IntegrityFailure> {
    key.check_row(Purpose::Task, &task.id.to_string(), &task_parts(task), mac)
}

impl TaskRow {
    /// Only [`TaskRow::into_task`] and [`TaskRow::into_runnable`] may call this.
    fn parse_unauthenticated(self) -> StoreResult<TaskRecord> {
        let r = self;
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
    failed_items, cancelled_items, error, created_at, updated_at, kek_version, wrapped_key, mac";

/// Writes a task with its MAC.
pub async fn insert(tx: &mut Tx, integrity: &IntegrityKey, task: &TaskRecord) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tasks (id, tenant_id, type, status, params, total_items, completed_items, \
         failed_items, cancelled_items, error, created_at, updated_at, kek_version, wrapped_key, \
         mac) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)")
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
        .bind(task_mac(integrity, task))
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A tenant's task as its owner reads it (see [`TaskRow::into_task`]); another tenant's is
/// `None`.
pub async fn get(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    id: &TaskId,
) -> StoreResult<Option<TaskRecord>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
    ));
    let row: Option<TaskRow> = on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).bind(id.to_string()).fetch_optional(c).await)?;
    row.map(|r| r.into_task(integrity)).transpose()
}

/// Task `id` as the worker may obey it (whatever its status), or what it takes to fail it.
pub async fn runnable(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    id: &TaskId,
) -> StoreResult<Option<Result<TaskRecord, Refused>>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM tasks WHERE id = $1"));
    let row: Option<TaskRow> =
        on_conn!(conn, c => sqlx::query_as(sql).bind(id.to_string()).fetch_optional(c).await)?;
    row.map(|r| r.into_runnable(integrity)).transpose()
}

/// Takes the lease of the oldest unfinished task of `kind` whose lease is free or expired.
/// Two workers never hold one lease: the update re-checks the lease it takes. The task comes
/// checked against its MAC: one that fails is leased all the same, to be failed.
pub async fn claim(
    db: &Db,
    integrity: &IntegrityKey,
    kind: TaskKind,
    owner: &str,
    now: i64,
    lease_until: i64,
) -> StoreResult<Option<Result<TaskRecord, Refused>>> {
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
    Ok(Some(row.into_runnable(integrity)?))
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

/// The oldest unfinished task of one of `kinds` with items nobody holds a live lease on:
/// its id only (what the worker obeys of it is read, checked, by [`runnable`]).
pub async fn with_claimable_items(
    conn: impl Into<Conn<'_>>,
    kinds: &[TaskKind],
    now: i64,
) -> StoreResult<Option<TaskId>> {
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
    b.push(") AND EXISTS (SELECT 1 FROM task_items i WHERE i.task_id = t.id AND i.status = ")
        .push(&pending_item())
        .push(" AND (i.lease_until IS NULL OR i.lease_until < ")
        .bind(super::Bind::Int(now))
        .push(")) ORDER BY t.created_at LIMIT 1");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let id: Option<String> = on_conn!(conn, c => super::bind_all!(sqlx::query_scalar(sql), &b.binds).fetch_optional(c).await)?;
    id.map(|id| super::stored_id("tasks.id", &id)).transpose()
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

/// The task, locked until `tx` ends, if it is still unfinished and has no pending item:
/// checked against its MAC (one that fails is to be failed, not completed).
pub async fn lock_if_done(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    id: &TaskId,
) -> StoreResult<Option<Result<TaskRecord, Refused>>> {
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
    (pending == 0)
        .then(|| row.into_runnable(integrity))
        .transpose()
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
