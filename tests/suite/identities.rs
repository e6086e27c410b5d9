//! Client identities: stored rows are authenticated (tampering with roles, tenant or MAC is
//! refused and reported, never obeyed); their lifecycle through the real CLI is recorded on
//! the platform chain; a revoked certificate is refused on a connection already open; and
//! forged credentials at a high rate add a bounded number of audit rows.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const KI: &str = "465B5CE8B199B49FAA5F0A2EE238A6BC";

/// `(action, outcome, record)` of the platform chain, in order.
async fn platform(db: &simvault::store::Db) -> Vec<(String, String, Value)> {
    crate::helpers::chain_records(db, "_platform").await
}

async fn tamper(app: &TestApp, sql: &'static str, identity: &str) {
    let n = raw_sql!(&app.test_db.db, p => sqlx::query(sql)
        .bind(identity)
        .execute(p)
        .await
        .map(|r| r.rows_affected()))
    .unwrap();
    assert_eq!(n, 1, "{sql}");
}

/// A server whose identity cache is off, so that a tampered row is read at once.
async fn uncached(store: Store) -> TestApp {
    TestApp::spawn_with(store, |c| c.identity_cache = std::time::Duration::ZERO).await
}

fn ki_path(n: u64) -> String {
    format!("/v1/sims/{}/secrets?fields=ki", iccid(n))
}

/// The answer to a tampered identity: an opaque 500 with no secret and no principal, the
/// failure counted in `/metrics` and recorded on the platform chain.
async fn assert_refused_and_reported(app: &TestApp, a: &crate::helpers::Answer, identity: &str) {
    assert_eq!(a.status, 500, "{:?}", a.body);
    let text = a.body.to_string();
    assert!(!text.contains(KI) && !text.to_lowercase().contains(&KI.to_lowercase()));
    assert!(!text.contains("provisioner") && !text.contains(identity));
    assert!(
        a.body["type"]
            .as_str()
            .is_some_and(|t| t.ends_with("/internal-error")),
        "{:?}",
        a.body
    );
    let rows = platform(&app.test_db.db).await;
    assert!(
        rows.iter()
            .any(|(action, outcome, r)| action == "integrity.check"
                && outcome == "failed"
                && r["reason"].as_str().unwrap().contains(identity)),
        "{rows:?}"
    );
    // A platform-wide series: the platform's own metrics identity sees it.
    let text = app.platform_metrics().await;
    assert!(
        text.contains("simvault_integrity_failures_total{row=\"client_identity\"}"),
        "{text}"
    );
}

/// A `metrics` certificate whose stored roles are raised to `provisioner` reads no Ki.
async fn raised_roles_are_refused(store: Store) {
    let app = uncached(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": KI}}))
        .await;
    let metrics = app.mtls_api("acme", &[Role::Metrics], "prom").await;
    assert_eq!(metrics.get(&ki_path(1)).await.status, 403);

    let identity = "urn:simvault:acme:prom";
    tamper(
        &app,
        "UPDATE client_identities SET roles = 'provisioner' WHERE identity = $1",
        identity,
    )
    .await;
    let a = metrics.get(&ki_path(1)).await;
    assert_refused_and_reported(&app, &a, identity).await;
    // The untampered provisioner still reads it.
    assert_eq!(prov.get(&ki_path(1)).await.status, 200);
}
both_stores!(tampered_roles, raised_roles_are_refused);

/// A provisioner whose stored tenant is moved to another tenant reads none of its Ki.
async fn moved_tenant_is_refused(store: Store) {
    let app = uncached(store).await;
    app.tenant("acme").await;
    app.tenant("beta").await;
    let beta = app.mtls_api("beta", &[Role::Provisioner], "bprov").await;
    beta.create_sim(json!({"iccid": iccid(2), "secrets": {"ki": KI}}))
        .await;
    let acme = app.mtls_api("acme", &[Role::Provisioner], "aprov").await;
    assert_eq!(acme.get(&ki_path(2)).await.status, 404);

    let identity = "urn:simvault:acme:aprov";
    tamper(
        &app,
        "UPDATE client_identities SET tenant_id = 'beta' WHERE identity = $1",
        identity,
    )
    .await;
    let a = acme.get(&ki_path(2)).await;
    assert_ne!(a.status, 200);
    assert_refused_and_reported(&app, &a, identity).await;
}
both_stores!(tampered_tenant, moved_tenant_is_refused);

/// A provisioner whose stored tenant is changed to text that is no tenant name is refused as
/// a tampered row, and reported: the MAC is checked on the text as stored, before it is parsed.
async fn garbled_tenant_is_refused_as_tampered(store: Store) {
    let app = uncached(store).await;
    app.tenant("acme").await;
    let acme = app.mtls_api("acme", &[Role::Provisioner], "aprov").await;
    acme.create_sim(json!({"iccid": iccid(4), "secrets": {"ki": KI}}))
        .await;
    assert_eq!(acme.get(&ki_path(4)).await.status, 200);

    let identity = "urn:simvault:acme:aprov";
    // The column references the tenants table: the attacker adds the row it names.
    raw_sql!(&app.test_db.db, p => sqlx::query(
        "INSERT INTO tenants (id, created_at) VALUES ('ACME!', 0)")
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    tamper(
        &app,
        "UPDATE client_identities SET tenant_id = 'ACME!' WHERE identity = $1",
        identity,
    )
    .await;
    let a = acme.get(&ki_path(4)).await;
    assert_ne!(a.status, 200);
    assert_refused_and_reported(&app, &a, identity).await;
}
both_stores!(garbled_tenant, garbled_tenant_is_refused_as_tampered);

/// A row without a MAC (written straight into the table, or stripped) is refused; so is an
/// un-revoked one.
async fn missing_or_stale_macs_are_refused(store: Store) {
    let app = uncached(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(3), "secrets": {"ki": KI}}))
        .await;
    assert_eq!(prov.get(&ki_path(3)).await.status, 200);
    let identity = "urn:simvault:acme:prov";
    tamper(
        &app,
        "UPDATE client_identities SET mac = NULL WHERE identity = $1",
        identity,
    )
    .await;
    let a = prov.get(&ki_path(3)).await;
    assert_refused_and_reported(&app, &a, identity).await;

    // An identity inserted by a database writer, with no MAC, is no registration at all.
    let (cert, key) = app.issue_cert("acme", "forged");
    raw_sql!(&app.test_db.db, p => sqlx::query(
        "INSERT INTO client_identities (identity, tenant_id, name, roles, created_at) \
         VALUES ('urn:simvault:acme:forged', 'acme', 'forged', 'provisioner', 1)")
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    let forged = Api {
        app_base: app.base.clone(),
        client: app.with_identity(&cert, &key),
        token: None,
    };
    assert_eq!(forged.get(&ki_path(3)).await.status, 500);

    // Revoked, then `revoked_at` cleared by a database writer: still refused.
    let other = app.mtls_api("acme", &[Role::Provisioner], "other").await;
    assert_eq!(other.get(&ki_path(3)).await.status, 200);
    let out = app.cli(&["cert", "revoke", "--tenant", "acme", "--name", "other"]);
    assert!(out.status.success(), "{out:?}");
    tamper(
        &app,
        "UPDATE client_identities SET revoked_at = NULL WHERE identity = $1",
        "urn:simvault:acme:other",
    )
    .await;
    assert_eq!(other.get(&ki_path(3)).await.status, 500);
}
both_stores!(missing_mac, missing_or_stale_macs_are_refused);

/// `cert issue`, `cert list`, `cert revoke` and `tenant create` through the real CLI: each
/// change on the platform chain by `cli:<user>`, the chain still verifying; a revoked
/// certificate refused (within the identity cache's bound) on its open connection.
async fn lifecycle_through_the_cli(store: Store) {
    let app = TestApp::spawn(store).await;
    let out = app.cli(&["tenant", "create", "acme"]);
    assert!(out.status.success(), "{out:?}");
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().to_str().unwrap();
    let out = app.cli(&[
        "cert",
        "issue",
        "--tenant",
        "acme",
        "--role",
        "provisioner,support",
        "--name",
        "p1",
        "--out-dir",
        out_dir,
    ]);
    assert!(out.status.success(), "{out:?}");
    let cert = std::fs::read_to_string(dir.path().join("p1.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("p1.key")).unwrap();
    let p1 = Api {
        app_base: app.base.clone(),
        client: app.with_identity(&cert, &key),
        token: None,
    };
    assert_eq!(p1.get("/v1/sims").await.status, 200);

    // Listing: identity, tenant, name, roles, created, revoked; never key material.
    let out = app.cli(&["cert", "list", "--tenant", "acme", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["identity"], "urn:simvault:acme:p1");
    assert_eq!(listed[0]["tenant"], "acme");
    assert_eq!(listed[0]["name"], "p1");
    assert_eq!(listed[0]["roles"], json!(["provisioner", "support"]));
    assert!(listed[0]["created_at"].is_string());
    assert!(listed[0]["revoked_at"].is_null());
    let table = app.cli(&["cert", "list"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("urn:simvault:acme:p1\tacme\tp1\tprovisioner,support"));
    for out in [&out, &table] {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!all.contains("PRIVATE KEY") && !all.contains("BEGIN"));
    }

    // Revocation: recorded, refused on the very connection that just succeeded.
    let out = app.cli(&["cert", "revoke", "--tenant", "acme", "--name", "p1"]);
    assert!(out.status.success(), "{out:?}");
    let mut status = 200;
    for _ in 0..100 {
        status = p1.get("/v1/sims").await.status;
        if status != 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 401);
    // Twice, or an unknown name: a clear error and exit code 1.
    let again = app.cli(&["cert", "revoke", "--tenant", "acme", "--name", "p1"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already revoked"));
    let unknown = app.cli(&["cert", "revoke", "--tenant", "acme", "--name", "nobody"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no identity named nobody"));
    let out = app.cli(&["cert", "list", "--tenant", "acme", "--json"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(listed[0]["revoked_at"].is_string());
    // A revoked identity keeps its name.
    let reissue = app.cli(&[
        "cert",
        "issue",
        "--tenant",
        "acme",
        "--role",
        "support",
        "--name",
        "p1",
        "--out-dir",
        out_dir,
    ]);
    assert!(!reissue.status.success());

    let rows = platform(&app.test_db.db).await;
    let changes: Vec<(&str, &str)> = rows
        .iter()
        .filter(|(a, _, _)| a != "authenticate")
        .map(|(a, _, r)| (a.as_str(), r["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(changes.len(), 3, "{changes:?}");
    assert_eq!(changes[0], ("tenant.create", "tenant acme"));
    assert_eq!(changes[1].0, "identity.register");
    assert!(
        changes[1].1.contains("urn:simvault:acme:p1")
            && changes[1].1.contains("provisioner,support")
    );
    assert_eq!(changes[2].0, "identity.revoke");
    assert!(changes[2].1.contains("urn:simvault:acme:p1"));
    for (a, _, r) in &rows {
        if a != "authenticate" {
            assert!(r["subject"].as_str().unwrap().starts_with("cli:"), "{r}");
        }
    }
    let out = app.cli(&["audit", "verify", "--platform"]);
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("_platform: ok"));
}
both_stores!(cli_lifecycle, lifecycle_through_the_cli);

/// With no identity cache, the request right after a revocation is refused, on the same
/// connection.
async fn revoked_on_an_open_connection(store: Store) {
    let app = uncached(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    assert_eq!(prov.get("/v1/sims").await.status, 200);
    let out = app.cli(&["cert", "revoke", "--tenant", "acme", "--name", "prov"]);
    assert!(out.status.success(), "{out:?}");
    let a = prov.get("/v1/sims").await;
    assert_eq!(a.status, 401, "{:?}", a.body);
}
both_stores!(revoked_open_connection, revoked_on_an_open_connection);

/// 1,000 forged bearer tokens from one address: one platform record while they arrive, and
/// one more at shutdown carrying the rest of the count (nothing counted is lost); beyond the
/// per-address budget they are answered 429; a legitimate request still succeeds.
async fn forged_tokens_are_aggregated(store: Store) {
    const FORGED: usize = 1000;
    let mut app = TestApp::spawn_with(store, |c| {
        c.refusals.window = std::time::Duration::from_secs(3600);
        c.refusals.per_address = 20;
    })
    .await;
    app.tenant("acme").await;
    let before = platform(&app.test_db.db).await.len();
    let forged = Api {
        token: Some("eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl".into()),
        ..app.jwt_client("acme", &[Role::Auditor])
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let forged = forged.clone();
        tasks.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..FORGED / 20 {
                let a = forged.get("/v1/sims").await;
                if a.status == 429 {
                    assert!(a.headers.contains_key("retry-after"), "{:?}", a.headers);
                    assert_eq!(a.body["status"], 429);
                }
                statuses.push(a.status);
            }
            statuses
        });
    }
    let statuses: Vec<u16> = tasks.join_all().await.into_iter().flatten().collect();
    assert_eq!(statuses.len(), FORGED);
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 20);
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), FORGED - 20);

    let legit = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(legit.get("/v1/sims").await.status, 200);
    let during = platform(&app.test_db.db).await;
    assert_eq!(during.len() - before, 1, "{during:?}");
    assert_eq!(
        during.last().unwrap().2["reason"],
        "bearer token refused (count 1)"
    );

    app.app.stop().await;
    let db = app.reopen_db().await;
    let after = platform(&db).await;
    let added = &after[before..];
    assert!(added.len() <= 2, "{added:?}");
    let counted: u64 = added
        .iter()
        .map(|(action, outcome, r)| {
            assert_eq!(
                (action.as_str(), outcome.as_str()),
                ("authenticate", "denied")
            );
            assert_eq!(r["auth_method"], "jwt");
            assert_eq!(r["subject"], "anonymous");
            assert!(r["client_addr"].as_str().unwrap().starts_with("127.0.0.1"));
            assert!(!r.to_string().contains("mallory") && !r.to_string().contains("c2lnbmF0dXJl"));
            let reason = r["reason"].as_str().unwrap();
            reason
                .strip_prefix("bearer token refused (count ")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    assert_eq!(counted, FORGED as u64);
    eprintln!(
        "platform audit rows per {FORGED} forged tokens: {} (one per request before aggregation)",
        added.len()
    );
    db.close().await;
}
both_stores!(forged_token_flood, forged_tokens_are_aggregated);
