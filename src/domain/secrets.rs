//! SIM secrets: PIN1/PIN2, PUK1/PUK2, Ki, OPc and the eSIM activation code.
//!
//! Each value lives in zeroizing storage from the moment it is parsed until it is encrypted
//! or written to a response. `Debug` prints `[redacted]`; there is no `Display`. Validation
//! messages name the rule, never the value.

use std::fmt;
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

/// The secret fields of a SIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretField {
    Pin1,
    Pin2,
    Puk1,
    Puk2,
    Ki,
    Opc,
    ActivationCode,
}

impl SecretField {
    pub const ALL: [SecretField; 7] = [
        SecretField::Pin1,
        SecretField::Pin2,
        SecretField::Puk1,
        SecretField::Puk2,
        SecretField::Ki,
        SecretField::Opc,
        SecretField::ActivationCode,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SecretField::Pin1 => "pin1",
            SecretField::Pin2 => "pin2",
            SecretField::Puk1 => "puk1",
            SecretField::Puk2 => "puk2",
            SecretField::Ki => "ki",
            SecretField::Opc => "opc",
            SecretField::ActivationCode => "activation_code",
        }
    }

    /// Parses and validates a value for this field.
    pub fn parse(self, input: &str) -> Result<SecretValue, &'static str> {
        let ok = match self {
            SecretField::Pin1 | SecretField::Pin2 => {
                (4..=8).contains(&input.len()) && input.bytes().all(|b| b.is_ascii_digit())
            }
            SecretField::Puk1 | SecretField::Puk2 => {
                input.len() == 8 && input.bytes().all(|b| b.is_ascii_digit())
            }
            SecretField::Ki | SecretField::Opc => {
                input.len() == 32 && input.bytes().all(|b| b.is_ascii_hexdigit())
            }
            SecretField::ActivationCode => return parse_activation_code(input),
        };
        if !ok {
            return Err(match self {
                SecretField::Pin1 | SecretField::Pin2 => "a PIN is 4 to 8 digits",
                SecretField::Puk1 | SecretField::Puk2 => "a PUK is exactly 8 digits",
                _ => "a 128-bit key is 32 hexadecimal digits",
            });
        }
        let normalised = match self {
            SecretField::Ki | SecretField::Opc => Zeroizing::new(input.to_ascii_lowercase()),
            _ => Zeroizing::new(input.to_owned()),
        };
        Ok(SecretValue(SecretString::from(normalised.as_str())))
    }
}

impl FromStr for SecretField {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        SecretField::ALL
            .into_iter()
            .find(|f| f.as_str() == s)
            .ok_or(())
    }
}

/// A validated secret value in its canonical text form (Ki/OPc lower-case hex, activation
/// codes with the `LPA:` prefix). Zeroized on drop; never printed.
#[derive(Clone)]
pub struct SecretValue(SecretString);

impl SecretValue {
    /// The canonical text. Callers encrypt it or write it into a `no-store` response; nothing
    /// else may see it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// Rebuilds a value decrypted from storage (already validated when it was stored).
    pub fn from_stored(text: Zeroizing<String>) -> Self {
        SecretValue(SecretString::from(text.as_str()))
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// GSMA SGP.22 §4.1 activation code: `[LPA:]1$<SM-DP+ FQDN>$<Matching ID>[$<OID>[$1]]`.
fn parse_activation_code(input: &str) -> Result<SecretValue, &'static str> {
    const BAD: &str =
        "an activation code is LPA:1$<SM-DP+ address>$<matching ID>[$<SM-DP+ OID>[$1]]";
    let body = input.strip_prefix("LPA:").unwrap_or(input);
    let parts: Vec<&str> = body.split('$').collect();
    if !(3..=5).contains(&parts.len()) || parts[0] != "1" {
        return Err(BAD);
    }
    if !is_fqdn(parts[1]) {
        return Err("the SM-DP+ address of an activation code must be a domain name");
    }
    if !parts[2]
        .bytes()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase() || b == b'-')
    {
        return Err("the matching ID of an activation code uses only 0-9, A-Z and '-'");
    }
    if let Some(oid) = parts.get(3)
        && !oid.is_empty()
        && !is_oid(oid)
    {
        return Err("the 4th field of an activation code must be a dotted-decimal OID");
    }
    if let Some(flag) = parts.get(4)
        && *flag != "1"
    {
        return Err("the 5th field of an activation code, when present, must be 1");
    }
    let canonical = Zeroizing::new(format!("LPA:{body}"));
    Ok(SecretValue(SecretString::from(canonical.as_str())))
}

fn is_fqdn(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vectors() -> serde_json::Value {
        serde_json::from_str(include_str!("../../tests/vectors/identifiers.json")).unwrap()
    }

    #[test]
    fn published_activation_codes() {
        let v = vectors();
        for code in v["activation_codes_valid"].as_array().unwrap() {
            let code = code.as_str().unwrap();
            let parsed = SecretField::ActivationCode.parse(code).unwrap();
            assert_eq!(parsed.expose(), code, "{code}");
        }
        for code in v["activation_codes_invalid"].as_array().unwrap() {
            let code = code.as_str().unwrap();
            assert!(SecretField::ActivationCode.parse(code).is_err(), "{code}");
        }
        // Stored with the LPA: prefix even when given without it.
        let p = SecretField::ActivationCode
            .parse("1$SMDP.GSMA.COM$ABC-1")
            .unwrap();
        assert_eq!(p.expose(), "LPA:1$SMDP.GSMA.COM$ABC-1");
        assert!(
            SecretField::ActivationCode
                .parse("LPA:1$SMDP.GSMA.COM$abc")
                .is_err()
        );
        assert!(
            SecretField::ActivationCode
                .parse("LPA:1$SMDP.GSMA.COM$A$1.2$2")
                .is_err()
        );
    }

    #[test]
    fn pins_puks_and_keys() {
        assert!(SecretField::Pin1.parse("1234").is_ok());
        assert!(SecretField::Pin2.parse("12345678").is_ok());
        assert!(SecretField::Pin1.parse("123").is_err());
        assert!(SecretField::Pin1.parse("123456789").is_err());
        assert!(SecretField::Pin1.parse("12a4").is_err());
        assert!(SecretField::Puk1.parse("12345678").is_ok());
        assert!(SecretField::Puk2.parse("1234567").is_err());
        let ki = SecretField::Ki
            .parse("465B5CE8B199B49FAA5F0A2EE238A6BC")
            .unwrap();
        assert_eq!(ki.expose(), "465b5ce8b199b49faa5f0a2ee238a6bc");
        assert!(
            SecretField::Opc
                .parse("465b5ce8b199b49faa5f0a2ee238a6b")
                .is_err()
        );
        assert!(
            SecretField::Opc
                .parse("465b5ce8b199b49faa5f0a2ee238a6bg")
                .is_err()
        );
    }

    #[test]
    fn errors_and_debug_never_show_the_value() {
        let err = SecretField::Ki.parse("deadbeef").unwrap_err();
        assert!(!err.contains("deadbeef"));
        let v = SecretField::Pin1.parse("987654").unwrap();
        assert_eq!(format!("{v:?}"), "[redacted]");
        assert!(!format!("{:?}", Some(v)).contains("987654"));
    }

    #[test]
    fn field_names_round_trip() {
        for f in SecretField::ALL {
            assert_eq!(f.as_str().parse::<SecretField>(), Ok(f));
        }
    }
}

/// A SIM's retry counters, like the card's: remaining attempts per PIN/PUK (`None` until that
/// PIN/PUK is set) and the maxima of its card profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryCounters {
    pub pin_max: i64,
    pub puk_max: i64,
    pub pin1: Option<i64>,
    pub pin2: Option<i64>,
    pub puk1: Option<i64>,
    pub puk2: Option<i64>,
}

impl Default for RetryCounters {
    fn default() -> Self {
        Self {
            pin_max: 3,
            puk_max: 10,
            pin1: None,
            pin2: None,
            puk1: None,
            puk2: None,
        }
    }
}

impl RetryCounters {
    fn slot(&mut self, field: SecretField) -> Option<(&mut Option<i64>, i64)> {
        let (pin_max, puk_max) = (self.pin_max, self.puk_max);
        match field {
            SecretField::Pin1 => Some((&mut self.pin1, pin_max)),
            SecretField::Pin2 => Some((&mut self.pin2, pin_max)),
            SecretField::Puk1 => Some((&mut self.puk1, puk_max)),
            SecretField::Puk2 => Some((&mut self.puk2, puk_max)),
            _ => None,
        }
    }

    /// A newly provisioned PIN or PUK starts with every attempt available.
    pub fn provisioned(&mut self, field: SecretField) {
        if let Some((slot, max)) = self.slot(field) {
            *slot = Some(max);
        }
    }

    pub fn removed(&mut self, field: SecretField) {
        if let Some((slot, _)) = self.slot(field) {
            *slot = None;
        }
    }

    /// Attempts left for a PIN or PUK (`None` when it is not set or not a PIN/PUK).
    pub fn remaining(&self, field: SecretField) -> Option<i64> {
        match field {
            SecretField::Pin1 => self.pin1,
            SecretField::Pin2 => self.pin2,
            SecretField::Puk1 => self.puk1,
            SecretField::Puk2 => self.puk2,
            _ => None,
        }
    }

    /// `(name, remaining)` for each PIN/PUK that is set.
    pub fn status(&self) -> Vec<(&'static str, i64)> {
        [
            ("pin1", self.pin1),
            ("pin2", self.pin2),
            ("puk1", self.puk1),
            ("puk2", self.puk2),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }
}
