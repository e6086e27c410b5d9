//! Operator commands run from the CLI by whoever holds the data directory: creating tenants
//! and registering client certificate identities. They bypass request authorization because
//! the caller already has the keys; they are the only use cases that do.

use super::{ServiceError, ServiceResult, Services};
use crate::domain::{Role, TenantId};
use crate::store::identities::{self, IdentityRow};
use crate::store::{StoreError, tenants};

impl Services {
    pub async fn create_tenant(&self, tenant: &TenantId) -> ServiceResult<()> {
        match tenants::create(&self.db, tenant.as_str(), self.clock.now()).await {
            Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
                "tenant {tenant} already exists"
            ))),
            other => Ok(other?),
        }
    }

    pub async fn tenant_exists(&self, tenant: &TenantId) -> ServiceResult<bool> {
        Ok(tenants::exists(&self.db, tenant.as_str()).await?)
    }

    /// Registers a client certificate identity for a tenant with roles.
    pub async fn register_identity(
        &self,
        tenant: &TenantId,
        identity: &str,
        name: &str,
        roles: &std::collections::BTreeSet<Role>,
    ) -> ServiceResult<()> {
        if !self.tenant_exists(tenant).await? {
            return Err(ServiceError::NotFound);
        }
        let row = IdentityRow {
            identity: identity.to_owned(),
            tenant_id: tenant.as_str().to_owned(),
            name: name.to_owned(),
            roles: Role::join(roles),
        };
        match identities::register(&self.db, &row, self.clock.now()).await {
            Err(StoreError::Conflict(_)) => Err(ServiceError::Conflict(format!(
                "identity {identity} is already registered"
            ))),
            other => Ok(other?),
        }
    }
}
