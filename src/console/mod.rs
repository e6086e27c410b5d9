//! The web console at `/console`: server-rendered pages for people (support, operators,
//! auditors, administrators), a door over the same use cases as the API. Sign-in is a
//! server-side session ([`session`]); every page is an askama template under
//! `templates/console/` extending `layout.html`.
//!
//! Every answer under `/console` carries a strict Content-Security-Policy (no inline script
//! or style anywhere), `Cache-Control: no-store` (assets too: one rule, nothing of a page
//! ever cached), `Referrer-Policy: no-referrer`, `X-Content-Type-Options: nosniff` and
//! `X-Frame-Options: DENY`. The stylesheet and script are embedded in the binary.
//!
//! Must never: touch the store or the vault; decide a policy question itself; accept API
//! credentials (bearer tokens, client certificates) as a console sign-in; put a secret in a
//! URL, a log or the page's storage.

mod audit;
mod login;
mod oidc;
mod pages;
pub mod session;
mod support;
pub mod views;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::api::AppState;

/// The console's Content-Security-Policy.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

const STYLESHEET: &str = include_str!("../../assets/console/console.css");
const SCRIPT: &str = include_str!("../../assets/console/console.js");

/// The console's routes, to be nested at `/console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::search))
        .route("/sims/{sim}", get(pages::sim))
        .merge(support::router())
        .route("/login", get(login::explain).post(login::redeem))
        .route("/login/{ticket}", get(login::confirm))
        .route("/logout", post(login::logout))
        .merge(audit::router())
        .merge(oidc::router())
        .route("/assets/console.css", get(stylesheet))
        .route("/assets/console.js", get(script))
        .fallback(not_found)
        .layer(axum::middleware::map_response(security_headers))
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLESHEET,
    )
        .into_response()
}

async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

async fn not_found(user: Option<session::Signed>) -> Response {
    views::PageError::not_found(user.as_ref()).into_response()
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CSP),
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    res
}
