//! The kinds of authenticated rows, and the failure of one's check. The vault keys and checks
//! the MACs; every layer can name what failed without reaching the vault.

/// The kinds of authenticated rows; each has its own subkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// A registered client-certificate identity: identity → tenant, roles, validity, revocation.
    ClientIdentity,
    /// A SIM's binding to its id, ICCID and tenant, its state, PIN/PUK counters and SQN.
    Sim,
    /// A tenant KEK version's status.
    TenantKey,
    /// A webhook subscription's target and events.
    Webhook,
    /// A link's binding to its SIM and plans.
    Link,
    /// A background task's identity and what it was queued to do (its actor among its
    /// parameters): who the worker acts as, in which tenant.
    Task,
    /// One item of a bulk task: what the worker does for it.
    TaskItem,
    /// A web console session: whose it is (tenant, subject, roles) and until when it holds.
    ConsoleSession,
    /// A console link's ticket: whom it signs in, and until when.
    ConsoleTicket,
    /// A console sign-in through the identity provider, between its start and the callback:
    /// which browser began it, its nonce and PKCE verifier, and until when it may finish.
    ConsoleOidcLogin,
}

impl Purpose {
    /// Every kind, in declaration order.
    pub const ALL: [Purpose; 10] = [
        Purpose::ClientIdentity,
        Purpose::Sim,
        Purpose::TenantKey,
        Purpose::Webhook,
        Purpose::Link,
        Purpose::Task,
        Purpose::TaskItem,
        Purpose::ConsoleSession,
        Purpose::ConsoleTicket,
        Purpose::ConsoleOidcLogin,
    ];

    /// Names the kind of row in logs, metrics and audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::ClientIdentity => "client_identity",
            Purpose::Sim => "sim",
            Purpose::TenantKey => "tenant_key",
            Purpose::Webhook => "webhook",
            Purpose::Link => "link",
            Purpose::Task => "task",
            Purpose::TaskItem => "task_item",
            Purpose::ConsoleSession => "console_session",
            Purpose::ConsoleTicket => "console_ticket",
            Purpose::ConsoleOidcLogin => "console_oidc_login",
        }
    }
}

/// A stored row that failed its check (a MAC missing or not verifying): which kind, and the
/// row's id (never its content), for the report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("integrity check failed for {} {row}", .purpose.as_str())]
pub struct IntegrityFailure {
    pub purpose: Purpose,
    pub row: String,
}

/// `value` as canonical JSON text: object members sorted by key (at every depth), no
/// whitespace, scalars as serde_json writes them. The same value always gives the same text,
/// whatever order its members were built or stored in (PostgreSQL's `jsonb` reorders them,
/// and serde_json keeps insertion order when a dependency enables `preserve_order`), so a
/// MAC over it verifies after a round trip through either store.
pub fn canonical_json(value: &serde_json::Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(members) => {
            let mut members: Vec<(&String, &Value)> = members.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, member)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push(':');
                write_canonical(member, out);
            }
            out.push('}');
        }
        Value::Array(elements) => {
            out.push('[');
            for (i, element) in elements.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(element, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn canonical_json_does_not_depend_on_member_order_or_layout() {
        let built = json!({
            "actor": {"tenant": "acme", "roles": ["operator"], "subject": "op"},
            "state": "active",
            "reason": null,
        });
        let text = canonical_json(&built);
        assert_eq!(
            text,
            r#"{"actor":{"roles":["operator"],"subject":"op","tenant":"acme"},"reason":null,"state":"active"}"#
        );
        // Members in another order at every depth, and another layout (as jsonb gives back).
        let stored: Value = serde_json::from_str(
            r#"{ "state" : "active", "reason": null,
                 "actor": {"subject": "op", "tenant": "acme", "roles": ["operator"]} }"#,
        )
        .unwrap();
        assert_eq!(canonical_json(&stored), text);
        // Read back from its own text, it is the same text again.
        let again: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(canonical_json(&again), text);
    }

    #[test]
    fn canonical_json_tells_apart_what_differs() {
        let base = json!({"actor": {"tenant": "acme", "roles": ["operator"]}});
        let differ = [
            json!({"actor": {"tenant": "other", "roles": ["operator"]}}),
            json!({"actor": {"tenant": "acme", "roles": ["admin"]}}),
            json!({"actor": {"tenant": "acme", "roles": ["operator", "admin"]}}),
            json!({"actor": {"tenant": "acme", "roles": "operator"}}),
            json!({"actor": {"tenant": "acme", "roles": ["operator"]}, "x": null}),
            json!({"actor": {"tenant": "acme"}, "roles": ["operator"]}),
        ];
        for other in differ {
            assert_ne!(canonical_json(&other), canonical_json(&base), "{other}");
        }
        // Strings are escaped: a key or value cannot forge structure.
        assert_eq!(
            canonical_json(&json!({"a\",\"b": "c\"}"})),
            r#"{"a\",\"b":"c\"}"}"#
        );
        assert_ne!(
            canonical_json(&json!({"a": 1, "b": 2})),
            canonical_json(&json!({"a": "1,\"b\":2"}))
        );
        assert_eq!(
            canonical_json(&json!([1, 2.5, -3, true])),
            "[1,2.5,-3,true]"
        );
    }
}
