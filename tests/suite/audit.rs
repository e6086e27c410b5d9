//! The audit log: every security-relevant request, allowed or denied, leaves a chained record
//! naming fields, never values; tampering is found by the API and the CLI; no record, no
//! secret and no change; auditors read, filter and export their own tenant's log only.

use serde_json::{Value, json};
use sha2::Digest as _;
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const PUK: &str = "91827364";
const KI: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

async fn setup(store: Store) -> (TestApp, Api, Api) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI, "puk1": PUK}}))
        .await;
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    (app, prov, auditor)
}

/// `(seq, action, outcome, record)` of a chain, in order.
async fn chain(app: &TestApp, tenant: &str) -> Vec<(i64, String, String, Value)> {
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

async fn records(app: &TestApp) -> Vec<(i64, String, String, Value)> {
    chain(app, "acme").await
}

fn kinds(rows: &[(i64, String, String, Value)]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|(_, a, o, _)| (a.as_str(), o.as_str()))
        .collect()
}

async fn exec(app: &TestApp, sql: &str) {
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

/// Canary values in every secret field, through every kind of record, never show up in the
/// table, the events API or either export — nor does a hash of a PIN.
async fn no_secret_value_reaches_any_record_or_export(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let canaries = json!({
        "ki": "c0ffee00c0ffee00c0ffee00c0ffee01",
        "opc": "c0ffee00c0ffee00c0ffee00c0ffee02",
        "pin1": "73519",
        "pin2": "864213",
        "puk1": "55667788",
        "puk2": "99001122",
        "activation_code": "LPA:1$smdp.example.com$CANARY-MATCHING-ID-77"
    });
    prov.create_sim(json!({"iccid": iccid(1), "sim_type": "esim", "secrets": canaries}))
        .await;
    let sim = format!("/v1/sims/{}", iccid(1));
    let all = "ki,opc,pin1,pin2,puk1,puk2,activation_code";
    assert_eq!(
        prov.get(&format!("{sim}/secrets?fields={all}"))
            .await
            .status,
        200
    );
    assert_eq!(
        support
            .get(&format!("{sim}/secrets?fields=puk1,puk2&reason=T-1"))
            .await
            .status,
        200
    );
    assert_eq!(
        support
            .get(&format!("{sim}/secrets?fields={all}"))
            .await
            .status,
        403
    );
    let rewrite = Api::send(
        prov.request(reqwest::Method::PUT, &format!("{sim}/secrets"))
            .json(&json!({"pin1": "24680", "ki": "c0ffee00c0ffee00c0ffee00c0ffee03"})),
    )
    .await;
    assert_eq!(rewrite.status, 200);
    assert_eq!(admin.delete(&sim).await.status, 200);

    let mut values: Vec<String> = canaries
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    values.extend(["24680".into(), "c0ffee00c0ffee00c0ffee00c0ffee03".into()]);
    let mut forbidden = Vec::new();
    for v in &values {
        forbidden.push(v.clone());
        forbidden.push(v.to_uppercase());
        forbidden.push(hex::encode(sha2::Sha256::digest(v.as_bytes())));
    }
    forbidden.push("CANARY-MATCHING-ID-77".into());
    let check = |what: &str, text: &str| {
        for f in &forbidden {
            assert!(!text.contains(f.as_str()), "{what} holds {f}");
        }
    };
    let table: Vec<(String, String, String, String)> =
        raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT action, outcome, subject, record FROM audit_events")
        .fetch_all(p)
        .await)
        .unwrap();
    assert!(table.len() >= 5);
    for (action, outcome, subject, record) in &table {
        let record: Value = serde_json::from_str(record).unwrap();
        check(
            "the audit table",
            &format!("{action} {outcome} {subject} {}", scrub(record)),
        );
    }
    let events = auditor.get("/v1/audit/events?limit=500").await;
    assert_eq!(events.status, 200);
    let items = events.body["items"].as_array().unwrap();
    assert_eq!(items.len(), table.len());
    for item in items {
        check("the events API", &scrub(item.clone()).to_string());
    }
    let ndjson = export(&auditor, "format=ndjson").await;
    assert!(ndjson.contains("secrets.read"));
    for line in ndjson.lines() {
        check(
            "ndjson",
            &scrub(serde_json::from_str(line).unwrap()).to_string(),
        );
    }
    let csv_text = export(&auditor, "format=csv").await;
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header = reader.headers().unwrap().clone();
    for row in reader.records() {
        let row = row.unwrap();
        for (name, value) in header.iter().zip(row.iter()) {
            if !RANDOM.contains(&name) && name != "credential_id" && name != "client_addr" {
                check("csv", value);
            }
        }
    }
}

/// Fields whose values are random or clock-derived (ids, hashes, times, ports): any digit run
/// may turn up in them by chance, so the canary checks look at everything else.
const RANDOM: [&str; 7] = [
    "id",
    "request_id",
    "occurred_at",
    "sim_id",
    "iccid",
    "hash",
    "prev_hash",
];

fn scrub(mut v: Value) -> Value {
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
both_stores!(canaries, no_secret_value_reaches_any_record_or_export);

async fn export(api: &Api, query: &str) -> String {
    crate::helpers::audit_export(api, query).await
}

/// Six records, a signed checkpoint over them, and a verdict from both verify paths.
async fn tampered(store: Store, tamper: &str) -> (Value, String) {
    let (mut app, prov, auditor) = setup(store).await;
    for _ in 0..5 {
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
    }
    let signer = app.services.audit_signer.clone().unwrap();
    simvault::service::audit::checkpoint_all(&app.test_db.db, &signer, 1)
        .await
        .unwrap();
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(
        (v["ok"].clone(), v["checked"].clone()),
        (json!(true), json!(6)),
        "{v}"
    );
    assert_eq!(v["checkpoints"], 1);
    let out = app.cli(&["audit", "verify", "--tenant", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for statement in tamper.split(';') {
        exec(&app, statement).await;
    }
    let v = auditor.get("/v1/audit/verify").await.body;
    let out = app.cli(&["audit", "verify", "--tenant", "acme"]);
    assert!(!out.status.success(), "the CLI must fail on a broken chain");
    // Each case is a server of its own: close its connections before the next one.
    app.app.stop().await;
    (v, String::from_utf8_lossy(&out.stdout).into_owned())
}

async fn tampering_is_detected_by_both_verify_paths(store: Store) {
    let cases = [
        (
            "edit one field",
            "UPDATE audit_events SET record = replace(record, 'allowed', 'denied') WHERE tenant_id = 'acme' AND seq = 3",
            3,
        ),
        (
            "delete a row",
            "DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq = 4",
            4,
        ),
        (
            "swap two rows",
            "UPDATE audit_events SET seq = -2 WHERE tenant_id = 'acme' AND seq = 2;\
             UPDATE audit_events SET seq = 2 WHERE tenant_id = 'acme' AND seq = 3;\
             UPDATE audit_events SET seq = 3 WHERE tenant_id = 'acme' AND seq = -2",
            2,
        ),
        (
            "truncate the tail",
            "DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq > 4",
            5,
        ),
        // The search columns are outside the hash: changing one to hide a record from
        // filtered queries is a break at that record.
        (
            "change the action column",
            "UPDATE audit_events SET action = 'sim.read' WHERE tenant_id = 'acme' AND seq = 3",
            3,
        ),
        (
            "change the outcome column",
            "UPDATE audit_events SET outcome = 'denied' WHERE tenant_id = 'acme' AND seq = 4",
            4,
        ),
        (
            "change the subject column",
            "UPDATE audit_events SET subject = 'someone-else' WHERE tenant_id = 'acme' AND seq = 2",
            2,
        ),
        (
            "clear the SIM columns",
            "UPDATE audit_events SET sim_id = NULL, iccid = NULL WHERE tenant_id = 'acme' AND seq = 5",
            5,
        ),
        (
            "move the time column",
            "UPDATE audit_events SET occurred_at = occurred_at - 86400000000 WHERE tenant_id = 'acme' AND seq = 6",
            6,
        ),
        (
            "truncate the tail and move the recorded head back",
            "DELETE FROM audit_events WHERE tenant_id = 'acme' AND seq > 4;\
             UPDATE audit_heads SET seq = 4, hash = (SELECT hash FROM audit_events WHERE tenant_id = 'acme' AND seq = 4) WHERE tenant_id = 'acme'",
            5,
        ),
    ];
    for (what, sql, bad) in cases {
        let (v, cli) = tampered(store, sql).await;
        assert_eq!(v["ok"], false, "{what}: {v}");
        assert_eq!(v["first_bad_seq"], bad, "{what}: {v}");
        assert!(
            cli.contains(&format!("acme: BROKEN at sequence number {bad}")),
            "{what}: {cli}"
        );
    }
}
both_stores!(tampering, tampering_is_detected_by_both_verify_paths);

/// A record whose search columns were changed is not shown as if it were whole: the events
/// query refuses (opaque), instead of listing it under a filter it does not match.
async fn altered_search_columns_are_not_served(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
        .await;
    let before = auditor.get("/v1/audit/events?action=secrets.read").await;
    assert_eq!(before.status, 200, "{}", before.body);
    assert_eq!(before.body["items"].as_array().unwrap().len(), 1);
    exec(
        &app,
        "UPDATE audit_events SET action = 'sim.read', outcome = 'denied' WHERE tenant_id = 'acme' AND action = 'secrets.read'",
    )
    .await;
    let hidden = auditor.get("/v1/audit/events?action=secrets.read").await;
    assert_eq!(hidden.body["items"].as_array().map(Vec::len), Some(0));
    // Under the filter it was moved into, it is refused rather than shown.
    let moved = auditor.get("/v1/audit/events?action=sim.read").await;
    assert_eq!(moved.status, 500, "{}", moved.body);
    assert!(
        !moved.body.to_string().contains("secrets.read"),
        "{}",
        moved.body
    );
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(v["ok"], false, "{v}");
}
both_stores!(altered_columns, altered_search_columns_are_not_served);

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

/// Filters, cursor paging, bad parameters, and tenant isolation of the events API.
async fn events_are_filtered_paged_and_isolated(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    for _ in 0..3 {
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
    }
    support
        .get(&format!("/v1/sims/{}/secrets?fields=puk1", iccid(2)))
        .await;
    // 2 creations, 3 reads, 1 denial.
    let all = auditor.get("/v1/audit/events").await;
    assert_eq!(all.status, 200, "{:?}", all.body);
    let items = all.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert!(all.body["next_cursor"].is_null());
    let seqs: Vec<i64> = items.iter().map(|i| i["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, [6, 5, 4, 3, 2, 1], "newest first");
    let denial = &items[0];
    assert_eq!(denial["outcome"], "denied");
    assert_eq!(denial["actor"]["subject"], "tester");
    assert_eq!(denial["actor"]["roles"], json!(["support"]));
    assert_eq!(denial["actor"]["auth_method"], "jwt");
    assert_eq!(denial["iccid"], iccid(2));
    assert!(denial["occurred_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(denial["hash"].as_str().unwrap().len(), 64);

    let count = |q: &'static str| {
        let auditor = auditor.clone();
        async move {
            let a = auditor.get(&format!("/v1/audit/events?{q}")).await;
            assert_eq!(a.status, 200, "{q}: {:?}", a.body);
            a.body["items"].as_array().unwrap().len()
        }
    };
    assert_eq!(count("outcome=denied").await, 1);
    assert_eq!(count("action=secrets.read").await, 4);
    assert_eq!(count("action=secrets.read&outcome=allowed").await, 3);
    assert_eq!(count("actor=tester").await, 1);
    assert_eq!(count("actor=urn:simvault:acme:prov").await, 5);
    assert_eq!(
        count("since=2000-01-01T00:00:00Z&until=2999-01-01T00:00:00Z").await,
        6
    );
    assert_eq!(count("until=2000-01-01T00:00:00Z").await, 0);
    let by_iccid = auditor
        .get(&format!("/v1/audit/events?sim={}", iccid(2)))
        .await;
    assert_eq!(by_iccid.body["items"].as_array().unwrap().len(), 2);
    let sim_id = by_iccid.body["items"][0]["sim_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_id = auditor.get(&format!("/v1/audit/events?sim={sim_id}")).await;
    assert_eq!(by_id.body["items"].as_array().unwrap().len(), 2);

    // Cursor paging walks every record once, in order.
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let q = match &cursor {
            Some(c) => format!("/v1/audit/events?limit=4&cursor={c}"),
            None => "/v1/audit/events?limit=4".into(),
        };
        let page = auditor.get(&q).await.body;
        walked.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["seq"].as_i64().unwrap()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(walked, [6, 5, 4, 3, 2, 1]);

    let bad = auditor
        .get("/v1/audit/events?since=yesterday&limit=0&cursor=zzz&colour=red")
        .await;
    assert_eq!(bad.status, 400);
    let mut params: Vec<&str> = bad.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    params.sort_unstable();
    assert_eq!(params, ["colour", "cursor", "limit", "since"]);

    // Auditors only, and only their own tenant's records.
    assert_eq!(prov.get("/v1/audit/events").await.status, 403);
    assert_eq!(prov.get("/v1/audit/verify").await.status, 403);
    assert_eq!(prov.get("/v1/audit/export?format=csv").await.status, 403);
    app.tenant("other").await;
    let other = app.jwt_client("other", &[Role::Auditor]);
    let theirs = other.get("/v1/audit/events").await.body;
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(other.get("/v1/audit/verify").await.body["checked"], 0);
    let exported = export(&other, "format=ndjson").await;
    assert!(exported.is_empty(), "{exported}");
    let filtered = other
        .get(&format!("/v1/audit/events?sim={}", iccid(1)))
        .await
        .body;
    assert_eq!(filtered["items"], json!([]));
}
both_stores!(events, events_are_filtered_paged_and_isolated);

/// Exports stream every matching record, oldest first, as NDJSON or CSV; the CLI exports too.
async fn exports_as_ndjson_and_csv(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    for _ in 0..3 {
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
    }
    let ndjson = export(&auditor, "format=ndjson").await;
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["action"], "sim.create");
    assert_eq!(lines[3]["prev_hash"], lines[2]["hash"]);
    let csv = export(&auditor, "format=csv&action=secrets.read").await;
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(rows[0].starts_with("seq,id,occurred_at,subject,roles,auth_method"));
    assert!(rows[1].starts_with("2,"));
    let empty = export(&auditor, "format=csv&outcome=denied").await;
    assert_eq!(empty.lines().count(), 1, "just the header");
    let bad = auditor.get("/v1/audit/export?format=xml").await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"][0]["parameter"], "format");

    let out = app.cli(&["audit", "export", "--tenant", "acme", "--format", "ndjson"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), ndjson);
    let out = app.cli(&["audit", "export", "--format", "csv"]);
    assert!(!out.status.success(), "a chain must be named");
}
both_stores!(exports, exports_as_ndjson_and_csv);

/// The checkpoint worker signs chain heads on its own, and signs again only when they move.
async fn checkpoints_are_signed_in_the_background(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        c.audit.checkpoint_interval = std::time::Duration::from_millis(100);
    })
    .await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let mut v = Value::Null;
    for _ in 0..100 {
        v = auditor.get("/v1/audit/verify").await.body;
        if v["checkpoints"] == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(v["checkpoints"], 1, "{v}");
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let stored: Vec<(i64,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT seq FROM audit_checkpoints WHERE tenant_id = 'acme'").fetch_all(p).await)
    .unwrap();
    assert_eq!(stored.len(), 1, "an unmoved head is not signed again");
    // A forged checkpoint (not signed by the key) is tampering.
    let zeros = "0".repeat(128);
    exec(
        &app,
        &format!("UPDATE audit_checkpoints SET signature = '{zeros}' WHERE tenant_id = 'acme'"),
    )
    .await;
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(
        (v["ok"].clone(), v["first_bad_seq"].clone()),
        (json!(false), json!(1)),
        "{v}"
    );
}
both_stores!(checkpoints, checkpoints_are_signed_in_the_background);
