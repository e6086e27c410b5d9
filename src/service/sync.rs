//! Refreshing SIMs from the carrier's system: one on request, all of them in the background.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use rand::Rng as _;
use tokio::sync::watch;

use super::{ServiceError, ServiceResult, Services, Target};
use crate::domain::{Principal, Sim};
use crate::policy::{Action, Context};
use crate::store::sims::{self as repo, SimKey, SyncClaim};
use crate::upstream::{UpstreamError, UpstreamSim};

impl Services {
    /// `POST /v1/sims/{sim}/refresh`: pulls the SIM from upstream and stores what it says.
    /// No data upstream: the SIM as stored. Upstream failing or slow: an error and no change.
    pub async fn refresh_sim(&self, principal: &Principal, key: &SimKey) -> ServiceResult<Sim> {
        let sim = repo::get(&self.db, &*self.row_key()?, principal.tenant.as_str(), key)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let resource = super::sims::sim_resource(&sim);
        self.authorize(
            principal,
            Action::RefreshSim,
            &resource,
            &Context::default(),
            Target::sim(&sim),
        )
        .await?;
        let upstream = self.upstream.as_ref().ok_or_else(|| {
            ServiceError::Conflict(
                "no upstream system is configured (SIMVAULT_UPSTREAM_URL)".into(),
            )
        })?;
        // Asked without holding any lock: upstream may take its time.
        let Some(update) = upstream
            .fetch(sim.iccid.as_str())
            .await
            .map_err(ServiceError::Upstream)?
        else {
            return Ok(sim);
        };
        self.store_upstream(&sim.tenant_id, &SimKey::Id(sim.id), &update)
            .await?
            .ok_or(ServiceError::NotFound)
    }

    /// Applies an upstream answer to a SIM under its row lock. `None` if it is gone.
    async fn store_upstream(
        &self,
        tenant: &str,
        key: &SimKey,
        update: &UpstreamSim,
    ) -> ServiceResult<Option<Sim>> {
        let mut tx = self.db.begin().await?;
        let Some(mut sim) = repo::get_for_update(&mut tx, &*self.row_key()?, tenant, key).await?
        else {
            return Ok(None);
        };
        update.apply(&mut sim);
        let now = self.clock.now().max(sim.updated_at);
        sim.last_synced_at = Some(now);
        sim.updated_at = now;
        repo::update(&mut tx, &*self.row_key()?, &sim).await?;
        tx.commit().await?;
        Ok(Some(sim))
    }

    /// Syncs one claimed SIM. `Err` only for upstream failures (which call for backoff).
    async fn sync_one(&self, claim: &SyncClaim) -> Result<(), UpstreamError> {
        let Some(upstream) = &self.upstream else {
            return Ok(());
        };
        let Some(update) = upstream.fetch(&claim.iccid).await? else {
            return Ok(());
        };
        let key = match claim.id.parse() {
            Ok(id) => SimKey::Id(id),
            Err(_) => return Ok(()),
        };
        match self.store_upstream(&claim.tenant_id, &key, &update).await {
            Ok(_) => {}
            Err(ServiceError::Integrity(f)) => self.report_integrity(&f).await,
            Err(e) => {
                tracing::warn!(sim_id = %claim.id, error = %e, "could not store an upstream sync");
            }
        }
        Ok(())
    }
}

/// How the background sync runs.
#[derive(Debug, Clone, Copy)]
pub struct SyncSettings {
    /// Each SIM is synced about once per interval.
    pub interval: Duration,
    /// Upstream requests in flight at once (per replica).
    pub concurrency: usize,
}

/// SIMs claimed at a time.
const CLAIM: i64 = 100;

/// `base` ± 10 %, so that replicas and restarts do not beat in step.
fn jittered(base: Duration) -> Duration {
    let spread = base.as_secs_f64() * 0.1;
    let offset = rand::rng().random_range(-spread..=spread);
    Duration::from_secs_f64((base.as_secs_f64() + offset).max(0.01))
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX)
}

/// The sync worker: claims due SIMs (each replica disjoint ones), refreshes them with bounded
/// concurrency, and backs off exponentially while upstream fails (failed SIMs come due again
/// after the backoff). Due times live in the database, so a restart resumes where it was.
/// Returns when `stop` turns true.
pub async fn worker(
    services: Arc<Services>,
    settings: SyncSettings,
    mut stop: watch::Receiver<bool>,
) {
    if services.upstream.is_none() || settings.interval.is_zero() {
        return;
    }
    let mut backoff = Duration::ZERO;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = services.clock.now();
        let claimed =
            repo::claim_due(&services.db, now, now + micros(settings.interval), CLAIM).await;
        let pause = match claimed {
            Err(e) => {
                tracing::warn!(error = %e, "could not claim SIMs to sync; will retry");
                jittered(settings.interval.min(Duration::from_secs(5)))
            }
            Ok(batch) if batch.is_empty() => {
                jittered(settings.interval.min(Duration::from_secs(1)))
            }
            Ok(batch) => {
                let outcomes: Vec<(SyncClaim, Result<(), UpstreamError>)> =
                    futures_util::stream::iter(batch)
                        .map(|claim| {
                            let services = services.clone();
                            async move {
                                let r = services.sync_one(&claim).await;
                                (claim, r)
                            }
                        })
                        .buffer_unordered(settings.concurrency.max(1))
                        .collect()
                        .await;
                let failed: Vec<&SyncClaim> = outcomes
                    .iter()
                    .filter(|(_, r)| r.is_err())
                    .map(|(c, _)| c)
                    .collect();
                if failed.is_empty() {
                    backoff = Duration::ZERO;
                    Duration::ZERO
                } else {
                    backoff = (backoff * 2)
                        .max(Duration::from_millis(500))
                        .min(settings.interval.max(Duration::from_millis(500)));
                    tracing::warn!(
                        failed = failed.len(),
                        backoff_ms = backoff.as_millis() as u64,
                        "upstream sync failures; backing off"
                    );
                    let again = services.clock.now() + micros(backoff);
                    for claim in failed {
                        if let Err(e) = repo::reschedule_sync(&services.db, &claim.id, again).await
                        {
                            tracing::warn!(error = %e, "could not reschedule a failed sync");
                        }
                    }
                    jittered(backoff)
                }
            }
        };
        if !pause.is_zero() {
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                _ = stop.changed() => {}
            }
        }
    }
}
