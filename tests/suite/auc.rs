//! Authentication vectors through the API, checked against an independent Milenage written
//! here on `u128`s (not the service's code); SQN uniqueness under concurrency and across
//! processes; resynchronisation; policy; audit.

use aes::cipher::{Array, BlockCipherEncrypt, KeyInit};
use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

// TS 35.208 set 1.
const K: &str = "465b5ce8b199b49faa5f0a2ee238a6bc";
const OP: &str = "cdc202d5123e20f62b6d676ac72cb318";
const OPC: &str = "cd63cb71954a9f4e48a5994e37a02baf";

fn u(hex_str: &str) -> u128 {
    u128::from_str_radix(hex_str, 16).unwrap()
}

/// An independent Milenage (TS 35.206 §4.1) on 128-bit integers.
struct Card {
    k: [u8; 16],
    opc: u128,
}

impl Card {
    fn e(&self, x: u128) -> u128 {
        let c = aes::Aes128Enc::new(&Array::from(self.k));
        let mut b = Array::from(x.to_be_bytes());
        c.encrypt_block(&mut b);
        u128::from_be_bytes(b.into())
    }

    /// (MAC-A, MAC-S, RES, CK, IK, AK, AK*) for RAND, 48-bit SQN and AMF.
    fn f(&self, rand: u128, sqn: u64, amf: u16) -> (u64, u64, u64, u128, u128, u64, u64) {
        let temp = self.e(rand ^ self.opc);
        let (s, a) = (u128::from(sqn), u128::from(amf));
        let in1 = (s << 80) | (a << 64) | (s << 16) | a;
        let out1 = self.e(temp ^ (in1 ^ self.opc).rotate_left(64)) ^ self.opc;
        let out = |r: u32, c: u128| self.e((temp ^ self.opc).rotate_left(r) ^ c) ^ self.opc;
        let (o2, o3, o4, o5) = (out(0, 1), out(32, 2), out(64, 4), out(96, 8));
        (
            (out1 >> 64) as u64,
            out1 as u64,
            o2 as u64,
            o3,
            o4,
            (o2 >> 80) as u64,
            (o5 >> 80) as u64,
        )
    }
}

fn card() -> Card {
    Card {
        k: hex::decode(K).unwrap().try_into().unwrap(),
        opc: u(OPC),
    }
}

/// Checks one vector against the card; returns its SQN.
fn check(card: &Card, v: &Value) -> u64 {
    let rand = u(v["rand"].as_str().unwrap());
    let autn = u(v["autn"].as_str().unwrap());
    let ak = card.f(rand, 0, 0).5;
    let sqn = ((autn >> 80) as u64) ^ ak;
    let amf = ((autn >> 64) & 0xffff) as u16;
    assert_eq!(amf, 0x8000, "the SIM's AMF");
    let (mac_a, _, res, ck, ik, _, _) = card.f(rand, sqn, amf);
    assert_eq!(autn as u64, mac_a, "MAC-A");
    assert_eq!(v["xres"], format!("{res:016x}"));
    assert_eq!(v["ck"], format!("{ck:032x}"));
    assert_eq!(v["ik"], format!("{ik:032x}"));
    let sres = ((res >> 32) ^ (res & 0xffff_ffff)) as u32;
    assert_eq!(v["sres"], format!("{sres:08x}"));
    let kc = ((ck >> 64) ^ ck ^ (ik >> 64) ^ ik) as u64;
    assert_eq!(v["kc"], format!("{kc:016x}"));
    sqn
}

async fn setup(store: Store) -> (TestApp, Api) {
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    // OP given: OPc is derived at once and OP is not kept.
    prov.create_sim(json!({"iccid": iccid(1), "secrets": {"ki": K, "op": OP}}))
        .await;
    let auc = app.mtls_api("acme", &[Role::Auc], "hss").await;
    (app, auc)
}

fn vectors_path() -> String {
    format!("/v1/sims/{}/auth-vectors", iccid(1))
}

async fn vectors_check_out_and_sqns_increase(store: Store) {
    let (app, auc) = setup(store).await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "p2").await;
    let opc = prov
        .get(&format!("/v1/sims/{}/secrets?fields=opc", iccid(1)))
        .await;
    assert_eq!(
        opc.body["secrets"]["opc"], OPC,
        "OP-derived OPc equals the vector's"
    );
    let card = card();
    let a = auc.post(&vectors_path(), &json!({"count": 4})).await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    assert_eq!(a.headers["cache-control"], "no-store");
    let vs = a.body["vectors"].as_array().unwrap();
    assert_eq!(vs.len(), 4);
    let sqns: Vec<u64> = vs.iter().map(|v| check(&card, v)).collect();
    assert!(sqns.windows(2).all(|w| w[0] < w[1]), "{sqns:?}");
    assert_eq!(sqns[0] & 31, 1, "IND starts cycling at 1");
    let rands: std::collections::BTreeSet<&str> =
        vs.iter().map(|v| v["rand"].as_str().unwrap()).collect();
    assert_eq!(rands.len(), 4, "fresh RAND each");
    let next = auc.post(&vectors_path(), &json!({})).await;
    assert_eq!(next.body["vectors"].as_array().unwrap().len(), 1);
    assert!(check(&card, &next.body["vectors"][0]) > sqns[3]);

    // On the record with count and SQN, never a key or a vector value.
    let rows: Vec<(String, String)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT outcome, record FROM audit_events WHERE tenant_id = 'acme' AND action = 'auth.vectors' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    assert_eq!(rows.len(), 2);
    let r: Value = serde_json::from_str(&rows[0].1).unwrap();
    assert_eq!(r["policy_ids"], json!(["auth-vectors-auc-mtls"]));
    assert!(
        r["reason"]
            .as_str()
            .unwrap()
            .starts_with("4 vector(s); SQN now ")
    );
    for (_, record) in &rows {
        for v in vs {
            for f in ["rand", "autn", "xres", "ck", "ik", "kc", "sres"] {
                assert!(!record.contains(v[f].as_str().unwrap()), "{f} in {record}");
            }
        }
        assert!(!record.contains(K) && !record.contains(OPC));
    }
}
both_stores!(vectors, vectors_check_out_and_sqns_increase);

/// 4G and 5G keys on request, derived from the vector's own CK, IK, RAND, XRES and SQN ⊕ AK.
async fn derived_keys(store: Store) {
    let (_app, auc) = setup(store).await;
    let snn = "5G:mnc093.mcc208.3gppnetwork.org";
    let a = auc
        .post(
            &vectors_path(),
            &json!({"serving_network_name": snn, "plmn_id": "20893"}),
        )
        .await;
    assert_eq!(a.status, 200, "{:?}", a.body);
    let v = &a.body["vectors"][0];
    check(&card(), v);
    let b = |k: &str| -> [u8; 16] {
        hex::decode(v[k].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap()
    };
    let autn = hex::decode(v["autn"].as_str().unwrap()).unwrap();
    let sqn_xor_ak: [u8; 6] = autn[..6].try_into().unwrap();
    let xres = hex::decode(v["xres"].as_str().unwrap()).unwrap();
    use simvault::domain::kdf;
    assert_eq!(
        v["xres_star"],
        hex::encode(kdf::xres_star(&b("ck"), &b("ik"), snn, &b("rand"), &xres))
    );
    assert_eq!(
        v["kausf"],
        hex::encode(*kdf::kausf(&b("ck"), &b("ik"), snn, &sqn_xor_ak))
    );
    let plmn = kdf::plmn_id("20893").unwrap();
    assert_eq!(
        v["kasme"],
        hex::encode(*kdf::kasme(&b("ck"), &b("ik"), &plmn, &sqn_xor_ak))
    );
    // Not asked for: not there.
    let plain = auc.post(&vectors_path(), &json!({})).await;
    assert!(plain.body["vectors"][0].get("kasme").is_none());
    assert!(plain.body["vectors"][0].get("xres_star").is_none());
}
both_stores!(derived, derived_keys);

async fn sqns_are_unique(apis: &[Api], n: usize) -> Vec<u64> {
    let card = card();
    let mut tasks = Vec::new();
    for i in 0..n {
        let api = apis[i % apis.len()].clone();
        tasks.push(tokio::spawn(async move {
            api.post(&vectors_path(), &json!({"count": 2})).await
        }));
    }
    let mut sqns = Vec::new();
    for t in tasks {
        let a = t.await.unwrap();
        assert_eq!(a.status, 200, "{:?}", a.body);
        for v in a.body["vectors"].as_array().unwrap() {
            sqns.push(check(&card, v));
        }
    }
    let total = sqns.len();
    sqns.sort_unstable();
    sqns.dedup();
    assert_eq!(sqns.len(), total, "no two vectors share a SQN");
    sqns
}

async fn concurrent_requests_never_share_a_sqn(store: Store) {
    let (_app, auc) = setup(store).await;
    let sqns = sqns_are_unique(std::slice::from_ref(&auc), 64).await;
    assert_eq!(sqns.len(), 128);
}
both_stores!(concurrent, concurrent_requests_never_share_a_sqn);

crate::helpers::postgres_test!(
    async fn two_processes_never_share_a_sqn() {
        let (app, auc) = setup(Store::Postgres).await;
        let (mut replica, base) = app.spawn_replica(&[]);
        let other = Api {
            app_base: base,
            ..auc.clone()
        };
        let sqns = sqns_are_unique(&[auc, other], 64).await;
        let _ = replica.kill();
        let _ = replica.wait();
        assert_eq!(sqns.len(), 128);
    }
);

async fn resynchronisation(store: Store) {
    let (app, auc) = setup(store).await;
    let card = card();
    let first = auc.post(&vectors_path(), &json!({})).await;
    let before = check(&card, &first.body["vectors"][0]);
    // The card is ahead (e.g. used by another network): it answers AUTS for this RAND.
    let rand = u(first.body["vectors"][0]["rand"].as_str().unwrap());
    let sqn_ms: u64 = 0x0000_0040_0000 << 5 | 7;
    let (_, mac_s, _, _, _, _, ak_star) = card.f(rand, sqn_ms, 0);
    let auts = format!("{:012x}{mac_s:016x}", sqn_ms ^ ak_star);
    let rand_hex = format!("{rand:032x}");
    // A forged AUTS: refused, audited, nothing changes.
    let mut forged = auts.clone().into_bytes();
    forged[27] = if forged[27] == b'0' { b'1' } else { b'0' };
    let forged = String::from_utf8(forged).unwrap();
    let bad = auc
        .post(
            &vectors_path(),
            &json!({"resync": {"rand": rand_hex, "auts": forged}}),
        )
        .await;
    assert_eq!(bad.status, 400, "{:?}", bad.body);
    assert!(
        bad.body["type"]
            .as_str()
            .unwrap()
            .ends_with("/resync-failed")
    );
    let unchanged = auc.post(&vectors_path(), &json!({})).await;
    let after_forgery = check(&card, &unchanged.body["vectors"][0]);
    assert!(
        after_forgery > before && after_forgery < sqn_ms,
        "SQN not moved by a forgery"
    );
    // The real AUTS: SQN_HE moves past SQN_MS and fresh vectors follow.
    let ok = auc
        .post(
            &vectors_path(),
            &json!({"count": 2, "resync": {"rand": rand_hex, "auts": auts}}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    for v in ok.body["vectors"].as_array().unwrap() {
        assert!(check(&card, v) > sqn_ms);
    }
    let outcomes: Vec<(String,)> = raw_sql!(&app.test_db.db, p => sqlx::query_as(
        "SELECT outcome FROM audit_events WHERE tenant_id = 'acme' AND action = 'auth.vectors' ORDER BY seq")
        .fetch_all(p)
        .await)
    .unwrap();
    let outcomes: Vec<&str> = outcomes.iter().map(|(o,)| o.as_str()).collect();
    assert_eq!(
        outcomes,
        ["allowed", "resync-failed", "allowed", "resynchronised"]
    );
}
both_stores!(resync, resynchronisation);

async fn refusals(store: Store) {
    let (app, auc) = setup(store).await;
    // The auc role over a bearer token, and other roles over mTLS: 403.
    let jwt = app.jwt_client("acme", &[Role::Auc]);
    assert_eq!(jwt.post(&vectors_path(), &json!({})).await.status, 403);
    let prov = app.mtls_api("acme", &[Role::Provisioner], "p2").await;
    assert_eq!(prov.post(&vectors_path(), &json!({})).await.status, 403);
    app.tenant("other").await;
    let stranger = app.mtls_api("other", &[Role::Auc], "hss2").await;
    assert_eq!(stranger.post(&vectors_path(), &json!({})).await.status, 404);
    for body in [
        json!({"count": 0}),
        json!({"count": 33}),
        json!({"resync": {"rand": "00", "auts": "00"}}),
        json!({"resync": "x"}),
        json!({"rand": "00000000000000000000000000000000"}),
        json!({"serving_network_name": "mnc001.mcc001.3gppnetwork.org"}),
        json!({"plmn_id": "2089"}),
    ] {
        assert_eq!(auc.post(&vectors_path(), &body).await.status, 400, "{body}");
    }
    // A SIM without keys, and blocked or retired SIMs, get none.
    prov.create_sim(json!({"iccid": iccid(2)})).await;
    assert_eq!(
        auc.post(&format!("/v1/sims/{}/auth-vectors", iccid(2)), &json!({}))
            .await
            .status,
        409
    );
    let operator = app.jwt_client("acme", &[Role::Operator]);
    let set = |state: &str| {
        let operator = operator.clone();
        let state = state.to_owned();
        async move {
            operator
                .patch(
                    &format!("/v1/sims/{}/state", iccid(1)),
                    &json!({"state": state}),
                )
                .await
                .status
        }
    };
    assert_eq!(set("blocked").await, 200);
    assert_eq!(auc.post(&vectors_path(), &json!({})).await.status, 409);
    assert_eq!(set("retired").await, 200);
    assert_eq!(auc.post(&vectors_path(), &json!({})).await.status, 409);
    // OP needs Ki alongside, and not together with OPc.
    for secrets in [json!({"op": OP}), json!({"ki": K, "op": OP, "opc": OPC})] {
        let a = prov
            .post("/v1/sims", &json!({"iccid": iccid(3), "secrets": secrets}))
            .await;
        assert_eq!(a.status, 400, "{:?}", a.body);
        assert_eq!(a.body["errors"][0]["pointer"], "/secrets/op");
    }
}
both_stores!(auc_refusals, refusals);
