//! SIM identifiers (ICCID, IMSI, MSISDN, IMEI, EID) as newtypes that validate on parse:
//! a value of one of these types that exists is valid.

use std::fmt;

/// Why an identifier was refused. The message never repeats the input, so it is safe to
/// return to a client even when the input was meant to be something else.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidIdentifier(pub &'static str);

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Luhn (ISO/IEC 7812-1) check over a digit string whose last digit is the check digit.
pub fn luhn_valid(digits: &str) -> bool {
    if !all_digits(digits) || digits.len() < 2 {
        return false;
    }
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Whether the decimal number written in `digits` is ≡ 1 (mod 97) (ISO 7064 MOD 97-10).
fn mod97_is_one(digits: &str) -> bool {
    let rem = digits
        .bytes()
        .fold(0u32, |acc, b| (acc * 10 + u32::from(b - b'0')) % 97);
    rem == 1
}

macro_rules! string_newtype {
    ($name:ident) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
            pub fn into_inner(self) -> String {
                self.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

/// How strictly an ICCID's check digit is enforced. Some vendor test batches carry no valid
/// Luhn digit; a deployment may relax that one rule, never the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LuhnPolicy {
    #[default]
    Enforce,
    Relaxed,
}

/// Integrated Circuit Card Identifier (ITU-T E.118): 18–22 digits, starting `89`, Luhn digit last.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Iccid(String);
string_newtype!(Iccid);

impl Iccid {
    pub fn parse(s: &str, luhn: LuhnPolicy) -> Result<Self, InvalidIdentifier> {
        if !all_digits(s) {
            return Err(InvalidIdentifier("ICCID must contain digits only"));
        }
        if !(18..=22).contains(&s.len()) {
            return Err(InvalidIdentifier("ICCID must be 18 to 22 digits long"));
        }
        if !s.starts_with("89") {
            return Err(InvalidIdentifier(
                "ICCID must start with 89 (telecommunication industry)",
            ));
        }
        if luhn == LuhnPolicy::Enforce && !luhn_valid(s) {
            return Err(InvalidIdentifier("ICCID check digit (Luhn) is wrong"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// International Mobile Subscriber Identity: 6–15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Imsi(String);
string_newtype!(Imsi);

impl Imsi {
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        if !all_digits(s) || !(6..=15).contains(&s.len()) {
            return Err(InvalidIdentifier("IMSI must be 6 to 15 digits"));
        }
        Ok(Self(s.to_owned()))
    }
}

/// MSISDN in E.164 form: an optional `+` then 1–15 digits. Stored as given.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Msisdn(String);
string_newtype!(Msisdn);

impl Msisdn {
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        let digits = s.strip_prefix('+').unwrap_or(s);
        if !all_digits(digits) || digits.len() > 15 {
            return Err(InvalidIdentifier(
                "MSISDN must be E.164: an optional + followed by 1 to 15 digits",
            ));
        }
        Ok(Self(s.to_owned()))
    }
}

/// IMEI (15 digits with a Luhn check digit) or IMEISV (16 digits, no check digit).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Imei(String);
string_newtype!(Imei);

impl Imei {
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        if !all_digits(s) {
            return Err(InvalidIdentifier("IMEI must contain digits only"));
        }
        match s.len() {
            15 if luhn_valid(s) => Ok(Self(s.to_owned())),
            15 => Err(InvalidIdentifier("IMEI check digit (Luhn) is wrong")),
            16 => Ok(Self(s.to_owned())),
            _ => Err(InvalidIdentifier(
                "IMEI must be 15 digits (IMEI) or 16 digits (IMEISV)",
            )),
        }
    }
}

/// eUICC identifier: 32 digits whose value is ≡ 1 (mod 97).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Eid(String);
string_newtype!(Eid);

impl Eid {
    pub fn parse(s: &str) -> Result<Self, InvalidIdentifier> {
        if !all_digits(s) || s.len() != 32 {
            return Err(InvalidIdentifier("EID must be exactly 32 digits"));
        }
        if !mod97_is_one(s) {
            return Err(InvalidIdentifier("EID check digits (mod 97) are wrong"));
        }
        Ok(Self(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vectors() -> serde_json::Value {
        let text = include_str!("../../tests/vectors/identifiers.json");
        serde_json::from_str(text).unwrap()
    }

    fn strings(v: &serde_json::Value, key: &str) -> Vec<String> {
        v[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }

    /// Appends the Luhn digit that makes `body` valid.
    fn with_luhn(body: &str) -> String {
        (0..10)
            .map(|d| format!("{body}{d}"))
            .find(|s| luhn_valid(s))
            .unwrap()
    }

    #[test]
    fn published_iccids_are_valid() {
        for iccid in strings(&vectors(), "iccid_valid_luhn") {
            assert!(Iccid::parse(&iccid, LuhnPolicy::Enforce).is_ok(), "{iccid}");
        }
    }

    #[test]
    fn iccid_rules() {
        let good = "8944501234567890124";
        assert!(Iccid::parse(good, LuhnPolicy::Enforce).is_ok());
        // wrong check digit (the API contract's example ICCID is one such)
        assert!(Iccid::parse("8944501234567890128", LuhnPolicy::Enforce).is_err());
        // ...which a relaxed deployment accepts, but never the other rules
        assert!(Iccid::parse("8944501234567890128", LuhnPolicy::Relaxed).is_ok());
        assert!(Iccid::parse("7944501234567890127", LuhnPolicy::Relaxed).is_err());
        assert!(Iccid::parse("89445012345678A0127", LuhnPolicy::Relaxed).is_err());
        // length bounds 18..=22
        assert!(Iccid::parse(&with_luhn("89445012345678901"), LuhnPolicy::Enforce).is_ok());
        assert!(Iccid::parse(&with_luhn("8944501234567890"), LuhnPolicy::Enforce).is_err());
        assert!(Iccid::parse(&with_luhn("894450123456789012345"), LuhnPolicy::Enforce).is_ok());
        assert!(Iccid::parse(&with_luhn("8944501234567890123456"), LuhnPolicy::Enforce).is_err());
        assert!(Iccid::parse("", LuhnPolicy::Enforce).is_err());
        assert!(Iccid::parse(" 8944501234567890124", LuhnPolicy::Enforce).is_err());
        assert!(Iccid::parse("+8944501234567890124", LuhnPolicy::Enforce).is_err());
    }

    #[test]
    fn imsi_rules() {
        assert!(Imsi::parse("234150123456789").is_ok());
        assert!(Imsi::parse("123456").is_ok());
        assert!(Imsi::parse("12345").is_err());
        assert!(Imsi::parse("1234567890123456").is_err());
        assert!(Imsi::parse("23415012345678a").is_err());
    }

    #[test]
    fn msisdn_rules() {
        assert!(Msisdn::parse("447123456789").is_ok());
        assert!(Msisdn::parse("+447123456789").is_ok());
        assert!(Msisdn::parse("1").is_ok());
        assert!(Msisdn::parse("+").is_err());
        assert!(Msisdn::parse("").is_err());
        assert!(Msisdn::parse("++44").is_err());
        assert!(Msisdn::parse("1234567890123456").is_err());
        assert!(Msisdn::parse("44 7123").is_err());
    }

    #[test]
    fn imei_rules() {
        assert!(Imei::parse("490154203237518").is_ok());
        assert!(Imei::parse("490154203237517").is_err());
        assert!(Imei::parse("4901542032375101").is_ok()); // IMEISV
        assert!(Imei::parse("49015420323751").is_err());
        assert!(Imei::parse("49015420323751x").is_err());
    }

    #[test]
    fn eid_rules() {
        for eid in strings(&vectors(), "eid_valid") {
            assert!(Eid::parse(&eid).is_ok(), "{eid}");
        }
        assert!(Eid::parse("89049032123451234512345678901234").is_err());
        assert!(Eid::parse("8904903212345123451234567890123").is_err());
        assert!(Eid::parse("8904903212345123451234567890123a").is_err());
    }

    proptest! {
        #[test]
        fn any_body_with_its_luhn_digit_is_a_valid_iccid(body in "89[0-9]{15,19}") {
            let iccid = with_luhn(&body);
            prop_assert!(Iccid::parse(&iccid, LuhnPolicy::Enforce).is_ok());
            // Changing the check digit to any other value breaks it.
            let last = iccid.as_bytes()[iccid.len() - 1];
            let other = char::from(b'0' + (last - b'0' + 1) % 10);
            let broken = format!("{}{}", &iccid[..iccid.len() - 1], other);
            prop_assert!(Iccid::parse(&broken, LuhnPolicy::Enforce).is_err());
        }

        #[test]
        fn eid_check_digits_computed_as_published_validate(body in "[0-9]{30}") {
            let rem = format!("{body}00").bytes().fold(0u32, |a, b| (a * 10 + u32::from(b - b'0')) % 97);
            let eid = format!("{body}{:02}", 98 - rem);
            prop_assert!(Eid::parse(&eid).is_ok());
        }

        #[test]
        fn parsers_never_panic(s in "\\PC*") {
            let _ = Iccid::parse(&s, LuhnPolicy::Enforce);
            let _ = Imsi::parse(&s);
            let _ = Msisdn::parse(&s);
            let _ = Imei::parse(&s);
            let _ = Eid::parse(&s);
        }
    }
}
