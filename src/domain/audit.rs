//! The values the audit log, a SIM's state history and a webhook's deliveries are read as.

use super::names::named_enum;

named_enum! {
    /// What came of a recorded request: the policy's answer, or how the operation ended.
    pub enum AuditOutcome ("audit outcome") {
        Allowed => "allowed",
        Denied => "denied",
        Completed => "completed",
        Failed => "failed",
        /// Refused before any check: too many attempts from this principal.
        RateLimited => "rate-limited",
        /// A PIN or PUK attempt: right.
        Success => "success",
        WrongPin => "wrong-pin",
        WrongPuk => "wrong-puk",
        /// A PIN or PUK attempt on an exhausted counter: nothing was compared.
        Blocked => "blocked",
        /// An AUTS whose MAC-S verified: the SQN was resynchronised.
        Resynchronised => "resynchronised",
        /// An AUTS whose MAC-S did not verify.
        ResyncFailed => "resync-failed",
        /// A PIN or PUK change refused: the SIM is retired.
        SimRetired => "sim-retired",
        /// A PIN or PUK change refused: there is no stored value to check against.
        NotStored => "not-stored",
    }
}

/// One record of a tenant's audit chain as stored: the canonical record text that the chain
/// hashes, the search columns beside it, and its link in the chain. Raw, unverified text
/// throughout (the outcome column too): the verifier compares these columns with the record
/// they index, so a changed column is a broken chain, reported, not a row that cannot be read.
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
    pub tenant_id: super::TenantId,
    pub sim_id: String,
    pub from_state: super::SimState,
    pub to_state: super::SimState,
    pub reason: Option<String>,
    pub actor: String,
    pub auth_method: String,
    pub occurred_at: i64,
}

named_enum! {
    /// Where a webhook delivery is.
    pub enum DeliveryStatus ("delivery status") {
        /// Not sent yet, or to be retried.
        Pending => "pending",
        Delivered => "delivered",
        /// Given up on.
        Failed => "failed",
    }
}

/// A delivery as its webhook's owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRow {
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: i64,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub delivered_at: Option<i64>,
}

/// A signed statement that a chain's record `seq` had hash `hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub tenant_id: String,
    pub seq: i64,
    pub hash: String,
    pub signed_at: i64,
    pub key_id: String,
    pub signature: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The audit chain hashes records as serialised: an outcome's text must never change.
    #[test]
    fn outcomes_serialise_as_the_text_the_chain_hashes() {
        let texts: Vec<String> = AuditOutcome::ALL
            .iter()
            .map(|o| serde_json::to_string(o).unwrap())
            .collect();
        assert_eq!(
            texts,
            [
                "\"allowed\"",
                "\"denied\"",
                "\"completed\"",
                "\"failed\"",
                "\"rate-limited\"",
                "\"success\"",
                "\"wrong-pin\"",
                "\"wrong-puk\"",
                "\"blocked\"",
                "\"resynchronised\"",
                "\"resync-failed\"",
                "\"sim-retired\"",
                "\"not-stored\"",
            ]
        );
        for o in AuditOutcome::ALL {
            assert_eq!(AuditOutcome::parse(o.as_str()), Ok(*o));
        }
        for text in &texts {
            let o: AuditOutcome = serde_json::from_str(text).unwrap();
            assert_eq!(&serde_json::to_string(&o).unwrap(), text);
        }
        assert_eq!(
            AuditOutcome::parse("maybe"),
            Err(crate::domain::names::UnknownName {
                what: "audit outcome",
                value: "maybe".into()
            })
        );
        assert!(serde_json::from_str::<AuditOutcome>("\"maybe\"").is_err());
    }
}
