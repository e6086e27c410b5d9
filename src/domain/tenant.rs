//! Tenants (the isolation boundary) and plans.

use std::fmt;

use super::Timestamp;
use super::sim::LabelSet;

/// A tenant's identifier: 1–63 characters of `a-z 0-9 - _`, starting with a letter or digit.
/// Tenants are named by operators (`simvault tenant create acme`) and carried in credentials.
/// Written and read exactly as its text (JSON, URLs, the database); reading validates it.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(into = "String", try_from = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let ok_len = (1..=63).contains(&s.len());
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        let ok_first = s
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if ok_len && ok_chars && ok_first {
            Ok(Self(s.to_owned()))
        } else {
            Err(
                "tenant must be 1 to 63 characters of a-z, 0-9, '-' and '_', starting with a letter or digit",
            )
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> Self {
        t.0
    }
}

impl From<&TenantId> for String {
    fn from(t: &TenantId) -> Self {
        t.0.clone()
    }
}

impl TryFrom<String> for TenantId {
    type Error = &'static str;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TenantId::parse(&s)
    }
}

impl std::str::FromStr for TenantId {
    type Err = &'static str;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::parse(s)
    }
}

impl AsRef<str> for TenantId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tenant of a test, by a name known to be valid.
#[cfg(test)]
pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// A plan groups compatibility zones; SIMs compatible with a plan carry one of its zones.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    pub name: String,
    pub compatibility_zones: LabelSet,
    pub created_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_names() {
        assert!(TenantId::parse("demo").is_ok());
        assert!(TenantId::parse("acme-2_b").is_ok());
        assert!(TenantId::parse("").is_err());
        assert!(TenantId::parse("-x").is_err());
        assert!(TenantId::parse("Acme").is_err());
        assert!(TenantId::parse("a/b").is_err());
        assert!(TenantId::parse(&"a".repeat(64)).is_err());
    }

    #[test]
    fn a_tenant_reads_and_writes_as_its_text_and_reading_validates() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"acme\"");
        assert_eq!(serde_json::from_str::<TenantId>("\"acme\"").unwrap(), t);
        assert!(serde_json::from_str::<TenantId>("\"Acme\"").is_err());
        assert_eq!("acme".parse::<TenantId>().unwrap(), t);
    }
}
