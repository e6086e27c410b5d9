//! Turning a TLS client certificate or a bearer JWT into a [`Principal`].
//!
//! A certificate's identity is looked up for every request (through a cache of at most
//! [`MAX_IDENTITY_CACHE`]) and its stored row is believed only once its MAC verifies.
//!
//! Must never: log or return a credential, tell the client why a credential was refused
//! (that goes to the debug log), or grant anything from a stored identity whose MAC fails.

pub mod jwt;
pub mod mtls;
pub mod oidc;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::clock::SharedClock;
use crate::domain::{AuthMethod, Principal, Role, TenantId};
use crate::store::{Db, identities, tenants};
use crate::vault::{IntegrityKey, Purpose};

pub use jwt::JwtVerifier;
pub use mtls::CertIdentity;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential")]
    Missing,
    #[error("credential refused")]
    Refused,
    #[error("identity store unavailable")]
    Unavailable,
    /// The stored identity failed its integrity check: refused, reported, answered as an
    /// opaque internal error (never a principal).
    #[error("stored identity failed its integrity check")]
    Integrity,
}

/// The longest the identity cache may keep a resolution: a revoked identity is refused at
/// most this long after its revocation, on every replica.
pub const MAX_IDENTITY_CACHE: Duration = Duration::from_secs(1);

pub struct Authenticator {
    db: Db,
    jwt: Option<JwtVerifier>,
    clock: SharedClock,
    integrity: Arc<IntegrityKey>,
    identities: IdentityCache,
    /// Tenants seen to exist. Tenants are never deleted, so a hit never goes stale; a miss is
    /// looked up again (a tenant may be created while the service runs).
    known_tenants: RwLock<HashSet<TenantId>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// `integrity` authenticates the stored identities; resolutions are cached for
    /// `identity_cache` (at most [`MAX_IDENTITY_CACHE`]; zero: none).
    pub fn new(
        db: Db,
        jwt: Option<JwtVerifier>,
        clock: SharedClock,
        integrity: Arc<IntegrityKey>,
        identity_cache: Duration,
    ) -> Self {
        Self {
            db,
            jwt,
            clock,
            integrity,
            identities: IdentityCache::new(identity_cache.min(MAX_IDENTITY_CACHE)),
            known_tenants: RwLock::new(HashSet::new()),
        }
    }

    /// What a chain-verified leaf certificate asserts.
    pub fn peer_certificate(&self, der: &[u8]) -> PeerCert {
        match mtls::certificate_identity(der) {
            Some(identity) => PeerCert::Named(identity),
            None => PeerCert::Unnamed,
        }
    }

    /// The principal of a registered client certificate identity, resolved for each request
    /// (through a cache of at most [`MAX_IDENTITY_CACHE`]), so that a revocation applies to
    /// connections already open.
    pub async fn from_certificate(&self, cert: &CertIdentity) -> Result<Principal, AuthError> {
        let registered = match self.identities.get(&cert.identity) {
            Some(hit) => hit,
            None => {
                let resolved = self.resolve(&cert.identity).await;
                // A store that is down is asked again by the next request.
                if resolved != Err(AuthError::Unavailable) {
                    self.identities.put(&cert.identity, resolved.clone());
                }
                resolved
            }
        }?;
        Ok(Principal {
            tenant: registered.tenant.clone(),
            roles: registered.roles.clone(),
            subject: cert.identity.clone(),
            auth_method: AuthMethod::Mtls,
            credential_id: Some(cert.fingerprint.clone()),
            origin: Default::default(),
        })
    }

    /// Drops what the cache holds about `identity`: a revocation made in this process
    /// applies to the very next request.
    pub fn forget(&self, identity: &str) {
        self.identities.forget(identity);
    }

    /// Reads the stored identity and checks its MAC before believing any of it.
    async fn resolve(&self, identity: &str) -> Result<Arc<Registered>, AuthError> {
        let row = identities::find(&self.db, identity).await.map_err(|e| {
            tracing::warn!(error = %e, "identity lookup failed");
            AuthError::Unavailable
        })?;
        let Some(row) = row else {
            tracing::debug!(identity, "client certificate identity is not registered");
            return Err(AuthError::Refused);
        };
        if crate::service::identities::verify(&self.integrity, &row).is_err() {
            crate::service::integrity::integrity_failure(
                &self.db,
                Purpose::ClientIdentity,
                identity,
                self.clock.now(),
            )
            .await;
            return Err(AuthError::Integrity);
        }
        if row.revoked_at.is_some() {
            tracing::debug!(identity, "client certificate identity is revoked");
            return Err(AuthError::Refused);
        }
        // Only now is the stored text believed: its MAC held. A tenant that does not parse
        // under a valid MAC was written by no release of ours; refused.
        let tenant = TenantId::parse(&row.tenant_id).map_err(|_| {
            tracing::error!(
                identity,
                "a registered identity's tenant is not a tenant name"
            );
            AuthError::Refused
        })?;
        let roles = Role::parse_list(&row.roles).map_err(|_| AuthError::Refused)?;
        Ok(Arc::new(Registered { tenant, roles }))
    }

    /// The principal of a bearer token.
    pub async fn from_bearer(&self, token: &str) -> Result<Principal, AuthError> {
        let Some(verifier) = &self.jwt else {
            tracing::debug!("bearer token presented but no JWT keys are configured");
            return Err(AuthError::Refused);
        };
        let verified = verifier.verify(token, self.clock.now_secs()).map_err(|e| {
            tracing::debug!(reason = %e, "bearer token refused");
            AuthError::Refused
        })?;
        let tenant = TenantId::parse(&verified.tenant).map_err(|_| {
            tracing::debug!("bearer token names a malformed tenant");
            AuthError::Refused
        })?;
        if !self.tenant_exists(&tenant).await? {
            tracing::debug!(tenant = %tenant, "bearer token names an unknown tenant");
            return Err(AuthError::Refused);
        }
        let roles = known_roles(&verified.roles);
        Ok(Principal {
            tenant,
            roles,
            subject: verified.subject,
            auth_method: AuthMethod::Jwt,
            credential_id: verified.token_id,
            origin: Default::default(),
        })
    }

    /// Whether `tenant` exists: a credential naming another is refused (the console's sign-in
    /// asks this of an ID token's tenant, as [`Self::from_bearer`] does of a bearer token's).
    pub async fn tenant_exists(&self, tenant: &TenantId) -> Result<bool, AuthError> {
        if self
            .known_tenants
            .read()
            .is_ok_and(|set| set.contains(tenant))
        {
            return Ok(true);
        }
        let exists = tenants::exists(&self.db, tenant).await.map_err(|e| {
            tracing::warn!(error = %e, "tenant lookup failed");
            AuthError::Unavailable
        })?;
        if exists && let Ok(mut set) = self.known_tenants.write() {
            set.insert(tenant.clone());
        }
        Ok(exists)
    }
}

/// The roles of ours among those an identity provider asserts. Providers put other roles in the
/// same claim; those are ignored, not refused, for bearer tokens and console sign-in alike.
pub fn known_roles(asserted: &[String]) -> BTreeSet<Role> {
    asserted
        .iter()
        .filter_map(|r| r.parse::<Role>().ok())
        .collect()
}

/// What is known about the TLS connection a request arrived on, attached to every request.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: std::net::SocketAddr,
    /// `None` when the client presented no certificate; otherwise what its (already
    /// chain-verified) certificate asserts. It is resolved to a principal per request.
    pub client_cert: Option<PeerCert>,
}

/// A chain-verified client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCert {
    Named(CertIdentity),
    /// It names no identity (no SAN URI, no subject CN): refused.
    Unnamed,
}

/// What a registered identity may do, as last read and verified.
#[derive(Debug, PartialEq, Eq)]
struct Registered {
    tenant: TenantId,
    roles: BTreeSet<Role>,
}

type Resolution = Result<Arc<Registered>, AuthError>;

/// Resolutions of identities, shared by every connection, each kept for at most `ttl`.
struct IdentityCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Resolution)>>,
}

/// Most identities cached; beyond, expired entries are swept and new ones not kept.
const CACHE_ENTRIES: usize = 4096;

impl IdentityCache {
    fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, identity: &str) -> Option<Resolution> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (at, resolution) = entries.get(identity)?;
        (at.elapsed() < self.ttl).then(|| resolution.clone())
    }

    fn put(&self, identity: &str, resolution: Resolution) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CACHE_ENTRIES {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if entries.len() >= CACHE_ENTRIES {
                return;
            }
        }
        entries.insert(identity.to_owned(), (Instant::now(), resolution));
    }

    fn forget(&self, identity: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.remove(identity);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered() -> Resolution {
        Ok(Arc::new(Registered {
            tenant: TenantId::parse("t").unwrap(),
            roles: [Role::Metrics].into(),
        }))
    }

    #[test]
    fn the_cache_keeps_a_resolution_until_forgotten() {
        let cache = IdentityCache::new(Duration::from_secs(60));
        assert_eq!(cache.get("a"), None);
        cache.put("a", registered());
        cache.put("b", Err(AuthError::Refused));
        assert_eq!(cache.get("a"), Some(registered()));
        assert_eq!(cache.get("b"), Some(Err(AuthError::Refused)));
        cache.forget("a");
        assert_eq!(cache.get("a"), None);
        assert_eq!(cache.get("b"), Some(Err(AuthError::Refused)));
    }

    #[test]
    fn a_zero_cache_keeps_nothing_and_expired_entries_are_not_used() {
        let none = IdentityCache::new(Duration::ZERO);
        none.put("a", registered());
        assert_eq!(none.get("a"), None);
        let short = IdentityCache::new(Duration::from_millis(1));
        short.put("a", registered());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(short.get("a"), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = IdentityCache::new(Duration::from_secs(60));
        for i in 0..CACHE_ENTRIES + 10 {
            cache.put(&i.to_string(), Err(AuthError::Refused));
        }
        assert_eq!(cache.entries.lock().unwrap().len(), CACHE_ENTRIES);
    }
}
