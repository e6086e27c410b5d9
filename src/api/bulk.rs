//! Bulk tasks (`/v1/sims/bulk/…`, `/v1/tasks/{id}/items`) and links (`/v1/links`).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
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
use crate::domain::task::ItemStatus;
use crate::domain::{Link, ValidationErrors, format_timestamp};
use crate::service::tasks::{ImportBatch, ImportRow, Item, ProvisionLinks};

/// The largest import body: 100,000 SIMs with every secret fit comfortably. Read as a stream
/// (see [`super::large_body`]), never buffered whole.
pub const IMPORT_BODY_LIMIT_BYTES: usize = 96 * 1024 * 1024;

/// The largest provision-links body (100,000 ids fit comfortably).
pub const PROVISION_BODY_LIMIT_BYTES: usize = 16 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sims/bulk/import", post(import))
        .route(
            "/v1/sims/bulk/provision-links",
            post(provision_links).layer(DefaultBodyLimit::max(PROVISION_BODY_LIMIT_BYTES)),
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
    #[schema(value_type = Vec<Object>, min_items = 1, max_items = 100000)]
    pub sims: Vec<Box<RawValue>>,
}

/// `POST /v1/sims/bulk/provision-links` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProvisionLinksBody {
    /// Links are named `{name_prefix}_{counter}`: 1–64 of `A-Z a-z 0-9 - _ .`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, pattern = r"^[A-Za-z0-9._-]{1,64}$", example = "fleet")]
    pub name_prefix: Option<Value>,
    /// The SIMs to link, in order (1–100,000, no repeats).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Vec<uuid::Uuid>, required = true, min_items = 1, max_items = 100000)]
    pub sim_ids: Option<Value>,
    /// Plans activated on every link (each must exist).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    pub plan_ids: Option<Value>,
    /// The first counter (default 1).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<u32>, minimum = 0, maximum = 4294967295_u64, example = 1)]
    pub counter_start: Option<Value>,
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
            sim_id: l.sim_id.into(),
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
    /// pending, succeeded, failed or cancelled.
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
            status: i.status.as_str().to_owned(),
            result: i.result,
            error: i.error,
        }
    }
}

pub(super) fn accepted(task: crate::domain::Task) -> impl IntoResponse {
    let location = format!("/v1/tasks/{}", task.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(TaskView::from(task)),
    )
}

/// Import a batch of SIMs with their secrets (provisioner). Answers at once with the task;
/// rows are created in the background, each row's outcome in the task's items. The caller's
/// right to import is decided before the body is read; the body is parsed row by row as it
/// arrives.
#[utoipa::path(post, path = "/v1/sims/bulk/import", tag = "tasks", request_body = ImportBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "No rows, too many, or not a batch", body = super::openapi::Problem),
        (status = 403, description = "Not allowed (the body is not read)", body = super::openapi::Problem),
        (status = 413, description = "Body over 96 MiB", body = super::openapi::Problem),
        (status = 429, description = "Too many large bodies from this caller at once (the body is not read)", body = super::openapi::Problem),
    ))]
async fn import(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<impl IntoResponse> {
    let grant = state.services.tasks().authorize_import(&principal).await?;
    let _permit = state.large_bodies.admit(&principal)?;
    super::large_body::check_announced(&headers, IMPORT_BODY_LIMIT_BYTES)?;
    let batch = grant.batch()?;
    let luhn = state.services.iccid_luhn();
    let batch = super::large_body::parse_streamed(body, IMPORT_BODY_LIMIT_BYTES, move |reader| {
        parse_import(reader, luhn, batch)
    })
    .await??;
    let task = state
        .services
        .tasks()
        .queue_granted_import(grant, batch)
        .await?;
    Ok(accepted(task))
}

/// Parses `{"sims": [...]}` from `reader`, each element through the same validation as
/// `POST /v1/sims` and into `batch` (sealed) as soon as it is complete.
fn parse_import(
    reader: &mut dyn std::io::Read,
    luhn: crate::domain::LuhnPolicy,
    mut batch: ImportBatch,
) -> ApiResult<ImportBatch> {
    use serde::de::DeserializeSeed as _;
    let mut sink = RowSink {
        luhn,
        batch: &mut batch,
        failure: None,
    };
    let mut de = serde_json::Deserializer::from_reader(std::io::BufReader::new(reader));
    let parsed = Envelope(&mut sink)
        .deserialize(&mut de)
        .and_then(|()| de.end());
    if let Some(failure) = sink.failure.take() {
        return Err(failure);
    }
    parsed.map_err(super::extract::json_error)?;
    if batch.is_empty() {
        return Err(ValidationErrors::single_pointer(
            "/sims",
            format!("must hold 1 to {MAX_BULK_ITEMS} SIMs"),
        )
        .into());
    }
    Ok(batch)
}

/// Where parsed rows go; a failure that is not the body's syntax stops the parse.
struct RowSink<'a> {
    luhn: crate::domain::LuhnPolicy,
    batch: &'a mut ImportBatch,
    failure: Option<ApiError>,
}

impl RowSink<'_> {
    fn push(&mut self, raw: &RawValue) -> Result<(), ()> {
        let line = i64::try_from(self.batch.len()).unwrap_or(i64::MAX) + 1;
        let row = ImportRow {
            line,
            sim: crate::domain::SimInput::parse(raw.get().as_bytes(), self.luhn),
        };
        self.batch.push(row).map_err(|e| {
            self.failure = Some(e.into());
        })
    }
}

/// The import body's top level: an object whose only field is `sims`.
struct Envelope<'a, 'b>(&'a mut RowSink<'b>);

impl<'de> serde::de::DeserializeSeed<'de> for Envelope<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Envelope<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object with a sims array")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        let mut seen = false;
        while let Some(key) = map.next_key::<String>()? {
            if key != "sims" {
                return Err(A::Error::unknown_field(&key, &["sims"]));
            }
            if seen {
                return Err(A::Error::duplicate_field("sims"));
            }
            seen = true;
            map.next_value_seed(Rows(&mut *self.0))?;
        }
        if seen {
            Ok(())
        } else {
            Err(A::Error::missing_field("sims"))
        }
    }
}

/// The `sims` array, handed over element by element.
struct Rows<'a, 'b>(&'a mut RowSink<'b>);

impl<'de> serde::de::DeserializeSeed<'de> for Rows<'_, '_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Rows<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an array of SIMs")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        use serde::de::Error as _;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            if self.0.push(&raw).is_err() {
                // The sink holds the reason; this only stops the parse.
                return Err(A::Error::custom("import stopped"));
            }
        }
        Ok(())
    }
}

/// Link SIMs to names (and plans) in bulk (operator, admin). The caller's right is decided
/// before the body is read.
#[utoipa::path(post, path = "/v1/sims/bulk/provision-links", tag = "tasks", request_body = ProvisionLinksBody,
    responses(
        (status = 202, description = "Queued", body = TaskView),
        (status = 400, description = "Invalid input (empty or repeated sim_ids, unknown plans, …)", body = super::openapi::Problem),
        (status = 403, description = "Not allowed (the body is not read)", body = super::openapi::Problem),
        (status = 429, description = "Too many large bodies from this caller at once", body = super::openapi::Problem),
    ))]
pub(crate) async fn provision_links(
    State(state): State<AppState>,
    Caller(principal): Caller,
    req: Request,
) -> ApiResult<impl IntoResponse> {
    let grant = state
        .services
        .tasks()
        .authorize_provision_links(&principal)
        .await?;
    let _permit = state.large_bodies.admit(&principal)?;
    super::large_body::check_announced(req.headers(), PROVISION_BODY_LIMIT_BYTES)?;
    let ApiJson(body) = ApiJson::<ProvisionLinksBody>::from_request(req, &state).await?;
    let request = parse_provision(&body)?;
    let task = state
        .services
        .tasks()
        .queue_provision_links(grant, request)
        .await?;
    Ok(accepted(task))
}

fn uuid_list(
    name: &str,
    value: Option<&Value>,
    required: bool,
    errs: &mut ValidationErrors,
) -> Vec<uuid::Uuid> {
    id_list(
        name,
        value,
        required,
        errs,
        (|s| uuid::Uuid::parse_str(s).ok(), "must be a UUID"),
    )
}

/// The ids of list `name` (1 to [`MAX_BULK_ITEMS`] when `required`, else possibly missing),
/// each read by `parse` (else `what` is wrong with it); a repeated id is refused.
pub(super) fn id_list<T: Eq + std::hash::Hash + Clone>(
    name: &str,
    value: Option<&Value>,
    required: bool,
    errs: &mut ValidationErrors,
    (parse, what): (fn(&str) -> Option<T>, &str),
) -> Vec<T> {
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
        match item.as_str().and_then(parse) {
            None => errs.pointer(format!("/{name}/{i}"), what),
            Some(id) if !seen.insert(id.clone()) => {
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
        ("status" = Option<String>, Query, pattern = r"^(pending|succeeded|failed|cancelled)$", description = "pending, succeeded, failed or cancelled"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 1000, description = "1–1000, default 100"),
    ),
    responses(
        (status = 200, description = "One page of items", body = super::PageView<ItemView>),
        (status = 404, description = "No such task in your tenant", body = super::openapi::Problem),
    ))]
pub(crate) async fn task_items(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<ItemView>>> {
    let id = crate::domain::TaskId::parse(&id).map_err(|_| ApiError::NotFound)?;
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["status", "page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(100, 1000, &mut errs);
    let status =
        q.one("status", &mut errs)
            .and_then(|s| match ItemStatus::parse(&s.to_ascii_lowercase()) {
                Ok(status) => Some(status),
                Err(_) => {
                    errs.parameter("status", "must be pending, succeeded, failed or cancelled");
                    None
                }
            });
    errs.finish(())?;
    let page = state
        .services
        .tasks()
        .task_items(&principal, id, status, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// Links made by bulk provisioning, oldest first.
#[utoipa::path(get, path = "/v1/links", tag = "links",
    params(
        ("sim_id" = Option<uuid::Uuid>, Query, description = "only this SIM's link"),
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
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
        .plans()
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
        state
            .services
            .plans()
            .get_link(&principal, id)
            .await?
            .into(),
    ))
}
