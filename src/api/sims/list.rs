//! The `GET /v1/sims` query: filters, sorting and paging, every problem reported at once.

use crate::api::extract::QueryPairs;
use crate::domain::condition::Condition;
use crate::domain::sim::{
    CarrierFields, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_TAGS, SimListQuery, SortField,
    check_carrier_field,
};
use crate::domain::{SimState, SimType, ValidationErrors};
use crate::service::sims::ForPlan;

const LIST_PARAMS: &[&str] = &[
    "page",
    "page_size",
    "sort_by",
    "sort_order",
    "state",
    "sim_type",
    "compatibility_zones",
    "tags",
    "group_id",
    "vendor",
    "communication_plan",
    "rate_plan",
    "mno_integration_id",
    "condition",
    "iccid",
    "search",
    "for_plan_id",
    "include",
];

pub(super) fn parse_list_query(
    q: &QueryPairs,
) -> Result<(SimListQuery, Option<ForPlan>), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(LIST_PARAMS, &mut errs);
    let (page, page_size) = q.paging(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &mut errs);
    let mut query = SimListQuery {
        page,
        page_size,
        ..SimListQuery::default()
    };

    if let Some(s) = q.one("sort_by", &mut errs) {
        match SortField::parse(s) {
            Some(f) => query.sort_by = f,
            None => errs.parameter(
                "sort_by",
                format!("sort_by must be one of {}", SortField::NAMES.join(", ")),
            ),
        }
    }
    match q.one("sort_order", &mut errs) {
        None | Some("desc") => query.descending = true,
        Some("asc") => query.descending = false,
        Some(_) => errs.parameter("sort_order", "sort_order must be asc or desc"),
    }
    for s in q.all("state") {
        match s.parse::<SimState>() {
            Ok(st) if !query.states.contains(&st) => query.states.push(st),
            Ok(_) => {}
            Err(()) => errs.parameter(
                "state",
                "state must be one of inventory, active, suspended, blocked, retired",
            ),
        }
    }
    if let Some(s) = q.one("sim_type", &mut errs) {
        match s.parse::<SimType>() {
            Ok(t) => query.sim_type = Some(t),
            Err(()) => errs.parameter("sim_type", "sim_type must be physical or esim"),
        }
    }
    let labels = |name: &str, errs: &mut ValidationErrors| -> Vec<String> {
        let mut out = Vec::new();
        for s in q.all(name) {
            match crate::domain::sim::check_label(s, name) {
                Ok(()) if !out.iter().any(|o| o == s) => out.push(s.to_owned()),
                Ok(()) => {}
                Err(e) => errs.parameter(name, e),
            }
        }
        out
    };
    query.compatibility_zones = labels("compatibility_zones", &mut errs);
    query.tags = labels("tags", &mut errs);
    if query.tags.len() > MAX_TAGS {
        errs.parameter("tags", format!("at most {MAX_TAGS} tags"));
    }
    for (name, slot) in [
        ("group_id", &mut query.group_id),
        ("vendor", &mut query.vendor),
    ] {
        if let Some(s) = q.one(name, &mut errs) {
            match crate::domain::sim::check_label(s, name) {
                Ok(()) => *slot = Some(s.to_owned()),
                Err(e) => errs.parameter(name, e),
            }
        }
    }
    for (name, max) in CarrierFields::LIMITS {
        if let Some(s) = q.one(name, &mut errs) {
            match (
                check_carrier_field(s, name, max),
                query.carrier.field_mut(name),
            ) {
                (Ok(()), Some(slot)) => *slot = Some(s.to_owned()),
                (Ok(()), None) => {}
                (Err(e), _) => errs.parameter(name, e),
            }
        }
    }
    for s in q.all("condition") {
        match s.parse::<Condition>() {
            Ok(c) if !query.conditions.contains(&c) => query.conditions.push(c),
            Ok(_) => {}
            Err(()) => errs.parameter(
                "condition",
                "condition must be one of data_limit_exceeded, unauthorized_imei",
            ),
        }
    }
    if let Some(s) = q.one("iccid", &mut errs) {
        if !s.is_empty() && s.len() <= 22 && s.bytes().all(|b| b.is_ascii_digit()) {
            query.iccid = Some(s.to_owned());
        } else {
            errs.parameter(
                "iccid",
                "iccid must be 1 to 22 digits (any part of an ICCID)",
            );
        }
    }
    if let Some(s) = q.one("search", &mut errs) {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
            errs.parameter("search", "search must be 1 to 64 printable characters");
        } else {
            query.search = Some(s.to_owned());
        }
    }
    let for_plan = match q.one("for_plan_id", &mut errs) {
        None => None,
        Some(s) => match uuid::Uuid::parse_str(s) {
            Ok(id) => Some(ForPlan(id)),
            Err(_) => {
                errs.parameter("for_plan_id", "for_plan_id must be a plan id (UUID)");
                None
            }
        },
    };
    errs.finish((query, for_plan))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pointers(e: &ValidationErrors) -> Vec<String> {
        e.errors()
            .iter()
            .map(|e| match &e.location {
                crate::domain::Location::Pointer(p) => p.clone(),
                crate::domain::Location::Parameter(p) => p.clone(),
            })
            .collect()
    }

    fn qp(pairs: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    #[test]
    fn list_query_defaults_and_errors() {
        let (q, plan) = parse_list_query(&qp(&[])).unwrap();
        assert_eq!(
            (q.page, q.page_size, q.sort_by, q.descending),
            (1, 20, SortField::UpdatedAt, true)
        );
        assert!(plan.is_none());
        let e = parse_list_query(&qp(&[
            ("page", "0"),
            ("page_size", "251"),
            ("sort_by", "ki"),
            ("sort_order", "up"),
            ("state", "gone"),
            ("bogus", "1"),
            ("iccid", "89x"),
            ("for_plan_id", "nope"),
        ]))
        .unwrap_err();
        assert_eq!(
            pointers(&e),
            vec![
                "bogus",
                "page",
                "page_size",
                "sort_by",
                "sort_order",
                "state",
                "iccid",
                "for_plan_id"
            ]
        );
    }

    #[test]
    fn repeatable_filters_collect() {
        let (q, _) = parse_list_query(&qp(&[
            ("state", "active"),
            ("state", "suspended"),
            ("tags", "a"),
            ("tags", "b"),
            ("compatibility_zones", "eu"),
            ("page_size", "250"),
        ]))
        .unwrap();
        assert_eq!(q.states, vec![SimState::Active, SimState::Suspended]);
        assert_eq!(q.tags, vec!["a", "b"]);
        assert_eq!(q.compatibility_zones, vec!["eu"]);
        assert_eq!(q.page_size, 250);
    }
}
