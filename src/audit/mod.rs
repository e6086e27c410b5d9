//! The audit log: one record per security-relevant request, allowed or denied, hash-chained
//! per tenant. Its room: the record and the chain (here), signed [`checkpoint`]s, the
//! group-commit [`writer`], and the [`export`] renderer shared by HTTP and the CLI.
//!
//! Must never: record a secret value, or a hash of one (a 4–8 digit PIN's hash is brute-forced
//! instantly) — records name fields only. A record is committed before the secret it
//! describes is returned or the change it describes is acknowledged (fail closed).

pub mod checkpoint;
pub mod export;
pub mod writer;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use checkpoint::{CheckpointKey, Signer};

use crate::domain::audit::{AuditRow, Checkpoint};

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
    /// Serialised as its name (`allowed`, `denied`, `wrong-puk`, …).
    /// Kept as the text written, whatever its wording: whether a hashed record is intact
    /// must not depend on this release knowing every outcome a later one may record.
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

/// Whether a row's searchable columns say what its hashed record says. The columns are
/// outside the hash (they exist for filtered queries), so a row whose columns were changed to
/// hide it from a filter is a broken chain, found by [`Verifier`], and is never shown as it
/// claims to be.
pub fn index_agrees(row: &AuditRow, record: &AuditRecord) -> bool {
    row.tenant_id == record.tenant
        && row.id == record.id
        && row.occurred_at == record.occurred_at
        && row.action == record.action
        && row.outcome == record.outcome
        && row.subject == record.subject
        && row.sim_id == record.sim_id
        && row.iccid == record.iccid
}

/// The hashed record of a row, if its text parses and its searchable columns agree with it.
pub fn parse_row(row: &AuditRow) -> Option<AuditRecord> {
    let record: AuditRecord = serde_json::from_str(&row.record).ok()?;
    index_agrees(row, &record).then_some(record)
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
    pub fn feed(&mut self, rows: &[AuditRow], checkpoints: &[Checkpoint]) -> bool {
        let mut marks = checkpoints.iter().peekable();
        for row in rows {
            if self.bad.is_some() {
                return false;
            }
            let mut ok = row.seq == self.expected_seq
                && row.prev_hash == self.prev_hash
                && row.hash == link(&row.prev_hash, &row.record)
                && parse_row(row).is_some();
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
    pub fn finish(self, head: Option<(i64, String)>, later: &[Checkpoint]) -> Verification {
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

    fn record(seq: i64, reason: &str) -> String {
        serde_json::to_string(&AuditRecord {
            id: format!("id{seq}"),
            occurred_at: seq,
            tenant: "t".into(),
            subject: "s".into(),
            roles: Vec::new(),
            auth_method: "mtls".into(),
            credential: None,
            client_addr: None,
            request_id: None,
            action: "a".into(),
            sim_id: Some(format!("sim{seq}")),
            iccid: Some(format!("89{seq}")),
            fields: Vec::new(),
            outcome: "allowed".into(),
            reason: Some(reason.into()),
            policy_ids: Vec::new(),
            remaining_attempts: None,
        })
        .unwrap()
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut prev = String::new();
        (1..=n)
            .map(|seq| {
                let record = record(seq, "r");
                let hash = link(&prev, &record);
                let row = AuditRow {
                    tenant_id: "t".into(),
                    seq,
                    id: format!("id{seq}"),
                    occurred_at: seq,
                    action: "a".into(),
                    outcome: "allowed".into(),
                    subject: "s".into(),
                    sim_id: Some(format!("sim{seq}")),
                    iccid: Some(format!("89{seq}")),
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

    fn checkpoint(rows: &[AuditRow], seq: i64) -> Checkpoint {
        let row = &rows[usize::try_from(seq - 1).unwrap()];
        signer().sign("t", seq, &row.hash, 1)
    }

    fn verify_with(
        rows: &[AuditRow],
        head: Option<(i64, String)>,
        marks: &[Checkpoint],
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
    fn an_outcome_this_release_does_not_know_still_verifies() {
        // A later release (another replica, or before a rollback) may record an outcome by a
        // name this one has no word for: the chain is intact all the same.
        let mut rows = chain(3);
        let mut later = serde_json::from_str::<serde_json::Value>(&rows[1].record).unwrap();
        later["outcome"] = "a-later-outcome".into();
        rows[1].record = later.to_string();
        rows[1].outcome = "a-later-outcome".into();
        let mut prev = String::new();
        for row in &mut rows {
            row.prev_hash = prev.clone();
            row.hash = link(&prev, &row.record);
            prev = row.hash.clone();
        }
        let v = verify(&rows, head_of(&rows));
        assert!(v.ok, "{v:?}");
        assert_eq!(v.checked, 3);
        // The index column must still agree with the hashed record.
        rows[1].outcome = "allowed".into();
        assert_eq!(verify(&rows, head_of(&rows)).first_bad_seq, Some(2));
    }

    #[test]
    fn edits_deletions_swaps_and_truncation_are_found() {
        let rows = chain(6);
        let head = head_of(&rows);
        let mut edited = rows.clone();
        edited[2].record = record(3, "changed");
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
        forged[5].record = record(6, "forged");
        forged[5].hash = link(&forged[5].prev_hash, &forged[5].record);
        assert_eq!(verify(&forged, head).first_bad_seq, Some(7));
    }

    #[test]
    fn a_changed_search_column_breaks_the_chain() {
        let rows = chain(4);
        let head = head_of(&rows);
        type Change = fn(&mut AuditRow);
        let changes: [(&str, Change); 8] = [
            ("action", |r| r.action = "other".into()),
            ("outcome", |r| r.outcome = "denied".into()),
            ("subject", |r| r.subject = "someone-else".into()),
            ("sim_id", |r| r.sim_id = None),
            ("iccid", |r| r.iccid = Some("8900".into())),
            ("occurred_at", |r| r.occurred_at += 1),
            ("id", |r| r.id = "another".into()),
            ("tenant_id", |r| r.tenant_id = "u".into()),
        ];
        for (column, change) in changes {
            let mut tampered = rows.clone();
            change(&mut tampered[2]);
            assert_eq!(
                verify(&tampered, head.clone()).first_bad_seq,
                Some(3),
                "{column}"
            );
            assert!(parse_row(&tampered[2]).is_none(), "{column}");
        }
        assert!(parse_row(&rows[2]).is_some());
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
        rewritten[1].record = record(2, "rewritten");
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
