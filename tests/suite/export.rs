//! `GET /v1/sims/export` and `simvault export`: the whole filtered inventory, streamed, with no
//! secret and no PIN/PUK counter, CSV cells defused, one audit record naming the filters and
//! the count (written before any row is sent), operators and administrators only, one tenant.

use std::collections::{BTreeSet, HashSet};

use serde_json::{Value, json};
use simvault::clock::{Clock, SystemClock};
use simvault::domain::{Iccid, Imsi, LuhnPolicy, Msisdn, Role, SimInput, SimState, SimType};
use simvault::store::sims as repo;

use crate::helpers::{Api, Store, TestApp, both_stores, chain_records, iccid, raw_sql, tenant_id};

const CANARY_KI: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
const CANARY_OPC: &str = "deadbeefdeadbeefdeadbeefdeadbeef";
const CANARY_PIN: &str = "97531864";
const CANARY_PUK: &str = "13579246";

fn state_of(n: u64) -> SimState {
    match n % 4 {
        0 => SimState::Active,
        1 => SimState::Suspended,
        2 => SimState::Inventory,
        _ => SimState::Retired,
    }
}

fn msisdn(n: u64) -> String {
    format!("4477{n:08}")
}

/// SIMs `range` of `tenant`, straight through the store (the API would take minutes for
/// thousands): SIM `n` is in state [`state_of`]`(n)`, tagged `even` (even `n`) and `three`
/// (`n` divisible by 3), of vendor GEMALTO (even) or IDEMIA (odd), an eSIM when `n` is
/// divisible by 5, in `group` when `n` is divisible by 10, created in the order of `n`.
async fn seed(app: &TestApp, tenant: &str, range: std::ops::Range<u64>, group: Option<&str>) {
    seed_at(app, tenant, range, group, false).await;
}

/// [`seed`], every SIM created at one instant when `same_time`.
async fn seed_at(
    app: &TestApp,
    tenant: &str,
    range: std::ops::Range<u64>,
    group: Option<&str>,
    same_time: bool,
) {
    let integrity = app.services.core.keyring.integrity().unwrap();
    let tenant = tenant_id(tenant);
    let start = SystemClock.now();
    let numbers: Vec<u64> = range.collect();
    for chunk in numbers.chunks(2000) {
        let sims: Vec<_> = chunk
            .iter()
            .map(|&n| {
                let mut new = SimInput::new(Iccid::parse(&iccid(n), LuhnPolicy::Enforce).unwrap());
                new.imsi = Some(Imsi::parse(&format!("23415{n:010}")).unwrap());
                new.msisdn = Some(Msisdn::parse(&msisdn(n)).unwrap());
                new.sim_type = if n % 5 == 0 {
                    SimType::Esim
                } else {
                    SimType::Physical
                };
                new.vendor = Some(if n % 2 == 0 { "GEMALTO" } else { "IDEMIA" }.into());
                let mut tags = BTreeSet::new();
                if n % 2 == 0 {
                    tags.insert("even".to_owned());
                }
                if n % 3 == 0 {
                    tags.insert("three".to_owned());
                }
                new.tags = tags;
                new.group_id = group.filter(|_| n % 10 == 0).map(str::to_owned);
                let now = if same_time {
                    start
                } else {
                    start + i64::try_from(n).unwrap()
                };
                let (mut sim, _) = simvault::service::sims::new_sim(&tenant, new, now);
                sim.state = state_of(n);
                sim
            })
            .collect();
        let mut tx = app.test_db.db.begin().await.unwrap();
        let inserted = repo::insert_many(&mut tx, &integrity, &sims).await.unwrap();
        assert_eq!(inserted.len(), sims.len());
        tx.commit().await.unwrap();
    }
}

/// Status, headers and body of `GET /v1/sims/export?{query}`.
pub(crate) async fn export(api: &Api, query: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let res = api
        .request(reqwest::Method::GET, &format!("/v1/sims/export?{query}"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

/// The NDJSON export's lines, which must answer `200`.
async fn ndjson(api: &Api, query: &str) -> Vec<Value> {
    let (status, _, body) = export(api, &format!("format=ndjson&{query}")).await;
    assert_eq!(status, 200, "{body}");
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The CSV export's header and rows, which must answer `200`.
async fn csv_rows(api: &Api, query: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let (status, _, body) = export(api, &format!("format=csv&{query}")).await;
    assert_eq!(status, 200, "{body}");
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect();
    (header, rows)
}

/// The tenant's `sim.export` records: `(outcome, record)`.
async fn export_records(app: &TestApp, tenant: &str) -> Vec<(String, Value)> {
    chain_records(&app.test_db.db, tenant)
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "sim.export")
        .map(|(_, outcome, record)| (outcome, record))
        .collect()
}

fn assert_no_canary(door: &str, text: &str) {
    for canary in [CANARY_KI, CANARY_OPC, CANARY_PIN, CANARY_PUK] {
        assert!(!text.contains(canary), "{door} holds a secret");
    }
    assert!(!text.contains("pin_status") && !text.contains("remaining_attempts"));
}

const N: u64 = 10_000;

/// 10,000 SIMs in `acme` (SIMs 0..N, a tenth of them in group `fleet`), two SIMs with canary
/// secrets made through the API, and five SIMs of `other`.
async fn big_inventory(store: Store) -> (TestApp, String) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let op = app.jwt_client("acme", &[Role::Operator]);
    let group = op.post("/v1/groups", &json!({"name": "fleet"})).await;
    assert_eq!(group.status, 201, "{:?}", group.body);
    let group = group.body["id"].as_str().unwrap().to_owned();
    seed(&app, "acme", 0..N, Some(&group)).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in [N + 1, N + 2] {
        prov.create_sim(json!({
            "iccid": iccid(n), "tags": ["canary"],
            "secrets": {"ki": CANARY_KI, "opc": CANARY_OPC, "pin1": CANARY_PIN, "puk1": CANARY_PUK},
        }))
        .await;
    }
    app.tenant("other").await;
    seed(&app, "other", 50_000..50_005, None).await;
    (app, group)
}

async fn the_whole_inventory_streams_without_secrets(store: Store) {
    let (app, group) = big_inventory(store).await;
    let op = app.jwt_client("acme", &[Role::Operator]);

    let (status, headers, body) = export(&op, "format=ndjson").await;
    assert_eq!(status, 200);
    let header = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(header("content-type"), "application/x-ndjson");
    assert_eq!(
        header("content-disposition"),
        "attachment; filename=\"sims.ndjson\""
    );
    assert_eq!(header("cache-control"), "no-store");
    assert_eq!(header("x-simvault-export-count"), (N + 2).to_string());
    assert_no_canary("ndjson", &body);
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, N + 2);
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), lines.len(), "no SIM twice");
    // Oldest first: the seeded SIMs in the order they were made, then the canaries.
    assert_eq!(lines[0]["iccid"], iccid(0));
    assert_eq!(lines[N as usize - 1]["iccid"], iccid(N - 1));
    // Another tenant's SIMs are never in it.
    for n in 50_000..50_005 {
        assert!(!body.contains(&iccid(n)));
    }
    // A line is the SIM resource without its PIN/PUK status.
    let mut one = op.get(&format!("/v1/sims/{}", iccid(N + 1))).await.body;
    one.as_object_mut().unwrap().remove("pin_status").unwrap();
    let line = lines.iter().find(|l| l["iccid"] == iccid(N + 1)).unwrap();
    assert_eq!(line, &one);
    assert_eq!(
        line["secrets_present"],
        json!(["pin1", "puk1", "ki", "opc"])
    );

    let (status, headers, text) = export(&op, "format=csv").await;
    assert_eq!(status, 200);
    assert_eq!(
        headers.get("content-type").unwrap(),
        "text/csv; charset=utf-8"
    );
    assert_no_canary("csv", &text);
    let (header, rows) = csv_rows(&op, "").await;
    assert_eq!(rows.len() as u64, N + 2);
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let canary = rows
        .iter()
        .find(|r| r[col("iccid")] == iccid(N + 2))
        .unwrap();
    assert_eq!(canary[col("secrets_present")], "pin1;puk1;ki;opc");
    assert_eq!(canary[col("metadata")], "{}");
    let both = rows.iter().find(|r| r[col("iccid")] == iccid(6)).unwrap();
    assert_eq!(both[col("tags")], "even;three");

    // Every list filter, counted in both formats.
    let seeded = |p: &dyn Fn(u64) -> bool| (0..N).filter(|&n| p(n)).count();
    let search = msisdn(1234);
    let checks: Vec<(String, usize)> = vec![
        ("state=active".into(), seeded(&|n| n % 4 == 0)),
        (
            "state=inventory&state=retired".into(),
            seeded(&|n| n % 4 >= 2) + 2,
        ),
        ("tags=even&tags=three".into(), seeded(&|n| n % 6 == 0)),
        ("tags=canary".into(), 2),
        ("group_id=fleet".into(), seeded(&|n| n % 10 == 0)),
        (format!("group_id={group}"), seeded(&|n| n % 10 == 0)),
        ("vendor=IDEMIA".into(), seeded(&|n| n % 2 == 1)),
        ("sim_type=esim".into(), seeded(&|n| n % 5 == 0)),
        (
            "iccid=0000999".into(),
            seeded(&|n| iccid(n).contains("0000999")),
        ),
        (format!("search={search}"), 1),
        (
            "state=active&vendor=GEMALTO&tags=three".into(),
            seeded(&|n| n % 12 == 0),
        ),
    ];
    for (query, expected) in &checks {
        assert_eq!(ndjson(&op, query).await.len(), *expected, "ndjson {query}");
    }
    for (query, expected) in &checks[..3] {
        assert_eq!(csv_rows(&op, query).await.1.len(), *expected, "csv {query}");
    }
    assert_eq!(
        ndjson(&op, &format!("search={search}")).await[0]["iccid"],
        iccid(1234)
    );

    // One record an export, naming its filters and count, by the caller.
    let records = export_records(&app, "acme").await;
    assert_eq!(records.len(), 3 + checks.len() + 3 + 1);
    assert!(records.iter().all(|(outcome, r)| outcome == "allowed"
        && r["policy_ids"] == json!(["sims-export-operator"])
        && r["sim_id"].is_null()));
    let reasons: Vec<&str> = records
        .iter()
        .map(|(_, r)| r["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons[0], format!("filters: none; count {}", N + 2));
    let combined = seeded(&|n| n % 12 == 0);
    assert!(
        reasons.contains(
            &format!(r#"filters: state="active" tags="three" vendor="GEMALTO"; count {combined}"#)
                .as_str()
        ),
        "{reasons:?}"
    );
    assert!(reasons.contains(&format!(r#"filters: search="{search}"; count 1"#).as_str()));
    assert!(export_records(&app, "other").await.is_empty());
}
both_stores!(ten_thousand, the_whole_inventory_streams_without_secrets);

/// `reason` with every JSON string in it blanked out: what a reader takes as the record's own
/// words.
fn outside_quotes(reason: &str) -> String {
    let (mut out, mut quoted, mut escaped) = (String::new(), false, false);
    for c in reason.chars() {
        match (quoted, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (true, false, '"') | (false, _, '"') => quoted = !quoted,
            (true, false, _) => {}
            (false, _, c) => out.push(c),
        }
    }
    out
}

/// The record names every filter, the carrier fields and conditions included, and a value
/// that reads like more of the record (`; count 0`) stays inside its quotes.
async fn the_record_names_every_filter_unforgeably(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let forged = "flat; count 0";
    let mut body = crate::helpers::sim_body(1);
    body["rate_plan"] = json!(forged);
    body["tags"] = json!([forged]);
    prov.create_sim(body).await;
    prov.create_sim(crate::helpers::sim_body(2)).await;
    let op = app.jwt_client("acme", &[Role::Operator]);
    let value = "flat%3B%20count%200";
    assert_eq!(ndjson(&op, &format!("rate_plan={value}")).await.len(), 1);
    let both = format!("rate_plan={value}&condition=data_limit_exceeded&tags={value}");
    assert!(ndjson(&op, &both).await.is_empty());
    let carrier = "communication_plan=IoT&mno_integration_id=m-1&condition=unauthorized_imei";
    assert!(ndjson(&op, carrier).await.is_empty());
    let reasons: Vec<String> = export_records(&app, "acme")
        .await
        .into_iter()
        .map(|(_, r)| r["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons,
        [
            r#"filters: rate_plan="flat; count 0"; count 1"#,
            r#"filters: tags="flat; count 0" rate_plan="flat; count 0" condition="data_limit_exceeded"; count 0"#,
            r#"filters: communication_plan="IoT" mno_integration_id="m-1" condition="unauthorized_imei"; count 0"#,
        ]
    );
    for reason in &reasons {
        let words = outside_quotes(reason);
        assert_eq!(words.matches("count").count(), 1, "{reason}: {words}");
        assert_eq!(words.matches(';').count(), 1, "{reason}: {words}");
    }
}
both_stores!(
    export_record_filters,
    the_record_names_every_filter_unforgeably
);

/// Values a spreadsheet would run are written as text in the SIM CSV and in the audit CSV.
async fn formula_cells_are_defused(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let vendor = "=HYPERLINK(\"http://evil.example/\",\"open\")";
    prov.create_sim(json!({
        "iccid": iccid(1), "vendor": vendor, "tags": ["+1", "ok"],
        "metadata": {"note": "=1+1"},
    }))
    .await;
    let op = app.jwt_client("acme", &[Role::Operator]);
    let patch = op
        .patch(
            &format!("/v1/sims/{}", iccid(1)),
            &json!({"carrier_status": "@SUM(A1)"}),
        )
        .await;
    assert_eq!(patch.status, 200, "{:?}", patch.body);
    let moved = op
        .patch(
            &format!("/v1/sims/{}/state", iccid(1)),
            &json!({"state": "active", "reason": "-2+3"}),
        )
        .await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);

    let (header, rows) = csv_rows(&op, "").await;
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let row = &rows[0];
    assert_eq!(row[col("vendor")], format!("'{vendor}"));
    assert_eq!(row[col("tags")], "'+1;ok");
    assert_eq!(row[col("carrier_status")], "'@SUM(A1)");
    assert_eq!(row[col("state_reason")], "'-2+3");
    assert_eq!(row[col("metadata")], r#"{"note":"=1+1"}"#);
    for cell in row {
        assert!(
            !cell.starts_with(['=', '+', '-', '@', '\t', '\r']),
            "{cell:?}"
        );
    }
    // NDJSON carries the values as they are: only CSV cells are quoted.
    let lines = ndjson(&op, "").await;
    assert_eq!(lines[0]["vendor"], vendor);
    // The audit log's CSV follows the same rule (the state change's reason).
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let audit_csv = crate::helpers::audit_export(&auditor, "format=csv").await;
    let mut reader = csv::Reader::from_reader(audit_csv.as_bytes());
    let at = reader
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "reason")
        .unwrap();
    let reasons: Vec<String> = reader
        .records()
        .map(|r| r.unwrap()[at].to_owned())
        .collect();
    assert!(reasons.contains(&"'-2+3".to_owned()), "{reasons:?}");
    assert!(!reasons.iter().any(|r| r.starts_with('-')));
}
both_stores!(formula_cells, formula_cells_are_defused);

/// A bad format, paging, sorting or an unknown parameter is refused with every problem named,
/// and no export is recorded.
async fn bad_parameters_are_refused_and_change_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..5, None).await;
    let op = app.jwt_client("acme", &[Role::Operator]);
    let before = chain_records(&app.test_db.db, "acme").await.len();
    let a = op
        .get("/v1/sims/export?format=xlsx&page=2&page_size=10&sort_by=iccid&bogus=1&state=gone")
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.content_type(), "application/problem+json");
    let params: Vec<&str> = a.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["parameter"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        ["bogus", "page", "page_size", "sort_by", "state", "format"]
    );
    assert!(!a.body.to_string().contains(&iccid(1)));
    for query in [
        "format=csv&format=ndjson",
        "sort_order=asc",
        "include=group",
        "for_plan_id=nope",
        "iccid=89x",
        // A well-formed plan id the tenant has no plan for.
        "for_plan_id=00000000-0000-0000-0000-000000000001",
    ] {
        let a = op.get(&format!("/v1/sims/export?{query}")).await;
        assert_eq!(a.status, 400, "{query}: {:?}", a.body);
    }
    assert_eq!(chain_records(&app.test_db.db, "acme").await.len(), before);
    assert!(export_records(&app, "acme").await.is_empty());
}
both_stores!(
    bad_parameters,
    bad_parameters_are_refused_and_change_nothing
);

/// Operators and administrators export; support staff, provisioning systems and auditors get
/// `403` (recorded as denied) and not one SIM.
async fn only_operators_and_admins_export(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..3, None).await;
    for role in [Role::Support, Role::Provisioner, Role::Auditor] {
        let (status, _, body) = export(&app.jwt_client("acme", &[role]), "format=csv").await;
        assert_eq!(status, 403, "{role}: {body}");
        assert!(
            !body.contains(&iccid(0)) && !body.contains("iccid,"),
            "{role}"
        );
    }
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    assert_eq!(export(&prov, "").await.0, 403);
    let records = export_records(&app, "acme").await;
    assert_eq!(records.len(), 4);
    assert!(records.iter().all(|(outcome, _)| outcome == "denied"));
    for role in [Role::Operator, Role::Admin] {
        let lines = ndjson(&app.jwt_client("acme", &[role]), "").await;
        assert_eq!(lines.len(), 3, "{role}");
    }
    // The OpenAPI document describes the export, and the SIM as the list and the export show it.
    let doc = app
        .jwt_client("acme", &[Role::Operator])
        .get("/openapi.json")
        .await
        .body;
    assert!(doc["paths"]["/v1/sims/export"]["get"].is_object());
    let record = &doc["components"]["schemas"]["SimRecord"]["properties"];
    assert!(record["iccid"].is_object() && record["pin_status"].is_null());
}
both_stores!(export_roles, only_operators_and_admins_export);

/// Each tenant exports its own SIMs only; another tenant's plan is no plan at all.
async fn tenants_never_see_each_others_sims(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    seed(&app, "acme", 0..4, None).await;
    seed(&app, "other", 100..103, None).await;
    let other_op = app.jwt_client("other", &[Role::Operator]);
    let plan = other_op
        .post(
            "/v1/plans",
            &json!({"name": "p", "compatibility_zones": ["eu"]}),
        )
        .await;
    assert_eq!(plan.status, 201, "{:?}", plan.body);
    let acme = app.jwt_client("acme", &[Role::Operator]);
    let (_, _, body) = export(&acme, "format=csv").await;
    for n in 100..103 {
        assert!(!body.contains(&iccid(n)));
    }
    assert_eq!(ndjson(&acme, "").await.len(), 4);
    let numbers: Vec<Value> = ndjson(&other_op, "")
        .await
        .iter()
        .map(|l| l["iccid"].clone())
        .collect();
    assert_eq!(
        numbers,
        (100..103).map(|n| json!(iccid(n))).collect::<Vec<_>>()
    );
    let a = acme
        .get(&format!(
            "/v1/sims/export?for_plan_id={}",
            plan.body["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(a.body["errors"][0]["parameter"], "for_plan_id");
}
both_stores!(export_tenancy, tenants_never_see_each_others_sims);

/// SIMs sharing one creation time are each exported exactly once, across page boundaries
/// (pages of 500, 1,200 SIMs: the tie spans three pages, broken by id).
async fn one_creation_time_each_sim_once(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed_at(&app, "acme", 0..1200, None, true).await;
    let lines = ndjson(&app.jwt_client("acme", &[Role::Operator]), "").await;
    assert_eq!(lines.len(), 1200);
    let created: HashSet<&str> = lines
        .iter()
        .map(|l| l["created_at"].as_str().unwrap())
        .collect();
    assert_eq!(created.len(), 1, "one creation time");
    let exported: HashSet<String> = lines
        .iter()
        .map(|l| l["iccid"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(exported, (0..1200).map(iccid).collect::<HashSet<_>>());
}
both_stores!(export_tie_break, one_creation_time_each_sim_once);

/// `HEAD /v1/sims/export` is refused (`405`, `Allow: GET`) before anything happens: no export
/// is recorded and no page is read (a tampered first row would be reported if one were).
async fn head_exports_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..3, None).await;
    raw_sql!(&app.test_db.db, p => sqlx::query("UPDATE sims SET state = 'blocked' WHERE iccid = $1")
        .bind(iccid(0))
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    let op = app.jwt_client("acme", &[Role::Operator]);
    let before = chain_records(&app.test_db.db, "acme").await.len();
    let res = op
        .request(reqwest::Method::HEAD, "/v1/sims/export?format=csv")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    assert_eq!(res.headers().get("allow").unwrap(), "GET");
    assert!(res.headers().get("x-simvault-export-count").is_none());
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(chain_records(&app.test_db.db, "acme").await.len(), before);
    assert!(export_records(&app, "acme").await.is_empty());
    assert!(integrity_reports(&app).await.is_empty(), "no page was read");
    // A GET reads the first page, and so reports the row.
    let res = op
        .request(reqwest::Method::GET, "/v1/sims/export")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.bytes().await.is_err(), "the body breaks off at the row");
    assert_eq!(integrity_reports(&app).await.len(), 1);
    assert_eq!(export_records(&app, "acme").await.len(), 1);
}
both_stores!(export_head, head_exports_nothing);

/// Fail closed: when the export cannot be recorded, not one row is sent.
async fn no_record_no_export(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..3, None).await;
    raw_sql!(&app.test_db.db, p => sqlx::query("DROP TABLE audit_events").execute(p).await.map(|_| ()))
        .unwrap();
    let (status, _, body) = export(&app.jwt_client("acme", &[Role::Operator]), "format=csv").await;
    assert_eq!(status, 503, "{body}");
    assert!(!body.contains(&iccid(0)) && !body.contains("iccid,"));
}
both_stores!(export_fail_closed, no_record_no_export);

/// The platform chain's integrity reports (`integrity.check`, `failed`).
async fn integrity_reports(app: &TestApp) -> Vec<Value> {
    chain_records(&app.test_db.db, "_platform")
        .await
        .into_iter()
        .filter(|(action, outcome, _)| action == "integrity.check" && outcome == "failed")
        .map(|(_, _, record)| record)
        .collect()
}

/// A row that fails its integrity check ends the export there: the body breaks off (a client
/// cannot take it for a whole export) after the whole pages before it, the row is not sent,
/// and the failure is reported.
async fn a_tampered_row_ends_the_export(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..1200, None).await;
    let tampered = iccid(700);
    raw_sql!(&app.test_db.db, p => sqlx::query("UPDATE sims SET state = 'blocked' WHERE iccid = $1")
        .bind(&tampered)
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    let res = app
        .jwt_client("acme", &[Role::Operator])
        .request(reqwest::Method::GET, "/v1/sims/export?format=ndjson")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let mut received = Vec::new();
    let mut stream = res.bytes_stream();
    let mut broke = false;
    while let Some(chunk) = futures_util::StreamExt::next(&mut stream).await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                broke = true;
                break;
            }
        }
    }
    assert!(broke, "the body must not end as if complete");
    let text = String::from_utf8_lossy(&received);
    assert!(!text.contains(&tampered));
    // The whole pages before the tampered row's (SIMs 0..500), and not one line more.
    let lines = text.lines().count();
    assert!(lines.is_multiple_of(500) && lines < 700, "{lines} lines");
    assert!(text.is_empty() || text.ends_with('\n'));
    // The failed check is reported, naming the row and not its content.
    let reports = integrity_reports(&app).await;
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert!(!reports[0].to_string().contains(&tampered));
}
both_stores!(export_tampered_row, a_tampered_row_ends_the_export);

/// `simvault export` writes the same file from the host, recorded the same way; a bad filter
/// is refused before anything is recorded; an existing file is never overwritten.
async fn cli_export(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..40, None).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(json!({"iccid": iccid(99), "tags": ["even"], "secrets": {"ki": CANARY_KI, "pin1": CANARY_PIN}}))
        .await;
    let out_dir = tempfile::tempdir().unwrap();
    let file = out_dir.path().join("active.csv");
    let out = app.cli(&[
        "export",
        "--tenant",
        "acme",
        "--format",
        "csv",
        "--state",
        "active",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("10 SIMs exported"));
    let text = std::fs::read_to_string(&file).unwrap();
    let api_csv = export(
        &app.jwt_client("acme", &[Role::Operator]),
        "format=csv&state=active",
    )
    .await
    .2;
    assert_eq!(text, api_csv, "the CLI and the API write the same file");
    assert_eq!(text.lines().count(), 1 + 10);

    let out = app.cli(&["export", "--tenant", "acme", "--tags", "even"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 20 + 1);
    assert_no_canary("cli", &stdout);

    // The CLI's two exports, and the API's one between them.
    let records = export_records(&app, "acme").await;
    assert_eq!(records.len(), 3);
    for (_, r) in [&records[0], &records[2]] {
        assert!(r["subject"].as_str().unwrap().starts_with("cli:"));
        assert_eq!(r["auth_method"], "local");
    }
    assert_eq!(
        records[0].1["reason"],
        r#"filters: state="active"; count 10"#
    );
    assert_eq!(records[1].1["auth_method"], "jwt");
    assert_eq!(records[2].1["reason"], r#"filters: tags="even"; count 21"#);

    let out = app.cli(&["export", "--tenant", "acme", "--state", "gone"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--state must be one of"));
    // A problem names the option, as it is typed.
    let long = "r".repeat(256);
    let out = app.cli(&[
        "export",
        "--tenant",
        "acme",
        "--rate-plan",
        &long,
        "--condition",
        "x",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--rate-plan must be 1 to 255 characters"),
        "{err}"
    );
    assert!(err.contains("--condition must be one of"), "{err}");
    assert!(!err.contains("rate_plan"), "{err}");
    let out = app.cli(&[
        "export",
        "--tenant",
        "acme",
        "--output",
        file.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "an existing file is not overwritten");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
    assert_eq!(export_records(&app, "acme").await.len(), 3);
}
both_stores!(export_cli, cli_export);

/// The names in `dir`.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `simvault export --output FILE` leaves a whole export readable by its owner only, or
/// nothing at all: a failing export (a tampered row mid-way, an audit log that cannot be
/// written) leaves neither FILE nor a partial file beside it.
async fn cli_output_is_whole_or_absent(store: Store) {
    use std::os::unix::fs::PermissionsExt as _;
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    seed(&app, "acme", 0..1200, None).await;
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        let file = dir.path().join(name);
        let out = app.cli(&[
            "export",
            "--tenant",
            "acme",
            "--output",
            file.to_str().unwrap(),
        ]);
        (file, out)
    };
    let (file, out) = run("whole.ndjson");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap().lines().count(),
        1200
    );
    assert_eq!(names_in(dir.path()), ["whole.ndjson"]);

    raw_sql!(&app.test_db.db, p => sqlx::query("UPDATE sims SET state = 'blocked' WHERE iccid = $1")
        .bind(iccid(700))
        .execute(p)
        .await
        .map(|_| ()))
    .unwrap();
    let (file, out) = run("tampered.ndjson");
    assert!(!out.status.success(), "a tampered row fails the export");
    assert!(!file.exists());
    assert_eq!(
        names_in(dir.path()),
        ["whole.ndjson"],
        "no partial file left"
    );

    raw_sql!(&app.test_db.db, p => sqlx::query("DROP TABLE audit_events").execute(p).await.map(|_| ()))
        .unwrap();
    let (file, out) = run("unrecorded.ndjson");
    assert!(!out.status.success(), "an unrecorded export fails");
    assert!(!file.exists());
    assert_eq!(
        names_in(dir.path()),
        ["whole.ndjson"],
        "no partial file left"
    );
}
both_stores!(export_cli_output, cli_output_is_whole_or_absent);

const SUPPORT_EXPORT: &str = r#"
// A deployment whose support staff may export the inventory.
@id("support-export")
permit (principal, action == Simvault::Action::"sim.export", resource)
when { principal.roles.contains("support") };
"#;

/// Who may export is the policies' to say: a deployment policy lets support export, and the
/// tenant check still holds.
async fn a_deployment_policy_decides_who_exports(store: Store) {
    let dir = crate::policies::default_policy_dir();
    std::fs::write(dir.path().join("support-export.cedar"), SUPPORT_EXPORT).unwrap();
    let app = TestApp::spawn_with(store, |c| c.policy_dir = Some(dir.path().to_owned())).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    seed(&app, "acme", 0..3, None).await;
    seed(&app, "other", 100..102, None).await;
    let lines = ndjson(&app.jwt_client("acme", &[Role::Support]), "").await;
    assert_eq!(lines.len(), 3);
    assert!(lines.iter().all(|l| l["iccid"] != iccid(100)));
    let records = export_records(&app, "acme").await;
    assert_eq!(records[0].1["policy_ids"], json!(["support-export"]));
    // What the deployment did not add stays refused.
    let (status, _, _) = export(&app.jwt_client("acme", &[Role::Auditor]), "").await;
    assert_eq!(status, 403);
}
both_stores!(export_policy, a_deployment_policy_decides_who_exports);
