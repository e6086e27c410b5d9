//! Webhooks: subscriptions (admin), the fan-out of outbox events into deliveries, and the
//! delivery worker that signs, sends and retries them.
//!
//! Every change writes its event to the outbox (`domain_events`) in its own transaction. A
//! dispatcher turns each event into one delivery per subscribed webhook (and marks it
//! dispatched) in one transaction; the sender leases due deliveries (PostgreSQL `FOR UPDATE
//! SKIP LOCKED`), so each attempt is sent by one replica, and records the outcome. Failed
//! attempts are retried with exponential backoff and jitter until the delivery is older than
//! the give-up age (24 hours by default), then marked failed. Everything is in the database:
//! a restart resumes where it stopped.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};

mod delivery;

pub use delivery::{backoff, worker};

use super::audit::Event;
use super::{Page, ServiceError, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::event::EventKind;
use crate::domain::webhook::WebhookSubscription;
use crate::domain::webhook_format::WebhookFormat;
use crate::domain::webhook_target::check_url;
use crate::domain::{Principal, Timestamp, ValidationErrors, WebhookId};
use crate::policy::Action;
use crate::store::webhooks::{self as repo, DeliveryRow};
use crate::vault;

super::capability! {
    /// Webhook subscriptions and the delivery of outbox events to them.
    pub struct Webhooks {
        core: super::Core,
        settings: WebhookSettings,
    }
}

/// Longest description.
const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Events fanned out per transaction.
const DISPATCH_BATCH: i64 = 500;

/// How webhooks are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSettings {
    /// `http://` and loopback/private targets allowed (tests, labs).
    pub allow_insecure: bool,
    /// Per attempt.
    pub timeout: Duration,
    /// The first retry's delay; each later one doubles (with jitter), up to an hour.
    pub retry_base: Duration,
    /// A delivery still failing this long after its event is marked failed.
    pub give_up_after: Duration,
    /// How often the worker looks for events and due deliveries.
    pub poll: Duration,
    /// Deliveries sent at once by one replica.
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            allow_insecure: false,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            give_up_after: Duration::from_secs(24 * 3600),
            poll: Duration::from_secs(1),
            concurrency: 8,
        }
    }
}

/// A subscription as its owner sees it (never the secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Webhook {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// How its deliveries are shaped (carried by its event names).
    pub format: WebhookFormat,
    pub description: Option<String>,
    pub created_at: Timestamp,
}

/// A new subscription and its signing secret, shown this once.
#[derive(Debug)]
pub struct CreatedWebhook {
    pub webhook: Webhook,
    pub secret: SecretString,
}

/// A `POST /v1/webhooks` body, not yet checked.
#[derive(Debug, Clone, Default)]
pub struct NewWebhook {
    pub url: String,
    pub events: Vec<String>,
    /// The shape of its deliveries, and so the event names it takes.
    pub format: WebhookFormat,
    pub description: Option<String>,
}

impl TryFrom<WebhookSubscription> for Webhook {
    type Error = ServiceError;
    fn try_from(r: WebhookSubscription) -> ServiceResult<Webhook> {
        let events: Vec<String> = serde_json::from_str(&r.events)
            .map_err(|_| ServiceError::internal("corrupt webhook events"))?;
        Ok(Webhook {
            id: r.id.into(),
            url: r.url,
            format: WebhookFormat::of_events(&events),
            events,
            description: r.description,
            created_at: r.created_at,
        })
    }
}

impl Webhooks {
    /// `POST /v1/webhooks` (admin): the secret is returned here and never again.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "create_webhook"))]
    pub async fn create_webhook(
        &self,
        principal: &Principal,
        new: NewWebhook,
    ) -> ServiceResult<CreatedWebhook> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::ManageWebhooks)
            .await?;
        let mut errors = ValidationErrors::new();
        let url = match check_url(new.url.trim(), self.settings.allow_insecure) {
            Ok(u) => Some(u),
            Err(e) => {
                errors.pointer("/url", e);
                None
            }
        };
        if new.events.is_empty() {
            errors.pointer("/events", "name at least one event");
        }
        let mut events: Vec<EventKind> = Vec::new();
        for (i, e) in new.events.iter().enumerate() {
            match new.format.event(e) {
                None => errors.pointer(
                    format!("/events/{i}"),
                    format!(
                        "unknown event for the {} format; one of {}",
                        new.format.as_str(),
                        new.format.names()
                    ),
                ),
                Some(kind) if events.contains(&kind) => {
                    errors.pointer(format!("/events/{i}"), "named twice");
                }
                Some(kind) => events.push(kind),
            }
        }
        // Stored as the format names them: the names carry the format.
        let names: Vec<&str> = match new.format {
            WebhookFormat::Native => events.iter().map(|k| k.as_str()).collect(),
            WebhookFormat::Telco => new.events.iter().map(String::as_str).collect(),
        };
        if let Some(d) = &new.description
            && (d.chars().count() > MAX_DESCRIPTION_CHARS || d.chars().any(char::is_control))
        {
            errors.pointer(
                "/description",
                "must be at most 500 characters, without control characters",
            );
        }
        let Some(url) = url.filter(|_| errors.is_empty()) else {
            return Err(errors.into());
        };
        let tenant = &principal.tenant;
        let id = WebhookId::new();
        let key = vault::new_key()?;
        let secret = SecretString::from(format!(
            "whsec_{}",
            base64::Engine::encode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                key.as_ref()
            )
        ));
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let (version, kek) = self.core.active_kek(&mut tx, tenant).await?;
        let row = WebhookSubscription {
            id,
            tenant_id: tenant.to_owned(),
            url: url.to_string(),
            events: serde_json::to_string(&names).map_err(|e| {
                ServiceError::internal_because("webhook events that do not serialise", e)
            })?,
            description: new.description,
            kek_version: version,
            secret: vault::seal(
                &kek,
                secret.expose_secret().as_bytes(),
                &vault::webhook_secret_aad(tenant, &id, version),
            )?,
            created_at: now,
        };
        repo::insert(&mut tx, &*self.core.row_key()?, &row).await?;
        let reason = format!(
            "webhook {id} to {} for {}",
            url.host_str().unwrap_or_default(),
            names.join(", ")
        );
        let event = Event::tenant_wide(
            Action::ManageWebhooks,
            AuditOutcome::Allowed,
            Some(&reason),
            decision.policy_ids,
        );
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        tracing::info!(webhook_id = %id, tenant = %tenant, "webhook created");
        Ok(CreatedWebhook {
            webhook: Webhook::try_from(row)?,
            secret,
        })
    }

    /// `GET /v1/webhooks` (admin).
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_webhooks"))]
    pub async fn list_webhooks(&self, principal: &Principal) -> ServiceResult<Vec<Webhook>> {
        self.core
            .authorize_in_tenant(principal, Action::ManageWebhooks)
            .await?;
        repo::list(&self.core.db, &*self.core.row_key()?, &principal.tenant)
            .await?
            .into_iter()
            .map(Webhook::try_from)
            .collect()
    }

    /// `DELETE /v1/webhooks/{id}` (admin): pending deliveries are dropped with it.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "delete_webhook"))]
    pub async fn delete_webhook(&self, principal: &Principal, id: WebhookId) -> ServiceResult<()> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::ManageWebhooks)
            .await?;
        let mut tx = self.core.db.begin().await?;
        if !repo::delete(&mut tx, &principal.tenant, &id).await? {
            return Err(ServiceError::NotFound);
        }
        let reason = format!("webhook {id} deleted");
        let event = Event::tenant_wide(
            Action::ManageWebhooks,
            AuditOutcome::Allowed,
            Some(&reason),
            decision.policy_ids,
        );
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        tracing::info!(webhook_id = %id, "webhook deleted");
        Ok(())
    }

    /// `GET /v1/webhooks/{id}/deliveries` (admin): newest first.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "webhook_deliveries"))]
    pub async fn webhook_deliveries(
        &self,
        principal: &Principal,
        id: WebhookId,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<DeliveryRow>> {
        self.core
            .authorize_in_tenant(principal, Action::ManageWebhooks)
            .await?;
        repo::get(
            &self.core.db,
            &*self.core.row_key()?,
            &principal.tenant,
            &id,
        )
        .await?
        .ok_or(ServiceError::NotFound)?;
        let offset = crate::service::page_offset(page, page_size);
        let (items, total) =
            repo::deliveries(&self.core.db, &id, i64::from(page_size), offset).await?;
        Ok(Page::counted(items, total, page, page_size))
    }
}
