//! The vault: the key hierarchy and envelope encryption of SIM secrets.
//!
//! ```text
//! root key ──wraps──► tenant KEK v1..vN ──wraps──► per-SIM DEK ──encrypts──► each secret field
//! ```
//! AES-256-GCM throughout with random 96-bit nonces. Every blob is `nonce ‖ ciphertext ‖ tag`
//! and its associated data names exactly where it belongs, so a blob copied to another SIM,
//! field, tenant or key version fails to decrypt (an integrity error, never another value).
//!
//! Must never: log, format or return key material or plaintext; hold plaintext or keys outside
//! zeroizing buffers; fall back to anything weaker when a check fails.

pub mod integrity;
pub mod keyring;
pub mod pkcs11;
pub mod root;

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::domain::{SecretField, TenantId};

pub use integrity::{IntegrityFailure, IntegrityKey, Purpose, RowParts};
pub use keyring::{Keyring, RootCheck};
pub use root::{RootKey, RootKeySource};

/// Format version of every blob written by this code.
pub const FORMAT: i64 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// A 256-bit key in zeroizing storage.
pub type Key = Zeroizing<[u8; 32]>;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VaultError {
    /// A blob failed authentication: tampered, truncated, or not where it belongs.
    #[error("integrity check failed for {0}")]
    Integrity(&'static str),
    #[error("unsupported key format {0}")]
    Format(i64),
    #[error("randomness unavailable")]
    Random,
    /// The root key's hardware module cannot be reached now.
    #[error("the root key is unavailable")]
    Unavailable,
}

/// Fresh key material from the operating system's CSPRNG.
pub fn new_key() -> Result<Key, VaultError> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng
        .try_fill_bytes(key.as_mut())
        .map_err(|_| VaultError::Random)?;
    Ok(key)
}

/// AES-256-GCM seal with a random nonce: `nonce ‖ ciphertext ‖ tag`.
pub fn seal(key: &[u8; 32], plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, VaultError> {
    let cipher = Aes256Gcm::new(key.into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut nonce)
        .map_err(|_| VaultError::Random)?;
    let mut body = Vec::with_capacity(plaintext.len() + TAG_LEN);
    body.extend_from_slice(plaintext);
    cipher
        .encrypt_in_place(&Nonce::from(nonce), aad, &mut body)
        .map_err(|_| VaultError::Random)?;
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens a blob made by [`seal`]; the plaintext comes back in zeroizing storage.
pub fn open(
    key: &[u8; 32],
    blob: &[u8],
    aad: &[u8],
    what: &'static str,
) -> Result<Zeroizing<Vec<u8>>, VaultError> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(VaultError::Integrity(what));
    }
    let (nonce, body) = blob.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| VaultError::Integrity(what))?;
    let mut buf = Zeroizing::new(body.to_vec());
    Aes256Gcm::new(key.into())
        .decrypt_in_place(&Nonce::from(nonce), aad, &mut *buf)
        .map_err(|_| VaultError::Integrity(what))?;
    Ok(buf)
}

/// Turns opened key bytes into a key.
fn to_key(bytes: &[u8], what: &'static str) -> Result<Key, VaultError> {
    let arr: [u8; 32] = bytes.try_into().map_err(|_| VaultError::Integrity(what))?;
    Ok(Zeroizing::new(arr))
}

/// Associated data of a tenant KEK wrapped by the root key.
pub fn kek_aad(tenant: &TenantId, version: i64) -> Vec<u8> {
    format!("simvault/v1/kek\0{tenant}\0{version}").into_bytes()
}

/// Associated data of a SIM's DEK wrapped by a tenant KEK.
pub fn dek_aad(tenant: &TenantId, sim_id: &crate::domain::SimId, kek_version: i64) -> Vec<u8> {
    format!("simvault/v1/dek\0{tenant}\0{sim_id}\0{kek_version}").into_bytes()
}

/// Associated data of a bulk task's data key wrapped by a tenant KEK.
pub fn task_key_aad(
    tenant: &TenantId,
    task_id: &crate::domain::TaskId,
    kek_version: i64,
) -> Vec<u8> {
    format!("simvault/v1/task-key\0{tenant}\0{task_id}\0{kek_version}").into_bytes()
}

/// Associated data of one bulk task item sealed by the task's key.
pub fn task_item_aad(tenant: &TenantId, task_id: &crate::domain::TaskId, seq: i64) -> Vec<u8> {
    format!("simvault/v1/task-item\0{tenant}\0{task_id}\0{seq}").into_bytes()
}

/// Associated data of a webhook's signing secret sealed by a tenant KEK.
pub fn webhook_secret_aad(
    tenant: &TenantId,
    webhook_id: &crate::domain::WebhookId,
    kek_version: i64,
) -> Vec<u8> {
    format!("simvault/v1/webhook-secret\0{tenant}\0{webhook_id}\0{kek_version}").into_bytes()
}

/// Associated data of one secret field encrypted by a SIM's DEK.
pub fn field_aad(tenant: &TenantId, sim_id: &crate::domain::SimId, field: SecretField) -> Vec<u8> {
    format!("simvault/v1/secret\0{tenant}\0{sim_id}\0{}", field.as_str()).into_bytes()
}

pub fn check_format(format: i64) -> Result<(), VaultError> {
    if format == FORMAT {
        Ok(())
    } else {
        Err(VaultError::Format(format))
    }
}

/// Wraps a SIM's DEK under a tenant KEK.
pub fn wrap_dek(
    kek: &Key,
    tenant: &TenantId,
    sim_id: &crate::domain::SimId,
    kek_version: i64,
    dek: &Key,
) -> Result<Vec<u8>, VaultError> {
    seal(kek, dek.as_ref(), &dek_aad(tenant, sim_id, kek_version))
}

pub fn unwrap_dek(
    kek: &Key,
    tenant: &TenantId,
    sim_id: &crate::domain::SimId,
    kek_version: i64,
    wrapped: &[u8],
) -> Result<Key, VaultError> {
    let bytes = open(
        kek,
        wrapped,
        &dek_aad(tenant, sim_id, kek_version),
        "a SIM key",
    )?;
    to_key(&bytes, "a SIM key")
}

pub fn seal_field(
    dek: &Key,
    tenant: &TenantId,
    sim_id: &crate::domain::SimId,
    field: SecretField,
    value: &str,
) -> Result<Vec<u8>, VaultError> {
    seal(dek, value.as_bytes(), &field_aad(tenant, sim_id, field))
}

pub fn open_field(
    dek: &Key,
    tenant: &TenantId,
    sim_id: &crate::domain::SimId,
    field: SecretField,
    blob: &[u8],
) -> Result<Zeroizing<String>, VaultError> {
    let bytes = open(dek, blob, &field_aad(tenant, sim_id, field), "a secret")?;
    let text = std::str::from_utf8(&bytes).map_err(|_| VaultError::Integrity("a secret"))?;
    Ok(Zeroizing::new(text.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str) -> TenantId {
        TenantId::parse(name).unwrap()
    }

    /// The associated data is part of every sealed blob: its bytes must never change, or data
    /// sealed before could not be opened.
    #[test]
    fn associated_data_bytes_are_pinned() {
        let acme = t("acme");
        let sim = id(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(kek_aad(&acme, 3), b"simvault/v1/kek\x00acme\x003".to_vec());
        assert_eq!(
            dek_aad(&acme, &sim, 2),
            b"simvault/v1/dek\x00acme\x0001234567-89ab-cdef-0123-456789abcdef\x002".to_vec()
        );
        assert_eq!(
            field_aad(&acme, &sim, SecretField::Opc),
            b"simvault/v1/secret\x00acme\x0001234567-89ab-cdef-0123-456789abcdef\x00opc".to_vec()
        );
        let task = crate::domain::TaskId::from(uuid::Uuid::from_u128(7));
        let hook = crate::domain::WebhookId::from(uuid::Uuid::from_u128(7));
        assert_eq!(task.to_string(), "00000000-0000-0000-0000-000000000007");
        assert_eq!(
            task_key_aad(&acme, &task, 1),
            b"simvault/v1/task-key\x00acme\x0000000000-0000-0000-0000-000000000007\x001".to_vec()
        );
        assert_eq!(
            task_item_aad(&acme, &task, 5),
            b"simvault/v1/task-item\x00acme\x0000000000-0000-0000-0000-000000000007\x005".to_vec()
        );
        assert_eq!(
            webhook_secret_aad(&acme, &hook, 4),
            b"simvault/v1/webhook-secret\x00acme\x0000000000-0000-0000-0000-000000000007\x004"
                .to_vec()
        );
        // A UUID written in capitals or without hyphens is read as the same id, and its
        // associated data is the stored, hyphenated lower-case form.
        let upper = crate::domain::TaskId::parse("00000000-0000-0000-0000-00000000000A").unwrap();
        let plain = crate::domain::TaskId::parse("0000000000000000000000000000000a").unwrap();
        assert_eq!(
            task_key_aad(&acme, &upper, 2),
            b"simvault/v1/task-key\x00acme\x0000000000-0000-0000-0000-00000000000a\x002".to_vec()
        );
        assert_eq!(
            task_key_aad(&acme, &plain, 2),
            task_key_aad(&acme, &upper, 2)
        );
    }

    fn id(n: u128) -> crate::domain::SimId {
        uuid::Uuid::from_u128(n).into()
    }

    #[test]
    fn seal_open_round_trip_with_fresh_nonces() {
        let key = new_key().unwrap();
        let a = seal(&key, b"secret", b"aad").unwrap();
        let b = seal(&key, b"secret", b"aad").unwrap();
        assert_ne!(a, b, "nonces must be fresh");
        assert_eq!(a.len(), 12 + 6 + 16);
        assert_eq!(&*open(&key, &a, b"aad", "x").unwrap(), b"secret");
    }

    #[test]
    fn every_flipped_bit_is_an_integrity_error() {
        let key = new_key().unwrap();
        let blob = seal(&key, b"0123456789abcdef", b"aad").unwrap();
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(
                open(&key, &bad, b"aad", "x"),
                Err(VaultError::Integrity("x")),
                "bit {i}"
            );
        }
        assert!(open(&key, &blob[..20], b"aad", "x").is_err());
        assert!(open(&new_key().unwrap(), &blob, b"aad", "x").is_err());
    }

    #[test]
    fn blobs_are_bound_to_their_place() {
        let kek = new_key().unwrap();
        let dek = new_key().unwrap();
        let field = seal_field(
            &dek,
            &t("t1"),
            &id(1),
            SecretField::Ki,
            "00112233445566778899aabbccddeeff",
        )
        .unwrap();
        assert!(open_field(&dek, &t("t1"), &id(1), SecretField::Ki, &field).is_ok());
        // Another SIM, another field, another tenant: no plaintext.
        assert!(open_field(&dek, &t("t1"), &id(2), SecretField::Ki, &field).is_err());
        assert!(open_field(&dek, &t("t1"), &id(1), SecretField::Opc, &field).is_err());
        assert!(open_field(&dek, &t("t2"), &id(1), SecretField::Ki, &field).is_err());

        let wrapped = wrap_dek(&kek, &t("t1"), &id(1), 1, &dek).unwrap();
        assert_eq!(
            *unwrap_dek(&kek, &t("t1"), &id(1), 1, &wrapped).unwrap(),
            *dek
        );
        assert!(unwrap_dek(&kek, &t("t1"), &id(2), 1, &wrapped).is_err());
        assert!(unwrap_dek(&kek, &t("t2"), &id(1), 1, &wrapped).is_err());
        assert!(unwrap_dek(&kek, &t("t1"), &id(1), 2, &wrapped).is_err());
    }

    #[test]
    fn associated_data_cannot_be_confused_across_boundaries() {
        // "ab" + "c" must not equal "a" + "bc".
        assert_ne!(
            kek_aad(&crate::domain::tenant::tenant("ab"), 1),
            kek_aad(&crate::domain::tenant::tenant("a"), 1)
        );
        assert_ne!(
            dek_aad(&t("t"), &id(1), 1),
            field_aad(&t("t"), &id(1), SecretField::Ki)
        );
    }
}
