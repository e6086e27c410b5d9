//! Bulk tasks: batch import (API and `simvault import`, EKI, bad rows, crash and resume) and
//! link provisioning (naming, plans, per-item failures, links on SIMs), with their audit
//! records and outbox events.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql, tenant_id};

/// Polls a task until it is completed or failed; returns it.
pub async fn wait_for_task(api: &Api, id: &str, limit: Duration) -> Value {
    let start = std::time::Instant::now();
    loop {
        let a = api.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        if a.body["status"] == "completed" || a.body["status"] == "failed" {
            return a.body;
        }
        assert!(
            start.elapsed() < limit,
            "task {id} did not finish: {:?}",
            a.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every item of a task, in order.
pub async fn all_items(api: &Api, id: &str) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let a = api
            .get(&format!("/v1/tasks/{id}/items?page={page}&page_size=1000"))
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        let items = a.body["items"].as_array().unwrap().clone();
        if items.is_empty() {
            break;
        }
        out.extend(items);
    }
    out
}

fn secret_row(n: u64) -> Value {
    json!({
        "iccid": iccid(n),
        "imsi": format!("23415{n:010}"),
        "secrets": {
            "ki": format!("{n:032x}"),
            "opc": format!("{:032x}", n + 7),
            "pin1": "1234",
            "puk1": "12345678",
        }
    })
}

async fn import_creates_sims_with_secrets_and_fails_bad_rows_alone(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(9)})).await; // its ICCID comes again below
    let rows = json!([
        secret_row(1),
        {"iccid": iccid(2), "imsi": "12"},       // bad IMSI
        secret_row(3),
        {"iccid": iccid(9)},                     // exists already
        {"iccid": iccid(4), "colour": "red"},    // unknown field
        secret_row(5),
        secret_row(1),                           // twice in the batch
    ]);
    let a = prov
        .post("/v1/sims/bulk/import", &json!({"sims": rows}))
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["type"], "import");
    assert_eq!(a.body["total_items"], 7);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"].to_str().unwrap(),
        format!("/v1/tasks/{id}")
    );
    let task = wait_for_task(&prov, &id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["completed_items"], 3);
    assert_eq!(task["failed_items"], 4);
    assert_eq!(task["pending_items"], 0);

    let items = all_items(&prov, &id).await;
    let status: Vec<&str> = items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        status,
        [
            "succeeded",
            "failed",
            "succeeded",
            "failed",
            "failed",
            "succeeded",
            "failed"
        ]
    );
    assert_eq!(items[1]["line"], 2);
    assert!(
        items[1]["error"].as_str().unwrap().contains("imsi"),
        "{:?}",
        items[1]
    );
    assert!(
        items[3]["error"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    assert!(items[4]["error"].as_str().unwrap().contains("colour"));
    assert!(
        items[6]["error"]
            .as_str()
            .unwrap()
            .contains("already exists")
    );
    // Failed-only view.
    let failed = prov
        .get(&format!("/v1/tasks/{id}/items?status=failed"))
        .await;
    assert_eq!(failed.body["total"], 4);

    // The SIMs exist once, with their secrets and counters.
    let sim_id = items[0]["sim_id"].as_str().unwrap();
    assert_eq!(items[0]["result"]["iccid"], iccid(1));
    let sim = prov.get(&format!("/v1/sims/{sim_id}")).await.body;
    assert_eq!(sim["iccid"], iccid(1));
    assert_eq!(sim["state"], "inventory");
    assert_eq!(sim["pin_status"]["pin1"]["remaining_attempts"], 3);
    let secrets = prov
        .get(&format!(
            "/v1/sims/{sim_id}/secrets?fields=ki,opc,pin1,puk1"
        ))
        .await;
    assert_eq!(secrets.status, 200, "{:?}", secrets.body);
    assert_eq!(secrets.body["secrets"]["ki"], format!("{:032x}", 1));
    assert_eq!(secrets.body["secrets"]["puk1"], "12345678");
    let list = prov.get("/v1/sims?page_size=50").await.body;
    assert_eq!(list["total"], 4);

    // Nothing of the rows is left behind: inputs cleared, the task's key destroyed.
    let db = &app.test_db.db;
    let left: i64 = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM task_items WHERE input IS NOT NULL").fetch_one(p).await.unwrap());
    assert_eq!(left, 0);
    let key: Option<Vec<u8>> = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT wrapped_key FROM tasks WHERE id = $1").bind(&id).fetch_one(p).await.unwrap());
    assert!(key.is_none());

    // Outbox: sim.created per SIM (from the task), task.completed once with the counts.
    let events = simvault::store::outbox::events(db, &tenant_id("acme"))
        .await
        .unwrap();
    let created = events
        .iter()
        .filter(|e| e.event_type == "sim.created" && e.payload.contains(&id))
        .count();
    assert_eq!(created, 3);
    let done: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "task.completed")
        .collect();
    assert_eq!(done.len(), 1);
    let payload: Value = serde_json::from_str(&done[0].payload).unwrap();
    assert_eq!(payload["task_id"], id);
    assert_eq!(payload["completed_items"], 3);
    assert_eq!(payload["failed_items"], 4);
    for e in &events {
        assert!(
            !e.payload.contains(&format!("{:032x}", 1)),
            "no Ki in events"
        );
    }

    // Audit: the request, one record per SIM created (by the caller, naming the fields, no
    // values), and the completion.
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=sim.import&limit=100")
        .await
        .body;
    let records = log["items"].as_array().unwrap();
    assert_eq!(records.len(), 1 + 3 + 1, "{records:?}");
    let per_sim: Vec<&Value> = records.iter().filter(|r| r["sim_id"].is_string()).collect();
    assert_eq!(per_sim.len(), 3);
    for r in &per_sim {
        assert_eq!(r["actor"]["subject"], "urn:simvault:acme:prov");
        assert_eq!(r["actor"]["auth_method"], "mtls");
        let fields: Vec<&str> = r["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f.as_str().unwrap())
            .collect();
        assert!(fields.contains(&"ki") && fields.contains(&"puk1"));
    }
    assert!(records.iter().any(|r| r["outcome"] == "completed"));
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&format!("{:032x}", 1)) && !text.contains("12345678"));
}
both_stores!(
    import_creates_sims_with_secrets_and_fails_bad_rows_alone,
    import_creates_sims_with_secrets_and_fails_bad_rows_alone
);

async fn import_refuses_bad_batches_and_other_roles(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for body in [
        json!({"sims": []}),
        json!({}),
        json!({"sims": "x"}),
        json!({"sims": [], "extra": 1}),
    ] {
        let a = prov.post("/v1/sims/bulk/import", &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
    }
    for role in [Role::Support, Role::Operator, Role::Auditor, Role::Admin] {
        let api = app.jwt_client("acme", &[role]);
        let a = api
            .post("/v1/sims/bulk/import", &json!({"sims": [secret_row(1)]}))
            .await;
        assert_eq!(a.status, 403, "{role:?}");
        assert!(!a.body.to_string().contains("12345678"));
    }
    let count: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks").fetch_one(p).await.unwrap());
    assert_eq!(count, 0, "nothing queued");
    // Another tenant's task and its items are not found.
    let a = prov
        .post("/v1/sims/bulk/import", &json!({"sims": [secret_row(1)]}))
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    wait_for_task(&prov, &id, Duration::from_secs(60)).await;
    let stranger = app.mtls_api("other", &[Role::Provisioner], "prov2").await;
    assert_eq!(stranger.get(&format!("/v1/tasks/{id}")).await.status, 404);
    assert_eq!(
        stranger.get(&format!("/v1/tasks/{id}/items")).await.status,
        404
    );
    assert_eq!(
        prov.get(&format!("/v1/tasks/{id}/items?status=done"))
            .await
            .status,
        400
    );
}
both_stores!(
    import_refuses_bad_batches_and_other_roles,
    import_refuses_bad_batches_and_other_roles
);

async fn provision_links_names_links_and_fails_items_alone(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let mut ids = Vec::new();
    for n in 1..=4 {
        ids.push(prov.create_sim(json!({"iccid": iccid(n)})).await["id"].clone());
    }
    let theirs = app
        .mtls_api("other", &[Role::Provisioner], "p2")
        .await
        .create_sim(json!({"iccid": iccid(50)}))
        .await["id"]
        .clone();
    let plan = operator
        .post(
            "/v1/plans",
            &json!({"name": "eu", "compatibility_zones": ["eu"]}),
        )
        .await
        .body["id"]
        .clone();

    // Refused before anything is queued.
    let unknown_plan = uuid::Uuid::new_v4().to_string();
    for (body, pointer) in [
        (json!({"name_prefix": "fleet", "sim_ids": []}), "/sim_ids"),
        (
            json!({"name_prefix": "fleet", "sim_ids": [ids[0], ids[0]]}),
            "/sim_ids/1",
        ),
        (
            json!({"name_prefix": "fleet", "sim_ids": ["nope"]}),
            "/sim_ids/0",
        ),
        (
            json!({"name_prefix": "a b", "sim_ids": [ids[0]]}),
            "/name_prefix",
        ),
        (json!({"sim_ids": [ids[0]]}), "/name_prefix"),
        (
            json!({"name_prefix": "fleet", "sim_ids": [ids[0]], "plan_ids": [unknown_plan]}),
            "/plan_ids/0",
        ),
        (
            json!({"name_prefix": "fleet", "sim_ids": [ids[0]], "counter_start": -1}),
            "/counter_start",
        ),
    ] {
        let a = operator.post("/v1/sims/bulk/provision-links", &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert!(a.pointers().contains(&pointer), "{body}: {:?}", a.body);
    }
    let queued: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks").fetch_one(p).await.unwrap());
    assert_eq!(queued, 0);
    // Provisioners do not provision links.
    let a = prov
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [ids[0]]}),
        )
        .await;
    assert_eq!(a.status, 403);

    // First task: two SIMs, from 10.
    let a = operator
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [ids[0], ids[1]], "plan_ids": [plan], "counter_start": 10}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let first = a.body["id"].as_str().unwrap().to_owned();
    let task = wait_for_task(&operator, &first, Duration::from_secs(60)).await;
    assert_eq!(task["completed_items"], 2);
    // Second: one already linked, one of another tenant, one missing, two new; default start.
    let missing = uuid::Uuid::new_v4().to_string();
    let a = operator
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "batch", "sim_ids": [ids[2], ids[0], theirs, missing, ids[3]]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let second = a.body["id"].as_str().unwrap().to_owned();
    let task = wait_for_task(&operator, &second, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "completed");
    assert_eq!(task["completed_items"], 2);
    assert_eq!(task["failed_items"], 3);
    let items = all_items(&operator, &second).await;
    assert_eq!(items[0]["result"]["name"], "batch_1");
    assert_eq!(items[1]["error"], "SIM already linked");
    assert_eq!(
        items[2]["error"], "no such SIM",
        "another tenant's SIM is not revealed"
    );
    assert_eq!(items[3]["error"], "no such SIM");
    assert_eq!(items[4]["result"]["name"], "batch_5", "named by position");

    // Links are resources, and shown on their SIMs.
    let links = operator.get("/v1/links").await.body;
    assert_eq!(links["total"], 4);
    let names: Vec<&str> = links["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"fleet_10") && names.contains(&"fleet_11"));
    let sim = operator
        .get(&format!("/v1/sims/{}", ids[0].as_str().unwrap()))
        .await
        .body;
    assert_eq!(sim["link"]["name"], "fleet_10");
    assert_eq!(sim["link"]["plan_ids"], json!([plan]));
    let link_id = sim["link"]["id"].as_str().unwrap();
    let link = operator.get(&format!("/v1/links/{link_id}")).await;
    assert_eq!(link.status, 200);
    assert_eq!(link.body["sim_id"], ids[0]);
    assert_eq!(link.body["task_id"], first);
    let by_sim = operator
        .get(&format!("/v1/links?sim_id={}", ids[1].as_str().unwrap()))
        .await
        .body;
    assert_eq!(by_sim["items"][0]["name"], "fleet_11");
    let unlinked = operator
        .get(&format!("/v1/sims/{}", ids[3].as_str().unwrap()))
        .await
        .body;
    assert_eq!(unlinked["link"]["name"], "batch_5");
    let listed = operator
        .get("/v1/sims?page_size=10&sort_by=iccid&sort_order=asc")
        .await
        .body;
    assert_eq!(listed["items"][0]["link"]["name"], "fleet_10");
    // Another tenant sees none of it.
    let stranger = app.jwt_client("other", &[Role::Operator]);
    assert_eq!(
        stranger.get(&format!("/v1/links/{link_id}")).await.status,
        404
    );
    assert_eq!(stranger.get("/v1/links").await.body["total"], 0);
    // Auditors read the log, not links.
    assert_eq!(
        app.jwt_client("acme", &[Role::Auditor])
            .get("/v1/links")
            .await
            .status,
        403
    );
    // One audit record per link made.
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=link.provision&limit=100")
        .await
        .body;
    let per_link = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["sim_id"].is_string())
        .count();
    assert_eq!(per_link, 4);
}
both_stores!(
    provision_links_names_links_and_fails_items_alone,
    provision_links_names_links_and_fails_items_alone
);

/// `simvault import` of a CSV with an EKI column and one bad row.
async fn cli_imports_a_vendor_csv_with_eki(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("transport.key");
    // FIPS-197 C.1: this key encrypts 00112233…ff to 69c4e0d8…c55a.
    std::fs::write(&key_file, "000102030405060708090a0b0c0d0e0f\n").unwrap();
    let csv = format!(
        "ICCID,imsi,eki,opc,pin1,puk1\n\
         {},234150000000001,69c4e0d86a7b0430d8cdb78070b4c55a,{},1234,12345678\n\
         {},234150000000002,not-hex,{},1234,12345678\n\
         {},234150000000003,69c4e0d86a7b0430d8cdb78070b4c55a,{},4321,87654321\n",
        iccid(1),
        "0f".repeat(16),
        iccid(2),
        "0f".repeat(16),
        iccid(3),
        "0e".repeat(16),
    );
    let file = dir.path().join("batch.csv");
    std::fs::write(&file, csv).unwrap();
    let out = app.cli(&[
        "import",
        "--tenant",
        "acme",
        file.to_str().unwrap(),
        "--transport-key-file",
        key_file.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("2 imported, 1 failed"), "{stdout}");
    assert!(stdout.contains("line 3: eki:"), "{stdout}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains("00112233445566778899aabbccddeeff"));
        assert!(!text.contains("12345678"));
    }
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let secrets = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki,opc,pin1", iccid(1)))
        .await;
    assert_eq!(secrets.status, 200, "{:?}", secrets.body);
    assert_eq!(
        secrets.body["secrets"]["ki"],
        "00112233445566778899aabbccddeeff"
    );
    assert_eq!(secrets.body["secrets"]["opc"], "0f".repeat(16));
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(3))).await.status,
        200
    );
    // The CLI's records name the host user.
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor.get("/v1/audit/events?action=sim.import").await.body;
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["actor"]["subject"].as_str().unwrap().starts_with("cli:"))
    );

    // A file-level problem refuses the whole file: nothing queued.
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, format!("iccid,colour\n{},red\n", iccid(7))).unwrap();
    let out = app.cli(&["import", "--tenant", "acme", bad.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown column"));
    let eki_no_key = dir.path().join("eki.csv");
    std::fs::write(&eki_no_key, format!("iccid,eki\n{},00\n", iccid(8))).unwrap();
    let out = app.cli(&["import", "--tenant", "acme", eki_no_key.to_str().unwrap()]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("transport key"));

    // JSON Lines, all good: exit 0.
    let jsonl = dir.path().join("batch.jsonl");
    std::fs::write(
        &jsonl,
        format!(
            "{}\n\n{}\n",
            json!({"iccid": iccid(11), "secrets": {"ki": "11".repeat(16)}}),
            json!({"iccid": iccid(12), "sim_type": "esim", "eid": "89049032123451234512345678901235"})
        ),
    )
    .unwrap();
    let out = app.cli(&["import", "--tenant", "acme", jsonl.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(12))).await.status,
        200
    );
}
both_stores!(
    cli_imports_a_vendor_csv_with_eki,
    cli_imports_a_vendor_csv_with_eki
);

/// A server killed (`kill -9`) in the middle of a 20,000-SIM import: after a restart the task
/// completes with every SIM present exactly once.
async fn import_survives_kill_9(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        // The in-process server only serves the API here: the replicas do the work.
        c.tasks.bulk_worker = false;
    })
    .await;
    app.tenant("acme").await;
    const N: u64 = 20_000;
    let rows: Vec<Value> = (1..=N)
        .map(|n| json!({"iccid": iccid(n), "secrets": {"ki": format!("{n:032x}"), "pin1": "1234"}}))
        .collect();
    let env = [("SIMVAULT_TASK_LEASE_SECS", "2")];
    let (mut first, base) = app.spawn_replica(&env);
    let mut prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.app_base = base;
    // Sealing 20,000 rows before the answer takes a debug build on a busy machine longer
    // than the clients' usual 30 s.
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims/bulk/import")
            .json(&json!({"sims": rows}))
            .timeout(Duration::from_secs(300)),
    )
    .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    // Kill it once it is well under way.
    let start = std::time::Instant::now();
    loop {
        let t = prov.get(&format!("/v1/tasks/{id}")).await.body;
        let done = t["completed_items"].as_u64().unwrap();
        if done >= 2_000 {
            assert!(done < N, "the import finished before it could be killed");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{t:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap(); // SIGKILL
    first.wait().unwrap();
    let (mut second, base) = app.spawn_replica(&env);
    prov.app_base = base;
    let task = wait_for_task(&prov, &id, Duration::from_secs(600)).await;
    second.kill().unwrap();
    second.wait().unwrap();
    assert_eq!(task["status"], "completed");
    assert_eq!(task["completed_items"], N);
    assert_eq!(task["failed_items"], 0);
    let db = &app.test_db.db;
    let (sims, distinct): (i64, i64) = raw_sql!(db, p => sqlx::query_as(
        "SELECT COUNT(*), COUNT(DISTINCT iccid) FROM sims WHERE tenant_id = 'acme'")
        .fetch_one(p).await.unwrap());
    assert_eq!((sims, distinct), (20_000, 20_000));
    let keys: i64 = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM sim_deks WHERE tenant_id = 'acme'").fetch_one(p).await.unwrap());
    assert_eq!(keys, 20_000, "each SIM has exactly one key");
    let pending: i64 = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM task_items WHERE status <> 'succeeded'").fetch_one(p).await.unwrap());
    assert_eq!(pending, 0);
    let created: i64 = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'sim.import' AND sim_id IS NOT NULL")
        .fetch_one(p).await.unwrap());
    assert_eq!(created, 20_000, "one record per SIM, none twice");
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let verify = auditor.get("/v1/audit/verify").await;
    assert_eq!(verify.body["ok"], true, "{:?}", verify.body);
}
both_stores!(import_survives_kill_9, import_survives_kill_9);
