//! The carrier's error shape: `{"errors": [{code, title, detail, source, meta}]}`, one entry per
//! problem, rendered from the native problem document (so status, meaning and wording are the
//! native ones, see `api::error`), with a stable integer `code` per kind of problem.
//!
//! Must never: add anything to what the native problem says (it carries no secret value).

use serde_json::{Map, Value, json};

use crate::api::error::PROBLEM_BASE;

/// The stable `code` of each kind of problem, by native problem slug (documented in the
/// OpenAPI description of the `carrier` tag).
pub const CODES: &[(&str, u32)] = &[
    ("validation-error", 10001),
    ("malformed-request", 10002),
    ("unsupported-media-type", 10003),
    ("payload-too-large", 10004),
    ("request-timeout", 10005),
    ("unauthorized", 10010),
    ("forbidden", 10011),
    ("not-found", 10012),
    ("method-not-allowed", 10013),
    ("conflict", 10014),
    ("invalid-state-transition", 10015),
    ("wrong-pin", 10016),
    ("wrong-puk", 10017),
    ("pin-blocked", 10018),
    ("puk-blocked", 10019),
    ("resync-failed", 10020),
    ("rate-limited", 10029),
    ("unavailable", 10030),
    ("upstream-unavailable", 10031),
    ("internal-error", 10099),
];

/// The code of an internal error, and of any problem without a code of its own.
const INTERNAL: u32 = 10099;

/// The `code` for a native problem slug.
pub fn code(slug: &str) -> u32 {
    CODES
        .iter()
        .find(|(s, _)| *s == slug)
        .map_or(INTERNAL, |(_, c)| *c)
}

/// The members of the native problem that are the entry's own (`title`, `detail`, …), not
/// extensions to carry in `meta`.
const OWN: &[&str] = &["type", "title", "status", "detail", "errors", "instance"];

/// The carrier error body for a native `problem` of request `request_id`.
pub fn render(problem: &Map<String, Value>, request_id: &str) -> Vec<u8> {
    let slug = problem
        .get("type")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix(PROBLEM_BASE))
        .unwrap_or("internal-error");
    let code = code(slug);
    let title = problem.get("title").cloned().unwrap_or(Value::Null);
    let mut meta = Map::new();
    meta.insert("request_id".into(), json!(request_id));
    for (k, v) in problem {
        if !OWN.contains(&k.as_str()) {
            meta.insert(k.clone(), v.clone());
        }
    }
    let mut entries = Vec::new();
    for e in problem
        .get("errors")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let source = match (e.get("pointer"), e.get("parameter")) {
            (Some(p), _) => json!({"pointer": p}),
            (None, Some(p)) => json!({"parameter": p}),
            (None, None) => json!({}),
        };
        entries.push(json!({
            "code": code,
            "title": title,
            "detail": e.get("detail").cloned().unwrap_or(Value::Null),
            "source": source,
            "meta": meta,
        }));
    }
    if entries.is_empty() {
        entries.push(json!({
            "code": code,
            "title": title,
            "detail": problem.get("detail").cloned().unwrap_or(Value::Null),
            "meta": meta,
        }));
    }
    serde_json::to_vec(&json!({ "errors": entries })).unwrap_or_default()
}

/// The `code` table as Markdown, for the OpenAPI description.
pub fn table() -> String {
    let mut out = String::from("| code | native problem |\n| --- | --- |\n");
    for (slug, code) in CODES {
        out.push_str(&format!("| {code} | `{slug}` |\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::ApiError;
    use crate::domain::ValidationErrors;

    fn body(e: &ApiError) -> Value {
        serde_json::from_slice(&render(&e.problem(), "req-1")).unwrap()
    }

    #[test]
    fn every_native_problem_has_its_own_code() {
        let every = [
            ApiError::Validation(ValidationErrors::single_pointer("/x", "bad")),
            ApiError::Malformed("x".into()),
            ApiError::Unauthorized,
            ApiError::Forbidden,
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::Conflict("x".into()),
            ApiError::PayloadTooLarge,
            ApiError::RequestTimeout,
            ApiError::UnsupportedMediaType,
            ApiError::Unavailable,
            ApiError::Internal("x".into()),
            ApiError::WrongPin { remaining: 1 },
            ApiError::WrongPuk { remaining: 1 },
            ApiError::PinBlocked,
            ApiError::PukBlocked,
            ApiError::RateLimited {
                retry_after_secs: 1,
            },
            ApiError::UpstreamUnavailable { timed_out: true },
            ApiError::ResyncFailed,
            ApiError::InvalidTransition {
                from: crate::domain::SimState::Blocked,
                to: crate::domain::SimState::Active,
            },
        ];
        let mut seen = std::collections::BTreeSet::new();
        for e in &every {
            assert!(CODES.iter().any(|(s, _)| *s == e.slug()), "{}", e.slug());
            seen.insert(code(e.slug()));
            assert_eq!(body(e)["errors"][0]["code"], code(e.slug()));
        }
        assert_eq!(seen.len(), every.len(), "codes are distinct per kind");
        assert_eq!(CODES.len(), every.len());
    }

    #[test]
    fn one_entry_per_validation_problem() {
        let mut v = ValidationErrors::new();
        v.parameter(
            "page[size]",
            "page[size] must be a whole number from 1 to 250",
        );
        v.parameter("filter[status]", "filter[status] must be one of …");
        v.pointer("/name", "bad");
        let b = body(&ApiError::Validation(v));
        let entries = b["errors"].as_array().unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[0]["code"], 10001);
        assert_eq!(entries[0]["source"], json!({"parameter": "page[size]"}));
        assert_eq!(entries[1]["source"], json!({"parameter": "filter[status]"}));
        assert_eq!(entries[2]["source"], json!({"pointer": "/name"}));
        assert_eq!(entries[0]["meta"]["request_id"], "req-1");
        assert!(entries[0]["title"].is_string());
    }

    #[test]
    fn extensions_go_to_meta_and_causes_stay_out() {
        let b = body(&ApiError::WrongPuk { remaining: 4 });
        assert_eq!(b["errors"][0]["meta"]["remaining_attempts"], 4);
        let b = body(&ApiError::Internal("db password hunter2".into()));
        assert!(!b.to_string().contains("hunter2"));
        assert_eq!(b["errors"][0]["code"], 10099);
    }
}
