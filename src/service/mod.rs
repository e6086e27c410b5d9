//! Use cases. Each takes the calling [`Principal`] and a validated request, asks the policy,
//! opens the transaction, calls the store, and returns domain values. Nothing here knows HTTP.

pub mod admin;
pub mod auc;
pub mod audit;
pub mod bulk;
pub mod esim;
pub mod identities;
pub mod integrity;
pub mod lifecycle;
pub mod pins;
pub mod plans;
pub mod refusals;
pub mod rotation;
pub mod secrets;
pub mod sims;
pub mod sync;
pub mod webhooks;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::domain::{LuhnPolicy, Principal, ValidationErrors};
use crate::policy::{Action, Context, Decision, Denial, PolicyHandle, Refusal, Resource};
use crate::store::{Db, StoreError};
use crate::vault::Keyring;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Validation(ValidationErrors),
    #[error("not found")]
    NotFound,
    #[error("forbidden")]
    Forbidden,
    #[error("conflict: {0}")]
    Conflict(String),
    /// A dependency (database, audit log, current root key) cannot serve the request now;
    /// the cause is for the log only.
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
    /// A PIN or PUK attempt that did not succeed (wrong, or blocked).
    #[error("PIN attempt refused: {}", .0.outcome())]
    Pin(crate::domain::pin::Verdict),
    /// The carrier's system failed or did not answer in time; nothing was changed.
    #[error("{0}")]
    Upstream(crate::upstream::UpstreamError),
    /// An AUTS whose MAC-S did not verify.
    #[error("resynchronisation failed")]
    ResyncFailed,
    /// The lifecycle does not allow this move.
    #[error("invalid state transition from {from} to {to}")]
    InvalidTransition {
        from: crate::domain::SimState,
        to: crate::domain::SimState,
    },
    /// Too many requests of this kind from this principal; retry after this many seconds.
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// A stored row failed its integrity check: refused (an opaque internal error), and not
    /// yet reported: whoever ends the request reports it once, with no transaction open
    /// ([`Services::report_integrity`]).
    #[error(transparent)]
    Integrity(crate::vault::IntegrityFailure),
}

impl From<ValidationErrors> for ServiceError {
    fn from(e: ValidationErrors) -> Self {
        ServiceError::Validation(e)
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict(c) => ServiceError::Conflict(c),
            StoreError::Integrity(f) => ServiceError::Integrity(f),
            StoreError::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_),
            ) => ServiceError::Unavailable(e.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<Denial> for ServiceError {
    fn from(d: Denial) -> Self {
        match d {
            Denial::CrossTenant => ServiceError::NotFound,
            Denial::Forbidden => ServiceError::Forbidden,
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

/// For `map_err`: a uniqueness conflict becomes [`ServiceError::Conflict`] with `message`
/// (which must not name another tenant's data); anything else maps as usual.
fn conflict(message: &str) -> impl FnOnce(StoreError) -> ServiceError + '_ {
    move |e| match e {
        StoreError::Conflict(_) => ServiceError::Conflict(message.to_owned()),
        other => other.into(),
    }
}

/// A background task loop: runs `step` until `stop` turns true — again at once when it found
/// work, otherwise after `poll` or as soon as a task is queued (`tasks_ready`; the wake-up is
/// registered before looking, so a task queued meanwhile is not missed).
pub(crate) async fn task_loop<Step, Fut>(
    services: &Services,
    what: &str,
    poll: std::time::Duration,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut step: Step,
) where
    Step: FnMut() -> Fut,
    Fut: std::future::Future<Output = ServiceResult<bool>>,
{
    loop {
        if *stop.borrow() {
            return;
        }
        let queued = services.tasks_ready.notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        match step().await {
            Ok(true) => continue,
            Ok(false) => {}
            Err(ServiceError::Integrity(f)) => services.report_integrity(&f).await,
            Err(e) => tracing::warn!(error = %e, worker = what, "background task error"),
        }
        tokio::select! {
            () = queued => {}
            () = tokio::time::sleep(poll) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Deployment settings the use cases depend on.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub iccid_luhn: LuhnPolicy,
    pub webhooks: webhooks::WebhookSettings,
    /// The tenant whose metrics readers see platform-wide series.
    pub metrics_platform_tenant: Option<String>,
}

/// Everything the use cases need, shared by all requests.
#[derive(Debug, Clone)]
pub struct Services {
    pub db: Db,
    pub policy: PolicyHandle,
    pub clock: SharedClock,
    pub settings: Settings,
    pub keyring: Arc<Keyring>,
    /// Woken when a background task is queued.
    pub tasks_ready: Arc<tokio::sync::Notify>,
    /// The group-commit audit writer's queue.
    pub audit_writer: tokio::sync::mpsc::Sender<audit::Pending>,
    /// Signs audit checkpoints (the checkpoint worker's).
    pub audit_signer: Option<Arc<crate::audit::Signer>>,
    /// Verifies them.
    pub audit_key: crate::audit::CheckpointKey,
    /// Per-principal limit on PIN operations.
    pub pin_limiter: Arc<pins::PinRateLimiter>,
    /// The carrier's system, when one is configured.
    pub upstream: Option<Arc<dyn crate::upstream::Connector>>,
    /// The tally of refused authentications (aggregated records, per-address limit).
    pub refusals: Arc<refusals::RefusalLedger>,
}

impl Services {
    /// The one policy question every use case asks. A refusal is not yet answered: pass it
    /// to [`Services::refuse`], which records it.
    fn decide(
        &self,
        principal: &Principal,
        action: Action,
        resource: &Resource<'_>,
        context: &Context,
    ) -> ServiceResult<Result<Decision, Refusal>> {
        crate::telemetry::note_tenant(principal.tenant.as_str());
        let policy = self
            .policy
            .current()
            .ok_or_else(|| ServiceError::Internal("policy set unavailable".into()))?;
        Ok(policy.decide(principal, action, resource, context))
    }

    /// Records a denied decision in the caller's tenant chain and returns the error to answer
    /// with (`403`, or `404` across tenants). Fail closed: when the record cannot be written
    /// the answer is `503`. A cross-tenant refusal names no resource: the caller's auditors
    /// must not learn another tenant's SIMs.
    async fn refuse(
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
            outcome: "denied",
            reason: target.reason,
            policy_ids: refusal.policy_ids,
            remaining_attempts: None,
        };
        match self.audit_alone(principal, event).await {
            Ok(()) => refusal.denial.into(),
            Err(e) => {
                tracing::error!(error = %e, "could not record a denied request: answered 503");
                e
            }
        }
    }

    /// Decides `action` on `resource`, recording a refusal.
    async fn authorize(
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
    async fn authorize_in_tenant(
        &self,
        principal: &Principal,
        action: Action,
    ) -> ServiceResult<Decision> {
        self.authorize(
            principal,
            action,
            &Resource::of_tenant(principal.tenant.as_str()),
            &Context::default(),
            Target::default(),
        )
        .await
    }

    /// May the caller scrape metrics, and which series? A principal of the platform tenant
    /// (`SIMVAULT_METRICS_PLATFORM_TENANT`) sees every series; any other only its tenant's.
    pub async fn authorize_metrics(
        &self,
        principal: &Principal,
    ) -> ServiceResult<crate::telemetry::MetricsScope> {
        self.authorize_in_tenant(principal, Action::ReadMetrics)
            .await?;
        let tenant = principal.tenant.as_str();
        Ok(
            if self.settings.metrics_platform_tenant.as_deref() == Some(tenant) {
                crate::telemetry::MetricsScope::Platform
            } else {
                crate::telemetry::MetricsScope::Tenant(tenant.to_owned())
            },
        )
    }
}

/// What a decision is about, for the record of a refusal.
#[derive(Debug, Clone, Copy, Default)]
struct Target<'a> {
    sim: Option<&'a crate::domain::Sim>,
    fields: &'a [crate::domain::SecretField],
    reason: Option<&'a str>,
}

impl<'a> Target<'a> {
    fn sim(sim: &'a crate::domain::Sim) -> Self {
        Self {
            sim: Some(sim),
            ..Self::default()
        }
    }
}

/// One page of results.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: u32,
    pub page_size: u32,
}
