//! HTTP: routers and request/response types only. No SQL, no crypto: handlers extract,
//! call a service function and map its error.

pub mod admin;
pub mod auc;
pub mod audit;
pub mod bulk;
pub mod bulk_changes;
pub mod devices;
pub mod error;
pub mod extract;
mod fields;
pub mod groups;
pub mod large_body;
pub mod lifecycle;
pub mod openapi;
mod ops;
pub mod pins;
pub mod plans;
pub mod profiles;
pub mod secrets;
pub mod sims;
pub mod tasks;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::PrometheusHandle;
use tracing::Instrument;

use crate::auth::Authenticator;
use crate::service::Services;
use error::{ApiError, PendingProblem, render_problem};

/// Largest request body accepted.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served (set by the request-context middleware).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// Shared by all handlers.
#[derive(Clone, Debug)]
pub struct AppState {
    pub services: Arc<Services>,
    pub auth: Arc<Authenticator>,
    pub metrics: Option<PrometheusHandle>,
    /// Large request bodies in progress per principal.
    pub large_bodies: Arc<large_body::LargeBodies>,
    /// The TLS configuration in force (readiness reports an expired CRL).
    pub tls: Arc<crate::server::tls::ServerTls>,
    /// The identity provider for console sign-in, when one is configured.
    pub oidc: Option<Arc<crate::auth::oidc::LazyOidcClient>>,
}

/// One page of a paginated list: `{items, total, page, page_size, pages}`.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PageView<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
    pub pages: u64,
}

impl<T> PageView<T> {
    /// The answer for a service page, each item turned into its view.
    pub fn of<S>(page: crate::service::Page<S>) -> Self
    where
        T: From<S>,
    {
        PageView {
            pages: crate::domain::sim::page_count(page.total, page.page_size),
            items: page.items.into_iter().map(T::from).collect(),
            total: page.total,
            page: page.page,
            page_size: page.page_size,
        }
    }
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(sims::router())
        .merge(secrets::router())
        .merge(pins::router())
        .merge(auc::router())
        .merge(lifecycle::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(plans::router())
        .merge(groups::router())
        .merge(devices::router())
        .merge(bulk::router())
        .merge(bulk_changes::router())
        .merge(tasks::router())
        .merge(webhooks::router())
        .merge(ops::router())
        .merge(profiles::router())
        .nest("/console", crate::console::router())
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(axum::middleware::from_fn(crate::telemetry::tenant_scope))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// A client-supplied request id is kept if it is short and plain (it ends up in logs).
fn request_id(req: &Request) -> String {
    req.headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

/// Per request: an id (echoed in `X-Request-Id`, logged, and named in problem documents), a
/// tracing span, metrics by route and status, problem bodies, and no caching of API answers.
async fn request_context(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let id = request_id(&req);
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let span = tracing::info_span!("request", request_id = %id, method = %method, route = %route);
    let mut req = req;
    req.extensions_mut().insert(RequestId(id.clone()));
    let started = Instant::now();

    let mut res = next.run(req).instrument(span.clone()).await;

    // The handler (and every transaction it held) is done: report a row that failed its check.
    if let Some(failure) = res
        .extensions_mut()
        .remove::<crate::domain::integrity::IntegrityFailure>()
    {
        state
            .services
            .report_integrity(&failure)
            .instrument(span.clone())
            .await;
    }

    if let Some(PendingProblem(problem)) = res.extensions_mut().remove::<PendingProblem>() {
        let status = res.status();
        let headers = std::mem::take(res.headers_mut());
        let (body, content_type) = match profiles::render_problem(&path, &problem, &id) {
            Some(body) => (body, "application/json"),
            None => (
                render_problem(problem, &path, &id),
                "application/problem+json",
            ),
        };
        res = (status, body).into_response();
        res.headers_mut().extend(headers);
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Ok(v) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    if path.starts_with("/v1/") || profiles::PREFIXES.iter().any(|p| path.starts_with(p)) {
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    res.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );

    let status = res.status().as_u16().to_string();
    let elapsed = started.elapsed().as_secs_f64();
    if state.metrics.is_some() {
        let tenant = res
            .extensions()
            .get::<crate::telemetry::RequestTenant>()
            .map(|t| t.0.clone())
            .unwrap_or_default();
        let labels = [
            ("method", method.to_string()),
            ("route", route),
            ("status", status),
            ("tenant", tenant),
        ];
        metrics::counter!("simvault_http_requests_total", &labels).increment(1);
        metrics::histogram!("simvault_http_request_duration_seconds", &labels).record(elapsed);
    }
    span.in_scope(|| {
        tracing::debug!(
            status = res.status().as_u16(),
            elapsed_ms = elapsed * 1000.0,
            "request finished"
        )
    });
    res
}
