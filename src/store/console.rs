//! Console links (tickets) and console sessions.
//!
//! Rows come back exactly as stored, MAC included: this module does not judge them (the
//! service verifies the MAC before obeying a row). Lookups are by the token's hash; no token
//! is ever stored or bound. Changes that race (a touch and a sign-out) are compare-and-set on
//! the columns their MAC covers, so a row never ends up with a MAC over values it lost.

use super::{Conn, StoreError, StoreResult, Tx, on_conn, on_tx};
use crate::domain::Timestamp;
use crate::domain::console::{StoredSession, StoredTicket};

#[derive(sqlx::FromRow)]
struct TicketRow {
    id: String,
    token_hash: Vec<u8>,
    tenant_id: String,
    subject: String,
    roles: String,
    created_at: i64,
    expires_at: i64,
    used_at: Option<i64>,
    mac: Vec<u8>,
}

impl From<TicketRow> for StoredTicket {
    fn from(r: TicketRow) -> Self {
        StoredTicket {
            id: r.id,
            token_hash: r.token_hash,
            tenant_id: r.tenant_id,
            subject: r.subject,
            roles: r.roles,
            created_at: r.created_at,
            expires_at: r.expires_at,
            used_at: r.used_at,
            mac: r.mac,
        }
    }
}

#[derive(sqlx::FromRow)]
struct SessionRow {
    id: String,
    token_hash: Vec<u8>,
    tenant_id: String,
    subject: String,
    roles: String,
    created_at: i64,
    last_seen_at: i64,
    expires_at: i64,
    ended_at: Option<i64>,
    mac: Vec<u8>,
}

impl From<SessionRow> for StoredSession {
    fn from(r: SessionRow) -> Self {
        StoredSession {
            id: r.id,
            token_hash: r.token_hash,
            tenant_id: r.tenant_id,
            subject: r.subject,
            roles: r.roles,
            created_at: r.created_at,
            last_seen_at: r.last_seen_at,
            expires_at: r.expires_at,
            ended_at: r.ended_at,
            mac: r.mac,
        }
    }
}

const TICKET_COLUMNS: &str =
    "id, token_hash, tenant_id, subject, roles, created_at, expires_at, used_at, mac";
const SESSION_COLUMNS: &str = "id, token_hash, tenant_id, subject, roles, created_at, \
     last_seen_at, expires_at, ended_at, mac";

/// Stores a new ticket (its MAC given).
pub async fn insert_ticket(tx: &mut Tx, t: &StoredTicket) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_tickets \
         (id, token_hash, tenant_id, subject, roles, created_at, expires_at, used_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(&t.id)
        .bind(&t.token_hash)
        .bind(&t.tenant_id)
        .bind(&t.subject)
        .bind(&t.roles)
        .bind(t.created_at)
        .bind(t.expires_at)
        .bind(t.used_at)
        .bind(&t.mac)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// Marks the ticket whose token hashes to `token_hash` used at `now`, if it is unused and
/// unexpired, in one conditional statement (of two concurrent redemptions, one wins), and
/// returns it as it was stored; `None` when no ticket was redeemed.
pub async fn redeem_ticket(
    tx: &mut Tx,
    token_hash: &[u8],
    now: Timestamp,
) -> StoreResult<Option<StoredTicket>> {
    let row: Option<TicketRow> = on_tx!(tx, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE console_tickets SET used_at = $2 \
         WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         RETURNING {TICKET_COLUMNS}")))
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&mut *c)
        .await)?;
    Ok(row.map(StoredTicket::from))
}

/// The ticket whose token hashes to `token_hash`, used or not.
pub async fn find_ticket(
    conn: impl Into<Conn<'_>>,
    token_hash: &[u8],
) -> StoreResult<Option<StoredTicket>> {
    let mut conn = conn.into();
    let row: Option<TicketRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {TICKET_COLUMNS} FROM console_tickets WHERE token_hash = $1")))
        .bind(token_hash)
        .fetch_optional(c)
        .await)?;
    Ok(row.map(StoredTicket::from))
}

/// Stores a new session (its MAC given).
pub async fn insert_session(tx: &mut Tx, s: &StoredSession) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO console_sessions (id, token_hash, tenant_id, subject, roles, created_at, \
         last_seen_at, expires_at, ended_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(&s.id)
        .bind(&s.token_hash)
        .bind(&s.tenant_id)
        .bind(&s.subject)
        .bind(&s.roles)
        .bind(s.created_at)
        .bind(s.last_seen_at)
        .bind(s.expires_at)
        .bind(s.ended_at)
        .bind(&s.mac)
        .execute(&mut *c)
        .await
        .map(|_| ()))
    .map_err(StoreError::from_write)
}

/// The session whose token hashes to `token_hash`, ended or not.
pub async fn find_session(
    conn: impl Into<Conn<'_>>,
    token_hash: &[u8],
) -> StoreResult<Option<StoredSession>> {
    let mut conn = conn.into();
    let row: Option<SessionRow> = on_conn!(conn, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM console_sessions WHERE token_hash = $1")))
        .bind(token_hash)
        .fetch_optional(c)
        .await)?;
    Ok(row.map(StoredSession::from))
}

/// Replaces `last_seen_at` and `ended_at` of the session `id` (with the MAC over the new
/// values), if the row still has the `last_seen_at` it was read with and has not ended;
/// returns whether it did.
pub async fn update_session(
    tx: &mut Tx,
    id: &str,
    read_last_seen: Timestamp,
    last_seen_at: Timestamp,
    ended_at: Option<Timestamp>,
    mac: &[u8],
) -> StoreResult<bool> {
    let n = on_tx!(tx, c => sqlx::query(
        "UPDATE console_sessions SET last_seen_at = $3, ended_at = $4, mac = $5 \
         WHERE id = $1 AND last_seen_at = $2 AND ended_at IS NULL")
        .bind(id)
        .bind(read_last_seen)
        .bind(last_seen_at)
        .bind(ended_at)
        .bind(mac)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected()))?;
    Ok(n == 1)
}
