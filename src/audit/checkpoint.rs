//! Signed checkpoints: an Ed25519 signature over a chain's head. The hash chain alone shows
//! that a row was edited, removed or moved; it cannot show that someone with write access
//! rewrote the whole table (recomputing every hash) or cut its tail and moved the recorded
//! head back. A checkpoint can only be made with the signing key, which lives outside the
//! database, so such a rewrite disagrees with the signed hashes.
//!
//! ring's Ed25519 is used (already built for TLS); no hand-written signature code.

use std::path::Path;

use anyhow::{Context as _, bail};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::domain::audit::Checkpoint;

/// The text a checkpoint signs: every field of it, each on its own line, versioned.
pub fn message(chain: &str, seq: i64, hash: &str, signed_at: i64) -> String {
    format!("simvault-audit-checkpoint/v1\n{chain}\n{seq}\n{hash}\n{signed_at}\n")
}

/// A short, stable name for a public key: the first 16 hex digits of its SHA-256.
fn key_id(public: &[u8]) -> String {
    hex::encode(&Sha256::digest(public)[..8])
}

/// The signing key (the server's).
pub struct Signer {
    pair: Ed25519KeyPair,
    key_id: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// Reads a PKCS#8 PEM Ed25519 private key (as `simvault init` writes).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the audit signing key {} (made by `simvault init`)",
                path.display()
            )
        })?;
        let (_, doc) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: not a PEM file: {e}", path.display()))?;
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&doc.contents)
            .map_err(|e| anyhow::anyhow!("{}: not an Ed25519 private key: {e}", path.display()))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    /// A fresh key pair held only in memory (tests, benchmarks).
    pub fn generate() -> anyhow::Result<Self> {
        let doc = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("could not generate an Ed25519 key"))?;
        let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref())
            .map_err(|_| anyhow::anyhow!("could not load a generated Ed25519 key"))?;
        let key_id = key_id(pair.public_key().as_ref());
        Ok(Self { pair, key_id })
    }

    pub fn verifier(&self) -> CheckpointKey {
        CheckpointKey {
            public: self.pair.public_key().as_ref().to_vec(),
            key_id: self.key_id.clone(),
        }
    }

    /// A checkpoint over record `seq` (hash `hash`) of `chain`.
    pub fn sign(&self, chain: &str, seq: i64, hash: &str, signed_at: i64) -> Checkpoint {
        let sig = self
            .pair
            .sign(message(chain, seq, hash, signed_at).as_bytes());
        Checkpoint {
            tenant_id: chain.to_owned(),
            seq,
            hash: hash.to_owned(),
            signed_at,
            key_id: self.key_id.clone(),
            signature: hex::encode(sig.as_ref()),
        }
    }
}

/// The public key checkpoints are verified with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointKey {
    public: Vec<u8>,
    key_id: String,
}

impl CheckpointKey {
    /// Reads a SubjectPublicKeyInfo PEM Ed25519 public key (`audit-signing.pub.pem`).
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading the audit verifying key {}", path.display()))?;
        let (_, doc) = x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("{}: not a PEM file: {e}", path.display()))?;
        use x509_parser::prelude::FromDer as _;
        let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&doc.contents)
            .map_err(|e| anyhow::anyhow!("{}: not a public key: {e}", path.display()))?;
        let public = spki.subject_public_key.data.to_vec();
        if public.len() != 32 {
            bail!("{}: not an Ed25519 public key", path.display());
        }
        Ok(Self {
            key_id: key_id(&public),
            public,
        })
    }

    /// Whether `c` was signed by this key, over exactly its fields.
    pub fn verify(&self, c: &Checkpoint) -> bool {
        let Ok(sig) = hex::decode(&c.signature) else {
            return false;
        };
        c.key_id == self.key_id
            && UnparsedPublicKey::new(&ED25519, &self.public)
                .verify(
                    message(&c.tenant_id, c.seq, &c.hash, c.signed_at).as_bytes(),
                    &sig,
                )
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_field() {
        let dir = tempfile::tempdir().unwrap();
        let paths = crate::pki::KeyPaths::new(dir.path());
        std::fs::create_dir_all(&paths.dir).unwrap();
        crate::pki::init_audit_key(&paths).unwrap();
        let signer = Signer::from_file(&paths.audit_signing_key()).unwrap();
        let key = CheckpointKey::from_file(&paths.audit_verifying_key()).unwrap();
        assert_eq!(key, signer.verifier());
        let c = signer.sign("acme", 7, "ab12", 1000);
        assert!(key.verify(&c));
        for forged in [
            Checkpoint {
                seq: 8,
                ..c.clone()
            },
            Checkpoint {
                hash: "ab13".into(),
                ..c.clone()
            },
            Checkpoint {
                tenant_id: "other".into(),
                ..c.clone()
            },
            Checkpoint {
                signed_at: 1001,
                ..c.clone()
            },
            Checkpoint {
                signature: "00".into(),
                ..c.clone()
            },
        ] {
            assert!(!key.verify(&forged), "{forged:?}");
        }
        // Another key's signature is not accepted.
        let other_dir = tempfile::tempdir().unwrap();
        let other = crate::pki::KeyPaths::new(other_dir.path());
        std::fs::create_dir_all(&other.dir).unwrap();
        crate::pki::init_audit_key(&other).unwrap();
        let stranger = Signer::from_file(&other.audit_signing_key()).unwrap();
        assert!(!key.verify(&stranger.sign("acme", 7, "ab12", 1000)));
    }
}
