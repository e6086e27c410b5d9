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
    pub amount: f64,
    pub unit: DataUnit,
}
