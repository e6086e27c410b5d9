//! The `telco` profile (physical SIM API, seed 003) at `/v1/sim/physical`: SIMs named by ICCID,
//! states upper case, a flat provisioning body with the secrets beside the other fields, and a
//! read that shows each secret this caller may read (and only those). Every route calls the
//! same use case as its native twin; errors are RFC 7807 with the seed's titles.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use utoipa::OpenApi;

use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, Caller, QueryPairs};
use crate::api::pins::secret;
use crate::api::sims::parse_list_query;
use crate::domain::pin::Proof;
use crate::domain::sim_input::flat::FlatSimFields;
use crate::domain::{SecretField, ValidationErrors, format_timestamp};
use crate::service::pins::PinChange;

pub mod input;
mod problem;
pub mod views;

use input::{ResetPinBody, StateBody, TelcoIccid, UnblockPinBody};
use views::{
    Deleted, PinReset, PinUnblocked, ProvisionDoc, Provisioned, Shown, StateChanged, TelcoPage,
    TelcoSim, TelcoSimDetail, TelcoSimDetailDoc,
};

const PREFIX: &str = "/v1/sim/physical";

/// The secret fields a read shows, where the policy lets the caller read them.
const SHOWN: [SecretField; 6] = [
    SecretField::Pin1,
    SecretField::Pin2,
    SecretField::Puk1,
    SecretField::Puk2,
    SecretField::Ki,
    SecretField::Opc,
];

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sim/physical", get(list_sims).post(provision))
        .route("/v1/sim/physical/{iccid}", get(get_sim).delete(delete_sim))
        .route("/v1/sim/physical/{iccid}/state", patch(change_state))
        .route("/v1/sim/physical/{iccid}/reset-pin", post(reset_pin))
        .route("/v1/sim/physical/{iccid}/unblock-pin", post(unblock_pin))
        .layer(axum::middleware::from_fn(problem::telco_problems))
}

#[derive(OpenApi)]
#[openapi(
    paths(list_sims, provision, get_sim, change_state, reset_pin, unblock_pin, delete_sim),
    components(schemas(TelcoSimDetailDoc, ProvisionDoc)),
    tags((name = "telco", description = "The physical SIM API (seed 003) at `/v1/sim/physical`: \
        SIMs by ICCID, upper-case states, a flat provisioning body with the secrets, and a read \
        that shows each secret field this caller may read (each shown field an audited secret \
        read). Errors are RFC 7807 problem documents with the seed's titles (`Invalid ICCID \
        Format`, `SIM Not Found`, `Invalid State Transition`) under our own `type` base.")),
)]
pub struct TelcoDoc;

/// List physical SIMs: filters combine with AND; `state` is repeatable or comma-separated
/// (any of them).
#[utoipa::path(get, path = "/v1/sim/physical", tag = "telco",
    params(
        ("state" = Option<Vec<crate::export::schema::SimState>>, Query, description = "INVENTORY, ACTIVE, SUSPENDED, BLOCKED or RETIRED (any case); repeatable or comma-separated"),
        ("vendor" = Option<String>, Query, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$", description = "the SIM vendor"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("per_page" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
        ("sort" = Option<String>, Query, pattern = r"^(created_at|updated_at|iccid|state)(:(asc|desc))?$", description = "field:asc or field:desc (default desc), field one of created_at, updated_at (default), iccid, state"),
    ),
    responses(
        (status = 200, description = "One page", body = TelcoPage),
        (status = 400, description = "Invalid parameters", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
    ))]
async fn list_sims(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: QueryPairs,
) -> ApiResult<axum::Json<TelcoPage>> {
    let native = input::native_query(&query)?;
    let (parsed, for_plan) = parse_list_query(&native).map_err(input::profile_names)?;
    let page = state
        .services
        .inventory()
        .list_sims(&principal, parsed, for_plan)
        .await?;
    Ok(axum::Json(page.into()))
}

/// Provision a SIM (state `INVENTORY`) with its secrets beside its other fields.
#[utoipa::path(post, path = "/v1/sim/physical", tag = "telco", request_body = ProvisionDoc,
    responses(
        (status = 201, description = "Provisioned", body = Provisioned),
        (status = 400, description = "Invalid input (`Invalid ICCID Format` for the ICCID)", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 409, description = "ICCID already exists", body = crate::api::openapi::Problem),
    ))]
async fn provision(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<FlatSimFields>,
) -> ApiResult<Response> {
    let new = body.finish(state.services.iccid_luhn())?;
    let sim = state
        .services
        .inventory()
        .create_sim(&principal, new)
        .await?;
    let location = format!("{PREFIX}/{}", sim.iccid.as_str());
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(Provisioned::from(&sim)),
    )
        .into_response())
}

/// One SIM by ICCID, with each of `pin1`, `pin2`, `puk1`, `puk2`, `ki`, `opc` that the policy
/// lets this caller read (the others are absent; each one shown is an audited secret read).
/// Where the policy asks for a reason (support staff reading PUKs) it comes in
/// `X-Simvault-Reason`. `Cache-Control: no-store`.
#[utoipa::path(get, path = "/v1/sim/physical/{iccid}", tag = "telco",
    params(
        ("iccid" = String, Path, pattern = r"^89[0-9]{16,20}$", description = "ICCID of the SIM card"),
        ("X-Simvault-Reason" = Option<String>, Header, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "why (ticket), where the policy asks for one"),
    ),
    responses(
        (status = 200, description = "The SIM, with the secrets this caller may read", body = TelcoSimDetailDoc),
        (status = 400, description = "Invalid ICCID Format, or an invalid reason", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 404, description = "SIM Not Found (in your organisation)", body = crate::api::openapi::Problem),
        (status = 503, description = "The secret read could not be recorded: nothing shown", body = crate::api::openapi::Problem),
    ))]
async fn get_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    TelcoIccid(key): TelcoIccid,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let reason = input::header_reason(&headers)?;
    let (sim, revealed) = state
        .services
        .secrets()
        .reveal_permitted(&principal, &key, &SHOWN, reason.as_deref())
        .await?;
    let body = TelcoSimDetail {
        sim: TelcoSim::from(&sim),
        secrets: Shown(revealed),
    };
    let mut res = axum::Json(body).into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

/// Move a SIM along its lifecycle. Asking for the current state is a no-op.
#[utoipa::path(patch, path = "/v1/sim/physical/{iccid}/state", tag = "telco", request_body = StateBody,
    params(("iccid" = String, Path, pattern = r"^89[0-9]{16,20}$", description = "ICCID of the SIM card")),
    responses(
        (status = 200, description = "The new state", body = StateChanged),
        (status = 400, description = "Invalid input, or Invalid State Transition", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "SIM Not Found", body = crate::api::openapi::Problem),
    ))]
async fn change_state(
    State(state): State<AppState>,
    Caller(principal): Caller,
    TelcoIccid(key): TelcoIccid,
    ApiJson(body): ApiJson<StateBody>,
) -> ApiResult<axum::Json<StateChanged>> {
    let mut errs = ValidationErrors::new();
    let to = input::state(&body.state, &mut errs);
    let reason = input::reason(body.reason, &HeaderMap::new(), None, &mut errs);
    let (Some(to), true) = (to, errs.is_empty()) else {
        return Err(errs.into());
    };
    let change = state
        .services
        .lifecycle()
        .change_state(&principal, &key, to, reason.as_deref())
        .await?;
    Ok(axum::Json(StateChanged {
        iccid: change.sim.iccid.as_str().to_owned(),
        state: views::state_word(change.sim.state),
        updated_at: format_timestamp(change.sim.updated_at),
    }))
}

/// Set a new PIN by presenting the current one. A wrong PIN costs an attempt (`400` with
/// `remaining_attempts`); at none left, `423`.
#[utoipa::path(post, path = "/v1/sim/physical/{iccid}/reset-pin", tag = "telco", request_body = ResetPinBody,
    params(
        ("iccid" = String, Path, pattern = r"^89[0-9]{16,20}$", description = "ICCID of the SIM card"),
        ("X-Simvault-Reason" = Option<String>, Header, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "why (ticket), if not in the body"),
    ),
    responses(
        (status = 200, description = "PIN changed", body = PinReset),
        (status = 400, description = "Invalid input (no attempt used), or a wrong PIN", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "SIM Not Found", body = crate::api::openapi::Problem),
        (status = 409, description = "The SIM has no such PIN set", body = crate::api::openapi::Problem),
        (status = 423, description = "PIN or PUK blocked", body = crate::api::openapi::Problem),
        (status = 429, description = "Too many PIN operations (Retry-After)", body = crate::api::openapi::Problem),
    ))]
async fn reset_pin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    TelcoIccid(key): TelcoIccid,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ResetPinBody>,
) -> ApiResult<axum::Json<PinReset>> {
    let mut errs = ValidationErrors::new();
    let pin_type = input::pin_type(&body.pin_type, &mut errs);
    let current = secret(body.current_pin, "current_pin", pin_type.pin(), &mut errs);
    let new_pin = secret(body.new_pin, "new_pin", pin_type.pin(), &mut errs);
    let reason = input::reason(body.reason, &headers, None, &mut errs);
    let (Some(presented), Some(new_pin), true) = (current, new_pin, errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let change = PinChange {
        pin_type,
        proof: Proof::Pin,
        presented,
        new_pin,
        reason,
    };
    let done = state
        .services
        .pins()
        .change_pin(&principal, &key, change)
        .await?;
    Ok(axum::Json(PinReset {
        success: true,
        updated_at: format_timestamp(done.updated_at),
    }))
}

/// Set a new PIN by presenting the PUK of its pair, with a reason (in the body or
/// `X-Simvault-Reason`). Restores both counters and answers the PUK's `remaining_attempts`.
/// A wrong PUK costs an attempt; the last one blocks the SIM for good.
#[utoipa::path(post, path = "/v1/sim/physical/{iccid}/unblock-pin", tag = "telco", request_body = UnblockPinBody,
    params(
        ("iccid" = String, Path, pattern = r"^89[0-9]{16,20}$", description = "ICCID of the SIM card"),
        ("X-Simvault-Reason" = Option<String>, Header, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "why (ticket), if not in the body"),
    ),
    responses(
        (status = 200, description = "PIN unblocked; `remaining_attempts` is the PUK's", body = PinUnblocked),
        (status = 400, description = "Invalid input or no reason (no attempt used), or a wrong PUK", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "SIM Not Found", body = crate::api::openapi::Problem),
        (status = 409, description = "The SIM has no such PUK set", body = crate::api::openapi::Problem),
        (status = 423, description = "PUK blocked", body = crate::api::openapi::Problem),
        (status = 429, description = "Too many PIN operations (Retry-After)", body = crate::api::openapi::Problem),
    ))]
async fn unblock_pin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    TelcoIccid(key): TelcoIccid,
    headers: HeaderMap,
    ApiJson(body): ApiJson<UnblockPinBody>,
) -> ApiResult<axum::Json<PinUnblocked>> {
    let mut errs = ValidationErrors::new();
    let pin_type = input::pin_type(&body.pin_type, &mut errs);
    let puk = secret(body.puk, "puk", pin_type.puk(), &mut errs);
    let new_pin = secret(body.new_pin, "new_pin", pin_type.pin(), &mut errs);
    let reason = input::reason(body.reason, &headers, Some("unblock a PIN"), &mut errs);
    let (Some(presented), Some(new_pin), true) = (puk, new_pin, errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let change = PinChange {
        pin_type,
        proof: Proof::Puk,
        presented,
        new_pin,
        reason,
    };
    let done = state
        .services
        .pins()
        .change_pin(&principal, &key, change)
        .await?;
    Ok(axum::Json(PinUnblocked {
        success: true,
        remaining_attempts: done.remaining,
        updated_at: format_timestamp(done.updated_at),
    }))
}

/// Delete a SIM (its key destroyed, a tombstone kept for its history).
#[utoipa::path(delete, path = "/v1/sim/physical/{iccid}", tag = "telco",
    params(("iccid" = String, Path, pattern = r"^89[0-9]{16,20}$", description = "ICCID of the SIM card")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 400, description = "Invalid ICCID Format", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "SIM Not Found", body = crate::api::openapi::Problem),
    ))]
async fn delete_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    TelcoIccid(key): TelcoIccid,
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
