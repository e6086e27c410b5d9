//! The audit log: one record per security-relevant request, allowed or denied, hash-chained
//! per tenant.
//!
//! Must never: record a secret value, or a hash of one (a 4–8 digit PIN's hash is brute-forced
//! instantly) — records name fields only. A record is committed before the secret it
//! describes is returned or the change it describes is acknowledged (fail closed).

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::audit::AuditRow;

/// What one record says. Serialised in declaration order: that text is what is hashed.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: String,
    /// Microseconds since the Unix epoch.
    pub occurred_at: i64,
    pub tenant: String,
    pub subject: String,
    pub roles: Vec<String>,
    pub auth_method: String,
    /// Certificate fingerprint or token id.
    pub credential: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
    pub action: String,
    pub sim_id: Option<String>,
    pub iccid: Option<String>,
    /// Secret field names involved (never values).
    pub fields: Vec<String>,
    /// `allowed`, `denied`, `failed`, or an operation's own outcome (`wrong-puk`, …).
    pub outcome: String,
    pub reason: Option<String>,
    /// The policies that decided.
    pub policy_ids: Vec<String>,
}

/// The hash linking a record's canonical text to its predecessor's hash.
pub fn link(prev_hash: &str, record_text: &str) -> String {
    let mut h = Sha256::new();
    h.update(prev_hash.as_bytes());
    h.update(b"\n");
    h.update(record_text.as_bytes());
    hex::encode(h.finalize())
}

/// The result of checking a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub ok: bool,
    pub checked: i64,
    pub head_hash: Option<String>,
    /// The first sequence number at which the chain is broken.
    pub first_bad_seq: Option<i64>,
}

/// Walks a chain page by page (`rows` in sequence order), then compares its end with the
/// recorded head, so that edits, deletions, reorderings and a cut-off tail are all found.
#[derive(Debug, Default)]
pub struct Verifier {
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    bad: Option<i64>,
}

impl Verifier {
    pub fn new() -> Self {
        Self {
            expected_seq: 1,
            ..Self::default()
        }
    }

    /// Feeds the next rows; returns false once the chain is known to be broken.
    pub fn feed(&mut self, rows: &[AuditRow]) -> bool {
        for row in rows {
            if self.bad.is_some() {
                return false;
            }
            let ok = row.seq == self.expected_seq
                && row.prev_hash == self.prev_hash
                && row.hash == link(&row.prev_hash, &row.record);
            if !ok {
                self.bad = Some(self.expected_seq.min(row.seq));
                return false;
            }
            self.checked += 1;
            self.expected_seq += 1;
            self.prev_hash.clone_from(&row.hash);
        }
        self.bad.is_none()
    }

    /// The verdict, given the head the store recorded (`None`: no chain yet).
    pub fn finish(self, head: Option<(i64, String)>) -> Verification {
        let (head_seq, head_hash) = head.unwrap_or((0, String::new()));
        let bad = self.bad.or_else(|| {
            // Rows missing at the end (or a head pointing past the last row).
            (head_seq != self.checked || head_hash != self.prev_hash).then_some(self.checked + 1)
        });
        Verification {
            ok: bad.is_none(),
            checked: self.checked,
            head_hash: (!head_hash.is_empty()).then_some(head_hash),
            first_bad_seq: bad,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = String::new();
        (1..=n)
            .map(|seq| {
                let record = format!("{{\"n\":{seq}}}");
                let hash = link(&prev, &record);
                let row = AuditRow {
                    tenant_id: "t".into(),
                    seq,
                    id: format!("id{seq}"),
                    occurred_at: seq,
                    action: "a".into(),
                    outcome: "allowed".into(),
                    subject: "s".into(),
                    sim_id: None,
                    record,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn verify(rows: &[AuditRow], head: Option<(i64, String)>) -> Verification {
        let mut v = Verifier::new();
        v.feed(rows);
        v.finish(head)
    }

    fn head_of(rows: &[AuditRow]) -> Option<(i64, String)> {
        rows.last().map(|r| (r.seq, r.hash.clone()))
    }

    #[test]
    fn an_intact_chain_verifies() {
        let rows = chain(5);
        let v = verify(&rows, head_of(&rows));
        assert!(v.ok);
        assert_eq!(v.checked, 5);
        assert_eq!(v.first_bad_seq, None);
        assert!(verify(&[], None).ok);
    }

    #[test]
    fn edits_deletions_swaps_and_truncation_are_found() {
        let rows = chain(6);
        let head = head_of(&rows);
        let mut edited = rows.clone();
        edited[2].record = "{\"n\":99}".into();
        assert_eq!(verify(&edited, head.clone()).first_bad_seq, Some(3));
        let mut deleted = rows.clone();
        deleted.remove(3);
        assert_eq!(verify(&deleted, head.clone()).first_bad_seq, Some(4));
        let mut swapped = rows.clone();
        swapped.swap(1, 2);
        assert_eq!(verify(&swapped, head.clone()).first_bad_seq, Some(2));
        let truncated = &rows[..4];
        assert_eq!(verify(truncated, head.clone()).first_bad_seq, Some(5));
        // A rewritten tail with a recomputed chain still disagrees with the recorded head.
        let mut forged = rows.clone();
        forged[5].record = "{\"n\":7}".into();
        forged[5].hash = link(&forged[5].prev_hash, &forged[5].record);
        assert_eq!(verify(&forged, head).first_bad_seq, Some(7));
    }
}
