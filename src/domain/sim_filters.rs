//! The SIM list's filters, read from name/value pairs (a query string, or `simvault export`'s
//! options): the one reader behind `GET /v1/sims`, `GET /v1/sims/export` and the CLI's export,
//! every problem reported at once, each under its parameter's name.

use super::condition::Condition;
use super::sim::{
    CarrierFields, MAX_TAGS, SimListQuery, SimState, SimType, check_carrier_field, check_label,
};
use super::{ValidationErrors, parse_word};

/// The filter parameters, by name.
pub const FILTER_PARAMS: &[&str] = &[
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
];

/// Name/value pairs in the order given; a name may repeat.
#[derive(Debug, Clone, Copy)]
pub struct Params<'a>(pub &'a [(String, String)]);

impl<'a> Params<'a> {
    /// Every value of `name`, in order.
    pub fn all(self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The single value of `name`; repeating a single-valued parameter is an error.
    pub fn one(self, name: &'a str, errs: &mut ValidationErrors) -> Option<&'a str> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            errs.parameter(name, "give this parameter at most once");
        }
        first
    }
}

/// Reads the filters among `p` into `query` (every problem into `errs`); the plan named by
/// `for_plan_id`, if any. Other names are the caller's to allow or refuse.
pub fn read_filters(
    p: Params<'_>,
    query: &mut SimListQuery,
    errs: &mut ValidationErrors,
) -> Option<uuid::Uuid> {
    for s in p.all("state") {
        match parse_word::<SimState>(s) {
            Ok(st) if !query.states.contains(&st) => query.states.push(st),
            Ok(_) => {}
            Err(()) => errs.parameter(
                "state",
                "state must be one of inventory, active, suspended, blocked, retired",
            ),
        }
    }
    if let Some(s) = p.one("sim_type", errs) {
        match parse_word::<SimType>(s) {
            Ok(t) => query.sim_type = Some(t),
            Err(()) => errs.parameter("sim_type", "sim_type must be physical or esim"),
        }
    }
    let labels = |name: &str, errs: &mut ValidationErrors| -> Vec<String> {
        let mut out = Vec::new();
        for s in p.all(name) {
            match check_label(s, name) {
                Ok(()) if !out.iter().any(|o| o == s) => out.push(s.to_owned()),
                Ok(()) => {}
                Err(e) => errs.parameter(name, e),
            }
        }
        out
    };
    query.compatibility_zones = labels("compatibility_zones", errs);
    query.tags = labels("tags", errs);
    if query.tags.len() > MAX_TAGS {
        errs.parameter("tags", format!("at most {MAX_TAGS} tags"));
    }
    for (name, slot) in [
        ("group_id", &mut query.group_id),
        ("vendor", &mut query.vendor),
    ] {
        if let Some(s) = p.one(name, errs) {
            match check_label(s, name) {
                Ok(()) => *slot = Some(s.to_owned()),
                Err(e) => errs.parameter(name, e),
            }
        }
    }
    for (name, max) in CarrierFields::LIMITS {
        if let Some(s) = p.one(name, errs) {
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
    for s in p.all("condition") {
        match parse_word::<Condition>(s) {
            Ok(c) if !query.conditions.contains(&c) => query.conditions.push(c),
            Ok(_) => {}
            Err(()) => errs.parameter(
                "condition",
                "condition must be one of data_limit_exceeded, unauthorized_imei",
            ),
        }
    }
    if let Some(s) = p.one("iccid", errs) {
        if !s.is_empty() && s.len() <= 22 && s.bytes().all(|b| b.is_ascii_digit()) {
            query.iccid = Some(s.to_owned());
        } else {
            errs.parameter(
                "iccid",
                "iccid must be 1 to 22 digits (any part of an ICCID)",
            );
        }
    }
    if let Some(s) = p.one("search", errs) {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > 64 || s.chars().any(char::is_control) {
            errs.parameter("search", "search must be 1 to 64 printable characters");
        } else {
            query.search = Some(s.to_owned());
        }
    }
    match p.one("for_plan_id", errs) {
        None => None,
        Some(s) => match uuid::Uuid::parse_str(s) {
            Ok(id) => Some(id),
            Err(_) => {
                errs.parameter("for_plan_id", "for_plan_id must be a plan id (UUID)");
                None
            }
        },
    }
}

/// One alternative of a filter over lifecycle and conditions ([`SimListQuery::any_of`]): a SIM
/// in one of `states` (any state when empty), in every condition of `with` and in none of
/// `without`. Alternatives combine with OR, so a client's own status words (one state, a
/// state unless a condition holds, a condition whatever the state) become one filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusTerm {
    pub states: Vec<SimState>,
    pub with: Vec<Condition>,
    pub without: Vec<Condition>,
}

impl StatusTerm {
    /// Whether a SIM in `state` and `conditions` matches this term (the rule the store's SQL
    /// follows).
    pub fn matches(&self, state: SimState, conditions: &super::condition::Conditions) -> bool {
        (self.states.is_empty() || self.states.contains(&state))
            && self.with.iter().all(|c| conditions.contains(c))
            && !self.without.iter().any(|c| conditions.contains(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::condition::Conditions;

    #[test]
    fn a_term_needs_its_state_and_conditions() {
        let over: Conditions = [Condition::DataLimitExceeded].into_iter().collect();
        let none = Conditions::new();
        let active_within = StatusTerm {
            states: vec![SimState::Active],
            without: vec![Condition::DataLimitExceeded],
            ..StatusTerm::default()
        };
        assert!(active_within.matches(SimState::Active, &none));
        assert!(!active_within.matches(SimState::Active, &over));
        assert!(!active_within.matches(SimState::Suspended, &none));
        let locked_anywhere = StatusTerm {
            with: vec![Condition::UnauthorizedImei],
            ..StatusTerm::default()
        };
        let both: Conditions = Condition::ALL.into_iter().collect();
        assert!(locked_anywhere.matches(SimState::Retired, &both));
        assert!(!locked_anywhere.matches(SimState::Active, &over));
        assert!(StatusTerm::default().matches(SimState::Inventory, &none));
    }

    #[test]
    fn terms_combine_with_or() {
        let none = Conditions::new();
        let terms = [
            StatusTerm {
                states: vec![SimState::Inventory],
                ..StatusTerm::default()
            },
            StatusTerm {
                states: vec![SimState::Blocked, SimState::Retired],
                ..StatusTerm::default()
            },
        ];
        let any = |state| terms.iter().any(|t: &StatusTerm| t.matches(state, &none));
        assert!(any(SimState::Inventory));
        assert!(any(SimState::Retired));
        assert!(!any(SimState::Active));
    }
}
