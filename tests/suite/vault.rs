//! The vault: secrets round-trip through the key hierarchy, are revealed only as the policy
//! says, are bound to their place (tampering and swapping yield no plaintext), never rest in
//! plaintext, and are shredded with their SIM.

use serde_json::{Value, json};
use simvault::domain::{Role, TenantId};

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const KI: &str = "465B5CE8B199B49FAA5F0A2EE238A6BC";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";
const PIN1: &str = "73918264";
const PIN2: &str = "5826";
const PUK1: &str = "91827364";
const PUK2: &str = "28374651";
const CODE: &str = "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815";
const ALL: &str = "pin1,pin2,puk1,puk2,ki,opc,activation_code";

fn all_secrets() -> Value {
    json!({"pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2, "ki": KI, "opc": OPC, "activation_code": CODE})
}

async fn setup(store: Store) -> (TestApp, Api, Value) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = prov
        .create_sim(json!({"iccid": iccid(1), "sim_type": "esim", "secrets": all_secrets()}))
        .await;
    (app, prov, sim)
}

fn path(sim: &Value, rest: &str) -> String {
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

async fn blob(db: &simvault::store::Db, sql: &'static str, id: &str) -> Vec<u8> {
    raw_sql!(db, p => sqlx::query_scalar(sql).bind(id).fetch_one(p).await).unwrap()
}

async fn set_blob(db: &simvault::store::Db, sql: &'static str, value: Vec<u8>, id: &str) {
    raw_sql!(db, p => sqlx::query(sql).bind(value).bind(id).execute(p).await.map(|_| ())).unwrap();
}

const GET_FIELD: &str = "SELECT ciphertext FROM sim_secrets WHERE sim_id = $1 AND field = 'ki'";
const SET_FIELD: &str = "UPDATE sim_secrets SET ciphertext = $1 WHERE sim_id = $2 AND field = 'ki'";
const SET_OPC: &str = "UPDATE sim_secrets SET ciphertext = $1 WHERE sim_id = $2 AND field = 'opc'";
const GET_DEK: &str = "SELECT wrapped_dek FROM sim_deks WHERE sim_id = $1";
const SET_DEK: &str = "UPDATE sim_deks SET wrapped_dek = $1 WHERE sim_id = $2";

/// Asserts the reveal fails as an opaque integrity error: no plaintext of anyone.
async fn assert_no_plaintext(prov: &Api, sim: &Value, fields: &str) {
    let a = prov
        .get(&path(sim, &format!("/secrets?fields={fields}")))
        .await;
    assert_eq!(a.status, 500, "{:?}", a.body);
    assert_eq!(
        a.body["type"],
        "https://simvault.dev/problems/internal-error"
    );
    let text = a.body.to_string();
    for v in [
        OPC,
        &KI.to_lowercase(),
        "00112233445566778899aabbccddeeff",
        PIN1,
    ] {
        assert!(!text.contains(v));
    }
}

async fn tampering_and_swapping_yield_no_plaintext(store: Store) {
    let (app, prov, a_sim) = setup(store).await;
    let db = &app.test_db.db;
    let b_sim = prov
        .create_sim(json!({"iccid": iccid(2), "secrets": {"ki": "00112233445566778899aabbccddeeff", "opc": OPC}}))
        .await;
    let (a, b) = (a_sim["id"].as_str().unwrap(), b_sim["id"].as_str().unwrap());

    // One flipped bit in the ciphertext, in the nonce.
    let original = blob(db, GET_FIELD, a).await;
    for byte in [0usize, 11, 12, original.len() - 1] {
        let mut bad = original.clone();
        bad[byte] ^= 0x01;
        set_blob(db, SET_FIELD, bad, a).await;
        assert_no_plaintext(&prov, &a_sim, "ki").await;
    }
    set_blob(db, SET_FIELD, original.clone(), a).await;
    assert_eq!(
        prov.get(&path(&a_sim, "/secrets?fields=ki")).await.status,
        200
    );

    // A ciphertext copied to another SIM, or to another field of the same SIM.
    let b_ki = blob(db, GET_FIELD, b).await;
    set_blob(db, SET_FIELD, b_ki.clone(), a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    set_blob(db, SET_FIELD, original.clone(), a).await;
    set_blob(db, SET_OPC, original.clone(), a).await;
    assert_no_plaintext(&prov, &a_sim, "opc").await;

    // A wrapped DEK copied from another SIM; one bit flipped in a wrapped DEK.
    let a_dek = blob(db, GET_DEK, a).await;
    let b_dek = blob(db, GET_DEK, b).await;
    set_blob(db, SET_DEK, b_dek, a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    let mut bad = a_dek.clone();
    bad[20] ^= 0x80;
    set_blob(db, SET_DEK, bad, a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    set_blob(db, SET_DEK, a_dek, a).await;

    // A ciphertext and DEK carried over to another tenant's SIM.
    app.tenant("other").await;
    let other = app
        .mtls_api("other", &[Role::Provisioner], "other-prov")
        .await;
    let o_sim = other
        .create_sim(
            json!({"iccid": iccid(9), "secrets": {"ki": "ffeeddccbbaa99887766554433221100"}}),
        )
        .await;
    let o = o_sim["id"].as_str().unwrap();
    set_blob(db, SET_FIELD, b_ki, o).await;
    assert_no_plaintext(&other, &o_sim, "ki").await;
    set_blob(db, SET_DEK, blob(db, GET_DEK, b).await, o).await;
    assert_no_plaintext(&other, &o_sim, "ki").await;

    // The untouched SIM still reads.
    let ok = prov.get(&path(&b_sim, "/secrets?fields=ki")).await;
    assert_eq!(ok.body["secrets"]["ki"], "00112233445566778899aabbccddeeff");
}
both_stores!(tampering, tampering_and_swapping_yield_no_plaintext);

async fn deleting_shreds_the_key(store: Store) {
    let (app, prov, sim) = setup(store).await;
    let id = sim["id"].as_str().unwrap().to_owned();
    let admin = app.jwt_client("acme", &[Role::Admin]);
    assert_eq!(admin.delete(&path(&sim, "")).await.status, 200);
    let db = &app.test_db.db;
    let deks: i64 = raw_sql!(db, p => sqlx::query_scalar("SELECT count(*) FROM sim_deks WHERE sim_id = $1").bind(&id).fetch_one(p).await).unwrap();
    let secrets: i64 = raw_sql!(db, p => sqlx::query_scalar("SELECT count(*) FROM sim_secrets WHERE sim_id = $1").bind(&id).fetch_one(p).await).unwrap();
    assert_eq!((deks, secrets), (0, 0));
    assert_eq!(
        prov.get(&path(&sim, &format!("/secrets?fields={ALL}")))
            .await
            .status,
        404
    );
    let a = Api::send(
        prov.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
            .json(&json!({"ki": KI})),
    )
    .await;
    assert_eq!(a.status, 404);
}
both_stores!(crypto_shredding, deleting_shreds_the_key);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// After storing canary secrets, neither their text nor their raw bytes are anywhere in the
/// database files (SQLite: the database, WAL and shared-memory files; PostgreSQL: a dump).
async fn no_plaintext_at_rest(store: Store) {
    let (app, _prov, _sim) = setup(store).await;
    let ki_raw = hex::decode(KI).unwrap();
    let opc_raw = hex::decode(OPC).unwrap();
    let canaries: Vec<Vec<u8>> = vec![
        KI.to_lowercase().into_bytes(),
        KI.as_bytes().to_vec(),
        OPC.as_bytes().to_vec(),
        ki_raw,
        opc_raw,
        PIN1.as_bytes().to_vec(),
        PUK1.as_bytes().to_vec(),
        PUK2.as_bytes().to_vec(),
        b"04386-AGYFT-A74Y8-3F815".to_vec(),
    ];
    let mut haystacks: Vec<Vec<u8>> = Vec::new();
    if let Some(dir) = app.test_db.sqlite_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            haystacks.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(haystacks.len() >= 2, "expected the database and its WAL");
    }
    if let Some(schema) = app.test_db.pg_schema() {
        let url = crate::helpers::postgres_url().unwrap();
        let out = std::process::Command::new("pg_dump")
            .args(["--schema", schema, &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = out.stdout;
        assert!(contains(&dump, b"sim_secrets"), "the dump holds the tables");
        // bytea is dumped as hex: look for the raw canaries' hex as well.
        haystacks.push(dump.to_ascii_lowercase());
    }
    for hay in &haystacks {
        for c in &canaries {
            assert!(
                !contains(hay, c),
                "plaintext found at rest: {}",
                String::from_utf8_lossy(c)
            );
            assert!(
                !contains(hay, hex::encode(c).as_bytes()),
                "plaintext (hex) found at rest"
            );
        }
    }
}
both_stores!(at_rest, no_plaintext_at_rest);

/// A restart with the same root key reads every secret back; any other root key, or a key
/// file others can read, refuses to start and changes nothing.
async fn root_key_must_match(store: Store) {
    use simvault::clock::SystemClock;
    use simvault::startup;
    use simvault::vault::RootKeySource;
    let (mut app, prov, sim) = setup(store).await;
    let url = path(&sim, &format!("/secrets?fields={ALL}"));
    let before = prov.get(&url).await.body;
    app.app.stop().await;

    // Another key: refused, with a message that says so.
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("root.key");
    let fresh = simvault::vault::new_key().unwrap();
    simvault::pki::write_new(
        &other_key,
        simvault::vault::root::encode_plain(&fresh).as_bytes(),
        true,
    )
    .unwrap();
    let mut wrong = app.config.clone();
    wrong.root_key = RootKeySource::File(other_key.clone());
    // The stopped server closed its pools: open the same store afresh.
    let db = reopen(&app).await;
    let err = startup::open_vault(&wrong, &db, &SystemClock)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("root key does not match"),
        "{err:#}"
    );
    let err =
        startup::Application::build_with(&wrong, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .err()
            .unwrap();
    assert!(format!("{err:#}").contains("root key does not match"));

    // A key file readable by others: refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = startup::open_vault(&wrong, &db, &SystemClock)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("readable by group or others"),
            "{err:#}"
        );
    }

    // The right key: a new server reads everything back.
    let again =
        startup::Application::build_with(&app.config, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    let base = format!("https://localhost:{}", again.local_addr().port());
    let prov2 = Api {
        app_base: base,
        client: prov.client.clone(),
        token: None,
    };
    let after = prov2.get(&url).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before);
}
both_stores!(root_key_check, root_key_must_match);

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
    use simvault::domain::{Iccid, LuhnPolicy, NewSim, SecretField, SimType};
    let p = provisioner(tenant);
    for i in from..from + n {
        let new = NewSim {
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
        services.create_sim(&p, new).await.unwrap();
    }
}

/// Seeds `n` SIMs with four concurrent writers.
async fn seed_many(app: &TestApp, n: u64) {
    let per = n / 4;
    let mut seeders = Vec::new();
    for k in 0..4 {
        let services = app.services.clone();
        seeders.push(tokio::spawn(async move {
            seed_with_secrets(&services, "acme", 100_000 + k * per, per).await
        }));
    }
    for s in seeders {
        s.await.unwrap();
    }
}

async fn wait_for_task(api: &Api, id: &str) -> Value {
    for _ in 0..1200 {
        let t = api.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(t.status, 200, "{:?}", t.body);
        if t.body["status"] == "completed" || t.body["status"] == "failed" {
            return t.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("task {id} did not finish");
}

async fn dek_versions(db: &simvault::store::Db) -> Vec<(i64, i64)> {
    raw_sql!(db, p => sqlx::query_as("SELECT kek_version, count(*) FROM sim_deks GROUP BY kek_version ORDER BY kek_version").fetch_all(p).await).unwrap()
}

/// A rotation re-wraps 10,000 SIM keys while reads and writes go on; none of them fails.
async fn rotation_under_load(store: Store) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const N: u64 = 10_000;
    let app = TestApp::spawn_with(store, |c| {
        c.tasks.lease = std::time::Duration::from_secs(5);
        c.tasks.poll = std::time::Duration::from_millis(100);
    })
    .await;
    app.tenant("acme").await;
    seed_many(&app, N).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);

    let stop = Arc::new(AtomicBool::new(false));
    let (ops, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for worker in 0..4u64 {
        let (prov, stop, ops, failures) =
            (prov.clone(), stop.clone(), ops.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                i = (i * 7919 + 13) % (N - 1);
                let n = 100_000 + i;
                let ok = if worker == 0 {
                    // A writer: new SIMs with secrets, and replaced secrets.
                    let created = prov.post("/v1/sims", &json!({"iccid": iccid(500_000 + ops.load(Ordering::Relaxed)), "secrets": {"ki": KI}})).await;
                    let put = Api::send(prov.request(reqwest::Method::PUT, &format!("/v1/sims/{}/secrets", iccid(n))).json(&json!({"pin1": "1234"}))).await;
                    created.status == 201 && put.status == 200
                } else {
                    let a = prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n))).await;
                    a.status == 200 && a.body["secrets"]["ki"] == format!("{n:032x}")
                };
                ops.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = admin.post("/v1/admin/keys/rotate", &json!({})).await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    assert_eq!(started.body["type"], "key_rotation");
    assert!(
        started.body["total_items"].as_i64().unwrap() >= N as i64,
        "{:?}",
        started.body
    );
    let id = started.body["id"].as_str().unwrap().to_owned();
    assert_eq!(started.headers["location"], format!("/v1/tasks/{id}"));
    let done = wait_for_task(&admin, &id).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["failed_items"], 0);
    assert_eq!(done["pending_items"], 0);
    assert!(ops.load(Ordering::Relaxed) > 20, "the load ran");
    // Its completion is an outbox event, like every task's.
    let events = simvault::store::lifecycle::events(&app.test_db.db, "acme")
        .await
        .unwrap();
    let completed: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "task.completed" && e.payload.contains(&id))
        .collect();
    assert_eq!(completed.len(), 1);
    assert!(completed[0].payload.contains("\"type\":\"key_rotation\""));
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads or writes failed during the rotation"
    );

    // Every SIM key is under version 2; version 1 is retired.
    let versions = dek_versions(&app.test_db.db).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0].0, 2);
    let keys = admin.get("/v1/admin/keys").await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.body["versions"][0]["version"], 1);
    assert_eq!(keys.body["versions"][0]["state"], "retired");
    assert_eq!(keys.body["versions"][0]["deks_in_use"], 0);
    assert_eq!(keys.body["versions"][1]["state"], "active");
    assert_eq!(keys.body["versions"][1]["deks_in_use"], versions[0].1);
    assert_eq!(keys.body["rotation_due"], false);
    // Only administrators rotate or see keys; tasks are readable by readers, in their tenant.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support
            .post("/v1/admin/keys/rotate", &json!({}))
            .await
            .status,
        403
    );
    assert_eq!(support.get("/v1/admin/keys").await.status, 403);
    assert_eq!(support.get(&format!("/v1/tasks/{id}")).await.status, 200);
    app.tenant("other").await;
    assert_eq!(
        app.jwt_client("other", &Role::ALL)
            .get(&format!("/v1/tasks/{id}"))
            .await
            .status,
        404
    );
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(100_017)))
        .await;
    assert_eq!(a.body["secrets"]["ki"], format!("{:032x}", 100_017));
}
both_stores!(rotation, rotation_under_load);

/// A worker that dies mid-rotation (its task aborted, its lease left behind) loses nothing:
/// once the lease runs out another worker resumes and completes the task.
async fn rotation_resumes_after_a_crash(store: Store) {
    use tokio::sync::watch;
    let lease = std::time::Duration::from_millis(800);
    let app = TestApp::spawn_with(store, |c| {
        c.tasks.lease = lease;
        c.tasks.poll = std::time::Duration::from_secs(3600);
    })
    .await;
    app.tenant("acme").await;
    seed_many(&app, 3000).await;
    let actor = simvault::domain::Principal::local(TenantId::parse("acme").unwrap(), "test");
    let task = app
        .services
        .start_rotation(&actor, Vec::new())
        .await
        .unwrap();
    let id = task.id.to_string();
    let services = app.services.clone();
    let (_keep, stop) = watch::channel(false);
    let crashed = tokio::spawn(async move { services.run_rotation("doomed", lease, &stop).await });
    let admin = app.jwt_client("acme", &[Role::Admin]);
    loop {
        let t = admin.get(&format!("/v1/tasks/{id}")).await;
        if t.body["completed_items"].as_i64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    crashed.abort();
    let _ = crashed.await;
    let mid = admin.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(mid["status"], "running");
    assert!(
        mid["pending_items"].as_i64().unwrap() > 0,
        "crashed before the end: {mid}"
    );
    let versions = dek_versions(&app.test_db.db).await;
    assert_eq!(
        versions.len(),
        2,
        "some keys re-wrapped, some not: {versions:?}"
    );

    // Another worker: nothing to claim while the dead worker's lease lasts, then resumes.
    let (_keep, stop) = watch::channel(false);
    assert_eq!(
        app.services
            .run_rotation("rescuer", lease, &stop)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(lease + std::time::Duration::from_millis(200)).await;
    assert_eq!(
        app.services
            .run_rotation("rescuer", lease, &stop)
            .await
            .unwrap(),
        Some(id.clone())
    );
    let done = admin.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(dek_versions(&app.test_db.db).await, vec![(2, 3000)]);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in [100_000u64, 100_001, 101_500, 102_999] {
        let a = prov
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n)))
            .await;
        assert_eq!(a.body["secrets"]["ki"], format!("{n:032x}"), "{n}");
    }
}
both_stores!(rotation_crash, rotation_resumes_after_a_crash);

async fn reopen(app: &TestApp) -> simvault::store::Db {
    app.reopen_db().await
}

/// Root-key rotation re-wraps tenant keys under a new root key; the old key no longer opens
/// the database; a rotation interrupted after the database switched is finished on start.
async fn root_rotation(store: Store) {
    use simvault::clock::SystemClock;
    use simvault::startup;
    use simvault::vault::root::{LocalRootKey, encode_plain, next_path};
    use simvault::vault::{Keyring, RootKeySource};
    let (mut app, prov, sim) = setup(store).await;
    let url = path(&sim, &format!("/secrets?fields={ALL}"));
    let before = prov.get(&url).await.body;
    app.tenant("second").await;
    let second = app.mtls_api("second", &[Role::Provisioner], "p2").await;
    second
        .create_sim(json!({"iccid": iccid(50), "secrets": {"opc": OPC}}))
        .await;
    app.app.stop().await;

    let db = reopen(&app).await;
    let RootKeySource::File(key_path) = app.config.root_key.clone() else {
        panic!("file provider")
    };
    let old_key = std::fs::read(&key_path).unwrap();
    let current = startup::open_vault(&app.config, &db, &SystemClock)
        .await
        .unwrap();
    let new_key = simvault::vault::new_key().unwrap();
    simvault::pki::write_new(
        &next_path(&key_path),
        encode_plain(&new_key).as_bytes(),
        true,
    )
    .unwrap();
    let next = Keyring::new(std::sync::Arc::new(LocalRootKey::new(new_key)));
    let n = simvault::service::rotation::rotate_root(&db, &current, &next, "test", 1)
        .await
        .unwrap();
    assert_eq!(n, 2, "one key version per tenant");
    // Interrupted here: the database uses the new key, the file is still the old one.
    assert_eq!(std::fs::read(&key_path).unwrap(), old_key);
    let finished = startup::open_vault(&app.config, &db, &SystemClock)
        .await
        .unwrap();
    drop(finished);
    assert_ne!(
        std::fs::read(&key_path).unwrap(),
        old_key,
        "the new key file was moved into place"
    );
    assert!(!next_path(&key_path).exists());

    // The old key is refused now.
    let old_dir = tempfile::tempdir().unwrap();
    let old_path = old_dir.path().join("root.key");
    simvault::pki::write_new(&old_path, &old_key, true).unwrap();
    let mut with_old = app.config.clone();
    with_old.root_key = RootKeySource::File(old_path);
    assert!(
        startup::open_vault(&with_old, &db, &SystemClock)
            .await
            .is_err()
    );

    // A server with the new key reads every secret of every tenant.
    let again =
        startup::Application::build_with(&app.config, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    let base = format!("https://localhost:{}", again.local_addr().port());
    let after = Api {
        app_base: base.clone(),
        client: prov.client.clone(),
        token: None,
    }
    .get(&url)
    .await;
    assert_eq!(after.body, before);
    let other = Api {
        app_base: base,
        client: second.client.clone(),
        token: None,
    };
    assert_eq!(
        other
            .get(&format!("/v1/sims/{}/secrets?fields=opc", iccid(50)))
            .await
            .body["secrets"]["opc"],
        OPC
    );
}
both_stores!(root_key_rotation, root_rotation);
