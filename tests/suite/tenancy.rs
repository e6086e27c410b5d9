//! Tenant isolation: another tenant's resources answer 404 on every endpoint, exactly like
//! missing ones, and never appear in lists or searches.

use serde_json::json;
use simvault::domain::Role;

use crate::helpers::{Store, TestApp, both_stores, iccid, sim_body};

async fn cross_tenant_is_404_everywhere(store: Store) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("evil").await;
    let acme = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let sim = acme
        .create_sim(json!({"iccid": iccid(1), "imsi": "234150000000001", "msisdn": "447700900001"}))
        .await;
    let id = sim["id"].as_str().unwrap();
    let acme_ops = app.jwt_client("acme", &[Role::Operator]);
    let plan = acme_ops
        .post(
            "/v1/plans",
            &json!({"name": "p", "compatibility_zones": ["eu"]}),
        )
        .await
        .body;
    let plan_id = plan["id"].as_str().unwrap();
    let group = acme_ops.post("/v1/groups", &json!({"name": "fleet"})).await;
    assert_eq!(group.status, 201, "{:?}", group.body);
    let group_id = group.body["id"].as_str().unwrap().to_owned();
    let device = acme_ops
        .post("/v1/devices", &json!({"name": "truck"}))
        .await;
    assert_eq!(device.status, 201, "{:?}", device.body);
    let device_id = device.body["id"].as_str().unwrap().to_owned();
    let joined = acme_ops
        .patch(
            &format!("/v1/sims/{id}"),
            &json!({"group_id": group_id, "device_id": device_id}),
        )
        .await;
    assert_eq!(joined.status, 200, "{:?}", joined.body);

    // Every role at once, over both authentication methods.
    let all = Role::ALL;
    let evil_jwt = app.jwt_client("evil", &all);
    let evil_mtls = app.mtls_api("evil", &all, "evil-all").await;
    let missing = "00000000-0000-4000-8000-000000000000";
    for evil in [&evil_jwt, &evil_mtls] {
        for path in [format!("/v1/sims/{id}"), format!("/v1/sims/{}", iccid(1))] {
            let a = evil.get(&path).await;
            let m = evil.get(&format!("/v1/sims/{missing}")).await;
            assert_eq!(a.status, 404);
            assert_eq!(
                (a.body["type"].clone(), a.body["detail"].clone()),
                (m.body["type"].clone(), m.body["detail"].clone())
            );
            assert_eq!(
                evil.patch(&path, &json!({"tags": ["pwned"]})).await.status,
                404
            );
            assert_eq!(evil.delete(&path).await.status, 404);
        }
        assert_eq!(evil.get(&format!("/v1/plans/{plan_id}")).await.status, 404);
        // Groups and devices: read, change and delete answer exactly as a missing one.
        for (kind, own_id) in [("groups", &group_id), ("devices", &device_id)] {
            let path = format!("/v1/{kind}/{own_id}");
            let gone = format!("/v1/{kind}/{missing}");
            let body = json!({"name": "pwned"});
            let pairs = [
                (evil.get(&path).await, evil.get(&gone).await),
                (
                    evil.patch(&path, &body).await,
                    evil.patch(&gone, &body).await,
                ),
                (evil.delete(&path).await, evil.delete(&gone).await),
            ];
            for (a, m) in pairs {
                assert_eq!(a.status, 404, "{path}: {:?}", a.body);
                assert_eq!(m.status, 404, "{gone}: {:?}", m.body);
                assert_eq!(
                    (a.body["type"].clone(), a.body["detail"].clone()),
                    (m.body["type"].clone(), m.body["detail"].clone()),
                    "{path}"
                );
            }
            let list = evil.get(&format!("/v1/{kind}")).await;
            assert_eq!(list.status, 200, "{kind}");
            assert_eq!(list.body["total"], 0, "{kind}");
            assert_eq!(list.body["items"], json!([]), "{kind}");
        }
        for q in [group_id.as_str(), "fleet"] {
            let list = evil.get(&format!("/v1/sims?group_id={q}")).await;
            assert_eq!(list.status, 200, "{q}");
            assert_eq!(list.body["total"], 0, "{q}");
            assert_eq!(list.body["items"], json!([]), "{q}");
        }
        for q in [
            "",
            "?search=4477",
            "?iccid=8944",
            &format!("?search={}", &id[..8]),
            "?state=inventory",
        ] {
            let list = evil.get(&format!("/v1/sims{q}")).await;
            assert_eq!(list.status, 200);
            assert_eq!(list.body["total"], 0, "{q}");
        }
        assert_eq!(evil.get("/v1/plans").await.body["total"], 0);
        let a = evil.get(&format!("/v1/sims?for_plan_id={plan_id}")).await;
        assert_eq!(a.status, 400);
    }
    // Nothing changed for the owner.
    let own = acme.get(&format!("/v1/sims/{id}")).await;
    assert_eq!(own.status, 200);
    assert_eq!(own.body["tags"], json!([]));
    assert_eq!(own.body["group_id"], group_id.as_str());
    for (kind, own_id) in [("groups", &group_id), ("devices", &device_id)] {
        let mine = acme_ops.get(&format!("/v1/{kind}/{own_id}")).await;
        assert_eq!(mine.status, 200, "{kind}");
        assert_eq!(
            mine.body["name"],
            if kind == "groups" { "fleet" } else { "truck" }
        );
    }
    // ICCIDs are unique across tenants.
    assert_eq!(evil_jwt.post("/v1/sims", &sim_body(1)).await.status, 409);
}
both_stores!(cross_tenant, cross_tenant_is_404_everywhere);
