//! SIM imports as a task: the rows of a request or a vendor file, validated by the caller,
//! each sealed as it arrives and queued as one item; workers create the SIMs batch by batch.
//!
//! Import items hold secrets until they are done: each is sealed under the task's own data
//! key (wrapped by the tenant KEK), cleared when its SIM is created, and the task key is
//! destroyed when the task ends.

use std::collections::{HashMap, HashSet};

use serde_json::json;
use zeroize::Zeroizing;

use super::{Batch, Grant, Tasks, failed, pending_item, succeeded};
use crate::domain::condition::Condition;
use crate::domain::event::{DomainEvent, SimChange};
use crate::domain::link;
use crate::domain::sim::SecretChanges;
use crate::domain::task::{ItemStatus, TaskItem, TaskKind};
use crate::domain::{Principal, Sim, SimInput, Task, TaskId, TenantId, ValidationErrors};
use crate::policy::{Action, Decision};
use crate::service::audit::Event;
use crate::service::conditions::{entered_change, entered_reason};
use crate::service::groups::References;
use crate::service::{ServiceError, ServiceResult};
use crate::store::outbox;
use crate::store::sims as sim_repo;
use crate::vault;

pub const IMPORT_TASK: TaskKind = TaskKind::Import;

/// One row of an import: where it came from, and the SIM it asks for or why it is invalid.
#[derive(Debug)]
pub struct ImportRow {
    /// The line of the source file, or the position in the request (from 1).
    pub line: i64,
    pub sim: Result<SimInput, ValidationErrors>,
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

/// The caller's right to queue an import (see [`Grant`]).
pub type ImportGrant = Grant<Import>;

/// The import kind, naming its [`Grant`].
#[derive(Debug)]
pub enum Import {}

impl ImportGrant {
    /// An empty batch for this grant's tenant.
    pub fn batch(&self) -> ServiceResult<ImportBatch> {
        ImportBatch::new(&self.principal.tenant)
    }
}

/// An import being received: each row is validated by the caller and sealed here under the
/// task's own key as it arrives, so that neither the request nor the rows' secrets are ever
/// held as one buffer; only the sealed items wait for the task to be written.
pub struct ImportBatch {
    task_id: TaskId,
    tenant: TenantId,
    task_key: vault::Key,
    items: Vec<TaskItem>,
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
            task_id: TaskId::new(),
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
        let mut item = TaskItem {
            line: Some(row.line),
            ..pending_item(&self.task_id, self.items.len())
        };
        let seq = item.seq;
        // OP becomes OPc here: the staged input never holds OP.
        let input = row
            .sim
            .and_then(|mut input| crate::service::secrets::opc_from_op(&mut input).map(|()| input));
        match input {
            Ok(input) => {
                // The validated input itself, sealed: read back as it was, not validated again.
                let text = Zeroizing::new(serde_json::to_vec(&input).map_err(|e| {
                    ServiceError::internal_because("an import row that does not serialise", e)
                })?);
                let aad = vault::task_item_aad(&self.tenant, &self.task_id, seq);
                item.input = Some(vault::seal(&self.task_key, &text, &aad)?);
            }
            Err(errors) => {
                item.status = ItemStatus::Failed;
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

impl Tasks {
    /// May `principal` import SIMs? Decided from the principal alone, before any row is read
    /// (a refusal is recorded as every refusal is), so that a caller without the right never
    /// gets a large body buffered or parsed.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "authorize_import"))]
    pub async fn authorize_import(&self, principal: &Principal) -> ServiceResult<ImportGrant> {
        self.grant(principal, Action::ImportSims).await
    }

    /// `POST /v1/sims/bulk/import` with rows already in hand: authorizes, then queues them.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "start_import"))]
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
            return Err(ServiceError::internal(
                "an import batch was queued for another tenant",
            ));
        }
        let ImportBatch {
            task_id,
            task_key,
            items,
            ..
        } = batch;
        let tenant = &principal.tenant;
        let mut tx = self.core.db.begin().await?;
        let (version, kek) = self.core.active_kek(&mut tx, tenant).await?;
        let wrapped = vault::seal(
            &kek,
            task_key.as_ref(),
            &vault::task_key_aad(tenant, &task_id, version),
        )?;
        let params = json!({ "actor": principal });
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
        self.commit_queued(tx, principal, (Action::ImportSims, &reason), policy_ids)
            .await?;
        tracing::info!(task_id = %task_id, tenant = %tenant, total, invalid = failed, "import queued");
        self.finish_if_done(&task_id).await?;
        Task::try_from(task)
    }

    /// Creates the SIMs of a leased batch of `task`'s items, in one transaction with their
    /// outcomes, events and records.
    pub(super) async fn import_batch(&self, batch: Batch<'_>) -> ServiceResult<()> {
        let (task, items) = (batch.task, batch.items.as_slice());
        let tenant = &task.tenant_id;
        let (Some(key_version), Some(wrapped)) = (task.kek_version, task.wrapped_key.as_ref())
        else {
            return Err(ServiceError::internal("import task without its key"));
        };
        let kek = self.core.kek(tenant, key_version).await?;
        let task_key: vault::Key = {
            let bytes = vault::open(
                &kek,
                wrapped,
                &vault::task_key_aad(tenant, &task.id, key_version),
                "task key",
            )?;
            let mut key = Zeroizing::new([0u8; 32]);
            if bytes.len() != 32 {
                return Err(ServiceError::internal("task key of the wrong size"));
            }
            key.copy_from_slice(&bytes);
            key
        };
        // Unseal and build every SIM before the transaction: the write lock is held for the
        // statements only.
        let now = self.core.clock.now();
        let mut outcomes = Vec::with_capacity(items.len());
        let mut built: Vec<(i64, Option<i64>, Sim, SecretChanges)> =
            Vec::with_capacity(items.len());
        for item in items {
            let opened = item
                .input
                .as_ref()
                .ok_or_else(|| ServiceError::internal("pending import item without input"))
                .and_then(|blob| {
                    let text = vault::open(
                        &task_key,
                        blob,
                        &vault::task_item_aad(tenant, &task.id, item.seq),
                        "import item",
                    )?;
                    // Not serde's message: it may quote a value.
                    serde_json::from_slice::<SimInput>(&text)
                        .map_err(|_| ServiceError::internal("sealed import row is malformed"))
                });
            match opened {
                Ok(input) => {
                    let (sim, secrets) = crate::service::sims::new_sim(tenant, input, now);
                    built.push((item.seq, item.line, sim, secrets));
                }
                Err(e) => {
                    tracing::error!(task_id = %task.id, seq = item.seq, error = %crate::telemetry::Causes(&e), "an import item could not be opened");
                    outcomes.push(failed(item.seq, "the stored row could not be read"));
                }
            }
        }
        let mut tx = self.core.db.begin().await?;
        let held = batch.still_held(&mut tx).await?;
        built.retain(|(seq, ..)| held.contains(seq));
        outcomes.retain(|o| held.contains(&o.seq));
        let mut references = References::default();
        let mut named = Vec::with_capacity(built.len());
        let mut born_in: HashMap<i64, Vec<Condition>> = HashMap::new();
        for mut entry in built {
            let sim = &mut entry.2;
            references
                .resolve_labels(&mut tx, tenant, &mut sim.group_id, &mut sim.device_id)
                .await?;
            let problems = references
                .problems(
                    &mut tx,
                    tenant,
                    sim.group_id.as_deref(),
                    sim.device_id.as_deref(),
                )
                .await?;
            if problems.is_empty() {
                // Born into its group and device: any condition the lock puts it in.
                let entered = self.core.judge_conditions(&mut tx, &mut entry.2).await?;
                if !entered.is_empty() {
                    born_in.insert(entry.0, entered);
                }
                named.push(entry);
            } else {
                outcomes.push(failed(entry.0, &describe(&problems)));
            }
        }
        let mut built = named;
        let mut envelopes = self.core.envelopes(&mut tx, tenant).await?;
        let mut sims = Vec::with_capacity(built.len());
        let mut pending_secrets = Vec::with_capacity(built.len());
        for (_, _, sim, secrets) in &mut built {
            if !secrets.is_empty() {
                envelopes.seal(sim, secrets)?;
            }
            pending_secrets.push(secrets.iter().map(|(f, _)| *f).collect::<Vec<_>>());
            sims.push(sim.clone());
        }
        let inserted: HashSet<String> =
            sim_repo::insert_many(&mut tx, &*self.core.row_key()?, &sims)
                .await?
                .into_iter()
                .collect();
        envelopes.retain(&inserted);
        self.core
            .insert_envelopes(&mut tx, tenant, envelopes, now)
            .await?;
        let mut events = Vec::new();
        let mut reasons = Vec::new();
        let mut created = Vec::new();
        let mut entered = Vec::new();
        for ((seq, line, sim, _), fields) in built.iter().zip(&pending_secrets) {
            if inserted.contains(&sim.id.to_string()) {
                outcomes.push(succeeded(
                    *seq,
                    Some(sim.id.to_string()),
                    &json!({"sim_id": sim.id, "iccid": sim.iccid.as_str()}),
                ));
                let change = SimChange::Created {
                    task_id: Some(task.id.to_string()),
                };
                events.push(DomainEvent::sim(sim, change, now));
                reasons.push(format!("task {} line {}", task.id, line.unwrap_or(*seq)));
                created.push((sim, fields.as_slice()));
                for &c in born_in.get(seq).into_iter().flatten() {
                    events.push(DomainEvent::sim(sim, entered_change(sim, c), now));
                    entered.push((sim, entered_reason(c)));
                }
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
            .chain(entered.iter().map(|(sim, reason)| Event {
                reason: Some(reason),
                ..Event::allowed(Action::ImportSims, sim, Decision::default())
            }))
            .collect();
        outcomes.sort_by_key(|o| o.seq);
        self.commit_batch(tx, &batch, &outcomes, records, now).await
    }
}
