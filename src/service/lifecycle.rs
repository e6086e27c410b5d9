//! The SIM lifecycle: state changes along the state machine, their history, and the domain
//! events (outbox) that webhooks deliver.

use super::audit::Event;
use super::{Page, ServiceError, ServiceResult, Services};
use crate::domain::event::{DomainEvent, SimChange};
use crate::domain::{Principal, Sim, SimState};
use crate::policy::Action;
use crate::store::lifecycle::{self as repo, HistoryRow};
use crate::store::sims::{self as sims_repo, SimKey};
use crate::store::{Tx, outbox};

/// A state change made.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub sim: Sim,
    pub previous: SimState,
}

impl Services {
    /// `PATCH /v1/sims/{sim}/state`. Asking for the current state changes nothing.
    pub async fn change_state(
        &self,
        principal: &Principal,
        key: &SimKey,
        to: SimState,
        reason: Option<&str>,
    ) -> ServiceResult<StateChange> {
        let (mut tx, mut sim, decision) =
            self.lock_sim(principal, key, Action::ChangeState).await?;
        let from = sim.state;
        if from == to {
            return Ok(StateChange {
                sim,
                previous: from,
            });
        }
        if !from.can_transition_to(to) {
            return Err(ServiceError::InvalidTransition { from, to });
        }
        self.move_state(&mut tx, principal, &mut sim, to, reason)
            .await?;
        sims_repo::update(&mut tx, &*self.row_key()?, &sim).await?;
        let event = Event {
            reason,
            ..Event::allowed(Action::ChangeState, &sim, decision)
        };
        self.audit_in(&mut tx, principal, event).await?;
        tx.commit().await?;
        tracing::info!(sim_id = %sim.id, from = from.as_str(), to = to.as_str(), "state changed");
        Ok(StateChange {
            sim,
            previous: from,
        })
    }

    /// Moves a locked SIM to `to` inside `tx`: its history row and its `sim.state_changed`
    /// event. The caller writes the SIM back and records the audit entry.
    pub(super) async fn move_state(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        sim: &mut Sim,
        to: SimState,
        reason: Option<&str>,
    ) -> ServiceResult<()> {
        let from = sim.state;
        let now = self.clock.now().max(sim.updated_at);
        sim.state = to;
        sim.state_reason = reason.map(str::to_owned);
        sim.updated_at = now;
        repo::insert_history(
            tx,
            &HistoryRow {
                id: uuid::Uuid::new_v4().to_string(),
                tenant_id: sim.tenant_id.clone(),
                sim_id: sim.id.to_string(),
                from_state: from.as_str().to_owned(),
                to_state: to.as_str().to_owned(),
                reason: reason.map(str::to_owned),
                actor: principal.subject.clone(),
                auth_method: principal.auth_method.as_str().to_owned(),
                occurred_at: now,
            },
        )
        .await?;
        let change = SimChange::StateChanged {
            previous: from,
            reason: reason.map(str::to_owned),
        };
        self.emit(tx, sim, change).await
    }

    /// Writes the event of `change` to `sim` (as it is after the change) to the outbox
    /// inside `tx`.
    pub(super) async fn emit(
        &self,
        tx: &mut Tx,
        sim: &Sim,
        change: SimChange,
    ) -> ServiceResult<()> {
        let event = DomainEvent::sim(sim, change, self.clock.now());
        outbox::insert(tx, &[event]).await?;
        Ok(())
    }

    /// `GET /v1/sims/{sim}/history`: newest first.
    pub async fn sim_history(
        &self,
        principal: &Principal,
        key: &SimKey,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<HistoryRow>> {
        let sim = self.get_sim(principal, key).await?;
        let offset = crate::service::page_offset(page, page_size);
        let (items, total) =
            repo::history(&self.db, &sim.id.to_string(), i64::from(page_size), offset).await?;
        Ok(Page::counted(items, total, page, page_size))
    }
}
