//! Refresh from the carrier's system against a real local HTTP server playing the upstream
//! (data, no data, 500, timeout, garbage), and the background sync worker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

#[derive(Clone)]
pub(crate) enum Behaviour {
    Data(Value),
    NoData,
    Fail,
    Slow,
    Garbage,
}

#[derive(Default)]
pub(crate) struct Fake {
    pub(crate) behaviours: Mutex<HashMap<String, Behaviour>>,
    hits: Mutex<HashMap<String, usize>>,
    tokens: Mutex<Vec<String>>,
}

fn usage() -> Value {
    json!({
        "is_attached": true, "imei": "490154203237518", "carrier_status": "LIVE",
        "esim_profile_state": "enabled",
        "consumed_data": {"amount": 1.5, "unit": "GB"}, "data_limit": {"amount": 10, "unit": "GB"}
    })
}

async fn sim(
    State(fake): State<Arc<Fake>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    *fake.hits.lock().unwrap().entry(id.clone()).or_default() += 1;
    if let Some(auth) = headers.get("authorization") {
        fake.tokens
            .lock()
            .unwrap()
            .push(auth.to_str().unwrap().to_owned());
    }
    let behaviour = fake
        .behaviours
        .lock()
        .unwrap()
        .get(&id)
        .cloned()
        .unwrap_or(Behaviour::Data(usage()));
    match behaviour {
        Behaviour::Data(v) => axum::Json(v).into_response(),
        Behaviour::NoData => StatusCode::NOT_FOUND.into_response(),
        Behaviour::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Behaviour::Slow => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            axum::Json(usage()).into_response()
        }
        Behaviour::Garbage => "<html>not json".into_response(),
    }
}

/// Starts the fake upstream on a free local port.
pub(crate) async fn upstream() -> (Arc<Fake>, String) {
    let fake = Arc::new(Fake::default());
    let app = axum::Router::new()
        .route("/sims/{iccid}", axum::routing::get(sim))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (fake, format!("http://{addr}/"))
}

pub(crate) async fn app_with(store: Store, url: &str, sync_secs: u64) -> TestApp {
    let url = url.to_owned();
    let app = TestApp::spawn_with(store, move |c| {
        c.upstream = Some(simvault::adapters::upstream::HttpSettings {
            url,
            token: Some("upstream-t0ken".into()),
            timeout: Duration::from_secs(1),
            client_identity: None,
            ca: None,
        });
        c.sync.interval = Duration::from_secs(sync_secs);
    })
    .await;
    app.tenant("acme").await;
    app
}

async fn refresh_pulls_maps_and_refuses_bad_upstreams(store: Store) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 1..=5 {
        prov.create_sim(json!({"iccid": iccid(n), "msisdn": "447700900123", "sim_type": "esim"}))
            .await;
    }
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let refresh = |n: u64| {
        let operator = operator.clone();
        async move {
            operator
                .post(&format!("/v1/sims/{}/refresh", iccid(n)), &json!({}))
                .await
        }
    };
    // Data: mapped onto the SIM; missing fields (msisdn) leave ours alone.
    let a = refresh(1).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["is_attached"], true);
    assert_eq!(a.body["imei"], "490154203237518");
    assert_eq!(a.body["carrier_status"], "LIVE");
    assert_eq!(a.body["esim_profile_state"], "enabled");
    assert_eq!(a.body["msisdn"], "447700900123");
    assert_eq!(
        a.body["consumed_data"],
        json!({"amount": 1.5, "unit": "GB"})
    );
    assert_eq!(a.body["data_limit"], json!({"amount": 10.0, "unit": "GB"}));
    assert!(a.body["last_synced_at"].is_string());
    assert_eq!(
        fake.tokens.lock().unwrap().as_slice(),
        ["Bearer upstream-t0ken"]
    );
    // Null clears.
    fake.behaviours.lock().unwrap().insert(
        iccid(1),
        Behaviour::Data(json!({"msisdn": null, "consumed_data": {"amount": 200, "unit": "MB"}})),
    );
    let a = refresh(1).await;
    assert_eq!(a.body["msisdn"], Value::Null);
    assert_eq!(a.body["imei"], "490154203237518");
    assert_eq!(
        a.body["consumed_data"],
        json!({"amount": 200.0, "unit": "MB"})
    );

    // No data: the SIM as stored, unchanged.
    let before = operator.get(&format!("/v1/sims/{}", iccid(2))).await.body;
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(2), Behaviour::NoData);
    let a = refresh(2).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, before);
    // Failing, slow and garbage upstreams: 502 / 504 / 502, and nothing changes.
    for (n, behaviour, status) in [
        (3, Behaviour::Fail, 502),
        (4, Behaviour::Slow, 504),
        (5, Behaviour::Garbage, 502),
    ] {
        fake.behaviours.lock().unwrap().insert(iccid(n), behaviour);
        let before = operator.get(&format!("/v1/sims/{}", iccid(n))).await.body;
        let a = refresh(n).await;
        assert_eq!(a.status, status, "{:?}", a.body);
        assert!(
            a.body["type"]
                .as_str()
                .unwrap()
                .ends_with("/upstream-unavailable")
        );
        assert!(!a.body.to_string().contains("t0ken"));
        assert_eq!(
            operator.get(&format!("/v1/sims/{}", iccid(n))).await.body,
            before
        );
    }
    // Invalid values from upstream are refused like garbage.
    fake.behaviours.lock().unwrap().insert(
        iccid(2),
        Behaviour::Data(json!({"imei": "12345", "is_attached": true})),
    );
    assert_eq!(refresh(2).await.status, 502);
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", iccid(2))).await.body,
        before
    );

    // Who may: operators and admins; others 403; other tenants 404.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support
            .post(&format!("/v1/sims/{}/refresh", iccid(1)), &json!({}))
            .await
            .status,
        403
    );
    app.tenant("other").await;
    let stranger = app.jwt_client("other", &[Role::Operator]);
    assert_eq!(
        stranger
            .post(&format!("/v1/sims/{}/refresh", iccid(1)), &json!({}))
            .await
            .status,
        404
    );

    // Sorting by data used, normalised to one unit: 200 MB < 1.5 GB.
    fake.behaviours.lock().unwrap().remove(&iccid(2));
    assert_eq!(refresh(2).await.status, 200);
    let listed = operator
        .get("/v1/sims?sort_by=consumed_data&sort_order=asc")
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let order: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(&order[..2], [iccid(1).as_str(), iccid(2).as_str()]);

    // Units are decimal (1 GB = 1,000 MB): 1 GB sorts before 1,010 MB.
    for (n, amount) in [
        (3, json!({"amount": 1, "unit": "GB"})),
        (4, json!({"amount": 1010, "unit": "MB"})),
    ] {
        fake.behaviours
            .lock()
            .unwrap()
            .insert(iccid(n), Behaviour::Data(json!({"consumed_data": amount})));
        assert_eq!(refresh(n).await.status, 200);
    }
    let listed = operator
        .get("/v1/sims?sort_by=consumed_data&sort_order=asc")
        .await;
    let order: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap())
        .collect();
    let want = [iccid(1), iccid(3), iccid(4), iccid(2)];
    assert_eq!(
        order[..4],
        want.iter().map(String::as_str).collect::<Vec<_>>()
    );
}
both_stores!(refresh, refresh_pulls_maps_and_refuses_bad_upstreams);

async fn wait_until_synced(api: &Api, n: u64) -> Vec<Value> {
    let mut sims = Vec::new();
    for _ in 0..200 {
        sims = api.get("/v1/sims?page_size=250").await.body["items"]
            .as_array()
            .unwrap()
            .clone();
        if sims.len() as u64 == n && sims.iter().all(|s| s["last_synced_at"].is_string()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sims
}

/// The worker syncs every SIM, each by one of two replicas per round, survives a failing
/// upstream (backing off, then catching up) and stops cleanly.
async fn the_sync_worker_skips_nothing_and_shares_rounds(store: Store) {
    let (fake, url) = upstream().await;
    let mut app = app_with(store, &url, 600).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    // A second replica on the same store.
    let mut other = simvault::startup::Application::build_with(
        &app.config,
        app.test_db.db.clone(),
        Arc::new(simvault::clock::SystemClock),
    )
    .await
    .unwrap();
    const N: u64 = 60;
    for n in 1..=N {
        if n % 10 == 0 {
            // A few fail at first: they come back after the backoff.
            fake.behaviours
                .lock()
                .unwrap()
                .insert(iccid(n), Behaviour::Fail);
        }
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in (10..=N).step_by(10) {
        fake.behaviours.lock().unwrap().remove(&iccid(n));
    }
    let sims = wait_until_synced(&prov, N).await;
    assert_eq!(sims.len() as u64, N);
    for s in &sims {
        assert!(
            s["last_synced_at"].is_string(),
            "not synced: {}",
            s["iccid"]
        );
        assert_eq!(s["carrier_status"], "LIVE");
    }
    // One round: each healthy SIM fetched exactly once, by one replica or the other.
    let hits = fake.hits.lock().unwrap().clone();
    for n in 1..=N {
        let h = hits.get(&iccid(n)).copied().unwrap_or(0);
        if n % 10 == 0 {
            assert!(h >= 1, "{n}");
        } else {
            assert_eq!(h, 1, "SIM {n} fetched {h} times in one round");
        }
    }
    let due: Vec<(i64,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT sync_due_at FROM sims WHERE sync_due_at = 0").fetch_all(p).await)
    .unwrap();
    assert!(due.is_empty(), "every SIM has its next round scheduled");
    // Shutdown is clean and prompt with the workers running.
    let stopped = tokio::time::timeout(Duration::from_secs(10), async {
        other.stop().await;
        app.app.stop().await;
    })
    .await;
    assert!(stopped.is_ok(), "the workers did not stop");
}
both_stores!(sync_worker, the_sync_worker_skips_nothing_and_shares_rounds);

/// Serves the fake upstream over HTTPS, requiring a client certificate from the test CA.
async fn mtls_upstream(app: &TestApp) -> String {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for ca in simvault::server::tls::load_certs(&app.keys.ca_cert()).unwrap() {
        roots.add(ca).unwrap();
    }
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            simvault::server::tls::load_certs(&app.keys.server_cert()).unwrap(),
            PrivateKeyDer::from_pem_file(app.keys.server_key()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = axum::Router::new()
        .route("/sims/{iccid}", axum::routing::get(sim))
        .with_state(Arc::new(Fake::default()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    format!("https://localhost:{port}")
}

/// An upstream that wants mutual TLS: refresh works with the configured client certificate
/// and fails (502, nothing changed) without one.
async fn refresh_over_mutual_tls(store: Store) {
    for with_identity in [true, false] {
        // A first server only to get the test CA and a client certificate from it.
        let probe = TestApp::spawn(store).await;
        let url = mtls_upstream(&probe).await;
        let (cert, key) = probe.issue_cert("acme", "upstream-client");
        let dir = tempfile::tempdir().unwrap();
        let (cert_path, key_path) = (dir.path().join("c.pem"), dir.path().join("c.key"));
        std::fs::write(&cert_path, cert).unwrap();
        std::fs::write(&key_path, key).unwrap();
        let ca = probe.keys.ca_cert();
        let app = TestApp::spawn_with(store, move |c| {
            c.upstream = Some(simvault::adapters::upstream::HttpSettings {
                url,
                token: None,
                timeout: Duration::from_secs(5),
                client_identity: with_identity.then_some((cert_path, key_path)),
                ca: Some(ca),
            });
            c.sync.interval = Duration::ZERO;
        })
        .await;
        app.tenant("acme").await;
        let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
        prov.create_sim(json!({"iccid": iccid(1)})).await;
        let operator = app.jwt_client("acme", &[Role::Operator]);
        let a = operator
            .post(&format!("/v1/sims/{}/refresh", iccid(1)), &json!({}))
            .await;
        if with_identity {
            assert_eq!(a.status, 200, "{:?}", a.body);
            assert_eq!(a.body["carrier_status"], "LIVE");
        } else {
            assert_eq!(a.status, 502, "{:?}", a.body);
        }
    }
}
both_stores!(mutual_tls, refresh_over_mutual_tls);

/// Usage in GB written before units were decimal had its sort column counted with 1,024 MB to
/// the GB; the migration recomputes it from the reported amount and leaves MB rows alone.
async fn the_units_migration_recounts_gigabytes(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 1..=2 {
        prov.create_sim(json!({"iccid": iccid(n), "sim_type": "esim"}))
            .await;
    }
    for (n, data, mb) in [
        (1, r#"{"amount":1.5,"unit":"GB"}"#, 1536.0),
        (2, r#"{"amount":200.0,"unit":"MB"}"#, 200.0),
    ] {
        raw_sql!(&app.test_db.db, p => sqlx::query(
            "UPDATE sims SET consumed_data = $1, consumed_mb = $2 WHERE iccid = $3")
            .bind(data).bind(mb).bind(iccid(n))
            .execute(p)
            .await
            .map(|_| ()))
        .unwrap();
    }
    let sql = match &app.test_db.db {
        simvault::store::Db::Sqlite(_) => {
            include_str!("../../migrations/sqlite/0012_decimal_units.sql")
        }
        simvault::store::Db::Postgres(_) => {
            include_str!("../../migrations/postgres/0012_decimal_units.sql")
        }
    };
    raw_sql!(&app.test_db.db, p => sqlx::raw_sql(sql).execute(p).await.map(|_| ())).unwrap();
    let rows: Vec<(String, f64)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT iccid, consumed_mb FROM sims ORDER BY iccid")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(rows, [(iccid(1), 1500.0), (iccid(2), 200.0)]);
}
both_stores!(units_migration, the_units_migration_recounts_gigabytes);
