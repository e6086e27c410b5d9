//! `GET /v1/sims`: every filter, sort and paging rule.

use std::collections::HashSet;

use serde_json::{Value, json};
use simvault::domain::{Role, SimState};
use simvault::store::sims::{self as repo, SimKey};

use crate::helpers::tenant_id;
use crate::helpers::{Api, Store, TestApp, both_stores, iccid};

const N: u64 = 25;

fn state_of(n: u64) -> SimState {
    match n % 4 {
        0 => SimState::Active,
        1 => SimState::Suspended,
        2 => SimState::Inventory,
        _ => SimState::Retired,
    }
}

/// 25 SIMs with attributes derived from their number.
async fn seed(store: Store) -> (TestApp, Api, Vec<Value>) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let g1 = app
        .jwt_client("acme", &[Role::Operator])
        .post("/v1/groups", &json!({"name": "g1"}))
        .await;
    assert_eq!(g1.status, 201, "{:?}", g1.body);
    let g1 = g1.body["id"].as_str().unwrap().to_owned();
    let mut sims = Vec::new();
    for n in 1..=N {
        let mut tags = Vec::new();
        if n % 2 == 0 {
            tags.push("even");
        }
        if n % 3 == 0 {
            tags.push("three");
        }
        let zone = ["eu", "us", "apac"][(n % 3) as usize];
        let body = json!({
            "iccid": iccid(n), "imsi": format!("23415{n:010}"), "msisdn": format!("4477009{n:05}"),
            "vendor": if n % 2 == 0 { "GEMALTO" } else { "IDEMIA" },
            "tags": tags, "compatibility_zones": [zone],
            "group_id": if n <= 10 { Some(g1.as_str()) } else { None },
            "sim_type": if n % 5 == 0 { "esim" } else { "physical" },
        });
        sims.push(prov.create_sim(body).await);
    }
    // States move through the lifecycle endpoint once it exists; set them in the store here.
    let integrity = app.services.core.keyring.integrity().unwrap();
    for (i, sim) in sims.iter_mut().enumerate() {
        let n = i as u64 + 1;
        let id: simvault::domain::SimId = sim["id"].as_str().unwrap().parse().unwrap();
        let mut tx = app.test_db.db.begin().await.unwrap();
        let mut s = repo::get_for_update(&mut tx, &integrity, &tenant_id("acme"), &SimKey::Id(id))
            .await
            .unwrap()
            .unwrap();
        s.state = state_of(n);
        repo::update(&mut tx, &integrity, &s).await.unwrap();
        tx.commit().await.unwrap();
        sim["state"] = json!(state_of(n).as_str());
    }
    // Another tenant's SIMs never show up.
    app.tenant("other").await;
    let other = app
        .mtls_api("other", &[Role::Provisioner], "other-prov")
        .await;
    other
        .create_sim(json!({"iccid": iccid(100), "tags": ["even"], "compatibility_zones": ["eu"]}))
        .await;
    let reader = app.jwt_client("acme", &[Role::Support]);
    (app, reader, sims)
}

fn numbers(page: &Value) -> Vec<u64> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["iccid"].as_str().unwrap()[4..18].parse().unwrap())
        .collect()
}

async fn matching(api: &Api, query: &str) -> Vec<u64> {
    let a = api.get(&format!("/v1/sims?page_size=250&{query}")).await;
    assert_eq!(a.status, 200, "{query}: {:?}", a.body);
    assert_eq!(
        a.body["total"].as_u64().unwrap() as usize,
        a.body["items"].as_array().unwrap().len()
    );
    let mut n = numbers(&a.body);
    n.sort_unstable();
    n
}

fn expect(pred: impl Fn(u64) -> bool) -> Vec<u64> {
    (1..=N).filter(|n| pred(*n)).collect()
}

async fn paging_arithmetic(store: Store) {
    let (_app, api, _) = seed(store).await;
    let first = api.get("/v1/sims").await;
    assert_eq!(first.body["total"], 25);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["page_size"], 20);
    assert_eq!(first.body["pages"], 2);
    assert_eq!(first.body["items"].as_array().unwrap().len(), 20);
    let second = api.get("/v1/sims?page=2").await;
    assert_eq!(second.body["items"].as_array().unwrap().len(), 5);
    let beyond = api.get("/v1/sims?page=3").await;
    assert_eq!(beyond.status, 200);
    assert_eq!(beyond.body["items"], json!([]));
    assert_eq!(beyond.body["total"], 25);

    // Every sort, both directions, small pages: pages never overlap and cover everything,
    // even where many SIMs share the sort key (state, vendor-like ties broken by id).
    for sort in [
        "created_at",
        "updated_at",
        "iccid",
        "imsi",
        "msisdn",
        "state",
    ] {
        for order in ["asc", "desc"] {
            let mut seen = Vec::new();
            for page in 1..=4 {
                let a = api
                    .get(&format!(
                        "/v1/sims?sort_by={sort}&sort_order={order}&page_size=7&page={page}"
                    ))
                    .await;
                assert_eq!(a.body["pages"], 4);
                seen.extend(numbers(&a.body));
            }
            let unique: HashSet<_> = seen.iter().collect();
            assert_eq!(seen.len(), 25, "{sort} {order}");
            assert_eq!(unique.len(), 25, "{sort} {order}: pages overlap");
        }
    }
    // Sorting by ICCID really sorts.
    let asc = api
        .get("/v1/sims?sort_by=iccid&sort_order=asc&page_size=250")
        .await;
    assert_eq!(numbers(&asc.body), (1..=N).collect::<Vec<_>>());
    let desc = api
        .get("/v1/sims?sort_by=imsi&sort_order=desc&page_size=5")
        .await;
    assert_eq!(numbers(&desc.body), vec![25, 24, 23, 22, 21]);
    let by_state = api
        .get("/v1/sims?sort_by=state&sort_order=asc&page_size=250")
        .await;
    let states: Vec<&str> = by_state.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["state"].as_str().unwrap())
        .collect();
    let mut sorted = states.clone();
    sorted.sort_unstable();
    assert_eq!(states, sorted);
    // With a search, past the last page: still the right total.
    let past = api.get("/v1/sims?search=44770090&page=9").await;
    assert_eq!(past.body["items"], json!([]));
    assert_eq!(past.body["total"], 25);
    let searched = api
        .get("/v1/sims?search=44770090&page=2&page_size=10")
        .await;
    assert_eq!(searched.body["total"], 25);
    assert_eq!(searched.body["pages"], 3);
    assert_eq!(searched.body["items"].as_array().unwrap().len(), 10);
    // Default order: most recently updated first.
    let recent = api.get("/v1/sims?page_size=1").await;
    assert_eq!(numbers(&recent.body), vec![25]);
}
both_stores!(paging, paging_arithmetic);

async fn every_filter(store: Store) {
    let (app, api, sims) = seed(store).await;
    assert_eq!(matching(&api, "state=active").await, expect(|n| n % 4 == 0));
    assert_eq!(
        matching(&api, "state=active&state=retired").await,
        expect(|n| n % 4 == 0 || n % 4 == 3)
    );
    assert_eq!(
        matching(&api, "sim_type=esim").await,
        expect(|n| n % 5 == 0)
    );
    assert_eq!(matching(&api, "tags=even").await, expect(|n| n % 2 == 0));
    assert_eq!(
        matching(&api, "tags=even&tags=three").await,
        expect(|n| n % 6 == 0)
    );
    assert_eq!(matching(&api, "tags=nothing").await, Vec::<u64>::new());
    assert_eq!(
        matching(&api, "compatibility_zones=eu").await,
        expect(|n| n % 3 == 0)
    );
    assert_eq!(
        matching(&api, "compatibility_zones=eu&compatibility_zones=us").await,
        expect(|n| n % 3 != 2)
    );
    // The group's name finds its SIMs as its id does (as the free-text label did).
    assert_eq!(matching(&api, "group_id=g1").await, expect(|n| n <= 10));
    let g1 = sims[0]["group_id"].as_str().unwrap().to_owned();
    assert_eq!(
        matching(&api, &format!("group_id={g1}")).await,
        expect(|n| n <= 10)
    );
    assert_eq!(matching(&api, "group_id=g2").await, Vec::<u64>::new());
    assert_eq!(
        matching(&api, "vendor=IDEMIA").await,
        expect(|n| n % 2 == 1)
    );
    // Filters combine with AND.
    assert_eq!(
        matching(&api, "vendor=GEMALTO&state=active&compatibility_zones=eu").await,
        expect(|n| n % 2 == 0 && n % 4 == 0 && n % 3 == 0)
    );
    // ICCID substring, served by the trigram index (3+ characters) or a scan (shorter).
    assert_eq!(
        matching(&api, &format!("iccid={}", &iccid(13)[8..18])).await,
        vec![13]
    );
    assert_eq!(matching(&api, "iccid=89").await, expect(|_| true));
    // search: id, ICCID, MSISDN, IMSI, IMEI, EID; case-insensitive.
    let id13 = sims[12]["id"].as_str().unwrap();
    assert_eq!(
        matching(&api, &format!("search={}", id13[..13].to_uppercase())).await,
        vec![13]
    );
    assert_eq!(matching(&api, "search=447700900013").await, vec![13]);
    assert_eq!(matching(&api, "search=234150000000017").await, vec![17]);
    assert_eq!(matching(&api, "search=00013").await, vec![13]);
    assert!(matching(&api, "search=13").await.contains(&13));
    assert_eq!(matching(&api, "search=zzz").await, Vec::<u64>::new());
    assert_eq!(matching(&api, "search=%25").await, Vec::<u64>::new());
    assert_eq!(matching(&api, "search=%22").await, Vec::<u64>::new());
    // for_plan_id: the plan's zones win over compatibility_zones.
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let plan = operator
        .post(
            "/v1/plans",
            &json!({"name": "asia", "compatibility_zones": ["apac"]}),
        )
        .await
        .body;
    let q = format!(
        "for_plan_id={}&compatibility_zones=eu",
        plan["id"].as_str().unwrap()
    );
    assert_eq!(matching(&api, &q).await, expect(|n| n % 3 == 2));
    let empty = operator
        .post("/v1/plans", &json!({"name": "none"}))
        .await
        .body;
    assert_eq!(
        matching(
            &api,
            &format!("for_plan_id={}", empty["id"].as_str().unwrap())
        )
        .await,
        Vec::<u64>::new()
    );
    let a = api
        .get("/v1/sims?for_plan_id=00000000-0000-4000-8000-000000000000")
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.body["errors"][0]["parameter"], "for_plan_id");
}
both_stores!(filters, every_filter);

async fn bad_list_parameters_are_all_reported(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let api = app.jwt_client("acme", &[Role::Support]);
    let a = api.get("/v1/sims?page=0&page_size=251&sort_by=ki&sort_order=sideways&state=lost&sim_type=usb&iccid=abc&bogus=1").await;
    assert_eq!(a.status, 400);
    assert_eq!(a.content_type(), "application/problem+json");
    let params: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    for p in [
        "page",
        "page_size",
        "sort_by",
        "sort_order",
        "state",
        "sim_type",
        "iccid",
        "bogus",
    ] {
        assert!(params.contains(&p), "{p} not reported in {params:?}");
    }
    assert_eq!(api.get("/v1/sims?page_size=250").await.status, 200);
    assert_eq!(api.get("/v1/sims?page_size=0").await.status, 400);
    assert_eq!(api.get("/v1/sims?page=2&page=3").await.status, 400);
}
both_stores!(list_validation, bad_list_parameters_are_all_reported);
