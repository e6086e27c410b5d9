//! The SIM aggregate: its states and lifecycle, its descriptive fields and their rules.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::identifiers::{Eid, Iccid, Imei, Imsi, Msisdn};
use super::secrets::{RetryCounters, SecretField, SecretValue};
use super::{SimId, TenantId, Timestamp};

/// Lifecycle state of a SIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimState {
    Inventory,
    Active,
    Suspended,
    Blocked,
    Retired,
}

impl SimState {
    pub const ALL: [SimState; 5] = [
        SimState::Inventory,
        SimState::Active,
        SimState::Suspended,
        SimState::Blocked,
        SimState::Retired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SimState::Inventory => "inventory",
            SimState::Active => "active",
            SimState::Suspended => "suspended",
            SimState::Blocked => "blocked",
            SimState::Retired => "retired",
        }
    }

    /// Whether the lifecycle allows moving from `self` to `to`. Staying put is not a transition;
    /// callers treat it as a no-op.
    pub fn can_transition_to(self, to: SimState) -> bool {
        use SimState::*;
        matches!(
            (self, to),
            (Inventory, Active | Blocked | Retired)
                | (Active, Suspended | Blocked | Retired)
                | (Suspended, Active | Blocked | Retired)
                | (Blocked, Retired)
        )
    }
}

impl fmt::Display for SimState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SimState {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        SimState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or(())
    }
}

/// Physical card or embedded (eUICC) profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimType {
    Physical,
    Esim,
}

impl SimType {
    pub fn as_str(self) -> &'static str {
        match self {
            SimType::Physical => "physical",
            SimType::Esim => "esim",
        }
    }
}

impl FromStr for SimType {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "physical" => Ok(SimType::Physical),
            "esim" => Ok(SimType::Esim),
            _ => Err(()),
        }
    }
}

pub const MAX_TAGS: usize = 50;
pub const MAX_TAG_CHARS: usize = 64;
pub const MAX_ZONES: usize = 50;
pub const MAX_METADATA_KEYS: usize = 50;
pub const MAX_METADATA_BYTES: usize = 16 * 1024;
pub const MAX_CARRIER_STATUS_CHARS: usize = 30;
pub const MAX_LABEL_CHARS: usize = 64;
/// The carrier fields: `communication_plan` and `rate_plan` up to 255 characters,
/// `mno_integration_id` up to 64.
pub const MAX_PLAN_CHARS: usize = 255;
pub const MAX_MNO_INTEGRATION_ID_CHARS: usize = 64;

/// Printable: no control characters (which would also let a value forge log lines).
fn printable(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// A short free-text label (tag, zone, vendor, group or device id): 1–64 printable characters.
pub fn check_label(s: &str, what: &str) -> Result<(), String> {
    check_carrier_field(s, what, MAX_LABEL_CHARS)
}

/// A carrier field (`communication_plan`, `rate_plan`, `mno_integration_id`), or any short
/// text: 1 to `max` printable characters.
pub fn check_carrier_field(s: &str, what: &str, max: usize) -> Result<(), String> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(format!("{what} must be 1 to {max} characters"));
    }
    if !printable(s) {
        return Err(format!("{what} must contain printable characters only"));
    }
    Ok(())
}

/// The three carrier fields of a SIM, as one value: what the SIM's plans are at its carrier.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarrierFields {
    pub communication_plan: Option<String>,
    pub rate_plan: Option<String>,
    pub mno_integration_id: Option<String>,
}

impl CarrierFields {
    /// Each field's name and its length limit, in the order problems are reported.
    pub const LIMITS: [(&'static str, usize); 3] = [
        ("communication_plan", MAX_PLAN_CHARS),
        ("rate_plan", MAX_PLAN_CHARS),
        ("mno_integration_id", MAX_MNO_INTEGRATION_ID_CHARS),
    ];

    pub fn is_empty(&self) -> bool {
        *self == CarrierFields::default()
    }

    /// The field called `name`, to read or set.
    pub fn field_mut(&mut self, name: &str) -> Option<&mut Option<String>> {
        match name {
            "communication_plan" => Some(&mut self.communication_plan),
            "rate_plan" => Some(&mut self.rate_plan),
            "mno_integration_id" => Some(&mut self.mno_integration_id),
            _ => None,
        }
    }
}

/// Carrier status text as reported by a carrier system: at most 30 printable characters.
pub fn check_carrier_status(s: &str) -> Result<(), String> {
    if s.chars().count() > MAX_CARRIER_STATUS_CHARS {
        return Err(format!(
            "carrier_status must be at most {MAX_CARRIER_STATUS_CHARS} characters"
        ));
    }
    if !printable(s) {
        return Err("carrier_status must contain printable characters only".into());
    }
    Ok(())
}

/// Metadata: a JSON object of at most 50 top-level keys and 16 KiB serialised.
pub fn check_metadata(v: &serde_json::Value) -> Result<(), String> {
    let Some(obj) = v.as_object() else {
        return Err("metadata must be a JSON object".into());
    };
    if obj.len() > MAX_METADATA_KEYS {
        return Err(format!(
            "metadata must have at most {MAX_METADATA_KEYS} top-level keys"
        ));
    }
    if serde_json::to_vec(v).map(|b| b.len()).unwrap_or(usize::MAX) > MAX_METADATA_BYTES {
        return Err("metadata must be at most 16 KiB when serialised".into());
    }
    Ok(())
}

/// Deduplicated, sorted set of labels.
pub type LabelSet = BTreeSet<String>;

/// A SIM as stored (inventory only; secrets live in the vault).
#[derive(Debug, Clone, PartialEq)]
pub struct Sim {
    pub id: SimId,
    pub tenant_id: TenantId,
    pub iccid: Iccid,
    pub imsi: Option<Imsi>,
    pub msisdn: Option<Msisdn>,
    pub imei: Option<Imei>,
    pub eid: Option<Eid>,
    pub sim_type: SimType,
    pub state: SimState,
    pub state_reason: Option<String>,
    pub carrier_status: Option<String>,
    pub vendor: Option<String>,
    pub tags: LabelSet,
    pub group_id: Option<String>,
    pub device_id: Option<String>,
    pub compatibility_zones: LabelSet,
    pub carrier: CarrierFields,
    pub is_attached: bool,
    pub esim_profile_state: Option<String>,
    pub metadata: serde_json::Map<String, serde_json::Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub last_synced_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
    /// Which secret fields are set (never their values).
    pub secret_fields: BTreeSet<SecretField>,
    pub counters: RetryCounters,
    /// Data used this billing period, and its limit, as the carrier last reported them.
    pub consumed_data: Option<super::usage::DataAmount>,
    /// The SIM's own data limit (set by PATCH, or as the carrier reports it).
    pub data_limit: Option<super::usage::DataAmount>,
    /// The limit that applies: its own, else its group's (kept with its conditions).
    pub effective_data_limit: Option<super::usage::DataAmount>,
    /// The conditions it is in, as last evaluated.
    pub conditions: super::condition::Conditions,
    /// The first IMEI upstream ever reported for it: the one an IMEI lock allows when the SIM
    /// has no device.
    pub first_imei: Option<Imei>,
    /// AMF, last SQN issued and IND width, for authentication vectors.
    pub auth: super::sqn::AuthData,
    /// The link bulk provisioning made for it (read with the SIM; not written with it).
    pub link: Option<super::link::LinkRef>,
}

/// Secret fields to set (`Some`) or remove (`None`), each at most once.
pub type SecretChanges = Vec<(SecretField, Option<SecretValue>)>;

/// A validated partial update. `None` leaves a field alone; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SimPatch {
    pub msisdn: Option<Option<Msisdn>>,
    pub imei: Option<Option<Imei>>,
    pub tags: Option<LabelSet>,
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
    pub group_id: Option<Option<String>>,
    pub device_id: Option<Option<String>>,
    pub compatibility_zones: Option<LabelSet>,
    pub carrier_status: Option<Option<String>>,
    /// Carrier fields to set (`Some`) or clear (`None`), by name ([`CarrierFields::LIMITS`]).
    pub carrier: Vec<(&'static str, Option<String>)>,
    pub data_limit: Option<Option<super::usage::DataAmount>>,
}

impl SimPatch {
    pub fn apply(&self, sim: &mut Sim) {
        if let Some(v) = &self.msisdn {
            sim.msisdn.clone_from(v);
        }
        if let Some(v) = &self.imei {
            sim.imei.clone_from(v);
        }
        if let Some(v) = &self.tags {
            sim.tags.clone_from(v);
        }
        if let Some(v) = &self.metadata {
            sim.metadata.clone_from(v);
        }
        if let Some(v) = &self.group_id {
            sim.group_id.clone_from(v);
        }
        if let Some(v) = &self.device_id {
            sim.device_id.clone_from(v);
        }
        if let Some(v) = &self.compatibility_zones {
            sim.compatibility_zones.clone_from(v);
        }
        if let Some(v) = &self.carrier_status {
            sim.carrier_status.clone_from(v);
        }
        if let Some(v) = self.data_limit {
            sim.data_limit = v;
        }
        for (name, v) in &self.carrier {
            if let Some(field) = sim.carrier.field_mut(name) {
                field.clone_from(v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_allows_exactly_the_documented_transitions() {
        use SimState::*;
        let allowed = [
            (Inventory, Active),
            (Inventory, Blocked),
            (Inventory, Retired),
            (Active, Suspended),
            (Active, Blocked),
            (Active, Retired),
            (Suspended, Active),
            (Suspended, Blocked),
            (Suspended, Retired),
            (Blocked, Retired),
        ];
        for from in SimState::ALL {
            for to in SimState::ALL {
                assert_eq!(
                    from.can_transition_to(to),
                    allowed.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }

    #[test]
    fn state_names_round_trip() {
        for s in SimState::ALL {
            assert_eq!(s.as_str().parse::<SimState>(), Ok(s));
        }
        assert!("Active".parse::<SimState>().is_err());
    }

    #[test]
    fn label_rules() {
        assert!(check_label("staff", "tag").is_ok());
        assert!(check_label(&"x".repeat(64), "tag").is_ok());
        assert!(check_label(&"x".repeat(65), "tag").is_err());
        assert!(check_label("", "tag").is_err());
        assert!(check_label("a\nb", "tag").is_err());
        assert!(check_label("ünïcode ok", "tag").is_ok());
    }

    #[test]
    fn carrier_status_rules() {
        assert!(check_carrier_status(&"a".repeat(30)).is_ok());
        assert!(check_carrier_status(&"a".repeat(31)).is_err());
        assert!(check_carrier_status("x\u{7}").is_err());
    }

    #[test]
    fn carrier_field_rules() {
        assert!(check_carrier_field(&"p".repeat(255), "rate_plan", MAX_PLAN_CHARS).is_ok());
        assert!(check_carrier_field(&"p".repeat(256), "rate_plan", MAX_PLAN_CHARS).is_err());
        assert!(check_carrier_field("", "rate_plan", MAX_PLAN_CHARS).is_err());
        assert!(check_carrier_field("a\u{1b}[2J", "rate_plan", MAX_PLAN_CHARS).is_err());
        let id = MAX_MNO_INTEGRATION_ID_CHARS;
        assert!(check_carrier_field(&"é".repeat(64), "mno_integration_id", id).is_ok());
        assert!(check_carrier_field(&"é".repeat(65), "mno_integration_id", id).is_err());
    }

    #[test]
    fn metadata_rules() {
        assert!(check_metadata(&serde_json::json!({"a": 1})).is_ok());
        assert!(check_metadata(&serde_json::json!([1])).is_err());
        let many: serde_json::Map<_, _> = (0..51)
            .map(|i| (format!("k{i}"), serde_json::json!(i)))
            .collect();
        assert!(check_metadata(&serde_json::Value::Object(many)).is_err());
        let big = serde_json::json!({"k": "x".repeat(16 * 1024)});
        assert!(check_metadata(&big).is_err());
        let fifty: serde_json::Map<_, _> = (0..50)
            .map(|i| (format!("k{i}"), serde_json::json!(i)))
            .collect();
        assert!(check_metadata(&serde_json::Value::Object(fifty)).is_ok());
    }
}

/// What a SIM listing can be sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    CreatedAt,
    UpdatedAt,
    Iccid,
    Imsi,
    Msisdn,
    State,
    /// Data used this billing period, in MB whatever unit the carrier reported.
    ConsumedData,
}

impl SortField {
    pub const NAMES: [&'static str; 7] = [
        "created_at",
        "updated_at",
        "iccid",
        "imsi",
        "msisdn",
        "state",
        "consumed_data",
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "created_at" => SortField::CreatedAt,
            "updated_at" => SortField::UpdatedAt,
            "iccid" => SortField::Iccid,
            "imsi" => SortField::Imsi,
            "msisdn" => SortField::Msisdn,
            "state" => SortField::State,
            "consumed_data" => SortField::ConsumedData,
            _ => return None,
        })
    }

    pub fn column(self) -> &'static str {
        match self {
            SortField::CreatedAt => "created_at",
            SortField::UpdatedAt => "updated_at",
            SortField::Iccid => "iccid",
            SortField::Imsi => "imsi",
            SortField::Msisdn => "msisdn",
            SortField::State => "state",
            SortField::ConsumedData => "consumed_mb",
        }
    }
}

pub const MAX_PAGE_SIZE: u32 = 250;
pub const DEFAULT_PAGE_SIZE: u32 = 20;

/// A validated SIM listing request: filters combine with AND.
#[derive(Debug, Clone, PartialEq)]
pub struct SimListQuery {
    /// Any of these states (empty: any state).
    pub states: Vec<SimState>,
    pub sim_type: Option<SimType>,
    /// Any of these zones (empty: any). A plan's zones replace these when a plan is named.
    pub compatibility_zones: Vec<String>,
    /// All of these tags.
    pub tags: Vec<String>,
    pub group_id: Option<String>,
    pub vendor: Option<String>,
    /// Exactly these carrier fields (each given one must match).
    pub carrier: CarrierFields,
    /// In any of these conditions (empty: whatever its conditions).
    pub conditions: Vec<super::condition::Condition>,
    /// Substring of the ICCID.
    pub iccid: Option<String>,
    /// Substring of the MSISDN.
    pub msisdn: Option<String>,
    /// Matching any of these terms over state and conditions (empty: whatever they are).
    pub any_of: Vec<super::sim_filters::StatusTerm>,
    /// Case-insensitive substring of id, ICCID, MSISDN, IMSI, IMEI or EID.
    pub search: Option<String>,
    pub sort_by: SortField,
    pub descending: bool,
    /// 1-based.
    pub page: u32,
    pub page_size: u32,
}

impl Default for SimListQuery {
    fn default() -> Self {
        Self {
            states: Vec::new(),
            sim_type: None,
            compatibility_zones: Vec::new(),
            tags: Vec::new(),
            group_id: None,
            vendor: None,
            carrier: CarrierFields::default(),
            conditions: Vec::new(),
            iccid: None,
            msisdn: None,
            any_of: Vec::new(),
            search: None,
            sort_by: SortField::UpdatedAt,
            descending: true,
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

impl SimListQuery {
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.page_size)
    }
}

/// Number of pages needed for `total` items.
pub fn page_count(total: u64, page_size: u32) -> u64 {
    total.div_ceil(u64::from(page_size.max(1)))
}
