//! The items of bulk tasks: queued with their MACs, leased in batches (each item checked
//! against its MAC before the worker may use it), the still-held check and their outcomes.

use super::{Unauthentic, pending_item, running};
use crate::domain::TaskId;
use crate::domain::task::{ItemStatus, TaskItem, TaskStatus};
use crate::store::Conn;
use crate::store::{Db, StoreResult, Tx, on_conn, on_tx, sql_text};
use crate::vault::{IntegrityKey, Purpose, RowParts};

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
    mac: Option<Vec<u8>>,
}

/// What an item's MAC covers, in this order (never reorder): its task and position, and
/// everything of it a worker acts on (its input, the SIM it names, its source line). None of
/// these changes while it is pending; once it is done its input is cleared.
fn item_parts(item: &TaskItem) -> RowParts {
    RowParts::default()
        .text(&item.task_id.to_string())
        .int(item.seq)
        .opt_int(item.line)
        .opt_bytes(item.input.as_deref())
        .opt_text(item.sim_id.as_deref())
}

fn item_mac(key: &IntegrityKey, item: &TaskItem) -> Vec<u8> {
    key.mac_row(Purpose::TaskItem, &item_parts(item)).to_vec()
}

impl ItemRow {
    /// The item with its stored MAC, not yet checked: only [`claim_items`] (which checks
    /// it) and [`items`] (which reads no input, for display) may call this.
    fn parse_unauthenticated(mut self) -> StoreResult<(TaskItem, Option<Vec<u8>>)> {
        let mac = self.mac.take();
        let r = self;
        let item = TaskItem {
            task_id: crate::store::stored_id("task_items.task_id", &r.task_id)?,
            seq: r.seq,
            line: r.line,
            status: ItemStatus::parse(&r.status)?,
            input: r.input,
            sim_id: r.sim_id,
            result: r.result,
            error: r.error,
        };
        Ok((item, mac))
    }
}

const ITEM_COLUMNS: &str = "task_id, seq, line, status, input, sim_id, result, error, mac";

/// Queues items with their MACs (any number: written in chunks).
pub async fn insert_items(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    items: &[TaskItem],
) -> StoreResult<()> {
    const CHUNK: usize = 1000;
    for chunk in items.chunks(CHUNK) {
        let sql = format!(
            "INSERT INTO task_items ({ITEM_COLUMNS}) VALUES {}",
            crate::store::placeholders(chunk.len(), 9)
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
                    .bind(&i.error)
                    .bind(item_mac(integrity, i));
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    Ok(())
}

/// A batch of items leased by [`claim_items`]: those whose MAC verified, in order, and why
/// each other one may not be used. A worker uses `items` only when `refused` is empty.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Leased {
    pub items: Vec<TaskItem>,
    pub refused: Vec<Unauthentic>,
}

impl Leased {
    /// Whether nothing was leased.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty() && self.refused.is_empty()
    }
}

/// Leases up to `limit` pending items of a task to `owner` until `until`, oldest first,
/// skipping items another worker holds (PostgreSQL `FOR UPDATE SKIP LOCKED`, so replicas
/// take disjoint batches; SQLite's single writer serialises the claim). Returns them in
/// order, each checked against its MAC (those that fail, leased all the same, are refused).
pub async fn claim_items(
    db: &Db,
    integrity: &IntegrityKey,
    task_id: &TaskId,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> StoreResult<Leased> {
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
    let mut leased = Leased::default();
    for row in rows {
        let (item, mac) = row.parse_unauthenticated()?;
        let name = format!("{}/{}", item.task_id, item.seq);
        match integrity.check_row(Purpose::TaskItem, &name, &item_parts(&item), mac.as_deref()) {
            Ok(()) => leased.items.push(item),
            Err(failure) => leased
                .refused
                .push(Unauthentic::of(failure, mac.as_deref())),
        }
    }
    Ok(leased)
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
        "SELECT task_id, seq, line, status, NULL AS input, sim_id, result, error, NULL AS mac \
         FROM task_items \
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
    // For display only (no input is read): the owner's view of outcomes, unchecked.
    let items = rows
        .into_iter()
        .map(|r| r.parse_unauthenticated().map(|(item, _)| item))
        .collect::<StoreResult<_>>()?;
    Ok((items, total))
}
