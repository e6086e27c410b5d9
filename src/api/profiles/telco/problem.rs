//! The `telco` profile's errors: the native RFC 7807 problem (same status, same slug under our
//! own `type` base, `instance` the request path, our `request_id`) with the titles and details
//! of the profile's seed document ("Invalid ICCID Format", "SIM Not Found", "Invalid State
//! Transition") and its states upper case. Only our own words and the client's ICCID are
//! written: never a value from a request body.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::api::error::{PROBLEM_BASE, PendingProblem};

/// Rewrites the pending problem of a profile answer, if there is one.
pub(super) async fn telco_problems(req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    let mut res = next.run(req).await;
    if let Some(PendingProblem(problem)) = res.extensions_mut().get_mut::<PendingProblem>() {
        rewrite(problem, &path);
    }
    res
}

/// The profile's title for a native slug.
fn title(slug: &str) -> &'static str {
    match slug {
        "validation-error" => "Invalid Request",
        "malformed-request" => "Malformed Request",
        "unauthorized" => "Unauthorized",
        "forbidden" => "Forbidden",
        "not-found" => "SIM Not Found",
        "method-not-allowed" => "Method Not Allowed",
        "conflict" => "Conflict",
        "payload-too-large" => "Payload Too Large",
        "request-timeout" => "Request Timeout",
        "unsupported-media-type" => "Unsupported Media Type",
        "unavailable" => "Service Unavailable",
        "wrong-pin" => "Wrong PIN",
        "wrong-puk" => "Wrong PUK",
        "pin-blocked" => "PIN Blocked",
        "puk-blocked" => "PUK Blocked",
        "rate-limited" => "Too Many Requests",
        "invalid-state-transition" => "Invalid State Transition",
        "upstream-unavailable" => "Upstream Unavailable",
        "resync-failed" => "Resynchronisation Failed",
        _ => "Internal Server Error",
    }
}

/// The ICCID a profile path names (`/v1/sim/physical/{iccid}…`), if it is one by its form.
fn path_iccid(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(super::PREFIX)?.strip_prefix('/')?;
    let iccid = rest.split('/').next()?;
    (!iccid.is_empty() && iccid.len() <= 22 && iccid.bytes().all(|b| b.is_ascii_digit()))
        .then_some(iccid)
}

/// The rule an ICCID broke, if that is among the problems.
fn iccid_problem(problem: &Map<String, Value>) -> Option<String> {
    problem
        .get("errors")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("pointer") == Some(&json!("/iccid"))
                || e.get("parameter") == Some(&json!("iccid"))
        })
        .and_then(|e| e.get("detail"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn rewrite(problem: &mut Map<String, Value>, path: &str) {
    let slug = problem
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix(PROBLEM_BASE))
        .unwrap_or("internal-error")
        .to_owned();
    let mut title = title(&slug);
    match slug.as_str() {
        "validation-error" => {
            if let Some(rule) = iccid_problem(problem) {
                title = "Invalid ICCID Format";
                problem.insert("detail".into(), json!(rule));
            }
        }
        "not-found" => {
            let detail = match path_iccid(path) {
                Some(iccid) => format!("No SIM card found with ICCID {iccid}"),
                None => "No such SIM card.".to_owned(),
            };
            problem.insert("detail".into(), json!(detail));
        }
        "invalid-state-transition" => {
            let mut upper = |key: &str| {
                let word = problem
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::to_ascii_uppercase)
                    .unwrap_or_default();
                problem.insert(key.into(), json!(word));
                word
            };
            let (from, to) = (upper("current_state"), upper("requested_state"));
            problem.insert(
                "detail".into(),
                json!(format!("Cannot transition from {from} to {to} state")),
            );
        }
        _ => {}
    }
    problem.insert("title".into(), json!(title));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;
    use crate::domain::{SimState, ValidationErrors};

    fn rewritten(e: ApiError, path: &str) -> Map<String, Value> {
        let mut p = e.problem();
        rewrite(&mut p, path);
        p
    }

    #[test]
    fn the_seed_titles() {
        let iccid = "89441234567890123457";
        let p = rewritten(ApiError::NotFound, &format!("/v1/sim/physical/{iccid}"));
        assert_eq!(p["title"], "SIM Not Found");
        assert_eq!(p["type"], format!("{PROBLEM_BASE}not-found"));
        assert_eq!(p["detail"], format!("No SIM card found with ICCID {iccid}"));

        let p = rewritten(
            ApiError::InvalidTransition {
                from: SimState::Blocked,
                to: SimState::Active,
            },
            &format!("/v1/sim/physical/{iccid}/state"),
        );
        assert_eq!(p["title"], "Invalid State Transition");
        assert_eq!(p["type"], format!("{PROBLEM_BASE}invalid-state-transition"));
        assert_eq!(p["status"], 400);
        assert_eq!(
            p["detail"],
            "Cannot transition from BLOCKED to ACTIVE state"
        );
        assert_eq!(
            (&p["current_state"], &p["requested_state"]),
            (&json!("BLOCKED"), &json!("ACTIVE"))
        );

        let p = rewritten(
            ValidationErrors::single_pointer("/iccid", "ICCID must be 18 to 22 digits long").into(),
            "/v1/sim/physical",
        );
        assert_eq!(p["title"], "Invalid ICCID Format");
        assert_eq!(p["type"], format!("{PROBLEM_BASE}validation-error"));
        assert_eq!(p["detail"], "ICCID must be 18 to 22 digits long");
    }

    #[test]
    fn other_problems_keep_their_slug_under_a_profile_title() {
        let p = rewritten(
            ValidationErrors::single_pointer("/pin_type", "bad").into(),
            "/v1/sim/physical/1/reset-pin",
        );
        assert_eq!(p["title"], "Invalid Request");
        assert_eq!(p["errors"][0]["pointer"], "/pin_type");
        let p = rewritten(ApiError::WrongPuk { remaining: 9 }, "/v1/sim/physical");
        assert_eq!(
            (&p["title"], &p["remaining_attempts"]),
            (&json!("Wrong PUK"), &json!(9))
        );
        let p = rewritten(ApiError::Internal("hunter2".into()), "/v1/sim/physical");
        assert_eq!(p["title"], "Internal Server Error");
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter2"));
    }

    #[test]
    fn only_an_iccid_from_the_path_is_echoed() {
        assert_eq!(path_iccid("/v1/sim/physical/8944/state"), Some("8944"));
        assert_eq!(path_iccid("/v1/sim/physical/<script>"), None);
        assert_eq!(path_iccid("/v1/sim/physical"), None);
        let p = rewritten(ApiError::NotFound, "/v1/sim/physical/abc");
        assert_eq!(p["detail"], "No such SIM card.");
    }
}
