//! Use cases. Each takes the calling [`Principal`](crate::domain::Principal) and a validated request, asks the policy,
//! opens the transaction, calls the store, and returns domain values. Nothing here knows HTTP.

pub mod admin;
pub mod auc;
pub mod audit;
mod conditions;
pub mod console;
mod core;
pub mod esim;
pub mod export;
pub mod groups;
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

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::domain::{LuhnPolicy, ValidationErrors};
use crate::policy::{Denial, PolicyHandle};
use crate::store::{Db, StoreError};
use crate::vault::Keyring;

pub use self::core::Core;
use self::core::Target;
pub use admin::{Admin, Readiness};
pub use auc::Auc;
pub use audit::AuditLog;
pub use console::Console;
pub use groups::Groups;
pub use lifecycle::Lifecycle;
pub use pins::Pins;
pub use plans::Plans;
pub use refusals::Refusals;
pub use secrets::Secrets;
pub use sims::Inventory;
pub use tasks::Tasks;
pub use webhooks::Webhooks;

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
    /// Something that must not happen: a broken invariant, corrupt stored data, a failing
    /// dependency. The message and its cause are for the log only, never for the caller.
    #[error("internal error: {message}")]
    Internal {
        message: std::borrow::Cow<'static, str>,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
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
    /// ([`Core::report_integrity`]).
    #[error(transparent)]
    Integrity(crate::vault::IntegrityFailure),
}

impl ServiceError {
    /// An internal error described by `message` alone.
    pub fn internal(message: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        ServiceError::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// An internal error: `message` says what failed, `source` why (kept as the error's
    /// source, so that the cause chain reaches the log).
    pub fn internal_because(
        message: impl Into<std::borrow::Cow<'static, str>>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        ServiceError::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }
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
            other => ServiceError::internal_because("the store failed", other),
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

/// Declares a struct whose fields are visible to `$vis`: `crate::service` alone in the library
/// as built for the binary, so a handler, the server and startup reach what a capability holds
/// only through its use cases and none can take a database handle. The crate's own tests
/// (feature `internals`, which the release binary is built without) see the fields, as they see
/// `store` and `vault`.
macro_rules! capability {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        #[cfg(feature = "internals")]
        pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }
        $(#[$meta])*
        #[derive(Debug, Clone)]
        #[cfg(not(feature = "internals"))]
        pub struct $name { $($(#[$fmeta])* pub(in crate::service) $field: $ty,)* }
    };
}
pub(crate) use capability;

capability! {
    /// The use cases, one capability each, over one shared [`Core`]: what the server holds and
    /// hands to the doors (HTTP, CLI) and to the background workers.
    pub struct Services {
        core: Core,
        iccid_luhn: LuhnPolicy,
        inventory: Inventory,
        secrets: Secrets,
        pins: Pins,
        auc: Auc,
        lifecycle: Lifecycle,
        plans: Plans,
        groups: Groups,
        tasks: Tasks,
        webhooks: Webhooks,
        audit: AuditLog,
        refusals: Refusals,
        admin: Admin,
        console: Console,
    }
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
        let signer =
            crate::audit::Signer::from_file(&config.audit.signing_key).with_context(|| {
                format!(
                    "the audit checkpoint key is missing or unreadable: `simvault init` makes it ({})",
                    config.audit.signing_key.display()
                )
            })?;
        let core = Core {
            audit_writer: {
                let (queue, records) = tokio::sync::mpsc::channel(4096);
                tokio::spawn(crate::audit::writer::writer(db.clone(), records));
                queue
            },
            db,
            policy: PolicyHandle::new(crate::startup::load_policy(config)?),
            clock,
            keyring,
        };
        let upstream: Option<Arc<dyn crate::adapters::upstream::Connector>> = match &config.upstream
        {
            Some(settings) => Some(Arc::new(
                crate::adapters::upstream::HttpConnector::new(settings)
                    .context("setting up the upstream connector")?,
            )),
            None => None,
        };
        let tasks = Tasks {
            core: core.clone(),
            tasks_ready: Arc::new(tokio::sync::Notify::new()),
        };
        let refusals = Refusals {
            core: core.clone(),
            ledger: Arc::new(refusals::RefusalLedger::new(config.refusals)),
        };
        Ok(Services {
            console: Console {
                core: core.clone(),
                settings: config.console.clone(),
                refusals: refusals.clone(),
            },
            iccid_luhn: config.iccid_luhn,
            inventory: Inventory { core: core.clone() },
            secrets: Secrets { core: core.clone() },
            pins: Pins {
                core: core.clone(),
                pin_limiter: pins::PinRateLimiter::new(config.pin_ops_per_minute),
            },
            auc: Auc { core: core.clone() },
            lifecycle: Lifecycle {
                core: core.clone(),
                upstream,
            },
            plans: Plans { core: core.clone() },
            groups: Groups { core: core.clone() },
            tasks,
            webhooks: Webhooks {
                core: core.clone(),
                settings: config.webhooks,
            },
            audit: AuditLog {
                core: core.clone(),
                audit_key: signer.verifier(),
                audit_signer: Some(Arc::new(signer)),
            },
            refusals,
            admin: Admin {
                core: core.clone(),
                metrics_platform_tenant: config.metrics_platform_tenant.clone(),
            },
            core,
        })
    }

    /// SIMs: create, read, list and search, change, delete.
    pub fn inventory(&self) -> &Inventory {
        &self.inventory
    }

    /// Writing and revealing a SIM's secrets, and its eSIM activation code.
    pub fn secrets(&self) -> &Secrets {
        &self.secrets
    }

    /// PIN changes and unblocks.
    pub fn pins(&self) -> &Pins {
        &self.pins
    }

    /// Authentication vectors and resynchronisation.
    pub fn auc(&self) -> &Auc {
        &self.auc
    }

    /// State changes, history and the carrier's view of a SIM.
    pub fn lifecycle(&self) -> &Lifecycle {
        &self.lifecycle
    }

    /// Rate plans and provisioning links.
    pub fn plans(&self) -> &Plans {
        &self.plans
    }

    /// SIM groups and devices.
    pub fn groups(&self) -> &Groups {
        &self.groups
    }

    /// Background tasks: queueing bulk imports, link provisioning and key rotations, following
    /// them, and running them.
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Webhook subscriptions and the delivery of events to them.
    pub fn webhooks(&self) -> &Webhooks {
        &self.webhooks
    }

    /// Reading, exporting and verifying the audit log.
    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The record of refused authentications.
    pub fn refusals(&self) -> &Refusals {
        &self.refusals
    }

    /// Web console sign-in and sessions.
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// Key status, metrics access and readiness.
    pub fn admin(&self) -> &Admin {
        &self.admin
    }

    /// The deployment's ICCID check-digit rule, for parsing requests.
    pub fn iccid_luhn(&self) -> LuhnPolicy {
        self.iccid_luhn
    }

    /// The policies in force, for reloading them.
    pub fn policy_handle(&self) -> PolicyHandle {
        self.core.policy.clone()
    }

    /// The row-MAC keys, for the authenticator.
    pub(crate) fn integrity_key(
        &self,
    ) -> Result<Arc<crate::vault::IntegrityKey>, crate::vault::VaultError> {
        self.core.keyring.integrity()
    }

    /// Reports a stored row that failed its check (once the request that met it has ended).
    pub async fn report_integrity(&self, failure: &crate::domain::integrity::IntegrityFailure) {
        self.core.report_integrity(failure).await;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause() {
        let cause = "x".parse::<i64>().unwrap_err();
        let e = ServiceError::internal_because("a stored count", cause.clone());
        assert_eq!(e.to_string(), "internal error: a stored count");
        assert_eq!(
            crate::telemetry::Causes(&e).to_string(),
            format!("internal error: a stored count: {cause}")
        );
        let source = std::error::Error::source(&e).expect("the cause is the source");
        assert_eq!(source.to_string(), cause.to_string());
        assert!(std::error::Error::source(&ServiceError::internal("alone")).is_none());
        assert_eq!(
            ServiceError::internal("alone").to_string(),
            "internal error: alone"
        );
    }
}
