//! The SIM lifecycle (`PATCH /v1/sims/{sim}/state`, `GET /v1/sims/{sim}/history`) and the eSIM
//! installation view (`GET /v1/sims/{sim}/esim`).

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use super::extract::{ApiJson, Caller, QueryPairs, present};
use super::sims::{SimRef, SimView};
use crate::domain::audit::HistoryRow;
use crate::domain::{SimState, ValidationErrors, esim, format_timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sims/{sim}/state", patch(change_state))
        .route("/v1/sims/{sim}/history", get(history))
        .route("/v1/sims/{sim}/esim", get(esim_view))
        .route("/v1/sims/{sim}/refresh", axum::routing::post(refresh))
}

/// `PATCH /v1/sims/{sim}/state` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// `inventory`, `active`, `suspended`, `blocked` or `retired`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = crate::export::schema::SimState, required = true, example = "active")]
    pub state: Option<Value>,
    /// Why (recorded in the history): 1–500 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub reason: Option<Value>,
}

/// A state change's `state` and `reason` fields (a state change body's, or a bulk one's),
/// their problems in `errs`.
pub(super) fn state_change(
    state: &Option<Value>,
    reason: &Option<Value>,
    errs: &mut ValidationErrors,
) -> (Option<SimState>, Option<String>) {
    let to = match state
        .as_ref()
        .map(|v| v.as_str().map(str::parse::<SimState>))
    {
        Some(Some(Ok(s))) => Some(s),
        None | Some(Some(Err(()))) | Some(None) => {
            errs.pointer(
                "/state",
                "state must be one of inventory, active, suspended, blocked, retired",
            );
            None
        }
    };
    let reason = match reason {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => crate::domain::validation::reason(s)
            .map_err(|rule| errs.pointer("/reason", rule))
            .ok(),
        Some(_) => {
            errs.pointer("/reason", "must be a string");
            None
        }
    };
    (to, reason)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StateView {
    pub id: uuid::Uuid,
    pub iccid: String,
    pub state: String,
    pub previous_state: String,
    pub updated_at: String,
}

/// Move a SIM along its lifecycle (operator, admin). Asking for the current state is a no-op.
#[utoipa::path(patch, path = "/v1/sims/{sim}/state", tag = "sims", request_body = StateBody,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The new state", body = StateView),
        (status = 400, description = "Invalid input, or invalid-state-transition", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn change_state(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<StateBody>,
) -> ApiResult<axum::Json<StateView>> {
    let mut errs = ValidationErrors::new();
    let (to, reason) = state_change(&body.state, &body.reason, &mut errs);
    let (Some(to), true) = (to, errs.is_empty()) else {
        return Err(errs.into());
    };
    let change = state
        .services
        .lifecycle()
        .change_state(&principal, &key, to, reason.as_deref())
        .await?;
    Ok(axum::Json(StateView {
        id: change.sim.id.into(),
        iccid: change.sim.iccid.as_str().to_owned(),
        state: change.sim.state.as_str().to_owned(),
        previous_state: change.previous.as_str().to_owned(),
        updated_at: format_timestamp(change.sim.updated_at),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryActor {
    pub subject: String,
    pub auth_method: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    pub from: String,
    pub to: String,
    pub reason: Option<String>,
    pub actor: HistoryActor,
    pub occurred_at: String,
}

impl From<HistoryRow> for HistoryEntry {
    fn from(h: HistoryRow) -> Self {
        HistoryEntry {
            from: h.from_state.as_str().to_owned(),
            to: h.to_state.as_str().to_owned(),
            reason: h.reason,
            actor: HistoryActor {
                subject: h.actor,
                auth_method: h.auth_method,
            },
            occurred_at: format_timestamp(h.occurred_at),
        }
    }
}

/// A SIM's state history, newest first (whoever may read the SIM).
#[utoipa::path(get, path = "/v1/sims/{sim}/history", tag = "sims",
    params(
        ("sim" = String, Path, description = "UUID or ICCID"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000), ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses(
        (status = 200, description = "One page", body = super::PageView<HistoryEntry>),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn history(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<HistoryEntry>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .lifecycle()
        .sim_history(&principal, &key, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

#[derive(Serialize, ToSchema)]
pub struct EsimView {
    /// `LPA:1$…`; null for a physical SIM or an eSIM without a code.
    pub activation_code: Option<String>,
    /// An inline `<svg>` QR code of exactly the activation code.
    pub qr_svg: Option<String>,
    pub android_deeplink: Option<String>,
    pub ios_deeplink: Option<String>,
}

/// The eSIM installation view: the activation code as QR code and one-tap links (provisioner,
/// support, operator; audited). `Cache-Control: no-store`.
#[utoipa::path(get, path = "/v1/sims/{sim}/esim", tag = "sims",
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The view (all null for a physical SIM)", body = EsimView),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
pub(crate) async fn esim_view(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<Response> {
    let (_, code) = state.services.secrets().esim_view(&principal, &key).await?;
    let view = match code {
        Some(code) => {
            let code = code.expose();
            EsimView {
                activation_code: Some(code.to_owned()),
                qr_svg: esim::qr_svg(code),
                android_deeplink: Some(esim::android_link(code)),
                ios_deeplink: Some(esim::ios_link(code)),
            }
        }
        None => EsimView {
            activation_code: None,
            qr_svg: None,
            android_deeplink: None,
            ios_deeplink: None,
        },
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], axum::Json(view)).into_response())
}

/// Pull the SIM's state from the carrier's system (operator, admin). No data upstream: the SIM
/// as stored. Upstream failing: `502`; not answering in time: `504`; either way nothing changes.
#[utoipa::path(post, path = "/v1/sims/{sim}/refresh", tag = "sims",
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The SIM", body = SimView),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
        (status = 409, description = "No upstream is configured", body = super::openapi::Problem),
        (status = 502, description = "upstream-unavailable", body = super::openapi::Problem),
        (status = 504, description = "upstream-unavailable (timeout)", body = super::openapi::Problem),
    ))]
async fn refresh(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<axum::Json<SimView>> {
    let sim = state
        .services
        .lifecycle()
        .refresh_sim(&principal, &key)
        .await?;
    Ok(axum::Json(sim.into()))
}
