//! The bodies of `POST /v1/sims` (described for the OpenAPI document; the domain's
//! `SimFields` parses it) and `PATCH /v1/sims/{sim}`.

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::schema;
use crate::api::extract::present;
use crate::api::fields::{Fields, data_limit};
use crate::domain::group::{device_ref, group_ref};
use crate::domain::secret_input::SecretsInput;
use crate::domain::sim::{
    CarrierFields, MAX_TAGS, MAX_ZONES, check_carrier_field, check_carrier_status, check_metadata,
};
use crate::domain::{Imei, Msisdn, SimPatch, ValidationErrors};

// Describes the body for the OpenAPI document only: the domain's `SimFields` parses it.
/// `POST /v1/sims` body. Every field is validated and every problem reported at once.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct CreateSimBody {
    /// 18–22 digits starting `89`, Luhn check digit last; unique across all tenants.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, example = "8944501234567890124")]
    pub iccid: Option<Value>,
    /// 6–15 digits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "234150123456789")]
    pub imsi: Option<Value>,
    /// E.164: optional `+` then 1–15 digits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "447123456789")]
    pub msisdn: Option<Value>,
    /// 15 digits with a Luhn digit, or a 16-digit IMEISV.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub imei: Option<Value>,
    /// 32 digits ≡ 1 (mod 97); eSIMs only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub eid: Option<Value>,
    /// `physical` (default) or `esim`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schema::SimType>)]
    pub sim_type: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "GEMALTO")]
    pub vendor: Option<Value>,
    /// At most 50, each 1–64 printable characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub group_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub device_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub compatibility_zones: Option<Value>,
    /// At most 30 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub carrier_status: Option<Value>,
    /// At most 255 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub communication_plan: Option<Value>,
    /// At most 255 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub rate_plan: Option<Value>,
    /// At most 64 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub mno_integration_id: Option<Value>,
    /// A JSON object of at most 50 top-level keys and 16 KiB.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The card's PIN attempt counter maximum, 1–15 (default 3), for other card profiles.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, example = 3)]
    pub pin_max: Option<Value>,
    /// The card's PUK attempt counter maximum, 1–15 (default 10).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, example = 10)]
    pub puk_max: Option<Value>,
    /// AMF for authentication vectors, 4 hex digits (default `8000`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "8000")]
    pub amf: Option<Value>,
    /// The last SQN the card has seen, 12 hex digits (default `000000000000`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, example = "000000000000")]
    pub sqn: Option<Value>,
    /// Width of IND in SQN, 0–10 bits (default 5).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, example = 5)]
    pub ind_bitlen: Option<Value>,
    /// Secret fields, encrypted by the vault; never returned here.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::secrets::SecretsDoc>)]
    pub secrets: Option<SecretsInput>,
}

/// `PATCH /v1/sims/{sim}` body: only the fields given change; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchSimBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub msisdn: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub imei: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub group_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub device_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub compatibility_zones: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub carrier_status: Option<Value>,
    /// At most 255 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub communication_plan: Option<Value>,
    /// At most 255 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub rate_plan: Option<Value>,
    /// At most 64 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>)]
    pub mno_integration_id: Option<Value>,
    /// The SIM's own data limit; `null` clears it (its group's then applies).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schema::DataAmount>)]
    pub data_limit: Option<Value>,
}

impl PatchSimBody {
    pub fn parse(self) -> Result<SimPatch, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let empty_if_null = |v: &Option<Value>| -> Option<Value> {
            match v {
                Some(Value::Null) => Some(Value::Array(Vec::new())),
                other => other.clone(),
            }
        };
        let patch = SimPatch {
            msisdn: f.patch("msisdn", &self.msisdn, Msisdn::parse),
            imei: f.patch("imei", &self.imei, Imei::parse),
            tags: f.labels("tags", &empty_if_null(&self.tags), MAX_TAGS),
            metadata: match &self.metadata {
                Some(Value::Null) => Some(serde_json::Map::new()),
                other => f.object("metadata", other, check_metadata),
            },
            group_id: f.patch("group_id", &self.group_id, group_ref),
            device_id: f.patch("device_id", &self.device_id, device_ref),
            compatibility_zones: f.labels(
                "compatibility_zones",
                &empty_if_null(&self.compatibility_zones),
                MAX_ZONES,
            ),
            carrier_status: f.patch("carrier_status", &self.carrier_status, |s| {
                check_carrier_status(s).map(|()| s.to_owned())
            }),
            carrier: CarrierFields::LIMITS
                .into_iter()
                .zip([
                    &self.communication_plan,
                    &self.rate_plan,
                    &self.mno_integration_id,
                ])
                .filter_map(|((name, max), v)| {
                    f.patch(name, v, |s| {
                        check_carrier_field(s, name, max).map(|()| s.to_owned())
                    })
                    .map(|value| (name, value))
                })
                .collect(),
            data_limit: data_limit(&self.data_limit, &mut *f.errs),
        };
        errs.finish(patch)
    }
}
