//! Untrusted storage: a database writer without the keys changes a security-relevant row
//! (SIM binding, counters, tenant, SQN, tenant key state, webhook target, link, or a MAC set
//! NULL) and gets nothing for it: the request is refused with an opaque 500, counted in
//! `/metrics` and recorded on the platform chain. A database from before row integrity is
//! adopted once at start and then serves normally.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use simvault::store::Db;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};
use crate::webhooks::{Receiver, fast, subscribe};

const KI_A: &str = "000102030405060708090a0b0c0d0e0f";
const KI_B: &str = "f0e0d0c0b0a090807060504030201000";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";

/// Tampers: runs one statement against the test database.
pub(crate) async fn exec(db: &Db, sql: &str) {
    let sql = sql.to_owned();
    raw_sql!(db, p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|_| ())).unwrap();
}

async fn scalar_i64(db: &Db, sql: &str) -> Option<i64> {
    let sql = sql.to_owned();
    raw_sql!(db, p => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(p).await).unwrap()
}

/// The platform chain's integrity reports (`integrity.check` / `failed`), as records.
pub(crate) async fn integrity_reports(db: &Db) -> Vec<Value> {
    let rows: Vec<String> = raw_sql!(db, p => sqlx::query_scalar(
        "SELECT record FROM audit_events WHERE tenant_id = '_platform' \
         AND action = 'integrity.check' AND outcome = 'failed' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    rows.iter()
        .map(|r| serde_json::from_str(r).unwrap())
        .collect()
}

/// Waits (generously) until the platform chain holds at least `n` integrity reports.
async fn wait_for_reports(db: &Db, n: usize) -> Vec<Value> {
    for _ in 0..600 {
        let reports = integrity_reports(db).await;
        if reports.len() >= n {
            return reports;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("expected {n} integrity report(s)");
}

/// The answer is the opaque internal error, exactly as for any internal error: no data, no
/// hint of which row or why. `secrets` must not appear in it (the random request id aside).
pub(crate) fn assert_opaque(a: &crate::helpers::Answer, secrets: &[&str]) {
    assert_eq!(a.status, 500, "{:?}", a.body);
    assert_eq!(a.content_type(), "application/problem+json");
    let mut body = a.body.as_object().unwrap().clone();
    body.remove("request_id");
    body.remove("instance");
    assert_eq!(
        Value::Object(body.clone()),
        json!({
            "type": "https://simvault.dev/problems/internal-error",
            "title": "Internal server error",
            "status": 500,
            "detail": "An internal error occurred; quote the request id when reporting it.",
        })
    );
    let text = a.body.to_string();
    for s in secrets {
        assert!(!text.contains(s), "{text}");
        assert!(!text.contains(&s.to_uppercase()), "{text}");
    }
}

async fn sim_id(db: &Db, iccid: &str) -> String {
    let iccid = iccid.to_owned();
    raw_sql!(db, p => sqlx::query_scalar("SELECT id FROM sims WHERE iccid = $1")
        .bind(iccid)
        .fetch_one(p)
        .await)
    .unwrap()
}

/// Swapping two SIMs' ICCIDs: reading A's secrets by its ICCID gives neither card's Ki.
async fn iccid_swap(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A}}))
        .await;
    prov.create_sim(json!({"iccid": iccid(2), "secrets": {"ki": KI_B}}))
        .await;
    let path = format!("/v1/sims/{}/secrets?fields=ki", iccid(1));
    assert_eq!(prov.get(&path).await.body["secrets"]["ki"], KI_A);
    let b = sim_id(db, &iccid(2)).await;
    exec(
        db,
        &format!(
            "UPDATE sims SET iccid = 'swap' WHERE iccid = '{}'",
            iccid(1)
        ),
    )
    .await;
    exec(
        db,
        &format!(
            "UPDATE sims SET iccid = '{}' WHERE iccid = '{}'",
            iccid(1),
            iccid(2)
        ),
    )
    .await;
    exec(
        db,
        &format!(
            "UPDATE sims SET iccid = '{}' WHERE iccid = 'swap'",
            iccid(2)
        ),
    )
    .await;

    let a = prov.get(&path).await;
    assert_opaque(&a, &[KI_A, KI_B]);
    assert_opaque(
        &prov
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(2)))
            .await,
        &[KI_A, KI_B],
    );
    assert_opaque(&prov.get(&format!("/v1/sims/{}", iccid(1))).await, &[]);
    assert_opaque(&prov.get("/v1/sims").await, &[]);

    // Reported: on the platform chain (naming the row by id, never its content) and counted.
    let reports = wait_for_reports(db, 1).await;
    assert!(
        reports
            .iter()
            .any(|r| r.to_string().contains(&format!("sim {b}"))),
        "{reports:?}"
    );
    for r in &reports {
        let text = r.to_string();
        assert!(!text.contains(KI_A) && !text.contains(KI_B), "{text}");
    }
    // A platform-wide series: the platform's own metrics identity sees it.
    let text = app.platform_metrics().await;
    let text = text.as_str();
    assert!(
        text.lines().any(
            |l| l.starts_with("simvault_integrity_failures_total{row=\"sim\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    // The chain itself stays valid: the reports are ordinary records.
    let out = app.cli(&["audit", "verify", "--platform"]);
    assert!(out.status.success(), "{out:?}");
}
both_stores!(iccid_swap_reveals_no_ki, iccid_swap);

async fn reset(api: &Api, current: &str) -> crate::helpers::Answer {
    api.post(
        &format!("/v1/sims/{}/reset-pin", iccid(1)),
        &json!({"pin_type": "pin1", "current_pin": current, "new_pin": "4321"}),
    )
    .await
}

async fn unblock(api: &Api, puk: &str) -> crate::helpers::Answer {
    api.post(
        &format!("/v1/sims/{}/unblock-pin", iccid(1)),
        &json!({"pin_type": "pin1", "puk": puk, "new_pin": "4321", "reason": "TICKET-1"}),
    )
    .await
}

async fn counter(db: &Db, column: &str) -> Option<i64> {
    scalar_i64(
        db,
        &format!("SELECT {column} FROM sims WHERE iccid = '{}'", iccid(1)),
    )
    .await
}

/// A blocked PIN's counter set back gives no fresh guess: the attempt is refused and changes
/// nothing; the same for a blocked PUK.
async fn counters_set_back(store: Store) {
    let app = TestApp::spawn_with(store, |c| c.pin_ops_per_minute = 0).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({
        "iccid": iccid(1),
        "secrets": {"pin1": "1234", "puk1": "12345678"}
    }))
    .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    for _ in 0..3 {
        assert_eq!(reset(&support, "0000").await.status, 400);
    }
    assert_eq!(reset(&support, "1234").await.status, 423, "blocked");
    assert_eq!(counter(db, "pin1_remaining").await, Some(0));

    exec(
        db,
        &format!(
            "UPDATE sims SET pin1_remaining = 3 WHERE iccid = '{}'",
            iccid(1)
        ),
    )
    .await;
    // Not even the right PIN gets through, and the attempt does not count either way.
    assert_opaque(&reset(&support, "1234").await, &[]);
    assert_opaque(&reset(&support, "0000").await, &[]);
    assert_eq!(counter(db, "pin1_remaining").await, Some(3));
    wait_for_reports(db, 2).await;

    // Restore the blocked PIN's counter (what the MAC covers), then exhaust the PUK.
    exec(
        db,
        &format!(
            "UPDATE sims SET pin1_remaining = 0 WHERE iccid = '{}'",
            iccid(1)
        ),
    )
    .await;
    assert_eq!(reset(&support, "1234").await.status, 423, "accepted again");
    for _ in 0..10 {
        assert_eq!(unblock(&support, "00000000").await.status, 400);
    }
    assert_eq!(unblock(&support, "12345678").await.status, 423);
    assert_eq!(counter(db, "puk1_remaining").await, Some(0));
    exec(
        db,
        &format!(
            "UPDATE sims SET puk1_remaining = 10 WHERE iccid = '{}'",
            iccid(1)
        ),
    )
    .await;
    assert_opaque(&unblock(&support, "12345678").await, &[]);
    assert_eq!(counter(db, "puk1_remaining").await, Some(10));
    assert_eq!(counter(db, "pin1_remaining").await, Some(0));
}
both_stores!(counters_set_back_give_no_guess, counters_set_back);

/// A SIM moved to another tenant: that tenant gets no data, and the owner's reads find none.
async fn tenant_moved(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A}}))
        .await;
    let theirs = app.mtls_api("other", &[Role::Provisioner], "p2").await;
    exec(
        db,
        &format!(
            "UPDATE sims SET tenant_id = 'other' WHERE iccid = '{}'",
            iccid(1)
        ),
    )
    .await;
    let secrets = format!("/v1/sims/{}/secrets?fields=ki", iccid(1));
    assert_opaque(&theirs.get(&secrets).await, &[KI_A]);
    assert_opaque(&theirs.get(&format!("/v1/sims/{}", iccid(1))).await, &[]);
    assert_opaque(&theirs.get("/v1/sims").await, &[]);
    assert_eq!(prov.get(&secrets).await.status, 404);
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(1))).await.status,
        404
    );
    wait_for_reports(db, 3).await;
}
both_stores!(tenant_moved_gives_no_data, tenant_moved);

/// A rolled-back SQN would replay authentication vectors: refused, and left as it was.
async fn sqn_rolled_back(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A, "opc": OPC}}))
        .await;
    let auc = app.mtls_api("acme", &[Role::Auc], "hss").await;
    let path = format!("/v1/sims/{}/auth-vectors", iccid(1));
    let a = auc.post(&path, &json!({"count": 2})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let sqn = format!("SELECT sqn FROM sims WHERE iccid = '{}'", iccid(1));
    assert!(scalar_i64(db, &sqn).await.unwrap() > 0);
    exec(
        db,
        &format!("UPDATE sims SET sqn = 0 WHERE iccid = '{}'", iccid(1)),
    )
    .await;
    let a = auc.post(&path, &json!({"count": 2})).await;
    assert_opaque(&a, &[KI_A, OPC]);
    assert!(a.body.get("vectors").is_none());
    assert_eq!(scalar_i64(db, &sqn).await, Some(0));
    wait_for_reports(db, 1).await;
}
both_stores!(sqn_rolled_back_is_refused, sqn_rolled_back);

/// A retired tenant key version set `active` again: key selection refuses to use it.
async fn tenant_key_state(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A}}))
        .await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let started = admin.post("/v1/admin/keys/rotate", &json!({})).await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let id = started.body["id"].as_str().unwrap();
    crate::bulk::wait_for_task(&admin, id, Duration::from_secs(60)).await;
    let keys = admin.get("/v1/admin/keys").await;
    assert_eq!(
        keys.body["versions"][0]["state"], "retired",
        "{:?}",
        keys.body
    );

    exec(
        db,
        "UPDATE tenant_keys SET state = 'active', retired_at = NULL \
         WHERE tenant_id = 'acme' AND version = 1",
    )
    .await;
    assert_opaque(&admin.get("/v1/admin/keys").await, &[]);
    // A new secret would be wrapped under the tenant's active key: nothing is written.
    let a = prov
        .post(
            "/v1/sims",
            &json!({"iccid": iccid(2), "secrets": {"ki": KI_B}}),
        )
        .await;
    assert_opaque(&a, &[KI_B]);
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
    let reports = wait_for_reports(db, 2).await;
    assert!(
        reports
            .iter()
            .any(|r| r.to_string().contains("tenant_key acme/v1")),
        "{reports:?}"
    );
}
both_stores!(tenant_key_state_is_refused, tenant_key_state);

/// Waits until the one delivery to `hook` is given up, and its webhook reported as tampered.
async fn given_up_and_reported(db: &Db, hook: &str) {
    let failed = format!(
        "SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = '{hook}' AND status = 'failed'"
    );
    for _ in 0..600 {
        if scalar_i64(db, &failed).await == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(scalar_i64(db, &failed).await, Some(1), "given up");
    let reports = wait_for_reports(db, 1).await;
    assert!(reports[0].to_string().contains(&format!("webhook {hook}")));
}

/// A webhook's URL changed in the database: nothing goes to the new URL, whether the change
/// comes before an event is fanned out or between a delivery's attempts.
async fn webhook_url(store: Store) {
    let app = TestApp::spawn_with(store, fast).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let (target, url) = Receiver::start().await;
    let (attacker, evil) = Receiver::start().await;
    target.behaviour.lock().unwrap().fail_first = 1;
    let (hook, _) = subscribe(&admin, &url, &["sim.created"]).await;

    // Between attempts: the first one fails, then the URL is swapped.
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    target
        .wait_for("first attempt", Duration::from_secs(30), |h| h.len() == 1)
        .await;
    exec(
        db,
        &format!("UPDATE webhooks SET url = '{evil}' WHERE id = '{hook}'"),
    )
    .await;
    given_up_and_reported(db, &hook).await;

    // Before fan-out: a new event is not queued for the tampered webhook at all.
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    wait_for_reports(db, 2).await;
    let queued = format!("SELECT COUNT(*) FROM webhook_deliveries WHERE webhook_id = '{hook}'");
    assert_eq!(scalar_i64(db, &queued).await, Some(1));
    // Its owner's reads of it are refused too.
    assert_opaque(&admin.get("/v1/webhooks").await, &[]);
    assert!(attacker.hits().is_empty(), "{:?}", attacker.hits());
    assert_eq!(target.hits().len(), 1);
}
both_stores!(webhook_url_swapped_delivers_nothing, webhook_url);

/// A webhook's tenant changed in the database to one that is no tenant name: its delivery is
/// given up and reported, never sent, and the other webhook's deliveries go on.
async fn webhook_tenant(store: Store) {
    let app = TestApp::spawn_with(store, fast).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let (garbled, garbled_url) = Receiver::start().await;
    let (other, other_url) = Receiver::start().await;
    garbled.behaviour.lock().unwrap().fail_first = 1;
    let (hook, _) = subscribe(&admin, &garbled_url, &["sim.created"]).await;
    subscribe(&admin, &other_url, &["sim.created"]).await;

    prov.create_sim(json!({"iccid": iccid(1)})).await;
    garbled
        .wait_for("first attempt", Duration::from_secs(30), |h| h.len() == 1)
        .await;
    exec(
        db,
        "INSERT INTO tenants (id, created_at) VALUES ('ACME!', 0)",
    )
    .await;
    exec(
        db,
        &format!("UPDATE webhooks SET tenant_id = 'ACME!' WHERE id = '{hook}'"),
    )
    .await;
    given_up_and_reported(db, &hook).await;

    // The other webhook still gets every event, the garbled one no more attempts.
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    other
        .wait_for("both events", Duration::from_secs(30), |h| h.len() == 2)
        .await;
    assert_eq!(garbled.hits().len(), 1);
}
both_stores!(webhook_tenant_garbled_gives_up_its_delivery, webhook_tenant);

/// A link pointed at another SIM: the link and the SIM it now names are refused.
async fn link_moved(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = prov.create_sim(json!({"iccid": iccid(1)})).await["id"].clone();
    let b = prov.create_sim(json!({"iccid": iccid(2)})).await["id"].clone();
    let started = operator
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [a]}),
        )
        .await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    let task = started.body["id"].as_str().unwrap();
    crate::bulk::wait_for_task(&operator, task, Duration::from_secs(60)).await;
    let links = operator.get("/v1/links").await;
    assert_eq!(links.body["total"], 1, "{:?}", links.body);
    let link = links.body["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(operator.get(&format!("/v1/links/{link}")).await.status, 200);

    exec(
        db,
        &format!(
            "UPDATE links SET sim_id = '{}' WHERE id = '{link}'",
            b.as_str().unwrap()
        ),
    )
    .await;
    assert_opaque(&operator.get(&format!("/v1/links/{link}")).await, &[]);
    assert_opaque(&operator.get("/v1/links").await, &[]);
    assert_opaque(&prov.get(&format!("/v1/sims/{}", iccid(2))).await, &[]);
    // The SIM it left is served, without the link.
    let left = prov.get(&format!("/v1/sims/{}", iccid(1))).await;
    assert_eq!(left.status, 200);
    let reports = wait_for_reports(db, 3).await;
    assert!(
        reports
            .iter()
            .any(|r| r.to_string().contains(&format!("link {link}")))
    );
}
both_stores!(link_moved_is_refused, link_moved);

/// After adoption a row without a MAC is not trusted: refused like a wrong one.
async fn null_mac(store: Store) {
    let app = TestApp::spawn(store).await;
    let db = &app.test_db.db;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A}}))
        .await;
    exec(
        db,
        &format!("UPDATE sims SET mac = NULL WHERE iccid = '{}'", iccid(1)),
    )
    .await;
    assert_opaque(
        &prov
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await,
        &[KI_A],
    );
    wait_for_reports(db, 1).await;
}
both_stores!(null_mac_is_refused, null_mac);

/// A second pool on the test database: stopping a server closes the pool it was given.
async fn reopen(app: &TestApp) -> Db {
    match app.test_db.pg_schema() {
        Some(schema) => {
            let url = crate::helpers::postgres_url().unwrap();
            Db::open_postgres(&url, Some(schema)).await.unwrap()
        }
        None => {
            let dir = app.test_db.sqlite_dir().unwrap();
            Db::open_sqlite(&dir.join("simvault.db")).await.unwrap()
        }
    }
}

/// A database from before row integrity (a v1 root-key check, no MACs) is adopted once, at
/// the first start, on the record; then it serves normally.
async fn adoption(store: Store) {
    let mut app = TestApp::spawn_with(store, fast).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let a = prov
        .create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI_A}}))
        .await["id"]
        .clone();
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    assert_eq!(
        admin.delete(&format!("/v1/sims/{}", iccid(2))).await.status,
        200
    );
    let started = operator
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [a]}),
        )
        .await;
    let task = started.body["id"].as_str().unwrap();
    crate::bulk::wait_for_task(&operator, task, Duration::from_secs(60)).await;
    let (_target, url) = Receiver::start().await;
    subscribe(&admin, &url, &["sim.created"]).await;
    app.app.stop().await;
    let db = &reopen(&app).await;

    // Back to the state before row integrity: no MACs, and a v1 check around a fresh key.
    for table in ["sims", "tenant_keys", "webhooks", "links"] {
        exec(db, &format!("UPDATE {table} SET mac = NULL")).await;
    }
    let root = simvault::vault::root::load(&app.config.root_key).unwrap();
    let v1 = root
        .wrap(
            &simvault::vault::new_key().unwrap(),
            b"simvault/v1/root-check",
        )
        .unwrap();
    raw_sql!(db, p => sqlx::query("UPDATE root_key_check SET wrapped = $1 WHERE id = 1")
        .bind(v1)
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();

    let start = || async {
        let mut config = app.config.clone();
        config.listen = "127.0.0.1:0".into();
        let server = simvault::startup::Application::build_with(
            &config,
            reopen(&app).await,
            std::sync::Arc::new(simvault::clock::SystemClock),
        )
        .await
        .unwrap();
        let base = format!("https://localhost:{}", server.local_addr().port());
        (server, base)
    };
    let adopted = || async {
        let rows: Vec<String> = raw_sql!(db, p => sqlx::query_scalar(
            "SELECT record FROM audit_events WHERE tenant_id = '_platform' \
             AND action = 'integrity.adopt' AND outcome = 'completed'")
            .fetch_all(p)
            .await)
        .unwrap();
        rows
    };
    assert!(adopted().await.is_empty());
    let (mut first, base) = start().await;
    let records = adopted().await;
    assert_eq!(records.len(), 1);
    assert!(
        records[0].contains("2 sim, 1 tenant_key, 1 webhook, 1 link"),
        "{}",
        records[0]
    );
    for table in ["sims", "tenant_keys", "webhooks", "links"] {
        assert_eq!(
            scalar_i64(
                db,
                &format!("SELECT COUNT(*) FROM {table} WHERE mac IS NULL")
            )
            .await,
            Some(0),
            "{table}"
        );
    }
    let on = |api: &Api| Api {
        app_base: base.clone(),
        ..api.clone()
    };
    let ki = on(&prov)
        .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
        .await;
    assert_eq!(ki.status, 200, "{:?}", ki.body);
    assert_eq!(ki.body["secrets"]["ki"], KI_A);
    assert_eq!(on(&operator).get("/v1/links").await.body["total"], 1);
    assert_eq!(on(&admin).get("/v1/webhooks").await.status, 200);
    assert_eq!(on(&admin).get("/v1/admin/keys").await.status, 200);
    assert_eq!(
        on(&prov)
            .get(&format!("/v1/sims/{}", iccid(2)))
            .await
            .status,
        404,
        "the tombstone stays a tombstone"
    );
    // New writes carry MACs under the adopted key.
    let c = on(&prov)
        .post(
            "/v1/sims",
            &json!({"iccid": iccid(3), "secrets": {"ki": KI_B}}),
        )
        .await;
    assert_eq!(c.status, 201, "{:?}", c.body);
    assert_eq!(
        on(&prov)
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(3)))
            .await
            .body["secrets"]["ki"],
        KI_B
    );
    first.stop().await;

    // Once: the next start finds an authenticated database.
    let (mut second, base) = start().await;
    assert_eq!(adopted().await.len(), 1);
    let again = Api {
        app_base: base,
        ..prov.clone()
    };
    assert_eq!(
        again
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await
            .status,
        200
    );
    assert!(integrity_reports(db).await.is_empty());
    second.stop().await;
}
both_stores!(a_v1_database_is_adopted_once, adoption);
