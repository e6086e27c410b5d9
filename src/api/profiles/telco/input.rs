//! What the `telco` profile reads: the `{iccid}` path segment, the list's parameters, the
//! request bodies, PIN types and reasons, each parsed into the native domain inputs with every
//! problem reported under the profile's own names. Enumerated words are taken in any case.

use axum::extract::{FromRequestParts, Path};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use crate::api::AppState;
use crate::api::error::ApiError;
use crate::api::extract::{QueryPairs, present};
use crate::api::secrets::{REASON_HEADER, SecretInput};
use crate::domain::pin::PinType;
use crate::domain::sim::SortField;
use crate::domain::{Iccid, LuhnPolicy, SimKey, SimState, ValidationErrors, parse_word};

/// The `{iccid}` path segment: an ICCID by our rule (18–22 digits, Luhn unless the deployment
/// relaxes it). Anything else is `400 Invalid ICCID Format`, naming the `iccid` parameter.
pub struct TelcoIccid(pub SimKey);

impl FromRequestParts<AppState> for TelcoIccid {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        iccid_key(&raw, state.services.iccid_luhn())
            .map(TelcoIccid)
            .map_err(ApiError::Validation)
    }
}

/// The SIM an ICCID path segment names.
pub(super) fn iccid_key(raw: &str, luhn: LuhnPolicy) -> Result<SimKey, ValidationErrors> {
    Iccid::parse(raw, luhn)
        .map(|iccid| SimKey::Iccid(iccid.into_inner()))
        .map_err(|e| {
            let mut errs = ValidationErrors::new();
            errs.parameter("iccid", e.to_string());
            errs
        })
}

/// The list's parameters.
const PARAMS: &[&str] = &["state", "vendor", "page", "per_page", "sort"];

/// The fields a list can be sorted by.
const SORT_FIELDS: &[&str] = &["created_at", "updated_at", "iccid", "state"];

/// The native list query a profile query means: `state` (repeatable, or comma-separated; any
/// case), `vendor`, `page`, `per_page` (the native `page_size`, ≤ 250) and
/// `sort=field[:asc|desc]` over [`SORT_FIELDS`].
pub(super) fn native_query(q: &QueryPairs) -> Result<QueryPairs, ValidationErrors> {
    let mut errs = ValidationErrors::new();
    q.reject_unknown(PARAMS, &mut errs);
    let mut pairs = Vec::new();
    for (name, value) in &q.0 {
        match name.as_str() {
            "state" => pairs.extend(
                value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| ("state".to_owned(), s.to_owned())),
            ),
            "vendor" | "page" => pairs.push((name.clone(), value.clone())),
            "per_page" => pairs.push(("page_size".to_owned(), value.clone())),
            _ => {}
        }
    }
    if let Some(sort) = q.one("sort", &mut errs) {
        match parse_sort(sort) {
            Some((field, descending)) => {
                pairs.push(("sort_by".to_owned(), field.to_owned()));
                let order = if descending { "desc" } else { "asc" };
                pairs.push(("sort_order".to_owned(), order.to_owned()));
            }
            None => errs.parameter(
                "sort",
                format!(
                    "sort must be field:asc or field:desc, the field one of {}",
                    SORT_FIELDS.join(", ")
                ),
            ),
        }
    }
    errs.finish(QueryPairs(pairs))
}

/// `field[:asc|desc]` (any case; descending when no direction is given, as natively).
fn parse_sort(s: &str) -> Option<(&'static str, bool)> {
    let (field, direction) = s.split_once(':').unwrap_or((s, "desc"));
    let field = field.trim().to_ascii_lowercase();
    let field = *SORT_FIELDS.iter().find(|f| **f == field)?;
    SortField::parse(field)?;
    match direction.trim().to_ascii_lowercase().as_str() {
        "asc" => Some((field, false)),
        "desc" => Some((field, true)),
        _ => None,
    }
}

/// Problems of the native list query, named as the profile names them.
pub(super) fn profile_names(e: ValidationErrors) -> ValidationErrors {
    e.rename_parameter("page_size", "per_page")
        .rename_parameter("sort_by", "sort")
        .rename_parameter("sort_order", "sort")
}

/// `PATCH …/{iccid}/state` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StateBody {
    /// `INVENTORY`, `ACTIVE`, `SUSPENDED`, `BLOCKED` or `RETIRED` (any case).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "ACTIVE")]
    pub state: Option<Value>,
    /// Why (recorded in the history): 1–500 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "Customer activation request")]
    pub reason: Option<Value>,
}

/// The state asked for, in any case.
pub(super) fn state(v: &Option<Value>, errs: &mut ValidationErrors) -> Option<SimState> {
    let parsed = v
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|s| parse_word::<SimState>(s).ok());
    if parsed.is_none() {
        errs.pointer(
            "/state",
            "state must be one of INVENTORY, ACTIVE, SUSPENDED, BLOCKED, RETIRED",
        );
    }
    parsed
}

/// `reset-pin` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPinBody {
    /// `PIN1` or `PIN2` (any case).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "PIN1")]
    pub pin_type: Option<Value>,
    /// The PIN now on the card: 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String)]
    pub current_pin: Option<SecretInput>,
    /// 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String)]
    pub new_pin: Option<SecretInput>,
    /// Optional: why (ticket); also as `X-Simvault-Reason`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub reason: Option<Value>,
}

/// `unblock-pin` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnblockPinBody {
    /// `PIN1` (unblocked with PUK1) or `PIN2` (with PUK2), any case.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "PIN1")]
    pub pin_type: Option<Value>,
    /// The PUK of the pair: 8 digits.
    #[serde(default)]
    #[schema(value_type = String)]
    pub puk: Option<SecretInput>,
    /// 4–8 digits.
    #[serde(default)]
    #[schema(value_type = String)]
    pub new_pin: Option<SecretInput>,
    /// Why (ticket), 1–500 characters: required, here or as `X-Simvault-Reason`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "TICKET-4711")]
    pub reason: Option<Value>,
}

// The bodies hold PINs: never print them.
impl std::fmt::Debug for ResetPinBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPinBody")
    }
}
impl std::fmt::Debug for UnblockPinBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UnblockPinBody")
    }
}

/// `PIN1` or `PIN2`, in any case.
pub(super) fn pin_type(v: &Option<Value>, errs: &mut ValidationErrors) -> PinType {
    match v
        .as_ref()
        .and_then(Value::as_str)
        .map(parse_word::<PinType>)
    {
        Some(Ok(t)) => t,
        _ => {
            errs.pointer("/pin_type", "pin_type must be PIN1 or PIN2");
            PinType::Pin1
        }
    }
}

/// What the reason of a request says: the body's `reason`, else the `X-Simvault-Reason`
/// header; `required` names both places when neither has one.
pub(super) fn reason(
    body: Option<Value>,
    headers: &HeaderMap,
    required: Option<&str>,
    errs: &mut ValidationErrors,
) -> Option<String> {
    let (text, at) = match body {
        Some(Value::String(s)) => (s, "/reason"),
        None | Some(Value::Null) => match header_text(headers) {
            Some(h) => (h, REASON_HEADER),
            None => {
                if let Some(what) = required {
                    errs.pointer(
                        "/reason",
                        format!(
                            "a reason (ticket) is required to {what}: give it as reason in the \
                             body or in the X-Simvault-Reason header"
                        ),
                    );
                }
                return None;
            }
        },
        Some(_) => {
            errs.pointer("/reason", "must be a string");
            return None;
        }
    };
    let checked = crate::domain::validation::reason(&text);
    match (checked, at) {
        (Ok(r), _) => Some(r),
        (Err(rule), "/reason") => {
            errs.pointer("/reason", rule);
            None
        }
        (Err(rule), _) => {
            errs.parameter("X-Simvault-Reason", rule);
            None
        }
    }
}

/// The reason in the `X-Simvault-Reason` header, validated (a GET has no body to carry one).
pub(super) fn header_reason(headers: &HeaderMap) -> Result<Option<String>, ValidationErrors> {
    let Some(text) = header_text(headers) else {
        return Ok(None);
    };
    crate::domain::validation::reason(&text)
        .map(Some)
        .map_err(|rule| {
            let mut errs = ValidationErrors::new();
            errs.parameter("X-Simvault-Reason", rule);
            errs
        })
}

/// The header's text (not text at all reads as empty, which the reason rule refuses).
fn header_text(headers: &HeaderMap) -> Option<String> {
    headers
        .get(REASON_HEADER)
        .map(|v| v.to_str().map(str::to_owned).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::sims::parse_list_query;
    use crate::domain::Location;
    use serde_json::json;

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
            .map(|e| match &e.location {
                Location::Pointer(p) | Location::Parameter(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn the_seed_parameters_are_the_native_query() {
        let q = native_query(&qp(&[
            ("state", "ACTIVE,suspended"),
            ("state", "Blocked"),
            ("vendor", "GEMALTO"),
            ("page", "2"),
            ("per_page", "250"),
            ("sort", "created_at:desc"),
        ]))
        .unwrap();
        let (parsed, _) = parse_list_query(&q).unwrap();
        assert_eq!(
            parsed.states,
            vec![SimState::Active, SimState::Suspended, SimState::Blocked]
        );
        assert_eq!(parsed.vendor.as_deref(), Some("GEMALTO"));
        assert_eq!((parsed.page, parsed.page_size), (2, 250));
        assert_eq!(
            (parsed.sort_by, parsed.descending),
            (SortField::CreatedAt, true)
        );
    }

    #[test]
    fn sort_takes_four_fields_and_a_direction_in_any_case() {
        assert_eq!(parse_sort("ICCID:ASC"), Some(("iccid", false)));
        assert_eq!(parse_sort("state"), Some(("state", true)));
        assert_eq!(parse_sort("updated_at:desc"), Some(("updated_at", true)));
        assert_eq!(parse_sort("imsi:asc"), None, "not a sort field here");
        assert_eq!(parse_sort("created_at:up"), None);
        assert_eq!(parse_sort(""), None);
    }

    #[test]
    fn problems_are_named_as_the_profile_names_them() {
        let Err(e) = native_query(&qp(&[("page_size", "5"), ("sort", "ki:asc")])) else {
            panic!("native names and a bad sort accepted");
        };
        assert_eq!(names(&e), vec!["page_size", "sort"]);
        let q = native_query(&qp(&[("per_page", "251"), ("state", "gone")])).unwrap();
        let e = profile_names(parse_list_query(&q).unwrap_err());
        assert_eq!(names(&e), vec!["per_page", "state"]);
        assert!(e.errors()[0].detail.starts_with("per_page must be"));
    }

    #[test]
    fn states_and_pin_types_in_any_case() {
        let mut errs = ValidationErrors::new();
        assert_eq!(
            state(&Some(json!("ACTIVE")), &mut errs),
            Some(SimState::Active)
        );
        assert_eq!(
            state(&Some(json!("retired")), &mut errs),
            Some(SimState::Retired)
        );
        assert_eq!(pin_type(&Some(json!("PIN2")), &mut errs), PinType::Pin2);
        assert_eq!(pin_type(&Some(json!("pin1")), &mut errs), PinType::Pin1);
        assert!(errs.is_empty());
        assert_eq!(state(&Some(json!("GONE")), &mut errs), None);
        pin_type(&Some(json!("PIN3")), &mut errs);
        pin_type(&None, &mut errs);
        assert_eq!(names(&errs), vec!["/state", "/pin_type", "/pin_type"]);
    }

    #[test]
    fn a_path_iccid_follows_our_rule() {
        // The seed's example ICCID has a wrong check digit.
        let seed = "89441234567890123456";
        let e = iccid_key(seed, LuhnPolicy::Enforce).unwrap_err();
        assert_eq!(names(&e), vec!["iccid"]);
        assert_eq!(
            iccid_key(seed, LuhnPolicy::Relaxed).unwrap(),
            SimKey::Iccid(seed.into())
        );
        assert!(iccid_key("8944", LuhnPolicy::Relaxed).is_err());
        assert!(iccid_key("not-an-iccid", LuhnPolicy::Relaxed).is_err());
    }

    #[test]
    fn a_reason_from_the_body_or_the_header() {
        let mut headers = HeaderMap::new();
        let mut errs = ValidationErrors::new();
        assert_eq!(
            reason(Some(json!("T-1")), &headers, Some("x"), &mut errs),
            Some("T-1".into())
        );
        assert_eq!(reason(None, &headers, None, &mut errs), None);
        assert!(errs.is_empty());
        assert_eq!(
            reason(None, &headers, Some("unblock a PIN"), &mut errs),
            None
        );
        assert_eq!(names(&errs), vec!["/reason"]);
        assert!(errs.errors()[0].detail.contains("X-Simvault-Reason"));
        headers.insert(REASON_HEADER, "T-2".parse().unwrap());
        let mut errs = ValidationErrors::new();
        assert_eq!(
            reason(None, &headers, Some("x"), &mut errs),
            Some("T-2".into())
        );
        assert_eq!(header_reason(&headers).unwrap(), Some("T-2".into()));
        headers.insert(REASON_HEADER, "".parse().unwrap());
        assert!(header_reason(&headers).is_err());
    }
}
