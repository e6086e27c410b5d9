//! A SIM's conditions: what the carrier's reports say about it, judged against the limit and
//! IMEI lock of the SIM and its group and the IMEI of its device.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use super::usage::DataAmount;
use super::{Imei, Sim};

/// Something wrong with a SIM that its owner wants to hear of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// The data consumed this period has reached the effective data limit.
    DataLimitExceeded,
    /// The SIM's group locks IMEIs and the SIM reports another device's IMEI.
    UnauthorizedImei,
}

impl Condition {
    pub const ALL: [Condition; 2] = [Condition::DataLimitExceeded, Condition::UnauthorizedImei];

    /// The name clients, filters, events and the stored row use.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::DataLimitExceeded => "data_limit_exceeded",
            Condition::UnauthorizedImei => "unauthorized_imei",
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Condition {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Condition::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or(())
    }
}

/// A SIM's conditions as a set (ordered, each at most once).
pub type Conditions = BTreeSet<Condition>;

/// What besides the SIM itself its conditions depend on: its group's data limit and IMEI lock
/// (none and off without a group), and its device, if it has one, with the device's IMEI.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Surroundings {
    pub group_data_limit: Option<DataAmount>,
    pub imei_lock: bool,
    /// `None`: no device; `Some(None)`: a device without an IMEI.
    pub device: Option<Option<Imei>>,
}

/// The limit that applies to `sim`: its own, else its group's.
pub fn effective_data_limit(sim: &Sim, around: &Surroundings) -> Option<DataAmount> {
    sim.data_limit.or(around.group_data_limit)
}

/// The conditions `sim` is in.
///
/// - `data_limit_exceeded`: the consumed data upstream reported is at least the effective limit.
/// - `unauthorized_imei`: the group locks IMEIs, and the IMEI the SIM is in differs from its
///   device's IMEI or, with no device, from the first IMEI ever reported for the SIM (a
///   device without an IMEI names none to compare with).
pub fn evaluate(sim: &Sim, around: &Surroundings) -> Conditions {
    let mut out = Conditions::new();
    if let (Some(used), Some(limit)) = (sim.consumed_data, effective_data_limit(sim, around))
        && used.bytes() >= limit.bytes()
    {
        out.insert(Condition::DataLimitExceeded);
    }
    let expected = match &around.device {
        Some(device) => device.as_ref(),
        None => sim.first_imei.as_ref(),
    };
    if around.imei_lock
        && let (Some(seen), Some(expected)) = (&sim.imei, expected)
        && seen != expected
    {
        out.insert(Condition::UnauthorizedImei);
    }
    out
}

/// The conditions of `now` that `before` did not have: those just entered.
pub fn entered(before: &Conditions, now: &Conditions) -> Vec<Condition> {
    now.difference(before).copied().collect()
}

/// The stored text of a set of conditions: their names, comma-separated.
pub fn to_text(c: &Conditions) -> String {
    c.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(",")
}

/// Reads [`to_text`]'s text back; `None` if it names a condition this release does not know.
pub fn from_text(s: &str) -> Option<Conditions> {
    s.split(',')
        .filter(|n| !n.is_empty())
        .map(|n| n.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::usage::DataUnit;

    fn mb(amount: f64) -> DataAmount {
        DataAmount {
            amount,
            unit: DataUnit::Mb,
        }
    }

    fn gb(amount: f64) -> DataAmount {
        DataAmount {
            amount,
            unit: DataUnit::Gb,
        }
    }

    fn imei(s: &str) -> Imei {
        Imei::parse(s).unwrap()
    }

    fn group(limit: Option<DataAmount>, lock: bool, device: Option<&str>) -> Surroundings {
        Surroundings {
            group_data_limit: limit,
            imei_lock: lock,
            device: device.map(|d| Some(imei(d))),
        }
    }

    fn sim() -> Sim {
        let iccid =
            crate::domain::Iccid::parse("8944500102198304826", crate::domain::LuhnPolicy::Relaxed)
                .unwrap();
        let (sim, _) = crate::domain::SimInput::new(iccid).into_sim(
            crate::domain::SimId::new(),
            &crate::domain::TenantId::parse("acme").unwrap(),
            0,
        );
        sim
    }

    #[test]
    fn the_limit_is_the_sim_s_own_else_its_group_s() {
        let mut s = sim();
        let g = group(Some(gb(1.0)), false, None);
        assert_eq!(effective_data_limit(&s, &Surroundings::default()), None);
        assert_eq!(effective_data_limit(&s, &g), Some(gb(1.0)));
        s.data_limit = Some(mb(500.0));
        assert_eq!(effective_data_limit(&s, &g), Some(mb(500.0)));
    }

    #[test]
    fn data_limit_exceeded_at_the_limit_in_decimal_units() {
        let mut s = sim();
        let g = group(Some(gb(1.0)), false, None);
        assert!(evaluate(&s, &g).is_empty(), "no usage reported");
        s.consumed_data = Some(mb(999.9));
        assert!(evaluate(&s, &g).is_empty());
        s.consumed_data = Some(mb(1000.0));
        assert_eq!(
            evaluate(&s, &g),
            Conditions::from([Condition::DataLimitExceeded])
        );
        s.data_limit = Some(gb(2.0));
        assert!(evaluate(&s, &g).is_empty(), "the SIM's own limit wins");
        s.data_limit = None;
        assert!(evaluate(&s, &Surroundings::default()).is_empty());
        // Mixed units compare exactly: 1.001 GB is 1,001 MB.
        s.consumed_data = Some(gb(1.001));
        s.data_limit = Some(mb(1001.0));
        assert!(!evaluate(&s, &g).is_empty());
        s.consumed_data = Some(mb(1000.999));
        assert!(evaluate(&s, &g).is_empty());
    }

    #[test]
    fn unauthorized_imei_only_under_a_lock() {
        let mut s = sim();
        let device = "490154203237518";
        s.imei = Some(imei("356938035643809"));
        assert!(evaluate(&s, &group(None, false, Some(device))).is_empty());
        assert_eq!(
            evaluate(&s, &group(None, true, Some(device))),
            Conditions::from([Condition::UnauthorizedImei])
        );
        s.imei = Some(imei(device));
        assert!(evaluate(&s, &group(None, true, Some(device))).is_empty());
        // No device: the first IMEI ever reported is the one allowed.
        s.first_imei = Some(imei("356938035643809"));
        assert_eq!(
            evaluate(&s, &group(None, true, None)),
            Conditions::from([Condition::UnauthorizedImei])
        );
        s.imei = Some(imei("356938035643809"));
        assert!(evaluate(&s, &group(None, true, None)).is_empty());
        // Nothing to compare with: no condition.
        s.first_imei = None;
        assert!(evaluate(&s, &group(None, true, None)).is_empty());
        s.imei = None;
        assert!(evaluate(&s, &group(None, true, Some(device))).is_empty());
        // A device without an IMEI names none: the first IMEI reported is not used instead.
        s.imei = Some(imei(device));
        s.first_imei = Some(imei("356938035643809"));
        let bare = Surroundings {
            imei_lock: true,
            device: Some(None),
            ..Surroundings::default()
        };
        assert!(evaluate(&s, &bare).is_empty());
    }

    #[test]
    fn names_and_stored_text_round_trip() {
        for c in Condition::ALL {
            assert_eq!(c.as_str().parse(), Ok(c));
        }
        let both = Conditions::from(Condition::ALL);
        assert_eq!(to_text(&both), "data_limit_exceeded,unauthorized_imei");
        assert_eq!(from_text(&to_text(&both)), Some(both.clone()));
        assert_eq!(from_text(""), Some(Conditions::new()));
        assert_eq!(from_text("data_limit_exceeded,exploded"), None);
        assert_eq!(
            entered(&Conditions::from([Condition::UnauthorizedImei]), &both),
            [Condition::DataLimitExceeded]
        );
    }
}
