//! Row integrity at the use-case level: adopting a database from before row MACs (once, the
//! first time a process holding the root key opens it), and reporting a row whose MAC fails.
//!
//! A row that fails its check is refused (an opaque internal error), logged, counted in
//! `/metrics` (`simvault_integrity_failures_total{row}`) and recorded on the platform chain:
//! never obeyed. The check itself lives in the store (each authenticated table's one
//! conversion from stored row to value); a failure travels up as
//! [`ServiceError::Integrity`] and is reported once by whoever ends the request or background
//! step (the request-context middleware, the task loop, the sync and webhook workers), when no
//! transaction is held any more.
//!
//! Must never: treat a row as authentic because its MAC is missing, or report a row's content.

use std::sync::Arc;

use crate::domain::audit::AuditOutcome;
use crate::service::audit::append_platform;
use crate::service::{Core, ServiceError, ServiceResult};
use crate::store::{Db, keys, links, sims, webhooks};
use crate::vault::{self, IntegrityFailure, IntegrityKey, Keyring, Purpose, RootCheck};

/// Who adopts rows and reports failures on the platform chain.
pub const INTEGRITY_ACTOR: &str = "system:integrity";

/// Gives every security-relevant row of a database made before row integrity its MAC, then
/// re-seals the root-key check as an authenticated database's, all in one transaction (so it
/// happens once, whichever replica gets there first). Does nothing for an authenticated
/// database. Must run before the database serves anything.
pub async fn adopt(db: &Db, keyring: &Keyring, now: i64) -> ServiceResult<()> {
    let mut tx = db.begin().await?;
    let Some((format, blob)) = keys::root_check(&mut tx).await? else {
        return Err(ServiceError::internal("the root-key check is missing"));
    };
    if keyring.open_root_check(format, &blob)? == RootCheck::Authenticated {
        return Ok(());
    }
    let key = keyring.integrity()?;
    // Every row of every tenant, tombstones included: after this, a row without a MAC fails.
    // Tasks and their items are not adopted: a pending one without a MAC is failed by the
    // worker instead (why: `service::tasks::authentic`).
    let adopted: Vec<(Purpose, u64)> = vec![
        (Purpose::Sim, sims::adopt(&mut tx, &key).await?),
        (Purpose::TenantKey, keys::adopt(&mut tx, &key).await?),
        (Purpose::Webhook, webhooks::adopt(&mut tx, &key).await?),
        (Purpose::Link, links::adopt(&mut tx, &key).await?),
        (
            Purpose::ClientIdentity,
            super::identities::adopt(&mut tx, &key).await?,
        ),
    ];
    let sealed = keyring.seal_root_check_authenticated(format, &blob)?;
    keys::replace_root_check(&mut tx, vault::FORMAT, &sealed, now).await?;
    let summary = adopted
        .iter()
        .map(|(p, n)| format!("{n} {}", p.as_str()))
        .collect::<Vec<_>>()
        .join(", ");
    append_platform(
        &mut tx,
        INTEGRITY_ACTOR,
        "integrity.adopt",
        AuditOutcome::Completed,
        &format!("rows given MACs: {summary}"),
        now,
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(rows = %summary, "adopted a database from before row integrity");
    Ok(())
}

impl Core {
    /// The row-integrity key every store read and write of an authenticated row takes.
    pub(crate) fn row_key(&self) -> ServiceResult<Arc<IntegrityKey>> {
        Ok(self.keyring.integrity()?)
    }

    /// Reports a failure carried by [`ServiceError::Integrity`] (once, at the end of the
    /// request or background step, with its transaction gone).
    pub async fn report_integrity(&self, failure: &IntegrityFailure) {
        self.integrity_failure(failure.purpose, &failure.row).await;
    }

    /// Reports a stored row whose MAC failed (`row` names it: an id, never content) and
    /// returns the error to answer with. The report is best effort: the request is refused
    /// whether or not it could be recorded. Must not be called while holding a write
    /// transaction (SQLite has one write connection): drop it first.
    pub async fn integrity_failure(&self, purpose: Purpose, row: &str) -> ServiceError {
        integrity_failure(&self.db, purpose, row, self.clock.now()).await
    }
}

/// [`Core::integrity_failure`] for callers without the use cases (authentication, CLI).
pub async fn integrity_failure(db: &Db, purpose: Purpose, row: &str, now: i64) -> ServiceError {
    tracing::error!(
        row_kind = purpose.as_str(),
        row,
        "stored row failed its integrity check: refused"
    );
    metrics::counter!("simvault_integrity_failures_total", "row" => purpose.as_str()).increment(1);
    let recorded = async {
        let mut tx = db.begin().await?;
        append_platform(
            &mut tx,
            INTEGRITY_ACTOR,
            "integrity.check",
            AuditOutcome::Failed,
            &format!("{} {row}: MAC does not verify", purpose.as_str()),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, ServiceError>(())
    }
    .await;
    if let Err(e) = recorded {
        tracing::error!(error = %crate::telemetry::Causes(&e), "could not record an integrity failure");
    }
    ServiceError::internal(format!("integrity check failed for a {}", purpose.as_str()))
}
