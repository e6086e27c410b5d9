//! Webhook subscriptions and the deliveries due to them, as kept.

use super::integrity::IntegrityFailure;
use super::{TenantId, Timestamp, WebhookId};

/// A tenant's subscription to events.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSubscription {
    pub id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    /// JSON array of event names, as written: the dispatcher matches on these names, so that
    /// a kind written by another release still matches.
    pub events: String,
    pub description: Option<String>,
    /// The signing secret, sealed under this tenant KEK version.
    pub kek_version: i64,
    pub secret: Vec<u8>,
    pub created_at: Timestamp,
}

/// A claimed delivery with what it takes to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    pub id: String,
    pub attempts: i64,
    pub created_at: Timestamp,
    pub webhook_id: WebhookId,
    pub tenant_id: TenantId,
    pub url: String,
    pub kek_version: i64,
    pub secret: Vec<u8>,
    pub event_id: String,
    pub event_type: String,
    pub payload: String,
    pub occurred_at: Timestamp,
    /// The shape of the body, as the webhook's (authenticated) event names say.
    pub format: super::webhook_format::WebhookFormat,
    /// Set when the webhook's row failed its check: such a delivery must not be sent.
    pub tampered: Option<IntegrityFailure>,
}
