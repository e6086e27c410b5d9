//! SIM groups: CRUD, the refusals (duplicate names, unknown or foreign groups, deleting one
//! with SIMs, roles), SIMs joining and moving between groups, `include=group`, the audit
//! records, and the migration that turns free-text group labels into groups.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::bulk::{all_items, wait_for_task};
use crate::helpers::{
    Api, Store, TestApp, TestDb, both_stores, chain_records, iccid, raw_sql, sim_body,
};

async fn group(api: &Api, body: Value) -> String {
    let a = api.post("/v1/groups", &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn groups_crud(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .post(
            "/v1/groups",
            &json!({"name": "fleet-a", "description": "vans", "data_limit": {"amount": 2, "unit": "GB"}, "imei_lock": true}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"].to_str().unwrap(),
        format!("/v1/groups/{id}")
    );
    assert_eq!(a.body["name"], "fleet-a");
    assert_eq!(a.body["description"], "vans");
    assert_eq!(a.body["data_limit"], json!({"amount": 2.0, "unit": "GB"}));
    assert_eq!(a.body["imei_lock"], true);
    assert_eq!(a.body["sim_count"], 0);
    assert!(a.body["created_at"].as_str().unwrap().ends_with('Z'));
    let got = operator.get(&format!("/v1/groups/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, a.body);

    // Defaults: no description, no limit, no lock.
    let b = group(&operator, json!({"name": "fleet-b"})).await;
    let got = operator.get(&format!("/v1/groups/{b}")).await;
    assert!(got.body["description"].is_null());
    assert!(got.body["data_limit"].is_null());
    assert_eq!(got.body["imei_lock"], false);

    // Lists page like every list.
    let page = operator.get("/v1/groups?page_size=1&page=2").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body["total"], 2);
    assert_eq!(page.body["pages"], 2);
    assert_eq!(page.body["page"], 2);
    assert_eq!(page.body["page_size"], 1);
    assert_eq!(page.body["items"][0]["id"], b.as_str());
    assert_eq!(operator.get("/v1/groups?colour=red").await.status, 400);

    // PATCH: only what is given changes; null clears.
    let p = operator
        .patch(
            &format!("/v1/groups/{id}"),
            &json!({"description": null, "data_limit": {"amount": 500, "unit": "MB"}}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert!(p.body["description"].is_null());
    assert_eq!(p.body["data_limit"], json!({"amount": 500.0, "unit": "MB"}));
    assert_eq!(p.body["name"], "fleet-a");
    assert_eq!(p.body["imei_lock"], true);
    let p = operator
        .patch(
            &format!("/v1/groups/{id}"),
            &json!({"name": "fleet-c", "data_limit": null, "imei_lock": false}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["name"], "fleet-c");
    assert!(p.body["data_limit"].is_null());
    assert_eq!(p.body["imei_lock"], false);

    // Names are unique in the tenant, on create and on rename; another tenant may reuse one.
    let dup = operator
        .post("/v1/groups", &json!({"name": "fleet-b"}))
        .await;
    assert_eq!(dup.status, 409, "{:?}", dup.body);
    let dup = operator
        .patch(&format!("/v1/groups/{id}"), &json!({"name": "fleet-b"}))
        .await;
    assert_eq!(dup.status, 409, "{:?}", dup.body);
    assert_eq!(
        operator.get(&format!("/v1/groups/{id}")).await.body["name"],
        "fleet-c"
    );
    app.tenant("other").await;
    let other = app.jwt_client("other", &[Role::Operator]);
    group(&other, json!({"name": "fleet-b"})).await;

    // DELETE answers 204, and the group is gone.
    let d = operator.delete(&format!("/v1/groups/{id}")).await;
    assert_eq!(d.status, 204, "{:?}", d.body);
    assert_eq!(operator.get(&format!("/v1/groups/{id}")).await.status, 404);
    assert_eq!(
        operator.delete(&format!("/v1/groups/{id}")).await.status,
        404
    );
    assert_eq!(operator.get("/v1/groups/not-a-uuid").await.status, 404);

    // Each change is audited, naming the group by its id.
    let records = chain_records(&app.test_db.db, "acme").await;
    for action in ["group.create", "group.update", "group.delete"] {
        assert!(
            records
                .iter()
                .any(|(a, o, r)| a == action && o == "allowed" && r.to_string().contains(&id)),
            "{action}: {records:?}"
        );
    }
    assert!(
        !records
            .iter()
            .any(|(_, _, r)| r.to_string().contains("fleet-c")),
        "a record names the group by id, not by the tenant's text"
    );
}
both_stores!(crud, groups_crud);

async fn bad_input_changes_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .post(
            "/v1/groups",
            &json!({"description": 5, "data_limit": {"amount": 1, "unit": "TB"}, "imei_lock": "yes"}),
        )
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(
        a.pointers(),
        ["/name", "/description", "/data_limit", "/imei_lock"]
    );
    let a = operator
        .post("/v1/groups", &json!({"name": "x", "colour": "red"}))
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(operator.get("/v1/groups").await.body["total"], 0);

    let id = group(&operator, json!({"name": "fleet-a", "imei_lock": true})).await;
    let before = operator.get(&format!("/v1/groups/{id}")).await.body;
    let a = operator
        .patch(
            &format!("/v1/groups/{id}"),
            &json!({"name": null, "imei_lock": false, "data_limit": {"amount": -1, "unit": "MB"}}),
        )
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.pointers(), ["/name", "/data_limit"]);
    assert_eq!(operator.get(&format!("/v1/groups/{id}")).await.body, before);
}
both_stores!(bad_input, bad_input_changes_nothing);

async fn roles_and_tenants(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let id = group(&operator, json!({"name": "fleet-a"})).await;
    group(&admin, json!({"name": "fleet-admin"})).await;
    let path = format!("/v1/groups/{id}");

    for role in [
        Role::Provisioner,
        Role::Support,
        Role::Operator,
        Role::Admin,
    ] {
        let api = app.jwt_client("acme", &[role]);
        assert_eq!(api.get(&path).await.status, 200, "{role}");
        assert_eq!(api.get("/v1/groups").await.status, 200, "{role}");
    }
    for role in [Role::Provisioner, Role::Support, Role::Auditor] {
        let api = app.jwt_client("acme", &[role]);
        assert_eq!(
            api.post("/v1/groups", &json!({"name": "x"})).await.status,
            403,
            "{role}"
        );
        assert_eq!(
            api.patch(&path, &json!({"name": "y"})).await.status,
            403,
            "{role}"
        );
        assert_eq!(api.delete(&path).await.status, 403, "{role}");
    }
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    assert_eq!(auditor.get(&path).await.status, 403);
    assert_eq!(auditor.get("/v1/groups").await.status, 403);

    // Another tenant's group does not exist for them, whatever their roles.
    let stranger = app.jwt_client("other", &[Role::Admin, Role::Operator]);
    assert_eq!(stranger.get(&path).await.status, 404);
    assert_eq!(
        stranger.patch(&path, &json!({"name": "mine"})).await.status,
        404
    );
    assert_eq!(stranger.delete(&path).await.status, 404);
    assert_eq!(stranger.get("/v1/groups").await.body["total"], 0);
    assert_eq!(operator.get(&path).await.body["name"], "fleet-a");
}
both_stores!(roles, roles_and_tenants);

async fn sims_join_move_and_embed(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a", "imei_lock": true})).await;
    let b = group(&operator, json!({"name": "fleet-b"})).await;
    let foreign = group(
        &app.jwt_client("other", &[Role::Operator]),
        json!({"name": "theirs"}),
    )
    .await;

    // A SIM joins a group of its tenant on creation.
    let mut body = sim_body(1);
    body["group_id"] = json!(a);
    let sim = prov.create_sim(body).await;
    assert_eq!(sim["group_id"], a.as_str());
    assert_eq!(
        operator.get(&format!("/v1/groups/{a}")).await.body["sim_count"],
        1
    );

    // Unknown and foreign groups are both "no group with this id", a value that is no id at all
    // "not a group id", each with a pointer, and create nothing; a foreign tenant's group is
    // never revealed to exist.
    for (n, bad, detail) in [
        (2, uuid::Uuid::new_v4().to_string(), "no group with this id"),
        (3, foreign.clone(), "no group with this id"),
        (4, "fleet-a".to_owned(), "not a group id"),
    ] {
        let mut body = sim_body(n);
        body["group_id"] = json!(bad);
        let r = prov.post("/v1/sims", &body).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.pointers(), ["/group_id"]);
        assert_eq!(r.body["errors"][0]["detail"], detail);
        assert_eq!(
            prov.get(&format!("/v1/sims/{}", iccid(n))).await.status,
            404
        );
    }

    // Moving between groups by PATCH; an unknown group changes nothing.
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());
    let moved = operator.patch(&path, &json!({"group_id": b})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(moved.body["group_id"], b.as_str());
    assert_eq!(
        operator.get(&format!("/v1/groups/{a}")).await.body["sim_count"],
        0
    );
    assert_eq!(
        operator.get(&format!("/v1/groups/{b}")).await.body["sim_count"],
        1
    );
    let r = operator
        .patch(&path, &json!({"group_id": foreign, "tags": ["x"]}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.pointers(), ["/group_id"]);
    let now = operator.get(&path).await.body;
    assert_eq!(now["group_id"], b.as_str());
    assert_eq!(now["tags"], json!([]));

    // include=group embeds the group (null for a SIM in none); without it, nothing is embedded.
    let one = operator.get(&format!("{path}?include=group")).await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    assert_eq!(one.body["group"]["id"], b.as_str());
    assert_eq!(one.body["group"]["name"], "fleet-b");
    assert_eq!(one.body["group"]["sim_count"], 1);
    assert!(operator.get(&path).await.body.get("group").is_none());
    prov.create_sim(sim_body(5)).await;
    let list = operator
        .get("/v1/sims?include=group&sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(list.status, 200, "{:?}", list.body);
    assert_eq!(list.body["items"][0]["group"]["name"], "fleet-b");
    assert!(list.body["items"][1]["group"].is_null());
    assert!(list.body["items"][1].get("group").is_some());
    let bad = operator.get("/v1/sims?include=device").await;
    assert_eq!(bad.status, 400);
    assert_eq!(
        operator.get(&format!("{path}?include=plan")).await.status,
        400
    );

    // The list filter takes the group's id or its name.
    for q in [b.as_str(), "fleet-b"] {
        let l = operator.get(&format!("/v1/sims?group_id={q}")).await;
        assert_eq!(l.body["total"], 1, "{q}");
    }
    assert_eq!(
        operator.get("/v1/sims?group_id=theirs").await.body["total"],
        0
    );

    // A group with SIMs cannot be deleted; emptied, it can.
    let d = operator.delete(&format!("/v1/groups/{b}")).await;
    assert_eq!(d.status, 409, "{:?}", d.body);
    assert_eq!(operator.get(&format!("/v1/groups/{b}")).await.status, 200);
    let left = operator.patch(&path, &json!({"group_id": null})).await;
    assert_eq!(left.status, 200);
    assert!(left.body["group_id"].is_null());
    assert_eq!(
        operator.delete(&format!("/v1/groups/{b}")).await.status,
        204
    );

    // A deleted SIM (a tombstone) holds no group back.
    operator.patch(&path, &json!({"group_id": a})).await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    assert_eq!(admin.delete(&path).await.status, 200);
    assert_eq!(
        operator.get(&format!("/v1/groups/{a}")).await.body["sim_count"],
        0
    );
    assert_eq!(
        operator.delete(&format!("/v1/groups/{a}")).await.status,
        204
    );
}
both_stores!(membership, sims_join_move_and_embed);

async fn imports_check_the_group(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let mut good = sim_body(1);
    good["group_id"] = json!(a);
    let mut unknown = sim_body(2);
    unknown["group_id"] = json!(uuid::Uuid::new_v4().to_string());
    let r = prov
        .post("/v1/sims/bulk/import", &json!({"sims": [good, unknown]}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let task = r.body["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&prov, &task, Duration::from_secs(60)).await;
    assert_eq!(done["completed_items"], 1, "{done:?}");
    assert_eq!(done["failed_items"], 1, "{done:?}");
    let items = all_items(&prov, &task).await;
    assert_eq!(items[0]["status"], "succeeded");
    let failed = &items[1];
    assert_eq!(failed["status"], "failed");
    assert!(
        failed["error"]
            .as_str()
            .unwrap()
            .contains("group_id: no group with this id"),
        "{failed:?}"
    );
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(1))).await.body["group_id"],
        a.as_str()
    );
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
}
both_stores!(import, imports_check_the_group);

/// The database itself refuses a SIM naming a missing group, and a group's deletion while a
/// SIM names it.
async fn the_store_refuses_dangling_groups(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let mut body = sim_body(1);
    body["group_id"] = json!(a);
    prov.create_sim(body).await;
    let dangling = raw_sql!(&app.test_db.db, p => sqlx::query(
        "UPDATE sims SET group_id = $1 WHERE iccid = $2")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(iccid(1))
        .execute(p)
        .await
        .map(|_| ()));
    assert!(dangling.is_err());
    let deleted = raw_sql!(&app.test_db.db, p => sqlx::query("DELETE FROM groups WHERE id = $1")
        .bind(&a)
        .execute(p)
        .await
        .map(|_| ()));
    assert!(deleted.is_err());
}
both_stores!(foreign_keys, the_store_refuses_dangling_groups);

/// Migration 0013 turns the labels of live SIMs into groups and devices of their tenant (one
/// per name), and leaves tombstones and empty labels naming nothing.
async fn labels_become_groups_and_devices(store: Store) {
    let t = TestDb::at_version(store, 12).await;
    let db = &t.db;
    for tenant in ["acme", "other"] {
        raw_sql!(db, p => sqlx::query("INSERT INTO tenants (id, created_at) VALUES ($1, 1)")
            .bind(tenant)
            .execute(p)
            .await
            .map(|_| ()))
        .unwrap();
    }
    // (n, tenant, group label, device label, deleted)
    type Labelled<'a> = (u64, &'a str, Option<&'a str>, Option<&'a str>, bool);
    let rows: [Labelled<'_>; 6] = [
        (1, "acme", Some("fleet-a"), Some("truck-1"), false),
        (2, "acme", Some("fleet-a"), None, false),
        (3, "acme", Some("only-dead"), Some("dead-truck"), true),
        (4, "acme", Some(""), Some(""), false),
        (5, "other", Some("fleet-a"), None, false),
        (6, "acme", None, Some("truck-1"), false),
    ];
    for (n, tenant, g, d, deleted) in rows {
        raw_sql!(db, p => sqlx::query(
            "INSERT INTO sims (id, tenant_id, iccid, sim_type, state, group_id, device_id, created_at, updated_at, deleted_at) \
             VALUES ($1, $2, $3, 'physical', 'inventory', $4, $5, $6, $6, $7)")
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(tenant)
            .bind(iccid(n))
            .bind(g)
            .bind(d)
            .bind(i64::try_from(n).unwrap() * 10)
            .bind(deleted.then_some(100_i64))
            .execute(p)
            .await
            .map(|_| ()))
        .unwrap();
    }
    db.migrate().await.unwrap();

    let groups: Vec<(String, String, String, i64)> = raw_sql!(db, p => sqlx::query_as(
        "SELECT id, tenant_id, name, created_at FROM groups ORDER BY tenant_id, name")
        .fetch_all(p)
        .await)
    .unwrap();
    let named: Vec<(&str, &str, i64)> = groups
        .iter()
        .map(|(_, t, n, c)| (t.as_str(), n.as_str(), *c))
        .collect();
    assert_eq!(named, [("acme", "fleet-a", 10), ("other", "fleet-a", 50)]);
    for (id, ..) in &groups {
        assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    }
    assert_ne!(groups[0].0, groups[1].0);
    let devices: Vec<(String, String, String)> = raw_sql!(db, p => sqlx::query_as(
        "SELECT id, tenant_id, name FROM devices ORDER BY tenant_id, name")
        .fetch_all(p)
        .await)
    .unwrap();
    let named: Vec<(&str, &str)> = devices
        .iter()
        .map(|(_, t, n)| (t.as_str(), n.as_str()))
        .collect();
    assert_eq!(named, [("acme", "truck-1")]);

    let sims: Vec<(String, Option<String>, Option<String>)> = raw_sql!(db, p => sqlx::query_as(
        "SELECT iccid, group_id, device_id FROM sims ORDER BY iccid")
        .fetch_all(p)
        .await)
    .unwrap();
    let (acme_a, other_a, truck) = (&groups[0].0, &groups[1].0, &devices[0].0);
    let expect = [
        (iccid(1), Some(acme_a.clone()), Some(truck.clone())),
        (iccid(2), Some(acme_a.clone()), None),
        (iccid(3), None, None),
        (iccid(4), None, None),
        (iccid(5), Some(other_a.clone()), None),
        (iccid(6), None, Some(truck.clone())),
    ];
    assert_eq!(sims, expect);
}
both_stores!(label_migration, labels_become_groups_and_devices);

/// `simvault import` goes through the same check: a row naming no group of the tenant fails
/// alone, with its line.
async fn the_file_import_checks_the_group(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.jsonl");
    std::fs::write(
        &file,
        format!(
            "{}\n{}\n",
            json!({"iccid": iccid(1), "group_id": a}),
            json!({"iccid": iccid(2), "group_id": uuid::Uuid::new_v4().to_string()}),
        ),
    )
    .unwrap();
    let out = app.cli(&["import", "--tenant", "acme", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("1 imported, 1 failed"), "{stdout}");
    assert!(
        stdout.contains("line 2: group_id: no group with this id"),
        "{stdout}"
    );
    assert_eq!(
        operator.get(&format!("/v1/groups/{a}")).await.body["sim_count"],
        1
    );
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
}
both_stores!(file_import, the_file_import_checks_the_group);

/// A SIM joining a group while the group is being deleted: the delete waits for the join (the
/// joiner holds the group FOR KEY SHARE) and then sees the member, so no SIM is left naming a
/// deleted group.
async fn a_delete_racing_a_join_sees_the_member() {
    use simvault::store::{Tx, groups as repo};
    let app = TestApp::spawn(Store::Postgres).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a: simvault::domain::GroupId = group(&operator, json!({"name": "fleet-a"}))
        .await
        .parse()
        .unwrap();
    prov.create_sim(sim_body(1)).await;
    let tenant = crate::helpers::tenant_id("acme");
    let db = app.test_db.db.clone();

    let mut join = db.begin().await.unwrap();
    assert!(repo::share(&mut join, &tenant, &a).await.unwrap());
    let Tx::Postgres(t) = &mut join else {
        unreachable!()
    };
    sqlx::query("UPDATE sims SET group_id = $1 WHERE iccid = $2")
        .bind(a.to_string())
        .bind(iccid(1))
        .execute(&mut **t)
        .await
        .unwrap();

    let (db2, tenant2) = (db.clone(), tenant.clone());
    let delete = tokio::spawn(async move {
        let mut tx = db2.begin().await.unwrap();
        assert!(repo::lock(&mut tx, &tenant2, &a).await.unwrap());
        let deleted = repo::delete_group(&mut tx, &tenant2, &a).await.unwrap();
        tx.commit().await.unwrap();
        deleted
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!delete.is_finished(), "the delete must wait for the join");
    join.commit().await.unwrap();
    assert!(!delete.await.unwrap(), "the delete must see the new member");
    let g = operator.get(&format!("/v1/groups/{a}")).await;
    assert_eq!(g.status, 200);
    assert_eq!(g.body["sim_count"], 1);
}
crate::helpers::postgres_test!(
    async fn delete_racing_a_join() {
        a_delete_racing_a_join_sees_the_member().await
    }
);

/// The opposite order: the delete has locked the group (FOR UPDATE) and deleted it, not yet
/// committed, when a SIM's PATCH and a SIM's create through the API name it. They wait for the
/// delete, then find no group: 400 with the pointer, never a 500 nor a SIM naming nothing.
async fn a_join_racing_a_delete_finds_no_group() {
    use simvault::store::groups as repo;
    let app = TestApp::spawn(Store::Postgres).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let id: simvault::domain::GroupId = a.parse().unwrap();
    let sim = prov.create_sim(sim_body(1)).await;
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());
    let tenant = crate::helpers::tenant_id("acme");

    let mut delete = app.test_db.db.begin().await.unwrap();
    assert!(repo::lock(&mut delete, &tenant, &id).await.unwrap());
    assert!(repo::delete_group(&mut delete, &tenant, &id).await.unwrap());

    let patch = {
        let (operator, path, a) = (operator.clone(), path.clone(), a.clone());
        tokio::spawn(async move { operator.patch(&path, &json!({"group_id": a})).await })
    };
    let create = {
        let (prov, a) = (prov.clone(), a.clone());
        tokio::spawn(async move {
            let mut body = sim_body(2);
            body["group_id"] = json!(a);
            prov.post("/v1/sims", &body).await
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!patch.is_finished(), "the PATCH must wait for the delete");
    assert!(!create.is_finished(), "the create must wait for the delete");
    delete.commit().await.unwrap();

    for r in [patch.await.unwrap(), create.await.unwrap()] {
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.pointers(), ["/group_id"]);
        assert_eq!(r.body["errors"][0]["detail"], "no group with this id");
    }
    assert!(operator.get(&path).await.body["group_id"].is_null());
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
    assert_eq!(operator.get(&format!("/v1/groups/{a}")).await.status, 404);
}
crate::helpers::postgres_test!(
    async fn join_racing_a_delete() {
        a_join_racing_a_delete_finds_no_group().await
    }
);

/// A group or device id in any UUID form (uppercase, braced, `urn:uuid:`, unhyphenated) names
/// it, and is stored in the canonical form, whichever door the SIM comes through; one that is
/// no UUID is reported with the body's other problems, all at once.
async fn references_are_stored_canonical(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let b = group(&operator, json!({"name": "fleet-b"})).await;
    let d = operator
        .post("/v1/devices", &json!({"name": "truck-1"}))
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let d = d.body["id"].as_str().unwrap().to_owned();

    // Create, uppercase.
    let mut body = sim_body(1);
    body["group_id"] = json!(a.to_uppercase());
    body["device_id"] = json!(d.to_uppercase());
    let r = prov.post("/v1/sims", &body).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["group_id"], a.as_str());
    assert_eq!(r.body["device_id"], d.as_str());
    let path = format!("/v1/sims/{}", r.body["id"].as_str().unwrap());

    // PATCH, braced and urn.
    let r = operator
        .patch(
            &path,
            &json!({"group_id": format!("{{{b}}}"), "device_id": format!("urn:uuid:{d}")}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["group_id"], b.as_str());
    assert_eq!(r.body["device_id"], d.as_str());
    let stored: Option<String> = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT group_id FROM sims WHERE iccid = $1")
        .bind(iccid(1))
        .fetch_one(p)
        .await
        .unwrap());
    assert_eq!(stored.as_deref(), Some(b.as_str()));
    assert_eq!(
        operator.get(&format!("/v1/groups/{b}")).await.body["sim_count"],
        1
    );

    // Bulk import: one row of each form, all succeed, none fails the batch.
    let simple = uuid::Uuid::parse_str(&a).unwrap().simple().to_string();
    let rows: Vec<Value> = [
        a.to_uppercase(),
        format!("{{{a}}}"),
        format!("urn:uuid:{a}"),
        simple,
    ]
    .into_iter()
    .enumerate()
    .map(|(i, g)| {
        let mut row = sim_body(10 + i as u64);
        row["group_id"] = json!(g);
        row
    })
    .collect();
    let r = prov
        .post("/v1/sims/bulk/import", &json!({"sims": rows}))
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    let task = r.body["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&prov, &task, Duration::from_secs(60)).await;
    assert_eq!(done["completed_items"], 4, "{done:?}");
    assert_eq!(done["failed_items"], 0, "{done:?}");
    for n in 10..14 {
        assert_eq!(
            prov.get(&format!("/v1/sims/{}", iccid(n))).await.body["group_id"],
            a.as_str()
        );
    }
    assert_eq!(
        operator.get(&format!("/v1/groups/{a}")).await.body["sim_count"],
        4
    );

    // A bad IMSI and a group_id that is no UUID: both reported at once, nothing created.
    let mut body = sim_body(20);
    body["imsi"] = json!("12");
    body["group_id"] = json!("fleet-a");
    body["device_id"] = json!("truck-1");
    let r = prov.post("/v1/sims", &body).await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.pointers(), ["/imsi", "/group_id", "/device_id"]);
    assert_eq!(r.body["errors"][1]["detail"], "not a group id");
    assert_eq!(r.body["errors"][2]["detail"], "not a device id");
    let r = operator
        .patch(&path, &json!({"imei": "1", "group_id": "fleet-a"}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.pointers(), ["/imei", "/group_id"]);
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(20))).await.status,
        404
    );
}
both_stores!(canonical_ids, references_are_stored_canonical);

/// A SIM whose stored group is not one of its tenant's is a corrupt row: `include=group`
/// answers the opaque 500, never `"group": null`.
async fn a_foreign_stored_group_is_corrupt(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let theirs = group(
        &app.jwt_client("other", &[Role::Operator]),
        json!({"name": "theirs"}),
    )
    .await;
    let sim = prov.create_sim(sim_body(1)).await;
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());
    raw_sql!(&app.test_db.db, p => sqlx::query("UPDATE sims SET group_id = $1 WHERE iccid = $2")
        .bind(&theirs)
        .bind(iccid(1))
        .execute(p)
        .await
        .map(|_| ())
        .unwrap());
    for q in [
        format!("{path}?include=group"),
        "/v1/sims?include=group".to_owned(),
    ] {
        let r = operator.get(&q).await;
        assert_eq!(r.status, 500, "{q}: {:?}", r.body);
        assert_eq!(
            r.body["type"], "https://simvault.dev/problems/internal-error",
            "{q}"
        );
        assert!(!r.body.to_string().contains(&theirs), "{q}");
    }
}
both_stores!(corrupt_group, a_foreign_stored_group_is_corrupt);

/// An import item staged before groups were resources carries the group's and device's label
/// (`"group_id": "fleet-a"`): the task finds the group and device migration 0013 made of that
/// name in the tenant, and stores their ids. A label of no group still fails its item alone.
async fn staged_labels_name_their_group(store: Store) {
    use simvault::domain::SimInput;
    use simvault::domain::identifiers::{Iccid, LuhnPolicy};
    use simvault::service::tasks::ImportRow;

    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = group(&operator, json!({"name": "fleet-a"})).await;
    let d = operator
        .post("/v1/devices", &json!({"name": "truck-1"}))
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let d = d.body["id"].as_str().unwrap().to_owned();
    // Another tenant's group of a name acme has none of is not found by that name.
    group(
        &app.jwt_client("other", &[Role::Operator]),
        json!({"name": "theirs"}),
    )
    .await;

    let row = |n: u64, g: &str, dev: Option<&str>| {
        let mut input = SimInput::new(Iccid::parse(&iccid(n), LuhnPolicy::Enforce).unwrap());
        input.group_id = Some(g.to_owned());
        input.device_id = dev.map(str::to_owned);
        ImportRow {
            line: i64::try_from(n).unwrap(),
            sim: Ok(input),
        }
    };
    let principal = simvault::domain::Principal {
        tenant: simvault::domain::TenantId::parse("acme").unwrap(),
        roles: [Role::Provisioner].into(),
        subject: "old-release".into(),
        auth_method: simvault::domain::AuthMethod::Mtls,
        credential_id: None,
        origin: Default::default(),
    };
    let task = app
        .services
        .tasks()
        .queue_import(
            &principal,
            vec![
                row(1, "fleet-a", Some("truck-1")),
                row(2, "theirs", None),
                row(3, &a.to_uppercase(), None),
            ],
            Vec::new(),
        )
        .await
        .unwrap();
    let task = task.id.to_string();
    let done = wait_for_task(&prov, &task, Duration::from_secs(60)).await;
    assert_eq!(done["completed_items"], 2, "{done:?}");
    assert_eq!(done["failed_items"], 1, "{done:?}");
    let one = prov.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(one["group_id"], a.as_str());
    assert_eq!(one["device_id"], d.as_str());
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(3))).await.body["group_id"],
        a.as_str()
    );
    let items = all_items(&prov, &task).await;
    assert_eq!(items[1]["status"], "failed");
    assert!(
        items[1]["error"]
            .as_str()
            .unwrap()
            .contains("group_id: no group with this id"),
        "{items:?}"
    );
    assert_eq!(
        prov.get(&format!("/v1/sims/{}", iccid(2))).await.status,
        404
    );
}
both_stores!(staged_labels, staged_labels_name_their_group);

/// Names are never UUIDs nor padded with whitespace (a value naming a group by id or by name is
/// never ambiguous); a change names the fields it changed in its audit record, never their
/// values; a change of nothing is refused and recorded nowhere; the read-only fields are
/// documented as such.
async fn names_changes_and_their_records(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let id = group(&operator, json!({"name": "fleet-a"})).await;
    let d = operator
        .post("/v1/devices", &json!({"name": "truck-1"}))
        .await;
    assert_eq!(d.status, 201, "{:?}", d.body);
    let device = d.body["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/groups/{id}");
    let device_path = format!("/v1/devices/{device}");
    let uuid = uuid::Uuid::new_v4().to_string();
    for bad in [
        uuid.clone(),
        uuid.to_uppercase(),
        " fleet-b".into(),
        "fleet-b ".into(),
    ] {
        for kind in ["groups", "devices"] {
            let r = operator
                .post(&format!("/v1/{kind}"), &json!({"name": bad}))
                .await;
            assert_eq!(r.status, 400, "{kind} {bad:?}: {:?}", r.body);
            assert_eq!(r.pointers(), ["/name"], "{kind} {bad:?}");
        }
        for p in [&path, &device_path] {
            let r = operator.patch(p, &json!({"name": bad})).await;
            assert_eq!(r.status, 400, "{p} {bad:?}: {:?}", r.body);
            assert_eq!(r.pointers(), ["/name"], "{p} {bad:?}");
        }
    }
    assert_eq!(operator.get(&path).await.body["name"], "fleet-a");
    assert_eq!(operator.get(&device_path).await.body["name"], "truck-1");
    assert_eq!(operator.get("/v1/groups").await.body["total"], 1);

    let before = chain_records(&app.test_db.db, "acme").await.len();
    for p in [&path, &device_path] {
        let r = operator.patch(p, &json!({})).await;
        assert_eq!(r.status, 400, "{p}: {:?}", r.body);
        assert_eq!(r.pointers(), [""], "{p}");
    }
    assert_eq!(chain_records(&app.test_db.db, "acme").await.len(), before);

    let r = operator
        .patch(&path, &json!({"name": "fleet-z", "imei_lock": true}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = operator.patch(&device_path, &json!({"imei": null})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let records = chain_records(&app.test_db.db, "acme").await;
    let updates: Vec<String> = records
        .iter()
        .filter(|(a, ..)| a == "group.update" || a == "device.update")
        .map(|(_, _, r)| r.to_string())
        .collect();
    assert_eq!(updates.len(), 2, "{updates:?}");
    assert!(
        updates[0].contains(&format!("group {id}: imei_lock, name")),
        "{updates:?}"
    );
    assert!(!updates[0].contains("fleet-z"), "{updates:?}");
    assert!(
        updates[1].contains(&format!("device {device}: imei")),
        "{updates:?}"
    );

    let doc = app
        .jwt_client("acme", &[Role::Operator])
        .get("/openapi.json")
        .await;
    let schemas = &doc.body["components"]["schemas"];
    assert_eq!(
        schemas["GroupView"]["properties"]["sim_count"]["readOnly"], true,
        "{}",
        schemas["GroupView"]
    );
    assert_eq!(
        schemas["DeviceView"]["properties"]["sim_ids"]["readOnly"], true,
        "{}",
        schemas["DeviceView"]
    );
}
both_stores!(names_and_changes, names_changes_and_their_records);
