//! Tampering with the audit log is found: by the API and the CLI verify paths, in the
//! search columns, and against the checkpoints signed in the background.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::audit::{exec, setup};
use crate::helpers::{Store, TestApp, both_stores, iccid, raw_sql};

/// Six records, a signed checkpoint over them, and a verdict from both verify paths.
async fn tampered(store: Store, tamper: &str) -> (Value, String) {
    let (mut app, prov, auditor) = setup(store).await;
    for _ in 0..5 {
        prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
    }
    let signer = app.services.audit.audit_signer.clone().unwrap();
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
