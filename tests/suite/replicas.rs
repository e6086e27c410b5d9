//! Two servers sharing one store: first-use key creation and background task claiming hold
//! with both writing at once.

use serde_json::json;
use simvault::clock::SystemClock;
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

/// A second server over the same store and keys.
async fn second_server(app: &TestApp) -> (simvault::startup::Application, String) {
    let mut config = app.config.clone();
    config.listen = "127.0.0.1:0".into();
    let other = simvault::startup::Application::build_with(
        &config,
        app.test_db.db.clone(),
        std::sync::Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let base = format!("https://localhost:{}", other.local_addr().port());
    (other, base)
}

async fn first_secrets_of_a_tenant_on_two_servers(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let (_other, other_base) = second_server(&app).await;
    let a = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let b = Api {
        app_base: other_base,
        ..a.clone()
    };
    let mut creates = Vec::new();
    for n in 0..20u64 {
        let api = if n % 2 == 0 { a.clone() } else { b.clone() };
        creates.push(tokio::spawn(async move {
            api.post(
                "/v1/sims",
                &json!({"iccid": iccid(n), "secrets": {"ki": format!("{n:032x}")}}),
            )
            .await
            .status
        }));
    }
    for c in creates {
        assert_eq!(c.await.unwrap(), 201);
    }
    let versions: Vec<(i64,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as("SELECT version FROM tenant_keys WHERE tenant_id = 'acme'").fetch_all(p).await).unwrap();
    assert_eq!(versions, vec![(1,)], "exactly one tenant key");
    for n in 0..20u64 {
        let api = if n % 2 == 0 { &b } else { &a };
        let r = api
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n)))
            .await;
        assert_eq!(r.body["secrets"]["ki"], format!("{n:032x}"));
    }
}
both_stores!(first_key, first_secrets_of_a_tenant_on_two_servers);

async fn two_workers_share_a_rotation_without_double_work(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        c.tasks.poll = std::time::Duration::from_millis(20);
    })
    .await;
    app.tenant("acme").await;
    crate::vault::seed_with_secrets(&app.services, "acme", 1, 1500).await;
    let (_other, _) = second_server(&app).await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let started = admin.post("/v1/admin/keys/rotate", &json!({})).await;
    assert_eq!(started.status, 202);
    let id = started.body["id"].as_str().unwrap().to_owned();
    let mut done = json!(null);
    for _ in 0..600 {
        done = admin.get(&format!("/v1/tasks/{id}")).await.body;
        if done["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(
        done["completed_items"], 1500,
        "each key re-wrapped exactly once: {done}"
    );
    assert_eq!(done["failed_items"], 0);
    let versions: Vec<(i64, i64)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT kek_version, count(*) FROM sim_deks GROUP BY kek_version").fetch_all(p).await)
    .unwrap();
    assert_eq!(versions, vec![(2, 1500)]);
    let wrapped: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT wrapped_deks FROM tenant_keys WHERE tenant_id = 'acme' AND version = 2").fetch_one(p).await).unwrap();
    assert_eq!(wrapped, 1500, "usage counted once per wrap");
}
both_stores!(
    shared_rotation,
    two_workers_share_a_rotation_without_double_work
);
