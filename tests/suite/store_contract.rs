//! The storage contract: the same behaviour from every store, each test on a fresh database.
//! This file holds the SIM, plan and identity repositories and the helpers the other
//! `store_*` files share.

use std::collections::BTreeSet;

use simvault::domain::identity::ClientIdentity;
use simvault::domain::sim::SimListQuery;
use simvault::domain::{Iccid, Imsi, LuhnPolicy, Msisdn, Plan, Sim, SimState, SimType};
use simvault::store::sims::{self as repo, SimKey};
use simvault::store::{StoreError, identities, plans, tenants};

use crate::helpers::{Store, TestDb, both_stores, iccid, raw_sql, tenant_id};

/// A row-integrity key of its own: these tests use the store without a vault.
pub(crate) fn test_key() -> std::sync::Arc<simvault::vault::IntegrityKey> {
    std::sync::Arc::new(
        simvault::vault::IntegrityKey::derive(&simvault::vault::new_key().unwrap()).unwrap(),
    )
}

/// One row-integrity key for all the tests of a binary that write rows with it and read
/// them back through separate calls.
pub(crate) fn shared_test_key() -> &'static simvault::vault::IntegrityKey {
    static KEY: std::sync::LazyLock<std::sync::Arc<simvault::vault::IntegrityKey>> =
        std::sync::LazyLock::new(test_key);
    &KEY
}

pub(crate) async fn create_tenant(db: &simvault::store::Db, id: &str) -> Result<(), StoreError> {
    let mut tx = db.begin().await?;
    tenants::create(&mut tx, &tenant_id(id), 1).await?;
    tx.commit().await
}

pub(crate) fn sim(tenant: &str, n: u64) -> Sim {
    Sim {
        id: simvault::domain::SimId::new(),
        tenant_id: tenant_id(tenant),
        iccid: Iccid::parse(&iccid(n), LuhnPolicy::Enforce).unwrap(),
        imsi: Some(Imsi::parse(&format!("23415{n:010}")).unwrap()),
        msisdn: Some(Msisdn::parse(&format!("+4477009{n:05}")).unwrap()),
        imei: None,
        eid: None,
        sim_type: SimType::Physical,
        state: SimState::Inventory,
        state_reason: None,
        carrier_status: None,
        vendor: Some("V".into()),
        tags: BTreeSet::from(["a".to_owned(), "b c".to_owned()]),
        group_id: None,
        device_id: None,
        compatibility_zones: BTreeSet::from(["eu".to_owned()]),
        carrier: simvault::domain::sim::CarrierFields {
            communication_plan: Some("IoT EU".into()),
            rate_plan: None,
            mno_integration_id: Some(format!("mno-{n}")),
        },
        is_attached: false,
        esim_profile_state: None,
        metadata: serde_json::json!({"nested": {"x": [1, 2]}, "unicode": "ü"})
            .as_object()
            .unwrap()
            .clone(),
        created_at: 1_700_000_000_000_000 + n as i64,
        updated_at: 1_700_000_000_000_000 + n as i64,
        last_synced_at: None,
        deleted_at: None,
        secret_fields: Default::default(),
        link: None,
        counters: Default::default(),
        consumed_data: None,
        data_limit: None,
        effective_data_limit: None,
        conditions: [simvault::domain::condition::Condition::UnauthorizedImei].into(),
        first_imei: Some(simvault::domain::Imei::parse("490154203237518").unwrap()),
        auth: Default::default(),
    }
}

async fn sims_round_trip_and_isolation(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    assert!(matches!(
        create_tenant(db, "a").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(tenants::exists(db, &tenant_id("a")).await.unwrap());
    assert!(!tenants::exists(db, &tenant_id("zz")).await.unwrap());

    let s = sim("a", 1);
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &s).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &SimKey::Id(s.id))
            .await
            .unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &SimKey::Iccid(iccid(1)))
            .await
            .unwrap(),
        Some(s.clone())
    );
    // Another tenant sees nothing, by id or by ICCID.
    assert_eq!(
        repo::get(db, &key, &tenant_id("b"), &SimKey::Id(s.id))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        repo::get(db, &key, &tenant_id("b"), &SimKey::Iccid(iccid(1)))
            .await
            .unwrap(),
        None
    );
    // Unique ICCID across tenants.
    let mut dup = sim("b", 1);
    dup.id = simvault::domain::SimId::new();
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        repo::insert(&mut tx, &key, &dup).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);

    // Update, and a rolled-back transaction changes nothing.
    let mut changed = s.clone();
    changed.tags = BTreeSet::from(["z".to_owned()]);
    changed.msisdn = None;
    changed.updated_at += 5;
    let mut tx = db.begin().await.unwrap();
    repo::update(&mut tx, &key, &changed).await.unwrap();
    drop(tx);
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &SimKey::Id(s.id))
            .await
            .unwrap(),
        Some(s.clone())
    );
    let mut tx = db.begin().await.unwrap();
    repo::update(&mut tx, &key, &changed).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &SimKey::Id(s.id))
            .await
            .unwrap(),
        Some(changed.clone())
    );
    // Updating through the wrong tenant finds nothing.
    let mut wrong = changed.clone();
    wrong.tenant_id = tenant_id("b");
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        repo::update(&mut tx, &key, &wrong).await,
        Err(StoreError::NotFound)
    ));
    drop(tx);

    // Tombstones are invisible.
    let mut gone = changed.clone();
    gone.deleted_at = Some(gone.updated_at + 1);
    let mut tx = db.begin().await.unwrap();
    repo::update(&mut tx, &key, &gone).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &SimKey::Id(s.id))
            .await
            .unwrap(),
        None
    );
    let (items, total) = repo::list(db, &key, &tenant_id("a"), &SimListQuery::default())
        .await
        .unwrap();
    assert_eq!((items.len(), total), (0, 0));
}
both_stores!(sims_contract, sims_round_trip_and_isolation);

async fn search_index_follows_updates(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    let mut s = sim("a", 5);
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &s).await.unwrap();
    tx.commit().await.unwrap();
    let search = |term: &str| SimListQuery {
        search: Some(term.into()),
        ..SimListQuery::default()
    };
    assert_eq!(
        repo::list(db, &key, &tenant_id("a"), &search("447700900005"))
            .await
            .unwrap()
            .1,
        1
    );
    s.msisdn = Some(Msisdn::parse("+15550001111").unwrap());
    let mut tx = db.begin().await.unwrap();
    repo::update(&mut tx, &key, &s).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        repo::list(db, &key, &tenant_id("a"), &search("447700900005"))
            .await
            .unwrap()
            .1,
        0
    );
    assert_eq!(
        repo::list(db, &key, &tenant_id("a"), &search("5550001"))
            .await
            .unwrap()
            .1,
        1
    );
}
both_stores!(search_index, search_index_follows_updates);

async fn plans_and_identities(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    create_tenant(db, "a").await.unwrap();
    let plan = Plan {
        id: uuid::Uuid::new_v4(),
        tenant_id: tenant_id("a"),
        name: "p".into(),
        compatibility_zones: BTreeSet::from(["eu".to_owned()]),
        created_at: 9,
    };
    let mut tx = db.begin().await.unwrap();
    plans::insert(&mut tx, &plan).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    let again = Plan {
        id: uuid::Uuid::new_v4(),
        ..plan.clone()
    };
    assert!(matches!(
        plans::insert(&mut tx, &again).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    assert_eq!(
        plans::get(db, &tenant_id("a"), plan.id).await.unwrap(),
        Some(plan.clone())
    );
    assert_eq!(
        plans::get(db, &tenant_id("b"), plan.id).await.unwrap(),
        None
    );
    assert_eq!(plans::list(db, &tenant_id("a"), 10, 0).await.unwrap().1, 1);

    let row = ClientIdentity {
        identity: "urn:simvault:a:x".into(),
        tenant_id: tenant_id("a"),
        name: "x".into(),
        roles: "support".into(),
    };
    let mut tx = db.begin().await.unwrap();
    identities::register(&mut tx, &row, 1).await.unwrap();
    tx.commit().await.unwrap();
    let mut tx = db.begin().await.unwrap();
    assert!(matches!(
        identities::register(&mut tx, &row, 2).await,
        Err(StoreError::Conflict(_))
    ));
    drop(tx);
    assert_eq!(
        identities::find_active(db, "urn:simvault:a:x")
            .await
            .unwrap(),
        Some(row)
    );
    assert_eq!(
        identities::find_active(db, "urn:simvault:a:y")
            .await
            .unwrap(),
        None
    );
    // An identity cannot name a tenant that does not exist.
    let orphan = ClientIdentity {
        identity: "i".into(),
        tenant_id: tenant_id("nope"),
        name: "i".into(),
        roles: "admin".into(),
    };
    let mut tx = db.begin().await.unwrap();
    assert!(identities::register(&mut tx, &orphan, 1).await.is_err());
}
both_stores!(plans_identities_contract, plans_and_identities);

/// Concurrent updates of one SIM serialise: no update is lost.
async fn concurrent_patches_do_not_lose_updates(store: Store) {
    use simvault::domain::SimPatch;
    let t = TestDb::new(store).await;
    let db = t.db.clone();
    let key = test_key();
    create_tenant(&db, "a").await.unwrap();
    let s = sim("a", 9);
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &s).await.unwrap();
    tx.commit().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let db = db.clone();
        let key = key.clone();
        let id = s.id;
        tasks.push(tokio::spawn(async move {
            let mut tx = db.begin().await.unwrap();
            let mut cur = repo::get_for_update(&mut tx, &key, &tenant_id("a"), &SimKey::Id(id))
                .await
                .unwrap()
                .unwrap();
            let mut tags = cur.tags.clone();
            tags.insert(format!("t{i}"));
            SimPatch {
                tags: Some(tags),
                ..SimPatch::default()
            }
            .apply(&mut cur);
            repo::update(&mut tx, &key, &cur).await.unwrap();
            tx.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let final_sim = repo::get(&db, &key, &tenant_id("a"), &SimKey::Id(s.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(final_sim.tags.len(), 2 + 16);
}
both_stores!(concurrent_patches, concurrent_patches_do_not_lose_updates);

/// Every read of a SIM checks its MAC: a row written under another database's integrity key
/// (or whose covered column changed) is refused by get, lists, locked reads and secret reads,
/// naming only the row's id; a change to a column the MAC leaves out is not a failure.
async fn sim_reads_check_the_row_mac(store: Store) {
    use simvault::vault::{IntegrityFailure, Purpose};
    let t = TestDb::new(store).await;
    let db = &t.db;
    let (key, other) = (test_key(), test_key());
    create_tenant(db, "a").await.unwrap();
    let s = sim("a", 11);
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &s).await.unwrap();
    tx.commit().await.unwrap();
    let by_id = SimKey::Id(s.id);
    assert_eq!(
        repo::get(db, &key, &tenant_id("a"), &by_id).await.unwrap(),
        Some(s.clone())
    );

    let refused = |r: Result<_, StoreError>| match r {
        Err(StoreError::Integrity(IntegrityFailure { purpose, row })) => {
            assert_eq!(purpose, Purpose::Sim);
            assert_eq!(row, s.id.to_string());
        }
        Ok(_) => panic!("a row under another key was returned"),
        Err(e) => panic!("unexpected error: {e}"),
    };
    refused(
        repo::get(db, &other, &tenant_id("a"), &by_id)
            .await
            .map(|_| ()),
    );
    refused(
        repo::list(db, &other, &tenant_id("a"), &SimListQuery::default())
            .await
            .map(|_| ()),
    );
    refused(
        repo::get_with_secrets(db, &other, &tenant_id("a"), &by_id)
            .await
            .map(|_| ()),
    );
    let mut tx = db.begin().await.unwrap();
    refused(
        repo::get_for_update(&mut tx, &other, &tenant_id("a"), &by_id)
            .await
            .map(|_| ()),
    );
    drop(tx);

    // An uncovered column (vendor) may change; a covered one (puk_max) may not.
    raw_sql!(db, p => sqlx::query("UPDATE sims SET vendor = 'W'").execute(p).await.map(|_| ()))
        .unwrap();
    let read = repo::get(db, &key, &tenant_id("a"), &by_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.vendor.as_deref(), Some("W"));
    raw_sql!(db, p => sqlx::query("UPDATE sims SET puk_max = 99").execute(p).await.map(|_| ()))
        .unwrap();
    refused(
        repo::get(db, &key, &tenant_id("a"), &by_id)
            .await
            .map(|_| ()),
    );
}
both_stores!(sim_row_macs, sim_reads_check_the_row_mac);

/// Links: one per SIM and one per name in a tenant (refused by the unique constraints, not
/// by a racy check), read only by their tenant.
async fn links_are_unique_and_tenant_scoped(store: Store) {
    use simvault::domain::Link;
    use simvault::store::links::{self, Refused};
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    let (s1, s2) = (sim("a", 21), sim("a", 22));
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &s1).await.unwrap();
    repo::insert(&mut tx, &key, &s2).await.unwrap();
    tx.commit().await.unwrap();
    let link = |sim_id, name: &str| Link {
        id: uuid::Uuid::new_v4(),
        tenant_id: tenant_id("a"),
        sim_id,
        name: name.into(),
        plan_ids: vec![uuid::Uuid::new_v4()],
        task_id: None,
        created_at: 3,
    };
    let first = link(s1.id, "n_1");
    let mut tx = db.begin().await.unwrap();
    assert_eq!(links::insert(&mut tx, &key, &first).await.unwrap(), Ok(()));
    assert_eq!(
        links::insert(&mut tx, &key, &link(s1.id, "n_2"))
            .await
            .unwrap(),
        Err(Refused::SimLinked)
    );
    assert_eq!(
        links::insert(&mut tx, &key, &link(s2.id, "n_1"))
            .await
            .unwrap(),
        Err(Refused::NameTaken)
    );
    tx.commit().await.unwrap();
    assert_eq!(
        links::get(db, &key, &tenant_id("a"), first.id)
            .await
            .unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        links::get(db, &key, &tenant_id("b"), first.id)
            .await
            .unwrap(),
        None
    );
    let ids = [s1.id.to_string(), s2.id.to_string()];
    assert_eq!(
        links::for_sims(db, &key, &tenant_id("a"), &ids)
            .await
            .unwrap(),
        std::slice::from_ref(&first)
    );
    assert!(
        links::for_sims(db, &key, &tenant_id("b"), &ids)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        links::list(db, &key, &tenant_id("a"), None, 10, 0)
            .await
            .unwrap()
            .1,
        1
    );
    assert_eq!(
        links::list(db, &key, &tenant_id("a"), Some(&ids[1]), 10, 0)
            .await
            .unwrap()
            .1,
        0
    );
    assert_eq!(
        links::list(db, &key, &tenant_id("b"), None, 10, 0)
            .await
            .unwrap()
            .1,
        0
    );
    // The SIM read with its link shows it.
    let read = repo::get(db, &key, &tenant_id("a"), &SimKey::Id(s1.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.link.map(|l| l.name).as_deref(), Some("n_1"));
}
both_stores!(link_contract, links_are_unique_and_tenant_scoped);

/// Upstream sync claims: each due SIM to one claimer per round, at most a batch per claim,
/// tombstones never; a rescheduled SIM waits for its time.
async fn sync_claims(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    let mut tx = db.begin().await.unwrap();
    for n in 0..10 {
        let s = sim(if n % 2 == 0 { "a" } else { "b" }, 30 + n);
        repo::insert(&mut tx, &key, &s).await.unwrap();
    }
    let mut gone = sim("a", 50);
    gone.deleted_at = Some(1);
    repo::insert(&mut tx, &key, &gone).await.unwrap();
    tx.commit().await.unwrap();

    let first = repo::claim_due(db, 100, 1_000, 4).await.unwrap();
    assert_eq!(first.len(), 4, "one batch");
    let (x, y) = tokio::join!(
        repo::claim_due(db, 100, 1_000, 4),
        repo::claim_due(db, 100, 1_000, 4)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    let ids = |v: &[repo::SyncClaim]| v.iter().map(|c| c.id.clone()).collect::<BTreeSet<_>>();
    let rest = repo::claim_due(db, 100, 1_000, 100).await.unwrap();
    let claimed: Vec<&repo::SyncClaim> = first.iter().chain(&x).chain(&y).chain(&rest).collect();
    let distinct: BTreeSet<&str> = claimed.iter().map(|c| c.id.as_str()).collect();
    assert_eq!((claimed.len(), distinct.len()), (10, 10), "each SIM once");
    assert!(!distinct.contains(gone.id.to_string().as_str()));
    assert!(ids(&x).is_disjoint(&ids(&y)));
    assert!(
        repo::claim_due(db, 999, 2_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Due again at 1,000, except the one rescheduled to 5,000.
    repo::reschedule_sync(db, &first[0].id, 5_000)
        .await
        .unwrap();
    let round = repo::claim_due(db, 1_000, 2_000, 100).await.unwrap();
    assert_eq!(round.len(), 9);
    assert!(!ids(&round).contains(&first[0].id));
}
both_stores!(sync_claim_contract, sync_claims);
