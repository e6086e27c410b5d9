//! A SIM body whose secrets sit beside its other fields (`{"iccid": …, "ki": …, "pin1": …}`)
//! rather than in a `secrets` object: the provisioning body of the API profiles. It reads into
//! the same [`SimFields`] as the native body, so it gives the same [`SimInput`] under the same
//! rules; only where problems are reported differs (`/ki`, not `/secrets/ki`). Secret values
//! go straight into zeroizing storage, never through a `serde_json::Value`.

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde_json::Value;

use super::{FIELDS, SimFields, SimInput};
use crate::domain::secret_input::{SecretInput, SecretsInput};
use crate::domain::secrets::SecretField;
use crate::domain::{LuhnPolicy, ValidationErrors};

/// The fields a flat body may carry: the native ones (but `secrets`), and each secret field
/// by its own name.
const FLAT_FIELDS: &[&str] = &[
    "iccid",
    "imsi",
    "msisdn",
    "imei",
    "eid",
    "sim_type",
    "vendor",
    "tags",
    "group_id",
    "device_id",
    "compatibility_zones",
    "carrier_status",
    "communication_plan",
    "rate_plan",
    "mno_integration_id",
    "metadata",
    "pin_max",
    "puk_max",
    "amf",
    "sqn",
    "ind_bitlen",
    "pin1",
    "pin2",
    "puk1",
    "puk2",
    "ki",
    "opc",
    "activation_code",
];

/// A flat SIM body as read; [`FlatSimFields::finish`] gives the input.
pub struct FlatSimFields(SimFields);

impl FlatSimFields {
    /// The input, or every problem of the body (secrets reported at the top level).
    pub fn finish(self, luhn: LuhnPolicy) -> Result<SimInput, ValidationErrors> {
        self.0.finish(luhn)
    }
}

impl<'de> Deserialize<'de> for FlatSimFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = FlatSimFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a SIM object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FlatSimFields, A::Error> {
                use de::Error as _;
                let mut out = SimFields {
                    flat_secrets: true,
                    ..SimFields::default()
                };
                let mut secrets = SecretsInput::default();
                let mut any_secret = false;
                let mut seen_secrets: Vec<SecretField> = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if let Ok(field) = key.parse::<SecretField>() {
                        if seen_secrets.contains(&field) {
                            return Err(A::Error::duplicate_field(field.as_str()));
                        }
                        seen_secrets.push(field);
                        // Straight into zeroizing storage, never through a `Value`.
                        secrets.push(field, map.next_value::<SecretInput>()?);
                        any_secret = true;
                        continue;
                    }
                    let Some(at) = FIELDS.iter().position(|f| *f == key && *f != "secrets") else {
                        return Err(A::Error::unknown_field(&key, FLAT_FIELDS));
                    };
                    if out.seen & (1 << at) != 0 {
                        return Err(A::Error::duplicate_field(FIELDS[at]));
                    }
                    out.seen |= 1 << at;
                    let value = map.next_value::<Value>()?;
                    out.read(at, value);
                }
                if any_secret {
                    out.secrets = Some(secrets);
                }
                Ok(FlatSimFields(out))
            }
        }
        d.deserialize_map(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Location;

    fn parse(text: &str) -> Result<SimInput, ValidationErrors> {
        let fields: FlatSimFields =
            serde_json::from_str(text).map_err(|e| crate::domain::fields::data_error(&e, ""))?;
        fields.finish(LuhnPolicy::Relaxed)
    }

    #[test]
    fn secrets_beside_the_fields_are_the_native_secrets() {
        let input = parse(
            r#"{"iccid": "89441234567890123456", "imsi": "234150123456789",
                "msisdn": "447123456789", "vendor": "GEMALTO", "pin1": "1234", "pin2": "5678",
                "puk1": "12345678", "puk2": "87654321",
                "ki": "000102030405060708090a0b0c0d0e0f", "opc": "00112233445566778899AABBCCDDEEFF"}"#,
        )
        .unwrap();
        assert_eq!(input.iccid.as_str(), "89441234567890123456");
        assert_eq!(input.vendor.as_deref(), Some("GEMALTO"));
        let fields: Vec<_> = input.secrets.iter().map(|(f, _)| *f).collect();
        assert_eq!(
            fields,
            vec![
                SecretField::Pin1,
                SecretField::Pin2,
                SecretField::Puk1,
                SecretField::Puk2,
                SecretField::Ki,
                SecretField::Opc
            ]
        );
        let native = SimInput::parse(
            br#"{"iccid": "89441234567890123456", "secrets": {"ki": "000102030405060708090a0b0c0d0e0f"}}"#,
            LuhnPolicy::Relaxed,
        )
        .unwrap();
        let ki = |i: &SimInput| {
            i.secrets
                .iter()
                .find(|(f, _)| *f == SecretField::Ki)
                .and_then(|(_, v)| v.as_ref().map(|v| v.expose().to_owned()))
        };
        assert_eq!(ki(&input), ki(&native));
    }

    #[test]
    fn problems_are_reported_at_the_top_level_without_values() {
        let e = parse(r#"{"iccid": "12", "pin1": "12", "ki": "zz-secret-zz"}"#).unwrap_err();
        let pointers: Vec<_> = e
            .errors()
            .iter()
            .map(|e| match &e.location {
                Location::Pointer(p) => p.as_str(),
                Location::Parameter(p) => p.as_str(),
            })
            .collect();
        assert_eq!(pointers, vec!["/iccid", "/pin1", "/ki"]);
        assert!(!format!("{e}").contains("zz-secret-zz"));
        assert!(!format!("{e:?}").contains("zz-secret-zz"));
    }

    #[test]
    fn a_secrets_object_and_unknown_fields_are_refused() {
        let e = parse(r#"{"iccid": "89441234567890123456", "secrets": {}}"#).unwrap_err();
        assert_eq!(e.errors()[0].location, Location::Pointer("/secrets".into()));
        assert!(parse(r#"{"iccid": "89441234567890123456", "bogus": 1}"#).is_err());
        assert!(parse(r#"{"iccid": "89441234567890123456", "ki": null, "ki": null}"#).is_err());
    }
}
