//! Schema-only types for the OpenAPI document (the domain's types carry no OpenAPI derive);
//! each describes the JSON form of the domain type of the same name.

use serde::Serialize;
use utoipa::ToSchema;

/// Lifecycle state of a SIM.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SimState {
    Inventory,
    Active,
    Suspended,
    Blocked,
    Retired,
}

/// Physical card or embedded (eUICC) profile.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SimType {
    Physical,
    Esim,
}

/// A condition a SIM can be in.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    DataLimitExceeded,
    UnauthorizedImei,
}

/// Megabytes or gigabytes, decimal: 1 GB = 1,000 MB.
#[derive(Serialize, ToSchema)]
pub enum DataUnit {
    #[serde(rename = "MB")]
    Mb,
    #[serde(rename = "GB")]
    Gb,
}

/// An amount of data, e.g. `{"amount": 1.5, "unit": "GB"}`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DataAmount {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_f64)]
    pub amount: f64,
    pub unit: DataUnit,
}

/// The SIM list's filters as query parameters, described once for `GET /v1/sims` and
/// `GET /v1/sims/export` (the domain's `sim_filters` reads them).
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)] // never built: it only describes the parameters
pub struct SimFilterParams {
    /// repeatable; any of
    #[param(value_type = Option<Vec<SimState>>)]
    state: Option<Vec<String>>,
    #[param(value_type = Option<SimType>)]
    sim_type: Option<String>,
    /// repeatable; any of
    compatibility_zones: Option<Vec<String>>,
    /// repeatable; all of
    tags: Option<Vec<String>>,
    /// the group's id, or its name
    group_id: Option<String>,
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$")]
    vendor: Option<String>,
    /// exactly this communication plan
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    communication_plan: Option<String>,
    /// exactly this rate plan
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,255}$")]
    rate_plan: Option<String>,
    /// exactly this MNO integration id
    #[param(pattern = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$")]
    mno_integration_id: Option<String>,
    /// repeatable; in any of: data_limit_exceeded, unauthorized_imei
    #[param(value_type = Option<Vec<Condition>>)]
    condition: Option<Vec<String>>,
    /// substring of the ICCID
    #[param(pattern = r"^[0-9]{1,22}$")]
    iccid: Option<String>,
    /// case-insensitive substring of id, ICCID, MSISDN, IMSI, IMEI or EID
    search: Option<String>,
    /// SIMs in any of the plan's zones; wins over compatibility_zones
    for_plan_id: Option<uuid::Uuid>,
}
