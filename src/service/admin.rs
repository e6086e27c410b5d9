//! Administration. [`Admin`]: a tenant's key status, access to metrics, and readiness. And the
//! operator commands run from the CLI by whoever holds the data directory: creating tenants
//! and registering client certificate identities. Those bypass request authorization because
//! the caller already has the keys; they are the only use cases that do.

use super::audit::append_platform;
use super::identities::{self, NewIdentity};
use super::{ServiceError, ServiceResult, conflict};
use crate::clock::Clock;
use crate::domain::Principal;
use crate::domain::audit::AuditOutcome;
use crate::domain::{Role, TenantId};
use crate::policy::Action;
use crate::store::{Db, tenants};
use crate::vault::Keyring;

super::capability! {
    /// Tenant administration: key status, metrics access, readiness.
    pub struct Admin {
        core: super::Core,
        /// The tenant whose metrics readers see platform-wide series.
        metrics_platform_tenant: Option<TenantId>,
    }
}

/// Creates a tenant without a platform record: fixtures and seeding. The CLI records who
/// did it ([`create_tenant_by`]).
pub async fn create_tenant(db: &Db, clock: &dyn Clock, tenant: &TenantId) -> ServiceResult<()> {
    create(db, clock, tenant, None).await
}

/// Creates a tenant and records `tenant.create` by `actor` on the platform chain, in one
/// transaction.
pub async fn create_tenant_by(
    db: &Db,
    clock: &dyn Clock,
    tenant: &TenantId,
    actor: &str,
) -> ServiceResult<()> {
    create(db, clock, tenant, Some(actor)).await
}

async fn create(
    db: &Db,
    clock: &dyn Clock,
    tenant: &TenantId,
    actor: Option<&str>,
) -> ServiceResult<()> {
    let now = clock.now();
    let mut tx = db.begin().await?;
    tenants::create(&mut tx, tenant, now)
        .await
        .map_err(conflict("the tenant already exists"))?;
    if let Some(actor) = actor {
        append_platform(
            &mut tx,
            actor,
            "tenant.create",
            AuditOutcome::Completed,
            &format!("tenant {tenant}"),
            now,
        )
        .await?;
    }
    Ok(tx.commit().await?)
}

pub async fn tenant_exists(db: &Db, tenant: &TenantId) -> ServiceResult<bool> {
    Ok(tenants::exists(db, tenant).await?)
}

/// Registers a client certificate identity for a tenant with roles, authenticated under the
/// keyring's row-integrity key, without a platform record: fixtures and seeding. The CLI
/// records who did it ([`identities::register`] with an actor).
pub async fn register_identity(
    db: &Db,
    keyring: &Keyring,
    clock: &dyn Clock,
    tenant: &TenantId,
    identity: &str,
    name: &str,
    roles: &std::collections::BTreeSet<Role>,
) -> ServiceResult<()> {
    let key = keyring.integrity().map_err(ServiceError::from)?;
    let new = NewIdentity {
        tenant,
        identity,
        name,
        roles,
    };
    identities::register(db, &key, clock, new, None).await
}

/// Whether the service can serve requests now, and if not, the first reason why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The root key cannot be reached (an HSM gone, say).
    KeysUnavailable,
    /// A client CRL is past its nextUpdate.
    CrlExpired,
    /// The database does not answer.
    DatabaseUnavailable,
}

impl Admin {
    /// Readiness: the root key answers, no client CRL has expired (`crl_expired`, asked with
    /// the current Unix time) and the database answers — checked in that order.
    pub async fn readiness(&self, crl_expired: impl FnOnce(i64) -> bool) -> Readiness {
        let keyring = self.core.keyring.clone();
        let keys_ok = tokio::task::spawn_blocking(move || keyring.root_available())
            .await
            .unwrap_or(false);
        if !keys_ok {
            return Readiness::KeysUnavailable;
        }
        if crl_expired(self.core.clock.now_secs()) {
            tracing::warn!("not ready: a client CRL is past its nextUpdate");
            return Readiness::CrlExpired;
        }
        match self.core.db.ping().await {
            Ok(()) => Readiness::Ready,
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::Causes(&e), "readiness check failed");
                Readiness::DatabaseUnavailable
            }
        }
    }

    /// May the caller scrape metrics, and which series? A principal of the platform tenant
    /// (`SIMVAULT_METRICS_PLATFORM_TENANT`) sees every series; any other only its tenant's.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "authorize_metrics"))]
    pub async fn authorize_metrics(
        &self,
        principal: &Principal,
    ) -> ServiceResult<crate::telemetry::MetricsScope> {
        self.core
            .authorize_in_tenant(principal, Action::ReadMetrics)
            .await?;
        let tenant = &principal.tenant;
        Ok(if self.metrics_platform_tenant.as_ref() == Some(tenant) {
            crate::telemetry::MetricsScope::Platform
        } else {
            crate::telemetry::MetricsScope::Tenant(tenant.to_string())
        })
    }
}
