//! The carrier's query parameters (`page[number]`, `filter[tags]`, `sort=-…`), read into the
//! native list query: its own names are translated to the native ones and read by the native
//! reader, and every problem is reported under the carrier's name.

use crate::api::extract::QueryPairs;
use crate::api::sims::parse_list_query;
use crate::domain::sim::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, SimListQuery};
use crate::domain::{GroupId, ValidationErrors, parse_word};
use crate::service::sims::ForPlan;

use super::views::StatusWord;

pub(super) const PAGE_NUMBER: &str = "page[number]";
pub(super) const PAGE_SIZE: &str = "page[size]";
pub(super) const INCLUDE_GROUP: &str = "include_sim_card_group";
const GROUP: &str = "filter[sim_card_group_id]";
const TAGS: &str = "filter[tags]";
const TAGS_LIST: &str = "filter[tags][]";
const ICCID: &str = "filter[iccid]";
const MSISDN: &str = "filter[msisdn]";
const STATUS: &str = "filter[status]";
const STATUS_LIST: &str = "filter[status][]";
const SORT: &str = "sort";
const SORT_FIELD: &str = "current_billing_period_consumed_data.amount";

/// The SIM card list's parameters, and no others.
pub(super) const LIST_PARAMS: &[&str] = &[
    PAGE_NUMBER,
    PAGE_SIZE,
    INCLUDE_GROUP,
    GROUP,
    TAGS,
    TAGS_LIST,
    ICCID,
    MSISDN,
    STATUS,
    STATUS_LIST,
    SORT,
];

/// Carrier name → native name, for the parameters the native reader reads.
const NATIVE_NAMES: &[(&str, &str)] = &[
    (PAGE_NUMBER, "page"),
    (PAGE_SIZE, "page_size"),
    (GROUP, "group_id"),
    (TAGS, "tags"),
    (ICCID, "iccid"),
];

/// Every value of a list parameter: repeated, comma-separated, or as `name[]`.
fn list_values<'a>(q: &'a QueryPairs, name: &'a str, list_name: &'a str) -> Vec<&'a str> {
    q.all(name)
        .chain(q.all(list_name))
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// A SIM card list request: the native query it means, and whether to embed groups.
pub(super) fn list_query(
    q: &QueryPairs,
) -> Result<(SimListQuery, Option<ForPlan>, bool), ValidationErrors> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(LIST_PARAMS, &mut errs);
    let include = include_group(q, &mut errs);
    let mut native = Vec::new();
    for (name, value) in &q.0 {
        match name.as_str() {
            PAGE_NUMBER | PAGE_SIZE | ICCID => native.push((native_name(name), value.clone())),
            GROUP => match GroupId::parse(value) {
                Ok(id) => native.push(("group_id", id.to_string())),
                Err(_) => {
                    errs.parameter(GROUP, format!("{GROUP} must be a SIM card group id (UUID)"))
                }
            },
            _ => {}
        }
    }
    for tag in list_values(q, TAGS, TAGS_LIST) {
        native.push(("tags", tag.to_owned()));
    }
    match q
        .one(SORT, &mut errs)
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None => {}
        Some(SORT_FIELD) => native.extend([
            ("sort_by", "consumed_data".into()),
            ("sort_order", "asc".into()),
        ]),
        Some(s) if s.strip_prefix('-') == Some(SORT_FIELD) => {
            native.extend([
                ("sort_by", "consumed_data".into()),
                ("sort_order", "desc".into()),
            ]);
        }
        Some(_) => errs.parameter(
            SORT,
            format!("sort must be {SORT_FIELD}, or -{SORT_FIELD} for descending order"),
        ),
    }
    let native = QueryPairs(native.into_iter().map(|(n, v)| (n.to_owned(), v)).collect());
    let parsed = NATIVE_NAMES
        .iter()
        .fold(parse_list_query(&native), |r, (carrier, ours)| {
            r.map_err(|e| e.rename_parameter(ours, carrier))
        });
    let msisdn = msisdn(q, &mut errs);
    let any_of = statuses(q, &mut errs);
    let (mut query, for_plan) = match parsed {
        Ok(p) => p,
        Err(e) => {
            errs.append(e);
            (SimListQuery::default(), None)
        }
    };
    query.msisdn = msisdn;
    query.any_of = any_of.into_iter().map(StatusWord::term).collect();
    errs.finish((query, for_plan, include))
}

fn native_name(carrier: &str) -> &'static str {
    NATIVE_NAMES
        .iter()
        .find(|(c, _)| *c == carrier)
        .map_or("", |(_, n)| n)
}

fn msisdn(q: &QueryPairs, errs: &mut ValidationErrors) -> Option<String> {
    let s = q.one(MSISDN, errs)?;
    let digits = s.strip_prefix('+').unwrap_or(s);
    if (1..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Some(s.to_owned())
    } else {
        errs.parameter(
            MSISDN,
            format!("{MSISDN} must be 1 to 15 digits, optionally after + (any part of an MSISDN)"),
        );
        None
    }
}

fn statuses(q: &QueryPairs, errs: &mut ValidationErrors) -> Vec<StatusWord> {
    let mut out = Vec::new();
    for s in list_values(q, STATUS, STATUS_LIST) {
        match parse_word::<StatusWord>(s) {
            Ok(w) if !out.contains(&w) => out.push(w),
            Ok(_) => {}
            Err(()) => errs.parameter(
                STATUS,
                format!("{STATUS} must be one of {}", StatusWord::NAMES),
            ),
        }
    }
    out
}

/// `include_sim_card_group`: `true` or `false` (any case), default `false`.
pub(super) fn include_group(q: &QueryPairs, errs: &mut ValidationErrors) -> bool {
    boolean(q, INCLUDE_GROUP, errs)
}

/// A boolean parameter: `true` or `false` (any case), default `false`.
pub(super) fn boolean(q: &QueryPairs, name: &str, errs: &mut ValidationErrors) -> bool {
    match q.one(name, errs).map(parse_word::<bool>) {
        None => false,
        Some(Ok(b)) => b,
        Some(Err(_)) => {
            errs.parameter(name, format!("{name} must be true or false"));
            false
        }
    }
}

/// `page[number]` and `page[size]` of a list that is only paged.
pub(super) fn paging(q: &QueryPairs, errs: &mut ValidationErrors) -> (u32, u32) {
    let native = QueryPairs(
        q.0.iter()
            .filter(|(n, _)| n == PAGE_NUMBER || n == PAGE_SIZE)
            .map(|(n, v)| (native_name(n).to_owned(), v.clone()))
            .collect(),
    );
    let mut ours = ValidationErrors::new();
    let paging = native.paging(DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, &mut ours);
    errs.append(
        ours.rename_parameter("page", PAGE_NUMBER)
            .rename_parameter("page_size", PAGE_SIZE),
    );
    paging
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Location;
    use crate::domain::sim::SortField;

    fn qp(pairs: &[(&str, &str)]) -> QueryPairs {
        QueryPairs(
            pairs
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect(),
        )
    }

    fn names(e: &ValidationErrors) -> Vec<String> {
        e.errors()
            .iter()
            .map(|f| match &f.location {
                Location::Parameter(p) | Location::Pointer(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn defaults() {
        let (q, plan, include) = list_query(&qp(&[])).unwrap();
        assert_eq!((q.page, q.page_size, include), (1, 20, false));
        assert!(plan.is_none() && q.any_of.is_empty() && q.tags.is_empty());
    }

    #[test]
    fn every_parameter_is_read() {
        let g = uuid::Uuid::new_v4();
        let (q, _, include) = list_query(&qp(&[
            ("page[number]", "3"),
            ("page[size]", "250"),
            ("include_sim_card_group", "TRUE"),
            ("filter[sim_card_group_id]", &g.to_string().to_uppercase()),
            ("filter[tags]", "customers,test"),
            ("filter[tags][]", "staff"),
            ("filter[tags]", "test"),
            ("filter[iccid]", "8944"),
            ("filter[msisdn]", "+4477"),
            ("filter[status]", "enabled,STANDBY"),
            ("filter[status][]", "disabled"),
            ("filter[status]", "enabled"),
            ("sort", "-current_billing_period_consumed_data.amount"),
        ]))
        .unwrap();
        assert_eq!((q.page, q.page_size, include), (3, 250, true));
        assert_eq!(q.group_id, Some(g.to_string()));
        assert_eq!(q.tags, vec!["customers", "test", "staff"]);
        assert_eq!(q.iccid.as_deref(), Some("8944"));
        assert_eq!(q.msisdn.as_deref(), Some("+4477"));
        assert_eq!(
            q.any_of,
            vec![
                StatusWord::Enabled.term(),
                StatusWord::Standby.term(),
                StatusWord::Disabled.term()
            ]
        );
        assert_eq!((q.sort_by, q.descending), (SortField::ConsumedData, true));
        let (q, _, _) = list_query(&qp(&[(
            "sort",
            "current_billing_period_consumed_data.amount",
        )]))
        .unwrap();
        assert_eq!((q.sort_by, q.descending), (SortField::ConsumedData, false));
    }

    #[test]
    fn every_problem_under_the_carrier_name() {
        let e = list_query(&qp(&[
            ("page[number]", "0"),
            ("page[size]", "251"),
            ("include_sim_card_group", "yes"),
            ("filter[sim_card_group_id]", "fleet"),
            ("filter[tags]", ""),
            ("filter[iccid]", "89x"),
            ("filter[msisdn]", "abc"),
            ("filter[status]", "enabling"),
            ("sort", "iccid"),
            ("page", "1"),
        ]))
        .unwrap_err();
        let mut got = names(&e);
        got.sort();
        assert_eq!(
            got,
            vec![
                "filter[iccid]",
                "filter[msisdn]",
                "filter[sim_card_group_id]",
                "filter[status]",
                "filter[tags]",
                "include_sim_card_group",
                "page",
                "page[number]",
                "page[size]",
                "sort",
            ]
        );
        for f in e.errors() {
            let Location::Parameter(p) = &f.location else {
                panic!("not a parameter")
            };
            if p != "page" {
                assert!(f.detail.starts_with(p.as_str()), "{p}: {}", f.detail);
            }
        }
    }

    #[test]
    fn paging_alone() {
        let mut errs = ValidationErrors::new();
        assert_eq!(paging(&qp(&[("page[size]", "5")]), &mut errs), (1, 5));
        paging(&qp(&[("page[number]", "x")]), &mut errs);
        assert_eq!(names(&errs), vec!["page[number]"]);
    }
}
