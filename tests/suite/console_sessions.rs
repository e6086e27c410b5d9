//! The web console's sign-in: console links (single use, short-lived, audited), the session
//! cookie, idle and absolute limits, sign-out, CSRF and origin checks, tampered session rows,
//! and API credentials that open no console page.

use std::time::Duration;

use simvault::domain::Role;
use simvault::service::console::Person;

use crate::helpers::{Store, TestApp, both_stores, chain_records, raw_sql, tenant_id};

/// The exact cookie a sign-in sets, apart from the token.
const COOKIE_ATTRS: &str = "; Path=/; Secure; HttpOnly; SameSite=Strict";

/// Issues a console link's ticket for `sub` of `tenant` with `roles`, valid `ttl` seconds.
pub(crate) async fn ticket(
    app: &TestApp,
    tenant: &str,
    roles: &[Role],
    sub: &str,
    ttl: u64,
) -> String {
    let person = Person {
        tenant: tenant_id(tenant),
        subject: sub.into(),
        roles: roles.iter().copied().collect(),
    };
    let (t, _) = app
        .services
        .console()
        .issue_link(&person, Duration::from_secs(ttl), "cli:tester")
        .await
        .unwrap();
    t.expose().to_owned()
}

/// `POST /console/login` with `ticket`.
pub(crate) async fn redeem(app: &TestApp, ticket: &str) -> reqwest::Response {
    app.browser()
        .post(app.url("/console/login"))
        .form(&[("ticket", ticket)])
        .send()
        .await
        .unwrap()
}

/// A signed-in person: the `Cookie` header their browser sends.
#[derive(Clone)]
pub(crate) struct Browser {
    pub cookie: String,
}

/// Signs `sub` in with a fresh console link; returns their cookie.
pub(crate) async fn sign_in(app: &TestApp, tenant: &str, roles: &[Role], sub: &str) -> Browser {
    let t = ticket(app, tenant, roles, sub, 300).await;
    let res = redeem(app, &t).await;
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    Browser { cookie }
}

impl Browser {
    pub(crate) async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        app.browser()
            .get(app.url(path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap()
    }

    /// A page's body, which must answer `200`.
    pub(crate) async fn page(&self, app: &TestApp, path: &str) -> String {
        let res = self.get(app, path).await;
        assert_eq!(res.status(), 200, "{path}");
        res.text().await.unwrap()
    }

    /// The CSRF token of this person's pages.
    pub(crate) async fn csrf(&self, app: &TestApp) -> String {
        csrf_of(&self.page(app, "/console").await)
    }

    pub(crate) async fn post(
        &self,
        app: &TestApp,
        path: &str,
        form: &[(&str, &str)],
    ) -> reqwest::Response {
        app.browser()
            .post(app.url(path))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Whether this person's session still opens the console.
    pub(crate) async fn signed_in(&self, app: &TestApp) -> bool {
        match self.get(app, "/console").await.status().as_u16() {
            200 => true,
            303 => false,
            other => panic!("GET /console answered {other}"),
        }
    }
}

pub(crate) fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a CSRF field") + 19;
    html[at..].split('"').next().unwrap().to_owned()
}

fn redirects_to_sign_in(res: &reqwest::Response) {
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console/login");
}

both_stores!(
    a_console_link_signs_in_once_and_is_audited,
    link_signs_in_once
);
async fn link_signs_in_once(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let t = ticket(&app, "acme", &[Role::Support], "alice@acme", 300).await;
    // Opening the link only shows the "Sign in" button: a scanner's GET spends nothing.
    let confirm = app
        .browser()
        .get(app.url(&format!("/console/login/{t}")))
        .send()
        .await
        .unwrap();
    assert_eq!(confirm.status(), 200);
    assert!(confirm.headers().get("set-cookie").is_none());
    let body = confirm.text().await.unwrap();
    assert!(body.contains(">Sign in</button>") && body.contains("action=\"/console/login\""));

    let res = redeem(&app, &t).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/console");
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    let (pair, attrs) = set.split_at(set.find(';').unwrap());
    assert_eq!(attrs, COOKIE_ATTRS, "{set}");
    let token = pair.strip_prefix("__Host-simvault-session=").unwrap();
    assert_eq!(token.len(), 43);
    assert!(!token.contains(&t) && token != t);
    let alice = Browser {
        cookie: pair.to_owned(),
    };
    let home = alice.page(&app, "/console").await;
    assert!(home.contains("alice@acme") && home.contains(">Sign out</button>"));

    // Used once: refused, no cookie, and a page that says what to do.
    let again = redeem(&app, &t).await;
    assert_eq!(again.status(), 410);
    assert!(again.headers().get("set-cookie").is_none());
    let page = again.text().await.unwrap();
    assert!(
        page.contains("used already")
            && page.contains("Ask an administrator for a new console link")
    );
    // Unknown tickets and junk sign nobody in either.
    for junk in ["A".repeat(43), "nope".into()] {
        let res = redeem(&app, &junk).await;
        assert_eq!(res.status(), 410, "{junk}");
        assert!(res.headers().get("set-cookie").is_none());
    }

    // No token or ticket is stored: only hashes.
    let stored: Vec<(Vec<u8>,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT token_hash FROM console_sessions").fetch_all(p).await)
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].0, token.as_bytes());

    let records = chain_records(&app.test_db.db, "acme").await;
    let find = |action: &str, outcome: &str| {
        records
            .iter()
            .find(|(a, o, _)| a == action && o == outcome)
            .map(|(_, _, r)| r.clone())
            .unwrap_or_else(|| panic!("no {action} {outcome} record: {records:?}"))
    };
    let issued = find("console.link", "completed");
    assert_eq!(issued["auth_method"], "local");
    assert_eq!(issued["subject"], "cli:tester");
    assert!(issued["reason"].as_str().unwrap().contains("alice@acme"));
    let signed = find("console.signin", "allowed");
    assert_eq!(signed["auth_method"], "console");
    assert_eq!(signed["subject"], "alice@acme");
    assert_eq!(signed["roles"], serde_json::json!(["support"]));
    let refused = find("console.signin", "denied");
    assert_eq!(refused["subject"], "alice@acme");
    assert!(refused["reason"].as_str().unwrap().contains("used"));
    // Neither the ticket nor the session token is in any record.
    let all = serde_json::to_string(&records).unwrap();
    assert!(!all.contains(&t) && !all.contains(token));
}

both_stores!(an_expired_console_link_signs_nobody_in, expired_link);
async fn expired_link(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let t = ticket(&app, "acme", &[Role::Support], "alice", 1).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let res = redeem(&app, &t).await;
    assert_eq!(res.status(), 410);
    assert!(res.headers().get("set-cookie").is_none());
    assert!(res.text().await.unwrap().contains("expired"));
}

both_stores!(
    two_concurrent_redemptions_give_one_session,
    concurrent_redemptions
);
async fn concurrent_redemptions(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    for _ in 0..3 {
        let t = ticket(&app, "acme", &[Role::Support], "alice", 300).await;
        let (a, b) = tokio::join!(redeem(&app, &t), redeem(&app, &t));
        let mut statuses = [a.status().as_u16(), b.status().as_u16()];
        statuses.sort_unstable();
        assert_eq!(statuses, [303, 410]);
    }
    let n: (i64,) = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM console_sessions").fetch_one(p).await)
    .unwrap();
    assert_eq!(n.0, 3);
}

both_stores!(idle_and_old_sessions_are_refused_at_once, session_limits);
async fn session_limits(store: Store) {
    let app = TestApp::spawn_with(store, |c| {
        c.console.idle = Duration::from_secs(2);
        c.console.max = Duration::from_secs(5);
    })
    .await;
    app.tenant("acme").await;
    // Idle: unused for longer than the idle timeout.
    let idle = sign_in(&app, "acme", &[Role::Support], "idle").await;
    assert!(idle.signed_in(&app).await);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    redirects_to_sign_in(&idle.get(&app, "/console").await);
    // In use all along, but past its absolute lifetime.
    let busy = sign_in(&app, "acme", &[Role::Support], "busy").await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert!(
            busy.signed_in(&app).await,
            "use keeps a session within its lifetime"
        );
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let res = busy.get(&app, "/console").await;
    redirects_to_sign_in(&res);
    // The dead cookie is cleared.
    assert!(
        res.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

both_stores!(signing_out_ends_the_session, sign_out);
async fn sign_out(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let csrf = alice.csrf(&app).await;
    let res = alice
        .post(&app, "/console/logout", &[("csrf", &csrf)])
        .await;
    redirects_to_sign_in(&res);
    let cleared = res.headers()["set-cookie"].to_str().unwrap();
    assert!(cleared.starts_with("__Host-simvault-session=;") && cleared.contains("Max-Age=0"));
    assert!(!alice.signed_in(&app).await, "the old cookie opens nothing");
    assert!(
        chain_records(&app.test_db.db, "acme")
            .await
            .iter()
            .any(|(a, _, r)| a == "console.signout" && r["subject"] == "alice")
    );
}

both_stores!(
    a_post_without_its_session_s_csrf_token_changes_nothing,
    csrf_refused
);
async fn csrf_refused(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let bob = sign_in(&app, "acme", &[Role::Support], "bob").await;
    let bobs = bob.csrf(&app).await;
    let ended = sign_in(&app, "acme", &[Role::Support], "carol").await;
    let carols = ended.csrf(&app).await;
    assert_eq!(
        ended
            .post(&app, "/console/logout", &[("csrf", &carols)])
            .await
            .status(),
        303
    );
    let real = alice.csrf(&app).await;
    let forged = format!("{}x", &real[..real.len() - 1]);
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", forged.as_str())],
        vec![("csrf", bobs.as_str())],
        vec![("csrf", carols.as_str())],
        vec![("csrf", real.as_str()), ("csrf", real.as_str())],
    ] {
        let res = alice.post(&app, "/console/logout", &form).await;
        assert_eq!(res.status(), 403, "{form:?}");
        assert!(res.headers().get("set-cookie").is_none());
        assert!(res.text().await.unwrap().contains("Nothing was changed"));
        assert!(alice.signed_in(&app).await, "{form:?}");
    }
    // The right token from another site's page.
    let cross = app
        .browser()
        .post(app.url("/console/logout"))
        .header("cookie", &alice.cookie)
        .header("origin", "https://evil.example")
        .form(&[("csrf", real.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(cross.status(), 403);
    assert!(alice.signed_in(&app).await);
    assert!(bob.signed_in(&app).await);
    // A sign-in posted from another site is refused too (no login CSRF).
    let t = ticket(&app, "acme", &[Role::Support], "mallory", 300).await;
    let res = app
        .browser()
        .post(app.url("/console/login"))
        .header("origin", "https://evil.example")
        .form(&[("ticket", t.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.headers().get("set-cookie").is_none());
    // And the ticket is still good from our own page.
    assert_eq!(redeem(&app, &t).await.status(), 303);
    // Our own origin is accepted.
    let own = app
        .browser()
        .post(app.url("/console/logout"))
        .header("cookie", &alice.cookie)
        .header("origin", app.base.as_str())
        .form(&[("csrf", real.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 303);
    assert!(!alice.signed_in(&app).await);
}

both_stores!(
    a_session_row_changed_in_storage_is_refused,
    tampered_session
);
async fn tampered_session(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    for (column, value) in [
        ("roles", "admin,support"),
        ("tenant_id", "other"),
        ("ended_at", "NULL"),
    ] {
        let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
        assert!(alice.signed_in(&app).await);
        if column == "ended_at" {
            // A session ended, then revived in storage.
            let csrf = alice.csrf(&app).await;
            assert_eq!(
                alice
                    .post(&app, "/console/logout", &[("csrf", &csrf)])
                    .await
                    .status(),
                303
            );
        }
        let sql = format!(
            "UPDATE console_sessions SET {column} = {} WHERE subject = 'alice'",
            if value == "NULL" {
                "NULL".to_owned()
            } else {
                format!("'{value}'")
            }
        );
        raw_sql!(&app.test_db.db, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(p).await.map(|_| ())).unwrap();
        redirects_to_sign_in(&alice.get(&app, "/console").await);
        raw_sql!(&app.test_db.db, p => sqlx::query("DELETE FROM console_sessions").execute(p).await.map(|_| ())).unwrap();
    }
    let failures = chain_records(&app.test_db.db, "_platform")
        .await
        .into_iter()
        .filter(|(a, _, r)| {
            a == "integrity.check" && r["reason"].as_str().unwrap().contains("console_session")
        })
        .count();
    assert_eq!(failures, 3);
}

both_stores!(api_credentials_open_no_console_page, api_credentials);
async fn api_credentials(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let token = app.token("acme", &Role::ALL, "alice");
    let res = app
        .browser()
        .get(app.url("/console"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    redirects_to_sign_in(&res);
    let (cert, key) = app.registered_cert("acme", &Role::ALL, "prov").await;
    let identity = reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap();
    let ca = std::fs::read(app.keys.ca_cert()).unwrap();
    let mtls = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(identity)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in ["/console", "/console/sims/8944000000000000000"] {
        redirects_to_sign_in(&mtls.get(app.url(path)).send().await.unwrap());
    }
    // And a POST with them is not a signed-in form either.
    let res = mtls
        .post(app.url("/console/logout"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    redirects_to_sign_in(&res);
}

both_stores!(the_console_link_command_prints_one_link, console_link_cli);
async fn console_link_cli(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let out = app.cli(&[
        "console-link",
        "--tenant",
        "acme",
        "--role",
        "support,auditor",
        "--sub",
        "alice",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{stdout}");
    let t = lines[0]
        .strip_prefix("https://localhost:8443/console/login/")
        .expect(lines[0]);
    assert_eq!(t.len(), 43);
    assert_eq!(redeem(&app, t).await.status(), 303);
    let issued = chain_records(&app.test_db.db, "acme").await;
    assert!(issued.iter().any(|(a, _, r)| a == "console.link"
        && r["auth_method"] == "local"
        && r["subject"].as_str().unwrap().starts_with("cli:")));
    // The public URL is the configured one; a bad tenant, role or lifetime is refused.
    let out = app.cli_env(
        &[
            "console-link",
            "--tenant",
            "acme",
            "--role",
            "support",
            "--sub",
            "a",
            "--ttl",
            "60",
        ],
        &[("SIMVAULT_PUBLIC_URL", "https://vault.example/")],
    );
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .starts_with("https://vault.example/console/login/")
    );
    for args in [
        ["--tenant", "nobody", "--role", "support", "--ttl", "60"],
        ["--tenant", "acme", "--role", "root", "--ttl", "60"],
        ["--tenant", "acme", "--role", "support", "--ttl", "0"],
    ] {
        let mut all = vec!["console-link", "--sub", "a"];
        all.extend(args);
        let out = app.cli(&all);
        assert!(!out.status.success(), "{args:?}");
        assert!(out.stdout.is_empty());
    }
}

both_stores!(
    a_console_link_changed_in_storage_signs_nobody_in,
    tampered_ticket
);
async fn tampered_ticket(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    for (column, value) in [
        ("roles", "admin"),
        ("tenant_id", "other"),
        ("subject", "root"),
        ("expires_at", "9000000000000000"),
    ] {
        let t = ticket(&app, "acme", &[Role::Support], "alice", 300).await;
        let sql = format!("UPDATE console_tickets SET {column} = '{value}'");
        let sql = if column == "expires_at" {
            sql.replace('\'', "")
        } else {
            sql
        };
        raw_sql!(&app.test_db.db, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(p).await.map(|_| ())).unwrap();
        let res = redeem(&app, &t).await;
        assert_eq!(res.status(), 500, "{column}");
        assert!(res.headers().get("set-cookie").is_none(), "{column}");
        raw_sql!(&app.test_db.db, p => sqlx::query("DELETE FROM console_tickets").execute(p).await.map(|_| ())).unwrap();
    }
    let n: (i64,) = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM console_sessions").fetch_one(p).await)
    .unwrap();
    assert_eq!(n.0, 0);
    let failures = chain_records(&app.test_db.db, "_platform")
        .await
        .into_iter()
        .filter(|(a, _, r)| {
            a == "integrity.check" && r["reason"].as_str().unwrap().contains("console_ticket")
        })
        .count();
    assert_eq!(failures, 4);
}
