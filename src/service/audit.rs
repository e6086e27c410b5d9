//! Writing and verifying the audit log.

use tokio::sync::{mpsc, oneshot};

use super::{ServiceError, ServiceResult, Services};
use crate::audit::{AuditRecord, Verification, Verifier, link};
use crate::domain::{Principal, SecretField, Sim};
use crate::policy::Action;
use crate::store::Tx;
use crate::store::audit::{self, AuditRow};

/// One thing that happened, to be recorded.
pub(super) struct Event<'a> {
    pub action: Action,
    pub sim: Option<&'a Sim>,
    pub fields: &'a [SecretField],
    pub outcome: &'a str,
    pub reason: Option<&'a str>,
    pub policy_ids: Vec<String>,
}

impl Services {
    /// Appends a record to the principal's tenant chain inside `tx`: it commits with the
    /// change it describes, or neither does.
    pub(super) async fn audit_in(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        event: Event<'_>,
    ) -> ServiceResult<()> {
        append(tx, self.record(principal, event)).await
    }

    /// Appends a record in a transaction shared with other requests' records (group commit:
    /// one durable commit for many) and returns once it is durable.
    pub(super) async fn audit_alone(
        &self,
        principal: &Principal,
        event: Event<'_>,
    ) -> ServiceResult<()> {
        let stopped = || ServiceError::Internal("the audit writer has stopped".into());
        let (done, wait) = oneshot::channel();
        self.audit_writer
            .send((self.record(principal, event), done))
            .await
            .map_err(|_| stopped())?;
        wait.await
            .map_err(|_| stopped())?
            .map_err(ServiceError::Unavailable)
    }

    fn record(&self, principal: &Principal, event: Event<'_>) -> AuditRecord {
        AuditRecord {
            id: uuid::Uuid::new_v4().to_string(),
            occurred_at: self.clock.now(),
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
            outcome: event.outcome.to_owned(),
            reason: event.reason.map(str::to_owned),
            policy_ids: event.policy_ids,
        }
    }

    /// `GET /v1/audit/verify`: checks the caller's tenant chain end to end.
    pub async fn verify_audit(&self, principal: &Principal) -> ServiceResult<Verification> {
        self.authorize_in_tenant(principal, Action::ReadAudit)?;
        verify_tenant(&self.db, principal.tenant.as_str()).await
    }
}

/// Links `record` to the end of its tenant's chain, inside `tx`.
async fn append(tx: &mut Tx, record: AuditRecord) -> ServiceResult<()> {
    let (seq, prev_hash) = audit::lock_head(tx, &record.tenant).await?;
    let text = serde_json::to_string(&record).map_err(|e| ServiceError::Internal(e.to_string()))?;
    let row = AuditRow {
        tenant_id: record.tenant,
        seq: seq + 1,
        id: record.id,
        occurred_at: record.occurred_at,
        action: record.action,
        outcome: record.outcome,
        subject: record.subject,
        sim_id: record.sim_id,
        hash: link(&prev_hash, &text),
        record: text,
        prev_hash,
    };
    audit::append(tx, &row).await?;
    Ok(())
}

/// A record waiting for the writer, and who to tell once it is durable.
pub type Pending = (AuditRecord, oneshot::Sender<Result<(), String>>);

/// Most records committed together.
const BATCH: usize = 256;

/// The group-commit writer: takes every record waiting, appends them in one transaction (in
/// tenant order, so that replicas lock chain heads in the same order), commits once, and
/// answers each. A failed commit fails every record of the batch: none of their requests
/// proceeds (fail closed).
pub async fn writer(db: crate::store::Db, mut queue: mpsc::Receiver<Pending>) {
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        batch.sort_by(|a, b| a.0.tenant.cmp(&b.0.tenant));
        let (records, waiters): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        let outcome = commit_batch(&db, records).await.map_err(|e| e.to_string());
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "audit records could not be written");
        }
        for w in waiters {
            let _ = w.send(outcome.clone());
        }
    }
}

async fn commit_batch(db: &crate::store::Db, records: Vec<AuditRecord>) -> ServiceResult<()> {
    let mut tx = db.begin().await?;
    for record in records {
        append(&mut tx, record).await?;
    }
    Ok(tx.commit().await?)
}

/// Verifies one tenant's chain, a page at a time (constant memory).
pub async fn verify_tenant(db: &crate::store::Db, tenant: &str) -> ServiceResult<Verification> {
    let mut verifier = Verifier::new();
    let mut after = 0;
    loop {
        let rows = audit::page(db, tenant, after, 1000).await?;
        let Some(last) = rows.last() else { break };
        after = last.seq;
        if !verifier.feed(&rows) {
            break;
        }
    }
    Ok(verifier.finish(audit::head(db, tenant).await?))
}
