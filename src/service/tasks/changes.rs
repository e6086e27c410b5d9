//! Bulk changes as tasks: one lifecycle state change, or one `PATCH /v1/sims/{sim}` change,
//! over many SIMs. Each item goes through the single change's own path (its rules, history,
//! event and record, the actor being whoever queued the task), so a bulk change is exactly
//! the single changes it stands for; an item that the single change would refuse (no such
//! SIM, an invalid transition, a group of no one's) fails alone.

use serde_json::{Value, json};

use super::{Batch, Grant, Tasks, failed, pending_item, succeeded};
use crate::domain::audit::AuditOutcome;
use crate::domain::sim_patch::prefixed;
use crate::domain::task::{TaskItem, TaskKind};
use crate::domain::{
    Principal, Sim, SimId, SimKey, SimPatch, SimState, Task, TaskId, ValidationErrors,
};
use crate::policy::{Action, Context, Refusal};
use crate::service::audit::Event;
use crate::service::groups::References;
use crate::service::{ServiceError, ServiceResult};
use crate::store::tasks::{self, Outcome};

pub const STATE_TASK: TaskKind = TaskKind::BulkState;
pub const PATCH_TASK: TaskKind = TaskKind::BulkPatch;

/// `POST /v1/sims/bulk/state`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkState {
    /// The SIMs, each named as `{sim}` names one; no repeats.
    pub sims: Vec<SimKey>,
    pub state: SimState,
    pub reason: Option<String>,
}

/// `POST /v1/sims/bulk/patch`, validated: the patch as given, kept with the task and read
/// again by its worker with the same parser, and as read.
#[derive(Debug, Clone, PartialEq)]
pub struct BulkPatch {
    sims: Vec<SimKey>,
    body: Value,
    patch: SimPatch,
}

impl BulkPatch {
    /// `body` read as the single PATCH reads its body; problems point under `/patch`.
    pub fn new(sims: Vec<SimKey>, body: Value) -> Result<BulkPatch, ValidationErrors> {
        let patch = SimPatch::from_value(body.clone(), "/patch")?;
        Ok(BulkPatch { sims, body, patch })
    }
}

/// The bulk state change kind, naming its [`Grant`].
#[derive(Debug)]
pub enum StateChanges {}
/// The bulk patch kind, naming its [`Grant`].
#[derive(Debug)]
pub enum PatchChanges {}

/// The caller's right to queue a bulk state change (see [`Grant`]).
pub type StateGrant = Grant<StateChanges>;
/// The caller's right to queue a bulk patch (see [`Grant`]).
pub type PatchGrant = Grant<PatchChanges>;

/// What every item of a bulk change task does.
enum Change {
    State {
        to: SimState,
        reason: Option<String>,
    },
    Patch(Box<SimPatch>),
}

impl Change {
    /// The change `task` was queued with.
    fn of(kind: TaskKind, params: &Value) -> ServiceResult<Change> {
        match kind {
            STATE_TASK => Ok(Change::State {
                to: params["state"]
                    .as_str()
                    .unwrap_or_default()
                    .parse()
                    .map_err(|()| {
                        ServiceError::internal("a bulk state task without a valid state")
                    })?,
                reason: params["reason"].as_str().map(str::to_owned),
            }),
            PATCH_TASK => SimPatch::from_value(params["patch"].clone(), "")
                .map(|patch| Change::Patch(Box::new(patch)))
                .map_err(|_| ServiceError::internal("a bulk patch task without a valid patch")),
            other => Err(ServiceError::internal(format!(
                "{other} is not a bulk change"
            ))),
        }
    }

    /// The single change's action, decided again on each SIM.
    fn action(&self) -> Action {
        match self {
            Change::State { .. } => Action::ChangeState,
            Change::Patch(_) => Action::UpdateSim,
        }
    }
}

impl Tasks {
    /// May `principal` queue a bulk state change? Decided before the body is read.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "authorize_bulk_state"))]
    pub async fn authorize_bulk_state(&self, principal: &Principal) -> ServiceResult<StateGrant> {
        self.grant(principal, Action::BulkChangeState).await
    }

    /// May `principal` queue a bulk patch? Decided before the body is read.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "authorize_bulk_patch"))]
    pub async fn authorize_bulk_patch(&self, principal: &Principal) -> ServiceResult<PatchGrant> {
        self.grant(principal, Action::BulkUpdateSims).await
    }

    /// `POST /v1/sims/bulk/state` under `grant`.
    pub async fn queue_bulk_state(
        &self,
        grant: StateGrant,
        request: BulkState,
    ) -> ServiceResult<Task> {
        let params = json!({
            "actor": grant.principal,
            "state": request.state.as_str(),
            "reason": request.reason,
        });
        let what = format!("to {}", request.state.as_str());
        let tx = self.core.db.begin().await?;
        self.queue_changes(
            tx,
            (grant.principal, grant.policy_ids),
            STATE_TASK,
            params,
            &request.sims,
            &what,
        )
        .await
    }

    /// `POST /v1/sims/bulk/patch` under `grant`. A group or device the patch names must be the
    /// tenant's before anything is queued (as each item checks again when it runs).
    pub async fn queue_bulk_patch(
        &self,
        grant: PatchGrant,
        request: BulkPatch,
    ) -> ServiceResult<Task> {
        let mut tx = self.core.db.begin().await?;
        let group = request.patch.group_id.as_ref().and_then(Option::as_deref);
        let device = request.patch.device_id.as_ref().and_then(Option::as_deref);
        References::check(&mut tx, &grant.principal.tenant, group, device)
            .await
            .map_err(|e| match e {
                ServiceError::Validation(v) => ServiceError::Validation(prefixed(&v, "/patch")),
                other => other,
            })?;
        let params = json!({"actor": grant.principal, "patch": request.body});
        self.queue_changes(
            tx,
            (grant.principal, grant.policy_ids),
            PATCH_TASK,
            params,
            &request.sims,
            "patch",
        )
        .await
    }

    /// Writes a bulk change task of `kind` over `sims` (each item holds the SIM as named), its
    /// record, and commits.
    async fn queue_changes(
        &self,
        mut tx: crate::store::Tx,
        (principal, policy_ids): (Principal, Vec<String>),
        kind: TaskKind,
        params: Value,
        sims: &[SimKey],
        what: &str,
    ) -> ServiceResult<Task> {
        let task_id = TaskId::new();
        let items: Vec<TaskItem> = sims
            .iter()
            .enumerate()
            .map(|(i, key)| TaskItem {
                input: Some(key.to_string().into_bytes()),
                sim_id: match key {
                    SimKey::Id(id) => Some(id.to_string()),
                    SimKey::Iccid(_) => None,
                },
                ..pending_item(&task_id, i)
            })
            .collect();
        let tenant = principal.tenant.clone();
        let task = self
            .queue_task(&mut tx, (&task_id, &tenant, kind), params, None, &items)
            .await?;
        let total = task.total_items;
        let reason = format!("task {task_id}: {total} SIM(s), {what}");
        self.commit_queued(tx, &principal, (queue_action(kind), &reason), policy_ids)
            .await?;
        tracing::info!(task_id = %task_id, tenant = %tenant, kind = %kind, total, "bulk change queued");
        Task::try_from(task)
    }

    /// Makes the change of a leased batch of a bulk change task on each SIM, in one
    /// transaction with the items' outcomes and records. Items cancelled meanwhile are not
    /// held any more, and are left alone. Every SIM of the batch is locked first, in the
    /// order of its id's text (as a sync round and a group's change lock theirs), and only
    /// then changed and recorded: holding the tenant's chain lock (taken by the first record)
    /// while waiting for another SIM would deadlock against a single change, which locks its
    /// SIM and then the chain. An item that fails (anything but the database failing) fails
    /// alone, what it wrote undone; a task whose change cannot be read fails once.
    pub(super) async fn changes_batch(&self, batch: Batch<'_>) -> ServiceResult<()> {
        let change = match Change::of(batch.task.kind, &batch.task.params) {
            Ok(change) => change,
            Err(e) => {
                tracing::error!(task_id = %batch.task.id, error = %crate::telemetry::Causes(&e), "unreadable bulk change");
                return self
                    .fail_task(batch.task.into(), "the task's change could not be read")
                    .await;
            }
        };
        let actor = &batch.actor;
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let held = batch.still_held(&mut tx).await?;
        let held: Vec<&TaskItem> = batch
            .items
            .iter()
            .filter(|i| held.contains(&i.seq))
            .collect();
        let mut outcomes = Vec::new();
        let mut refused: Vec<(Sim, Refusal)> = Vec::new();
        let mut tampered = Vec::new();
        let context = Context::default();
        let mut targets = Vec::with_capacity(held.len());
        for (item, id) in self.resolve(&mut tx, actor, &held).await? {
            match id {
                Some(id) => targets.push((id, item)),
                None => outcomes.push(failed(item.seq, "no such SIM")),
            }
        }
        targets.sort_by_cached_key(|(id, _)| id.to_string());
        let mut locked = Vec::with_capacity(targets.len());
        for (id, item) in targets {
            let found = self
                .core
                .lock_in(&mut tx, actor, &SimKey::Id(id), (change.action(), &context))
                .await;
            match found {
                Ok(Some(found)) => locked.push((item, found)),
                Ok(None) => outcomes.push(failed(item.seq, "no such SIM")),
                Err(e) => {
                    let error = item_failure(e, &mut tampered)?;
                    outcomes.push(failed(item.seq, &error));
                }
            }
        }
        let mut changed = std::collections::HashSet::new();
        for (item, (mut sim, mut decision)) in locked {
            if !changed.insert(sim.id) {
                // Named twice (by id and by ICCID): read again as the first item left it.
                match self
                    .core
                    .lock_in(
                        &mut tx,
                        actor,
                        &SimKey::Id(sim.id),
                        (change.action(), &context),
                    )
                    .await
                {
                    Ok(Some(again)) => (sim, decision) = again,
                    Ok(None) => {
                        outcomes.push(failed(item.seq, "no such SIM"));
                        continue;
                    }
                    Err(e) => {
                        let error = item_failure(e, &mut tampered)?;
                        outcomes.push(failed(item.seq, &error));
                        continue;
                    }
                }
            }
            let sim_id = sim.id.to_string();
            let on_sim = |error: &str| Outcome {
                sim_id: Some(sim_id.clone()),
                ..failed(item.seq, error)
            };
            let decision = match decision {
                Ok(decision) => decision,
                Err(refusal) => {
                    outcomes.push(on_sim("not allowed"));
                    refused.push((sim, refusal));
                    continue;
                }
            };
            tasks::begin_item(&mut tx).await?;
            let done = self
                .change_one(&mut tx, actor, &mut sim, &change, decision)
                .await;
            let outcome = match done {
                Ok(mut result) => {
                    tasks::keep_item(&mut tx).await?;
                    result["sim_id"] = sim_id.clone().into();
                    result["iccid"] = sim.iccid.as_str().into();
                    succeeded(item.seq, Some(sim_id.clone()), &result)
                }
                Err(e) => {
                    let error = item_failure(e, &mut tampered)?;
                    tasks::rollback_item(&mut tx).await?;
                    on_sim(&error)
                }
            };
            outcomes.push(outcome);
        }
        outcomes.sort_by_key(|o| o.seq);
        let records = refused
            .iter()
            .map(|(sim, refusal)| Event {
                action: change.action(),
                sim: Some(sim),
                fields: &[],
                outcome: AuditOutcome::Denied,
                reason: None,
                policy_ids: refusal.policy_ids.clone(),
                remaining_attempts: None,
            })
            .collect();
        self.commit_batch(tx, &batch, &outcomes, records, now)
            .await?;
        for f in &tampered {
            self.core.report_integrity(f).await;
        }
        Ok(())
    }

    /// The SIM id each of `items` names in the actor's tenant, read without locking it;
    /// `None` for an item that names none (no such SIM, or no SIM key at all).
    async fn resolve<'i>(
        &self,
        tx: &mut crate::store::Tx,
        actor: &Principal,
        items: &[&'i TaskItem],
    ) -> ServiceResult<Vec<(&'i TaskItem, Option<SimId>)>> {
        let keys: Vec<Option<SimKey>> = items
            .iter()
            .map(|item| {
                item.input
                    .as_deref()
                    .and_then(|b| std::str::from_utf8(b).ok())
                    .and_then(SimKey::parse)
            })
            .collect();
        let iccids: Vec<&str> = keys
            .iter()
            .filter_map(|key| match key {
                Some(SimKey::Iccid(iccid)) => Some(iccid.as_str()),
                _ => None,
            })
            .collect();
        let by_iccid = if iccids.is_empty() {
            Default::default()
        } else {
            tasks::live_sim_ids(tx, &actor.tenant, &iccids).await?
        };
        Ok(items
            .iter()
            .zip(&keys)
            .map(|(item, key)| {
                let id = match key {
                    Some(SimKey::Id(id)) => Some(*id),
                    Some(SimKey::Iccid(iccid)) => {
                        by_iccid.get(iccid).and_then(|id| SimId::parse(id).ok())
                    }
                    None => None,
                };
                (*item, id)
            })
            .collect())
    }

    /// The change on one SIM, locked and allowed, through the single change's own path:
    /// what the item's owner reads of it.
    async fn change_one(
        &self,
        tx: &mut crate::store::Tx,
        actor: &Principal,
        sim: &mut Sim,
        change: &Change,
        decision: crate::policy::Decision,
    ) -> ServiceResult<Value> {
        match change {
            Change::State { to, reason } => self
                .core
                .change_locked_state(tx, actor, sim, (*to, reason.as_deref()), decision)
                .await
                .map(|previous| json!({"state": to.as_str(), "previous_state": previous.as_str()})),
            Change::Patch(patch) => self
                .core
                .patch_locked(tx, actor, sim, patch, decision)
                .await
                .map(|()| json!({})),
        }
    }
}

/// An item's error as its outcome's: it fails that item alone (an integrity failure kept in
/// `tampered`, to be reported once the batch commits), unless the database failed, which
/// fails the batch (tried again).
fn item_failure(
    e: ServiceError,
    tampered: &mut Vec<crate::vault::IntegrityFailure>,
) -> ServiceResult<String> {
    Ok(match e {
        ServiceError::Unavailable(_) => return Err(e),
        ServiceError::Internal {
            source: Some(ref source),
            ..
        } if source.is::<crate::store::StoreError>() => return Err(e),
        ServiceError::Integrity(f) => {
            tampered.push(f);
            "the SIM failed its integrity check".into()
        }
        ServiceError::InvalidTransition { from, to } => {
            format!("invalid state transition from {from} to {to}")
        }
        ServiceError::Validation(v) => problems(&v),
        ServiceError::NotFound => "no such SIM".into(),
        ServiceError::Forbidden => "not allowed".into(),
        ServiceError::Conflict(why) => format!("conflict: {why}"),
        other => {
            tracing::warn!(error = %crate::telemetry::Causes(&other), "a bulk change item failed");
            "the change could not be made".into()
        }
    })
}

/// The action a task of `kind` was queued under, and its completion is recorded as.
pub(super) fn queue_action(kind: TaskKind) -> Action {
    match kind {
        TaskKind::Import => Action::ImportSims,
        TaskKind::ProvisionLinks => Action::ProvisionLinks,
        TaskKind::KeyRotation => Action::RotateKeys,
        TaskKind::BulkState => Action::BulkChangeState,
        TaskKind::BulkPatch => Action::BulkUpdateSims,
    }
}

/// An item's validation problems as its error: where and what, never a value.
fn problems(errors: &ValidationErrors) -> String {
    let parts: Vec<String> = errors
        .errors()
        .iter()
        .map(|e| match &e.location {
            crate::domain::Location::Pointer(p) => format!("{p}: {}", e.detail),
            crate::domain::Location::Parameter(p) => format!("{p}: {}", e.detail),
        })
        .collect();
    parts.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;

    #[test]
    fn an_item_s_error_fails_it_alone_unless_the_database_failed() {
        let mut tampered = Vec::new();
        for e in [
            ServiceError::NotFound,
            ServiceError::Forbidden,
            ServiceError::Conflict("taken".into()),
            ServiceError::internal("policy set unavailable"),
            ServiceError::internal_because("a vault operation failed", std::fmt::Error),
        ] {
            assert!(item_failure(e, &mut tampered).is_ok());
        }
        let failed = item_failure(ServiceError::NotFound, &mut tampered).unwrap();
        assert_eq!(failed, "no such SIM");
        for e in [
            ServiceError::from(StoreError::Database(sqlx::Error::PoolTimedOut)),
            ServiceError::from(StoreError::Database(sqlx::Error::RowNotFound)),
        ] {
            assert!(item_failure(e, &mut tampered).is_err());
        }
        assert!(tampered.is_empty());
    }
}
