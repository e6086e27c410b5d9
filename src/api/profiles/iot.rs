//! The `iot` profile (IoT platform inventory, seed 000) at `/iot/v1`: the native inventory with
//! the platform's words. A SIM's lifecycle state is its `status`; a link is `pre_active` until
//! plans are activated on it. Errors are RFC 7807, as native.

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

use crate::api::error::ApiResult;
use crate::api::extract::{Caller, QueryPairs};
use crate::api::sims::{SimRef, parse_list_query};
use crate::api::{AppState, PageView, admin, bulk, lifecycle};
use crate::domain::{Location, Sim, ValidationErrors};
use crate::export::sims::{LinkRef, SimRecord};

const PREFIX: &str = "/iot/v1";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/iot/v1/sims", get(list_sims))
        .route("/iot/v1/sims/{sim_id}", get(get_sim))
        .route("/iot/v1/sims/{sim_id}/esim", get(esim))
        .route("/iot/v1/sims/{sim_id}/refresh", post(refresh))
        .route(
            "/iot/v1/sims/bulk/provision-links",
            post(provision_links).layer(DefaultBodyLimit::max(bulk::PROVISION_BODY_LIMIT_BYTES)),
        )
        .route("/iot/v1/tasks/{task_id}", get(task))
        .route("/iot/v1/tasks/{task_id}/items", get(task_items))
}

#[derive(OpenApi)]
#[openapi(
    paths(list_sims, get_sim, esim, refresh, provision_links, task, task_items),
    tags((name = "iot", description = "The IoT platform inventory API (seed 000) at `/iot/v1`: \
        the native inventory with `status` for the lifecycle state and links that are \
        `pre_active` until plans are activated. Errors are RFC 7807 problem documents, as native.")),
)]
pub struct IotDoc;

/// A SIM as the IoT platform shows it: exactly these fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct IotSim {
    pub id: uuid::Uuid,
    pub iccid: String,
    /// The lifecycle state: inventory, active, suspended, blocked or retired.
    #[schema(value_type = String, example = "active")]
    pub status: crate::domain::SimState,
    /// physical or esim.
    #[schema(value_type = String, example = "physical")]
    pub sim_type: crate::domain::SimType,
    pub is_attached: bool,
    pub created_at: String,
    pub updated_at: String,
    pub msisdn: Option<String>,
    pub imsi: Option<String>,
    pub imei: Option<String>,
    pub eid: Option<String>,
    pub compatibility_zones: Vec<String>,
    pub esim_profile_state: Option<String>,
    pub link: Option<IotLink>,
}

/// The link a SIM is bound to.
#[derive(Debug, Serialize, ToSchema)]
pub struct IotLink {
    pub id: uuid::Uuid,
    pub name: String,
    /// `pre_active` (no plans activated) or `active`.
    #[schema(example = "pre_active")]
    pub status: &'static str,
    pub plan_ids: Vec<uuid::Uuid>,
}

impl From<LinkRef> for IotLink {
    fn from(l: LinkRef) -> Self {
        IotLink {
            status: if l.plan_ids.is_empty() {
                "pre_active"
            } else {
                "active"
            },
            id: l.id,
            name: l.name,
            plan_ids: l.plan_ids,
        }
    }
}

impl From<Sim> for IotSim {
    fn from(sim: Sim) -> Self {
        let r = SimRecord::from(sim);
        IotSim {
            id: r.id,
            iccid: r.iccid,
            status: r.state,
            sim_type: r.sim_type,
            is_attached: r.is_attached,
            created_at: r.created_at,
            updated_at: r.updated_at,
            msisdn: r.msisdn,
            imsi: r.imsi,
            imei: r.imei,
            eid: r.eid,
            compatibility_zones: r.compatibility_zones,
            esim_profile_state: r.esim_profile_state,
            link: r.link.map(IotLink::from),
        }
    }
}

/// The list's parameters: the native ones with `status` for `state`, and no others.
const PARAMS: &[&str] = &[
    "page",
    "page_size",
    "sort_by",
    "sort_order",
    "status",
    "sim_type",
    "compatibility_zones",
    "search",
    "for_plan_id",
];

type NativeQuery = (
    crate::domain::sim::SimListQuery,
    Option<crate::service::sims::ForPlan>,
);

/// The native list query a profile query means (`status` is the native `state`, also as a
/// sort key); every problem reported under the profile's own names.
fn parse_query(q: &QueryPairs) -> Result<NativeQuery, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(PARAMS, &mut errs);
    let sort_by = q.0.iter().filter(|(name, _)| name == "sort_by");
    if sort_by
        .clone()
        .any(|(_, v)| v.eq_ignore_ascii_case("state"))
    {
        errs.parameter("sort_by", SORT_BY);
    }
    let native = QueryPairs(
        q.0.iter()
            .filter(|(name, _)| PARAMS.contains(&name.as_str()))
            .map(|(name, value)| match name.as_str() {
                "status" => ("state".to_owned(), value.clone()),
                "sort_by" if value.eq_ignore_ascii_case("status") => {
                    (name.clone(), "state".to_owned())
                }
                _ => (name.clone(), value.clone()),
            })
            .collect(),
    );
    // Every problem at once: those of the native reading too, in the profile's words.
    match parse_list_query(&native) {
        Ok(parsed) => errs.finish(parsed),
        Err(more) => {
            let more = more.rename_parameter("state", "status");
            for e in more.errors() {
                match &e.location {
                    Location::Parameter(p) if p == "sort_by" => errs.parameter("sort_by", SORT_BY),
                    Location::Parameter(p) => errs.parameter(p.clone(), &e.detail),
                    Location::Pointer(p) => errs.pointer(p.clone(), &e.detail),
                }
            }
            Err(errs)
        }
    }
}

const SORT_BY: &str =
    "sort_by must be one of created_at, updated_at, iccid, imsi, msisdn, status, consumed_data";

/// List SIMs: filters combine with AND; `status` and `compatibility_zones` are repeatable (OR
/// within each).
#[utoipa::path(get, path = "/iot/v1/sims", tag = "iot",
    params(
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
        ("sort_by" = Option<String>, Query, pattern = r"^(created_at|updated_at|iccid|imsi|msisdn|status|consumed_data)$", description = "created_at, updated_at (default), iccid, imsi, msisdn, status, consumed_data"),
        ("sort_order" = Option<String>, Query, pattern = r"^(asc|desc)$", description = "asc or desc (default)"),
        ("status" = Option<Vec<crate::export::schema::SimState>>, Query, description = "lifecycle status, repeatable: inventory, active, suspended, blocked, retired (any case)"),
        ("sim_type" = Option<crate::export::schema::SimType>, Query, description = "physical or esim (any case)"),
        ("compatibility_zones" = Option<Vec<String>>, Query, description = "repeatable"),
        ("search" = Option<String>, Query, description = "substring of id, ICCID, MSISDN, IMSI, IMEI or EID"),
        ("for_plan_id" = Option<uuid::Uuid>, Query, description = "SIMs compatible with this plan (its zones take precedence over compatibility_zones)"),
    ),
    responses(
        (status = 200, description = "One page", body = PageView<IotSim>),
        (status = 400, description = "Invalid parameters", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
    ))]
async fn list_sims(
    State(state): State<AppState>,
    Caller(principal): Caller,
    query: QueryPairs,
) -> ApiResult<axum::Json<PageView<IotSim>>> {
    let (parsed, for_plan) = parse_query(&query)?;
    let page = state
        .services
        .inventory()
        .list_sims(&principal, parsed, for_plan)
        .await?;
    Ok(axum::Json(PageView::of(page)))
}

/// One SIM in the caller's organisation, by id (or ICCID).
#[utoipa::path(get, path = "/iot/v1/sims/{sim_id}", tag = "iot",
    params(("sim_id" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The SIM", body = IotSim),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM in your organisation", body = crate::api::openapi::Problem),
    ))]
async fn get_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<axum::Json<IotSim>> {
    let sim = state.services.inventory().get_sim(&principal, &key).await?;
    Ok(axum::Json(sim.into()))
}

/// The eSIM installation view: activation code, QR SVG and deeplinks; all null for a physical
/// SIM. Audited; `Cache-Control: no-store`.
#[utoipa::path(get, path = "/iot/v1/sims/{sim_id}/esim", tag = "iot",
    params(("sim_id" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The view", body = lifecycle::EsimView),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM in your organisation", body = crate::api::openapi::Problem),
    ))]
async fn esim(state: State<AppState>, caller: Caller, sim: SimRef) -> ApiResult<Response> {
    lifecycle::esim_view(state, caller, sim).await
}

/// Pull fresh state for one SIM from upstream; no data upstream: the SIM as stored.
#[utoipa::path(post, path = "/iot/v1/sims/{sim_id}/refresh", tag = "iot",
    params(("sim_id" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The SIM", body = IotSim),
        (status = 403, description = "Not allowed", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM in your organisation", body = crate::api::openapi::Problem),
        (status = 409, description = "No upstream is configured", body = crate::api::openapi::Problem),
        (status = 502, description = "Upstream failed", body = crate::api::openapi::Problem),
        (status = 504, description = "Upstream did not answer in time", body = crate::api::openapi::Problem),
    ))]
async fn refresh(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<axum::Json<IotSim>> {
    let sim = state
        .services
        .lifecycle()
        .refresh_sim(&principal, &key)
        .await?;
    Ok(axum::Json(sim.into()))
}

/// Provision a link named `{name_prefix}_{counter}` for each SIM, in the background (`202`);
/// poll the task.
#[utoipa::path(post, path = "/iot/v1/sims/bulk/provision-links", tag = "iot",
    request_body = bulk::ProvisionLinksBody,
    responses(
        (status = 202, description = "Queued", body = admin::TaskView),
        (status = 400, description = "Invalid input", body = crate::api::openapi::Problem),
        (status = 403, description = "Not allowed (the body is not read)", body = crate::api::openapi::Problem),
        (status = 429, description = "Too many large bodies from this caller at once", body = crate::api::openapi::Problem),
    ))]
async fn provision_links(state: State<AppState>, caller: Caller, req: Request) -> Response {
    match bulk::provision_links(state, caller, req).await {
        Ok(answer) => located(answer.into_response()),
        Err(e) => e.into_response(),
    }
}

/// The queued task's `Location`, under this profile's prefix.
fn located(mut res: Response) -> Response {
    use axum::http::{HeaderValue, header};
    let moved = res
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("/v1/"))
        .and_then(|rest| HeaderValue::from_str(&format!("{PREFIX}/{rest}")).ok());
    if let Some(v) = moved {
        res.headers_mut().insert(header::LOCATION, v);
    }
    res
}

/// A bulk task's progress.
#[utoipa::path(get, path = "/iot/v1/tasks/{task_id}", tag = "iot",
    params(("task_id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The task", body = admin::TaskView),
        (status = 404, description = "No such task in your organisation", body = crate::api::openapi::Problem),
    ))]
async fn task(
    state: State<AppState>,
    caller: Caller,
    id: axum::extract::Path<String>,
) -> ApiResult<axum::Json<admin::TaskView>> {
    admin::get_task(state, caller, id).await
}

/// A bulk task's per-SIM outcomes.
#[utoipa::path(get, path = "/iot/v1/tasks/{task_id}/items", tag = "iot",
    params(
        ("task_id" = uuid::Uuid, Path),
        ("status" = Option<String>, Query, pattern = r"^(pending|succeeded|failed|cancelled)$", description = "pending, succeeded, failed or cancelled"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "One page of items", body = PageView<bulk::ItemView>),
        (status = 404, description = "No such task in your organisation", body = crate::api::openapi::Problem),
    ))]
async fn task_items(
    state: State<AppState>,
    caller: Caller,
    id: axum::extract::Path<String>,
    q: QueryPairs,
) -> ApiResult<axum::Json<PageView<bulk::ItemView>>> {
    bulk::task_items(state, caller, id, q).await
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

    #[test]
    fn status_is_the_native_state() {
        let Ok((parsed, _)) = parse_query(&qp(&[
            ("status", "ACTIVE"),
            ("status", "suspended"),
            ("sort_by", "status"),
        ])) else {
            panic!("refused");
        };
        assert_eq!(
            parsed.states,
            vec![
                crate::domain::SimState::Active,
                crate::domain::SimState::Suspended
            ]
        );
        assert_eq!(parsed.sort_by, crate::domain::sim::SortField::State);
    }

    #[test]
    fn native_only_parameters_are_unknown_here() {
        let Err(e) = parse_query(&qp(&[("state", "active"), ("tags", "x")])) else {
            panic!("native-only parameters accepted");
        };
        let names: Vec<_> = e
            .errors()
            .iter()
            .map(|f| format!("{:?}", f.location))
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_bad_status_is_reported_as_status_with_every_other_problem() {
        let Err(e) = parse_query(&qp(&[("status", "gone"), ("state", "x"), ("page", "0")])) else {
            panic!("accepted");
        };
        let got: Vec<_> = e.errors().iter().map(|f| f.location.clone()).collect();
        assert_eq!(
            got,
            [
                Location::Parameter("state".into()),
                Location::Parameter("page".into()),
                Location::Parameter("status".into()),
            ]
        );
        assert!(e.errors()[2].detail.starts_with("status must be"));
        for bad in ["state", "ki"] {
            let Err(e) = parse_query(&qp(&[("sort_by", bad)])) else {
                panic!("sort_by={bad} accepted");
            };
            assert_eq!(e.errors()[0].detail, SORT_BY);
        }
    }

    #[test]
    fn a_link_without_plans_is_pre_active() {
        let id = uuid::Uuid::new_v4();
        let pre = IotLink::from(LinkRef {
            id,
            name: "a_1".into(),
            plan_ids: vec![],
        });
        let active = IotLink::from(LinkRef {
            id,
            name: "a_2".into(),
            plan_ids: vec![uuid::Uuid::new_v4()],
        });
        assert_eq!((pre.status, active.status), ("pre_active", "active"));
    }
}
