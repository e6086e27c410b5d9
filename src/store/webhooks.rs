//! Webhook subscriptions, the fan-out of outbox events to them, and deliveries with leases.
//!
//! A subscription's row is authenticated: its MAC covers its id, tenant, target URL, events
//! and creation time (from which on it receives events), and every read checks it, the
//! delivery path included, so a swapped URL never receives a tenant's events.

use super::{Conn, Db, StoreError, StoreResult, Tx, on_conn, on_tx, sql_text};
use crate::domain::audit::DeliveryStatus;
use crate::domain::webhook::{DueDelivery, WebhookSubscription};
use crate::domain::webhook_format::WebhookFormat;
use crate::domain::{TenantId, WebhookId};
use crate::vault::{IntegrityFailure, IntegrityKey, Purpose, RowParts};

#[derive(sqlx::FromRow)]
struct WebhookRow {
    id: String,
    tenant_id: String,
    url: String,
    events: String,
    description: Option<String>,
    kek_version: i64,
    secret: Vec<u8>,
    created_at: i64,
}

impl TryFrom<WebhookRow> for WebhookSubscription {
    type Error = StoreError;
    fn try_from(r: WebhookRow) -> StoreResult<Self> {
        Ok(WebhookSubscription {
            id: super::stored_id("webhooks.id", &r.id)?,
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            url: r.url,
            events: r.events,
            description: r.description,
            kek_version: r.kek_version,
            secret: r.secret,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str =
    "id, tenant_id, url, events, description, kek_version, secret, created_at, mac";

/// A subscription's row with its MAC, as read.
#[derive(sqlx::FromRow)]
struct StoredWebhook {
    #[sqlx(flatten)]
    row: WebhookRow,
    mac: Option<Vec<u8>>,
}

/// What a subscription's MAC covers, in this order. The signing secret needs none: it is
/// sealed with associated data naming the tenant and the webhook.
fn webhook_parts(id: &str, tenant: &str, url: &str, events: &str, created_at: i64) -> RowParts {
    RowParts::default()
        .text(id)
        .text(tenant)
        .text(url)
        .text(events)
        .int(created_at)
}

fn webhook_mac(integrity: &IntegrityKey, w: &WebhookSubscription) -> Vec<u8> {
    let parts = webhook_parts(
        &w.id.to_string(),
        w.tenant_id.as_str(),
        &w.url,
        &w.events,
        w.created_at,
    );
    integrity.mac_row(Purpose::Webhook, &parts).to_vec()
}

impl StoredWebhook {
    /// The one way from a stored subscription to a [`WebhookSubscription`]: checked against
    /// its MAC, on the columns as read, before anything is made of them.
    fn checked(self, integrity: &IntegrityKey) -> StoreResult<WebhookSubscription> {
        self.verify(integrity)?;
        self.row.try_into()
    }

    /// Whether the columns as read match the row's MAC.
    fn verify(&self, integrity: &IntegrityKey) -> Result<(), IntegrityFailure> {
        let r = &self.row;
        let parts = webhook_parts(&r.id, &r.tenant_id, &r.url, &r.events, r.created_at);
        integrity.check_row(Purpose::Webhook, &r.id, &parts, self.mac.as_deref())
    }
}

pub async fn insert(
    tx: &mut Tx,
    integrity: &IntegrityKey,
    w: &WebhookSubscription,
) -> StoreResult<()> {
    on_tx!(tx, c => sqlx::query(
        "INSERT INTO webhooks (id, tenant_id, url, events, description, kek_version, secret, created_at, mac) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)")
        .bind(w.id.to_string())
        .bind(w.tenant_id.as_str())
        .bind(&w.url)
        .bind(&w.events)
        .bind(&w.description)
        .bind(w.kek_version)
        .bind(&w.secret)
        .bind(w.created_at)
        .bind(webhook_mac(integrity, w))
        .execute(&mut *c)
        .await
        .map(|_| ()))?;
    Ok(())
}

/// The tenant's webhooks, oldest first.
pub async fn list(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
) -> StoreResult<Vec<WebhookSubscription>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 ORDER BY created_at, id"
    ));
    let rows: Vec<StoredWebhook> =
        on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).fetch_all(c).await)?;
    rows.into_iter().map(|r| r.checked(integrity)).collect()
}

pub async fn get(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenant: &TenantId,
    id: &WebhookId,
) -> StoreResult<Option<WebhookSubscription>> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant_id = $1 AND id = $2"
    ));
    let row: Option<StoredWebhook> = on_conn!(conn, c => sqlx::query_as(sql).bind(tenant.as_str()).bind(id.to_string()).fetch_optional(c).await)?;
    row.map(|r| r.checked(integrity)).transpose()
}

/// Deletes a webhook and its deliveries (pending ones are never sent). Returns whether the
/// tenant had it.
pub async fn delete(tx: &mut Tx, tenant: &TenantId, id: &WebhookId) -> StoreResult<bool> {
    Ok(on_tx!(tx, c => {
        sqlx::query("DELETE FROM webhook_deliveries WHERE tenant_id = $1 AND webhook_id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .execute(&mut *c)
            .await?;
        sqlx::query("DELETE FROM webhooks WHERE tenant_id = $1 AND id = $2")
            .bind(tenant.as_str())
            .bind(id.to_string())
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected() == 1)
    })?)
}

/// Whether any delivery is due, read without taking a write lock.
pub async fn any_due(conn: impl Into<Conn<'_>>, now: i64) -> StoreResult<bool> {
    let mut conn = conn.into();
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT id FROM webhook_deliveries WHERE status = {} AND next_attempt_at <= $1 \
         AND (lease_until IS NULL OR lease_until < $1) LIMIT 1",
        sql_text(DeliveryStatus::Pending.as_str())
    ));
    let found: Option<String> = on_conn!(conn, c => sqlx::query_scalar(sql)
        .bind(now)
        .fetch_optional(c)
        .await)?;
    Ok(found.is_some())
}

/// Every webhook of these tenants: those whose rows check, and the failures of those that
/// do not (which get no deliveries; the caller reports them).
pub async fn of_tenants(
    conn: impl Into<Conn<'_>>,
    integrity: &IntegrityKey,
    tenants: &[&TenantId],
) -> StoreResult<(Vec<WebhookSubscription>, Vec<IntegrityFailure>)> {
    if tenants.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut b = super::SqlBuilder::default();
    b.push("SELECT ")
        .push(COLUMNS)
        .push(" FROM webhooks WHERE tenant_id IN ")
        .bind_texts(tenants.iter().map(|t| t.as_str()));
    let sql = sqlx::AssertSqlSafe(b.sql);
    let mut conn = conn.into();
    let rows: Vec<StoredWebhook> = on_conn!(conn, c => super::bind_all!(sqlx::query_as(sql), &b.binds)
        .fetch_all(c)
        .await)?;
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for r in rows {
        match r.verify(integrity) {
            Ok(()) => good.push(r.row.try_into()?),
            Err(f) => bad.push(f),
        }
    }
    Ok((good, bad))
}

/// A delivery to queue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    pub id: String,
    pub webhook_id: WebhookId,
    pub tenant_id: TenantId,
    pub event_id: String,
    pub event_type: String,
}

/// Queues deliveries (one per webhook and event: a repeat is ignored) and marks the events
/// fanned out.
pub async fn fan_out(
    tx: &mut Tx,
    deliveries: &[NewDelivery],
    events: &[String],
    now: i64,
) -> StoreResult<()> {
    let pending = sql_text(DeliveryStatus::Pending.as_str());
    for chunk in deliveries.chunks(1000) {
        let sql = format!(
            "INSERT INTO webhook_deliveries (id, webhook_id, tenant_id, event_id, event_type, status, \
             attempts, next_attempt_at, created_at, updated_at) VALUES {} ON CONFLICT DO NOTHING",
            (0..chunk.len())
                .map(|i| {
                    let b = i * 6;
                    format!(
                        "(${}, ${}, ${}, ${}, ${}, {pending}, 0, ${}, ${}, ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 5,
                        b + 6,
                        b + 6,
                        b + 6
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        );
        on_tx!(tx, c => {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.clone()));
            for d in chunk {
                q = q
                    .bind(&d.id)
                    .bind(d.webhook_id.to_string())
                    .bind(d.tenant_id.as_str())
                    .bind(&d.event_id)
                    .bind(&d.event_type)
                    .bind(now);
            }
            q.execute(&mut *c).await.map(|_| ())
        })?;
    }
    super::outbox::mark_dispatched(tx, events).await
}

/// A claimed delivery as read, with what its webhook's MAC covers.
#[derive(sqlx::FromRow)]
struct DueRow {
    id: String,
    attempts: i64,
    created_at: i64,
    webhook_id: String,
    tenant_id: String,
    url: String,
    kek_version: i64,
    secret: Vec<u8>,
    event_id: String,
    event_type: String,
    payload: String,
    occurred_at: i64,
    hook_events: String,
    hook_created_at: i64,
    hook_mac: Option<Vec<u8>>,
}

/// A claimed delivery whose webhook row could not be read (a stored tenant or id that does not
/// parse): it is never sent. `failure` is its MAC check's, if that failed too (it does whenever
/// the columns were changed by anyone without the row key).
#[derive(Debug)]
pub struct RefusedDelivery {
    pub id: String,
    pub failure: Option<IntegrityFailure>,
    pub cause: StoreError,
}

impl DueRow {
    /// Checked against the webhook's MAC on the columns as read, then parsed: a row that does
    /// not parse refuses that one delivery, not the batch it was claimed with.
    fn checked(self, integrity: &IntegrityKey) -> Result<DueDelivery, RefusedDelivery> {
        let parts = webhook_parts(
            &self.webhook_id,
            &self.tenant_id,
            &self.url,
            &self.hook_events,
            self.hook_created_at,
        );
        let tampered = integrity
            .check_row(
                Purpose::Webhook,
                &self.webhook_id,
                &parts,
                self.hook_mac.as_deref(),
            )
            .err();
        let ids = super::stored_id("webhooks.id", &self.webhook_id)
            .and_then(|w| Ok((w, crate::store::stored_tenant(&self.tenant_id)?)));
        let (webhook_id, tenant_id) = match ids {
            Ok(ids) => ids,
            Err(cause) => {
                return Err(RefusedDelivery {
                    id: self.id,
                    failure: tampered,
                    cause,
                });
            }
        };
        Ok(DueDelivery {
            id: self.id,
            attempts: self.attempts,
            created_at: self.created_at,
            webhook_id,
            tenant_id,
            url: self.url,
            kek_version: self.kek_version,
            secret: self.secret,
            event_id: self.event_id,
            event_type: self.event_type,
            payload: self.payload,
            occurred_at: self.occurred_at,
            format: WebhookFormat::of_events(
                &serde_json::from_str::<Vec<String>>(&self.hook_events).unwrap_or_default(),
            ),
            tampered,
        })
    }
}

/// Leases up to `limit` due deliveries to `owner` until `until` (PostgreSQL skips rows
/// another replica is claiming), so no attempt is sent twice. Deliveries to the webhooks in
/// `busy` (those with as many attempts in flight as they may) are left for later.
pub async fn claim_due(
    db: &Db,
    integrity: &IntegrityKey,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
    busy: &[WebhookId],
) -> StoreResult<(Vec<DueDelivery>, Vec<RefusedDelivery>)> {
    if !any_due(db, now).await? {
        return Ok((Vec::new(), Vec::new()));
    }
    let mut tx = db.begin().await?;
    // Placeholders only: the ids are bound.
    let not_busy: String = (0..busy.len())
        .map(|i| format!(" AND webhook_id <> ${}", i + 5))
        .collect();
    let claim = sqlx::AssertSqlSafe(tx.claim_batch(
        &format!(
            "SELECT id FROM webhook_deliveries WHERE status = {} AND next_attempt_at <= $3 \
             AND (lease_until IS NULL OR lease_until < $3){not_busy} \
             ORDER BY next_attempt_at LIMIT $4",
            sql_text(DeliveryStatus::Pending.as_str())
        ),
        "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2 FROM picked \
         WHERE id = picked.pick RETURNING id",
    ));
    let ids: Vec<String> = on_tx!(&mut tx, c => busy.iter().fold(
        sqlx::query_scalar(claim)
            .bind(owner)
            .bind(until)
            .bind(now)
            .bind(limit),
        |q, id| q.bind(id.to_string()))
        .fetch_all(&mut *c)
        .await)?;
    if ids.is_empty() {
        tx.commit().await?;
        return Ok((Vec::new(), Vec::new()));
    }
    let mut b = super::SqlBuilder::default();
    b.push(
        "SELECT d.id, d.attempts, d.created_at, w.id AS webhook_id, w.tenant_id, w.url, \
         w.kek_version, w.secret, e.id AS event_id, e.event_type, e.payload, e.occurred_at, \
         w.events AS hook_events, w.created_at AS hook_created_at, w.mac AS hook_mac \
         FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id \
         JOIN domain_events e ON e.id = d.event_id WHERE d.id IN ",
    )
    .bind_texts(ids.iter().cloned())
    .push(" ORDER BY d.next_attempt_at");
    let sql = sqlx::AssertSqlSafe(b.sql);
    let rows: Vec<DueRow> = on_tx!(&mut tx, c => super::bind_all!(sqlx::query_as(sql), &b.binds)
        .fetch_all(&mut *c)
        .await)?;
    tx.commit().await?;
    let (mut due, mut refused) = (Vec::new(), Vec::new());
    for r in rows {
        match r.checked(integrity) {
            Ok(d) => due.push(d),
            Err(r) => refused.push(r),
        }
    }
    Ok((due, refused))
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status: i64,
    },
    /// Failed; try again at `next_at`.
    Retry {
        status: Option<i64>,
        error: String,
        next_at: i64,
    },
    /// Failed for the last time.
    GaveUp {
        status: Option<i64>,
        error: String,
    },
}

/// Records an attempt and releases the lease, only while `owner` holds it. Returns whether
/// it did.
pub async fn record_attempt(
    db: &Db,
    id: &str,
    owner: &str,
    attempt: &Attempt,
    now: i64,
) -> StoreResult<bool> {
    let (status, code, error, next_at, delivered_at) = match attempt {
        Attempt::Delivered { status } => (
            DeliveryStatus::Delivered,
            Some(*status),
            None,
            now,
            Some(now),
        ),
        Attempt::Retry {
            status,
            error,
            next_at,
        } => (
            DeliveryStatus::Pending,
            *status,
            Some(error.as_str()),
            *next_at,
            None,
        ),
        Attempt::GaveUp { status, error } => (
            DeliveryStatus::Failed,
            *status,
            Some(error.as_str()),
            now,
            None,
        ),
    };
    let mut tx = db.begin().await?;
    let done = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE webhook_deliveries SET status = $1, attempts = attempts + 1, last_status = $2, \
         last_error = $3, next_attempt_at = $4, delivered_at = $5, updated_at = $6, \
         lease_owner = NULL, lease_until = NULL WHERE id = $7 AND lease_owner = $8")
        .bind(status.as_str())
        .bind(code)
        .bind(error)
        .bind(next_at)
        .bind(delivered_at)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    tx.commit().await?;
    Ok(done)
}

/// Gives back a leased delivery unsent and with no attempt counted (its target already has
/// as many attempts in flight as it may), only while `owner` holds it.
pub async fn release(db: &Db, id: &str, owner: &str) -> StoreResult<bool> {
    let mut tx = db.begin().await?;
    let done = on_tx!(&mut tx, c => sqlx::query(
        "UPDATE webhook_deliveries SET lease_owner = NULL, lease_until = NULL \
         WHERE id = $1 AND lease_owner = $2")
        .bind(id)
        .bind(owner)
        .execute(&mut *c)
        .await
        .map(|r| r.rows_affected() == 1))?;
    tx.commit().await?;
    Ok(done)
}

pub use crate::domain::audit::DeliveryRow;

/// A [`DeliveryRow`] as stored: its status is parsed on the way out.
#[derive(sqlx::FromRow)]
struct StoredDelivery {
    id: String,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
    next_attempt_at: i64,
    created_at: i64,
    updated_at: i64,
    delivered_at: Option<i64>,
}

impl TryFrom<StoredDelivery> for DeliveryRow {
    type Error = StoreError;
    fn try_from(r: StoredDelivery) -> StoreResult<Self> {
        Ok(DeliveryRow {
            status: DeliveryStatus::parse(&r.status)?,
            id: r.id,
            event_id: r.event_id,
            event_type: r.event_type,
            attempts: r.attempts,
            last_status: r.last_status,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            created_at: r.created_at,
            updated_at: r.updated_at,
            delivered_at: r.delivered_at,
        })
    }
}

/// A page of a webhook's deliveries, newest first, and how many it has.
pub async fn deliveries(
    conn: impl Into<Conn<'_>>,
    webhook_id: &WebhookId,
    limit: i64,
    offset: i64,
) -> StoreResult<(Vec<DeliveryRow>, i64)> {
    let mut conn = conn.into();
    let rows: Vec<StoredDelivery> = on_conn!(conn, c => sqlx::query_as(
        "SELECT id, event_id, event_type, status, attempts, last_status, last_error, \
         next_attempt_at, created_at, updated_at, delivered_at FROM webhook_deliveries \
         WHERE webhook_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2 OFFSET $3")
        .bind(webhook_id.to_string())
        .bind(limit)
        .bind(offset)
        .fetch_all(c)
        .await)?;
    let total = on_conn!(conn, c => sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = $1")
        .bind(webhook_id.to_string())
        .fetch_one(c)
        .await)?;
    let rows = rows
        .into_iter()
        .map(DeliveryRow::try_from)
        .collect::<StoreResult<_>>()?;
    Ok((rows, total))
}

/// Gives every webhook its MAC (adoption of a database from before row integrity). Returns
/// how many rows.
pub async fn adopt(tx: &mut Tx, integrity: &IntegrityKey) -> StoreResult<u64> {
    let sql = sqlx::AssertSqlSafe(format!("SELECT {COLUMNS} FROM webhooks"));
    let rows: Vec<StoredWebhook> = on_tx!(tx, c => sqlx::query_as(sql).fetch_all(&mut *c).await)?;
    let adopted = rows.len() as u64;
    for StoredWebhook { row, .. } in rows {
        let row = WebhookSubscription::try_from(row)?;
        on_tx!(tx, c => sqlx::query("UPDATE webhooks SET mac = $1 WHERE id = $2")
            .bind(webhook_mac(integrity, &row))
            .bind(row.id.to_string())
            .execute(&mut *c)
            .await
            .map(|_| ()))?;
    }
    Ok(adopted)
}
