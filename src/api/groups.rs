//! `/v1/groups`: SIM groups. A SIM joins one by its `group_id`.

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
use super::fields::{Fields, data_limit};
use crate::domain::group::{GroupChanges, check_description, check_name};
use crate::domain::usage::DataAmount;
use crate::domain::{Group, GroupId, ValidationErrors, format_timestamp};
use crate::service::groups::NewGroup;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/groups", get(list_groups).post(create_group))
        .route(
            "/v1/groups/{id}",
            get(get_group).patch(update_group).delete(delete_group),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupView {
    pub id: uuid::Uuid,
    #[schema(example = "fleet-a")]
    pub name: String,
    pub description: Option<String>,
    /// The data limit its SIMs share (decimal units: 1 GB = 1,000 MB).
    #[schema(value_type = Option<super::sims::schema::DataAmount>)]
    pub data_limit: Option<DataAmount>,
    pub imei_lock: bool,
    /// Live SIMs in the group.
    #[schema(read_only)]
    pub sim_count: u64,
    #[schema(example = "2026-01-15T10:30:00Z")]
    pub created_at: String,
    pub updated_at: String,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        GroupView {
            id: g.id.into(),
            name: g.name,
            description: g.description,
            data_limit: g.data_limit,
            imei_lock: g.imei_lock,
            sim_count: g.sim_count,
            created_at: format_timestamp(g.created_at),
            updated_at: format_timestamp(g.updated_at),
        }
    }
}

/// `POST /v1/groups` body, and `PATCH /v1/groups/{id}` (only the fields given change; `null`
/// clears `description` and `data_limit`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GroupBody {
    /// 1–64 printable characters, unique in the tenant.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,62}[^\s\x00-\x1f\x7f-\x9f])?$", example = "fleet-a")]
    pub name: Option<Value>,
    /// At most 1,024 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]{0,1024}$")]
    pub description: Option<Value>,
    /// `{amount, unit: MB|GB}` or `null`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<super::sims::schema::DataAmount>)]
    pub data_limit: Option<Value>,
    /// Default `false`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = bool)]
    pub imei_lock: Option<Value>,
}

/// `PATCH /v1/groups/{id}` body (documentation): [`GroupBody`]'s members, none required,
/// at least one given.
pub struct GroupChange;

impl utoipa::PartialSchema for GroupChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::openapi::change_of(<GroupBody as utoipa::PartialSchema>::schema())
    }
}

impl ToSchema for GroupChange {}

fn imei_lock(v: &Option<Value>, errs: &mut ValidationErrors) -> Option<bool> {
    match v {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            errs.pointer("/imei_lock", "must be true or false");
            None
        }
    }
}

impl GroupBody {
    /// Every problem of a change, at once.
    fn changes(&self) -> Result<GroupChanges, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let name = match f.patch("name", &self.name, check_name) {
            Some(None) => {
                f.errs.pointer("/name", "a group always has a name");
                None
            }
            other => other.flatten(),
        };
        let description = f.patch("description", &self.description, check_description);
        let changes = GroupChanges {
            name,
            description,
            data_limit: data_limit(&self.data_limit, &mut errs),
            imei_lock: imei_lock(&self.imei_lock, &mut errs),
        };
        nothing_to_change(
            &[
                &self.name,
                &self.description,
                &self.data_limit,
                &self.imei_lock,
            ],
            &mut errs,
        );
        errs.finish(changes)
    }

    fn new_group(&self) -> Result<NewGroup, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let name = f.required("name", &self.name, check_name);
        let description = f.optional("description", &self.description, check_description);
        let limit = data_limit(&self.data_limit, &mut errs).flatten();
        let lock = imei_lock(&self.imei_lock, &mut errs).unwrap_or(false);
        let Some(name) = name else {
            return Err(errs);
        };
        errs.finish(NewGroup {
            name,
            description,
            data_limit: limit,
            imei_lock: lock,
        })
    }
}

/// A change that gives no field at all is refused: it would change nothing, yet be audited.
pub(super) fn nothing_to_change(fields: &[&Option<Value>], errs: &mut ValidationErrors) {
    if fields.iter().all(|f| f.is_none()) {
        errs.pointer("", "nothing to change: give at least one field");
    }
}

fn group_id(raw: &str) -> ApiResult<GroupId> {
    GroupId::parse(raw).map_err(|_| ApiError::NotFound)
}

/// Create a SIM group.
#[utoipa::path(post, path = "/v1/groups", tag = "groups", request_body = GroupBody,
    responses(
        (status = 201, description = "Created", body = GroupView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 409, description = "A group of that name exists", body = super::openapi::Problem),
    ))]
async fn create_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<GroupBody>,
) -> ApiResult<impl IntoResponse> {
    let new = body.new_group()?;
    let group = state
        .services
        .groups()
        .create_group(&principal, new)
        .await?;
    let location = format!("/v1/groups/{}", group.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(GroupView::from(group)),
    ))
}

/// List SIM groups, oldest first.
#[utoipa::path(get, path = "/v1/groups", tag = "groups",
    params(
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses((status = 200, description = "One page", body = super::PageView<GroupView>)))]
async fn list_groups(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<GroupView>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .groups()
        .list_groups(&principal, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// One SIM group.
#[utoipa::path(get, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 404, description = "No such group in your tenant", body = super::openapi::Problem),
    ))]
async fn get_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<GroupView>> {
    let group = state
        .services
        .groups()
        .get_group(&principal, group_id(&id)?)
        .await?;
    Ok(axum::Json(group.into()))
}

/// Change a SIM group's fields.
#[utoipa::path(patch, path = "/v1/groups/{id}", tag = "groups", request_body = GroupChange,
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The changed group", body = GroupView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 404, description = "No such group in your tenant", body = super::openapi::Problem),
        (status = 409, description = "Another group has that name", body = super::openapi::Problem),
    ))]
async fn update_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<GroupBody>,
) -> ApiResult<axum::Json<GroupView>> {
    let id = group_id(&id)?;
    let changes = body.changes()?;
    let group = state
        .services
        .groups()
        .update_group(&principal, id, changes)
        .await?;
    Ok(axum::Json(group.into()))
}

/// Delete a SIM group that holds no SIMs.
#[utoipa::path(delete, path = "/v1/groups/{id}", tag = "groups",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such group in your tenant", body = super::openapi::Problem),
        (status = 409, description = "The group still has SIMs", body = super::openapi::Problem),
    ))]
async fn delete_group(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .groups()
        .delete_group(&principal, group_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
