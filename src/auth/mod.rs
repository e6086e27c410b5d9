//! Turning a TLS client certificate or a bearer JWT into a [`Principal`].
//!
//! Must never: log or return a credential, or tell the client why a credential was refused
//! (that goes to the debug log).

pub mod jwt;
pub mod mtls;

use std::collections::HashSet;
use std::sync::RwLock;

use crate::clock::SharedClock;
use crate::domain::{AuthMethod, Principal, Role, TenantId};
use crate::store::{Db, identities, tenants};

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
}

pub struct Authenticator {
    db: Db,
    jwt: Option<JwtVerifier>,
    clock: SharedClock,
    /// Tenants seen to exist. Tenants are never deleted, so a hit never goes stale; a miss is
    /// looked up again (a tenant may be created while the service runs).
    known_tenants: RwLock<HashSet<String>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(db: Db, jwt: Option<JwtVerifier>, clock: SharedClock) -> Self {
        Self {
            db,
            jwt,
            clock,
            known_tenants: RwLock::new(HashSet::new()),
        }
    }

    /// The principal of a registered client certificate identity.
    pub async fn from_certificate(&self, cert: &CertIdentity) -> Result<Principal, AuthError> {
        let row = identities::find_active(&self.db, &cert.identity)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "identity lookup failed");
                AuthError::Unavailable
            })?;
        let Some(row) = row else {
            tracing::debug!(identity = %cert.identity, "client certificate identity is not registered");
            return Err(AuthError::Refused);
        };
        let tenant = TenantId::parse(&row.tenant_id).map_err(|_| AuthError::Refused)?;
        let roles = Role::parse_list(&row.roles).map_err(|_| AuthError::Refused)?;
        Ok(Principal {
            tenant,
            roles,
            subject: cert.identity.clone(),
            auth_method: AuthMethod::Mtls,
            credential_id: Some(cert.fingerprint.clone()),
            origin: Default::default(),
        })
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
        if !self.tenant_exists(tenant.as_str()).await? {
            tracing::debug!(tenant = %tenant, "bearer token names an unknown tenant");
            return Err(AuthError::Refused);
        }
        // Identity providers put other roles in the same claim; only ours mean anything here.
        let roles = verified
            .roles
            .iter()
            .filter_map(|r| r.parse::<Role>().ok())
            .collect();
        Ok(Principal {
            tenant,
            roles,
            subject: verified.subject,
            auth_method: AuthMethod::Jwt,
            credential_id: verified.token_id,
            origin: Default::default(),
        })
    }

    async fn tenant_exists(&self, tenant: &str) -> Result<bool, AuthError> {
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
            set.insert(tenant.to_owned());
        }
        Ok(exists)
    }
}

/// What is known about the TLS connection a request arrived on, attached to every request.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub remote_addr: std::net::SocketAddr,
    /// `None` when the client presented no certificate; otherwise its (already
    /// chain-verified) identity and the outcome of resolving it, done once per connection.
    pub client_cert: Option<(Option<CertIdentity>, Result<Principal, AuthError>)>,
}
