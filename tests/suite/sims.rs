//! SIM inventory: create, read by id or ICCID, patch, delete, and role denials.

use serde_json::json;
use simvault::domain::Role;

use crate::helpers::{Store, TestApp, both_stores, iccid, sim_body};

async fn create_get_patch_delete(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let admin = app.jwt_client("acme", &[Role::Admin]);

    let body = json!({
        "iccid": iccid(7), "imsi": "234150123456789", "msisdn": "+447123456789",
        "vendor": "GEMALTO", "tags": ["staff", "staff", "vip"], "compatibility_zones": ["eu"],
        "metadata": {"batch": 42}, "sim_type": "physical",
    });
    let a = prov.post("/v1/sims", &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let sim = a.body;
    let id = sim["id"].as_str().unwrap().to_owned();
    assert_eq!(a.headers["location"], format!("/v1/sims/{id}"));
    assert_eq!(sim["state"], "inventory");
    assert_eq!(sim["iccid"], iccid(7));
    assert_eq!(sim["tags"], json!(["staff", "vip"]));
    assert_eq!(sim["metadata"], json!({"batch": 42}));
    assert_eq!(sim["is_attached"], false);
    assert_eq!(sim["secrets_present"], json!([]));
    for field in [
        "imei",
        "eid",
        "state_reason",
        "carrier_status",
        "group_id",
        "device_id",
        "esim_profile_state",
        "link",
        "last_synced_at",
    ] {
        assert!(sim[field].is_null(), "{field}");
    }
    assert!(sim["created_at"].as_str().unwrap().ends_with('Z'));

    // By id and by ICCID.
    let by_id = operator.get(&format!("/v1/sims/{id}")).await;
    assert_eq!(by_id.status, 200);
    assert_eq!(by_id.body, sim);
    let by_iccid = operator.get(&format!("/v1/sims/{}", iccid(7))).await;
    assert_eq!(by_iccid.body["id"], id.as_str());
    // Uppercase UUIDs name the same SIM.
    assert_eq!(
        operator
            .get(&format!("/v1/sims/{}", id.to_uppercase()))
            .await
            .status,
        200
    );

    // Patch: only given fields change; null clears.
    let g1 = operator.post("/v1/groups", &json!({"name": "g1"})).await;
    assert_eq!(g1.status, 201, "{:?}", g1.body);
    let g1 = g1.body["id"].as_str().unwrap().to_owned();
    let p = operator
        .patch(&format!("/v1/sims/{id}"), &json!({"msisdn": null, "tags": ["new"], "imei": "490154203237518", "carrier_status": "ACTIVE", "group_id": g1}))
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert_eq!(p.body["group_id"], g1.as_str());
    assert!(p.body["msisdn"].is_null());
    assert_eq!(p.body["tags"], json!(["new"]));
    assert_eq!(p.body["imei"], "490154203237518");
    assert_eq!(p.body["vendor"], "GEMALTO");
    assert_eq!(p.body["metadata"], json!({"batch": 42}));
    assert_eq!(p.body["carrier_status"], "ACTIVE");
    let again = operator.get(&format!("/v1/sims/{id}")).await;
    assert_eq!(again.body, p.body);

    // Delete leaves nothing visible.
    let d = admin.delete(&format!("/v1/sims/{id}")).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body["success"], true);
    assert!(d.body["deleted_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(operator.get(&format!("/v1/sims/{id}")).await.status, 404);
    assert_eq!(
        operator.get(&format!("/v1/sims/{}", iccid(7))).await.status,
        404
    );
    assert_eq!(admin.delete(&format!("/v1/sims/{id}")).await.status, 404);
    assert_eq!(
        operator
            .patch(&format!("/v1/sims/{id}"), &json!({"tags": []}))
            .await
            .status,
        404
    );
    assert_eq!(operator.get("/v1/sims").await.body["total"], 0);
    // The tombstone keeps the ICCID: it names one card forever.
    assert_eq!(prov.post("/v1/sims", &body).await.status, 409);
}
both_stores!(crud, create_get_patch_delete);

async fn duplicate_iccid_is_409(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    prov.create_sim(sim_body(1)).await;
    let a = prov.post("/v1/sims", &sim_body(1)).await;
    assert_eq!(a.status, 409);
    assert_eq!(a.body["type"], "https://simvault.dev/problems/conflict");
    assert_eq!(prov.get("/v1/sims").await.body["total"], 1);
}
both_stores!(duplicate_iccid, duplicate_iccid_is_409);

/// The API contract's role table, for the endpoints that exist, with what each role does NOT get.
async fn role_denials(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = prov.create_sim(sim_body(1)).await;
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());

    let support = app.jwt_client("acme", &[Role::Support]);
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let auditor = app.jwt_client("acme", &[Role::Auditor]);
    let admin = app.jwt_client("acme", &[Role::Admin]);

    // Only provisioners create.
    for who in [&support, &operator, &auditor, &admin] {
        let a = who.post("/v1/sims", &sim_body(2)).await;
        assert_eq!(a.status, 403, "{:?}", a.body);
        assert_eq!(a.body["type"], "https://simvault.dev/problems/forbidden");
    }
    // Auditors read nothing but the audit log.
    let a = auditor.get(&path).await;
    assert_eq!(a.status, 403);
    assert!(a.body.get("iccid").is_none());
    assert_eq!(auditor.get("/v1/sims").await.status, 403);
    assert_eq!(auditor.get("/v1/plans").await.status, 403);
    // Readers.
    for who in [&support, &operator, &admin, &prov] {
        assert_eq!(who.get(&path).await.status, 200);
        assert_eq!(who.get("/v1/sims").await.status, 200);
    }
    // Only operators and admins change fields.
    for who in [&support, &prov, &auditor] {
        assert_eq!(who.patch(&path, &json!({"tags": ["x"]})).await.status, 403);
    }
    assert_eq!(
        operator.patch(&path, &json!({"tags": ["x"]})).await.status,
        200
    );
    assert_eq!(
        admin.patch(&path, &json!({"tags": ["y"]})).await.status,
        200
    );
    // Only admins delete.
    for who in [&support, &prov, &auditor, &operator] {
        assert_eq!(who.delete(&path).await.status, 403);
    }
    assert_eq!(support.get(&path).await.body["tags"], json!(["y"]));
    // Plans: operators and admins create; auditors and support do not.
    for who in [&support, &prov, &auditor] {
        assert_eq!(
            who.post(
                "/v1/plans",
                &json!({"name": "p", "compatibility_zones": ["eu"]})
            )
            .await
            .status,
            403
        );
    }
    assert_eq!(admin.delete(&path).await.status, 200);
}
both_stores!(roles, role_denials);

async fn plans_round_trip(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .post(
            "/v1/plans",
            &json!({"name": "eu-roaming", "compatibility_zones": ["eu", "uk"]}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(a.body["compatibility_zones"], json!(["eu", "uk"]));
    let got = operator.get(&format!("/v1/plans/{id}")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, a.body);
    assert_eq!(
        operator
            .post("/v1/plans", &json!({"name": "eu-roaming"}))
            .await
            .status,
        409
    );
    operator.post("/v1/plans", &json!({"name": "world"})).await;
    let list = operator.get("/v1/plans?page_size=1").await;
    assert_eq!(list.body["total"], 2);
    assert_eq!(list.body["pages"], 2);
    assert_eq!(list.body["items"][0]["name"], "eu-roaming");
    assert_eq!(
        operator
            .get("/v1/plans/6a0d3c36-3d8a-4b43-9d5e-0d8a3a8b0e11")
            .await
            .status,
        404
    );
    assert_eq!(operator.get("/v1/plans/not-a-uuid").await.status, 404);
    let bad = operator
        .post("/v1/plans", &json!({"compatibility_zones": "eu"}))
        .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.body["errors"].as_array().unwrap().len(), 2);
}
both_stores!(plans, plans_round_trip);
