//! The storage contract of background tasks: task leases, item claims, the still-held check
//! and tenant filters, on every store, each test on a fresh database.

use std::collections::BTreeSet;

use simvault::domain::TaskId;
use simvault::domain::task::{ItemStatus, TaskItem, TaskKind, TaskRecord, TaskStatus};
use simvault::store::Db;
use simvault::store::tasks::{self, Outcome};

use crate::helpers::{Store, TestDb, both_stores, raw_sql, task_no, tenant_id};
use crate::store_contract::{create_tenant, shared_test_key as key};

/// A task claim; every task of these tests is authentic.
async fn claim(
    db: &Db,
    kind: TaskKind,
    owner: &str,
    now: i64,
    until: i64,
) -> simvault::store::StoreResult<Option<TaskRecord>> {
    let claimed = tasks::claim(db, key(), kind, owner, now, until).await?;
    Ok(claimed.map(|t| t.expect("an authentic task")))
}

/// An item claim; every item of these tests is authentic.
async fn claim_items(
    db: &Db,
    task: &TaskId,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
) -> simvault::store::StoreResult<Vec<TaskItem>> {
    let leased = tasks::claim_items(db, key(), task, owner, now, until, limit).await?;
    assert_eq!(leased.refused, [], "every item is authentic");
    Ok(leased.items)
}

const KIND: TaskKind = TaskKind::Import;

fn task(id: &TaskId, tenant: &str, created_at: i64) -> TaskRecord {
    TaskRecord {
        id: *id,
        tenant_id: tenant_id(tenant),
        kind: KIND,
        status: TaskStatus::Pending,
        params: serde_json::json!({"p": 1}),
        total_items: 0,
        completed_items: 0,
        failed_items: 0,
        cancelled_items: 0,
        error: None,
        created_at,
        updated_at: created_at,
        kek_version: None,
        wrapped_key: None,
    }
}

fn item(task_id: &TaskId, seq: i64) -> TaskItem {
    TaskItem {
        task_id: *task_id,
        seq,
        line: Some(seq + 1),
        status: ItemStatus::Pending,
        input: Some(vec![1, 2, 3]),
        sim_id: None,
        result: None,
        error: None,
    }
}

async fn insert(db: &Db, t: &TaskRecord, items: &[TaskItem]) {
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, key(), t).await.unwrap();
    tasks::insert_items(&mut tx, key(), items).await.unwrap();
    tx.commit().await.unwrap();
}

/// A task's lease: one claimer at a time, re-claimable once expired, extended and ended
/// only by its holder.
async fn task_leases(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    insert(db, &task(&task_no(1), "a", 10), &[]).await;

    // Two claimers at once: exactly one gets the lease.
    let (x, y) = tokio::join!(
        claim(db, KIND, "w1", 100, 200),
        claim(db, KIND, "w2", 100, 200)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(
        usize::from(x.is_some()) + usize::from(y.is_some()),
        1,
        "one claimer wins"
    );
    let (holder, other) = if x.is_some() {
        ("w1", "w2")
    } else {
        ("w2", "w1")
    };
    let claimed = x.or(y).unwrap();
    assert_eq!(
        (claimed.id, claimed.status.as_str()),
        (task_no(1), "running")
    );
    assert_eq!(claimed.params, serde_json::json!({"p": 1}));
    // While the lease runs, nobody else takes it, and only its holder records progress.
    assert_eq!(claim(db, KIND, other, 150, 250).await.unwrap(), None);
    let mut tx = db.begin().await.unwrap();
    assert!(
        !tasks::progress(&mut tx, &task_no(1), other, 1, 0, 150, 300)
            .await
            .unwrap()
    );
    assert!(
        tasks::progress(&mut tx, &task_no(1), holder, 2, 1, 150, 300)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // The extended lease holds at 250; expired at 301, the other claimer takes it over.
    assert_eq!(claim(db, KIND, other, 250, 400).await.unwrap(), None);
    let again = claim(db, KIND, other, 301, 400).await.unwrap().unwrap();
    assert_eq!((again.completed_items, again.failed_items), (2, 1));
    // The old holder lost it: it can neither progress nor finish the task.
    let mut tx = db.begin().await.unwrap();
    assert!(
        !tasks::progress(&mut tx, &task_no(1), holder, 1, 0, 302, 500)
            .await
            .unwrap()
    );
    assert!(
        !tasks::finish(
            &mut tx,
            &task_no(1),
            holder,
            TaskStatus::Completed,
            None,
            302
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    // Released early, it is claimable at once, before the lease would have run out.
    tasks::release(db, &task_no(1), holder).await.unwrap();
    assert_eq!(claim(db, KIND, holder, 303, 500).await.unwrap(), None);
    tasks::release(db, &task_no(1), other).await.unwrap();
    let third = claim(db, KIND, holder, 303, 500).await.unwrap().unwrap();
    assert_eq!(third.id, task_no(1));
    let mut tx = db.begin().await.unwrap();
    assert!(
        tasks::finish(
            &mut tx,
            &task_no(1),
            holder,
            TaskStatus::Failed,
            Some("boom"),
            304
        )
        .await
        .unwrap()
    );
    tx.commit().await.unwrap();
    // A finished task is never claimed again.
    assert_eq!(claim(db, KIND, other, 10_000, 20_000).await.unwrap(), None);
    let done = tasks::get(db, key(), &tenant_id("a"), &task_no(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status.as_str(), done.error.as_deref()),
        ("failed", Some("boom"))
    );
}
both_stores!(task_lease_contract, task_leases);

/// Items are claimed in disjoint batches, re-claimable when their lease expires; the
/// still-held check names only the caller's live items; outcomes clear input and lease.
async fn item_claims(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    let items: Vec<TaskItem> = (1..=10).map(|seq| item(&task_no(1), seq)).collect();
    insert(db, &task(&task_no(1), "a", 10), &items).await;

    let found = tasks::with_claimable_items(db, &[KIND], 100).await.unwrap();
    assert_eq!(found, Some(task_no(1)));
    assert_eq!(
        tasks::with_claimable_items(db, &[TaskKind::ProvisionLinks], 100)
            .await
            .unwrap(),
        None
    );

    let t1 = task_no(1);
    let (x, y) = tokio::join!(
        claim_items(db, &t1, "w1", 100, 200, 4),
        claim_items(db, &t1, "w2", 100, 200, 4)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    // (PostgreSQL may give a racing claimer fewer than it asked for, never a taken item.)
    assert!(
        x.len() <= 4 && y.len() <= 4 && x.len() + y.len() >= 4,
        "{} {}",
        x.len(),
        y.len()
    );
    let seqs = |v: &[TaskItem]| v.iter().map(|i| i.seq).collect::<BTreeSet<_>>();
    assert!(seqs(&x).is_disjoint(&seqs(&y)), "no item is claimed twice");
    assert!(x.windows(2).all(|w| w[0].seq < w[1].seq), "in order");
    assert!(
        x.iter()
            .chain(&y)
            .all(|i| i.input.as_deref() == Some(&[1u8, 2, 3][..]))
    );
    // The rest go to a third claimer; then nothing is left until the leases expire.
    let z = claim_items(db, &task_no(1), "w3", 100, 200, 10)
        .await
        .unwrap();
    assert!(seqs(&z).is_disjoint(&seqs(&x)) && seqs(&z).is_disjoint(&seqs(&y)));
    assert_eq!(x.len() + y.len() + z.len(), 10);
    assert!(
        claim_items(db, &task_no(1), "w4", 150, 250, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        tasks::with_claimable_items(db, &[KIND], 150).await.unwrap(),
        None
    );

    // w1's lease ran out and w4 took its items over: w1 holds none of them any more.
    let w4 = claim_items(db, &task_no(1), "w4", 201, 300, 10)
        .await
        .unwrap();
    assert_eq!(w4.len(), 10, "every expired item is claimable");
    let mut tx = db.begin().await.unwrap();
    assert!(
        tasks::still_held(&mut tx, &task_no(1), "w1", &x)
            .await
            .unwrap()
            .is_empty()
    );
    let held = tasks::still_held(&mut tx, &task_no(1), "w4", &w4)
        .await
        .unwrap();
    assert_eq!(held.len(), 10);
    let outcomes: Vec<Outcome> = w4
        .iter()
        .map(|i| Outcome {
            seq: i.seq,
            succeeded: i.seq % 2 == 0,
            sim_id: None,
            result: Some("{}".into()),
            error: (i.seq % 2 == 1).then(|| "bad".into()),
        })
        .collect();
    tasks::record_outcomes(&mut tx, &task_no(1), &outcomes, 250)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Nothing pending is left: the task is found for finishing, and its items read back.
    assert_eq!(
        tasks::without_pending(db, &[KIND]).await.unwrap(),
        [task_no(1)]
    );
    let mut tx = db.begin().await.unwrap();
    let done = tasks::lock_if_done(&mut tx, key(), &task_no(1))
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((done.completed_items, done.failed_items), (5, 5));
    tasks::complete(&mut tx, &task_no(1), TaskStatus::Completed, 260)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        tasks::lock_if_done(&mut tx, key(), &task_no(1))
            .await
            .unwrap(),
        None
    );
    drop(tx);
    let (failed, total) = tasks::items(db, &task_no(1), Some(ItemStatus::Failed), 0, 100)
        .await
        .unwrap();
    assert_eq!((failed.len(), total), (5, 5));
    assert!(
        failed
            .iter()
            .all(|i| i.input.is_none() && i.error.as_deref() == Some("bad"))
    );
    let (page, total) = tasks::items(db, &task_no(1), None, 8, 5).await.unwrap();
    assert_eq!((page.len(), total), (2, 10));
    assert_eq!(page[0].seq, 9);
}
both_stores!(item_claim_contract, item_claims);

/// A tenant's task is never returned to another tenant.
async fn tasks_are_tenant_scoped(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    insert(db, &task(&task_no(0xa), "a", 1), &[]).await;
    assert_eq!(
        tasks::get(db, key(), &tenant_id("a"), &task_no(0xa))
            .await
            .unwrap()
            .map(|t| t.id),
        Some(task_no(0xa))
    );
    assert_eq!(
        tasks::get(db, key(), &tenant_id("b"), &task_no(0xa))
            .await
            .unwrap(),
        None
    );
    // Read inside a transaction, a task inserted there is seen by its tenant only.
    let mut tx = db.begin().await.unwrap();
    tasks::insert(&mut tx, key(), &task(&task_no(0xb), "b", 2))
        .await
        .unwrap();
    assert!(
        tasks::get(&mut tx, key(), &tenant_id("b"), &task_no(0xb))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        tasks::get(&mut tx, key(), &tenant_id("a"), &task_no(0xb))
            .await
            .unwrap(),
        None
    );
    drop(tx);
    assert_eq!(
        tasks::get(db, key(), &tenant_id("b"), &task_no(0xb))
            .await
            .unwrap(),
        None,
        "rolled back"
    );
    // A task of a tenant that does not exist is refused.
    let mut tx = db.begin().await.unwrap();
    assert!(
        tasks::insert(&mut tx, key(), &task(&task_no(0xf), "nope", 3))
            .await
            .is_err()
    );
}
both_stores!(task_tenant_contract, tasks_are_tenant_scoped);

/// A claim leases at most the batch it asks for (PostgreSQL once leased every pending item).
async fn item_claims_take_one_batch(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    let items: Vec<TaskItem> = (1..=10).map(|seq| item(&task_no(1), seq)).collect();
    insert(db, &task(&task_no(1), "a", 10), &items).await;
    let seqs = |v: Vec<TaskItem>| v.into_iter().map(|i| i.seq).collect::<Vec<_>>();
    let first = claim_items(db, &task_no(1), "w1", 100, 200, 4)
        .await
        .unwrap();
    assert_eq!(seqs(first), [1, 2, 3, 4]);
    let second = claim_items(db, &task_no(1), "w2", 100, 200, 4)
        .await
        .unwrap();
    assert_eq!(seqs(second), [5, 6, 7, 8]);
    let third = claim_items(db, &task_no(1), "w3", 100, 200, 4)
        .await
        .unwrap();
    assert_eq!(seqs(third), [9, 10]);
}
both_stores!(item_batch_contract, item_claims_take_one_batch);

/// What the worker obeys of a task is checked against its MAC: parameters that survive the
/// store's round trip (PostgreSQL's `jsonb` reorders members) verify; a task or item changed
/// in storage, or without a MAC, is handed back only as what it takes to fail it.
async fn unauthentic_tasks_and_items_are_refused(store: Store) {
    use simvault::store::tasks::{Refused, Unauthentic};
    use simvault::vault::{IntegrityFailure, Purpose};
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    let params = serde_json::json!({
        "zeta": 1, "actor": {"tenant": "a", "roles": ["operator"]}, "mid": null, "b": [2.5, "x"]
    });
    let task = TaskRecord {
        params: params.clone(),
        ..task(&task_no(1), "a", 10)
    };
    insert(db, &task, &[item(&task_no(1), 1), item(&task_no(1), 2)]).await;
    let authentic = tasks::runnable(db, key(), &task_no(1)).await.unwrap();
    assert_eq!(authentic, Some(Ok(task.clone())), "read back as written");

    let set_params = |value: serde_json::Value| async move {
        raw_sql!(db, p => sqlx::query("UPDATE tasks SET params = $1")
            .bind(sqlx::types::Json(value))
            .execute(p).await.map(|_| ()))
        .unwrap();
    };
    let mut forged = params.clone();
    forged["actor"]["tenant"] = "b".into();
    set_params(forged).await;
    let refused = Refused {
        id: task_no(1),
        tenant_id: tenant_id("a"),
        kind: KIND,
        why: Unauthentic::Tampered(IntegrityFailure {
            purpose: Purpose::Task,
            row: task_no(1).to_string(),
        }),
    };
    assert_eq!(
        tasks::runnable(db, key(), &task_no(1)).await.unwrap(),
        Some(Err(refused.clone()))
    );
    assert_eq!(
        tasks::claim(db, key(), KIND, "w1", 100, 200).await.unwrap(),
        Some(Err(refused)),
        "claimed only to be failed"
    );
    assert!(matches!(
        tasks::get(db, key(), &tenant_id("a"), &task_no(1)).await,
        Err(simvault::store::StoreError::Integrity(_))
    ));
    // Put back, it verifies again.
    set_params(params).await;
    assert!(matches!(
        tasks::runnable(db, key(), &task_no(1)).await.unwrap(),
        Some(Ok(_))
    ));
    // Without its MAC it is never run, though its owner may read it.
    raw_sql!(db, p => sqlx::query("UPDATE tasks SET mac = NULL").execute(p).await.map(|_| ()))
        .unwrap();
    assert!(matches!(
        tasks::runnable(db, key(), &task_no(1)).await.unwrap(),
        Some(Err(Refused {
            why: Unauthentic::Unsealed,
            ..
        }))
    ));
    assert!(
        tasks::get(db, key(), &tenant_id("a"), &task_no(1))
            .await
            .unwrap()
            .is_some()
    );

    // An item's input changed: leased, but refused; the other one is authentic.
    raw_sql!(db, p => sqlx::query("UPDATE task_items SET input = $1 WHERE seq = 2")
        .bind(vec![9_u8])
        .execute(p).await.map(|_| ()))
    .unwrap();
    let leased = tasks::claim_items(db, key(), &task_no(1), "w1", 100, 200, 10)
        .await
        .unwrap();
    assert_eq!(leased.items.iter().map(|i| i.seq).collect::<Vec<_>>(), [1]);
    assert_eq!(
        leased.refused,
        [Unauthentic::Tampered(IntegrityFailure {
            purpose: Purpose::TaskItem,
            row: format!("{}/2", task_no(1)),
        })]
    );
}
both_stores!(
    task_refusal_contract,
    unauthentic_tasks_and_items_are_refused
);
