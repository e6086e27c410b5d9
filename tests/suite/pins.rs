//! PIN reset and PUK unblock: card-exact counters, permanent blocking, validation that costs
//! no attempt, tenant isolation, exact counting under concurrency (one server and two server
//! processes), the per-principal rate limit, and audit records that never hold a value.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const PIN1: &str = "1234";
const PUK1: &str = "12345678";
const PIN2: &str = "5678";
const PUK2: &str = "87654321";

async fn setup_with(store: Store, per_minute: u32) -> (TestApp, Api) {
    let app = TestApp::spawn_with(store, |c| c.pin_ops_per_minute = per_minute).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({
        "iccid": iccid(1),
        "secrets": {"pin1": PIN1, "puk1": PUK1, "pin2": PIN2, "puk2": PUK2}
    }))
    .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    (app, support)
}

async fn setup(store: Store) -> (TestApp, Api) {
    setup_with(store, 0).await
}

fn path(op: &str) -> String {
    format!("/v1/sims/{}/{op}", iccid(1))
}

async fn reset(api: &Api, pin_type: &str, current: &str, new: &str) -> crate::helpers::Answer {
    api.post(
        &path("reset-pin"),
        &json!({"pin_type": pin_type, "current_pin": current, "new_pin": new}),
    )
    .await
}

async fn unblock(api: &Api, pin_type: &str, puk: &str, new: &str) -> crate::helpers::Answer {
    api.post(
        &path("unblock-pin"),
        &json!({"pin_type": pin_type, "puk": puk, "new_pin": new, "reason": "TICKET-1"}),
    )
    .await
}

/// `(status, slug, remaining_attempts)` of an answer.
fn verdict(a: &crate::helpers::Answer) -> (u16, String, Value) {
    let slug = a.body["type"]
        .as_str()
        .map(|t| t.rsplit('/').next().unwrap_or("").to_owned())
        .unwrap_or_else(|| "ok".into());
    let remaining = a.body["remaining_attempts"].clone();
    (a.status, slug, remaining)
}

async fn pin_status(api: &Api) -> Value {
    api.get(&format!("/v1/sims/{}", iccid(1))).await.body["pin_status"].clone()
}

async fn the_card_sequence(store: Store) {
    let (app, support) = setup(store).await;
    // A correct reset.
    let a = reset(&support, "pin1", PIN1, "4321").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["success"], true);
    assert_eq!(a.body["remaining_attempts"], 3);
    assert!(a.body["updated_at"].is_string());
    // The old PIN no longer works; three wrong PINs: 2, 1, 0 left, then blocked.
    for left in [2, 1, 0] {
        assert_eq!(
            verdict(&reset(&support, "pin1", PIN1, "1111").await),
            (400, "wrong-pin".into(), json!(left))
        );
    }
    let blocked = reset(&support, "pin1", "4321", "1111").await;
    assert_eq!(verdict(&blocked), (423, "pin-blocked".into(), json!(0)));
    let status = pin_status(&support).await;
    assert_eq!(
        status["pin1"],
        json!({"remaining_attempts": 0, "blocked": true})
    );
    assert_eq!(status["pin2"]["remaining_attempts"], 3, "PIN2 untouched");
    // The PUK unblocks and restores both counters.
    let a = unblock(&support, "pin1", PUK1, "2468").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["remaining_attempts"], 10, "the PUK's attempts");
    let status = pin_status(&support).await;
    assert_eq!(status["pin1"]["remaining_attempts"], 3);
    assert_eq!(status["puk1"]["remaining_attempts"], 10);
    assert_eq!(reset(&support, "pin1", "2468", "1357").await.status, 200);
    // PIN2 cannot be unblocked with PUK1 (it costs a PUK2 attempt).
    assert_eq!(
        verdict(&unblock(&support, "pin2", PUK1, "1111").await),
        (400, "wrong-puk".into(), json!(9))
    );
    assert_eq!(unblock(&support, "pin2", PUK2, "1111").await.status, 200);
    assert_eq!(pin_status(&support).await["puk2"]["remaining_attempts"], 10);

    // Ten wrong PUKs: 9 … 0, and the SIM is blocked for good.
    for left in (0..10).rev() {
        assert_eq!(
            verdict(&unblock(&support, "pin1", "00000000", "1111").await),
            (400, "wrong-puk".into(), json!(left))
        );
    }
    let sim = support.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(sim["state"], "blocked");
    assert_eq!(sim["pin_status"]["puk1"]["blocked"], true);
    // Nothing brings it back: not the right PUK, not a reset, not new secrets.
    assert_eq!(
        verdict(&unblock(&support, "pin1", PUK1, "1111").await),
        (423, "puk-blocked".into(), json!(0))
    );
    assert_eq!(
        verdict(&reset(&support, "pin1", "1357", "1111").await).1,
        "puk-blocked"
    );
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov2").await;
    let rewrite = Api::send(
        prov.request(reqwest::Method::PUT, &path("secrets"))
            .json(&json!({"puk1": "11223344", "pin1": "1111"})),
    )
    .await;
    assert_eq!(verdict(&rewrite).1, "puk-blocked");
    let sim = support.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(sim["state"], "blocked");
    assert_eq!(sim["pin_status"]["puk1"]["remaining_attempts"], 0);

    // Every attempt is on the record with its outcome and counter; never a value tried.
    let rows: Vec<(String, String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT action, outcome, record FROM audit_events WHERE tenant_id = 'acme' AND action LIKE 'pin.%' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    let outcomes: Vec<&str> = rows.iter().map(|(_, o, _)| o.as_str()).collect();
    let mut expected = vec!["success", "wrong-pin", "wrong-pin", "wrong-pin", "blocked"];
    expected.extend(["success", "success", "wrong-puk", "success"]);
    expected.extend(["wrong-puk"; 10]);
    expected.extend(["blocked", "blocked"]);
    assert_eq!(outcomes, expected);
    let last_wrong: Value = serde_json::from_str(&rows[18].2).unwrap();
    assert_eq!(last_wrong["remaining_attempts"], 0);
    assert_eq!(last_wrong["reason"], "TICKET-1");
    assert_eq!(last_wrong["fields"], json!(["puk1", "pin1"]));
    assert_eq!(
        last_wrong["policy_ids"],
        json!(["pin-unblock-support-with-reason"])
    );
    for (_, _, record) in &rows {
        // Random ids and times may hold any digits: look at everything else.
        let mut r: Value = serde_json::from_str(record).unwrap();
        for random in [
            "id",
            "request_id",
            "credential",
            "sim_id",
            "occurred_at",
            "client_addr",
            "iccid",
        ] {
            r.as_object_mut().unwrap().remove(random);
        }
        let record = r.to_string();
        for value in [
            PIN1, PUK1, PIN2, PUK2, "4321", "2468", "1357", "00000000", "1111",
        ] {
            assert!(!record.contains(value), "{record} holds {value}");
        }
    }
}
both_stores!(card_sequence, the_card_sequence);

/// Invalid input is refused whole and costs no attempt; so does another tenant's SIM, and a
/// role that may not do this.
async fn refusals_cost_no_attempt(store: Store) {
    let (app, support) = setup(store).await;
    let bad = support
        .post(
            &path("reset-pin"),
            &json!({"pin_type": "pin3", "current_pin": "12", "new_pin": 1234, "colour": "red"}),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert_eq!(
        bad.body["type"].as_str().unwrap().rsplit('/').next(),
        Some("validation-error")
    );
    let cases = [
        (
            json!({"pin_type": "pin1", "current_pin": "12", "new_pin": "1234"}),
            "/current_pin",
        ),
        (
            json!({"pin_type": "pin1", "current_pin": "1234", "new_pin": "123456789"}),
            "/new_pin",
        ),
        (
            json!({"pin_type": "pin1", "current_pin": "12a4", "new_pin": "1234"}),
            "/current_pin",
        ),
        (
            json!({"pin_type": "pin1", "new_pin": "1234"}),
            "/current_pin",
        ),
        (
            json!({"pin_type": "PIN1", "current_pin": "1111", "new_pin": "1234"}),
            "/pin_type",
        ),
    ];
    for (body, pointer) in cases {
        let a = support.post(&path("reset-pin"), &body).await;
        assert_eq!(a.status, 400, "{body}");
        let pointers = a.pointers();
        assert_eq!(pointers, [pointer], "{body}");
        let mut echoed = a.body.clone();
        echoed.as_object_mut().unwrap().remove("request_id"); // random: may hold any digits
        assert!(!echoed.to_string().contains("1111"), "no value echoed");
    }
    for body in [
        json!({"pin_type": "pin1", "puk": PUK1, "new_pin": "1111"}),
        json!({"pin_type": "pin1", "puk": PUK1, "new_pin": "1111", "reason": " "}),
        json!({"pin_type": "pin1", "puk": "1234567", "new_pin": "1111", "reason": "T"}),
        json!({"pin_type": "pin1", "puk": PUK1, "new_pin": "1111", "reason": "x".repeat(501)}),
    ] {
        assert_eq!(
            support.post(&path("unblock-pin"), &body).await.status,
            400,
            "{body}"
        );
    }
    // Roles that may not: 403, recorded, no attempt.
    let operator = app.jwt_client("acme", &[Role::Operator]);
    assert_eq!(reset(&operator, "pin1", "0000", "1111").await.status, 403);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "p2").await;
    assert_eq!(unblock(&prov, "pin1", "00000000", "1111").await.status, 403);
    // Another tenant's support staff: 404, as if the SIM did not exist, no attempt.
    app.tenant("other").await;
    let stranger = app.jwt_client("other", &[Role::Support]);
    let a = reset(&stranger, "pin1", "0000", "1111").await;
    assert_eq!(a.status, 404);
    assert_eq!(
        unblock(&stranger, "pin1", "00000000", "1111").await.status,
        404
    );
    // A SIM with no PIN2 set has nothing to compare against.
    prov.create_sim(json!({"iccid": iccid(2), "secrets": {"pin1": PIN1}}))
        .await;
    let none = support
        .post(
            &format!("/v1/sims/{}/reset-pin", iccid(2)),
            &json!({"pin_type": "pin2", "current_pin": "0000", "new_pin": "1111"}),
        )
        .await;
    assert_eq!(none.status, 409, "{:?}", none.body);

    let status = pin_status(&support).await;
    assert_eq!(status["pin1"]["remaining_attempts"], 3);
    assert_eq!(status["puk1"]["remaining_attempts"], 10);
    let denials: Vec<(String,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT action FROM audit_events WHERE tenant_id = 'acme' AND outcome = 'denied' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(
        denials,
        [("pin.reset".to_owned(),), ("pin.unblock".to_owned(),)]
    );
}
both_stores!(refusals, refusals_cost_no_attempt);

/// Forty wrong PUKs at once: exactly ten are compared (9 … 0 left), thirty find it blocked.
async fn guesses(apis: &[Api], n: usize) -> (Vec<i64>, usize) {
    let mut tasks = Vec::new();
    for i in 0..n {
        let api = apis[i % apis.len()].clone();
        tasks.push(tokio::spawn(async move {
            let a = unblock(&api, "pin1", "00000000", "1111").await;
            verdict(&a)
        }));
    }
    let mut wrong = Vec::new();
    let mut blocked = 0;
    for t in tasks {
        match t.await.unwrap() {
            (400, slug, left) if slug == "wrong-puk" => wrong.push(left.as_i64().unwrap()),
            (423, slug, _) if slug == "puk-blocked" => blocked += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    wrong.sort_unstable();
    (wrong, blocked)
}

async fn concurrent_guesses_get_exactly_the_counter(store: Store) {
    let (_app, support) = setup(store).await;
    let (wrong, blocked) = guesses(std::slice::from_ref(&support), 40).await;
    assert_eq!(wrong, (0..10).collect::<Vec<_>>());
    assert_eq!(blocked, 30);
    let sim = support.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(sim["state"], "blocked");
}
both_stores!(
    concurrent_guesses,
    concurrent_guesses_get_exactly_the_counter
);

crate::helpers::postgres_test!(
    /// The same with the guesses split over two server processes sharing one PostgreSQL.
    async fn concurrent_guesses_over_two_server_processes() {
        let (app, support) = setup(Store::Postgres).await;
        let (mut replica, base) = app.spawn_replica(&[("SIMVAULT_PIN_OPS_PER_MINUTE", "0")]);
        let other = Api {
            app_base: base,
            ..support.clone()
        };
        let (wrong, blocked) = guesses(&[support.clone(), other], 40).await;
        let _ = replica.kill();
        let _ = replica.wait();
        assert_eq!(wrong, (0..10).collect::<Vec<_>>());
        assert_eq!(blocked, 30);
    }
);

/// One support account gets a bounded number of PIN operations a minute; the limited attempt
/// costs no counter and is recorded; others are not affected.
async fn pin_operations_are_rate_limited_per_principal(store: Store) {
    let (app, support) = setup_with(store, 3).await;
    for left in [2, 1, 0] {
        assert_eq!(
            verdict(&reset(&support, "pin1", "0000", "1111").await).2,
            json!(left)
        );
    }
    let limited = unblock(&support, "pin1", PUK1, "1111").await;
    assert_eq!(limited.status, 429, "{:?}", limited.body);
    assert_eq!(verdict(&limited).1, "rate-limited");
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(pin_status(&support).await["puk1"]["remaining_attempts"], 10);
    // Another support principal still may.
    let colleague = Api {
        token: Some(app.token("acme", &[Role::Support], "bob")),
        ..support.clone()
    };
    assert_eq!(unblock(&colleague, "pin1", PUK1, "1111").await.status, 200);
    let limited: Vec<(String,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT action FROM audit_events WHERE tenant_id = 'acme' AND outcome = 'rate-limited'")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(limited, [("pin.unblock".to_owned(),)]);
}
both_stores!(rate_limit, pin_operations_are_rate_limited_per_principal);

/// Cards with other counter maximums can be imported and behave by them.
async fn other_card_profiles(store: Store) {
    let (app, support) = setup(store).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "p3").await;
    let sim = prov
        .create_sim(json!({"iccid": iccid(5), "pin_max": 5, "puk_max": 3,
            "secrets": {"pin1": PIN1, "puk1": PUK1}}))
        .await;
    assert_eq!(sim["pin_status"]["pin1"]["remaining_attempts"], 5);
    assert_eq!(sim["pin_status"]["puk1"]["remaining_attempts"], 3);
    let a = support
        .post(
            &format!("/v1/sims/{}/reset-pin", iccid(5)),
            &json!({"pin_type": "pin1", "current_pin": "0000", "new_pin": "1111"}),
        )
        .await;
    assert_eq!(verdict(&a), (400, "wrong-pin".into(), json!(4)));
    let bad = prov
        .post(
            "/v1/sims",
            &json!({"iccid": iccid(6), "pin_max": 0, "puk_max": "ten"}),
        )
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"].as_array().unwrap().len(), 2);
}
both_stores!(card_profiles, other_card_profiles);
