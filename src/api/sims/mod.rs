//! `/v1/sims`: the SIM inventory.

use axum::Router;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, QueryPairs};
use crate::domain::SimKey;
use crate::domain::sim_input::SimFields;
use crate::domain::sim_patch::PatchFields;
use crate::domain::{Sim, ValidationErrors, format_timestamp};
use crate::export::sims::SimRecord;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sims", get(list_sims).post(create_sim))
        .route("/v1/sims/export", get(export::export_sims))
        .route(
            "/v1/sims/{sim}",
            get(get_sim).patch(update_sim).delete(delete_sim),
        )
}

pub use crate::export::schema;

mod body;
pub use body::{CreateSimBody, PatchSimBody};
pub(super) mod export;
mod list;
pub(crate) use list::parse_list_query;

/// A SIM as clients see it: its fields, and its PIN/PUK status. No secret value ever appears
/// here.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimView {
    #[serde(flatten)]
    pub record: SimRecord,
    /// Remaining attempts and blocked flags per PIN/PUK.
    #[schema(value_type = Object)]
    pub pin_status: serde_json::Map<String, Value>,
}

impl From<Sim> for SimView {
    fn from(s: Sim) -> Self {
        let pin_status = s
            .counters
            .status()
            .into_iter()
            .map(|(name, remaining)| {
                (
                    name.to_owned(),
                    serde_json::json!({"remaining_attempts": remaining, "blocked": remaining == 0}),
                )
            })
            .collect();
        SimView {
            record: SimRecord::from(s),
            pin_status,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
    pub deleted_at: String,
}

/// The `{sim}` path segment: a UUID or an ICCID. Anything else names no SIM (404).
pub struct SimRef(pub SimKey);

impl<S: Send + Sync> FromRequestParts<S> for SimRef {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        SimKey::parse(&raw).map(SimRef).ok_or(ApiError::NotFound)
    }
}

/// Create a SIM (state `inventory`).
#[utoipa::path(post, path = "/v1/sims", tag = "sims", request_body = CreateSimBody,
    responses(
        (status = 201, description = "Created", body = SimView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 401, description = "No valid credential", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 409, description = "ICCID already exists", body = super::openapi::Problem),
    ))]
async fn create_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<SimFields>,
) -> ApiResult<impl IntoResponse> {
    let input = body.finish(state.services.iccid_luhn())?;
    let sim = state
        .services
        .inventory()
        .create_sim(&principal, input)
        .await?;
    let location = format!("/v1/sims/{}", sim.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(SimView::from(sim)),
    ))
}

/// List SIMs with filters, sorting and paging.
#[utoipa::path(get, path = "/v1/sims", tag = "sims",
    params(
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
        ("sort_by" = Option<String>, Query, pattern = r"^(created_at|updated_at|iccid|imsi|msisdn|state|consumed_data)$", description = "created_at, updated_at (default), iccid, imsi, msisdn, state, consumed_data"),
        ("sort_order" = Option<String>, Query, pattern = r"^(asc|desc)$", description = "asc or desc (default)"),
        crate::export::schema::SimFilterParams,
        ("include" = Option<String>, Query, pattern = r"^group$", description = "`group`: embed each SIM's group as `group`"),
    ),
    responses(
        (status = 200, description = "One page", body = super::PageView<SimOut>),
        (status = 400, description = "Invalid parameters", body = super::openapi::Problem),
    ))]
async fn list_sims(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<SimOut>>> {
    let (parsed, for_plan) = parse_list_query(&query)?;
    let include = include_group(&query)?;
    let page = state
        .services
        .inventory()
        .list_sims(&principal, parsed, for_plan)
        .await?;
    let crate::service::Page {
        items,
        total,
        page,
        page_size,
    } = page;
    let items = embed(&state, &principal, items, include).await?;
    Ok(axum::Json(super::PageView::of(crate::service::Page {
        items,
        total,
        page,
        page_size,
    })))
}

/// One SIM, by UUID or ICCID.
#[utoipa::path(get, path = "/v1/sims/{sim}", tag = "sims",
    params(
        ("sim" = String, Path, description = "UUID or ICCID"),
        ("include" = Option<String>, Query, pattern = r"^group$", description = "`group`: embed the SIM's group as `group`"),
    ),
    responses(
        (status = 200, description = "The SIM", body = SimOut),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn get_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    query: QueryPairs,
) -> ApiResult<axum::Json<SimOut>> {
    let include = include_group(&query)?;
    let sim = state.services.inventory().get_sim(&principal, &key).await?;
    let mut out = embed(&state, &principal, vec![sim], include).await?;
    out.pop()
        .map(axum::Json)
        .ok_or_else(|| ApiError::Internal("a SIM lost while embedding".into()))
}

/// A SIM with what `include` asked to embed.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimOut {
    #[serde(flatten)]
    pub sim: SimView,
    /// With `include=group`: the SIM's group (`null` when it is in none).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::groups::GroupView>)]
    pub group: Option<Option<super::groups::GroupView>>,
}

/// Whether `include=group` was asked for (the only thing a SIM embeds).
fn include_group(q: &QueryPairs) -> Result<bool, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let include = match q.one("include", &mut errs) {
        None => false,
        Some("group") => true,
        Some(_) => {
            errs.parameter("include", "must be group");
            false
        }
    };
    errs.finish(include)
}

/// The SIMs as answered, each with its group when `include` (looked up once per group).
async fn embed(
    state: &AppState,
    principal: &crate::domain::Principal,
    sims: Vec<Sim>,
    include: bool,
) -> ApiResult<Vec<SimOut>> {
    if !include {
        return Ok(sims
            .into_iter()
            .map(|s| SimOut {
                sim: s.into(),
                group: None,
            })
            .collect());
    }
    let ids: Vec<&str> = sims.iter().filter_map(|s| s.group_id.as_deref()).collect();
    let groups = state.services.groups().groups_of(principal, &ids).await?;
    sims.into_iter()
        .map(|s| {
            let group = match s.group_id.as_deref() {
                None => None,
                Some(g) => Some(
                    groups
                        .get(g)
                        .cloned()
                        .map(super::groups::GroupView::from)
                        .ok_or_else(|| {
                            ApiError::Internal("a SIM's group lost while embedding".into())
                        })?,
                ),
            };
            Ok(SimOut {
                sim: s.into(),
                group: Some(group),
            })
        })
        .collect()
}

/// Change descriptive fields.
#[utoipa::path(patch, path = "/v1/sims/{sim}", tag = "sims", request_body = PatchSimBody,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The updated SIM", body = SimView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn update_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<PatchFields>,
) -> ApiResult<axum::Json<SimView>> {
    let patch = body.parse()?;
    let sim = state
        .services
        .inventory()
        .update_sim(&principal, &key, patch)
        .await?;
    Ok(axum::Json(sim.into()))
}

/// Delete a SIM, keeping a tombstone for its history.
#[utoipa::path(delete, path = "/v1/sims/{sim}", tag = "sims",
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn delete_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<axum::Json<Deleted>> {
    let at = state
        .services
        .inventory()
        .delete_sim(&principal, &key)
        .await?;
    Ok(axum::Json(Deleted {
        success: true,
        deleted_at: format_timestamp(at),
    }))
}
