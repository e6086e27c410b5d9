//! Domain events: what happened to a tenant's SIMs and tasks, written to the outbox in the
//! transaction of the change they record and delivered to the tenant's webhooks.
//!
//! An event is built only through [`DomainEvent::sim`] and [`DomainEvent::task_completed`];
//! each kind carries the data of its payload, and [`EventKind::as_str`] is the one place a
//! kind becomes the text that the outbox, webhook subscriptions and receivers know. Payloads
//! never hold a secret: ids, ICCIDs, states, secret field names and counters only.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;
use serde_json::{Map, Value, json};

use super::condition::Condition;
use super::pin::{PinType, Proof, Verdict};
use super::usage::DataAmount;
use super::{Iccid, SecretField, Sim, SimId, SimState, TenantId, Timestamp};

/// The kinds of event, as webhooks subscribe to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "&'static str")]
pub enum EventKind {
    SimCreated,
    SimStateChanged,
    SimSecretsUpdated,
    SimPinReset,
    SimPinBlocked,
    SimPinUnblocked,
    SimPukBlocked,
    SimDeleted,
    SimDataLimitExceeded,
    SimUnauthorizedImei,
    TaskCompleted,
}

impl EventKind {
    /// Every kind, in the order the API lists them.
    pub const ALL: [EventKind; 11] = [
        EventKind::SimCreated,
        EventKind::SimStateChanged,
        EventKind::SimSecretsUpdated,
        EventKind::SimPinReset,
        EventKind::SimPinBlocked,
        EventKind::SimPinUnblocked,
        EventKind::SimPukBlocked,
        EventKind::SimDeleted,
        EventKind::SimDataLimitExceeded,
        EventKind::SimUnauthorizedImei,
        EventKind::TaskCompleted,
    ];

    /// The kind's name: the outbox's `event_type`, a subscription's entry, a body's `event`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::SimCreated => "sim.created",
            EventKind::SimStateChanged => "sim.state_changed",
            EventKind::SimSecretsUpdated => "sim.secrets_updated",
            EventKind::SimPinReset => "sim.pin_reset",
            EventKind::SimPinBlocked => "sim.pin_blocked",
            EventKind::SimPinUnblocked => "sim.pin_unblocked",
            EventKind::SimPukBlocked => "sim.puk_blocked",
            EventKind::SimDeleted => "sim.deleted",
            EventKind::SimDataLimitExceeded => "sim.data_limit_exceeded",
            EventKind::SimUnauthorizedImei => "sim.unauthorized_imei",
            EventKind::TaskCompleted => "task.completed",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<EventKind> for &'static str {
    fn from(kind: EventKind) -> Self {
        kind.as_str()
    }
}

impl FromStr for EventKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        EventKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or(())
    }
}

/// What a PIN attempt did that is worth an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PinEvent {
    /// The PIN was changed with the current PIN.
    Reset,
    /// The PIN was set with the PUK.
    Unblocked,
    /// The last PIN attempt was wrong.
    PinBlocked,
    /// The last PUK attempt was wrong: the card is dead.
    PukBlocked,
}

impl PinEvent {
    /// The event an attempt with `proof` that came to `verdict` is worth, if any.
    pub fn of(verdict: Verdict, proof: Proof) -> Option<PinEvent> {
        match (verdict, proof) {
            (Verdict::Success { .. }, Proof::Pin) => Some(PinEvent::Reset),
            (Verdict::Success { .. }, Proof::Puk) => Some(PinEvent::Unblocked),
            (Verdict::WrongPin { remaining: 0 }, _) => Some(PinEvent::PinBlocked),
            (Verdict::WrongPuk { remaining: 0 }, _) => Some(PinEvent::PukBlocked),
            _ => None,
        }
    }
}

/// What happened to a SIM.
#[derive(Debug, Clone, PartialEq)]
pub enum SimChange {
    /// Created by a request, or by the import task `task_id`.
    Created {
        task_id: Option<String>,
    },
    /// Moved from `previous` to the SIM's state.
    StateChanged {
        previous: SimState,
        reason: Option<String>,
    },
    /// These secret fields were written (their names only).
    SecretsUpdated {
        fields: Vec<SecretField>,
    },
    /// A PIN attempt, with the counters it left.
    Pin {
        event: PinEvent,
        pin_type: PinType,
        pin_remaining_attempts: Option<i64>,
        puk_remaining_attempts: Option<i64>,
    },
    Deleted,
    /// It entered a condition: with what it was judged on (usage and the effective limit, or
    /// the IMEI seen).
    ConditionEntered {
        condition: Condition,
        consumed_data: Option<DataAmount>,
        data_limit: Option<DataAmount>,
        imei: Option<String>,
    },
}

impl SimChange {
    fn kind(&self) -> EventKind {
        match self {
            SimChange::Created { .. } => EventKind::SimCreated,
            SimChange::StateChanged { .. } => EventKind::SimStateChanged,
            SimChange::SecretsUpdated { .. } => EventKind::SimSecretsUpdated,
            SimChange::Pin { event, .. } => match event {
                PinEvent::Reset => EventKind::SimPinReset,
                PinEvent::Unblocked => EventKind::SimPinUnblocked,
                PinEvent::PinBlocked => EventKind::SimPinBlocked,
                PinEvent::PukBlocked => EventKind::SimPukBlocked,
            },
            SimChange::Deleted => EventKind::SimDeleted,
            SimChange::ConditionEntered { condition, .. } => match condition {
                Condition::DataLimitExceeded => EventKind::SimDataLimitExceeded,
                Condition::UnauthorizedImei => EventKind::SimUnauthorizedImei,
            },
        }
    }

    /// The payload's entries after the SIM's own.
    fn details(&self) -> Value {
        match self {
            SimChange::Created { task_id: None } | SimChange::Deleted => json!({}),
            SimChange::Created {
                task_id: Some(task_id),
            } => json!({ "task_id": task_id }),
            SimChange::StateChanged { previous, reason } => {
                json!({"previous_state": previous.as_str(), "reason": reason})
            }
            SimChange::SecretsUpdated { fields } => {
                let names: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
                json!({ "fields": names })
            }
            SimChange::Pin {
                pin_type,
                pin_remaining_attempts,
                puk_remaining_attempts,
                ..
            } => json!({
                "pin_type": pin_type.as_str(),
                "pin_remaining_attempts": pin_remaining_attempts,
                "puk_remaining_attempts": puk_remaining_attempts,
            }),
            SimChange::ConditionEntered {
                condition: Condition::DataLimitExceeded,
                consumed_data,
                data_limit,
                ..
            } => json!({
                "condition": Condition::DataLimitExceeded.as_str(),
                "consumed_data": consumed_data,
                "effective_data_limit": data_limit,
            }),
            SimChange::ConditionEntered {
                condition: Condition::UnauthorizedImei,
                imei,
                ..
            } => json!({"condition": Condition::UnauthorizedImei.as_str(), "imei": imei}),
        }
    }
}

/// A SIM as an event names it, as the change left it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRef {
    pub id: SimId,
    pub iccid: Iccid,
    pub state: SimState,
}

/// A background task that completed, with its counts at completion.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCompletion {
    pub task_id: String,
    /// The task's type (`import`, `provision_links`, `key_rotation`).
    pub kind: String,
    pub status: String,
    pub total_items: i64,
    pub completed_items: i64,
    pub failed_items: i64,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    Sim { sim: SimRef, change: SimChange },
    TaskCompleted(TaskCompletion),
}

/// An event of a tenant, to be written to the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct DomainEvent {
    pub tenant_id: TenantId,
    pub occurred_at: Timestamp,
    pub data: EventData,
}

impl DomainEvent {
    /// `change` happened to `sim` (as it is after the change) at `at`.
    pub fn sim(sim: &Sim, change: SimChange, at: Timestamp) -> DomainEvent {
        DomainEvent {
            tenant_id: sim.tenant_id.clone(),
            occurred_at: at,
            data: EventData::Sim {
                sim: SimRef {
                    id: sim.id,
                    iccid: sim.iccid.clone(),
                    state: sim.state,
                },
                change,
            },
        }
    }

    /// A task of `tenant_id` completed at `at`.
    pub fn task_completed(
        tenant_id: &TenantId,
        task: TaskCompletion,
        at: Timestamp,
    ) -> DomainEvent {
        DomainEvent {
            tenant_id: tenant_id.clone(),
            occurred_at: at,
            data: EventData::TaskCompleted(task),
        }
    }

    pub fn kind(&self) -> EventKind {
        match &self.data {
            EventData::Sim { change, .. } => change.kind(),
            EventData::TaskCompleted(_) => EventKind::TaskCompleted,
        }
    }

    /// The SIM the event is about, if any.
    pub fn sim_id(&self) -> Option<SimId> {
        match &self.data {
            EventData::Sim { sim, .. } => Some(sim.id),
            EventData::TaskCompleted(_) => None,
        }
    }

    /// The payload receivers get as the body's `data`.
    pub fn payload(&self) -> Value {
        match &self.data {
            EventData::Sim { sim, change } => {
                let mut payload = Map::new();
                payload.insert("sim_id".into(), json!(sim.id));
                payload.insert("iccid".into(), sim.iccid.as_str().into());
                payload.insert("state".into(), sim.state.as_str().into());
                if let Value::Object(details) = change.details() {
                    payload.extend(details);
                }
                Value::Object(payload)
            }
            EventData::TaskCompleted(t) => json!({
                "task_id": t.task_id,
                "type": t.kind,
                "status": t.status,
                "total_items": t.total_items,
                "completed_items": t.completed_items,
                "failed_items": t.failed_items,
            }),
        }
    }
}

/// An event as the outbox holds it: the text written, read back as it is (a row written by
/// another version of the service may name a kind this one does not know).
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub id: String,
    pub tenant_id: String,
    pub event_type: String,
    pub sim_id: Option<String>,
    pub payload: String,
    pub occurred_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::LuhnPolicy;

    fn on_sim(change: SimChange) -> DomainEvent {
        DomainEvent {
            tenant_id: TenantId::parse("acme").unwrap(),
            occurred_at: 7,
            data: EventData::Sim {
                sim: SimRef {
                    id: uuid::Uuid::nil().into(),
                    iccid: Iccid::parse("8944500102198304826", LuhnPolicy::Relaxed).unwrap(),
                    state: SimState::Active,
                },
                change,
            },
        }
    }

    const SIM: &str = r#""sim_id":"00000000-0000-0000-0000-000000000000","iccid":"8944500102198304826","state":"active""#;

    #[test]
    fn kinds_map_to_their_names_and_back() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).ok(), Some(json!(kind.as_str())));
        }
        assert_eq!("sim.exploded".parse::<EventKind>(), Err(()));
        assert_eq!(EventKind::ALL[0].to_string(), "sim.created");
    }

    /// The payloads' text, entry order included, is what receivers have always been sent.
    #[test]
    fn payloads_keep_their_shape() {
        let cases = [
            (
                SimChange::Created { task_id: None },
                "sim.created",
                format!("{{{SIM}}}"),
            ),
            (
                SimChange::Created {
                    task_id: Some("t1".into()),
                },
                "sim.created",
                format!(r#"{{{SIM},"task_id":"t1"}}"#),
            ),
            (
                SimChange::StateChanged {
                    previous: SimState::Inventory,
                    reason: None,
                },
                "sim.state_changed",
                format!(r#"{{{SIM},"previous_state":"inventory","reason":null}}"#),
            ),
            (
                SimChange::SecretsUpdated {
                    fields: vec![SecretField::Opc, SecretField::Ki],
                },
                "sim.secrets_updated",
                format!(r#"{{{SIM},"fields":["opc","ki"]}}"#),
            ),
            (
                SimChange::Pin {
                    event: PinEvent::PinBlocked,
                    pin_type: PinType::Pin2,
                    pin_remaining_attempts: Some(0),
                    puk_remaining_attempts: None,
                },
                "sim.pin_blocked",
                format!(
                    r#"{{{SIM},"pin_type":"pin2","pin_remaining_attempts":0,"puk_remaining_attempts":null}}"#
                ),
            ),
            (SimChange::Deleted, "sim.deleted", format!("{{{SIM}}}")),
        ];
        for (change, kind, payload) in cases {
            let event = on_sim(change);
            assert_eq!(event.kind().as_str(), kind);
            assert_eq!(event.sim_id(), Some(uuid::Uuid::nil().into()));
            assert_eq!(event.payload().to_string(), payload);
        }
        let done = DomainEvent::task_completed(
            &crate::domain::tenant::tenant("acme"),
            TaskCompletion {
                task_id: "t1".into(),
                kind: "import".into(),
                status: "completed".into(),
                total_items: 3,
                completed_items: 2,
                failed_items: 1,
            },
            7,
        );
        assert_eq!(
            (done.kind(), done.sim_id()),
            (EventKind::TaskCompleted, None)
        );
        assert_eq!(
            done.payload().to_string(),
            r#"{"task_id":"t1","type":"import","status":"completed","total_items":3,"completed_items":2,"failed_items":1}"#
        );
    }

    #[test]
    fn pin_attempts_name_their_event() {
        use PinEvent::*;
        let cases = [
            (Verdict::Success { remaining: 3 }, Proof::Pin, Some(Reset)),
            (
                Verdict::Success { remaining: 3 },
                Proof::Puk,
                Some(Unblocked),
            ),
            (
                Verdict::WrongPin { remaining: 0 },
                Proof::Pin,
                Some(PinBlocked),
            ),
            (Verdict::WrongPin { remaining: 1 }, Proof::Pin, None),
            (
                Verdict::WrongPuk { remaining: 0 },
                Proof::Puk,
                Some(PukBlocked),
            ),
            (Verdict::WrongPuk { remaining: 2 }, Proof::Puk, None),
            (Verdict::PinBlocked, Proof::Pin, None),
            (Verdict::PukBlocked, Proof::Puk, None),
        ];
        for (verdict, proof, event) in cases {
            assert_eq!(PinEvent::of(verdict, proof), event, "{verdict:?} {proof:?}");
        }
        let kinds: Vec<EventKind> = [Reset, Unblocked, PinBlocked, PukBlocked]
            .into_iter()
            .map(|event| {
                on_sim(SimChange::Pin {
                    event,
                    pin_type: PinType::Pin1,
                    pin_remaining_attempts: None,
                    puk_remaining_attempts: None,
                })
                .kind()
            })
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::SimPinReset,
                EventKind::SimPinUnblocked,
                EventKind::SimPinBlocked,
                EventKind::SimPukBlocked
            ]
        );
    }
}
