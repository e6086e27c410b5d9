//! Deployment policies: a policy directory changes decisions without code changes, is
//! validated at start and on reload (SIGHUP), and an invalid set never replaces a valid one.

use std::path::Path;

use serde_json::json;
use simvault::domain::Role;

use crate::helpers::{Store, TestApp, both_stores, iccid};

const OPERATOR_PUK: &str = r#"
// A deployment whose operators may see PUKs.
@id("operator-puk")
permit (principal, action == Simvault::Action::"secrets.read", resource)
when { principal.roles.contains("operator") && ["puk1", "puk2"].contains(context.secret_field) };
"#;

/// A policy directory holding the built-in policies.
pub fn default_policy_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    for f in ["simvault.cedarschema", "default.cedar"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    dir
}

async fn sim_with_puk(app: &TestApp) -> String {
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"puk1": "12345678", "ki": "00112233445566778899aabbccddeeff"}}))
        .await;
    format!("/v1/sims/{}/secrets", iccid(1))
}

async fn deployment_policy_changes_decisions(store: Store) {
    let dir = default_policy_dir();
    std::fs::write(dir.path().join("operator-puk.cedar"), OPERATOR_PUK).unwrap();
    let app = TestApp::spawn_with(store, |c| c.policy_dir = Some(dir.path().to_owned())).await;
    let path = sim_with_puk(&app).await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator.get(&format!("{path}?fields=puk1")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["secrets"]["puk1"], "12345678");
    // Only what the deployment added: no Ki, and tenants stay apart.
    assert_eq!(operator.get(&format!("{path}?fields=ki")).await.status, 403);
    app.tenant("other").await;
    assert_eq!(
        app.jwt_client("other", &[Role::Operator])
            .get(&format!("{path}?fields=puk1"))
            .await
            .status,
        404
    );
}
both_stores!(deployment_policy, deployment_policy_changes_decisions);

async fn reload_keeps_the_old_set_when_the_new_one_is_invalid(store: Store) {
    let dir = default_policy_dir();
    let app = TestApp::spawn_with(store, |c| c.policy_dir = Some(dir.path().to_owned())).await;
    let path = sim_with_puk(&app).await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    assert_eq!(
        operator.get(&format!("{path}?fields=puk1")).await.status,
        403
    );

    std::fs::write(dir.path().join("operator-puk.cedar"), OPERATOR_PUK).unwrap();
    app.app.reload_policies().unwrap();
    assert_eq!(
        operator.get(&format!("{path}?fields=puk1")).await.status,
        200
    );

    // Invalid: refused with file and line, and the set in force stays.
    std::fs::write(
        dir.path().join("zz-broken.cedar"),
        "@id(\"x\")\npermit (principal, action, resource) when { principal.shoe_size > 3 };",
    )
    .unwrap();
    let err = format!("{:#}", app.app.reload_policies().unwrap_err());
    assert!(err.contains("zz-broken.cedar:1"), "{err}");
    assert_eq!(
        operator.get(&format!("{path}?fields=puk1")).await.status,
        200
    );
    std::fs::remove_file(dir.path().join("operator-puk.cedar")).unwrap();
    std::fs::remove_file(dir.path().join("zz-broken.cedar")).unwrap();
    app.app.reload_policies().unwrap();
    assert_eq!(
        operator.get(&format!("{path}?fields=puk1")).await.status,
        403
    );
}
both_stores!(
    policy_reload,
    reload_keeps_the_old_set_when_the_new_one_is_invalid
);

async fn an_invalid_policy_set_refuses_to_start(store: Store) {
    use simvault::clock::SystemClock;
    let dir = default_policy_dir();
    std::fs::write(
        dir.path().join("bad.cedar"),
        "\n\n@id(\"bad\")\npermit (principal, action == Simvault::Action::\"sim.fly\", resource);",
    )
    .unwrap();
    let app = TestApp::spawn(store).await;
    let mut config = app.config.clone();
    config.policy_dir = Some(dir.path().to_owned());
    config.listen = "127.0.0.1:0".into();
    let err = simvault::startup::Application::build_with(
        &config,
        app.test_db.db.clone(),
        std::sync::Arc::new(SystemClock),
    )
    .await
    .err()
    .expect("must refuse");
    let err = format!("{err:#}");
    assert!(err.contains("bad.cedar:3"), "{err}");
}
both_stores!(invalid_policies, an_invalid_policy_set_refuses_to_start);

const NO_CHANGES_TO_ACTIVE: &str = r#"
// A deployment where active SIMs are changed one by one only: no bulk cancel either.
@id("active-sims-stay")
forbid (principal, action == Simvault::Action::"sim.state", resource)
when { resource.sim_state == "active" };

@id("no-cancel")
forbid (principal, action == Simvault::Action::"task.cancel", resource);
"#;

/// Each SIM a bulk change reaches is decided again, as the single change would be: a SIM the
/// policies keep from the change fails its item alone, recorded as denied; and the bulk and
/// cancel actions are decided by the policies like every other.
async fn bulk_changes_are_decided_per_sim(store: Store) {
    let dir = default_policy_dir();
    std::fs::write(dir.path().join("stay.cedar"), NO_CHANGES_TO_ACTIVE).unwrap();
    let app = TestApp::spawn_with(store, |c| c.policy_dir = Some(dir.path().to_owned())).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let id_of = |sim: serde_json::Value| sim["id"].as_str().unwrap().to_owned();
    let active = id_of(prov.create_sim(json!({"iccid": iccid(1)})).await);
    let spare = id_of(prov.create_sim(json!({"iccid": iccid(2)})).await);
    let a = operator
        .patch(
            &format!("/v1/sims/{active}/state"),
            &json!({"state": "active"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": [active, spare], "state": "retired"}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = crate::bulk::wait_for_task(&operator, &id, std::time::Duration::from_secs(60)).await;
    assert_eq!(task["completed_items"], 1, "{task:?}");
    assert_eq!(task["failed_items"], 1);
    let items = crate::bulk::all_items(&operator, &id).await;
    assert_eq!(items[0]["status"], "failed");
    assert_eq!(items[0]["error"], "not allowed");
    assert_eq!(items[1]["status"], "succeeded");
    let state = |sim: String| {
        let operator = &operator;
        async move { operator.get(&format!("/v1/sims/{sim}")).await.body["state"].clone() }
    };
    assert_eq!(state(active.clone()).await, "active");
    assert_eq!(state(spare).await, "retired");
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=sim.state&outcome=denied&limit=10")
        .await
        .body;
    let denied = log["items"].as_array().unwrap();
    assert_eq!(denied.len(), 1, "{denied:?}");
    assert_eq!(denied[0]["sim_id"], active.as_str());
    assert!(
        denied[0]["policy_ids"]
            .to_string()
            .contains("active-sims-stay"),
        "{denied:?}"
    );

    let c = operator
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status, 403, "{:?}", c.body);
}
both_stores!(bulk_changes_per_sim, bulk_changes_are_decided_per_sim);
