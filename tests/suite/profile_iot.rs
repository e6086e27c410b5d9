//! The `iot` profile at `/iot/v1`, walked along its seed document (IoT platform inventory): the
//! list with every parameter, a SIM's exact fields, bulk link provisioning polled through the
//! profile's tasks, the eSIM installation view and refresh; and what a caller never gets.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

/// The fields of a SIM in this profile, exactly.
const SIM_FIELDS: [&str; 14] = [
    "id",
    "iccid",
    "status",
    "sim_type",
    "is_attached",
    "created_at",
    "updated_at",
    "msisdn",
    "imsi",
    "imei",
    "eid",
    "compatibility_zones",
    "esim_profile_state",
    "link",
];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn iccids(a: &Value) -> Vec<String> {
    a["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls a task through the profile until it is done; returns it.
async fn wait_for_task(api: &Api, id: &str) -> Value {
    let start = std::time::Instant::now();
    loop {
        let a = api.get(&format!("/iot/v1/tasks/{id}")).await;
        assert_eq!(a.status, 200, "{:?}", a.body);
        if a.body["status"] == "completed" || a.body["status"] == "failed" {
            return a.body;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "{:?}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Six SIMs: 1–3 physical in zone eu, 4–5 eSIMs in us, 6 physical in apac; 2 and 4 active,
/// 5 suspended, the rest in inventory.
async fn seed(store: Store) -> (TestApp, Api, Api, Vec<Value>) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let mut sims = Vec::new();
    for n in 1..=6u64 {
        let (zone, sim_type) = match n {
            1..=3 => ("eu", "physical"),
            4 | 5 => ("us", "esim"),
            _ => ("apac", "physical"),
        };
        let mut body = json!({
            "iccid": iccid(n), "imsi": format!("23415{n:010}"), "msisdn": format!("4477009{n:05}"),
            "compatibility_zones": [zone], "sim_type": sim_type,
        });
        if n == 6 {
            body["imei"] = json!("490154203237518");
        }
        if n == 4 {
            body["eid"] = json!("89049032123451234512345678901235");
            body["secrets"] =
                json!({"activation_code": "LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815"});
        }
        sims.push(prov.create_sim(body).await);
    }
    for (n, state) in [
        (2, "active"),
        (4, "active"),
        (5, "active"),
        (5, "suspended"),
    ] {
        let a = operator
            .patch(
                &format!("/v1/sims/{}/state", iccid(n)),
                &json!({"state": state, "reason": "test"}),
            )
            .await;
        assert_eq!(a.status, 200, "{:?}", a.body);
    }
    (app, prov, operator, sims)
}

async fn list_walks_every_parameter(store: Store) {
    let (app, _prov, operator, sims) = seed(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    // "Paginated list of SIMs in your organisation": {items, total, page, page_size, pages};
    // default order most recently updated first.
    let a = support.get("/iot/v1/sims").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        keys(&a.body),
        BTreeSet::from(["items", "total", "page", "page_size", "pages"])
    );
    assert_eq!(
        (
            &a.body["total"],
            &a.body["page"],
            &a.body["page_size"],
            &a.body["pages"]
        ),
        (&json!(6), &json!(1), &json!(20), &json!(1))
    );
    assert_eq!(
        iccids(&a.body)[..1],
        [iccid(5)],
        "the last SIM changed comes first"
    );
    for item in a.body["items"].as_array().unwrap() {
        assert_eq!(keys(item), BTreeSet::from(SIM_FIELDS));
    }
    // page and page_size (1-based); pages at the current page_size.
    let a = support.get("/iot/v1/sims?page=2&page_size=4").await;
    assert_eq!(
        (&a.body["page"], &a.body["page_size"], &a.body["pages"]),
        (&json!(2), &json!(4), &json!(2))
    );
    assert_eq!(a.body["items"].as_array().unwrap().len(), 2);
    // sort_by and sort_order.
    let a = support
        .get("/iot/v1/sims?sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(iccids(&a.body), (1..=6).map(iccid).collect::<Vec<_>>());
    let a = support
        .get("/iot/v1/sims?sort_by=status&sort_order=asc&page_size=1")
        .await;
    assert_eq!(a.body["items"][0]["status"], "active");
    // status: the lifecycle status, repeatable, any case; rendered lower case.
    let a = support
        .get("/iot/v1/sims?status=ACTIVE&sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(iccids(&a.body), [iccid(2), iccid(4)]);
    assert!(
        a.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["status"] == "active")
    );
    let a = support
        .get("/iot/v1/sims?status=active&status=suspended&sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(iccids(&a.body), [iccid(2), iccid(4), iccid(5)]);
    // sim_type (physical or eSIM).
    let a = support
        .get("/iot/v1/sims?sim_type=eSIM&sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(iccids(&a.body), [iccid(4), iccid(5)]);
    // compatibility_zones: repeatable, OR within the filter; AND with the others.
    let a = support
        .get("/iot/v1/sims?compatibility_zones=eu&compatibility_zones=apac&sort_by=iccid&sort_order=asc")
        .await;
    assert_eq!(iccids(&a.body), [iccid(1), iccid(2), iccid(3), iccid(6)]);
    let a = support
        .get("/iot/v1/sims?compatibility_zones=eu&status=active")
        .await;
    assert_eq!(iccids(&a.body), [iccid(2)]);
    // search: case-insensitive substring across id, ICCID, MSISDN, IMSI, (IMEI,) EID.
    let id3 = sims[2]["id"].as_str().unwrap();
    for (term, want) in [
        (iccid(3)[10..].to_owned(), iccid(3)),
        ("447700900003".to_owned(), iccid(3)),
        ("234150000000003".to_owned(), iccid(3)),
        (id3[..13].to_uppercase(), iccid(3)),
        ("8904903212345123".to_owned(), iccid(4)),
        ("49015420323751".to_owned(), iccid(6)),
    ] {
        let a = support.get(&format!("/iot/v1/sims?search={term}")).await;
        assert_eq!(a.status, 200, "{term}: {:?}", a.body);
        assert_eq!(iccids(&a.body), [want], "{term}");
    }
    // for_plan_id: the plan's zones, taking precedence over compatibility_zones.
    let plan = operator
        .post(
            "/v1/plans",
            &json!({"name": "us", "compatibility_zones": ["us"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    let plan = plan.body["id"].as_str().unwrap().to_owned();
    let a = support
        .get(&format!(
            "/iot/v1/sims?for_plan_id={plan}&compatibility_zones=eu&sort_by=iccid&sort_order=asc"
        ))
        .await;
    assert_eq!(iccids(&a.body), [iccid(4), iccid(5)]);
    // Bad input: RFC 7807 naming the profile's parameter; native-only names are unknown here.
    for (query, parameter) in [
        ("status=gone", "status"),
        ("state=active", "state"),
        ("tags=vip", "tags"),
        ("sim_type=sim", "sim_type"),
        ("page=0", "page"),
        ("page_size=251", "page_size"),
        ("sort_order=up", "sort_order"),
        ("for_plan_id=nope", "for_plan_id"),
    ] {
        let a = support.get(&format!("/iot/v1/sims?{query}")).await;
        assert_eq!(a.status, 400, "{query}: {:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
        let named: Vec<&str> = a.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["parameter"].as_str())
            .collect();
        assert_eq!(named, [parameter], "{query}: {:?}", a.body);
    }
    let a = support.get("/iot/v1/sims?status=gone").await;
    assert!(
        a.body["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("status must"),
        "{:?}",
        a.body
    );
}
both_stores!(iot_list, list_walks_every_parameter);

async fn a_sim_and_its_link_status(store: Store) {
    let (app, _prov, operator, sims) = seed(store).await;
    let support = app.jwt_client("acme", &[Role::Support]);
    // "Fetch a single SIM by id within the caller's organisation": exactly the seed's fields.
    let id1 = sims[0]["id"].as_str().unwrap();
    let a = support.get(&format!("/iot/v1/sims/{id1}")).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(keys(&a.body), BTreeSet::from(SIM_FIELDS));
    assert_eq!(a.body["id"], id1);
    assert_eq!(a.body["iccid"], iccid(1));
    assert_eq!(a.body["status"], "inventory");
    assert_eq!(a.body["sim_type"], "physical");
    assert_eq!(a.body["is_attached"], false);
    assert_eq!(a.body["msisdn"], "447700900001");
    assert_eq!(a.body["imsi"], "234150000000001");
    assert_eq!(a.body["compatibility_zones"], json!(["eu"]));
    assert_eq!(a.body["esim_profile_state"], Value::Null);
    assert_eq!(a.body["link"], Value::Null, "not bound");
    // The eSIM shows its EID.
    let a = support.get(&format!("/iot/v1/sims/{}", iccid(4))).await;
    assert_eq!(a.body["eid"], "89049032123451234512345678901235");
    assert_eq!(a.body["sim_type"], "esim");

    // Bulk provisioning: 202 with the task, polled through the profile.
    let ids: Vec<Value> = sims.iter().map(|s| s["id"].clone()).collect();
    let a = operator
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [ids[0], ids[1]], "counter_start": 7}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    for field in [
        "id",
        "type",
        "status",
        "total_items",
        "completed_items",
        "failed_items",
        "pending_items",
        "created_at",
        "updated_at",
    ] {
        assert!(a.body.get(field).is_some(), "{field}: {:?}", a.body);
    }
    assert_eq!(a.body["total_items"], 2);
    let task = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"],
        format!("/iot/v1/tasks/{task}").as_str()
    );
    let done = wait_for_task(&operator, &task).await;
    assert_eq!(
        (
            &done["completed_items"],
            &done["failed_items"],
            &done["pending_items"]
        ),
        (&json!(2), &json!(0), &json!(0))
    );
    // Without plan_ids each link is pre-active, named {name_prefix}_{counter}.
    let a = support
        .get(&format!("/iot/v1/sims/{}", ids[0].as_str().unwrap()))
        .await;
    let link = &a.body["link"];
    assert_eq!(
        keys(link),
        BTreeSet::from(["id", "name", "status", "plan_ids"])
    );
    assert_eq!(link["name"], "fleet_7");
    assert_eq!(link["status"], "pre_active");
    assert_eq!(link["plan_ids"], json!([]));

    // With plans: active. A SIM already linked fails alone; the task keeps processing the rest.
    let plan = operator
        .post(
            "/v1/plans",
            &json!({"name": "eu", "compatibility_zones": ["eu"]}),
        )
        .await
        .body["id"]
        .clone();
    let a = operator
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "live", "sim_ids": [ids[0], ids[2]], "plan_ids": [plan]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let task = a.body["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&operator, &task).await;
    assert_eq!(
        (&done["completed_items"], &done["failed_items"]),
        (&json!(1), &json!(1)),
        "{done:?}"
    );
    let items = operator.get(&format!("/iot/v1/tasks/{task}/items")).await;
    assert_eq!(items.status, 200, "{:?}", items.body);
    let outcomes: Vec<&str> = items.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "succeeded"], "{:?}", items.body);
    let a = support.get(&format!("/iot/v1/sims/{}", iccid(3))).await;
    assert_eq!(a.body["link"]["status"], "active");
    assert_eq!(a.body["link"]["plan_ids"], json!([plan]));
    // sim_ids must be non-empty; duplicates are rejected; nothing is queued.
    let before: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks").fetch_one(p).await.unwrap());
    for body in [
        json!({"name_prefix": "x", "sim_ids": []}),
        json!({"name_prefix": "x", "sim_ids": [ids[5], ids[5]]}),
    ] {
        let a = operator
            .post("/iot/v1/sims/bulk/provision-links", &body)
            .await;
        assert_eq!(a.status, 400, "{body}: {:?}", a.body);
        assert_eq!(a.content_type(), "application/problem+json");
    }
    let after: i64 = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT COUNT(*) FROM tasks").fetch_one(p).await.unwrap());
    assert_eq!(before, after);
    // The native body limit holds here too: a body over the 1 MiB of ordinary bodies is read
    // (and judged: its last id repeats the first), not refused as too large.
    let mut many: Vec<String> = (0..28_000)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    many.push(many[0].clone());
    let a = operator
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "big", "sim_ids": many}),
        )
        .await;
    assert_eq!(a.status, 400, "a 1.1 MB body");
    assert_eq!(a.pointers(), ["/sim_ids/28000"]);

    // The profile is documented under its own tag.
    let doc = operator.get("/openapi.json").await.body;
    for path in [
        "/iot/v1/sims",
        "/iot/v1/sims/{sim_id}",
        "/iot/v1/sims/{sim_id}/esim",
        "/iot/v1/sims/{sim_id}/refresh",
        "/iot/v1/sims/bulk/provision-links",
        "/iot/v1/tasks/{task_id}",
        "/iot/v1/tasks/{task_id}/items",
    ] {
        let ops = doc["paths"][path]
            .as_object()
            .unwrap_or_else(|| panic!("{path}"));
        for op in ops.values() {
            assert_eq!(op["tags"], json!(["iot"]), "{path}");
        }
    }
    assert!(
        doc["tags"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "iot")
    );
}
both_stores!(iot_sim_and_links, a_sim_and_its_link_status);

async fn esim_view_and_refresh(store: Store) {
    let (fake, url) = crate::upstream::upstream().await;
    let app = crate::upstream::app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let code = "LPA:1$SMDP.EXAMPLE.COM$04386-AGYFT-A74Y8-3F815";
    prov.create_sim(
        json!({"iccid": iccid(1), "sim_type": "esim", "secrets": {"activation_code": code}}),
    )
    .await;
    prov.create_sim(json!({"iccid": iccid(2), "msisdn": "447700900123"}))
        .await;
    let support = app.jwt_client("acme", &[Role::Support]);
    // The installation view: the raw code, an inline QR SVG, Android and iOS deeplinks.
    let a = support
        .get(&format!("/iot/v1/sims/{}/esim", iccid(1)))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    assert_eq!(a.body["activation_code"], code);
    assert!(a.body["qr_svg"].as_str().unwrap().starts_with("<svg"));
    assert!(
        a.body["android_deeplink"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    assert!(
        a.body["ios_deeplink"]
            .as_str()
            .unwrap()
            .starts_with("https://")
    );
    // Physical SIMs: all null, not an error.
    let a = support
        .get(&format!("/iot/v1/sims/{}/esim", iccid(2)))
        .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.body,
        json!({"activation_code": null, "qr_svg": null, "android_deeplink": null, "ios_deeplink": null})
    );
    // Every code shown is audited as a read, naming the field and never the code.
    let rows: Vec<(String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT outcome, record FROM audit_events WHERE tenant_id = 'acme' AND action = 'esim.read' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|(o, r)| o == "allowed" && !r.contains("04386-AGYFT"))
    );

    // Refresh: fresh state from upstream, in the profile's shape.
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .post(&format!("/iot/v1/sims/{}/refresh", iccid(2)), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(keys(&a.body), BTreeSet::from(SIM_FIELDS));
    assert_eq!(a.body["is_attached"], true);
    assert_eq!(a.body["imei"], "490154203237518");
    assert_eq!(a.body["esim_profile_state"], "enabled");
    // No data upstream: the SIM as stored, unchanged.
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(2), crate::upstream::Behaviour::NoData);
    let b = operator
        .post(&format!("/iot/v1/sims/{}/refresh", iccid(2)), &json!({}))
        .await;
    assert_eq!(b.status, 200, "{:?}", b.body);
    assert_eq!(b.body["imei"], a.body["imei"]);
    assert_eq!(b.body["updated_at"], a.body["updated_at"]);
    // Upstream failing: refused, as native.
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(2), crate::upstream::Behaviour::Fail);
    let c = operator
        .post(&format!("/iot/v1/sims/{}/refresh", iccid(2)), &json!({}))
        .await;
    assert_eq!(c.status, 502, "{:?}", c.body);
}
both_stores!(iot_esim_and_refresh, esim_view_and_refresh);

async fn refusals_leak_nothing(store: Store) {
    let (app, prov, operator, sims) = seed(store).await;
    app.tenant("other").await;
    let id1 = sims[0]["id"].as_str().unwrap().to_owned();
    let task = operator
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "fleet", "sim_ids": [id1]}),
        )
        .await
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_task(&operator, &task).await;
    // Anonymous: 401 on every route.
    let anon = Api {
        app_base: app.url(""),
        client: app.anonymous(),
        token: None,
    };
    for path in [
        "/iot/v1/sims".to_owned(),
        format!("/iot/v1/sims/{id1}"),
        format!("/iot/v1/sims/{id1}/esim"),
        format!("/iot/v1/tasks/{task}"),
        format!("/iot/v1/tasks/{task}/items"),
    ] {
        let a = anon.get(&path).await;
        assert_eq!(a.status, 401, "{path}");
        assert!(!a.body.to_string().contains(&iccid(1)), "{path}");
    }
    let a = anon
        .post(&format!("/iot/v1/sims/{id1}/refresh"), &json!({}))
        .await;
    assert_eq!(a.status, 401);
    // Another tenant: 404 for the SIM, its eSIM view, its refresh and the task; and an empty list.
    let stranger = app.jwt_client("other", &[Role::Operator]);
    for path in [
        format!("/iot/v1/sims/{id1}"),
        format!("/iot/v1/sims/{}", iccid(4)),
        format!("/iot/v1/sims/{}/esim", iccid(4)),
        format!("/iot/v1/tasks/{task}"),
        format!("/iot/v1/tasks/{task}/items"),
    ] {
        let a = stranger.get(&path).await;
        assert_eq!(a.status, 404, "{path}: {:?}", a.body);
        let body = a.body.to_string();
        assert!(
            !body.contains("8904903212345123") && !body.contains("234150000000004"),
            "{path}: {body}"
        );
    }
    let a = stranger
        .post(&format!("/iot/v1/sims/{id1}/refresh"), &json!({}))
        .await;
    assert_eq!(a.status, 404);
    let a = stranger.get("/iot/v1/sims").await;
    assert_eq!(a.body["total"], 0);
    let a = stranger
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "theirs", "sim_ids": [sims[1]["id"]]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let theirs = a.body["id"].as_str().unwrap().to_owned();
    let done = wait_for_task(&stranger, &theirs).await;
    assert_eq!(
        done["completed_items"], 0,
        "another tenant's SIM is not linked"
    );
    let items = stranger
        .get(&format!("/iot/v1/tasks/{theirs}/items?status=FAILED"))
        .await;
    assert_eq!(items.status, 200, "{:?}", items.body);
    assert_eq!(
        items.body["items"][0]["error"], "no such SIM",
        "exactly as a SIM that does not exist"
    );
    assert_eq!(
        anon.post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "x", "sim_ids": [sims[2]["id"]]}),
        )
        .await
        .status,
        401
    );
    // Secrets never appear in this profile's SIMs, whoever asks; roles are the native ones.
    let secrets =
        json!({"pin1": "2468", "puk1": "97531864", "ki": "00112233445566778899aabbccddeeff"});
    let put = Api::send(
        prov.request(
            reqwest::Method::PUT,
            &format!("/v1/sims/{}/secrets", iccid(2)),
        )
        .json(&secrets),
    )
    .await;
    assert_eq!(put.status, 200, "{:?}", put.body);
    for api in [
        prov.clone(),
        operator.clone(),
        app.jwt_client("acme", &[Role::Support]),
    ] {
        let one = api.get(&format!("/iot/v1/sims/{}", iccid(2))).await;
        let all = api.get("/iot/v1/sims").await;
        for body in [one.body.to_string(), all.body.to_string()] {
            for secret in ["\"2468\"", "97531864", "00112233445566778899aabbccddeeff"] {
                assert!(!body.contains(secret), "{secret} in {body}");
            }
        }
    }
    // Auditors and admins may not see eSIM codes here either; support may not provision links.
    for role in [Role::Auditor, Role::Admin] {
        let a = app
            .jwt_client("acme", &[role])
            .get(&format!("/iot/v1/sims/{}/esim", iccid(4)))
            .await;
        assert_eq!(a.status, 403, "{role:?}");
        assert!(!a.body.to_string().contains("04386-AGYFT"));
    }
    let a = app
        .jwt_client("acme", &[Role::Support])
        .post(
            "/iot/v1/sims/bulk/provision-links",
            &json!({"name_prefix": "x", "sim_ids": [sims[2]["id"]]}),
        )
        .await;
    assert_eq!(a.status, 403);
}
both_stores!(iot_refusals, refusals_leak_nothing);
