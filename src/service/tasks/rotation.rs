//! Key rotation: a new tenant KEK version, and a durable background task that re-wraps every
//! DEK under it (secrets themselves are not re-encrypted). Reads and writes keep working
//! throughout: old versions stay readable until nothing uses them, then retire.

use std::time::Duration;

use tokio::sync::watch;

use super::{Tasks, lease_micros, pending_task};
use crate::domain::audit::AuditOutcome;
use crate::domain::keys::{KeyState, StaleDek, TenantKey};
use crate::domain::task::{KEK_ROTATION_DUE_AT, TaskKind, TaskRecord, TaskStatus};
use crate::domain::{KeyVersion, Principal, SimId, Task, TaskId, TenantId};
use crate::policy::Action;
use crate::service::{Admin, ServiceError, ServiceResult};
use crate::store::keys;
use crate::store::tasks;
use crate::vault;

pub const ROTATION_TASK: TaskKind = TaskKind::KeyRotation;
const BATCH: i64 = 200;

/// The state of a tenant's keys.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub versions: Vec<KeyVersion>,
    pub rotation_due: bool,
}

impl Tasks {
    /// `POST /v1/admin/keys/rotate`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "rotate_tenant_key"))]
    pub async fn rotate_tenant_key(&self, principal: &Principal) -> ServiceResult<Task> {
        let decision = self
            .core
            .authorize_in_tenant(principal, Action::RotateKeys)
            .await?;
        self.start_rotation(principal, decision.policy_ids).await
    }

    /// Adds a KEK version and queues the re-wrap of every older DEK (CLI and API), recorded
    /// as `actor`'s, allowed by `policy_ids`.
    pub async fn start_rotation(
        &self,
        actor: &Principal,
        policy_ids: Vec<String>,
    ) -> ServiceResult<Task> {
        let tenant = &actor.tenant;
        let mut tx = self.core.db.begin().await?;
        let (current, _) = self.core.active_kek(&mut tx, tenant).await?;
        let version = current + 1;
        self.core.check_root(&mut tx).await?;
        let (_, wrapped) = self.core.keyring.new_kek(tenant, version)?;
        let now = self.core.clock.now();
        let row = TenantKey {
            tenant_id: tenant.to_owned(),
            version,
            format: vault::FORMAT,
            wrapped_key: wrapped,
            state: KeyState::Active,
            wrapped_deks: 0,
            created_at: now,
            retired_at: None,
        };
        if !keys::insert_kek(&mut tx, &*self.core.row_key()?, &row).await? {
            return Err(ServiceError::Conflict(
                "another rotation is starting; retry".into(),
            ));
        }
        keys::retire_older(&mut tx, &*self.core.row_key()?, tenant, version).await?;
        let task = TaskRecord {
            total_items: keys::count_below(&self.core.db, tenant, version).await?,
            ..pending_task(
                TaskId::new(),
                tenant,
                ROTATION_TASK,
                serde_json::json!({"to_version": version}),
                now,
            )
        };
        tasks::insert(&mut tx, &*self.core.row_key()?, &task).await?;
        let reason = format!("new key version {version}, task {}", task.id);
        self.commit_queued(tx, actor, (Action::RotateKeys, &reason), policy_ids)
            .await?;
        tracing::info!(tenant = %tenant, version, task_id = %task.id, "key rotation started");
        Task::try_from(task)
    }
}

impl Admin {
    /// `GET /v1/admin/keys`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "key_status"))]
    pub async fn key_status(&self, principal: &Principal) -> ServiceResult<KeyStatus> {
        self.core
            .authorize_in_tenant(principal, Action::ReadKeys)
            .await?;
        let tenant = &principal.tenant;
        let counts = keys::dek_counts(&self.core.db, tenant).await?;
        let versions: Vec<KeyVersion> = keys::keks(&self.core.db, &*self.core.row_key()?, tenant)
            .await?
            .into_iter()
            .map(|k| KeyVersion {
                deks_in_use: counts
                    .iter()
                    .find(|(v, _)| *v == k.version)
                    .map_or(0, |(_, n)| *n),
                version: k.version,
                state: k.state,
                wrapped_deks: k.wrapped_deks,
                created_at: k.created_at,
                retired_at: k.retired_at,
            })
            .collect();
        let rotation_due = versions
            .iter()
            .filter(|v| v.state == KeyState::Active)
            .any(|v| v.wrapped_deks >= KEK_ROTATION_DUE_AT);
        Ok(KeyStatus {
            versions,
            rotation_due,
        })
    }
}

impl Tasks {
    /// Claims one unfinished rotation task and works on it until it is done, the lease is
    /// lost, or `stop` says so. Returns the task it worked on, if any.
    pub async fn run_rotation(
        &self,
        owner: &str,
        lease: Duration,
        stop: &watch::Receiver<bool>,
    ) -> ServiceResult<Option<TaskId>> {
        let lease_us = lease_micros(lease);
        let now = self.core.clock.now();
        let integrity = self.core.row_key()?;
        let claimed = tasks::claim(
            &self.core.db,
            &integrity,
            ROTATION_TASK,
            owner,
            now,
            now + lease_us,
        )
        .await?;
        let task = match claimed {
            None => return Ok(None),
            Some(Ok(task)) => task,
            // Checked before its target version is read: a forged one is never obeyed.
            Some(Err(refused)) => {
                self.refuse(&refused).await?;
                return Ok(Some(refused.id));
            }
        };
        let target = task.params["to_version"]
            .as_i64()
            .ok_or_else(|| ServiceError::internal("rotation task without a target version"))?;
        let tenant = task.tenant_id.clone();
        let new_kek = self.core.kek(&tenant, target).await?;
        let mut after = String::new();
        loop {
            if *stop.borrow() {
                tasks::release(&self.core.db, &task.id, owner).await?;
                return Ok(Some(task.id));
            }
            let mut tx = self.core.db.begin().await?;
            let stale = keys::stale_deks(&mut tx, &tenant, target, &after, BATCH).await?;
            let now = self.core.clock.now();
            if stale.is_empty() {
                keys::retire_unused(&mut tx, &*self.core.row_key()?, &tenant, target, now).await?;
                match tasks::lock_if_done(&mut tx, &integrity, &task.id).await? {
                    Some(Ok(current)) => {
                        self.emit_task_completed(&mut tx, &current, TaskStatus::Completed, now)
                            .await?;
                    }
                    Some(Err(refused)) => {
                        drop(tx);
                        self.refuse(&refused).await?;
                        return Ok(Some(task.id));
                    }
                    None => {}
                }
                tasks::finish(&mut tx, &task.id, owner, TaskStatus::Completed, None, now).await?;
                let reason = format!("key version {target}, task {}", task.id);
                self.audit_completed(
                    &mut tx,
                    (tenant.as_str(), "system:key-rotation"),
                    Action::RotateKeys,
                    &reason,
                )
                .await?;
                tx.commit().await?;
                tracing::info!(tenant = %tenant, version = target, task_id = %task.id, "key rotation completed");
                return Ok(Some(task.id));
            }
            let (mut done, mut failed) = (0, 0);
            for dek in &stale {
                after.clone_from(&dek.sim_id);
                match self.rewrap(&tenant, dek, target, &new_kek).await {
                    Ok(wrapped) => {
                        if keys::rewrap_dek(
                            &mut tx,
                            &dek.sim_id,
                            dek.kek_version,
                            target,
                            &wrapped,
                            now,
                        )
                        .await?
                        {
                            done += 1;
                        }
                    }
                    Err(e) => {
                        tracing::error!(sim_id = %dek.sim_id, error = %crate::telemetry::Causes(&e), "could not re-wrap a SIM key");
                        failed += 1;
                    }
                }
            }
            keys::count_wraps(&mut tx, &tenant, target, done).await?;
            if !tasks::progress(&mut tx, &task.id, owner, done, failed, now, now + lease_us).await?
            {
                tracing::warn!(task_id = %task.id, "lost the lease of a rotation task; another worker has it");
                return Ok(Some(task.id));
            }
            tx.commit().await?;
        }
    }

    async fn rewrap(
        &self,
        tenant: &TenantId,
        dek: &StaleDek,
        target: i64,
        new_kek: &vault::Key,
    ) -> ServiceResult<Vec<u8>> {
        vault::check_format(dek.format)?;
        let sim_id: SimId = dek
            .sim_id
            .parse()
            .map_err(|_| ServiceError::internal("corrupt SIM id"))?;
        let old_kek = self.core.kek(tenant, dek.kek_version).await?;
        let key = vault::unwrap_dek(&old_kek, tenant, &sim_id, dek.kek_version, &dek.wrapped_dek)?;
        Ok(vault::wrap_dek(new_kek, tenant, &sim_id, target, &key)?)
    }
}

/// Re-wraps every tenant KEK from `current`'s root key to `next`'s and makes `next` the
/// database's root key, in one transaction. Secrets and DEKs are untouched.
pub async fn rotate_root(
    db: &crate::store::Db,
    current: &crate::vault::Keyring,
    next: &crate::vault::Keyring,
    actor: &str,
    now: i64,
) -> ServiceResult<usize> {
    move_root(db, current, next, actor, "keys.rotate-root", now).await
}

/// [`rotate_root`], recorded as `action` (a rotation, or a move between providers).
pub async fn move_root(
    db: &crate::store::Db,
    current: &crate::vault::Keyring,
    next: &crate::vault::Keyring,
    actor: &str,
    action: &str,
    now: i64,
) -> ServiceResult<usize> {
    let mut tx = db.begin().await?;
    let check = keys::root_check(&mut tx).await?;
    let next_check = match check {
        // Opened, not only verified: the KEK rows are checked under its integrity key.
        Some((format, blob)) if current.open_root_check(format, &blob).is_ok() => {
            // The same integrity key under the new root key: every row MAC stays valid.
            current.rewrap_root_check_for(next, format, &blob)?
        }
        _ => {
            return Err(ServiceError::Conflict(
                "the current root key does not match this database".into(),
            ));
        }
    };
    let keks = keys::all_keks_for_update(&mut tx, &*current.integrity()?).await?;
    for k in &keks {
        let wrapped =
            current.rewrap_kek_for(next, &k.tenant_id, k.version, k.format, &k.wrapped_key)?;
        keys::rewrap_kek(&mut tx, &k.tenant_id, k.version, vault::FORMAT, &wrapped).await?;
    }
    keys::replace_root_check(&mut tx, vault::FORMAT, &next_check, now).await?;
    crate::service::audit::append_platform(
        &mut tx,
        actor,
        action,
        AuditOutcome::Completed,
        &format!("{} tenant key version(s) re-wrapped", keks.len()),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok(keks.len())
}

/// The background worker: runs rotation tasks as they are queued (or found unfinished after a
/// restart or another replica's crash) until `stop` turns true.
pub(super) async fn worker(
    tasks: Tasks,
    lease: Duration,
    poll: Duration,
    stop: watch::Receiver<bool>,
) {
    let owner = uuid::Uuid::new_v4().to_string();
    let watching = stop.clone();
    super::task_loop(&tasks, "key rotation", poll, stop, async || {
        Ok(tasks
            .run_rotation(&owner, lease, &watching)
            .await?
            .is_some())
    })
    .await;
}
