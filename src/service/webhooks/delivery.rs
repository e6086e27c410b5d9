//! The delivery side of webhooks: the fan-out of outbox events into deliveries, and the worker
//! that leases due deliveries, signs and sends them, and retries them with backoff.

use std::collections::HashMap;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio::task::JoinError;

use super::{DISPATCH_BATCH, MAX_BACKOFF, Webhooks};
use crate::adapters::webhook::{self, WebhookSender};
use crate::domain::webhook::{DueDelivery, WebhookSubscription};
use crate::domain::webhook_format::{WebhookFormat, outbox_name, telco_body};
use crate::domain::webhook_target::check_url;
use crate::domain::{TenantId, WebhookId, format_timestamp};
use crate::service::{ServiceError, ServiceResult};
use crate::store::outbox;
use crate::store::webhooks::{self as repo, Attempt, NewDelivery};
use crate::vault;

/// The delay before retry number `attempt` (1 for the first retry): `base · 2^(attempt-1)`,
/// at most an hour, with ±20 % jitter so failing receivers are not hit in lockstep.
pub fn backoff(base: Duration, attempt: u32) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(20));
    let capped = exp.min(MAX_BACKOFF);
    capped.mul_f64(rand::rng().random_range(0.8..1.2))
}

impl Webhooks {
    /// Fans out up to one batch of outbox events into deliveries. Returns how many events.
    pub async fn dispatch_events(&self) -> ServiceResult<usize> {
        if !outbox::any_undispatched(&self.core.db).await? {
            return Ok(0);
        }
        let mut tx = self.core.db.begin().await?;
        let events = outbox::undispatched(&mut tx, DISPATCH_BATCH).await?;
        if events.is_empty() {
            return Ok(0);
        }
        // An event row naming no tenant reaches no webhook (no tenant's webhook can match it).
        let mut tenants: Vec<TenantId> = events
            .iter()
            .filter_map(|e| TenantId::parse(&e.tenant_id).ok())
            .collect();
        tenants.sort_unstable();
        tenants.dedup();
        let (hooks, tampered) = repo::of_tenants(
            &mut tx,
            &*self.core.row_key()?,
            &tenants.iter().collect::<Vec<_>>(),
        )
        .await?;
        let subscribed: Vec<(&WebhookSubscription, Vec<String>)> = hooks
            .iter()
            .map(|h| (h, serde_json::from_str(&h.events).unwrap_or_default()))
            .collect();
        let mut deliveries = Vec::new();
        for e in &events {
            for (hook, names) in &subscribed {
                // A webhook receives events from its creation on. Kinds are matched by their
                // stored names: a replica of another version may write a kind unknown here.
                if hook.tenant_id.as_str() == e.tenant_id
                    && hook.created_at <= e.occurred_at
                    && names.iter().any(|n| outbox_name(n) == e.event_type)
                {
                    deliveries.push(NewDelivery {
                        id: uuid::Uuid::new_v4().to_string(),
                        webhook_id: hook.id,
                        tenant_id: hook.tenant_id.clone(),
                        event_id: e.id.clone(),
                        event_type: e.event_type.clone(),
                    });
                }
            }
        }
        let ids: Vec<String> = events.iter().map(|e| e.id.clone()).collect();
        repo::fan_out(&mut tx, &deliveries, &ids, self.core.clock.now()).await?;
        tx.commit().await?;
        // A webhook whose row fails its check got none of these events.
        for failure in &tampered {
            self.core.report_integrity(failure).await;
        }
        Ok(events.len())
    }

    /// Gives up a claimed delivery whose webhook row could not be read, never sending it, and
    /// reports its integrity failure.
    async fn refuse(&self, owner: &str, r: repo::RefusedDelivery) {
        tracing::error!(delivery = %r.id, error = %crate::telemetry::Causes(&r.cause), "a claimed delivery's webhook could not be read");
        if let Some(failure) = &r.failure {
            self.core.report_integrity(failure).await;
        }
        let outcome = Attempt::GaveUp {
            status: None,
            error: "the webhook failed its integrity check".into(),
        };
        if let Err(e) =
            repo::record_attempt(&self.core.db, &r.id, owner, &outcome, self.core.clock.now()).await
        {
            tracing::warn!(error = %crate::telemetry::Causes(&e), "recording a webhook attempt failed");
        }
    }

    /// Sends one attempt of a claimed delivery and records what came of it.
    async fn deliver(
        &self,
        sender: &WebhookSender,
        owner: &str,
        d: DueDelivery,
    ) -> ServiceResult<()> {
        let settings = self.settings;
        if let Some(failure) = &d.tampered {
            // Never sent: the target may not be the one the tenant set. Given up at once.
            self.core.report_integrity(failure).await;
            let outcome = Attempt::GaveUp {
                status: None,
                error: "the webhook failed its integrity check".into(),
            };
            repo::record_attempt(&self.core.db, &d.id, owner, &outcome, self.core.clock.now())
                .await?;
            return Ok(());
        }
        let (status, error) = match self.attempt(sender, &d).await {
            Ok(code) if (200..300).contains(&code) => (Some(code), None),
            Ok(code) => (
                Some(code),
                Some(format!("the receiver answered HTTP {code}")),
            ),
            Err(e) => (None, Some(e)),
        };
        let now = self.core.clock.now();
        let outcome = match (status, error) {
            (Some(code), None) => Attempt::Delivered { status: code },
            (status, Some(error)) => {
                let attempt = u32::try_from(d.attempts + 1).unwrap_or(u32::MAX);
                let delay = i64::try_from(backoff(settings.retry_base, attempt).as_micros())
                    .unwrap_or(i64::MAX);
                let next_at = now.saturating_add(delay);
                let deadline = d.occurred_at.saturating_add(
                    i64::try_from(settings.give_up_after.as_micros()).unwrap_or(i64::MAX),
                );
                if next_at > deadline {
                    Attempt::GaveUp { status, error }
                } else {
                    Attempt::Retry {
                        status,
                        error,
                        next_at,
                    }
                }
            }
            (None, None) => unreachable!("an attempt either succeeds or has an error"),
        };
        match &outcome {
            Attempt::Delivered { .. } => {
                tracing::debug!(delivery_id = %d.id, event_id = %d.event_id, "webhook delivered");
            }
            Attempt::Retry { error, .. } => {
                tracing::info!(delivery_id = %d.id, event_id = %d.event_id, error = %error, "webhook attempt failed; will retry");
            }
            Attempt::GaveUp { error, .. } => {
                tracing::warn!(delivery_id = %d.id, event_id = %d.event_id, error = %error, "webhook delivery failed for good");
            }
        }
        if !repo::record_attempt(&self.core.db, &d.id, owner, &outcome, now).await? {
            tracing::warn!(delivery_id = %d.id, "lost the lease of a webhook delivery before recording it");
        }
        Ok(())
    }

    /// One attempt: the status code, or why there was none. Error texts name no secret.
    async fn attempt(&self, sender: &WebhookSender, d: &DueDelivery) -> Result<i64, String> {
        let allow_insecure = self.settings.allow_insecure;
        // Checked again at each attempt: the deployment's rule may have changed since.
        let url = check_url(&d.url, allow_insecure).map_err(|e| format!("target refused: {e}"))?;
        let kek = match self.core.kek(&d.tenant_id, d.kek_version).await {
            Ok(kek) => kek,
            Err(e) => {
                if let ServiceError::Integrity(f) = &e {
                    self.core.report_integrity(f).await;
                }
                return Err("the webhook's secret could not be opened".to_owned());
            }
        };
        let secret = vault::open(
            &kek,
            &d.secret,
            &vault::webhook_secret_aad(&d.tenant_id, &d.webhook_id, d.kek_version),
            "webhook secret",
        )
        .map_err(|_| "the webhook's secret could not be opened".to_owned())?;
        let data: serde_json::Value =
            serde_json::from_str(&d.payload).map_err(|_| "corrupt event payload".to_owned())?;
        let body = match d.format {
            WebhookFormat::Native => serde_json::json!({
                "id": d.event_id,
                "event": d.event_type,
                "timestamp": format_timestamp(d.occurred_at),
                "tenant_id": d.tenant_id,
                "data": data,
            }),
            WebhookFormat::Telco => telco_body(&d.event_type, d.occurred_at, &data)
                .ok_or_else(|| "the event has no telco form".to_owned())?,
        }
        .to_string();
        let t = self.core.clock.now().div_euclid(1_000_000);
        sender
            .send(
                &secret,
                webhook::Attempt {
                    url,
                    event_id: &d.event_id,
                    number: d.attempts + 1,
                    unix_seconds: t,
                    body,
                },
            )
            .await
    }
}

/// Attempts in flight to one webhook at once, per replica, out of `concurrency`: a receiver
/// that hangs holds at most this many of the replica's slots, so deliveries to every other
/// target (every other tenant's) go on meanwhile.
fn per_target_limit(concurrency: usize) -> usize {
    (concurrency / 4).max(1)
}

/// The background worker: fans out new events and sends due deliveries until `stop` turns
/// true. Each attempt runs on its own as soon as it is claimed (no attempt waits for another
/// to end), at most `concurrency` at once and `per_target_limit` per webhook; a webhook at
/// its limit is left out of the next claims until one of its attempts ends. On the way out,
/// attempts in flight (each bounded by the timeout) are let finish, so their outcome is
/// recorded rather than sent again by another replica.
pub async fn worker(webhooks: Webhooks, mut stop: watch::Receiver<bool>) {
    let settings = webhooks.settings;
    let sender = match WebhookSender::new(settings.allow_insecure, settings.timeout) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "webhook delivery is off: the HTTP client could not be built");
            return;
        }
    };
    let owner = uuid::Uuid::new_v4().to_string();
    let lease = settings.timeout + Duration::from_secs(30);
    let slots = settings.concurrency.max(1);
    let per_target = per_target_limit(slots);
    let mut running: tokio::task::JoinSet<WebhookId> = tokio::task::JoinSet::new();
    let mut in_flight: HashMap<WebhookId, usize> = HashMap::new();
    loop {
        while let Some(done) = running.try_join_next() {
            ended(&mut in_flight, done);
        }
        if *stop.borrow() {
            break;
        }
        let mut busy = false;
        match webhooks.dispatch_events().await {
            Ok(n) => busy |= n > 0,
            Err(e) => {
                tracing::warn!(error = %crate::telemetry::Causes(&e), "webhook dispatch failed")
            }
        }
        let free = slots.saturating_sub(running.len());
        if free > 0 {
            let now = webhooks.core.clock.now();
            let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
            let full: Vec<WebhookId> = in_flight
                .iter()
                .filter(|(_, n)| **n >= per_target)
                .map(|(id, _)| *id)
                .collect();
            let limit = i64::try_from(free).unwrap_or(8);
            let claimed = match webhooks.core.row_key() {
                Ok(key) => {
                    repo::claim_due(&webhooks.core.db, &key, &owner, now, until, limit, &full)
                        .await
                        .map_err(Into::into)
                }
                Err(e) => Err(e),
            };
            match claimed {
                Ok((due, refused)) => {
                    for r in refused {
                        busy = true;
                        webhooks.refuse(&owner, r).await;
                    }
                    for d in due {
                        busy = true;
                        let n = in_flight.entry(d.webhook_id).or_default();
                        if *n >= per_target {
                            // Claimed together with others of its webhook: back it goes, due
                            // as it was, for when that webhook has a free slot.
                            if let Err(e) = repo::release(&webhooks.core.db, &d.id, &owner).await {
                                tracing::warn!(error = %crate::telemetry::Causes(&e), "could not give back a webhook delivery");
                            }
                            continue;
                        }
                        *n += 1;
                        let webhooks = webhooks.clone();
                        let sender = sender.clone();
                        let owner = owner.clone();
                        running.spawn(async move {
                            let webhook = d.webhook_id;
                            if let Err(e) = webhooks.deliver(&sender, &owner, d).await {
                                tracing::warn!(error = %crate::telemetry::Causes(&e), "recording a webhook attempt failed");
                            }
                            webhook
                        });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::Causes(&e), "claiming webhook deliveries failed")
                }
            }
        }
        if busy && running.len() < slots {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(settings.poll) => {}
            Some(done) = running.join_next(), if !running.is_empty() => ended(&mut in_flight, done),
            _ = stop.changed() => {}
        }
    }
    while let Some(done) = running.join_next().await {
        ended(&mut in_flight, done);
    }
}

/// Frees the slot of an attempt that ended.
fn ended(in_flight: &mut HashMap<WebhookId, usize>, done: Result<WebhookId, JoinError>) {
    let Ok(webhook) = done else {
        // A panicked attempt names no webhook: forget every count rather than leak a slot.
        tracing::error!("a webhook attempt ended abnormally");
        in_flight.clear();
        return;
    };
    if let Some(n) = in_flight.get_mut(&webhook) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            in_flight.remove(&webhook);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let base = Duration::from_secs(10);
        for attempt in 1..=5u32 {
            let d = backoff(base, attempt).as_secs_f64();
            let nominal = 10.0 * f64::from(1u32 << (attempt - 1));
            assert!(d >= nominal * 0.8 && d <= nominal * 1.2, "{attempt}: {d}");
        }
        assert!(backoff(base, 40) <= MAX_BACKOFF.mul_f64(1.2));
    }
}
