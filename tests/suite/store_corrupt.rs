//! The storage contract for stored text this release cannot read: a tenant column that is no
//! tenant name, a state column naming no state, an id column that is no UUID. Such a row reads as
//! [`StoreError::Corrupt`], on every store: never a default, never a panic.

use simvault::domain::audit::HistoryRow;
use simvault::domain::task::{ItemStatus, TaskItem, TaskKind, TaskRecord, TaskStatus};
use simvault::domain::{SimState, TaskId};
use simvault::store::sims as sim_repo;
use simvault::store::{Db, StoreError, lifecycle, tasks, webhooks};
use simvault::vault::{Purpose, RowParts};

use crate::helpers::{Store, TestDb, both_stores, raw_sql, task_no, tenant_id};
use crate::store_contract::{create_tenant, shared_test_key, sim, test_key};

/// Not a tenant's name (upper case, a space), yet a row of `tenants` so that the foreign
/// keys hold: the store alone must refuse it.
const BAD_TENANT: &str = "Not A Tenant";

/// The stored form of `task_no(1)`, for the SQL that changes its row.
const T1: &str = "00000000-0000-0000-0000-000000000001";

fn task(id: &TaskId) -> TaskRecord {
    TaskRecord {
        id: *id,
        tenant_id: tenant_id("a"),
        kind: TaskKind::Import,
        status: TaskStatus::Pending,
        params: serde_json::json!({}),
        total_items: 1,
        completed_items: 0,
        failed_items: 0,
        cancelled_items: 0,
        error: None,
        created_at: 1,
        updated_at: 1,
        kek_version: None,
        wrapped_key: None,
    }
}

fn item(task_id: &TaskId) -> TaskItem {
    TaskItem {
        task_id: *task_id,
        seq: 1,
        line: None,
        status: ItemStatus::Succeeded,
        input: None,
        sim_id: None,
        result: None,
        error: None,
    }
}

async fn setup(db: &Db, id: &TaskId) {
    create_tenant(db, "a").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, shared_test_key(), &task(id))
        .await
        .unwrap();
    tasks::insert_items(&mut tx, shared_test_key(), &[item(id)])
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn execute(db: &Db, sql: &'static str) {
    raw_sql!(db, p => sqlx::query(sql).execute(p).await.map(|_| ())).unwrap();
}

fn assert_corrupt<T: std::fmt::Debug>(got: Result<T, StoreError>, what: &str) {
    assert!(
        matches!(got, Err(StoreError::Corrupt(_))),
        "{what}: {got:?}"
    );
}

/// A task row whose tenant column names no tenant.
async fn corrupt_task_tenant(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    setup(db, &task_no(1)).await;
    execute(
        db,
        "INSERT INTO tenants (id, created_at) VALUES ('Not A Tenant', 1)",
    )
    .await;
    execute(
        db,
        "UPDATE tasks SET tenant_id = 'Not A Tenant' \
         WHERE id = '00000000-0000-0000-0000-000000000001'",
    )
    .await;
    let mut tx = db.begin().await.unwrap();
    assert_corrupt(
        tasks::lock_if_done(&mut tx, shared_test_key(), &task_no(1)).await,
        "the task",
    );
    drop(tx);
    assert_ne!(tenant_id("a").as_str(), BAD_TENANT);
    assert_eq!(task_no(1).to_string(), T1);
}
both_stores!(corrupt_task_tenant_contract, corrupt_task_tenant);

/// A SIM row whose tenant column names no tenant: the upstream sync's claim reads it as
/// corrupt (it carries no MAC check that could refuse it first).
async fn corrupt_sim_tenant(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    create_tenant(db, "a").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    sim_repo::insert(&mut tx, &test_key(), &sim("a", 1))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    execute(
        db,
        "INSERT INTO tenants (id, created_at) VALUES ('Not A Tenant', 1)",
    )
    .await;
    execute(db, "UPDATE sims SET tenant_id = 'Not A Tenant'").await;
    assert_corrupt(
        sim_repo::claim_due(db, i64::MAX, i64::MAX, 10).await,
        "the claim",
    );
}
both_stores!(corrupt_sim_tenant_contract, corrupt_sim_tenant);

/// A state history row whose state column names no state, then one whose tenant column
/// names no tenant (the task and item state columns are held by CHECK constraints; the
/// history's and the task kind are not).
async fn corrupt_history(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    create_tenant(db, "a").await.unwrap();
    let s = sim("a", 1);
    let mut tx = db.begin().await.unwrap();
    sim_repo::insert(&mut tx, &test_key(), &s).await.unwrap();
    lifecycle::insert_history(
        &mut tx,
        &HistoryRow {
            id: "h1".into(),
            tenant_id: tenant_id("a"),
            sim_id: s.id.to_string(),
            from_state: SimState::Inventory,
            to_state: SimState::Active,
            reason: None,
            actor: "x".into(),
            auth_method: "local".into(),
            occurred_at: 1,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let sim_id = s.id.to_string();
    let (rows, _) = lifecycle::history(db, &sim_id, 10, 0).await.unwrap();
    assert_eq!(rows[0].to_state, SimState::Active, "read back as written");

    execute(db, "UPDATE sim_state_history SET to_state = 'dormant'").await;
    assert_corrupt(lifecycle::history(db, &sim_id, 10, 0).await, "a state");
    execute(db, "UPDATE sim_state_history SET to_state = 'active'").await;
    execute(
        db,
        "INSERT INTO tenants (id, created_at) VALUES ('Not A Tenant', 1)",
    )
    .await;
    execute(
        db,
        "UPDATE sim_state_history SET tenant_id = 'Not A Tenant'",
    )
    .await;
    assert_corrupt(lifecycle::history(db, &sim_id, 10, 0).await, "a tenant");
}
both_stores!(corrupt_history_contract, corrupt_history);

/// A task's kind column naming no kind.
async fn corrupt_task_kind(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    setup(db, &task_no(1)).await;
    execute(
        db,
        "UPDATE tasks SET type = 'defragment' WHERE id = '00000000-0000-0000-0000-000000000001'",
    )
    .await;
    assert_corrupt(
        tasks::get(db, shared_test_key(), &tenant_id("a"), &task_no(1)).await,
        "the task",
    );
}
both_stores!(corrupt_task_kind_contract, corrupt_task_kind);

/// A task row whose id column is no UUID: claiming it, and finding it for finishing, read
/// it as corrupt.
async fn corrupt_task_id(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    create_tenant(db, "a").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, shared_test_key(), &task(&task_no(1)))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        tasks::without_pending(db, &[TaskKind::Import])
            .await
            .unwrap(),
        [task_no(1)],
        "read back as written"
    );
    execute(db, "UPDATE tasks SET id = 't1'").await;
    assert_corrupt(
        tasks::without_pending(db, &[TaskKind::Import]).await,
        "the task to finish",
    );
    assert_corrupt(
        tasks::claim(db, shared_test_key(), TaskKind::Import, "w1", 100, 200).await,
        "the claimed task",
    );
}
both_stores!(corrupt_task_id_contract, corrupt_task_id);

/// A webhook row whose id column is no UUID, though its MAC (made over the columns as
/// stored) holds: listing the tenant's webhooks and the fan-out read it as corrupt.
async fn corrupt_webhook_id(store: Store) {
    let test_db = TestDb::new(store).await;
    let db = &test_db.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    let (url, events) = ("https://h1.example/hook", r#"["sim.state_changed"]"#);
    let mac = key.mac_row(
        Purpose::Webhook,
        &RowParts::default()
            .text("h1")
            .text("a")
            .text(url)
            .text(events)
            .int(1),
    );
    raw_sql!(db, p => sqlx::query(
        "INSERT INTO webhooks (id, tenant_id, url, events, description, kek_version, secret, \
         created_at, mac) VALUES ('h1', 'a', $1, $2, NULL, 1, $3, 1, $4)")
        .bind(url)
        .bind(events)
        .bind(vec![9_u8; 16])
        .bind(mac.to_vec())
        .execute(p).await.map(|_| ()))
    .unwrap();
    assert_corrupt(
        webhooks::list(db, &key, &tenant_id("a")).await,
        "the tenant's webhooks",
    );
    let mut tx = db.begin().await.unwrap();
    assert_corrupt(
        webhooks::of_tenants(&mut tx, &key, &[&tenant_id("a")]).await,
        "the fan-out's webhooks",
    );
}
both_stores!(corrupt_webhook_id_contract, corrupt_webhook_id);
