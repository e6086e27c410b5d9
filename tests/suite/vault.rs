//! The vault: secrets round-trip through the key hierarchy, are revealed only as the policy
//! says, are bound to their place (tampering and swapping yield no plaintext), never rest in
//! plaintext, and are shredded with their SIM.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid};

pub(crate) const KI: &str = "465B5CE8B199B49FAA5F0A2EE238A6BC";
pub(crate) const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";
pub(crate) const PIN1: &str = "73918264";
pub(crate) const PIN2: &str = "5826";
pub(crate) const PUK1: &str = "91827364";
pub(crate) const PUK2: &str = "28374651";
pub(crate) const CODE: &str = "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815";
pub(crate) const ALL: &str = "pin1,pin2,puk1,puk2,ki,opc,activation_code";

pub(crate) fn all_secrets() -> Value {
    json!({"pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2, "ki": KI, "opc": OPC, "activation_code": CODE})
}

pub(crate) async fn setup(store: Store) -> (TestApp, Api, Value) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = prov
        .create_sim(json!({"iccid": iccid(1), "sim_type": "esim", "secrets": all_secrets()}))
        .await;
    (app, prov, sim)
}

pub(crate) fn path(sim: &Value, rest: &str) -> String {
    format!("/v1/sims/{}{rest}", sim["id"].as_str().unwrap())
}

async fn every_field_round_trips(store: Store) {
    let (_app, prov, sim) = setup(store).await;
    assert_eq!(
        sim["secrets_present"],
        json!([
            "pin1",
            "pin2",
            "puk1",
            "puk2",
            "ki",
            "opc",
            "activation_code"
        ])
    );
    assert_eq!(
        sim["pin_status"],
        json!({
            "pin1": {"remaining_attempts": 3, "blocked": false}, "pin2": {"remaining_attempts": 3, "blocked": false},
            "puk1": {"remaining_attempts": 10, "blocked": false}, "puk2": {"remaining_attempts": 10, "blocked": false},
        })
    );
    // The SIM resource never carries a value.
    let text = sim.to_string();
    for v in [PIN1, PUK1, OPC, CODE, &KI.to_lowercase()] {
        assert!(!text.contains(v));
    }

    let a = prov
        .get(&path(&sim, &format!("/secrets?fields={ALL}")))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.body["id"], sim["id"]);
    assert_eq!(a.body["iccid"], iccid(1));
    assert_eq!(
        a.body["secrets"],
        json!({"pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2, "ki": KI.to_lowercase(), "opc": OPC, "activation_code": CODE})
    );
    // By ICCID too, and only what was asked.
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=opc", iccid(1)))
        .await;
    assert_eq!(a.body["secrets"], json!({"opc": OPC}));

    // PUT merges: replace one, remove one (null), keep the rest.
    let a = Api::send(
        prov.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
            .json(&json!({"pin1": "1111", "activation_code": null})),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["secrets_present"],
        json!(["pin1", "pin2", "puk1", "puk2", "ki", "opc"])
    );
    let a = prov
        .get(&path(&sim, &format!("/secrets?fields={ALL}")))
        .await;
    assert_eq!(a.body["secrets"]["pin1"], "1111");
    assert_eq!(a.body["secrets"]["pin2"], PIN2);
    assert_eq!(a.body["secrets"]["activation_code"], Value::Null);

    // A SIM without secrets: every field null.
    let bare = prov.create_sim(json!({"iccid": iccid(2)})).await;
    assert_eq!(bare["secrets_present"], json!([]));
    assert_eq!(bare["pin_status"], json!({}));
    let a = prov
        .get(&path(&bare, &format!("/secrets?fields={ALL}")))
        .await;
    assert_eq!(a.status, 200);
    assert!(
        a.body["secrets"]
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_null)
    );
    // Setting secrets later works, on a SIM that had no key yet.
    let a = Api::send(
        prov.request(reqwest::Method::PUT, &path(&bare, "/secrets"))
            .json(&json!({"ki": KI})),
    )
    .await;
    assert_eq!(a.status, 200);
    let a = prov.get(&path(&bare, "/secrets?fields=ki")).await;
    assert_eq!(a.body["secrets"]["ki"], KI.to_lowercase());
}
both_stores!(round_trip, every_field_round_trips);

/// Field-by-field decisions, with what each caller does NOT get.
async fn reveal_policy(store: Store) {
    let (app, prov, sim) = setup(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let prov_jwt = app.jwt_client("acme", &[Role::Provisioner]);
    let reveal = |who: Api, fields: &'static str, reason: Option<&'static str>| {
        let p = path(&sim, &format!("/secrets?fields={fields}"));
        async move {
            let mut rb = who.request(reqwest::Method::GET, &p);
            if let Some(r) = reason {
                rb = rb.header("x-simvault-reason", r);
            }
            Api::send(rb).await
        }
    };
    let denied = |a: &crate::helpers::Answer| {
        assert_eq!(a.status, 403, "{:?}", a.body);
        assert!(a.body.get("secrets").is_none());
        let text = a.body.to_string();
        for v in [PIN1, PUK1, PUK2, OPC, &KI.to_lowercase()] {
            assert!(!text.contains(v));
        }
    };
    // Support: PUKs only, and only with a reason (query or header).
    denied(&reveal(support.clone(), "puk1", None).await);
    let a = reveal(
        support.clone(),
        "puk1,puk2",
        Some("TICKET-4711 customer locked out"),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["secrets"], json!({"puk1": PUK1, "puk2": PUK2}));
    let a = support
        .get(&path(&sim, "/secrets?fields=puk1&reason=TICKET-1"))
        .await;
    assert_eq!(a.status, 200);
    for field in ["ki", "opc", "pin1", "pin2", "activation_code"] {
        denied(&reveal(support.clone(), field, Some("ticket")).await);
    }
    // One refused field refuses the whole request.
    denied(&reveal(support.clone(), "puk1,ki", Some("ticket")).await);
    // Provisioners read card keys only over mTLS.
    for field in ["ki", "opc", "pin1", "pin2", "puk1"] {
        denied(&reveal(prov_jwt.clone(), field, None).await);
        assert_eq!(
            reveal(prov.clone(), field, None).await.status,
            200,
            "{field}"
        );
    }
    assert_eq!(
        reveal(prov_jwt.clone(), "activation_code", None)
            .await
            .status,
        200
    );
    // Nobody else reads anything.
    for role in [
        Role::Operator,
        Role::Auditor,
        Role::Admin,
        Role::Auc,
        Role::Metrics,
    ] {
        for field in ["ki", "puk1", "activation_code"] {
            denied(&reveal(app.jwt_client("acme", &[role]), field, Some("ticket")).await);
        }
        let mtls = app.mtls_api("acme", &[role], &format!("m-{role}")).await;
        denied(&reveal(mtls, "ki", Some("ticket")).await);
    }
    // Only provisioners write secrets.
    for who in [
        support.clone(),
        app.jwt_client("acme", &[Role::Operator]),
        app.jwt_client("acme", &[Role::Admin]),
    ] {
        let a = Api::send(
            who.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
                .json(&json!({"pin1": "0000"})),
        )
        .await;
        assert_eq!(a.status, 403);
    }
    assert_eq!(
        prov.get(&path(&sim, "/secrets?fields=pin1")).await.body["secrets"]["pin1"],
        PIN1
    );
    // Another tenant: 404 for every role, reading or writing.
    app.tenant("evil").await;
    let evil = app.mtls_api("evil", &Role::ALL, "evil").await;
    let a = evil
        .get(&path(&sim, &format!("/secrets?fields={ALL}&reason=x")))
        .await;
    assert_eq!(a.status, 404);
    let a = evil
        .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
        .await;
    assert_eq!(a.status, 404);
    let a = Api::send(
        evil.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
            .json(&json!({"ki": KI})),
    )
    .await;
    assert_eq!(a.status, 404);
}
both_stores!(policy, reveal_policy);

async fn bad_secret_input_is_reported_and_changes_nothing(store: Store) {
    let (app, prov, sim) = setup(store).await;
    let a = prov
        .post(
            "/v1/sims",
            &json!({"iccid": iccid(3), "secrets": {"ki": "00ZZ", "pin1": "12", "puk1": 12345678, "activation_code": "LPA:2$X$Y", "op": "00"}}),
        )
        .await;
    assert_eq!(a.status, 400);
    let mut pointers: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["pointer"].as_str().unwrap())
        .collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        [
            "/secrets/activation_code",
            "/secrets/ki",
            "/secrets/op",
            "/secrets/pin1",
            "/secrets/puk1"
        ]
    );
    let text = a.body.to_string();
    assert!(!text.contains("00ZZ") && !text.contains("12345678") && !text.contains("LPA:2"));
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(3))).await.status,
        404
    );
    let a = prov
        .post("/v1/sims", &json!({"iccid": iccid(3), "secrets": "ki=00"}))
        .await;
    assert_eq!(a.body["errors"][0]["pointer"], "/secrets");

    // Reveal parameters.
    for (q, param) in [
        ("", "fields"),
        ("?fields=", "fields"),
        ("?fields=ki,root", "fields"),
        ("?fields=ki&x=1", "x"),
    ] {
        let a = prov.get(&path(&sim, &format!("/secrets{q}"))).await;
        assert_eq!(a.status, 400, "{q}");
        assert!(
            a.body["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["parameter"] == param),
            "{q}: {:?}",
            a.body
        );
    }
    let long = "x".repeat(501);
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support
            .get(&path(&sim, &format!("/secrets?fields=puk1&reason={long}")))
            .await
            .status,
        400
    );

    // PUT: nothing, or any bad field, changes nothing.
    for body in [
        json!({}),
        json!({"pin1": "9999", "ki": "short"}),
        json!({"pin1": 1234}),
        json!({"bogus": "1"}),
    ] {
        let a = Api::send(
            prov.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
                .json(&body),
        )
        .await;
        assert_eq!(a.status, 400, "{body}");
    }
    let a = prov.get(&path(&sim, "/secrets?fields=pin1,ki")).await;
    assert_eq!(
        a.body["secrets"],
        json!({"pin1": PIN1, "ki": KI.to_lowercase()})
    );
}
both_stores!(validation, bad_secret_input_is_reported_and_changes_nothing);

pub fn provisioner(tenant: &str) -> simvault::domain::Principal {
    simvault::domain::Principal {
        tenant: simvault::domain::TenantId::parse(tenant).unwrap(),
        roles: [Role::Provisioner].into(),
        subject: "seeder".into(),
        auth_method: simvault::domain::AuthMethod::Mtls,
        credential_id: None,
        origin: Default::default(),
    }
}

/// Creates `n` SIMs with a Ki each, straight through the service layer.
pub async fn seed_with_secrets(
    services: &simvault::service::Services,
    tenant: &str,
    from: u64,
    n: u64,
) {
    use simvault::domain::{Iccid, LuhnPolicy, SecretField, SimInput, SimType};
    let p = provisioner(tenant);
    for i in from..from + n {
        let new = SimInput {
            iccid: Iccid::parse(&iccid(i), LuhnPolicy::Enforce).unwrap(),
            imsi: None,
            msisdn: None,
            imei: None,
            eid: None,
            sim_type: SimType::Physical,
            carrier_status: None,
            vendor: None,
            tags: Default::default(),
            group_id: None,
            device_id: None,
            compatibility_zones: Default::default(),
            carrier: Default::default(),
            metadata: Default::default(),
            pin_max: 3,
            puk_max: 10,
            auth: Default::default(),
            secrets: vec![(
                SecretField::Ki,
                Some(SecretField::Ki.parse(&format!("{i:032x}")).unwrap()),
            )],
            op: None,
        };
        services.inventory().create_sim(&p, new).await.unwrap();
    }
}
