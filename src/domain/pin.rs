//! PIN reset and PUK unblock, behaving like the card: the attempt counter is decremented
//! before the comparison and restored on success; at zero no comparison is made at all.
//! Pairs are fixed: PIN1 is unblocked with PUK1, PIN2 with PUK2.
//!
//! Pure: the caller loads the SIM (locked), the stored value, and writes back what
//! [`attempt`] decided, in one transaction.

use std::str::FromStr;

use subtle::ConstantTimeEq;

use super::audit::AuditOutcome;
use super::{RetryCounters, SecretField, SecretValue};

/// Which PIN of the card.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinType {
    Pin1,
    Pin2,
}

impl PinType {
    pub fn as_str(self) -> &'static str {
        match self {
            PinType::Pin1 => "pin1",
            PinType::Pin2 => "pin2",
        }
    }

    pub fn pin(self) -> SecretField {
        match self {
            PinType::Pin1 => SecretField::Pin1,
            PinType::Pin2 => SecretField::Pin2,
        }
    }

    /// The PUK that unblocks this PIN.
    pub fn puk(self) -> SecretField {
        match self {
            PinType::Pin1 => SecretField::Puk1,
            PinType::Pin2 => SecretField::Puk2,
        }
    }
}

impl FromStr for PinType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "pin1" => Ok(PinType::Pin1),
            "pin2" => Ok(PinType::Pin2),
            _ => Err(()),
        }
    }
}

/// What the caller presents: the current PIN (reset) or the PUK (unblock).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    Pin,
    Puk,
}

/// What an attempt came to. Counters are the ones left after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The new PIN is set; the PIN counter (and, for an unblock, the PUK counter) restored.
    /// `remaining` counts the presented secret's attempts: the PIN's for a reset, the PUK's
    /// for an unblock.
    Success {
        remaining: i64,
    },
    WrongPin {
        remaining: i64,
    },
    /// `remaining == 0` means the PUK, and so the SIM, is now permanently blocked.
    WrongPuk {
        remaining: i64,
    },
    /// The PIN counter is exhausted: no comparison was made.
    PinBlocked,
    /// The PUK counter is exhausted: no comparison was made.
    PukBlocked,
}

impl Verdict {
    /// The audit outcome.
    pub fn outcome(self) -> AuditOutcome {
        match self {
            Verdict::Success { .. } => AuditOutcome::Success,
            Verdict::WrongPin { .. } => AuditOutcome::WrongPin,
            Verdict::WrongPuk { .. } => AuditOutcome::WrongPuk,
            Verdict::PinBlocked | Verdict::PukBlocked => AuditOutcome::Blocked,
        }
    }

    /// Whether the attempt made a comparison (and so changed a counter).
    pub fn compared(self) -> bool {
        !matches!(self, Verdict::PinBlocked | Verdict::PukBlocked)
    }
}

/// Whether `field` (a PIN or PUK) belongs to a pair whose PUK is exhausted: such a card is
/// dead, and no write may bring its PIN or PUK back.
pub fn blocked_for_good(counters: &RetryCounters, field: SecretField) -> bool {
    match field {
        SecretField::Pin1 | SecretField::Puk1 => counters.puk1 == Some(0),
        SecretField::Pin2 | SecretField::Puk2 => counters.puk2 == Some(0),
        _ => false,
    }
}

/// Compares a presented PIN or PUK with the stored one in constant time (for equal lengths;
/// the length of a 4–8 digit PIN is not a secret worth the complexity).
pub fn same(stored: &SecretValue, given: &SecretValue) -> bool {
    bool::from(stored.expose().as_bytes().ct_eq(given.expose().as_bytes()))
}

/// Decides one attempt against `counters` (updated in place) and `stored`, the value of the
/// PIN (for [`Proof::Pin`]) or PUK (for [`Proof::Puk`]) of `pin_type`'s pair. A PUK counter
/// at zero refuses both kinds of attempt: the SIM is permanently blocked.
pub fn attempt(
    counters: &mut RetryCounters,
    pin_type: PinType,
    proof: Proof,
    stored: &SecretValue,
    given: &SecretValue,
) -> Verdict {
    let (pin_max, puk_max) = (counters.pin_max, counters.puk_max);
    let (pin, puk) = match pin_type {
        PinType::Pin1 => (&mut counters.pin1, &mut counters.puk1),
        PinType::Pin2 => (&mut counters.pin2, &mut counters.puk2),
    };
    if *puk == Some(0) {
        return Verdict::PukBlocked;
    }
    match proof {
        Proof::Pin => {
            let left = pin.unwrap_or(pin_max);
            if left <= 0 {
                return Verdict::PinBlocked;
            }
            // Decrement first: whatever happens next, this attempt has been counted.
            *pin = Some(left - 1);
            if same(stored, given) {
                *pin = Some(pin_max);
                Verdict::Success { remaining: pin_max }
            } else {
                Verdict::WrongPin {
                    remaining: left - 1,
                }
            }
        }
        Proof::Puk => {
            let left = puk.unwrap_or(puk_max);
            *puk = Some(left - 1);
            if same(stored, given) {
                *puk = Some(puk_max);
                *pin = Some(pin_max);
                // The PUK is what an unblock spends: its attempts are the ones reported.
                Verdict::Success { remaining: puk_max }
            } else {
                Verdict::WrongPuk {
                    remaining: left - 1,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(field: SecretField, s: &str) -> SecretValue {
        field.parse(s).unwrap()
    }

    fn card() -> RetryCounters {
        let mut c = RetryCounters::default();
        for f in [
            SecretField::Pin1,
            SecretField::Puk1,
            SecretField::Pin2,
            SecretField::Puk2,
        ] {
            c.provisioned(f);
        }
        c
    }

    #[test]
    fn three_wrong_pins_block_the_pin_and_a_right_one_restores_the_counter() {
        let mut c = card();
        let stored = value(SecretField::Pin1, "1234");
        let wrong = value(SecretField::Pin1, "9999");
        let right = value(SecretField::Pin1, "1234");
        let go = |c: &mut RetryCounters, v: &SecretValue| {
            attempt(c, PinType::Pin1, Proof::Pin, &stored, v)
        };
        assert_eq!(go(&mut c, &wrong), Verdict::WrongPin { remaining: 2 });
        assert_eq!(go(&mut c, &right), Verdict::Success { remaining: 3 });
        assert_eq!(c.pin1, Some(3));
        for left in [2, 1, 0] {
            assert_eq!(go(&mut c, &wrong), Verdict::WrongPin { remaining: left });
        }
        // Blocked: even the right PIN is not compared.
        assert_eq!(go(&mut c, &right), Verdict::PinBlocked);
        assert_eq!(c.pin1, Some(0));
        assert_eq!(c.pin2, Some(3), "the other PIN is untouched");
    }

    #[test]
    fn the_puk_unblocks_and_ten_wrong_ones_block_for_good() {
        let mut c = card();
        c.pin1 = Some(0);
        let puk = value(SecretField::Puk1, "12345678");
        let wrong = value(SecretField::Puk1, "87654321");
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Puk, &puk, &wrong),
            Verdict::WrongPuk { remaining: 9 }
        );
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Puk, &puk, &puk),
            Verdict::Success { remaining: 10 }
        );
        assert_eq!((c.pin1, c.puk1), (Some(3), Some(10)));
        for left in (0..10).rev() {
            assert_eq!(
                attempt(&mut c, PinType::Pin1, Proof::Puk, &puk, &wrong),
                Verdict::WrongPuk { remaining: left }
            );
        }
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Puk, &puk, &puk),
            Verdict::PukBlocked
        );
        let pin = value(SecretField::Pin1, "1234");
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Pin, &pin, &pin),
            Verdict::PukBlocked
        );
        // PIN2's pair is separate.
        let puk2 = value(SecretField::Puk2, "11112222");
        assert_eq!(
            attempt(&mut c, PinType::Pin2, Proof::Puk, &puk2, &puk2),
            Verdict::Success { remaining: 10 }
        );
    }

    #[test]
    fn other_card_profiles_keep_their_maximums() {
        let mut c = RetryCounters {
            pin_max: 5,
            puk_max: 3,
            ..RetryCounters::default()
        };
        c.provisioned(SecretField::Pin1);
        c.provisioned(SecretField::Puk1);
        let pin = value(SecretField::Pin1, "123456");
        let wrong = value(SecretField::Pin1, "654321");
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Pin, &pin, &wrong),
            Verdict::WrongPin { remaining: 4 }
        );
        let puk = value(SecretField::Puk1, "12345678");
        assert_eq!(
            attempt(&mut c, PinType::Pin1, Proof::Puk, &puk, &puk),
            Verdict::Success { remaining: 3 }
        );
        assert_eq!((c.pin1, c.puk1), (Some(5), Some(3)));
    }

    #[test]
    fn comparison_is_exact() {
        let stored = value(SecretField::Pin1, "1234");
        assert!(same(&stored, &value(SecretField::Pin1, "1234")));
        assert!(!same(&stored, &value(SecretField::Pin1, "12345")));
        assert!(!same(&stored, &value(SecretField::Pin1, "1235")));
    }
}
