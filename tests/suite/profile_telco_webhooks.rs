//! Webhooks in the `telco` format (seed 003's "Webhook Events"): the seed's event names, its
//! payload `{event, timestamp, data}` with upper-case states, signed like every delivery; the
//! names of one format refused in the other; a native subscription unchanged beside it.

use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Store, TestApp, both_stores, iccid};
use crate::webhooks::{Receiver, fast, signature_valid};

const ALL: [&str; 5] = [
    "sim.physical.created",
    "sim.physical.state_changed",
    "sim.physical.pin_reset",
    "sim.physical.pin_blocked",
    "sim.physical.deleted",
];

fn bodies(r: &Receiver) -> Vec<Value> {
    r.hits()
        .iter()
        .map(|h| serde_json::from_str(&h.body).unwrap())
        .collect()
}

async fn the_seed_events_and_payloads(store: Store) {
    let app = TestApp::spawn_with(store, fast).await;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let (telco, telco_url) = Receiver::start().await;
    let (native, native_url) = Receiver::start().await;
    // A subscription in the telco format takes the seed's names, any case for the format.
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": telco_url, "events": ALL, "format": "TELCO"}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["format"], "telco");
    assert_eq!(a.body["events"], json!(ALL));
    let secret = a.body["secret"].as_str().unwrap().to_owned();
    let list = admin.get("/v1/webhooks").await;
    assert_eq!(list.body["items"][0]["format"], "telco");
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": native_url, "events": ["sim.state_changed"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["format"], "native");
    // Each format takes its own names only; nothing is subscribed by a refused body.
    for (body, pointer) in [
        (
            json!({"url": telco_url, "events": ["sim.created"], "format": "telco"}),
            "/events/0",
        ),
        (
            json!({"url": telco_url, "events": ["sim.physical.created"]}),
            "/events/0",
        ),
        (
            json!({"url": telco_url, "events": ["sim.physical.created"], "format": "s3"}),
            "/format",
        ),
        (
            json!({"url": telco_url, "events": ["sim.physical.created", "sim.physical.created"], "format": "telco"}),
            "/events/1",
        ),
    ] {
        let a = admin.post("/v1/webhooks", &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert_eq!(a.pointers(), [pointer], "{body}");
    }
    assert_eq!(
        admin.get("/v1/webhooks").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The lifecycle of one SIM through the telco profile: created, activated, PIN reset,
    // PIN blocked, deleted.
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let card = iccid(1);
    let a = prov
        .post(
            "/v1/sim/physical",
            &json!({"iccid": card, "pin1": "1234", "puk1": "12345678"}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .patch(
            &format!("/v1/sim/physical/{card}/state"),
            &json!({"state": "ACTIVE", "reason": "Customer activation request"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let support = app.jwt_client("acme", &[Role::Support]);
    let reset = |current: &'static str, new: &'static str| {
        let support = support.clone();
        let card = card.clone();
        async move {
            support
                .post(
                    &format!("/v1/sim/physical/{card}/reset-pin"),
                    &json!({"pin_type": "PIN1", "current_pin": current, "new_pin": new}),
                )
                .await
        }
    };
    assert_eq!(reset("1234", "4321").await.status, 200);
    for _ in 0..3 {
        reset("0000", "1111").await;
    }
    let a = app
        .jwt_client("acme", &[Role::Admin])
        .delete(&format!("/v1/sim/physical/{card}"))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);

    telco
        .wait_for("five telco events", Duration::from_secs(30), |h| {
            h.len() >= 5
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = bodies(&telco);
    let names: Vec<&str> = got.iter().map(|b| b["event"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort_unstable();
    let mut want = ALL.to_vec();
    want.sort_unstable();
    assert_eq!(sorted, want, "each event once: {names:?}");
    let by = |name: &str| got.iter().find(|b| b["event"] == name).unwrap().clone();
    for body in &got {
        let mut keys: Vec<&str> = body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            ["data", "event", "timestamp"],
            "the seed's payload: {body}"
        );
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(
        by("sim.physical.state_changed")["data"],
        json!({"iccid": card, "previous_state": "INVENTORY", "new_state": "ACTIVE",
            "reason": "Customer activation request"})
    );
    assert_eq!(
        by("sim.physical.created")["data"],
        json!({"iccid": card, "state": "INVENTORY"})
    );
    for name in ["sim.physical.pin_reset", "sim.physical.pin_blocked"] {
        assert_eq!(
            by(name)["data"],
            json!({"iccid": card, "pin_type": "PIN1"}),
            "{name}"
        );
    }
    let deleted = by("sim.physical.deleted");
    assert_eq!(deleted["data"]["iccid"], card.as_str());
    assert!(deleted["data"]["deleted_at"].is_string());
    // Signed like every delivery; never a PIN or PUK in a body.
    for hit in telco.hits() {
        assert!(
            signature_valid(&secret, &hit.signature, &hit.body),
            "{}",
            hit.body
        );
        for secret in ["1234", "4321", "12345678"] {
            assert!(!hit.body.contains(&format!("\"{secret}\"")), "{}", hit.body);
        }
    }
    // The native subscription beside it gets the native event, in the native shape.
    native
        .wait_for("the native event", Duration::from_secs(30), |h| {
            !h.is_empty()
        })
        .await;
    let n = &bodies(&native)[0];
    assert_eq!(n["event"], "sim.state_changed");
    assert_eq!(n["data"]["state"], "active");
    assert_eq!(n["tenant_id"], "acme");
}
both_stores!(telco_webhooks, the_seed_events_and_payloads);

async fn the_format_is_authenticated(store: Store) {
    let app = TestApp::spawn_with(store, fast).await;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let (receiver, url) = Receiver::start().await;
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": url, "events": ["sim.state_changed"]}),
        )
        .await;
    assert_eq!(a.status, 201);
    // Someone with the database turns the native subscription into a telco one: the row no
    // longer matches its MAC, and the webhook receives nothing.
    crate::helpers::raw_sql!(&app.test_db.db, p => sqlx::query(
        "UPDATE webhooks SET events = '[\"sim.physical.state_changed\"]'")
        .execute(p).await.map(|_| ()).unwrap());
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    app.jwt_client("acme", &[Role::Operator])
        .patch(
            &format!("/v1/sims/{}/state", iccid(2)),
            &json!({"state": "active"}),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.hits().is_empty(), "{:?}", bodies(&receiver));
}
both_stores!(telco_webhook_format_tamper, the_format_is_authenticated);
