//! The storage contract of the audit log: appends follow a chain's locked head, reads walk
//! one tenant's chain in either direction with filters, and checkpoints are stored once, on
//! every store, each test on a fresh database.

use simvault::domain::audit::Checkpoint;
use simvault::store::Db;
use simvault::store::audit::{self, AuditFilter, AuditRow, Order};

use crate::helpers::{Store, TestDb, both_stores};

fn record(tenant: &str, seq: i64, prev: &str) -> AuditRow {
    AuditRow {
        tenant_id: tenant.into(),
        seq,
        id: format!("{tenant}-{seq}"),
        occurred_at: seq * 10,
        action: if seq % 2 == 0 {
            "sim.read"
        } else {
            "sim.create"
        }
        .into(),
        outcome: if seq == 3 { "denied" } else { "allowed" }.into(),
        subject: format!("user{}", seq % 3),
        sim_id: Some(format!("sim{}", seq % 2)),
        iccid: Some(format!("8944{}", seq % 2)),
        record: format!("{{\"seq\":{seq}}}"),
        prev_hash: prev.into(),
        hash: format!("h-{tenant}-{seq}"),
    }
}

/// Appends `n` records to `tenant`'s chain after its locked head.
async fn append(db: &Db, tenant: &str, n: i64) {
    let mut tx = db.begin().await.unwrap();
    let (mut seq, mut prev) = audit::lock_head(&mut tx, tenant).await.unwrap();
    let mut rows = Vec::new();
    for _ in 0..n {
        seq += 1;
        let r = record(tenant, seq, &prev);
        prev = r.hash.clone();
        rows.push(r);
    }
    audit::append(&mut tx, &rows).await.unwrap();
    tx.commit().await.unwrap();
}

async fn chains(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    assert_eq!(audit::head(db, "a").await.unwrap(), None);
    // A locked head starts empty; appends move it; a rolled-back append leaves it.
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        audit::lock_head(&mut tx, "a").await.unwrap(),
        (0, String::new())
    );
    drop(tx);
    append(db, "a", 4).await;
    append(db, "a", 2).await;
    append(db, "b", 3).await;
    let mut tx = db.begin().await.unwrap();
    audit::lock_head(&mut tx, "a").await.unwrap();
    audit::append(&mut tx, &[record("a", 7, "h-a-6")])
        .await
        .unwrap();
    assert_eq!(
        audit::head(&mut tx, "a").await.unwrap(),
        Some((7, "h-a-7".into()))
    );
    drop(tx);
    assert_eq!(
        audit::head(db, "a").await.unwrap(),
        Some((6, "h-a-6".into()))
    );
    assert_eq!(
        audit::heads(db).await.unwrap(),
        [
            ("a".into(), 6, "h-a-6".into()),
            ("b".into(), 3, "h-b-3".into())
        ]
    );

    // Pages walk one chain in order and link up.
    let page = audit::page(db, "a", 0, 100).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.seq).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6]
    );
    assert!(page.windows(2).all(|w| w[1].prev_hash == w[0].hash));
    assert_eq!(page[0], record("a", 1, ""));
    assert_eq!(audit::page(db, "a", 4, 1).await.unwrap()[0].seq, 5);
    assert!(audit::page(db, "c", 0, 100).await.unwrap().is_empty());

    // Filters combine, in both directions, and never cross tenants.
    let seqs = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.seq).collect::<Vec<_>>();
    let find = |filter: AuditFilter, order| async move {
        seqs(audit::find(db, "a", &filter, order, 100).await.unwrap())
    };
    let all = AuditFilter::default();
    assert_eq!(
        find(all.clone(), Order::Forward { after: 2 }).await,
        [3, 4, 5, 6]
    );
    assert_eq!(
        find(all.clone(), Order::Backward { before: 3 }).await,
        [2, 1]
    );
    let reads = AuditFilter {
        action: Some("sim.read".into()),
        ..AuditFilter::default()
    };
    assert_eq!(find(reads, Order::Forward { after: 0 }).await, [2, 4, 6]);
    let by_sim = AuditFilter {
        sim: Some("sim1".into()),
        outcome: Some("allowed".into()),
        ..AuditFilter::default()
    };
    assert_eq!(find(by_sim, Order::Forward { after: 0 }).await, [1, 5]);
    let by_iccid = AuditFilter {
        sim: Some("89440".into()),
        actor: Some("user1".into()),
        ..AuditFilter::default()
    };
    assert_eq!(find(by_iccid, Order::Forward { after: 0 }).await, [4]);
    let window = AuditFilter {
        since: Some(20),
        until: Some(50),
        ..AuditFilter::default()
    };
    assert_eq!(
        find(window, Order::Backward { before: i64::MAX }).await,
        [4, 3, 2]
    );
    let limited = audit::find(db, "b", &all, Order::Forward { after: 0 }, 2)
        .await
        .unwrap();
    assert_eq!(
        limited.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["b-1", "b-2"]
    );
}
both_stores!(audit_chain_contract, chains);

async fn checkpoints(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    append(db, "a", 5).await;
    append(db, "b", 2).await;
    assert_eq!(
        audit::unsigned_heads(db).await.unwrap(),
        [
            ("a".into(), 5, "h-a-5".into()),
            ("b".into(), 2, "h-b-2".into())
        ]
    );
    let mark = |seq: i64, signature: &str| Checkpoint {
        tenant_id: "a".into(),
        seq,
        hash: format!("h-a-{seq}"),
        signed_at: seq,
        key_id: "k".into(),
        signature: signature.into(),
    };
    audit::insert_checkpoint(db, &mark(3, "first"))
        .await
        .unwrap();
    // Another replica's checkpoint for the same position: the first one stays.
    audit::insert_checkpoint(db, &mark(3, "second"))
        .await
        .unwrap();
    audit::insert_checkpoint(db, &mark(5, "s5")).await.unwrap();
    assert_eq!(
        audit::checkpoints(db, "a", 0, 100).await.unwrap(),
        [mark(3, "first"), mark(5, "s5")]
    );
    assert!(audit::checkpoints(db, "a", 3, 4).await.unwrap().is_empty());
    assert!(
        audit::checkpoints(db, "b", 0, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        audit::unsigned_heads(db).await.unwrap(),
        [("b".into(), 2, "h-b-2".into())]
    );
    append(db, "a", 1).await;
    assert_eq!(
        audit::unsigned_heads(db).await.unwrap(),
        [
            ("a".into(), 6, "h-a-6".into()),
            ("b".into(), 2, "h-b-2".into())
        ]
    );
}
both_stores!(audit_checkpoint_contract, checkpoints);
