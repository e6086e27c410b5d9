//! Refreshing SIMs from the carrier's system: one on request, all of them in the background.

use std::time::Duration;

use futures_util::StreamExt as _;
use rand::Rng as _;
use tokio::sync::watch;

use super::audit::Event;
use super::conditions::Cause;
use super::{Lifecycle, ServiceError, ServiceResult, Target};
use crate::adapters::upstream::{UpstreamError, UpstreamSim};
use crate::domain::audit::AuditOutcome;
use crate::domain::condition::Condition;
use crate::domain::{Principal, Sim, TenantId};
use crate::policy::{Action, Context};
use crate::store::Tx;
use crate::store::sims::{self as repo, SimKey, SyncClaim};

/// The actor of background sync records.
pub const SYNC_ACTOR: &str = "system:sync";

impl Lifecycle {
    /// `POST /v1/sims/{sim}/refresh`: pulls the SIM from upstream and stores what it says.
    /// No data upstream: the SIM as stored. Upstream failing or slow: an error and no change.
    /// Every outcome is audited: a change commits with its record, a failure is recorded
    /// before it is answered (no record, `503`).
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "refresh_sim"))]
    pub async fn refresh_sim(&self, principal: &Principal, key: &SimKey) -> ServiceResult<Sim> {
        let sim = self.core.find_sim(principal, key).await?;
        let resource = super::sims::sim_resource(&sim);
        let decision = self
            .core
            .authorize(
                principal,
                Action::RefreshSim,
                &resource,
                &Context::default(),
                Target::sim(&sim),
            )
            .await?;
        let record = |outcome, reason| Event {
            reason: Some(reason),
            outcome,
            ..Event::allowed(Action::RefreshSim, &sim, decision.clone())
        };
        let Some(upstream) = self.upstream.as_ref() else {
            self.core
                .audit_alone(
                    principal,
                    record(AuditOutcome::Failed, "no upstream system is configured"),
                )
                .await?;
            return Err(ServiceError::Conflict(
                "no upstream system is configured (SIMVAULT_UPSTREAM_URL)".into(),
            ));
        };
        // Asked without holding any lock: upstream may take its time.
        let update = match upstream.fetch(sim.iccid.as_str()).await {
            Ok(Some(update)) => update,
            Ok(None) => {
                self.core
                    .audit_alone(
                        principal,
                        record(AuditOutcome::Allowed, "no upstream data: unchanged"),
                    )
                    .await?;
                return Ok(sim);
            }
            Err(e) => {
                // The category only: upstream's own words stay in the log.
                let reason = match e {
                    UpstreamError::Timeout => "upstream did not answer in time",
                    UpstreamError::Failed(_) => "upstream failed",
                };
                self.core
                    .audit_alone(principal, record(AuditOutcome::Failed, reason))
                    .await?;
                return Err(ServiceError::Upstream(e));
            }
        };
        let mut tx = self.core.db.begin().await?;
        let policy_ids = decision.policy_ids.clone();
        let cause = Cause {
            principal,
            action: Action::RefreshSim,
            policy_ids: &policy_ids,
        };
        let Some((stored, entered)) = self
            .apply_upstream(&mut tx, &sim.tenant_id, &SimKey::Id(sim.id), &update)
            .await?
        else {
            return Err(ServiceError::NotFound);
        };
        self.core
            .record_entered(&mut tx, cause, &stored, &entered)
            .await?;
        let event = Event::allowed(Action::RefreshSim, &stored, decision);
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// Applies an upstream answer to a SIM of `tenant` under its row lock, inside `tx`,
    /// judging its conditions again: the SIM as written and the conditions it entered, for the
    /// caller to record once every row it locks is written. `None` if it is gone.
    async fn apply_upstream(
        &self,
        tx: &mut Tx,
        tenant: &TenantId,
        key: &SimKey,
        update: &UpstreamSim,
    ) -> ServiceResult<Option<(Sim, Vec<Condition>)>> {
        let Some(mut sim) = repo::get_for_update(tx, &*self.core.row_key()?, tenant, key).await?
        else {
            return Ok(None);
        };
        update.apply(&mut sim);
        let entered = self.core.judge_conditions(tx, &mut sim).await?;
        let now = self.core.clock.now().max(sim.updated_at);
        sim.last_synced_at = Some(now);
        sim.updated_at = now;
        repo::update(tx, &*self.core.row_key()?, &sim).await?;
        Ok(Some((sim, entered)))
    }

    /// Fetches one claimed SIM from upstream. `Err` only for upstream failures (which call
    /// for backoff).
    async fn fetch_claim(&self, claim: &SyncClaim) -> Result<Option<UpstreamSim>, UpstreamError> {
        match &self.upstream {
            Some(upstream) => upstream.fetch(&claim.iccid).await,
            None => Ok(None),
        }
    }

    /// Stores one round's answers: per tenant, one transaction holding every update and one
    /// record by [`SYNC_ACTOR`] naming the counts. One record per round rather than per SIM:
    /// a sync only copies what the carrier reports (attach state, usage, IMEI, MSISDN; never a
    /// secret or a right), every SIM is synced every interval, and a record per SIM would
    /// outnumber every other record and take the tenant's chain lock once per SIM. Which SIMs
    /// moved is in their `last_synced_at`. Fail closed: no record, no update.
    async fn store_round(&self, outcomes: &[(SyncClaim, FetchOutcome)]) {
        let mut tenants: Vec<&TenantId> = outcomes.iter().map(|(c, _)| &c.tenant_id).collect();
        tenants.sort_unstable();
        tenants.dedup();
        for tenant in tenants {
            // In the order of the SIMs' ids, as a change to a group judges its members: two
            // transactions locking the same rows in one order cannot deadlock.
            let mut of_tenant: Vec<_> = outcomes
                .iter()
                .filter(|(c, _)| &c.tenant_id == tenant)
                .collect();
            of_tenant.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            let of_tenant = of_tenant.into_iter();
            if let Err(e) = self.store_tenant_round(tenant, of_tenant).await {
                tracing::warn!(tenant = %tenant, error = %crate::telemetry::Causes(&e), "could not store an upstream sync round");
            }
        }
    }

    async fn store_tenant_round<'a>(
        &self,
        tenant: &TenantId,
        outcomes: impl Iterator<Item = &'a (SyncClaim, FetchOutcome)>,
    ) -> ServiceResult<()> {
        let (mut synced, mut no_data, mut failed) = (0usize, 0usize, 0usize);
        // SIMs whose row failed its check: skipped (never updated), reported after the commit.
        let mut tampered = Vec::new();
        let mut entered: Vec<(Sim, Vec<Condition>)> = Vec::new();
        let mut tx = self.core.db.begin().await?;
        let actor = Principal::local(tenant.clone(), SYNC_ACTOR);
        let cause = Cause {
            principal: &actor,
            action: Action::RefreshSim,
            policy_ids: &[],
        };
        for (claim, outcome) in outcomes {
            match outcome {
                Ok(Some(update)) => {
                    let Ok(id) = claim.id.parse() else { continue };
                    match self
                        .apply_upstream(&mut tx, tenant, &SimKey::Id(id), update)
                        .await
                    {
                        Ok(Some((sim, conditions))) => {
                            synced += 1;
                            if !conditions.is_empty() {
                                entered.push((sim, conditions));
                            }
                        }
                        Ok(None) => {}
                        Err(ServiceError::Integrity(f)) => {
                            failed += 1;
                            tampered.push(f);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(None) => no_data += 1,
                Err(_) => failed += 1,
            }
        }
        // Recorded once every SIM of the round is written: see `Core::record_all_entered`.
        let moved: Vec<(&Sim, &[Condition])> =
            entered.iter().map(|(s, c)| (s, c.as_slice())).collect();
        self.core.record_all_entered(&mut tx, cause, &moved).await?;
        let reason = format!(
            "background sync: {synced} updated, {no_data} without upstream data, {failed} failed"
        );
        let outcome = if failed == 0 {
            AuditOutcome::Completed
        } else {
            AuditOutcome::Failed
        };
        let event = Event::tenant_wide(Action::RefreshSim, outcome, Some(&reason), Vec::new());
        self.core.audit_in(&mut tx, &actor, event).await?;
        tx.commit().await?;
        for f in &tampered {
            self.core.report_integrity(f).await;
        }
        Ok(())
    }
}

type FetchOutcome = Result<Option<UpstreamSim>, UpstreamError>;

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
pub async fn worker(lifecycle: Lifecycle, settings: SyncSettings, mut stop: watch::Receiver<bool>) {
    if lifecycle.upstream.is_none() || settings.interval.is_zero() {
        return;
    }
    let mut backoff = Duration::ZERO;
    loop {
        if *stop.borrow() {
            return;
        }
        let now = lifecycle.core.clock.now();
        let claimed = repo::claim_due(
            &lifecycle.core.db,
            now,
            now + micros(settings.interval),
            CLAIM,
        )
        .await;
        let pause = match claimed {
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::Causes(&e), "could not claim SIMs to sync; will retry");
                jittered(settings.interval.min(Duration::from_secs(5)))
            }
            Ok(batch) if batch.is_empty() => {
                jittered(settings.interval.min(Duration::from_secs(1)))
            }
            Ok(batch) => {
                let outcomes: Vec<(SyncClaim, FetchOutcome)> = futures_util::stream::iter(batch)
                    .map(|claim| {
                        let lifecycle = lifecycle.clone();
                        async move {
                            let r = lifecycle.fetch_claim(&claim).await;
                            (claim, r)
                        }
                    })
                    .buffer_unordered(settings.concurrency.max(1))
                    .collect()
                    .await;
                lifecycle.store_round(&outcomes).await;
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
                    let again = lifecycle.core.clock.now() + micros(backoff);
                    for claim in failed {
                        if let Err(e) =
                            repo::reschedule_sync(&lifecycle.core.db, &claim.id, again).await
                        {
                            tracing::warn!(error = %crate::telemetry::Causes(&e), "could not reschedule a failed sync");
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
