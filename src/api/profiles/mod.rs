//! API profiles: the SIM APIs our users already have clients for, each served at its own prefix
//! beside the native `/v1` API (`../shared/PROFILES.md`).
//!
//! A profile is a translation and nothing more: it parses its own request shape into the same
//! domain inputs as the native handlers, calls the same service functions (so the same
//! authorization, policies, audit records, events and transactions apply), and renders the
//! result and its errors in its own shape. No business rule, policy decision or audit write
//! lives here.

use axum::Router;
use utoipa::OpenApi;

use super::AppState;

pub mod carrier;
pub mod device_platform;
pub mod iot;
pub mod telco;

/// The prefixes the profiles are served at, besides those under the native `/v1/`.
pub const PREFIXES: &[&str] = &["/iot/v1/", "/v2/", "/device-platform/v1/"];

/// Every profile's routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(iot::router())
        .merge(carrier::router())
        .merge(device_platform::router())
        .merge(telco::router())
}

/// Every profile's OpenAPI document (each under its own tag), merged into `/openapi.json`.
pub fn documents() -> Vec<utoipa::openapi::OpenApi> {
    vec![
        iot::IotDoc::openapi(),
        carrier::document(),
        device_platform::DeviceDoc::openapi(),
        telco::TelcoDoc::openapi(),
    ]
}

/// The error body of a profile whose errors have their own shape, for a native `problem` on
/// `path`; `None` where errors are native problem documents.
pub fn render_problem(
    path: &str,
    problem: &serde_json::Map<String, serde_json::Value>,
    request_id: &str,
) -> Option<Vec<u8>> {
    carrier::serves(path).then(|| carrier::errors::render(problem, request_id))
}
