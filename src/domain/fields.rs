//! Reading input fields (JSON values) into domain values, recording every problem at once with
//! its JSON pointer. Details name the rule that was broken and never echo the value.

use std::collections::BTreeSet;

use serde_json::Value;

use super::ValidationErrors;
use super::sim::check_label;
use super::validation::pointer_token;

/// Deserializes a present field as `Some(value)`, a JSON `null` included, so that with
/// `#[serde(default)]` a missing field (`None`) and an explicit null (`Some(Null)`) differ.
pub fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    use serde::Deserialize;
    Value::deserialize(d).map(Some)
}

/// A reader over one request body's fields.
pub struct Fields<'e> {
    pub errs: &'e mut ValidationErrors,
}

impl Fields<'_> {
    fn ptr(name: &str) -> String {
        format!("/{}", pointer_token(name))
    }

    /// A required string.
    pub fn required_str<'v>(&mut self, name: &str, v: &'v Option<Value>) -> Option<&'v str> {
        match v {
            None | Some(Value::Null) => {
                self.errs.pointer(Self::ptr(name), "this field is required");
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errs.pointer(Self::ptr(name), "must be a string");
                None
            }
        }
    }

    /// An optional string: missing or null is `None`.
    pub fn optional_str<'v>(&mut self, name: &str, v: &'v Option<Value>) -> Option<&'v str> {
        match v {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.errs
                    .pointer(Self::ptr(name), "must be a string or null");
                None
            }
        }
    }

    /// A required field parsed by `parse`.
    pub fn required<T, E: ToString>(
        &mut self,
        name: &str,
        v: &Option<Value>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.required_str(name, v)?;
        self.parse_with(name, s, parse)
    }

    /// An optional field parsed by `parse`; missing or null is `None`.
    pub fn optional<T, E: ToString>(
        &mut self,
        name: &str,
        v: &Option<Value>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        let s = self.optional_str(name, v)?;
        self.parse_with(name, s, parse)
    }

    /// For partial updates: missing is `None` (leave alone), null is `Some(None)` (clear).
    /// A field with an invalid value is reported and left alone.
    pub fn patch<T, E: ToString>(
        &mut self,
        name: &str,
        v: &Option<Value>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<Option<T>> {
        match v {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => self.parse_with(name, s, parse).map(Some),
            Some(_) => {
                self.errs
                    .pointer(Self::ptr(name), "must be a string or null");
                None
            }
        }
    }

    fn parse_with<T, E: ToString>(
        &mut self,
        name: &str,
        s: &str,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(s) {
            Ok(t) => Some(t),
            Err(e) => {
                self.errs.pointer(Self::ptr(name), e.to_string());
                None
            }
        }
    }

    /// A list of labels (tags, zones): an array of at most `max` strings, each 1–64
    /// printable characters. Duplicates collapse. Missing or null is `None`.
    pub fn labels(
        &mut self,
        name: &str,
        v: &Option<Value>,
        max: usize,
    ) -> Option<BTreeSet<String>> {
        let items = match v {
            None | Some(Value::Null) => return None,
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.errs
                    .pointer(Self::ptr(name), "must be an array of strings");
                return None;
            }
        };
        let mut ok = true;
        if items.len() > max {
            self.errs
                .pointer(Self::ptr(name), format!("at most {max} items"));
            ok = false;
        }
        let mut set = BTreeSet::new();
        for (i, item) in items.iter().enumerate() {
            let at = format!("{}/{i}", Self::ptr(name));
            match item {
                Value::String(s) => match check_label(s, "each item") {
                    Ok(()) => {
                        set.insert(s.clone());
                    }
                    Err(e) => {
                        self.errs.pointer(at, e);
                        ok = false;
                    }
                },
                _ => {
                    self.errs.pointer(at, "must be a string");
                    ok = false;
                }
            }
        }
        ok.then_some(set)
    }

    /// A JSON object checked by `check`. Missing or null is `None`.
    pub fn object(
        &mut self,
        name: &str,
        v: &Option<Value>,
        check: impl FnOnce(&Value) -> Result<(), String>,
    ) -> Option<serde_json::Map<String, Value>> {
        match v {
            None | Some(Value::Null) => None,
            Some(value) => match check(value) {
                Ok(()) => value.as_object().cloned(),
                Err(e) => {
                    self.errs.pointer(Self::ptr(name), e);
                    None
                }
            },
        }
    }
}

/// The data limit given: missing `None`, `null` `Some(None)`.
pub fn data_limit(
    v: &Option<Value>,
    errs: &mut ValidationErrors,
) -> Option<Option<super::usage::DataAmount>> {
    match v {
        None => None,
        Some(Value::Null) => Some(None),
        Some(v) => match super::usage::DataAmount::parse(v) {
            Ok(d) => Some(Some(d)),
            Err(e) => {
                errs.pointer("/data_limit", e);
                None
            }
        },
    }
}

/// A label (vendor, group or device id) as a parse function.
pub fn label(what: &'static str) -> impl Fn(&str) -> Result<String, String> {
    move |s| check_label(s, what).map(|()| s.to_owned())
}

/// A serde data error of the object at `prefix` (a JSON pointer) as a validation error: the
/// unknown field, if that is what it is, and nothing else of serde's message (it may quote a
/// value).
pub fn data_error(e: &serde_json::Error, prefix: &str) -> ValidationErrors {
    // serde names an unknown field as "unknown field `name`, expected …" (or ", there are no
    // fields"). The name is the client's and may itself hold backticks, so it ends at the last
    // of these suffixes (the expected names after it are ours), not at its first backtick.
    let msg = e.to_string();
    let field = msg.strip_prefix("unknown field `").and_then(|rest| {
        ["`, expected ", "`, there are no fields"]
            .iter()
            .filter_map(|end| rest.rfind(end))
            .max()
            .map(|at| &rest[..at])
    });
    match field {
        Some(name) => ValidationErrors::single_pointer(
            format!("{prefix}/{}", pointer_token(name)),
            "unknown field",
        ),
        None => ValidationErrors::single_pointer(
            prefix,
            "must be a JSON object of the documented fields",
        ),
    }
}

#[cfg(test)]
mod data_error_tests {
    use super::*;
    use crate::domain::validation::Location;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        iccid: Option<String>,
    }

    fn pointer_of(json: &str) -> String {
        let e = serde_json::from_str::<Body>(json).unwrap_err();
        match &data_error(&e, "/sims/0").errors()[0].location {
            Location::Pointer(p) => p.clone(),
            Location::Parameter(p) => panic!("parameter {p}"),
        }
    }

    #[test]
    fn the_unknown_field_is_named_whole() {
        assert_eq!(pointer_of(r#"{"colour": 1}"#), "/sims/0/colour");
        // Backticks and serde's own phrases inside the client's name do not cut it short.
        assert_eq!(pointer_of(r#"{"a`b": 1}"#), "/sims/0/a`b");
        assert_eq!(
            pointer_of(r#"{"x`, expected y/z": 1}"#),
            "/sims/0/x`, expected y~1z"
        );
        // Not an unknown field: the object as a whole, and nothing of serde's message.
        assert_eq!(pointer_of(r#"{"iccid": 5}"#), "/sims/0");
    }
}
