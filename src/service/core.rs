//! What every capability holds: the store, the policy, the clock, the key ring and the audit
//! writer's queue; and the one place a use case asks the policy ([`Core::authorize`]), where a
//! refusal is recorded before it is answered.

use std::sync::Arc;

use super::{ServiceError, ServiceResult, audit};
use crate::clock::SharedClock;
use crate::domain::Principal;
use crate::domain::audit::AuditOutcome;
use crate::policy::{Action, Context, Decision, Denial, PolicyHandle, Refusal, Resource};
use crate::store::Db;
use crate::vault::Keyring;

super::capability! {
    /// Shared by every capability (cheap to clone: handles only).
    pub struct Core {
        db: Db,
        policy: PolicyHandle,
        clock: SharedClock,
        keyring: Arc<Keyring>,
        /// The group-commit audit writer's queue.
        audit_writer: tokio::sync::mpsc::Sender<crate::audit::writer::Pending>,
    }
}

impl Core {
    /// The one policy question every use case asks. A refusal is not yet answered: pass it
    /// to [`Core::refuse`], which records it.
    pub(in crate::service) fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> ServiceResult<Result<Decision, Refusal>> {
        crate::telemetry::note_tenant(&principal.tenant);
        let policy = self
            .policy
            .current()
            .ok_or_else(|| ServiceError::internal("policy set unavailable"))?;
        Ok(policy.decide(principal, action, resource, context))
    }

    /// Records a denied decision in the caller's tenant chain and returns the error to answer
    /// with (`403`, or `404` across tenants). Fail closed: when the record cannot be written
    /// the answer is `503`. A cross-tenant refusal names no resource: the caller's auditors
    /// must not learn another tenant's SIMs.
    pub(in crate::service) async fn refuse(
        &self,
        principal: &Principal,
        action: Action,
        refusal: Refusal,
        target: Target<'_>,
    ) -> ServiceError {
        tracing::info!(
            subject = %principal.subject,
            tenant = %principal.tenant,
            action = action.as_str(),
            denial = %refusal.denial,
            "request denied by policy"
        );
        let cross_tenant = refusal.denial == Denial::CrossTenant;
        let event = audit::Event {
            action,
            sim: target.sim.filter(|_| !cross_tenant),
            fields: target.fields,
            outcome: AuditOutcome::Denied,
            reason: target.reason,
            policy_ids: refusal.policy_ids,
            remaining_attempts: None,
        };
        match self.audit_alone(principal, event).await {
            Ok(()) => refusal.denial.into(),
            Err(e) => {
                tracing::error!(error = %crate::telemetry::Causes(&e), "could not record a denied request: answered 503");
                e
            }
        }
    }

    /// Decides `action` on `resource`, recording a refusal.
    pub(in crate::service) async fn authorize(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
        target: Target<'_>,
    ) -> ServiceResult<Decision> {
        match self.decide(principal, action, resource, context)? {
            Ok(d) => Ok(d),
            Err(refusal) => Err(self.refuse(principal, action, refusal, target).await),
        }
    }

    /// Authorizes an action on the principal's own tenant as a whole.
    pub(in crate::service) async fn authorize_in_tenant(
        &self,
        principal: &Principal,
        action: Action,
    ) -> ServiceResult<Decision> {
        self.authorize(
            principal,
            action,
            &Resource::of_tenant(&principal.tenant),
            &Context::default(),
            Target::default(),
        )
        .await
    }
}

/// What a decision is about, for the record of a refusal.
#[derive(Debug, Clone, Copy, Default)]
pub(in crate::service) struct Target<'a> {
    pub(in crate::service) sim: Option<&'a crate::domain::Sim>,
    pub(in crate::service) fields: &'a [crate::domain::SecretField],
    pub(in crate::service) reason: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub(in crate::service) fn sim(sim: &'a crate::domain::Sim) -> Self {
        Self {
            sim: Some(sim),
            ..Self::default()
        }
    }
}
