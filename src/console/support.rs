//! The support and operator actions of a SIM page: reset a PIN, unblock it with the PUK,
//! reveal the PUK, show the eSIM installation QR code, change the state. Each is a CSRF-checked
//! POST under `/console/sims/{sim}/…` calling the very use case of its API route
//! (`reset-pin`, `unblock-pin`, `secrets?fields=puk1`, `esim`, `PATCH state`), with the person
//! as principal; the answer is a page (never a redirect carrying a value) showing what came of
//! it and the card's counters after it.
//!
//! Must never: put a PIN, PUK or activation code in a URL, a log or an error; show a value on
//! a refusal; decide a policy question itself (the forms shown follow
//! [`crate::service::console::Console::sim_actions`], and the use case decides again).

use askama::Template;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Deserializer};
use zeroize::Zeroizing;

use super::pages::{Choice, Counter};
use super::session::{Posted, Signed};
use super::views::{Chrome, PageError, render};
use crate::api::AppState;
use crate::domain::pin::{PinType, Proof, Verdict};
use crate::domain::{SecretField, SecretValue, Sim, SimKey, SimState, SimType};
use crate::service::ServiceError;
use crate::service::console::SimActions;
use crate::service::pins::PinChange;

/// The console's support routes (nested at `/console`).
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/sims/{sim}/reset-pin", post(reset_pin))
        .route("/sims/{sim}/unblock-pin", post(unblock_pin))
        .route("/sims/{sim}/reveal-puk", post(reveal_puk))
        .route("/sims/{sim}/esim", post(esim))
        .route("/sims/{sim}/state", post(change_state))
}

/// The forms of a SIM page that the person's roles open.
pub(super) struct Panel {
    pub sim: String,
    pub csrf: String,
    pub may: SimActions,
    pub esim: bool,
    /// Target states of the state form (every state but the current one).
    pub states: Vec<Choice>,
}

impl Panel {
    /// Whether any form is shown.
    pub(super) fn any(&self) -> bool {
        let m = &self.may;
        m.reset_pin || m.unblock_pin || m.reveal_puk || (m.esim && self.esim) || m.change_state
    }
}

/// The panel of `sim`'s page for `user`.
pub(super) fn panel(state: &AppState, user: &Signed, sim: &Sim) -> Panel {
    Panel {
        sim: sim.id.to_string(),
        csrf: user.csrf.clone(),
        may: state.services.console().sim_actions(&user.principal, sim),
        esim: sim.sim_type == SimType::Esim,
        states: SimState::ALL
            .iter()
            .filter(|s| **s != sim.state)
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.as_str().to_owned(),
                selected: false,
            })
            .collect(),
    }
}

/// A SIM's PIN and PUK counters as the pages show them.
pub(super) fn counters(sim: &Sim) -> Vec<Counter> {
    sim.counters
        .status()
        .into_iter()
        .map(|(name, remaining)| Counter {
            name: name.to_uppercase(),
            remaining,
            blocked: remaining == 0,
        })
        .collect()
}

/// A form field holding a PIN or PUK: zeroized when dropped, never printed.
#[derive(Default)]
struct Hidden(Zeroizing<String>);

impl<'de> Deserialize<'de> for Hidden {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(Hidden(Zeroizing::new(String::deserialize(d)?)))
    }
}

#[derive(Deserialize)]
struct PinForm {
    #[serde(default)]
    pin_type: String,
    #[serde(default)]
    current_pin: Hidden,
    #[serde(default)]
    puk: Hidden,
    #[serde(default)]
    new_pin: Hidden,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct ReasonForm {
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct StateForm {
    #[serde(default)]
    state: String,
    #[serde(default)]
    reason: String,
}

#[derive(Deserialize)]
struct EmptyForm {}

#[derive(Template)]
#[template(path = "console/sim_outcome.html")]
struct Outcome {
    chrome: Option<Chrome>,
    iccid: String,
    sim: String,
    heading: &'static str,
    message: String,
    /// Whether the action did what was asked.
    done: bool,
    counters: Vec<Counter>,
    /// A revealed PUK, shown once and hidden by the script after 30 s.
    secret: Option<Zeroizing<String>>,
    /// The eSIM installation QR code (an inline `<svg>` of exactly the activation code).
    qr: Option<String>,
}

impl Outcome {
    fn new(user: &Signed, sim: &Sim, heading: &'static str, message: String, done: bool) -> Self {
        Outcome {
            chrome: Some(user.chrome("search")),
            iccid: sim.iccid.as_str().to_owned(),
            sim: sim.id.to_string(),
            heading,
            message,
            done,
            counters: counters(sim),
            secret: None,
            qr: None,
        }
    }
}

/// A refusal's page, before any use case ran or as it answered (boxed: answers are large).
struct Refused(Box<Response>);

impl From<PageError> for Refused {
    fn from(e: PageError) -> Self {
        Refused(Box::new(e.into_response()))
    }
}

/// The SIM `raw` names, as the person may read it now (its counters after an attempt).
async fn current(state: &AppState, user: &Signed, key: &SimKey) -> Result<Sim, Refused> {
    state
        .services
        .inventory()
        .get_sim(&user.principal, key)
        .await
        .map_err(|e| PageError::from_service(e, Some(user)).into())
}

fn key_of(raw: &str, user: &Signed) -> Result<SimKey, Refused> {
    SimKey::parse(raw).ok_or_else(|| PageError::not_found(Some(user)).into())
}

/// An optional reason: blank is none; otherwise it must be a valid one.
fn reason(text: &str, user: &Signed) -> Result<Option<String>, Refused> {
    if text.trim().is_empty() {
        return Ok(None);
    }
    crate::domain::validation::reason(text)
        .map(Some)
        .map_err(|rule| PageError::bad_request(Some(user), &format!("Reason: {rule}.")).into())
}

/// A PIN or PUK from the form, checked as `field` (only the rule is reported).
fn secret(
    given: &Hidden,
    label: &str,
    field: SecretField,
    user: &Signed,
) -> Result<SecretValue, Refused> {
    field
        .parse(given.0.as_str())
        .map_err(|rule| PageError::bad_request(Some(user), &format!("{label}: {rule}.")).into())
}

fn pin_type(text: &str, user: &Signed) -> Result<PinType, Refused> {
    text.parse::<PinType>()
        .map_err(|()| PageError::bad_request(Some(user), "PIN type: choose pin1 or pin2.").into())
}

/// `POST /console/sims/{sim}/reset-pin`: the use case of `POST /v1/sims/{sim}/reset-pin`.
async fn reset_pin(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { user, form }: Posted<PinForm>,
) -> Response {
    let run = async {
        let key = key_of(&raw, &user)?;
        let pin_type = pin_type(&form.pin_type, &user)?;
        let change = PinChange {
            pin_type,
            proof: Proof::Pin,
            presented: secret(&form.current_pin, "Current PIN", pin_type.pin(), &user)?,
            new_pin: secret(&form.new_pin, "New PIN", pin_type.pin(), &user)?,
            reason: reason(&form.reason, &user)?,
        };
        pin_answer(&state, &user, &key, change).await
    };
    run.await.unwrap_or_else(|r: Refused| *r.0)
}

/// `POST /console/sims/{sim}/unblock-pin`: the use case of `POST /v1/sims/{sim}/unblock-pin`;
/// a reason (ticket) is required.
async fn unblock_pin(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { user, form }: Posted<PinForm>,
) -> Response {
    let run = async {
        let key = key_of(&raw, &user)?;
        let pin_type = pin_type(&form.pin_type, &user)?;
        let Some(reason) = reason(&form.reason, &user)? else {
            return Err(PageError::bad_request(
                Some(&user),
                "Reason: give the ticket reference of this unblock. Nothing was changed.",
            )
            .into());
        };
        let change = PinChange {
            pin_type,
            proof: Proof::Puk,
            presented: secret(&form.puk, "PUK", pin_type.puk(), &user)?,
            new_pin: secret(&form.new_pin, "New PIN", pin_type.pin(), &user)?,
            reason: Some(reason),
        };
        pin_answer(&state, &user, &key, change).await
    };
    run.await.unwrap_or_else(|r: Refused| *r.0)
}

async fn pin_answer(
    state: &AppState,
    user: &Signed,
    key: &SimKey,
    change: PinChange,
) -> Result<Response, Refused> {
    let (pin, proof) = (change.pin_type.as_str().to_uppercase(), change.proof);
    let done = state
        .services
        .pins()
        .change_pin(&user.principal, key, change)
        .await;
    let (status, heading, message) = match done {
        Ok(_) if proof == Proof::Pin => (
            StatusCode::OK,
            "PIN changed",
            format!("The new {pin} is set."),
        ),
        Ok(_) => (
            StatusCode::OK,
            "PIN unblocked",
            format!("The new {pin} is set and its attempts are restored."),
        ),
        Err(ServiceError::Pin(verdict)) => pin_refusal(verdict, &pin),
        Err(ServiceError::Conflict(why)) => (
            StatusCode::CONFLICT,
            "Not possible",
            format!("{}.", capital(&why)),
        ),
        Err(e) => return Err(PageError::from_service(e, Some(user)).into()),
    };
    let sim = current(state, user, key).await?;
    let page = Outcome::new(user, &sim, heading, message, status == StatusCode::OK);
    Ok(render(status, &page))
}

fn pin_refusal(verdict: Verdict, pin: &str) -> (StatusCode, &'static str, String) {
    let attempts = |n: i64| {
        if n == 1 {
            "1 attempt".to_owned()
        } else {
            format!("{n} attempts")
        }
    };
    match verdict {
        Verdict::WrongPin { remaining: 0 } => (
            StatusCode::BAD_REQUEST,
            "Wrong PIN",
            format!("Wrong PIN: 0 attempts left. {pin} blocked: unblock it with the PUK."),
        ),
        Verdict::WrongPin { remaining } => (
            StatusCode::BAD_REQUEST,
            "Wrong PIN",
            format!(
                "Wrong PIN: {} left. Nothing was changed.",
                attempts(remaining)
            ),
        ),
        Verdict::PinBlocked | Verdict::Success { .. } => (
            StatusCode::LOCKED,
            "PIN blocked",
            format!("{pin} blocked: unblock it with the PUK."),
        ),
        Verdict::WrongPuk { remaining: 0 } | Verdict::PukBlocked => (
            StatusCode::LOCKED,
            "SIM blocked for good",
            "The PUK attempts are exhausted: this SIM is blocked for good and no PIN can be set. \
             Replace the SIM."
                .to_owned(),
        ),
        Verdict::WrongPuk { remaining } => (
            StatusCode::BAD_REQUEST,
            "Wrong PUK",
            format!(
                "Wrong PUK: {} left before the SIM is blocked for good. Nothing was changed.",
                attempts(remaining)
            ),
        ),
    }
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// `POST /console/sims/{sim}/reveal-puk`: the use case of `GET
/// /v1/sims/{sim}/secrets?fields=puk1` (a reason required by the policy; an audited secret
/// read). The value is on this answer only.
async fn reveal_puk(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { user, form }: Posted<ReasonForm>,
) -> Response {
    let run = async {
        let key = key_of(&raw, &user)?;
        let reason = reason(&form.reason, &user)?;
        let (sim, mut revealed) = state
            .services
            .secrets()
            .reveal_secrets(
                &user.principal,
                &key,
                &[SecretField::Puk1],
                reason.as_deref(),
            )
            .await
            .map_err(|e| Refused::from(PageError::from_service(e, Some(&user))))?;
        let value = revealed.pop().and_then(|(_, v)| v);
        let page = match value {
            Some(v) => {
                let mut page = Outcome::new(
                    &user,
                    &sim,
                    "PUK1",
                    "Read it to the customer now: it is hidden after 30 seconds and not shown again \
                     on this page."
                        .to_owned(),
                    true,
                );
                page.secret = Some(Zeroizing::new(v.expose().to_owned()));
                page
            }
            None => Outcome::new(
                &user,
                &sim,
                "No PUK1",
                "This SIM has no PUK1 stored.".to_owned(),
                false,
            ),
        };
        Ok(render(StatusCode::OK, &page))
    };
    run.await.unwrap_or_else(|r: Refused| *r.0)
}

/// `POST /console/sims/{sim}/esim`: the use case of `GET /v1/sims/{sim}/esim` (audited as
/// it is); the QR code of the activation code.
async fn esim(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { user, .. }: Posted<EmptyForm>,
) -> Response {
    let run = async {
        let key = key_of(&raw, &user)?;
        let (sim, code) = state
            .services
            .secrets()
            .esim_view(&user.principal, &key)
            .await
            .map_err(|e| Refused::from(PageError::from_service(e, Some(&user))))?;
        let qr = code
            .as_ref()
            .and_then(|c| crate::domain::esim::qr_svg(c.expose()));
        let page = match qr {
            Some(svg) => {
                let mut page = Outcome::new(
                    &user,
                    &sim,
                    "eSIM installation QR code",
                    "Scan it with the device's camera to install the eSIM profile.".to_owned(),
                    true,
                );
                page.qr = Some(svg);
                page
            }
            None => Outcome::new(
                &user,
                &sim,
                "No activation code",
                "This SIM has no eSIM activation code stored.".to_owned(),
                false,
            ),
        };
        Ok(render(StatusCode::OK, &page))
    };
    run.await.unwrap_or_else(|r: Refused| *r.0)
}

/// `POST /console/sims/{sim}/state`: the use case of `PATCH /v1/sims/{sim}/state`.
async fn change_state(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    Posted { user, form }: Posted<StateForm>,
) -> Response {
    let run = async {
        let key = key_of(&raw, &user)?;
        let Ok(to) = form.state.parse::<SimState>() else {
            return Err(PageError::bad_request(
                Some(&user),
                "State: choose one of inventory, active, suspended, blocked, retired.",
            )
            .into());
        };
        let reason = reason(&form.reason, &user)?;
        let changed = state
            .services
            .lifecycle()
            .change_state(&user.principal, &key, to, reason.as_deref())
            .await;
        let (status, heading, message) = match changed {
            Ok(c) if c.previous == to => (
                StatusCode::OK,
                "State unchanged",
                format!("The SIM already is {to}."),
            ),
            Ok(c) => (
                StatusCode::OK,
                "State changed",
                format!("The SIM moved from {} to {to}.", c.previous),
            ),
            Err(ServiceError::InvalidTransition { from, to }) => {
                let allowed: Vec<&str> = SimState::ALL
                    .iter()
                    .filter(|s| from.can_transition_to(**s))
                    .map(|s| s.as_str())
                    .collect();
                let next = if allowed.is_empty() {
                    "none: it stays as it is".to_owned()
                } else {
                    allowed.join(", ")
                };
                (
                    StatusCode::BAD_REQUEST,
                    "State not changed",
                    format!(
                        "A SIM cannot move from {from} to {to}. From {from} it can move to: {next}."
                    ),
                )
            }
            Err(e) => return Err(PageError::from_service(e, Some(&user)).into()),
        };
        let sim = current(&state, &user, &key).await?;
        let page = Outcome::new(&user, &sim, heading, message, status == StatusCode::OK);
        Ok(render(status, &page))
    };
    run.await.unwrap_or_else(|r: Refused| *r.0)
}
