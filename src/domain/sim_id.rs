//! A SIM's identifier: a UUID of its own type, so that no other id (a task's, a webhook's, a
//! plan's) can be passed where a SIM is meant.

use std::fmt;
use std::str::FromStr;

/// A SIM's identifier. Written and read exactly as its UUID (JSON, URLs, the database).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct SimId(uuid::Uuid);

impl SimId {
    /// A fresh random id.
    pub fn new() -> Self {
        SimId(uuid::Uuid::new_v4())
    }

    pub fn as_uuid(&self) -> &uuid::Uuid {
        &self.0
    }

    /// Parses the hyphenated (or any other UUID) form.
    pub fn parse(s: &str) -> Result<Self, uuid::Error> {
        uuid::Uuid::parse_str(s).map(SimId)
    }
}

impl Default for SimId {
    fn default() -> Self {
        SimId::new()
    }
}

impl From<uuid::Uuid> for SimId {
    fn from(id: uuid::Uuid) -> Self {
        SimId(id)
    }
}

impl From<SimId> for uuid::Uuid {
    fn from(id: SimId) -> Self {
        id.0
    }
}

impl fmt::Display for SimId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for SimId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, uuid::Error> {
        SimId::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sim_id_reads_and_writes_as_its_uuid() {
        let u = uuid::Uuid::new_v4();
        let id = SimId::from(u);
        assert_eq!(id.to_string(), u.to_string());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&u).unwrap()
        );
        assert_eq!(id.to_string().parse::<SimId>().unwrap(), id);
        assert!("not-a-uuid".parse::<SimId>().is_err());
    }
}
