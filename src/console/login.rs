//! Signing in with a console link, and signing out.
//!
//! Opening a link (`GET /console/login/<ticket>`) does not sign in: it shows a page with a
//! "Sign in" button that posts the ticket (`POST /console/login`). Mail and chat scanners
//! fetch links before people do; redeeming on that GET would spend the single-use ticket on
//! the scanner (and hand it the session). The POST is refused from another origin, so no
//! other site can sign a visitor in as someone else.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};

use super::session::{Posted, clear_cookie, origin_of, same_origin, set_cookie};
use super::views::{Chrome, PageError, render};
use crate::api::AppState;
use crate::service::console::TicketToken;
use crate::service::console::links::{LinkRefused, RedeemError};

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    chrome: Option<Chrome>,
    /// Whether sign-in through the identity provider is configured.
    oidc: bool,
}

#[derive(Template)]
#[template(path = "console/login_confirm.html")]
struct ConfirmPage<'a> {
    chrome: Option<Chrome>,
    ticket: &'a str,
}

#[derive(Template)]
#[template(path = "console/link_refused.html")]
struct RefusedPage {
    chrome: Option<Chrome>,
    why: String,
}

/// `GET /console/login`: how to sign in.
pub(super) async fn explain(State(state): State<AppState>) -> Response {
    render(
        StatusCode::OK,
        &LoginPage {
            chrome: None,
            oidc: state.oidc.is_some(),
        },
    )
}

fn refused(why: LinkRefused) -> Response {
    render(
        StatusCode::GONE,
        &RefusedPage {
            chrome: None,
            why: why.to_string(),
        },
    )
}

/// `GET /console/login/<ticket>`: the confirmation page (nothing is redeemed here).
pub(super) async fn confirm(Path(ticket): Path<String>) -> Response {
    match TicketToken::parse(&ticket) {
        Some(t) => render(
            StatusCode::OK,
            &ConfirmPage {
                chrome: None,
                ticket: t.expose(),
            },
        ),
        None => refused(LinkRefused::Unknown),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct TicketForm {
    ticket: String,
}

/// `POST /console/login`: redeems the ticket and starts the session (303 to the console,
/// with the cookie); a used, expired or unknown ticket gets a page saying so, and no cookie.
pub(super) async fn redeem(State(state): State<AppState>, req: axum::extract::Request) -> Response {
    let (parts, body) = req.into_parts();
    if !same_origin(&parts, &state.services.console().settings().public_url) {
        return PageError::csrf(None).into_response();
    }
    let Some(ticket) = ticket_of(body).await else {
        return refused(LinkRefused::Unknown);
    };
    sign_in(&state, &parts, &ticket).await
}

async fn ticket_of(body: axum::body::Body) -> Option<TicketToken> {
    let bytes = axum::body::to_bytes(body, 4096).await.ok()?;
    let form: TicketForm = serde_urlencoded::from_bytes(&bytes).ok()?;
    TicketToken::parse(&form.ticket)
}

async fn sign_in(state: &AppState, parts: &Parts, ticket: &TicketToken) -> Response {
    match state
        .services
        .console()
        .redeem_link(ticket, &origin_of(parts))
        .await
    {
        Ok((token, _session)) => {
            let mut res = Redirect::to("/console").into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, set_cookie(&token));
            res
        }
        Err(RedeemError::Refused(why)) => refused(why),
        Err(RedeemError::Service(e)) => PageError::from_service(e, None).into_response(),
    }
}

#[derive(serde::Deserialize)]
pub(super) struct Nothing {}

/// `POST /console/logout`: ends the session and forgets the cookie.
pub(super) async fn logout(State(state): State<AppState>, posted: Posted<Nothing>) -> Response {
    let user = posted.user;
    match state
        .services
        .console()
        .end_session(user.token(), &user.principal.origin)
        .await
    {
        Ok(()) => {
            let mut res = Redirect::to("/console/login").into_response();
            res.headers_mut().insert(header::SET_COOKIE, clear_cookie());
            res
        }
        Err(e) => PageError::from_service(e, Some(&user)).into_response(),
    }
}
