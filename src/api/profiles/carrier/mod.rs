//! The `carrier` profile (carrier SIM-card API, seed 001) at `/v2`: SIM cards with the carrier's
//! `status` words, filters, paging through `meta` and embedded groups, SIM card groups, and the
//! carrier's error shape for every error under `/v2` ([`errors`]).
//!
//! PIN/PUK codes come only from the secret service's "what this caller may see" read, which
//! decides each code, leaves out the refused ones and audits the shown ones.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{Caller, QueryPairs};
use crate::api::sims::SimRef;
use crate::domain::sim::page_count;
use crate::domain::{GroupId, Principal, SecretField, Sim, ValidationErrors};
use crate::service::Page;

pub mod errors;
mod query;
pub mod views;

use views::{PinPukCodes, SimCard, SimCardGroup, SimCardOut};

/// Where the profile is served.
pub const PREFIX: &str = "/v2";

/// Whether `path` is the profile's (its errors take the carrier's shape).
pub fn serves(path: &str) -> bool {
    path == PREFIX || path.starts_with("/v2/")
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v2/sim_cards", get(list_sim_cards))
        .route("/v2/sim_cards/{id}", get(get_sim_card))
        .route("/v2/sim_card_groups", get(list_sim_card_groups))
        .route("/v2/sim_card_groups/{id}", get(get_sim_card_group))
}

#[derive(OpenApi)]
#[openapi(
    paths(list_sim_cards, get_sim_card, list_sim_card_groups, get_sim_card_group),
    components(schemas(CarrierErrors, CarrierError, CarrierStatusFilter)),
    tags((name = "carrier")),
)]
struct CarrierDoc;

/// The profile's OpenAPI document, its tag describing the error codes.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = CarrierDoc::openapi();
    let description = format!(
        "The carrier SIM-card API (seed 001) at `/v2`: SIM cards with `status: {{value, reason}}` \
         (`inventory` → `standby`; `active` → `enabled`, or `data_limit_exceeded` while that \
         condition holds; `suspended`, `blocked`, `retired` → `disabled`, the reason naming the \
         state), groups, and lists answered `{{data, meta: {{total_pages, total_results, \
         page_number, page_size}}}}`. Amounts are decimal strings.\n\n\
         Every error under `/v2` is `{{\"errors\": [{{code, title, detail, source: {{pointer | \
         parameter}}, meta: {{request_id, …}}}}]}}` with the HTTP status of the native answer, one \
         entry per problem. `code` is stable per kind of problem:\n\n{}",
        errors::table()
    );
    if let Some(tag) = doc.tags.iter_mut().flatten().find(|t| t.name == "carrier") {
        tag.description = Some(description);
    }
    doc
}

/// A value of `filter[status]` (documentation; the query parser reads it in any case).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
enum CarrierStatusFilter {
    Enabled,
    Disabled,
    Standby,
    DataLimitExceeded,
    UnauthorizedImei,
}

/// An error answer (documentation).
#[derive(ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `errors::render` writes it
struct CarrierErrors {
    errors: Vec<CarrierError>,
}

/// One problem.
#[derive(ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI
struct CarrierError {
    /// Stable per kind of problem (see the tag's table).
    #[schema(example = 10001)]
    code: u32,
    title: String,
    detail: String,
    /// `{pointer}` (JSON pointer into the body) or `{parameter}` (query parameter); validation
    /// problems only.
    #[schema(value_type = Option<Object>)]
    source: Option<()>,
    /// `request_id`, and the native problem's own members (e.g. `remaining_attempts`).
    #[schema(value_type = Object)]
    meta: (),
}

/// One resource.
#[derive(Debug, Serialize, ToSchema)]
pub struct One<T> {
    pub data: T,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub meta: Meta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Meta {
    pub total_pages: u64,
    pub total_results: u64,
    pub page_number: u32,
    pub page_size: u32,
}

fn paged<S, T>(page: Page<S>, each: impl FnMut(S) -> T) -> Paged<T> {
    Paged {
        meta: Meta {
            total_pages: page_count(page.total, page.page_size),
            total_results: page.total,
            page_number: page.page,
            page_size: page.page_size,
        },
        data: page.items.into_iter().map(each).collect(),
    }
}

/// The SIMs as answered, each with its group when `include` (looked up once per group).
async fn cards(
    state: &AppState,
    principal: &Principal,
    sims: Vec<Sim>,
    include: bool,
) -> ApiResult<Vec<SimCardOut>> {
    let groups = if include {
        let ids: Vec<&str> = sims.iter().filter_map(|s| s.group_id.as_deref()).collect();
        Some(state.services.groups().groups_of(principal, &ids).await?)
    } else {
        None
    };
    sims.into_iter()
        .map(|s| {
            let sim_card_group = match (&groups, s.group_id.as_deref()) {
                (None, _) => None,
                (Some(_), None) => Some(None),
                (Some(groups), Some(g)) => Some(Some(SimCardGroup::from(
                    groups.get(g).cloned().ok_or_else(|| {
                        ApiError::Internal("a SIM's group lost while embedding".into())
                    })?,
                ))),
            };
            Ok(SimCardOut {
                card: SimCard::from(s),
                sim_card_group,
                pin_puk_codes: None,
            })
        })
        .collect()
}

/// SIM cards that match every filter given.
#[utoipa::path(get, path = "/v2/sim_cards", tag = "carrier",
    params(
        ("page[number]" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1 to 1,000,000, default 1"),
        ("page[size]" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
        ("include_sim_card_group" = Option<bool>, Query, description = "embed each card's group as `sim_card_group` (`null` when in none)"),
        ("filter[sim_card_group_id]" = Option<uuid::Uuid>, Query, description = "cards in this group"),
        ("filter[tags]" = Option<Vec<String>>, Query, description = "cards carrying every one of these tags: comma-separated, repeated, or as `filter[tags][]`"),
        ("filter[iccid]" = Option<String>, Query, pattern = r"^[0-9]{1,22}$", description = "part of the ICCID"),
        ("filter[msisdn]" = Option<String>, Query, description = "part of the MSISDN"),
        ("filter[status]" = Option<Vec<CarrierStatusFilter>>, Query, description = "any of enabled, disabled, standby, data_limit_exceeded, unauthorized_imei (any case): comma-separated, repeated, or as `filter[status][]`"),
        ("sort" = Option<String>, Query, pattern = r"^-?current_billing_period_consumed_data\.amount$", description = "`current_billing_period_consumed_data.amount`, `-` first for descending order; cards with no usage reported yet (shown as `\"0\"`) come last either way, as in the native list"),
    ),
    responses(
        (status = 200, description = "One page", body = Paged<SimCardOut>),
        (status = 400, description = "Invalid or unknown parameters", body = CarrierErrors),
        (status = 401, description = "No valid credential", body = CarrierErrors),
    ))]
async fn list_sim_cards(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<Paged<SimCardOut>>> {
    let (parsed, for_plan, include) = query::list_query(&q)?;
    let page = state
        .services
        .inventory()
        .list_sims(&principal, parsed, for_plan)
        .await?;
    let Page {
        items,
        total,
        page,
        page_size,
    } = page;
    let items = cards(&state, &principal, items, include).await?;
    Ok(axum::Json(paged(
        Page {
            items,
            total,
            page,
            page_size,
        },
        |c| c,
    )))
}

const PIN_PUK: [SecretField; 4] = [
    SecretField::Pin1,
    SecretField::Pin2,
    SecretField::Puk1,
    SecretField::Puk2,
];

/// One SIM card, by id (or ICCID). With `include_pin_puk_codes=true`, `pin_puk_codes` holds
/// each code this caller may read (where the policy asks for a reason, as of support staff
/// for PUKs, give it in `X-Simvault-Reason`), each one shown audited as a secret read; the
/// others are absent. `Cache-Control: no-store`.
#[utoipa::path(get, path = "/v2/sim_cards/{id}", tag = "carrier",
    params(
        ("id" = String, Path, description = "UUID or ICCID"),
        ("include_sim_card_group" = Option<bool>, Query, description = "embed the card's group as `sim_card_group`"),
        ("include_pin_puk_codes" = Option<bool>, Query, description = "add `pin_puk_codes: {pin1, pin2, puk1, puk2}`, each only if you may read it"),
        ("X-Simvault-Reason" = Option<String>, Header, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "why (ticket): asked of support staff for PUKs"),
    ),
    responses(
        (status = 200, description = "The card", body = One<SimCardOut>),
        (status = 400, description = "Invalid or unknown parameters", body = CarrierErrors),
        (status = 401, description = "No valid credential", body = CarrierErrors),
        (status = 404, description = "No such SIM card in your organisation", body = CarrierErrors),
    ))]
async fn get_sim_card(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    q: QueryPairs,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&[query::INCLUDE_GROUP, "include_pin_puk_codes"], &mut errs);
    let include = query::include_group(&q, &mut errs);
    let codes = query::boolean(&q, "include_pin_puk_codes", &mut errs);
    let reason = crate::api::secrets::reason(&q, &headers, &mut errs);
    errs.finish(())?;
    // The card and its group first: a refusal there must come before any code is opened and
    // recorded as shown.
    let sim = state.services.inventory().get_sim(&principal, &key).await?;
    let mut card = cards(&state, &principal, vec![sim], include)
        .await?
        .pop()
        .ok_or_else(|| ApiError::Internal("a SIM lost while embedding".into()))?;
    if codes {
        let (_, revealed) = state
            .services
            .secrets()
            .reveal_permitted(&principal, &key, &PIN_PUK, reason.as_deref())
            .await?;
        card.pin_puk_codes = Some(PinPukCodes(revealed));
    }
    let mut res = axum::Json(One { data: card }).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// The organisation's SIM card groups, oldest first.
#[utoipa::path(get, path = "/v2/sim_card_groups", tag = "carrier",
    params(
        ("page[number]" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1 to 1,000,000, default 1"),
        ("page[size]" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses(
        (status = 200, description = "One page", body = Paged<SimCardGroup>),
        (status = 400, description = "Invalid or unknown parameters", body = CarrierErrors),
        (status = 401, description = "No valid credential", body = CarrierErrors),
    ))]
async fn list_sim_card_groups(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<Paged<SimCardGroup>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&[query::PAGE_NUMBER, query::PAGE_SIZE], &mut errs);
    let (page, page_size) = query::paging(&q, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .groups()
        .list_groups(&principal, page, page_size)
        .await?;
    Ok(axum::Json(paged(page, SimCardGroup::from)))
}

/// One SIM card group.
#[utoipa::path(get, path = "/v2/sim_card_groups/{id}", tag = "carrier",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The group", body = One<SimCardGroup>),
        (status = 401, description = "No valid credential", body = CarrierErrors),
        (status = 404, description = "No such group in your organisation", body = CarrierErrors),
    ))]
async fn get_sim_card_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<One<SimCardGroup>>> {
    let id = GroupId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let group = state.services.groups().get_group(&principal, id).await?;
    Ok(axum::Json(One { data: group.into() }))
}
