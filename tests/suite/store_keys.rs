//! The storage contract of wrapped keys: the root-key check, tenant KEK versions (insert,
//! retire, rewrap) and per-SIM DEKs and secrets, on every store, each on a fresh database.

use simvault::domain::keys::{KeyState, TenantKey, WrappedDek};
use simvault::store::keys;
use simvault::store::sims as sim_repo;
use simvault::store::{Db, StoreError};
use simvault::vault::{IntegrityFailure, IntegrityKey, Purpose};

use crate::helpers::tenant_id;
use crate::helpers::{Store, TestDb, both_stores, raw_sql};
use crate::store_contract::{create_tenant, sim, test_key};

fn kek(tenant: &str, version: i64, state: &str) -> TenantKey {
    TenantKey {
        tenant_id: tenant_id(tenant),
        version,
        format: 1,
        wrapped_key: vec![u8::try_from(version).unwrap(); 8],
        state: KeyState::parse(state).unwrap(),
        wrapped_deks: 0,
        created_at: version,
        retired_at: None,
    }
}

fn dek(version: i64, byte: u8) -> WrappedDek {
    WrappedDek {
        kek_version: version,
        format: 1,
        wrapped_dek: vec![byte; 4],
    }
}

async fn add_kek(db: &Db, key: &IntegrityKey, row: &TenantKey) -> bool {
    let mut tx = db.begin().await.unwrap();
    let added = keys::insert_kek(&mut tx, key, row).await.unwrap();
    tx.commit().await.unwrap();
    added
}

/// A SIM of `tenant` with a DEK under `version`; returns its id.
async fn sim_with_dek(
    db: &Db,
    key: &IntegrityKey,
    tenant: &str,
    n: u64,
    version: i64,
) -> simvault::domain::SimId {
    let s = sim(tenant, n);
    let mut tx = db.begin().await.unwrap();
    sim_repo::insert(&mut tx, key, &s).await.unwrap();
    keys::insert_dek(&mut tx, &tenant_id(tenant), &s.id, &dek(version, 7), 5)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    s.id
}

/// The root-key check is stored once (the first writer wins), read on the pool or inside a
/// transaction, and replaced by rotation.
async fn root_check(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    assert_eq!(keys::root_check(db).await.unwrap(), None);
    let mut tx = db.begin().await.unwrap();
    keys::insert_root_check(&mut tx, 1, b"first", 1)
        .await
        .unwrap();
    keys::insert_root_check(&mut tx, 2, b"second", 2)
        .await
        .unwrap();
    assert_eq!(
        keys::root_check(&mut tx).await.unwrap(),
        Some((1, b"first".to_vec()))
    );
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    keys::replace_root_check(&mut tx, 3, b"rotated", 3)
        .await
        .unwrap();
    assert_eq!(
        keys::root_check(&mut tx).await.unwrap(),
        Some((3, b"rotated".to_vec()))
    );
    drop(tx);
    assert_eq!(
        keys::root_check(db).await.unwrap(),
        Some((1, b"first".to_vec())),
        "a rolled-back replacement changes nothing"
    );
}
both_stores!(root_check_contract, root_check);

/// KEK versions: a repeated version is not added twice, reads are per tenant and checked
/// against the row MAC, older versions retire, and every version can be rewrapped.
async fn kek_versions(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let (key, other) = (test_key(), test_key());
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    assert!(add_kek(db, &key, &kek("a", 1, "active")).await);
    assert!(
        !add_kek(db, &key, &kek("a", 1, "active")).await,
        "one row per version"
    );
    assert!(add_kek(db, &key, &kek("a", 2, "active")).await);
    assert!(add_kek(db, &key, &kek("b", 1, "active")).await);

    assert_eq!(
        keys::kek(db, &key, &tenant_id("a"), 1).await.unwrap(),
        Some(kek("a", 1, "active"))
    );
    assert_eq!(keys::kek(db, &key, &tenant_id("a"), 3).await.unwrap(), None);
    let mut tx = db.begin().await.unwrap();
    assert_eq!(
        keys::kek(&mut tx, &key, &tenant_id("b"), 1).await.unwrap(),
        Some(kek("b", 1, "active"))
    );
    assert_eq!(
        keys::active_kek(&mut tx, &key, &tenant_id("a"))
            .await
            .unwrap()
            .map(|k| k.version),
        Some(2)
    );
    drop(tx);
    let versions = |rows: Vec<TenantKey>| rows.into_iter().map(|r| r.version).collect::<Vec<_>>();
    assert_eq!(
        versions(keys::keks(db, &key, &tenant_id("a")).await.unwrap()),
        [1, 2]
    );
    assert_eq!(
        versions(keys::keks(db, &key, &tenant_id("b")).await.unwrap()),
        [1]
    );
    assert_eq!(
        versions(keys::keks(db, &key, &tenant_id("zz")).await.unwrap()),
        Vec::<i64>::new()
    );

    // A row under another integrity key is refused, naming the tenant and version.
    match keys::kek(db, &other, &tenant_id("a"), 1).await {
        Err(StoreError::Integrity(IntegrityFailure { purpose, row })) => {
            assert_eq!((purpose, row.as_str()), (Purpose::TenantKey, "a/v1"));
        }
        r => panic!("expected an integrity failure, got {r:?}"),
    }
    // So is a row whose state was changed behind the store's back.
    raw_sql!(db, p => sqlx::query(
        "UPDATE tenant_keys SET state = 'retired' WHERE tenant_id = 'b'")
        .execute(p).await.map(|_| ()))
    .unwrap();
    assert!(matches!(
        keys::active_kek(db, &key, &tenant_id("b")).await,
        Err(StoreError::Integrity(_))
    ));

    // Version 1 of tenant a retires: first retiring, then retired once no DEK uses it.
    let s = sim_with_dek(db, &key, "a", 1, 1).await;
    let mut tx = db.begin().await.unwrap();
    keys::retire_older(&mut tx, &key, &tenant_id("a"), 2)
        .await
        .unwrap();
    keys::retire_unused(&mut tx, &key, &tenant_id("a"), 2, 50)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v1 = keys::kek(db, &key, &tenant_id("a"), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v1.state.as_str(), v1.retired_at),
        ("retiring", None),
        "a DEK still uses it"
    );
    let mut tx = db.begin().await.unwrap();
    assert!(
        keys::rewrap_dek(&mut tx, &s.to_string(), 1, 2, b"new", 60)
            .await
            .unwrap()
    );
    keys::retire_unused(&mut tx, &key, &tenant_id("a"), 2, 61)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v1 = keys::kek(db, &key, &tenant_id("a"), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v1.state.as_str(), v1.retired_at), ("retired", Some(61)));
    assert_eq!(
        keys::active_kek(db, &key, &tenant_id("a"))
            .await
            .unwrap()
            .map(|k| k.version),
        Some(2)
    );

    // Root-key rotation reads every version, locked, and rewraps each.
    let mut tx = db.begin().await.unwrap();
    let all = keys::all_keks_for_update(&mut tx, &key).await;
    assert!(all.is_err(), "tenant b's tampered row is refused here too");
    drop(tx);
    raw_sql!(db, p => sqlx::query(
        "UPDATE tenant_keys SET state = 'active' WHERE tenant_id = 'b'")
        .execute(p).await.map(|_| ()))
    .unwrap();
    let mut tx = db.begin().await.unwrap();
    let all = keys::all_keks_for_update(&mut tx, &key).await.unwrap();
    let ids: Vec<(String, i64)> = all
        .iter()
        .map(|r| (r.tenant_id.to_string(), r.version))
        .collect();
    assert_eq!(ids, [("a".into(), 1), ("a".into(), 2), ("b".into(), 1)]);
    keys::rewrap_kek(&mut tx, &tenant_id("a"), 2, 9, b"rewrapped")
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let v2 = keys::kek(db, &key, &tenant_id("a"), 2)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (v2.format, v2.wrapped_key.as_slice()),
        (9, &b"rewrapped"[..])
    );
}
both_stores!(kek_contract, kek_versions);

/// DEKs: one per SIM, counted and listed per tenant and version, rewrapped only from the
/// version that was read; secrets are upserted, read and shredded with their DEK.
async fn deks_and_secrets(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    for (tenant, v) in [("a", 1), ("a", 2), ("b", 1)] {
        add_kek(db, &key, &kek(tenant, v, "active")).await;
    }
    let s1 = sim_with_dek(db, &key, "a", 1, 1).await;
    let s2 = sim_with_dek(db, &key, "a", 2, 1).await;
    let s3 = sim_with_dek(db, &key, "a", 3, 2).await;
    let sb = sim_with_dek(db, &key, "b", 4, 1).await;

    // A second DEK for a SIM is a conflict.
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        keys::insert_dek(&mut tx, &tenant_id("a"), &s1, &dek(2, 1), 6).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    assert_eq!(keys::dek(db, &s1).await.unwrap(), Some(dek(1, 7)));
    assert_eq!(
        keys::dek(db, &simvault::domain::SimId::new())
            .await
            .unwrap(),
        None
    );

    assert_eq!(keys::count_below(db, &tenant_id("a"), 2).await.unwrap(), 2);
    assert_eq!(keys::count_below(db, &tenant_id("b"), 2).await.unwrap(), 1);
    let mut counts = keys::dek_counts(db, &tenant_id("a")).await.unwrap();
    counts.sort();
    assert_eq!(counts, [(1, 2), (2, 1)]);

    // Stale DEKs of one tenant, paged in SIM id order.
    let mut expected = [s1.to_string(), s2.to_string()];
    expected.sort();
    let first = keys::stale_deks(db, &tenant_id("a"), 2, "", 1)
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].sim_id, expected[0]);
    let mut tx = db.begin().await.unwrap();
    let rest = keys::stale_deks(&mut tx, &tenant_id("a"), 2, &first[0].sim_id, 10)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|d| d.sim_id.clone()).collect::<Vec<_>>(),
        [expected[1].clone()]
    );
    // A rewrap from a version the DEK no longer has changes nothing.
    assert!(
        !keys::rewrap_dek(&mut tx, &s3.to_string(), 1, 2, b"x", 7)
            .await
            .unwrap()
    );
    assert!(
        keys::rewrap_dek(&mut tx, &s1.to_string(), 1, 2, b"x", 7)
            .await
            .unwrap()
    );
    assert!(
        !keys::rewrap_dek(&mut tx, &s1.to_string(), 1, 2, b"y", 8)
            .await
            .unwrap()
    );
    keys::count_wraps(&mut tx, &tenant_id("a"), 2, 1)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(keys::dek(db, &s1).await.unwrap().unwrap().wrapped_dek, b"x");
    assert_eq!(
        keys::kek(db, &key, &tenant_id("a"), 2)
            .await
            .unwrap()
            .unwrap()
            .wrapped_deks,
        1
    );
    assert_eq!(keys::count_below(db, &tenant_id("a"), 2).await.unwrap(), 1);

    // Secrets: upsert, read (pool or transaction), delete, shred.
    let mut tx = db.begin().await.unwrap();
    keys::put_secret(&mut tx, &s1, "ki", 1, b"c1", 9)
        .await
        .unwrap();
    keys::put_secret(&mut tx, &s1, "ki", 1, b"c2", 10)
        .await
        .unwrap();
    keys::put_secret(&mut tx, &s1, "opc", 1, b"o", 10)
        .await
        .unwrap();
    keys::put_secret(&mut tx, &sb, "ki", 1, b"b", 10)
        .await
        .unwrap();
    assert_eq!(
        keys::secret(&mut tx, &s1, "ki").await.unwrap(),
        Some((1, b"c2".to_vec()))
    );
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    keys::delete_secret(&mut tx, &s1, "opc").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(keys::secret(db, &s1, "opc").await.unwrap(), None);
    let mut tx = db.begin().await.unwrap();
    keys::shred(&mut tx, &s1).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(keys::secret(db, &s1, "ki").await.unwrap(), None);
    assert_eq!(keys::dek(db, &s1).await.unwrap(), None);
    assert_eq!(
        keys::secret(db, &sb, "ki").await.unwrap(),
        Some((1, b"b".to_vec())),
        "another SIM's secret stays"
    );
    // A DEK must name a KEK version of its tenant.
    let stray = sim("a", 9);
    let mut tx = db.begin().await.unwrap();
    sim_repo::insert(&mut tx, &key, &stray).await.unwrap();
    assert!(
        keys::insert_dek(&mut tx, &tenant_id("a"), &stray.id, &dek(5, 1), 1)
            .await
            .is_err()
    );
}
both_stores!(dek_contract, deks_and_secrets);
