//! Durable background tasks and their leases.

use sqlx::types::Json;

use super::{Db, StoreResult, Tx, on_pool, on_tx};

#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct TaskRow {
    pub id: String,
    pub tenant_id: String,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub status: String,
    pub params: Json<serde_json::Value>,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, tenant_id, type, status, params, total_items, completed_items, \
    failed_items, error, created_at, updated_at";

pub async fn insert(tx: &mut Tx, task: &TaskRow) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO tasks (id, tenant_id, type, status, params, total_items, completed_items, \
         failed_items, error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)")
        .bind(&task.id)
        .bind(&task.tenant_id)
        .bind(&task.kind)
        .bind(&task.status)
        .bind(&task.params)
        .bind(task.total_items)
        .bind(task.completed_items)
        .bind(task.failed_items)
        .bind(&task.error)
        .bind(task.created_at)
        .bind(task.updated_at)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// A tenant's task; another tenant's is `None`.
pub async fn get(db: &Db, tenant: &str, id: &str) -> StoreResult<Option<TaskRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE tenant_id = $1 AND id = $2"
    ));
    Ok(on_pool!(db, p => sqlx::query_as(sql).bind(tenant).bind(id).fetch_optional(p).await)?)
}

/// Takes the lease of the oldest unfinished task of `kind` whose lease is free or expired.
/// Two workers never hold one lease: the update re-checks the lease it takes.
pub async fn claim(
    db: &Db,
    kind: &str,
    owner: &str,
    now: i64,
    lease_until: i64,
) -> StoreResult<Option<TaskRow>> {
    let candidate: Option<String> = on_pool!(db, p => sqlx::query_scalar(
        "SELECT id FROM tasks WHERE type = $1 AND status IN ('pending', 'running') \
         AND (lease_until IS NULL OR lease_until < $2) ORDER BY created_at LIMIT 1")
        .bind(kind)
        .bind(now)
        .fetch_optional(p)
        .await)?;
    let Some(id) = candidate else { return Ok(None) };
    let mut tx = db.begin().await?;
    let taken = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE tasks SET status = 'running', lease_owner = $1, lease_until = $2, updated_at = $3 \
         WHERE id = $4 AND status IN ('pending', 'running') AND (lease_until IS NULL OR lease_until < $3)")
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
    Ok(Some(row))
}

/// Records progress and extends the lease, only while `owner` still holds it.
/// Returns whether it does.
pub async fn progress(
    tx: &mut Tx,
    id: &str,
    owner: &str,
    completed_delta: i64,
    failed_delta: i64,
    now: i64,
    lease_until: i64,
) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE tasks SET completed_items = completed_items + $1, failed_items = failed_items + $2, \
         lease_until = $3, updated_at = $4 WHERE id = $5 AND lease_owner = $6 AND status = 'running'")
        .bind(completed_delta)
        .bind(failed_delta)
        .bind(lease_until)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?)
}

/// Ends a task (`completed` or `failed`) and releases its lease.
pub async fn finish(
    tx: &mut Tx,
    id: &str,
    owner: &str,
    status: &str,
    error: Option<&str>,
    now: i64,
) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => sqlx::query(
        "UPDATE tasks SET status = $1, error = $2, lease_owner = NULL, lease_until = NULL, updated_at = $3 \
         WHERE id = $4 AND lease_owner = $5")
        .bind(status)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?)
}

/// Gives up a lease early (shutdown), so another worker can resume the task at once.
pub async fn release(db: &Db, id: &str, owner: &str) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, c => sqlx::query(
        "UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
        .bind(id)
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    tx.commit().await
}
