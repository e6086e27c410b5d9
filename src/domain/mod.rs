//! Pure domain code: identifiers, the SIM aggregate and its rules, tenants and plans.
//! No I/O and no dependency on any other module of this crate.

pub mod audit;
pub mod condition;
pub mod console;
pub mod eki;
pub mod esim;
pub mod event;
pub mod fields;
pub mod group;
pub mod identifiers;
pub mod identity;
pub mod ids;
pub mod integrity;
pub mod kdf;
pub mod keys;
pub mod link;
pub mod milenage;
pub mod names;
pub mod pin;
pub mod principal;
pub mod secret_input;
pub mod secrets;
pub mod sim;
pub mod sim_filters;
pub mod sim_id;
pub mod sim_input;
pub mod sim_key;
pub mod sim_patch;
pub mod sqn;
pub mod task;
pub mod tenant;
pub mod usage;
pub mod validation;
pub mod webhook;
pub mod webhook_format;
pub mod webhook_target;

pub use group::{Device, DeviceId, Group, GroupId};
pub use identifiers::{Eid, Iccid, Imei, Imsi, InvalidIdentifier, LuhnPolicy, Msisdn};
pub use ids::{TaskId, WebhookId};
pub use link::Link;
pub use principal::{AuthMethod, Origin, Principal, Role};
pub use secrets::{RetryCounters, SecretField, SecretValue};
pub use sim::{Sim, SimPatch, SimState, SimType};
pub use sim_id::SimId;
pub use sim_input::SimInput;
pub use sim_key::SimKey;
pub use task::{KeyVersion, Task};
pub use tenant::{Plan, TenantId};
pub use validation::{FieldError, Location, ValidationErrors};

/// Instants are microseconds since the Unix epoch, UTC: portable across both stores and
/// totally ordered.
pub type Timestamp = i64;

/// Formats a timestamp as RFC 3339 UTC with second precision (`2026-01-15T10:30:00Z`).
pub fn format_timestamp(ts: Timestamp) -> String {
    let nanos = i128::from(ts) * 1000;
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let dt = dt.replace_nanosecond(0).unwrap_or(dt);
    dt.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Parses an RFC 3339 instant into a timestamp.
pub fn parse_timestamp(s: &str) -> Option<Timestamp> {
    let dt = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1000).ok()
}

/// Parses an enumerated word given in any case (`ACTIVE`, `Active`, `active`): clients and the
/// API profiles send them so. Stored values are parsed strictly, with `FromStr` itself.
pub fn parse_word<T: std::str::FromStr>(s: &str) -> Result<T, T::Err> {
    s.to_ascii_lowercase().parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enumerated_words_in_any_case() {
        assert_eq!(parse_word::<SimState>("ACTIVE"), Ok(SimState::Active));
        assert_eq!(parse_word::<SimState>("Retired"), Ok(SimState::Retired));
        assert_eq!(parse_word::<SimType>("eSIM"), Ok(SimType::Esim));
        assert!(parse_word::<SimState>("activ").is_err());
        assert!("ACTIVE".parse::<SimState>().is_err());
    }

    #[test]
    fn timestamps_format_as_rfc3339_utc_seconds() {
        assert_eq!(format_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_timestamp(1_768_473_000_123_456),
            "2026-01-15T10:30:00Z"
        );
        assert_eq!(
            parse_timestamp("2026-01-15T10:30:00Z"),
            Some(1_768_473_000_000_000)
        );
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
