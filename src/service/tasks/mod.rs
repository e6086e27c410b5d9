//! Background tasks: the engine every kind shares (queueing, leases, the still-held check,
//! completion, the sweeper and the worker loops) and, one file each, the kinds: SIM imports
//! ([`import`]), link provisioning ([`links`]), bulk state and field changes ([`changes`])
//! and key rotation ([`rotation`]). Listing and cancelling tasks is in `control`.
//!
//! A task and its items are rows, written when the request is accepted (`202`). Item tasks
//! (import, link provisioning) are worked on in batches: workers in every replica lease
//! batches of pending items (PostgreSQL `FOR UPDATE SKIP LOCKED`, so replicas take disjoint
//! batches) and commit each batch's changes, its items' outcomes, its audit records and outbox
//! events in one transaction: an item is done exactly once, and a process killed mid-batch
//! leaves its items pending, to be leased again when the lease runs out. A key rotation is
//! leased whole, its lease extended with each batch's progress. A task completes (with a
//! `task.completed` event and a record by a system principal) when no work is left. What a
//! task's owner (and the host that queued it) reads of it is in `view`.

mod authentic;
pub mod changes;
mod control;
pub mod import;
pub mod links;
pub mod rotation;
mod view;

use std::sync::Arc;

use std::marker::PhantomData;
use std::time::Duration;

use tokio::sync::watch;

use super::audit::Event;
use super::{ServiceError, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::event::{DomainEvent, TaskCompletion};
use crate::domain::task::{ItemStatus, TaskItem, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{Principal, Task, TaskId, TenantId};
use crate::policy::Action;
use crate::store::tasks::{self, Leased, Outcome};
use crate::store::{Tx, outbox};

pub use changes::{BulkPatch, BulkState, PATCH_TASK, PatchGrant, STATE_TASK, StateGrant};
pub use control::TaskFilter;
pub use import::{IMPORT_TASK, ImportBatch, ImportGrant, ImportRow};
pub use links::{LINKS_TASK, LinksGrant, ProvisionLinks};
pub use rotation::{KeyStatus, ROTATION_TASK};
pub use view::Item;

use authentic::{Batch, batch};

crate::service::capability! {
    /// Durable background tasks: queued by a use case, run by workers under leases.
    pub struct Tasks {
        core: crate::service::Core,
        /// Woken when a task is queued.
        tasks_ready: Arc<tokio::sync::Notify>,
    }
}

/// The kinds worked on item by item.
const ITEM_KINDS: [TaskKind; 4] = [IMPORT_TASK, LINKS_TASK, STATE_TASK, PATCH_TASK];
/// Items leased and committed together.
const BATCH: i64 = 500;

/// The caller's right to queue a task of kind `K`, decided from the principal alone, before
/// the request's body is read (a refusal is recorded as every refusal is), so that a caller
/// without the right never gets a large body buffered or parsed. Only the kind's
/// `authorize_*` use case makes one.
#[derive(Debug)]
pub struct Grant<K> {
    principal: Principal,
    policy_ids: Vec<String>,
    kind: PhantomData<fn() -> K>,
}

/// A lease's length in the store's time unit (microseconds).
fn lease_micros(lease: Duration) -> i64 {
    i64::try_from(lease.as_micros()).unwrap_or(i64::MAX)
}

/// A pending item of task `task_id` at `index` (from 0; items are numbered from 1), with
/// nothing attached yet.
fn pending_item(task_id: &TaskId, index: usize) -> TaskItem {
    TaskItem {
        task_id: *task_id,
        seq: i64::try_from(index).unwrap_or(i64::MAX) + 1,
        line: None,
        status: ItemStatus::Pending,
        input: None,
        sim_id: None,
        result: None,
        error: None,
    }
}

/// A done item's outcome: `result` is what its owner reads of it.
fn succeeded(seq: i64, sim_id: Option<String>, result: &serde_json::Value) -> Outcome {
    Outcome {
        seq,
        succeeded: true,
        sim_id,
        result: Some(result.to_string()),
        error: None,
    }
}

/// A failed item's outcome.
fn failed(seq: i64, error: &str) -> Outcome {
    Outcome {
        seq,
        succeeded: false,
        sim_id: None,
        result: None,
        error: Some(error.to_owned()),
    }
}

/// A new pending task of `kind` at `now`, with no item counted and no key of its own.
fn pending_task(
    id: TaskId,
    tenant: &TenantId,
    kind: TaskKind,
    params: serde_json::Value,
    now: i64,
) -> TaskRecord {
    TaskRecord {
        id,
        tenant_id: tenant.clone(),
        kind,
        status: TaskStatus::Pending,
        params,
        total_items: 0,
        completed_items: 0,
        failed_items: 0,
        cancelled_items: 0,
        error: None,
        created_at: now,
        updated_at: now,
        kek_version: None,
        wrapped_key: None,
    }
}

impl Tasks {
    /// Decides `action` for a task of kind `K` in the principal's tenant.
    async fn grant<K>(&self, principal: &Principal, action: Action) -> ServiceResult<Grant<K>> {
        let decision = self.core.authorize_in_tenant(principal, action).await?;
        Ok(Grant {
            principal: principal.clone(),
            policy_ids: decision.policy_ids,
            kind: PhantomData,
        })
    }

    /// Writes item task `id` and its items; the counts come from the items.
    async fn queue_task(
        &self,
        tx: &mut Tx,
        (id, tenant, kind): (&TaskId, &TenantId, TaskKind),
        params: serde_json::Value,
        key: Option<(i64, Vec<u8>)>,
        items: &[TaskItem],
    ) -> ServiceResult<TaskRecord> {
        let now = self.core.clock.now();
        let (kek_version, wrapped_key) = key.unzip();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let task = TaskRecord {
            total_items: count(items.len()),
            failed_items: count(
                items
                    .iter()
                    .filter(|i| i.status == ItemStatus::Failed)
                    .count(),
            ),
            kek_version,
            wrapped_key,
            ..pending_task(*id, tenant, kind, params, now)
        };
        let integrity = self.core.row_key()?;
        tasks::insert(tx, &integrity, &task).await?;
        tasks::insert_items(tx, &integrity, items).await?;
        Ok(task)
    }

    /// Ends the queueing of a task: the `allowed` record of `action` with `reason`, the
    /// commit, and the workers woken.
    async fn commit_queued(
        &self,
        mut tx: Tx,
        principal: &Principal,
        (action, reason): (Action, &str),
        policy_ids: Vec<String>,
    ) -> ServiceResult<()> {
        let event = Event::tenant_wide(action, AuditOutcome::Allowed, Some(reason), policy_ids);
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        self.tasks_ready.notify_waiters();
        Ok(())
    }

    /// Ends a batch of `task`: its items' outcomes and the records of what they did,
    /// committed with whatever the kind wrote in `tx`.
    async fn commit_batch(
        &self,
        mut tx: Tx,
        batch: &Batch<'_>,
        outcomes: &[Outcome],
        records: Vec<Event<'_>>,
        now: i64,
    ) -> ServiceResult<()> {
        tasks::record_outcomes(&mut tx, &batch.task.id, outcomes, now).await?;
        self.core
            .audit_all_in(&mut tx, &batch.actor, records)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The `completed` record of a task of `tenant`, written by the system principal `subject`.
    async fn audit_completed(
        &self,
        tx: &mut Tx,
        (tenant, subject): (&str, &str),
        action: Action,
        reason: &str,
    ) -> ServiceResult<()> {
        let event = Event::tenant_wide(action, AuditOutcome::Completed, Some(reason), Vec::new());
        let tenant = TenantId::parse(tenant)
            .map_err(|e| ServiceError::internal_because("a task of an invalid tenant", e))?;
        self.core
            .audit_in(tx, &Principal::local(tenant, subject), event)
            .await
    }

    /// One step of the host working on its own task `id` beside any running server: the task
    /// as it is now and, unless it has ended, whether a batch of it was leased and worked on
    /// ([`Tasks::work_on`]). `None` when there is no such task of `tenant`.
    pub async fn advance_task(
        &self,
        tenant: &TenantId,
        id: TaskId,
        owner: &str,
        lease: Duration,
    ) -> ServiceResult<Option<(Task, bool)>> {
        let Some(row) = self.task_row(tenant, id).await? else {
            return Ok(None);
        };
        let worked = if row.status.is_finished() {
            false
        } else {
            self.work_on(&row.id, owner, lease).await?
        };
        Ok(Some((Task::try_from(row)?, worked)))
    }

    /// Works on item tasks: leases one batch of items and commits its outcomes. Returns
    /// whether there was anything to do.
    pub async fn run_bulk_batch(&self, owner: &str, lease: Duration) -> ServiceResult<bool> {
        let now = self.core.clock.now();
        let Some(task) = tasks::with_claimable_items(&self.core.db, &ITEM_KINDS, now).await? else {
            // Nothing to lease: finish tasks whose last worker stopped just before.
            for id in tasks::without_pending(&self.core.db, &ITEM_KINDS).await? {
                self.finish_if_done(&id).await?;
            }
            return Ok(false);
        };
        // Even when another replica leased the batch first, there may be more: look again.
        self.work_on(&task, owner, lease).await.map(|_| true)
    }

    /// Leases one batch of `task`'s items and commits their outcomes; finishes the task when
    /// none is left. Returns whether it leased anything.
    pub async fn work_on(
        &self,
        task: &TaskId,
        owner: &str,
        lease: Duration,
    ) -> ServiceResult<bool> {
        self.work_on_up_to(task, owner, lease, BATCH).await
    }

    /// [`Tasks::work_on`] with a batch of at most `limit` items (a host, or a test, that
    /// wants to go step by step).
    pub async fn work_on_up_to(
        &self,
        task: &TaskId,
        owner: &str,
        lease: Duration,
        limit: i64,
    ) -> ServiceResult<bool> {
        let lease_us = lease_micros(lease);
        let now = self.core.clock.now();
        let integrity = self.core.row_key()?;
        let leased = tasks::claim_items(
            &self.core.db,
            &integrity,
            task,
            owner,
            now,
            now + lease_us,
            limit,
        )
        .await?;
        if leased.is_empty() {
            self.finish_if_done(task).await?;
            return Ok(false);
        }
        self.work_leased(task, leased, owner).await?;
        self.finish_if_done(task).await?;
        Ok(true)
    }

    /// Works on the `leased` items of task `task_id`, leased to `owner`, and commits their
    /// outcomes: those it still holds when it commits (not leased again elsewhere, nor
    /// cancelled). The task is read here, checked against its MAC, before its actor is
    /// rebuilt; a task or item that fails its check fails the task, and nothing of the batch
    /// runs.
    pub async fn work_leased(
        &self,
        task_id: &TaskId,
        leased: Leased,
        owner: &str,
    ) -> ServiceResult<()> {
        let Some(task) = self.runnable(task_id).await? else {
            return Ok(());
        };
        if !leased.refused.is_empty() {
            return self.refuse_items(&task, &leased.refused).await;
        }
        let task = &task;
        let batch = match batch(task, leased.items, owner) {
            Ok(batch) => batch,
            Err(e) => {
                // Whose records its items would be is unknown: none runs, and once is enough.
                tracing::error!(task_id = %task.id, error = %crate::telemetry::Causes(&e), "a task without a valid actor");
                return self
                    .fail_task(task.into(), "the task's actor could not be read")
                    .await;
            }
        };
        match task.kind {
            IMPORT_TASK => self.import_batch(batch).await,
            LINKS_TASK => self.links_batch(batch).await,
            STATE_TASK | PATCH_TASK => self.changes_batch(batch).await,
            other => Err(ServiceError::internal(format!(
                "unknown bulk task type {other}"
            ))),
        }
    }

    /// Completes an item task with no pending item left: status, `task.completed` event and
    /// record, and its key destroyed, in one transaction (only one worker gets to do it).
    async fn finish_if_done(&self, task_id: &TaskId) -> ServiceResult<()> {
        let mut tx = self.core.db.begin().await?;
        let task = match tasks::lock_if_done(&mut tx, &*self.core.row_key()?, task_id).await? {
            None => return Ok(()),
            Some(Ok(task)) => task,
            Some(Err(refused)) => {
                drop(tx);
                return self.refuse(&refused).await;
            }
        };
        let now = self.core.clock.now();
        tasks::complete(&mut tx, task_id, TaskStatus::Completed, now).await?;
        self.emit_task_completed(&mut tx, &task, TaskStatus::Completed, now)
            .await?;
        let action = changes::queue_action(task.kind);
        let reason = format!(
            "task {task_id}: {} succeeded, {} failed",
            task.completed_items, task.failed_items
        );
        self.audit_completed(
            &mut tx,
            (task.tenant_id.as_str(), "system:tasks"),
            action,
            &reason,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(%task_id, kind = %task.kind, completed = task.completed_items, failed = task.failed_items, "task completed");
        Ok(())
    }

    /// The `task.completed` outbox event (counts as of completion).
    async fn emit_task_completed(
        &self,
        tx: &mut Tx,
        task: &TaskRecord,
        status: TaskStatus,
        now: i64,
    ) -> ServiceResult<()> {
        let completion = TaskCompletion {
            task_id: task.id.to_string(),
            kind: task.kind.as_str().to_owned(),
            status: status.as_str().to_owned(),
            total_items: task.total_items,
            completed_items: task.completed_items,
            failed_items: task.failed_items,
        };
        emit_completion(tx, &task.tenant_id, completion, now).await
    }
}

/// A `task.completed` outbox event in `tenant`.
async fn emit_completion(
    tx: &mut Tx,
    tenant: &TenantId,
    completion: TaskCompletion,
    now: i64,
) -> ServiceResult<()> {
    let event = DomainEvent::task_completed(tenant, completion, now);
    outbox::insert(tx, &[event]).await?;
    Ok(())
}

/// A background task loop: runs `step` until `stop` turns true — again at once when it found
/// work, otherwise after `poll` or as soon as a task is queued (`tasks_ready`; the wake-up is
/// registered before looking, so a task queued meanwhile is not missed).
async fn task_loop<Step, Fut>(
    tasks: &Tasks,
    what: &str,
    poll: Duration,
    mut stop: watch::Receiver<bool>,
    mut step: Step,
) where
    Step: FnMut() -> Fut,
    Fut: std::future::Future<Output = ServiceResult<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let queued = tasks.tasks_ready.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        match step().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(ServiceError::Integrity(f)) => tasks.core.report_integrity(&f).await,
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::Causes(&e), worker = what, "background task error")
            }
        }
        tokio::select! {
            () = queued => {}
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// The background workers of every task kind, until `stop` turns true: key rotations, and
/// (unless this replica leaves them to others) the item tasks.
pub async fn worker(
    tasks: Tasks,
    settings: crate::config::TaskSettings,
    stop: watch::Receiver<bool>,
) {
    let rotation = rotation::worker(tasks.clone(), settings.lease, settings.poll, stop.clone());
    tokio::join!(rotation, item_worker(tasks, settings, stop));
}

/// The worker for item tasks: `bulk_concurrency` loops that work while there are items to
/// lease (in this or any replica's tasks, including those a dead worker left), until `stop`
/// turns true.
async fn item_worker(
    tasks: Tasks,
    settings: crate::config::TaskSettings,
    stop: watch::Receiver<bool>,
) {
    if !settings.bulk_worker {
        tracing::info!("bulk task worker off in this replica (SIMVAULT_BULK_WORKER=false)");
        return;
    }
    let loops = (0..settings.bulk_concurrency.max(1))
        .map(|_| item_loop(tasks.clone(), settings.lease, settings.poll, stop.clone()));
    futures_util::future::join_all(loops).await;
}

async fn item_loop(tasks: Tasks, lease: Duration, poll: Duration, stop: watch::Receiver<bool>) {
    let owner = uuid::Uuid::new_v4().to_string();
    let step = || {
        let (tasks, owner) = (tasks.clone(), owner.clone());
        async move { tasks.run_bulk_batch(&owner, lease).await }
    };
    task_loop(&tasks, "bulk tasks", poll, stop, step).await;
}
