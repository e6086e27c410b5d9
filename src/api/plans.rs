//! `/v1/plans`: plans and the compatibility zones they cover.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, QueryPairs, present};
use super::fields::Fields;
use crate::domain::sim::MAX_ZONES;
use crate::domain::{Plan, ValidationErrors, format_timestamp};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/plans", get(list_plans).post(create_plan))
        .route("/v1/plans/{id}", get(get_plan))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlanView {
    pub id: uuid::Uuid,
    pub name: String,
    pub compatibility_zones: Vec<String>,
    pub created_at: String,
}

impl From<Plan> for PlanView {
    fn from(p: Plan) -> Self {
        PlanView {
            id: p.id,
            name: p.name,
            compatibility_zones: p.compatibility_zones.into_iter().collect(),
            created_at: format_timestamp(p.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePlanBody {
    /// 1–64 printable characters, unique in the tenant.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$", example = "eu-roaming")]
    pub name: Option<Value>,
    /// Zones a SIM must carry one of to fit the plan.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<String>, required = true, example = json!(["eu"]))]
    pub compatibility_zones: Option<Value>,
}

/// Create a plan.
#[utoipa::path(post, path = "/v1/plans", tag = "plans", request_body = CreatePlanBody,
    responses(
        (status = 201, description = "Created", body = PlanView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 409, description = "A plan of that name exists", body = super::openapi::Problem),
    ))]
async fn create_plan(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<CreatePlanBody>,
) -> ApiResult<impl IntoResponse> {
    let mut errs = ValidationErrors::new();
    let mut f = Fields { errs: &mut errs };
    let name = f.required("name", &body.name, super::fields::label("name"));
    let zones = match &body.compatibility_zones {
        None => Some(Default::default()),
        some => f.labels("compatibility_zones", some, MAX_ZONES),
    };
    let (Some(name), Some(zones)) = (name, zones) else {
        return Err(ApiError::Validation(errs));
    };
    errs.finish(())?;
    let plan = state
        .services
        .plans()
        .create_plan(&principal, name, zones)
        .await?;
    let location = format!("/v1/plans/{}", plan.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(PlanView::from(plan)),
    ))
}

/// List plans, oldest first.
#[utoipa::path(get, path = "/v1/plans", tag = "plans",
    params(
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses((status = 200, description = "One page", body = super::PageView<PlanView>)))]
async fn list_plans(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<PlanView>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .plans()
        .list_plans(&principal, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// One plan.
#[utoipa::path(get, path = "/v1/plans/{id}", tag = "plans",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The plan", body = PlanView),
        (status = 404, description = "No such plan in your tenant", body = super::openapi::Problem),
    ))]
async fn get_plan(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<PlanView>> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let plan = state.services.plans().get_plan(&principal, id).await?;
    Ok(axum::Json(plan.into()))
}
