//! The carrier fields of a SIM (`communication_plan`, `rate_plan`, `mno_integration_id`): set on
//! create, changed and cleared by PATCH, read from import files, filtered on; their length and
//! character rules refuse bad input without changing anything.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Store, TestApp, both_stores, iccid, sim_body};

fn carrier(sim: &Value) -> Value {
    json!({
        "communication_plan": sim["communication_plan"],
        "rate_plan": sim["rate_plan"],
        "mno_integration_id": sim["mno_integration_id"],
    })
}

async fn set_changed_cleared_and_filtered(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("globex").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);

    let mut body = sim_body(1);
    body["communication_plan"] = json!("IoT EU 10MB");
    body["rate_plan"] = json!("r".repeat(255));
    body["mno_integration_id"] = json!("é".repeat(64));
    let a = prov.create_sim(body).await;
    assert_eq!(
        carrier(&a),
        json!({"communication_plan": "IoT EU 10MB", "rate_plan": "r".repeat(255), "mno_integration_id": "é".repeat(64)})
    );
    // Unset fields are there, as null.
    let b = prov.create_sim(sim_body(2)).await;
    assert_eq!(
        carrier(&b),
        json!({"communication_plan": null, "rate_plan": null, "mno_integration_id": null})
    );
    let got = operator.get(&format!("/v1/sims/{}", iccid(1))).await;
    assert_eq!(carrier(&got.body), carrier(&a));

    // PATCH: what is given changes, null clears, the rest stays.
    let path = format!("/v1/sims/{}", iccid(1));
    let p = operator
        .patch(
            &path,
            &json!({"rate_plan": "flat-2", "mno_integration_id": null}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(
        carrier(&p.body),
        json!({"communication_plan": "IoT EU 10MB", "rate_plan": "flat-2", "mno_integration_id": null})
    );
    let p = operator
        .patch(
            &format!("/v1/sims/{}", iccid(2)),
            &json!({"communication_plan": "IoT EU 10MB", "mno_integration_id": "mno-7"}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(operator.get(&path).await.body["rate_plan"], "flat-2");

    // Filters: exact match, combined with AND.
    let count = |q: &str| {
        let operator = &operator;
        let q = q.to_owned();
        async move {
            let a = operator.get(&format!("/v1/sims?{q}")).await;
            assert_eq!(a.status, 200, "{q}: {:?}", a.body);
            let mut iccids: Vec<String> = a.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["iccid"].as_str().unwrap().to_owned())
                .collect();
            iccids.sort();
            iccids
        }
    };
    assert_eq!(
        count("communication_plan=IoT%20EU%2010MB").await,
        [iccid(1), iccid(2)]
    );
    assert_eq!(count("rate_plan=flat-2").await, [iccid(1)]);
    assert_eq!(count("mno_integration_id=mno-7").await, [iccid(2)]);
    assert_eq!(
        count("communication_plan=IoT%20EU%2010MB&rate_plan=flat-2").await,
        [iccid(1)]
    );
    assert!(
        count("rate_plan=flat").await.is_empty(),
        "exact, not a prefix"
    );
    assert!(count("rate_plan=FLAT-2").await.is_empty(), "case matters");

    // Another tenant's SIMs never match its filters, nor its plans ours.
    let other = app.mtls_api("globex", &[Role::Provisioner], "gprov").await;
    let mut body = sim_body(3);
    body["rate_plan"] = json!("flat-2");
    other.create_sim(body).await;
    assert_eq!(count("rate_plan=flat-2").await, [iccid(1)]);
    let theirs = app.jwt_client("globex", &[Role::Operator]);
    let a = theirs.get("/v1/sims?mno_integration_id=mno-7").await;
    assert_eq!(a.body["total"], 0);

    // The export takes the same filters and has the fields as columns.
    let (status, _, csv) = crate::export::export(&operator, "format=csv&rate_plan=flat-2").await;
    assert_eq!(status, 200, "{csv}");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(
        lines[0].contains("communication_plan,rate_plan,mno_integration_id"),
        "{}",
        lines[0]
    );
    assert!(lines[1].contains(&iccid(1)) && lines[1].contains("IoT EU 10MB,flat-2,"));
}
both_stores!(round_trip, set_changed_cleared_and_filtered);

async fn bad_values_change_nothing(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);

    let mut body = sim_body(1);
    body["communication_plan"] = json!("c".repeat(256));
    body["rate_plan"] = json!("");
    body["mno_integration_id"] = json!("m".repeat(65));
    let a = prov.post("/v1/sims", &body).await;
    assert_eq!(a.status, 400, "{:?}", a.body);
    assert_eq!(
        a.pointers(),
        ["/communication_plan", "/rate_plan", "/mno_integration_id"]
    );
    assert!(
        !a.body.to_string().contains(&"c".repeat(256)),
        "the problem does not echo the value"
    );
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", iccid(1))).await.status,
        404
    );

    let mut body = sim_body(1);
    body["rate_plan"] = json!("plan\u{1b}[2Jx");
    body["communication_plan"] = json!(7);
    let a = prov.post("/v1/sims", &body).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.pointers(), ["/communication_plan", "/rate_plan"]);

    let mut body = sim_body(1);
    body["rate_plan"] = json!("flat-1");
    prov.create_sim(body).await;
    let path = format!("/v1/sims/{}", iccid(1));
    let before = operator.get(&path).await.body;
    for patch in [
        json!({"rate_plan": "r".repeat(256), "tags": ["ok"]}),
        json!({"mno_integration_id": "line\nbreak"}),
        json!({"communication_plan": ""}),
        json!({"rate_plan": ["flat-2"]}),
    ] {
        let a = operator.patch(&path, &patch).await;
        assert_eq!(a.status, 400, "{patch}: {:?}", a.body);
        assert_eq!(a.pointers().len(), 1, "{patch}: {:?}", a.body);
    }
    assert_eq!(operator.get(&path).await.body, before);

    for q in [
        format!("rate_plan={}", "r".repeat(256)),
        "mno_integration_id=".to_owned(),
        "communication_plan=a%0Ab".to_owned(),
        "rate_plan=a&rate_plan=b".to_owned(),
    ] {
        let a = operator.get(&format!("/v1/sims?{q}")).await;
        assert_eq!(a.status, 400, "{q}: {:?}", a.body);
    }
}
both_stores!(bad_input, bad_values_change_nothing);

/// A vendor CSV may carry the carrier fields as columns; an empty cell leaves the field unset,
/// and a bad cell fails its own row with its line.
async fn import_files_carry_them(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("batch.csv");
    std::fs::write(
        &file,
        format!(
            "iccid,imsi,communication_plan,rate_plan,mno_integration_id\n\
             {},234150000000001,IoT EU,flat-1,mno-1\n\
             {},234150000000002,,,\n\
             {},234150000000003,IoT EU,{},\n",
            iccid(1),
            iccid(2),
            iccid(3),
            "r".repeat(256),
        ),
    )
    .unwrap();
    let out = app.cli(&["import", "--tenant", "acme", file.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("2 imported, 1 failed"), "{stdout}");
    assert!(stdout.contains("line 4: rate_plan:"), "{stdout}");
    let one = operator.get(&format!("/v1/sims/{}", iccid(1))).await.body;
    assert_eq!(
        carrier(&one),
        json!({"communication_plan": "IoT EU", "rate_plan": "flat-1", "mno_integration_id": "mno-1"})
    );
    let two = operator.get(&format!("/v1/sims/{}", iccid(2))).await.body;
    assert_eq!(
        carrier(&two),
        json!({"communication_plan": null, "rate_plan": null, "mno_integration_id": null})
    );
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", iccid(3))).await.status,
        404
    );

    // The API's bulk import takes them in its items too.
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let a = prov
        .post(
            "/v1/sims/bulk/import",
            &json!({"sims": [{"iccid": iccid(4), "mno_integration_id": "mno-4"}]}),
        )
        .await;
    assert_eq!(a.status, 202, "{:?}", a.body);
    let task = a.body["id"].as_str().unwrap().to_owned();
    crate::bulk::wait_for_task(&operator, &task, std::time::Duration::from_secs(30)).await;
    let four = operator.get(&format!("/v1/sims/{}", iccid(4))).await.body;
    assert_eq!(four["mno_integration_id"], "mno-4");
}
both_stores!(import, import_files_carry_them);
