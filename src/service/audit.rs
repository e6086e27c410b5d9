//! Writing, reading and verifying the audit log.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

use super::{Core, ServiceError, ServiceResult};
use crate::audit::writer::{append, append_chain};
use crate::audit::{AuditRecord, CheckpointKey, PLATFORM_CHAIN, Signer, Verification, Verifier};
use crate::domain::audit::AuditOutcome;
use crate::domain::{Principal, SecretField, Sim};
use crate::policy::{Action, Decision};
use crate::store::audit::{self, AuditFilter, AuditRow, Order};
use crate::store::{Db, Tx};

super::capability! {
    /// Reading, exporting and verifying the audit log, and signing its checkpoints.
    pub struct AuditLog {
        core: super::Core,
        /// Verifies checkpoints.
        audit_key: CheckpointKey,
        /// Signs them (the checkpoint worker's).
        audit_signer: Option<Arc<Signer>>,
    }
}

/// One thing that happened in a tenant, to be recorded.
pub(super) struct Event<'a> {
    pub action: Action,
    pub sim: Option<&'a Sim>,
    pub fields: &'a [SecretField],
    pub outcome: AuditOutcome,
    pub reason: Option<&'a str>,
    pub policy_ids: Vec<String>,
    /// For a PIN or PUK attempt: the counter after it.
    pub remaining_attempts: Option<i64>,
}

impl<'a> Event<'a> {
    /// An allowed action on a SIM, with the policies that allowed it.
    pub(super) fn allowed(action: Action, sim: &'a Sim, decision: Decision) -> Self {
        Self {
            action,
            sim: Some(sim),
            fields: &[],
            outcome: AuditOutcome::Allowed,
            reason: None,
            policy_ids: decision.policy_ids,
            remaining_attempts: None,
        }
    }

    /// Something done to the tenant as a whole (no SIM), with its outcome and reason.
    pub(super) fn tenant_wide(
        action: Action,
        outcome: AuditOutcome,
        reason: Option<&'a str>,
        policy_ids: Vec<String>,
    ) -> Self {
        Self {
            action,
            sim: None,
            fields: &[],
            outcome,
            reason,
            policy_ids,
            remaining_attempts: None,
        }
    }

    pub(super) fn with_fields(self, fields: &'a [SecretField]) -> Self {
        Self { fields, ..self }
    }
}

/// Who knocked, for a record on the platform chain (the caller could not be tied to a tenant).
#[derive(Debug, Clone, Default)]
pub struct Stranger {
    /// The certificate identity presented, if any (never a token or its claims).
    pub subject: Option<String>,
    /// `mtls`, `jwt`, or `mtls+jwt`.
    pub auth_method: String,
    pub credential: Option<String>,
    pub client_addr: Option<String>,
    pub request_id: Option<String>,
}

impl Core {
    /// Appends a record to the principal's tenant chain inside `tx`: it commits with the
    /// change it describes, or neither does.
    pub(super) async fn audit_in(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        event: Event<'_>,
    ) -> ServiceResult<()> {
        append(tx, record(principal, event, self.clock.now())).await
    }

    /// Appends records of one principal's tenant chain, in order, inside `tx`.
    pub(super) async fn audit_all_in(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        events: Vec<Event<'_>>,
    ) -> ServiceResult<()> {
        let now = self.clock.now();
        append_chain(
            tx,
            events
                .into_iter()
                .map(|e| record(principal, e, now))
                .collect(),
        )
        .await
    }

    /// Appends a record in a transaction shared with other requests' records (group commit:
    /// one durable commit for many) and returns once it is durable. Must not be called while
    /// holding a write transaction (SQLite has one write connection).
    pub(super) async fn audit_alone(
        &self,
        principal: &Principal,
        event: Event<'_>,
    ) -> ServiceResult<()> {
        self.commit_record(record(principal, event, self.clock.now()))
            .await
    }

    pub(super) async fn commit_record(&self, record: AuditRecord) -> ServiceResult<()> {
        let stopped = || ServiceError::Unavailable("the audit writer has stopped".into());
        let (done, wait) = oneshot::channel();
        self.audit_writer
            .send((record, done))
            .await
            .map_err(|_| stopped())?;
        wait.await
            .map_err(|_| stopped())?
            .map_err(ServiceError::Unavailable)
    }
}

impl AuditLog {
    /// `GET /v1/audit/verify`: checks the caller's tenant chain end to end.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "verify_audit"))]
    pub async fn verify_audit(&self, principal: &Principal) -> ServiceResult<Verification> {
        self.core
            .authorize_in_tenant(principal, Action::ReadAudit)
            .await?;
        verify_chain(&self.core.db, &self.audit_key, principal.tenant.as_str()).await
    }

    /// `GET /v1/audit/events`: a page of the caller's tenant's records, newest first, from
    /// before position `before` (the cursor).
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "audit_events"))]
    pub async fn audit_events(
        &self,
        principal: &Principal,
        filter: &AuditFilter,
        before: Option<i64>,
        limit: u32,
    ) -> ServiceResult<Vec<AuditRow>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadAudit)
            .await?;
        let order = Order::Backward {
            before: before.unwrap_or(i64::MAX),
        };
        Ok(audit::find(
            &self.core.db,
            principal.tenant.as_str(),
            filter,
            order,
            i64::from(limit),
        )
        .await?)
    }

    /// `GET /v1/audit/export`: the caller's tenant's records matching `filter`, oldest first,
    /// a page at a time as they are read (see `export`), once the caller may export.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "audit_export"))]
    pub async fn audit_export(
        &self,
        principal: &Principal,
        filter: AuditFilter,
    ) -> ServiceResult<mpsc::Receiver<ServiceResult<Vec<AuditRow>>>> {
        self.core
            .authorize_in_tenant(principal, Action::ReadAudit)
            .await?;
        let (pages_tx, pages) = mpsc::channel(2);
        tokio::spawn(export(
            self.core.db.clone(),
            principal.tenant.as_str().to_owned(),
            filter,
            pages_tx,
        ));
        Ok(pages)
    }
}

/// The platform-chain record of `count` refused authentications for `reason`, the latest by
/// `who` (see [`super::refusals`]). The count is in the reason: `… (count N)`.
pub(super) fn refusal_record(who: Stranger, reason: &str, count: u64, now: i64) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        occurred_at: now,
        tenant: PLATFORM_CHAIN.to_owned(),
        subject: who.subject.unwrap_or_else(|| "anonymous".into()),
        roles: Vec::new(),
        auth_method: who.auth_method,
        credential: who.credential,
        client_addr: who.client_addr,
        request_id: who.request_id,
        action: "authenticate".into(),
        sim_id: None,
        iccid: None,
        fields: Vec::new(),
        outcome: AuditOutcome::Denied.as_str().to_owned(),
        reason: Some(format!("{reason} (count {count})")),
        policy_ids: Vec::new(),
        remaining_attempts: None,
    }
}

/// The record of `event` by `principal`, at `now`.
fn record(principal: &Principal, event: Event<'_>, now: i64) -> AuditRecord {
    AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        occurred_at: now,
        tenant: principal.tenant.as_str().to_owned(),
        subject: principal.subject.clone(),
        roles: principal
            .roles
            .iter()
            .map(|r| r.as_str().to_owned())
            .collect(),
        auth_method: principal.auth_method.as_str().to_owned(),
        credential: principal.credential_id.clone(),
        client_addr: principal.origin.client_addr.clone(),
        request_id: principal.origin.request_id.clone(),
        action: event.action.as_str().to_owned(),
        sim_id: event.sim.map(|s| s.id.to_string()),
        iccid: event.sim.map(|s| s.iccid.as_str().to_owned()),
        fields: event.fields.iter().map(|f| f.as_str().to_owned()).collect(),
        outcome: event.outcome.as_str().to_owned(),
        reason: event.reason.map(str::to_owned),
        policy_ids: event.policy_ids,
        remaining_attempts: event.remaining_attempts,
    }
}

/// Appends a record of a host operation (`action`, done by `subject` through the CLI) to the
/// platform chain, inside `tx`.
pub async fn append_platform(
    tx: &mut Tx,
    subject: &str,
    action: &str,
    outcome: AuditOutcome,
    reason: &str,
    now: i64,
) -> ServiceResult<()> {
    let record = AuditRecord {
        id: uuid::Uuid::new_v4().to_string(),
        occurred_at: now,
        tenant: PLATFORM_CHAIN.to_owned(),
        subject: subject.to_owned(),
        roles: Vec::new(),
        auth_method: "local".into(),
        credential: None,
        client_addr: None,
        request_id: None,
        action: action.to_owned(),
        sim_id: None,
        iccid: None,
        fields: Vec::new(),
        outcome: outcome.as_str().to_owned(),
        reason: Some(reason.to_owned()),
        policy_ids: Vec::new(),
        remaining_attempts: None,
    };
    append(tx, record).await
}

/// Records read per page when walking a chain.
const PAGE: i64 = 1000;

/// Verifies one chain (a tenant's, or [`PLATFORM_CHAIN`]) with its signed checkpoints, a page
/// at a time (constant memory).
pub async fn verify_chain(
    db: &Db,
    key: &CheckpointKey,
    chain: &str,
) -> ServiceResult<Verification> {
    let mut verifier = Verifier::new(key.clone());
    let mut after = 0;
    loop {
        let rows = audit::find(
            db,
            chain,
            &AuditFilter::default(),
            Order::Forward { after },
            PAGE,
        )
        .await?;
        let Some(last) = rows.last() else { break };
        let marks = audit::checkpoints(db, chain, after, last.seq).await?;
        after = last.seq;
        if !verifier.feed(&rows, &marks) {
            break;
        }
    }
    let later = audit::checkpoints(db, chain, verifier.checked(), i64::MAX).await?;
    let head = audit::head(db, chain).await?.filter(|(seq, _)| *seq > 0);
    Ok(verifier.finish(head, &later))
}

/// Every chain the store holds (tenants', and the platform chain), by name.
pub async fn chains(db: &Db) -> ServiceResult<Vec<String>> {
    Ok(audit::heads(db)
        .await?
        .into_iter()
        .map(|(chain, _, _)| chain)
        .collect())
}

/// Signs the head of every chain that moved since its last checkpoint. Several replicas may
/// do this at once: a position already signed keeps its first checkpoint.
pub async fn checkpoint_all(db: &Db, signer: &Signer, now: i64) -> ServiceResult<usize> {
    let mut signed = 0;
    for (chain, seq, hash) in audit::unsigned_heads(db).await? {
        audit::insert_checkpoint(db, &signer.sign(&chain, seq, &hash, now)).await?;
        signed += 1;
    }
    Ok(signed)
}

/// The checkpoint worker: signs moved chain heads every `interval` until `stop` turns true,
/// and once more on the way out.
pub async fn checkpoint_worker(log: AuditLog, interval: Duration, mut stop: watch::Receiver<bool>) {
    let Some(signer) = log.audit_signer.clone() else {
        return;
    };
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(interval) => false,
            _ = stop.changed() => true,
        };
        if let Err(e) = checkpoint_all(&log.core.db, &signer, log.core.clock.now()).await {
            tracing::warn!(error = %crate::telemetry::Causes(&e), "could not sign audit checkpoints; will retry");
        }
        if stopping || *stop.borrow() {
            return;
        }
    }
}

/// Sends a chain's records matching `filter`, oldest first, a page at a time, until they are
/// all sent or the receiver goes away (constant memory whatever the size of the log).
pub(crate) async fn export(
    db: Db,
    chain: String,
    filter: AuditFilter,
    out: mpsc::Sender<ServiceResult<Vec<AuditRow>>>,
) {
    let mut after = 0;
    loop {
        let page = audit::find(&db, &chain, &filter, Order::Forward { after }, PAGE).await;
        let page = match page {
            Ok(rows) if rows.is_empty() => return,
            Ok(rows) => rows,
            Err(e) => {
                let _ = out.send(Err(e.into())).await;
                return;
            }
        };
        after = page.last().map_or(after, |r| r.seq);
        if out.send(Ok(page)).await.is_err() {
            return;
        }
    }
}
