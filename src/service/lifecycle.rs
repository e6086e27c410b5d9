//! The SIM lifecycle: state changes along the state machine, their history, and the domain
//! events (outbox) that webhooks deliver.

use super::audit::Event;
use super::{Core, Page, ServiceError, ServiceResult};
use crate::domain::event::{DomainEvent, SimChange};
use crate::domain::{Principal, Sim, SimState};
use crate::policy::{Action, Decision};
use crate::store::lifecycle::{self as repo, HistoryRow};
use crate::store::sims::{self as sims_repo, SimKey};
use crate::store::{Tx, outbox};

super::capability! {
    /// A SIM's states, its history, and the carrier's view of it.
    pub struct Lifecycle {
        core: super::Core,
        /// The carrier's system, when one is configured.
        upstream: Option<std::sync::Arc<dyn crate::adapters::upstream::Connector>>,
    }
}

/// A state change made.
#[derive(Debug, Clone)]
pub struct StateChange {
    pub sim: Sim,
    pub previous: SimState,
}

impl Lifecycle {
    /// `PATCH /v1/sims/{sim}/state`. Asking for the current state changes nothing.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "change_state"))]
    pub async fn change_state(
        &self,
        principal: &Principal,
        key: &SimKey,
        to: SimState,
        reason: Option<&str>,
    ) -> ServiceResult<StateChange> {
        let (mut tx, mut sim, decision) = self
            .core
            .lock_sim(principal, key, Action::ChangeState)
            .await?;
        let previous = self
            .core
            .change_locked_state(&mut tx, principal, &mut sim, (to, reason), decision)
            .await?;
        if previous != to {
            tx.commit().await?;
            tracing::info!(sim_id = %sim.id, from = previous.as_str(), to = to.as_str(), "state changed");
        }
        Ok(StateChange { sim, previous })
    }
}

impl Core {
    /// The state change of `sim`, held locked in `tx` and allowed by `decision`, to `to` for
    /// `reason`: the lifecycle's rule, the history row, the event and the record, all in `tx`
    /// (the caller commits). Asking for the current state changes nothing. Returns the state
    /// the SIM was in. A single change and each item of a bulk change go through here.
    pub(super) async fn change_locked_state(
        &self,
        tx: &mut Tx,
        principal: &Principal,
        sim: &mut Sim,
        (to, reason): (SimState, Option<&str>),
        decision: Decision,
    ) -> ServiceResult<SimState> {
        let from = sim.state;
        if from == to {
            return Ok(from);
        }
        if !from.can_transition_to(to) {
            return Err(ServiceError::InvalidTransition { from, to });
        }
        self.move_state(tx, principal, sim, to, reason).await?;
        sims_repo::update(tx, &*self.row_key()?, sim).await?;
        let event = Event {
            reason,
            ..Event::allowed(Action::ChangeState, sim, decision)
        };
        self.audit_in(tx, principal, event).await?;
        Ok(from)
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
                from_state: from,
                to_state: to,
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
}

impl Lifecycle {
    /// `GET /v1/sims/{sim}/history`: newest first.
    #[tracing::instrument(name = "use_case", skip_all, fields(tenant = %principal.tenant, action = "sim_history"))]
    pub async fn sim_history(
        &self,
        principal: &Principal,
        key: &SimKey,
        page: u32,
        page_size: u32,
    ) -> ServiceResult<Page<HistoryRow>> {
        let sim = self.core.read_sim(principal, key).await?;
        let offset = crate::service::page_offset(page, page_size);
        let (items, total) = repo::history(
            &self.core.db,
            &sim.id.to_string(),
            i64::from(page_size),
            offset,
        )
        .await?;
        Ok(Page::counted(items, total, page, page_size))
    }
}
