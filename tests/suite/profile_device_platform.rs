//! The `device-platform` profile at `/device-platform/v1`, walked along its seed document
//! ("Create a SIM"): the body's members and limits, the device the SIM is linked to and inherits
//! its company from, the ignored read-only members, the statuses the seed lists, and the
//! answer's computed members; update, delete, and what another tenant or an anonymous caller
//! gets.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const BASE: &str = "/device-platform/v1/sims";

/// The members of an answer, exactly.
const ANSWER: [&str; 18] = [
    "id",
    "device_id",
    "mno_integration_id",
    "iccid",
    "msisdn",
    "status",
    "communication_plan",
    "rate_plan",
    "sim_metadata",
    "company_id",
    "ctd_data_usage",
    "ctd_sms_usage",
    "included_usage",
    "overage_limit_reached",
    "sim_barred",
    "last_sync_at",
    "created_at",
    "updated_at",
];

async fn device(api: &Api, name: &str) -> String {
    let a = api.post("/v1/devices", &json!({"name": name})).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn sim_count(app: &TestApp) -> i64 {
    raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM sims").fetch_one(p).await.unwrap())
}

async fn create_walks_the_body(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let truck = device(&operator, "truck-1").await;

    // "The device_id and iccid fields are required"; the SIM inherits its company_id from
    // the device's company; the answer is the body's members plus the computed ones.
    let body = json!({
        "device_id": truck, "mno_integration_id": "cmp-7", "iccid": iccid(1),
        "msisdn": "447700900123", "status": "active", "communication_plan": "IoT EU",
        "rate_plan": "Pooled 1GB", "sim_metadata": {"apn": "iot.example", "nested": {"slot": 2}, "n": 1.5},
    });
    let a = prov.post(BASE, &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.headers["location"], format!("{BASE}/{id}").as_str());
    assert_eq!(
        a.body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(ANSWER)
    );
    for member in [
        "device_id",
        "mno_integration_id",
        "iccid",
        "msisdn",
        "status",
        "communication_plan",
        "rate_plan",
        "sim_metadata",
    ] {
        assert_eq!(a.body[member], body[member], "{member}");
    }
    assert_eq!(a.body["company_id"], "acme");
    assert_eq!(a.body["ctd_data_usage"], Value::Null);
    assert_eq!(a.body["ctd_sms_usage"], Value::Null);
    assert_eq!(a.body["included_usage"], Value::Null);
    assert_eq!(a.body["overage_limit_reached"], false);
    assert_eq!(a.body["sim_barred"], false);
    assert_eq!(a.body["last_sync_at"], Value::Null);
    // The same SIM natively: one engine.
    let native = prov.get(&format!("/v1/sims/{id}")).await.body;
    assert_eq!(native["carrier_status"], "active");
    assert_eq!(native["device_id"], truck);
    assert_eq!(native["metadata"], body["sim_metadata"]);
    assert_eq!(native["rate_plan"], "Pooled 1GB");

    // status: "Defaults to 'inactive' when omitted on creation"; any carrier string is valid.
    let a = prov
        .post(BASE, &json!({"device_id": truck, "iccid": iccid(2)}))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["status"], "inactive");
    let a = prov
        .post(
            BASE,
            &json!({"device_id": truck, "iccid": iccid(3), "status": "TEST_READY"}),
        )
        .await;
    assert_eq!(a.body["status"], "TEST_READY");

    // Read-only server-managed members are ignored if present.
    let a = prov
        .post(
            BASE,
            &json!({
                "device_id": truck, "iccid": iccid(4),
                "ctd_data_usage": 999, "ctd_sms_usage": 5, "included_usage": 1,
                "overage_limit_reached": true, "sim_barred": true,
                "last_sync_at": "2020-01-01T00:00:00Z", "created_at": "2020-01-01T00:00:00Z",
                "updated_at": "2020-01-01T00:00:00Z", "created_by": "mallory", "updated_by": "mallory",
            }),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["ctd_data_usage"], Value::Null);
    assert_eq!(a.body["sim_barred"], false);
    assert_eq!(a.body["overage_limit_reached"], false);
    assert_ne!(a.body["created_at"], "2020-01-01T00:00:00Z");

    // 400: malformed or invalid, every problem at once, in the platform's member names; and
    // nothing created.
    let before = sim_count(&app).await;
    let metadata: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!(i))).collect();
    for (body, pointers) in [
        (json!({"iccid": iccid(5)}), vec!["/device_id"]),
        (
            json!({"iccid": iccid(5), "device_id": null}),
            vec!["/device_id"],
        ),
        (json!({"device_id": truck}), vec!["/iccid"]),
        (
            json!({"device_id": truck, "iccid": "89441"}),
            vec!["/iccid"],
        ),
        (
            json!({"device_id": truck, "iccid": "89440000000000000000123"}),
            vec!["/iccid"],
        ),
        (
            json!({"device_id": truck, "iccid": "8944000000000000051"}),
            vec!["/iccid"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "msisdn": "4477009001234567890123"}),
            vec!["/msisdn"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "status": "x".repeat(31)}),
            vec!["/status"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "communication_plan": "x".repeat(256)}),
            vec!["/communication_plan"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "rate_plan": "x".repeat(256)}),
            vec!["/rate_plan"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "sim_metadata": metadata}),
            vec!["/sim_metadata"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "sim_metadata": [1]}),
            vec!["/sim_metadata"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "tags": ["x"]}),
            vec!["/tags"],
        ),
        (
            json!({"device_id": truck, "iccid": iccid(5), "secrets": {"ki": "00"}}),
            vec!["/secrets"],
        ),
        (
            json!({"device_id": "nope", "iccid": "12", "status": 5}),
            vec!["/iccid", "/device_id", "/status"],
        ),
    ] {
        let a = prov.post(BASE, &body).await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
        assert_eq!(a.pointers(), pointers, "{body}: {:?}", a.body);
        let text = a.body.to_string();
        assert!(
            !text.contains("carrier_status") && !text.contains("\"metadata"),
            "the platform's words: {text}"
        );
    }
    let a = Api::send(
        prov.request(reqwest::Method::POST, BASE)
            .header("content-type", "application/json")
            .body("{\"iccid\": "),
    )
    .await;
    assert_eq!(a.status, 400, "malformed JSON: {:?}", a.body);
    // "A given ICCID must be globally unique across the platform": a duplicate is 400, in
    // this tenant or another.
    let a = prov
        .post(BASE, &json!({"device_id": truck, "iccid": iccid(1)}))
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.pointers(), ["/iccid"]);
    let theirs = app.mtls_api("other", &[Role::Provisioner], "p2").await;
    let their_truck = device(&app.jwt_client("other", &[Role::Operator]), "t").await;
    let a = theirs
        .post(BASE, &json!({"device_id": their_truck, "iccid": iccid(1)}))
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert!(!a.body.to_string().contains("acme"), "{:?}", a.body);
    assert_eq!(sim_count(&app).await, before);

    // 404: a device that is not the caller's (another tenant's, or none).
    for d in [their_truck.clone(), uuid::Uuid::new_v4().to_string()] {
        let a = prov
            .post(BASE, &json!({"device_id": d, "iccid": iccid(6)}))
            .await;
        assert_eq!(a.status, 404, "{:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
    }
    assert_eq!(sim_count(&app).await, before);
}
both_stores!(device_platform_create, create_walks_the_body);

async fn read_update_delete(store: Store) {
    let (fake, url) = crate::upstream::upstream().await;
    let app = crate::upstream::app_with(store, &url, 0).await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let truck = device(&operator, "truck-1").await;
    let van = device(&operator, "van-1").await;
    let their_truck = device(&app.jwt_client("other", &[Role::Operator]), "t").await;
    let group = operator
        .post(
            "/v1/groups",
            &json!({"name": "fleet", "data_limit": {"amount": 1, "unit": "GB"}}),
        )
        .await;
    assert_eq!(group.status, 201, "{:?}", group.body);
    let a = prov
        .post(
            BASE,
            &json!({"device_id": truck, "iccid": iccid(1), "rate_plan": "A", "sim_metadata": {"k": "v"}}),
        )
        .await;
    let id = a.body["id"].as_str().unwrap().to_owned();
    let at = format!("{BASE}/{id}");
    let a = operator.get(&at).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["iccid"], iccid(1));

    // The computed members: usage from upstream sync in bytes, the effective limit in bytes,
    // the overage condition, and sim_barred from the lifecycle state.
    let a = operator
        .patch(
            &format!("/v1/sims/{id}"),
            &json!({"group_id": group.body["id"]}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    fake.behaviours.lock().unwrap().insert(
        iccid(1),
        crate::upstream::Behaviour::Data(json!({"consumed_data": {"amount": 1.5, "unit": "GB"}})),
    );
    let a = operator
        .post(&format!("/v1/sims/{id}/refresh"), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let a = operator.get(&at).await;
    assert_eq!(a.body["ctd_data_usage"], 1_500_000_000u64);
    assert_eq!(a.body["included_usage"], 1_000_000_000u64);
    assert_eq!(a.body["overage_limit_reached"], true);
    assert!(a.body["last_sync_at"].is_string());
    assert_eq!(a.body["ctd_sms_usage"], Value::Null);
    assert_eq!(a.body["sim_barred"], false);
    for (state, barred) in [("active", false), ("suspended", true)] {
        operator
            .patch(
                &format!("/v1/sims/{id}/state"),
                &json!({"state": state, "reason": "t"}),
            )
            .await;
        assert_eq!(
            operator.get(&at).await.body["sim_barred"],
            barred,
            "{state}"
        );
    }

    // PUT: the same body, device_id optional; the members given change, the rest are kept;
    // null clears; iccid cannot change; read-only members ignored.
    let put = |body: Value| {
        let operator = operator.clone();
        let at = at.clone();
        async move { Api::send(operator.request(reqwest::Method::PUT, &at).json(&body)).await }
    };
    let a = put(json!({"status": "suspended", "rate_plan": null, "device_id": van, "sim_barred": false, "iccid": iccid(1)})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["status"], "suspended");
    assert_eq!(a.body["rate_plan"], Value::Null);
    assert_eq!(a.body["device_id"], van);
    assert_eq!(a.body["sim_metadata"], json!({"k": "v"}), "kept");
    assert_eq!(a.body["sim_barred"], true, "read-only: ignored");
    let a = put(json!({"sim_metadata": {"k": "w"}})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["device_id"], van);
    assert_eq!(a.body["sim_metadata"], json!({"k": "w"}));
    let before = operator.get(&at).await.body;
    for (body, status, pointers) in [
        (json!({"iccid": iccid(2)}), 400, vec!["/iccid"]),
        (json!({"status": "x".repeat(31)}), 400, vec!["/status"]),
        (json!({"tags": ["x"]}), 400, vec!["/tags"]),
        (
            json!({"device_id": uuid::Uuid::new_v4().to_string()}),
            404,
            vec![],
        ),
        (json!({"device_id": their_truck}), 404, vec![]),
        (
            json!({"tags": [], "status": "x".repeat(31)}),
            400,
            vec!["/tags", "/status"],
        ),
    ] {
        let a = put(body.clone()).await;
        assert_eq!(a.status, status, "{body}: {:?}", a.body);
        assert_eq!(a.pointers(), pointers, "{body}");
    }
    assert_eq!(operator.get(&at).await.body, before, "nothing changed");

    // Another tenant: 404 for read, update and delete; nothing changed.
    let stranger = app.jwt_client("other", &[Role::Operator]);
    assert_eq!(stranger.get(&at).await.status, 404);
    let a = Api::send(
        stranger
            .request(reqwest::Method::PUT, &at)
            .json(&json!({"status": "stolen"})),
    )
    .await;
    assert_eq!(a.status, 404);
    assert_eq!(stranger.delete(&at).await.status, 404);
    assert_eq!(operator.get(&at).await.body, before);
    // Anonymous: 401 everywhere.
    let anon = Api {
        app_base: app.url(""),
        client: app.anonymous(),
        token: None,
    };
    assert_eq!(anon.get(&at).await.status, 401);
    assert_eq!(anon.delete(&at).await.status, 401);
    assert_eq!(
        anon.post(BASE, &json!({"device_id": truck, "iccid": iccid(9)}))
            .await
            .status,
        401
    );
    // Roles are the native ones: support staff read but do not create, change or delete.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(support.get(&at).await.status, 200);
    assert_eq!(
        support
            .post(BASE, &json!({"device_id": truck, "iccid": iccid(9)}))
            .await
            .status,
        403
    );
    assert_eq!(support.delete(&at).await.status, 403);
    for body in [
        json!({"status": "x"}),
        json!({"iccid": iccid(1), "rate_plan": "B"}),
    ] {
        let a = Api::send(support.request(reqwest::Method::PUT, &at).json(&body)).await;
        assert_eq!(a.status, 403, "{body}: {:?}", a.body);
    }
    let a = Api::send(
        anon.request(reqwest::Method::PUT, &at)
            .json(&json!({"status": "x"})),
    )
    .await;
    assert_eq!(a.status, 401);
    assert_eq!(operator.get(&at).await.body, before, "nothing changed");
    // The profile is documented under its own tag.
    let doc = operator.get("/openapi.json").await.body;
    for path in ["/device-platform/v1/sims", "/device-platform/v1/sims/{id}"] {
        for op in doc["paths"][path].as_object().unwrap().values() {
            assert_eq!(op["tags"], json!(["device-platform"]), "{path}");
        }
    }

    // Delete: as native (administrators only; the SIM is gone).
    assert_eq!(operator.delete(&at).await.status, 403);
    let a = app.jwt_client("acme", &[Role::Admin]).delete(&at).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["success"], true);
    assert!(a.body["deleted_at"].is_string());
    assert_eq!(operator.get(&at).await.status, 404);
    assert_eq!(operator.get(&format!("/v1/sims/{id}")).await.status, 404);
}
both_stores!(device_platform_read_update_delete, read_update_delete);
