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
