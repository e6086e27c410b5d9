//! Operations endpoints: liveness, readiness, metrics and the API description.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::Caller;
use crate::service::Readiness;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
}

/// Liveness: the process serves requests. No authentication.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "Alive", body = Object)))]
async fn healthz() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok"}))
}

/// Readiness: the database answers, keys are loaded and no client CRL has expired. No
/// authentication.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "Not ready: which part is not", body = Object),
    ))]
async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (status, body) = match state
        .services
        .admin()
        .readiness(|now| state.tls.crl_expired(now))
        .await
    {
        Readiness::Ready => (
            StatusCode::OK,
            serde_json::json!({"status": "ready", "database": "ok", "keys": "loaded"}),
        ),
        Readiness::KeysUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not-ready", "keys": "unavailable"}),
        ),
        Readiness::CrlExpired => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not-ready", "crl": "expired"}),
        ),
        Readiness::DatabaseUnavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "not-ready", "database": "unavailable"}),
        ),
    };
    (status, axum::Json(body))
}

/// Prometheus metrics (text format), for principals with the `metrics` or `admin` role: their
/// tenant's series only, unless their tenant is the platform's.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", content_type = "text/plain"),
        (status = 404, description = "Metrics are not collected by this server", body = super::openapi::Problem),
    ))]
async fn metrics(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<impl IntoResponse> {
    let scope = state.services.admin().authorize_metrics(&principal).await?;
    let all = state.metrics.as_ref().ok_or(ApiError::NotFound)?.render();
    let body = crate::telemetry::scoped(&all, &scope);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body))
}

/// This document. No authentication.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(super) async fn openapi() -> impl IntoResponse {
    axum::Json(super::openapi::document())
}
