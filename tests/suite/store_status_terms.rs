//! The SIM list's any-of filter over states and conditions, and its MSISDN substring filter,
//! from every store: the rows listed are exactly those the domain rule ([`StatusTerm::matches`])
//! accepts.

use simvault::domain::condition::{Condition, Conditions};
use simvault::domain::sim::SimListQuery;
use simvault::domain::sim_filters::StatusTerm;
use simvault::domain::{Msisdn, SimState};
use simvault::store::sims as repo;

use crate::helpers::{Store, TestDb, both_stores, tenant_id};
use crate::store_contract::{create_tenant, sim, test_key};

async fn any_of_matches_the_domain_rule(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    create_tenant(db, "b").await.unwrap();
    let mut rows = Vec::new();
    let mut n = 0;
    for state in SimState::ALL {
        for conditions in [
            vec![],
            vec![Condition::DataLimitExceeded],
            vec![Condition::UnauthorizedImei],
            vec![Condition::DataLimitExceeded, Condition::UnauthorizedImei],
        ] {
            n += 1;
            let mut s = sim("a", n);
            s.state = state;
            s.conditions = conditions.into_iter().collect();
            let mut tx = db.begin().await.unwrap();
            repo::insert(&mut tx, &key, &s).await.unwrap();
            tx.commit().await.unwrap();
            rows.push(s);
        }
    }
    // Another tenant's SIM in every condition is never listed.
    let mut other = sim("b", 99);
    other.state = SimState::Active;
    other.conditions = Condition::ALL.into_iter().collect::<Conditions>();
    let mut tx = db.begin().await.unwrap();
    repo::insert(&mut tx, &key, &other).await.unwrap();
    tx.commit().await.unwrap();

    let term = |states: &[SimState], with: &[Condition], without: &[Condition]| StatusTerm {
        states: states.to_vec(),
        with: with.to_vec(),
        without: without.to_vec(),
    };
    let cases: Vec<Vec<StatusTerm>> = vec![
        vec![term(
            &[SimState::Active],
            &[],
            &[Condition::DataLimitExceeded],
        )],
        vec![term(
            &[SimState::Active],
            &[Condition::DataLimitExceeded],
            &[],
        )],
        vec![term(&[], &[Condition::UnauthorizedImei], &[])],
        vec![
            term(&[SimState::Inventory], &[], &[]),
            term(
                &[SimState::Suspended, SimState::Blocked, SimState::Retired],
                &[],
                &[],
            ),
        ],
        vec![
            term(&[SimState::Active], &[], &[Condition::DataLimitExceeded]),
            term(&[], &[Condition::UnauthorizedImei], &[]),
        ],
        vec![term(
            &[SimState::Active],
            &[Condition::UnauthorizedImei],
            &[Condition::DataLimitExceeded],
        )],
    ];
    for any_of in cases {
        let q = SimListQuery {
            any_of: any_of.clone(),
            page_size: 250,
            ..SimListQuery::default()
        };
        let (listed, total) = repo::list(db, &key, &tenant_id("a"), &q).await.unwrap();
        let mut got: Vec<_> = listed.iter().map(|s| s.id).collect();
        got.sort_by_key(|id| id.to_string());
        let mut want: Vec<_> = rows
            .iter()
            .filter(|s| any_of.iter().any(|t| t.matches(s.state, &s.conditions)))
            .map(|s| s.id)
            .collect();
        want.sort_by_key(|id| id.to_string());
        assert!(!want.is_empty(), "{any_of:?}");
        assert_eq!(got, want, "{any_of:?}");
        assert_eq!(total, want.len() as u64, "{any_of:?}");
        assert_eq!(repo::count(db, &tenant_id("a"), &q).await.unwrap(), total);
    }
}
both_stores!(any_of_terms, any_of_matches_the_domain_rule);

async fn msisdn_is_a_substring_filter(store: Store) {
    let t = TestDb::new(store).await;
    let db = &t.db;
    let key = test_key();
    create_tenant(db, "a").await.unwrap();
    let mut ids = Vec::new();
    for (n, msisdn) in [
        (1, Some("+447700900123")),
        (2, Some("15550001234")),
        (3, None),
    ] {
        let mut s = sim("a", n);
        s.msisdn = msisdn.map(|m| Msisdn::parse(m).unwrap());
        let mut tx = db.begin().await.unwrap();
        repo::insert(&mut tx, &key, &s).await.unwrap();
        tx.commit().await.unwrap();
        ids.push(s.id);
    }
    let find = |term: &str| SimListQuery {
        msisdn: Some(term.into()),
        ..SimListQuery::default()
    };
    for (term, want) in [
        ("1234", vec![ids[1]]),
        ("12", vec![ids[0], ids[1]]),
        ("+4477", vec![ids[0]]),
        ("0900123", vec![ids[0]]),
        ("999", vec![]),
        ("%", vec![]),
    ] {
        let (listed, total) = repo::list(db, &key, &tenant_id("a"), &find(term))
            .await
            .unwrap();
        let mut got: Vec<_> = listed.iter().map(|s| s.id).collect();
        got.sort_by_key(|id| id.to_string());
        let mut want = want;
        want.sort_by_key(|id| id.to_string());
        assert_eq!(got, want, "{term}");
        assert_eq!(total, want.len() as u64, "{term}");
    }
}
both_stores!(msisdn_substring, msisdn_is_a_substring_filter);
