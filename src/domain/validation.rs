//! Collecting every problem with an input at once, each tied to where it is
//! (a JSON pointer into a body, or a query parameter name).

use std::fmt;

/// Where a bad value was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A JSON pointer (RFC 6901) into the request body, e.g. `/tags/3`.
    Pointer(String),
    /// A query-string parameter name.
    Parameter(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub location: Location,
    pub detail: String,
}

/// Every field error of one input. Never empty when returned as an error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ValidationErrors(Vec<FieldError>);

impl ValidationErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn pointer(&mut self, pointer: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError {
            location: Location::Pointer(pointer.into()),
            detail: detail.into(),
        });
    }

    pub fn parameter(&mut self, name: impl Into<String>, detail: impl Into<String>) {
        self.0.push(FieldError {
            location: Location::Parameter(name.into()),
            detail: detail.into(),
        });
    }

    /// Adds every error of `other`, after these.
    pub fn append(&mut self, other: ValidationErrors) {
        self.0.extend(other.0);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn errors(&self) -> &[FieldError] {
        &self.0
    }

    /// `Ok(value)` when nothing was recorded, else every recorded error.
    pub fn finish<T>(self, value: T) -> Result<T, ValidationErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }

    /// The same errors with the query parameter `from` called `to` (a profile's own name for
    /// a native parameter), in the location and where the detail begins with the name.
    pub fn rename_parameter(mut self, from: &str, to: &str) -> Self {
        for e in &mut self.0 {
            if matches!(&e.location, Location::Parameter(p) if p == from) {
                e.location = Location::Parameter(to.to_owned());
                if let Some(rest) = e.detail.strip_prefix(from) {
                    e.detail = format!("{to}{rest}");
                }
            }
        }
        self
    }

    /// The same errors with the body member `from` (a JSON pointer) called `to`, and the
    /// pointers into it with it (a profile's own name for a native field), in the detail too
    /// where it begins with the member's name.
    pub fn rename_pointer(mut self, from: &str, to: &str) -> Self {
        let (from_name, to_name) = (from.trim_start_matches('/'), to.trim_start_matches('/'));
        for e in &mut self.0 {
            if let Location::Pointer(p) = &mut e.location
                && let Some(rest) = p.strip_prefix(from)
                && (rest.is_empty() || rest.starts_with('/'))
            {
                *p = format!("{to}{rest}");
                if let Some(rest) = e.detail.strip_prefix(from_name) {
                    e.detail = format!("{to_name}{rest}");
                }
            }
        }
        self
    }

    /// A single-error set naming a query parameter.
    pub fn single_parameter(name: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.parameter(name, detail);
        e
    }

    /// A single-error set, for inputs with one thing to check.
    pub fn single_pointer(pointer: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.pointer(pointer, detail);
        e
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} invalid field(s)", self.0.len())
    }
}

impl std::error::Error for ValidationErrors {}

/// Escapes one reference token of a JSON pointer (RFC 6901 §3).
pub fn pointer_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// Longest reason (ticket text) accepted.
pub const MAX_REASON_CHARS: usize = 500;

/// A reason (why, usually a ticket) as recorded: trimmed, 1–500 printable characters; `Err`
/// holds the rule to report.
pub fn reason(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty()
        || text.chars().count() > MAX_REASON_CHARS
        || text.chars().any(char::is_control)
    {
        return Err(format!(
            "reason must be 1 to {MAX_REASON_CHARS} printable characters"
        ));
    }
    Ok(text.to_owned())
}

/// Exactly `2 * N` hexadecimal digits (either case) as bytes.
pub fn hex_array<const N: usize>(s: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (s.len() == 2 * N && hex::decode_to_slice(s, &mut out).is_ok()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_renamed_in_location_and_detail() {
        let mut e = ValidationErrors::new();
        e.parameter("state", "state must be one of inventory, active");
        e.parameter("page", "page must be at least 1");
        e.pointer("/state", "state is required");
        let e = e.rename_parameter("state", "status");
        let got: Vec<_> = e
            .errors()
            .iter()
            .map(|f| (f.location.clone(), f.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    Location::Parameter("status".into()),
                    "status must be one of inventory, active"
                ),
                (
                    Location::Parameter("page".into()),
                    "page must be at least 1"
                ),
                (Location::Pointer("/state".into()), "state is required"),
            ]
        );
    }

    #[test]
    fn a_member_renamed_with_the_pointers_into_it() {
        let mut e = ValidationErrors::new();
        e.pointer("/metadata", "metadata must have at most 50 keys");
        e.pointer("/metadata/a", "bad");
        e.pointer("/metadata_x", "other");
        let e = e.rename_pointer("/metadata", "/sim_metadata");
        assert_eq!(
            e.errors()[0].detail,
            "sim_metadata must have at most 50 keys"
        );
        assert_eq!(e.errors()[1].detail, "bad");
        let got: Vec<_> = e.errors().iter().map(|f| f.location.clone()).collect();
        assert_eq!(
            got,
            vec![
                Location::Pointer("/sim_metadata".into()),
                Location::Pointer("/sim_metadata/a".into()),
                Location::Pointer("/metadata_x".into()),
            ]
        );
    }
}
