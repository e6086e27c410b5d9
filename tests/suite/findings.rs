//! The remaining hardening findings (issue 15, item 7): audit records for refresh, sync, plan
//! creation and PIN conflicts; CSV formula cells; upstream answer size; webhook isolation;
//! file permissions; per-tenant metrics; JWT lifetime; CRL reload and expiry.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::tenant_id;
use crate::helpers::{Api, Store, TestApp, both_stores, iccid};

/// `(action, outcome, record)` of a tenant's chain, in order.
async fn chain(app: &TestApp, tenant: &str) -> Vec<(String, String, Value)> {
    crate::helpers::chain_records(&app.test_db.db, tenant).await
}

async fn export(api: &Api, query: &str) -> String {
    crate::helpers::audit_export(api, query).await
}

/// A reason written to look like a spreadsheet formula is exported as text: the API's and the
/// CLI's CSV carry `'=…`, never a cell starting with `=`.
async fn csv_export_defuses_formula_cells(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"puk1": "91827364"}}))
        .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let formula = "=HYPERLINK(\"http://evil.example/\",\"open\")";
    let path = format!(
        "/v1/sims/{}/secrets?fields=puk1&reason={}",
        iccid(1),
        url_encode(formula)
    );
    assert_eq!(support.get(&path).await.status, 200);
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let api_csv = export(&auditor, "format=csv").await;
    let out = app.cli(&["audit", "export", "--tenant", "acme", "--format", "csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli_csv = String::from_utf8(out.stdout).unwrap();
    for (door, text) in [("api", &api_csv), ("cli", &cli_csv)] {
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader.headers().unwrap().clone();
        let at = header.iter().position(|h| h == "reason").unwrap();
        let reasons: Vec<String> = reader
            .records()
            .map(|r| r.unwrap()[at].to_owned())
            .collect();
        assert!(
            reasons.contains(&format!("'{formula}")),
            "{door}: {reasons:?}"
        );
        for row in text.lines() {
            for cell in csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(row.as_bytes())
                .records()
                .flat_map(|r| r.unwrap().iter().map(str::to_owned).collect::<Vec<_>>())
            {
                assert!(
                    !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{door}: {cell:?}"
                );
            }
        }
    }
    // The record itself keeps the reason as given: only the CSV cell is quoted.
    let records = chain(&app, "acme").await;
    assert!(records.iter().any(|(_, _, r)| r["reason"] == formula));
}
both_stores!(csv_formula_cells, csv_export_defuses_formula_cells);

fn url_encode(s: &str) -> String {
    form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// What the fake carrier answers for each SIM number.
#[derive(Clone, Copy)]
enum Carrier {
    Data,
    NoData,
    Fail,
    /// A valid answer padded past the size cap, with its `Content-Length`.
    Huge,
    /// The same, streamed without a length.
    HugeChunked,
}

/// A fake carrier on a free local port: SIM `n` answers `behaviour(n)`.
async fn carrier(behaviour: fn(u64) -> Carrier) -> String {
    use axum::response::IntoResponse as _;
    let route = move |axum::extract::Path(id): axum::extract::Path<String>| async move {
        let n = (1..=20).find(|n| iccid(*n) == id).unwrap_or(0);
        let huge = || {
            let pad = "x".repeat(2 * simvault::adapters::upstream::MAX_ANSWER_BYTES);
            json!({"carrier_status": "BIG", "pad": pad}).to_string()
        };
        match behaviour(n) {
            Carrier::Data => axum::Json(json!({"carrier_status": "LIVE"})).into_response(),
            Carrier::NoData => axum::http::StatusCode::NOT_FOUND.into_response(),
            Carrier::Fail => axum::http::StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            Carrier::Huge => huge().into_response(),
            Carrier::HugeChunked => {
                let text = huge().into_bytes();
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
                    text.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
                axum::body::Body::from_stream(futures_util::stream::iter(chunks)).into_response()
            }
        }
    };
    let app = axum::Router::new().route("/sims/{iccid}", axum::routing::get(route));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/")
}

async fn with_carrier(store: Store, url: &str, sync_secs: u64) -> TestApp {
    let url = url.to_owned();
    let app = TestApp::spawn_with(store, move |c| {
        c.upstream = Some(simvault::adapters::upstream::HttpSettings {
            url,
            token: None,
            timeout: std::time::Duration::from_secs(5),
            client_identity: None,
            ca: None,
        });
        c.sync.interval = std::time::Duration::from_secs(sync_secs);
    })
    .await;
    app.tenant("acme").await;
    app
}

/// Refresh is audited whatever comes of it (updated, no data, upstream failing, denied), and so
/// is plan creation.
async fn refresh_and_plan_creation_are_audited(store: Store) {
    let url = carrier(|n| match n {
        2 => Carrier::NoData,
        3 => Carrier::Fail,
        _ => Carrier::Data,
    })
    .await;
    let app = with_carrier(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 1..=3 {
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let refresh = |n| format!("/v1/sims/{}/refresh", iccid(n));
    assert_eq!(operator.post(&refresh(1), &json!({})).await.status, 200);
    assert_eq!(operator.post(&refresh(2), &json!({})).await.status, 200);
    assert_eq!(operator.post(&refresh(3), &json!({})).await.status, 502);
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(support.post(&refresh(1), &json!({})).await.status, 403);
    let plan = operator
        .post(
            "/v1/plans",
            &json!({"name": "eu", "compatibility_zones": ["eu"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    assert_eq!(
        support
            .post("/v1/plans", &json!({"name": "x"}))
            .await
            .status,
        403
    );

    let records = chain(&app, "acme").await;
    let refreshes: Vec<(&str, &str, &Value)> = records
        .iter()
        .filter(|(a, _, _)| a == "sim.refresh")
        .map(|(_, o, r)| (o.as_str(), r["iccid"].as_str().unwrap_or(""), &r["reason"]))
        .collect();
    assert_eq!(
        refreshes,
        [
            ("allowed", iccid(1).as_str(), &Value::Null),
            (
                "allowed",
                iccid(2).as_str(),
                &json!("no upstream data: unchanged")
            ),
            ("failed", iccid(3).as_str(), &json!("upstream failed")),
            ("denied", iccid(1).as_str(), &Value::Null),
        ]
    );
    let plans: Vec<(&str, &Value)> = records
        .iter()
        .filter(|(a, _, _)| a == "plan.create")
        .map(|(_, o, r)| (o.as_str(), &r["reason"]))
        .collect();
    let created = format!("plan {}", plan.body["id"].as_str().unwrap());
    assert_eq!(
        plans,
        [("allowed", &json!(created)), ("denied", &Value::Null)]
    );
    assert_eq!(
        app.jwt_client("acme", &[Role::Auditor])
            .get("/v1/audit/verify")
            .await
            .body["ok"],
        true
    );
}
both_stores!(
    refresh_and_plans_audited,
    refresh_and_plan_creation_are_audited
);

/// Each background sync round leaves one record per tenant, by `system:sync`, with its counts.
async fn background_sync_is_audited_per_round(store: Store) {
    let url = carrier(|n| match n {
        3 => Carrier::NoData,
        _ => Carrier::Data,
    })
    .await;
    let app = with_carrier(store, &url, 600).await;
    app.tenant("globex").await;
    let acme = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let globex = app.mtls_api("globex", &[Role::Provisioner], "prov").await;
    for n in 1..=3 {
        acme.create_sim(json!({"iccid": iccid(n)})).await;
    }
    globex.create_sim(json!({"iccid": iccid(4)})).await;
    let sync_records = |records: Vec<(String, String, Value)>| -> Vec<Value> {
        records
            .into_iter()
            .filter(|(_, _, r)| r["subject"] == simvault::service::sync::SYNC_ACTOR)
            .map(|(_, _, r)| r)
            .collect()
    };
    let mut counted = (0, 0);
    for _ in 0..200 {
        let total = |records: &[Value]| {
            records
                .iter()
                .map(|r| {
                    let reason = r["reason"].as_str().unwrap();
                    let n: usize = reason["background sync: ".len()..]
                        .split(' ')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap();
                    n
                })
                .sum::<usize>()
        };
        counted = (
            total(&sync_records(chain(&app, "acme").await)),
            total(&sync_records(chain(&app, "globex").await)),
        );
        if counted == (2, 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(counted, (2, 1), "SIMs updated per tenant, as recorded");
    for tenant in ["acme", "globex"] {
        for r in sync_records(chain(&app, tenant).await) {
            assert_eq!(r["action"], "sim.refresh");
            assert_eq!(r["outcome"], "completed");
            assert_eq!(r["tenant"], tenant, "each tenant's round in its own chain");
            assert!(r["iccid"].is_null());
        }
    }
    let acme_reasons: Vec<String> = sync_records(chain(&app, "acme").await)
        .iter()
        .map(|r| r["reason"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        acme_reasons
            .iter()
            .any(|r| r.contains("without upstream data") && !r.contains(" 0 without")),
        "{acme_reasons:?}"
    );
}
both_stores!(sync_audited, background_sync_is_audited_per_round);

/// A PIN attempt answered `409` (no such PIN stored, or a retired SIM) is recorded like any
/// refused attempt, and changes nothing.
async fn pin_attempts_refused_with_409_are_audited(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"pin1": "1234"}}))
        .await;
    prov.create_sim(json!({"iccid": iccid(2), "secrets": {"pin1": "1234", "puk1": "12345678"}}))
        .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let reset = |n| {
        let support = support.clone();
        async move {
            support
                .post(
                    &format!("/v1/sims/{}/reset-pin", iccid(n)),
                    &json!({"pin_type": "pin2", "current_pin": "1234", "new_pin": "4321"}),
                )
                .await
        }
    };
    assert_eq!(reset(1).await.status, 409, "no PIN2 stored");
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let moved = operator
        .patch(
            &format!("/v1/sims/{}/state", iccid(2)),
            &json!({"state": "retired", "reason": "end of contract"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    let retired = support
        .post(
            &format!("/v1/sims/{}/unblock-pin", iccid(2)),
            &json!({"pin_type": "pin1", "puk": "12345678", "new_pin": "4321", "reason": "T-7"}),
        )
        .await;
    assert_eq!(retired.status, 409);
    let records = chain(&app, "acme").await;
    let attempts: Vec<(&str, &str, &str, &Value, &Value)> = records
        .iter()
        .filter(|(a, _, _)| a.starts_with("pin."))
        .map(|(a, o, r)| {
            (
                a.as_str(),
                o.as_str(),
                r["iccid"].as_str().unwrap(),
                &r["fields"],
                &r["reason"],
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [
            (
                "pin.reset",
                "not-stored",
                iccid(1).as_str(),
                &json!(["pin2"]),
                &Value::Null
            ),
            (
                "pin.unblock",
                "sim-retired",
                iccid(2).as_str(),
                &json!(["puk1", "pin1"]),
                &json!("T-7")
            ),
        ]
    );
    // Nothing was spent: the SIMs' counters are as they were.
    for n in [1, 2] {
        let sim = support.get(&format!("/v1/sims/{}", iccid(n))).await.body;
        assert_eq!(sim["pin_status"]["pin1"]["remaining_attempts"], 3, "{sim}");
    }
}
both_stores!(
    pin_conflicts_audited,
    pin_attempts_refused_with_409_are_audited
);

/// An upstream answer over the size cap is `502 upstream-unavailable` and changes nothing,
/// whether announced by its length or streamed; a proxy named in the environment is ignored.
async fn upstream_answers_are_capped_and_proxies_ignored(store: Store) {
    let url = carrier(|n| match n {
        2 => Carrier::Huge,
        3 => Carrier::HugeChunked,
        _ => Carrier::Data,
    })
    .await;
    let app = with_carrier(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 1..=3 {
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    let operator = app.jwt_client("acme", &[Role::Operator]);
    for n in [2, 3] {
        let before = operator.get(&format!("/v1/sims/{}", iccid(n))).await.body;
        let a = operator
            .post(&format!("/v1/sims/{}/refresh", iccid(n)), &json!({}))
            .await;
        assert_eq!(a.status, 502, "{n}: {:?}", a.body);
        assert!(
            a.body["type"]
                .as_str()
                .unwrap()
                .ends_with("/upstream-unavailable")
        );
        assert_eq!(
            operator.get(&format!("/v1/sims/{}", iccid(n))).await.body,
            before
        );
        assert_ne!(before["carrier_status"], "BIG");
    }
    // A replica whose environment names a proxy that does not exist still reaches upstream.
    let dead_proxy = "http://127.0.0.1:9";
    let (mut replica, base) = app.spawn_replica(&[
        ("SIMVAULT_UPSTREAM_URL", url.as_str()),
        ("SIMVAULT_UPSTREAM_SYNC_SECS", "0"),
        ("HTTP_PROXY", dead_proxy),
        ("http_proxy", dead_proxy),
        ("HTTPS_PROXY", dead_proxy),
        ("https_proxy", dead_proxy),
        ("ALL_PROXY", dead_proxy),
        ("all_proxy", dead_proxy),
        ("NO_PROXY", ""),
        ("no_proxy", ""),
    ]);
    let via_replica = Api {
        app_base: base,
        ..operator.clone()
    };
    let a = via_replica
        .post(&format!("/v1/sims/{}/refresh", iccid(1)), &json!({}))
        .await;
    let _ = replica.kill();
    let _ = replica.wait();
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["carrier_status"], "LIVE");
}
both_stores!(
    upstream_capped,
    upstream_answers_are_capped_and_proxies_ignored
);

/// A receiver on loopback: counts requests and answers `200`, or never answers at all.
async fn receiver(hang: bool) -> (std::sync::Arc<std::sync::atomic::AtomicUsize>, String) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = hits.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let seen = seen.clone();
            async move {
                seen.fetch_add(1, Ordering::SeqCst);
                if hang {
                    std::future::pending::<()>().await;
                }
                axum::http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (hits, format!("http://127.0.0.1:{port}/hook"))
}

/// One tenant's receiver that never answers (within a long timeout) does not hold back
/// another tenant's deliveries: they all arrive while the hanging ones are still unanswered,
/// and the hanging target never gets more than its share of attempts at once.
async fn a_hanging_webhook_does_not_stall_other_targets(store: Store) {
    use std::sync::atomic::Ordering;
    let app = TestApp::spawn_with(store, |c| {
        c.webhooks.allow_insecure = true;
        c.webhooks.poll = std::time::Duration::from_millis(50);
        c.webhooks.timeout = std::time::Duration::from_secs(120);
        c.webhooks.concurrency = 8;
    })
    .await;
    let (hung, hung_url) = receiver(true).await;
    let (healthy, healthy_url) = receiver(false).await;
    let mut hooks = Vec::new();
    for (tenant, url) in [("acme", &hung_url), ("globex", &healthy_url)] {
        app.tenant(tenant).await;
        let admin = app.jwt_client(tenant, &[Role::Admin]);
        let a = admin
            .post(
                "/v1/webhooks",
                &json!({"url": url, "events": ["sim.created"]}),
            )
            .await;
        assert_eq!(a.status, 201, "{:?}", a.body);
        hooks.push((admin, a.body["id"].as_str().unwrap().to_owned()));
    }
    // The hanging tenant's events first: under a whole-batch wait they would fill every slot.
    const N: u64 = 12;
    for (tenant, first) in [("acme", 0), ("globex", 100)] {
        let prov = app.mtls_api(tenant, &[Role::Provisioner], "prov").await;
        for n in 1..=N {
            prov.create_sim(json!({"iccid": iccid(first + n)})).await;
        }
    }
    for _ in 0..600 {
        if healthy.load(Ordering::SeqCst) as u64 >= N {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        healthy.load(Ordering::SeqCst) as u64,
        N,
        "every healthy delivery arrived"
    );
    let (acme_admin, acme_hook) = &hooks[0];
    let pending = acme_admin
        .get(&format!(
            "/v1/webhooks/{acme_hook}/deliveries?page_size=250"
        ))
        .await
        .body;
    let items = pending["items"].as_array().unwrap();
    assert_eq!(items.len() as u64, N);
    assert!(
        items
            .iter()
            .all(|d| d["attempts"] == 0 && d["status"] == "pending"),
        "no attempt to the hanging target has ended: {pending}"
    );
    let started = hung.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&started),
        "the hanging target holds at most its share of the slots: {started}"
    );
}
both_stores!(
    webhook_isolation,
    a_hanging_webhook_does_not_stall_other_targets
);

/// The data directory is `0700` and the SQLite files `0600` whatever the umask of whoever
/// runs `init`, a CLI command or `serve`, and files left looser are tightened.
#[test]
fn the_data_directory_and_database_are_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("umask 000 && exec \"$0\" \"$@\"")
            .arg(env!("CARGO_BIN_EXE_simvault"))
            .args(args)
            .arg("--data-dir")
            .arg(&data)
            .env_remove("SIMVAULT_DATABASE_URL")
            .env_remove("SIMVAULT_DATA_DIR");
        cmd
    };
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let db = data.join("simvault.db");
    let companions = || {
        ["simvault.db-wal", "simvault.db-shm"]
            .map(|n| data.join(n))
            .into_iter()
            .filter(|p| p.exists())
            .collect::<Vec<_>>()
    };
    let check = |when: &str| {
        assert_eq!(mode(&data), 0o700, "{when}: data directory");
        assert_eq!(mode(&db), 0o600, "{when}: database");
        for c in companions() {
            assert_eq!(mode(&c), 0o600, "{when}: {}", c.display());
        }
    };
    let out = run(&["init"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("after init");

    let loosen = || {
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
        for p in std::iter::once(db.clone()).chain(companions()) {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
        }
    };
    loosen();
    let out = run(&["tenant", "create", "acme"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check("after a CLI command");

    loosen();
    let mut server = run(&["serve", "--listen", "127.0.0.1:0"])
        .env("SIMVAULT_LOG", "info")
        .env("SIMVAULT_LOG_FORMAT", "json")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = server.stderr.take().unwrap();
    let listening = {
        use std::io::BufRead as _;
        std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("simvault listening"))
    };
    // SIGKILL leaves the WAL files as the running server had them.
    let _ = server.kill();
    let _ = server.wait();
    assert!(listening, "the server did not start");
    check("after serving");
}

/// `/metrics` for a tenant's scraper holds only that tenant's series: never one labelled with
/// another tenant, never a platform-wide one; the platform tenant's scraper sees them all.
async fn metrics_are_scoped_to_the_callers_tenant(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        c.metrics_platform_tenant = Some(tenant_id("metrics-ops"));
    })
    .await;
    for t in ["metrics-a", "metrics-b", "metrics-ops"] {
        app.tenant(t).await;
    }
    // Traffic of each tenant, and some refused without a credential.
    for t in ["metrics-a", "metrics-b"] {
        let support = app.jwt_client(t, &[Role::Support]);
        assert_eq!(support.get("/v1/sims").await.status, 200);
    }
    let anon = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: None,
    };
    assert_eq!(anon.get("/v1/sims").await.status, 401);
    let scrape = |api: Api| async move {
        let a = Api::send(api.request(reqwest::Method::GET, "/metrics")).await;
        assert_eq!(a.status, 200);
        a.body.as_str().unwrap().to_owned()
    };
    let a_view = scrape(app.jwt_client("metrics-a", &[Role::Admin])).await;
    assert!(a_view.contains("tenant=\"metrics-a\""), "{a_view}");
    for line in a_view.lines().filter(|l| !l.starts_with('#')) {
        assert!(line.contains("tenant=\"metrics-a\""), "not A's: {line}");
    }
    assert!(!a_view.contains("metrics-b"), "B's series shown to A");
    assert!(
        !a_view.contains("tenant=\"\""),
        "platform series shown to A"
    );
    let b_view = scrape(app.mtls_api("metrics-b", &[Role::Metrics], "prom").await).await;
    assert!(b_view.contains("tenant=\"metrics-b\"") && !b_view.contains("metrics-a"));
    let platform = scrape(app.mtls_api("metrics-ops", &[Role::Metrics], "prom").await).await;
    for series in [
        "tenant=\"metrics-a\"",
        "tenant=\"metrics-b\"",
        "tenant=\"\"",
    ] {
        assert!(platform.contains(series), "platform view lacks {series}");
    }
}
both_stores!(metrics_scoped, metrics_are_scoped_to_the_callers_tenant);
