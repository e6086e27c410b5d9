//! A SIM row as read, and the one way from it to a [`Sim`] (parsed here, authenticated by
//! [`SimRow::into_sim`]); the column texts the writes bind.

use std::collections::BTreeSet;

use sqlx::types::Json;

use crate::domain::link::LinkRef;
use crate::domain::sim::{CarrierFields, SimState, SimType};
use crate::domain::sqn::AuthData;
use crate::domain::usage::DataAmount;
use crate::domain::{Eid, Iccid, Imei, Imsi, LuhnPolicy, Msisdn, RetryCounters, SecretField, Sim};
use crate::store::{StoreError, StoreResult};

#[derive(sqlx::FromRow)]
pub(super) struct SimRow {
    pub(super) id: String,
    pub(super) tenant_id: String,
    pub(super) iccid: String,
    pub(super) imsi: Option<String>,
    pub(super) msisdn: Option<String>,
    pub(super) imei: Option<String>,
    pub(super) eid: Option<String>,
    pub(super) sim_type: String,
    pub(super) state: String,
    pub(super) state_reason: Option<String>,
    pub(super) carrier_status: Option<String>,
    pub(super) vendor: Option<String>,
    pub(super) tags: Json<serde_json::Value>,
    pub(super) group_id: Option<String>,
    pub(super) device_id: Option<String>,
    pub(super) compatibility_zones: Json<serde_json::Value>,
    pub(super) is_attached: bool,
    pub(super) esim_profile_state: Option<String>,
    pub(super) metadata: Json<serde_json::Value>,
    pub(super) created_at: i64,
    pub(super) updated_at: i64,
    pub(super) last_synced_at: Option<i64>,
    pub(super) deleted_at: Option<i64>,
    pub(super) secret_fields: String,
    pub(super) pin_max: i64,
    pub(super) puk_max: i64,
    pub(super) pin1_remaining: Option<i64>,
    pub(super) pin2_remaining: Option<i64>,
    pub(super) puk1_remaining: Option<i64>,
    pub(super) puk2_remaining: Option<i64>,
    pub(super) consumed_data: Option<String>,
    pub(super) data_limit: Option<String>,
    #[allow(dead_code)] // derived from consumed_data; read for sorting only
    pub(super) consumed_mb: Option<f64>,
    pub(super) amf: String,
    pub(super) sqn: i64,
    pub(super) ind_bitlen: i64,
    pub(super) communication_plan: Option<String>,
    pub(super) rate_plan: Option<String>,
    pub(super) mno_integration_id: Option<String>,
    pub(super) conditions: String,
    pub(super) first_imei: Option<String>,
    pub(super) mac: Option<Vec<u8>>,
    /// Read only where the query selects [`link_columns`].
    #[sqlx(default)]
    pub(super) link_id: Option<String>,
    #[sqlx(default)]
    pub(super) link_name: Option<String>,
    #[sqlx(default)]
    pub(super) link_plan_ids: Option<String>,
    #[sqlx(default)]
    pub(super) link_mac: Option<Vec<u8>>,
    /// The data limit of the SIM's group, read where the query selects [`link_columns`].
    #[sqlx(default)]
    pub(super) group_data_limit: Option<String>,
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("sims.{what}"))
}

impl SimRow {
    // Stored identifiers were validated on the way in; a row that no longer parses is corrupt.
    // The ICCID check digit is not re-checked: a deployment may have relaxed it. Only
    // [`SimRow::into_sim`] and adoption (which gives rows their first MAC) may call this.
    pub(super) fn parse_unauthenticated(self) -> StoreResult<Sim> {
        let r = self;
        let data_limit = usage(r.data_limit.as_deref(), "data_limit")?;
        Ok(Sim {
            id: r.id.parse().map_err(|_| corrupt("id"))?,
            tenant_id: crate::store::stored_tenant(&r.tenant_id)?,
            iccid: Iccid::parse(&r.iccid, LuhnPolicy::Relaxed).map_err(|_| corrupt("iccid"))?,
            imsi: r
                .imsi
                .map(|s| Imsi::parse(&s))
                .transpose()
                .map_err(|_| corrupt("imsi"))?,
            msisdn: r
                .msisdn
                .map(|s| Msisdn::parse(&s))
                .transpose()
                .map_err(|_| corrupt("msisdn"))?,
            imei: r
                .imei
                .map(|s| Imei::parse(&s))
                .transpose()
                .map_err(|_| corrupt("imei"))?,
            eid: r
                .eid
                .map(|s| Eid::parse(&s))
                .transpose()
                .map_err(|_| corrupt("eid"))?,
            sim_type: r
                .sim_type
                .parse::<SimType>()
                .map_err(|()| corrupt("sim_type"))?,
            state: r.state.parse::<SimState>().map_err(|()| corrupt("state"))?,
            state_reason: r.state_reason,
            carrier_status: r.carrier_status,
            vendor: r.vendor,
            tags: crate::store::json_labels(&r.tags.0)?,
            group_id: r.group_id,
            device_id: r.device_id,
            compatibility_zones: crate::store::json_labels(&r.compatibility_zones.0)?,
            carrier: CarrierFields {
                communication_plan: r.communication_plan,
                rate_plan: r.rate_plan,
                mno_integration_id: r.mno_integration_id,
            },
            is_attached: r.is_attached,
            esim_profile_state: r.esim_profile_state,
            metadata: match r.metadata.0 {
                serde_json::Value::Object(m) => m,
                _ => return Err(corrupt("metadata")),
            },
            created_at: r.created_at,
            updated_at: r.updated_at,
            last_synced_at: r.last_synced_at,
            deleted_at: r.deleted_at,
            link: match (r.link_id, r.link_name, r.link_plan_ids) {
                (Some(id), Some(name), Some(plans)) => Some(LinkRef {
                    id: id.parse().map_err(|_| corrupt("link id"))?,
                    name,
                    plan_ids: serde_json::from_str(&plans).map_err(|_| corrupt("link plans"))?,
                }),
                _ => None,
            },
            secret_fields: r
                .secret_fields
                .split(',')
                .filter(|f| !f.is_empty())
                .map(|f| {
                    f.parse::<SecretField>()
                        .map_err(|()| corrupt("secret_fields"))
                })
                .collect::<StoreResult<_>>()?,
            counters: RetryCounters {
                pin_max: r.pin_max,
                puk_max: r.puk_max,
                pin1: r.pin1_remaining,
                pin2: r.pin2_remaining,
                puk1: r.puk1_remaining,
                puk2: r.puk2_remaining,
            },
            consumed_data: usage(r.consumed_data.as_deref(), "consumed_data")?,
            data_limit,
            effective_data_limit: match data_limit {
                Some(own) => Some(own),
                None => usage(
                    r.group_data_limit.as_deref(),
                    "group_id (its group's data_limit)",
                )?,
            },
            conditions: crate::domain::condition::from_text(&r.conditions)
                .ok_or_else(|| corrupt("conditions"))?,
            first_imei: r
                .first_imei
                .map(|s| Imei::parse(&s))
                .transpose()
                .map_err(|_| corrupt("first_imei"))?,
            auth: AuthData {
                amf: hex::decode(&r.amf)
                    .ok()
                    .and_then(|b| <[u8; 2]>::try_from(b).ok())
                    .ok_or_else(|| corrupt("amf"))?,
                sqn: u64::try_from(r.sqn).map_err(|_| corrupt("sqn"))?,
                ind_bitlen: u8::try_from(r.ind_bitlen).map_err(|_| corrupt("ind_bitlen"))?,
            },
        })
    }
}

/// A stored amount, checked as a request's or an upstream answer's would be.
fn usage(text: Option<&str>, what: &str) -> StoreResult<Option<DataAmount>> {
    text.map(|t| DataAmount::parse_text(t).ok_or_else(|| corrupt(what)))
        .transpose()
}

pub(super) fn usage_text(d: Option<DataAmount>) -> Option<String> {
    d.and_then(|d| serde_json::to_string(&d).ok())
}

pub(super) fn labels_json(set: &BTreeSet<String>) -> Json<serde_json::Value> {
    Json(serde_json::Value::Array(
        set.iter().cloned().map(serde_json::Value::String).collect(),
    ))
}

pub(super) fn secret_fields_text(fields: &std::collections::BTreeSet<SecretField>) -> String {
    fields
        .iter()
        .map(|f| f.as_str())
        .collect::<Vec<_>>()
        .join(",")
}
