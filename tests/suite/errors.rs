//! Every error is an RFC 7807 problem document, and bad input changes nothing.

use serde_json::json;
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, sim_body};

fn assert_problem(a: &crate::helpers::Answer, status: u16, slug: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.content_type(), "application/problem+json");
    assert_eq!(
        a.body["type"],
        format!("https://simvault.dev/problems/{slug}")
    );
    assert_eq!(a.body["status"], status);
    assert!(a.body["title"].is_string());
    assert!(a.body["detail"].is_string());
    assert!(a.body["instance"].is_string());
    let rid = a.headers["x-request-id"].to_str().unwrap();
    assert_eq!(a.body["request_id"], rid);
}

async fn all_validation_errors_at_once(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let a = prov
        .post(
            "/v1/sims",
            &json!({
                "iccid": "8944501234567890128", "imsi": "12345", "msisdn": "+44 7700", "imei": "490154203237517",
                "eid": "89049032123451234512345678901234", "sim_type": "esim",
                "tags": ["ok", "x".repeat(65)], "metadata": {"k": "x".repeat(17000)},
                "carrier_status": "y".repeat(31), "compatibility_zones": [1],
            }),
        )
        .await;
    assert_problem(&a, 400, "validation-error");
    let pointers = a.pointers();
    assert_eq!(
        pointers,
        vec![
            "/iccid",
            "/imsi",
            "/msisdn",
            "/imei",
            "/eid",
            "/tags/1",
            "/compatibility_zones/0",
            "/carrier_status",
            "/metadata"
        ]
    );
    // No value is echoed back.
    let text = a.body.to_string();
    assert!(!text.contains("8944501234567890128"));
    assert!(!text.contains("490154203237517"));
    // Nothing was created.
    assert_eq!(prov.get("/v1/sims").await.body["total"], 0);

    let a = prov
        .post(
            "/v1/sims",
            &json!({"iccid": "8944501234567890124", "ki": "00"}),
        )
        .await;
    assert_problem(&a, 400, "validation-error");
    assert_eq!(a.body["errors"][0]["pointer"], "/ki");
    assert_eq!(a.body["errors"][0]["detail"], "unknown field");

    let a = prov.post("/v1/sims", &json!([1, 2])).await;
    assert_problem(&a, 400, "validation-error");

    // A bad patch changes nothing, not even the valid fields in it.
    let sim = prov.create_sim(sim_body(1)).await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());
    let a = operator
        .patch(
            &path,
            &json!({"tags": ["fine"], "msisdn": "nope", "iccid": "8944501234567890124"}),
        )
        .await;
    assert_problem(&a, 400, "validation-error");
    assert_eq!(
        a.body["errors"].as_array().unwrap().len(),
        1,
        "{:?}",
        a.body
    );
    assert_eq!(a.body["errors"][0]["pointer"], "/iccid");
    let a = operator
        .patch(&path, &json!({"tags": ["fine"], "msisdn": "nope"}))
        .await;
    assert_eq!(a.body["errors"][0]["pointer"], "/msisdn");
    assert_eq!(operator.get(&path).await.body["tags"], json!([]));
}
both_stores!(validation, all_validation_errors_at_once);

async fn transport_level_errors_are_problems(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;

    // Malformed JSON.
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims")
            .header("content-type", "application/json")
            .body("{\"iccid\": "),
    )
    .await;
    assert_problem(&a, 400, "malformed-request");
    // Wrong content type.
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims")
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_problem(&a, 415, "unsupported-media-type");
    let a = Api::send(prov.request(reqwest::Method::POST, "/v1/sims").body("{}")).await;
    assert_problem(&a, 415, "unsupported-media-type");
    // Too large.
    let big = format!("{{\"iccid\": \"{}\"}}", "1".repeat(2 * 1024 * 1024));
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims")
            .header("content-type", "application/json")
            .body(big),
    )
    .await;
    assert_problem(&a, 413, "payload-too-large");
    // Unknown route, unknown SIM reference, wrong method.
    assert_problem(&prov.get("/v1/nothing-here").await, 404, "not-found");
    assert_problem(&prov.get("/v1/sims/not-a-sim").await, 404, "not-found");
    assert_problem(
        &prov
            .get("/v1/sims/00000000-0000-4000-8000-000000000000")
            .await,
        404,
        "not-found",
    );
    let a = Api::send(prov.request(reqwest::Method::PUT, "/v1/sims")).await;
    assert_problem(&a, 405, "method-not-allowed");
    // Unauthenticated and forbidden are problems too.
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    assert_problem(&anon.get("/v1/sims").await, 401, "unauthorized");
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    assert_problem(&auditor.get("/v1/sims").await, 403, "forbidden");
    assert_eq!(prov.get("/v1/sims").await.body["total"], 0);
}
both_stores!(transport_errors, transport_level_errors_are_problems);

async fn request_ids(store: Store) {
    let app = TestApp::spawn(store).await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    for path in ["/healthz", "/v1/sims", "/nope"] {
        let a = anon.get(path).await;
        assert!(a.headers.contains_key("x-request-id"), "{path}");
    }
    let a = Api::send(
        anon.request(reqwest::Method::GET, "/v1/sims")
            .header("x-request-id", "trace-123"),
    )
    .await;
    assert_eq!(a.headers["x-request-id"], "trace-123");
    assert_eq!(a.body["request_id"], "trace-123");
    // A request id that could forge log lines is replaced.
    let a = Api::send(
        anon.request(reqwest::Method::GET, "/healthz")
            .header("x-request-id", "a b\tc"),
    )
    .await;
    assert_ne!(a.headers["x-request-id"], "a b\tc");
}
both_stores!(request_id, request_ids);
