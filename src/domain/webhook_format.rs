//! The formats a webhook can receive events in: simvault's own, or the `telco` profile's (the
//! physical SIM API's event names and payload).
//!
//! A subscription's format is carried by the event names it subscribed to: a `telco`
//! subscription names the profile's events (`sim.physical.*`) and nothing else, a native one
//! names native kinds. The names are covered by the subscription row's MAC, so the format is
//! authenticated with them and needs no column of its own.

use serde_json::{Value, json};

use super::event::EventKind;
use super::{Timestamp, format_timestamp};

/// How a webhook's deliveries are shaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WebhookFormat {
    /// `{id, event, timestamp, tenant_id, data}` with simvault's event names.
    #[default]
    Native,
    /// `{event, timestamp, data}` with the physical SIM API's event names and payloads.
    Telco,
}

/// The telco profile's events and the kinds they are.
pub const TELCO_EVENTS: [(&str, EventKind); 5] = [
    ("sim.physical.created", EventKind::SimCreated),
    ("sim.physical.state_changed", EventKind::SimStateChanged),
    ("sim.physical.pin_reset", EventKind::SimPinReset),
    ("sim.physical.pin_blocked", EventKind::SimPinBlocked),
    ("sim.physical.deleted", EventKind::SimDeleted),
];

impl WebhookFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookFormat::Native => "native",
            WebhookFormat::Telco => "telco",
        }
    }

    /// `native` or `telco`, in any case.
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "native" => Some(WebhookFormat::Native),
            "telco" => Some(WebhookFormat::Telco),
            _ => None,
        }
    }

    /// The format of a subscription to `events` (as stored).
    pub fn of_events<S: AsRef<str>>(events: &[S]) -> Self {
        if !events.is_empty() && events.iter().all(|e| telco_kind(e.as_ref()).is_some()) {
            WebhookFormat::Telco
        } else {
            WebhookFormat::Native
        }
    }

    /// The event a subscription in this format names as `name`, if it is one of the format's.
    pub fn event(self, name: &str) -> Option<EventKind> {
        match self {
            WebhookFormat::Native => name.parse().ok(),
            WebhookFormat::Telco => telco_kind(name),
        }
    }

    /// The names a subscription in this format may name, comma-separated.
    pub fn names(self) -> String {
        match self {
            WebhookFormat::Native => EventKind::ALL.map(EventKind::as_str).join(", "),
            WebhookFormat::Telco => TELCO_EVENTS.map(|(n, _)| n).join(", "),
        }
    }
}

/// The kind a telco event name means.
pub fn telco_kind(name: &str) -> Option<EventKind> {
    TELCO_EVENTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, kind)| *kind)
}

/// The outbox's name for the events a subscription's entry `subscribed` asks for: a telco name
/// is its kind's native name; every other entry is matched as written.
pub fn outbox_name(subscribed: &str) -> &str {
    match telco_kind(subscribed) {
        Some(kind) => kind.as_str(),
        None => subscribed,
    }
}

/// The telco delivery body of an outbox event (`event_type`, its native payload, when it
/// occurred); `None` for a kind the format has no event for.
pub fn telco_body(event_type: &str, occurred_at: Timestamp, payload: &Value) -> Option<Value> {
    let (name, kind) = TELCO_EVENTS
        .iter()
        .find(|(_, kind)| kind.as_str() == event_type)?;
    let upper = |key: &str| payload[key].as_str().map(str::to_ascii_uppercase);
    let iccid = payload["iccid"].clone();
    let data = match kind {
        EventKind::SimCreated => json!({"iccid": iccid, "state": upper("state")}),
        EventKind::SimStateChanged => json!({
            "iccid": iccid,
            "previous_state": upper("previous_state"),
            "new_state": upper("state"),
            "reason": payload["reason"],
        }),
        EventKind::SimPinReset | EventKind::SimPinBlocked => {
            json!({"iccid": iccid, "pin_type": upper("pin_type")})
        }
        _ => json!({"iccid": iccid, "deleted_at": format_timestamp(occurred_at)}),
    };
    Some(json!({
        "event": name,
        "timestamp": format_timestamp(occurred_at),
        "data": data,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_is_carried_by_the_names() {
        assert_eq!(
            WebhookFormat::of_events(&["sim.physical.created", "sim.physical.deleted"]),
            WebhookFormat::Telco
        );
        assert_eq!(
            WebhookFormat::of_events(&["sim.created"]),
            WebhookFormat::Native
        );
        assert_eq!(
            WebhookFormat::of_events(&["sim.physical.created", "sim.created"]),
            WebhookFormat::Native
        );
        assert_eq!(WebhookFormat::of_events::<&str>(&[]), WebhookFormat::Native);
        assert_eq!(WebhookFormat::parse("TELCO"), Some(WebhookFormat::Telco));
        assert_eq!(WebhookFormat::parse("s3"), None);
        assert_eq!(
            WebhookFormat::Telco.event("sim.created"),
            None,
            "a telco subscription names telco events"
        );
        assert_eq!(WebhookFormat::Native.event("sim.physical.created"), None);
        assert_eq!(outbox_name("sim.physical.pin_reset"), "sim.pin_reset");
        assert_eq!(outbox_name("task.completed"), "task.completed");
    }

    #[test]
    fn the_seed_payloads() {
        let at = 1_705_314_900_000_000; // 2024-01-15T10:35:00Z
        let changed = json!({"sim_id": "x", "iccid": "8944", "state": "active",
            "previous_state": "inventory", "reason": "Customer activation request"});
        assert_eq!(
            telco_body("sim.state_changed", at, &changed).unwrap(),
            json!({
                "event": "sim.physical.state_changed",
                "timestamp": "2024-01-15T10:35:00Z",
                "data": {"iccid": "8944", "previous_state": "INVENTORY", "new_state": "ACTIVE",
                    "reason": "Customer activation request"}
            })
        );
        let created = json!({"sim_id": "x", "iccid": "8944", "state": "inventory"});
        assert_eq!(
            telco_body("sim.created", at, &created).unwrap()["data"],
            json!({"iccid": "8944", "state": "INVENTORY"})
        );
        let pin = json!({"sim_id": "x", "iccid": "8944", "state": "active", "pin_type": "pin1",
            "pin_remaining_attempts": 0, "puk_remaining_attempts": 10});
        for (kind, name) in [
            ("sim.pin_reset", "sim.physical.pin_reset"),
            ("sim.pin_blocked", "sim.physical.pin_blocked"),
        ] {
            let body = telco_body(kind, at, &pin).unwrap();
            assert_eq!(body["event"], name);
            assert_eq!(body["data"], json!({"iccid": "8944", "pin_type": "PIN1"}));
        }
        assert_eq!(
            telco_body("sim.deleted", at, &created).unwrap()["data"],
            json!({"iccid": "8944", "deleted_at": "2024-01-15T10:35:00Z"})
        );
        assert!(telco_body("sim.secrets_updated", at, &created).is_none());
        assert!(telco_body("task.completed", at, &created).is_none());
    }
}
