//! Plan use cases. Creating a plan is audited with the change.

use std::collections::BTreeSet;

use super::audit::Event;
use super::{Page, ServiceError, ServiceResult, conflict};
use crate::domain::audit::AuditOutcome;
use crate::domain::{Plan, Principal};
use crate::policy::{Action, Context, Resource};
use crate::store::plans as repo;

super::capability! {
    /// Rate plans and provisioning links.
    pub struct Plans {
        core: super::Core,
    }
}

impl Plans {
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "create_plan"))]
    pub async fn create_plan(
        &self,
        principal: &Principal,
        name: String,
        compatibility_zones: BTreeSet<String>,
    ) -> ServiceResult<Plan> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::CreatePlan)
            .await?;
        let plan = Plan {
            id: uuid::Uuid::new_v4(),
            tenant_id: principal.tenant.clone(),
            name,
            compatibility_zones,
            created_at: self.core.clock.now(),
        };
        let mut tx = self.core.db.begin().await?;
        repo::insert(&mut tx, &plan)
            .await
            .map_err(conflict("a plan with this name already exists"))?;
        // The plan's id, not its name: a name is the tenant's text, an id is enough to find it.
        let reason = format!("plan {}", plan.id);
        let event = Event::tenant_wide(
            Action::CreatePlan,
            AuditOutcome::Allowed,
            Some(&reason),
            decision.policy_ids,
        );
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        Ok(plan)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_plan"))]
    pub async fn get_plan(&self, principal: &Principal, id: uuid::Uuid) -> ServiceResult<Plan> {
        let plan = repo::get(&self.core.db, &principal.tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.core
            .authorize(
                principal,
                Action::ReadPlan,
                &Resource::of_tenant(&plan.tenant_id),
                &Context::default(),
                super::Target::default(),
            )
            .await?;
        Ok(plan)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_plans"))]
    pub async fn list_plans(
        &self,
        principal: &Principal,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Plan>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadPlan)
            .await?;
        let offset = u64::from(page.saturating_sub(1)) * u64::from(page_size);
        let (items, total) =
            repo::list(&self.core.db, &principal.tenant, page_size, offset).await?;
        Ok(Page {
            items,
            total,
            page,
            page_size,
        })
    }
}
