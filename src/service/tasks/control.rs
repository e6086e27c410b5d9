//! A tenant's tasks as a list (`GET /v1/tasks`), and cancelling one
//! (`POST /v1/tasks/{id}/cancel`).

use super::{ITEM_KINDS, Tasks};
use crate::domain::audit::AuditOutcome;
use crate::domain::task::TaskStatus;
use crate::domain::{Principal, Task, TaskId};
use crate::policy::{Action, Context, Resource};
use crate::service::audit::Event;
use crate::service::{Page, ServiceError, ServiceResult, Target};
use crate::store::tasks;

pub use crate::store::tasks::TaskFilter;

impl Tasks {
    /// `GET /v1/tasks`: the caller's tenant's tasks, newest first.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_tasks"))]
    pub async fn list_tasks(
        &self,
        principal: &Principal,
        filter: TaskFilter,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Task>> {
        self.core
            .authorize_in_tenant(principal, Action::ListTasks)
            .await?;
        let offset = crate::service::page_offset(page, page_size);
        let (rows, total) = tasks::list(
            &self.core.db,
            &*self.core.row_key()?,
            &principal.tenant,
            filter,
            i64::from(page_size),
            offset,
        )
        .await?;
        let items = rows
            .into_iter()
            .map(Task::try_from)
            .collect::<ServiceResult<_>>()?;
        Ok(Page::counted(items, total, page, page_size))
    }

    /// `POST /v1/tasks/{id}/cancel`: the task's pending items are cancelled and the task with
    /// them; what is done stays done, and a worker holding a batch commits none of the items
    /// cancelled under it. A task that has ended is answered unchanged. A key rotation runs to
    /// its end (stopping it halfway would leave two key versions in use): `409`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "cancel_task"))]
    pub async fn cancel_task(&self, principal: &Principal, id: TaskId) -> ServiceResult<Task> {
        let row = self
            .task_row(&principal.tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let decision = self
            .core
            .authorize(
                principal,
                Action::CancelTask,
                &Resource::of_tenant(&row.tenant_id),
                &Context::default(),
                Target::default(),
            )
            .await?;
        if row.status.is_finished() {
            return self
                .ended_unchanged(principal, row, decision.policy_ids)
                .await;
        }
        if !ITEM_KINDS.contains(&row.kind) {
            return Err(ServiceError::Conflict(
                "a key rotation runs to its end and cannot be cancelled".into(),
            ));
        }
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let cancelled = match tasks::cancel(&mut tx, &id, now).await? {
            tasks::Cancelled::Items(n) => n,
            ended => {
                // Nothing was changed: it ended meanwhile, or its last batch had committed
                // and it is finished as its worker would have finished it.
                drop(tx);
                if ended == tasks::Cancelled::NothingPending {
                    self.finish_if_done(&id).await?;
                }
                let row = self
                    .task_row(&principal.tenant, id)
                    .await?
                    .ok_or(ServiceError::NotFound)?;
                return self
                    .ended_unchanged(principal, row, decision.policy_ids)
                    .await;
            }
        };
        let task = tasks::get(&mut tx, &*self.core.row_key()?, &principal.tenant, &id)
            .await?
            .ok_or_else(|| ServiceError::internal("a task cancelled in this transaction"))?;
        self.emit_task_completed(&mut tx, &task, TaskStatus::Cancelled, now)
            .await?;
        let reason = format!(
            "task {id}: {cancelled} pending item(s) cancelled; {} succeeded, {} failed before",
            task.completed_items, task.failed_items
        );
        let event = Event::tenant_wide(
            Action::CancelTask,
            AuditOutcome::Allowed,
            Some(&reason),
            decision.policy_ids,
        );
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        tracing::info!(task_id = %id, kind = %task.kind, cancelled, "task cancelled");
        Task::try_from(task)
    }

    /// The answer to cancelling a task that had ended: the task as it is, and the record of
    /// the request.
    async fn ended_unchanged(
        &self,
        principal: &Principal,
        row: crate::domain::task::TaskRecord,
        policy_ids: Vec<String>,
    ) -> ServiceResult<Task> {
        let reason = format!(
            "task {}: had ended ({}), nothing cancelled",
            row.id,
            row.status.as_str()
        );
        let event = Event::tenant_wide(
            Action::CancelTask,
            AuditOutcome::Allowed,
            Some(&reason),
            policy_ids,
        );
        self.core.audit_alone(principal, event).await?;
        Task::try_from(row)
    }
}
