//! The web console's pages: the SIM search and SIM pages for support staff, what an auditor
//! and another tenant's people do not get, and the security headers and markup rules of every
//! console answer.

use simvault::domain::Role;

use crate::console_sessions::{Browser, sign_in, ticket};
use crate::helpers::{Store, TestApp, both_stores, iccid};

/// Creates SIM `n` in `tenant` through the API (a provisioner of that tenant): its JSON.
async fn sim(app: &TestApp, tenant: &str, n: u64, msisdn: &str) -> serde_json::Value {
    let api = app
        .mtls_api(tenant, &[Role::Provisioner], &format!("prov-{tenant}-{n}"))
        .await;
    api.create_sim(serde_json::json!({
        "iccid": iccid(n), "imsi": format!("23415{n:010}"), "msisdn": msisdn,
        "secrets": {"pin1": "1234", "puk1": "12345678"}
    }))
    .await
}

both_stores!(support_finds_a_sim_and_opens_its_page, support_search);
async fn support_search(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let a = sim(&app, "acme", 1, "447700900001").await;
    let b = sim(&app, "acme", 2, "447700900002").await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;

    let home = alice.page(&app, "/console").await;
    assert!(home.contains("<label for=\"search\">Search</label>"));
    assert!(home.contains(">Search</button>"));
    assert!(home.contains("<label for=\"state\">State</label>"));
    // Support may not read the audit log: no such entry in the menu.
    assert!(!home.contains("/console/audit"));

    let found = alice
        .page(&app, "/console?search=447700900002&state=&group_id=")
        .await;
    assert!(found.contains(&format!("/console/sims/{}", b["id"].as_str().unwrap())));
    assert!(!found.contains(a["iccid"].as_str().unwrap()));
    assert!(found.contains("1 SIM found"));
    let by_state = alice.page(&app, "/console?state=inventory").await;
    assert!(by_state.contains("2 SIMs found"));
    assert!(
        alice
            .page(&app, "/console?state=active")
            .await
            .contains("0 SIMs found")
    );
    let bad = alice.get(&app, "/console?state=gone").await;
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("state must be one of"));

    for key in [b["id"].as_str().unwrap(), b["iccid"].as_str().unwrap()] {
        let page = alice.page(&app, &format!("/console/sims/{key}")).await;
        assert!(page.contains(b["imsi"].as_str().unwrap()));
        assert!(page.contains("447700900002"));
        assert!(page.contains("inventory"));
        assert!(page.contains("PIN1") && page.contains("PUK1"));
        assert!(page.contains("State history"));
        // No audit section for someone who may not read the audit log.
        assert!(!page.contains("Recent audit records"));
        // Never a secret.
        assert!(!page.contains("12345678"));
    }
    // Support who is also an auditor sees the SIM's audit records.
    let both = sign_in(&app, "acme", &[Role::Support, Role::Auditor], "bea").await;
    let page = both
        .page(
            &app,
            &format!("/console/sims/{}", b["id"].as_str().unwrap()),
        )
        .await;
    assert!(page.contains("Recent audit records") && page.contains("sim.create"));
    assert!(page.contains("/console/audit"));
}

both_stores!(paging_walks_the_results, paging);
async fn paging(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let api = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 0..27 {
        api.create_sim(crate::helpers::sim_body(100 + n)).await;
    }
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let first = alice.page(&app, "/console?search=8944").await;
    assert!(first.contains("27 SIMs found · page 1 of 2"));
    let next = first
        .split("href=\"")
        .find(|h| h.contains("rel=\"next\""))
        .expect("a next link");
    assert!(
        next.starts_with("/console?search=8944&") && next.contains("page=2\""),
        "{next}"
    );
    let second = alice.page(&app, "/console?search=8944&page=2").await;
    assert!(second.contains("page 2 of 2") && second.contains("Previous page"));
    assert_eq!(second.matches("/console/sims/").count(), 2);
}

both_stores!(another_tenant_s_sim_is_not_found, cross_tenant);
async fn cross_tenant(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("rival").await;
    let theirs = sim(&app, "rival", 7, "447700900007").await;
    let alice = sign_in(&app, "acme", &[Role::Support, Role::Auditor], "alice").await;
    for key in [
        theirs["id"].as_str().unwrap(),
        theirs["iccid"].as_str().unwrap(),
        "not-a-sim",
    ] {
        let res = alice.get(&app, &format!("/console/sims/{key}")).await;
        assert_eq!(res.status(), 404, "{key}");
        let body = res.text().await.unwrap();
        assert!(body.contains("Not found"));
        for leaked in [
            theirs["iccid"].as_str().unwrap(),
            theirs["imsi"].as_str().unwrap(),
            "447700900007",
        ] {
            assert!(!body.contains(leaked), "{key} leaked {leaked}");
        }
    }
    // Search does not reach across either.
    let found = alice
        .page(
            &app,
            &format!("/console?search={}", theirs["iccid"].as_str().unwrap()),
        )
        .await;
    assert!(found.contains("0 SIMs found"));
}

both_stores!(an_auditor_gets_no_sim_page, auditor);
async fn auditor(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let s = sim(&app, "acme", 3, "447700900003").await;
    let carol = sign_in(&app, "acme", &[Role::Auditor], "carol").await;
    let home = carol.page(&app, "/console").await;
    assert!(!home.contains("<label for=\"search\">"));
    assert!(home.contains("/console/audit"));
    assert!(!home.contains(">Search</a>"));
    let res = carol
        .get(
            &app,
            &format!("/console/sims/{}", s["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(res.status(), 403);
    let body = res.text().await.unwrap();
    assert!(body.contains("Not allowed"));
    assert!(
        !body.contains(s["iccid"].as_str().unwrap()) && !body.contains(s["imsi"].as_str().unwrap())
    );
    // The refusal is recorded like the API's, as the person through the console.
    let records = crate::helpers::chain_records(&app.test_db.db, "acme").await;
    assert!(records.iter().any(|(a, o, r)| a == "sim.read"
        && o == "denied"
        && r["auth_method"] == "console"
        && r["subject"] == "carol"));
}

/// Fails unless `html` has no inline script, inline style or event-handler attribute.
pub(crate) fn no_inline_code(path: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    for (i, _) in lower.match_indices("<script") {
        let tag = &lower[i..i + lower[i..].find('>').unwrap()];
        assert!(tag.contains(" src="), "{path}: inline script {tag}");
        assert!(
            lower[i..].starts_with(&format!("{tag}></script>")),
            "{path}: script with a body"
        );
    }
    assert!(
        !lower.contains(" style=") && !lower.contains("<style"),
        "{path}: inline style"
    );
    for tag in lower.split('<').skip(1) {
        let tag = tag.split('>').next().unwrap();
        for attr in tag.split_whitespace().skip(1) {
            let name = attr.split('=').next().unwrap();
            assert!(
                !(attr.contains('=')
                    && name.starts_with("on")
                    && name.chars().all(|c| c.is_ascii_alphabetic())),
                "{path}: event handler in <{tag}>"
            );
        }
    }
}

both_stores!(
    every_console_answer_has_the_security_headers_and_no_inline_code,
    headers
);
async fn headers(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let s = sim(&app, "acme", 4, "447700900004").await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let carol = sign_in(&app, "acme", &[Role::Auditor], "carol").await;
    let t = ticket(&app, "acme", &[Role::Support], "dave", 300).await;
    let anonymous = Browser {
        cookie: String::new(),
    };
    let id = s["id"].as_str().unwrap();
    let pages: Vec<(&str, &Browser, String, u16)> = vec![
        ("search", &alice, "/console".into(), 200),
        ("search results", &alice, "/console?search=8944".into(), 200),
        ("sim", &alice, format!("/console/sims/{id}"), 200),
        (
            "not found",
            &alice,
            "/console/sims/00000000-0000-0000-0000-000000000000".into(),
            404,
        ),
        ("no such page", &alice, "/console/nowhere".into(), 404),
        ("forbidden", &carol, format!("/console/sims/{id}"), 403),
        ("sign-in help", &anonymous, "/console/login".into(), 200),
        ("confirm", &anonymous, format!("/console/login/{t}"), 200),
        ("bad link", &anonymous, "/console/login/nope".into(), 410),
        ("not signed in", &anonymous, "/console".into(), 303),
        (
            "stylesheet",
            &anonymous,
            "/console/assets/console.css".into(),
            200,
        ),
        (
            "script",
            &anonymous,
            "/console/assets/console.js".into(),
            200,
        ),
    ];
    let csrf = crate::console_sessions::csrf_of(&alice.page(&app, "/console").await);
    let mut answers = Vec::new();
    for (name, who, path, status) in pages {
        let res = who.get(&app, &path).await;
        assert_eq!(res.status(), status, "{name}");
        answers.push((name.to_owned(), res));
    }
    answers.push((
        "csrf refused".into(),
        alice.post(&app, "/console/logout", &[("csrf", "x")]).await,
    ));
    answers.push((
        "used link".into(),
        crate::console_sessions::redeem(&app, &"B".repeat(43)).await,
    ));
    answers.push((
        "sign out".into(),
        alice
            .post(&app, "/console/logout", &[("csrf", &csrf)])
            .await,
    ));
    for (name, res) in answers {
        let h = res.headers();
        assert_eq!(
            h["content-security-policy"],
            simvault::console::CSP,
            "{name}"
        );
        for (header, value) in [
            ("cache-control", "no-store"),
            ("referrer-policy", "no-referrer"),
            ("x-content-type-options", "nosniff"),
            ("x-frame-options", "DENY"),
        ] {
            assert_eq!(h[header], value, "{name}: {header}");
        }
        let is_html = h
            .get("content-type")
            .is_some_and(|c| c.to_str().unwrap().starts_with("text/html"));
        let body = res.text().await.unwrap();
        if is_html {
            no_inline_code(&name, &body);
            assert!(
                body.contains("<link rel=\"stylesheet\" href=\"/console/assets/console.css\">")
            );
        }
    }
    // The console is not part of the API description.
    let openapi = app
        .anonymous()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!openapi.contains("/console"));
}
