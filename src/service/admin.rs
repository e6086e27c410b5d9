//! Operator commands run from the CLI by whoever holds the data directory: creating tenants
//! and registering client certificate identities. They bypass request authorization because
//! the caller already has the keys; they are the only use cases that do.

use super::{ServiceError, ServiceResult, Services, conflict};
use crate::domain::{Role, TenantId};
use crate::store::identities::{self, IdentityRow};
use crate::store::tenants;

impl Services {
    pub async fn create_tenant(&self, tenant: &TenantId) -> ServiceResult<()> {
        let mut tx = self.db.begin().await?;
        tenants::create(&mut tx, tenant.as_str(), self.clock.now())
            .await
            .map_err(conflict("the tenant already exists"))?;
        Ok(tx.commit().await?)
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
        let mut tx = self.db.begin().await?;
        identities::register(&mut tx, &row, self.clock.now())
            .await
            .map_err(conflict("the identity is already registered"))?;
        Ok(tx.commit().await?)
    }
}
