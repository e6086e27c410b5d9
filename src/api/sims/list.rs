//! The `GET /v1/sims` query: filters, sorting and paging, every problem reported at once.

use crate::api::extract::QueryPairs;
use crate::domain::ValidationErrors;
use crate::domain::sim::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SimListQuery, SortField};
pub(super) use crate::domain::sim_filters::FILTER_PARAMS;
use crate::domain::sim_filters::{Params, read_filters};
use crate::service::sims::ForPlan;

/// The parameters of a list that order and page it, not filter it.
pub(super) const PAGING_PARAMS: &[&str] =
    &["page", "page_size", "sort_by", "sort_order", "include"];

pub(crate) fn parse_list_query(
    q: &QueryPairs,
) -> Result<(SimListQuery, Option<ForPlan>), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    let known: Vec<&str> = PAGING_PARAMS.iter().chain(FILTER_PARAMS).copied().collect();
    q.reject_unknown(&known, &mut errs);
    let (page, page_size) = q.paging(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &mut errs);
    let mut query = SimListQuery {
        page,
        page_size,
        ..SimListQuery::default()
    };

    if let Some(s) = q.one("sort_by", &mut errs) {
        match SortField::parse(&s.to_ascii_lowercase()) {
            Some(f) => query.sort_by = f,
            None => errs.parameter(
                "sort_by",
                format!("sort_by must be one of {}", SortField::NAMES.join(", ")),
            ),
        }
    }
    match q
        .one("sort_order", &mut errs)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("desc") => query.descending = true,
        Some("asc") => query.descending = false,
        Some(_) => errs.parameter("sort_order", "sort_order must be asc or desc"),
    }
    let for_plan = parse_filters(q, &mut query, &mut errs);
    errs.finish((query, for_plan))
}

/// Reads the filters of `q` into `query` (every problem into `errs`); the plan named, if any.
pub(super) fn parse_filters(
    q: &QueryPairs,
    query: &mut SimListQuery,
    errs: &mut ValidationErrors,
) -> Option<ForPlan> {
    read_filters(Params(&q.0), query, errs).map(ForPlan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SimState;

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

    #[test]
    fn enumerated_values_in_any_case() {
        let (q, _) = parse_list_query(&qp(&[
            ("state", "ACTIVE"),
            ("state", "Suspended"),
            ("sim_type", "eSIM"),
            ("condition", "DATA_LIMIT_EXCEEDED"),
            ("sort_by", "ICCID"),
            ("sort_order", "ASC"),
        ]))
        .unwrap();
        assert_eq!(q.states, vec![SimState::Active, SimState::Suspended]);
        assert_eq!(q.sim_type, Some(crate::domain::SimType::Esim));
        assert_eq!(
            q.conditions,
            vec![crate::domain::condition::Condition::DataLimitExceeded]
        );
        assert_eq!((q.sort_by, q.descending), (SortField::Iccid, false));
    }
}
