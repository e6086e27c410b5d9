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
use crate::domain::{Principal, Sim, SimKey, SimPatch, SimState, Task, TaskId, ValidationErrors};
use crate::policy::{Action, Context, Refusal};
use crate::service::audit::Event;
use crate::service::groups::References;
use crate::service::{ServiceError, ServiceResult};
use crate::store::tasks::Outcome;

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
    /// held any more, and are left alone.
    pub(super) async fn changes_batch(&self, batch: Batch<'_>) -> ServiceResult<()> {
        let change = Change::of(batch.task.kind, &batch.task.params)?;
        let actor = &batch.actor;
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let held = batch.still_held(&mut tx).await?;
        let mut outcomes = Vec::new();
        let mut refused: Vec<(Sim, Refusal)> = Vec::new();
        let mut tampered = Vec::new();
        let context = Context::default();
        for item in batch.items.iter().filter(|i| held.contains(&i.seq)) {
            let key = item
                .input
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(SimKey::parse);
            let Some(key) = key else {
                outcomes.push(failed(item.seq, "no such SIM"));
                continue;
            };
            let found = self
                .core
                .lock_in(&mut tx, actor, &key, (change.action(), &context))
                .await;
            let (mut sim, decision) = match found {
                Ok(Some(found)) => found,
                Ok(None) => {
                    outcomes.push(failed(item.seq, "no such SIM"));
                    continue;
                }
                // This item only: the rest of the batch goes on.
                Err(ServiceError::Integrity(f)) => {
                    outcomes.push(failed(item.seq, "the SIM failed its integrity check"));
                    tampered.push(f);
                    continue;
                }
                Err(e) => return Err(e),
            };
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
            let done = match &change {
                Change::State { to, reason } => self
                    .core
                    .change_locked_state(&mut tx, actor, &mut sim, (*to, reason.as_deref()), decision)
                    .await
                    .map(|previous| json!({"state": to.as_str(), "previous_state": previous.as_str()})),
                Change::Patch(patch) => self
                    .core
                    .patch_locked(&mut tx, actor, &mut sim, patch, decision)
                    .await
                    .map(|()| json!({})),
            };
            let outcome = match done {
                Ok(mut result) => {
                    result["sim_id"] = sim_id.clone().into();
                    result["iccid"] = sim.iccid.as_str().into();
                    succeeded(item.seq, Some(sim_id.clone()), &result)
                }
                Err(ServiceError::InvalidTransition { from, to }) => {
                    on_sim(&format!("invalid state transition from {from} to {to}"))
                }
                Err(ServiceError::Validation(v)) => on_sim(&problems(&v)),
                Err(e) => return Err(e),
            };
            outcomes.push(outcome);
        }
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
