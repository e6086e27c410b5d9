//! Console sign-in through a real identity provider (the node `oidc-provider` of
//! tests/suite/oidc.rs, on loopback): the walk from the sign-in page through the provider to a
//! session whose roles come from the ID token, audited; and what an attacker does not get: a
//! replayed callback, a callback in another browser, a forged state, a pending sign-in changed
//! in storage, an ID token for an unknown tenant or with no role of ours. A provider down at
//! start stops nothing; sign-in works once it answers.
//!
//! Skipped (and said so) without Node.js and `npm ci --prefix tests/console`, as oidc.rs is.

use serde_json::json;
use simvault::auth::jwt::ClaimNames;
use simvault::auth::oidc::OidcSettings;

use crate::helpers::{Store, TestApp, both_stores, chain_records, raw_sql};
use crate::oidc::{CLIENT, Callback, Options, Provider, SECRET, provider_dir, redirect_uri};

/// A subject longer than any person's name may be (the rule of console links: 256).
fn overlong() -> String {
    "o".repeat(300)
}

fn accounts() -> serde_json::Value {
    let mut accounts = json!({
        "alice": { "tenant": "acme", "roles": ["support"] },
        "audrey": { "tenant": "acme", "roles": ["auditor"] },
        "bob": { "tenant": "acme", "roles": ["wizard"] },
        "mallory": { "tenant": "nowhere", "roles": ["admin"] },
    });
    accounts[overlong()] = json!({ "tenant": "acme", "roles": ["support"] });
    accounts
}

fn settings(issuer: String) -> OidcSettings {
    OidcSettings {
        issuer,
        client_id: CLIENT.into(),
        client_secret: SECRET.into(),
        redirect_uri: redirect_uri(),
        claims: ClaimNames::default(),
    }
}

/// A provider with [`accounts`] and a server configured with it, tenant `acme` created.
async fn start(store: Store) -> Option<(Provider, TestApp)> {
    let dir = provider_dir()?;
    let p = Provider::start(
        &dir,
        &Options {
            accounts: accounts(),
            ..Options::default()
        },
    );
    let issuer = p.issuer();
    let app = TestApp::spawn_with(store, |c| c.oidc = Some(settings(issuer))).await;
    app.tenant("acme").await;
    Some((p, app))
}

/// A browser of its own: cookies kept, redirects not followed.
fn browser(app: &TestApp) -> reqwest::Client {
    let ca = std::fs::read(app.keys.ca_cert()).unwrap();
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET /console/login/oidc` in `b`: the provider's authorization URL.
async fn begin(app: &TestApp, b: &reqwest::Client) -> url::Url {
    let res = b.get(app.url("/console/login/oidc")).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let set = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(set.starts_with("__Host-simvault-oidc="), "{set}");
    assert!(
        set.ends_with("; Path=/; Secure; HttpOnly; SameSite=Lax; Max-Age=600"),
        "{set}"
    );
    url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

/// The callback the provider sent the browser to, at this server.
fn callback(app: &TestApp, code: &str, state: &str) -> String {
    url::Url::parse_with_params(
        &app.url("/console/callback"),
        &[("code", code), ("state", state)],
    )
    .unwrap()
    .to_string()
}

/// Begins in `b`, signs in at the provider as `login`, and gives what it sent back.
async fn through_provider(app: &TestApp, b: &reqwest::Client, login: &str) -> Callback {
    let url = begin(app, b).await;
    crate::oidc::sign_in(&url, login).await
}

fn session_cookie(res: &reqwest::Response) -> bool {
    res.headers().get_all("set-cookie").iter().any(|v| {
        v.to_str().unwrap().starts_with("__Host-simvault-session=")
            && !v.to_str().unwrap().contains("Max-Age=0")
    })
}

/// Asserts the sign-in-failed page, with no session.
async fn refused(res: reqwest::Response) {
    assert_eq!(res.status(), 401);
    assert!(!session_cookie(&res));
    let body = res.text().await.unwrap();
    assert!(body.contains("Sign-in failed"), "{body}");
}

async fn sessions(app: &TestApp) -> i64 {
    let n: (i64,) = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT COUNT(*) FROM console_sessions").fetch_one(p).await)
    .unwrap();
    n.0
}

both_stores!(
    signing_in_through_the_provider_gives_the_id_tokens_person,
    signs_in
);
async fn signs_in(store: Store) {
    let Some((_p, app)) = start(store).await else {
        return;
    };
    let login = app
        .browser()
        .get(app.url("/console/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(login.contains(">Sign in with your identity provider</button>"));
    assert!(login.contains("action=\"/console/login/oidc\""));

    let b = browser(&app);
    let back = through_provider(&app, &b, "alice").await;
    let url = callback(&app, &back.code, &back.state);
    let res = b.get(&url).send().await.unwrap();
    // A page of ours that moves on to /console (a redirect from the provider's navigation
    // would not carry the SameSite=Strict cookie in a browser).
    assert_eq!(res.status(), 200);
    assert!(session_cookie(&res));
    let moving_on = res.text().await.unwrap();
    assert!(moving_on.contains(r#"<meta http-equiv="refresh" content="0; url=/console">"#));
    assert!(moving_on.contains(r#"<a href="/console">Continue to the console</a>"#));
    let page = b.get(app.url("/console")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<span class=\"person\">alice</span>"),
        "{html}"
    );
    // The ID token's roles decide the navigation: support searches, and reads no audit log.
    assert!(!html.contains("href=\"/console/audit\""));

    // The sign-in is recorded: by the console, as the person.
    let signins: Vec<_> = chain_records(&app.test_db.db, "acme")
        .await
        .into_iter()
        .filter(|(a, _, _)| a == "console.signin")
        .collect();
    assert_eq!(signins.len(), 1);
    let (_, outcome, r) = &signins[0];
    assert_eq!(outcome, "allowed");
    assert_eq!(r["auth_method"], "console");
    assert_eq!(r["subject"], "alice");
    assert!(r["reason"].as_str().unwrap().contains("identity provider"));
    let text = r.to_string();
    assert!(!text.contains(&back.code) && !text.contains(&back.state));

    // The callback again, even in the same browser: refused, nothing more started.
    refused(b.get(&url).send().await.unwrap()).await;
    assert_eq!(sessions(&app).await, 1);

    // An auditor's ID token opens the audit log.
    let b = browser(&app);
    let back = through_provider(&app, &b, "audrey").await;
    let res = b
        .get(callback(&app, &back.code, &back.state))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = b
        .get(app.url("/console/nope"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("<span class=\"person\">audrey</span>"),
        "{html}"
    );
    assert!(html.contains("href=\"/console/audit\""), "{html}");
}

both_stores!(
    a_callback_in_another_browser_or_with_a_forged_state_is_refused,
    other_browser_and_forged_state
);
async fn other_browser_and_forged_state(store: Store) {
    let Some((_p, app)) = start(store).await else {
        return;
    };
    // The victim's callback URL, opened in the attacker's browser (no binding cookie).
    let victim = browser(&app);
    let back = through_provider(&app, &victim, "alice").await;
    let url = callback(&app, &back.code, &back.state);
    refused(browser(&app).get(&url).send().await.unwrap()).await;
    // The sign-in is gone: the victim's own browser cannot finish it afterwards either.
    refused(victim.get(&url).send().await.unwrap()).await;

    // A forged state finds no sign-in, and spends none.
    let b = browser(&app);
    let back = through_provider(&app, &b, "alice").await;
    for forged in ["forged", &format!("{}x", back.state), &back.state[1..]] {
        refused(
            b.get(callback(&app, &back.code, forged))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    // The provider's own refusal, or a callback without its parameters: the same page.
    for query in ["error=access_denied", "", "code=x"] {
        let res = b
            .get(app.url(&format!("/console/callback?{query}")))
            .send()
            .await
            .unwrap();
        refused(res).await;
    }
    assert_eq!(sessions(&app).await, 0);
    let res = b
        .get(callback(&app, &back.code, &back.state))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(sessions(&app).await, 1);
}

both_stores!(
    a_pending_sign_in_changed_in_storage_is_refused,
    tampered_pending
);
async fn tampered_pending(store: Store) {
    let Some((_p, app)) = start(store).await else {
        return;
    };
    let changes = [
        "nonce = 'forged'",
        "verifier = 'forged'",
        "expires_at = expires_at + 1000000000",
        "binding_hash = state_hash",
    ];
    for change in changes {
        let b = browser(&app);
        let back = through_provider(&app, &b, "alice").await;
        let sql = format!("UPDATE console_oidc_logins SET {change}");
        raw_sql!(&app.test_db.db, p => sqlx::query(sqlx::AssertSqlSafe(sql.clone())).execute(p).await.map(|_| ())).unwrap();
        refused(
            b.get(callback(&app, &back.code, &back.state))
                .send()
                .await
                .unwrap(),
        )
        .await;
    }
    assert_eq!(sessions(&app).await, 0);
    let failures = chain_records(&app.test_db.db, "_platform")
        .await
        .into_iter()
        .filter(|(a, _, r)| {
            a == "integrity.check" && r["reason"].as_str().unwrap().contains("console_oidc_login")
        })
        .count();
    assert_eq!(failures, changes.len());
}

both_stores!(
    an_id_token_for_an_unknown_tenant_or_without_a_role_starts_no_session,
    unknown_tenant_and_no_role
);
async fn unknown_tenant_and_no_role(store: Store) {
    let Some((_p, app)) = start(store).await else {
        return;
    };
    // An unknown tenant, no role of ours, and a subject that could not name a person (it would
    // go into the session, the audit chain and its exports).
    for login in ["mallory", "bob", &overlong()] {
        let b = browser(&app);
        let back = through_provider(&app, &b, login).await;
        refused(
            b.get(callback(&app, &back.code, &back.state))
                .send()
                .await
                .unwrap(),
        )
        .await;
        // Nothing opens: the browser holds no session.
        let res = b.get(app.url("/console")).send().await.unwrap();
        assert_eq!(res.status(), 303, "{login}");
    }
    assert_eq!(sessions(&app).await, 0);
    assert!(
        !chain_records(&app.test_db.db, "acme")
            .await
            .iter()
            .any(|(_, _, r)| r.to_string().contains(&overlong())),
        "the unusable subject is recorded nowhere on the tenant's chain"
    );
    // Bob's tenant exists: his refusal is on its chain, as a refused console sign-in.
    let acme = chain_records(&app.test_db.db, "acme").await;
    let denied: Vec<_> = acme
        .iter()
        .filter(|(a, o, _)| a == "console.signin" && o == "denied")
        .collect();
    assert_eq!(denied.len(), 1, "{acme:?}");
    assert_eq!(denied[0].2["subject"], "bob");
    assert_eq!(denied[0].2["auth_method"], "console");
    assert!(
        !acme
            .iter()
            .any(|(_, _, r)| r.to_string().contains("mallory")),
        "{acme:?}"
    );
}

both_stores!(
    a_provider_down_at_start_stops_nothing_and_is_discovered_later,
    provider_down_at_start
);
async fn provider_down_at_start(store: Store) {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        accounts: accounts(),
        port: crate::oidc::free_port(),
        ..Options::default()
    };
    let issuer = format!("http://127.0.0.1:{}", options.port);
    let app = TestApp::spawn_with(store, |c| c.oidc = Some(settings(issuer))).await;
    app.tenant("acme").await;
    let b = browser(&app);
    let res = b.get(app.url("/console/login/oidc")).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert!(res.headers().get("set-cookie").is_none());

    let _p = Provider::start(&dir, &options);
    let back = through_provider(&app, &b, "alice").await;
    let res = b
        .get(callback(&app, &back.code, &back.state))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(session_cookie(&res));
}
