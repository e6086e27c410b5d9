//! Bulk state and field changes (`/v1/sims/bulk/state`, `/v1/sims/bulk/patch`), the task list
//! (`GET /v1/tasks`) and cancelling a task (`POST /v1/tasks/{id}/cancel`): per-item outcomes,
//! records and events as the single changes make them, and what another tenant or a role
//! without the right does not get.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;
use simvault::domain::task::{TaskKind, TaskRecord, TaskStatus};
use simvault::store::tasks;

use crate::bulk::{all_items, wait_for_task};
use crate::helpers::{Api, Store, TestApp, TestDb, both_stores, iccid, raw_sql, tenant_id};

const LEASE: Duration = Duration::from_secs(60);

/// An app whose own workers leave bulk tasks alone: tests drive them by hand.
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

async fn task_count(app: &TestApp) -> i64 {
    raw_sql!(&app.test_db.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(p).await.unwrap())
}

fn key(app: &TestApp) -> std::sync::Arc<simvault::vault::IntegrityKey> {
    app.services.core.keyring.integrity().unwrap()
}

async fn record(app: &TestApp, id: &str) -> TaskRecord {
    let id = simvault::domain::TaskId::parse(id).unwrap();
    tasks::get(&app.test_db.db, &key(app), &tenant_id("acme"), &id)
        .await
        .unwrap()
        .unwrap()
}

fn statuses(items: &[Value]) -> Vec<&str> {
    items
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect()
}

async fn bulk_state_changes_what_it_may_and_fails_the_rest_alone(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=3).await;
    let retired = operator
        .patch(
            &format!("/v1/sims/{}/state", ids[2]),
            &json!({"state": "retired"}),
        )
        .await;
    assert_eq!(retired.status, 200, "{:?}", retired.body);
    let theirs = sims(
        &app.mtls_api("other", &[Role::Provisioner], "p2").await,
        [50],
    )
    .await;
    let missing = uuid::Uuid::new_v4().to_string();

    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({
                "sim_ids": [ids[0], iccid(2), ids[2], missing, theirs[0]],
                "state": "active",
                "reason": "go live",
            }),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["type"], "bulk_state");
    assert_eq!(a.body["total_items"], 5);
    assert_eq!(a.body["cancelled_items"], 0);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = wait_for_task(&operator, &id, Duration::from_secs(60)).await;
    assert_eq!(task["status"], "completed", "{task:?}");
    assert_eq!(task["completed_items"], 2);
    assert_eq!(task["failed_items"], 3);
    assert_eq!(task["pending_items"], 0);

    let items = all_items(&operator, &id).await;
    assert_eq!(
        statuses(&items),
        ["succeeded", "succeeded", "failed", "failed", "failed"]
    );
    assert_eq!(items[0]["result"]["previous_state"], "inventory");
    assert_eq!(items[0]["result"]["state"], "active");
    // Named by its ICCID, the item shows the SIM it reached.
    assert_eq!(items[1]["sim_id"], ids[1].as_str());
    assert_eq!(items[1]["result"]["iccid"], iccid(2));
    assert_eq!(items[2]["sim_id"], ids[2].as_str());
    assert_eq!(
        items[2]["error"],
        "invalid state transition from retired to active"
    );
    // Another tenant's SIM is exactly a missing one.
    assert_eq!(items[3]["error"], "no such SIM");
    assert_eq!(items[4]["error"], "no such SIM");
    assert!(items[4]["result"].is_null());

    for (sim, state) in [
        (&ids[0], "active"),
        (&ids[1], "active"),
        (&ids[2], "retired"),
    ] {
        let s = operator.get(&format!("/v1/sims/{sim}")).await.body;
        assert_eq!(s["state"], state, "{sim}");
    }
    let s = operator.get(&format!("/v1/sims/{}", ids[0])).await.body;
    assert_eq!(s["state_reason"], "go live");
    let other = app.jwt_client("other", &[Role::Operator]);
    let t = other.get(&format!("/v1/sims/{}", theirs[0])).await.body;
    assert_eq!(t["state"], "inventory", "another tenant's SIM is untouched");

    // Recorded as the single change records: by the caller, with the reason; the refused
    // item has no record of a change.
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=sim.state&limit=100")
        .await
        .body;
    let records = log["items"].as_array().unwrap();
    for sim in [&ids[0], &ids[1]] {
        let mine: Vec<&Value> = records
            .iter()
            .filter(|r| r["sim_id"] == sim.as_str())
            .collect();
        assert_eq!(mine.len(), 1, "{records:?}");
        assert_eq!(mine[0]["outcome"], "allowed");
        assert_eq!(mine[0]["reason"], "go live");
        assert_eq!(mine[0]["actor"]["subject"], "tester");
    }
    // The retirement made by hand, nothing from the bulk change.
    let third = records
        .iter()
        .filter(|r| r["sim_id"] == ids[2].as_str())
        .count();
    assert_eq!(third, 1);

    // Evented as the single change: one sim.state_changed per SIM changed.
    let events = simvault::store::outbox::events(&app.test_db.db, &tenant_id("acme"))
        .await
        .unwrap();
    let changed = |sim: &str| {
        events
            .iter()
            .filter(|e| e.event_type == "sim.state_changed" && e.payload.contains(sim))
            .count()
    };
    assert_eq!(changed(&ids[0]), 1);
    assert_eq!(changed(&ids[1]), 1);
    assert_eq!(changed(&ids[2]), 1, "only the retirement by hand");
    let verify = auditor.get("/v1/audit/verify").await;
    assert_eq!(verify.body["ok"], true, "{:?}", verify.body);
}
both_stores!(
    bulk_state_changes_what_it_may_and_fails_the_rest_alone,
    bulk_state_changes_what_it_may_and_fails_the_rest_alone
);

async fn bulk_patch_moves_sims_between_groups(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let group = |name: &'static str| {
        let operator = &operator;
        async move {
            let a = operator.post("/v1/groups", &json!({"name": name})).await;
            assert_eq!(a.status, 201, "{:?}", a.body);
            a.body["id"].as_str().unwrap().to_owned()
        }
    };
    let (from, to) = (group("fleet-a").await, group("fleet-b").await);
    let mut ids = Vec::new();
    for n in 1..=3 {
        let sim = prov
            .create_sim(json!({"iccid": iccid(n), "group_id": from}))
            .await;
        ids.push(sim["id"].as_str().unwrap().to_owned());
    }
    let missing = uuid::Uuid::new_v4().to_string();
    let a = operator
        .post(
            "/v1/sims/bulk/patch",
            &json!({
                "sim_ids": [ids[0], missing, iccid(2)],
                "patch": {"group_id": to, "tags": ["moved"]},
            }),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    assert_eq!(a.body["type"], "bulk_patch");
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = wait_for_task(&operator, &id, Duration::from_secs(60)).await;
    assert_eq!(task["completed_items"], 2, "{task:?}");
    assert_eq!(task["failed_items"], 1);
    let items = all_items(&operator, &id).await;
    assert_eq!(statuses(&items), ["succeeded", "failed", "succeeded"]);
    assert_eq!(items[1]["error"], "no such SIM");

    for (sim, group, tags) in [
        (&ids[0], &to, json!(["moved"])),
        (&ids[1], &to, json!(["moved"])),
        (&ids[2], &from, json!([])),
    ] {
        let s = operator.get(&format!("/v1/sims/{sim}")).await.body;
        assert_eq!(s["group_id"], group.as_str(), "{sim}");
        assert_eq!(s["tags"], tags, "{sim}");
    }
    let count = |g: String| {
        let operator = &operator;
        async move { operator.get(&format!("/v1/groups/{g}")).await.body["sim_count"].clone() }
    };
    assert_eq!(count(from.clone()).await, 1);
    assert_eq!(count(to.clone()).await, 2);

    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=sim.update&limit=100")
        .await
        .body;
    let records = log["items"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r["actor"]["subject"] == "tester"));
}
both_stores!(
    bulk_patch_moves_sims_between_groups,
    bulk_patch_moves_sims_between_groups
);

async fn a_bad_bulk_body_is_refused_and_queues_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, [1]).await;
    let theirs = app
        .jwt_client("other", &[Role::Operator])
        .post("/v1/groups", &json!({"name": "theirs"}))
        .await
        .body["id"]
        .clone();
    let sim = &ids[0];
    for (body, pointer) in [
        (
            json!({"sim_ids": [sim], "patch": {"msisdn": "call me"}}),
            "/patch/msisdn",
        ),
        (
            json!({"sim_ids": [sim], "patch": {"colour": "red"}}),
            "/patch/colour",
        ),
        (
            json!({"sim_ids": [sim], "patch": {"tags": "x"}}),
            "/patch/tags",
        ),
        (json!({"sim_ids": [sim], "patch": [1]}), "/patch"),
        (json!({"sim_ids": [sim]}), "/patch"),
        // A group of no one's, or of another tenant (the same answer).
        (
            json!({"sim_ids": [sim], "patch": {"group_id": uuid::Uuid::new_v4()}}),
            "/patch/group_id",
        ),
        (
            json!({"sim_ids": [sim], "patch": {"group_id": theirs}}),
            "/patch/group_id",
        ),
        (json!({"sim_ids": [], "patch": {}}), "/sim_ids"),
        (json!({"sim_ids": [sim, sim], "patch": {}}), "/sim_ids/1"),
        (
            json!({"sim_ids": [iccid(1), iccid(1)], "patch": {}}),
            "/sim_ids/1",
        ),
        (json!({"sim_ids": ["not a SIM"], "patch": {}}), "/sim_ids/0"),
        (json!({"patch": {}}), "/sim_ids"),
    ] {
        let a = operator.post("/v1/sims/bulk/patch", &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert!(a.pointers().contains(&pointer), "{body}: {:?}", a.body);
    }
    for (body, pointer) in [
        (json!({"sim_ids": [sim], "state": "asleep"}), "/state"),
        (json!({"sim_ids": [sim]}), "/state"),
        (
            json!({"sim_ids": [sim], "state": "active", "reason": 7}),
            "/reason",
        ),
        (
            json!({"sim_ids": [sim, sim], "state": "active"}),
            "/sim_ids/1",
        ),
        (json!({"sim_ids": "all", "state": "active"}), "/sim_ids"),
        (
            json!({"sim_ids": [sim], "state": "active", "when": "now"}),
            "/when",
        ),
    ] {
        let a = operator.post("/v1/sims/bulk/state", &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert!(a.pointers().contains(&pointer), "{body}: {:?}", a.body);
    }
    // Every problem at once.
    let a = operator
        .post(
            "/v1/sims/bulk/patch",
            &json!({"sim_ids": [], "patch": {"msisdn": "x", "imei": "1"}}),
        )
        .await;
    assert_eq!(a.status, 400);
    for pointer in ["/sim_ids", "/patch/msisdn", "/patch/imei"] {
        assert!(a.pointers().contains(&pointer), "{:?}", a.body);
    }
    assert_eq!(task_count(&app).await, 0);
}
both_stores!(
    a_bad_bulk_body_is_refused_and_queues_nothing,
    a_bad_bulk_body_is_refused_and_queues_nothing
);

async fn the_task_list_filters_pages_and_shows_the_newest_first(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, [1, 2]).await;
    let mut queued = Vec::new();
    for (path, body) in [
        (
            "/v1/sims/bulk/state",
            json!({"sim_ids": [ids[0]], "state": "active"}),
        ),
        (
            "/v1/sims/bulk/patch",
            json!({"sim_ids": [ids[1]], "patch": {"tags": ["a"]}}),
        ),
        (
            "/v1/sims/bulk/state",
            json!({"sim_ids": ids, "state": "blocked"}),
        ),
        (
            "/v1/sims/bulk/provision-links",
            json!({"name_prefix": "f", "sim_ids": [ids[0]]}),
        ),
        (
            "/v1/sims/bulk/state",
            json!({"sim_ids": [ids[1]], "state": "retired"}),
        ),
    ] {
        let a = operator.post(path, &body).await;
        assert_eq!(a.status, 202, "{path}: {:?}", a.body);
        queued.push(a.body["id"].as_str().unwrap().to_owned());
    }
    let newest_first: Vec<String> = queued.iter().rev().cloned().collect();

    let list = |q: &'static str| {
        let operator = &operator;
        async move {
            let a = operator.get(&format!("/v1/tasks{q}")).await;
            assert_eq!(a.status, 200, "{q}: {:?}", a.body);
            a.body
        }
    };
    let ids_of = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let all = list("").await;
    assert_eq!(all["total"], 5);
    assert_eq!(all["page"], 1);
    assert_eq!(all["page_size"], 20);
    assert_eq!(all["pages"], 1);
    assert_eq!(ids_of(&all), newest_first);
    assert_eq!(all["items"][0]["type"], "bulk_state");
    assert_eq!(all["items"][0]["pending_items"], 1);

    let states = list("?type=bulk_state").await;
    assert_eq!(states["total"], 3);
    assert_eq!(
        ids_of(&states),
        [queued[4].clone(), queued[2].clone(), queued[0].clone()]
    );
    assert_eq!(list("?type=provision_links").await["total"], 1);
    assert_eq!(list("?status=pending").await["total"], 5);
    assert_eq!(list("?status=completed").await["total"], 0);
    assert_eq!(list("?type=bulk_patch&status=pending").await["total"], 1);

    let second = list("?page=2&page_size=2").await;
    assert_eq!(second["total"], 5);
    assert_eq!(second["pages"], 3);
    assert_eq!(ids_of(&second), newest_first[2..4].to_vec());
    let last = list("?page=3&page_size=2").await;
    assert_eq!(ids_of(&last), newest_first[4..].to_vec());

    // Cancelled tasks are listed under their status.
    let c = operator
        .post(&format!("/v1/tasks/{}/cancel", queued[0]), &json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(
        ids_of(&list("?status=cancelled").await),
        [queued[0].clone()]
    );
    assert_eq!(list("?status=pending").await["total"], 4);

    for (q, parameter) in [
        ("?colour=red", "colour"),
        ("?type=nightly", "type"),
        ("?status=done", "status"),
        ("?page_size=0", "page_size"),
        ("?page=zero", "page"),
        ("?status=pending&status=failed", "status"),
    ] {
        let a = operator.get(&format!("/v1/tasks{q}")).await;
        assert_eq!(a.status, 400, "{q}: {:?}", a.body);
        let named = a.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["parameter"] == parameter);
        assert!(named, "{q}: {:?}", a.body);
    }

    // Readers of tasks may list them; auditors read the audit log only.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(support.get("/v1/tasks").await.body["total"], 5);
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    assert_eq!(auditor.get("/v1/tasks").await.status, 403);
    // Another tenant's tasks are never listed.
    let other = app.jwt_client("other", &[Role::Admin]);
    let theirs = other.get("/v1/tasks").await;
    assert_eq!(theirs.status, 200);
    assert_eq!(theirs.body["total"], 0);
    assert_eq!(theirs.body["items"], json!([]));
}
both_stores!(
    the_task_list_filters_pages_and_shows_the_newest_first,
    the_task_list_filters_pages_and_shows_the_newest_first
);

/// Cancelling half way: the items done stay done, the pending ones are cancelled, and a
/// worker that held a batch when the cancel landed commits none of it.
async fn cancel_keeps_what_is_done_and_stops_the_rest(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=5).await;
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = record(&app, &id).await;
    let worker = app.services.tasks();

    // Two items done, one batch of one held by another worker.
    assert!(
        worker
            .work_on_up_to(&task.id, "w1", LEASE, 2)
            .await
            .unwrap()
    );
    let now = simvault::clock::Clock::now(&simvault::clock::SystemClock);
    let held = tasks::claim_items(
        &app.test_db.db,
        &key(&app),
        &task.id,
        "w2",
        now,
        now + 60_000_000,
        1,
    )
    .await
    .unwrap();
    assert_eq!(held.items.len(), 1);
    assert_eq!(held.items[0].seq, 3);

    let c = operator
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["status"], "cancelled");
    assert_eq!(c.body["completed_items"], 2);
    assert_eq!(c.body["failed_items"], 0);
    assert_eq!(c.body["cancelled_items"], 3);
    assert_eq!(c.body["pending_items"], 0);

    // The worker holding item 3 commits its batch after the cancel: nothing of it.
    worker.work_leased(&task.id, held, "w2").await.unwrap();
    assert!(!worker.work_on(&task.id, "w3", LEASE).await.unwrap());
    assert!(!worker.run_bulk_batch("w4", LEASE).await.unwrap());
    let after = operator.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(after, c.body, "the task is as the cancel left it");

    let items = all_items(&operator, &id).await;
    assert_eq!(
        statuses(&items),
        [
            "succeeded",
            "succeeded",
            "cancelled",
            "cancelled",
            "cancelled"
        ]
    );
    let cancelled = operator
        .get(&format!("/v1/tasks/{id}/items?status=cancelled"))
        .await;
    assert_eq!(cancelled.body["total"], 3, "{:?}", cancelled.body);
    for (n, sim) in ids.iter().enumerate() {
        let state = operator.get(&format!("/v1/sims/{sim}")).await.body["state"].clone();
        assert_eq!(state, if n < 2 { "active" } else { "inventory" }, "{sim}");
    }

    // Cancelling again answers the task unchanged.
    let again = operator
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body, c.body);

    // One task.completed event (cancelled); the cancel recorded by its caller.
    let events = simvault::store::outbox::events(&app.test_db.db, &tenant_id("acme"))
        .await
        .unwrap();
    let ended: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "task.completed")
        .collect();
    assert_eq!(ended.len(), 1);
    let payload: Value = serde_json::from_str(&ended[0].payload).unwrap();
    assert_eq!(payload["status"], "cancelled");
    assert_eq!(payload["completed_items"], 2);
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=task.cancel&limit=10")
        .await
        .body;
    let records = log["items"].as_array().unwrap();
    assert_eq!(records.len(), 2, "{records:?}");
    assert!(records.iter().all(|r| r["outcome"] == "allowed"));
    assert!(records.iter().any(|r| {
        r["reason"]
            .as_str()
            .unwrap()
            .contains("3 pending item(s) cancelled")
    }));
    let verify = auditor.get("/v1/audit/verify").await;
    assert_eq!(verify.body["ok"], true, "{:?}", verify.body);
}
both_stores!(
    cancel_keeps_what_is_done_and_stops_the_rest,
    cancel_keeps_what_is_done_and_stops_the_rest
);

/// A cancel landing after the last batch committed but before the task was finished finds
/// nothing pending: the task completes as its worker would have completed it, not
/// `cancelled` with nothing cancelled.
async fn a_cancel_with_nothing_pending_completes_the_task(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=2).await;
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = record(&app, &id).await;
    let worker = app.services.tasks();
    let now = simvault::clock::Clock::now(&simvault::clock::SystemClock);
    let held = tasks::claim_items(
        &app.test_db.db,
        &key(&app),
        &task.id,
        "w1",
        now,
        now + 60_000_000,
        10,
    )
    .await
    .unwrap();
    assert_eq!(held.items.len(), 2);
    // The batch commits; the worker stops before finishing the task.
    worker.work_leased(&task.id, held, "w1").await.unwrap();
    assert_eq!(record(&app, &id).await.status, TaskStatus::Running);

    let c = operator
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body["status"], "completed", "{:?}", c.body);
    assert_eq!(c.body["completed_items"], 2);
    assert_eq!(c.body["cancelled_items"], 0);
    assert_eq!(c.body["pending_items"], 0);
    let events = simvault::store::outbox::events(&app.test_db.db, &tenant_id("acme"))
        .await
        .unwrap();
    let ended: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type == "task.completed")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "completed");
    // Nothing is left for a worker, and the task stays completed.
    assert!(!worker.run_bulk_batch("w2", LEASE).await.unwrap());
    let after = operator.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(after, c.body);
}
both_stores!(
    a_cancel_with_nothing_pending_completes_the_task,
    a_cancel_with_nothing_pending_completes_the_task
);

async fn cancelling_an_ended_task_changes_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, [1]).await;
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&operator, &id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "completed");
    let c = operator
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status, 200, "{:?}", c.body);
    assert_eq!(c.body, done, "answered unchanged");
    assert_eq!(c.body["cancelled_items"], 0);

    // A key rotation runs to its end: not cancelled, even while it runs.
    let rotation = TaskRecord {
        id: simvault::domain::TaskId::new(),
        tenant_id: tenant_id("acme"),
        kind: TaskKind::KeyRotation,
        status: TaskStatus::Running,
        params: json!({}),
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
    let db = &app.test_db.db;
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, &key(&app), &rotation).await.unwrap();
    tx.commit().await.unwrap();
    // Held by a worker elsewhere, so that this server's does not take it.
    raw_sql!(db, p => sqlx::query(
        "UPDATE tasks SET lease_owner = 'elsewhere', lease_until = 9000000000000000000 WHERE id = $1")
        .bind(rotation.id.to_string()).execute(p).await.map(|_| ()).unwrap());
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let r = admin
        .post(&format!("/v1/tasks/{}/cancel", rotation.id), &json!({}))
        .await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(
        admin.get(&format!("/v1/tasks/{}", rotation.id)).await.body["status"],
        "running"
    );
}
both_stores!(
    cancelling_an_ended_task_changes_nothing,
    cancelling_an_ended_task_changes_nothing
);

/// Another tenant's task is not found, whatever the caller's roles; support may read tasks
/// but neither queue bulk changes nor cancel.
async fn tasks_are_not_reached_across_tenants_or_by_support(store: Store) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, [1]).await;
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();

    let other = app.jwt_client("other", &[Role::Admin, Role::Operator]);
    let get = other.get(&format!("/v1/tasks/{id}")).await;
    assert_eq!(get.status, 404, "{:?}", get.body);
    let items = other.get(&format!("/v1/tasks/{id}/items")).await;
    assert_eq!(items.status, 404);
    let cancel = other
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(cancel.status, 404, "{:?}", cancel.body);
    assert!(!cancel.body.to_string().contains(&ids[0]));
    assert_eq!(other.get("/v1/tasks").await.body["total"], 0);
    // Another tenant's SIM named in a bulk change is no SIM of theirs: the item fails.
    let theirs = other
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": [ids[0]], "state": "retired"}),
        )
        .await;
    assert_eq!(theirs.status, 202);
    let theirs_id = theirs.body["id"].as_str().unwrap().to_owned();
    let task = tasks::get(
        &app.test_db.db,
        &key(&app),
        &tenant_id("other"),
        &simvault::domain::TaskId::parse(&theirs_id).unwrap(),
    )
    .await
    .unwrap()
    .unwrap();
    app.services
        .tasks()
        .work_on(&task.id, "w", LEASE)
        .await
        .unwrap();
    let items = all_items(&other, &theirs_id).await;
    assert_eq!(items[0]["error"], "no such SIM");
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", ids[0])).await.body["state"],
        "inventory"
    );

    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(support.get(&format!("/v1/tasks/{id}")).await.status, 200);
    let before = task_count(&app).await;
    for (path, body) in [
        (
            "/v1/sims/bulk/state",
            json!({"sim_ids": ids, "state": "retired"}),
        ),
        (
            "/v1/sims/bulk/patch",
            json!({"sim_ids": ids, "patch": {"tags": ["x"]}}),
        ),
    ] {
        let a = support.post(path, &body).await;
        assert_eq!(a.status, 403, "{path}: {:?}", a.body);
    }
    assert_eq!(task_count(&app).await, before, "nothing queued");
    let c = support
        .post(&format!("/v1/tasks/{id}/cancel"), &json!({}))
        .await;
    assert_eq!(c.status, 403, "{:?}", c.body);
    let t = operator.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(t["status"], "pending", "not cancelled");
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=task.cancel&limit=10")
        .await
        .body;
    let records = log["items"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["outcome"], "denied");
}
both_stores!(
    tasks_are_not_reached_across_tenants_or_by_support,
    tasks_are_not_reached_across_tenants_or_by_support
);

/// Migration 0014 keeps every task and item as it was (SQLite rebuilds both tables), with no
/// item cancelled, and then admits the `cancelled` statuses; the items still belong to their
/// task (the foreign key follows the rebuilt table).
async fn migration_0014_keeps_tasks_and_items(store: Store) {
    let t = TestDb::at_version(store, 13).await;
    let db = &t.db;
    raw_sql!(db, p => sqlx::query("INSERT INTO tenants (id, created_at) VALUES ('acme', 1)")
        .execute(p).await.map(|_| ()))
    .unwrap();
    raw_sql!(db, p => sqlx::query(
        "INSERT INTO tasks (id, tenant_id, type, status, params, total_items, completed_items, \
         failed_items, created_at, updated_at, kek_version, wrapped_key) \
         VALUES ('t1', 'acme', 'import', 'running', '{}', 2, 1, 0, 5, 6, 1, $1)")
        .bind(vec![7_u8; 4])
        .execute(p).await.map(|_| ()))
    .unwrap();
    for (seq, status) in [(1, "succeeded"), (2, "pending")] {
        raw_sql!(db, p => sqlx::query(
            "INSERT INTO task_items (task_id, seq, status, input, sim_id, lease_owner, lease_until) \
             VALUES ('t1', $1, $2, $3, 's', 'w', 9)")
            .bind(seq)
            .bind(status)
            .bind(vec![1_u8, 2])
            .execute(p).await.map(|_| ()))
        .unwrap();
    }
    db.migrate().await.unwrap();

    type TaskRow = (String, String, i64, i64, i64, Option<Vec<u8>>, i64);
    let task: TaskRow = raw_sql!(db, p => sqlx::query_as(
        "SELECT status, type, total_items, completed_items, cancelled_items, wrapped_key, updated_at \
         FROM tasks WHERE id = 't1'")
        .fetch_one(p).await)
    .unwrap();
    assert_eq!(
        task,
        (
            "running".into(),
            "import".into(),
            2,
            1,
            0,
            Some(vec![7; 4]),
            6
        )
    );
    type ItemRow = (i64, String, Option<Vec<u8>>, Option<String>, Option<i64>);
    let items: Vec<ItemRow> = raw_sql!(db, p => sqlx::query_as(
        "SELECT seq, status, input, lease_owner, lease_until FROM task_items ORDER BY seq")
        .fetch_all(p).await)
    .unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        items[1],
        (
            2,
            "pending".into(),
            Some(vec![1, 2]),
            Some("w".into()),
            Some(9)
        )
    );
    // The new statuses are admitted, others still refused, and items need their task.
    for (sql, ok) in [
        (
            "UPDATE tasks SET status = 'cancelled' WHERE id = 't1'",
            true,
        ),
        (
            "UPDATE task_items SET status = 'cancelled' WHERE seq = 2",
            true,
        ),
        ("UPDATE tasks SET status = 'paused' WHERE id = 't1'", false),
        (
            "UPDATE task_items SET status = 'skipped' WHERE seq = 2",
            false,
        ),
        (
            "INSERT INTO task_items (task_id, seq, status) VALUES ('nope', 1, 'pending')",
            false,
        ),
    ] {
        let done =
            raw_sql!(db, p => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(p).await.map(|_| ()));
        assert_eq!(done.is_ok(), ok, "{sql}");
    }
}
both_stores!(migration_0014, migration_0014_keeps_tasks_and_items);

/// A batch locks every SIM it changes, in the order of the SIM id's text whatever the
/// request's order, before it writes any record: while another transaction holds the SIM of
/// the lowest id, the batch waits holding neither another SIM nor the tenant's chain (which
/// a single change, locking its SIM and then the chain, would deadlock against).
async fn a_batch_locks_its_sims_in_id_order_before_any_record() {
    let app = by_hand(Store::Postgres).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let mut ids = sims(&prov, 1..=3).await;
    ids.sort();
    let lowest = ids[0].clone();
    ids.reverse();
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let task = record(&app, &id).await;

    let db = &app.test_db.db;
    let mut hold = db.begin().await.unwrap();
    let simvault::store::Tx::Postgres(t) = &mut hold else {
        unreachable!()
    };
    sqlx::query("SELECT id FROM sims WHERE id = $1 FOR UPDATE")
        .bind(&lowest)
        .execute(&mut **t)
        .await
        .unwrap();
    let batch = {
        let (worker, task) = (app.services.tasks().clone(), task.clone());
        tokio::spawn(async move { worker.work_on(&task.id, "w1", LEASE).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!batch.is_finished(), "the batch must wait for the SIM");
    // Neither the tenant's chain nor the other SIMs are held meanwhile.
    let mut probe = db.begin().await.unwrap();
    let simvault::store::Tx::Postgres(p) = &mut probe else {
        unreachable!()
    };
    sqlx::query("SELECT seq FROM audit_heads WHERE tenant_id = $1 FOR UPDATE NOWAIT")
        .bind(tenant_id("acme").as_str())
        .execute(&mut **p)
        .await
        .expect("the chain is not held by the waiting batch");
    sqlx::query("SELECT id FROM sims WHERE id = $1 OR id = $2 FOR UPDATE NOWAIT")
        .bind(&ids[0])
        .bind(&ids[1])
        .execute(&mut **p)
        .await
        .expect("no SIM after the lowest is held by the waiting batch");
    drop(probe);
    hold.commit().await.unwrap();
    assert!(batch.await.unwrap().unwrap());

    let items = all_items(&operator, &id).await;
    assert_eq!(statuses(&items), ["succeeded", "succeeded", "succeeded"]);
    for (item, sim) in items.iter().zip(&ids) {
        assert_eq!(item["sim_id"], sim.as_str(), "outcomes in request order");
    }
    let verify = app
        .jwt_client("acme", &[Role::Auditor])
        .get("/v1/audit/verify")
        .await;
    assert_eq!(verify.body["ok"], true, "{:?}", verify.body);
}
crate::helpers::postgres_test!(
    async fn batch_lock_order() {
        a_batch_locks_its_sims_in_id_order_before_any_record().await
    }
);

/// A task whose change or actor cannot be read fails once, with its pending items, never
/// changing a SIM; it is not tried again batch after batch. (Parameters changed in storage
/// fail the task's MAC first, see `task_integrity`; these are authentic yet unreadable, as a
/// bug would write them: the MAC is made again over them.)
async fn a_task_with_unreadable_params_fails_once(store: Store, unreadable: &str) {
    let app = by_hand(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let ids = sims(&prov, 1..=2).await;
    let a = operator
        .post(
            "/v1/sims/bulk/state",
            &json!({"sim_ids": ids, "state": "active"}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    let db = &app.test_db.db;
    let stored = record(&app, &id).await;
    let mut params = stored.params.clone();
    if unreadable == "actor" {
        params["actor"]["roles"] = json!(["root"]);
    } else {
        params["state"] = json!("molten");
    }
    let mac = crate::task_integrity::task_mac(&key(&app), &stored, &params);
    raw_sql!(db, p => sqlx::query("UPDATE tasks SET params = $1, mac = $2 WHERE id = $3")
        .bind(sqlx::types::Json(&params))
        .bind(mac)
        .bind(&id)
        .execute(p).await.map(|_| ()).unwrap());

    let worker = app.services.tasks();
    assert!(worker.run_bulk_batch("w1", LEASE).await.unwrap());
    let task = operator.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(task["status"], "failed", "{task:?}");
    assert_eq!(task["failed_items"], 2);
    assert_eq!(task["completed_items"], 0);
    assert_eq!(task["pending_items"], 0);
    let items = all_items(&operator, &id).await;
    assert_eq!(statuses(&items), ["failed", "failed"]);
    for sim in &ids {
        let s = operator.get(&format!("/v1/sims/{sim}")).await.body;
        assert_eq!(s["state"], "inventory", "{sim}");
    }
    // Nothing is left to retry.
    assert!(!worker.run_bulk_batch("w2", LEASE).await.unwrap());
    assert_eq!(
        operator.get(&format!("/v1/tasks/{id}")).await.body,
        task,
        "failed once"
    );
    let events = simvault::store::outbox::events(db, &tenant_id("acme"))
        .await
        .unwrap();
    let ended: Vec<Value> = events
        .iter()
        .filter(|e| e.event_type == "task.completed")
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["status"], "failed");
}
async fn a_task_with_an_unreadable_change_fails_once(store: Store) {
    a_task_with_unreadable_params_fails_once(store, "state").await;
}
both_stores!(
    a_task_with_an_unreadable_change_fails_once,
    a_task_with_an_unreadable_change_fails_once
);

async fn a_task_with_an_unreadable_actor_fails_once(store: Store) {
    a_task_with_unreadable_params_fails_once(store, "actor").await;
}
both_stores!(
    a_task_with_an_unreadable_actor_fails_once,
    a_task_with_an_unreadable_actor_fails_once
);
