//! The `carrier` profile at `/v2`, walking its seed document (001, "Get all SIM cards") line by
//! line: every query parameter with its default and limits, the tag example exactly, every
//! status value and its mapping, sorting both ways, paging through `meta`,
//! `include_sim_card_group` and the error shape; plus one card with its PIN/PUK codes (only
//! those the policy allows, each shown one audited, `no-store`), the groups, anonymous `401`,
//! another tenant's card and group `404`, and the carrier shape for unknown routes and methods.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid};
use crate::upstream::{Behaviour, Fake, app_with, upstream};

const PIN1: &str = "1234";
const PIN2: &str = "5678";
const PUK1: &str = "12345678";
const PUK2: &str = "87654321";

async fn created(api: &Api, path: &str, body: Value) -> String {
    let a = api.post(path, &body).await;
    assert_eq!(a.status, 201, "{path}: {:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

fn report(fake: &Fake, n: u64, body: Value) {
    fake.behaviours
        .lock()
        .unwrap()
        .insert(iccid(n), Behaviour::Data(body));
}

async fn refresh(api: &Api, n: u64) {
    let a = api
        .post(&format!("/v1/sims/{}/refresh", iccid(n)), &json!({}))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
}

async fn set_state(api: &Api, n: u64, state: &str, reason: Option<&str>) {
    let mut body = json!({ "state": state });
    if let Some(r) = reason {
        body["reason"] = json!(r);
    }
    let a = api
        .patch(&format!("/v1/sims/{}/state", iccid(n)), &body)
        .await;
    assert_eq!(a.status, 200, "{state}: {:?}", a.body);
}

/// The ICCIDs of one page of `GET /v2/sim_cards?{query}` (which must answer 200), in order.
async fn listed(api: &Api, query: &str) -> Vec<String> {
    let a = api.get(&format!("/v2/sim_cards?{query}")).await;
    assert_eq!(a.status, 200, "{query}: {:?}", a.body);
    a.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap().to_owned())
        .collect()
}

/// [`listed`], as a set of SIM numbers.
async fn numbers(api: &Api, query: &str) -> BTreeSet<u64> {
    let all: Vec<String> = (1..=20).map(iccid).collect();
    listed(api, query)
        .await
        .into_iter()
        .map(|i| all.iter().position(|a| *a == i).unwrap() as u64 + 1)
        .collect()
}

fn set(ns: &[u64]) -> BTreeSet<u64> {
    ns.iter().copied().collect()
}

/// A carrier error answer: its status, and each entry's `(code, source)`.
fn entries(a: &crate::helpers::Answer) -> Vec<(u64, Value)> {
    assert!(
        a.content_type().starts_with("application/json"),
        "{}",
        a.content_type()
    );
    assert!(a.body.get("type").is_none(), "not a problem document");
    let errors = a.body["errors"].as_array().expect("an errors array");
    assert!(!errors.is_empty());
    let request_id = a.headers["x-request-id"].to_str().unwrap();
    errors
        .iter()
        .map(|e| {
            assert!(e["title"].is_string() && e["detail"].is_string(), "{e}");
            assert_eq!(e["meta"]["request_id"], request_id);
            (
                e["code"].as_u64().unwrap(),
                e.get("source").cloned().unwrap_or(Value::Null),
            )
        })
        .collect()
}

fn bad_parameters(a: &crate::helpers::Answer) -> Vec<String> {
    assert_eq!(a.status, 400, "{:?}", a.body);
    let mut out: Vec<String> = entries(a)
        .into_iter()
        .map(|(code, source)| {
            assert_eq!(code, 10001);
            source["parameter"].as_str().unwrap().to_owned()
        })
        .collect();
    out.sort();
    out
}

/// Seven cards, one or more per status: 1 over its group's data limit, 2 enabled with its own
/// limit, 3 in standby, 4–6 suspended, blocked and retired, 7 enabled in a foreign IMEI.
async fn fleet(store: Store) -> (TestApp, Api, Api, String) {
    let (fake, url) = upstream().await;
    let app = app_with(store, &url, 0).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let fleet = created(
        &operator,
        "/v1/groups",
        json!({"name": "fleet", "data_limit": {"amount": 1, "unit": "GB"}}),
    )
    .await;
    let locked = created(
        &operator,
        "/v1/groups",
        json!({"name": "locked", "imei_lock": true}),
    )
    .await;
    let van = created(
        &operator,
        "/v1/devices",
        json!({"name": "van", "imei": "490154203237518"}),
    )
    .await;
    prov.create_sim(json!({"iccid": iccid(1), "group_id": fleet, "msisdn": "+447700900001", "imsi": "234150000000001", "tags": ["customers", "staff", "test"]}))
        .await;
    prov.create_sim(json!({"iccid": iccid(2), "msisdn": "+447700900002", "tags": ["test"]}))
        .await;
    prov.create_sim(json!({"iccid": iccid(3), "msisdn": "15550003333", "tags": ["customers"]}))
        .await;
    for n in 4..=6 {
        prov.create_sim(json!({"iccid": iccid(n)})).await;
    }
    prov.create_sim(json!({"iccid": iccid(7), "group_id": locked, "device_id": van}))
        .await;
    for n in [1, 2, 4, 5, 7] {
        set_state(&operator, n, "active", None).await;
    }
    set_state(&operator, 4, "suspended", Some("unpaid")).await;
    set_state(&operator, 5, "blocked", None).await;
    set_state(&operator, 6, "retired", Some("lost")).await;
    report(
        &fake,
        1,
        json!({"consumed_data": {"amount": 1.5, "unit": "GB"}}),
    );
    report(
        &fake,
        2,
        json!({"consumed_data": {"amount": 512.5, "unit": "MB"}}),
    );
    report(
        &fake,
        7,
        json!({"imei": "356938035643809", "consumed_data": {"amount": 100, "unit": "MB"}}),
    );
    for n in [1, 2, 7] {
        refresh(&operator, n).await;
    }
    let p = operator
        .patch(
            &format!("/v1/sims/{}", iccid(2)),
            &json!({"data_limit": {"amount": 2, "unit": "GB"}}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    (app, prov, operator, fleet)
}

async fn list_walks_the_seed(store: Store) {
    let (_app, _prov, operator, fleet) = fleet(store).await;

    // "Get all SIM cards belonging to the user": {data, meta}, defaults page 1 of 20.
    let a = operator.get("/v2/sim_cards").await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["meta"],
        json!({"total_pages": 1, "total_results": 7, "page_number": 1, "page_size": 20})
    );
    assert_eq!(a.headers["cache-control"], "no-store");
    let cards = a.body["data"].as_array().unwrap();
    assert_eq!(cards.len(), 7);
    let card = |n: u64| {
        cards
            .iter()
            .find(|c| c["iccid"] == iccid(n))
            .unwrap()
            .clone()
    };

    // The card's fields, exactly.
    let two = card(2);
    let keys: BTreeSet<&str> = two
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "id",
            "record_type",
            "status",
            "type",
            "iccid",
            "imsi",
            "msisdn",
            "sim_card_group_id",
            "tags",
            "data_limit",
            "current_billing_period_consumed_data",
            "actions_in_progress",
            "eid",
            "current_imei",
            "authorized_imeis",
            "created_at",
            "updated_at"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(two["record_type"], "sim_card");
    assert_eq!(two["type"], "physical");
    assert_eq!(two["msisdn"], "+447700900002");
    assert_eq!(two["tags"], json!(["test"]));
    assert_eq!(two["data_limit"], json!({"amount": "2", "unit": "GB"}));
    assert_eq!(
        two["current_billing_period_consumed_data"],
        json!({"amount": "512.5", "unit": "MB"})
    );
    assert_eq!(two["actions_in_progress"], false);
    assert!(two["sim_card_group_id"].is_null());
    assert!(two["created_at"].as_str().unwrap().ends_with('Z'));
    let one = card(1);
    assert_eq!(one["sim_card_group_id"], fleet.as_str());
    assert_eq!(one["imsi"], "234150000000001");
    assert!(one["data_limit"].is_null(), "its own limit: none");
    assert_eq!(
        one["current_billing_period_consumed_data"],
        json!({"amount": "1500", "unit": "MB"})
    );
    assert_eq!(
        card(3)["current_billing_period_consumed_data"],
        json!({"amount": "0", "unit": "MB"})
    );
    assert_eq!(card(7)["current_imei"], "356938035643809");

    // Every status value and its mapping; the transitional ones are never produced.
    let status = |n: u64| card(n)["status"].clone();
    assert_eq!(status(1)["value"], "data_limit_exceeded");
    assert!(status(1)["reason"].as_str().unwrap().contains("data limit"));
    assert_eq!(status(2), json!({"value": "enabled", "reason": null}));
    assert_eq!(status(3), json!({"value": "standby", "reason": null}));
    assert_eq!(
        status(4),
        json!({"value": "disabled", "reason": "suspended: unpaid"})
    );
    assert_eq!(status(5), json!({"value": "disabled", "reason": "blocked"}));
    assert_eq!(
        status(6),
        json!({"value": "disabled", "reason": "retired: lost"})
    );
    assert_eq!(status(7)["value"], "enabled", "a foreign IMEI is no status");

    // filter[status]: any of, comma-separated, repeated or as filter[status][], any case.
    let by = |q: &'static str| numbers(&operator, q);
    assert_eq!(by("filter[status]=enabled").await, set(&[2, 7]));
    assert_eq!(by("filter[status]=disabled").await, set(&[4, 5, 6]));
    assert_eq!(by("filter[status]=standby").await, set(&[3]));
    assert_eq!(by("filter[status]=data_limit_exceeded").await, set(&[1]));
    assert_eq!(by("filter[status]=unauthorized_imei").await, set(&[7]));
    assert_eq!(by("filter[status]=enabled,standby").await, set(&[2, 3, 7]));
    assert_eq!(
        by("filter[status]=enabled&filter[status]=standby").await,
        set(&[2, 3, 7])
    );
    assert_eq!(
        by("filter%5Bstatus%5D%5B%5D=STANDBY&filter%5Bstatus%5D%5B%5D=Data_Limit_Exceeded").await,
        set(&[1, 3])
    );
    let bad = operator.get("/v2/sim_cards?filter[status]=enabling").await;
    assert_eq!(bad_parameters(&bad), ["filter[status]"]);

    // filter[sim_card_group_id]: a valid group id.
    let q = format!("filter[sim_card_group_id]={fleet}");
    assert_eq!(numbers(&operator, &q).await, set(&[1]));
    let q = format!("filter[sim_card_group_id]={}", uuid::Uuid::new_v4());
    assert!(listed(&operator, &q).await.is_empty());
    let bad = operator
        .get("/v2/sim_cards?filter[sim_card_group_id]=fleet")
        .await;
    assert_eq!(bad_parameters(&bad), ["filter[sim_card_group_id]"]);

    // filter[iccid] and filter[msisdn]: partial matches.
    let q = format!("filter[iccid]={}", &iccid(3)[12..]);
    assert_eq!(numbers(&operator, &q).await, set(&[3]));
    assert_eq!(by("filter[iccid]=8944").await.len(), 7);
    assert_eq!(by("filter[msisdn]=7700900").await, set(&[1, 2]));
    assert_eq!(by("filter[msisdn]=15550003333").await, set(&[3]));
    assert_eq!(by("filter[msisdn]=%2B4477").await, set(&[1, 2]));
    let bad = operator
        .get("/v2/sim_cards?filter[iccid]=89x&filter[msisdn]=x")
        .await;
    assert_eq!(bad_parameters(&bad), ["filter[iccid]", "filter[msisdn]"]);

    // Filters combine.
    assert_eq!(
        by("filter[tags]=test&filter[status]=enabled").await,
        set(&[2])
    );

    // sort: consumed data, ascending, or descending with "-" (cards never reported last).
    let reported = |v: Vec<String>| -> Vec<String> {
        v.into_iter()
            .filter(|i| [iccid(1), iccid(2), iccid(7)].contains(i))
            .collect()
    };
    let asc = listed(
        &operator,
        "sort=current_billing_period_consumed_data.amount",
    )
    .await;
    assert_eq!(reported(asc.clone()), [iccid(7), iccid(2), iccid(1)]);
    assert_eq!(asc.len(), 7);
    let desc = listed(
        &operator,
        "sort=-current_billing_period_consumed_data.amount",
    )
    .await;
    assert_eq!(reported(desc.clone()), [iccid(1), iccid(2), iccid(7)]);
    assert_eq!(&desc[..3], [iccid(1), iccid(2), iccid(7)]);
    let bad = operator.get("/v2/sim_cards?sort=iccid").await;
    assert_eq!(bad_parameters(&bad), ["sort"]);

    // page[number] ≥ 1, page[size] 1–250: a client pages through meta.
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let a = operator
            .get(&format!("/v2/sim_cards?page[size]=3&page[number]={page}"))
            .await;
        assert_eq!(a.status, 200);
        assert_eq!(a.body["meta"]["total_results"], 7);
        assert_eq!(a.body["meta"]["total_pages"], 3);
        assert_eq!(a.body["meta"]["page_number"], page);
        assert_eq!(a.body["meta"]["page_size"], 3);
        for c in a.body["data"].as_array().unwrap() {
            seen.push(c["iccid"].as_str().unwrap().to_owned());
        }
        if page >= a.body["meta"]["total_pages"].as_u64().unwrap() {
            break;
        }
        page += 1;
    }
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<BTreeSet<_>>().len(), 7);
    let past = operator.get("/v2/sim_cards?page[number]=9").await;
    assert_eq!(past.body["data"], json!([]));
    assert_eq!(past.body["meta"]["page_number"], 9);
    assert_eq!(
        operator.get("/v2/sim_cards?page[size]=250").await.status,
        200
    );
    for q in ["page[size]=251", "page[size]=0", "page[size]=x"] {
        let a = operator.get(&format!("/v2/sim_cards?{q}")).await;
        assert_eq!(bad_parameters(&a), ["page[size]"], "{q}");
    }
    for q in ["page[number]=0", "page[number]=-1"] {
        let a = operator.get(&format!("/v2/sim_cards?{q}")).await;
        assert_eq!(bad_parameters(&a), ["page[number]"], "{q}");
    }

    // include_sim_card_group: the group object when present, null when in none.
    let a = operator
        .get("/v2/sim_cards?include_sim_card_group=true&page[size]=250")
        .await;
    assert_eq!(a.status, 200);
    for c in a.body["data"].as_array().unwrap() {
        if c["iccid"] == iccid(1) {
            assert_eq!(c["sim_card_group"]["id"], fleet.as_str());
            assert_eq!(c["sim_card_group"]["record_type"], "sim_card_group");
            assert_eq!(
                c["sim_card_group"]["data_limit"],
                json!({"amount": "1", "unit": "GB"})
            );
        } else if c["iccid"] == iccid(2) {
            assert!(c["sim_card_group"].is_null());
            assert!(c.as_object().unwrap().contains_key("sim_card_group"));
        }
    }
    let plain = operator
        .get("/v2/sim_cards?include_sim_card_group=false")
        .await;
    assert!(
        plain.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("sim_card_group").is_none())
    );
    let bad = operator
        .get("/v2/sim_cards?include_sim_card_group=yes")
        .await;
    assert_eq!(bad_parameters(&bad), ["include_sim_card_group"]);

    // Unknown parameters (the native ones included): one entry each.
    let bad = operator
        .get("/v2/sim_cards?page=1&state=active&filter[status]=gone")
        .await;
    assert_eq!(bad_parameters(&bad), ["filter[status]", "page", "state"]);
}
both_stores!(list_walk, list_walks_the_seed);

/// The seed's tag example, exactly: three cards, and what each search finds.
async fn tags_example_from_the_seed(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for (n, tags) in [
        (1, json!(["customers", "staff", "test"])),
        (2, json!(["test"])),
        (3, json!(["customers"])),
    ] {
        prov.create_sim(json!({"iccid": iccid(n), "tags": tags}))
            .await;
    }
    let support = app.jwt_client("acme", &[Role::Support]);
    for (query, want) in [
        // "Searching for ['customers', 'test'] returns only the first"
        ("filter[tags]=customers,test", set(&[1])),
        ("filter[tags]=customers&filter[tags]=test", set(&[1])),
        (
            "filter%5Btags%5D%5B%5D=customers&filter%5Btags%5D%5B%5D=test",
            set(&[1]),
        ),
        // "Searching for ['test'] returns the first two SIMs"
        ("filter[tags]=test", set(&[1, 2])),
        ("filter%5Btags%5D%5B%5D=test", set(&[1, 2])),
        // "Searching for ['customers'] returns the first and last SIMs"
        ("filter[tags]=customers", set(&[1, 3])),
        ("filter[tags]=staff,customers,test", set(&[1])),
        ("filter[tags]=nobody", set(&[])),
    ] {
        assert_eq!(numbers(&support, query).await, want, "{query}");
    }
    let bad = support.get("/v2/sim_cards?filter[tags]=").await;
    assert_eq!(bad_parameters(&bad), ["filter[tags]"]);
}
both_stores!(tags_example, tags_example_from_the_seed);

/// `(fields, reason)` of each allowed secret read of the tenant's chain, in order.
async fn secret_reads(app: &TestApp) -> Vec<(Value, Value)> {
    crate::helpers::chain_records(&app.test_db.db, "acme")
        .await
        .into_iter()
        .filter(|(a, o, _)| a == "secrets.read" && o == "allowed")
        .map(|(_, _, r)| (r["fields"].clone(), r["reason"].clone()))
        .collect()
}

async fn one_card_and_its_codes(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("rival").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let group = created(&operator, "/v1/groups", json!({"name": "fleet"})).await;
    let sim = prov
        .create_sim(json!({
            "iccid": iccid(1), "group_id": group,
            "secrets": {"pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2}
        }))
        .await;
    let id = sim["id"].as_str().unwrap().to_owned();
    let path = format!("/v2/sim_cards/{id}");

    // One card: {data}, with its group when asked; by id or ICCID.
    let a = operator.get(&path).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["data"]["id"], id.as_str());
    assert_eq!(a.body["data"]["status"]["value"], "standby");
    assert!(a.body["data"].get("pin_puk_codes").is_none());
    assert!(a.body["data"].get("sim_card_group").is_none());
    let a = operator
        .get(&format!(
            "/v2/sim_cards/{}?include_sim_card_group=TRUE",
            iccid(1)
        ))
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.body["data"]["sim_card_group"]["id"], group.as_str());
    assert_eq!(a.body["data"]["sim_card_group"]["name"], "fleet");

    // PIN/PUK codes: only those this caller may read, absent otherwise; no-store.
    let codes = format!("{path}?include_pin_puk_codes=true");
    let a = prov.get(&codes).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["data"]["pin_puk_codes"],
        json!({"pin1": PIN1, "pin2": PIN2, "puk1": PUK1, "puk2": PUK2})
    );
    assert_eq!(a.headers["cache-control"], "no-store");

    let support = app.jwt_client("acme", &[Role::Support]);
    let a = support.get(&codes).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["data"]["pin_puk_codes"],
        json!({}),
        "no reason: no PUK"
    );
    let text = a.body.to_string();
    for secret in [PIN1, PIN2, PUK1, PUK2] {
        assert!(!text.contains(secret));
    }
    let a = Api::send(
        support
            .request(reqwest::Method::GET, &codes)
            .header("X-Simvault-Reason", "TICKET-7"),
    )
    .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(
        a.body["data"]["pin_puk_codes"],
        json!({"puk1": PUK1, "puk2": PUK2}),
        "a support token never receives PINs"
    );
    assert_eq!(a.headers["cache-control"], "no-store");
    let a = operator.get(&codes).await;
    assert_eq!(a.body["data"]["pin_puk_codes"], json!({}));
    let a = operator
        .get(&format!("{path}?include_pin_puk_codes=false"))
        .await;
    assert!(a.body["data"].get("pin_puk_codes").is_none());

    // Every code shown is one audited secret read; nothing shown, nothing recorded.
    assert_eq!(
        secret_reads(&app).await,
        vec![
            (json!(["pin1", "pin2", "puk1", "puk2"]), Value::Null),
            (json!(["puk1", "puk2"]), json!("TICKET-7")),
        ]
    );

    let bad = support
        .get(&format!("{codes}&include_sim_card_group=1&reason=x&ki=1"))
        .await;
    assert_eq!(
        bad_parameters(&bad),
        ["include_sim_card_group", "ki", "reason"]
    );
    assert!(!bad.body.to_string().contains(PUK1));

    // Another tenant's card and group: 404, in the carrier's shape, nothing revealed.
    let rival = app.mtls_api("rival", &[Role::Provisioner], "rprov").await;
    for p in [
        path.clone(),
        codes.clone(),
        format!("/v2/sim_cards/{}", iccid(1)),
        format!("/v2/sim_card_groups/{group}"),
    ] {
        let a = rival.get(&p).await;
        assert_eq!(a.status, 404, "{p}: {:?}", a.body);
        assert_eq!(entries(&a)[0].0, 10012);
        assert!(!a.body.to_string().contains(PIN1));
    }
    assert_eq!(secret_reads(&app).await.len(), 2);
    assert_eq!(operator.get("/v2/sim_cards/not-a-sim").await.status, 404);
}
both_stores!(one_card, one_card_and_its_codes);

async fn groups_are_listed_and_read(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = created(
        &operator,
        "/v1/groups",
        json!({"name": "a", "data_limit": {"amount": 512.5, "unit": "MB"}}),
    )
    .await;
    for name in ["b", "c"] {
        created(&operator, "/v1/groups", json!({ "name": name })).await;
    }
    let support = app.jwt_client("acme", &[Role::Support]);
    let first = support.get("/v2/sim_card_groups").await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(
        first.body["meta"],
        json!({"total_pages": 1, "total_results": 3, "page_number": 1, "page_size": 20})
    );
    let p1 = support
        .get("/v2/sim_card_groups?page[size]=2&page[number]=1")
        .await;
    let p2 = support
        .get("/v2/sim_card_groups?page[size]=2&page[number]=2")
        .await;
    assert_eq!(p1.body["meta"]["total_pages"], 2);
    assert_eq!(p1.body["data"].as_array().unwrap().len(), 2);
    assert_eq!(p2.body["data"].as_array().unwrap().len(), 1);

    let one = support.get(&format!("/v2/sim_card_groups/{a}")).await;
    assert_eq!(one.status, 200, "{:?}", one.body);
    let g = &one.body["data"];
    let keys: BTreeSet<&str> = g.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "id",
            "record_type",
            "name",
            "data_limit",
            "default",
            "created_at",
            "updated_at"
        ]
        .into_iter()
        .collect()
    );
    assert_eq!(g["record_type"], "sim_card_group");
    assert_eq!(g["name"], "a");
    assert_eq!(g["data_limit"], json!({"amount": "512.5", "unit": "MB"}));
    assert_eq!(g["default"], false);
    assert_eq!(p1.body["data"][0], *g, "the list shows the same group");

    let bad = support
        .get("/v2/sim_card_groups?page[size]=251&page=2")
        .await;
    assert_eq!(bad_parameters(&bad), ["page", "page[size]"]);
    for p in [
        format!("/v2/sim_card_groups/{}", uuid::Uuid::new_v4()),
        "/v2/sim_card_groups/fleet".to_owned(),
    ] {
        let a = support.get(&p).await;
        assert_eq!(a.status, 404);
        assert_eq!(entries(&a)[0].0, 10012);
    }
}
both_stores!(groups, groups_are_listed_and_read);

/// Every error under /v2 is in the carrier's shape: the extractor's 401, an unknown route's
/// 404, a wrong method's 405; the request id is kept.
async fn every_error_takes_the_carrier_shape(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let anonymous = Api {
        app_base: app.url(""),
        client: app.anonymous(),
        token: None,
    };
    for path in [
        "/v2/sim_cards",
        "/v2/sim_card_groups",
        "/v2/sim_cards/8944000000000000001",
    ] {
        let a = anonymous.get(path).await;
        assert_eq!(a.status, 401, "{path}");
        assert_eq!(entries(&a), [(10010, Value::Null)], "{path}");
        assert!(a.body.get("data").is_none());
        assert_eq!(a.headers["www-authenticate"], "Bearer");
    }
    let a = Api::send(
        anonymous
            .request(reqwest::Method::GET, "/v2/sim_cards")
            .header("X-Request-Id", "carrier-req-1"),
    )
    .await;
    assert_eq!(a.headers["x-request-id"], "carrier-req-1");
    assert_eq!(a.body["errors"][0]["meta"]["request_id"], "carrier-req-1");

    let forged = Api {
        token: Some("not.a.token".into()),
        ..anonymous.clone()
    };
    let a = forged.get("/v2/sim_cards").await;
    assert_eq!((a.status, entries(&a)[0].0), (401, 10010));

    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator.get("/v2/nothing_here").await;
    assert_eq!((a.status, entries(&a)[0].0), (404, 10012));
    let a = operator.post("/v2/sim_cards", &json!({})).await;
    assert_eq!((a.status, entries(&a)[0].0), (405, 10013));
    let a = operator.delete("/v2/sim_card_groups").await;
    assert_eq!((a.status, entries(&a)[0].0), (405, 10013));

    // The native API keeps its own problem documents.
    let a = anonymous.get("/v1/sims").await;
    assert_eq!(a.status, 401);
    assert_eq!(a.content_type(), "application/problem+json");
    assert!(a.body["type"].is_string());
}
both_stores!(error_shape, every_error_takes_the_carrier_shape);

/// The profile is documented under its own tag, with its error codes.
async fn documented_under_its_tag(store: Store) {
    let app = TestApp::spawn(store).await;
    let doc: Value = app
        .anonymous()
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v2/sim_cards",
        "/v2/sim_cards/{id}",
        "/v2/sim_card_groups",
        "/v2/sim_card_groups/{id}",
    ] {
        assert_eq!(
            doc["paths"][path]["get"]["tags"],
            json!(["carrier"]),
            "{path}"
        );
    }
    let tag = doc["tags"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "carrier")
        .expect("the carrier tag");
    let description = tag["description"].as_str().unwrap();
    for code in ["10001", "10010", "10012", "10099"] {
        assert!(description.contains(code), "{code}");
    }
}
both_stores!(openapi, documented_under_its_tag);
