//! The `device-platform` profile ("Create a SIM", seed 002) at `/device-platform/v1`: SIMs
//! created linked to a device, in the platform's words. The body is translated member by member
//! into the native SIM input (`status` is our `carrier_status`, `sim_metadata` our `metadata`)
//! and read by the native parsers; the answer adds the platform's computed fields. Errors are
//! RFC 7807, as native, with the statuses the seed lists: a duplicate ICCID is `400`, a device
//! that is not the caller's is `404`.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::{OpenApi, ToSchema};

use crate::api::AppState;
use crate::api::error::{ApiError, ApiResult};
use crate::api::extract::{ApiJson, Caller};
use crate::api::sims::{Deleted, SimRef};
use crate::domain::condition::Condition;
use crate::domain::sim_patch::PatchFields;
use crate::domain::{Sim, SimInput, SimState, ValidationErrors, format_timestamp};
use crate::service::ServiceError;
use crate::service::groups::NO_DEVICE;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/device-platform/v1/sims", post(create_sim))
        .route(
            "/device-platform/v1/sims/{id}",
            axum::routing::get(get_sim)
                .put(update_sim)
                .delete(delete_sim),
        )
}

#[derive(OpenApi)]
#[openapi(
    paths(create_sim, get_sim, update_sim, delete_sim),
    components(schemas(DeviceSimBody)),
    tags((name = "device-platform", description = "The device platform's \"Create a SIM\" API \
        (seed 002) at `/device-platform/v1`: a SIM linked to a device of the caller's tenant \
        (`company_id`). `status` is the carrier's open status string; the read-only fields \
        `ctd_data_usage, ctd_sms_usage, included_usage, overage_limit_reached, sim_barred, \
        last_sync_at, created_at, updated_at, created_by, updated_by` are ignored if sent; any \
        other unknown field is `400`. Errors are RFC 7807 problem documents.")),
)]
pub struct DeviceDoc;

/// The members a client may write, in the platform's words.
const WRITABLE: &[&str] = &[
    "device_id",
    "mno_integration_id",
    "iccid",
    "msisdn",
    "status",
    "communication_plan",
    "rate_plan",
    "sim_metadata",
];

/// Server-managed members: ignored when sent.
const READ_ONLY: &[&str] = &[
    "ctd_data_usage",
    "ctd_sms_usage",
    "included_usage",
    "overage_limit_reached",
    "sim_barred",
    "last_sync_at",
    "created_at",
    "updated_at",
    "created_by",
    "updated_by",
];

/// The platform's name for a native member, where it has its own.
const RENAMED: [(&str, &str); 2] = [("status", "carrier_status"), ("sim_metadata", "metadata")];

/// The carrier status a SIM created without one has.
const DEFAULT_STATUS: &str = "inactive";

/// The body (documentation; the handlers read it member by member).
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI
#[serde(deny_unknown_fields)]
pub struct DeviceSimBody {
    /// The device this SIM is linked to (one of your tenant's). Required on creation.
    #[schema(format = Uuid)]
    device_id: Option<String>,
    /// Up to 64 characters.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$")]
    mno_integration_id: Option<String>,
    /// 18–22 digits, Luhn-checked unless the deployment relaxes it; globally unique. Required
    /// on creation; cannot change.
    #[schema(pattern = r"^89[0-9]{16,20}$", example = "8944500010512345675")]
    iccid: Option<String>,
    /// E.164, at most 15 digits (the platform allows 20 characters; ours is stricter).
    #[schema(pattern = r"^\+?[0-9]{1,15}$")]
    msisdn: Option<String>,
    /// The carrier's open status string, up to 30 characters; `inactive` when omitted on
    /// creation.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,30}$")]
    status: Option<String>,
    /// Up to 255 characters.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    communication_plan: Option<String>,
    /// Up to 255 characters.
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    rate_plan: Option<String>,
    /// Up to 50 top-level keys (16 KiB in all); nested values allowed.
    #[schema(value_type = Option<Object>)]
    sim_metadata: Option<Value>,
}

/// The creation body (documentation): [`DeviceSimBody`] with `device_id` and `iccid` required.
pub struct DeviceSimCreate;

impl utoipa::PartialSchema for DeviceSimCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        let body = <DeviceSimBody as utoipa::PartialSchema>::schema();
        crate::api::openapi::requiring(body, &["device_id", "iccid"])
    }
}

impl ToSchema for DeviceSimCreate {}

/// A SIM as the platform shows it: the body's members and the computed ones.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceSim {
    pub id: uuid::Uuid,
    pub device_id: Option<String>,
    pub mno_integration_id: Option<String>,
    pub iccid: String,
    pub msisdn: Option<String>,
    /// The carrier's status string.
    pub status: Option<String>,
    pub communication_plan: Option<String>,
    pub rate_plan: Option<String>,
    #[schema(value_type = Object)]
    pub sim_metadata: Map<String, Value>,
    /// The tenant.
    pub company_id: String,
    /// Bytes used this billing cycle, as upstream last reported (null before any sync).
    #[schema(value_type = Option<u64>)]
    pub ctd_data_usage: Option<u128>,
    /// Not tracked: always null.
    #[schema(value_type = Option<u64>)]
    pub ctd_sms_usage: Option<u64>,
    /// The data limit that applies, in bytes (the SIM's own, else its group's), or null.
    #[schema(value_type = Option<u64>)]
    pub included_usage: Option<u128>,
    /// Whether the SIM has used up its data limit.
    pub overage_limit_reached: bool,
    /// Whether the SIM is suspended, blocked or retired.
    pub sim_barred: bool,
    pub last_sync_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Sim> for DeviceSim {
    fn from(s: Sim) -> Self {
        DeviceSim {
            id: s.id.into(),
            device_id: s.device_id,
            mno_integration_id: s.carrier.mno_integration_id,
            iccid: s.iccid.into_inner(),
            msisdn: s.msisdn.map(|m| m.as_str().to_owned()),
            status: s.carrier_status,
            communication_plan: s.carrier.communication_plan,
            rate_plan: s.carrier.rate_plan,
            sim_metadata: s.metadata,
            company_id: s.tenant_id.to_string(),
            ctd_data_usage: s.consumed_data.map(|d| d.bytes()),
            ctd_sms_usage: None,
            included_usage: s.effective_data_limit.map(|d| d.bytes()),
            overage_limit_reached: s.conditions.contains(&Condition::DataLimitExceeded),
            sim_barred: matches!(
                s.state,
                SimState::Suspended | SimState::Blocked | SimState::Retired
            ),
            last_sync_at: s.last_synced_at.map(format_timestamp),
            created_at: format_timestamp(s.created_at),
            updated_at: format_timestamp(s.updated_at),
        }
    }
}

/// A body as read: the writable members' values, each given at most once; read-only and
/// unknown members are skipped unread (a value sent where none belongs, a secret say, is never
/// held), the unknown and repeated ones named for the error.
#[derive(Debug, Default)]
pub struct Body {
    members: Map<String, Value>,
    unknown: Vec<String>,
    repeated: Vec<String>,
}

impl<'de> serde::Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = Body;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
                let mut body = Body::default();
                while let Some(name) = map.next_key::<String>()? {
                    let writable = WRITABLE.contains(&name.as_str());
                    if writable && !body.members.contains_key(&name) {
                        let value = map.next_value::<Value>()?;
                        body.members.insert(name, value);
                        continue;
                    }
                    map.next_value::<serde::de::IgnoredAny>()?;
                    if writable {
                        body.repeated.push(name);
                    } else if !READ_ONLY.contains(&name.as_str()) {
                        body.unknown.push(name);
                    }
                }
                Ok(body)
            }
        }
        d.deserialize_map(Members)
    }
}

/// The body in the native members: unknown and repeated members refused, renamed ones renamed.
fn translate(body: Body, errs: &mut ValidationErrors) -> Map<String, Value> {
    for name in &body.unknown {
        errs.pointer(format!("/{name}"), "unknown field");
    }
    for name in &body.repeated {
        errs.pointer(format!("/{name}"), "given more than once");
    }
    body.members
        .into_iter()
        .map(|(name, value)| {
            let to = RENAMED
                .iter()
                .find(|(ours, _)| *ours == name)
                .map_or(name, |(_, native)| (*native).to_owned());
            (to, value)
        })
        .collect()
}

/// Every problem of both readings, in order.
fn merged(mut errs: ValidationErrors, more: ValidationErrors) -> ValidationErrors {
    for e in more.errors() {
        match &e.location {
            crate::domain::Location::Pointer(p) => errs.pointer(p.clone(), &e.detail),
            crate::domain::Location::Parameter(p) => errs.parameter(p.clone(), &e.detail),
        }
    }
    errs
}

/// Native problems in the platform's member names.
fn in_our_words(mut errs: ValidationErrors) -> ValidationErrors {
    for (ours, native) in RENAMED {
        errs = errs.rename_pointer(&format!("/{native}"), &format!("/{ours}"));
    }
    errs
}

/// A refused create as the seed lists it: a duplicate ICCID (the one conflict a new SIM can
/// meet) is invalid input (`400`); the rest as [`refused`].
fn refused_create(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Conflict(detail) => {
            ApiError::Validation(ValidationErrors::single_pointer("/iccid", detail))
        }
        other => refused(other),
    }
}

/// A service refusal as the seed lists it: a device that is not the caller's is not found
/// (`404`), problems are named in the platform's words; the rest as native.
fn refused(e: ServiceError) -> ApiError {
    match e {
        ServiceError::Validation(errs)
            if !errs.is_empty()
                && errs.errors().iter().all(|f| {
                    f.location == crate::domain::Location::Pointer("/device_id".into())
                        && f.detail == NO_DEVICE
                }) =>
        {
            ApiError::NotFound
        }
        ServiceError::Validation(errs) => ApiError::Validation(in_our_words(errs)),
        other => other.into(),
    }
}

/// Create a SIM linked to a device of your tenant.
#[utoipa::path(post, path = "/device-platform/v1/sims", tag = "device-platform",
    request_body = DeviceSimCreate,
    responses(
        (status = 201, description = "Created", body = DeviceSim),
        (status = 400, description = "Malformed or invalid (a duplicate ICCID included)", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 403, description = "Your role may not create SIMs", body = crate::api::openapi::Problem),
        (status = 404, description = "No such device in your tenant", body = crate::api::openapi::Problem),
    ))]
async fn create_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    ApiJson(body): ApiJson<Body>,
) -> ApiResult<impl IntoResponse> {
    let input = create_input(body, state.services.iccid_luhn())?;
    let sim = state
        .services
        .inventory()
        .create_sim(&principal, input)
        .await
        .map_err(refused_create)?;
    let location = format!("/device-platform/v1/sims/{}", sim.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(DeviceSim::from(sim)),
    ))
}

/// The native input a create body means: `device_id` and `iccid` required, `status`
/// `inactive` unless given.
fn create_input(body: Body, luhn: crate::domain::LuhnPolicy) -> Result<SimInput, ApiError> {
    let mut errs = ValidationErrors::new();
    let mut native = translate(body, &mut errs);
    if matches!(native.get("device_id"), None | Some(Value::Null)) {
        errs.pointer("/device_id", "device_id is required");
    }
    if matches!(native.get("carrier_status"), None | Some(Value::Null)) {
        native.insert("carrier_status".into(), Value::from(DEFAULT_STATUS));
    }
    let text = serde_json::to_vec(&native).map_err(|e| ApiError::Internal(e.to_string()))?;
    match (errs.finish(()), SimInput::parse(&text, luhn)) {
        (Ok(()), Ok(input)) => Ok(input),
        (Err(errs), Err(more)) => Err(ApiError::Validation(merged(errs, in_our_words(more)))),
        (Err(errs), Ok(_)) => Err(ApiError::Validation(errs)),
        (Ok(()), Err(more)) => Err(ApiError::Validation(in_our_words(more))),
    }
}

/// Read a SIM of your tenant.
#[utoipa::path(get, path = "/device-platform/v1/sims/{id}", tag = "device-platform",
    params(("id" = String, Path, description = "The SIM's id (or ICCID)")),
    responses(
        (status = 200, description = "The SIM", body = DeviceSim),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = crate::api::openapi::Problem),
    ))]
async fn get_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
) -> ApiResult<axum::Json<DeviceSim>> {
    let sim = state.services.inventory().get_sim(&principal, &key).await?;
    Ok(axum::Json(sim.into()))
}

/// Update a SIM: the members given change (`null` clears one), the others are kept;
/// `device_id` is optional here and `iccid`, if given, must be the SIM's own.
#[utoipa::path(put, path = "/device-platform/v1/sims/{id}", tag = "device-platform",
    request_body = DeviceSimBody,
    params(("id" = String, Path, description = "The SIM's id (or ICCID)")),
    responses(
        (status = 200, description = "The updated SIM", body = DeviceSim),
        (status = 400, description = "Malformed or invalid (an ICCID that is not the SIM's included)", body = crate::api::openapi::Problem),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 403, description = "Your role may not change SIMs", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM, or no such device, in your tenant", body = crate::api::openapi::Problem),
    ))]
async fn update_sim(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<Body>,
) -> ApiResult<axum::Json<DeviceSim>> {
    let mut errs = ValidationErrors::new();
    let mut native = translate(body, &mut errs);
    let iccid = native.remove("iccid");
    // Every member here is one PatchFields reads: it cannot refuse the object.
    let fields = serde_json::from_value::<PatchFields>(Value::Object(native))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let patch = match (errs.finish(()), fields.parse()) {
        (Ok(()), Ok(patch)) => patch,
        (Err(errs), Err(more)) => {
            return Err(ApiError::Validation(merged(errs, in_our_words(more))));
        }
        (Err(errs), Ok(_)) => return Err(ApiError::Validation(errs)),
        (Ok(()), Err(more)) => return Err(ApiError::Validation(in_our_words(more))),
    };
    if let Some(given) = iccid {
        // The ICCID names the card: it is checked against the SIM, never written. (The read
        // is decided as a read; the change is decided by the update that follows.)
        let sim = state.services.inventory().get_sim(&principal, &key).await?;
        if given.as_str() != Some(sim.iccid.as_str()) {
            return Err(ApiError::Validation(ValidationErrors::single_pointer(
                "/iccid",
                "iccid cannot change",
            )));
        }
    }
    let sim = state
        .services
        .inventory()
        .update_sim(&principal, &key, patch)
        .await
        .map_err(refused)?;
    Ok(axum::Json(sim.into()))
}

/// Delete a SIM (its secrets destroyed, a tombstone kept for its history).
#[utoipa::path(delete, path = "/device-platform/v1/sims/{id}", tag = "device-platform",
    params(("id" = String, Path, description = "The SIM's id (or ICCID)")),
    responses(
        (status = 200, description = "Deleted", body = Deleted),
        (status = 401, description = "No valid credential", body = crate::api::openapi::Problem),
        (status = 403, description = "Your role may not delete SIMs", body = crate::api::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = crate::api::openapi::Problem),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> Body {
        serde_json::from_value(v).unwrap()
    }

    fn pointers(e: &ApiError) -> Vec<String> {
        let ApiError::Validation(errs) = e else {
            panic!("not a validation error: {e:?}");
        };
        errs.errors()
            .iter()
            .map(|f| match &f.location {
                crate::domain::Location::Pointer(p) => p.clone(),
                crate::domain::Location::Parameter(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn read_only_members_are_ignored_and_unknown_ones_refused() {
        let mut errs = ValidationErrors::new();
        let native = translate(
            body(json!({
                "iccid": "1", "status": "active", "sim_metadata": {"a": 1},
                "sim_barred": true, "created_by": "x", "ctd_data_usage": 5, "tags": ["x"]
            })),
            &mut errs,
        );
        let mut names: Vec<&str> = native.keys().map(String::as_str).collect();
        names.sort();
        assert_eq!(names, ["carrier_status", "iccid", "metadata"]);
        assert_eq!(errs.errors().len(), 1);
        assert_eq!(
            errs.errors()[0].location,
            crate::domain::Location::Pointer("/tags".into())
        );
    }

    #[test]
    fn repeated_members_are_refused_and_unknown_values_never_held() {
        let b: Body = serde_json::from_str(
            r#"{"iccid": "1", "iccid": "2", "secrets": {"ki": "00112233445566778899aabbccddeeff"}, "sim_barred": 1}"#,
        )
        .unwrap();
        assert_eq!(b.repeated, ["iccid"]);
        assert_eq!(b.unknown, ["secrets"]);
        assert_eq!(b.members.len(), 1);
        assert!(!format!("{b:?}").contains("00112233"));
    }

    #[test]
    fn create_needs_a_device_and_defaults_the_status() {
        let luhn = crate::domain::LuhnPolicy::Enforce;
        let input = create_input(
            body(json!({"device_id": uuid::Uuid::new_v4().to_string(), "iccid": "8944500010512345675"})),
            crate::domain::LuhnPolicy::Relaxed,
        )
        .unwrap();
        assert_eq!(input.carrier_status.as_deref(), Some(DEFAULT_STATUS));
        let e = create_input(
            body(json!({"device_id": null, "iccid": "8944500010512345675", "status": null})),
            crate::domain::LuhnPolicy::Relaxed,
        )
        .unwrap_err();
        assert_eq!(pointers(&e), ["/device_id"]);
        let e = create_input(
            body(json!({"iccid": "12", "status": 5, "sim_metadata": 1})),
            luhn,
        )
        .unwrap_err();
        assert_eq!(
            pointers(&e),
            ["/device_id", "/iccid", "/status", "/sim_metadata"]
        );
    }

    #[test]
    fn a_foreign_device_is_not_found_and_a_duplicate_is_invalid() {
        let mut errs = ValidationErrors::new();
        errs.pointer("/device_id", NO_DEVICE);
        assert!(matches!(
            refused(ServiceError::Validation(errs)),
            ApiError::NotFound
        ));
        let dup = refused_create(ServiceError::Conflict("ICCID exists".into()));
        assert_eq!(pointers(&dup), ["/iccid"]);
        assert!(matches!(
            refused(ServiceError::Conflict("other".into())),
            ApiError::Conflict(_)
        ));
        let mut errs = ValidationErrors::new();
        errs.pointer("/device_id", NO_DEVICE);
        errs.pointer("/carrier_status", "too long");
        assert_eq!(
            pointers(&refused(ServiceError::Validation(errs))),
            ["/device_id", "/status"]
        );
    }
}
