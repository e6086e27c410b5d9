//! The SIM lifecycle (every allowed and refused transition, history, audit, domain events) and
//! the eSIM installation view (QR code decoded back, links, nulls, policy, audit).

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const STATES: [&str; 5] = ["inventory", "active", "suspended", "blocked", "retired"];

fn allowed(from: &str, to: &str) -> bool {
    matches!(
        (from, to),
        ("inventory", "active" | "blocked" | "retired")
            | ("active", "suspended" | "blocked" | "retired")
            | ("suspended", "active" | "blocked" | "retired")
            | ("blocked", "retired")
    )
}

/// The moves that bring a new SIM (in inventory) to `state`.
fn path_to(state: &str) -> &'static [&'static str] {
    match state {
        "active" => &["active"],
        "suspended" => &["active", "suspended"],
        "blocked" => &["blocked"],
        "retired" => &["retired"],
        _ => &[],
    }
}

async fn set_state(api: &Api, n: u64, state: &str, reason: Option<&str>) -> crate::helpers::Answer {
    let mut body = json!({ "state": state });
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    api.patch(&format!("/v1/sims/{}/state", iccid(n)), &body)
        .await
}

async fn every_transition_is_allowed_or_refused_by_the_state_machine(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let mut n = 0;
    for from in STATES {
        for to in STATES {
            n += 1;
            prov.create_sim(json!({"iccid": iccid(n)})).await;
            for step in path_to(from) {
                assert_eq!(set_state(&operator, n, step, None).await.status, 200);
            }
            let a = set_state(&operator, n, to, Some("ticket 7")).await;
            let sim = operator.get(&format!("/v1/sims/{}", iccid(n))).await.body;
            if from == to {
                assert_eq!(a.status, 200, "{from} → {to}: {:?}", a.body);
                assert_eq!(a.body["previous_state"], from);
                assert_eq!(sim["state"], from, "a no-op");
            } else if allowed(from, to) {
                assert_eq!(a.status, 200, "{from} → {to}: {:?}", a.body);
                assert_eq!(
                    (a.body["state"].as_str(), a.body["previous_state"].as_str()),
                    (Some(to), Some(from))
                );
                assert_eq!(a.body["iccid"], iccid(n));
                assert!(a.body["updated_at"].is_string());
                assert_eq!(sim["state"], to);
                assert_eq!(sim["state_reason"], "ticket 7");
            } else {
                assert_eq!(a.status, 400, "{from} → {to} must be refused");
                assert!(
                    a.body["type"]
                        .as_str()
                        .unwrap()
                        .ends_with("/invalid-state-transition")
                );
                let detail = a.body["detail"].as_str().unwrap();
                assert!(detail.contains(from) && detail.contains(to), "{detail}");
                assert_eq!(a.body["current_state"], from);
                assert_eq!(a.body["requested_state"], to);
                assert_eq!(sim["state"], from, "nothing changed");
            }
        }
    }
}
both_stores!(
    transitions,
    every_transition_is_allowed_or_refused_by_the_state_machine
);

async fn history_audit_and_events_record_each_change(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    assert_eq!(
        set_state(&operator, 1, "active", Some("sold")).await.status,
        200
    );
    assert_eq!(set_state(&operator, 1, "suspended", None).await.status, 200);
    assert_eq!(set_state(&operator, 1, "suspended", None).await.status, 200);
    assert_eq!(
        set_state(&operator, 1, "retired", Some("lost"))
            .await
            .status,
        200
    );

    let h = operator
        .get(&format!("/v1/sims/{}/history", iccid(1)))
        .await;
    assert_eq!(h.status, 200, "{:?}", h.body);
    assert_eq!(h.body["total"], 3, "the no-op is not a change");
    let moves: Vec<(&str, &str)> = h.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["from"].as_str().unwrap(), i["to"].as_str().unwrap()))
        .collect();
    assert_eq!(
        moves,
        [
            ("suspended", "retired"),
            ("active", "suspended"),
            ("inventory", "active")
        ]
    );
    let last = &h.body["items"][0];
    assert_eq!(last["reason"], "lost");
    assert_eq!(
        last["actor"],
        json!({"subject": "tester", "auth_method": "jwt"})
    );
    assert!(last["occurred_at"].is_string());
    let paged = operator
        .get(&format!("/v1/sims/{}/history?page=2&page_size=1", iccid(1)))
        .await
        .body;
    assert_eq!(paged["items"][0]["to"], "suspended");
    assert_eq!(paged["pages"], 3);
    // Other tenants cannot see it.
    app.tenant("other").await;
    let stranger = app.jwt_client("other", &[Role::Operator]);
    assert_eq!(
        stranger
            .get(&format!("/v1/sims/{}/history", iccid(1)))
            .await
            .status,
        404
    );
    assert_eq!(set_state(&stranger, 1, "active", None).await.status, 404);

    let audit: Vec<(String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT outcome, record FROM audit_events WHERE tenant_id = 'acme' AND action = 'sim.state' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(audit.len(), 3);
    let first: Value = serde_json::from_str(&audit[0].1).unwrap();
    assert_eq!(first["reason"], "sold");
    assert_eq!(first["policy_ids"], json!(["sims-update-operator"]));

    let events: Vec<(String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT event_type, payload FROM domain_events WHERE tenant_id = 'acme' AND event_type = 'sim.state_changed' ORDER BY occurred_at")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(events.len(), 3);
    let e: Value = serde_json::from_str(&events[2].1).unwrap();
    assert_eq!(e["previous_state"], "suspended");
    assert_eq!(e["state"], "retired");
    assert_eq!(e["iccid"], iccid(1));
}
both_stores!(history, history_audit_and_events_record_each_change);

async fn state_changes_are_for_operators_and_validated(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(1)})).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(set_state(&support, 1, "active", None).await.status, 403);
    assert_eq!(set_state(&prov, 1, "active", None).await.status, 403);
    let admin = app.jwt_client("acme", &[Role::Admin]);
    for body in [
        json!({"state": "dormant"}),
        json!({}),
        json!({"state": 3}),
        json!({"state": "active", "reason": "x".repeat(501)}),
        json!({"state": "active", "colour": "red"}),
    ] {
        let a = admin
            .patch(&format!("/v1/sims/{}/state", iccid(1)), &body)
            .await;
        assert_eq!(a.status, 400, "{body}");
    }
    assert_eq!(
        admin.get(&format!("/v1/sims/{}", iccid(1))).await.body["state"],
        "inventory"
    );
    assert_eq!(set_state(&admin, 1, "active", None).await.status, 200);
}
both_stores!(state_rules, state_changes_are_for_operators_and_validated);

/// Parses the SVG the service renders (one `M x y h w v h H x V y` rectangle per dark run)
/// back into modules and decodes the QR code.
pub(crate) fn decode_qr(svg: &str) -> String {
    let attr = |name: &str| -> usize {
        let at = svg.find(&format!("{name}=\"")).unwrap() + name.len() + 2;
        svg[at..].split('"').next().unwrap().parse().unwrap()
    };
    let (w, h) = (attr("width"), attr("height"));
    let mut dark = vec![false; w * h];
    let d = svg
        .split(" d=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    for rect in d.split('M').filter(|r| !r.is_empty()) {
        let nums: Vec<usize> = rect
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let (x, y, rw, rh) = (nums[0], nums[1], nums[2], nums[3]);
        for yy in y..y + rh {
            for xx in x..x + rw {
                dark[yy * w + xx] = true;
            }
        }
    }
    let mut img =
        rqrr::PreparedImage::prepare_from_greyscale(
            w,
            h,
            |x, y| {
                if dark[y * w + x] { 0 } else { 255 }
            },
        );
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().unwrap().1
}

async fn the_esim_view(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let code = "LPA:1$SMDP.GSMA.COM$04386-AGYFT-A74Y8-3F815$1.3.6.1.4.1.31746$1";
    prov.create_sim(json!({
        "iccid": iccid(1), "sim_type": "esim", "eid": "89049032123451234512345678901235",
        "secrets": {"activation_code": code}
    }))
    .await;
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    prov.create_sim(json!({"iccid": iccid(3), "sim_type": "esim"}))
        .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    let a = support.get(&format!("/v1/sims/{}/esim", iccid(1))).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.body["activation_code"], code);
    let android = a.body["android_deeplink"].as_str().unwrap();
    assert_eq!(
        android,
        "https://esimsetup.android.com/esim_qrcode_provisioning?carddata=LPA%3A1%24SMDP.GSMA.COM%2404386-AGYFT-A74Y8-3F815%241.3.6.1.4.1.31746%241"
    );
    let ios = a.body["ios_deeplink"].as_str().unwrap();
    assert!(
        ios.starts_with("https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=LPA%3A1%24")
    );
    assert!(!ios.contains('$'));
    let svg = a.body["qr_svg"].as_str().unwrap();
    assert!(svg.starts_with("<svg"));
    assert_eq!(
        decode_qr(svg),
        code,
        "the QR code decodes to exactly the code"
    );
    // A physical SIM, and an eSIM without a code: all null.
    for n in [2, 3] {
        let a = support.get(&format!("/v1/sims/{}/esim", iccid(n))).await;
        assert_eq!(a.status, 200);
        assert_eq!(
            a.body,
            json!({"activation_code": null, "qr_svg": null, "android_deeplink": null, "ios_deeplink": null})
        );
    }
    // The SIM resource shows the EID; never the code.
    let sim = support.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(sim["eid"], "89049032123451234512345678901235");
    assert!(sim.get("esim_profile_state").is_some());
    assert!(!sim.to_string().contains("04386-AGYFT"));
    // Policy: auditors and admins may not; another tenant gets 404.
    for role in [Role::Auditor, Role::Admin] {
        let api = app.jwt_client("acme", &[role]);
        assert_eq!(
            api.get(&format!("/v1/sims/{}/esim", iccid(1))).await.status,
            403
        );
    }
    app.tenant("other").await;
    let stranger = app.jwt_client("other", &[Role::Support]);
    assert_eq!(
        stranger
            .get(&format!("/v1/sims/{}/esim", iccid(1)))
            .await
            .status,
        404
    );
    // Audited as secret reads, allowed and denied, naming the field and never the code.
    let rows: Vec<(String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT outcome, record FROM audit_events WHERE tenant_id = 'acme' AND action = 'esim.read' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    let outcomes: Vec<&str> = rows.iter().map(|(o, _)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["allowed", "allowed", "allowed", "denied", "denied"]
    );
    for (_, r) in &rows {
        assert!(
            r.contains("\"activation_code\"") && !r.contains("04386-AGYFT"),
            "{r}"
        );
    }
}
both_stores!(esim, the_esim_view);
