//! The audit log's rows and chain heads. Appends are linear per tenant: the head row is locked
//! (PostgreSQL `FOR UPDATE`; SQLite's write transaction holds the database) while the next
//! record is linked to it.

use super::{Db, StoreResult, Tx, on_pool, on_tx};

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct AuditRow {
    pub tenant_id: String,
    pub seq: i64,
    pub id: String,
    pub occurred_at: i64,
    pub action: String,
    pub outcome: String,
    pub subject: String,
    pub sim_id: Option<String>,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
}

const COLUMNS: &str =
    "tenant_id, seq, id, occurred_at, action, outcome, subject, sim_id, record, prev_hash, hash";

/// The end of a tenant's chain, locked until `tx` ends: `(seq, hash)`, `(0, "")` when empty.
pub async fn lock_head(tx: &mut Tx, tenant: &str) -> StoreResult<(i64, String)> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1{lock}"
    ));
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, '') ON CONFLICT (tenant_id) DO NOTHING")
        .bind(tenant)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(on_tx!(tx, c => sqlx::query_as(sql).bind(tenant).fetch_one(&mut *c).await)?)
}

/// Appends a linked record and moves the head to it.
pub async fn append(tx: &mut Tx, row: &AuditRow) -> StoreResult<()> {
    let sql = sqlx::AssertSqlSafe(format!(
        "INSERT INTO audit_events ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
    ));
    on_tx!(tx, c => {
        sqlx::query(sql)
            .bind(&row.tenant_id)
            .bind(row.seq)
            .bind(&row.id)
            .bind(row.occurred_at)
            .bind(&row.action)
            .bind(&row.outcome)
            .bind(&row.subject)
            .bind(&row.sim_id)
            .bind(&row.record)
            .bind(&row.prev_hash)
            .bind(&row.hash)
            .execute(&mut *c)
            .await?;
        sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1")
            .bind(&row.tenant_id)
            .bind(row.seq)
            .bind(&row.hash)
            .execute(&mut *c)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// The recorded head of a tenant's chain, if it has one.
pub async fn head(db: &Db, tenant: &str) -> StoreResult<Option<(i64, String)>> {
    Ok(
        on_pool!(db, p => sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(p)
        .await)?,
    )
}

/// Up to `limit` records of a tenant after position `after`, in chain order.
pub async fn page(db: &Db, tenant: &str, after: i64, limit: i64) -> StoreResult<Vec<AuditRow>> {
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ));
    Ok(
        on_pool!(db, p => sqlx::query_as(sql).bind(tenant).bind(after).bind(limit).fetch_all(p).await)?,
    )
}
