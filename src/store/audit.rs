//! The audit log's rows and chain heads. Appends are linear per tenant: the head row is locked
//! (PostgreSQL `FOR UPDATE`; SQLite's write transaction holds the database) while the next
//! record is linked to it.

use super::{Bind, Conn, Db, SqlBuilder, StoreResult, Tx, bind_all, on_conn, on_tx};

pub use crate::domain::audit::AuditRow;
use crate::domain::audit::Checkpoint;

const COLUMNS: &str = "tenant_id, seq, id, occurred_at, action, outcome, subject, sim_id, iccid, record, prev_hash, hash";

/// The end of a chain (a tenant's, or `_platform`), locked until `tx` ends: `(seq, hash)`,
/// `(0, "")` when empty.
pub async fn lock_head(tx: &mut Tx, chain: &str) -> StoreResult<(i64, String)> {
    let lock = tx.row_lock();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT seq, hash FROM audit_heads WHERE tenant_id = $1{lock}"
    ));
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ($1, 0, '') ON CONFLICT (tenant_id) DO NOTHING")
        .bind(chain)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(on_tx!(tx, c => sqlx::query_as(sql).bind(chain).fetch_one(&mut *c).await)?)
}

/// Appends linked records of one chain (in order, following its locked head) and moves the
/// head to the last: multi-row INSERTs of up to 1,000 records and one head update.
pub async fn append(tx: &mut Tx, rows: &[AuditRow]) -> StoreResult<()> {
    let Some(last) = rows.last() else {
        return Ok(());
    };
    for chunk in rows.chunks(1000) {
        let sql = format!(
            "INSERT INTO audit_events ({COLUMNS}) VALUES {}",
            super::placeholders(chunk.len(), 12)
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for row in chunk {
            q = q
                .bind(&row.tenant_id)
                .bind(row.seq)
                .bind(&row.id)
                .bind(row.occurred_at)
                .bind(&row.action)
                .bind(&row.outcome)
                .bind(&row.subject)
                .bind(&row.sim_id)
                .bind(&row.iccid)
                .bind(&row.record)
                .bind(&row.prev_hash)
                .bind(&row.hash);
        }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    on_tx!(tx, c => sqlx::query("UPDATE audit_heads SET seq = $2, hash = $3 WHERE tenant_id = $1")
        .bind(&last.tenant_id)
        .bind(last.seq)
        .bind(&last.hash)
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The recorded head of a chain, if it has one.
pub async fn head(conn: impl Into<Conn<'_>>, chain: &str) -> StoreResult<Option<(i64, String)>> {
    let mut conn = conn.into();
    Ok(
        on_conn!(conn, c => sqlx::query_as("SELECT seq, hash FROM audit_heads WHERE tenant_id = $1")
        .bind(chain)
        .fetch_optional(c)
        .await)?,
    )
}

/// Up to `limit` records of a chain after position `after`, in chain order.
pub async fn page(
    conn: impl Into<Conn<'_>>,
    chain: &str,
    after: i64,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM audit_events WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    ));
    Ok(
        on_conn!(conn, c => sqlx::query_as(sql).bind(chain).bind(after).bind(limit).fetch_all(c).await)?,
    )
}

pub use crate::domain::audit::AuditFilter;

/// Which way to walk a chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first, after a position (export).
    Forward { after: i64 },
    /// Newest first, before a position (browsing).
    Backward { before: i64 },
}

/// Up to `limit` matching records of a chain, walking from a position in `order`.
pub async fn find(
    conn: impl Into<Conn<'_>>,
    chain: &str,
    filter: &AuditFilter,
    order: Order,
    limit: i64,
) -> StoreResult<Vec<AuditRow>> {
    let mut conn = conn.into();
    let mut b = SqlBuilder::default();
    b.push(&format!(
        "SELECT {COLUMNS} FROM audit_events WHERE tenant_id = "
    ))
    .bind_text(chain);
    let text = |b: &mut SqlBuilder, column: &str, value: &Option<String>| {
        if let Some(v) = value {
            b.push(&format!(" AND {column} = ")).bind_text(v.clone());
        }
    };
    text(&mut b, "subject", &filter.actor);
    text(&mut b, "action", &filter.action);
    text(&mut b, "outcome", &filter.outcome);
    if let Some(sim) = &filter.sim {
        b.push(" AND (sim_id = ")
            .bind_text(sim.clone())
            .push(" OR iccid = ")
            .bind_text(sim.clone())
            .push(")");
    }
    if let Some(since) = filter.since {
        b.push(" AND occurred_at >= ").bind(Bind::Int(since));
    }
    if let Some(until) = filter.until {
        b.push(" AND occurred_at < ").bind(Bind::Int(until));
    }
    match order {
        Order::Forward { after } => b
            .push(" AND seq > ")
            .bind(Bind::Int(after))
            .push(" ORDER BY seq"),
        Order::Backward { before } => b
            .push(" AND seq < ")
            .bind(Bind::Int(before))
            .push(" ORDER BY seq DESC"),
    };
    b.push(" LIMIT ").bind(Bind::Int(limit));
    let sql = sqlx::AssertSqlSafe(b.sql);
    Ok(on_conn!(conn, c => bind_all!(sqlx::query_as(sql), &b.binds).fetch_all(c).await)?)
}

/// Every chain's recorded head: `(tenant, seq, hash)`, in tenant order.
pub async fn heads(conn: impl Into<Conn<'_>>) -> StoreResult<Vec<(String, i64, String)>> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_as(
        "SELECT tenant_id, seq, hash FROM audit_heads WHERE seq > 0 ORDER BY tenant_id")
        .fetch_all(c)
        .await)?)
}

/// A checkpoint as stored.
#[derive(sqlx::FromRow)]
struct CheckpointRow {
    tenant_id: String,
    seq: i64,
    hash: String,
    signed_at: i64,
    key_id: String,
    signature: String,
}

impl From<CheckpointRow> for Checkpoint {
    fn from(r: CheckpointRow) -> Self {
        Checkpoint {
            tenant_id: r.tenant_id,
            seq: r.seq,
            hash: r.hash,
            signed_at: r.signed_at,
            key_id: r.key_id,
            signature: r.signature,
        }
    }
}

/// Stores a checkpoint; one already made for the same position (by another replica) wins.
pub async fn insert_checkpoint(db: &Db, c: &Checkpoint) -> StoreResult<()> {
    let mut tx = db.begin().await?;
    on_tx!(&mut tx, conn => sqlx::query(
        "INSERT INTO audit_checkpoints (tenant_id, seq, hash, signed_at, key_id, signature) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, seq) DO NOTHING")
        .bind(&c.tenant_id)
        .bind(c.seq)
        .bind(&c.hash)
        .bind(c.signed_at)
        .bind(&c.key_id)
        .bind(&c.signature)
        .execute(&mut *conn)
        .await
        .map(|_| ()))?;
    tx.commit().await?;
    Ok(())
}

/// The checkpoints of a chain with `after < seq <= upto`, in order.
pub async fn checkpoints(
    conn: impl Into<Conn<'_>>,
    chain: &str,
    after: i64,
    upto: i64,
) -> StoreResult<Vec<Checkpoint>> {
    let mut conn = conn.into();
    let rows: Vec<CheckpointRow> = on_conn!(conn, c => sqlx::query_as(
        "SELECT tenant_id, seq, hash, signed_at, key_id, signature FROM audit_checkpoints \
         WHERE tenant_id = $1 AND seq > $2 AND seq <= $3 ORDER BY seq")
        .bind(chain)
        .bind(after)
        .bind(upto)
        .fetch_all(c)
        .await)?;
    Ok(rows.into_iter().map(Checkpoint::from).collect())
}

/// The heads of chains that moved since their latest checkpoint: `(tenant, seq, hash)`.
pub async fn unsigned_heads(conn: impl Into<Conn<'_>>) -> StoreResult<Vec<(String, i64, String)>> {
    let mut conn = conn.into();
    Ok(on_conn!(conn, c => sqlx::query_as(
        "SELECT h.tenant_id, h.seq, h.hash FROM audit_heads h WHERE h.seq > COALESCE(\
         (SELECT MAX(c.seq) FROM audit_checkpoints c WHERE c.tenant_id = h.tenant_id), 0) \
         ORDER BY h.tenant_id")
        .fetch_all(c)
        .await)?)
}
