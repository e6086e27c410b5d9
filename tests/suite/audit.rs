//! The audit log (first slice: secret reads): every reveal, allowed or denied, leaves a chained
//! record naming fields, never values; tampering is found; no record, no secret.

use serde_json::json;
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

async fn records(app: &TestApp) -> Vec<(i64, String, String, String)> {
    raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT seq, action, outcome, record FROM audit_events WHERE tenant_id = 'acme' ORDER BY seq").fetch_all(p).await).unwrap()
}

async fn secret_reads_are_recorded_and_chained(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki,puk1", iccid(1)))
            .await
            .status,
        200
    );
    assert_eq!(
        support
            .get(&format!("/v1/sims/{}/secrets?fields=puk1", iccid(1)))
            .await
            .status,
        403
    );
    let a = support
        .get(&format!(
            "/v1/sims/{}/secrets?fields=puk1&reason=TICKET-9",
            iccid(1)
        ))
        .await;
    assert_eq!(a.status, 200);

    let rows = records(&app).await;
    let outcomes: Vec<(&str, &str)> = rows
        .iter()
        .map(|(_, a, o, _)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("secrets.read", "allowed"),
            ("secrets.read", "denied"),
            ("secrets.read", "allowed")
        ]
    );
    let first: serde_json::Value = serde_json::from_str(&rows[0].3).unwrap();
    assert_eq!(first["fields"], json!(["ki", "puk1"]));
    assert_eq!(first["auth_method"], "mtls");
    assert_eq!(first["iccid"], iccid(1));
    assert!(
        first["credential"].as_str().unwrap().len() == 64,
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
    let third: serde_json::Value = serde_json::from_str(&rows[2].3).unwrap();
    assert_eq!(third["reason"], "TICKET-9");
    assert_eq!(
        third["policy_ids"],
        json!(["secrets-read-puk-support-with-reason"])
    );
    // Never a value, nor its hex.
    for (_, _, _, record) in &rows {
        assert!(!record.contains(PUK) && !record.contains(KI), "{record}");
    }

    let v = auditor.get("/v1/audit/verify").await;
    assert_eq!(v.status, 200, "{:?}", v.body);
    assert_eq!(v.body["ok"], true);
    assert_eq!(v.body["checked"], 3);
    assert!(v.body["head_hash"].as_str().unwrap().len() == 64);
    // Only auditors, and only their tenant's chain.
    assert_eq!(prov.get("/v1/audit/verify").await.status, 403);
    app.tenant("other").await;
    let other = app
        .jwt_client("other", &[Role::Auditor])
        .get("/v1/audit/verify")
        .await;
    assert_eq!(other.body["checked"], 0);
}
both_stores!(secret_reads, secret_reads_are_recorded_and_chained);

async fn tampering_is_detected(store: Store) {
    let (app, prov, auditor) = setup(store).await;
    for _ in 0..4 {
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
    }
    assert_eq!(auditor.get("/v1/audit/verify").await.body["ok"], true);
    let db = &app.test_db.db;
    // Edit one record.
    raw_sql!(db, p => sqlx::query("UPDATE audit_events SET record = replace(record, 'allowed', 'denied') WHERE seq = 2").execute(p).await.map(|_| ())).unwrap();
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(
        (v["ok"].clone(), v["first_bad_seq"].clone()),
        (json!(false), json!(2))
    );
    raw_sql!(db, p => sqlx::query("UPDATE audit_events SET record = replace(record, 'denied', 'allowed') WHERE seq = 2").execute(p).await.map(|_| ())).unwrap();
    assert_eq!(auditor.get("/v1/audit/verify").await.body["ok"], true);
    // Cut off the tail.
    raw_sql!(db, p => sqlx::query("DELETE FROM audit_events WHERE seq = 4").execute(p).await.map(|_| ())).unwrap();
    let v = auditor.get("/v1/audit/verify").await.body;
    assert_eq!(
        (v["ok"].clone(), v["first_bad_seq"].clone()),
        (json!(false), json!(4))
    );
}
both_stores!(tampering, tampering_is_detected);

/// Fail closed: when the record cannot be written, the secret is not returned.
async fn no_record_no_secret(store: Store) {
    let (app, prov, _) = setup(store).await;
    raw_sql!(&app.test_db.db, p => sqlx::query("DROP TABLE audit_events").execute(p).await.map(|_| ())).unwrap();
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki,puk1", iccid(1)))
        .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    let text = a.body.to_string();
    assert!(!text.contains(KI) && !text.contains(PUK));
}
both_stores!(fail_closed, no_record_no_secret);

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
    assert_eq!(v["checked"], 64);
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
    let kinds: Vec<(&str, &str)> = rows
        .iter()
        .map(|(_, a, o, _)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [("secrets.write", "allowed"), ("sim.delete", "allowed")]
    );
    let write: serde_json::Value = serde_json::from_str(&rows[0].3).unwrap();
    assert_eq!(write["fields"], json!(["pin1", "ki"]));
    assert_eq!(write["policy_ids"], json!(["secrets-write-provisioner"]));
    let delete: serde_json::Value = serde_json::from_str(&rows[1].3).unwrap();
    assert_eq!(
        delete["fields"],
        json!(["pin1", "puk1"]),
        "the shredded fields"
    );
    assert!(!rows.iter().any(|(_, _, _, r)| r.contains("4321")));
    assert_eq!(auditor.get("/v1/audit/verify").await.body["ok"], true);
}
both_stores!(writes, writes_and_deletions_are_recorded);
