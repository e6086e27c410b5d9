//! `GET /v1/sims/export`: the whole matching inventory as one file, NDJSON or CSV, streamed.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Method, header};
use axum::response::{IntoResponse, Response};

use super::list::{FILTER_PARAMS, PAGING_PARAMS, parse_filters};
use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{Caller, QueryPairs};
use crate::domain::ValidationErrors;
use crate::domain::sim::SimListQuery;
use crate::export::ExportFormat;
use crate::export::sims::{csv_header, render};
use crate::service::sims::ForPlan;

/// The export's query: the list's filters and `format`. Paging and sorting are refused, each
/// by name: an export holds every matching SIM, oldest first, and a caller who sent `page`
/// expecting one page must not get the whole inventory unawares.
fn parse_export_query(
    q: &QueryPairs,
) -> Result<(SimListQuery, Option<ForPlan>, ExportFormat), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let mut known: Vec<&str> = FILTER_PARAMS.iter().chain(PAGING_PARAMS).copied().collect();
    known.push("format");
    q.reject_unknown(&known, &mut errs);
    for name in PAGING_PARAMS {
        if q.all(name).next().is_some() {
            errs.parameter(
                *name,
                "the export holds every matching SIM, oldest first: it is not paged, sorted or embedded",
            );
        }
    }
    let mut query = SimListQuery::default();
    let for_plan = parse_filters(q, &mut query, &mut errs);
    let format = match q.one("format", &mut errs) {
        None => ExportFormat::Ndjson,
        Some(f) => ExportFormat::parse(f).unwrap_or_else(|| {
            errs.parameter("format", "format must be ndjson or csv");
            ExportFormat::Ndjson
        }),
    };
    errs.finish((query, for_plan, format))
}

/// Export every SIM of the tenant matching the filters, oldest first, streamed: NDJSON (one SIM
/// a line, the SIM resource without `pin_status`) or CSV (a header line; lists joined with `;`,
/// metadata as JSON text; a cell starting `=`, `+`, `-`, `@`, tab or CR gets a leading `'`).
/// No secret value and no PIN/PUK counter. Recorded in the audit log as one `sim.export` record
/// naming the filters and the number of SIMs, before the first row is sent (operator, admin).
#[utoipa::path(get, path = "/v1/sims/export", tag = "sims",
    params(
        ("format" = Option<crate::api::openapi::ExportFormat>, Query, description = "`ndjson` (default) or `csv`"),
        crate::export::schema::SimFilterParams,
    ),
    responses(
        (status = 200, description = "NDJSON (`application/x-ndjson`) or CSV (`text/csv`), as an attachment",
            content((String = "application/x-ndjson"), (String = "text/csv")),
            headers(("X-Simvault-Export-Count" = u64, description = "SIMs matching when the export began"))),
        (status = 400, description = "Invalid parameters (paging and sorting included)", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed to export", body = crate::api::openapi::Problem),
        (status = 405, description = "Not GET (HEAD included: it would record an export)", body = crate::api::openapi::Problem),
        (status = 503, description = "The export could not be recorded: nothing was sent", body = crate::api::openapi::Problem),
    ))]
pub(in crate::api) async fn export_sims(
    method: Method,
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<Response> {
    // The router answers HEAD with the GET handler; an export read only for its headers would
    // still be recorded and its pages read, so HEAD is refused before anything happens.
    if method == Method::HEAD {
        let mut refused = ApiError::MethodNotAllowed.into_response();
        refused
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET"));
        return Ok(refused);
    }
    let (query, for_plan, format) = parse_export_query(&q)?;
    let export = state
        .services
        .inventory()
        .export_sims(&principal, query, for_plan)
        .await?;
    // Pages are rendered as they arrive; a failure mid-way ends the body abruptly, so that a
    // client never takes a cut-off export for a whole one.
    let header = match format {
        ExportFormat::Csv => Some(Ok(bytes::Bytes::from(csv_header()))),
        ExportFormat::Ndjson => None,
    };
    let rows = futures_util::stream::unfold(export.pages, move |mut pages| async move {
        let chunk = match pages.recv().await? {
            Ok(sims) => render(sims, format).map_err(|e| {
                tracing::error!(error = %e, "SIM export failed mid-way");
                std::io::Error::other("SIM export failed")
            }),
            Err(e) => {
                tracing::error!(error = %crate::telemetry::Causes(&e), "SIM export failed mid-way");
                Err(std::io::Error::other("SIM export failed"))
            }
        };
        Some((chunk.map(bytes::Bytes::from), pages))
    });
    let body = futures_util::StreamExt::chain(futures_util::stream::iter(header), rows);
    Ok((
        [
            (header::CONTENT_TYPE, format.content_type().to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"sims.{}\"", format.extension()),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::HeaderName::from_static("x-simvault-export-count"),
                export.count.to_string(),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qp(pairs: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    fn names(e: &ValidationErrors) -> Vec<String> {
        e.errors()
            .iter()
            .map(|e| match &e.location {
                crate::domain::Location::Pointer(p) | crate::domain::Location::Parameter(p) => {
                    p.clone()
                }
            })
            .collect()
    }

    #[test]
    fn filters_and_format_are_read_as_the_list_reads_them() {
        let (q, plan, format) = parse_export_query(&qp(&[
            ("format", "csv"),
            ("state", "active"),
            ("tags", "a"),
            ("search", "4477"),
        ]))
        .unwrap();
        assert_eq!(format, ExportFormat::Csv);
        assert!(plan.is_none());
        assert_eq!(q.states, vec![crate::domain::SimState::Active]);
        assert_eq!(
            (q.tags, q.search),
            (vec!["a".to_owned()], Some("4477".into()))
        );
        let (_, _, format) = parse_export_query(&qp(&[])).unwrap();
        assert_eq!(format, ExportFormat::Ndjson);
    }

    #[test]
    fn paging_sorting_unknown_and_bad_values_are_all_refused() {
        let e = parse_export_query(&qp(&[
            ("bogus", "1"),
            ("page", "2"),
            ("page_size", "10"),
            ("sort_by", "iccid"),
            ("include", "group"),
            ("state", "gone"),
            ("format", "xlsx"),
        ]))
        .unwrap_err();
        assert_eq!(
            names(&e),
            vec![
                "bogus",
                "page",
                "page_size",
                "sort_by",
                "include",
                "state",
                "format"
            ]
        );
    }
}
