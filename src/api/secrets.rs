//! `/v1/sims/{sim}/secrets`: writing and revealing secret fields.
//!
//! Secret values go from the request body straight into zeroizing storage (they never pass
//! through a `serde_json::Value`, see [`SecretsInput`]), and out into the response body only.

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::error::ApiResult;
use super::extract::{ApiJson, Caller, QueryPairs};
use super::sims::{SimRef, SimView};
pub use crate::domain::secret_input::SecretInput;
use crate::domain::secret_input::SecretsInput;
use crate::domain::{SecretField, SecretValue, ValidationErrors};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sims/{sim}/secrets", get(reveal).put(write))
}

/// The secret fields (documentation of the request bodies).
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `SecretsInput` parses it
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct SecretsDoc {
    /// 4–8 digits.
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pin1: Option<String>,
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pin2: Option<String>,
    /// Exactly 8 digits.
    #[schema(pattern = r"^[0-9]{8}$")]
    puk1: Option<String>,
    #[schema(pattern = r"^[0-9]{8}$")]
    puk2: Option<String>,
    /// 32 hex digits (128 bits), either case; returned lower-case.
    #[schema(pattern = r"^[0-9a-fA-F]{32}$")]
    ki: Option<String>,
    #[schema(pattern = r"^[0-9a-fA-F]{32}$")]
    opc: Option<String>,
    /// `LPA:1$<SM-DP+ FQDN>$<Matching ID>[$<OID>[$1]]`.
    activation_code: Option<String>,
}

/// Revealed secrets: each asked-for field's value, or null when it is not set.
#[derive(Serialize, ToSchema)]
pub struct RevealedView {
    pub id: uuid::Uuid,
    pub iccid: String,
    #[schema(value_type = Object)]
    pub secrets: RevealedFields,
}

pub struct RevealedFields(Vec<(SecretField, Option<SecretValue>)>);

impl Serialize for RevealedFields {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field.as_str(), &value.as_ref().map(SecretValue::expose))?;
        }
        map.end()
    }
}

/// The header a reason (ticket) may come in, where a reason is asked for.
pub(crate) const REASON_HEADER: &str = "x-simvault-reason";

/// The reason (ticket) for a reveal: `reason` in the query or the `X-Simvault-Reason` header.
pub(crate) fn reason(
    q: &QueryPairs,
    headers: &HeaderMap,
    errs: &mut ValidationErrors,
) -> Option<String> {
    let from_query = q.one("reason", errs).map(str::to_owned);
    let from_header = headers
        .get(REASON_HEADER)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default());
    let text = from_query.or(from_header)?;
    crate::domain::validation::reason(&text)
        .map_err(|rule| errs.parameter("reason", rule))
        .ok()
}

fn requested_fields(q: &QueryPairs, errs: &mut ValidationErrors) -> Vec<SecretField> {
    let mut fields = Vec::new();
    let Some(list) = q.one("fields", errs) else {
        errs.parameter(
            "fields",
            "fields is required: a comma-separated list of secret fields",
        );
        return fields;
    };
    for name in list.split(',').map(str::trim) {
        match name.parse::<SecretField>() {
            Ok(f) if !fields.contains(&f) => fields.push(f),
            Ok(_) => {}
            Err(()) => errs.parameter(
                "fields",
                "unknown secret field; known: pin1, pin2, puk1, puk2, ki, opc, activation_code",
            ),
        }
    }
    if fields.is_empty() && errs.is_empty() {
        errs.parameter("fields", "name at least one secret field");
    }
    fields
}

/// Reveal secret fields. Each field is authorized on its own (Ki, OPc and PINs only to
/// provisioners over mTLS; PUKs to provisioners over mTLS or support staff with a reason).
#[utoipa::path(get, path = "/v1/sims/{sim}/secrets", tag = "secrets",
    params(
        ("sim" = String, Path, description = "UUID or ICCID"),
        ("fields" = String, Query, pattern = r"^(pin1|pin2|puk1|puk2|ki|opc|activation_code)(,(pin1|pin2|puk1|puk2|ki|opc|activation_code))*$", description = "comma-separated: pin1, pin2, puk1, puk2, ki, opc, activation_code"),
        ("reason" = Option<String>, Query, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", description = "why (ticket); also as X-Simvault-Reason"),
    ),
    responses(
        (status = 200, description = "The values (null when unset); Cache-Control: no-store", body = RevealedView),
        (status = 400, description = "Invalid parameters", body = super::openapi::Problem),
        (status = 403, description = "A field is not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn reveal(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    q: QueryPairs,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(&["fields", "reason"], &mut errs);
    let fields = requested_fields(&q, &mut errs);
    let reason = reason(&q, &headers, &mut errs);
    errs.finish(())?;
    let (sim, revealed) = state
        .services
        .secrets()
        .reveal_secrets(&principal, &key, &fields, reason.as_deref())
        .await?;
    let body = RevealedView {
        id: sim.id.into(),
        iccid: sim.iccid.into_inner(),
        secrets: RevealedFields(revealed),
    };
    Ok(axum::Json(body).into_response())
}

/// Set, replace or (with null) remove secret fields; fields not named are kept.
#[utoipa::path(put, path = "/v1/sims/{sim}/secrets", tag = "secrets", request_body = SecretsDoc,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "The SIM", body = SimView),
        (status = 400, description = "Invalid input", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
    ))]
async fn write(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<SecretsInput>,
) -> ApiResult<axum::Json<SimView>> {
    let mut errs = ValidationErrors::new();
    let (changes, op) = body.parse("", true, &mut errs);
    if changes.is_empty() && op.is_none() && errs.is_empty() {
        errs.pointer("", "name at least one secret field");
    }
    errs.finish(())?;
    let sim = state
        .services
        .secrets()
        .put_secrets(&principal, &key, changes, op)
        .await?;
    Ok(axum::Json(sim.into()))
}
