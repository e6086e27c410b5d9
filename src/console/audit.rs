//! The compliance pages: the tenant's audit log as a table with the API's filters and cursor
//! paging (`/console/audit`), one record in full (`/console/audit/{seq}`), the chain's
//! verification (`POST /console/audit/verify`) and the export download
//! (`/console/audit/export`). Each calls the very use case its API twin calls
//! (`GET /v1/audit/events`, `/verify`, `/export`) with the person as principal, so the policy
//! decides who reads (auditors) and a refusal is recorded like the API's.
//!
//! Must never: show a record whose stored row fails its integrity check as if it were whole
//! (it is listed as altered, its content withheld); show another tenant's records (the use
//! cases read the principal's tenant chain only).

use askama::Template;
use axum::Router;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;

mod record;

use super::pages::Choice;
use super::session::{Posted, Signed};
use super::views::{Chrome, PageError, render, when};
use crate::api::AppState;
use crate::audit::export::{AuditEventView, ExportFormat};
use crate::domain::audit::{AuditFilter, AuditOutcome, AuditRow};
use crate::domain::{Timestamp, format_timestamp, parse_timestamp};

/// Records a page shows unless `limit` says otherwise.
const PAGE_SIZE: u32 = 100;
/// The most records a page shows.
const MAX_PAGE_SIZE: u32 = 500;
/// The filters, by their query names (those of `GET /v1/audit/events`).
const FILTERS: [&str; 6] = ["actor", "action", "sim", "outcome", "since", "until"];

/// The compliance routes, merged into the console's router.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/audit", get(list))
        .route("/audit/export", get(export))
        .route("/audit/verify", post(verify))
        .route("/audit/{seq}", get(record::record))
}

/// The filter form's fields as given (empty fields dropped, as a form sends every field).
#[derive(Default)]
struct Form {
    pairs: Vec<(String, String)>,
}

impl Form {
    fn parse(query: Option<&str>, extra: &[&str]) -> Self {
        let pairs = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .filter(|(k, v)| {
                !v.trim().is_empty()
                    && (FILTERS.contains(&k.as_ref()) || extra.contains(&k.as_ref()))
            })
            .map(|(k, v)| (k.into_owned(), v.trim().to_owned()))
            .collect();
        Form { pairs }
    }

    /// Every value given for `name`.
    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The single value of `name`, as typed (for the form to show again).
    fn value(&self, name: &str) -> String {
        self.all(name).next().unwrap_or_default().to_owned()
    }

    /// The single value of `name`; a repeated one is a problem.
    fn one(&self, name: &str, problems: &mut Vec<String>) -> Option<String> {
        let mut values = self.all(name);
        let first = values.next().map(str::to_owned);
        if values.next().is_some() {
            problems.push(format!("Give {name} only once."));
        }
        first
    }

    /// The filters only, for the export form and the paging links.
    fn filter_pairs(&self) -> Vec<(String, String)> {
        self.pairs
            .iter()
            .filter(|(k, _)| FILTERS.contains(&k.as_str()))
            .cloned()
            .collect()
    }
}

/// An instant as a person types it: RFC 3339 (`2026-01-15T10:30:00Z`), or a date and time
/// without an offset (UTC, seconds optional, `T` or a space between), or a date (its start).
fn instant(v: &str) -> Option<Timestamp> {
    let v = v.replacen(' ', "T", 1);
    [
        v.clone(),
        format!("{v}Z"),
        format!("{v}:00Z"),
        format!("{v}T00:00:00Z"),
    ]
    .iter()
    .find_map(|c| parse_timestamp(c))
}

/// The filter of `form` (every problem, in words that say what to do, into `problems`).
fn read_filter(form: &Form, problems: &mut Vec<String>) -> AuditFilter {
    let mut text = |name: &str, label: &str| {
        form.one(name, problems).filter(|v| {
            let ok = v.len() <= 256;
            if !ok {
                problems.push(format!("{label}: shorten it to at most 256 characters."));
            }
            ok
        })
    };
    let (actor, action) = (text("actor", "Actor"), text("action", "Action"));
    let (sim, outcome) = (text("sim", "SIM"), text("outcome", "Outcome"));
    let mut at = |name: &str, label: &str| {
        form.one(name, problems).and_then(|v| {
            let t = instant(&v);
            if t.is_none() {
                problems.push(format!(
                    "{label}: give a UTC date and time such as 2026-01-15T10:30:00Z, or a date \
                     such as 2026-01-15."
                ));
            }
            t
        })
    };
    let (since, until) = (at("since", "Since"), at("until", "Until"));
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        problems.push("Until: choose a time after Since.".into());
    }
    AuditFilter {
        actor,
        action,
        sim,
        outcome,
        since,
        until,
    }
}

/// One row of the table.
struct Row {
    seq: i64,
    at: String,
    subject: String,
    auth_method: String,
    action: String,
    sim: String,
    outcome: String,
    reason: String,
    /// The stored row failed its integrity check: only its position is shown.
    altered: bool,
}

impl Row {
    fn of(row: AuditRow) -> Self {
        let (seq, at) = (row.seq, when(row.occurred_at));
        match AuditEventView::try_from(row) {
            Ok(v) => Row {
                seq,
                at,
                subject: v.actor.subject,
                auth_method: v.actor.auth_method,
                action: v.action,
                sim: v.iccid.or(v.sim_id).unwrap_or_default(),
                outcome: v.outcome,
                reason: v.reason.unwrap_or_default(),
                altered: false,
            },
            Err(_) => Row {
                seq,
                at: String::new(),
                subject: String::new(),
                auth_method: String::new(),
                action: String::new(),
                sim: String::new(),
                outcome: String::new(),
                reason: String::new(),
                altered: true,
            },
        }
    }
}

#[derive(Template)]
#[template(path = "console/audit.html")]
struct ListPage {
    chrome: Option<Chrome>,
    csrf: String,
    actor: String,
    action: String,
    sim: String,
    since: String,
    until: String,
    outcomes: Vec<Choice>,
    problems: Vec<String>,
    rows: Vec<Row>,
    /// The filters, carried by the export form.
    filters: Vec<(String, String)>,
    first: Option<String>,
    next: Option<String>,
}

impl ListPage {
    fn new(user: &Signed, form: &Form) -> Self {
        let outcome = form.value("outcome");
        let mut outcomes: Vec<Choice> = AuditOutcome::ALL
            .iter()
            .map(|o| Choice {
                value: o.as_str().to_owned(),
                label: o.as_str().to_owned(),
                selected: outcome == o.as_str(),
            })
            .collect();
        if !outcome.is_empty() && !outcomes.iter().any(|c| c.selected) {
            outcomes.push(Choice {
                value: outcome.clone(),
                label: outcome.clone(),
                selected: true,
            });
        }
        ListPage {
            chrome: Some(user.chrome("audit")),
            csrf: user.csrf.clone(),
            actor: form.value("actor"),
            action: form.value("action"),
            sim: form.value("sim"),
            since: form.value("since"),
            until: form.value("until"),
            outcomes,
            problems: Vec::new(),
            rows: Vec::new(),
            filters: form.filter_pairs(),
            first: None,
            next: None,
        }
    }
}

/// `/console/audit` with `pairs`, and `extra` after them.
fn link(pairs: &[(String, String)], extra: &[(&str, String)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        q.append_pair(k, v);
    }
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    let q = q.finish();
    if q.is_empty() {
        "/console/audit".into()
    } else {
        format!("/console/audit?{q}")
    }
}

/// `GET /console/audit`: the filter form, a page of matching records (newest first), and the
/// verify and export forms.
async fn list(State(state): State<AppState>, user: Signed, RawQuery(raw): RawQuery) -> Response {
    let form = Form::parse(raw.as_deref(), &["cursor", "limit"]);
    let mut page = ListPage::new(&user, &form);
    let mut problems = Vec::new();
    let filter = read_filter(&form, &mut problems);
    let before = form.one("cursor", &mut problems).and_then(|c| {
        let seq = c.parse::<i64>().ok().filter(|n| *n > 0);
        if seq.is_none() {
            problems.push("The page link is damaged: start again from the first page.".into());
        }
        seq
    });
    let limit = match form.one("limit", &mut problems) {
        None => PAGE_SIZE,
        Some(v) => v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE_SIZE).contains(n))
            .unwrap_or_else(|| {
                problems.push(format!(
                    "Rows a page: give a whole number from 1 to {MAX_PAGE_SIZE}."
                ));
                PAGE_SIZE
            }),
    };
    if !problems.is_empty() {
        // A person who may not read the log learns nothing, not even that the form was wrong.
        if !user.abilities.audit {
            return PageError::forbidden(Some(&user)).into_response();
        }
        page.problems = problems;
        return render(StatusCode::BAD_REQUEST, &page);
    }
    // One more than shown: whether there is a next page, without an empty last one.
    let mut rows = match state
        .services
        .audit()
        .audit_events(&user.principal, &filter, before, limit + 1)
        .await
    {
        Ok(rows) => rows,
        Err(e) => return PageError::from_service(e, Some(&user)).into_response(),
    };
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let mut paging = page.filters.clone();
    if limit != PAGE_SIZE {
        paging.push(("limit".into(), limit.to_string()));
    }
    page.next = more
        .then(|| {
            rows.last()
                .map(|r| link(&paging, &[("cursor", r.seq.to_string())]))
        })
        .flatten();
    page.first = before.map(|_| link(&paging, &[]));
    page.rows = rows.into_iter().map(Row::of).collect();
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "console/audit_verify.html")]
struct VerifyPage {
    chrome: Option<Chrome>,
    ok: bool,
    checked: i64,
    head_hash: String,
    first_bad_seq: Option<i64>,
    checkpoints: i64,
}

/// The verify form: nothing but its CSRF token.
#[derive(Deserialize)]
struct VerifyForm {}

/// `POST /console/audit/verify`: checks the tenant's hash chain and its signed checkpoints.
async fn verify(State(state): State<AppState>, posted: Posted<VerifyForm>) -> Response {
    let Posted { user, form: _ } = posted;
    match state.services.audit().verify_audit(&user.principal).await {
        Ok(v) => render(
            StatusCode::OK,
            &VerifyPage {
                chrome: Some(user.chrome("audit")),
                ok: v.ok,
                checked: v.checked,
                head_hash: v.head_hash.unwrap_or_default(),
                first_bad_seq: v.first_bad_seq,
                checkpoints: v.checkpoints,
            },
        ),
        Err(e) => PageError::from_service(e, Some(&user)).into_response(),
    }
}

/// `GET /console/audit/export?format=csv|ndjson&…filters`: the matching records, oldest
/// first, as a download, streamed as they are read.
async fn export(State(state): State<AppState>, user: Signed, RawQuery(raw): RawQuery) -> Response {
    let form = Form::parse(raw.as_deref(), &["format"]);
    let mut problems = Vec::new();
    let filter = read_filter(&form, &mut problems);
    let format = match form.one("format", &mut problems).as_deref() {
        Some("csv") | None => ExportFormat::Csv,
        Some("ndjson") => ExportFormat::Ndjson,
        Some(_) => {
            problems.push("Format: choose CSV or NDJSON.".into());
            ExportFormat::Csv
        }
    };
    if !problems.is_empty() {
        if !user.abilities.audit {
            return PageError::forbidden(Some(&user)).into_response();
        }
        let mut page = ListPage::new(&user, &form);
        page.problems = problems;
        return render(StatusCode::BAD_REQUEST, &page);
    }
    let pages = match state
        .services
        .audit()
        .audit_export(&user.principal, filter)
        .await
    {
        Ok(pages) => pages,
        Err(e) => return PageError::from_service(e, Some(&user)).into_response(),
    };
    let date: String = format_timestamp(user.session.last_seen_at)
        .chars()
        .take(10)
        .collect();
    let (content_type, extension) = match format {
        ExportFormat::Ndjson => ("application/x-ndjson", "ndjson"),
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
    };
    let name = format!("audit-{}-{date}.{extension}", user.principal.tenant);
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(crate::audit::export::body(pages, format)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_as_people_type_them() {
        let t = parse_timestamp("2026-01-15T10:30:00Z");
        for v in [
            "2026-01-15T10:30:00Z",
            "2026-01-15T10:30:00",
            "2026-01-15T10:30",
            "2026-01-15 10:30",
            "2026-01-15T11:30:00+01:00",
        ] {
            assert_eq!(instant(v), t, "{v}");
        }
        assert_eq!(
            instant("2026-01-15"),
            parse_timestamp("2026-01-15T00:00:00Z")
        );
        for bad in ["yesterday", "2026-13-01", "10:30"] {
            assert_eq!(instant(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_fields_and_strangers_are_dropped_and_problems_say_what_to_do() {
        let form = Form::parse(
            Some("actor=&action=secrets.read&evil=1&since=soon&until=2026-01-01&cursor=5"),
            &["cursor"],
        );
        assert_eq!(form.value("actor"), "");
        assert_eq!(form.filter_pairs().len(), 3);
        let mut problems = Vec::new();
        let f = read_filter(&form, &mut problems);
        assert_eq!(f.action.as_deref(), Some("secrets.read"));
        assert_eq!(f.actor, None);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].starts_with("Since: give a UTC date"));
    }
}
