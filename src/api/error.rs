//! The one API error type and its status table. Every error answer is RFC 7807
//! `application/problem+json`. Internal errors are logged with the request id and answered
//! as an opaque 500; no error text ever carries a secret value.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::pin::Verdict;
use crate::domain::{Location, ValidationErrors};
use crate::service::ServiceError;

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = "https://simvault.dev/problems/";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("validation failed")]
    Validation(ValidationErrors),
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unauthorized")]
    Unauthorized,
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("payload too large")]
    PayloadTooLarge,
    /// The request body made no progress within the body timeout.
    #[error("request timeout")]
    RequestTimeout,
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("service unavailable")]
    Unavailable,
    #[error("internal error: {0}")]
    Internal(String),
    /// A stored row failed its integrity check: answered exactly like [`ApiError::Internal`],
    /// and reported by the request-context middleware once the handler is done.
    #[error("{0}")]
    Integrity(crate::domain::integrity::IntegrityFailure),
    #[error("wrong PIN")]
    WrongPin { remaining: i64 },
    #[error("wrong PUK")]
    WrongPuk { remaining: i64 },
    #[error("PIN blocked")]
    PinBlocked,
    #[error("PUK blocked")]
    PukBlocked,
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    #[error("upstream unavailable")]
    UpstreamUnavailable { timed_out: bool },
    #[error("resynchronisation failed")]
    ResyncFailed,
    #[error("invalid state transition")]
    InvalidTransition {
        from: crate::domain::SimState,
        to: crate::domain::SimState,
    },
}

impl ApiError {
    /// The status table.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) | ApiError::Malformed(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden => StatusCode::FORBIDDEN,
            ApiError::NotFound => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) | ApiError::Integrity(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::WrongPin { .. }
            | ApiError::WrongPuk { .. }
            | ApiError::ResyncFailed
            | ApiError::InvalidTransition { .. } => StatusCode::BAD_REQUEST,
            ApiError::PinBlocked | ApiError::PukBlocked => StatusCode::LOCKED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::UpstreamUnavailable { timed_out: true } => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UpstreamUnavailable { timed_out: false } => StatusCode::BAD_GATEWAY,
        }
    }

    /// The problem type slug.
    pub fn slug(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "validation-error",
            ApiError::Malformed(_) => "malformed-request",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden => "forbidden",
            ApiError::NotFound => "not-found",
            ApiError::MethodNotAllowed => "method-not-allowed",
            ApiError::Conflict(_) => "conflict",
            ApiError::PayloadTooLarge => "payload-too-large",
            ApiError::RequestTimeout => "request-timeout",
            ApiError::UnsupportedMediaType => "unsupported-media-type",
            ApiError::Unavailable => "unavailable",
            ApiError::Internal(_) | ApiError::Integrity(_) => "internal-error",
            ApiError::WrongPin { .. } => "wrong-pin",
            ApiError::WrongPuk { .. } => "wrong-puk",
            ApiError::PinBlocked => "pin-blocked",
            ApiError::PukBlocked => "puk-blocked",
            ApiError::RateLimited { .. } => "rate-limited",
            ApiError::InvalidTransition { .. } => "invalid-state-transition",
            ApiError::UpstreamUnavailable { .. } => "upstream-unavailable",
            ApiError::ResyncFailed => "resync-failed",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "Your request is not valid",
            ApiError::Malformed(_) => "The request body could not be read",
            ApiError::Unauthorized => "Authentication required",
            ApiError::Forbidden => "Not allowed",
            ApiError::NotFound => "Not found",
            ApiError::MethodNotAllowed => "Method not allowed",
            ApiError::Conflict(_) => "Conflict",
            ApiError::PayloadTooLarge => "Request body too large",
            ApiError::RequestTimeout => "Request body too slow",
            ApiError::UnsupportedMediaType => "Unsupported media type",
            ApiError::Unavailable => "Service unavailable",
            ApiError::Internal(_) | ApiError::Integrity(_) => "Internal server error",
            ApiError::WrongPin { .. } => "Wrong PIN",
            ApiError::WrongPuk { .. } => "Wrong PUK",
            ApiError::PinBlocked => "PIN blocked",
            ApiError::PukBlocked => "PUK blocked",
            ApiError::RateLimited { .. } => "Too many requests",
            ApiError::InvalidTransition { .. } => "State change not allowed",
            ApiError::UpstreamUnavailable { .. } => "Upstream system unavailable",
            ApiError::ResyncFailed => "Resynchronisation failed",
        }
    }

    fn detail(&self) -> String {
        match self {
            ApiError::Validation(e) => {
                format!("{} field(s) are invalid; see errors", e.errors().len())
            }
            ApiError::Malformed(d) => d.clone(),
            ApiError::Unauthorized => {
                "Present a registered client certificate or a valid bearer token.".into()
            }
            ApiError::Forbidden => "Your roles do not allow this action.".into(),
            ApiError::NotFound => "No such resource.".into(),
            ApiError::MethodNotAllowed => "This resource does not support that method.".into(),
            ApiError::Conflict(d) => d.clone(),
            ApiError::PayloadTooLarge => "The request body exceeds the size limit.".into(),
            ApiError::RequestTimeout => {
                "The request body stopped making progress; nothing was changed.".into()
            }
            ApiError::UnsupportedMediaType => "Send the body as application/json.".into(),
            ApiError::Unavailable => {
                "The service cannot serve this request right now; retry later.".into()
            }
            // The cause goes to the log, never to the client.
            ApiError::Internal(_) | ApiError::Integrity(_) => {
                "An internal error occurred; quote the request id when reporting it.".into()
            }
            ApiError::WrongPin { remaining } => {
                format!("The current PIN is wrong; {remaining} attempt(s) left before it is blocked.")
            }
            ApiError::WrongPuk { remaining: 0 } => {
                "The PUK is wrong and its attempts are exhausted: the SIM is now permanently blocked.".into()
            }
            ApiError::WrongPuk { remaining } => {
                format!("The PUK is wrong; {remaining} attempt(s) left before the SIM is blocked for good.")
            }
            ApiError::PinBlocked => {
                "This PIN is blocked: unblock it with its PUK (unblock-pin).".into()
            }
            ApiError::PukBlocked => {
                "The PUK attempts are exhausted: the SIM is permanently blocked.".into()
            }
            ApiError::RateLimited { retry_after_secs } => {
                format!("Too many requests of this kind; retry in {retry_after_secs} s.")
            }
            ApiError::InvalidTransition { from, to } => {
                format!("A SIM cannot move from {from} to {to}.")
            }
            ApiError::UpstreamUnavailable { timed_out: true } => {
                "The carrier's system did not answer in time; nothing was changed.".into()
            }
            ApiError::UpstreamUnavailable { timed_out: false } => {
                "The carrier's system failed or answered something unusable; nothing was changed.".into()
            }
            ApiError::ResyncFailed => {
                "The AUTS did not verify for this RAND; the sequence number was not changed.".into()
            }
        }
    }

    /// The problem document, without `instance` and `request_id` (added per request).
    pub fn problem(&self) -> Map<String, Value> {
        let mut p = Map::new();
        p.insert(
            "type".into(),
            json!(format!("{PROBLEM_BASE}{}", self.slug())),
        );
        p.insert("title".into(), json!(self.title()));
        p.insert("status".into(), json!(self.status().as_u16()));
        p.insert("detail".into(), json!(self.detail()));
        match self {
            ApiError::WrongPin { remaining } | ApiError::WrongPuk { remaining } => {
                p.insert("remaining_attempts".into(), json!(remaining));
            }
            ApiError::PinBlocked | ApiError::PukBlocked => {
                p.insert("remaining_attempts".into(), json!(0));
            }
            ApiError::InvalidTransition { from, to } => {
                p.insert("current_state".into(), json!(from.as_str()));
                p.insert("requested_state".into(), json!(to.as_str()));
            }
            _ => {}
        }
        if let ApiError::Validation(errs) = self {
            let items: Vec<Value> = errs
                .errors()
                .iter()
                .map(|e| match &e.location {
                    Location::Pointer(ptr) => json!({"pointer": ptr, "detail": e.detail}),
                    Location::Parameter(name) => json!({"parameter": name, "detail": e.detail}),
                })
                .collect();
            p.insert("errors".into(), Value::Array(items));
        }
        p
    }
}

/// The problem body of a response, kept in its extensions until the request-context
/// middleware adds `instance` and `request_id` and writes it out.
#[derive(Debug, Clone)]
pub struct PendingProblem(pub Map<String, Value>);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(%cause, "internal error");
        }
        let status = self.status();
        let mut res = status.into_response();
        res.extensions_mut().insert(PendingProblem(self.problem()));
        if let ApiError::Integrity(failure) = &self {
            res.extensions_mut().insert(failure.clone());
        }
        if matches!(self, ApiError::Unauthorized) {
            res.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::RateLimited { retry_after_secs } = self {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        res
    }
}

/// Writes a problem document as the response body.
pub fn render_problem(
    mut problem: Map<String, Value>,
    instance: &str,
    request_id: &str,
) -> Vec<u8> {
    problem.insert("instance".into(), json!(instance));
    problem.insert("request_id".into(), json!(request_id));
    serde_json::to_vec(&Value::Object(problem)).unwrap_or_default()
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Validation(v) => ApiError::Validation(v),
            ServiceError::NotFound => ApiError::NotFound,
            ServiceError::Forbidden => ApiError::Forbidden,
            ServiceError::Conflict(c) => ApiError::Conflict(c),
            ServiceError::Unavailable(cause) => {
                tracing::warn!(%cause, "cannot serve the request now");
                ApiError::Unavailable
            }
            e @ ServiceError::Internal { .. } => {
                ApiError::Internal(crate::telemetry::Causes(&e).to_string())
            }
            ServiceError::Integrity(failure) => ApiError::Integrity(failure),
            ServiceError::Pin(verdict) => match verdict {
                Verdict::WrongPin { remaining } => ApiError::WrongPin { remaining },
                Verdict::WrongPuk { remaining } => ApiError::WrongPuk { remaining },
                Verdict::PinBlocked => ApiError::PinBlocked,
                Verdict::PukBlocked => ApiError::PukBlocked,
                Verdict::Success { .. } => {
                    ApiError::Internal("a successful PIN attempt was answered as an error".into())
                }
            },
            ServiceError::RateLimited { retry_after_secs } => {
                ApiError::RateLimited { retry_after_secs }
            }
            ServiceError::InvalidTransition { from, to } => {
                ApiError::InvalidTransition { from, to }
            }
            ServiceError::Upstream(e) => {
                tracing::warn!(error = %e, "upstream refresh failed");
                ApiError::UpstreamUnavailable {
                    timed_out: e == crate::adapters::upstream::UpstreamError::Timeout,
                }
            }
            ServiceError::ResyncFailed => ApiError::ResyncFailed,
        }
    }
}

impl From<ValidationErrors> for ApiError {
    fn from(e: ValidationErrors) -> Self {
        ApiError::Validation(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let v = ValidationErrors::single_pointer("/iccid", "bad");
        let table: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Validation(v), 400, "validation-error"),
            (ApiError::Malformed("x".into()), 400, "malformed-request"),
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::Forbidden, 403, "forbidden"),
            (ApiError::NotFound, 404, "not-found"),
            (ApiError::MethodNotAllowed, 405, "method-not-allowed"),
            (ApiError::Conflict("x".into()), 409, "conflict"),
            (ApiError::PayloadTooLarge, 413, "payload-too-large"),
            (ApiError::RequestTimeout, 408, "request-timeout"),
            (
                ApiError::UnsupportedMediaType,
                415,
                "unsupported-media-type",
            ),
            (ApiError::Unavailable, 503, "unavailable"),
            (ApiError::Internal("x".into()), 500, "internal-error"),
            (
                ApiError::Integrity(crate::domain::integrity::IntegrityFailure {
                    purpose: crate::domain::integrity::Purpose::Sim,
                    row: "x".into(),
                }),
                500,
                "internal-error",
            ),
            (ApiError::WrongPin { remaining: 2 }, 400, "wrong-pin"),
            (ApiError::WrongPuk { remaining: 9 }, 400, "wrong-puk"),
            (ApiError::PinBlocked, 423, "pin-blocked"),
            (ApiError::ResyncFailed, 400, "resync-failed"),
            (
                ApiError::UpstreamUnavailable { timed_out: false },
                502,
                "upstream-unavailable",
            ),
            (
                ApiError::UpstreamUnavailable { timed_out: true },
                504,
                "upstream-unavailable",
            ),
            (
                ApiError::InvalidTransition {
                    from: crate::domain::SimState::Blocked,
                    to: crate::domain::SimState::Active,
                },
                400,
                "invalid-state-transition",
            ),
            (ApiError::PukBlocked, 423, "puk-blocked"),
            (
                ApiError::RateLimited {
                    retry_after_secs: 3,
                },
                429,
                "rate-limited",
            ),
        ];
        for (err, status, slug) in table {
            assert_eq!(err.status().as_u16(), status, "{slug}");
            assert_eq!(err.slug(), slug);
            let p = err.problem();
            assert_eq!(p["status"], status);
            assert_eq!(p["type"], format!("{PROBLEM_BASE}{slug}"));
        }
    }

    #[test]
    fn internal_errors_do_not_leak_their_cause() {
        let p = ApiError::Internal("db password is hunter2".into()).problem();
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
    }

    #[test]
    fn validation_problems_list_every_field() {
        let mut v = ValidationErrors::new();
        v.pointer("/iccid", "bad iccid");
        v.parameter("page_size", "too big");
        let p = ApiError::Validation(v).problem();
        assert_eq!(
            p["errors"],
            json!([{"pointer": "/iccid", "detail": "bad iccid"}, {"parameter": "page_size", "detail": "too big"}])
        );
    }

    #[test]
    fn service_errors_map_to_statuses() {
        assert_eq!(ApiError::from(ServiceError::NotFound).status(), 404);
        assert_eq!(ApiError::from(ServiceError::Forbidden).status(), 403);
        assert_eq!(
            ApiError::from(ServiceError::Conflict("c".into())).status(),
            409
        );
        assert_eq!(ApiError::from(ServiceError::internal("i")).status(), 500);
    }
}
