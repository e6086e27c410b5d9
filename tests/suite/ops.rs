//! Operations endpoints and graceful shutdown.

use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, sim_body};

async fn health_ready_metrics_openapi(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    let a = anon.get("/healthz").await;
    assert_eq!(a.status, 200);
    let a = anon.get("/readyz").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["database"], "ok");

    // Metrics need the metrics or admin role.
    assert_eq!(anon.get("/metrics").await.status, 401);
    assert_eq!(
        app.jwt_client("acme", &[Role::Support])
            .get("/metrics")
            .await
            .status,
        403
    );
    app.jwt_client("acme", &[Role::Support])
        .get("/v1/sims")
        .await;
    let scraper = app.mtls_api("acme", &[Role::Metrics], "prometheus").await;
    let a = Api::send(scraper.request(reqwest::Method::GET, "/metrics")).await;
    assert_eq!(a.status, 200);
    let text = a.body.as_str().unwrap();
    assert!(text.contains("simvault_http_requests_total"), "{text}");
    assert!(text.contains("route=\"/v1/sims\""));
    assert!(text.contains("simvault_http_request_duration_seconds_bucket"));

    // The OpenAPI document covers every endpoint.
    let doc = anon.get("/openapi.json").await;
    assert_eq!(doc.status, 200);
    for (path, methods) in [
        ("/v1/sims", &["get", "post"][..]),
        ("/v1/sims/{sim}", &["get", "patch", "delete"][..]),
        ("/v1/plans", &["get", "post"][..]),
        ("/v1/plans/{id}", &["get"][..]),
        ("/healthz", &["get"][..]),
        ("/readyz", &["get"][..]),
        ("/metrics", &["get"][..]),
    ] {
        for m in methods {
            assert!(
                doc.body["paths"][path][m].is_object(),
                "{m} {path} missing from OpenAPI"
            );
        }
    }
    assert!(doc.body["components"]["securitySchemes"]["mtls"].is_object());
}
both_stores!(operations, health_ready_metrics_openapi);

/// Shutdown lets an in-flight request finish: a slow upload that started before the stop
/// signal still gets its answer.
async fn graceful_shutdown_drains(store: Store) {
    let mut app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let body = serde_json::to_vec(&sim_body(1)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(2);
    let stream =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) });
    let request = prov
        .request(reqwest::Method::POST, "/v1/sims")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream));
    let in_flight = tokio::spawn(async move { Api::send(request).await });
    tx.send(Ok(body[..5].to_vec())).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;

    let stopping = tokio::spawn(async move {
        app.app.stop().await;
        app
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    tx.send(Ok(body[5..].to_vec())).await.unwrap();
    drop(tx);
    let answer = in_flight.await.unwrap();
    assert_eq!(answer.status, 201, "{:?}", answer.body);
    let app = stopping.await.unwrap();
    // Stopped: no new connections.
    assert!(
        app.anonymous()
            .get(app.url("/healthz"))
            .send()
            .await
            .is_err()
    );
}
both_stores!(graceful_shutdown, graceful_shutdown_drains);

/// A corrupt row is an opaque 500 naming the request id; the cause stays in the log.
async fn internal_errors_are_opaque(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = prov.create_sim(sim_body(1)).await;
    match &app.test_db.db {
        simvault::store::Db::Sqlite(p) => sqlx::query("UPDATE sims SET tags = '{\"a\": 1}'")
            .execute(&p.write)
            .await
            .map(|_| ()),
        simvault::store::Db::Postgres(p) => sqlx::query("UPDATE sims SET tags = '{\"a\": 1}'")
            .execute(p)
            .await
            .map(|_| ()),
    }
    .unwrap();
    let a = prov
        .get(&format!("/v1/sims/{}", sim["id"].as_str().unwrap()))
        .await;
    assert_eq!(a.status, 500);
    assert_eq!(a.content_type(), "application/problem+json");
    assert_eq!(
        a.body["type"],
        "https://simvault.dev/problems/internal-error"
    );
    assert_eq!(
        a.body["request_id"],
        a.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(
        a.body["detail"],
        "An internal error occurred; quote the request id when reporting it."
    );
    let mut keys: Vec<&String> = a.body.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "detail",
            "instance",
            "request_id",
            "status",
            "title",
            "type"
        ]
    );
}
both_stores!(internal_error, internal_errors_are_opaque);

/// With the database gone: not ready, and requests answer 503, never data or a 500.
async fn database_outage_is_503(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(sim_body(1)).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    app.test_db.db.close().await;
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    assert_eq!(anon.get("/healthz").await.status, 200);
    assert_eq!(anon.get("/readyz").await.status, 503);
    for api in [&prov, &support] {
        let a = api.get("/v1/sims").await;
        assert_eq!(a.status, 503, "{:?}", a.body);
        assert_eq!(a.body["type"], "https://simvault.dev/problems/unavailable");
    }
}
both_stores!(database_outage, database_outage_is_503);
