//! Operator commands run from the CLI by whoever holds the data directory: creating tenants
//! and registering client certificate identities. They bypass request authorization because
//! the caller already has the keys; they are the only use cases that do.

use super::audit::append_platform;
use super::identities::{self, NewIdentity};
use super::{ServiceError, ServiceResult, conflict};
use crate::clock::Clock;
use crate::domain::audit::AuditOutcome;
use crate::domain::{Role, TenantId};
use crate::store::{Db, tenants};
use crate::vault::Keyring;

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
    tenants::create(&mut tx, tenant.as_str(), now)
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
    Ok(tenants::exists(db, tenant.as_str()).await?)
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
