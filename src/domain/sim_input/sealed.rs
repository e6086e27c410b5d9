//! The staged (to be sealed) form of the input's typed fields.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use super::super::sim::{CarrierFields, LabelSet, SimType};
use super::SimInput;

use super::super::identifiers::{Eid, Iccid, Imei, Imsi, InvalidIdentifier, LuhnPolicy, Msisdn};
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
    /// Missing in what earlier releases staged, and left out when empty (so a row without
    /// them is staged as those releases staged it).
    #[serde(default, skip_serializing_if = "CarrierFields::is_empty")]
    carrier: CarrierFields,
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
            carrier: i.carrier,
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
            carrier: s.carrier,
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
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SecretChanges, D::Error> {
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
