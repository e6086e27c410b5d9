//! The support pages: the SIM search (`/console`) and a SIM (`/console/sims/{uuid or
//! iccid}`). Both call the very use cases `GET /v1/sims`, `GET /v1/sims/{sim}`, its history
//! and the audit log call, with the person as principal.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::session::Signed;
use super::views::{Chrome, PageError, render, when};
use crate::api::AppState;
use crate::domain::audit::AuditFilter;
use crate::domain::sim::SimListQuery;
use crate::domain::sim_filters::{Params, read_filters};
use crate::domain::{Sim, SimKey, SimState, ValidationErrors};

/// SIMs a search page shows.
const PAGE_SIZE: u32 = 25;
/// State changes and audit records a SIM page shows.
const RECENT: u32 = 20;

/// A choice of a `<select>`.
pub(super) struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// One row of the results.
pub(super) struct SimRow {
    pub id: String,
    pub iccid: String,
    pub imsi: String,
    pub msisdn: String,
    pub state: &'static str,
    pub group: String,
}

#[derive(Template)]
#[template(path = "console/search.html")]
struct SearchPage {
    chrome: Option<Chrome>,
    may_search: bool,
    search: String,
    states: Vec<Choice>,
    groups: Vec<Choice>,
    problems: Vec<String>,
    rows: Vec<SimRow>,
    total: u64,
    page: u32,
    pages: u64,
    prev: Option<String>,
    next: Option<String>,
}

/// The form's fields, as given (empty fields dropped, as a form sends every field).
fn form_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, v)| {
            !v.trim().is_empty() && matches!(k.as_ref(), "search" | "state" | "group_id" | "page")
        })
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The query string of `pairs` at another page.
fn at_page(pairs: &[(String, String)], page: u32) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(k, _)| k != "page") {
        q.append_pair(k, v);
    }
    q.append_pair("page", &page.to_string());
    format!("/console?{}", q.finish())
}

/// `GET /console`: the search form and a page of matching SIMs.
pub(super) async fn search(
    State(state): State<AppState>,
    user: Signed,
    RawQuery(raw): RawQuery,
) -> Response {
    let pairs = form_pairs(raw.as_deref());
    let chosen = |name: &str| -> Option<String> {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut page = SearchPage {
        chrome: Some(user.chrome("search")),
        may_search: user.abilities.sims,
        search: chosen("search").unwrap_or_default(),
        states: SimState::ALL
            .iter()
            .map(|s| Choice {
                value: s.as_str().to_owned(),
                label: s.as_str().to_owned(),
                selected: chosen("state").as_deref() == Some(s.as_str()),
            })
            .collect(),
        groups: Vec::new(),
        problems: Vec::new(),
        rows: Vec::new(),
        total: 0,
        page: 1,
        pages: 0,
        prev: None,
        next: None,
    };
    if !user.abilities.sims {
        return render(StatusCode::OK, &page);
    }
    let mut names: HashMap<String, String> = HashMap::new();
    if user.abilities.groups {
        match state
            .services
            .groups()
            .list_groups(&user.principal, 1, 250)
            .await
        {
            Ok(groups) => {
                for g in groups.items {
                    let id = g.id.to_string();
                    page.groups.push(Choice {
                        selected: chosen("group_id").as_deref() == Some(id.as_str()),
                        value: id.clone(),
                        label: g.name.clone(),
                    });
                    names.insert(id, g.name);
                }
            }
            Err(e) => return PageError::from_service(e, Some(&user)).into_response(),
        }
    }
    let mut errs = ValidationErrors::new();
    let mut query = SimListQuery {
        page_size: PAGE_SIZE,
        ..SimListQuery::default()
    };
    read_filters(Params(&pairs), &mut query, &mut errs);
    query.page = match chosen("page").map(|p| p.parse::<u32>()) {
        None => 1,
        Some(Ok(p)) if p >= 1 => p,
        Some(_) => {
            errs.parameter("page", "the page must be a whole number from 1");
            1
        }
    };
    if let Err(e) = errs.finish(()) {
        page.problems = e.errors().iter().map(|e| e.detail.clone()).collect();
        return render(StatusCode::BAD_REQUEST, &page);
    }
    let found = match state
        .services
        .inventory()
        .list_sims(&user.principal, query, None)
        .await
    {
        Ok(found) => found,
        Err(e) => return PageError::from_service(e, Some(&user)).into_response(),
    };
    page.page = found.page;
    page.total = found.total;
    page.pages = crate::domain::sim::page_count(found.total, found.page_size);
    page.prev = (found.page > 1).then(|| at_page(&pairs, found.page - 1));
    page.next = (u64::from(found.page) < page.pages).then(|| at_page(&pairs, found.page + 1));
    page.rows = found
        .items
        .into_iter()
        .map(|s| SimRow {
            id: s.id.to_string(),
            iccid: s.iccid.as_str().to_owned(),
            imsi: s
                .imsi
                .as_ref()
                .map(|i| i.as_str().to_owned())
                .unwrap_or_default(),
            msisdn: s
                .msisdn
                .as_ref()
                .map(|m| m.as_str().to_owned())
                .unwrap_or_default(),
            state: s.state.as_str(),
            group: s
                .group_id
                .as_ref()
                .map(|g| names.get(g).cloned().unwrap_or_else(|| g.clone()))
                .unwrap_or_default(),
        })
        .collect();
    render(StatusCode::OK, &page)
}

/// A labelled value of the SIM page.
pub(super) struct Fact {
    pub label: &'static str,
    pub value: String,
}

/// A PIN or PUK counter.
pub(super) struct Counter {
    pub name: String,
    pub remaining: i64,
    pub blocked: bool,
}

pub(super) struct Change {
    pub at: String,
    pub from: &'static str,
    pub to: &'static str,
    pub reason: String,
    pub actor: String,
}

pub(super) struct Record {
    pub at: String,
    pub action: String,
    pub outcome: String,
    pub subject: String,
}

#[derive(Template)]
#[template(path = "console/sim.html")]
struct SimPage {
    chrome: Option<Chrome>,
    iccid: String,
    facts: Vec<Fact>,
    conditions: Vec<String>,
    counters: Vec<Counter>,
    history: Vec<Change>,
    /// `None` when the person may not read the audit log (the section is left out).
    audit: Option<Vec<Record>>,
    /// The support and operator forms the person's roles open.
    support: super::support::Panel,
}

fn facts(sim: &Sim, group: Option<String>) -> Vec<Fact> {
    let opt = |v: Option<&str>| v.unwrap_or("—").to_owned();
    vec![
        Fact {
            label: "ICCID",
            value: sim.iccid.as_str().to_owned(),
        },
        Fact {
            label: "IMSI",
            value: opt(sim.imsi.as_ref().map(|v| v.as_str())),
        },
        Fact {
            label: "MSISDN",
            value: opt(sim.msisdn.as_ref().map(|v| v.as_str())),
        },
        Fact {
            label: "IMEI",
            value: opt(sim.imei.as_ref().map(|v| v.as_str())),
        },
        Fact {
            label: "EID",
            value: opt(sim.eid.as_ref().map(|v| v.as_str())),
        },
        Fact {
            label: "Type",
            value: sim.sim_type.as_str().to_owned(),
        },
        Fact {
            label: "State",
            value: sim.state.as_str().to_owned(),
        },
        Fact {
            label: "State reason",
            value: opt(sim.state_reason.as_deref()),
        },
        Fact {
            label: "Group",
            value: opt(group.as_deref().or(sim.group_id.as_deref())),
        },
        Fact {
            label: "Device",
            value: opt(sim.device_id.as_deref()),
        },
        Fact {
            label: "Updated",
            value: when(sim.updated_at),
        },
        Fact {
            label: "Id",
            value: sim.id.to_string(),
        },
    ]
}

/// `GET /console/sims/{sim}`: one SIM of the person's tenant (another tenant's, or none:
/// the same 404 page).
pub(super) async fn sim(
    State(state): State<AppState>,
    user: Signed,
    Path(raw): Path<String>,
) -> Response {
    let Some(key) = SimKey::parse(&raw) else {
        return PageError::not_found(Some(&user)).into_response();
    };
    match sim_page(&state, &user, &key).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(e) => PageError::from_service(e, Some(&user)).into_response(),
    }
}

async fn sim_page(
    state: &AppState,
    user: &Signed,
    key: &SimKey,
) -> crate::service::ServiceResult<SimPage> {
    let services = &state.services;
    let p = &user.principal;
    let sim = services.inventory().get_sim(p, key).await?;
    let key = SimKey::Id(sim.id);
    let group = match (&sim.group_id, user.abilities.groups) {
        (Some(g), true) => services
            .groups()
            .groups_of(p, &[g.as_str()])
            .await?
            .remove(g)
            .map(|g| g.name),
        _ => None,
    };
    let history = services
        .lifecycle()
        .sim_history(p, &key, 1, RECENT)
        .await?
        .items
        .into_iter()
        .map(|h| Change {
            at: when(h.occurred_at),
            from: h.from_state.as_str(),
            to: h.to_state.as_str(),
            reason: h.reason.unwrap_or_default(),
            actor: h.actor,
        })
        .collect();
    let audit = if user.abilities.audit {
        let filter = AuditFilter {
            sim: Some(sim.id.to_string()),
            ..AuditFilter::default()
        };
        Some(
            services
                .audit()
                .audit_events(p, &filter, None, RECENT)
                .await?
                .into_iter()
                .map(|r| Record {
                    at: when(r.occurred_at),
                    action: r.action,
                    outcome: r.outcome,
                    subject: r.subject,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(SimPage {
        chrome: Some(user.chrome("search")),
        iccid: sim.iccid.as_str().to_owned(),
        facts: facts(&sim, group),
        conditions: sim
            .conditions
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect(),
        counters: super::support::counters(&sim),
        support: super::support::panel(state, user, &sim),
        history,
        audit,
    })
}
