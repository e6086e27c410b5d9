//! The one reading of a `PATCH /v1/sims/{sim}` body into a [`SimPatch`]: the single PATCH,
//! the bulk patch (checked at the door, kept with its task, read again by the worker) and any
//! other door use it.

use serde::Deserialize;
use serde_json::Value;

use super::fields::{Fields, data_error, data_limit, present};
use super::group::{device_ref, group_ref};
use super::identifiers::{Imei, Msisdn};
use super::sim::{
    CarrierFields, MAX_TAGS, MAX_ZONES, SimPatch, check_carrier_field, check_carrier_status,
    check_metadata,
};
use super::validation::{Location, ValidationErrors};

/// A PATCH body as read: only the fields given change; `null` clears a field.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchFields {
    #[serde(default, deserialize_with = "present")]
    pub msisdn: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub imei: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub tags: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub metadata: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub group_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub device_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub compatibility_zones: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub carrier_status: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub communication_plan: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub rate_plan: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub mno_integration_id: Option<Value>,
    #[serde(default, deserialize_with = "present")]
    pub data_limit: Option<Value>,
}

impl PatchFields {
    /// The validated patch, or every problem with its pointer.
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

impl SimPatch {
    /// A PATCH body held as a JSON value (inside a bulk request, or kept with its task), read
    /// as the single PATCH reads its body; pointers are prefixed with `at` (`/patch`).
    pub fn from_value(body: Value, at: &str) -> Result<SimPatch, ValidationErrors> {
        // serde would read an array as the fields in order.
        if !body.is_object() {
            return Err(ValidationErrors::single_pointer(
                at,
                "must be a JSON object of the documented fields",
            ));
        }
        serde_json::from_value::<PatchFields>(body)
            .map_err(|e| data_error(&e, at))?
            .parse()
            .map_err(|e| prefixed(&e, at))
    }
}

/// `errors` with every pointer under `at`.
pub fn prefixed(errors: &ValidationErrors, at: &str) -> ValidationErrors {
    let mut out = ValidationErrors::new();
    for e in errors.errors() {
        match &e.location {
            Location::Pointer(p) => out.pointer(format!("{at}{p}"), e.detail.clone()),
            Location::Parameter(p) => out.parameter(p.clone(), e.detail.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn patch_distinguishes_missing_from_null() {
        let p = serde_json::from_value::<PatchFields>(json!({"msisdn": null, "tags": ["a"]}))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(p.msisdn, Some(None));
        assert_eq!(p.imei, None);
        assert_eq!(p.tags.unwrap().len(), 1);
    }

    #[test]
    fn a_held_body_reads_as_the_single_patch_with_its_pointers_prefixed() {
        let body = json!({"msisdn": "+44 7", "tags": ["ok"], "imei": null});
        let direct = serde_json::from_value::<PatchFields>(body.clone())
            .unwrap()
            .parse()
            .unwrap_err();
        let held = SimPatch::from_value(body, "/patch").unwrap_err();
        assert_eq!(held.errors().len(), direct.errors().len());
        assert_eq!(
            held.errors()[0].location,
            Location::Pointer("/patch/msisdn".into())
        );
        let unknown = SimPatch::from_value(json!({"state": "active"}), "/patch").unwrap_err();
        assert_eq!(
            unknown.errors()[0].location,
            Location::Pointer("/patch/state".into())
        );
        let not_object = SimPatch::from_value(json!([1]), "/patch").unwrap_err();
        assert_eq!(
            not_object.errors()[0].location,
            Location::Pointer("/patch".into())
        );
        let ok = SimPatch::from_value(json!({"carrier_status": "LIVE"}), "/patch").unwrap();
        assert_eq!(ok.carrier_status, Some(Some("LIVE".into())));
    }
}
