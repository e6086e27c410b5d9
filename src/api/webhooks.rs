//! `/v1/webhooks`: subscriptions to the tenant's events (admin).

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, QueryPairs, present};
use super::fields::Fields;
use crate::domain::audit::{DeliveryRow, DeliveryStatus};
use crate::domain::webhook_format::WebhookFormat;
use crate::domain::{ValidationErrors, format_timestamp};
use crate::service::webhooks::{NewWebhook, Webhook};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/webhooks", get(list).post(create))
        .route("/v1/webhooks/{id}", axum::routing::delete(delete))
        .route("/v1/webhooks/{id}/deliveries", get(deliveries))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhookBody {
    /// `https://` to a public address (`http://` and private addresses only where the
    /// deployment allows insecure targets).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, example = "https://hooks.example.com/simvault")]
    pub url: Option<Value>,
    /// Event names to receive.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>, required = true, min_items = 1, example = json!(["sim.created", "task.completed"]))]
    pub events: Option<Value>,
    /// At most 500 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Value>,
    /// `native` (the default) or `telco`: the physical SIM API's event names
    /// (`sim.physical.created`, `sim.physical.state_changed`, `sim.physical.pin_reset`,
    /// `sim.physical.pin_blocked`, `sim.physical.deleted`) and its payload
    /// `{event, timestamp, data}`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "native")]
    pub format: Option<Value>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// `native` or `telco`.
    pub format: &'static str,
    pub description: Option<String>,
    pub created_at: String,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        WebhookView {
            id: w.id,
            url: w.url,
            events: w.events,
            format: w.format.as_str(),
            description: w.description,
            created_at: format_timestamp(w.created_at),
        }
    }
}

/// The creation answer: the only time the signing secret is shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedWebhookView {
    pub id: uuid::Uuid,
    pub url: String,
    pub events: Vec<String>,
    /// `native` or `telco`.
    pub format: &'static str,
    pub description: Option<String>,
    /// Verify `Simvault-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`
    /// with this (its UTF-8 bytes are the key). Shown once.
    pub secret: String,
    pub created_at: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    pub items: Vec<WebhookView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    pub id: String,
    /// The event's id (the `id` of the delivered body; receivers de-duplicate on it).
    pub event_id: String,
    pub event: String,
    /// pending, delivered or failed.
    pub status: String,
    pub attempts: i64,
    /// The receiver's last HTTP status, if it answered.
    pub last_status_code: Option<i64>,
    pub last_error: Option<String>,
    /// When a pending delivery is next tried.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

impl From<DeliveryRow> for DeliveryView {
    fn from(d: DeliveryRow) -> Self {
        DeliveryView {
            next_attempt_at: (d.status == DeliveryStatus::Pending)
                .then(|| format_timestamp(d.next_attempt_at)),
            id: d.id,
            event_id: d.event_id,
            event: d.event_type,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            last_status_code: d.last_status,
            last_error: d.last_error,
            created_at: format_timestamp(d.created_at),
            delivered_at: d.delivered_at.map(format_timestamp),
        }
    }
}

/// Subscribe a URL to events (admin). The answer holds the signing secret, shown only here.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = CreateWebhookBody,
    responses(
        (status = 201, description = "Created", body = CreatedWebhookView),
        (status = 400, description = "Invalid input (URL not allowed, unknown events)", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
    ))]
async fn create(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<CreateWebhookBody>,
) -> ApiResult<impl IntoResponse> {
    let mut errs = ValidationErrors::new();
    let mut f = Fields { errs: &mut errs };
    let url = f
        .required_str("url", &body.url)
        .unwrap_or_default()
        .to_owned();
    let description = f
        .optional_str("description", &body.description)
        .map(str::to_owned);
    let events = match &body.events {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, v)| match v.as_str() {
                Some(s) => Some(s.to_owned()),
                None => {
                    errs.pointer(format!("/events/{i}"), "must be a string");
                    None
                }
            })
            .collect(),
        None | Some(Value::Null) => {
            errs.pointer("/events", "is required");
            Vec::new()
        }
        Some(_) => {
            errs.pointer("/events", "must be an array of event names");
            Vec::new()
        }
    };
    let format = match &body.format {
        None | Some(Value::Null) => WebhookFormat::Native,
        Some(v) => v
            .as_str()
            .and_then(WebhookFormat::parse)
            .unwrap_or_else(|| {
                errs.pointer("/format", "format must be native or telco");
                WebhookFormat::Native
            }),
    };
    errs.finish(())?;
    let created = state
        .services
        .webhooks()
        .create_webhook(
            &principal,
            NewWebhook {
                url,
                events,
                format,
                description,
            },
        )
        .await?;
    let w = created.webhook;
    let location = format!("/v1/webhooks/{}", w.id);
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        axum::Json(CreatedWebhookView {
            id: w.id,
            url: w.url,
            events: w.events,
            format: w.format.as_str(),
            description: w.description,
            secret: created.secret.expose_secret().to_owned(),
            created_at: format_timestamp(w.created_at),
        }),
    ))
}

/// The tenant's webhooks, oldest first (admin; never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "Every webhook", body = WebhookList)))]
async fn list(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<WebhookList>> {
    let hooks = state.services.webhooks().list_webhooks(&principal).await?;
    Ok(axum::Json(WebhookList {
        items: hooks.into_iter().map(WebhookView::from).collect(),
    }))
}

/// Delete a webhook; its pending deliveries are dropped (admin).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook in your tenant", body = super::openapi::Problem),
    ))]
async fn delete(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = crate::domain::WebhookId::parse(&id).map_err(|_| ApiError::NotFound)?;
    state
        .services
        .webhooks()
        .delete_webhook(&principal, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A webhook's deliveries, newest first (admin).
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(
        ("id" = uuid::Uuid, Path),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses(
        (status = 200, description = "One page", body = super::PageView<DeliveryView>),
        (status = 404, description = "No such webhook in your tenant", body = super::openapi::Problem),
    ))]
async fn deliveries(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<DeliveryView>>> {
    let id = crate::domain::WebhookId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .webhooks()
        .webhook_deliveries(&principal, id, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}
