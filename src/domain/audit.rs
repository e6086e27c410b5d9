//! The values the audit log, a SIM's state history and a webhook's deliveries are read as.

/// One record of a tenant's audit chain as stored: the canonical record text that the chain
/// hashes, the search columns beside it, and its link in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub tenant_id: String,
    pub seq: i64,
    pub id: String,
    pub occurred_at: i64,
    pub action: String,
    pub outcome: String,
    pub subject: String,
    pub sim_id: Option<String>,
    pub iccid: Option<String>,
    pub record: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Which records a reviewer asks for. Every filter is optional and they combine with AND.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The acting principal's subject.
    pub actor: Option<String>,
    pub action: Option<String>,
    /// A SIM's id or ICCID.
    pub sim: Option<String>,
    pub outcome: Option<String>,
    /// From this time on (microseconds, inclusive).
    pub since: Option<i64>,
    /// Before this time (microseconds, exclusive).
    pub until: Option<i64>,
}

/// One state change of a SIM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub id: String,
    pub tenant_id: String,
    pub sim_id: String,
    pub from_state: String,
    pub to_state: String,
    pub reason: Option<String>,
    pub actor: String,
    pub auth_method: String,
    pub occurred_at: i64,
}

/// A delivery as its webhook's owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}
