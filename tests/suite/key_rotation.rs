//! Key rotation: tenant keys re-wrapped under load and after a crash, and the root key
//! rotated with every tenant key re-wrapped under it.

use serde_json::{Value, json};
use simvault::domain::{Role, TenantId};

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql, tenant_id};
use crate::vault::{ALL, KI, OPC, path, seed_with_secrets, setup};

/// Seeds `n` SIMs with four concurrent writers.
async fn seed_many(app: &TestApp, n: u64) {
    let per = n / 4;
    let mut seeders = Vec::new();
    for k in 0..4 {
        let services = app.services.clone();
        seeders.push(tokio::spawn(async move {
            seed_with_secrets(&services, "acme", 100_000 + k * per, per).await
        }));
    }
    for s in seeders {
        s.await.unwrap();
    }
}

async fn wait_for_task(api: &Api, id: &str) -> Value {
    for _ in 0..1200 {
        let t = api.get(&format!("/v1/tasks/{id}")).await;
        assert_eq!(t.status, 200, "{:?}", t.body);
        if t.body["status"] == "completed" || t.body["status"] == "failed" {
            return t.body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("task {id} did not finish");
}

async fn dek_versions(db: &simvault::store::Db) -> Vec<(i64, i64)> {
    raw_sql!(db, p => sqlx::query_as("SELECT kek_version, count(*) FROM sim_deks GROUP BY kek_version ORDER BY kek_version").fetch_all(p).await).unwrap()
}

/// A rotation re-wraps 10,000 SIM keys while reads and writes go on; none of them fails.
async fn rotation_under_load(store: Store) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const N: u64 = 10_000;
    let app = TestApp::spawn_with(store, |c| {
        c.tasks.lease = std::time::Duration::from_secs(5);
        c.tasks.poll = std::time::Duration::from_millis(100);
    })
    .await;
    app.tenant("acme").await;
    seed_many(&app, N).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    let admin = app.jwt_client("acme", &[Role::Admin]);

    let stop = Arc::new(AtomicBool::new(false));
    let (ops, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut load = Vec::new();
    for worker in 0..4u64 {
        let (prov, stop, ops, failures) =
            (prov.clone(), stop.clone(), ops.clone(), failures.clone());
        load.push(tokio::spawn(async move {
            let mut i = worker;
            while !stop.load(Ordering::Relaxed) {
                i = (i * 7919 + 13) % (N - 1);
                let n = 100_000 + i;
                let ok = if worker == 0 {
                    // A writer: new SIMs with secrets, and replaced secrets.
                    let created = prov.post("/v1/sims", &json!({"iccid": iccid(500_000 + ops.load(Ordering::Relaxed)), "secrets": {"ki": KI}})).await;
                    let put = Api::send(prov.request(reqwest::Method::PUT, &format!("/v1/sims/{}/secrets", iccid(n))).json(&json!({"pin1": "1234"}))).await;
                    created.status == 201 && put.status == 200
                } else {
                    let a = prov.get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n))).await;
                    a.status == 200 && a.body["secrets"]["ki"] == format!("{n:032x}")
                };
                ops.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let started = admin.post("/v1/admin/keys/rotate", &json!({})).await;
    assert_eq!(started.status, 202, "{:?}", started.body);
    assert_eq!(started.body["type"], "key_rotation");
    assert!(
        started.body["total_items"].as_i64().unwrap() >= N as i64,
        "{:?}",
        started.body
    );
    let id = started.body["id"].as_str().unwrap().to_owned();
    assert_eq!(started.headers["location"], format!("/v1/tasks/{id}"));
    let done = wait_for_task(&admin, &id).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["failed_items"], 0);
    assert_eq!(done["pending_items"], 0);
    assert!(ops.load(Ordering::Relaxed) > 20, "the load ran");
    // Its completion is an outbox event, like every task's.
    let events = simvault::store::outbox::events(&app.test_db.db, &tenant_id("acme"))
        .await
        .unwrap();
    let completed: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == "task.completed" && e.payload.contains(&id))
        .collect();
    assert_eq!(completed.len(), 1);
    assert!(completed[0].payload.contains("\"type\":\"key_rotation\""));
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "reads or writes failed during the rotation"
    );

    // Every SIM key is under version 2; version 1 is retired.
    let versions = dek_versions(&app.test_db.db).await;
    assert_eq!(versions.len(), 1, "{versions:?}");
    assert_eq!(versions[0].0, 2);
    let keys = admin.get("/v1/admin/keys").await;
    assert_eq!(keys.status, 200);
    assert_eq!(keys.body["versions"][0]["version"], 1);
    assert_eq!(keys.body["versions"][0]["state"], "retired");
    assert_eq!(keys.body["versions"][0]["deks_in_use"], 0);
    assert_eq!(keys.body["versions"][1]["state"], "active");
    assert_eq!(keys.body["versions"][1]["deks_in_use"], versions[0].1);
    assert_eq!(keys.body["rotation_due"], false);
    // Only administrators rotate or see keys; tasks are readable by readers, in their tenant.
    let support = app.jwt_client("acme", &[Role::Support]);
    assert_eq!(
        support
            .post("/v1/admin/keys/rotate", &json!({}))
            .await
            .status,
        403
    );
    assert_eq!(support.get("/v1/admin/keys").await.status, 403);
    assert_eq!(support.get(&format!("/v1/tasks/{id}")).await.status, 200);
    app.tenant("other").await;
    assert_eq!(
        app.jwt_client("other", &Role::ALL)
            .get(&format!("/v1/tasks/{id}"))
            .await
            .status,
        404
    );
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(100_017)))
        .await;
    assert_eq!(a.body["secrets"]["ki"], format!("{:032x}", 100_017));
}
both_stores!(rotation, rotation_under_load);

/// A worker that dies mid-rotation (its task aborted, its lease left behind) loses nothing:
/// once the lease runs out another worker resumes and completes the task.
async fn rotation_resumes_after_a_crash(store: Store) {
    use tokio::sync::watch;
    // Long enough that the rescuer's first try falls inside it on a loaded machine.
    let lease = std::time::Duration::from_secs(3);
    let app = TestApp::spawn_with(store, |c| {
        c.tasks.lease = lease;
        c.tasks.poll = std::time::Duration::from_secs(3600);
    })
    .await;
    app.tenant("acme").await;
    seed_many(&app, 3000).await;
    let actor = simvault::domain::Principal::local(TenantId::parse("acme").unwrap(), "test");
    let task = app
        .services
        .tasks()
        .start_rotation(&actor, Vec::new())
        .await
        .unwrap();
    let id = task.id.to_string();
    let services = app.services.clone();
    let (_keep, stop) = watch::channel(false);
    let crashed =
        tokio::spawn(async move { services.tasks().run_rotation("doomed", lease, &stop).await });
    let admin = app.jwt_client("acme", &[Role::Admin]);
    loop {
        let t = admin.get(&format!("/v1/tasks/{id}")).await;
        if t.body["completed_items"].as_i64().unwrap() > 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    crashed.abort();
    let _ = crashed.await;
    let mid = admin.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(mid["status"], "running");
    assert!(
        mid["pending_items"].as_i64().unwrap() > 0,
        "crashed before the end: {mid}"
    );
    let versions = dek_versions(&app.test_db.db).await;
    assert_eq!(
        versions.len(),
        2,
        "some keys re-wrapped, some not: {versions:?}"
    );

    // Another worker: nothing to claim while the dead worker's lease lasts, then resumes.
    let (_keep, stop) = watch::channel(false);
    assert_eq!(
        app.services
            .tasks()
            .run_rotation("rescuer", lease, &stop)
            .await
            .unwrap(),
        None
    );
    tokio::time::sleep(lease + std::time::Duration::from_millis(200)).await;
    assert_eq!(
        app.services
            .tasks()
            .run_rotation("rescuer", lease, &stop)
            .await
            .unwrap(),
        Some(id.parse().unwrap())
    );
    let done = admin.get(&format!("/v1/tasks/{id}")).await.body;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(dek_versions(&app.test_db.db).await, vec![(2, 3000)]);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in [100_000u64, 100_001, 101_500, 102_999] {
        let a = prov
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n)))
            .await;
        assert_eq!(a.body["secrets"]["ki"], format!("{n:032x}"), "{n}");
    }
}
both_stores!(rotation_crash, rotation_resumes_after_a_crash);

pub(crate) async fn reopen(app: &TestApp) -> simvault::store::Db {
    app.reopen_db().await
}

/// Root-key rotation re-wraps tenant keys under a new root key; the old key no longer opens
/// the database; a rotation interrupted after the database switched is finished on start.
async fn root_rotation(store: Store) {
    use simvault::clock::SystemClock;
    use simvault::startup;
    use simvault::vault::root::{LocalRootKey, encode_plain, next_path};
    use simvault::vault::{Keyring, RootKeySource};
    let (mut app, prov, sim) = setup(store).await;
    let url = path(&sim, &format!("/secrets?fields={ALL}"));
    let before = prov.get(&url).await.body;
    app.tenant("second").await;
    let second = app.mtls_api("second", &[Role::Provisioner], "p2").await;
    second
        .create_sim(json!({"iccid": iccid(50), "secrets": {"opc": OPC}}))
        .await;
    app.app.stop().await;

    let db = reopen(&app).await;
    let RootKeySource::File(key_path) = app.config.root_key.clone() else {
        panic!("file provider")
    };
    let old_key = std::fs::read(&key_path).unwrap();
    let current = startup::open_vault(&app.config, &db, &SystemClock)
        .await
        .unwrap();
    let new_key = simvault::vault::new_key().unwrap();
    simvault::pki::write_new(
        &next_path(&key_path),
        encode_plain(&new_key).as_bytes(),
        true,
    )
    .unwrap();
    let next = Keyring::new(std::sync::Arc::new(LocalRootKey::new(new_key)));
    let n = simvault::service::tasks::rotation::rotate_root(&db, &current, &next, "test", 1)
        .await
        .unwrap();
    assert_eq!(n, 2, "one key version per tenant");
    // Interrupted here: the database uses the new key, the file is still the old one.
    assert_eq!(std::fs::read(&key_path).unwrap(), old_key);
    let finished = startup::open_vault(&app.config, &db, &SystemClock)
        .await
        .unwrap();
    drop(finished);
    assert_ne!(
        std::fs::read(&key_path).unwrap(),
        old_key,
        "the new key file was moved into place"
    );
    assert!(!next_path(&key_path).exists());

    // The old key is refused now.
    let old_dir = tempfile::tempdir().unwrap();
    let old_path = old_dir.path().join("root.key");
    simvault::pki::write_new(&old_path, &old_key, true).unwrap();
    let mut with_old = app.config.clone();
    with_old.root_key = RootKeySource::File(old_path);
    assert!(
        startup::open_vault(&with_old, &db, &SystemClock)
            .await
            .is_err()
    );

    // A server with the new key reads every secret of every tenant.
    let again =
        startup::Application::build_with(&app.config, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    let base = format!("https://localhost:{}", again.local_addr().port());
    let after = Api {
        app_base: base.clone(),
        client: prov.client.clone(),
        token: None,
    }
    .get(&url)
    .await;
    assert_eq!(after.body, before);
    let other = Api {
        app_base: base,
        client: second.client.clone(),
        token: None,
    };
    assert_eq!(
        other
            .get(&format!("/v1/sims/{}/secrets?fields=opc", iccid(50)))
            .await
            .body["secrets"]["opc"],
        OPC
    );
}
both_stores!(root_key_rotation, root_rotation);
