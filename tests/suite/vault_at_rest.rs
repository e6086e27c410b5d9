//! Secrets at rest: bound to their place (tampering and swapping yield no plaintext), never
//! stored in plaintext, shredded with their SIM, and opened only by the matching root key.

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::helpers::{Api, Store, both_stores, iccid, raw_sql};
use crate::key_rotation::reopen;
use crate::vault::{ALL, KI, OPC, PIN1, PUK1, PUK2, path, setup};

async fn blob(db: &simvault::store::Db, sql: &'static str, id: &str) -> Vec<u8> {
    raw_sql!(db, p => sqlx::query_scalar(sql).bind(id).fetch_one(p).await).unwrap()
}

async fn set_blob(db: &simvault::store::Db, sql: &'static str, value: Vec<u8>, id: &str) {
    raw_sql!(db, p => sqlx::query(sql).bind(value).bind(id).execute(p).await.map(|_| ())).unwrap();
}

const GET_FIELD: &str = "SELECT ciphertext FROM sim_secrets WHERE sim_id = $1 AND field = 'ki'";
const SET_FIELD: &str = "UPDATE sim_secrets SET ciphertext = $1 WHERE sim_id = $2 AND field = 'ki'";
const SET_OPC: &str = "UPDATE sim_secrets SET ciphertext = $1 WHERE sim_id = $2 AND field = 'opc'";
const GET_DEK: &str = "SELECT wrapped_dek FROM sim_deks WHERE sim_id = $1";
const SET_DEK: &str = "UPDATE sim_deks SET wrapped_dek = $1 WHERE sim_id = $2";

/// Asserts the reveal fails as an opaque integrity error: no plaintext of anyone.
async fn assert_no_plaintext(prov: &Api, sim: &Value, fields: &str) {
    let a = prov
        .get(&path(sim, &format!("/secrets?fields={fields}")))
        .await;
    assert_eq!(a.status, 500, "{:?}", a.body);
    assert_eq!(
        a.body["type"],
        "https://simvault.dev/problems/internal-error"
    );
    let text = a.body.to_string();
    for v in [
        OPC,
        &KI.to_lowercase(),
        "00112233445566778899aabbccddeeff",
        PIN1,
    ] {
        assert!(!text.contains(v));
    }
}

async fn tampering_and_swapping_yield_no_plaintext(store: Store) {
    let (app, prov, a_sim) = setup(store).await;
    let db = &app.test_db.db;
    let b_sim = prov
        .create_sim(json!({"iccid": iccid(2), "secrets": {"ki": "00112233445566778899aabbccddeeff", "opc": OPC}}))
        .await;
    let (a, b) = (a_sim["id"].as_str().unwrap(), b_sim["id"].as_str().unwrap());

    // One flipped bit in the ciphertext, in the nonce.
    let original = blob(db, GET_FIELD, a).await;
    for byte in [0usize, 11, 12, original.len() - 1] {
        let mut bad = original.clone();
        bad[byte] ^= 0x01;
        set_blob(db, SET_FIELD, bad, a).await;
        assert_no_plaintext(&prov, &a_sim, "ki").await;
    }
    set_blob(db, SET_FIELD, original.clone(), a).await;
    assert_eq!(
        prov.get(&path(&a_sim, "/secrets?fields=ki")).await.status,
        200
    );

    // A ciphertext copied to another SIM, or to another field of the same SIM.
    let b_ki = blob(db, GET_FIELD, b).await;
    set_blob(db, SET_FIELD, b_ki.clone(), a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    set_blob(db, SET_FIELD, original.clone(), a).await;
    set_blob(db, SET_OPC, original.clone(), a).await;
    assert_no_plaintext(&prov, &a_sim, "opc").await;

    // A wrapped DEK copied from another SIM; one bit flipped in a wrapped DEK.
    let a_dek = blob(db, GET_DEK, a).await;
    let b_dek = blob(db, GET_DEK, b).await;
    set_blob(db, SET_DEK, b_dek, a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    let mut bad = a_dek.clone();
    bad[20] ^= 0x80;
    set_blob(db, SET_DEK, bad, a).await;
    assert_no_plaintext(&prov, &a_sim, "ki").await;
    set_blob(db, SET_DEK, a_dek, a).await;

    // A ciphertext and DEK carried over to another tenant's SIM.
    app.tenant("other").await;
    let other = app
        .mtls_api("other", &[Role::Provisioner], "other-prov")
        .await;
    let o_sim = other
        .create_sim(
            json!({"iccid": iccid(9), "secrets": {"ki": "ffeeddccbbaa99887766554433221100"}}),
        )
        .await;
    let o = o_sim["id"].as_str().unwrap();
    set_blob(db, SET_FIELD, b_ki, o).await;
    assert_no_plaintext(&other, &o_sim, "ki").await;
    set_blob(db, SET_DEK, blob(db, GET_DEK, b).await, o).await;
    assert_no_plaintext(&other, &o_sim, "ki").await;

    // The untouched SIM still reads.
    let ok = prov.get(&path(&b_sim, "/secrets?fields=ki")).await;
    assert_eq!(ok.body["secrets"]["ki"], "00112233445566778899aabbccddeeff");
}
both_stores!(tampering, tampering_and_swapping_yield_no_plaintext);

async fn deleting_shreds_the_key(store: Store) {
    let (app, prov, sim) = setup(store).await;
    let id = sim["id"].as_str().unwrap().to_owned();
    let admin = app.jwt_client("acme", &[Role::Admin]);
    assert_eq!(admin.delete(&path(&sim, "")).await.status, 200);
    let db = &app.test_db.db;
    let deks: i64 = raw_sql!(db, p => sqlx::query_scalar("SELECT count(*) FROM sim_deks WHERE sim_id = $1").bind(&id).fetch_one(p).await).unwrap();
    let secrets: i64 = raw_sql!(db, p => sqlx::query_scalar("SELECT count(*) FROM sim_secrets WHERE sim_id = $1").bind(&id).fetch_one(p).await).unwrap();
    assert_eq!((deks, secrets), (0, 0));
    assert_eq!(
        prov.get(&path(&sim, &format!("/secrets?fields={ALL}")))
            .await
            .status,
        404
    );
    let a = Api::send(
        prov.request(reqwest::Method::PUT, &path(&sim, "/secrets"))
            .json(&json!({"ki": KI})),
    )
    .await;
    assert_eq!(a.status, 404);
}
both_stores!(crypto_shredding, deleting_shreds_the_key);

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// After storing canary secrets, neither their text nor their raw bytes are anywhere in the
/// database files (SQLite: the database, WAL and shared-memory files; PostgreSQL: a dump).
async fn no_plaintext_at_rest(store: Store) {
    let (app, _prov, _sim) = setup(store).await;
    let ki_raw = hex::decode(KI).unwrap();
    let opc_raw = hex::decode(OPC).unwrap();
    let canaries: Vec<Vec<u8>> = vec![
        KI.to_lowercase().into_bytes(),
        KI.as_bytes().to_vec(),
        OPC.as_bytes().to_vec(),
        ki_raw,
        opc_raw,
        PIN1.as_bytes().to_vec(),
        PUK1.as_bytes().to_vec(),
        PUK2.as_bytes().to_vec(),
        b"04386-AGYFT-A74Y8-3F815".to_vec(),
    ];
    let mut haystacks: Vec<Vec<u8>> = Vec::new();
    if let Some(dir) = app.test_db.sqlite_dir() {
        for entry in std::fs::read_dir(dir).unwrap() {
            haystacks.push(std::fs::read(entry.unwrap().path()).unwrap());
        }
        assert!(haystacks.len() >= 2, "expected the database and its WAL");
    }
    if let Some(schema) = app.test_db.pg_schema() {
        let url = crate::helpers::postgres_url().unwrap();
        let out = std::process::Command::new("pg_dump")
            .args(["--schema", schema, &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let dump = out.stdout;
        assert!(contains(&dump, b"sim_secrets"), "the dump holds the tables");
        // bytea is dumped as hex: look for the raw canaries' hex as well.
        haystacks.push(dump.to_ascii_lowercase());
    }
    for hay in &haystacks {
        for c in &canaries {
            assert!(
                !contains(hay, c),
                "plaintext found at rest: {}",
                String::from_utf8_lossy(c)
            );
            assert!(
                !contains(hay, hex::encode(c).as_bytes()),
                "plaintext (hex) found at rest"
            );
        }
    }
}
both_stores!(at_rest, no_plaintext_at_rest);

/// A restart with the same root key reads every secret back; any other root key, or a key
/// file others can read, refuses to start and changes nothing.
async fn root_key_must_match(store: Store) {
    use simvault::clock::SystemClock;
    use simvault::startup;
    use simvault::vault::RootKeySource;
    let (mut app, prov, sim) = setup(store).await;
    let url = path(&sim, &format!("/secrets?fields={ALL}"));
    let before = prov.get(&url).await.body;
    app.app.stop().await;

    // Another key: refused, with a message that says so.
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("root.key");
    let fresh = simvault::vault::new_key().unwrap();
    simvault::pki::write_new(
        &other_key,
        simvault::vault::root::encode_plain(&fresh).as_bytes(),
        true,
    )
    .unwrap();
    let mut wrong = app.config.clone();
    wrong.root_key = RootKeySource::File(other_key.clone());
    // The stopped server closed its pools: open the same store afresh.
    let db = reopen(&app).await;
    let err = startup::open_vault(&wrong, &db, &SystemClock)
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("root key does not match"),
        "{err:#}"
    );
    let err =
        startup::Application::build_with(&wrong, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .err()
            .unwrap();
    assert!(format!("{err:#}").contains("root key does not match"));

    // A key file readable by others: refused.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&other_key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = startup::open_vault(&wrong, &db, &SystemClock)
            .await
            .unwrap_err();
        assert!(
            format!("{err:#}").contains("readable by group or others"),
            "{err:#}"
        );
    }

    // The right key: a new server reads everything back.
    let again =
        startup::Application::build_with(&app.config, db.clone(), std::sync::Arc::new(SystemClock))
            .await
            .unwrap();
    let base = format!("https://localhost:{}", again.local_addr().port());
    let prov2 = Api {
        app_base: base,
        client: prov.client.clone(),
        token: None,
    };
    let after = prov2.get(&url).await;
    assert_eq!(after.status, 200);
    assert_eq!(after.body, before);
}
both_stores!(root_key_check, root_key_must_match);
