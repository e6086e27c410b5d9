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
use super::identifiers::{Eid, Iccid, Imei, Imsi, LuhnPolicy, Msisdn};
use super::secret_input::{OP_NEEDS_KI, SecretsInput, given_ki};
use super::secrets::{RetryCounters, SecretValue};
use super::sim::{
    LabelSet, MAX_TAGS, MAX_ZONES, SecretChanges, Sim, SimState, SimType, check_carrier_status,
    check_metadata,
};
use super::sqn::{self, AuthData};
use super::validation::{ValidationErrors, hex_array};
use super::{SimId, Timestamp};

/// A validated request to create a SIM.
///
/// Staged (sealed in a bulk task's item) in the layout of [`sealed::Staged`], which earlier
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
    pub fn into_sim(self, id: SimId, tenant: &str, now: Timestamp) -> (Sim, SecretChanges) {
        let sim = Sim {
            id,
            tenant_id: tenant.to_owned(),
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
/// rule) and gives the input, or every problem in the order of [`FIELDS`].
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
    metadata: Option<Map<String, Value>>,
    pin_max: Option<i64>,
    puk_max: Option<i64>,
    amf: Option<[u8; 2]>,
    sqn: Option<[u8; 6]>,
    ind_bitlen: Option<u8>,
    secrets: Option<SecretsInput>,
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
            "group_id" => self.group_id = f.optional("group_id", &v, label("group_id")),
            "device_id" => self.device_id = f.optional("device_id", &v, label("device_id")),
            "compatibility_zones" => {
                self.compatibility_zones = f.labels("compatibility_zones", &v, MAX_ZONES);
            }
            "carrier_status" => {
                self.carrier_status = f.optional("carrier_status", &v, |s| {
                    check_carrier_status(s).map(|()| s.to_owned())
                });
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
        let (secrets, mut op) = self
            .secrets
            .map(|s| s.parse("/secrets", false, &mut errs))
            .unwrap_or_default();
        if op.is_some() && given_ki(&secrets).is_none() {
            errs.pointer("/secrets/op", OP_NEEDS_KI);
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

/// The staged (to be sealed) form of the input's typed fields.
mod sealed {
    use serde::de::{self, Deserializer, SeqAccess, Visitor};
    use serde::ser::{SerializeSeq, Serializer};
    use serde::{Deserialize, Serialize};
    use serde_json::{Map, Value};
    use zeroize::Zeroizing;

    use super::super::sim::{LabelSet, SimType};
    use super::SimInput;

    use super::super::identifiers::{
        Eid, Iccid, Imei, Imsi, InvalidIdentifier, LuhnPolicy, Msisdn,
    };
    use super::super::secrets::{SecretField, SecretValue};
    use super::super::sim::SecretChanges;
    use super::super::sqn::AuthData;

    /// An identifier as its text, checked again when read back (the ICCID's check digit
    /// under the relaxed rule, as stored SIMs are).
    pub(crate) trait Text: Sized + AsRef<str> {
        fn from_text(s: &str) -> Result<Self, InvalidIdentifier>;
    }
    impl Text for Iccid {
        fn from_text(s: &str) -> Result<Self, InvalidIdentifier> {
            Iccid::parse(s, LuhnPolicy::Relaxed)
        }
    }
    macro_rules! parsed_text {
        ($($t:ty),*) => {$(
            impl Text for $t {
                fn from_text(s: &str) -> Result<Self, InvalidIdentifier> {
                    <$t>::parse(s)
                }
            }
        )*};
    }
    parsed_text!(Imsi, Msisdn, Imei, Eid);

    pub(crate) mod text {
        use super::*;
        pub(crate) fn serialize<T: Text, S: Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(v.as_ref())
        }
        pub(crate) fn deserialize<'de, T: Text, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
            let s = String::deserialize(d)?;
            T::from_text(&s).map_err(de::Error::custom)
        }
    }

    pub(crate) mod optional_text {
        use super::*;
        pub(crate) fn serialize<T: Text, S: Serializer>(
            v: &Option<T>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            v.as_ref().map(AsRef::as_ref).serialize(s)
        }
        pub(crate) fn deserialize<'de, T: Text, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<T>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|s| T::from_text(&s).map_err(de::Error::custom))
                .transpose()
        }
    }

    /// The staged layout: identifiers as text, the authentication data as three keys, the
    /// secrets as `[name, value]` pairs.
    #[derive(Serialize, Deserialize)]
    pub(crate) struct Staged {
        #[serde(with = "text")]
        iccid: Iccid,
        #[serde(with = "optional_text")]
        imsi: Option<Imsi>,
        #[serde(with = "optional_text")]
        msisdn: Option<Msisdn>,
        #[serde(with = "optional_text")]
        imei: Option<Imei>,
        #[serde(with = "optional_text")]
        eid: Option<Eid>,
        sim_type: SimType,
        carrier_status: Option<String>,
        vendor: Option<String>,
        tags: LabelSet,
        group_id: Option<String>,
        device_id: Option<String>,
        zones: LabelSet,
        metadata: Map<String, Value>,
        pin_max: i64,
        puk_max: i64,
        amf: [u8; 2],
        sqn: u64,
        ind_bitlen: u8,
        #[serde(with = "secrets")]
        secrets: SecretChanges,
    }

    impl From<SimInput> for Staged {
        fn from(i: SimInput) -> Self {
            Staged {
                iccid: i.iccid,
                imsi: i.imsi,
                msisdn: i.msisdn,
                imei: i.imei,
                eid: i.eid,
                sim_type: i.sim_type,
                carrier_status: i.carrier_status,
                vendor: i.vendor,
                tags: i.tags,
                group_id: i.group_id,
                device_id: i.device_id,
                zones: i.compatibility_zones,
                metadata: i.metadata,
                pin_max: i.pin_max,
                puk_max: i.puk_max,
                amf: i.auth.amf,
                sqn: i.auth.sqn,
                ind_bitlen: i.auth.ind_bitlen,
                secrets: i.secrets,
            }
        }
    }

    impl From<Staged> for SimInput {
        fn from(s: Staged) -> Self {
            SimInput {
                iccid: s.iccid,
                imsi: s.imsi,
                msisdn: s.msisdn,
                imei: s.imei,
                eid: s.eid,
                sim_type: s.sim_type,
                carrier_status: s.carrier_status,
                vendor: s.vendor,
                tags: s.tags,
                group_id: s.group_id,
                device_id: s.device_id,
                compatibility_zones: s.zones,
                metadata: s.metadata,
                pin_max: s.pin_max,
                puk_max: s.puk_max,
                auth: AuthData {
                    amf: s.amf,
                    sqn: s.sqn,
                    ind_bitlen: s.ind_bitlen,
                },
                secrets: s.secrets,
                op: None,
            }
        }
    }

    /// The secrets to set, as an object of field names and values (read back into zeroizing
    /// storage; they were validated when the input was).
    pub(crate) mod secrets {
        use super::*;
        pub(crate) fn serialize<S: Serializer>(v: &SecretChanges, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(None)?;
            for (field, value) in v {
                if let Some(value) = value {
                    seq.serialize_element(&(field.as_str(), value.expose()))?;
                }
            }
            seq.end()
        }
        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<SecretChanges, D::Error> {
            d.deserialize_seq(Secrets)
        }

        struct Secrets;
        impl<'de> Visitor<'de> for Secrets {
            type Value = SecretChanges;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("`[name, value]` pairs of secret fields")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SecretChanges, A::Error> {
                let mut out = SecretChanges::new();
                while let Some((name, value)) = seq.next_element::<(String, StagedValue)>()? {
                    let field = name
                        .parse::<SecretField>()
                        .map_err(|()| de::Error::custom("unknown secret field"))?;
                    out.push((field, Some(value.0)));
                }
                Ok(out)
            }
        }

        /// One staged secret value, read into zeroizing storage.
        struct StagedValue(SecretValue);
        impl<'de> Deserialize<'de> for StagedValue {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = StagedValue;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str("a secret value")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<StagedValue, E> {
                        Ok(StagedValue(SecretValue::from_stored(Zeroizing::new(
                            s.to_owned(),
                        ))))
                    }
                    fn visit_string<E: de::Error>(self, s: String) -> Result<StagedValue, E> {
                        Ok(StagedValue(SecretValue::from_stored(Zeroizing::new(s))))
                    }
                }
                d.deserialize_str(V)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::SecretField;
    use serde_json::json;

    fn create(v: Value) -> Result<SimInput, ValidationErrors> {
        serde_json::from_value::<SimFields>(v)
            .unwrap()
            .finish(LuhnPolicy::Enforce)
    }

    /// A row staged by the previous release (its `StoredRow` layout), as a replica of that
    /// release seals it: this release reads it, and stages its own rows in the same layout.
    #[test]
    fn staged_rows_keep_the_layout_earlier_releases_wrote() {
        let earlier = json!({
            "iccid": "89441000000000000011", "imsi": "234150000000001", "msisdn": null,
            "imei": null, "eid": null, "sim_type": "physical", "carrier_status": null,
            "vendor": "V", "tags": ["a"], "group_id": null, "device_id": null,
            "zones": ["eu"], "metadata": {"k": 1}, "pin_max": 3, "puk_max": 10,
            "amf": [128, 0], "sqn": 7, "ind_bitlen": 5,
            "secrets": [["ki", "000102030405060708090a0b0c0d0e0f"]]
        });
        let input: SimInput = serde_json::from_value(earlier.clone()).unwrap();
        assert_eq!(input.iccid.as_str(), "89441000000000000011");
        assert_eq!(input.compatibility_zones.iter().collect::<Vec<_>>(), ["eu"]);
        assert_eq!(
            (input.auth.amf, input.auth.sqn, input.auth.ind_bitlen),
            ([128, 0], 7, 5)
        );
        assert_eq!(input.secrets.len(), 1);
        assert_eq!(input.secrets[0].0, SecretField::Ki);
        assert_eq!(
            input.secrets[0].1.as_ref().map(SecretValue::expose),
            Some("000102030405060708090a0b0c0d0e0f")
        );
        assert_eq!(serde_json::to_value(&input).unwrap(), earlier);
    }

    fn pointers(e: &ValidationErrors) -> Vec<String> {
        e.errors()
            .iter()
            .map(|e| match &e.location {
                super::super::Location::Pointer(p) => p.clone(),
                super::super::Location::Parameter(p) => p.clone(),
            })
            .collect()
    }

    #[test]
    fn minimal_sim() {
        let s = create(json!({"iccid": "8944501234567890124"})).unwrap();
        assert_eq!(s.sim_type, SimType::Physical);
        assert!(s.tags.is_empty());
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = create(json!({
            "iccid": "123", "imsi": "12", "msisdn": "abc", "imei": "1", "eid": "1",
            "sim_type": "card", "tags": ["ok", "", 5], "metadata": [1], "carrier_status": "x".repeat(31),
            "compatibility_zones": "eu"
        }))
        .unwrap_err();
        assert_eq!(
            pointers(&e),
            vec![
                "/iccid",
                "/imsi",
                "/msisdn",
                "/imei",
                "/eid",
                "/sim_type",
                "/tags/1",
                "/tags/2",
                "/compatibility_zones",
                "/carrier_status",
                "/metadata"
            ]
        );
    }

    #[test]
    fn missing_iccid_is_required() {
        let e = create(json!({})).unwrap_err();
        assert_eq!(pointers(&e), vec!["/iccid"]);
        let e = create(json!({"iccid": 8944501234567890124u64})).unwrap_err();
        assert_eq!(e.errors()[0].detail, "must be a string");
    }

    #[test]
    fn eid_only_on_esims() {
        let eid = "89049032123451234512345678901235";
        assert!(create(json!({"iccid": "8944501234567890124", "eid": eid})).is_err());
        assert!(
            create(json!({"iccid": "8944501234567890124", "eid": eid, "sim_type": "esim"})).is_ok()
        );
    }

    #[test]
    fn a_staged_input_reads_back_as_it_was() {
        let text = br#"{"iccid": "8944501234567890124", "imsi": "234150123456789",
            "tags": ["b", "a"], "metadata": {"k": 1}, "amf": "9001", "sqn": "00000000002a",
            "ind_bitlen": 4, "secrets": {"ki": "00112233445566778899AABBCCDDEEFF", "pin1": "1234"}}"#;
        let input = SimInput::parse(text, LuhnPolicy::Enforce).unwrap();
        let staged = serde_json::to_vec(&input).unwrap();
        let back: SimInput = serde_json::from_slice(&staged).unwrap();
        assert_eq!(back.iccid, input.iccid);
        assert_eq!(back.imsi, input.imsi);
        assert_eq!(back.tags, input.tags);
        assert_eq!(back.metadata, input.metadata);
        assert_eq!(back.auth, input.auth);
        assert_eq!(back.auth.sqn, 42);
        let secrets = |i: &SimInput| -> Vec<(String, String)> {
            i.secrets
                .iter()
                .map(|(f, v)| {
                    (
                        f.as_str().to_owned(),
                        v.as_ref().unwrap().expose().to_owned(),
                    )
                })
                .collect()
        };
        assert_eq!(secrets(&back), secrets(&input));
        assert_eq!(secrets(&back)[0].1, "00112233445566778899aabbccddeeff");
    }

    #[test]
    fn op_needs_a_ki_in_the_same_body() {
        let op = "cdc202d5123e20f62b6d676ac72cb318";
        let e = create(json!({"iccid": "8944501234567890124", "secrets": {"op": op}})).unwrap_err();
        assert_eq!(pointers(&e), vec!["/secrets/op"]);
        let ki = "465b5ce8b199b49faa5f0a2ee238a6bc";
        let s = create(json!({"iccid": "8944501234567890124", "secrets": {"op": op, "ki": ki}}))
            .unwrap();
        assert!(s.op.is_some());
        assert_eq!(s.secrets.len(), 1);
    }
}
