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
        "ind_bitlen": 4, "secrets": {"ki": "00112233445566778899AABBCCDDEEFF", "pin1": "1234"},
        "rate_plan": "flat-1", "mno_integration_id": "mno-1"}"#;
    let input = SimInput::parse(text, LuhnPolicy::Enforce).unwrap();
    let staged = serde_json::to_vec(&input).unwrap();
    let back: SimInput = serde_json::from_slice(&staged).unwrap();
    assert_eq!(back.iccid, input.iccid);
    assert_eq!(back.imsi, input.imsi);
    assert_eq!(back.tags, input.tags);
    assert_eq!(back.metadata, input.metadata);
    assert_eq!(back.auth, input.auth);
    assert_eq!(back.auth.sqn, 42);
    assert_eq!(back.carrier, input.carrier);
    assert_eq!(back.carrier.rate_plan.as_deref(), Some("flat-1"));
    assert_eq!(back.carrier.mno_integration_id.as_deref(), Some("mno-1"));
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
    let s =
        create(json!({"iccid": "8944501234567890124", "secrets": {"op": op, "ki": ki}})).unwrap();
    assert!(s.op.is_some());
    assert_eq!(s.secrets.len(), 1);
}
