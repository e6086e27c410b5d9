//! `/v1/devices`: devices. A SIM is bound to one by its `device_id`.

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
use crate::domain::group::{DeviceChanges, check_name};
use crate::domain::sim::check_metadata;
use crate::domain::{Device, DeviceId, Imei, ValidationErrors, format_timestamp};
use crate::service::groups::NewDevice;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/devices", get(list_devices).post(create_device))
        .route(
            "/v1/devices/{id}",
            get(get_device).patch(update_device).delete(delete_device),
        )
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceView {
    pub id: uuid::Uuid,
    #[schema(example = "truck-17")]
    pub name: String,
    pub imei: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    /// The live SIMs bound to it, oldest first.
    #[schema(schema_with = sim_ids_schema)]
    pub sim_ids: Vec<uuid::Uuid>,
    #[schema(example = "2026-01-15T10:30:00Z")]
    pub created_at: String,
    pub updated_at: String,
}

/// `sim_ids`: read-only as a whole (utoipa marks only an array's items read-only, so the
/// array is the one alternative of a read-only `oneOf`).
fn sim_ids_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, OneOfBuilder, SchemaFormat};
    use utoipa::openapi::{KnownFormat, Type};
    let id = ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)));
    OneOfBuilder::new()
        .item(ArrayBuilder::new().items(id))
        .description(Some("The live SIMs bound to it, oldest first."))
        .read_only(true)
        .build()
        .into()
}

impl From<Device> for DeviceView {
    fn from(d: Device) -> Self {
        DeviceView {
            id: d.id.into(),
            name: d.name,
            imei: d.imei.map(Imei::into_inner),
            metadata: d.metadata,
            sim_ids: d.sim_ids.into_iter().map(Into::into).collect(),
            created_at: format_timestamp(d.created_at),
            updated_at: format_timestamp(d.updated_at),
        }
    }
}

/// `POST /v1/devices` body, and `PATCH /v1/devices/{id}` (only the fields given change; `null`
/// clears `imei` and empties `metadata`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeviceBody {
    /// 1–64 printable characters, unique in the tenant.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]{0,62}[^\s\x00-\x1f\x7f-\x9f])?$", example = "truck-17")]
    pub name: Option<Value>,
    /// 15 digits with a Luhn digit, or a 16-digit IMEISV.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{15,16}$")]
    pub imei: Option<Value>,
    /// A JSON object of at most 50 top-level keys and 16 KiB.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
}

/// `PATCH /v1/devices/{id}` body (documentation): [`DeviceBody`]'s members, none required,
/// at least one given.
pub struct DeviceChange;

impl utoipa::PartialSchema for DeviceChange {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        super::openapi::change_of(<DeviceBody as utoipa::PartialSchema>::schema())
    }
}

impl ToSchema for DeviceChange {}

impl DeviceBody {
    fn changes(&self) -> Result<DeviceChanges, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let name = match f.patch("name", &self.name, check_name) {
            Some(None) => {
                f.errs.pointer("/name", "a device always has a name");
                None
            }
            other => other.flatten(),
        };
        let imei = f.patch("imei", &self.imei, Imei::parse);
        let metadata = match &self.metadata {
            Some(Value::Null) => Some(serde_json::Map::new()),
            other => f.object("metadata", other, check_metadata),
        };
        super::groups::nothing_to_change(&[&self.name, &self.imei, &self.metadata], &mut errs);
        errs.finish(DeviceChanges {
            name,
            imei,
            metadata,
        })
    }

    fn new_device(&self) -> Result<NewDevice, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let name = f.required("name", &self.name, check_name);
        let imei = f.optional("imei", &self.imei, Imei::parse);
        let metadata = f.object("metadata", &self.metadata, check_metadata);
        let Some(name) = name else {
            return Err(errs);
        };
        errs.finish(NewDevice {
            name,
            imei,
            metadata: metadata.unwrap_or_default(),
        })
    }
}

fn device_id(raw: &str) -> ApiResult<DeviceId> {
    DeviceId::parse(raw).map_err(|_| ApiError::NotFound)
}

/// Create a device.
#[utoipa::path(post, path = "/v1/devices", tag = "devices", request_body = DeviceBody,
    responses(
        (status = 201, description = "Created", body = DeviceView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 409, description = "A device of that name exists", body = super::openapi::Problem),
    ))]
async fn create_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<DeviceBody>,
) -> ApiResult<impl IntoResponse> {
    let new = body.new_device()?;
    let device = state
        .services
        .groups()
        .create_device(&principal, new)
        .await?;
    let location = format!("/v1/devices/{}", device.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(DeviceView::from(device)),
    ))
}

/// List devices, oldest first.
#[utoipa::path(get, path = "/v1/devices", tag = "devices",
    params(
        ("page" = Option<u32>, Query, minimum = 1, maximum = 1000000, description = "1-based page (at most 1,000,000), default 1"),
        ("page_size" = Option<u32>, Query, minimum = 1, maximum = 250, description = "1–250, default 20"),
    ),
    responses((status = 200, description = "One page", body = super::PageView<DeviceView>)))]
async fn list_devices(
    State(state): State<AppState>,
    Caller(principal): Caller,
    q: QueryPairs,
) -> ApiResult<axum::Json<super::PageView<DeviceView>>> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["page", "page_size"], &mut errs);
    let (page, page_size) = q.paging(20, 250, &mut errs);
    errs.finish(())?;
    let page = state
        .services
        .groups()
        .list_devices(&principal, page, page_size)
        .await?;
    Ok(axum::Json(super::PageView::of(page)))
}

/// One device.
#[utoipa::path(get, path = "/v1/devices/{id}", tag = "devices",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The device", body = DeviceView),
        (status = 404, description = "No such device in your tenant", body = super::openapi::Problem),
    ))]
async fn get_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<DeviceView>> {
    let device = state
        .services
        .groups()
        .get_device(&principal, device_id(&id)?)
        .await?;
    Ok(axum::Json(device.into()))
}

/// Change a device's fields.
#[utoipa::path(patch, path = "/v1/devices/{id}", tag = "devices", request_body = DeviceChange,
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 200, description = "The changed device", body = DeviceView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 404, description = "No such device in your tenant", body = super::openapi::Problem),
        (status = 409, description = "Another device has that name", body = super::openapi::Problem),
    ))]
async fn update_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<DeviceBody>,
) -> ApiResult<axum::Json<DeviceView>> {
    let id = device_id(&id)?;
    let changes = body.changes()?;
    let device = state
        .services
        .groups()
        .update_device(&principal, id, changes)
        .await?;
    Ok(axum::Json(device.into()))
}

/// Delete a device no SIM is bound to.
#[utoipa::path(delete, path = "/v1/devices/{id}", tag = "devices",
    params(("id" = uuid::Uuid, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such device in your tenant", body = super::openapi::Problem),
        (status = 409, description = "SIMs are still bound to it", body = super::openapi::Problem),
    ))]
async fn delete_device(
    State(state): State<AppState>,
    Caller(principal): Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .services
        .groups()
        .delete_device(&principal, device_id(&id)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
