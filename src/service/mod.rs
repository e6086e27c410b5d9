//! Use cases. Each takes the calling [`Principal`] and a validated request, asks the policy,
//! opens the transaction, calls the store, and returns domain values. Nothing here knows HTTP.

pub mod admin;
pub mod auc;
pub mod audit;
pub mod esim;
pub mod identities;
pub mod integrity;
pub mod lifecycle;
pub mod pins;
pub mod plans;
pub mod refusals;
pub mod secrets;
pub mod sims;
pub mod sync;
pub mod tasks;
pub mod webhooks;

// The paths of the task kinds before they had their room, which tests and benches name.
pub use tasks as bulk;
pub use tasks::rotation;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::domain::audit::AuditOutcome;
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
    Upstream(crate::adapters::upstream::UpstreamError),
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

/// Deployment settings the use cases depend on.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub iccid_luhn: LuhnPolicy,
    pub webhooks: webhooks::WebhookSettings,
    /// The tenant whose metrics readers see platform-wide series.
    pub metrics_platform_tenant: Option<String>,
}

/// Declares [`Services`] with its fields visible to `$vis`. In the library as built for the
/// binary that is `crate::service` alone: a handler, the server and startup reach what the
/// use cases hold only through their methods, so none can take a database handle. The crate's
/// own tests (feature `internals`, which the release binary is built without) see the fields,
/// as they see `store` and `vault`.
macro_rules! services {
    ($vis:vis) => {
        /// Everything the use cases need, shared by all requests.
        #[derive(Debug, Clone)]
        pub struct Services {
            $vis db: Db,
            $vis policy: PolicyHandle,
            $vis clock: SharedClock,
            $vis settings: Settings,
            $vis keyring: Arc<Keyring>,
            /// Woken when a background task is queued.
            $vis tasks_ready: Arc<tokio::sync::Notify>,
            /// The group-commit audit writer's queue.
            $vis audit_writer: tokio::sync::mpsc::Sender<crate::audit::writer::Pending>,
            /// Signs audit checkpoints (the checkpoint worker's).
            $vis audit_signer: Option<Arc<crate::audit::Signer>>,
            /// Verifies them.
            $vis audit_key: crate::audit::CheckpointKey,
            /// Per-principal limit on PIN operations.
            $vis pin_limiter: Arc<pins::PinRateLimiter>,
            /// The carrier's system, when one is configured.
            $vis upstream: Option<Arc<dyn crate::adapters::upstream::Connector>>,
            /// The tally of refused authentications (aggregated records, per-address limit).
            $vis refusals: Arc<refusals::RefusalLedger>,
        }
    };
}

#[cfg(feature = "internals")]
services!(pub);
#[cfg(not(feature = "internals"))]
services!(pub(in crate::service));

/// Whether the service can serve requests now, and if not, the first reason why not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// The root key cannot be reached (an HSM gone, say).
    KeysUnavailable,
    /// A client CRL is past its nextUpdate.
    CrlExpired,
    /// The database does not answer.
    DatabaseUnavailable,
}

impl Services {
    /// The use cases over an open store and vault, as configured; starts the group-commit
    /// audit writer.
    pub fn new(
        config: &crate::config::Config,
        db: Db,
        clock: SharedClock,
        keyring: Arc<Keyring>,
    ) -> anyhow::Result<Services> {
        use anyhow::Context as _;
        let db_for_audit = db.clone();
        let signer =
            crate::audit::Signer::from_file(&config.audit.signing_key).with_context(|| {
                format!(
                    "the audit checkpoint key is missing or unreadable: `simvault init` makes it ({})",
                    config.audit.signing_key.display()
                )
            })?;
        Ok(Services {
            audit_key: signer.verifier(),
            pin_limiter: pins::PinRateLimiter::new(config.pin_ops_per_minute),
            refusals: Arc::new(refusals::RefusalLedger::new(config.refusals)),
            upstream: match &config.upstream {
                Some(settings) => Some(Arc::new(
                    crate::adapters::upstream::HttpConnector::new(settings)
                        .context("setting up the upstream connector")?,
                )),
                None => None,
            },
            audit_signer: Some(Arc::new(signer)),
            db,
            policy: PolicyHandle::new(crate::startup::load_policy(config)?),
            clock,
            settings: Settings {
                iccid_luhn: config.iccid_luhn,
                webhooks: config.webhooks,
                metrics_platform_tenant: config.metrics_platform_tenant.clone(),
            },
            keyring,
            tasks_ready: Arc::new(tokio::sync::Notify::new()),
            audit_writer: {
                let (queue, records) = tokio::sync::mpsc::channel(4096);
                tokio::spawn(crate::audit::writer::writer(db_for_audit, records));
                queue
            },
        })
    }

    /// The deployment's ICCID check-digit rule, for parsing requests.
    pub fn iccid_luhn(&self) -> LuhnPolicy {
        self.settings.iccid_luhn
    }

    /// The policies in force, for reloading them.
    pub fn policy_handle(&self) -> PolicyHandle {
        self.policy.clone()
    }

    /// The row-MAC keys, for the authenticator.
    pub(crate) fn integrity_key(
        &self,
    ) -> Result<Arc<crate::vault::IntegrityKey>, crate::vault::VaultError> {
        self.keyring.integrity()
    }

    /// Readiness: the root key answers, no client CRL has expired (`crl_expired`, asked with
    /// the current Unix time) and the database answers — checked in that order.
    pub async fn readiness(&self, crl_expired: impl FnOnce(i64) -> bool) -> Readiness {
        let keyring = self.keyring.clone();
        let keys_ok = tokio::task::spawn_blocking(move || keyring.root_available())
            .await
            .unwrap_or(false);
        if !keys_ok {
            return Readiness::KeysUnavailable;
        }
        if crl_expired(self.clock.now_secs()) {
            tracing::warn!("not ready: a client CRL is past its nextUpdate");
            return Readiness::CrlExpired;
        }
        match self.db.ping().await {
            Ok(()) => Readiness::Ready,
            Err(e) => {
                tracing::warn!(error = %e, "readiness check failed");
                Readiness::DatabaseUnavailable
            }
        }
    }
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
            outcome: AuditOutcome::Denied,
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

/// The first row of `page` (counted from 1) at `page_size` rows a page.
pub(crate) fn page_offset(page: u32, page_size: u32) -> i64 {
    i64::from(page.saturating_sub(1)) * i64::from(page_size)
}

impl<T> Page<T> {
    /// A page of `items` out of `total` rows as the store counted them.
    pub(crate) fn counted(items: Vec<T>, total: i64, page: u32, page_size: u32) -> Self {
        Page {
            items,
            total: u64::try_from(total).unwrap_or(0),
            page,
            page_size,
        }
    }
}
