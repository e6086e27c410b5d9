//! The audit log: every security-relevant request, allowed or denied, leaves a chained record
//! naming fields, never values; tampering is found by the API and the CLI; no record, no
//! secret and no change; auditors read, filter and export their own tenant's log only.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

pub(crate) const PUK: &str = "91827364";
pub(crate) const KI: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

pub(crate) async fn setup(store: Store) -> (TestApp, Api, Api) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI, "puk1": PUK}}))
        .await;
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    (app, prov, auditor)
}

/// `(seq, action, outcome, record)` of a chain, in order.
pub(crate) async fn chain(app: &TestApp, tenant: &str) -> Vec<(i64, String, String, Value)> {
    let rows: Vec<(i64, String, String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT seq, action, outcome, record FROM audit_events WHERE tenant_id = $1 ORDER BY seq")
        .bind(tenant)
        .fetch_all(p)
        .await)
    .unwrap();
    rows.into_iter()
        .map(|(seq, a, o, r)| (seq, a, o, serde_json::from_str(&r).unwrap()))
        .collect()
}

pub(crate) async fn records(app: &TestApp) -> Vec<(i64, String, String, Value)> {
    chain(app, "acme").await
}

pub(crate) fn kinds(rows: &[(i64, String, String, Value)]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|(_, a, o, _)| (a.as_str(), o.as_str()))
        .collect()
}

pub(crate) async fn exec(app: &TestApp, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    raw_sql!(&app.test_db.db, p => sqlx::query(sql).execute(p).await.map(|_| ())).unwrap();
}

async fn secret_reads_are_recorded_and_chained(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let path = |q: &str| format!("/v1/sims/{}/secrets?{q}", iccid(1));
    assert_eq!(prov.get(&path("fields=ki,puk1")).await.status, 200);
    assert_eq!(support.get(&path("fields=puk1")).await.status, 403);
    assert_eq!(
        support
            .get(&path("fields=puk1&reason=TICKET-9"))
            .await
            .status,
        200
    );

    let rows = records(&app).await;
    assert_eq!(
        kinds(&rows),
        [
            ("sim.create", "allowed"),
            ("secrets.read", "allowed"),
            ("secrets.read", "denied"),
            ("secrets.read", "allowed")
        ]
    );
    let first = &rows[1].3;
    assert_eq!(first["fields"], json!(["ki", "puk1"]));
    assert_eq!(first["auth_method"], "mtls");
    assert_eq!(first["iccid"], iccid(1));
    assert_eq!(
        first["credential"].as_str().unwrap().len(),
        64,
        "certificate fingerprint"
    );
    assert!(first["request_id"].is_string() && first["client_addr"].is_string());
    assert_eq!(
        first["policy_ids"],
        json!([
            "secrets-read-card-keys-provisioner-mtls",
            "secrets-read-puk-provisioner-mtls"
        ])
    );
    let denied = &rows[2].3;
    assert_eq!(denied["fields"], json!(["puk1"]));
    assert_eq!(denied["iccid"], iccid(1));
    assert_eq!(denied["subject"], "tester");
    let third = &rows[3].3;
    assert_eq!(third["reason"], "TICKET-9");
    assert_eq!(
        third["policy_ids"],
        json!(["secrets-read-puk-support-with-reason"])
    );

    let v = auditor.get("/v1/audit/verify").await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["ok"], true);
    assert_eq!(v.body["checked"], 4);
    assert_eq!(v.body["head_hash"].as_str().unwrap().len(), 64);
}
both_stores!(secret_reads, secret_reads_are_recorded_and_chained);

/// One record per kind of security-relevant request, with its outcome and deciding policies.
async fn every_action_is_recorded_with_its_outcome(store: Store) {
    let (app, prov, _) = setup(store).await;
    let sim = format!("/v1/sims/{}", iccid(1));
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let support = app.jwt_client("acme", &[Role::Support]);
    let admin = app.jwt_client("acme", &[Role::Admin]);

    assert_eq!(
        operator.patch(&sim, &json!({"tags": ["x"]})).await.status,
        200
    );
    let put = Api::send(
        prov.request(reqwest::Method::PUT, &format!("{sim}/secrets"))
            .json(&json!({"pin1": "4321"})),
    )
    .await;
    assert_eq!(put.status, 200);
    // Denials: each with the resource it was about.
    assert_eq!(operator.delete(&sim).await.status, 403);
    assert_eq!(
        support
            .post("/v1/sims", &json!({"iccid": iccid(2)}))
            .await
            .status,
        403
    );
    assert_eq!(support.get("/v1/audit/events").await.status, 403);
    assert_eq!(
        operator
            .get(&format!("{sim}/secrets?fields=ki"))
            .await
            .status,
        403
    );
    // A key rotation: started by the admin, completed by the worker.
    let task = admin.post("/v1/admin/keys/rotate", &json!({})).await;
    assert_eq!(task.status, 202, "{:?}", task.body);
    let task_path = format!("/v1/tasks/{}", task.body["id"].as_str().unwrap());
    for _ in 0..100 {
        if admin.get(&task_path).await.body["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(admin.delete(&sim).await.status, 200);

    let rows = records(&app).await;
    let mut seen = kinds(&rows);
    // The worker's completion record may land before or after the deletion.
    seen.sort_unstable();
    let mut expected = vec![
        ("sim.create", "allowed"),
        ("sim.update", "allowed"),
        ("secrets.write", "allowed"),
        ("sim.delete", "denied"),
        ("sim.create", "denied"),
        ("audit.read", "denied"),
        ("secrets.read", "denied"),
        ("keys.rotate", "allowed"),
        ("keys.rotate", "completed"),
        ("sim.delete", "allowed"),
    ];
    expected.sort_unstable();
    assert_eq!(seen, expected);
    let find = |action: &str, outcome: &str| {
        rows.iter()
            .find(|(_, a, o, _)| a == action && o == outcome)
            .map(|(_, _, _, r)| r.clone())
            .unwrap()
    };
    let created = find("sim.create", "allowed");
    assert_eq!(created["fields"], json!(["ki", "puk1"]));
    assert_eq!(
        created["policy_ids"],
        json!(["secrets-write-provisioner", "sims-create-provisioner"])
    );
    let refused_delete = find("sim.delete", "denied");
    assert_eq!(refused_delete["iccid"], iccid(1));
    assert_eq!(refused_delete["roles"], json!(["operator"]));
    assert_eq!(
        refused_delete["policy_ids"],
        json!([]),
        "nothing allowed it"
    );
    assert_eq!(find("sim.create", "denied")["iccid"], Value::Null);
    assert_eq!(find("secrets.read", "denied")["fields"], json!(["ki"]));
    let rotated = find("keys.rotate", "completed");
    assert_eq!(rotated["subject"], "system:key-rotation");
    assert_eq!(rotated["auth_method"], "local");
    assert_eq!(
        find("keys.rotate", "allowed")["policy_ids"],
        json!(["keys-admin"])
    );
    assert!(
        !rows
            .iter()
            .any(|(_, _, _, r)| scrub(r.clone()).to_string().contains("4321")),
        "no PIN value"
    );
}
both_stores!(every_action, every_action_is_recorded_with_its_outcome);

/// Refused credentials go to the platform chain (they prove no tenant); no credential at all
/// is not an attempt. The token itself is never recorded.
async fn refused_authentication_goes_to_the_platform_chain(store: Store) {
    let (app, _, _) = setup(store).await;
    let bad_token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl";
    let forged = Api {
        token: Some(bad_token.into()),
        ..app.jwt_client("acme", &[Role::Auditor])
    };
    assert_eq!(forged.get("/v1/sims").await.status, 401);
    let (cert, key) = app.issue_cert("acme", "unregistered");
    let stranger = Api {
        app_base: app.base.clone(),
        client: app.with_identity(&cert, &key),
        token: None,
    };
    assert_eq!(stranger.get("/v1/sims").await.status, 401);
    let anonymous = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    assert_eq!(anonymous.get("/v1/sims").await.status, 401);

    let rows = chain(&app, "_platform").await;
    assert_eq!(
        kinds(&rows),
        [("authenticate", "denied"), ("authenticate", "denied")]
    );
    assert_eq!(rows[0].3["auth_method"], "jwt");
    assert_eq!(rows[0].3["subject"], "anonymous");
    assert!(rows[0].3["client_addr"].is_string());
    assert!(
        !rows[0].3.to_string().contains("mallory") && !rows[0].3.to_string().contains(bad_token)
    );
    assert_eq!(rows[1].3["auth_method"], "mtls");
    assert_eq!(rows[1].3["subject"], "urn:simvault:acme:unregistered");
    assert_eq!(rows[1].3["credential"].as_str().unwrap().len(), 64);
    // Not in the tenant's chain, which an acme auditor reads.
    assert!(
        !records(&app)
            .await
            .iter()
            .any(|(_, a, _, _)| a == "authenticate")
    );
    let out = app.cli(&["audit", "verify", "--platform"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("_platform: ok, 2 records"));
}
both_stores!(
    platform_chain,
    refused_authentication_goes_to_the_platform_chain
);

/// Fail closed: when records cannot be written, no secret is returned and no change is made.
async fn no_record_no_secret_no_change(store: Store) {
    let (app, prov, _) = setup(store).await;
    exec(&app, "DROP TABLE audit_events").await;
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki,puk1", iccid(1)))
        .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    let text = a.body.to_string();
    assert!(!text.contains(KI) && !text.contains(PUK));
    // A change whose record cannot be written is not made.
    let put = Api::send(
        prov.request(
            reqwest::Method::PUT,
            &format!("/v1/sims/{}/secrets", iccid(1)),
        )
        .json(&json!({"puk1": "12121212"})),
    )
    .await;
    assert_eq!(put.status, 503, "{:?}", put.body);
    assert_eq!(
        prov.post("/v1/sims", &json!({"iccid": iccid(2)}))
            .await
            .status,
        503
    );
    let admin = app.jwt_client("acme", &[Role::Admin]);
    assert_eq!(
        admin.delete(&format!("/v1/sims/{}", iccid(1))).await.status,
        503
    );
    // A denial that cannot be recorded is not answered as a plain 403 either.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support
            .get(&format!("/v1/sims/{}/secrets?fields=puk1", iccid(1)))
            .await
            .status,
        503
    );
    let sims = prov.get("/v1/sims").await;
    assert_eq!(sims.body["total"], 1, "no SIM was created, none deleted");
    let stored: Vec<(String,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT field FROM sim_secrets ORDER BY field").fetch_all(p).await)
    .unwrap();
    assert_eq!(stored.len(), 2, "the secrets are untouched");
}
both_stores!(fail_closed, no_record_no_secret_no_change);

/// 64 concurrent secret reads, on two servers sharing the store: one linear chain.
async fn concurrent_reads_keep_the_chain_linear(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".into();
    let other = simvault::startup::Application::build_with(
        &config,
        app.test_db.db.clone(),
        std::sync::Arc::new(simvault::clock::SystemClock),
    )
    .await
    .unwrap();
    let prov2 = Api {
        app_base: format!("https://localhost:{}", other.local_addr().port()),
        ..prov.clone()
    };
    let mut reads = Vec::new();
    for n in 0..64 {
        let api = if n % 2 == 0 {
            prov.clone()
        } else {
            prov2.clone()
        };
        reads.push(tokio::spawn(async move {
            api.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
                .await
                .status
        }));
    }
    for r in reads {
        assert_eq!(r.await.unwrap(), 200);
    }
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["checked"], 65);
}
both_stores!(linear_chain, concurrent_reads_keep_the_chain_linear);

/// Secret writes and SIM deletion are recorded in the same transaction as the change.
async fn writes_and_deletions_are_recorded(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    let path = format!("/v1/sims/{}/secrets", iccid(1));
    let a = Api::send(
        prov.request(reqwest::Method::PUT, &path)
            .json(&json!({"pin1": "4321", "ki": null})),
    )
    .await;
    assert_eq!(a.status, 200);
    let admin = app.jwt_client("acme", &[Role::Admin]);
    assert_eq!(
        admin.delete(&format!("/v1/sims/{}", iccid(1))).await.status,
        200
    );
    let rows = records(&app).await;
    assert_eq!(
        kinds(&rows),
        [
            ("sim.create", "allowed"),
            ("secrets.write", "allowed"),
            ("sim.delete", "allowed")
        ]
    );
    assert_eq!(rows[1].3["fields"], json!(["pin1", "ki"]));
    assert_eq!(
        rows[1].3["policy_ids"],
        json!(["secrets-write-provisioner"])
    );
    assert_eq!(
        rows[2].3["fields"],
        json!(["pin1", "puk1"]),
        "the shredded fields"
    );
    assert_eq!(auditor.get("/v1/audit/verify").await.body["ok"], true);
}
both_stores!(writes, writes_and_deletions_are_recorded);

/// Fields whose values are random or clock-derived (ids, hashes, times, ports): any digit run
/// may turn up in them by chance, so the canary checks look at everything else.
pub(crate) const RANDOM: [&str; 7] = [
    "id",
    "request_id",
    "occurred_at",
    "sim_id",
    "iccid",
    "hash",
    "prev_hash",
];

pub(crate) fn scrub(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        for k in RANDOM.iter().chain(&["credential", "client_addr"]) {
            o.remove(*k);
        }
        if let Some(actor) = o.get_mut("actor").and_then(Value::as_object_mut) {
            actor.remove("credential_id");
            actor.remove("client_addr");
        }
    }
    v
}
