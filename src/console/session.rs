//! Who is signed in: the console's one credential, the session cookie. A page handler takes
//! [`Signed`] (the person's [`Principal`], their session's CSRF token and what their roles
//! open); a form handler takes [`Posted`], which is [`Signed`] plus the form, its CSRF token
//! and origin checked first.
//!
//! Must never: accept a bearer token or client certificate here; log the cookie (the
//! extractors are instrumented with `skip_all`); change anything on a POST whose CSRF token
//! or origin fails.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::views::{Chrome, PageError};
use crate::api::{AppState, RequestId};
use crate::auth::ConnectionInfo;
use crate::domain::{Origin, Principal};
use crate::service::console::{Abilities, Session, SessionToken};

/// The session cookie's name: `__Host-` binds it to this host, path `/`, over HTTPS.
pub const COOKIE: &str = "__Host-simvault-session";

/// The `Set-Cookie` value that gives the browser `token`.
pub fn set_cookie(token: &SessionToken) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Strict",
        token.expose()
    ))
    .unwrap_or_else(|_| clear_cookie())
}

/// The `Set-Cookie` value that makes the browser forget the session cookie.
pub fn clear_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-simvault-session=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0",
    )
}

/// The session token in the request's cookies, if one has a token's shape.
fn cookie_token(headers: &HeaderMap) -> Option<SessionToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| SessionToken::parse(value.trim()))
}

/// Where a request came from, for the audit trail.
pub fn origin_of(parts: &Parts) -> Origin {
    Origin {
        request_id: parts.extensions.get::<RequestId>().map(|r| r.0.clone()),
        client_addr: parts
            .extensions
            .get::<Arc<ConnectionInfo>>()
            .map(|c| c.remote_addr.to_string()),
    }
}

/// A person signed in to the console.
pub struct Signed {
    /// Who acts: the person, through the console (auth method `console`).
    pub principal: Principal,
    pub session: Session,
    /// The session's CSRF token, for every form's hidden `csrf` field.
    pub csrf: String,
    /// What the person's roles open (for the navigation).
    pub abilities: Abilities,
    token: SessionToken,
}

impl Signed {
    /// The layout's header for this person's pages; `current` names the nav entry shown as
    /// the current page.
    pub fn chrome(&self, current: &'static str) -> Chrome {
        Chrome::new(self, current)
    }

    pub(super) fn token(&self) -> &SessionToken {
        &self.token
    }
}

/// Why there is no signed-in person.
pub enum NotSigned {
    /// No session (none presented, or one that no longer holds): to the sign-in page,
    /// forgetting a dead cookie.
    SignIn { had_cookie: bool },
    /// The sessions could not be read.
    Failed(PageError),
}

impl IntoResponse for NotSigned {
    fn into_response(self) -> Response {
        match self {
            NotSigned::SignIn { had_cookie } => {
                let mut res = Redirect::to("/console/login").into_response();
                if had_cookie {
                    res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
                }
                res
            }
            NotSigned::Failed(e) => e.into_response(),
        }
    }
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = NotSigned;

    // skip_all: the headers hold the session cookie, which must never reach a log.
    #[tracing::instrument(name = "console_session", skip_all)]
    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, NotSigned> {
        let had_cookie = parts.headers.contains_key(header::COOKIE);
        let Some(token) = cookie_token(&parts.headers) else {
            return Err(NotSigned::SignIn { had_cookie });
        };
        let console = state.services.console();
        let session = match console.session(&token).await {
            Ok(Some(s)) => s,
            Ok(None) => return Err(NotSigned::SignIn { had_cookie }),
            Err(e) => return Err(NotSigned::Failed(PageError::from_service(e, None))),
        };
        let principal = session.principal(origin_of(parts));
        Ok(Signed {
            csrf: console.csrf_token(&token, &session),
            abilities: console.abilities(&principal),
            principal,
            session,
            token,
        })
    }
}

impl OptionalFromRequestParts<AppState> for Signed {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(
            <Signed as FromRequestParts<AppState>>::from_request_parts(parts, state)
                .await
                .ok(),
        )
    }
}

/// Whether a POST may have come from the console's own pages: no `Origin` header (not a
/// browser's cross-site form), or the public URL's origin, or this request's own host. A
/// browser sends `Origin: null` for the console's own forms (its `Referrer-Policy: no-referrer`
/// hides the origin of a POST), so `null` passes only with the browser's own
/// `Sec-Fetch-Site: same-origin`, which no page of another site can make it send.
pub fn same_origin(parts: &Parts, public_url: &str) -> bool {
    let Some(origin) = parts.headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    if origin == "null" {
        return parts
            .headers
            .get("sec-fetch-site")
            .is_some_and(|site| site.as_bytes() == b"same-origin");
    }
    if origin.eq_ignore_ascii_case(public_url) {
        return true;
    }
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_owned())
        .or_else(|| {
            parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_owned)
        });
    host.is_some_and(|h| origin.eq_ignore_ascii_case(&format!("https://{h}")))
}

/// A state-changing form from a signed-in person: its `csrf` field is their session's CSRF
/// token and its origin is ours, or the request is refused with `403` before anything runs.
pub struct Posted<T> {
    pub user: Signed,
    pub form: T,
}

/// The largest console form read.
const FORM_LIMIT: usize = 64 * 1024;

impl<T: DeserializeOwned + Send> FromRequest<AppState> for Posted<T> {
    type Rejection = Response;

    #[tracing::instrument(name = "console_form", skip_all)]
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = <Signed as FromRequestParts<AppState>>::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let refused = |user: &Signed| PageError::csrf(Some(user)).into_response();
        if !same_origin(&parts, &state.services.console().settings().public_url) {
            return Err(refused(&user));
        }
        let bytes = axum::body::to_bytes(body, FORM_LIMIT)
            .await
            .unwrap_or_else(|_| Bytes::new());
        let mut given = form_urlencoded::parse(&bytes)
            .filter(|(k, _)| k == "csrf")
            .map(|(_, v)| v.into_owned());
        let (Some(csrf), None) = (given.next(), given.next()) else {
            return Err(refused(&user));
        };
        if !state
            .services
            .console()
            .csrf_matches(user.token(), &user.session, &csrf)
        {
            return Err(refused(&user));
        }
        let form = serde_urlencoded::from_bytes(&bytes).map_err(|_| {
            PageError::bad_request(
                Some(&user),
                "The form was incomplete: reload the page and try again.",
            )
            .into_response()
        })?;
        Ok(Posted { user, form })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)], uri: &str) -> Parts {
        let mut req = axum::http::Request::builder().uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.body(()).unwrap().into_parts().0
    }

    #[test]
    fn only_our_own_origin_may_post() {
        let public = "https://vault.example";
        assert!(same_origin(&parts(&[], "/console/logout"), public));
        assert!(same_origin(
            &parts(&[("origin", "https://vault.example")], "/"),
            public
        ));
        assert!(same_origin(
            &parts(
                &[
                    ("origin", "https://localhost:9000"),
                    ("host", "localhost:9000")
                ],
                "/"
            ),
            public
        ));
        for evil in ["https://evil.example", "null", "http://localhost:9000"] {
            assert!(
                !same_origin(
                    &parts(&[("origin", evil), ("host", "localhost:9000")], "/"),
                    public
                ),
                "{evil}"
            );
        }
        // A browser's own form under `Referrer-Policy: no-referrer`: `Origin: null`, and the
        // browser's word that the form was the same origin's. From anywhere else it is refused.
        let null_from = |site: &str| {
            same_origin(
                &parts(&[("origin", "null"), ("sec-fetch-site", site)], "/"),
                public,
            )
        };
        assert!(null_from("same-origin"));
        for site in ["cross-site", "same-site", "none", ""] {
            assert!(!null_from(site), "{site}");
        }
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let token = "a".repeat(43);
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("theme=dark"));
        h.append(
            header::COOKIE,
            HeaderValue::from_str(&format!("x=1; {COOKIE}={token}")).unwrap(),
        );
        assert_eq!(cookie_token(&h).unwrap().expose(), token);
        let mut other = HeaderMap::new();
        other.insert(
            header::COOKIE,
            HeaderValue::from_static("simvault-session=abc"),
        );
        assert!(cookie_token(&other).is_none());
    }
}
