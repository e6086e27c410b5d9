//! Extractors: the caller's [`Principal`], JSON bodies and query strings whose every
//! rejection is a problem document.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::auth::{AuthError, ConnectionInfo, PeerCert};
use crate::domain::sim_filters::Params;
use crate::domain::{Origin, Principal, ValidationErrors};
use crate::service::refusals::Refused;

fn auth_error(e: &AuthError) -> ApiError {
    match e {
        AuthError::Unavailable => ApiError::Unavailable,
        AuthError::Missing | AuthError::Refused => ApiError::Unauthorized,
        // Already logged, counted and recorded; the client learns nothing more.
        AuthError::Integrity => {
            ApiError::Internal("a stored client identity failed its integrity check".into())
        }
    }
}

/// The authenticated caller. A registered client certificate or a bearer token, never both.
pub struct Caller(pub Principal);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    // skip_all: the headers hold the bearer token, which must never reach a log.
    #[tracing::instrument(name = "authenticate", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let origin = Origin {
            request_id: parts
                .extensions
                .get::<super::RequestId>()
                .map(|r| r.0.clone()),
            client_addr: parts
                .extensions
                .get::<Arc<ConnectionInfo>>()
                .map(|c| c.remote_addr.to_string()),
        };
        match Self::authenticate(parts, state).await {
            Ok(Caller(mut p)) => {
                p.origin = origin;
                Ok(Caller(p))
            }
            Err(ApiError::Unauthorized) => Err(Self::record_refusal(parts, state, origin).await),
            Err(other) => Err(other),
        }
    }
}

impl Caller {
    /// Counts a refused credential for the platform chain (it cannot be tied to a tenant:
    /// nothing in it was proven; records are aggregated per address and reason, see
    /// `service::refusals`) and returns the answer: `401`, `429` once this address has had
    /// too many refusals, or `503` when a record due could not be written (fail closed). A
    /// request with no credential at all is not an authentication attempt and is not counted.
    async fn record_refusal(parts: &Parts, state: &AppState, origin: Origin) -> ApiError {
        let cert = parts
            .extensions
            .get::<Arc<ConnectionInfo>>()
            .and_then(|c| c.client_cert.as_ref());
        let bearer = parts.headers.contains_key(header::AUTHORIZATION);
        let (auth_method, reason) = match (cert.is_some(), bearer) {
            (false, false) => return ApiError::Unauthorized,
            (true, true) => (
                "mtls+jwt",
                "both a client certificate and a bearer token were presented",
            ),
            (true, false) => (
                "mtls",
                "client certificate identity not registered or revoked",
            ),
            (false, true) => ("jwt", "bearer token refused"),
        };
        let identity = match cert {
            Some(PeerCert::Named(identity)) => Some(identity),
            _ => None,
        };
        let who = crate::service::audit::Stranger {
            // A chain-verified certificate names its holder; a refused token's claims are
            // unproven and are not recorded (nor is the token).
            subject: identity.map(|i| i.identity.clone()),
            auth_method: auth_method.to_owned(),
            credential: identity.map(|i| i.fingerprint.clone()),
            client_addr: origin.client_addr,
            request_id: origin.request_id,
        };
        match state
            .services
            .refusals()
            .audit_refused_authentication(who, reason)
            .await
        {
            Ok(Refused::Unauthorized) => ApiError::Unauthorized,
            Ok(Refused::Limited { retry_after_secs }) => ApiError::RateLimited { retry_after_secs },
            Err(e) => {
                tracing::error!(error = %e, "could not record a refused authentication: answered 503");
                ApiError::Unavailable
            }
        }
    }
}

impl Caller {
    async fn authenticate(parts: &Parts, state: &AppState) -> Result<Self, ApiError> {
        let conn = parts.extensions.get::<Arc<ConnectionInfo>>();
        let bearer = parts.headers.get(header::AUTHORIZATION);
        match (conn.and_then(|c| c.client_cert.as_ref()), bearer) {
            (Some(_), Some(_)) => {
                tracing::debug!("both a client certificate and a bearer token were presented");
                Err(ApiError::Unauthorized)
            }
            (Some(PeerCert::Named(identity)), None) => state
                .auth
                .from_certificate(identity)
                .await
                .map(Caller)
                .map_err(|e| auth_error(&e)),
            (Some(PeerCert::Unnamed), None) => Err(ApiError::Unauthorized),
            (None, Some(value)) => {
                let token = value
                    .to_str()
                    .ok()
                    .and_then(|v| {
                        let (scheme, token) = v.split_once(' ')?;
                        scheme
                            .eq_ignore_ascii_case("bearer")
                            .then_some(token.trim())
                    })
                    .filter(|t| !t.is_empty())
                    .ok_or(ApiError::Unauthorized)?;
                state
                    .auth
                    .from_bearer(token)
                    .await
                    .map(Caller)
                    .map_err(|e| auth_error(&e))
            }
            (None, None) => Err(ApiError::Unauthorized),
        }
    }
}

/// A JSON body: `application/json` required (415), size-limited (413), syntax errors are
/// `malformed-request`, the top level must be an object, and unknown fields are reported as
/// validation errors with their pointer. Field values are never echoed back.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType);
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Malformed("the request body could not be read".into())
            }
        })?;
        if bytes.trim_ascii_start().first() != Some(&b'{') {
            if serde_json::from_slice::<serde::de::IgnoredAny>(&bytes).is_err() {
                return Err(ApiError::Malformed("the body is not valid JSON".into()));
            }
            return Err(
                ValidationErrors::single_pointer("", "the body must be a JSON object").into(),
            );
        }
        // Straight into `T`: secret fields must never pass through a `serde_json::Value`.
        let mut de = serde_json::Deserializer::from_slice(&bytes);
        let parsed = T::deserialize(&mut de).and_then(|t| de.end().map(|()| t));
        parsed.map(ApiJson).map_err(json_error)
    }
}

/// Whether the body is declared as JSON (`application/json` or `application/*+json`).
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|mime| {
            let mime = mime.trim().to_ascii_lowercase();
            mime == "application/json"
                || (mime.starts_with("application/") && mime.ends_with("+json"))
        })
        .unwrap_or(false)
}

/// A serde_json error as an answer: syntax errors are `malformed-request`; data errors name
/// the unknown field, if that is what it is, and nothing else of serde's message (it may
/// quote a value).
pub fn json_error(e: serde_json::Error) -> ApiError {
    match e.classify() {
        serde_json::error::Category::Syntax
        | serde_json::error::Category::Eof
        | serde_json::error::Category::Io => ApiError::Malformed(format!(
            "the body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        )),
        serde_json::error::Category::Data => data_error(&e, "").into(),
    }
}

pub use crate::domain::fields::data_error;

/// The query string as (name, value) pairs in order, repeated names kept.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let q = parts.uri.query().unwrap_or("");
        Ok(QueryPairs(
            form_urlencoded::parse(q.as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        ))
    }
}

impl QueryPairs {
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        Params(&self.0).all(name)
    }

    /// The single value of `name`; repeating a single-valued parameter is an error.
    pub fn one<'a>(&'a self, name: &'a str, errs: &mut ValidationErrors) -> Option<&'a str> {
        Params(&self.0).one(name, errs)
    }

    /// Names not in `known`, each reported as an error.
    pub fn reject_unknown(&self, known: &[&str], errs: &mut ValidationErrors) {
        let mut seen = std::collections::BTreeSet::new();
        for (k, _) in &self.0 {
            if !known.contains(&k.as_str()) && seen.insert(k.as_str()) {
                errs.parameter(k.clone(), "unknown parameter");
            }
        }
    }

    /// A 1-based page number and a page size within `1..=max` (defaults 1 and `default`).
    pub fn paging(&self, default: u32, max: u32, errs: &mut ValidationErrors) -> (u32, u32) {
        let page = match self.one("page", errs) {
            None => 1,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=1_000_000).contains(&n) => n,
                _ => {
                    errs.parameter("page", "page must be a whole number from 1");
                    1
                }
            },
        };
        let size = match self.one("page_size", errs) {
            None => default,
            Some(s) => match s.parse::<u32>() {
                Ok(n) if (1..=max).contains(&n) => n,
                _ => {
                    errs.parameter(
                        "page_size",
                        format!("page_size must be a whole number from 1 to {max}"),
                    );
                    default
                }
            },
        };
        (page, size)
    }
}

pub use crate::domain::fields::present;
