//! Data limits and conditions: a SIM's own limit and its group's, `effective_data_limit`, and
//! `data_limit_exceeded` / `unauthorized_imei` entered and left through upstream refresh and
//! sync (the fake carrier reports usage and IMEI) and through PATCH of the SIM's limit, group
//! or device and of the group's limit or lock and the device's IMEI; each condition entered
//! evented and audited once; the `condition` filter.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, chain_records, iccid, tenant_id};
use crate::upstream::{Behaviour, Fake, app_with, upstream};

fn report(fake: &Fake, n: u64, body: Value) {
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(n), Behaviour::Data(body));
}

async fn refresh(api: &Api, n: u64) -> Value {
    let a = api
        .post(&format!("/v1/sims/{}/refresh", iccid(n)), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body
}

async fn conditions(api: &Api, n: u64) -> Value {
    api.get(&format!("/v1/sims/{}", iccid(n))).await.body["conditions"].clone()
}

async fn create(api: &Api, path: &str, body: Value) -> String {
    let a = api.post(path, &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

/// The events of `kind` in the tenant's outbox, as payloads.
async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    simvault::store::outbox::events(&app.test_db.db, &tenant_id("acme"))
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == kind)
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect()
}

/// The audit records of conditions entered: (action, actor, reason).
async fn entered_records(app: &TestApp) -> Vec<(String, String, String)> {
    chain_records(&app.test_db.db, "acme")
        .await
        .into_iter()
        .filter(|(_, _, r)| {
            r["reason"]
                .as_str()
                .is_some_and(|s| s.starts_with("entered condition"))
        })
        .map(|(a, _, r)| {
            (
                a,
                r["subject"].as_str().unwrap_or_default().to_owned(),
                r["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn iccids(api: &Api, query: &str) -> Vec<String> {
    let a = api.get(&format!("/v1/sims?{query}")).await;
    assert_eq!(a.status, 200, "{query}: {:?}", a.body);
    let mut out: Vec<String> = a.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn usage(gb: f64) -> Value {
    json!({"consumed_data": {"amount": gb, "unit": "GB"}})
}

async fn data_limits_are_inherited_and_judged(store: Store) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let fleet = create(
        &operator,
        "/v1/groups",
        json!({"name": "fleet", "data_limit": {"amount": 1, "unit": "GB"}}),
    )
    .await;
    let open = create(&operator, "/v1/groups", json!({"name": "open"})).await;
    prov.create_sim(json!({"iccid": iccid(1), "group_id": fleet}))
        .await;
    prov.create_sim(json!({"iccid": iccid(2)})).await;

    // Inherited: no own limit, the group's applies.
    let one = operator.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert!(one["data_limit"].is_null());
    assert_eq!(
        one["effective_data_limit"],
        json!({"amount": 1.0, "unit": "GB"})
    );
    assert_eq!(one["conditions"], json!([]));
    let two = operator.get(&format!("/v1/sims/{}", iccid(2))).await.body;
    assert!(two["effective_data_limit"].is_null());

    // Usage below the limit (decimal: 999 MB < 1 GB), then at it: entered once, with its
    // event and its audit record.
    report(
        &fake,
        1,
        json!({"consumed_data": {"amount": 999, "unit": "MB"}}),
    );
    assert_eq!(refresh(&operator, 1).await["conditions"], json!([]));
    report(&fake, 1, usage(1.0));
    let a = refresh(&operator, 1).await;
    assert_eq!(a["conditions"], json!(["data_limit_exceeded"]));
    refresh(&operator, 1).await; // still in it: no second event
    let evs = events(&app, "sim.data_limit_exceeded").await;
    assert_eq!(evs.len(), 1, "{evs:?}");
    assert_eq!(evs[0]["iccid"], iccid(1));
    assert_eq!(evs[0]["condition"], "data_limit_exceeded");
    assert_eq!(
        evs[0]["consumed_data"],
        json!({"amount": 1.0, "unit": "GB"})
    );
    assert_eq!(
        evs[0]["effective_data_limit"],
        json!({"amount": 1.0, "unit": "GB"})
    );
    let recs = entered_records(&app).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].2, "entered condition data_limit_exceeded");

    // The filter: any of the conditions given.
    assert_eq!(
        iccids(&operator, "condition=data_limit_exceeded").await,
        [iccid(1)]
    );
    assert!(
        iccids(&operator, "condition=unauthorized_imei")
            .await
            .is_empty()
    );
    assert_eq!(
        iccids(
            &operator,
            "condition=unauthorized_imei&condition=data_limit_exceeded"
        )
        .await,
        [iccid(1)]
    );
    let bad = operator.get("/v1/sims?condition=over_limit").await;
    assert_eq!(bad.status, 400);
    let (status, _, ndjson) =
        crate::export::export(&operator, "format=ndjson&condition=data_limit_exceeded").await;
    assert_eq!(status, 200, "{ndjson}");
    let lines: Vec<Value> = ndjson
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["iccid"], iccid(1));
    assert_eq!(lines[0]["conditions"], json!(["data_limit_exceeded"]));

    // The SIM's own limit wins (left, no event); cleared, the group's applies again (entered
    // again, recorded as the PATCH).
    let path = format!("/v1/sims/{}", iccid(1));
    let p = operator
        .patch(&path, &json!({"data_limit": {"amount": 2, "unit": "GB"}}))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["conditions"], json!([]));
    assert_eq!(p.body["data_limit"], json!({"amount": 2.0, "unit": "GB"}));
    assert_eq!(
        p.body["effective_data_limit"],
        json!({"amount": 2.0, "unit": "GB"})
    );
    assert!(
        iccids(&operator, "condition=data_limit_exceeded")
            .await
            .is_empty()
    );
    let p = operator.patch(&path, &json!({"data_limit": null})).await;
    assert_eq!(p.body["conditions"], json!(["data_limit_exceeded"]));
    assert_eq!(events(&app, "sim.data_limit_exceeded").await.len(), 2);

    // The group's limit raised: every member judged again (left); lowered: entered.
    let g = format!("/v1/groups/{fleet}");
    let p = operator
        .patch(&g, &json!({"data_limit": {"amount": 5, "unit": "GB"}}))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(conditions(&operator, 1).await, json!([]));
    assert_eq!(
        operator.get(&path).await.body["effective_data_limit"],
        json!({"amount": 5.0, "unit": "GB"})
    );
    operator
        .patch(&g, &json!({"data_limit": {"amount": 500, "unit": "MB"}}))
        .await;
    assert_eq!(
        conditions(&operator, 1).await,
        json!(["data_limit_exceeded"])
    );

    // Moved to a group without a limit: left; moved back: entered.
    operator.patch(&path, &json!({"group_id": open})).await;
    let now = operator.get(&path).await.body;
    assert_eq!(now["conditions"], json!([]));
    assert!(now["effective_data_limit"].is_null());
    operator.patch(&path, &json!({"group_id": fleet})).await;
    assert_eq!(
        conditions(&operator, 1).await,
        json!(["data_limit_exceeded"])
    );

    let recs = entered_records(&app).await;
    let actions: Vec<&str> = recs.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        actions,
        ["sim.refresh", "sim.update", "group.update", "sim.update"],
        "{recs:?}"
    );
    assert_eq!(events(&app, "sim.data_limit_exceeded").await.len(), 4);
    // The other SIM, outside any group and limit, was never judged in.
    assert_eq!(conditions(&operator, 2).await, json!([]));

    // Left through upstream: the carrier reports less usage (a new period); no event.
    report(&fake, 1, usage(0.2));
    assert_eq!(refresh(&operator, 1).await["conditions"], json!([]));
    assert_eq!(events(&app, "sim.data_limit_exceeded").await.len(), 4);
}
both_stores!(data_limits, data_limits_are_inherited_and_judged);

async fn an_imei_lock_holds_sims_to_their_device(store: Store) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let locked = create(
        &operator,
        "/v1/groups",
        json!({"name": "locked", "imei_lock": true}),
    )
    .await;
    let van = create(
        &operator,
        "/v1/devices",
        json!({"name": "van", "imei": "490154203237518"}),
    )
    .await;
    prov.create_sim(json!({"iccid": iccid(1), "group_id": locked, "device_id": van}))
        .await;
    prov.create_sim(json!({"iccid": iccid(2), "group_id": locked}))
        .await;

    // In another device: entered, with the IMEI seen in the event.
    report(&fake, 1, json!({"imei": "356938035643809"}));
    let a = refresh(&operator, 1).await;
    assert_eq!(a["conditions"], json!(["unauthorized_imei"]));
    let evs = events(&app, "sim.unauthorized_imei").await;
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0]["imei"], "356938035643809");
    assert_eq!(evs[0]["condition"], "unauthorized_imei");
    assert_eq!(
        iccids(&operator, "condition=unauthorized_imei").await,
        [iccid(1)]
    );

    // The device's IMEI changed to the one seen: left; to a third: entered again.
    let d = format!("/v1/devices/{van}");
    let p = operator
        .patch(&d, &json!({"imei": "356938035643809"}))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(conditions(&operator, 1).await, json!([]));
    operator
        .patch(&d, &json!({"imei": "352099001761481"}))
        .await;
    assert_eq!(conditions(&operator, 1).await, json!(["unauthorized_imei"]));
    assert_eq!(events(&app, "sim.unauthorized_imei").await.len(), 2);

    // Unbound from the device: the first IMEI reported for it is the one allowed (the one it
    // is in): left. The lock lifted: nothing to judge.
    let path = format!("/v1/sims/{}", iccid(1));
    operator.patch(&path, &json!({"device_id": null})).await;
    assert_eq!(conditions(&operator, 1).await, json!([]));

    // A SIM without a device: its first IMEI is allowed, another is not.
    report(&fake, 2, json!({"imei": "490154203237518"}));
    assert_eq!(refresh(&operator, 2).await["conditions"], json!([]));
    report(&fake, 2, json!({"imei": "356938035643809"}));
    assert_eq!(
        refresh(&operator, 2).await["conditions"],
        json!(["unauthorized_imei"])
    );
    operator
        .patch(
            &format!("/v1/groups/{locked}"),
            &json!({"imei_lock": false}),
        )
        .await;
    assert_eq!(conditions(&operator, 2).await, json!([]));
    operator
        .patch(&format!("/v1/groups/{locked}"), &json!({"imei_lock": true}))
        .await;
    assert_eq!(conditions(&operator, 2).await, json!(["unauthorized_imei"]));
    assert_eq!(events(&app, "sim.unauthorized_imei").await.len(), 4);

    // Left through upstream: back in the allowed device.
    report(&fake, 2, json!({"imei": "490154203237518"}));
    assert_eq!(refresh(&operator, 2).await["conditions"], json!([]));
    // Entered by binding the SIM to a device with another IMEI.
    let p = operator.patch(&path, &json!({"device_id": van})).await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["conditions"], json!(["unauthorized_imei"]));
    let actions: Vec<String> = entered_records(&app)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(
        actions,
        [
            "sim.refresh",
            "device.update",
            "sim.refresh",
            "group.update",
            "sim.update"
        ]
    );
}
both_stores!(imei_lock, an_imei_lock_holds_sims_to_their_device);

/// Waits (20 s at most) until the background sync has left SIM `n` in conditions `want`.
async fn synced_into(api: &Api, n: u64, want: Value) {
    let start = std::time::Instant::now();
    while conditions(api, n).await != want {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the sync never judged SIM {n} into {want}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The background sync judges conditions too, and records what was entered as its own actor.
async fn the_sync_judges_them(store: Store) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 1).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(1), Behaviour::NoData);
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    let path = format!("/v1/sims/{}", iccid(1));
    let p = operator
        .patch(&path, &json!({"data_limit": {"amount": 2, "unit": "GB"}}))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    report(&fake, 1, usage(3.0));
    synced_into(&operator, 1, json!(["data_limit_exceeded"])).await;
    let recs = entered_records(&app).await;
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].1, "system:sync");
    assert_eq!(events(&app, "sim.data_limit_exceeded").await.len(), 1);

    // An IMEI lock judged by the sync too: entered, then left when the SIM is back.
    let locked = create(
        &operator,
        "/v1/groups",
        json!({"name": "locked", "imei_lock": true}),
    )
    .await;
    let van = create(
        &operator,
        "/v1/devices",
        json!({"name": "van", "imei": "490154203237518"}),
    )
    .await;
    report(&fake, 2, json!({"imei": "356938035643809"}));
    prov.create_sim(json!({"iccid": iccid(2), "group_id": locked, "device_id": van}))
        .await;
    synced_into(&operator, 2, json!(["unauthorized_imei"])).await;
    report(&fake, 2, json!({"imei": "490154203237518"}));
    synced_into(&operator, 2, json!([])).await;
    let recs = entered_records(&app).await;
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[1].1, "system:sync");
    assert_eq!(events(&app, "sim.unauthorized_imei").await.len(), 1);
}
both_stores!(sync, the_sync_judges_them);

/// A bad limit is refused and changes nothing; another tenant's conditions are never listed;
/// webhooks may subscribe to the new events.
async fn refusals_and_isolation(store: Store) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    app.tenant("globex").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    let path = format!("/v1/sims/{}", iccid(1));
    let before = operator.get(&path).await.body;
    for bad in [
        json!({"data_limit": {"amount": -1, "unit": "GB"}}),
        json!({"data_limit": {"amount": 1, "unit": "TB"}}),
        json!({"data_limit": "1GB"}),
        json!({"data_limit": {"amount": 1, "unit": "GB"}, "tags": [""]}),
    ] {
        let a = operator.patch(&path, &bad).await;
        assert_eq!(a.status, 400, "{bad}: {:?}", a.body);
    }
    assert_eq!(operator.get(&path).await.body, before);

    operator
        .patch(&path, &json!({"data_limit": {"amount": 1, "unit": "GB"}}))
        .await;
    report(&fake, 1, usage(2.0));
    refresh(&operator, 1).await;
    let theirs = app.jwt_client("globex", &[Role::Operator]);
    let a = theirs.get("/v1/sims?condition=data_limit_exceeded").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["total"], 0);
    // Their own SIM in the condition is theirs alone.
    app.mtls_api("globex", &[Role::Provisioner], "gprov")
        .await
        .create_sim(json!({"iccid": iccid(9)}))
        .await;
    let theirs_path = format!("/v1/sims/{}", iccid(9));
    theirs
        .patch(
            &theirs_path,
            &json!({"data_limit": {"amount": 1, "unit": "GB"}}),
        )
        .await;
    report(&fake, 9, usage(2.0));
    refresh(&theirs, 9).await;
    assert_eq!(
        iccids(&theirs, "condition=data_limit_exceeded").await,
        [iccid(9)]
    );
    assert_eq!(
        iccids(&operator, "condition=data_limit_exceeded").await,
        [iccid(1)]
    );
    assert_eq!(operator.get(&theirs_path).await.status, 404);
    // Support reads the SIM's conditions but may not change its limit.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support.get(&path).await.body["conditions"],
        json!(["data_limit_exceeded"])
    );
    let a = support.patch(&path, &json!({"data_limit": null})).await;
    assert_eq!(a.status, 403);
    assert_eq!(
        conditions(&operator, 1).await,
        json!(["data_limit_exceeded"])
    );

    let admin = app.jwt_client("acme", &[Role::Admin]);
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/x", "events": ["sim.data_limit_exceeded", "sim.unauthorized_imei"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);

    // The OpenAPI document describes the new fields.
    let doc = operator.get("/openapi.json").await.body;
    let sim = &doc["components"]["schemas"]["SimRecord"]["properties"];
    for field in [
        "effective_data_limit",
        "conditions",
        "communication_plan",
        "rate_plan",
        "mno_integration_id",
    ] {
        assert!(sim[field].is_object(), "{field}");
    }
    let params: Vec<&str> = doc["paths"]["/v1/sims/export"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for p in [
        "condition",
        "rate_plan",
        "communication_plan",
        "mno_integration_id",
    ] {
        assert!(params.contains(&p), "{p}: {params:?}");
    }
    let patch = &doc["components"]["schemas"]["PatchSimBody"]["properties"];
    assert!(patch["data_limit"].is_object() && patch["rate_plan"].is_object());
}
both_stores!(refusals, refusals_and_isolation);

/// A SIM created (alone or by an import) into a locked group and a device with another IMEI is
/// in the condition from the start, with its event and record; its answer shows the group's
/// limit as its effective limit.
async fn sims_are_born_into_their_conditions(store: Store) {
    let (_fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let locked = create(
        &operator,
        "/v1/groups",
        json!({"name": "locked", "imei_lock": true, "data_limit": {"amount": 3, "unit": "GB"}}),
    )
    .await;
    let van = create(
        &operator,
        "/v1/devices",
        json!({"name": "van", "imei": "490154203237518"}),
    )
    .await;
    let a = prov
        .create_sim(json!({"iccid": iccid(1), "imei": "356938035643809", "group_id": locked, "device_id": van}))
        .await;
    assert_eq!(a["conditions"], json!(["unauthorized_imei"]));
    assert_eq!(
        a["effective_data_limit"],
        json!({"amount": 3.0, "unit": "GB"})
    );
    let a = prov
        .create_sim(json!({"iccid": iccid(2), "imei": "490154203237518", "group_id": locked, "device_id": van}))
        .await;
    assert_eq!(a["conditions"], json!([]));

    let a = prov
        .post(
            "/v1/sims/bulk/import",
            &json!({"sims": [
                {"iccid": iccid(3), "imei": "356938035643809", "group_id": locked, "device_id": van},
                {"iccid": iccid(4), "group_id": locked, "device_id": van},
            ]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let task = a.body["id"].as_str().unwrap().to_owned();
    crate::bulk::wait_for_task(&operator, &task, Duration::from_secs(30)).await;
    assert_eq!(conditions(&operator, 3).await, json!(["unauthorized_imei"]));
    assert_eq!(conditions(&operator, 4).await, json!([]));
    assert_eq!(
        iccids(&operator, "condition=unauthorized_imei").await,
        [iccid(1), iccid(3)]
    );
    let evs = events(&app, "sim.unauthorized_imei").await;
    let mut born: Vec<&str> = evs.iter().map(|e| e["iccid"].as_str().unwrap()).collect();
    born.sort_unstable();
    assert_eq!(born, [iccid(1), iccid(3)]);
    let actions: Vec<String> = entered_records(&app)
        .await
        .into_iter()
        .map(|r| r.0)
        .collect();
    assert_eq!(actions, ["sim.create", "sim.import"]);
}
both_stores!(born, sims_are_born_into_their_conditions);
