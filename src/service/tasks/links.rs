//! Link provisioning as a task: one item per SIM, each given a link named from a prefix and
//! a counter, with the plans asked for; and the links as their owner reads them.

use serde_json::json;

use super::{Batch, Grant, Tasks, failed, pending_item, succeeded};
use crate::domain::Principal;
use crate::domain::ValidationErrors;
use crate::domain::link::{self, Link};
use crate::domain::task::{TaskItem, TaskKind};
use crate::domain::{Task, TaskId};
use crate::policy::{Action, Decision};
use crate::service::audit::Event;
use crate::service::{Page, Plans, ServiceError, ServiceResult};
use crate::store::links::{self as link_repo, Refused};
use crate::store::sims::{self as sim_repo, SimKey};
use crate::store::{StoreError, plans as plan_repo};

pub const LINKS_TASK: TaskKind = TaskKind::ProvisionLinks;

/// `POST /v1/sims/bulk/provision-links`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionLinks {
    pub name_prefix: String,
    pub sim_ids: Vec<uuid::Uuid>,
    pub plan_ids: Vec<uuid::Uuid>,
    pub counter_start: u64,
}

/// The caller's right to queue link provisioning (see [`Grant`]).
pub type LinksGrant = Grant<Links>;

/// The link provisioning kind, naming its [`Grant`].
#[derive(Debug)]
pub enum Links {}

impl Tasks {
    /// May `principal` provision links? Decided before the body is read.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "authorize_provision_links"))]
    pub async fn authorize_provision_links(
        &self,
        principal: &Principal,
    ) -> ServiceResult<LinksGrant> {
        self.grant(principal, Action::ProvisionLinks).await
    }

    /// `POST /v1/sims/bulk/provision-links`. Unknown plans are refused before anything is
    /// queued; a SIM that is linked already (or not the tenant's) fails its item only.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "start_provision_links"))]
    pub async fn start_provision_links(
        &self,
        principal: &Principal,
        request: ProvisionLinks,
    ) -> ServiceResult<Task> {
        let grant = self.authorize_provision_links(principal).await?;
        self.queue_provision_links(grant, request).await
    }

    /// Queues link provisioning asked for under `grant`.
    pub async fn queue_provision_links(
        &self,
        grant: LinksGrant,
        request: ProvisionLinks,
    ) -> ServiceResult<Task> {
        let LinksGrant {
            principal,
            policy_ids,
            ..
        } = grant;
        let principal = &principal;
        let tenant = &principal.tenant;
        let mut errors = ValidationErrors::new();
        for (i, plan) in request.plan_ids.iter().enumerate() {
            if plan_repo::get(&self.core.db, &principal.tenant, *plan)
                .await?
                .is_none()
            {
                errors.pointer(format!("/plan_ids/{i}"), "no plan with this id");
            }
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let task_id = TaskId::new();
        let items: Vec<TaskItem> = request
            .sim_ids
            .iter()
            .enumerate()
            // The SIM is the item's input too: input is cleared when an item ends, which breaks
            // its MAC, so a finished item set back to pending in storage is never run again.
            .map(|(i, sim)| TaskItem {
                sim_id: Some(sim.to_string()),
                input: Some(sim.to_string().into_bytes()),
                ..pending_item(&task_id, i)
            })
            .collect();
        let params = json!({
            "actor": principal,
            "name_prefix": request.name_prefix,
            "counter_start": request.counter_start,
            "plan_ids": request.plan_ids,
        });
        let mut tx = self.core.db.begin().await?;
        let task = self
            .queue_task(
                &mut tx,
                (&task_id, tenant, LINKS_TASK),
                params,
                None,
                &items,
            )
            .await?;
        let total = task.total_items;
        let reason = format!(
            "task {task_id}: {total} SIM(s), names {}_{}…",
            request.name_prefix, request.counter_start
        );
        self.commit_queued(tx, principal, (Action::ProvisionLinks, &reason), policy_ids)
            .await?;
        tracing::info!(task_id = %task_id, tenant = %tenant, total, "link provisioning queued");
        Task::try_from(task)
    }
}

impl Plans {
    /// `GET /v1/links/{id}`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "get_link"))]
    pub async fn get_link(&self, principal: &Principal, id: uuid::Uuid) -> ServiceResult<Link> {
        self.core
            .authorize_in_tenant(principal, Action::ReadLinks)
            .await?;
        link_repo::get(&self.core.db, &*self.core.row_key()?, &principal.tenant, id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// `GET /v1/links`, oldest first, optionally of one SIM.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "list_links"))]
    pub async fn list_links(
        &self,
        principal: &Principal,
        sim: Option<uuid::Uuid>,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Link>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadLinks)
            .await?;
        let offset = crate::service::page_offset(page, page_size);
        let sim = sim.map(|s| s.to_string());
        let (items, total) = link_repo::list(
            &self.core.db,
            &*self.core.row_key()?,
            &principal.tenant,
            sim.as_deref(),
            i64::from(page_size),
            offset,
        )
        .await?;
        Ok(Page::counted(items, total, page, page_size))
    }
}

impl Tasks {
    /// Provisions the links of a leased batch of `task`'s items, in one transaction with
    /// their outcomes and records.
    pub(super) async fn links_batch(&self, batch: Batch<'_>) -> ServiceResult<()> {
        let (task, items) = (batch.task, batch.items.as_slice());
        let tenant = &task.tenant_id;
        let params = &task.params;
        let prefix = params["name_prefix"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let counter_start = params["counter_start"].as_u64().unwrap_or(1);
        let plan_ids: Vec<uuid::Uuid> =
            serde_json::from_value(params["plan_ids"].clone()).unwrap_or_default();
        let task_id = task.id;
        let now = self.core.clock.now();
        let mut tx = self.core.db.begin().await?;
        let held = batch.still_held(&mut tx).await?;
        let integrity = self.core.row_key()?;
        let mut outcomes = Vec::new();
        let mut linked = Vec::new();
        let mut tampered = Vec::new();
        for item in items.iter().filter(|i| held.contains(&i.seq)) {
            // Read from the input (present only while the item is pending, see its creation).
            let sim_id = item
                .input
                .as_deref()
                .and_then(|b| std::str::from_utf8(b).ok())
                .and_then(|s| s.parse::<uuid::Uuid>().ok());
            let sim = match sim_id {
                Some(id) => {
                    match sim_repo::get_for_update(
                        &mut tx,
                        &integrity,
                        tenant,
                        &SimKey::Id(id.into()),
                    )
                    .await
                    {
                        Ok(sim) => sim,
                        // This item only: the rest of the batch goes on.
                        Err(StoreError::Integrity(f)) => {
                            outcomes.push(failed(item.seq, "the SIM failed its integrity check"));
                            tampered.push(f);
                            continue;
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                None => None,
            };
            let Some(sim) = sim else {
                outcomes.push(failed(item.seq, "no such SIM"));
                continue;
            };
            let index = u64::try_from(item.seq - 1).unwrap_or(0);
            let link = Link {
                id: uuid::Uuid::new_v4(),
                tenant_id: tenant.clone(),
                sim_id: sim.id,
                name: link::name(&prefix, counter_start, index),
                plan_ids: plan_ids.clone(),
                task_id: Some(task_id.into()),
                created_at: now,
            };
            match link_repo::insert(&mut tx, &integrity, &link).await? {
                Ok(()) => {
                    let result = json!({"link_id": link.id, "name": link.name});
                    outcomes.push(succeeded(item.seq, None, &result));
                    linked.push((sim, link));
                }
                Err(Refused::SimLinked) => outcomes.push(failed(item.seq, "SIM already linked")),
                Err(Refused::NameTaken) => {
                    outcomes.push(failed(item.seq, "a link with this name already exists"))
                }
            }
        }
        let reasons: Vec<String> = linked
            .iter()
            .map(|(_, l)| format!("link {} ({}), task {}", l.name, l.id, task.id))
            .collect();
        let records = linked
            .iter()
            .zip(&reasons)
            .map(|((sim, _), reason)| Event {
                reason: Some(reason),
                ..Event::allowed(Action::ProvisionLinks, sim, Decision::default())
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
