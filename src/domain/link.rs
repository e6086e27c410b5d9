//! Links: a SIM bound to a name (and optionally plans) by bulk provisioning.

use super::{SimId, TenantId, Timestamp};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    pub sim_id: SimId,
    /// `{name_prefix}_{counter}`, unique in the tenant.
    pub name: String,
    /// Plans activated on the link.
    pub plan_ids: Vec<uuid::Uuid>,
    /// The provisioning task that made it.
    pub task_id: Option<uuid::Uuid>,
    pub created_at: Timestamp,
}

/// A SIM's link as the SIM shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkRef {
    pub id: uuid::Uuid,
    pub name: String,
    pub plan_ids: Vec<uuid::Uuid>,
}

/// Longest link name prefix.
pub const MAX_PREFIX_CHARS: usize = 64;
/// Most SIMs (or rows) in one bulk task.
pub const MAX_BULK_ITEMS: usize = 100_000;

/// A link name prefix: 1–64 of `A–Z a–z 0–9 - _ .`, so names stay safe in URLs and files.
pub fn check_prefix(prefix: &str) -> Result<(), &'static str> {
    if prefix.is_empty() || prefix.chars().count() > MAX_PREFIX_CHARS {
        return Err("must be 1 to 64 characters");
    }
    if !prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err("may contain only letters, digits, '-', '_' and '.'");
    }
    Ok(())
}

/// The name of the link made for the `index`th SIM (from 0) of a request.
pub fn name(prefix: &str, counter_start: u64, index: u64) -> String {
    format!("{prefix}_{}", counter_start.saturating_add(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_count_from_the_start() {
        assert_eq!(name("fleet", 1, 0), "fleet_1");
        assert_eq!(name("fleet", 1, 2), "fleet_3");
        assert_eq!(name("x", 0, 0), "x_0");
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("fleet-2026.eu_A").is_ok());
        assert!(check_prefix("").is_err());
        assert!(check_prefix("a b").is_err());
        assert!(check_prefix("a/b").is_err());
        assert!(check_prefix(&"a".repeat(65)).is_err());
    }
}
