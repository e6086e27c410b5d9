//! Secret fields as sent (`{"ki": "…", "pin1": null, …}`): read straight from the JSON text
//! into zeroizing storage (never through a `serde_json::Value`), then validated field by field
//! with every problem reported at once.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use zeroize::Zeroizing;

use super::secrets::{SecretField, SecretValue};
use super::sim::SecretChanges;
use super::validation::{ValidationErrors, pointer_token};

/// One secret field as sent: a string, an explicit null, or something else (refused without
/// keeping or echoing it).
pub enum SecretInput {
    Value(SecretString),
    Null,
    WrongType,
}

/// Visits every JSON value that is not a map (or, with `seq`, not a sequence) as `$other`.
macro_rules! visit_others {
    ($out:ty, $other:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<$out, E> {
            Ok($other)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<$out, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok($other)
        }
    };
}

impl<'de> Deserialize<'de> for SecretInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SecretInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or null")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<SecretInput, E> {
                Ok(SecretInput::Value(SecretString::from(s)))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<SecretInput, E> {
                let s = Zeroizing::new(s);
                Ok(SecretInput::Value(SecretString::from(s.as_str())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretInput, E> {
                Ok(SecretInput::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<SecretInput, E> {
                Ok(SecretInput::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretInput, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(SecretInput::WrongType)
            }
            visit_others!(SecretInput, SecretInput::WrongType);
        }
        d.deserialize_any(V)
    }
}

/// A set of secret fields as sent, unknown names kept for the error report.
#[derive(Default)]
pub struct SecretsInput {
    fields: Vec<(SecretField, SecretInput)>,
    /// OP, accepted wherever OPc is; the service turns it into OPc (it is never stored).
    op: Option<SecretInput>,
    unknown: Vec<String>,
    not_an_object: bool,
}

impl fmt::Debug for SecretsInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretsInput")
            .field(
                "fields",
                &self
                    .fields
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl<'de> Deserialize<'de> for SecretsInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const NOT_AN_OBJECT: SecretsInput = SecretsInput {
            fields: Vec::new(),
            op: None,
            unknown: Vec::new(),
            not_an_object: true,
        };
        impl<'de> Visitor<'de> for V {
            type Value = SecretsInput;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of secret fields")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SecretsInput, A::Error> {
                let mut out = SecretsInput::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "op" {
                        out.op = Some(map.next_value::<SecretInput>()?);
                        continue;
                    }
                    match key.parse::<SecretField>() {
                        Ok(field) => {
                            let value = map.next_value::<SecretInput>()?;
                            out.fields.push((field, value));
                        }
                        Err(()) => {
                            map.next_value::<IgnoredAny>()?;
                            out.unknown.push(key);
                        }
                    }
                }
                Ok(out)
            }
            fn visit_unit<E: de::Error>(self) -> Result<SecretsInput, E> {
                Ok(SecretsInput::default())
            }
            fn visit_str<E: de::Error>(self, _: &str) -> Result<SecretsInput, E> {
                Ok(NOT_AN_OBJECT)
            }
            visit_others!(SecretsInput, NOT_AN_OBJECT);
        }
        d.deserialize_any(V)
    }
}

impl SecretsInput {
    /// Adds one field as sent: a secret that sits beside a body's other fields (the API
    /// profiles' flat provisioning bodies) rather than in a `secrets` object.
    pub fn push(&mut self, field: SecretField, input: SecretInput) {
        self.fields.push((field, input));
    }

    /// Validates every field, reporting problems under `prefix` (`/secrets` or ``). `null`
    /// removes a field when `allow_remove`, and is otherwise ignored. A valid `op` is handed
    /// back as given: turning it into OPc (with the Ki) is the service's rule.
    pub fn parse(
        self,
        prefix: &str,
        allow_remove: bool,
        errs: &mut ValidationErrors,
    ) -> (SecretChanges, Option<SecretValue>) {
        if self.not_an_object {
            errs.pointer(prefix, "must be an object of secret fields");
        }
        for name in &self.unknown {
            errs.pointer(
                format!("{prefix}/{}", pointer_token(name)),
                "unknown secret field; known: pin1, pin2, puk1, puk2, ki, opc, activation_code",
            );
        }
        let mut changes: SecretChanges = Vec::new();
        for (field, input) in self.fields {
            let at = format!("{prefix}/{}", field.as_str());
            if changes.iter().any(|(f, _)| *f == field) {
                errs.pointer(at, "given more than once");
                continue;
            }
            match input {
                SecretInput::Value(v) => match field.parse(v.expose_secret()) {
                    Ok(value) => changes.push((field, Some(value))),
                    Err(rule) => errs.pointer(at, rule),
                },
                SecretInput::Null if allow_remove => changes.push((field, None)),
                SecretInput::Null => {}
                SecretInput::WrongType => errs.pointer(at, "must be a string"),
            }
        }
        let Some(op) = self.op else {
            return (changes, None);
        };
        let at = format!("{prefix}/op");
        let op = match op {
            SecretInput::Value(v) => SecretField::Opc
                .parse(v.expose_secret())
                .map_err(|rule| errs.pointer(at.clone(), rule))
                .ok(),
            SecretInput::Null => None,
            SecretInput::WrongType => {
                errs.pointer(at.clone(), "must be a string");
                None
            }
        };
        if changes.iter().any(|(f, _)| *f == SecretField::Opc) {
            errs.pointer(at, "give op or opc, not both");
            return (changes, None);
        }
        (changes, op)
    }
}

/// Why an OP cannot be used: OPc is derived from OP and Ki.
pub const OP_NEEDS_KI: &str =
    "op needs ki in the same request: OPc is derived from both, and OP is never stored";

/// The Ki given among `changes`, if any.
pub fn given_ki(changes: &SecretChanges) -> Option<&SecretValue> {
    changes
        .iter()
        .find(|(f, _)| *f == SecretField::Ki)
        .and_then(|(_, v)| v.as_ref())
}
