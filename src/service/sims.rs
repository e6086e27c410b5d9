//! SIM inventory use cases.

use super::audit::Event;
use super::conditions::Cause;
use super::groups::References;
use super::{Core, Page, ServiceError, ServiceResult, Target, conflict};
use crate::domain::event::SimChange;
use crate::domain::keys::{SealedSecret, WrappedDek};
use crate::domain::sim::{SecretChanges, SimListQuery};
use crate::domain::{
    Principal, SecretField, Sim, SimId, SimInput, SimPatch, TenantId, Timestamp, ValidationErrors,
};
use crate::policy::{Action, Context, Decision, Refusal, Resource};
use crate::store::sims::{self as repo, SimKey};
use crate::store::{Tx, keys, plans as plan_repo};

super::capability! {
    /// SIM inventory: create, read, list and search, change, delete.
    pub struct Inventory {
        core: super::Core,
    }
}

/// Which plan's zones to list SIMs for.
#[derive(Debug, Clone, Copy)]
pub struct ForPlan(pub uuid::Uuid);

impl Inventory {
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "create_sim"))]
    pub async fn create_sim(&self, principal: &Principal, mut new: SimInput) -> ServiceResult<Sim> {
        let mut decision = self
            .core
            .authorize_in_tenant(principal, Action::CreateSim)
            .await?;
        if !new.secrets.is_empty() {
            let writes = self
                .core
                .authorize_in_tenant(principal, Action::WriteSecrets)
                .await?;
            decision.policy_ids.extend(writes.policy_ids);
            decision.policy_ids.sort();
        }
        super::secrets::opc_from_op(&mut new)?;
        let tenant = &principal.tenant;
        let now = self.core.clock.now();
        let (mut sim, secrets) = new_sim(tenant, new, now);
        let mut tx = self.core.db.begin().await?;
        let (group, device) = (sim.group_id.as_deref(), sim.device_id.as_deref());
        References::check(&mut tx, &principal.tenant, group, device).await?;
        // Born into its group and device: its effective limit, and any condition the lock
        // puts it in from the start.
        let entered = self.core.judge_conditions(&mut tx, &mut sim).await?;
        repo::insert(&mut tx, &*self.core.row_key()?, &sim)
            .await
            .map_err(conflict("a SIM with this ICCID already exists"))?;
        if !secrets.is_empty() {
            let mut envelopes = self.core.envelopes(&mut tx, tenant).await?;
            envelopes.seal(&mut sim, &secrets)?;
            self.core
                .insert_envelopes(&mut tx, tenant, envelopes, self.core.clock.now())
                .await?;
            repo::update(&mut tx, &*self.core.row_key()?, &sim).await?;
        }
        self.core
            .emit(&mut tx, &sim, SimChange::Created { task_id: None })
            .await?;
        let fields: Vec<SecretField> = secrets.iter().map(|(f, _)| *f).collect();
        let policy_ids = decision.policy_ids.clone();
        self.core
            .audit_in(
                &mut tx,
                principal,
                Event::allowed(Action::CreateSim, &sim, decision).with_fields(&fields),
            )
            .await?;
        let cause = Cause {
            principal,
            action: Action::CreateSim,
            policy_ids: &policy_ids,
        };
        self.core
            .record_entered(&mut tx, cause, &sim, &entered)
            .await?;
        tx.commit().await?;
        tracing::info!(sim_id = %sim.id, tenant = %sim.tenant_id, "sim created");
        Ok(sim)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_sim"))]
    pub async fn get_sim(&self, principal: &Principal, key: &SimKey) -> ServiceResult<Sim> {
        self.core.read_sim(principal, key).await
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_sims"))]
    pub async fn list_sims(
        &self,
        principal: &Principal,
        mut query: SimListQuery,
        for_plan: Option<ForPlan>,
    ) -> ServiceResult<Page<Sim>> {
        self.core
            .authorize_in_tenant(principal, Action::ListSims)
            .await?;
        let tenant = &principal.tenant;
        if !self.apply_plan(tenant, &mut query, for_plan).await? {
            return Ok(Page {
                items: Vec::new(),
                total: 0,
                page: query.page,
                page_size: query.page_size,
            });
        }
        let (items, total) =
            repo::list(&self.core.db, &*self.core.row_key()?, tenant, &query).await?;
        Ok(Page {
            items,
            total,
            page: query.page,
            page_size: query.page_size,
        })
    }

    /// Narrows `query` to the zones of the plan named, if any: the plan's zones win over any
    /// zones asked for. `false` when nothing can match (a plan with no zones fits no SIM); a
    /// plan the tenant does not have is a validation error on `for_plan_id`.
    pub(super) async fn apply_plan(
        &self,
        tenant: &TenantId,
        query: &mut SimListQuery,
        for_plan: Option<ForPlan>,
    ) -> ServiceResult<bool> {
        let Some(ForPlan(plan_id)) = for_plan else {
            return Ok(true);
        };
        let Some(plan) = plan_repo::get(&self.core.db, tenant, plan_id).await? else {
            let mut e = ValidationErrors::new();
            e.parameter("for_plan_id", "no plan with this id");
            return Err(e.into());
        };
        if plan.compatibility_zones.is_empty() {
            return Ok(false);
        }
        query.compatibility_zones = plan.compatibility_zones.into_iter().collect();
        Ok(true)
    }

    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "update_sim"))]
    pub async fn update_sim(
        &self,
        principal: &Principal,
        key: &SimKey,
        patch: SimPatch,
    ) -> ServiceResult<Sim> {
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim(principal, key, Action::UpdateSim)
            .await?;
        self.core
            .patch_locked(&mut tx, principal, &mut sim, &patch, decision)
            .await?;
        tx.commit().await?;
        Ok(sim)
    }

    /// Deletes a SIM, leaving a tombstone (the row, marked deleted) for the audit history.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "delete_sim"))]
    pub async fn delete_sim(
        &self,
        principal: &Principal,
        key: &SimKey,
    ) -> ServiceResult<Timestamp> {
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim(principal, key, Action::DeleteSim)
            .await?;
        let now = self.core.clock.now().max(sim.updated_at);
        sim.deleted_at = Some(now);
        sim.updated_at = now;
        // Crypto-shredding: without its DEK nothing can ever decrypt the SIM's secrets again.
        keys::shred(&mut tx, &sim.id).await?;
        let shredded: Vec<SecretField> = sim.secret_fields.iter().copied().collect();
        sim.secret_fields.clear();
        sim.counters = Default::default();
        let event = Event::allowed(Action::DeleteSim, &sim, decision).with_fields(&shredded);
        self.core.audit_in(&mut tx, principal, event).await?;
        self.core.emit(&mut tx, &sim, SimChange::Deleted).await?;
        repo::update(&mut tx, &*self.core.row_key()?, &sim).await?;
        tx.commit().await?;
        tracing::info!(sim_id = %sim.id, tenant = %sim.tenant_id, "sim deleted");
        Ok(now)
    }
}

impl Core {
    /// `patch` applied to `sim`, held locked in `tx` and allowed by `decision`: the group and
    /// device it names must be the tenant's; the SIM written back and the record, in `tx`
    /// (the caller commits). A single PATCH and each item of a bulk patch go through here.
    pub(super) async fn patch_locked(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        sim: &mut Sim,
        patch: &SimPatch,
        decision: Decision,
    ) -> ServiceResult<()> {
        let group = patch.group_id.as_ref().and_then(Option::as_deref);
        let device = patch.device_id.as_ref().and_then(Option::as_deref);
        References::check(tx, &principal.tenant, group, device).await?;
        patch.apply(sim);
        let entered = self.judge_conditions(tx, sim).await?;
        sim.updated_at = self.clock.now().max(sim.updated_at);
        repo::update(tx, &*self.row_key()?, sim).await?;
        let policy_ids = decision.policy_ids.clone();
        self.audit_in(
            tx,
            principal,
            Event::allowed(Action::UpdateSim, sim, decision),
        )
        .await?;
        let cause = Cause {
            principal,
            action: Action::UpdateSim,
            policy_ids: &policy_ids,
        };
        self.record_entered(tx, cause, sim, &entered).await
    }

    /// The SIM `key` of the principal's tenant, held locked in `tx`, with the decision on
    /// `action` on it (a refusal not yet recorded); `None` when the tenant has no such SIM.
    pub(super) async fn lock_in(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        key: &SimKey,
        (action, context): (Action, &Context),
    ) -> ServiceResult<Option<(Sim, Result<Decision, Refusal>)>> {
        let Some(sim) = repo::get_for_update(tx, &*self.row_key()?, &principal.tenant, key).await?
        else {
            return Ok(None);
        };
        let decision = self.decide(principal, action, &sim_resource(&sim), context)?;
        Ok(Some((sim, decision)))
    }

    /// The SIM `key` of the principal's tenant, not yet authorized: `NotFound` when there is
    /// none (another tenant's included).
    pub(super) async fn find_sim(&self, principal: &Principal, key: &SimKey) -> ServiceResult<Sim> {
        repo::get(&self.db, &*self.row_key()?, &principal.tenant, key)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// [`Core::find_sim`] with the SIM's stored secrets (sealed).
    pub(super) async fn sim_with_secrets(
        &self,
        principal: &Principal,
        key: &SimKey,
    ) -> ServiceResult<(Sim, Option<(WrappedDek, Vec<SealedSecret>)>)> {
        repo::get_with_secrets(&self.db, &*self.row_key()?, &principal.tenant, key)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// A SIM the principal may read (`ReadSim`), or `NotFound`.
    pub(super) async fn read_sim(&self, principal: &Principal, key: &SimKey) -> ServiceResult<Sim> {
        let sim = self.find_sim(principal, key).await?;
        self.authorize(
            principal,
            Action::ReadSim,
            &sim_resource(&sim),
            &Context::default(),
            Target::sim(&sim),
        )
        .await?;
        Ok(sim)
    }

    /// Opens a write transaction holding the caller's SIM locked, once `action` on it is
    /// allowed. Another tenant's SIM is not found.
    pub(super) async fn lock_sim(
        &self,
        principal: &Principal,
        key: &SimKey,
        action: Action,
    ) -> ServiceResult<(Tx, Sim, Decision)> {
        self.lock_sim_with(principal, key, action, &Context::default(), None)
            .await
    }

    /// [`Core::lock_sim`] with a decision context, and the reason given (for the record
    /// of a refusal).
    pub(super) async fn lock_sim_with(
        &self,
        principal: &Principal,
        key: &SimKey,
        action: Action,
        context: &Context,
        reason: Option<&str>,
    ) -> ServiceResult<(Tx, Sim, Decision)> {
        let mut tx = self.db.begin().await?;
        let (sim, decision) = self
            .lock_in(&mut tx, principal, key, (action, context))
            .await?
            .ok_or(ServiceError::NotFound)?;
        match decision {
            Ok(decision) => Ok((tx, sim, decision)),
            Err(refusal) => {
                // Let go of the lock (and SQLite's one write connection) before recording.
                drop(tx);
                let target = Target {
                    reason,
                    ..Target::sim(&sim)
                };
                Err(self.refuse(principal, action, refusal, target).await)
            }
        }
    }
}

pub(super) fn sim_resource(sim: &Sim) -> Resource<'_> {
    Resource {
        tenant_id: &sim.tenant_id,
        sim_state: Some(sim.state),
    }
}

/// A new SIM of `tenant` in `inventory` (a fresh id), and the secrets to store with it (the
/// bulk benchmark and the seed example build rows with it).
pub fn new_sim(tenant: &TenantId, new: SimInput, now: Timestamp) -> (Sim, SecretChanges) {
    new.into_sim(SimId::new(), tenant, now)
}
