//! Bulk tasks (`/v1/sims/bulk/…`, `/v1/tasks/{id}/items`) and links (`/v1/links`).

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::AppState;
use super::admin::TaskView;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, QueryPairs, present};
use super::fields::Fields;
use crate::domain::link::{MAX_BULK_ITEMS, check_prefix};
use crate::domain::{Link, ValidationErrors, format_timestamp};
use crate::service::bulk::{ImportRow, Item, ProvisionLinks};

/// The largest import body: 100,000 SIMs with every secret fit comfortably.
pub const IMPORT_BODY_LIMIT_BYTES: usize = 96 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/sims/bulk/import",
            post(import).layer(DefaultBodyLimit::max(IMPORT_BODY_LIMIT_BYTES)),
        )
        .route(
            "/v1/sims/bulk/provision-links",
            post(provision_links).layer(DefaultBodyLimit::max(16 * 1024 * 1024)),
        )
        .route("/v1/tasks/{id}/items", get(task_items))
        .route("/v1/links", get(list_links))
        .route("/v1/links/{id}", get(get_link))
}

/// `POST /v1/sims/bulk/import` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ImportBody {
    /// Up to 100,000 `POST /v1/sims` bodies (secrets included). A row that is invalid fails
    /// its own item; the rest are imported.
    #[schema(value_type = Vec<Object>)]
    pub sims: Vec<Box<RawValue>>,
}

/// `POST /v1/sims/bulk/provision-links` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionLinksBody {
    /// Links are named `{name_prefix}_{counter}`: 1–64 of `A-Z a-z 0-9 - _ .`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "fleet")]
    pub name_prefix: Option<Value>,
    /// The SIMs to link, in order (1–100,000, no repeats).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<uuid::Uuid>)]
    pub sim_ids: Option<Value>,
    /// Plans activated on every link (each must exist).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    pub plan_ids: Option<Value>,
    /// The first counter (default 1).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u64>, example = 1)]
    pub counter_start: Option<Value>,
}

/// A link as shown on its SIM.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkRef {
    pub id: uuid::Uuid,
    pub name: String,
    pub plan_ids: Vec<uuid::Uuid>,
}

impl From<crate::domain::link::LinkRef> for LinkRef {
    fn from(l: crate::domain::link::LinkRef) -> Self {
        LinkRef {
            id: l.id,
            name: l.name,
            plan_ids: l.plan_ids,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LinkView {
    pub id: uuid::Uuid,
    #[schema(example = "fleet_1")]
    pub name: String,
    pub sim_id: uuid::Uuid,
    pub plan_ids: Vec<uuid::Uuid>,
    /// The provisioning task that made it.
    pub task_id: Option<uuid::Uuid>,
    pub created_at: String,
}

impl From<Link> for LinkView {
    fn from(l: Link) -> Self {
        LinkView {
            id: l.id,
            name: l.name,
            sim_id: l.sim_id,
            plan_ids: l.plan_ids,
            task_id: l.task_id,
            created_at: format_timestamp(l.created_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemView {
    /// Position in the request, from 1.
    pub seq: i64,
    /// The row's line in the imported file (imports), if known.
    pub line: Option<i64>,
    /// The SIM the item is about (for an import, the SIM created).
    pub sim_id: Option<uuid::Uuid>,
    /// pending, succeeded or failed.
    pub status: String,
    /// What the item made: `{sim_id, iccid}` for an import, `{link_id, name}` for a link.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Value>,
    /// Why it failed (never a submitted value).
    pub error: Option<String>,
}

impl From<Item> for ItemView {
    fn from(i: Item) -> Self {
        ItemView {
            seq: i.seq,
            line: i.line,
            sim_id: i.sim_id,
            status: i.status,
            result: i.result,
            error: i.error,
        }
    }
}

fn accepted(task: crate::domain::Task) -> impl IntoResponse {
    let location = format!("/v1/tasks/{}", task.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(TaskView::from(task)),
    )
}

/// Import a batch of SIMs with their secrets (provisioner). Answers at once with the task;
/// rows are created in the background, each row's outcome in the task's items.
#[utoipa::path(post, path = "/v1/sims/bulk/import", tag = "tasks", request_body = ImportBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "No rows, too many, or not a batch", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
    ))]
async fn import(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<ImportBody>,
) -> ApiResult<impl IntoResponse> {
    if body.sims.is_empty() || body.sims.len() > MAX_BULK_ITEMS {
        return Err(ValidationErrors::single_pointer(
            "/sims",
            format!("must hold 1 to {MAX_BULK_ITEMS} SIMs"),
        )
        .into());
    }
    let luhn = state.services.settings.iccid_luhn;
    let rows = body
        .sims
        .iter()
        .enumerate()
        .map(|(i, raw)| ImportRow {
            line: i64::try_from(i).unwrap_or(i64::MAX) + 1,
            sim: super::sims::parse_sim_row(raw.get().as_bytes(), luhn),
        })
        .collect();
    drop(body);
    let task = state.services.start_import(&principal, rows).await?;
    Ok(accepted(task))
}

/// Link SIMs to names (and plans) in bulk (operator, admin).
#[utoipa::path(post, path = "/v1/sims/bulk/provision-links", tag = "tasks", request_body = ProvisionLinksBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "Invalid input (empty or repeated sim_ids, unknown plans, …)", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
    ))]
async fn provision_links(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<ProvisionLinksBody>,
) -> ApiResult<impl IntoResponse> {
    let request = parse_provision(&body)?;
    let task = state
        .services
        .start_provision_links(&principal, request)
        .await?;
    Ok(accepted(task))
}

fn uuid_list(
    name: &str,
    value: Option<&Value>,
    required: bool,
    errs: &mut ValidationErrors,
) -> Vec<uuid::Uuid> {
    let items = match value {
        None | Some(Value::Null) if !required => return Vec::new(),
        Some(Value::Array(items)) if !items.is_empty() || !required => items,
        Some(Value::Array(_)) => {
            errs.pointer(format!("/{name}"), "must not be empty");
            return Vec::new();
        }
        None | Some(Value::Null) => {
            errs.pointer(format!("/{name}"), "is required");
            return Vec::new();
        }
        Some(_) => {
            errs.pointer(format!("/{name}"), "must be an array of ids");
            return Vec::new();
        }
    };
    if items.len() > MAX_BULK_ITEMS {
        errs.pointer(format!("/{name}"), format!("at most {MAX_BULK_ITEMS} ids"));
        return Vec::new();
    }
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str().and_then(|s| uuid::Uuid::parse_str(s).ok()) {
            None => errs.pointer(format!("/{name}/{i}"), "must be a UUID"),
            Some(id) if !seen.insert(id) => {
                errs.pointer(format!("/{name}/{i}"), "appears more than once")
            }
            Some(id) => out.push(id),
        }
    }
    out
}

fn parse_provision(body: &ProvisionLinksBody) -> Result<ProvisionLinks, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let name_prefix = Fields { errs: &mut errs }
        .required("name_prefix", &body.name_prefix, |s| {
            check_prefix(s).map(|()| s.to_owned())
        })
        .unwrap_or_default();
    let sim_ids = uuid_list("sim_ids", body.sim_ids.as_ref(), true, &mut errs);
    let plan_ids = uuid_list("plan_ids", body.plan_ids.as_ref(), false, &mut errs);
    let counter_start = match &body.counter_start {
        None | Some(Value::Null) => 1,
        Some(v) => match v.as_u64().filter(|n| *n <= u64::from(u32::MAX)) {
            Some(n) => n,
            None => {
                errs.pointer(
                    "/counter_start",
                    "must be a whole number from 0 to 4294967295",
                );
                1
            }
        },
    };
    errs.finish(ProvisionLinks {
        name_prefix,
        sim_ids,
        plan_ids,
        counter_start,
    })
}

/// A task's items in request order (paginated), optionally of one status.
#[utoipa::path(get, path = "/v1/tasks/{id}/items", tag = "tasks",
    params(
        ("id" = uuid::Uuid, Path),
        ("status" = Option<String>, Query, description = "pending, succeeded or failed"),
        ("page" = Option<u32>, Query, description = "1-based page, default 1"),
        ("page_size" = Option<u32>, Query, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "One page of items", body = super::PageView<ItemView>),
        (status = 404, description = "No such task in your tenant", body = super::openapi::Problem),
    ))]
async fn task_items(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<ItemView>>> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["status", "page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(100, 1000, &mut errs);
    let status = q.one("status", &mut errs);
    if let Some(s) = status
        && !matches!(s, "pending" | "succeeded" | "failed")
    {
        errs.parameter("status", "must be pending, succeeded or failed");
    }
    errs.finish(())?;
    let page = state
        .services
        .task_items(&principal, id, status, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// Links made by bulk provisioning, oldest first.
#[utoipa::path(get, path = "/v1/links", tag = "links",
    params(
        ("sim_id" = Option<uuid::Uuid>, Query, description = "only this SIM's link"),
        ("page" = Option<u32>, Query, description = "1-based page, default 1"),
        ("page_size" = Option<u32>, Query, description = "1–250, default 20"),
    ),
    responses((status = 200, description = "One page", body = super::PageView<LinkView>)))]
async fn list_links(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<LinkView>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["sim_id", "page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    let sim = q
        .one("sim_id", &mut errs)
        .and_then(|s| match uuid::Uuid::parse_str(s) {
            Ok(id) => Some(id),
            Err(_) => {
                errs.parameter("sim_id", "must be a UUID");
                None
            }
        });
    errs.finish(())?;
    let page = state
        .services
        .list_links(&principal, sim, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// One link.
#[utoipa::path(get, path = "/v1/links/{id}", tag = "links",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The link", body = LinkView),
        (status = 404, description = "No such link in your tenant", body = super::openapi::Problem),
    ))]
async fn get_link(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<LinkView>> {
    let id = uuid::Uuid::parse_str(&id).map_err(|_| ApiError::NotFound)?;
    Ok(axum::Json(
        state.services.get_link(&principal, id).await?.into(),
    ))
}
