//! Bulk changes (`POST /v1/sims/bulk/state`, `POST /v1/sims/bulk/patch`): one state change or
//! one PATCH over many SIMs, as a task.

use axum::Router;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::admin::TaskView;
use super::bulk::{PROVISION_BODY_LIMIT_BYTES, accepted, id_list};
use super::error::ApiResult;
use super::extract::{ApiJson, Caller, present};
use crate::domain::{SimKey, ValidationErrors};
use crate::service::tasks::{BulkPatch, BulkState};

pub fn router() -> Router<AppState> {
    let limit = || DefaultBodyLimit::max(PROVISION_BODY_LIMIT_BYTES);
    Router::new()
        .route("/v1/sims/bulk/state", post(bulk_state).layer(limit()))
        .route("/v1/sims/bulk/patch", post(bulk_patch).layer(limit()))
}

/// `POST /v1/sims/bulk/state` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkStateBody {
    /// The SIMs, each a UUID or an ICCID as in `/v1/sims/{sim}` (1–100,000, no repeats).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>, required = true, min_items = 1, max_items = 100000)]
    pub sim_ids: Option<Value>,
    /// `inventory`, `active`, `suspended`, `blocked` or `retired`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = crate::export::schema::SimState, required = true, example = "suspended")]
    pub state: Option<Value>,
    /// Why (recorded in each SIM's history): 1–500 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub reason: Option<Value>,
}

/// `POST /v1/sims/bulk/patch` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BulkPatchBody {
    /// The SIMs, each a UUID or an ICCID as in `/v1/sims/{sim}` (1–100,000, no repeats).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>, required = true, min_items = 1, max_items = 100000)]
    pub sim_ids: Option<Value>,
    /// A `PATCH /v1/sims/{sim}` body, applied to each SIM.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = super::sims::PatchSimBody, required = true)]
    pub patch: Option<Value>,
}

fn sim_keys(value: Option<&Value>, errs: &mut ValidationErrors) -> Vec<SimKey> {
    id_list(
        "sim_ids",
        value,
        true,
        errs,
        (SimKey::parse, "must be a SIM's UUID or ICCID"),
    )
}

/// Change the lifecycle state of many SIMs (operator, admin). Answers at once with the task;
/// each SIM's change is made as `PATCH /v1/sims/{sim}/state` would make it, and one that
/// would be refused (no such SIM, an invalid transition) fails its own item only.
#[utoipa::path(post, path = "/v1/sims/bulk/state", tag = "tasks", request_body = BulkStateBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "Invalid input (empty or repeated sim_ids, unknown state, …); nothing queued", body = super::openapi::Problem),
        (status = 403, description = "Not allowed (the body is not read)", body = super::openapi::Problem),
        (status = 429, description = "Too many large bodies from this caller at once", body = super::openapi::Problem),
    ))]
async fn bulk_state(
    State(state): State<AppState>,
    Caller(principal): Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let tasks = state.services.tasks();
    let grant = tasks.authorize_bulk_state(&principal).await?;
    let _permit = state.large_bodies.admit(&principal)?;
    super::large_body::check_announced(req.headers(), PROVISION_BODY_LIMIT_BYTES)?;
    let ApiJson(body) = ApiJson::<BulkStateBody>::from_request(req, &state).await?;
    let mut errs = ValidationErrors::new();
    let sims = sim_keys(body.sim_ids.as_ref(), &mut errs);
    let (to, reason) = super::lifecycle::state_change(&body.state, &body.reason, &mut errs);
    let (Some(to), true) = (to, errs.is_empty()) else {
        return Err(errs.into());
    };
    let request = BulkState {
        sims,
        state: to,
        reason,
    };
    Ok(accepted(tasks.queue_bulk_state(grant, request).await?))
}

/// Change descriptive fields of many SIMs (operator, admin): `patch` is a `PATCH
/// /v1/sims/{sim}` body, checked before anything is queued (problems point under `/patch`).
/// Each SIM's change is made as the single PATCH would make it; one that would be refused
/// fails its own item only.
#[utoipa::path(post, path = "/v1/sims/bulk/patch", tag = "tasks", request_body = BulkPatchBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "Invalid input (sim_ids, or the patch: pointers under /patch); nothing queued", body = super::openapi::Problem),
        (status = 403, description = "Not allowed (the body is not read)", body = super::openapi::Problem),
        (status = 429, description = "Too many large bodies from this caller at once", body = super::openapi::Problem),
    ))]
async fn bulk_patch(
    State(state): State<AppState>,
    Caller(principal): Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let tasks = state.services.tasks();
    let grant = tasks.authorize_bulk_patch(&principal).await?;
    let _permit = state.large_bodies.admit(&principal)?;
    super::large_body::check_announced(req.headers(), PROVISION_BODY_LIMIT_BYTES)?;
    let ApiJson(body) = ApiJson::<BulkPatchBody>::from_request(req, &state).await?;
    let mut errs = ValidationErrors::new();
    let sims = sim_keys(body.sim_ids.as_ref(), &mut errs);
    let request = match body.patch {
        None | Some(Value::Null) => {
            errs.pointer("/patch", "is required");
            None
        }
        Some(patch) => match BulkPatch::new(sims, patch) {
            Ok(request) => Some(request),
            Err(problems) => {
                for e in problems.errors() {
                    if let crate::domain::Location::Pointer(p) = &e.location {
                        errs.pointer(p.clone(), e.detail.clone());
                    }
                }
                None
            }
        },
    };
    let (Some(request), true) = (request, errs.is_empty()) else {
        return Err(errs.into());
    };
    Ok(accepted(tasks.queue_bulk_patch(grant, request).await?))
}
