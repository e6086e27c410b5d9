//! One record of the person's tenant chain, every field of it: `/console/audit/{seq}`.

use askama::Template;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::api::AppState;
use crate::audit::export::AuditEventView;
use crate::console::session::Signed;
use crate::console::views::{Chrome, PageError, render};
use crate::domain::audit::AuditFilter;

/// A labelled value of a record's page.
struct Fact {
    label: &'static str,
    value: String,
}

#[derive(Template)]
#[template(path = "console/audit_record.html")]
struct RecordPage {
    chrome: Option<Chrome>,
    seq: i64,
    /// `None` when the stored row failed its integrity check.
    facts: Option<Vec<Fact>>,
    sim_link: Option<String>,
    fields: Vec<String>,
    policy_ids: Vec<String>,
}

fn facts(v: AuditEventView, remaining: Option<i64>) -> Vec<Fact> {
    let opt = |o: Option<String>| o.filter(|s| !s.is_empty()).unwrap_or_else(|| "—".into());
    vec![
        Fact {
            label: "Sequence number",
            value: v.seq.to_string(),
        },
        Fact {
            label: "Record id",
            value: v.id,
        },
        Fact {
            label: "When (UTC)",
            value: v.occurred_at,
        },
        Fact {
            label: "Action",
            value: v.action,
        },
        Fact {
            label: "Outcome",
            value: v.outcome,
        },
        Fact {
            label: "Reason",
            value: opt(v.reason),
        },
        Fact {
            label: "Actor",
            value: v.actor.subject,
        },
        Fact {
            label: "Roles",
            value: opt(Some(v.actor.roles.join(", "))),
        },
        Fact {
            label: "Auth method",
            value: v.actor.auth_method,
        },
        Fact {
            label: "Credential",
            value: opt(v.actor.credential_id),
        },
        Fact {
            label: "Client address",
            value: opt(v.actor.client_addr),
        },
        Fact {
            label: "Request id",
            value: opt(v.request_id),
        },
        Fact {
            label: "SIM id",
            value: opt(v.sim_id),
        },
        Fact {
            label: "ICCID",
            value: opt(v.iccid),
        },
        Fact {
            label: "Attempts left after",
            value: opt(remaining.map(|n| n.to_string())),
        },
        Fact {
            label: "Hash",
            value: v.hash,
        },
        Fact {
            label: "Previous hash",
            value: v.prev_hash,
        },
    ]
}

/// `GET /console/audit/{seq}`: one record of the person's tenant chain, every field of it.
pub(super) async fn record(
    State(state): State<AppState>,
    user: Signed,
    Path(raw): Path<String>,
) -> Response {
    // Parsed before anything is read; a position past the end (or another tenant's: each
    // tenant's chain has its own positions) is not found.
    let Some(seq) = raw.parse::<i64>().ok().filter(|n| *n > 0) else {
        return not_found_or_forbidden(&state, &user).await;
    };
    let rows = match state
        .services
        .audit()
        .audit_events(
            &user.principal,
            &AuditFilter::default(),
            seq.checked_add(1),
            1,
        )
        .await
    {
        Ok(rows) => rows,
        Err(e) => return PageError::from_service(e, Some(&user)).into_response(),
    };
    let Some(row) = rows.into_iter().find(|r| r.seq == seq) else {
        return PageError::not_found(Some(&user)).into_response();
    };
    let remaining = crate::audit::parse_row(&row).and_then(|r| r.remaining_attempts);
    let mut page = RecordPage {
        chrome: Some(user.chrome("audit")),
        seq,
        facts: None,
        sim_link: None,
        fields: Vec::new(),
        policy_ids: Vec::new(),
    };
    if let Ok(mut v) = AuditEventView::try_from(row) {
        page.sim_link = v
            .sim_id
            .clone()
            .filter(|_| user.abilities.sims)
            .map(|id| format!("/console/sims/{id}"));
        page.fields = std::mem::take(&mut v.fields);
        page.policy_ids = std::mem::take(&mut v.policy_ids);
        page.facts = Some(facts(v, remaining));
    }
    render(StatusCode::OK, &page)
}

/// The answer to a malformed record address: what the use case says of the person (`403` for
/// one who may not read the log), else not found.
async fn not_found_or_forbidden(state: &AppState, user: &Signed) -> Response {
    match state
        .services
        .audit()
        .audit_events(&user.principal, &AuditFilter::default(), Some(1), 1)
        .await
    {
        Ok(_) => PageError::not_found(Some(user)).into_response(),
        Err(e) => PageError::from_service(e, Some(user)).into_response(),
    }
}
