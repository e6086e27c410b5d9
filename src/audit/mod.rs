//! The audit log: one record per security-relevant request, allowed or denied, hash-chained
//! per tenant.
//!
//! Must never: record a secret value, or a hash of one (a 4–8 digit PIN's hash is brute-forced
//! instantly) — records name fields only. A record is committed before the secret it
//! describes is returned or the change it describes is acknowledged (fail closed).

pub mod checkpoint;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use checkpoint::{CheckpointKey, Signer};

use crate::store::audit::{AuditRow, CheckpointRow};

/// The chain of records not tied to a tenant: authentication failures, root key operations.
/// Not a valid tenant id, so no tenant can be named so.
pub const PLATFORM_CHAIN: &str = "_platform";

/// What one record says. Serialised in declaration order: that text is what is hashed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
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
    /// For a PIN or PUK attempt: the counter's value after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_attempts: Option<i64>,
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
    /// Signed checkpoints found valid and matching the chain.
    pub checkpoints: i64,
}

/// Walks a chain page by page (`rows` in sequence order, with the checkpoints over them),
/// then compares its end with the recorded head and any later checkpoint, so that edits,
/// deletions, reorderings, a cut-off tail and a rewritten table are all found.
#[derive(Debug)]
pub struct Verifier {
    key: CheckpointKey,
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    checkpoints: i64,
    bad: Option<i64>,
}

impl Verifier {
    pub fn new(key: CheckpointKey) -> Self {
        Self {
            key,
            expected_seq: 1,
            prev_hash: String::new(),
            checked: 0,
            checkpoints: 0,
            bad: None,
        }
    }

    /// How far the chain has been found intact.
    pub fn checked(&self) -> i64 {
        self.checked
    }

    /// Feeds the next rows and the checkpoints whose positions they cover; returns false once
    /// the chain is known to be broken.
    pub fn feed(&mut self, rows: &[AuditRow], checkpoints: &[CheckpointRow]) -> bool {
        let mut marks = checkpoints.iter().peekable();
        for row in rows {
            if self.bad.is_some() {
                return false;
            }
            let mut ok = row.seq == self.expected_seq
                && row.prev_hash == self.prev_hash
                && row.hash == link(&row.prev_hash, &row.record);
            while let Some(c) = marks.next_if(|c| c.seq <= row.seq) {
                // A checkpoint must be genuine and name exactly this record's hash.
                let genuine = c.seq == row.seq && self.key.verify(c) && c.hash == row.hash;
                ok &= genuine;
                self.checkpoints += i64::from(genuine);
            }
            if !ok {
                self.bad = Some(self.expected_seq.min(row.seq));
                return false;
            }
            self.checked += 1;
            self.expected_seq += 1;
            self.prev_hash.clone_from(&row.hash);
        }
        if marks.next().is_some() {
            // A checkpoint between these rows names a position none of them has.
            self.bad = Some(self.checked + 1);
        }
        self.bad.is_none()
    }

    /// The verdict, given the head the store recorded (`None`: no chain yet) and the
    /// checkpoints past the last record checked (any of them means records are missing).
    pub fn finish(self, head: Option<(i64, String)>, later: &[CheckpointRow]) -> Verification {
        let (head_seq, head_hash) = head.unwrap_or((0, String::new()));
        let bad = self.bad.or_else(|| {
            // Rows missing at the end (or a head pointing past the last row), or cut off
            // together with the head below a signed checkpoint.
            (head_seq != self.checked || head_hash != self.prev_hash || !later.is_empty())
                .then_some(self.checked + 1)
        });
        Verification {
            ok: bad.is_none(),
            checked: self.checked,
            head_hash: (!head_hash.is_empty()).then_some(head_hash),
            first_bad_seq: bad,
            checkpoints: self.checkpoints,
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
                    iccid: None,
                    record,
                    prev_hash: prev.clone(),
                    hash: hash.clone(),
                };
                prev = hash;
                row
            })
            .collect()
    }

    fn signer() -> &'static Signer {
        static SIGNER: std::sync::LazyLock<Signer> =
            std::sync::LazyLock::new(|| Signer::generate().unwrap());
        &SIGNER
    }

    fn checkpoint(rows: &[AuditRow], seq: i64) -> CheckpointRow {
        let row = &rows[usize::try_from(seq - 1).unwrap()];
        signer().sign("t", seq, &row.hash, 1)
    }

    fn verify_with(
        rows: &[AuditRow],
        head: Option<(i64, String)>,
        marks: &[CheckpointRow],
    ) -> Verification {
        let mut v = Verifier::new(signer().verifier());
        let last = rows.last().map_or(0, |r| r.seq);
        let (covered, later): (Vec<_>, Vec<_>) = marks.iter().cloned().partition(|c| c.seq <= last);
        v.feed(rows, &covered);
        v.finish(head, &later)
    }

    fn verify(rows: &[AuditRow], head: Option<(i64, String)>) -> Verification {
        verify_with(rows, head, &[])
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
        let marks = [checkpoint(&rows, 2), checkpoint(&rows, 5)];
        let v = verify_with(&rows, head_of(&rows), &marks);
        assert!(v.ok);
        assert_eq!(v.checkpoints, 2);
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

    /// What the recorded head cannot catch: the whole chain rewritten with its head, or its
    /// tail cut off together with the head. Signed checkpoints catch both.
    #[test]
    fn checkpoints_catch_rewrites_that_move_the_head() {
        let rows = chain(6);
        let marks = [checkpoint(&rows, 3), checkpoint(&rows, 6)];
        // Tail and head cut back to 4: the checkpoint at 6 shows records are missing.
        let cut = &rows[..4];
        let v = verify_with(cut, head_of(cut), &marks);
        assert!(!v.ok);
        assert_eq!(v.first_bad_seq, Some(5));
        // Record 2 rewritten and every later hash recomputed, head moved along.
        let mut rewritten = rows.clone();
        rewritten[1].record = "{\"n\":42}".into();
        for i in 1..rewritten.len() {
            rewritten[i].prev_hash = rewritten[i - 1].hash.clone();
            rewritten[i].hash = link(&rewritten[i].prev_hash, &rewritten[i].record);
        }
        assert_eq!(verify(&rewritten, head_of(&rewritten)).first_bad_seq, None);
        let v = verify_with(&rewritten, head_of(&rewritten), &marks);
        assert_eq!(v.first_bad_seq, Some(3));
        // A checkpoint signed by another key, or altered, is itself tampering.
        let stranger = Signer::generate().unwrap();
        let fake = stranger.sign("t", 3, &rows[2].hash, 1);
        assert_eq!(
            verify_with(&rows, head_of(&rows), &[fake]).first_bad_seq,
            Some(3)
        );
        let mut altered = checkpoint(&rows, 3);
        altered.signed_at += 1;
        assert_eq!(
            verify_with(&rows, head_of(&rows), &[altered]).first_bad_seq,
            Some(3)
        );
    }
}
