//! The one input model of a SIM: what every door (`POST /v1/sims`, bulk import, `simvault
//! import`) asks to create, parsed straight from the JSON object into typed fields with every
//! problem reported at once, each with its JSON pointer. Secrets are zeroizing from the moment
//! they are read.
//!
//! A validated input is also what a bulk task stages: serialised (secrets included) only to be
//! sealed under the task's key, and read back from that sealed text.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::fields::{Fields, label};
use super::group::{device_ref, group_ref};
use super::identifiers::{Eid, Iccid, Imei, Imsi, LuhnPolicy, Msisdn};
use super::secret_input::{OP_NEEDS_KI, SecretsInput, given_ki};
use super::secrets::{RetryCounters, SecretValue};
use super::sim::{
    CarrierFields, LabelSet, MAX_TAGS, MAX_ZONES, SecretChanges, Sim, SimState, SimType,
    check_carrier_field, check_carrier_status, check_metadata,
};
use super::sqn::{self, AuthData};
use super::validation::{ValidationErrors, hex_array};
use super::{SimId, TenantId, Timestamp};

/// A validated request to create a SIM.
///
/// Staged (sealed in a bulk task's item) in the layout of `sealed::Staged`, which earlier
/// releases wrote too: replicas of either release can work the same task.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(into = "sealed::Staged", from = "sealed::Staged")]
pub struct SimInput {
    pub iccid: Iccid,
    pub imsi: Option<Imsi>,
    pub msisdn: Option<Msisdn>,
    pub imei: Option<Imei>,
    pub eid: Option<Eid>,
    pub sim_type: SimType,
    pub carrier_status: Option<String>,
    pub vendor: Option<String>,
    pub tags: LabelSet,
    pub group_id: Option<String>,
    pub device_id: Option<String>,
    pub compatibility_zones: LabelSet,
    pub carrier: CarrierFields,
    pub metadata: Map<String, Value>,
    /// The card profile's attempt counter maximums.
    pub pin_max: i64,
    pub puk_max: i64,
    /// Authentication data (AMF, starting SQN, IND width).
    pub auth: AuthData,
    /// Secrets to store with it.
    pub secrets: SecretChanges,
    /// OP, given (with a Ki) instead of OPc: the service derives OPc from both and stores
    /// that, never OP (nor does it stage it).
    pub op: Option<SecretValue>,
}

impl SimInput {
    /// A physical SIM with this ICCID and nothing else: default counters, no secrets.
    pub fn new(iccid: Iccid) -> Self {
        let counters = RetryCounters::default();
        Self {
            iccid,
            imsi: None,
            msisdn: None,
            imei: None,
            eid: None,
            sim_type: SimType::Physical,
            carrier_status: None,
            vendor: None,
            tags: LabelSet::default(),
            group_id: None,
            device_id: None,
            compatibility_zones: LabelSet::default(),
            carrier: CarrierFields::default(),
            metadata: Map::new(),
            pin_max: counters.pin_max,
            puk_max: counters.puk_max,
            auth: AuthData::default(),
            secrets: Vec::new(),
            op: None,
        }
    }

    /// One SIM as JSON text (a request body, an import row): parsed and validated, every
    /// problem reported with its pointer into the text.
    pub fn parse(text: &[u8], luhn: LuhnPolicy) -> Result<SimInput, ValidationErrors> {
        let mut de = serde_json::Deserializer::from_slice(text);
        let fields = SimFields::deserialize(&mut de)
            .and_then(|b| de.end().map(|()| b))
            .map_err(|e| match e.classify() {
                serde_json::error::Category::Data => super::fields::data_error(&e, ""),
                _ => ValidationErrors::single_pointer("", "not valid JSON"),
            })?;
        fields.finish(luhn)
    }

    /// The new SIM `id` of `tenant`, in `inventory`, and the secrets to store with it. OP
    /// must have been turned into OPc before.
    pub fn into_sim(self, id: SimId, tenant: &TenantId, now: Timestamp) -> (Sim, SecretChanges) {
        let sim = Sim {
            id,
            tenant_id: tenant.clone(),
            iccid: self.iccid,
            imsi: self.imsi,
            msisdn: self.msisdn,
            imei: self.imei,
            eid: self.eid,
            sim_type: self.sim_type,
            state: SimState::Inventory,
            state_reason: None,
            carrier_status: self.carrier_status,
            vendor: self.vendor,
            tags: self.tags,
            group_id: self.group_id,
            device_id: self.device_id,
            compatibility_zones: self.compatibility_zones,
            carrier: self.carrier,
            is_attached: false,
            esim_profile_state: None,
            metadata: self.metadata,
            created_at: now,
            updated_at: now,
            last_synced_at: None,
            deleted_at: None,
            secret_fields: Default::default(),
            link: None,
            counters: RetryCounters {
                pin_max: self.pin_max,
                puk_max: self.puk_max,
                ..Default::default()
            },
            consumed_data: None,
            data_limit: None,
            effective_data_limit: None,
            conditions: Default::default(),
            first_imei: None,
            auth: self.auth,
        };
        (sim, self.secrets)
    }
}

/// The fields of a SIM body, in the order their problems are reported.
const FIELDS: &[&str] = &[
    "iccid",
    "imsi",
    "msisdn",
    "imei",
    "eid",
    "sim_type",
    "vendor",
    "tags",
    "group_id",
    "device_id",
    "compatibility_zones",
    "carrier_status",
    "communication_plan",
    "rate_plan",
    "mno_integration_id",
    "metadata",
    "pin_max",
    "puk_max",
    "amf",
    "sqn",
    "ind_bitlen",
    "secrets",
];

/// A SIM body as read: each field parsed into its type as it arrives, its problems kept
/// with it. [`SimFields::finish`] checks what needs the whole body (and the deployment's ICCID
/// rule) and gives the input, or every problem in the order of `FIELDS`.
#[derive(Default)]
pub struct SimFields {
    seen: u32,
    iccid: Option<String>,
    imsi: Option<Imsi>,
    msisdn: Option<Msisdn>,
    imei: Option<Imei>,
    eid: Option<Eid>,
    sim_type: Option<SimType>,
    vendor: Option<String>,
    tags: Option<LabelSet>,
    group_id: Option<String>,
    device_id: Option<String>,
    compatibility_zones: Option<LabelSet>,
    carrier_status: Option<String>,
    carrier: CarrierFields,
    metadata: Option<Map<String, Value>>,
    pin_max: Option<i64>,
    puk_max: Option<i64>,
    amf: Option<[u8; 2]>,
    sqn: Option<[u8; 6]>,
    ind_bitlen: Option<u8>,
    secrets: Option<SecretsInput>,
    /// The secrets sat beside the other fields (see [`flat`]): their problems are reported
    /// at the top level.
    flat_secrets: bool,
    /// Problems, each with the index in [`FIELDS`] of the field it is about.
    problems: Vec<(usize, ValidationErrors)>,
}

impl SimFields {
    /// Reads field `at` of [`FIELDS`].
    fn read(&mut self, at: usize, value: Value) {
        let mut errs = ValidationErrors::new();
        let mut f = Fields { errs: &mut errs };
        let v = Some(value);
        match FIELDS[at] {
            "iccid" => self.iccid = f.required_str("iccid", &v).map(str::to_owned),
            "imsi" => self.imsi = f.optional("imsi", &v, Imsi::parse),
            "msisdn" => self.msisdn = f.optional("msisdn", &v, Msisdn::parse),
            "imei" => self.imei = f.optional("imei", &v, Imei::parse),
            "eid" => self.eid = f.optional("eid", &v, Eid::parse),
            "sim_type" => {
                self.sim_type = f.optional("sim_type", &v, |s| {
                    s.parse::<SimType>()
                        .map_err(|()| "must be physical or esim")
                });
            }
            "vendor" => self.vendor = f.optional("vendor", &v, label("vendor")),
            "tags" => self.tags = f.labels("tags", &v, MAX_TAGS),
            "group_id" => self.group_id = f.optional("group_id", &v, group_ref),
            "device_id" => self.device_id = f.optional("device_id", &v, device_ref),
            "compatibility_zones" => {
                self.compatibility_zones = f.labels("compatibility_zones", &v, MAX_ZONES);
            }
            "carrier_status" => {
                self.carrier_status = f.optional("carrier_status", &v, |s| {
                    check_carrier_status(s).map(|()| s.to_owned())
                });
            }
            name @ ("communication_plan" | "rate_plan" | "mno_integration_id") => {
                if let Some((name, max)) = CarrierFields::LIMITS.into_iter().find(|l| l.0 == name) {
                    let value = f.optional(name, &v, |s| {
                        check_carrier_field(s, name, max).map(|()| s.to_owned())
                    });
                    if let Some(field) = self.carrier.field_mut(name) {
                        *field = value;
                    }
                }
            }
            "metadata" => self.metadata = f.object("metadata", &v, check_metadata),
            "pin_max" => self.pin_max = counter_max("pin_max", &v, &mut errs),
            "puk_max" => self.puk_max = counter_max("puk_max", &v, &mut errs),
            "amf" => self.amf = optional_hex("amf", &v, &mut errs),
            "sqn" => self.sqn = optional_hex("sqn", &v, &mut errs),
            "ind_bitlen" => match &v {
                None | Some(Value::Null) => {}
                Some(n) => match n.as_u64().filter(|n| *n <= 10) {
                    Some(n) => self.ind_bitlen = u8::try_from(n).ok(),
                    None => errs.pointer("/ind_bitlen", "must be a whole number from 0 to 10"),
                },
            },
            _ => {}
        }
        if !errs.is_empty() {
            self.problems.push((at, errs));
        }
    }

    /// The input, or every problem of the body.
    pub fn finish(self, luhn: LuhnPolicy) -> Result<SimInput, ValidationErrors> {
        let mut errs = ValidationErrors::new();
        let iccid = match &self.iccid {
            _ if self.seen & 1 == 0 => {
                errs.pointer("/iccid", "this field is required");
                None
            }
            None => None,
            Some(text) => Iccid::parse(text, luhn)
                .map_err(|e| errs.pointer("/iccid", e.to_string()))
                .ok(),
        };
        let mut problems = self.problems;
        problems.sort_by_key(|(at, _)| *at);
        for (_, field) in problems {
            for e in field.errors() {
                if let super::Location::Pointer(p) = &e.location {
                    errs.pointer(p.clone(), e.detail.clone());
                }
            }
        }
        let sim_type = self.sim_type.unwrap_or(SimType::Physical);
        if self.eid.is_some() && sim_type != SimType::Esim {
            errs.pointer("/eid", "an EID is only given for an eSIM (sim_type esim)");
        }
        let prefix = if self.flat_secrets { "" } else { "/secrets" };
        let (secrets, mut op) = self
            .secrets
            .map(|s| s.parse(prefix, false, &mut errs))
            .unwrap_or_default();
        if op.is_some() && given_ki(&secrets).is_none() {
            errs.pointer(format!("{prefix}/op"), OP_NEEDS_KI);
            op = None;
        }
        let Some(iccid) = iccid else { return Err(errs) };
        let defaults = AuthData::default();
        errs.finish(SimInput {
            iccid,
            imsi: self.imsi,
            msisdn: self.msisdn,
            imei: self.imei,
            eid: self.eid,
            sim_type,
            carrier_status: self.carrier_status,
            vendor: self.vendor,
            tags: self.tags.unwrap_or_default(),
            group_id: self.group_id,
            device_id: self.device_id,
            compatibility_zones: self.compatibility_zones.unwrap_or_default(),
            carrier: self.carrier,
            metadata: self.metadata.unwrap_or_default(),
            pin_max: self.pin_max.unwrap_or(3),
            puk_max: self.puk_max.unwrap_or(10),
            auth: AuthData {
                amf: self.amf.unwrap_or(defaults.amf),
                sqn: self.sqn.map_or(defaults.sqn, |b| sqn::from_bytes(&b)),
                ind_bitlen: self.ind_bitlen.unwrap_or(defaults.ind_bitlen),
            },
            secrets,
            op,
        })
    }
}

/// A card's attempt counter maximum: a whole number from 1 to 15; missing or null is `None`.
fn counter_max(name: &str, v: &Option<Value>, errs: &mut ValidationErrors) -> Option<i64> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = v.as_i64().filter(|n| (1..=15).contains(n));
            if n.is_none() {
                errs.pointer(format!("/{name}"), "must be a whole number from 1 to 15");
            }
            n
        }
    }
}

/// An optional field of exactly `2 * N` hex digits; missing or null is `None`.
fn optional_hex<const N: usize>(
    name: &str,
    v: &Option<Value>,
    errs: &mut ValidationErrors,
) -> Option<[u8; N]> {
    match v {
        None | Some(Value::Null) => None,
        Some(v) => {
            let parsed = v.as_str().and_then(hex_array::<N>);
            if parsed.is_none() {
                errs.pointer(
                    format!("/{name}"),
                    format!("must be {} hexadecimal digits", 2 * N),
                );
            }
            parsed
        }
    }
}

impl<'de> Deserialize<'de> for SimFields {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = SimFields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a SIM object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SimFields, A::Error> {
                use de::Error as _;
                let mut out = SimFields::default();
                while let Some(key) = map.next_key::<String>()? {
                    let Some(at) = FIELDS.iter().position(|f| *f == key) else {
                        return Err(A::Error::unknown_field(&key, FIELDS));
                    };
                    if out.seen & (1 << at) != 0 {
                        return Err(A::Error::duplicate_field(FIELDS[at]));
                    }
                    out.seen |= 1 << at;
                    if FIELDS[at] == "secrets" {
                        // Straight into zeroizing storage, never through a `Value`.
                        out.secrets = map.next_value::<Option<SecretsInput>>()?;
                    } else {
                        let value = map.next_value::<Value>()?;
                        out.read(at, value);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

pub mod flat;
mod sealed;

#[cfg(test)]
mod tests;
