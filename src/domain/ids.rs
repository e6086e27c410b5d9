//! Identifiers that are UUIDs of their own type (a SIM's, a task's, a webhook's), so that one
//! kind of id cannot be passed where another is meant. Each is written and read exactly as
//! its UUID (JSON, URLs, the database).

/// Declares a UUID identifier type: `new`, `as_uuid`, `parse`, `Default` (a fresh id),
/// `From<Uuid>` both ways, `Display` and `FromStr` as the hyphenated UUID, and serde as the UUID.
macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize,
            serde::Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(uuid::Uuid);

        impl $name {
            /// A fresh random id.
            pub fn new() -> Self {
                $name(uuid::Uuid::new_v4())
            }

            pub fn as_uuid(&self) -> &uuid::Uuid {
                &self.0
            }

            /// Parses the hyphenated (or any other UUID) form.
            pub fn parse(s: &str) -> Result<Self, uuid::Error> {
                uuid::Uuid::parse_str(s).map($name)
            }
        }

        impl Default for $name {
            fn default() -> Self {
                $name::new()
            }
        }

        impl From<uuid::Uuid> for $name {
            fn from(id: uuid::Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for uuid::Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, uuid::Error> {
                $name::parse(s)
            }
        }
    };
}

pub(crate) use uuid_id;

uuid_id! {
    /// A background task's identifier.
    TaskId
}

uuid_id! {
    /// A webhook subscription's identifier.
    WebhookId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_and_webhook_ids_read_and_write_as_their_uuid() {
        let u = uuid::Uuid::new_v4();
        let t = TaskId::from(u);
        let w = WebhookId::from(u);
        assert_eq!(t.to_string(), u.to_string());
        assert_eq!(w.to_string(), u.to_string());
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            serde_json::to_string(&u).unwrap()
        );
        assert_eq!(t.to_string().parse::<TaskId>().unwrap(), t);
        assert_eq!(w.to_string().parse::<WebhookId>().unwrap(), w);
        assert_eq!(uuid::Uuid::from(w), u);
        assert!("t1".parse::<TaskId>().is_err());
        assert!("h1".parse::<WebhookId>().is_err());
    }
}
