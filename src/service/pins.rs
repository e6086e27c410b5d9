//! PIN reset and PUK unblock. The SIM row is locked (PostgreSQL `FOR UPDATE`, SQLite's single
//! write transaction) for the whole attempt: the counter is read, decremented, compared,
//! restored on success and committed together with the attempt's audit record, so that no
//! number of concurrent requests or replicas gets more guesses than the counter allows.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::audit::Event;
use super::{Core, ServiceError, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::event::{PinEvent, SimChange};
use crate::domain::pin::{self, PinType, Proof, Verdict};
use crate::domain::{Principal, SecretField, SecretValue, Sim, SimState, Timestamp};
use crate::policy::{Action, Context};
use crate::store::sims::{self as repo, SimKey};
use crate::store::{Tx, keys};
use crate::vault;

super::capability! {
    /// PIN and PUK changes, verified against the stored values, limited per principal.
    pub struct Pins {
        core: super::Core,
        /// Per-principal limit on PIN operations.
        pin_limiter: Arc<PinRateLimiter>,
    }
}

/// A PIN operation as asked for (validated).
pub struct PinChange {
    pub pin_type: PinType,
    /// What is presented: the current PIN (reset) or the PUK of the pair (unblock).
    pub proof: Proof,
    pub presented: SecretValue,
    pub new_pin: SecretValue,
    pub reason: Option<String>,
}

impl std::fmt::Debug for PinChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinChange")
            .field("pin_type", &self.pin_type)
            .field("proof", &self.proof)
            .finish_non_exhaustive()
    }
}

/// A successful PIN operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinChanged {
    /// The presented secret's attempts left (its maximum, restored): the PIN's for a reset,
    /// the PUK's for an unblock.
    pub remaining: i64,
    pub updated_at: Timestamp,
}

/// Limits PIN operations per principal, so that one support account cannot sweep many SIMs.
/// Per replica (in memory): the retry counters, not this, are the security boundary.
pub struct PinRateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
}

impl std::fmt::Debug for PinRateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinRateLimiter")
            .field("enabled", &self.limiter.is_some())
            .finish()
    }
}

/// Principals remembered before idle ones are forgotten.
const LIMITER_KEYS: usize = 10_000;

impl PinRateLimiter {
    /// `per_minute` operations a minute per principal, in bursts of up to that many; `0`
    /// turns the limit off.
    pub fn new(per_minute: u32) -> Arc<Self> {
        Arc::new(Self {
            limiter: NonZeroU32::new(per_minute).map(|n| RateLimiter::keyed(Quota::per_minute(n))),
        })
    }

    /// `Err(seconds to wait)` when `principal` is over its limit.
    fn check(&self, principal: &Principal) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() > LIMITER_KEYS {
            limiter.retain_recent();
        }
        let key = format!("{}\n{}", principal.tenant, principal.subject);
        limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::Clock::now(
                &governor::clock::DefaultClock::default(),
            ));
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }
}

impl Pins {
    /// `POST /v1/sims/{sim}/reset-pin` and `…/unblock-pin`.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "change_pin"))]
    pub async fn change_pin(
        &self,
        principal: &Principal,
        key: &SimKey,
        change: PinChange,
    ) -> ServiceResult<PinChanged> {
        let action = match change.proof {
            Proof::Pin => Action::ResetPin,
            Proof::Puk => Action::UnblockPin,
        };
        let reason = change.reason.as_deref();
        if let Err(retry_after_secs) = self.pin_limiter.check(principal) {
            let event = Event::tenant_wide(action, AuditOutcome::RateLimited, reason, Vec::new());
            self.core.audit_alone(principal, event).await?;
            return Err(ServiceError::RateLimited { retry_after_secs });
        }
        let context = Context {
            reason_given: reason.is_some(),
            secret_field: None,
        };
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim_with(principal, key, action, &context, reason)
            .await?;
        let (pin_field, puk_field) = (change.pin_type.pin(), change.pin_type.puk());
        let proof_field = match change.proof {
            Proof::Pin => pin_field,
            Proof::Puk => puk_field,
        };
        let fields: Vec<SecretField> = match change.proof {
            Proof::Pin => vec![pin_field],
            Proof::Puk => vec![puk_field, pin_field],
        };
        if sim.state == SimState::Retired {
            let event = refused_attempt(
                action,
                &sim,
                &fields,
                AuditOutcome::SimRetired,
                reason,
                decision,
            );
            self.core.audit_in(&mut tx, principal, event).await?;
            tx.commit().await?;
            return Err(ServiceError::Conflict(
                "the SIM is retired: its PINs can no longer be changed".into(),
            ));
        }
        let Some(stored) = self.core.open_secret_in(&mut tx, &sim, proof_field).await? else {
            let event = refused_attempt(
                action,
                &sim,
                &fields,
                AuditOutcome::NotStored,
                reason,
                decision,
            );
            self.core.audit_in(&mut tx, principal, event).await?;
            tx.commit().await?;
            return Err(ServiceError::Conflict(format!(
                "this SIM has no {} to check against",
                proof_field.as_str().to_uppercase()
            )));
        };
        let verdict = pin::attempt(
            &mut sim.counters,
            change.pin_type,
            change.proof,
            &stored,
            &change.presented,
        );
        drop(stored);
        if verdict.compared() {
            if let Verdict::Success { .. } = verdict {
                let new_pin = vec![(pin_field, Some(change.new_pin))];
                self.core.apply_secrets(&mut tx, &mut sim, &new_pin).await?;
            }
            let exhausted = format!("{} attempts exhausted", puk_field.as_str().to_uppercase());
            if verdict == (Verdict::WrongPuk { remaining: 0 }) {
                // The card would be dead now: so is the SIM, for good.
                if sim.state == SimState::Blocked {
                    sim.state_reason = Some(exhausted);
                } else {
                    self.core
                        .move_state(
                            &mut tx,
                            principal,
                            &mut sim,
                            SimState::Blocked,
                            Some(&exhausted),
                        )
                        .await?;
                }
            }
            sim.updated_at = self.core.clock.now().max(sim.updated_at);
            repo::update(&mut tx, &*self.core.row_key()?, &sim).await?;
            if let Some(event) = PinEvent::of(verdict, change.proof) {
                let sim_change = SimChange::Pin {
                    event,
                    pin_type: change.pin_type,
                    pin_remaining_attempts: sim.counters.remaining(pin_field),
                    puk_remaining_attempts: sim.counters.remaining(puk_field),
                };
                self.core.emit(&mut tx, &sim, sim_change).await?;
            }
        }
        let remaining = match verdict {
            Verdict::Success { remaining }
            | Verdict::WrongPin { remaining }
            | Verdict::WrongPuk { remaining } => remaining,
            Verdict::PinBlocked | Verdict::PukBlocked => 0,
        };
        let event = Event {
            action,
            sim: Some(&sim),
            fields: &fields,
            outcome: verdict.outcome(),
            reason,
            policy_ids: decision.policy_ids,
            remaining_attempts: Some(remaining),
        };
        self.core.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        tracing::info!(sim_id = %sim.id, pin = change.pin_type.as_str(), outcome = verdict.outcome().as_str(), "PIN attempt");
        match verdict {
            Verdict::Success { remaining } => Ok(PinChanged {
                remaining,
                updated_at: sim.updated_at,
            }),
            refused => Err(ServiceError::Pin(refused)),
        }
    }
}

impl Core {
    /// Decrypts one secret field of a locked SIM inside `tx`.
    pub(super) async fn open_secret_in(
        &self,
        tx: &mut Tx,
        sim: &Sim,
        field: SecretField,
    ) -> ServiceResult<Option<SecretValue>> {
        let Some((format, ciphertext)) = keys::secret(&mut *tx, &sim.id, field.as_str()).await?
        else {
            return Ok(None);
        };
        let dek_row = keys::dek(&mut *tx, &sim.id)
            .await?
            .ok_or_else(|| ServiceError::internal("a secret without its SIM key"))?;
        vault::check_format(format)?;
        let kek = self.kek_in(tx, &sim.tenant_id, dek_row.kek_version).await?;
        let dek = super::secrets::open_dek(&kek, sim, &dek_row)?;
        let text = vault::open_field(&dek, &sim.tenant_id, &sim.id, field, &ciphertext)?;
        Ok(Some(SecretValue::from_stored(text)))
    }
}

/// The record of an attempt refused before any comparison (`409`): like a wrong guess's, with
/// no counter (none was touched).
fn refused_attempt<'a>(
    action: Action,
    sim: &'a Sim,
    fields: &'a [SecretField],
    outcome: AuditOutcome,
    reason: Option<&'a str>,
    decision: crate::policy::Decision,
) -> Event<'a> {
    Event {
        outcome,
        reason,
        ..Event::allowed(action, sim, decision).with_fields(fields)
    }
}
