//! A SIM's conditions kept current: judged again inside the transaction of every change to what
//! they depend on (its usage and IMEI as upstream reports them, its limit, group or device, its
//! group's limit or IMEI lock, its device's IMEI), each condition entered recorded and evented
//! with that change, so that a change and what it set off commit together or not at all.

use super::audit::Event;
use super::{Core, ServiceResult};
use crate::domain::audit::AuditOutcome;
use crate::domain::condition::{self, Condition};
use crate::domain::event::SimChange;
use crate::domain::{Imei, Principal, Sim, TenantId};
use crate::policy::Action;
use crate::store::Tx;
use crate::store::groups::{self as group_repo, Member};
use crate::store::sims::{self as repo, SimKey};

/// Who set a re-judgement off, for its records: the principal, its action and the policies that
/// allowed it.
#[derive(Clone, Copy)]
pub(super) struct Cause<'a> {
    pub principal: &'a Principal,
    pub action: Action,
    pub policy_ids: &'a [String],
}

/// The audit reason of a condition entered.
pub(super) fn entered_reason(c: Condition) -> String {
    format!("entered condition {c}")
}

/// The event of `sim` (as it is after the change) entering `c`, with what it was judged on.
pub(super) fn entered_change(sim: &Sim, c: Condition) -> SimChange {
    SimChange::ConditionEntered {
        condition: c,
        consumed_data: sim.consumed_data,
        data_limit: sim.effective_data_limit,
        imei: sim.imei.as_ref().map(|i| Imei::as_str(i).to_owned()),
    }
}

impl Core {
    /// Judges `sim`'s conditions again from its group and device as stored in `tx`, before the
    /// SIM is written; returns the conditions it entered.
    pub(super) async fn judge_conditions(
        &self,
        tx: &mut Tx,
        sim: &mut Sim,
    ) -> ServiceResult<Vec<Condition>> {
        let around = group_repo::surroundings(
            tx,
            &sim.tenant_id,
            sim.group_id.as_deref(),
            sim.device_id.as_deref(),
        )
        .await?;
        let now = condition::evaluate(sim, &around);
        sim.effective_data_limit = condition::effective_data_limit(sim, &around);
        let entered = condition::entered(&sim.conditions, &now);
        sim.conditions = now;
        Ok(entered)
    }

    /// Records each condition `sim` entered (as it is after the change): an audit record by
    /// the cause and an event, inside `tx`.
    pub(super) async fn record_entered(
        &self,
        tx: &mut Tx,
        cause: Cause<'_>,
        sim: &Sim,
        entered: &[Condition],
    ) -> ServiceResult<()> {
        self.record_all_entered(tx, cause, &[(sim, entered)]).await
    }

    /// [`Core::record_entered`] for many SIMs: their events, then their records appended to the
    /// tenant's chain at once. Callers write every row they lock before this: the first record
    /// locks the tenant's audit head, and a transaction holding it must take no further SIM
    /// lock (a single-SIM change locks its SIM, then the head: the other order deadlocks).
    pub(super) async fn record_all_entered(
        &self,
        tx: &mut Tx,
        cause: Cause<'_>,
        entered: &[(&Sim, &[Condition])],
    ) -> ServiceResult<()> {
        let reasons: Vec<Vec<String>> = entered
            .iter()
            .map(|(_, cs)| cs.iter().map(|&c| entered_reason(c)).collect())
            .collect();
        let mut events = Vec::new();
        for ((sim, cs), reasons) in entered.iter().zip(&reasons) {
            for (&c, reason) in cs.iter().zip(reasons) {
                self.emit(tx, sim, entered_change(sim, c)).await?;
                events.push(Event {
                    action: cause.action,
                    sim: Some(*sim),
                    fields: &[],
                    outcome: AuditOutcome::Allowed,
                    reason: Some(reason),
                    policy_ids: cause.policy_ids.to_vec(),
                    remaining_attempts: None,
                });
            }
        }
        if events.is_empty() {
            return Ok(());
        }
        self.audit_all_in(tx, cause.principal, events).await
    }

    /// Judges again every live SIM of the tenant's group or device `id` after a change to it,
    /// each under its row lock, writing those whose conditions moved and recording what they
    /// entered, after every row is written. (A group of many SIMs is judged in this one
    /// transaction: the change and its consequences commit together.) The caller records its
    /// own change after this, for the same reason.
    pub(super) async fn judge_members<I: Member>(
        &self,
        tx: &mut Tx,
        cause: Cause<'_>,
        tenant: &TenantId,
        id: &I,
    ) -> ServiceResult<()> {
        let key = self.row_key()?;
        let mut members = group_repo::members(&mut *tx, tenant, id).await?;
        // Locked in the order of their ids' text, as a sync round locks its SIMs: two
        // transactions taking the same rows in one order cannot deadlock.
        members.sort_by_cached_key(ToString::to_string);
        let mut moved = Vec::new();
        for sim_id in members {
            let Some(mut sim) = repo::get_for_update(tx, &key, tenant, &SimKey::Id(sim_id)).await?
            else {
                continue;
            };
            let before = sim.conditions.clone();
            let entered = self.judge_conditions(tx, &mut sim).await?;
            if sim.conditions == before {
                continue;
            }
            sim.updated_at = self.clock.now().max(sim.updated_at);
            repo::update(tx, &key, &sim).await?;
            moved.push((sim, entered));
        }
        let entered: Vec<(&Sim, &[Condition])> =
            moved.iter().map(|(s, e)| (s, e.as_slice())).collect();
        self.record_all_entered(tx, cause, &entered).await
    }
}
