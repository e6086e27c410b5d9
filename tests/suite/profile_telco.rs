//! The `telco` profile at `/v1/sim/physical`, walking its seed document (003, the physical SIM
//! API) line by line: the list with `state`, `vendor`, `page`, `per_page`, `sort` and its
//! `meta`; the read; the provisioning answer; the state change and its invalid transition; the
//! PIN reset and unblock answers; the delete; the invalid ICCID and not found errors. Then what
//! a caller does NOT get: no answer without a credential, nothing of another tenant's SIMs, no
//! Ki, OPc or PIN for support staff, no PUK without a reason, no secret shown unaudited.

use serde_json::{Value, json};
use simvault::domain::{LuhnPolicy, Role};

use crate::helpers::{Answer, Api, Store, TestApp, both_stores, iccid, raw_sql};

const PROBLEMS: &str = "https://simvault.dev/problems/";
const PIN1: &str = "1234";
const PIN2: &str = "5678";
const PUK1: &str = "12345678";
const PUK2: &str = "87654321";
const KI: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90";
const OPC: &str = "f6e5d4c3b2a1f0e9d8c7b6a5f4e3d2c1";
/// The seed's example ICCID: its check digit is wrong by our (Luhn) rule.
const SEED_ICCID: &str = "89441234567890123456";

/// The seed's provisioning body, for `iccid`, with secrets of the right form.
fn provisioning(iccid: &str, vendor: &str) -> Value {
    json!({
        "iccid": iccid,
        "imsi": "234150123456789",
        "msisdn": "447123456789",
        "vendor": vendor,
        "pin1": PIN1,
        "pin2": PIN2,
        "puk1": PUK1,
        "puk2": PUK2,
        "ki": KI.to_uppercase(),
        "opc": OPC
    })
}

fn at(iccid: &str, rest: &str) -> String {
    format!("/v1/sim/physical/{iccid}{rest}")
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    k.sort_unstable();
    k
}

/// A problem document as the seed shows one: our `type` base, the seed's title, `instance`
/// the request path, our `request_id`.
fn assert_problem(a: &Answer, status: u16, slug: &str, title: &str, instance: &str) {
    assert_eq!(a.status, status, "{:?}", a.body);
    assert_eq!(a.content_type(), "application/problem+json");
    assert_eq!(a.body["type"], format!("{PROBLEMS}{slug}"), "{:?}", a.body);
    assert_eq!(a.body["title"], title, "{:?}", a.body);
    assert_eq!(a.body["status"], status);
    assert_eq!(a.body["instance"], instance);
    assert!(a.body["request_id"].is_string());
    assert!(a.body["detail"].is_string());
    let text = a.body.to_string();
    for secret in [PUK1, PUK2, KI, OPC, &KI.to_uppercase()] {
        assert!(!text.contains(secret), "a secret in a problem: {text}");
    }
}

struct Telco {
    app: TestApp,
    prov: Api,
    support: Api,
    operator: Api,
    admin: Api,
}

async fn setup_with(store: Store, luhn: LuhnPolicy) -> Telco {
    let app = TestApp::spawn_with(store, |c| c.iccid_luhn = luhn).await;
    app.tenant("acme").await;
    Telco {
        prov: app.mtls_api("acme", &[Role::Provisioner], "prov").await,
        support: app.jwt_client("acme", &[Role::Support]),
        operator: app.jwt_client("acme", &[Role::Operator]),
        admin: app.jwt_client("acme", &[Role::Admin]),
        app,
    }
}

async fn setup(store: Store) -> Telco {
    setup_with(store, LuhnPolicy::Enforce).await
}

async fn provision(api: &Api, iccid: &str, vendor: &str) -> Answer {
    api.post("/v1/sim/physical", &provisioning(iccid, vendor))
        .await
}

/// `(fields, reason)` of every secret read recorded for the tenant, in order.
async fn secret_reads(app: &TestApp) -> Vec<(Value, Value)> {
    let rows: Vec<(String,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT record FROM audit_events WHERE tenant_id = 'acme' AND action = 'secrets.read' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    rows.iter()
        .map(|(r,)| {
            let r: Value = serde_json::from_str(r).unwrap();
            (r["fields"].clone(), r["reason"].clone())
        })
        .collect()
}

async fn the_seed_document(store: Store) {
    let t = setup(store).await;
    let sim = iccid(1);

    // Provision SIM Card: `201`, exactly `{iccid, state, created_at, updated_at}`.
    let a = provision(&t.prov, &sim, "GEMALTO").await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(
        keys(&a.body),
        ["created_at", "iccid", "state", "updated_at"]
    );
    assert_eq!(a.body["iccid"], sim);
    assert_eq!(a.body["state"], "INVENTORY");
    assert_eq!(a.body["created_at"], a.body["updated_at"]);
    assert!(a.body["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(a.headers["location"], at(&sim, "").as_str());

    // Get SIM Card Details: every field of the seed, the secrets as provisioned.
    let a = t.prov.get(&at(&sim, "")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(
        a.body,
        json!({
            "iccid": sim, "imsi": "234150123456789", "msisdn": "447123456789",
            "state": "INVENTORY", "vendor": "GEMALTO",
            "pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2, "ki": KI, "opc": OPC,
            "created_at": a.body["created_at"], "updated_at": a.body["updated_at"]
        })
    );
    assert_eq!(
        secret_reads(&t.app).await,
        [(
            json!(["pin1", "pin2", "puk1", "puk2", "ki", "opc"]),
            Value::Null
        )]
    );
    // The native read of the same SIM agrees.
    let native = t.prov.get(&format!("/v1/sims/{sim}")).await.body;
    assert_eq!(native["vendor"], "GEMALTO");
    assert_eq!(native["pin_status"]["puk1"]["remaining_attempts"], 10);

    // Update SIM State: `{state, reason}` → exactly `{iccid, state, updated_at}`.
    let a = t
        .operator
        .patch(
            &at(&sim, "/state"),
            &json!({"state": "ACTIVE", "reason": "Customer activation request"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(keys(&a.body), ["iccid", "state", "updated_at"]);
    assert_eq!(
        (&a.body["iccid"], &a.body["state"]),
        (&json!(sim), &json!("ACTIVE"))
    );
    let history = t
        .operator
        .get(&format!("/v1/sims/{sim}/history"))
        .await
        .body;
    assert!(
        history.to_string().contains("Customer activation request"),
        "{history}"
    );

    // Reset PIN: exactly `{success, updated_at}`.
    let a = t
        .support
        .post(
            &at(&sim, "/reset-pin"),
            &json!({"pin_type": "PIN1", "current_pin": PIN1, "new_pin": "4321"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(keys(&a.body), ["success", "updated_at"]);
    assert_eq!(a.body["success"], true);

    // Unblock PIN: the seed's body (the reason in our header) → `remaining_attempts: 10`.
    let unblock = json!({"pin_type": "PIN1", "puk": PUK1, "new_pin": "4321"});
    let a = Api::send(
        t.support
            .request(reqwest::Method::POST, &at(&sim, "/unblock-pin"))
            .header("X-Simvault-Reason", "TICKET-17")
            .json(&unblock),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        keys(&a.body),
        ["remaining_attempts", "success", "updated_at"]
    );
    assert_eq!(
        (&a.body["success"], &a.body["remaining_attempts"]),
        (&json!(true), &json!(10))
    );

    // Invalid State Transition: BLOCKED → ACTIVE.
    let blocked = t
        .operator
        .patch(&at(&sim, "/state"), &json!({"state": "blocked"}))
        .await;
    assert_eq!(blocked.body["state"], "BLOCKED", "{:?}", blocked.body);
    let a = t
        .operator
        .patch(
            &at(&sim, "/state"),
            &json!({"state": "Active", "reason": "again"}),
        )
        .await;
    assert_problem(
        &a,
        400,
        "invalid-state-transition",
        "Invalid State Transition",
        &at(&sim, "/state"),
    );
    assert_eq!(
        a.body["detail"],
        "Cannot transition from BLOCKED to ACTIVE state"
    );

    // List SIM Cards: every parameter of the seed, and `meta`.
    for (n, vendor) in [(2, "GEMALTO"), (3, "IDEMIA"), (4, "GEMALTO")] {
        assert_eq!(provision(&t.prov, &iccid(n), vendor).await.status, 201);
    }
    for n in [2, 3, 4] {
        let a = t
            .operator
            .patch(&at(&iccid(n), "/state"), &json!({"state": "ACTIVE"}))
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    let a = t
        .support
        .get("/v1/sim/physical?state=ACTIVE&vendor=GEMALTO&page=1&per_page=10&sort=created_at:desc")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["meta"],
        json!({"total": 2, "page": 1, "per_page": 10})
    );
    let data = a.body["data"].as_array().unwrap();
    let order: Vec<&str> = data.iter().map(|s| s["iccid"].as_str().unwrap()).collect();
    assert_eq!(order, [iccid(4), iccid(2)]);
    assert_eq!(
        data[0],
        json!({
            "iccid": iccid(4), "imsi": "234150123456789", "msisdn": "447123456789",
            "state": "ACTIVE", "vendor": "GEMALTO",
            "created_at": data[0]["created_at"], "updated_at": data[0]["updated_at"]
        })
    );
    // `state` as the seed's example lists them, any case; paging through `meta`.
    let a = t
        .support
        .get("/v1/sim/physical?state=active,Blocked&per_page=2&page=2&sort=iccid:asc")
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["meta"],
        json!({"total": 4, "page": 2, "per_page": 2})
    );
    let order: Vec<&str> = a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap())
        .collect();
    assert_eq!(order, [iccid(3), iccid(4)]);
    let a = t
        .support
        .get("/v1/sim/physical?state=BLOCKED&sort=state:asc")
        .await;
    assert_eq!(a.body["meta"]["total"], 1, "{:?}", a.body);
    assert_eq!(a.body["data"][0]["state"], "BLOCKED");
    let a = t.support.get("/v1/sim/physical?sort=updated_at").await;
    assert_eq!(
        a.body["meta"],
        json!({"total": 4, "page": 1, "per_page": 20})
    );
    // Invalid parameters are named as the seed names them.
    let a = t
        .support
        .get("/v1/sim/physical?per_page=251&sort=imsi:asc&state=GONE&page_size=5")
        .await;
    assert_problem(
        &a,
        400,
        "validation-error",
        "Invalid Request",
        "/v1/sim/physical",
    );
    let params: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["parameter"].as_str())
        .collect();
    assert_eq!(params, ["page_size", "sort"], "{:?}", a.body);
    let a = t
        .support
        .get("/v1/sim/physical?per_page=251&state=GONE")
        .await;
    let params: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["parameter"].as_str())
        .collect();
    assert_eq!(params, ["per_page", "state"], "{:?}", a.body);

    // Delete SIM Card: exactly `{success, deleted_at}`.
    let a = t.admin.delete(&at(&sim, "")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(keys(&a.body), ["deleted_at", "success"]);
    assert_eq!(a.body["success"], true);

    // SIM Not Found: the deleted SIM, and one never provisioned.
    for gone in [sim.clone(), iccid(99)] {
        let a = t.prov.get(&at(&gone, "")).await;
        assert_problem(&a, 404, "not-found", "SIM Not Found", &at(&gone, ""));
        assert_eq!(
            a.body["detail"],
            format!("No SIM card found with ICCID {gone}")
        );
    }

    // Invalid ICCID Format: the seed's own example ICCID (wrong check digit), a short one.
    let a = provision(&t.prov, SEED_ICCID, "GEMALTO").await;
    assert_problem(
        &a,
        400,
        "validation-error",
        "Invalid ICCID Format",
        "/v1/sim/physical",
    );
    assert!(
        a.body["detail"].as_str().unwrap().contains("Luhn"),
        "{:?}",
        a.body
    );
    let a = t.prov.get(&at("8944123", "")).await;
    assert_problem(
        &a,
        400,
        "validation-error",
        "Invalid ICCID Format",
        &at("8944123", ""),
    );
    assert_eq!(a.body["detail"], "ICCID must be 18 to 22 digits long");
}
both_stores!(seed_document, the_seed_document);

/// Where the deployment relaxes the Luhn rule, the seed's example ICCID is taken as it is.
async fn the_seed_iccid_where_luhn_is_relaxed(store: Store) {
    let t = setup_with(store, LuhnPolicy::Relaxed).await;
    let a = provision(&t.prov, SEED_ICCID, "GEMALTO").await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let a = t.prov.get(&at(SEED_ICCID, "")).await;
    assert_eq!((a.status, &a.body["iccid"]), (200, &json!(SEED_ICCID)));
    let a = t.prov.get(&at("8944123", "")).await;
    assert_eq!(a.body["title"], "Invalid ICCID Format");
}
both_stores!(relaxed_luhn, the_seed_iccid_where_luhn_is_relaxed);

async fn what_callers_do_not_get(store: Store) {
    let t = setup(store).await;
    let sim = iccid(1);
    assert_eq!(provision(&t.prov, &sim, "GEMALTO").await.status, 201);

    // No credential: 401, before anything is looked at.
    let anon = Api {
        token: None,
        client: t.app.anonymous(),
        ..t.support.clone()
    };
    for path in ["/v1/sim/physical".to_owned(), at(&sim, ""), at("1", "")] {
        let a = anon.get(&path).await;
        assert_problem(&a, 401, "unauthorized", "Unauthorized", &path);
    }
    assert_eq!(provision(&anon, &iccid(2), "X").await.status, 401);

    // Support staff: the inventory fields, no secret and no secret read recorded.
    let inventory = [
        "created_at",
        "iccid",
        "imsi",
        "msisdn",
        "state",
        "updated_at",
        "vendor",
    ];
    let a = t.support.get(&at(&sim, "")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(keys(&a.body), inventory);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert!(secret_reads(&t.app).await.is_empty());
    // With a reason: the PUKs, and only they, each recorded as read with the reason.
    let a = Api::send(
        t.support
            .request(reqwest::Method::GET, &at(&sim, ""))
            .header("X-Simvault-Reason", "TICKET-4711"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let mut with_puks = inventory.to_vec();
    with_puks.extend(["puk1", "puk2"]);
    with_puks.sort_unstable();
    assert_eq!(keys(&a.body), with_puks);
    assert_eq!(
        (&a.body["puk1"], &a.body["puk2"]),
        (&json!(PUK1), &json!(PUK2))
    );
    assert_eq!(
        secret_reads(&t.app).await,
        [(json!(["puk1", "puk2"]), json!("TICKET-4711"))]
    );
    // An operator, or a provisioner without mTLS: no secret at all, nothing recorded.
    let bearer_prov = t.app.jwt_client("acme", &[Role::Provisioner]);
    for api in [&t.operator, &bearer_prov] {
        let a = api.get(&at(&sim, "")).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        assert_eq!(keys(&a.body), inventory);
    }
    assert_eq!(secret_reads(&t.app).await.len(), 1);
    // A reason that is no reason is refused, and reveals nothing.
    let a = Api::send(
        t.support
            .request(reqwest::Method::GET, &at(&sim, ""))
            .header("X-Simvault-Reason", " "),
    )
    .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(secret_reads(&t.app).await.len(), 1);

    // A PUK only with a reason: without one, 400 naming the header, and no attempt spent.
    let unblock = json!({"pin_type": "pin1", "puk": "13572468", "new_pin": "4321"});
    let a = t.support.post(&at(&sim, "/unblock-pin"), &unblock).await;
    assert_problem(
        &a,
        400,
        "validation-error",
        "Invalid Request",
        &at(&sim, "/unblock-pin"),
    );
    assert_eq!(a.body["errors"][0]["pointer"], "/reason");
    let detail = a.body["errors"][0]["detail"].as_str().unwrap();
    assert!(detail.contains("X-Simvault-Reason"), "{detail}");
    let status = t.support.get(&format!("/v1/sims/{sim}")).await.body["pin_status"].clone();
    assert_eq!(status["puk1"]["remaining_attempts"], 10);
    // A wrong PUK with a reason in the body: its counter, never the value tried.
    let mut with_reason = unblock.clone();
    with_reason["reason"] = json!("TICKET-5");
    let a = t
        .support
        .post(&at(&sim, "/unblock-pin"), &with_reason)
        .await;
    assert_problem(&a, 400, "wrong-puk", "Wrong PUK", &at(&sim, "/unblock-pin"));
    assert_eq!(a.body["remaining_attempts"], 9);
    assert!(!a.body.to_string().contains("13572468"), "{:?}", a.body);
    // A wrong PIN.
    let a = t
        .support
        .post(
            &at(&sim, "/reset-pin"),
            &json!({"pin_type": "Pin1", "current_pin": "9999", "new_pin": "4321"}),
        )
        .await;
    assert_problem(&a, 400, "wrong-pin", "Wrong PIN", &at(&sim, "/reset-pin"));
    assert_eq!(a.body["remaining_attempts"], 2);
    // Invalid secrets at provisioning: named, never echoed.
    let mut bad = provisioning(&iccid(2), "GEMALTO");
    bad["ki"] = json!("zz-not-a-ki-zz");
    bad["pin1"] = json!(12);
    let a = t.prov.post("/v1/sim/physical", &bad).await;
    assert_problem(
        &a,
        400,
        "validation-error",
        "Invalid Request",
        "/v1/sim/physical",
    );
    let mut pointers = a.pointers();
    pointers.sort_unstable();
    assert_eq!(pointers, ["/ki", "/pin1"]);
    assert!(!a.body.to_string().contains("zz-not-a-ki-zz"));
    // Provisioning is the provisioners' (as natively).
    assert_eq!(provision(&t.support, &iccid(2), "X").await.status, 403);

    // Another tenant: every route is 404 and changes nothing.
    t.app.tenant("globex").await;
    let roles = [
        Role::Provisioner,
        Role::Support,
        Role::Operator,
        Role::Admin,
    ];
    let stranger = t.app.mtls_api("globex", &roles, "stranger").await;
    let stranger_jwt = t.app.jwt_client("globex", &roles);
    for api in [&stranger, &stranger_jwt] {
        let answers = [
            (at(&sim, ""), api.get(&at(&sim, "")).await),
            (
                at(&sim, "/state"),
                api.patch(&at(&sim, "/state"), &json!({"state": "ACTIVE"}))
                    .await,
            ),
            (
                at(&sim, "/reset-pin"),
                api.post(
                    &at(&sim, "/reset-pin"),
                    &json!({"pin_type": "PIN1", "current_pin": PIN1, "new_pin": "1111"}),
                )
                .await,
            ),
            (
                at(&sim, "/unblock-pin"),
                api.post(&at(&sim, "/unblock-pin"), &with_reason).await,
            ),
            (at(&sim, ""), api.delete(&at(&sim, "")).await),
        ];
        for (path, a) in answers {
            assert_problem(&a, 404, "not-found", "SIM Not Found", &path);
        }
        let list = api.get("/v1/sim/physical").await;
        assert_eq!(list.body["meta"]["total"], 0, "{:?}", list.body);
    }
    let a = t.prov.get(&at(&sim, "")).await;
    assert_eq!(
        (&a.body["state"], &a.body["pin1"]),
        (&json!("INVENTORY"), &json!(PIN1))
    );
    let status = t.support.get(&format!("/v1/sims/{sim}")).await.body["pin_status"].clone();
    assert_eq!(status["puk1"]["remaining_attempts"], 9);
    assert_eq!(status["pin1"]["remaining_attempts"], 2);
    // Every secret shown was recorded, and only those: the support read and this one.
    assert_eq!(
        secret_reads(&t.app).await,
        [
            (json!(["puk1", "puk2"]), json!("TICKET-4711")),
            (
                json!(["pin1", "pin2", "puk1", "puk2", "ki", "opc"]),
                Value::Null
            )
        ]
    );
}
both_stores!(refusals, what_callers_do_not_get);

/// `/openapi.json` documents every route of the profile under the `telco` tag.
async fn documented_under_its_own_tag(store: Store) {
    let t = setup(store).await;
    let doc = t.support.get("/openapi.json").await.body;
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "telco")
    );
    let routes = [
        ("/v1/sim/physical", "get"),
        ("/v1/sim/physical", "post"),
        ("/v1/sim/physical/{iccid}", "get"),
        ("/v1/sim/physical/{iccid}", "delete"),
        ("/v1/sim/physical/{iccid}/state", "patch"),
        ("/v1/sim/physical/{iccid}/reset-pin", "post"),
        ("/v1/sim/physical/{iccid}/unblock-pin", "post"),
    ];
    for (path, method) in routes {
        let op = &doc["paths"][path][method];
        assert_eq!(op["tags"], json!(["telco"]), "{method} {path}");
    }
}
both_stores!(openapi, documented_under_its_own_tag);
