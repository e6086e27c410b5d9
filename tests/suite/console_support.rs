//! The SIM page's support and operator actions: PIN reset and unblock, revealing the PUK, the
//! eSIM installation QR code and state changes, each through the API's use case, and what a
//! wrong role, a missing reason or CSRF token, or another tenant's person does not get.

use serde_json::json;
use simvault::domain::Role;

use crate::console_sessions::{Browser, csrf_of, sign_in};
use crate::helpers::{Store, TestApp, both_stores, chain_records, iccid};

const PUK: &str = "12345678";

/// Creates SIM `n` in `tenant` with PIN1 1234 and PUK1 12345678: its id.
async fn sim(app: &TestApp, tenant: &str, n: u64) -> String {
    let api = app
        .mtls_api(tenant, &[Role::Provisioner], &format!("prov-{tenant}-{n}"))
        .await;
    let s = api
        .create_sim(json!({"iccid": iccid(n), "secrets": {"pin1": "1234", "puk1": PUK}}))
        .await;
    s["id"].as_str().unwrap().to_owned()
}

/// The attempts left of `name` (PIN1, PUK1) a page shows.
fn counter(html: &str, name: &str) -> i64 {
    let marker = format!("<span class=\"name\">{name}</span> <span class=\"value\">");
    let at = html.find(&marker).expect("the counter") + marker.len();
    html[at..].split('<').next().unwrap().parse().unwrap()
}

/// The SIM page of `id` and its CSRF token.
async fn page(b: &Browser, app: &TestApp, id: &str) -> (String, String) {
    let html = b.page(app, &format!("/console/sims/{id}")).await;
    let csrf = csrf_of(&html);
    (html, csrf)
}

/// POSTs `form` (with the CSRF token) to `/console/sims/{id}/{action}`: status and body.
async fn act(
    b: &Browser,
    app: &TestApp,
    id: &str,
    action: &str,
    csrf: &str,
    form: &[(&str, &str)],
) -> (u16, String) {
    let mut all = vec![("csrf", csrf)];
    all.extend_from_slice(form);
    let res = b
        .post(app, &format!("/console/sims/{id}/{action}"), &all)
        .await;
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

both_stores!(support_resets_blocks_and_unblocks_a_pin, pins);
async fn pins(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let id = sim(&app, "acme", 1).await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let (html, csrf) = page(&alice, &app, &id).await;
    for label in [
        "<label for=\"reset-pin-type\">PIN type</label>",
        "<label for=\"reset-current\">Current PIN</label>",
        "<label for=\"reset-new\">New PIN</label>",
        "<label for=\"unblock-puk\">PUK</label>",
        "<label for=\"unblock-reason\">Reason</label>",
        ">Reset PIN</button>",
        ">Unblock PIN</button>",
        ">Reveal PUK</button>",
    ] {
        assert!(html.contains(label), "{label}");
    }
    // Every PIN and PUK field is a one-time code to the browser: a password manager does not
    // offer to keep a customer's PIN (it ignores autocomplete="off" on password fields).
    let secret_inputs: Vec<&str> = html
        .split("<input")
        .skip(1)
        .filter(|i| i.contains("type=\"password\""))
        .collect();
    assert_eq!(secret_inputs.len(), 4, "{html}");
    for input in secret_inputs {
        assert!(input.contains("autocomplete=\"one-time-code\""), "{input}");
    }
    // Support may not change states; a physical SIM has no QR code.
    assert!(!html.contains(">Change state</button>") && !html.contains("Show QR code"));
    crate::console::no_inline_code("sim page", &html);

    // A missing CSRF token: refused before anything runs.
    let res = alice
        .post(
            &app,
            &format!("/console/sims/{id}/reset-pin"),
            &[
                ("pin_type", "pin1"),
                ("current_pin", "9999"),
                ("new_pin", "4321"),
            ],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(counter(&page(&alice, &app, &id).await.0, "PIN1"), 3);

    let wrong = [
        ("pin_type", "pin1"),
        ("current_pin", "9999"),
        ("new_pin", "4321"),
    ];
    let (status, body) = act(&alice, &app, &id, "reset-pin", &csrf, &wrong).await;
    assert_eq!(status, 400);
    assert!(body.contains("Wrong PIN: 2 attempts left"), "{body}");
    assert_eq!(counter(&body, "PIN1"), 2);
    assert!(!body.contains("9999"));
    act(&alice, &app, &id, "reset-pin", &csrf, &wrong).await;
    let (_, body) = act(&alice, &app, &id, "reset-pin", &csrf, &wrong).await;
    assert!(body.contains("Wrong PIN: 0 attempts left"), "{body}");
    // Blocked: even the right PIN is refused now.
    let right = [
        ("pin_type", "pin1"),
        ("current_pin", "1234"),
        ("new_pin", "4321"),
    ];
    let (status, body) = act(&alice, &app, &id, "reset-pin", &csrf, &right).await;
    assert_eq!(status, 423);
    assert!(
        body.contains("PIN1 blocked: unblock it with the PUK"),
        "{body}"
    );
    assert_eq!(counter(&body, "PIN1"), 0);

    // Unblocking needs a reason: refused, nothing changed.
    let (status, body) = act(
        &alice,
        &app,
        &id,
        "unblock-pin",
        &csrf,
        &[
            ("pin_type", "pin1"),
            ("puk", PUK),
            ("new_pin", "2468"),
            ("reason", " "),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Reason"), "{body}");
    let now = page(&alice, &app, &id).await.0;
    assert_eq!((counter(&now, "PIN1"), counter(&now, "PUK1")), (0, 10));

    let (status, body) = act(
        &alice,
        &app,
        &id,
        "unblock-pin",
        &csrf,
        &[
            ("pin_type", "pin1"),
            ("puk", "87654321"),
            ("new_pin", "2468"),
            ("reason", "TICKET-1"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("Wrong PUK: 9 attempts left"), "{body}");
    assert_eq!(counter(&body, "PUK1"), 9);

    let (status, body) = act(
        &alice,
        &app,
        &id,
        "unblock-pin",
        &csrf,
        &[
            ("pin_type", "pin1"),
            ("puk", PUK),
            ("new_pin", "2468"),
            ("reason", "TICKET-1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("PIN unblocked"));
    assert_eq!((counter(&body, "PIN1"), counter(&body, "PUK1")), (3, 10));
    assert!(!body.contains(PUK) && !body.contains("2468"));

    // The new PIN is the one set.
    let (status, body) = act(
        &alice,
        &app,
        &id,
        "reset-pin",
        &csrf,
        &[
            ("pin_type", "pin1"),
            ("current_pin", "2468"),
            ("new_pin", "1357"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("PIN changed"));
    // Recorded as the person through the console.
    let records = chain_records(&app.test_db.db, "acme").await;
    assert!(records.iter().any(|(a, _, r)| a == "pin.unblock"
        && r["auth_method"] == "console"
        && r["subject"] == "alice"));
    for (_, _, r) in &records {
        let text = r.to_string();
        assert!(!text.contains(PUK) && !text.contains("2468") && !text.contains("1357"));
    }
}

both_stores!(support_reveals_the_puk_with_a_reason_only, reveal);
async fn reveal(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let id = sim(&app, "acme", 1).await;
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let (_, csrf) = page(&alice, &app, &id).await;

    let (status, body) = act(
        &alice,
        &app,
        &id,
        "reveal-puk",
        &csrf,
        &[("reason", "TICKET-9")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains(&format!("data-hide-after=\"30\">{PUK}<")),
        "{body}"
    );
    let records = chain_records(&app.test_db.db, "acme").await;
    let read = records
        .iter()
        .find(|(a, o, _)| a == "secrets.read" && o == "allowed")
        .expect("the secret read is recorded");
    assert_eq!(read.2["auth_method"], "console");
    assert_eq!(read.2["subject"], "alice");
    assert_eq!(read.2["fields"], json!(["puk1"]));
    assert_eq!(read.2["reason"], "TICKET-9");
    assert!(!read.2.to_string().contains(PUK));

    // No reason: refused, no value.
    let (status, body) = act(&alice, &app, &id, "reveal-puk", &csrf, &[("reason", "")]).await;
    assert_eq!(status, 403);
    assert!(!body.contains(PUK));
    // Operators and auditors may not, reason or none (and see no such form).
    for (role, sub) in [(Role::Operator, "olga"), (Role::Auditor, "aude")] {
        let b = sign_in(&app, "acme", &[role], sub).await;
        let csrf = b.csrf(&app).await;
        if role == Role::Operator {
            assert!(!page(&b, &app, &id).await.0.contains("Reveal PUK"));
        }
        let (status, body) = act(
            &b,
            &app,
            &id,
            "reveal-puk",
            &csrf,
            &[("reason", "TICKET-9")],
        )
        .await;
        assert_eq!(status, 403, "{role}");
        assert!(!body.contains(PUK), "{role}");
    }
    // A missing CSRF token: refused, no value, no read recorded.
    let before = chain_records(&app.test_db.db, "acme").await.len();
    let res = alice
        .post(
            &app,
            &format!("/console/sims/{id}/reveal-puk"),
            &[("reason", "T")],
        )
        .await;
    assert_eq!(res.status(), 403);
    assert!(!res.text().await.unwrap().contains(PUK));
    assert_eq!(chain_records(&app.test_db.db, "acme").await.len(), before);
}

both_stores!(operators_change_states_and_support_cannot, states);
async fn states(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let id = sim(&app, "acme", 1).await;
    let olga = sign_in(&app, "acme", &[Role::Operator], "olga").await;
    let (html, csrf) = page(&olga, &app, &id).await;
    assert!(
        html.contains(">Change state</button>")
            && html.contains("<label for=\"state-reason\">Reason</label>")
    );
    assert!(!html.contains("Reset PIN") && !html.contains("Reveal PUK"));

    let (status, body) = act(
        &olga,
        &app,
        &id,
        "state",
        &csrf,
        &[("state", "active"), ("reason", "TICKET-2")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("The SIM moved from inventory to active."),
        "{body}"
    );
    let (status, body) = act(
        &olga,
        &app,
        &id,
        "state",
        &csrf,
        &[("state", "inventory"), ("reason", "")],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body.contains("A SIM cannot move from active to inventory."),
        "{body}"
    );
    let html = page(&olga, &app, &id).await.0;
    assert!(html.contains("TICKET-2") && html.contains("olga"));

    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let csrf = alice.csrf(&app).await;
    let (status, _) = act(
        &alice,
        &app,
        &id,
        "state",
        &csrf,
        &[("state", "suspended"), ("reason", "x")],
    )
    .await;
    assert_eq!(status, 403);
    let api = app.jwt_client("acme", &[Role::Operator]);
    assert_eq!(
        api.get(&format!("/v1/sims/{id}")).await.body["state"],
        "active"
    );
}

both_stores!(an_esim_shows_its_installation_qr_code, esim);
async fn esim(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let code = "LPA:1$SMDP.EXAMPLE.COM$QR-CANARY-0042";
    let s = prov
        .create_sim(json!({
            "iccid": iccid(1), "sim_type": "esim", "eid": "89049032123451234512345678901235",
            "secrets": {"activation_code": code}
        }))
        .await;
    let id = s["id"].as_str().unwrap();
    let alice = sign_in(&app, "acme", &[Role::Support], "alice").await;
    let (html, csrf) = page(&alice, &app, id).await;
    assert!(html.contains("Show QR code"));
    assert!(!html.contains("QR-CANARY"));
    let (status, body) = act(&alice, &app, id, "esim", &csrf, &[]).await;
    assert_eq!(status, 200, "{body}");
    let at = body.find("<svg").expect("an inline svg");
    let end = body[at..].find("</svg>").unwrap() + at + 6;
    let svg = &body[at..end];
    assert_eq!(svg, simvault::domain::esim::qr_svg(code).unwrap());
    assert_eq!(crate::lifecycle::decode_qr(svg), code);
    let records = chain_records(&app.test_db.db, "acme").await;
    assert!(records.iter().any(|(a, o, r)| a == "esim.read"
        && o == "allowed"
        && r["auth_method"] == "console"
        && r["subject"] == "alice"
        && !r.to_string().contains("QR-CANARY")));
    // An auditor gets no QR code.
    let aude = sign_in(&app, "acme", &[Role::Auditor], "aude").await;
    let csrf = aude.csrf(&app).await;
    let (status, body) = act(&aude, &app, id, "esim", &csrf, &[]).await;
    assert_eq!(status, 403);
    assert!(!body.contains("<svg"));
}

both_stores!(
    another_tenant_s_sim_is_not_found_on_any_action,
    cross_tenant
);
async fn cross_tenant(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("rival").await;
    let theirs = sim(&app, "rival", 7).await;
    let mallory = sign_in(&app, "acme", &[Role::Support, Role::Operator], "mallory").await;
    let csrf = mallory.csrf(&app).await;
    let forms: [(&str, &[(&str, &str)]); 5] = [
        (
            "reset-pin",
            &[
                ("pin_type", "pin1"),
                ("current_pin", "9999"),
                ("new_pin", "4321"),
            ],
        ),
        (
            "unblock-pin",
            &[
                ("pin_type", "pin1"),
                ("puk", "87654321"),
                ("new_pin", "4321"),
                ("reason", "T"),
            ],
        ),
        ("reveal-puk", &[("reason", "T")]),
        ("esim", &[]),
        ("state", &[("state", "active"), ("reason", "T")]),
    ];
    for key in [theirs.as_str(), iccid(7).as_str()] {
        for (action, form) in forms {
            let (status, body) = act(&mallory, &app, key, action, &csrf, form).await;
            assert_eq!(status, 404, "{action}");
            assert!(!body.contains(PUK) && !body.contains(&iccid(7)), "{action}");
        }
    }
    let rival = sign_in(&app, "rival", &[Role::Support], "rita").await;
    let html = page(&rival, &app, &theirs).await.0;
    assert_eq!((counter(&html, "PIN1"), counter(&html, "PUK1")), (3, 10));
    assert!(html.contains("inventory"));
}
