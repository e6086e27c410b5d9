//! Writing and verifying the audit log.

use super::{ServiceResult, Services};
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
        let tenant = principal.tenant.as_str();
        let (seq, prev_hash) = audit::lock_head(tx, tenant).await?;
        let record = AuditRecord {
            id: uuid::Uuid::new_v4().to_string(),
            occurred_at: self.clock.now(),
            tenant: tenant.to_owned(),
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
        };
        let text = serde_json::to_string(&record)
            .map_err(|e| super::ServiceError::Internal(e.to_string()))?;
        let row = AuditRow {
            tenant_id: tenant.to_owned(),
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

    /// Appends a record in a transaction of its own (reads and denials).
    pub(super) async fn audit_alone(
        &self,
        principal: &Principal,
        event: Event<'_>,
    ) -> ServiceResult<()> {
        let mut tx = self.db.begin().await?;
        self.audit_in(&mut tx, principal, event).await?;
        Ok(tx.commit().await?)
    }

    /// `GET /v1/audit/verify`: checks the caller's tenant chain end to end.
    pub async fn verify_audit(&self, principal: &Principal) -> ServiceResult<Verification> {
        self.authorize_in_tenant(principal, Action::ReadAudit)?;
        verify_tenant(&self.db, principal.tenant.as_str()).await
    }
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
