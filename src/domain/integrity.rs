//! The kinds of authenticated rows, and the failure of one's check. The vault keys and checks
//! the MACs; every layer can name what failed without reaching the vault.

/// The kinds of authenticated rows; each has its own subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A registered client-certificate identity: identity → tenant, roles, validity, revocation.
    ClientIdentity,
    /// A SIM's binding to its id, ICCID and tenant, its state, PIN/PUK counters and SQN.
    Sim,
    /// A tenant KEK version's status.
    TenantKey,
    /// A webhook subscription's target and events.
    Webhook,
    /// A link's binding to its SIM and plans.
    Link,
}

impl Purpose {
    /// Every kind, in declaration order.
    pub const ALL: [Purpose; 5] = [
        Purpose::ClientIdentity,
        Purpose::Sim,
        Purpose::TenantKey,
        Purpose::Webhook,
        Purpose::Link,
    ];

    /// Names the kind of row in logs, metrics and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ClientIdentity => "client_identity",
            Purpose::Sim => "sim",
            Purpose::TenantKey => "tenant_key",
            Purpose::Webhook => "webhook",
            Purpose::Link => "link",
        }
    }
}

/// A stored row that failed its check (a MAC missing or not verifying): which kind, and the
/// row's id (never its content), for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("integrity check failed for {} {row}", .purpose.as_str())]
pub struct IntegrityFailure {
    pub purpose: Purpose,
    pub row: String,
}
