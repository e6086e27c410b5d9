//! What the `telco` profile answers, field for field as its seed document shows: states upper
//! case, times RFC 3339. Secret values appear only in [`TelcoSimDetail`], and only those the
//! service revealed to this caller.

use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{SecretValue, Sim, SimState, format_timestamp};
use crate::service::secrets::Revealed;

/// A state as this API writes it: upper case.
pub(super) fn state_word(s: SimState) -> String {
    s.as_str().to_ascii_uppercase()
}

/// A physical SIM in a list, and the inventory fields of one read.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelcoSim {
    #[schema(example = "89441234567890123457")]
    pub iccid: String,
    #[schema(example = "234150123456789")]
    pub imsi: Option<String>,
    #[schema(example = "447123456789")]
    pub msisdn: Option<String>,
    /// `INVENTORY`, `ACTIVE`, `SUSPENDED`, `BLOCKED` or `RETIRED`.
    #[schema(example = "ACTIVE")]
    pub state: String,
    #[schema(example = "GEMALTO")]
    pub vendor: Option<String>,
    #[schema(example = "2024-01-15T10:30:00Z")]
    pub created_at: String,
    #[schema(example = "2024-01-15T10:35:00Z")]
    pub updated_at: String,
}

impl From<&Sim> for TelcoSim {
    fn from(s: &Sim) -> Self {
        TelcoSim {
            iccid: s.iccid.as_str().to_owned(),
            imsi: s.imsi.as_ref().map(|v| v.as_str().to_owned()),
            msisdn: s.msisdn.as_ref().map(|v| v.as_str().to_owned()),
            state: state_word(s.state),
            vendor: s.vendor.clone(),
            created_at: format_timestamp(s.created_at),
            updated_at: format_timestamp(s.updated_at),
        }
    }
}

/// `{data, meta: {total, page, per_page}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct TelcoPage {
    pub data: Vec<TelcoSim>,
    pub meta: TelcoMeta,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TelcoMeta {
    /// SIMs matching the filters, on all pages.
    pub total: u64,
    pub page: u32,
    pub per_page: u32,
}

impl From<crate::service::Page<Sim>> for TelcoPage {
    fn from(p: crate::service::Page<Sim>) -> Self {
        TelcoPage {
            data: p.items.iter().map(TelcoSim::from).collect(),
            meta: TelcoMeta {
                total: p.total,
                page: p.page,
                per_page: p.page_size,
            },
        }
    }
}

/// One SIM with the secrets this caller may read. Never `Debug`: it holds secret values.
#[derive(Serialize)]
pub struct TelcoSimDetail {
    #[serde(flatten)]
    pub sim: TelcoSim,
    #[serde(flatten)]
    pub secrets: Shown,
}

/// The secret fields revealed: each by its name, its value or null when it is not set.
/// Fields not revealed are absent.
pub struct Shown(pub Revealed);

impl Serialize for Shown {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field.as_str(), &value.as_ref().map(SecretValue::expose))?;
        }
        map.end()
    }
}

/// [`TelcoSimDetail`] as documented: each secret field present only if this caller may read
/// it.
#[derive(ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `TelcoSimDetail` is what is sent
pub struct TelcoSimDetailDoc {
    #[schema(example = "89441234567890123457")]
    iccid: String,
    imsi: Option<String>,
    msisdn: Option<String>,
    /// `INVENTORY`, `ACTIVE`, `SUSPENDED`, `BLOCKED` or `RETIRED`.
    #[schema(example = "ACTIVE")]
    state: String,
    vendor: Option<String>,
    created_at: String,
    updated_at: String,
    /// Present only if the policy lets this caller read PIN1 (provisioners over mTLS).
    #[schema(example = "1234")]
    pin1: Option<String>,
    #[schema(example = "5678")]
    pin2: Option<String>,
    /// Present only if the policy lets this caller read PUK1 (provisioners over mTLS, support
    /// staff with a reason in `X-Simvault-Reason`).
    #[schema(example = "12345678")]
    puk1: Option<String>,
    #[schema(example = "87654321")]
    puk2: Option<String>,
    /// 32 hex digits; present only if the policy lets this caller read it.
    ki: Option<String>,
    opc: Option<String>,
}

/// The provisioning body: the SIM's fields with its secrets beside them.
#[derive(serde::Deserialize, ToSchema)]
#[allow(dead_code)] // only describes the shape for OpenAPI; `FlatSimFields` parses it
#[serde(deny_unknown_fields)]
pub struct ProvisionDoc {
    /// 18–22 digits with a valid Luhn check digit (unless the deployment relaxes it).
    #[schema(pattern = r"^89[0-9]{16,20}$", example = "89441234567890123457")]
    iccid: String,
    #[schema(pattern = r"^[0-9]{6,15}$", example = "234150123456789")]
    imsi: Option<String>,
    #[schema(pattern = r"^\+?[0-9]{1,15}$", example = "447123456789")]
    msisdn: Option<String>,
    #[schema(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$", example = "GEMALTO")]
    vendor: Option<String>,
    /// 4–8 digits.
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pin1: Option<String>,
    #[schema(pattern = r"^[0-9]{4,8}$")]
    pin2: Option<String>,
    /// Exactly 8 digits.
    #[schema(pattern = r"^[0-9]{8}$")]
    puk1: Option<String>,
    #[schema(pattern = r"^[0-9]{8}$")]
    puk2: Option<String>,
    /// 32 hex digits (128 bits), either case.
    #[schema(pattern = r"^[0-9a-fA-F]{32}$")]
    ki: Option<String>,
    #[schema(pattern = r"^[0-9a-fA-F]{32}$")]
    opc: Option<String>,
}

/// The provisioning answer: exactly these fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct Provisioned {
    pub iccid: String,
    #[schema(example = "INVENTORY")]
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&Sim> for Provisioned {
    fn from(s: &Sim) -> Self {
        Provisioned {
            iccid: s.iccid.as_str().to_owned(),
            state: state_word(s.state),
            created_at: format_timestamp(s.created_at),
            updated_at: format_timestamp(s.updated_at),
        }
    }
}

/// A state change's answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StateChanged {
    pub iccid: String,
    #[schema(example = "ACTIVE")]
    pub state: String,
    pub updated_at: String,
}

/// `reset-pin`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinReset {
    pub success: bool,
    pub updated_at: String,
}

/// `unblock-pin`'s answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct PinUnblocked {
    pub success: bool,
    /// The PUK's attempts left (its maximum, restored: 10 on a usual card).
    #[schema(example = 10)]
    pub remaining_attempts: i64,
    pub updated_at: String,
}

/// The delete answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deleted {
    pub success: bool,
    pub deleted_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SecretField;

    #[test]
    fn states_are_upper_case() {
        assert_eq!(state_word(SimState::Inventory), "INVENTORY");
        assert_eq!(state_word(SimState::Blocked), "BLOCKED");
    }

    #[test]
    fn only_revealed_fields_are_written() {
        let shown = Shown(vec![
            (
                SecretField::Puk1,
                Some(SecretField::Puk1.parse("12345678").unwrap()),
            ),
            (SecretField::Puk2, None),
        ]);
        assert_eq!(
            serde_json::to_value(&shown).unwrap(),
            serde_json::json!({"puk1": "12345678", "puk2": null})
        );
        let none = serde_json::to_value(Shown(Vec::new())).unwrap();
        assert_eq!(none, serde_json::json!({}));
    }
}
