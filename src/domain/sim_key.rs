//! How a caller names a SIM.

use super::SimId;

/// How a caller names a SIM: by its UUID or by its ICCID.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SimKey {
    Id(SimId),
    Iccid(String),
}

impl SimKey {
    /// The SIM `raw` names, as a `{sim}` path segment does: a UUID or an ICCID (digits, at
    /// most 22). `None` when it names no SIM.
    pub fn parse(raw: &str) -> Option<SimKey> {
        if let Ok(id) = uuid::Uuid::parse_str(raw) {
            return Some(SimKey::Id(id.into()));
        }
        if !raw.is_empty() && raw.len() <= 22 && raw.bytes().all(|b| b.is_ascii_digit()) {
            return Some(SimKey::Iccid(raw.to_owned()));
        }
        None
    }
}

impl std::fmt::Display for SimKey {
    /// The text [`SimKey::parse`] reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SimKey::Id(id) => write!(f, "{id}"),
            SimKey::Iccid(iccid) => f.write_str(iccid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_reads_back_from_its_text() {
        let id = SimKey::Id(uuid::Uuid::from_u128(7).into());
        assert_eq!(SimKey::parse(&id.to_string()), Some(id));
        let iccid = SimKey::Iccid("8944501234567890128".into());
        assert_eq!(SimKey::parse(&iccid.to_string()), Some(iccid));
        for bad in ["", "89445x", "12345678901234567890123", "../etc"] {
            assert_eq!(SimKey::parse(bad), None, "{bad}");
        }
    }
}
