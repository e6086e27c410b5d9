//! What a worker obeys of a stored task, and only that: the task's row read and checked
//! against its MAC right before its actor is rebuilt from its parameters, and each leased
//! item checked before its input is used. A task whose row or any of whose leased items
//! fails its check, or has no MAC, is failed (its pending items with it, never run) and, when
//! a MAC did not verify, reported as every integrity failure is.
//!
//! Tasks queued before task rows were authenticated carry no MAC. They are failed ("submit
//! it again"), not given MACs by the adoption of `service::integrity`: that adoption runs
//! once, when a database from before row integrity is first opened, and vouches for rows
//! that existed then; a database already authenticated has no such moment left, and a MAC
//! given now to a pending task would vouch for whatever actor its parameters name today,
//! written by anyone with access to the database. A pending task is short-lived and cheap to
//! submit again; obeying a forged one is not.
//!
//! Must never: rebuild an actor from, or act on the input of, a row whose MAC did not verify.

use std::collections::HashSet;

use super::{Tasks, emit_completion};
use crate::domain::event::TaskCompletion;
use crate::domain::task::{TaskItem, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{Principal, TaskId, TenantId};
use crate::service::audit::Event;
use crate::service::{ServiceError, ServiceResult};
use crate::store::Tx;
use crate::store::tasks::{self, Refused, Unauthentic};

/// Why a task queued before task rows were authenticated does not run.
pub(super) const UNSEALED_TASK: &str =
    "written before task rows were authenticated; submit it again";
/// Why a task with an item queued before task rows were authenticated does not run.
const UNSEALED_ITEM: &str =
    "an item was written before task rows were authenticated; submit the task again";
/// Why a task whose row failed its check does not run (nothing of the row is said).
pub(super) const TAMPERED_TASK: &str = "the task failed its integrity check";
/// Why a task with an item that failed its check does not run.
const TAMPERED_ITEM: &str = "an item of the task failed its integrity check";

/// What failing a task needs of it: its id, tenant and kind (of a row that failed its
/// check: as the row claims them, to say so, never to act on).
#[derive(Debug, Clone, Copy)]
pub(super) struct TaskRef<'a> {
    pub id: &'a TaskId,
    pub tenant: &'a TenantId,
    pub kind: TaskKind,
}

impl<'a> From<&'a TaskRecord> for TaskRef<'a> {
    fn from(task: &'a TaskRecord) -> Self {
        TaskRef {
            id: &task.id,
            tenant: &task.tenant_id,
            kind: task.kind,
        }
    }
}

impl<'a> From<&'a Refused> for TaskRef<'a> {
    fn from(task: &'a Refused) -> Self {
        TaskRef {
            id: &task.id,
            tenant: &task.tenant_id,
            kind: task.kind,
        }
    }
}

impl Tasks {
    /// Task `id` as the worker may obey it. One whose row fails its check is failed and
    /// reported here, and `None` (as for a task that is gone).
    pub(super) async fn runnable(&self, id: &TaskId) -> ServiceResult<Option<TaskRecord>> {
        match tasks::runnable(&self.core.db, &*self.core.row_key()?, id).await? {
            None => Ok(None),
            Some(Ok(task)) => Ok(Some(task)),
            Some(Err(refused)) => {
                self.refuse(&refused).await?;
                Ok(None)
            }
        }
    }

    /// Fails a task whose row failed its check (or has no MAC), and reports a MAC that did
    /// not verify (once the failure is committed, whether or not it could be).
    pub(super) async fn refuse(&self, refused: &Refused) -> ServiceResult<()> {
        let (reason, tampered) = match &refused.why {
            Unauthentic::Unsealed => (UNSEALED_TASK, None),
            Unauthentic::Tampered(f) => (TAMPERED_TASK, Some(f)),
        };
        let failed = self.fail_task(refused.into(), reason).await;
        if let Some(f) = tampered {
            self.core.report_integrity(f).await;
        }
        failed
    }

    /// Fails `task`, some of whose leased items failed their check (`refused`): no item of
    /// the batch runs, nor any after it. Each MAC that did not verify is reported.
    pub(super) async fn refuse_items(
        &self,
        task: &TaskRecord,
        refused: &[Unauthentic],
    ) -> ServiceResult<()> {
        let tampered: Vec<_> = refused
            .iter()
            .filter_map(|why| match why {
                Unauthentic::Tampered(f) => Some(f),
                Unauthentic::Unsealed => None,
            })
            .collect();
        let reason = if tampered.is_empty() {
            UNSEALED_ITEM
        } else {
            TAMPERED_ITEM
        };
        let failed = self.fail_task(task.into(), reason).await;
        for f in tampered {
            self.core.report_integrity(f).await;
        }
        failed
    }

    /// Fails unfinished `task`, which cannot be worked on, for `error` (said without any
    /// stored value): its pending items fail with it, never run; its `task.completed` event
    /// (`failed`) and a `failed` record by the system principal, in one transaction.
    pub(super) async fn fail_task(&self, task: TaskRef<'_>, error: &str) -> ServiceResult<()> {
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let Some(ended) = tasks::fail(&mut tx, task.id, error, now).await? else {
            return Ok(());
        };
        let completion = TaskCompletion {
            task_id: task.id.to_string(),
            kind: task.kind.as_str().to_owned(),
            status: TaskStatus::Failed.as_str().to_owned(),
            total_items: ended.total_items,
            completed_items: ended.completed_items,
            failed_items: ended.failed_items,
        };
        emit_completion(&mut tx, task.tenant, completion, now).await?;
        let reason = format!(
            "task {}: failed ({error}); {} pending item(s) not run",
            task.id, ended.items
        );
        let event = Event::tenant_wide(
            super::changes::queue_action(task.kind),
            crate::domain::audit::AuditOutcome::Failed,
            Some(&reason),
            Vec::new(),
        );
        let system = Principal::local(task.tenant.clone(), "system:tasks");
        self.core.audit_in(&mut tx, &system, event).await?;
        tx.commit().await?;
        tracing::error!(task_id = %task.id, kind = %task.kind, error, "task failed");
        Ok(())
    }
}

/// A leased batch of a task's items, for its kind to work on: the task and items as checked.
pub(super) struct Batch<'a> {
    pub(super) task: &'a TaskRecord,
    /// Who queued the task: the batch's records are theirs, though a worker writes them.
    pub(super) actor: Principal,
    pub(super) items: Vec<TaskItem>,
    /// The worker holding the lease.
    owner: &'a str,
}

/// Who queued `task`: its records are theirs, though a worker writes them later.
fn actor_of(task: &TaskRecord) -> ServiceResult<Principal> {
    let mut actor = task.params["actor"].clone();
    // Tasks queued by the first release stored the actor without its tenant, the task's.
    if let Some(fields) = actor.as_object_mut() {
        fields
            .entry("tenant")
            .or_insert_with(|| task.tenant_id.as_str().into());
    }
    let actor: Principal = serde_json::from_value(actor)
        .map_err(|e| ServiceError::internal_because("task without a valid actor", e))?;
    if actor.tenant != task.tenant_id {
        return Err(ServiceError::internal("a task's actor of another tenant"));
    }
    Ok(actor)
}

/// The leased `items` of `task`, with who queued the task.
pub(super) fn batch<'a>(
    task: &'a TaskRecord,
    items: Vec<TaskItem>,
    owner: &'a str,
) -> ServiceResult<Batch<'a>> {
    Ok(Batch {
        task,
        actor: actor_of(task)?,
        items,
        owner,
    })
}

impl Batch<'_> {
    /// Inside the transaction that records their outcomes: the items this worker still
    /// holds (a batch whose lease ran out may have gone to another worker, in part).
    pub(super) async fn still_held(&self, tx: &mut Tx) -> ServiceResult<HashSet<i64>> {
        Ok(tasks::still_held(tx, &self.task.id, self.owner, &self.items).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(tenant: &TenantId, actor: serde_json::Value) -> TaskRecord {
        TaskRecord {
            id: TaskId::from(uuid::Uuid::from_u128(1)),
            tenant_id: tenant.clone(),
            kind: TaskKind::Import,
            status: TaskStatus::Running,
            params: serde_json::json!({ "actor": actor }),
            total_items: 1,
            completed_items: 0,
            failed_items: 0,
            cancelled_items: 0,
            error: None,
            created_at: 0,
            updated_at: 0,
            kek_version: None,
            wrapped_key: None,
        }
    }

    #[test]
    fn a_task_s_actor_is_its_principal_in_either_release_s_layout() {
        let first_release = serde_json::json!({
            "subject": "prov", "roles": ["provisioner"], "auth_method": "mtls",
            "credential": "ab12", "client_addr": "192.0.2.7:1234", "request_id": "r-9"
        });
        let actor = actor_of(&task(
            &crate::domain::tenant::tenant("acme"),
            first_release.clone(),
        ))
        .unwrap();
        assert_eq!(actor.tenant.as_str(), "acme");
        assert_eq!(actor.subject, "prov");
        assert_eq!(actor.auth_method, crate::domain::AuthMethod::Mtls);
        assert!(actor.has_role(crate::domain::Role::Provisioner));
        assert_eq!(actor.origin.request_id.as_deref(), Some("r-9"));
        // This release writes the tenant too, and reads back what it wrote.
        let written = serde_json::to_value(&actor).unwrap();
        assert_eq!(
            actor_of(&task(
                &crate::domain::tenant::tenant("acme"),
                written.clone()
            ))
            .unwrap(),
            actor
        );

        // Never another tenant's actor, and nothing this release does not know.
        assert!(actor_of(&task(&crate::domain::tenant::tenant("other"), written)).is_err());
        let mut unknown_method = first_release.clone();
        unknown_method["auth_method"] = "kerberos".into();
        assert!(
            actor_of(&task(
                &crate::domain::tenant::tenant("acme"),
                unknown_method
            ))
            .is_err()
        );
        let mut unknown_role = first_release;
        unknown_role["roles"] = serde_json::json!(["root"]);
        assert!(actor_of(&task(&crate::domain::tenant::tenant("acme"), unknown_role)).is_err());
        assert!(
            actor_of(&task(
                &crate::domain::tenant::tenant("acme"),
                serde_json::Value::Null
            ))
            .is_err()
        );
    }
}
