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
