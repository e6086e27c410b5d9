//! The root key in a PKCS#11 token (SoftHSM2): key creation and its attributes, moving the
//! root key file → HSM → file with reads going on, restarts, refusal to start without the
//! token or with a wrong PIN, and the token going away (503 once cached keys expire) and
//! coming back (service resumes by itself).
//!
//! Needs SoftHSM2 (`apt-get install softhsm2`; `.ci/run` installs it): the module at
//! `/usr/lib/softhsm/libsofthsm2.so` or `SIMVAULT_TEST_PKCS11_MODULE`. Without it these tests
//! say so and pass vacuously.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::json;
use simvault::domain::Role;

use crate::helpers::{Api, Store, TestApp, both_stores, iccid, raw_sql};

const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const PIN: &str = "4711";

/// The PKCS#11 module, or `None` (announcing once that these tests are skipped).
fn module() -> Option<String> {
    let module = std::env::var("SIMVAULT_TEST_PKCS11_MODULE")
        .ok()
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| DEFAULT_MODULE.into());
    if std::path::Path::new(&module).exists() {
        return Some(module);
    }
    static NOTICE: OnceLock<()> = OnceLock::new();
    NOTICE.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: PKCS#11 (HSM) tests SKIPPED: no module at {module} (apt-get install softhsm2)\n"
        );
    });
    None
}

/// A SoftHSM2 token of its own (configuration and token directory in a temporary directory).
struct Hsm {
    dir: tempfile::TempDir,
    module: String,
}

impl Hsm {
    fn new() -> Option<Hsm> {
        let module = module()?;
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("tokens")).unwrap();
        std::fs::write(
            dir.path().join("softhsm2.conf"),
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                dir.path().join("tokens").display()
            ),
        )
        .unwrap();
        let hsm = Hsm { dir, module };
        let out = std::process::Command::new("softhsm2-util")
            .args(["--init-token", "--free", "--label", "simvault"])
            .args(["--pin", PIN, "--so-pin", "123456"])
            .env("SOFTHSM2_CONF", hsm.conf())
            .output()
            .expect("softhsm2-util");
        assert!(out.status.success(), "{out:?}");
        Some(hsm)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    /// The variables naming this token, with `provider` as the root-key provider.
    fn env(&self, provider: &str) -> Vec<(String, String)> {
        vec![
            ("SOFTHSM2_CONF".into(), self.conf().display().to_string()),
            ("SIMVAULT_PKCS11_MODULE".into(), self.module.clone()),
            ("SIMVAULT_PKCS11_TOKEN_LABEL".into(), "simvault".into()),
            ("SIMVAULT_PKCS11_PIN".into(), PIN.into()),
            ("SIMVAULT_ROOT_KEY_PROVIDER".into(), provider.into()),
        ]
    }

    fn tokens(&self) -> PathBuf {
        self.dir.path().join("tokens")
    }
}

fn refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

fn ki(n: u64) -> String {
    format!("{n:032x}")
}

/// Reads every SIM's Ki through `api`, asserting each.
async fn read_all(api: &Api, count: u64) {
    for n in 1..=count {
        let a = api
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n)))
            .await;
        assert_eq!(a.status, 200, "SIM {n}: {:?}", a.body);
        assert_eq!(a.body["secrets"]["ki"], ki(n));
    }
}

/// A server on a file root key with SIMs, then the token's key created and the root key
/// moved into it (reads go on throughout).
async fn migrated(store: Store) -> Option<(TestApp, Hsm, Api)> {
    let hsm = Hsm::new()?;
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    let prov = app.mtls_api("acme", &[Role::Provisioner], "prov").await;
    for n in 1..=5 {
        prov.create_sim(json!({"iccid": iccid(n), "secrets": {"ki": ki(n)}}))
            .await;
    }
    let env = hsm.env("file");
    let out = app.cli_env(&["keys", "hsm-init"], &refs(&env));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{out:?}");
    assert!(
        stdout.contains(
            "sensitive=true extractable=false always_sensitive=true never_extractable=true"
        ),
        "{stdout}"
    );
    // A second key of the same label is refused.
    let again = app.cli_env(&["keys", "hsm-init"], &refs(&env));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));

    // Reads keep working while the root key moves (the running server has its keys).
    let stop = Arc::new(AtomicBool::new(false));
    let (reads, failures) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let reader = {
        let (prov, stop, reads, failures) =
            (prov.clone(), stop.clone(), reads.clone(), failures.clone());
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n = n % 5 + 1;
                let a = prov
                    .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(n)))
                    .await;
                reads.fetch_add(1, Ordering::Relaxed);
                if a.status != 200 || a.body["secrets"]["ki"] != ki(n) {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = app.cli_env(&["keys", "migrate-root", "--to", "pkcs11"], &refs(&env));
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 tenant key version(s) re-wrapped"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    reader.await.unwrap();
    assert!(reads.load(Ordering::Relaxed) > 5);
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "a read failed during the move"
    );
    Some((app, hsm, prov))
}

async fn root_key_moves_into_the_hsm_and_back(store: Store) {
    let Some((app, hsm, mut prov)) = migrated(store).await else {
        return;
    };
    // A server on the HSM reads every secret, writes new ones, and does again after a restart.
    let env = hsm.env("pkcs11");
    for round in 0..2 {
        let (mut replica, base) = app.spawn_replica(&refs(&env));
        prov.app_base = base;
        read_all(&prov, 5).await;
        let n = 10 + round;
        prov.create_sim(json!({"iccid": iccid(n), "secrets": {"ki": ki(n)}}))
            .await;
        let ready = prov.get("/readyz").await;
        assert_eq!(ready.status, 200, "{:?}", ready.body);
        replica.kill().unwrap();
        replica.wait().unwrap();
    }
    // The old key file opens nothing any more: a server on it refuses to start.
    let out = app
        .serve_refused(&[], Duration::from_secs(30))
        .expect("a server on the old file key must not start");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("root key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // And back to a (new) file key.
    let keys = app.data_dir().join("keys");
    std::fs::rename(keys.join("root.key"), keys.join("root.key.before-hsm")).unwrap();
    let out = app.cli_env(&["keys", "migrate-root", "--to", "file"], &refs(&env));
    assert!(out.status.success(), "{out:?}");
    assert!(keys.join("root.key").exists());
    let (mut replica, base) = app.spawn_replica(&[]);
    prov.app_base = base;
    read_all(&prov, 5).await;
    replica.kill().unwrap();
    replica.wait().unwrap();

    // Both moves are on the platform chain.
    let actions: Vec<String> = raw_sql!(&app.test_db.db, p => sqlx::query_scalar(
        "SELECT action FROM audit_events WHERE tenant_id = '_platform' ORDER BY seq")
        .fetch_all(p).await.unwrap());
    assert!(
        actions.contains(&"keys.migrate-root.pkcs11".to_owned()),
        "{actions:?}"
    );
    assert!(
        actions.contains(&"keys.migrate-root.file".to_owned()),
        "{actions:?}"
    );
}
both_stores!(
    root_key_moves_into_the_hsm_and_back,
    root_key_moves_into_the_hsm_and_back
);

async fn the_server_refuses_to_start_without_its_token(store: Store) {
    let Some((app, hsm, _)) = migrated(store).await else {
        return;
    };
    let cases: [(&str, &str, &str); 3] = [
        ("SIMVAULT_PKCS11_PIN", "0000", "refused the user PIN"),
        (
            "SIMVAULT_PKCS11_TOKEN_LABEL",
            "elsewhere",
            "no token labelled",
        ),
        (
            "SIMVAULT_PKCS11_MODULE",
            "/nonexistent/libpkcs11.so",
            "cannot load the PKCS#11 module",
        ),
    ];
    for (name, value, message) in cases {
        let mut env = hsm.env("pkcs11");
        env.retain(|(k, _)| k != name);
        env.push((name.into(), value.into()));
        let out = app
            .serve_refused(&refs(&env), Duration::from_secs(30))
            .unwrap_or_else(|| panic!("started with a bad {name}"));
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{name}: {stderr}");
        assert!(
            !stderr.contains("0000") || name != "SIMVAULT_PKCS11_PIN",
            "no PIN echoed"
        );
    }
}
both_stores!(
    the_server_refuses_to_start_without_its_token,
    the_server_refuses_to_start_without_its_token
);

async fn losing_the_token_gives_503_after_the_cache_and_recovers(store: Store) {
    let Some((app, hsm, mut prov)) = migrated(store).await else {
        return;
    };
    let mut env = hsm.env("pkcs11");
    env.push(("SIMVAULT_PKCS11_CACHE_SECS".into(), "2".into()));
    let (mut replica, base) = app.spawn_replica(&refs(&env));
    prov.app_base = base;
    read_all(&prov, 1).await; // the tenant key is now cached
    let away = hsm.dir.path().join("tokens.away");
    std::fs::rename(hsm.tokens(), &away).unwrap();
    // Cached keys keep serving until they expire...
    read_all(&prov, 1).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // ...then reads that need the token are refused, and the replica is not ready.
    let a = prov
        .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
        .await;
    assert_eq!(a.status, 503, "{:?}", a.body);
    assert!(!a.body.to_string().contains(&ki(1)));
    assert_eq!(prov.get("/readyz").await.status, 503);
    // The token comes back: service resumes by itself.
    std::fs::rename(&away, hsm.tokens()).unwrap();
    let start = std::time::Instant::now();
    loop {
        let a = prov
            .get(&format!("/v1/sims/{}/secrets?fields=ki", iccid(1)))
            .await;
        if a.status == 200 {
            assert_eq!(a.body["secrets"]["ki"], ki(1));
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "{:?}", a.body);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(prov.get("/readyz").await.status, 200);
    read_all(&prov, 5).await;
    replica.kill().unwrap();
    replica.wait().unwrap();
}
both_stores!(
    losing_the_token_gives_503_after_the_cache_and_recovers,
    losing_the_token_gives_503_after_the_cache_and_recovers
);
