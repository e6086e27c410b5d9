//! SIM groups and devices: resources of one tenant that its SIMs belong to (a SIM to at most one
//! group and at most one device). A SIM's `group_id` / `device_id` name them by id.

use serde_json::{Map, Value};

use super::usage::DataAmount;
use super::{Imei, SimId, TenantId, Timestamp};

super::ids::uuid_id! {
    /// A SIM group's identifier. Written and read exactly as its UUID (JSON, URLs, the database).
    GroupId
}
super::ids::uuid_id! {
    /// A device's identifier. Written and read exactly as its UUID.
    DeviceId
}

/// What a SIM's `group_id` is given as: a group's id in any UUID form, answered in the one
/// canonical (lowercase, hyphenated) form that is stored and compared.
pub fn group_ref(s: &str) -> Result<String, &'static str> {
    GroupId::parse(s)
        .map(|id| id.to_string())
        .map_err(|_| "not a group id")
}

/// [`group_ref`] for a SIM's `device_id`.
pub fn device_ref(s: &str) -> Result<String, &'static str> {
    DeviceId::parse(s)
        .map(|id| id.to_string())
        .map_err(|_| "not a device id")
}

/// The longest description of a group, in characters.
pub const MAX_DESCRIPTION: usize = 1024;

/// A SIM group: a name unique in its tenant, and what its SIMs share.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub id: GroupId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub data_limit: Option<DataAmount>,
    pub imei_lock: bool,
    /// Live SIMs in the group (tombstones not counted), as read.
    pub sim_count: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A change to a group: only the fields given change; `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
    pub data_limit: Option<Option<DataAmount>>,
    pub imei_lock: Option<bool>,
}

impl GroupChanges {
    /// The names of the fields this changes, in alphabetical order (for the audit record:
    /// names, never values).
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("data_limit", self.data_limit.is_some()),
            ("description", self.description.is_some()),
            ("imei_lock", self.imei_lock.is_some()),
            ("name", self.name.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    pub fn apply(self, group: &mut Group) {
        if let Some(v) = self.name {
            group.name = v;
        }
        if let Some(v) = self.description {
            group.description = v;
        }
        if let Some(v) = self.data_limit {
            group.data_limit = v;
        }
        if let Some(v) = self.imei_lock {
            group.imei_lock = v;
        }
    }
}

/// A device the tenant's SIMs are bound to.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub id: DeviceId,
    pub tenant_id: TenantId,
    pub name: String,
    pub imei: Option<Imei>,
    pub metadata: Map<String, Value>,
    /// The live SIMs bound to it, as read.
    pub sim_ids: Vec<SimId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A change to a device: only the fields given change; `Some(None)` clears.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceChanges {
    pub name: Option<String>,
    pub imei: Option<Option<Imei>>,
    pub metadata: Option<Map<String, Value>>,
}

impl DeviceChanges {
    /// [`GroupChanges::fields`] for a device.
    pub fn fields(&self) -> Vec<&'static str> {
        [
            ("imei", self.imei.is_some()),
            ("metadata", self.metadata.is_some()),
            ("name", self.name.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect()
    }

    pub fn apply(self, device: &mut Device) {
        if let Some(v) = self.name {
            device.name = v;
        }
        if let Some(v) = self.imei {
            device.imei = v;
        }
        if let Some(v) = self.metadata {
            device.metadata = v;
        }
    }
}

/// A group's or device's name: a label (1–64 printable characters) without leading or
/// trailing whitespace, and never a UUID, so that a value naming one by id or by name (the SIM
/// list's `group_id` filter, import items staged with labels) is never ambiguous.
pub fn check_name(s: &str) -> Result<String, String> {
    super::sim::check_label(s, "name")?;
    if s.trim() != s {
        return Err("must not begin or end with whitespace".into());
    }
    if uuid::Uuid::parse_str(s).is_ok() {
        return Err("must not be a UUID".into());
    }
    Ok(s.to_owned())
}

/// A description: at most [`MAX_DESCRIPTION`] characters, no control characters but line
/// breaks and tabs.
pub fn check_description(s: &str) -> Result<String, String> {
    if s.chars().count() > MAX_DESCRIPTION {
        return Err(format!("at most {MAX_DESCRIPTION} characters"));
    }
    if s.chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err("must not contain control characters".into());
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_and_device_ids_read_and_write_as_their_uuid() {
        let u = uuid::Uuid::new_v4();
        let g = GroupId::from(u);
        assert_eq!(g.to_string(), u.to_string());
        assert_eq!(
            serde_json::to_string(&g).unwrap(),
            serde_json::to_string(&u).unwrap()
        );
        assert_eq!(g.to_string().parse::<GroupId>().unwrap(), g);
        assert_eq!(
            DeviceId::from(u).to_string().parse::<DeviceId>().unwrap(),
            DeviceId::from(u)
        );
        assert!("fleet-a".parse::<GroupId>().is_err());
    }

    #[test]
    fn references_are_stored_canonical() {
        let u = uuid::Uuid::new_v4();
        let canonical = u.to_string();
        for form in [
            canonical.to_uppercase(),
            format!("{{{canonical}}}"),
            format!("urn:uuid:{canonical}"),
            u.simple().to_string(),
        ] {
            assert_eq!(group_ref(&form).unwrap(), canonical, "{form}");
            assert_eq!(device_ref(&form).unwrap(), canonical, "{form}");
        }
        assert_eq!(group_ref("fleet-a"), Err("not a group id"));
        assert_eq!(device_ref("truck-1"), Err("not a device id"));
    }

    #[test]
    fn names_are_neither_padded_nor_ids() {
        assert_eq!(check_name("fleet a").unwrap(), "fleet a");
        assert!(check_name(" fleet").is_err());
        assert!(check_name("fleet\t").is_err());
        assert!(check_name(&uuid::Uuid::new_v4().to_string()).is_err());
        assert!(check_name(&uuid::Uuid::new_v4().simple().to_string()).is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn changes_name_their_fields() {
        let g = GroupChanges {
            name: Some("x".into()),
            imei_lock: Some(true),
            ..Default::default()
        };
        assert_eq!(g.fields(), ["imei_lock", "name"]);
        assert!(GroupChanges::default().fields().is_empty());
        let d = DeviceChanges {
            imei: Some(None),
            ..Default::default()
        };
        assert_eq!(d.fields(), ["imei"]);
    }

    #[test]
    fn descriptions_are_bounded_text() {
        assert!(check_description("line one\nline two").is_ok());
        assert!(check_description(&"x".repeat(MAX_DESCRIPTION + 1)).is_err());
        assert!(check_description("bell\u{7}").is_err());
    }
}
