//! `/v1/sims/{sim}/secrets`: writing and revealing secret fields.
//!
//! Secret values go from the request body straight into zeroizing storage (they never pass
//! through a `serde_json::Value`), and out into the response body only.

use std::fmt;

use axum::Router;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::SecretString;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

use super::AppState;
use super::error::ApiResult;
use super::extract::{ApiJson, Caller, QueryPairs};
use super::sims::{SimRef, SimView};
use crate::domain::sim::SecretChanges;
use crate::domain::{SecretField, SecretValue, ValidationErrors};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/sims/{sim}/secrets", get(reveal).put(write))
}

/// One secret field as sent: a string, an explicit null, or something else (refused without
/// keeping or echoing it).
pub enum SecretInput {
    Value(SecretString),
    Null,
    WrongType,
}

impl<'de> Deserialize<'de> for SecretInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretInput, E> {
                Ok(SecretInput::Value(SecretString::from(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<SecretInput, E> {
                let s = Zeroizing::new(s);
                Ok(SecretInput::Value(SecretString::from(s.as_str())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretInput, E> {
                Ok(SecretInput::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<SecretInput, E> {
                Ok(SecretInput::Null)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretInput, E> {
                Ok(SecretInput::WrongType)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretInput, E> {
                Ok(SecretInput::WrongType)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretInput, E> {
                Ok(SecretInput::WrongType)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretInput, E> {
                Ok(SecretInput::WrongType)
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<SecretInput, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(SecretInput::WrongType)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretInput, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SecretInput::WrongType)
            }
        }
        d.deserialize_any(V)
    }
}

/// A set of secret fields as sent (`{"ki": "…", "pin1": null, …}`), unknown names kept for
/// the error report.
#[derive(Default)]
pub struct SecretsInput {
    fields: Vec<(SecretField, SecretInput)>,
    /// OP, accepted wherever OPc is and turned into OPc at once (never stored).
    op: Option<SecretInput>,
    unknown: Vec<String>,
    not_an_object: bool,
}

impl fmt::Debug for SecretsInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsInput")
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for SecretsInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretsInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of secret fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretsInput, A::Error> {
                let mut out = SecretsInput::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "op" {
                        out.op = Some(map.next_value::<SecretInput>()?);
                        continue;
                    }
                    match key.parse::<SecretField>() {
                        Ok(field) => {
                            let value = map.next_value::<SecretInput>()?;
                            out.fields.push((field, value));
                        }
                        Err(()) => {
                            map.next_value::<IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                    }
                }
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretsInput, E> {
                Ok(SecretsInput::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretsInput, E> {
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<SecretsInput, E> {
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<SecretsInput, E> {
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<SecretsInput, E> {
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<SecretsInput, E> {
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<SecretsInput, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(SecretsInput {
                    not_an_object: true,
                    ..SecretsInput::default()
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl SecretsInput {
    /// Validates every field, reporting problems under `prefix` (`/secrets` or ``).
    /// `null` removes a field when `allow_remove`, and is otherwise ignored.
    pub fn parse(
        self,
        prefix: &str,
        allow_remove: bool,
        errs: &mut ValidationErrors,
    ) -> SecretChanges {
        let (changes, pending_op) = self.parse_with_op(prefix, allow_remove, errs);
        if pending_op.is_some() {
            errs.pointer(
                format!("{prefix}/op"),
                "op needs ki in the same request: OPc is derived from both, and OP is never stored",
            );
        }
        changes
    }

    /// Like [`SecretsInput::parse`], but an `op` given without `ki` is handed back (to be
    /// combined with the SIM's stored Ki) instead of refused.
    pub fn parse_with_op(
        self,
        prefix: &str,
        allow_remove: bool,
        errs: &mut ValidationErrors,
    ) -> (SecretChanges, Option<SecretValue>) {
        if self.not_an_object {
            errs.pointer(prefix, "must be an object of secret fields");
        }
        for name in &self.unknown {
            errs.pointer(
                format!(
                    "{prefix}/{}",
                    crate::domain::validation::pointer_token(name)
                ),
                "unknown secret field; known: pin1, pin2, puk1, puk2, ki, opc, activation_code",
            );
        }
        let mut changes: SecretChanges = Vec::new();
        for (field, input) in self.fields {
            let at = format!("{prefix}/{}", field.as_str());
            if changes.iter().any(|(f, _)| *f == field) {
                errs.pointer(at, "given more than once");
                continue;
            }
            match input {
                SecretInput::Value(v) => {
                    match field.parse(secrecy::ExposeSecret::expose_secret(&v)) {
                        Ok(value) => changes.push((field, Some(value))),
                        Err(rule) => errs.pointer(at, rule),
                    }
                }
                SecretInput::Null if allow_remove => changes.push((field, None)),
                SecretInput::Null => {}
                SecretInput::WrongType => errs.pointer(at, "must be a string"),
            }
        }
        if let Some(op) = self.op {
            let at = format!("{prefix}/op");
            let op = match op {
                SecretInput::Value(v) => SecretField::Opc
                    .parse(secrecy::ExposeSecret::expose_secret(&v))
                    .map_err(|rule| errs.pointer(at.clone(), rule))
                    .ok(),
                SecretInput::Null => None,
                SecretInput::WrongType => {
                    errs.pointer(at.clone(), "must be a string");
                    None
                }
            };
            let ki = changes
                .iter()
                .find(|(f, _)| *f == SecretField::Ki)
                .and_then(|(_, v)| v.clone());
            if changes.iter().any(|(f, _)| *f == SecretField::Opc) {
                errs.pointer(at, "give op or opc, not both");
            } else if let Some(op) = op {
                match ki {
                    Some(ki) => changes.push((
                        SecretField::Opc,
                        Some(crate::domain::milenage::opc_value(&ki, &op)),
                    )),
                    None => return (changes, Some(op)),
                }
            }
        }
        (changes, None)
    }
}

/// The secret fields (documentation of the request bodies).
#[derive(ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `SecretsInput` parses it
pub struct SecretsDoc {
    /// 4–8 digits.
    pin1: Option<String>,
    pin2: Option<String>,
    /// Exactly 8 digits.
    puk1: Option<String>,
    puk2: Option<String>,
    /// 32 hex digits (128 bits), either case; returned lower-case.
    ki: Option<String>,
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

const REASON_HEADER: &str = "x-simvault-reason";

/// The reason (ticket) for a reveal: `reason` in the query or the `X-Simvault-Reason` header.
fn reason(q: &QueryPairs, headers: &HeaderMap, errs: &mut ValidationErrors) -> Option<String> {
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
        ("fields" = String, Query, description = "comma-separated: pin1, pin2, puk1, puk2, ki, opc, activation_code"),
        ("reason" = Option<String>, Query, description = "why (ticket); also as X-Simvault-Reason"),
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
        .reveal_secrets(&principal, &key, &fields, reason.as_deref())
        .await?;
    let body = RevealedView {
        id: sim.id,
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
    let (changes, op) = body.parse_with_op("", true, &mut errs);
    if changes.is_empty() && op.is_none() && errs.is_empty() {
        errs.pointer("", "name at least one secret field");
    }
    errs.finish(())?;
    let sim = state
        .services
        .put_secrets(&principal, &key, changes, op)
        .await?;
    Ok(axum::Json(sim.into()))
}
