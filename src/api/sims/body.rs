//! The bodies of `POST /v1/sims` and `PATCH /v1/sims/{sim}`, described for the OpenAPI
//! document (the domain's `SimFields` and `PatchFields` parse them).

use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::schema;
use crate::api::extract::present;
use crate::domain::secret_input::SecretsInput;

// Describes the body for the OpenAPI document only: the domain's `SimFields` parses it.
/// `POST /v1/sims` body. Every field is validated and every problem reported at once.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct CreateSimBody {
    /// 18–22 digits starting `89`, Luhn check digit last; unique across all tenants.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = String, required = true, pattern = r"^89[0-9]{16,20}$", example = "8944501234567890124")]
    pub iccid: Option<Value>,
    /// 6–15 digits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{6,15}$", example = "234150123456789")]
    pub imsi: Option<Value>,
    /// E.164: optional `+` then 1–15 digits.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^\+?[0-9]{1,15}$", example = "447123456789")]
    pub msisdn: Option<Value>,
    /// 15 digits with a Luhn digit, or a 16-digit IMEISV.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{15,16}$")]
    pub imei: Option<Value>,
    /// 32 digits ≡ 1 (mod 97); eSIMs only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{32}$")]
    pub eid: Option<Value>,
    /// `physical` (default) or `esim`.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schema::SimType>)]
    pub sim_type: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$", example = "GEMALTO")]
    pub vendor: Option<Value>,
    /// At most 50, each 1–64 printable characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub group_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub device_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub compatibility_zones: Option<Value>,
    /// At most 30 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,30}$")]
    pub carrier_status: Option<Value>,
    /// At most 255 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    pub communication_plan: Option<Value>,
    /// At most 255 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    pub rate_plan: Option<Value>,
    /// At most 64 characters.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$")]
    pub mno_integration_id: Option<Value>,
    /// A JSON object of at most 50 top-level keys and 16 KiB.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    /// The card's PIN attempt counter maximum, 1–15 (default 3), for other card profiles.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 15, example = 3)]
    pub pin_max: Option<Value>,
    /// The card's PUK attempt counter maximum, 1–15 (default 10).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 15, example = 10)]
    pub puk_max: Option<Value>,
    /// AMF for authentication vectors, 4 hex digits (default `8000`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9a-fA-F]{4}$", example = "8000")]
    pub amf: Option<Value>,
    /// The last SQN the card has seen, 12 hex digits (default `000000000000`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9a-fA-F]{12}$", example = "000000000000")]
    pub sqn: Option<Value>,
    /// Width of IND in SQN, 0–10 bits (default 5).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 10, example = 5)]
    pub ind_bitlen: Option<Value>,
    /// Secret fields, encrypted by the vault; never returned here.
    #[serde(default)]
    #[schema(value_type = Option<crate::api::secrets::SecretsDoc>)]
    pub secrets: Option<SecretsInput>,
}

// Describes the body for the OpenAPI document only: the domain's `PatchFields` parses it.
/// `PATCH /v1/sims/{sim}` body: only the fields given change; `null` clears a field.
#[derive(Debug, Deserialize, ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct PatchSimBody {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^\+?[0-9]{1,15}$")]
    pub msisdn: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{15,16}$")]
    pub imei: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub tags: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub group_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub device_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    pub compatibility_zones: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,30}$")]
    pub carrier_status: Option<Value>,
    /// At most 255 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    pub communication_plan: Option<Value>,
    /// At most 255 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    pub rate_plan: Option<Value>,
    /// At most 64 characters; `null` clears it.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$")]
    pub mno_integration_id: Option<Value>,
    /// The SIM's own data limit; `null` clears it (its group's then applies).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<schema::DataAmount>)]
    pub data_limit: Option<Value>,
}
