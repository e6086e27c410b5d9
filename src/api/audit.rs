//! `/v1/audit`: reading, verifying and exporting the tenant's audit log (auditors).

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{Caller, QueryPairs};
use crate::audit::export::{AuditEventView, ExportFormat};
use crate::domain::audit::AuditFilter;
use crate::domain::{ValidationErrors, parse_timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/audit/verify", get(verify))
        .route("/v1/audit/events", get(events))
        .route("/v1/audit/export", get(export))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct VerifyView {
    /// Whether the whole chain, its recorded end and its signed checkpoints agree.
    pub ok: bool,
    /// Records checked before the first break (all of them when `ok`).
    pub checked: i64,
    pub head_hash: Option<String>,
    /// The first sequence number at which the chain is broken.
    pub first_bad_seq: Option<i64>,
    /// Signed checkpoints found genuine and matching the chain.
    pub checkpoints: i64,
}

/// Check the tenant's hash chain and its signed checkpoints (auditor).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "audit",
    responses(
        (status = 200, description = "The verdict", body = VerifyView),
        (status = 403, description = "Not an auditor", body = super::openapi::Problem),
    ))]
async fn verify(
    State(state): State<AppState>,
    Caller(principal): Caller,
) -> ApiResult<axum::Json<VerifyView>> {
    let v = state.services.audit().verify_audit(&principal).await?;
    Ok(axum::Json(VerifyView {
        ok: v.ok,
        checked: v.checked,
        head_hash: v.head_hash,
        first_bad_seq: v.first_bad_seq,
        checkpoints: v.checkpoints,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub items: Vec<AuditEventView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page.
    pub next_cursor: Option<String>,
}

const FILTERS: [&str; 6] = ["actor", "action", "sim", "outcome", "since", "until"];

fn parse_filter(q: &QueryPairs, errs: &mut ValidationErrors) -> AuditFilter {
    let mut text = |name: &str| {
        q.one(name, errs).map(str::to_owned).filter(|v| {
            let ok = (1..=256).contains(&v.chars().count());
            if !ok {
                errs.parameter(name, "must be 1 to 256 characters");
            }
            ok
        })
    };
    let (actor, action, sim, outcome) =
        (text("actor"), text("action"), text("sim"), text("outcome"));
    let mut instant = |name: &str| {
        q.one(name, errs).and_then(|v| {
            let t = parse_timestamp(v);
            if t.is_none() {
                errs.parameter(
                    name,
                    "must be an RFC 3339 date-time such as 2026-01-15T10:30:00Z",
                );
            }
            t
        })
    };
    let (since, until) = (instant("since"), instant("until"));
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        errs.parameter("until", "must not be before since");
    }
    AuditFilter {
        actor,
        action,
        sim,
        outcome,
        since,
        until,
    }
}

fn encode_cursor(seq: i64) -> String {
    B64.encode(format!("seq:{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<i64> {
    let text = String::from_utf8(B64.decode(cursor).ok()?).ok()?;
    text.strip_prefix("seq:")?.parse().ok().filter(|n| *n > 0)
}

/// List the tenant's audit records, newest first (auditor).
#[utoipa::path(get, path = "/v1/audit/events", tag = "audit",
    params(
        ("actor" = Option<String>, Query, min_length = 1, max_length = 256, description = "The acting principal's subject"),
        ("action" = Option<String>, Query, min_length = 1, max_length = 256, description = "e.g. `secrets.read`"),
        ("sim" = Option<String>, Query, min_length = 1, max_length = 256, description = "A SIM's id or ICCID"),
        ("outcome" = Option<String>, Query, min_length = 1, max_length = 256, description = "e.g. `denied`"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "1 to 500, default 100"),
    ),
    responses(
        (status = 200, description = "A page of records", body = AuditPage),
        (status = 400, description = "Invalid parameters", body = super::openapi::Problem),
        (status = 403, description = "Not an auditor", body = super::openapi::Problem),
    ))]
async fn events(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<AuditPage>> {
    let mut errs = ValidationErrors::new();
    let mut known = FILTERS.to_vec();
    known.extend(["cursor", "limit"]);
    q.reject_unknown(&known, &mut errs);
    let filter = parse_filter(&q, &mut errs);
    let before = q.one("cursor", &mut errs).and_then(|c| {
        let seq = decode_cursor(c);
        if seq.is_none() {
            errs.parameter("cursor", "not a cursor this API returned");
        }
        seq
    });
    let limit = match q.one("limit", &mut errs) {
        None => 100,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=500).contains(n))
            .unwrap_or_else(|| {
                errs.parameter("limit", "limit must be a whole number from 1 to 500");
                100
            }),
    };
    errs.finish(())?;
    let rows = state
        .services
        .audit()
        .audit_events(&principal, &filter, before, limit)
        .await?;
    let next_cursor = (rows.len() == limit as usize)
        .then(|| rows.last().map(|r| encode_cursor(r.seq)))
        .flatten();
    let items = rows
        .into_iter()
        .map(AuditEventView::try_from)
        .collect::<Result<_, _>>()
        .map_err(|e| ApiError::Internal(e.0))?;
    Ok(axum::Json(AuditPage { items, next_cursor }))
}

/// Export the tenant's audit records, oldest first, streamed (auditor). The same filters as
/// `/v1/audit/events`.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit",
    params(
        ("format" = super::openapi::ExportFormat, Query, description = "`ndjson` or `csv`"),
        ("actor" = Option<String>, Query, min_length = 1, max_length = 256),
        ("action" = Option<String>, Query, min_length = 1, max_length = 256),
        ("sim" = Option<String>, Query, min_length = 1, max_length = 256),
        ("outcome" = Option<String>, Query, min_length = 1, max_length = 256),
        ("since" = Option<String>, Query, format = DateTime), ("until" = Option<String>, Query, format = DateTime),
    ),
    responses(
        (status = 200, description = "NDJSON (one record a line) or CSV with a header",
            content((String = "application/x-ndjson"), (String = "text/csv"))),
        (status = 400, description = "Invalid parameters", body = super::openapi::Problem),
        (status = 403, description = "Not an auditor", body = super::openapi::Problem),
    ))]
async fn export(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<Response> {
    let mut errs = ValidationErrors::new();
    let mut known = FILTERS.to_vec();
    known.push("format");
    q.reject_unknown(&known, &mut errs);
    let filter = parse_filter(&q, &mut errs);
    let format = match q.one("format", &mut errs) {
        Some("ndjson") | None => ExportFormat::Ndjson,
        Some("csv") => ExportFormat::Csv,
        Some(_) => {
            errs.parameter("format", "format must be ndjson or csv");
            ExportFormat::Ndjson
        }
    };
    errs.finish(())?;
    let pages = state
        .services
        .audit()
        .audit_export(&principal, filter)
        .await?;
    let body = crate::audit::export::body(pages, format);
    let (content_type, name) = match format {
        ExportFormat::Ndjson => ("application/x-ndjson", "audit.ndjson"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "audit.csv"),
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}
