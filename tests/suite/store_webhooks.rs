//! The storage contract of the webhook outbox: events fanned out once, deliveries claimed
//! in disjoint batches under leases that only their holder can settle, and subscriptions
//! scoped to their tenant, on every store, each test on a fresh database.

use std::collections::BTreeSet;

use simvault::domain::event::{DomainEvent, TaskCompletion};
use simvault::domain::webhook::{DueDelivery, WebhookSubscription};
use simvault::store::outbox;
use simvault::store::webhooks::{self, Attempt, NewDelivery};
use simvault::store::{Db, StoreError};
use simvault::vault::IntegrityKey;

use crate::helpers::{Store, TestDb, both_stores, hook_no, raw_sql, tenant_id};
use crate::store_contract::{create_tenant, test_key};

/// Webhook `n` of `tenant`, sending to `https://h{n}.example/hook`.
fn hook(n: u128, tenant: &str) -> WebhookSubscription {
    WebhookSubscription {
        id: hook_no(n),
        tenant_id: tenant_id(tenant),
        url: format!("https://h{n}.example/hook"),
        events: r#"["sim.state_changed"]"#.into(),
        description: Some("d".into()),
        kek_version: 1,
        secret: vec![9; 16],
        created_at: 1,
    }
}

fn event(id: &str, tenant: &str, at: i64) -> DomainEvent {
    let task = TaskCompletion {
        task_id: id.into(),
        kind: "import".into(),
        status: "completed".into(),
        total_items: 0,
        completed_items: 0,
        failed_items: 0,
    };
    DomainEvent::task_completed(&tenant_id(tenant), task, at)
}

async fn add_hook(db: &Db, key: &IntegrityKey, w: &WebhookSubscription) {
    let mut tx = db.begin().await.unwrap();
    webhooks::insert(&mut tx, key, w).await.unwrap();
    tx.commit().await.unwrap();
}

/// Queues `n` events of tenant `a` and fans each out to webhook `h1`.
async fn queue_deliveries(db: &Db, n: usize) {
    let events: Vec<DomainEvent> = (0..n)
        .map(|i| event(&format!("e{i:02}"), "a", i64::try_from(i).unwrap()))
        .collect();
    let mut tx = db.begin().await.unwrap();
    outbox::insert(&mut tx, &events).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let pending = outbox::undispatched(&mut tx, 100).await.unwrap();
    assert_eq!(pending.len(), n);
    let deliveries: Vec<NewDelivery> = pending
        .iter()
        .map(|e| NewDelivery {
            id: format!("d-{}", e.id),
            webhook_id: hook_no(1),
            tenant_id: tenant_id(&e.tenant_id),
            event_id: e.id.clone(),
            event_type: e.event_type.clone(),
        })
        .collect();
    let ids: Vec<String> = pending.iter().map(|e| e.id.clone()).collect();
    webhooks::fan_out(&mut tx, &deliveries, &ids, 0)
        .await
        .unwrap();
    // A repeated fan-out (another replica's) queues nothing twice.
    webhooks::fan_out(&mut tx, &deliveries, &ids, 0)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

/// Subscriptions belong to their tenant: get, list and delete never reach another's, and a
/// row changed behind the store's back is refused.
async fn webhooks_are_tenant_scoped(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    add_hook(db, &key, &hook(1, "a")).await;
    add_hook(db, &key, &hook(2, "b")).await;
    assert_eq!(
        webhooks::get(db, &key, &tenant_id("a"), &hook_no(1))
            .await
            .unwrap(),
        Some(hook(1, "a"))
    );
    assert_eq!(
        webhooks::get(db, &key, &tenant_id("b"), &hook_no(1))
            .await
            .unwrap(),
        None
    );
    let ids = |v: Vec<WebhookSubscription>| v.into_iter().map(|w| w.id).collect::<Vec<_>>();
    assert_eq!(
        ids(webhooks::list(db, &key, &tenant_id("a")).await.unwrap()),
        [hook_no(1)]
    );
    assert_eq!(
        ids(webhooks::list(db, &key, &tenant_id("b")).await.unwrap()),
        [hook_no(2)]
    );
    let mut tx = db.begin().await.unwrap();
    let (good, bad) = webhooks::of_tenants(&mut tx, &key, &[&tenant_id("a")])
        .await
        .unwrap();
    assert_eq!((ids(good), bad.len()), (vec![hook_no(1)], 0));
    assert!(
        !webhooks::delete(&mut tx, &tenant_id("b"), &hook_no(1))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert!(
        webhooks::get(db, &key, &tenant_id("a"), &hook_no(1))
            .await
            .unwrap()
            .is_some()
    );

    // A swapped URL fails the row's check: get refuses it, the fan-out reports it.
    raw_sql!(db, p => sqlx::query(
        "UPDATE webhooks SET url = 'https://evil.example/' WHERE id = $1")
        .bind(hook_no(2).to_string())
        .execute(p).await.map(|_| ()))
    .unwrap();
    assert!(matches!(
        webhooks::get(db, &key, &tenant_id("b"), &hook_no(2)).await,
        Err(StoreError::Integrity(_))
    ));
    let (good, bad) = webhooks::of_tenants(db, &key, &[&tenant_id("a"), &tenant_id("b")])
        .await
        .unwrap();
    assert_eq!((ids(good), bad.len()), (vec![hook_no(1)], 1));

    let mut tx = db.begin().await.unwrap();
    assert!(
        webhooks::delete(&mut tx, &tenant_id("a"), &hook_no(1))
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    assert_eq!(
        webhooks::get(db, &key, &tenant_id("a"), &hook_no(1))
            .await
            .unwrap(),
        None
    );
}
both_stores!(webhook_tenant_contract, webhooks_are_tenant_scoped);

/// Events are fanned out once; deliveries are claimed in disjoint batches of at most the
/// limit, re-claimable when their lease expires, and settled only by their holder.
/// Claims due deliveries of webhooks whose rows all read: none is refused.
async fn claim(
    db: &Db,
    key: &IntegrityKey,
    owner: &str,
    now: i64,
    until: i64,
    limit: i64,
    busy: &[simvault::domain::WebhookId],
) -> Result<Vec<DueDelivery>, StoreError> {
    let (due, refused) = webhooks::claim_due(db, key, owner, now, until, limit, busy).await?;
    assert!(refused.is_empty(), "{refused:?}");
    Ok(due)
}

async fn delivery_claims(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    add_hook(db, &key, &hook(1, "a")).await;
    assert!(!outbox::any_undispatched(db).await.unwrap());
    let mut tx = db.begin().await.unwrap();
    outbox::insert(&mut tx, &[event("probe", "a", 0)])
        .await
        .unwrap();
    assert!(outbox::any_undispatched(&mut tx).await.unwrap());
    drop(tx);
    queue_deliveries(db, 10).await;
    assert!(!outbox::any_undispatched(db).await.unwrap());
    let mut tx = db.begin().await.unwrap();
    assert!(outbox::undispatched(&mut tx, 100).await.unwrap().is_empty());
    drop(tx);
    assert!(webhooks::any_due(db, 0).await.unwrap());
    assert_eq!(
        webhooks::deliveries(db, &hook_no(1), 100, 0)
            .await
            .unwrap()
            .1,
        10
    );

    // One claim takes at most its batch.
    let first = claim(db, &key, "w1", 5, 100, 4, &[]).await.unwrap();
    assert_eq!(first.len(), 4);
    assert!(
        first
            .iter()
            .all(|d| d.tampered.is_none() && d.url == "https://h1.example/hook")
    );
    // Concurrent claimers take disjoint sets; together with the first, every delivery once.
    let (x, y) = tokio::join!(
        claim(db, &key, "w2", 5, 100, 4, &[]),
        claim(db, &key, "w3", 5, 100, 4, &[])
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids = |v: &[DueDelivery]| v.iter().map(|d| d.id.clone()).collect::<BTreeSet<_>>();
    assert!(ids(&x).is_disjoint(&ids(&y)) && ids(&first).is_disjoint(&ids(&x)));
    assert!(ids(&first).is_disjoint(&ids(&y)));
    let rest = claim(db, &key, "w4", 5, 100, 10, &[]).await.unwrap();
    assert_eq!(first.len() + x.len() + y.len() + rest.len(), 10);
    assert!(
        claim(db, &key, "w5", 50, 100, 10, &[])
            .await
            .unwrap()
            .is_empty()
    );

    // Only the holder settles a delivery.
    let d = &first[0];
    let delivered = Attempt::Delivered { status: 200 };
    assert!(
        !webhooks::record_attempt(db, &d.id, "w2", &delivered, 60)
            .await
            .unwrap()
    );
    assert!(
        webhooks::record_attempt(db, &d.id, "w1", &delivered, 60)
            .await
            .unwrap()
    );
    assert!(
        !webhooks::record_attempt(db, &d.id, "w1", &delivered, 61)
            .await
            .unwrap()
    );
    let retry = Attempt::Retry {
        status: Some(500),
        error: "HTTP 500".into(),
        next_at: 1_000,
    };
    assert!(
        webhooks::record_attempt(db, &first[1].id, "w1", &retry, 60)
            .await
            .unwrap()
    );
    let gave_up = Attempt::GaveUp {
        status: None,
        error: "refused".into(),
    };
    assert!(
        webhooks::record_attempt(db, &first[2].id, "w1", &gave_up, 60)
            .await
            .unwrap()
    );
    assert!(!webhooks::release(db, &first[3].id, "w2").await.unwrap());
    assert!(webhooks::release(db, &first[3].id, "w1").await.unwrap());

    // The released one is due at once; the retried one only at its time; the settled never.
    let again = claim(db, &key, "w6", 70, 150, 10, &[]).await.unwrap();
    assert_eq!(ids(&again), BTreeSet::from([first[3].id.clone()]));
    // Leases that ran out (at 100) are claimable again, except for a busy webhook.
    assert!(
        claim(db, &key, "w7", 101, 200, 10, &[hook_no(1)])
            .await
            .unwrap()
            .is_empty()
    );
    let expired = claim(db, &key, "w7", 151, 200, 10, &[]).await.unwrap();
    assert_eq!(expired.len(), 7);
    // At its time the retried one is due too, beside the seven whose leases ran out again.
    let later = claim(db, &key, "w8", 1_000, 2_000, 10, &[]).await.unwrap();
    assert!(ids(&later).contains(&first[1].id) && later.len() == 8);

    let (page, total) = webhooks::deliveries(db, &hook_no(1), 100, 0).await.unwrap();
    assert_eq!(total, 10);
    let of = |id: &str| page.iter().find(|p| p.id == id).unwrap();
    assert_eq!(
        (
            of(&d.id).status.as_str(),
            of(&d.id).attempts,
            of(&d.id).last_status
        ),
        ("delivered", 1, Some(200))
    );
    assert_eq!(
        (
            of(&first[2].id).status.as_str(),
            of(&first[2].id).last_error.as_deref()
        ),
        ("failed", Some("refused"))
    );
    assert_eq!(
        webhooks::deliveries(db, &hook_no(2), 100, 0)
            .await
            .unwrap()
            .1,
        0
    );
}
both_stores!(delivery_claim_contract, delivery_claims);
