//! The SIM inventory as an export shows it: [`SimRecord`], a SIM's non-secret fields (the
//! HTTP SIM resource is this plus its PIN/PUK status), and its NDJSON and CSV renderings,
//! shared by `GET /v1/sims/export` and `simvault export`.
//!
//! Must never: carry a secret value or a PIN/PUK counter (an export leaves the vault's
//! control: it is a file on someone's laptop).

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::schema;
use super::{ExportFormat, RenderError, csv_record};
use crate::domain::usage::DataAmount;
use crate::domain::{Eid, Imei, Imsi, Msisdn, Sim, SimState, SimType, format_timestamp};

/// A link as shown on its SIM.
#[derive(Debug, Serialize, ToSchema)]
pub struct LinkRef {
    pub id: uuid::Uuid,
    pub name: String,
    pub plan_ids: Vec<uuid::Uuid>,
}

impl From<crate::domain::link::LinkRef> for LinkRef {
    fn from(l: crate::domain::link::LinkRef) -> Self {
        LinkRef {
            id: l.id,
            name: l.name,
            plan_ids: l.plan_ids,
        }
    }
}

/// A SIM's fields, without its PIN/PUK status. No secret value ever appears here.
#[derive(Debug, Serialize, ToSchema)]
pub struct SimRecord {
    pub id: uuid::Uuid,
    #[schema(example = "8944501234567890124")]
    pub iccid: String,
    #[schema(example = "234150123456789")]
    pub imsi: Option<String>,
    #[schema(example = "447123456789")]
    pub msisdn: Option<String>,
    pub imei: Option<String>,
    pub eid: Option<String>,
    #[schema(value_type = schema::SimType)]
    pub sim_type: SimType,
    #[schema(value_type = schema::SimState)]
    pub state: SimState,
    pub state_reason: Option<String>,
    pub carrier_status: Option<String>,
    pub vendor: Option<String>,
    pub tags: Vec<String>,
    pub group_id: Option<String>,
    pub device_id: Option<String>,
    pub compatibility_zones: Vec<String>,
    /// The carrier's communication plan, at most 255 characters.
    pub communication_plan: Option<String>,
    /// The carrier's rate plan, at most 255 characters.
    pub rate_plan: Option<String>,
    /// The SIM's id in the carrier's integration, at most 64 characters.
    pub mno_integration_id: Option<String>,
    pub is_attached: bool,
    pub esim_profile_state: Option<String>,
    /// The link made by bulk provisioning, if any: `{id, name, plan_ids}`.
    pub link: Option<LinkRef>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Map<String, Value>,
    /// Names of the secret fields that are set (never their values).
    pub secrets_present: Vec<String>,
    #[schema(example = "2026-01-15T10:30:00Z")]
    pub created_at: String,
    pub updated_at: String,
    pub last_synced_at: Option<String>,
    /// Data used this billing period, as the carrier reports it.
    #[schema(value_type = Option<schema::DataAmount>)]
    pub consumed_data: Option<DataAmount>,
    /// The SIM's own data limit (`PATCH` sets it; the carrier's report may too).
    #[schema(value_type = Option<schema::DataAmount>)]
    pub data_limit: Option<DataAmount>,
    /// The limit that applies: the SIM's own, else its group's.
    #[schema(value_type = Option<schema::DataAmount>)]
    pub effective_data_limit: Option<DataAmount>,
    /// `data_limit_exceeded`, `unauthorized_imei`: the conditions the SIM is in.
    #[schema(example = json!(["data_limit_exceeded"]))]
    pub conditions: Vec<String>,
}

impl From<Sim> for SimRecord {
    fn from(s: Sim) -> Self {
        SimRecord {
            id: s.id.into(),
            iccid: s.iccid.into_inner(),
            imsi: s.imsi.map(Imsi::into_inner),
            msisdn: s.msisdn.map(Msisdn::into_inner),
            imei: s.imei.map(Imei::into_inner),
            eid: s.eid.map(Eid::into_inner),
            sim_type: s.sim_type,
            state: s.state,
            state_reason: s.state_reason,
            carrier_status: s.carrier_status,
            vendor: s.vendor,
            tags: s.tags.into_iter().collect(),
            group_id: s.group_id,
            device_id: s.device_id,
            compatibility_zones: s.compatibility_zones.into_iter().collect(),
            communication_plan: s.carrier.communication_plan,
            rate_plan: s.carrier.rate_plan,
            mno_integration_id: s.carrier.mno_integration_id,
            is_attached: s.is_attached,
            esim_profile_state: s.esim_profile_state,
            link: s.link.map(LinkRef::from),
            metadata: s.metadata,
            secrets_present: s
                .secret_fields
                .iter()
                .map(|f| f.as_str().to_owned())
                .collect(),
            created_at: format_timestamp(s.created_at),
            updated_at: format_timestamp(s.updated_at),
            last_synced_at: s.last_synced_at.map(format_timestamp),
            consumed_data: s.consumed_data,
            data_limit: s.data_limit,
            effective_data_limit: s.effective_data_limit,
            conditions: s.conditions.iter().map(|c| c.as_str().to_owned()).collect(),
        }
    }
}

/// The CSV columns, in order: [`SimRecord`]'s fields, lists joined with `;`, the link as its
/// id and name, metadata and data amounts as JSON text.
const CSV_HEADER: [&str; 32] = [
    "id",
    "iccid",
    "imsi",
    "msisdn",
    "imei",
    "eid",
    "sim_type",
    "state",
    "state_reason",
    "carrier_status",
    "vendor",
    "tags",
    "group_id",
    "device_id",
    "compatibility_zones",
    "communication_plan",
    "rate_plan",
    "mno_integration_id",
    "is_attached",
    "esim_profile_state",
    "link_id",
    "link_name",
    "link_plan_ids",
    "metadata",
    "secrets_present",
    "created_at",
    "updated_at",
    "last_synced_at",
    "consumed_data",
    "data_limit",
    "effective_data_limit",
    "conditions",
];

/// The CSV header line.
pub fn csv_header() -> Vec<u8> {
    super::csv_header_line(&CSV_HEADER)
}

/// A record's CSV cells, in [`CSV_HEADER`] order.
fn csv_cells(r: SimRecord) -> Result<Vec<String>, RenderError> {
    let opt = Option::unwrap_or_default;
    let (link_id, link_name, link_plans) = match r.link {
        Some(l) => (
            l.id.to_string(),
            l.name,
            l.plan_ids
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(";"),
        ),
        None => Default::default(),
    };
    let amount = |a: Option<DataAmount>| a.as_ref().map(json_text).transpose();
    Ok(vec![
        r.id.to_string(),
        r.iccid,
        opt(r.imsi),
        opt(r.msisdn),
        opt(r.imei),
        opt(r.eid),
        r.sim_type.as_str().to_owned(),
        r.state.as_str().to_owned(),
        opt(r.state_reason),
        opt(r.carrier_status),
        opt(r.vendor),
        r.tags.join(";"),
        opt(r.group_id),
        opt(r.device_id),
        r.compatibility_zones.join(";"),
        opt(r.communication_plan),
        opt(r.rate_plan),
        opt(r.mno_integration_id),
        r.is_attached.to_string(),
        opt(r.esim_profile_state),
        link_id,
        link_name,
        link_plans,
        json_text(&r.metadata)?,
        r.secrets_present.join(";"),
        r.created_at,
        r.updated_at,
        opt(r.last_synced_at),
        opt(amount(r.consumed_data)?),
        opt(amount(r.data_limit)?),
        opt(amount(r.effective_data_limit)?),
        r.conditions.join(";"),
    ])
}

/// JSON text of a value, for a CSV cell.
fn json_text<T: Serialize>(v: &T) -> Result<String, RenderError> {
    serde_json::to_string(v).map_err(|e| RenderError(e.to_string()))
}

/// Renders SIMs in `format` (CSV without its header line).
pub fn render(sims: Vec<Sim>, format: ExportFormat) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(sims.len() * 640);
    match format {
        ExportFormat::Ndjson => {
            for sim in sims {
                serde_json::to_writer(&mut out, &SimRecord::from(sim))
                    .map_err(|e| RenderError(e.to_string()))?;
                out.push(b'\n');
            }
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for sim in sims {
                csv_record(&mut w, &csv_cells(SimRecord::from(sim))?)?;
            }
            w.flush().map_err(|e| RenderError(e.to_string()))?;
        }
    }
    Ok(out)
}
