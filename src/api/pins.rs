//! `POST /v1/sims/{sim}/reset-pin` and `/unblock-pin` (support staff). Presented PINs and PUKs
//! go from the body straight into zeroizing storage and are never echoed, logged or recorded.

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::error::{ApiError, ApiResult};
use super::extract::{ApiJson, Caller, present};
use super::secrets::SecretInput;
use super::sims::SimRef;
use crate::domain::pin::{PinType, Proof};
use crate::domain::{SecretField, SecretValue, ValidationErrors, format_timestamp};
use crate::service::pins::PinChange;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/sims/{sim}/reset-pin", post(reset_pin))
        .route("/v1/sims/{sim}/unblock-pin", post(unblock_pin))
}

/// Which PIN of the card (documentation of the bodies' `pin_type`; `pin_type` parses it).
#[derive(ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "lowercase")]
pub enum PinTypeDoc {
    Pin1,
    Pin2,
}

/// `reset-pin` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPinBody {
    /// `pin1` or `pin2`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = PinTypeDoc, required = true, example = "pin1")]
    pub pin_type: Option<Value>,
    /// The PIN now on the card: 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]{4,8}$", example = "1234")]
    pub current_pin: Option<SecretInput>,
    /// 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]{4,8}$", example = "4321")]
    pub new_pin: Option<SecretInput>,
    /// Optional here: why (ticket).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$")]
    pub reason: Option<Value>,
}

/// `unblock-pin` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockPinBody {
    /// `pin1` (unblocked with `puk1`) or `pin2` (with `puk2`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = PinTypeDoc, required = true, example = "pin1")]
    pub pin_type: Option<Value>,
    /// The PUK of the pair: 8 digits.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]{8}$", example = "12345678")]
    pub puk: Option<SecretInput>,
    /// 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String, required = true, pattern = r"^[0-9]{4,8}$", example = "4321")]
    pub new_pin: Option<SecretInput>,
    /// Why (ticket): required, 1–500 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, min_length = 1, max_length = 500, pattern = r"^[^\s\x00-\x1f\x7f-\x9f]([^\x00-\x1f\x7f-\x9f]*[^\s\x00-\x1f\x7f-\x9f])?$", example = "TICKET-4711")]
    pub reason: Option<Value>,
}

// The bodies hold PINs: never print them.
impl std::fmt::Debug for ResetPinBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPinBody")
    }
}
impl std::fmt::Debug for UnblockPinBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnblockPinBody")
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PinChangedView {
    pub success: bool,
    /// The attempts left (the maximum, restored) of the secret the call spends: the PIN's for
    /// `reset-pin`, the PUK's for `unblock-pin`.
    pub remaining_attempts: i64,
    pub updated_at: String,
}

fn pin_type(v: Option<Value>, errs: &mut ValidationErrors) -> PinType {
    match v
        .as_ref()
        .and_then(Value::as_str)
        .map(str::parse::<PinType>)
    {
        Some(Ok(t)) => t,
        _ => {
            errs.pointer("/pin_type", "pin_type must be pin1 or pin2");
            PinType::Pin1
        }
    }
}

/// A PIN or PUK from the body, validated as `field` (only the rule is reported, never the
/// value).
pub(crate) fn secret(
    input: Option<SecretInput>,
    name: &str,
    field: SecretField,
    errs: &mut ValidationErrors,
) -> Option<SecretValue> {
    let at = format!("/{name}");
    match input {
        Some(SecretInput::Value(v)) => {
            match field.parse(secrecy::ExposeSecret::expose_secret(&v)) {
                Ok(value) => Some(value),
                Err(rule) => {
                    errs.pointer(at, rule);
                    None
                }
            }
        }
        Some(SecretInput::WrongType) => {
            errs.pointer(at, "must be a string");
            None
        }
        Some(SecretInput::Null) | None => {
            errs.pointer(at, "required");
            None
        }
    }
}

fn reason(v: Option<Value>, required: bool, errs: &mut ValidationErrors) -> Option<String> {
    let text = match v {
        None | Some(Value::Null) if !required => return None,
        None | Some(Value::Null) => {
            errs.pointer("/reason", "a reason (ticket) is required to unblock a PIN");
            return None;
        }
        Some(Value::String(s)) => s,
        Some(_) => {
            errs.pointer("/reason", "must be a string");
            return None;
        }
    };
    crate::domain::validation::reason(&text)
        .map_err(|rule| errs.pointer("/reason", rule))
        .ok()
}

/// Set a new PIN by presenting the current one (support). A wrong PIN costs an attempt
/// (`400 wrong-pin` with `remaining_attempts`); at none left, `423 pin-blocked`.
#[utoipa::path(post, path = "/v1/sims/{sim}/reset-pin", tag = "pins", request_body = ResetPinBody,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "PIN changed", body = PinChangedView),
        (status = 400, description = "Invalid input (no attempt used), or wrong-pin", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
        (status = 409, description = "The SIM has no such PIN set", body = super::openapi::Problem),
        (status = 423, description = "pin-blocked or puk-blocked", body = super::openapi::Problem),
        (status = 429, description = "rate-limited (Retry-After)", body = super::openapi::Problem),
    ))]
async fn reset_pin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<ResetPinBody>,
) -> ApiResult<axum::Json<PinChangedView>> {
    let mut errs = ValidationErrors::new();
    let pin_type = pin_type(body.pin_type, &mut errs);
    let current = secret(body.current_pin, "current_pin", pin_type.pin(), &mut errs);
    let new_pin = secret(body.new_pin, "new_pin", pin_type.pin(), &mut errs);
    let reason = reason(body.reason, false, &mut errs);
    let (Some(presented), Some(new_pin), true) = (current, new_pin, errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let change = PinChange {
        pin_type,
        proof: Proof::Pin,
        presented,
        new_pin,
        reason,
    };
    answer(&state, &principal, &key, change).await
}

/// Set a new PIN by presenting the PUK of its pair (support, with a reason). Restores both
/// counters and answers the PUK's `remaining_attempts` (the secret this call spends: 10 on a
/// fresh card). A wrong PUK costs an attempt; the last one blocks the SIM for good.
#[utoipa::path(post, path = "/v1/sims/{sim}/unblock-pin", tag = "pins", request_body = UnblockPinBody,
    params(("sim" = String, Path, description = "UUID or ICCID")),
    responses(
        (status = 200, description = "PIN unblocked; `remaining_attempts` is the PUK's", body = PinChangedView),
        (status = 400, description = "Invalid input (no attempt used), or wrong-puk", body = super::openapi::Problem),
        (status = 403, description = "Not allowed", body = super::openapi::Problem),
        (status = 404, description = "No such SIM in your tenant", body = super::openapi::Problem),
        (status = 409, description = "The SIM has no such PUK set", body = super::openapi::Problem),
        (status = 423, description = "puk-blocked", body = super::openapi::Problem),
        (status = 429, description = "rate-limited (Retry-After)", body = super::openapi::Problem),
    ))]
async fn unblock_pin(
    State(state): State<AppState>,
    Caller(principal): Caller,
    SimRef(key): SimRef,
    ApiJson(body): ApiJson<UnblockPinBody>,
) -> ApiResult<axum::Json<PinChangedView>> {
    let mut errs = ValidationErrors::new();
    let pin_type = pin_type(body.pin_type, &mut errs);
    let puk = secret(body.puk, "puk", pin_type.puk(), &mut errs);
    let new_pin = secret(body.new_pin, "new_pin", pin_type.pin(), &mut errs);
    let reason = reason(body.reason, true, &mut errs);
    let (Some(presented), Some(new_pin), true) = (puk, new_pin, errs.is_empty()) else {
        return Err(ApiError::Validation(errs));
    };
    let change = PinChange {
        pin_type,
        proof: Proof::Puk,
        presented,
        new_pin,
        reason,
    };
    answer(&state, &principal, &key, change).await
}

async fn answer(
    state: &AppState,
    principal: &crate::domain::Principal,
    key: &crate::domain::SimKey,
    change: PinChange,
) -> ApiResult<axum::Json<PinChangedView>> {
    let done = state
        .services
        .pins()
        .change_pin(principal, key, change)
        .await?;
    Ok(axum::Json(PinChangedView {
        success: true,
        remaining_attempts: done.remaining,
        updated_at: format_timestamp(done.updated_at),
    }))
}
