//! Connection and body limits (API.md "Connection limits"; issue #15 items 4 and 5): large
//! bodies authorized before they are read, capped per principal, idle and slow clients cut,
//! connections capped per address, oversized bodies answered with a readable `413`.
//!
//! The limits are set short here (1–2 s); waits are bounded generously and nothing asserts
//! a speed.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

/// A generous bound for anything the server should do "within the configured time".
const PATIENCE: Duration = Duration::from_secs(20);

/// A TLS connection to the test server offering `alpn`, with no client certificate.
async fn connect(app: &TestApp, alpn: &[u8]) -> std::io::Result<TlsStream<TcpStream>> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let ca = std::fs::read(app.keys.ca_cert()).unwrap();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(app.app.local_addr()).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
}

/// The head of an HTTP/1 request with a JSON body of `length` bytes.
fn post_head(path: &str, token: &str, length: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    )
}

/// Reads one HTTP/1 response (head and a `Content-Length` body): status, head, JSON body.
async fn read_response(stream: &mut (impl AsyncRead + Unpin)) -> (u16, String, Value) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("reading the answer");
        assert!(n > 0, "connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream
            .read(&mut chunk)
            .await
            .expect("reading the answer body");
        assert!(n > 0, "connection closed in the middle of the answer");
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..head_end + length]).unwrap_or(Value::Null);
    (status, head, body)
}

/// Reads until the server closes the connection (EOF or reset); `Err` if it is still open
/// after `bound`. Returns what was read.
async fn wait_for_close(
    stream: &mut (impl AsyncRead + Unpin),
    bound: Duration,
) -> Result<Vec<u8>, Vec<u8>> {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    let read_all = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&chunk[..n]),
            }
        }
    };
    match tokio::time::timeout(bound, read_all).await {
        Ok(()) => Ok(seen),
        Err(_) => Err(seen),
    }
}

async fn tasks_queued(app: &TestApp) -> i64 {
    raw_sql!(&app.test_db.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM tasks")
        .fetch_one(p).await.unwrap())
}

/// An auditor's (and a metrics identity's) 64 MiB import is refused with `403` before its
/// body is read: the client announces 64 MiB, sends a few bytes, and reads the `403`
/// without sending the rest. Nothing is queued, the denial is audited, and a provisioner's
/// import still works.
async fn unauthorized_import_is_refused_before_its_body_is_read(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    for role in [Role::Auditor, Role::Metrics] {
        let token = app.token("acme", &[role], "not-a-provisioner");
        let mut tls = connect(&app, b"http/1.1").await.unwrap();
        let head = post_head("/v1/sims/bulk/import", &token, 64 * 1024 * 1024);
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(br#"{"sims": [{"iccid": "#).await.unwrap();
        tls.flush().await.unwrap();
        let (status, head, body) = tokio::time::timeout(PATIENCE, read_response(&mut tls))
            .await
            .expect("the 403 came without the rest of the body");
        assert_eq!(status, 403, "{role:?}: {body}");
        assert!(head.contains("application/problem+json"), "{head}");
        assert_eq!(body["type"], "https://simvault.dev/problems/forbidden");
        assert!(head.contains("connection: close"), "{head}");
    }
    assert_eq!(tasks_queued(&app).await, 0, "nothing queued");
    let denied: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM audit_events WHERE action = 'sim.import' AND outcome = 'denied'")
        .fetch_one(p).await.unwrap());
    assert_eq!(denied, 2, "each refusal is audited");

    // A real client sending the whole 64 MiB reads its 403 too (HTTP/1 and HTTP/2).
    let token = app.token("acme", &[Role::Auditor], "auditor");
    let filler = format!("{{\"sims\": [\"{}\"]}}", "x".repeat(64 * 1024 * 1024));
    for client in [
        app.anonymous(),
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(&std::fs::read(app.keys.ca_cert()).unwrap())
                    .unwrap(),
            )
            .http1_only()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap(),
    ] {
        let res = client
            .post(app.url("/v1/sims/bulk/import"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(filler.clone())
            .send()
            .await
            .expect("the client reads the answer");
        assert_eq!(res.status(), 403);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["type"], "https://simvault.dev/problems/forbidden");
    }
    assert_eq!(tasks_queued(&app).await, 0, "nothing queued");

    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    let a = prov
        .post(
            "/v1/sims/bulk/import",
            &json!({"sims": [{"iccid": iccid(1), "secrets": {"ki": "00112233445566778899aabbccddeeff"}}]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
}
both_stores!(
    unauthorized_import_is_refused_before_its_body_is_read,
    unauthorized_import_is_refused_before_its_body_is_read
);

/// Two large bodies of one principal in progress: the third gets `429` with `Retry-After`,
/// its body unread; another principal is not held up.
async fn third_concurrent_large_body_is_rate_limited(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let token = app.token("acme", &[Role::Provisioner], "loader");
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = connect(&app, b"http/1.1").await.unwrap();
        let head = post_head("/v1/sims/bulk/import", &token, 1024 * 1024);
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.write_all(br#"{"sims": ["#).await.unwrap();
        tls.flush().await.unwrap();
        held.push(tls);
    }
    let loader = Api {
        app_base: app.base.clone(),
        client: app.anonymous(),
        token: Some(token.clone()),
    };
    // An empty batch changes nothing whatever the answer; repeat until both held bodies
    // have been admitted.
    let started = std::time::Instant::now();
    let limited = loop {
        let a = loader
            .post("/v1/sims/bulk/import", &json!({"sims": []}))
            .await;
        if a.status == 429 {
            break a;
        }
        assert_eq!(a.status, 400, "{:?}", a.body);
        assert!(started.elapsed() < PATIENCE, "never limited");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        limited.body["type"],
        "https://simvault.dev/problems/rate-limited"
    );
    assert!(limited.headers.contains_key("retry-after"));
    let other = app.jwt_client("acme", &[Role::Provisioner]);
    let a = other
        .post("/v1/sims/bulk/import", &json!({"sims": []}))
        .await;
    assert_eq!(a.status, 400, "another principal is not limited");
    drop(held);
    // Once the held bodies are gone, the principal gets its places back.
    let started = std::time::Instant::now();
    loop {
        let a = loader
            .post("/v1/sims/bulk/import", &json!({"sims": []}))
            .await;
        if a.status == 400 {
            break;
        }
        assert!(started.elapsed() < PATIENCE * 2, "places never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(tasks_queued(&app).await, 0);
}
both_stores!(
    third_concurrent_large_body_is_rate_limited,
    third_concurrent_large_body_is_rate_limited
);

/// HTTP/2 frames in `bytes` (after the server's part of the handshake): their types.
fn h2_frame_types(bytes: &[u8]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut rest = bytes;
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        types.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    types
}

/// Idle connections without a credential are closed after the idle time: HTTP/2 with a
/// GOAWAY, HTTP/1 after its last answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed() {
    let app = TestApp::spawn_with(Store::Sqlite, |c| {
        c.limits.idle = Duration::from_secs(1);
        // Far beyond the bound below, so that only the idle limit can close them.
        c.limits.header_read = Duration::from_secs(60);
        c.limits.h2_keepalive = Duration::from_secs(120);
    })
    .await;
    let mut h2 = Vec::new();
    for _ in 0..5 {
        let mut tls = connect(&app, b"h2").await.unwrap();
        // The client preface and an empty SETTINGS frame; then nothing.
        tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
            .await
            .unwrap();
        tls.flush().await.unwrap();
        h2.push(tls);
    }
    for mut tls in h2 {
        let seen = wait_for_close(&mut tls, PATIENCE)
            .await
            .expect("an idle HTTP/2 connection stayed open");
        assert!(
            h2_frame_types(&seen).contains(&7),
            "closed with a GOAWAY: {:?}",
            h2_frame_types(&seen)
        );
    }

    let mut h1 = connect(&app, b"http/1.1").await.unwrap();
    h1.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (status, _, _) = read_response(&mut h1).await;
    assert_eq!(status, 200);
    wait_for_close(&mut h1, PATIENCE)
        .await
        .expect("an idle HTTP/1 keep-alive connection stayed open");
}

/// A request head that dribbles in is cut after the header time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_request_headers_are_cut() {
    let app = TestApp::spawn_with(Store::Sqlite, |c| {
        c.limits.header_read = Duration::from_secs(1);
        c.limits.idle = Duration::from_secs(60);
    })
    .await;
    let mut tls = connect(&app, b"http/1.1").await.unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut tls);
    let trickle = async {
        for b in
            b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    tokio::select! {
        closed = wait_for_close(&mut rd, PATIENCE) => {
            closed.expect("a dribbling request head was not cut");
        }
        () = trickle => panic!("the whole head was accepted at a byte per 300 ms"),
    }
}

/// A body that trickles (a byte every 300 ms, under the progress minimum) is cut with a
/// readable `408` problem within the body time, and nothing is created.
async fn slow_body_is_cut_with_408(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        c.limits.body_progress = Duration::from_secs(1);
    })
    .await;
    app.tenant("acme").await;
    let token = app.token("acme", &[Role::Provisioner], "slow");
    let body = json!({"iccid": iccid(7)}).to_string();
    let mut tls = connect(&app, b"http/1.1").await.unwrap();
    tls.write_all(post_head("/v1/sims", &token, body.len()).as_bytes())
        .await
        .unwrap();
    let (mut rd, mut wr) = tokio::io::split(&mut tls);
    let trickle = async {
        for b in body.as_bytes() {
            if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        std::future::pending::<()>().await;
    };
    let (status, head, problem) = tokio::select! {
        answer = tokio::time::timeout(PATIENCE, read_response(&mut rd)) => {
            answer.expect("a trickling body was not cut")
        }
        () = trickle => unreachable!(),
    };
    assert_eq!(status, 408, "{problem}");
    assert!(head.contains("application/problem+json"), "{head}");
    assert_eq!(
        problem["type"],
        "https://simvault.dev/problems/request-timeout"
    );
    assert!(problem["request_id"].is_string());
    let sims: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM sims")
        .fetch_one(p).await.unwrap());
    assert_eq!(sims, 0, "nothing created from a cut body");
}
both_stores!(slow_body_is_cut_with_408, slow_body_is_cut_with_408);

/// Beyond the per-address cap a connection is closed at accept (its TLS handshake never
/// completes); the connections already open keep working, and a place freed is reusable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_per_address_cap_are_refused() {
    let app = TestApp::spawn_with(Store::Sqlite, |c| {
        c.limits.max_connections_per_addr = 2;
    })
    .await;
    let mut first = connect(&app, b"http/1.1").await.unwrap();
    let _second = connect(&app, b"http/1.1").await.unwrap();
    assert!(
        connect(&app, b"http/1.1").await.is_err(),
        "a third connection from the same address completed its handshake"
    );
    first
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(
        read_response(&mut first).await.0,
        200,
        "open ones still work"
    );
    drop(first);
    let started = std::time::Instant::now();
    while connect(&app, b"http/1.1").await.is_err() {
        assert!(
            started.elapsed() < PATIENCE,
            "the freed place never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A body over the route's limit gets a `413` problem the client can read, over HTTP/1 and
/// HTTP/2, instead of a connection cut mid-upload.
async fn oversized_body_gets_a_readable_413(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let token = app.token("acme", &[Role::Provisioner], "big");
    let big = format!(
        "{{\"iccid\": \"{}\", \"metadata\": {{\"x\": \"{}\"}}}}",
        iccid(9),
        "y".repeat(3 * 1024 * 1024)
    );
    let ca = std::fs::read(app.keys.ca_cert()).unwrap();
    let client = |http1: bool| {
        let b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(60));
        if http1 { b.http1_only() } else { b }.build().unwrap()
    };
    for http1 in [true, false] {
        let res = client(http1)
            .post(app.url("/v1/sims"))
            .bearer_auth(&token)
            .header("content-type", "application/json")
            .body(big.clone())
            .send()
            .await
            .expect("the client reads the answer");
        assert_eq!(res.status(), 413, "http1: {http1}");
        let problem: Value = res.json().await.unwrap();
        assert_eq!(
            problem["type"],
            "https://simvault.dev/problems/payload-too-large"
        );
    }
    // A client that writes its whole body before it reads (as simple clients do) gets the
    // answer too: the server discards the rest rather than resetting the connection.
    let mut tls = connect(&app, b"http/1.1").await.unwrap();
    tls.write_all(post_head("/v1/sims", &token, big.len()).as_bytes())
        .await
        .unwrap();
    tokio::time::timeout(PATIENCE, tls.write_all(big.as_bytes()))
        .await
        .expect("the upload was left hanging")
        .expect("the upload was cut");
    let (status, head, problem) = tokio::time::timeout(PATIENCE, read_response(&mut tls))
        .await
        .unwrap();
    assert_eq!(status, 413, "{problem}");
    assert!(head.contains("connection: close"), "{head}");
    assert_eq!(
        problem["type"],
        "https://simvault.dev/problems/payload-too-large"
    );

    // An import announcing more than its limit is refused before reading.
    let mut tls = connect(&app, b"http/1.1").await.unwrap();
    tls.write_all(post_head("/v1/sims/bulk/import", &token, 200 * 1024 * 1024).as_bytes())
        .await
        .unwrap();
    let (status, _, problem) = tokio::time::timeout(PATIENCE, read_response(&mut tls))
        .await
        .unwrap();
    assert_eq!(status, 413, "{problem}");
    let sims: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar("SELECT COUNT(*) FROM sims")
        .fetch_one(p).await.unwrap());
    assert_eq!(sims, 0);
}
both_stores!(
    oversized_body_gets_a_readable_413,
    oversized_body_gets_a_readable_413
);

/// The streamed import reports a malformed body, unknown fields and a body that is not JSON
/// as the buffered one did.
async fn streamed_import_validates_the_envelope(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims/bulk/import")
            .header("content-type", "application/json")
            .body(r#"{"sims": [{"iccid": "#),
    )
    .await;
    assert_eq!(a.status, 400);
    assert_eq!(
        a.body["type"],
        "https://simvault.dev/problems/malformed-request"
    );
    let a = prov
        .post("/v1/sims/bulk/import", &json!({"sims": [], "sims2": 1}))
        .await;
    assert_eq!(a.status, 400);
    let a = prov
        .post(
            "/v1/sims/bulk/import",
            &json!({"other": 1, "sims": [{"iccid": iccid(1)}]}),
        )
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.pointers(), vec!["/other"]);
    let a = Api::send(
        prov.request(reqwest::Method::POST, "/v1/sims/bulk/import")
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_eq!(a.status, 415);
    assert_eq!(tasks_queued(&app).await, 0);
}
both_stores!(
    streamed_import_validates_the_envelope,
    streamed_import_validates_the_envelope
);
