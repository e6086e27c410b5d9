//! What auditors read of the audit log: no secret value in any record or export; events
//! filtered, paged and isolated per tenant; exports as NDJSON and CSV.

use serde_json::{Value, json};
use sha2::Digest as _;
use simvault::domain::Role;

use crate::audit::{RANDOM, scrub, setup};
use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

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
both_stores!(canaries, no_secret_value_reaches_any_record_or_export);

pub(crate) async fn export(api: &Api, query: &str) -> String {
    crate::helpers::audit_export(api, query).await
}

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
