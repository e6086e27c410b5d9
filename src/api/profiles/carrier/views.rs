//! The carrier's resources: a SIM card and a SIM card group as its clients read them, and the
//! mapping of our lifecycle state and conditions onto its `status` words.
//!
//! Must never: show a secret value but in [`PinPukCodes`], which only carries what the secret
//! service revealed (and audited) for this caller.

use std::str::FromStr;

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::condition::{Condition, Conditions};
use crate::domain::sim_filters::StatusTerm;
use crate::domain::usage::{DataAmount, DataUnit};
use crate::domain::{Group, SecretField, SecretValue, Sim, SimState, format_timestamp};

/// A SIM card.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimCard {
    pub id: uuid::Uuid,
    /// Always `sim_card`.
    #[schema(example = "sim_card")]
    pub record_type: &'static str,
    pub status: SimCardStatus,
    /// `physical` or `esim`.
    #[serde(rename = "type")]
    #[schema(example = "physical")]
    pub sim_type: &'static str,
    #[schema(example = "8944501234567890124")]
    pub iccid: String,
    pub imsi: Option<String>,
    pub msisdn: Option<String>,
    pub sim_card_group_id: Option<String>,
    pub tags: Vec<String>,
    /// The SIM card's own data limit.
    pub data_limit: Option<Amount>,
    /// Data used this billing period, in MB (`"0"` before the carrier reports any).
    pub current_billing_period_consumed_data: Amount,
    /// Always `false`: state changes are synchronous.
    pub actions_in_progress: bool,
    pub eid: Option<String>,
    /// The IMEI the carrier last reported the SIM in.
    pub current_imei: Option<String>,
    /// Not kept per SIM: always `null` (an IMEI lock belongs to the SIM's group).
    pub authorized_imeis: Option<Vec<String>>,
    #[schema(example = "2026-01-15T10:30:00Z")]
    pub created_at: String,
    pub updated_at: String,
}

/// `status`: a carrier status word and why the card is in it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimCardStatus {
    /// `enabled`, `disabled`, `standby` or `data_limit_exceeded`.
    #[schema(example = "enabled")]
    pub value: &'static str,
    pub reason: Option<String>,
}

/// An amount of data as the carrier's clients expect it: a decimal string and its unit.
#[derive(Debug, Serialize, ToSchema)]
pub struct Amount {
    #[schema(example = "512.5")]
    pub amount: String,
    /// `MB` or `GB`.
    #[schema(example = "MB")]
    pub unit: &'static str,
}

/// `amount` as a decimal string, to the byte (a millionth of a MB): `512.5`, `1`, `0`.
pub fn decimal(amount: f64) -> String {
    let rounded = (amount * 1e6).round() / 1e6;
    format!("{}", rounded + 0.0)
}

impl From<DataAmount> for Amount {
    fn from(d: DataAmount) -> Self {
        Amount {
            amount: decimal(d.amount),
            unit: match d.unit {
                DataUnit::Mb => "MB",
                DataUnit::Gb => "GB",
            },
        }
    }
}

/// The carrier's status words a list can be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusWord {
    Enabled,
    Disabled,
    Standby,
    DataLimitExceeded,
    UnauthorizedImei,
}

impl StatusWord {
    pub const NAMES: &'static str =
        "enabled, disabled, standby, data_limit_exceeded, unauthorized_imei";

    /// The SIMs this word names, as a term of the native list's any-of filter.
    pub fn term(self) -> StatusTerm {
        let states = |s: &[SimState]| s.to_vec();
        match self {
            StatusWord::Standby => StatusTerm {
                states: states(&[SimState::Inventory]),
                ..StatusTerm::default()
            },
            StatusWord::Enabled => StatusTerm {
                states: states(&[SimState::Active]),
                without: vec![Condition::DataLimitExceeded],
                ..StatusTerm::default()
            },
            StatusWord::DataLimitExceeded => StatusTerm {
                states: states(&[SimState::Active]),
                with: vec![Condition::DataLimitExceeded],
                ..StatusTerm::default()
            },
            StatusWord::Disabled => StatusTerm {
                states: states(&[SimState::Suspended, SimState::Blocked, SimState::Retired]),
                ..StatusTerm::default()
            },
            StatusWord::UnauthorizedImei => StatusTerm {
                with: vec![Condition::UnauthorizedImei],
                ..StatusTerm::default()
            },
        }
    }
}

impl FromStr for StatusWord {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "enabled" => StatusWord::Enabled,
            "disabled" => StatusWord::Disabled,
            "standby" => StatusWord::Standby,
            "data_limit_exceeded" => StatusWord::DataLimitExceeded,
            "unauthorized_imei" => StatusWord::UnauthorizedImei,
            _ => return Err(()),
        })
    }
}

/// The status word shown for a SIM in `state` and `conditions`: `inventory` is `standby`;
/// `active` is `enabled`, or `data_limit_exceeded` while that condition holds; the other
/// states are `disabled`.
pub fn status_value(state: SimState, conditions: &Conditions) -> &'static str {
    match state {
        SimState::Inventory => "standby",
        SimState::Active if conditions.contains(&Condition::DataLimitExceeded) => {
            "data_limit_exceeded"
        }
        SimState::Active => "enabled",
        SimState::Suspended | SimState::Blocked | SimState::Retired => "disabled",
    }
}

/// The status shown for `sim`: its word ([`status_value`]), and why: a disabled card's reason
/// names its state and carries the state's own reason.
pub fn status(sim: &Sim) -> SimCardStatus {
    let value = status_value(sim.state, &sim.conditions);
    let reason = match value {
        "disabled" => Some(match &sim.state_reason {
            Some(why) => format!("{}: {why}", sim.state),
            None => sim.state.to_string(),
        }),
        "data_limit_exceeded" => {
            Some("the data used this billing period has reached the data limit".to_owned())
        }
        _ => sim.state_reason.clone(),
    };
    SimCardStatus { value, reason }
}

impl From<Sim> for SimCard {
    fn from(s: Sim) -> Self {
        SimCard {
            status: status(&s),
            id: s.id.into(),
            record_type: "sim_card",
            sim_type: s.sim_type.as_str(),
            iccid: s.iccid.into_inner(),
            imsi: s.imsi.map(|v| v.into_inner()),
            msisdn: s.msisdn.map(|v| v.into_inner()),
            sim_card_group_id: s.group_id,
            tags: s.tags.into_iter().collect(),
            data_limit: s.data_limit.map(Amount::from),
            current_billing_period_consumed_data: Amount {
                amount: decimal(s.consumed_data.map_or(0.0, DataAmount::megabytes)),
                unit: "MB",
            },
            actions_in_progress: false,
            eid: s.eid.map(|v| v.into_inner()),
            current_imei: s.imei.map(|v| v.into_inner()),
            authorized_imeis: None,
            created_at: format_timestamp(s.created_at),
            updated_at: format_timestamp(s.updated_at),
        }
    }
}

/// A SIM card group.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimCardGroup {
    pub id: uuid::Uuid,
    /// Always `sim_card_group`.
    #[schema(example = "sim_card_group")]
    pub record_type: &'static str,
    pub name: String,
    /// The data limit its SIM cards share.
    pub data_limit: Option<Amount>,
    /// Always `false`: a SIM is in no group unless one is given.
    pub default: bool,
    pub created_at: String,
    pub updated_at: String,
}

impl From<Group> for SimCardGroup {
    fn from(g: Group) -> Self {
        SimCardGroup {
            id: g.id.into(),
            record_type: "sim_card_group",
            name: g.name,
            data_limit: g.data_limit.map(Amount::from),
            default: false,
            created_at: format_timestamp(g.created_at),
            updated_at: format_timestamp(g.updated_at),
        }
    }
}

/// A SIM card as answered: with its group when asked (`null` when it is in none), and the
/// PIN/PUK codes this caller may read when asked.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimCardOut {
    #[serde(flatten)]
    pub card: SimCard,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<SimCardGroup>)]
    pub sim_card_group: Option<Option<SimCardGroup>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<PinPukDoc>)]
    pub pin_puk_codes: Option<PinPukCodes>,
}

/// `pin_puk_codes` (documentation): each code present only if this caller may read it, `null`
/// when it is not set.
#[derive(ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `PinPukCodes` writes it
pub struct PinPukDoc {
    pin1: Option<String>,
    pin2: Option<String>,
    puk1: Option<String>,
    puk2: Option<String>,
}

/// The PIN/PUK codes revealed for this caller: only those the secret service let through.
pub struct PinPukCodes(pub Vec<(SecretField, Option<SecretValue>)>);

impl std::fmt::Debug for PinPukCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(field, _)| field.as_str()))
            .finish()
    }
}

impl Serialize for PinPukCodes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field.as_str(), &value.as_ref().map(SecretValue::expose))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::parse_word;

    #[test]
    fn amounts_are_decimal_strings() {
        assert_eq!(decimal(512.5), "512.5");
        assert_eq!(decimal(1.0), "1");
        assert_eq!(decimal(0.0), "0");
        assert_eq!(decimal(1.001 * 1000.0), "1001");
        assert_eq!(decimal(1e12), "1000000000000");
        let a = Amount::from(DataAmount {
            amount: 1.5,
            unit: DataUnit::Gb,
        });
        assert_eq!((a.amount.as_str(), a.unit), ("1.5", "GB"));
    }

    #[test]
    fn status_words_in_any_case() {
        assert_eq!(parse_word::<StatusWord>("ENABLED"), Ok(StatusWord::Enabled));
        assert_eq!(
            parse_word::<StatusWord>("Data_Limit_Exceeded"),
            Ok(StatusWord::DataLimitExceeded)
        );
        assert!(parse_word::<StatusWord>("enabling").is_err());
    }

    /// Filtering by a shown word finds exactly the SIMs shown with it.
    #[test]
    fn the_filter_agrees_with_the_status_shown() {
        let combos: Vec<Conditions> = vec![
            Conditions::new(),
            [Condition::DataLimitExceeded].into_iter().collect(),
            [Condition::UnauthorizedImei].into_iter().collect(),
            Condition::ALL.into_iter().collect(),
        ];
        let shown = [
            ("enabled", StatusWord::Enabled),
            ("disabled", StatusWord::Disabled),
            ("standby", StatusWord::Standby),
            ("data_limit_exceeded", StatusWord::DataLimitExceeded),
        ];
        for state in SimState::ALL {
            for conditions in &combos {
                let value = status_value(state, conditions);
                for (word, w) in shown {
                    assert_eq!(
                        w.term().matches(state, conditions),
                        word == value,
                        "{state} {conditions:?} {word}"
                    );
                }
                assert_eq!(
                    StatusWord::UnauthorizedImei
                        .term()
                        .matches(state, conditions),
                    conditions.contains(&Condition::UnauthorizedImei)
                );
            }
        }
    }
}
