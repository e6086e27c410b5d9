//! Webhooks: subscriptions (admin only, secret shown once), SSRF-safe targets, signed
//! deliveries to a real local HTTP receiver, retries with backoff, giving up, delivery after a
//! restart, and no double delivery across replicas.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid};

/// What the receiver answers.
#[derive(Debug, Default)]
pub(crate) struct Behaviour {
    /// Answer 500 to this many requests first.
    pub(crate) fail_first: usize,
    /// Answer 503 to everything while set.
    down: bool,
    /// Wait this long before answering (widens race windows).
    delay: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Hit {
    pub(crate) signature: String,
    event_id: String,
    pub(crate) body: String,
    status: u16,
    at: std::time::Instant,
}

#[derive(Clone, Default)]
pub(crate) struct Receiver {
    pub(crate) behaviour: Arc<Mutex<Behaviour>>,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    /// Starts a plain-HTTP receiver on loopback; returns it and its URL.
    pub(crate) async fn start() -> (Receiver, String) {
        let receiver = Receiver::default();
        let r = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let r = r.clone();
                async move {
                    let delay = r.behaviour.lock().unwrap().delay;
                    tokio::time::sleep(delay).await;
                    let status = {
                        let mut b = r.behaviour.lock().unwrap();
                        if b.down {
                            503
                        } else if b.fail_first > 0 {
                            b.fail_first -= 1;
                            500
                        } else {
                            200
                        }
                    };
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    r.hits.lock().unwrap().push(Hit {
                        signature: header("simvault-signature"),
                        event_id: header("simvault-event-id"),
                        body,
                        status,
                        at: std::time::Instant::now(),
                    });
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (receiver, format!("http://127.0.0.1:{port}/hook"))
    }

    pub(crate) fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the hits so far.
    pub(crate) async fn wait_for(
        &self,
        what: &str,
        limit: Duration,
        done: impl Fn(&[Hit]) -> bool,
    ) {
        let start = std::time::Instant::now();
        loop {
            if done(&self.hits()) {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{what}: {} hit(s) {:?}",
                self.hits().len(),
                self.hits()
                    .iter()
                    .map(|h| (h.status, h.body.clone()))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The receiver's check: `t=<secs>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub(crate) fn signature_valid(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = Some(v.to_owned()),
            Some(("v1", v)) => v1 = Some(v.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    let Ok(sig) = hex::decode(v1) else {
        return false;
    };
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    mac.verify_slice(&sig).is_ok()
}

pub(crate) fn fast(c: &mut simvault::config::Config) {
    c.webhooks.allow_insecure = true;
    c.webhooks.poll = Duration::from_millis(50);
    c.webhooks.retry_base = Duration::from_millis(200);
}

/// A server allowing loopback targets, tenant `acme`, its admin, and a receiver.
async fn hooked(store: Store) -> (TestApp, Api, Receiver, String) {
    let app = TestApp::spawn_with(store, fast).await;
    app.tenant("acme").await;
    let (receiver, url) = Receiver::start().await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    (app, admin, receiver, url)
}

pub(crate) async fn subscribe(admin: &Api, url: &str, events: &[&str]) -> (String, String) {
    let a = admin
        .post("/v1/webhooks", &json!({"url": url, "events": events}))
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    (
        a.body["id"].as_str().unwrap().to_owned(),
        a.body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn deliveries(admin: &Api, hook: &str) -> Vec<Value> {
    let a = admin
        .get(&format!("/v1/webhooks/{hook}/deliveries?page_size=250"))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    a.body["items"].as_array().unwrap().clone()
}

async fn webhooks_are_admin_only_and_show_the_secret_once(store: Store) {
    let app = TestApp::spawn_with(store, fast).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/x", "events": ["sim.created", "task.completed"], "description": "CRM"}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    let id = a.body["id"].as_str().unwrap().to_owned();
    let secret = a.body["secret"].as_str().unwrap().to_owned();
    assert!(
        secret.starts_with("whsec_") && secret.len() > 40,
        "{secret}"
    );
    assert_eq!(a.body["events"], json!(["sim.created", "task.completed"]));
    // Never again: not in the list, not in the audit log, not in the database in clear.
    let list = admin.get("/v1/webhooks").await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["items"][0]["id"], id);
    assert!(list.body["items"][0].get("secret").is_none());
    assert!(!list.body.to_string().contains(&secret));
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let log = auditor
        .get("/v1/audit/events?action=webhook.manage")
        .await
        .body;
    assert_eq!(log["items"].as_array().unwrap().len(), 1);
    assert!(!log.to_string().contains(&secret[6..]));
    let stored: Vec<Vec<u8>> = crate::helpers::raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT secret FROM webhooks").fetch_all(p).await.unwrap());
    assert!(
        !stored[0]
            .windows(secret.len())
            .any(|w| w == secret.as_bytes()),
        "sealed, not stored in clear"
    );

    // Invalid subscriptions, every problem at once.
    let a = admin
        .post(
            "/v1/webhooks",
            &json!({"url": "ftp://x.example.com/", "events": ["sim.created", "sim.exploded", "sim.created"]}),
        )
        .await;
    assert_eq!(a.status, 400);
    let pointers = a.pointers();
    assert_eq!(pointers, ["/url", "/events/1", "/events/2"]);
    for body in [
        json!({"url": "https://x.example.com/", "events": []}),
        json!({"events": ["sim.created"]}),
        json!({"url": "https://x.example.com/", "events": ["sim.created"], "secret": "mine"}),
        json!({"url": "https://user:pw@x.example.com/", "events": ["sim.created"]}),
    ] {
        assert_eq!(
            admin.post("/v1/webhooks", &body).await.status,
            400,
            "{body}"
        );
    }

    // Admins only; other tenants see nothing.
    for role in [
        Role::Provisioner,
        Role::Support,
        Role::Operator,
        Role::Auditor,
    ] {
        let api = app.jwt_client("acme", &[role]);
        assert_eq!(api.get("/v1/webhooks").await.status, 403, "{role:?}");
        assert_eq!(
            api.post(
                "/v1/webhooks",
                &json!({"url": "https://a.example.com/", "events": ["sim.created"]})
            )
            .await
            .status,
            403
        );
        assert_eq!(api.delete(&format!("/v1/webhooks/{id}")).await.status, 403);
    }
    let stranger = app.jwt_client("other", &[Role::Admin]);
    assert_eq!(stranger.get("/v1/webhooks").await.body["items"], json!([]));
    let hook = format!("/v1/webhooks/{id}");
    let sent = format!("{hook}/deliveries");
    let (get, delete) = (reqwest::Method::GET, reqwest::Method::DELETE);
    // In order: a stranger's attempts, then the owner's, before and after deleting.
    for (who, method, path, status) in [
        (&stranger, &delete, &hook, 404),
        (&stranger, &get, &sent, 404),
        (&admin, &get, &sent, 200),
        (&admin, &delete, &hook, 204),
        (&admin, &delete, &hook, 404),
        (&admin, &get, &sent, 404),
    ] {
        let a = Api::send(who.request(method.clone(), path)).await;
        assert_eq!(a.status, status, "{method} {path}");
    }
    let log = auditor
        .get("/v1/audit/events?action=webhook.manage&outcome=allowed")
        .await
        .body;
    assert_eq!(
        log["items"].as_array().unwrap().len(),
        2,
        "creation and deletion"
    );
    let denied = auditor
        .get("/v1/audit/events?action=webhook.manage&outcome=denied&limit=100")
        .await
        .body;
    assert_eq!(
        denied["items"].as_array().unwrap().len(),
        12,
        "every refusal recorded"
    );
}
both_stores!(
    webhooks_are_admin_only_and_show_the_secret_once,
    webhooks_are_admin_only_and_show_the_secret_once
);

async fn webhook_targets_are_public_https_unless_insecure_is_allowed(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        fast(c);
        c.webhooks.allow_insecure = false;
    })
    .await;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    for url in [
        "http://hooks.example.com/",
        "https://127.0.0.1/",
        "https://10.1.2.3/",
        "https://192.168.0.1/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://localhost/",
        "https://db.internal/",
    ] {
        let a = admin
            .post(
                "/v1/webhooks",
                &json!({"url": url, "events": ["sim.created"]}),
            )
            .await;
        assert_eq!(a.status, 400, "{url}: {:?}", a.body);
        assert_eq!(a.body["errors"][0]["pointer"], "/url");
    }
    assert_eq!(
        admin
            .post(
                "/v1/webhooks",
                &json!({"url": "https://hooks.example.com/", "events": ["sim.created"]})
            )
            .await
            .status,
        201
    );

    // A loopback target registered while a lab setting allowed it is refused at delivery
    // time once the deployment no longer allows it: the receiver never hears of the event.
    let (receiver, url) = Receiver::start().await;
    let mut lab = app.services.webhooks().clone();
    lab.settings.allow_insecure = true;
    let lab_admin = simvault::domain::Principal {
        tenant: simvault::domain::TenantId::parse("acme").unwrap(),
        roles: [Role::Admin].into_iter().collect(),
        subject: "lab".into(),
        auth_method: simvault::domain::AuthMethod::Jwt,
        credential_id: None,
        origin: Default::default(),
    };
    let hook = lab
        .create_webhook(
            &lab_admin,
            simvault::service::webhooks::NewWebhook {
                url,
                events: vec!["sim.created".into()],
                description: None,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    let id = hook.webhook.id;
    let start = std::time::Instant::now();
    let refused = loop {
        let items = deliveries(&admin, &id.to_string()).await;
        if let Some(d) = items.first()
            && d["attempts"].as_i64().unwrap() >= 1
        {
            break d.clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{items:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused["last_error"]
            .as_str()
            .unwrap()
            .contains("target refused"),
        "{refused:?}"
    );
    assert!(refused["last_status_code"].is_null());
    assert!(
        receiver.hits().is_empty(),
        "nothing reached the loopback receiver"
    );
}
both_stores!(
    webhook_targets_are_public_https_unless_insecure_is_allowed,
    webhook_targets_are_public_https_unless_insecure_is_allowed
);

async fn deliveries_are_signed_and_carry_no_secret(store: Store) {
    let (app, admin, receiver, url) = hooked(store).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    // An event from before the subscription is not sent.
    prov.create_sim(json!({"iccid": iccid(99)})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (hook, secret) = subscribe(
        &admin,
        &url,
        &[
            "sim.created",
            "sim.state_changed",
            "sim.secrets_updated",
            "task.completed",
            "sim.deleted",
        ],
    )
    .await;
    const KI: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
    let sim = prov
        .create_sim(
            json!({"iccid": iccid(1), "secrets": {"ki": KI, "pin1": "9731", "puk1": "86420864"}}),
        )
        .await;
    let sim_id = sim["id"].as_str().unwrap();
    assert_eq!(
        operator
            .patch(
                &format!("/v1/sims/{sim_id}/state"),
                &json!({"state": "active"})
            )
            .await
            .status,
        200
    );
    let a = prov
        .request(reqwest::Method::PUT, &format!("/v1/sims/{sim_id}/secrets"))
        .json(&json!({"pin2": "5555"}))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 200);
    let task = prov
        .post(
            "/v1/sims/bulk/import",
            &json!({"sims": [{"iccid": iccid(2), "secrets": {"ki": KI}}]}),
        )
        .await;
    assert_eq!(task.status, 202);
    receiver
        .wait_for("five events", Duration::from_secs(30), |h| h.len() >= 5)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits = receiver.hits();
    let mut seen: Vec<String> = Vec::new();
    for h in &hits {
        assert_eq!(h.status, 200);
        assert!(signature_valid(&secret, &h.signature, &h.body), "{h:?}");
        assert!(!signature_valid("whsec_wrong", &h.signature, &h.body));
        let body: Value = serde_json::from_str(&h.body).unwrap();
        assert_eq!(
            body["id"],
            h.event_id.as_str(),
            "the event id, for de-duplication"
        );
        assert_eq!(body["tenant_id"], "acme");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        for canary in [KI, "9731", "86420864", "5555"] {
            assert!(
                !h.body.contains(canary),
                "a secret in a payload: {}",
                h.body
            );
        }
        assert_ne!(
            body["data"]["iccid"],
            iccid(99),
            "sent before it was subscribed"
        );
        seen.push(body["event"].as_str().unwrap().to_owned());
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "sim.created",
            "sim.created",
            "sim.secrets_updated",
            "sim.state_changed",
            "task.completed"
        ]
    );
    let changed = hits
        .iter()
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .find(|b| b["event"] == "sim.state_changed")
        .unwrap();
    assert_eq!(changed["data"]["sim_id"], sim_id);
    assert_eq!(changed["data"]["iccid"], iccid(1));
    assert_eq!(changed["data"]["state"], "active");
    let done = hits
        .iter()
        .map(|h| serde_json::from_str::<Value>(&h.body).unwrap())
        .find(|b| b["event"] == "task.completed")
        .unwrap();
    assert_eq!(done["data"]["task_id"], task.body["id"]);
    assert_eq!(done["data"]["completed_items"], 1);
    let list = deliveries(&admin, &hook).await;
    assert_eq!(list.len(), 5);
    for d in &list {
        assert_eq!(d["status"], "delivered");
        assert_eq!(d["attempts"], 1);
        assert_eq!(d["last_status_code"], 200);
        assert!(d["delivered_at"].is_string());
    }
}
both_stores!(
    deliveries_are_signed_and_carry_no_secret,
    deliveries_are_signed_and_carry_no_secret
);

async fn failing_deliveries_are_retried_with_backoff_then_given_up(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        fast(c);
        c.webhooks.give_up_after = Duration::from_secs(4);
    })
    .await;
    app.tenant("acme").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);
    let (flaky, flaky_url) = Receiver::start().await;
    flaky.behaviour.lock().unwrap().fail_first = 2;
    let (dead, dead_url) = Receiver::start().await;
    dead.behaviour.lock().unwrap().down = true;
    let (flaky_hook, _) = subscribe(&admin, &flaky_url, &["sim.created"]).await;
    let (dead_hook, _) = subscribe(&admin, &dead_url, &["sim.created"]).await;
    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    flaky
        .wait_for("third attempt", Duration::from_secs(30), |h| h.len() >= 3)
        .await;
    let hits = flaky.hits();
    assert_eq!(
        hits.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 500, 200]
    );
    assert!(
        hits.iter().all(|h| h.event_id == hits[0].event_id),
        "one event, retried"
    );
    let first_gap = hits[1].at - hits[0].at;
    let second_gap = hits[2].at - hits[1].at;
    assert!(first_gap >= Duration::from_millis(150), "{first_gap:?}");
    assert!(
        second_gap >= Duration::from_millis(300),
        "backoff grows: {second_gap:?}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let d = deliveries(&admin, &flaky_hook).await;
    assert_eq!(d[0]["status"], "delivered");
    assert_eq!(d[0]["attempts"], 3);
    assert_eq!(d[0]["last_status_code"], 200);

    // The dead receiver: retried until the give-up age, then marked failed.
    let start = std::time::Instant::now();
    let given_up = loop {
        let d = deliveries(&admin, &dead_hook).await;
        if d[0]["status"] == "failed" {
            break d[0].clone();
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{d:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(given_up["attempts"].as_i64().unwrap() >= 3, "{given_up:?}");
    assert_eq!(given_up["last_status_code"], 503);
    assert!(given_up["next_attempt_at"].is_null());
    let attempts = dead.hits().len();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(dead.hits().len(), attempts, "no attempt after giving up");
}
both_stores!(
    failing_deliveries_are_retried_with_backoff_then_given_up,
    failing_deliveries_are_retried_with_backoff_then_given_up
);

/// Two replicas share the deliveries: each event reaches the receiver exactly once.
async fn replicas_never_deliver_an_event_twice(store: Store) {
    let (app, admin, receiver, url) = hooked(store).await;
    receiver.behaviour.lock().unwrap().delay = Duration::from_millis(20);
    subscribe(&admin, &url, &["sim.created"]).await;
    let (mut replica, _) = app.spawn_replica(&[
        ("SIMVAULT_WEBHOOK_ALLOW_INSECURE", "true"),
        ("SIMVAULT_WEBHOOK_POLL_MS", "20"),
    ]);
    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    const N: u64 = 60;
    for n in 1..=N {
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    receiver
        .wait_for("every event", Duration::from_secs(60), |h| {
            h.len() >= N as usize
        })
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    replica.kill().unwrap();
    replica.wait().unwrap();
    let mut per_event: HashMap<String, usize> = HashMap::new();
    for h in receiver.hits() {
        *per_event.entry(h.event_id).or_default() += 1;
    }
    assert_eq!(per_event.len(), N as usize);
    assert!(per_event.values().all(|n| *n == 1), "{per_event:?}");
}
both_stores!(
    replicas_never_deliver_an_event_twice,
    replicas_never_deliver_an_event_twice
);

/// Deliveries pending when the server stops are delivered by the next one.
async fn pending_deliveries_survive_a_restart(store: Store) {
    let (mut app, admin, receiver, url) = hooked(store).await;
    receiver.behaviour.lock().unwrap().down = true;
    let (hook, secret) = subscribe(&admin, &url, &["sim.created"]).await;
    let prov = app.jwt_client("acme", &[Role::Provisioner]);
    for n in 1..=3 {
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    receiver
        .wait_for("failed attempts", Duration::from_secs(30), |h| h.len() >= 3)
        .await;
    app.app.stop().await;
    receiver.behaviour.lock().unwrap().down = false;
    let failed_before = receiver.hits().len();
    let (mut replica, base) = app.spawn_replica(&[
        ("SIMVAULT_WEBHOOK_ALLOW_INSECURE", "true"),
        ("SIMVAULT_WEBHOOK_POLL_MS", "50"),
        ("SIMVAULT_WEBHOOK_RETRY_BASE_MS", "200"),
    ]);
    receiver
        .wait_for("redelivery", Duration::from_secs(60), |h| {
            h.iter().filter(|h| h.status == 200).count() >= 3
        })
        .await;
    let ok: Vec<Hit> = receiver
        .hits()
        .into_iter()
        .skip(failed_before)
        .filter(|h| h.status == 200)
        .collect();
    let mut ids: Vec<&str> = ok.iter().map(|h| h.event_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    assert!(
        ok.iter()
            .all(|h| signature_valid(&secret, &h.signature, &h.body))
    );
    let mut admin = admin;
    admin.app_base = base;
    let d = deliveries(&admin, &hook).await;
    assert!(d.iter().all(|d| d["status"] == "delivered"), "{d:?}");
    replica.kill().unwrap();
    replica.wait().unwrap();
}
both_stores!(
    pending_deliveries_survive_a_restart,
    pending_deliveries_survive_a_restart
);
