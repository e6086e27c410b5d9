//! Devices: CRUD, the refusals (duplicate names, unknown or foreign devices, deleting one with
//! SIMs bound, roles, bad input), SIMs bound to them, and the audit records.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, chain_records, iccid, sim_body};

async fn device(api: &Api, body: Value) -> String {
    let a = api.post("/v1/devices", &body).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    a.body["id"].as_str().unwrap().to_owned()
}

async fn devices_crud_and_binding(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let a = operator
        .post(
            "/v1/devices",
            &json!({"name": "truck-1", "imei": "490154203237518", "metadata": {"plate": "AB12"}}),
        )
        .await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    let id = a.body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        a.headers["location"].to_str().unwrap(),
        format!("/v1/devices/{id}")
    );
    assert_eq!(a.body["name"], "truck-1");
    assert_eq!(a.body["imei"], "490154203237518");
    assert_eq!(a.body["metadata"], json!({"plate": "AB12"}));
    assert_eq!(a.body["sim_ids"], json!([]));
    assert_eq!(
        operator.get(&format!("/v1/devices/{id}")).await.body,
        a.body
    );

    let plain = device(&operator, json!({"name": "truck-2"})).await;
    let got = operator.get(&format!("/v1/devices/{plain}")).await.body;
    assert!(got["imei"].is_null());
    assert_eq!(got["metadata"], json!({}));
    let page = operator.get("/v1/devices?page_size=1").await;
    assert_eq!(page.body["total"], 2);
    assert_eq!(page.body["pages"], 2);
    assert_eq!(page.body["items"][0]["id"], id.as_str());

    // Duplicate names are refused, on create and rename.
    assert_eq!(
        operator
            .post("/v1/devices", &json!({"name": "truck-2"}))
            .await
            .status,
        409
    );
    assert_eq!(
        operator
            .patch(&format!("/v1/devices/{id}"), &json!({"name": "truck-2"}))
            .await
            .status,
        409
    );

    // SIMs bind to a device of their tenant; the device lists them.
    let mut body = sim_body(1);
    body["device_id"] = json!(id);
    let sim = prov.create_sim(body).await;
    assert_eq!(sim["device_id"], id.as_str());
    let got = operator.get(&format!("/v1/devices/{id}")).await.body;
    assert_eq!(got["sim_ids"], json!([sim["id"]]));
    let foreign = device(
        &app.jwt_client("other", &[Role::Operator]),
        json!({"name": "theirs"}),
    )
    .await;
    for (n, bad) in [(2, uuid::Uuid::new_v4().to_string()), (3, foreign.clone())] {
        let mut body = sim_body(n);
        body["device_id"] = json!(bad);
        let r = prov.post("/v1/sims", &body).await;
        assert_eq!(r.status, 400, "{:?}", r.body);
        assert_eq!(r.pointers(), ["/device_id"]);
        assert_eq!(r.body["errors"][0]["detail"], "no device with this id");
        assert_eq!(
            prov.get(&format!("/v1/sims/{}", iccid(n))).await.status,
            404
        );
    }
    // Group and device problems are reported together.
    let mut body = sim_body(4);
    body["group_id"] = json!(uuid::Uuid::new_v4().to_string());
    body["device_id"] = json!(foreign);
    let r = prov.post("/v1/sims", &body).await;
    assert_eq!(r.pointers(), ["/group_id", "/device_id"]);

    // Moving the SIM to the other device by PATCH, then a foreign device changes nothing.
    let path = format!("/v1/sims/{}", sim["id"].as_str().unwrap());
    let moved = operator.patch(&path, &json!({"device_id": plain})).await;
    assert_eq!(moved.status, 200, "{:?}", moved.body);
    assert_eq!(
        operator.get(&format!("/v1/devices/{id}")).await.body["sim_ids"],
        json!([])
    );
    let r = operator.patch(&path, &json!({"device_id": foreign})).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.pointers(), ["/device_id"]);
    assert_eq!(operator.get(&path).await.body["device_id"], plain.as_str());

    // PATCH fields: null clears the IMEI and empties metadata.
    let p = operator
        .patch(
            &format!("/v1/devices/{id}"),
            &json!({"imei": null, "metadata": null, "name": "truck-9"}),
        )
        .await;
    assert_eq!(p.status, 200, "{:?}", p.body);
    assert!(p.body["imei"].is_null());
    assert_eq!(p.body["metadata"], json!({}));
    assert_eq!(p.body["name"], "truck-9");

    // A device with SIMs bound cannot be deleted; an unbound one can (204).
    assert_eq!(
        operator
            .delete(&format!("/v1/devices/{plain}"))
            .await
            .status,
        409
    );
    let d = operator.delete(&format!("/v1/devices/{id}")).await;
    assert_eq!(d.status, 204, "{:?}", d.body);
    assert_eq!(operator.get(&format!("/v1/devices/{id}")).await.status, 404);

    let records = chain_records(&app.test_db.db, "acme").await;
    for action in ["device.create", "device.update", "device.delete"] {
        assert!(
            records
                .iter()
                .any(|(a, o, r)| a == action && o == "allowed" && r.to_string().contains(&id)),
            "{action}"
        );
    }
}
both_stores!(crud, devices_crud_and_binding);

async fn refusals(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("other").await;
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let id = device(&operator, json!({"name": "truck-1"})).await;
    let path = format!("/v1/devices/{id}");

    // Bad input: every problem at once, nothing changed.
    let r = operator
        .post("/v1/devices", &json!({"imei": "123", "metadata": [1]}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.pointers(), ["/name", "/imei", "/metadata"]);
    let r = operator
        .patch(&path, &json!({"name": null, "imei": "490154203237519"}))
        .await;
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.pointers(), ["/name", "/imei"]);
    assert_eq!(operator.get("/v1/devices").await.body["total"], 1);
    assert_eq!(operator.get(&path).await.body["name"], "truck-1");

    // Roles as for groups.
    for role in [Role::Provisioner, Role::Support, Role::Admin] {
        assert_eq!(app.jwt_client("acme", &[role]).get(&path).await.status, 200);
    }
    for role in [Role::Provisioner, Role::Support, Role::Auditor] {
        let api = app.jwt_client("acme", &[role]);
        assert_eq!(
            api.post("/v1/devices", &json!({"name": "x"})).await.status,
            403
        );
        assert_eq!(api.patch(&path, &json!({"name": "x"})).await.status, 403);
        assert_eq!(api.delete(&path).await.status, 403);
    }
    assert_eq!(
        app.jwt_client("acme", &[Role::Auditor])
            .get(&path)
            .await
            .status,
        403
    );

    // Another tenant's device does not exist for them.
    let stranger = app.jwt_client("other", &[Role::Admin, Role::Operator]);
    assert_eq!(stranger.get(&path).await.status, 404);
    assert_eq!(
        stranger.patch(&path, &json!({"name": "x"})).await.status,
        404
    );
    assert_eq!(stranger.delete(&path).await.status, 404);
    assert_eq!(stranger.get("/v1/devices").await.body["total"], 0);
    assert_eq!(operator.get(&path).await.status, 200);
}
both_stores!(refused, refusals);
