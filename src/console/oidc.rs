//! Signing in through the identity provider (OpenID Connect, authorization code with PKCE).
//!
//! `GET /console/login/oidc` begins: the sign-in's state, nonce and verifier are kept
//! server-side, a cookie binds it to this browser, and the browser is sent to the provider.
//! `GET /console/callback?code&state` finishes it (once) and starts the session. Every
//! refusal gets the same page, `401`, saying only that sign-in failed.
//!
//! Must never: put the verifier, the nonce or a token in a URL, a page or a log; tell the
//! browser which check failed.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use super::session::{origin_of, set_cookie};
use super::views::{Chrome, PageError, render};
use crate::api::AppState;
use crate::service::console::BindingToken;
use crate::service::console::oidc::OidcSignInError;

/// The cookie binding a sign-in to the browser that began it. `__Host-`: this host only,
/// path `/`, over HTTPS.
const BINDING_COOKIE: &str = "__Host-simvault-oidc";

/// `SameSite=Lax`, unlike the session cookie's `Strict`: the provider sends the browser back
/// with a top-level GET from its own site, and a `Strict` cookie is not sent on a navigation
/// that comes from another site, so the callback could never see it. `Lax` is sent on that
/// GET and on no cross-site POST or subresource request. This cookie opens nothing by itself
/// (it only ties a state to a browser, for ten minutes, once), so `Lax` costs nothing; the
/// session cookie, which opens everything, stays `Strict`.
fn binding_cookie(binding: &BindingToken) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{BINDING_COOKIE}={}; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age={}",
        binding.expose(),
        crate::service::console::oidc::LOGIN_TTL.as_secs()
    ))
    .ok()
}

fn clear_binding_cookie() -> HeaderValue {
    HeaderValue::from_static(
        "__Host-simvault-oidc=; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=0",
    )
}

/// The binding cookie's value, if one has a token's shape.
fn binding_of(headers: &HeaderMap) -> Option<BindingToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BINDING_COOKIE)
        .and_then(|(_, value)| BindingToken::parse(value.trim()))
}

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/login/oidc", get(begin))
        .route("/callback", get(callback))
}

#[derive(Template)]
#[template(path = "console/signin_failed.html")]
struct FailedPage {
    chrome: Option<Chrome>,
}

/// The answer of a successful callback: a page of ours that moves on to `/console` itself
/// (`<meta http-equiv="refresh">`, no script), rather than a redirect. The callback is reached
/// by a navigation that started at the provider's site, and a browser keeps treating every
/// redirect of such a navigation as cross-site: the `SameSite=Strict` session cookie set here
/// would not be sent on a 303 to `/console`, and the person would land on the sign-in page.
/// A navigation this page starts is same-site, so the cookie goes with it.
#[derive(Template)]
#[template(path = "console/signed_in.html")]
struct SignedInPage {
    chrome: Option<Chrome>,
}

/// The one page every refused sign-in gets. The binding cookie is left alone: a forged
/// callback (a link anyone can send) must not spoil the sign-in this browser has under way;
/// it expires with it, and a sign-in it bound is deleted at its first callback anyway.
fn failed() -> Response {
    render(StatusCode::UNAUTHORIZED, &FailedPage { chrome: None })
}

fn provider_unavailable() -> Response {
    PageError::from_service(
        crate::service::ServiceError::Unavailable("the OpenID provider cannot be reached".into()),
        None,
    )
    .into_response()
}

/// `GET /console/login/oidc`: to the provider (303), with the binding cookie.
async fn begin(State(state): State<AppState>) -> Response {
    let Some(provider) = &state.oidc else {
        return PageError::not_found(None).into_response();
    };
    let Ok(client) = provider.get().await else {
        return provider_unavailable();
    };
    let (url, pending) = client.begin();
    let binding = match state.services.console().keep_oidc_login(&pending).await {
        Ok(b) => b,
        Err(e) => return PageError::from_service(e, None).into_response(),
    };
    let Some(cookie) = binding_cookie(&binding) else {
        return provider_unavailable();
    };
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res
}

#[derive(serde::Deserialize)]
struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
}

/// The longest code or state read; anything longer is no sign-in of ours.
const MAX_PARAM: usize = 2048;

/// `GET /console/callback?code&state`: finishes the sign-in (303 to the console with the
/// session cookie), or the sign-in-failed page.
async fn callback(
    State(state): State<AppState>,
    parts: Parts,
    query: Result<Query<CallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(provider) = &state.oidc else {
        return PageError::not_found(None).into_response();
    };
    let (code, returned) = match query.map(|q| q.0) {
        Ok(CallbackQuery {
            code: Some(code),
            state: Some(returned),
        }) if code.len() <= MAX_PARAM && returned.len() <= MAX_PARAM => (code, returned),
        // The provider's own refusal (`error=`), or no sign-in at all.
        _ => return failed(),
    };
    let Ok(client) = provider.get().await else {
        return provider_unavailable();
    };
    let binding = binding_of(&parts.headers);
    match state
        .services
        .console()
        .finish_oidc_login(
            client,
            &code,
            &returned,
            binding.as_ref(),
            &origin_of(&parts),
        )
        .await
    {
        Ok((token, _session)) => {
            let mut res = render(StatusCode::OK, &SignedInPage { chrome: None });
            let h = res.headers_mut();
            h.append(header::SET_COOKIE, set_cookie(&token));
            h.append(header::SET_COOKIE, clear_binding_cookie());
            res
        }
        Err(OidcSignInError::Refused) => failed(),
        Err(OidcSignInError::Service(e)) => PageError::from_service(e, None).into_response(),
    }
}
