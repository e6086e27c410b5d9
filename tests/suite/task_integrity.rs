//! Untrusted storage and background tasks: a database writer without the keys changes a
//! pending task's parameters (the actor the worker would act as) or one of its items' input,
//! or removes a MAC, and the worker obeys none of it: the task fails with a reason that says
//! nothing of the row, no SIM changes, and a MAC that does not verify is reported on the
//! platform chain. An untouched task still runs to its end.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;
use simvault::domain::task::TaskRecord;
use simvault::store::Db;
use simvault::store::tasks;
use simvault::vault::{IntegrityKey, Purpose, RowParts};

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql, tenant_id};
use crate::integrity::{assert_opaque, exec, integrity_reports};

const LEASE: Duration = Duration::from_secs(60);

/// A task's MAC as the store makes it, over `params` (the layout is part of the stored
/// format: a change to it fails every stored task, and this with it).
pub(crate) fn task_mac(key: &IntegrityKey, task: &TaskRecord, params: &Value) -> Vec<u8> {
    key.mac_row(
        Purpose::Task,
        &RowParts::default()
            .text(&task.id.to_string())
            .text(task.tenant_id.as_str())
            .text(task.kind.as_str())
            .int(task.created_at)
            .opt_int(task.kek_version)
            .json(params),
    )
    .to_vec()
}

/// An app whose own workers leave bulk tasks alone: the tests drive them by hand.
async fn by_hand(store: Store) -> TestApp {
    TestApp::spawn_with(store, |c| c.tasks.bulk_worker = false).await
}

async fn sims(api: &Api, numbers: impl IntoIterator<Item = u64>) -> Vec<String> {
    let mut ids = Vec::new();
    for n in numbers {
        let sim = api.create_sim(json!({"iccid": iccid(n)})).await;
        ids.push(sim["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Queues `state` over `sims` (named by id) as an operator of acme; the task's id.
async fn queue_state(operator: &Api, sims: &[String], state: &str) -> String {
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": sims, "state": state}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn record(app: &TestApp, id: &str) -> TaskRecord {
    let key = app.services.core.keyring.integrity().unwrap();
    let id = simvault::domain::TaskId::parse(id).unwrap();
    tasks::get(&app.test_db.db, &key, &tenant_id("acme"), &id)
        .await
        .unwrap()
        .unwrap()
}

/// A task's status and error, read straight from storage.
async fn stored_status(db: &Db, id: &str) -> (String, Option<String>) {
    let id = id.to_owned();
    raw_sql!(db, p => sqlx::query_as("SELECT status, error FROM tasks WHERE id = $1")
        .bind(id)
        .fetch_one(p)
        .await)
    .unwrap()
}

/// A task's items' statuses in order, read straight from storage.
async fn stored_items(db: &Db, id: &str) -> Vec<String> {
    let id = id.to_owned();
    raw_sql!(db, p => sqlx::query_scalar(
        "SELECT status FROM task_items WHERE task_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(p)
        .await)
    .unwrap()
}

async fn states(api: &Api, sims: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for sim in sims {
        let s = api.get(&format!("/v1/sims/{sim}")).await;
        assert_eq!(s.status, 200, "{:?}", s.body);
        out.push(s.body["state"].as_str().unwrap().to_owned());
    }
    out
}

/// The `task.completed` events of acme, as payloads.
async fn completions(db: &Db) -> Vec<Value> {
    simvault::store::outbox::events(db, &tenant_id("acme"))
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "task.completed")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect()
}

/// A pending bulk state change whose stored actor is changed (`forge`): the worker does not
/// act as the forged actor, nor as the real one: the task fails, no SIM changes, the failure
/// is reported, and the task reads as a corrupt row does (an opaque 500).
async fn a_forged_actor_is_not_obeyed(store: Store, forge: fn(&mut Value)) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let db = &app.test_db.db;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=3).await;
    let id = queue_state(&operator, &ids, "active").await;
    let mut params = record(&app, &id).await.params;
    forge(&mut params["actor"]);
    raw_sql!(db, p => sqlx::query("UPDATE tasks SET params = $1 WHERE id = $2")
        .bind(sqlx::types::Json(&params))
        .bind(&id)
        .execute(p).await.map(|_| ()).unwrap());

    let worker = app.services.tasks();
    assert!(worker.run_bulk_batch("w1", LEASE).await.unwrap());
    assert_eq!(states(&operator, &ids).await, ["inventory"; 3]);
    assert_eq!(
        stored_status(db, &id).await,
        (
            "failed".into(),
            Some("the task failed its integrity check".into())
        )
    );
    assert_eq!(stored_items(db, &id).await, ["failed"; 3]);
    // Nothing is left to try again, and nothing more runs.
    assert!(!worker.run_bulk_batch("w2", LEASE).await.unwrap());
    assert_eq!(states(&operator, &ids).await, ["inventory"; 3]);

    // Reported once, naming the task by id and nothing of its content.
    let reports = integrity_reports(db).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    let reason = reports[0]["reason"].as_str().unwrap();
    assert_eq!(reason, format!("task {id}: MAC does not verify"));
    // The failure is the task's own record and event, the forged actor's name in neither.
    let ended = completions(db).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "failed");
    assert!(!ended[0].to_string().contains("forged"));

    // Read by its owner, it answers as a corrupt row does.
    assert_opaque(&operator.get(&format!("/v1/tasks/{id}")).await, &["forged"]);
    assert_opaque(&operator.get("/v1/tasks").await, &["forged"]);
}

async fn a_forged_tenant_is_not_obeyed(store: Store) {
    a_forged_actor_is_not_obeyed(store, |actor| {
        actor["tenant"] = "other".into();
        actor["subject"] = "forged".into();
    })
    .await;
}
both_stores!(forged_actor_tenant, a_forged_tenant_is_not_obeyed);

async fn forged_roles_are_not_obeyed(store: Store) {
    a_forged_actor_is_not_obeyed(store, |actor| {
        actor["roles"] = json!(["admin", "operator", "provisioner"]);
        actor["subject"] = "forged".into();
    })
    .await;
}
both_stores!(forged_actor_roles, forged_roles_are_not_obeyed);

/// One item's input changed to name a SIM the task never named: it is not applied, nor is
/// anything after it; what was done before stays done.
async fn a_forged_item_input_is_not_applied(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let db = &app.test_db.db;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=4).await;
    let id = queue_state(&operator, &ids[..3], "active").await;
    let worker = app.services.tasks();
    let task_id = simvault::domain::TaskId::parse(&id).unwrap();
    // Item 1 done, as acknowledged.
    assert!(
        worker
            .work_on_up_to(&task_id, "w1", LEASE, 1)
            .await
            .unwrap()
    );
    assert_eq!(
        states(&operator, &ids).await,
        ["active", "inventory", "inventory", "inventory"]
    );
    raw_sql!(db, p => sqlx::query(
        "UPDATE task_items SET input = $1 WHERE task_id = $2 AND seq = 2")
        .bind(ids[3].as_bytes().to_vec())
        .bind(&id)
        .execute(p).await.map(|_| ()).unwrap());

    assert!(worker.run_bulk_batch("w2", LEASE).await.unwrap());
    assert_eq!(
        states(&operator, &ids).await,
        ["active", "inventory", "inventory", "inventory"],
        "neither the forged SIM nor the rest is changed"
    );
    assert_eq!(
        stored_status(db, &id).await,
        (
            "failed".into(),
            Some("an item of the task failed its integrity check".into())
        )
    );
    assert_eq!(
        stored_items(db, &id).await,
        ["succeeded", "failed", "failed"]
    );
    let reports = integrity_reports(db).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0]["reason"],
        format!("task_item {id}/2: MAC does not verify")
    );
    // The task row itself is intact: its owner reads it, failed, with what was done.
    let task = operator.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task.status, 200, "{:?}", task.body);
    assert_eq!(task.body["status"], "failed");
    assert_eq!(task.body["completed_items"], 1);
    assert_eq!(task.body["failed_items"], 2);
    assert!(!worker.run_bulk_batch("w3", LEASE).await.unwrap());
}
both_stores!(forged_item_input, a_forged_item_input_is_not_applied);

/// A task or item whose MAC is missing (cleared, or written before task rows were
/// authenticated) is not run either: the task fails, saying to submit it again.
async fn a_missing_mac_is_refused(store: Store, table: &str) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let db = &app.test_db.db;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=2).await;
    let id = queue_state(&operator, &ids, "active").await;
    exec(
        db,
        &format!("UPDATE {table} SET mac = NULL WHERE {table}.{} = '{id}'", {
            if table == "tasks" { "id" } else { "task_id" }
        }),
    )
    .await;

    let worker = app.services.tasks();
    assert!(worker.run_bulk_batch("w1", LEASE).await.unwrap());
    assert_eq!(states(&operator, &ids).await, ["inventory"; 2]);
    let expected = if table == "tasks" {
        "written before task rows were authenticated; submit it again"
    } else {
        "an item was written before task rows were authenticated; submit the task again"
    };
    assert_eq!(
        stored_status(db, &id).await,
        ("failed".into(), Some(expected.into()))
    );
    assert_eq!(stored_items(db, &id).await, ["failed"; 2]);
    assert!(!worker.run_bulk_batch("w2", LEASE).await.unwrap());
    // Its owner reads it, failed (reading it decides nothing).
    let task = operator.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task.status, 200, "{:?}", task.body);
    assert_eq!(task.body["status"], "failed");
    assert_eq!(task.body["failed_items"], 2);
}

async fn a_task_without_a_mac_is_refused(store: Store) {
    a_missing_mac_is_refused(store, "tasks").await;
}
both_stores!(task_without_mac, a_task_without_a_mac_is_refused);

async fn items_without_a_mac_are_refused(store: Store) {
    a_missing_mac_is_refused(store, "task_items").await;
}
both_stores!(items_without_mac, items_without_a_mac_are_refused);

/// Untouched, a task runs to its end as before, and nothing is reported.
async fn an_untouched_task_runs_to_its_end(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let db = &app.test_db.db;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=3).await;
    let id = queue_state(&operator, &ids, "active").await;
    let worker = app.services.tasks();
    let task_id = simvault::domain::TaskId::parse(&id).unwrap();
    assert!(
        worker
            .work_on_up_to(&task_id, "w1", LEASE, 2)
            .await
            .unwrap()
    );
    assert!(worker.run_bulk_batch("w2", LEASE).await.unwrap());
    assert!(!worker.run_bulk_batch("w3", LEASE).await.unwrap());
    assert_eq!(states(&operator, &ids).await, ["active"; 3]);
    let task = operator.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(task.status, 200, "{:?}", task.body);
    assert_eq!(task.body["status"], "completed");
    assert_eq!(task.body["completed_items"], 3);
    assert_eq!(stored_status(db, &id).await, ("completed".into(), None));
    assert!(integrity_reports(db).await.is_empty());
    let ended = completions(db).await;
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "completed");
}
both_stores!(untouched_task, an_untouched_task_runs_to_its_end);

/// A key rotation whose target version is changed in storage is not run: the rotation
/// worker fails it before reading its target, and reports it.
async fn a_forged_rotation_is_not_run(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let db = &app.test_db.db;
    let key = app.services.core.keyring.integrity().unwrap();
    let rotation = TaskRecord {
        id: simvault::domain::TaskId::new(),
        tenant_id: tenant_id("acme"),
        kind: simvault::domain::task::TaskKind::KeyRotation,
        status: simvault::domain::task::TaskStatus::Pending,
        params: json!({"to_version": 1}),
        total_items: 0,
        completed_items: 0,
        failed_items: 0,
        cancelled_items: 0,
        error: None,
        created_at: 1,
        updated_at: 1,
        kek_version: None,
        wrapped_key: None,
    };
    let id = rotation.id.to_string();
    // Held elsewhere while it is changed, so that no worker takes it first.
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, &key, &rotation).await.unwrap();
    tx.commit().await.unwrap();
    exec(
        db,
        &format!(
            "UPDATE tasks SET lease_owner = 'elsewhere', lease_until = 9000000000000000000 \
             WHERE id = '{id}'"
        ),
    )
    .await;
    raw_sql!(db, p => sqlx::query("UPDATE tasks SET params = $1 WHERE id = $2")
        .bind(sqlx::types::Json(json!({"to_version": 7})))
        .bind(&id)
        .execute(p).await.map(|_| ()).unwrap());
    exec(
        db,
        &format!("UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE id = '{id}'"),
    )
    .await;

    // This server's rotation worker, or this call, claims it; either way it fails.
    let (_stop, stop) = tokio::sync::watch::channel(false);
    app.services
        .tasks()
        .run_rotation("w1", LEASE, &stop)
        .await
        .unwrap();
    for _ in 0..600 {
        if stored_status(db, &id).await.0 == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stored_status(db, &id).await,
        (
            "failed".into(),
            Some("the task failed its integrity check".into())
        )
    );
    let reports = integrity_reports(db).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(
        reports[0]["reason"],
        format!("task {id}: MAC does not verify")
    );
    // No key version 7 was made or used.
    let keys = app
        .jwt_client("acme", &[Role::Admin])
        .get("/v1/admin/keys")
        .await;
    assert_eq!(keys.status, 200, "{:?}", keys.body);
    assert!(
        !keys.body.to_string().contains("\"version\":7"),
        "{:?}",
        keys.body
    );
}
both_stores!(forged_rotation, a_forged_rotation_is_not_run);

// A finished link-provisioning task set back to pending in storage is not run again: its
// items' input (the SIM) was cleared when they ended, so their MACs no longer verify.
async fn a_finished_link_task_is_not_replayed(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let db = &app.test_db.db;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=2).await;
    let a = operator
        .post(
            "/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": ids}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let worker = app.services.tasks();
    assert!(worker.run_bulk_batch("w1", LEASE).await.unwrap());
    assert_eq!(stored_status(db, &id).await.0, "completed");
    assert!(integrity_reports(db).await.is_empty());
    // Back to pending, as a database writer would set it.
    exec(
        db,
        &format!(
            "UPDATE task_items SET status = 'pending', result = NULL, error = NULL WHERE task_id = '{id}'"
        ),
    )
    .await;
    exec(
        db,
        &format!("UPDATE tasks SET status = 'pending', completed_items = 0 WHERE id = '{id}'"),
    )
    .await;
    worker.run_bulk_batch("w2", LEASE).await.unwrap();
    let (status, error) = stored_status(db, &id).await;
    assert_eq!(status, "failed", "{error:?}");
    assert!(
        !integrity_reports(db).await.is_empty(),
        "the replayed items are reported"
    );
    let items = stored_items(db, &id).await;
    assert!(items.iter().all(|s| s != "succeeded"), "{items:?}");
}
both_stores!(
    finished_link_task_replayed,
    a_finished_link_task_is_not_replayed
);
