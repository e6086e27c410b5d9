//! Row integrity: MACs over the stored rows that decide who may do what, or which secret
//! belongs to which card, so that a database writer without the keys can change none of them
//! unnoticed (storage is untrusted, as in Vault's barrier model).
//!
//! The integrity key is the random 256-bit key inside the database's root-key check blob,
//! which only the root key opens (a file key or an HSM alike: the HSM stays the root, and a
//! root-key rotation re-wraps the same key). Each kind of row gets its own subkey through
//! HKDF-SHA256 with its own purpose label, and a MAC is HMAC-SHA256 under that subkey over
//! the row's identity and content, each part length-prefixed so no two rows encode alike.
//!
//! Must never: accept a row whose MAC does not verify, compare MACs in variable time, or
//! expose the key.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::{Key, VaultError};

pub use crate::domain::integrity::{IntegrityFailure, Purpose, canonical_json};

/// The subkey table's order and the HKDF labels: the vault's side of a [`Purpose`].
trait Subkey {
    fn index(self) -> usize;
    fn label(self) -> &'static [u8];
}

impl Subkey for Purpose {
    fn index(self) -> usize {
        self as usize
    }

    /// The HKDF info label; never change one (every stored MAC of that kind would fail).
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::ClientIdentity => b"simvault/v1/row-mac/client-identity",
            Purpose::Sim => b"simvault/v1/row-mac/sim",
            Purpose::TenantKey => b"simvault/v1/row-mac/tenant-key",
            Purpose::Webhook => b"simvault/v1/row-mac/webhook",
            Purpose::Link => b"simvault/v1/row-mac/link",
            Purpose::Task => b"simvault/v1/row-mac/task",
            Purpose::TaskItem => b"simvault/v1/row-mac/task-item",
            Purpose::ConsoleSession => b"simvault/v1/row-mac/console-session",
            Purpose::ConsoleTicket => b"simvault/v1/row-mac/console-ticket",
            Purpose::ConsoleOidcLogin => b"simvault/v1/row-mac/console-oidc-login",
        }
    }
}

/// The derived row-MAC subkeys.
pub struct IntegrityKey {
    /// HMAC keys by [`Subkey::index`], zero-padded to SHA-256's block size (which is how
    /// HMAC pads a shorter key anyway), so that keying HMAC cannot fail.
    subkeys: Vec<Zeroizing<[u8; 64]>>,
}

impl std::fmt::Debug for IntegrityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IntegrityKey([redacted])")
    }
}

/// The MAC of a row: 32 bytes.
pub type RowMac = [u8; 32];

impl IntegrityKey {
    /// Derives every purpose's subkey from the integrity key.
    pub fn derive(ikm: &Key) -> Result<Self, VaultError> {
        let hk = hkdf::Hkdf::<Sha256>::new(Some(b"simvault/v1/row-integrity"), ikm.as_ref());
        let mut subkeys = Vec::with_capacity(Purpose::ALL.len());
        for purpose in Purpose::ALL {
            debug_assert_eq!(purpose.index(), subkeys.len());
            let mut okm = Zeroizing::new([0u8; 64]);
            hk.expand(purpose.label(), &mut okm[..32])
                .map_err(|_| VaultError::Integrity("the integrity key"))?;
            subkeys.push(okm);
        }
        Ok(Self { subkeys })
    }

    fn hmac(&self, purpose: Purpose, parts: &[&[u8]]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new((&*self.subkeys[purpose.index()]).into());
        mac.update(&(parts.len() as u32).to_be_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// The MAC of a row of kind `purpose` whose identity and content are `parts`, in a fixed
    /// order. Optional values should be encoded so that `None` and `Some("")` differ
    /// (see [`opt`]).
    pub fn mac(&self, purpose: Purpose, parts: &[&[u8]]) -> RowMac {
        self.hmac(purpose, parts).finalize().into_bytes().into()
    }

    /// Checks a stored MAC in constant time. A missing or wrong-length MAC fails.
    pub fn verify(
        &self,
        purpose: Purpose,
        parts: &[&[u8]],
        stored: Option<&[u8]>,
    ) -> Result<(), VaultError> {
        let stored = stored.ok_or(VaultError::Integrity(purpose.as_str()))?;
        self.hmac(purpose, parts)
            .verify_slice(stored)
            .map_err(|_| VaultError::Integrity(purpose.as_str()))
    }
}

/// A row's identity and content, part by part, in the order its MAC covers them (never
/// reorder a kind's parts: every stored MAC of that kind would fail).
#[derive(Debug, Default)]
pub struct RowParts(Vec<Vec<u8>>);

impl RowParts {
    pub fn text(mut self, value: &str) -> Self {
        self.0.push(value.as_bytes().to_vec());
        self
    }

    pub fn opt_text(mut self, value: Option<&str>) -> Self {
        self.0.push(opt(value));
        self
    }

    pub fn int(mut self, value: i64) -> Self {
        self.0.push(value.to_be_bytes().to_vec());
        self
    }

    pub fn opt_int(mut self, value: Option<i64>) -> Self {
        self.0.push(opt_int(value));
        self
    }

    pub fn bytes(mut self, value: &[u8]) -> Self {
        self.0.push(value.to_vec());
        self
    }

    /// Optional bytes, `None` and `Some(b"")` apart.
    pub fn opt_bytes(mut self, value: Option<&[u8]>) -> Self {
        self.0.push(match value {
            None => vec![0],
            Some(v) => [&[1u8][..], v].concat(),
        });
        self
    }

    /// A JSON value as its canonical text ([`canonical_json`]).
    pub fn json(self, value: &serde_json::Value) -> Self {
        self.text(&canonical_json(value))
    }

    fn slices(&self) -> Vec<&[u8]> {
        self.0.iter().map(Vec::as_slice).collect()
    }
}

impl IntegrityKey {
    /// [`IntegrityKey::mac`] over [`RowParts`].
    pub fn mac_row(&self, purpose: Purpose, parts: &RowParts) -> RowMac {
        self.mac(purpose, &parts.slices())
    }

    /// [`IntegrityKey::verify`] over [`RowParts`], naming the row (`row`: its id) on failure.
    pub fn check_row(
        &self,
        purpose: Purpose,
        row: &str,
        parts: &RowParts,
        stored: Option<&[u8]>,
    ) -> Result<(), IntegrityFailure> {
        self.verify(purpose, &parts.slices(), stored)
            .map_err(|_| IntegrityFailure {
                purpose,
                row: row.to_owned(),
            })
    }
}

/// Encodes an optional text so that `None` and `Some("")` differ.
pub fn opt(value: Option<&str>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(v) => {
            let mut out = Vec::with_capacity(v.len() + 1);
            out.push(1);
            out.extend_from_slice(v.as_bytes());
            out
        }
    }
}

/// Encodes an optional integer so that `None` and every value differ.
pub fn opt_int(value: Option<i64>) -> Vec<u8> {
    match value {
        None => vec![0],
        Some(v) => {
            let mut out = vec![1];
            out.extend_from_slice(&v.to_be_bytes());
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vault::new_key;

    #[test]
    fn a_mac_verifies_only_for_its_own_row_kind_and_content() {
        let key = IntegrityKey::derive(&new_key().unwrap()).unwrap();
        let parts: [&[u8]; 3] = [b"urn:simvault:t1:p", b"t1", b"provisioner"];
        let mac = key.mac(Purpose::ClientIdentity, &parts);
        assert!(
            key.verify(Purpose::ClientIdentity, &parts, Some(&mac))
                .is_ok()
        );
        // Another kind of row with the same content.
        assert!(key.verify(Purpose::Sim, &parts, Some(&mac)).is_err());
        // Changed content, parts moved across a boundary, a missing part.
        let roles: [&[u8]; 3] = [b"urn:simvault:t1:p", b"t1", b"provisioner,admin"];
        assert!(
            key.verify(Purpose::ClientIdentity, &roles, Some(&mac))
                .is_err()
        );
        let shifted: [&[u8]; 3] = [b"urn:simvault:t1:pt", b"1", b"provisioner"];
        assert!(
            key.verify(Purpose::ClientIdentity, &shifted, Some(&mac))
                .is_err()
        );
        assert!(
            key.verify(Purpose::ClientIdentity, &parts[..2], Some(&mac))
                .is_err()
        );
        // No MAC, a truncated one, every flipped bit, another database's key.
        assert!(key.verify(Purpose::ClientIdentity, &parts, None).is_err());
        assert!(
            key.verify(Purpose::ClientIdentity, &parts, Some(&mac[..31]))
                .is_err()
        );
        for i in 0..256 {
            let mut bad = mac;
            bad[i / 8] ^= 1 << (i % 8);
            assert!(
                key.verify(Purpose::ClientIdentity, &parts, Some(&bad))
                    .is_err()
            );
        }
        let other = IntegrityKey::derive(&new_key().unwrap()).unwrap();
        assert!(
            other
                .verify(Purpose::ClientIdentity, &parts, Some(&mac))
                .is_err()
        );
    }

    #[test]
    fn row_parts_mac_like_their_slices_and_name_the_row_on_failure() {
        let key = IntegrityKey::derive(&new_key().unwrap()).unwrap();
        let parts = RowParts::default().text("a").opt_int(None).int(7);
        let mac = key.mac_row(Purpose::Sim, &parts);
        let slices: [&[u8]; 3] = [b"a", &opt_int(None), &7i64.to_be_bytes()];
        assert_eq!(mac, key.mac(Purpose::Sim, &slices));
        assert!(
            key.check_row(Purpose::Sim, "r1", &parts, Some(&mac))
                .is_ok()
        );
        let other = RowParts::default().text("a").opt_int(Some(0)).int(7);
        assert_eq!(
            key.check_row(Purpose::Sim, "r1", &other, Some(&mac)),
            Err(IntegrityFailure {
                purpose: Purpose::Sim,
                row: "r1".into()
            })
        );
        assert!(key.check_row(Purpose::Sim, "r1", &parts, None).is_err());
    }

    #[test]
    fn json_parts_mac_alike_whatever_the_member_order() {
        let key = IntegrityKey::derive(&new_key().unwrap()).unwrap();
        let built = serde_json::json!({"actor": {"tenant": "acme", "roles": ["operator"]}, "state": "active"});
        let stored: serde_json::Value = serde_json::from_str(
            r#"{"state": "active", "actor": {"roles": ["operator"], "tenant": "acme"}}"#,
        )
        .unwrap();
        let mac = key.mac_row(Purpose::Task, &RowParts::default().text("t1").json(&built));
        assert_eq!(
            mac,
            key.mac_row(Purpose::Task, &RowParts::default().text("t1").json(&stored))
        );
        let forged = serde_json::json!({"actor": {"tenant": "other", "roles": ["operator"]}, "state": "active"});
        assert!(
            key.check_row(
                Purpose::Task,
                "t1",
                &RowParts::default().text("t1").json(&forged),
                Some(&mac)
            )
            .is_err()
        );
        // A task's MAC is no item's.
        assert!(
            key.check_row(
                Purpose::TaskItem,
                "t1",
                &RowParts::default().text("t1").json(&built),
                Some(&mac)
            )
            .is_err()
        );
    }

    #[test]
    fn optional_values_encode_apart() {
        assert_ne!(
            RowParts::default().opt_bytes(None).0,
            RowParts::default().opt_bytes(Some(b"")).0
        );
        assert_ne!(opt(None), opt(Some("")));
        assert_ne!(opt_int(None), opt_int(Some(0)));
        assert_ne!(opt(Some("1")), opt_int(Some(1)));
    }

    #[test]
    fn derivation_is_deterministic() {
        let ikm = new_key().unwrap();
        let a = IntegrityKey::derive(&ikm).unwrap();
        let b = IntegrityKey::derive(&ikm).unwrap();
        assert_eq!(
            a.mac(Purpose::Webhook, &[b"x"]),
            b.mac(Purpose::Webhook, &[b"x"])
        );
        assert_ne!(
            a.mac(Purpose::Webhook, &[b"x"]),
            a.mac(Purpose::Link, &[b"x"])
        );
    }
}
