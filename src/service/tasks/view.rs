//! Tasks as their owners read them (`GET /v1/tasks/...`), and as the host that queued them
//! does (`simvault import`, `simvault keys rotate`).

use super::Tasks;
use crate::domain::task::{ItemStatus, TaskItem, TaskRecord};
use crate::domain::{Principal, Task, TaskId, TenantId};
use crate::policy::{Action, Context, Resource};
use crate::service::{Page, ServiceError, ServiceResult};
use crate::store::tasks;

/// One item of a task as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub seq: i64,
    pub line: Option<i64>,
    pub sim_id: Option<uuid::Uuid>,
    pub status: ItemStatus,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

impl TryFrom<TaskItem> for Item {
    type Error = ServiceError;
    fn try_from(r: TaskItem) -> ServiceResult<Item> {
        Ok(Item {
            seq: r.seq,
            line: r.line,
            sim_id: r
                .sim_id
                .map(|s| s.parse())
                .transpose()
                .map_err(|_| ServiceError::internal("corrupt item SIM id"))?,
            status: r.status,
            result: r.result.and_then(|t| serde_json::from_str(&t).ok()),
            error: r.error,
        })
    }
}

impl TryFrom<TaskRecord> for Task {
    type Error = ServiceError;
    fn try_from(r: TaskRecord) -> ServiceResult<Task> {
        Ok(Task {
            id: r.id,
            kind: r.kind,
            status: r.status,
            total_items: r.total_items,
            completed_items: r.completed_items,
            failed_items: r.failed_items,
            cancelled_items: r.cancelled_items,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

impl Tasks {
    /// `GET /v1/tasks/{id}`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_task"))]
    pub async fn get_task(&self, principal: &Principal, id: TaskId) -> ServiceResult<Task> {
        let row = self
            .task_row(&principal.tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        self.core
            .authorize(
                principal,
                Action::ReadTask,
                &Resource::of_tenant(&row.tenant_id),
                &Context::default(),
                crate::service::Target::default(),
            )
            .await?;
        Task::try_from(row)
    }

    /// `GET /v1/tasks/{id}/items`: in request order, optionally of one status.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "task_items"))]
    pub async fn task_items(
        &self,
        principal: &Principal,
        id: TaskId,
        status: Option<ItemStatus>,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Item>> {
        self.get_task(principal, id).await?;
        let offset = crate::service::page_offset(page, page_size);
        let (items, total) = self
            .items_of(id, status, offset, i64::from(page_size))
            .await?;
        Ok(Page::counted(items, total, page, page_size))
    }

    /// Task `id` of `tenant` as the host that queued it sees it (`simvault import`,
    /// `simvault keys rotate`): asked of no policy, as the host queues its tasks.
    pub async fn host_task(&self, tenant: &TenantId, id: TaskId) -> ServiceResult<Option<Task>> {
        self.task_row(tenant, id)
            .await?
            .map(Task::try_from)
            .transpose()
    }

    /// Task `id` if it is `tenant`'s.
    pub(super) async fn task_row(
        &self,
        tenant: &TenantId,
        id: TaskId,
    ) -> ServiceResult<Option<TaskRecord>> {
        Ok(tasks::get(&self.core.db, &*self.core.row_key()?, tenant, &id).await?)
    }

    /// Up to `limit` items of the host's task `id` from `offset`, in request order, optionally
    /// of one status; none when the task is not `tenant`'s.
    pub async fn host_task_items(
        &self,
        tenant: &TenantId,
        id: TaskId,
        status: Option<ItemStatus>,
        offset: i64,
        limit: i64,
    ) -> ServiceResult<Vec<Item>> {
        if self.host_task(tenant, id).await?.is_none() {
            return Ok(Vec::new());
        }
        Ok(self.items_of(id, status, offset, limit).await?.0)
    }

    async fn items_of(
        &self,
        id: TaskId,
        status: Option<ItemStatus>,
        offset: i64,
        limit: i64,
    ) -> ServiceResult<(Vec<Item>, i64)> {
        let (rows, total) = tasks::items(&self.core.db, &id, status, offset, limit).await?;
        let items = rows
            .into_iter()
            .map(Item::try_from)
            .collect::<ServiceResult<_>>()?;
        Ok((items, total))
    }
}
