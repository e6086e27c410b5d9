//! Operator commands run from the CLI by whoever holds the data directory: creating tenants
//! and registering client certificate identities. They bypass request authorization because
//! the caller already has the keys; they are the only use cases that do.

use super::{ServiceError, ServiceResult, conflict};
use crate::clock::Clock;
use crate::domain::{Role, TenantId};
use crate::store::identities::{self, IdentityRow};
use crate::store::{Db, tenants};

pub async fn create_tenant(db: &Db, clock: &dyn Clock, tenant: &TenantId) -> ServiceResult<()> {
    let mut tx = db.begin().await?;
    tenants::create(&mut tx, tenant.as_str(), clock.now())
        .await
        .map_err(conflict("the tenant already exists"))?;
    Ok(tx.commit().await?)
}

pub async fn tenant_exists(db: &Db, tenant: &TenantId) -> ServiceResult<bool> {
    Ok(tenants::exists(db, tenant.as_str()).await?)
}

/// Registers a client certificate identity for a tenant with roles.
pub async fn register_identity(
    db: &Db,
    clock: &dyn Clock,
    tenant: &TenantId,
    identity: &str,
    name: &str,
    roles: &std::collections::BTreeSet<Role>,
) -> ServiceResult<()> {
    if !tenant_exists(db, tenant).await? {
        return Err(ServiceError::NotFound);
    }
    let row = IdentityRow {
        identity: identity.to_owned(),
        tenant_id: tenant.as_str().to_owned(),
        name: name.to_owned(),
        roles: Role::join(roles),
    };
    let mut tx = db.begin().await?;
    identities::register(&mut tx, &row, clock.now())
        .await
        .map_err(conflict("the identity is already registered"))?;
    Ok(tx.commit().await?)
}
