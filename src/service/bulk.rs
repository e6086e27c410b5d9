//! Bulk tasks: importing batches of SIMs with their secrets, and provisioning links.
//!
//! A task and its items are rows, written when the request is accepted (`202`). Workers in
//! every replica lease batches of pending items (PostgreSQL `FOR UPDATE SKIP LOCKED`, so
//! replicas take disjoint batches) and commit each batch's changes, its items' outcomes, its
//! audit records and outbox events in one transaction: an item is done exactly once, and a
//! process killed mid-batch leaves its items pending, to be leased again when the lease runs
//! out. The task completes (with a `task.completed` event) when no item is pending.
//!
//! Import items hold secrets until they are done: each is sealed under the task's own data
//! key (wrapped by the tenant KEK), cleared when its SIM is created, and the task key is
//! destroyed when the task ends.

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::watch;
use zeroize::Zeroizing;

use super::audit::Event;
use super::{Page, ServiceError, ServiceResult, Services};
use crate::domain::event::{DomainEvent, SimChange, TaskCompletion};
use crate::domain::link::{self, Link};
use crate::domain::sim::SecretChanges;
use crate::domain::{
    AuthMethod, Origin, Principal, Role, Sim, SimInput, Task, TenantId, ValidationErrors,
};
use crate::policy::{Action, Decision};
use crate::store::links::{self as link_repo, Refused};
use crate::store::sims::{self as sim_repo, SimKey};
use crate::store::tasks::{self, ItemRow, Outcome, TaskRow};
use crate::store::{StoreError, Tx, outbox, plans as plan_repo};
use crate::vault;

pub const IMPORT_TASK: &str = "import";
pub const LINKS_TASK: &str = "provision_links";
const KINDS: [&str; 2] = [IMPORT_TASK, LINKS_TASK];
/// Items leased and committed together.
const BATCH: i64 = 500;

/// One row of an import: where it came from, and the SIM it asks for or why it is invalid.
#[derive(Debug)]
pub struct ImportRow {
    /// The line of the source file, or the position in the request (from 1).
    pub line: i64,
    pub sim: Result<SimInput, ValidationErrors>,
}

/// `POST /v1/sims/bulk/provision-links`, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionLinks {
    pub name_prefix: String,
    pub sim_ids: Vec<uuid::Uuid>,
    pub plan_ids: Vec<uuid::Uuid>,
    pub counter_start: u64,
}

/// One item of a task as its owner sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub seq: i64,
    pub line: Option<i64>,
    pub sim_id: Option<uuid::Uuid>,
    pub status: String,
    pub result: Option<serde_json::Value>,
    pub error: Option<String>,
}

/// Who asked for a task: its records are theirs, though a worker writes them later.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Actor {
    subject: String,
    roles: Vec<String>,
    auth_method: String,
    credential: Option<String>,
    client_addr: Option<String>,
    request_id: Option<String>,
}

impl Actor {
    fn of(p: &Principal) -> Self {
        Actor {
            subject: p.subject.clone(),
            roles: p.roles.iter().map(|r| r.as_str().to_owned()).collect(),
            auth_method: p.auth_method.as_str().to_owned(),
            credential: p.credential_id.clone(),
            client_addr: p.origin.client_addr.clone(),
            request_id: p.origin.request_id.clone(),
        }
    }

    fn principal(&self, tenant: &str) -> ServiceResult<Principal> {
        let tenant = TenantId::parse(tenant).map_err(|e| ServiceError::Internal(e.into()))?;
        Ok(Principal {
            tenant,
            roles: self
                .roles
                .iter()
                .filter_map(|r| r.parse::<Role>().ok())
                .collect(),
            subject: self.subject.clone(),
            auth_method: match self.auth_method.as_str() {
                "mtls" => AuthMethod::Mtls,
                "jwt" => AuthMethod::Jwt,
                _ => AuthMethod::Local,
            },
            credential_id: self.credential.clone(),
            origin: Origin {
                request_id: self.request_id.clone(),
                client_addr: self.client_addr.clone(),
            },
        })
    }
}

/// The text of an item's validation failure: every field with its problem, never a value.
fn describe(errors: &ValidationErrors) -> String {
    errors
        .errors()
        .iter()
        .map(|e| match &e.location {
            crate::domain::Location::Pointer(p) | crate::domain::Location::Parameter(p) => {
                format!("{}: {}", p.trim_start_matches('/'), e.detail)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl TryFrom<ItemRow> for Item {
    type Error = ServiceError;
    fn try_from(r: ItemRow) -> ServiceResult<Item> {
        Ok(Item {
            seq: r.seq,
            line: r.line,
            sim_id: r
                .sim_id
                .map(|s| s.parse())
                .transpose()
                .map_err(|_| ServiceError::Internal("corrupt item SIM id".into()))?,
            status: r.status,
            result: r.result.and_then(|t| serde_json::from_str(&t).ok()),
            error: r.error,
        })
    }
}

/// The caller's right to queue an import, decided from the principal alone (no row read
/// yet). Only [`Services::authorize_import`] makes one.
#[derive(Debug)]
pub struct ImportGrant {
    principal: Principal,
    policy_ids: Vec<String>,
}

impl ImportGrant {
    /// An empty batch for this grant's tenant.
    pub fn batch(&self) -> ServiceResult<ImportBatch> {
        ImportBatch::new(&self.principal.tenant)
    }
}

/// The caller's right to queue link provisioning, decided before its body is read.
#[derive(Debug)]
pub struct LinksGrant {
    principal: Principal,
    policy_ids: Vec<String>,
}

/// An import being received: each row is validated by the caller and sealed here under the
/// task's own key as it arrives, so that neither the request nor the rows' secrets are ever
/// held as one buffer; only the sealed items wait for the task to be written.
pub struct ImportBatch {
    task_id: String,
    tenant: TenantId,
    task_key: vault::Key,
    items: Vec<ItemRow>,
}

impl std::fmt::Debug for ImportBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImportBatch")
            .field("task_id", &self.task_id)
            .field("items", &self.items.len())
            .finish_non_exhaustive()
    }
}

impl ImportBatch {
    fn new(tenant: &TenantId) -> ServiceResult<Self> {
        Ok(ImportBatch {
            task_id: uuid::Uuid::new_v4().to_string(),
            tenant: tenant.clone(),
            task_key: vault::new_key()?,
            items: Vec::new(),
        })
    }

    /// The rows received so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Adds the next row: sealed when valid, failed at once (with why) when not. More than
    /// [`link::MAX_BULK_ITEMS`] rows is a validation error.
    pub fn push(&mut self, row: ImportRow) -> ServiceResult<()> {
        if self.items.len() >= link::MAX_BULK_ITEMS {
            return Err(too_many_rows().into());
        }
        let seq = i64::try_from(self.items.len()).unwrap_or(i64::MAX) + 1;
        let mut item = ItemRow {
            task_id: self.task_id.clone(),
            seq,
            line: Some(row.line),
            status: "pending".into(),
            input: None,
            sim_id: None,
            result: None,
            error: None,
        };
        // OP becomes OPc here: the staged input never holds OP.
        let input = row
            .sim
            .and_then(|mut input| super::secrets::opc_from_op(&mut input).map(|()| input));
        match input {
            Ok(input) => {
                // The validated input itself, sealed: read back as it was, not validated again.
                let text = Zeroizing::new(
                    serde_json::to_vec(&input)
                        .map_err(|e| ServiceError::Internal(e.to_string()))?,
                );
                let aad = vault::task_item_aad(self.tenant.as_str(), &self.task_id, seq);
                item.input = Some(vault::seal(&self.task_key, &text, &aad)?);
            }
            Err(errors) => {
                item.status = "failed".into();
                item.error = Some(describe(&errors));
            }
        }
        self.items.push(item);
        Ok(())
    }
}

fn too_many_rows() -> ValidationErrors {
    ValidationErrors::single_pointer(
        "/sims",
        format!("must hold 1 to {} SIMs", link::MAX_BULK_ITEMS),
    )
}

impl Services {
    /// May `principal` import SIMs? Decided from the principal alone, before any row is read
    /// (a refusal is recorded as every refusal is), so that a caller without the right never
    /// gets a large body buffered or parsed.
    pub async fn authorize_import(&self, principal: &Principal) -> ServiceResult<ImportGrant> {
        let decision = self
            .authorize_in_tenant(principal, Action::ImportSims)
            .await?;
        Ok(ImportGrant {
            principal: principal.clone(),
            policy_ids: decision.policy_ids,
        })
    }

    /// May `principal` provision links? Decided before the body is read.
    pub async fn authorize_provision_links(
        &self,
        principal: &Principal,
    ) -> ServiceResult<LinksGrant> {
        let decision = self
            .authorize_in_tenant(principal, Action::ProvisionLinks)
            .await?;
        Ok(LinksGrant {
            principal: principal.clone(),
            policy_ids: decision.policy_ids,
        })
    }

    /// `POST /v1/sims/bulk/import` with rows already in hand: authorizes, then queues them.
    pub async fn start_import(
        &self,
        principal: &Principal,
        rows: Vec<ImportRow>,
    ) -> ServiceResult<Task> {
        let grant = self.authorize_import(principal).await?;
        self.queue_import(&grant.principal, rows, grant.policy_ids)
            .await
    }

    /// Queues a batch received under `grant` as one task. Invalid rows have failed already
    /// (their item says why); the rest are queued, sealed.
    pub async fn queue_granted_import(
        &self,
        grant: ImportGrant,
        batch: ImportBatch,
    ) -> ServiceResult<Task> {
        self.queue_batch(&grant.principal, batch, grant.policy_ids)
            .await
    }

    /// Queues an import as `actor`'s (the API after authorizing, or `simvault import` on the
    /// host), recorded as allowed by `policy_ids`.
    pub async fn queue_import(
        &self,
        actor: &Principal,
        rows: Vec<ImportRow>,
        policy_ids: Vec<String>,
    ) -> ServiceResult<Task> {
        let mut batch = ImportBatch::new(&actor.tenant)?;
        for row in rows {
            batch.push(row)?;
        }
        self.queue_batch(actor, batch, policy_ids).await
    }

    async fn queue_batch(
        &self,
        principal: &Principal,
        batch: ImportBatch,
        policy_ids: Vec<String>,
    ) -> ServiceResult<Task> {
        if batch.is_empty() {
            return Err(too_many_rows().into());
        }
        if batch.tenant != principal.tenant {
            return Err(ServiceError::Internal(
                "an import batch was queued for another tenant".into(),
            ));
        }
        let ImportBatch {
            task_id,
            task_key,
            items,
            ..
        } = batch;
        let tenant = principal.tenant.as_str();
        let mut tx = self.db.begin().await?;
        let (version, kek) = self.active_kek(&mut tx, tenant).await?;
        let wrapped = vault::seal(
            &kek,
            task_key.as_ref(),
            &vault::task_key_aad(tenant, &task_id, version),
        )?;
        let params = json!({ "actor": Actor::of(principal) });
        let task = self
            .queue_task(
                &mut tx,
                (&task_id, tenant, IMPORT_TASK),
                params,
                Some((version, wrapped)),
                &items,
            )
            .await?;
        let (total, failed) = (task.total_items, task.failed_items);
        let reason = format!("task {task_id}: {total} row(s), {failed} invalid");
        let event = Event::tenant_wide(Action::ImportSims, "allowed", Some(&reason), policy_ids);
        self.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        self.tasks_ready.notify_waiters();
        tracing::info!(task_id = %task_id, tenant, total, invalid = failed, "import queued");
        self.finish_if_done(&task_id).await?;
        Task::try_from(task)
    }

    /// `POST /v1/sims/bulk/provision-links`. Unknown plans are refused before anything is
    /// queued; a SIM that is linked already (or not the tenant's) fails its item only.
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
        } = grant;
        let principal = &principal;
        let tenant = principal.tenant.as_str();
        let mut errors = ValidationErrors::new();
        for (i, plan) in request.plan_ids.iter().enumerate() {
            if plan_repo::get(&self.db, tenant, *plan).await?.is_none() {
                errors.pointer(format!("/plan_ids/{i}"), "no plan with this id");
            }
        }
        if !errors.is_empty() {
            return Err(errors.into());
        }
        let task_id = uuid::Uuid::new_v4().to_string();
        let items: Vec<ItemRow> = request
            .sim_ids
            .iter()
            .enumerate()
            .map(|(i, sim)| ItemRow {
                task_id: task_id.clone(),
                seq: i64::try_from(i).unwrap_or(i64::MAX) + 1,
                line: None,
                status: "pending".into(),
                input: None,
                sim_id: Some(sim.to_string()),
                result: None,
                error: None,
            })
            .collect();
        let params = json!({
            "actor": Actor::of(principal),
            "name_prefix": request.name_prefix,
            "counter_start": request.counter_start,
            "plan_ids": request.plan_ids,
        });
        let mut tx = self.db.begin().await?;
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
        let event =
            Event::tenant_wide(Action::ProvisionLinks, "allowed", Some(&reason), policy_ids);
        self.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        self.tasks_ready.notify_waiters();
        tracing::info!(task_id = %task_id, tenant, total, "link provisioning queued");
        Task::try_from(task)
    }

    /// Writes task `id` and its items; the counts come from the items.
    async fn queue_task(
        &self,
        tx: &mut Tx,
        (id, tenant, kind): (&str, &str, &str),
        params: serde_json::Value,
        key: Option<(i64, Vec<u8>)>,
        items: &[ItemRow],
    ) -> ServiceResult<TaskRow> {
        let now = self.clock.now();
        let (kek_version, wrapped_key) = key.unzip();
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let task = TaskRow {
            id: id.to_owned(),
            tenant_id: tenant.to_owned(),
            kind: kind.to_owned(),
            status: "pending".into(),
            params: sqlx::types::Json(params),
            total_items: count(items.len()),
            completed_items: 0,
            failed_items: count(items.iter().filter(|i| i.status == "failed").count()),
            error: None,
            created_at: now,
            updated_at: now,
            kek_version,
            wrapped_key,
        };
        tasks::insert(tx, &task).await?;
        tasks::insert_items(tx, items).await?;
        Ok(task)
    }

    /// `GET /v1/tasks/{id}/items`: in request order, optionally of one status.
    pub async fn task_items(
        &self,
        principal: &Principal,
        id: uuid::Uuid,
        status: Option<&str>,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Item>> {
        self.get_task(principal, id).await?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(page_size);
        let (rows, total) = tasks::items(
            &self.db,
            &id.to_string(),
            status,
            offset,
            i64::from(page_size),
        )
        .await?;
        Ok(Page {
            items: rows
                .into_iter()
                .map(Item::try_from)
                .collect::<ServiceResult<_>>()?,
            total: u64::try_from(total).unwrap_or(0),
            page,
            page_size,
        })
    }

    /// `GET /v1/links/{id}`.
    pub async fn get_link(&self, principal: &Principal, id: uuid::Uuid) -> ServiceResult<Link> {
        self.authorize_in_tenant(principal, Action::ReadLinks)
            .await?;
        link_repo::get(&self.db, &*self.row_key()?, principal.tenant.as_str(), id)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// `GET /v1/links`, oldest first, optionally of one SIM.
    pub async fn list_links(
        &self,
        principal: &Principal,
        sim: Option<uuid::Uuid>,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<Link>> {
        self.authorize_in_tenant(principal, Action::ReadLinks)
            .await?;
        let offset = i64::from(page.saturating_sub(1)) * i64::from(page_size);
        let sim = sim.map(|s| s.to_string());
        let (items, total) = link_repo::list(
            &self.db,
            &*self.row_key()?,
            principal.tenant.as_str(),
            sim.as_deref(),
            i64::from(page_size),
            offset,
        )
        .await?;
        Ok(Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
            page,
            page_size,
        })
    }

    /// Works on bulk tasks: leases one batch of items and commits its outcomes. Returns
    /// whether there was anything to do.
    pub async fn run_bulk_batch(&self, owner: &str, lease: Duration) -> ServiceResult<bool> {
        let now = self.clock.now();
        let Some(task) = tasks::with_claimable_items(&self.db, &KINDS, now).await? else {
            // Nothing to lease: finish tasks whose last worker stopped just before.
            for id in tasks::without_pending(&self.db, &KINDS).await? {
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
        task: &TaskRow,
        owner: &str,
        lease: Duration,
    ) -> ServiceResult<bool> {
        let lease_us = i64::try_from(lease.as_micros()).unwrap_or(i64::MAX);
        let now = self.clock.now();
        let items =
            tasks::claim_items(&self.db, &task.id, owner, now, now + lease_us, BATCH).await?;
        if items.is_empty() {
            self.finish_if_done(&task.id).await?;
            return Ok(false);
        }
        match task.kind.as_str() {
            IMPORT_TASK => self.import_batch(task, items, owner).await?,
            LINKS_TASK => self.links_batch(task, items, owner).await?,
            other => {
                return Err(ServiceError::Internal(format!(
                    "unknown bulk task type {other}"
                )));
            }
        }
        self.finish_if_done(&task.id).await?;
        Ok(true)
    }

    fn task_actor(&self, task: &TaskRow) -> ServiceResult<Principal> {
        let actor: Actor = serde_json::from_value(task.params.0["actor"].clone())
            .map_err(|e| ServiceError::Internal(format!("task without its actor: {e}")))?;
        actor.principal(&task.tenant_id)
    }

    async fn import_batch(
        &self,
        task: &TaskRow,
        items: Vec<ItemRow>,
        owner: &str,
    ) -> ServiceResult<()> {
        let tenant = task.tenant_id.as_str();
        let actor = self.task_actor(task)?;
        let (Some(key_version), Some(wrapped)) = (task.kek_version, task.wrapped_key.as_ref())
        else {
            return Err(ServiceError::Internal("import task without its key".into()));
        };
        let kek = self.kek(tenant, key_version).await?;
        let task_key: vault::Key = {
            let bytes = vault::open(
                &kek,
                wrapped,
                &vault::task_key_aad(tenant, &task.id, key_version),
                "task key",
            )?;
            let mut key = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(ServiceError::Internal("task key of the wrong size".into()));
            }
            key.copy_from_slice(&bytes);
            key
        };
        // Unseal and build every SIM before the transaction: the write lock is held for the
        // statements only.
        let now = self.clock.now();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut built: Vec<(i64, Option<i64>, Sim, SecretChanges)> =
            Vec::with_capacity(items.len());
        for item in &items {
            let opened = item
                .input
                .as_ref()
                .ok_or_else(|| ServiceError::Internal("pending import item without input".into()))
                .and_then(|blob| {
                    let text = vault::open(
                        &task_key,
                        blob,
                        &vault::task_item_aad(tenant, &task.id, item.seq),
                        "import item",
                    )?;
                    // Not serde's message: it may quote a value.
                    serde_json::from_slice::<SimInput>(&text).map_err(|_| {
                        ServiceError::Internal("sealed import row is malformed".into())
                    })
                });
            match opened {
                Ok(input) => {
                    let (sim, secrets) = super::sims::new_sim(tenant, input, now);
                    built.push((item.seq, item.line, sim, secrets));
                }
                Err(e) => {
                    tracing::error!(task_id = %task.id, seq = item.seq, error = %e, "an import item could not be opened");
                    outcomes.push(failed(item.seq, "the stored row could not be read"));
                }
            }
        }
        let mut tx = self.db.begin().await?;
        let held = tasks::still_held(&mut tx, &task.id, owner, &items).await?;
        built.retain(|(seq, ..)| held.contains(seq));
        outcomes.retain(|o| held.contains(&o.seq));
        let mut envelopes = self.envelopes(&mut tx, tenant).await?;
        let mut sims = Vec::with_capacity(built.len());
        let mut pending_secrets = Vec::with_capacity(built.len());
        for (_, _, sim, secrets) in &mut built {
            if !secrets.is_empty() {
                envelopes.seal(sim, secrets)?;
            }
            pending_secrets.push(secrets.iter().map(|(f, _)| *f).collect::<Vec<_>>());
            sims.push(sim.clone());
        }
        let inserted: HashSet<String> = sim_repo::insert_many(&mut tx, &*self.row_key()?, &sims)
            .await?
            .into_iter()
            .collect();
        envelopes.retain(&inserted);
        self.insert_envelopes(&mut tx, tenant, envelopes, now)
            .await?;
        let mut events = Vec::new();
        let mut reasons = Vec::new();
        let mut created = Vec::new();
        for ((seq, line, sim, _), fields) in built.iter().zip(&pending_secrets) {
            if inserted.contains(&sim.id.to_string()) {
                outcomes.push(Outcome {
                    seq: *seq,
                    succeeded: true,
                    sim_id: Some(sim.id.to_string()),
                    result: Some(
                        json!({"sim_id": sim.id, "iccid": sim.iccid.as_str()}).to_string(),
                    ),
                    error: None,
                });
                let change = SimChange::Created {
                    task_id: Some(task.id.clone()),
                };
                events.push(DomainEvent::sim(sim, change, now));
                reasons.push(format!("task {} line {}", task.id, line.unwrap_or(*seq)));
                created.push((sim, fields.as_slice()));
            } else {
                outcomes.push(failed(*seq, "a SIM with this ICCID already exists"));
            }
        }
        outbox::insert(&mut tx, &events).await?;
        let records: Vec<Event<'_>> = created
            .iter()
            .zip(&reasons)
            .map(|((sim, fields), reason)| Event {
                reason: Some(reason),
                ..Event::allowed(Action::ImportSims, sim, Decision::default()).with_fields(fields)
            })
            .collect();
        outcomes.sort_by_key(|o| o.seq);
        tasks::record_outcomes(&mut tx, &task.id, &outcomes, now).await?;
        self.audit_all_in(&mut tx, &actor, records).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn links_batch(
        &self,
        task: &TaskRow,
        items: Vec<ItemRow>,
        owner: &str,
    ) -> ServiceResult<()> {
        let tenant = task.tenant_id.as_str();
        let actor = self.task_actor(task)?;
        let params = &task.params.0;
        let prefix = params["name_prefix"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let counter_start = params["counter_start"].as_u64().unwrap_or(1);
        let plan_ids: Vec<uuid::Uuid> =
            serde_json::from_value(params["plan_ids"].clone()).unwrap_or_default();
        let task_id: uuid::Uuid = task
            .id
            .parse()
            .map_err(|_| ServiceError::Internal("corrupt task id".into()))?;
        let now = self.clock.now();
        let mut tx = self.db.begin().await?;
        let held = tasks::still_held(&mut tx, &task.id, owner, &items).await?;
        let integrity = self.row_key()?;
        let mut outcomes = Vec::new();
        let mut linked = Vec::new();
        let mut tampered = Vec::new();
        for item in items.iter().filter(|i| held.contains(&i.seq)) {
            let sim_id = item
                .sim_id
                .as_deref()
                .and_then(|s| s.parse::<uuid::Uuid>().ok());
            let sim = match sim_id {
                Some(id) => {
                    match sim_repo::get_for_update(&mut tx, &integrity, tenant, &SimKey::Id(id))
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
                tenant_id: tenant.to_owned(),
                sim_id: sim.id,
                name: link::name(&prefix, counter_start, index),
                plan_ids: plan_ids.clone(),
                task_id: Some(task_id),
                created_at: now,
            };
            match link_repo::insert(&mut tx, &integrity, &link).await? {
                Ok(()) => {
                    outcomes.push(Outcome {
                        seq: item.seq,
                        succeeded: true,
                        sim_id: None,
                        result: Some(json!({"link_id": link.id, "name": link.name}).to_string()),
                        error: None,
                    });
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
        tasks::record_outcomes(&mut tx, &task.id, &outcomes, now).await?;
        self.audit_all_in(&mut tx, &actor, records).await?;
        tx.commit().await?;
        for f in &tampered {
            self.report_integrity(f).await;
        }
        Ok(())
    }

    /// Completes a bulk task with no pending item left: status, `task.completed` event and
    /// record, and its key destroyed, in one transaction (only one worker gets to do it).
    pub(super) async fn finish_if_done(&self, task_id: &str) -> ServiceResult<()> {
        let mut tx = self.db.begin().await?;
        let Some(task) = tasks::lock_if_done(&mut tx, task_id).await? else {
            return Ok(());
        };
        let now = self.clock.now();
        tasks::complete(&mut tx, task_id, "completed", now).await?;
        self.emit_task_completed(&mut tx, &task, "completed", now)
            .await?;
        let action = if task.kind == IMPORT_TASK {
            Action::ImportSims
        } else {
            Action::ProvisionLinks
        };
        let reason = format!(
            "task {task_id}: {} succeeded, {} failed",
            task.completed_items, task.failed_items
        );
        let event = Event::tenant_wide(action, "completed", Some(&reason), Vec::new());
        let tenant =
            TenantId::parse(&task.tenant_id).map_err(|e| ServiceError::Internal(e.into()))?;
        self.audit_in(&mut tx, &Principal::local(tenant, "system:tasks"), event)
            .await?;
        tx.commit().await?;
        tracing::info!(task_id, kind = %task.kind, completed = task.completed_items, failed = task.failed_items, "task completed");
        Ok(())
    }

    /// The `task.completed` outbox event (counts as of completion).
    pub(super) async fn emit_task_completed(
        &self,
        tx: &mut Tx,
        task: &TaskRow,
        status: &str,
        now: i64,
    ) -> ServiceResult<()> {
        let completion = TaskCompletion {
            task_id: task.id.clone(),
            kind: task.kind.clone(),
            status: status.to_owned(),
            total_items: task.total_items,
            completed_items: task.completed_items,
            failed_items: task.failed_items,
        };
        let event = DomainEvent::task_completed(&task.tenant_id, completion, now);
        outbox::insert(tx, &[event]).await?;
        Ok(())
    }
}

fn failed(seq: i64, error: &str) -> Outcome {
    Outcome {
        seq,
        succeeded: false,
        sim_id: None,
        result: None,
        error: Some(error.to_owned()),
    }
}

/// The background worker for bulk tasks: `bulk_concurrency` loops that work while there are
/// items to lease (in this or any replica's tasks, including those a dead worker left), until
/// `stop` turns true.
pub async fn worker(
    services: std::sync::Arc<Services>,
    settings: crate::config::TaskSettings,
    stop: watch::Receiver<bool>,
) {
    if !settings.bulk_worker {
        tracing::info!("bulk task worker off in this replica (SIMVAULT_BULK_WORKER=false)");
        return;
    }
    let loops = (0..settings.bulk_concurrency.max(1)).map(|_| {
        worker_loop(
            services.clone(),
            settings.lease,
            settings.poll,
            stop.clone(),
        )
    });
    futures_util::future::join_all(loops).await;
}

async fn worker_loop(
    services: std::sync::Arc<Services>,
    lease: Duration,
    poll: Duration,
    stop: watch::Receiver<bool>,
) {
    let owner = uuid::Uuid::new_v4().to_string();
    let step = || {
        let (services, owner) = (services.clone(), owner.clone());
        async move { services.run_bulk_batch(&owner, lease).await }
    };
    super::task_loop(&services, "bulk tasks", poll, stop, step).await;
}
