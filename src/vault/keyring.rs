//! The keyring: the root key and the unwrapped tenant KEKs it has opened, cached so that a
//! secret read costs one DEK unwrap, not a root-key operation.
//!
//! KEK versions never change once written (rotation adds a version; re-wrapping under a new
//! root key changes only the wrapping), so a cached KEK never goes stale. A root key in a
//! hardware module bounds how long KEKs stay cached: an expired one is dropped (and zeroized
//! with its last reference) and unwrapped again by the module.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

use super::integrity::IntegrityKey;
use super::{FORMAT, Key, RootKey, VaultError, check_format, kek_aad, new_key};
use crate::domain::TenantId;

/// The root-key check of a database whose security-relevant rows are not yet authenticated
/// (made before row integrity existed).
const ROOT_CHECK_AAD_V1: &[u8] = b"simvault/v1/root-check";
/// The root-key check of a database whose rows carry MACs under the key inside it. Only the
/// root key can re-wrap a check, so a database writer cannot turn a v2 database back into one
/// whose rows would be adopted unchecked.
const ROOT_CHECK_AAD_V2: &[u8] = b"simvault/v2/root-check+row-integrity";

/// What opening the root-key check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootCheck {
    /// The database's rows are authenticated.
    Authenticated,
    /// A database from before row integrity: its rows must be adopted (given MACs) once.
    NeedsAdoption,
}

/// Opened KEKs by (tenant, version), with when each was opened.
type KekCache = HashMap<(TenantId, i64), (Arc<Key>, Instant)>;

pub struct Keyring {
    root: Arc<dyn RootKey>,
    keks: RwLock<KekCache>,
    /// Set once the database's root-key check has been opened.
    integrity: std::sync::OnceLock<Arc<IntegrityKey>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keyring([redacted])")
    }
}

impl Keyring {
    pub fn new(root: Arc<dyn RootKey>) -> Self {
        Self {
            root,
            keks: RwLock::new(HashMap::new()),
            integrity: std::sync::OnceLock::new(),
        }
    }

    /// A blob that only this root key opens, stored once per database; the key inside it is
    /// the database's row-integrity key.
    pub fn make_root_check(&self) -> Result<Vec<u8>, VaultError> {
        self.root.wrap(&new_key()?, ROOT_CHECK_AAD_V2)
    }

    /// Whether `blob` was made by this root key.
    pub fn verify_root_check(&self, format: i64, blob: &[u8]) -> Result<(), VaultError> {
        self.unwrap_root_check(format, blob).map(|_| ())
    }

    fn unwrap_root_check(&self, format: i64, blob: &[u8]) -> Result<(Key, RootCheck), VaultError> {
        check_format(format)?;
        match self.root.unwrap(blob, ROOT_CHECK_AAD_V2) {
            Ok(key) => Ok((key, RootCheck::Authenticated)),
            Err(VaultError::Integrity(_)) => self
                .root
                .unwrap(blob, ROOT_CHECK_AAD_V1)
                .map(|key| (key, RootCheck::NeedsAdoption)),
            Err(e) => Err(e),
        }
    }

    /// Opens this database's root-key check with this root key and takes the row-integrity
    /// key from it (the first check opened stays: one keyring serves one database).
    pub fn open_root_check(&self, format: i64, blob: &[u8]) -> Result<RootCheck, VaultError> {
        let (key, check) = self.unwrap_root_check(format, blob)?;
        if self.integrity.get().is_none() {
            let _ = self.integrity.set(Arc::new(IntegrityKey::derive(&key)?));
        }
        Ok(check)
    }

    /// The check blob re-wrapped as an authenticated database's (after adoption), holding
    /// the same integrity key.
    pub fn seal_root_check_authenticated(
        &self,
        format: i64,
        blob: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let (key, _) = self.unwrap_root_check(format, blob)?;
        self.root.wrap(&key, ROOT_CHECK_AAD_V2)
    }

    /// Re-wraps this database's check (the same integrity key) from this keyring's root key
    /// to `next`'s, for a root-key rotation or a move between providers.
    pub fn rewrap_root_check_for(
        &self,
        next: &Keyring,
        format: i64,
        blob: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        let (key, check) = self.unwrap_root_check(format, blob)?;
        let aad = match check {
            RootCheck::Authenticated => ROOT_CHECK_AAD_V2,
            RootCheck::NeedsAdoption => ROOT_CHECK_AAD_V1,
        };
        next.root.wrap(&key, aad)
    }

    /// The row-integrity key, once [`Keyring::open_root_check`] has run.
    pub fn integrity(&self) -> Result<Arc<IntegrityKey>, VaultError> {
        self.integrity
            .get()
            .cloned()
            .ok_or(VaultError::Integrity("the integrity key is not loaded"))
    }

    pub fn cached_kek(&self, tenant: &TenantId, version: i64) -> Option<Arc<Key>> {
        let key = (tenant.clone(), version);
        let (kek, cached_at) = self.keks.read().ok()?.get(&key).cloned()?;
        match self.root.cache_lifetime() {
            Some(lifetime) if cached_at.elapsed() >= lifetime => {
                if let Ok(mut cache) = self.keks.write() {
                    cache.remove(&key);
                }
                None
            }
            _ => Some(kek),
        }
    }

    fn remember(&self, tenant: &TenantId, version: i64, kek: Key) -> Arc<Key> {
        let kek = Arc::new(kek);
        if let Ok(mut cache) = self.keks.write() {
            cache.insert((tenant.clone(), version), (kek.clone(), Instant::now()));
        }
        kek
    }

    /// Whether the root key can be used now (`/readyz`).
    pub fn root_available(&self) -> bool {
        self.root.available()
    }

    /// Unwraps (and caches) a stored tenant KEK.
    pub fn open_kek(
        &self,
        tenant: &TenantId,
        version: i64,
        format: i64,
        wrapped: &[u8],
    ) -> Result<Arc<Key>, VaultError> {
        if let Some(kek) = self.cached_kek(tenant, version) {
            return Ok(kek);
        }
        check_format(format)?;
        let kek = self.root.unwrap(wrapped, &kek_aad(tenant, version))?;
        Ok(self.remember(tenant, version, kek))
    }

    /// A new tenant KEK version and its wrapping for storage. Not cached: the transaction
    /// storing it may lose a race or roll back; it is cached when first read back.
    pub fn new_kek(
        &self,
        tenant: &TenantId,
        version: i64,
    ) -> Result<(Arc<Key>, Vec<u8>), VaultError> {
        let kek = new_key()?;
        let wrapped = self.root.wrap(&kek, &kek_aad(tenant, version))?;
        Ok((Arc::new(kek), wrapped))
    }

    /// Re-wraps a KEK from this keyring's root key to `next`'s (root-key rotation).
    pub fn rewrap_kek_for(
        &self,
        next: &Keyring,
        tenant: &TenantId,
        version: i64,
        format: i64,
        wrapped: &[u8],
    ) -> Result<Vec<u8>, VaultError> {
        check_format(format)?;
        let aad = kek_aad(tenant, version);
        let kek = self.root.unwrap(wrapped, &aad)?;
        next.root.wrap(&kek, &aad)
    }

    /// The current format of wrapped keys.
    pub fn format(&self) -> i64 {
        FORMAT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t() -> TenantId {
        TenantId::parse("t").unwrap()
    }
    use crate::vault::root::LocalRootKey;

    /// A root key whose KEKs may be cached briefly, counting its unwraps.
    #[derive(Debug)]
    struct Brief(LocalRootKey, std::sync::atomic::AtomicUsize);

    impl RootKey for Brief {
        fn wrap(&self, key: &Key, aad: &[u8]) -> Result<Vec<u8>, VaultError> {
            self.0.wrap(key, aad)
        }
        fn unwrap(&self, wrapped: &[u8], aad: &[u8]) -> Result<Key, VaultError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.unwrap(wrapped, aad)
        }
        fn cache_lifetime(&self) -> Option<std::time::Duration> {
            Some(std::time::Duration::from_millis(50))
        }
    }

    #[test]
    fn cached_keks_expire_when_the_root_key_says_so() {
        let root = Arc::new(Brief(
            LocalRootKey::new(new_key().unwrap()),
            Default::default(),
        ));
        let ring = Keyring::new(root.clone());
        let (_, wrapped) = ring.new_kek(&t(), 1).unwrap();
        let unwraps = || root.1.load(std::sync::atomic::Ordering::SeqCst);
        ring.open_kek(&t(), 1, FORMAT, &wrapped).unwrap();
        assert!(ring.cached_kek(&t(), 1).is_some());
        ring.open_kek(&t(), 1, FORMAT, &wrapped).unwrap();
        assert_eq!(unwraps(), 1, "served from the cache");
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(ring.cached_kek(&t(), 1).is_none(), "expired");
        ring.open_kek(&t(), 1, FORMAT, &wrapped).unwrap();
        assert_eq!(unwraps(), 2, "unwrapped again by the root key");
        // A file root key's KEKs stay cached.
        let local = Keyring::new(Arc::new(LocalRootKey::new(new_key().unwrap())));
        let (_, wrapped) = local.new_kek(&t(), 1).unwrap();
        local.open_kek(&t(), 1, FORMAT, &wrapped).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(80));
        assert!(local.cached_kek(&t(), 1).is_some());
    }

    #[test]
    fn root_check_tells_keys_apart() {
        let a = Keyring::new(Arc::new(LocalRootKey::new(new_key().unwrap())));
        let b = Keyring::new(Arc::new(LocalRootKey::new(new_key().unwrap())));
        let check = a.make_root_check().unwrap();
        assert!(a.verify_root_check(FORMAT, &check).is_ok());
        assert!(b.verify_root_check(FORMAT, &check).is_err());
        assert!(a.verify_root_check(FORMAT + 1, &check).is_err());
    }

    #[test]
    fn the_integrity_key_survives_a_root_rotation_and_adoption() {
        let a = Keyring::new(Arc::new(LocalRootKey::new(new_key().unwrap())));
        let b = Keyring::new(Arc::new(LocalRootKey::new(new_key().unwrap())));
        let check = a.make_root_check().unwrap();
        assert_eq!(
            a.open_root_check(FORMAT, &check).unwrap(),
            RootCheck::Authenticated
        );
        let mac = a
            .integrity()
            .unwrap()
            .mac(super::super::integrity::Purpose::Sim, &[b"x"]);
        let moved = a.rewrap_root_check_for(&b, FORMAT, &check).unwrap();
        assert!(
            b.integrity().is_err(),
            "not loaded before its check is opened"
        );
        assert_eq!(
            b.open_root_check(FORMAT, &moved).unwrap(),
            RootCheck::Authenticated
        );
        assert!(
            b.integrity()
                .unwrap()
                .verify(super::super::integrity::Purpose::Sim, &[b"x"], Some(&mac))
                .is_ok()
        );
        // A v1 check (before row integrity) needs adoption, then is sealed as v2.
        let key = new_key().unwrap();
        let old = a.root.wrap(&key, ROOT_CHECK_AAD_V1).unwrap();
        let fresh = Keyring::new(a.root.clone());
        assert_eq!(
            fresh.open_root_check(FORMAT, &old).unwrap(),
            RootCheck::NeedsAdoption
        );
        let sealed = fresh.seal_root_check_authenticated(FORMAT, &old).unwrap();
        assert_eq!(
            fresh.open_root_check(FORMAT, &sealed).unwrap(),
            RootCheck::Authenticated
        );
    }

    #[test]
    fn keks_open_only_for_their_tenant_and_version() {
        let root: Arc<dyn RootKey> = Arc::new(LocalRootKey::new(new_key().unwrap()));
        let ring = Keyring::new(root.clone());
        let (kek, wrapped) = ring.new_kek(&t(), 1).unwrap();
        let fresh = Keyring::new(root.clone());
        assert_eq!(**fresh.open_kek(&t(), 1, FORMAT, &wrapped).unwrap(), **kek);
        assert!(
            fresh
                .open_kek(&crate::domain::tenant::tenant("u"), 1, FORMAT, &wrapped)
                .is_err()
        );
        assert!(fresh.open_kek(&t(), 2, FORMAT, &wrapped).is_err());
        // Any flipped bit of the wrapped key (nonce, ciphertext or tag): an integrity error.
        for i in 0..wrapped.len() * 8 {
            let mut bad = wrapped.clone();
            bad[i / 8] ^= 1 << (i % 8);
            let ring = Keyring::new(root.clone());
            assert!(
                matches!(
                    ring.open_kek(&t(), 1, FORMAT, &bad),
                    Err(VaultError::Integrity(_))
                ),
                "bit {i}"
            );
        }
    }
}
