//! The command line, run as a real process: init, tenants, certificates, tokens, and the
//! quickstart whose printed curl commands must work as printed.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use simvault::pki::KeyPaths;

pub(crate) fn simvault(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env_remove("SIMVAULT_DATA_DIR")
        .output()
        .unwrap()
}

pub(crate) fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn init_makes_private_keys_and_never_overwrites_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let out = simvault(&data, &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = KeyPaths::new(&data);
    for p in [
        keys.root_key(),
        keys.ca_key(),
        keys.server_key(),
        keys.jwt_private(),
    ] {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&keys.dir), 0o700);
    assert!(data.join("simvault.db").exists());
    let before = std::fs::read(keys.root_key()).unwrap();
    let again = simvault(&data, &["init"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("refusing to overwrite"));
    assert_eq!(std::fs::read(keys.root_key()).unwrap(), before);
    // A data directory from before audit checkpoints gets just their key.
    std::fs::remove_file(keys.audit_signing_key()).unwrap();
    std::fs::remove_file(keys.audit_verifying_key()).unwrap();
    let upgrade = simvault(&data, &["init"]);
    assert!(
        upgrade.status.success(),
        "{}",
        String::from_utf8_lossy(&upgrade.stderr)
    );
    assert_eq!(mode(&keys.audit_signing_key()), 0o600);
    assert!(keys.audit_verifying_key().exists());
    assert_eq!(std::fs::read(keys.root_key()).unwrap(), before);
}

#[test]
fn tenants_certificates_and_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    assert!(simvault(&data, &["init"]).status.success());
    // Certificates and tokens need an existing tenant.
    let out = simvault(
        &data,
        &[
            "cert",
            "issue",
            "--tenant",
            "acme",
            "--role",
            "provisioner",
            "--name",
            "p1",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(!dir.path().join("p1.pem").exists());
    assert!(
        !simvault(
            &data,
            &[
                "token", "--tenant", "acme", "--role", "support", "--sub", "a"
            ]
        )
        .status
        .success()
    );

    assert!(
        simvault(&data, &["tenant", "create", "acme"])
            .status
            .success()
    );
    assert!(
        !simvault(&data, &["tenant", "create", "acme"])
            .status
            .success()
    );
    assert!(
        !simvault(&data, &["tenant", "create", "Bad Name"])
            .status
            .success()
    );

    let out = simvault(
        &data,
        &[
            "cert",
            "issue",
            "--tenant",
            "acme",
            "--role",
            "provisioner,support",
            "--name",
            "p1",
            "--out-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("p1.pem").exists());
    assert_eq!(mode(&dir.path().join("p1.key")), 0o600);
    // Same name again: refused, files untouched.
    let pem = std::fs::read(dir.path().join("p1.pem")).unwrap();
    assert!(
        !simvault(
            &data,
            &[
                "cert",
                "issue",
                "--tenant",
                "acme",
                "--role",
                "admin",
                "--name",
                "p1",
                "--out-dir",
                dir.path().to_str().unwrap()
            ]
        )
        .status
        .success()
    );
    assert_eq!(std::fs::read(dir.path().join("p1.pem")).unwrap(), pem);
    assert!(
        !simvault(
            &data,
            &[
                "cert", "issue", "--tenant", "acme", "--role", "root", "--name", "p2"
            ]
        )
        .status
        .success()
    );

    let out = simvault(
        &data,
        &[
            "token", "--tenant", "acme", "--role", "support", "--sub", "alice", "--ttl", "60",
        ],
    );
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3);
}

/// The README's first command: everything it prints must work as printed.
#[test]
fn quickstart_prints_working_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("qs");
    let mut child = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["quickstart", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env("SIMVAULT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut script = String::new();
    let mut running = false;
    let mut console_links = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        running |= line.starts_with("simvault is running");
        if let Some(at) = line.find("https://localhost:")
            && line[at..].contains("/console/login/")
        {
            console_links.push(line[at..].to_owned());
        }
        if line.starts_with("Stop with") {
            break;
        }
        if running && line.starts_with("  ") {
            script.push_str(&line);
            script.push('\n');
        }
    }
    assert!(script.contains("curl"), "no commands printed");
    // A console link for demo support staff and one for a demo auditor.
    assert_eq!(console_links.len(), 2, "{console_links:?}");
    let out = Command::new("sh").arg("-ec").arg(&script).output().unwrap();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let status = child.wait().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}\n{}",
        text,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("\"state\":\"inventory\""),
        "create failed: {text}"
    );
    assert!(text.contains("\"total\":1"), "list failed: {text}");
    assert!(
        text.contains("\"tags\":[\"demo\",\"vip\"]"),
        "patch failed: {text}"
    );
    assert!(
        status.success(),
        "quickstart did not shut down cleanly on SIGTERM"
    );
}

#[test]
fn policy_check_names_file_and_line() {
    let good = crate::policies::default_policy_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["policy", "check"])
        .arg(good.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(
        good.path().join("extra.cedar"),
        "@id(\"e\")\npermit (principal, action, resource)\nwhen { resource.colour == \"red\" };",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["policy", "check"])
        .arg(good.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("extra.cedar:1"), "{err}");
}

/// Waits for a server started with JSON logs to say where it listens.
pub(crate) fn wait_for_port(log_path: &Path) -> String {
    for _ in 0..100 {
        let text = std::fs::read_to_string(log_path).unwrap_or_default();
        let port = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("simvault listening"))
            })
            .and_then(|v| {
                v["addr"]
                    .as_str()
                    .and_then(|a| a.rsplit(':').next())
                    .map(str::to_owned)
            });
        if let Some(port) = port {
            return port;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("server did not start");
}

/// The library's services over a data directory, as the server would open them.
pub(crate) async fn library(data: &Path) -> (simvault::store::Db, simvault::service::Services) {
    let config = simvault::config::Config::from_env(data, None).unwrap();
    let db = simvault::startup::open_store(&config).await.unwrap();
    let clock: simvault::clock::SharedClock = std::sync::Arc::new(simvault::clock::SystemClock);
    let keyring = simvault::startup::open_vault(&config, &db, clock.as_ref())
        .await
        .unwrap();
    let services = simvault::startup::services(&config, db.clone(), clock, keyring).unwrap();
    (db, services)
}

/// `simvault init` and `simvault tenant create acme` on a new data directory.
pub(crate) fn init_with_tenant(data: &Path) {
    assert!(simvault(data, &["init"]).status.success());
    assert!(
        simvault(data, &["tenant", "create", "acme"])
            .status
            .success()
    );
}

/// `simvault milenage` reproduces every TS 35.208 set, from OP and from OPc, and touches no
/// database (it runs in an empty directory with no data directory at all).
#[test]
fn milenage_calculator_reproduces_every_vector() {
    let text = include_str!("../vectors/milenage-ts35208.json");
    let v: serde_json::Value = serde_json::from_str(text).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_simvault"))
            .arg("milenage")
            .args(args)
            .current_dir(empty.path())
            .env_remove("SIMVAULT_DATABASE_URL")
            .env("SIMVAULT_DATA_DIR", empty.path().join("none"))
            .output()
            .unwrap()
    };
    for (name, s) in v["sets"].as_object().unwrap() {
        let h = |k: &str| s[k].as_str().unwrap();
        for key in ["op", "opc"] {
            let out = run(&[
                "--k",
                h("k"),
                &format!("--{key}"),
                h(key),
                "--rand",
                h("rand"),
                "--sqn",
                h("sqn"),
                "--amf",
                h("amf"),
                "--json",
            ]);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let got: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let expected = serde_json::json!({
                "opc": h("opc"), "mac_a": h("f1"), "mac_s": h("f1star"), "res": h("f2"),
                "ck": h("f3"), "ik": h("f4"), "ak": h("f5"), "ak_star": h("f5star"),
                "autn": h("autn"),
            });
            assert_eq!(got, expected, "set {name} from {key}");
        }
    }
    assert!(
        !empty.path().join("none").exists(),
        "no data directory was made"
    );
    // Set 1 by OPc; each refused variant changes one thing.
    let good = [
        "--k",
        "465b5ce8b199b49faa5f0a2ee238a6bc",
        "--opc",
        "cd63cb71954a9f4e48a5994e37a02baf",
        "--rand",
        "23553cbe9637a89d218ae64dae47bf35",
        "--sqn",
        "ff9bb4d0b607",
        "--amf",
        "b9b9",
    ];
    let plain = run(&good);
    assert!(String::from_utf8_lossy(&plain.stdout).contains("mac_a    4a9ffac354dfafb3"));
    let with = |at: usize, value: &'static str| {
        let mut args = good.to_vec();
        args[at] = value;
        args
    };
    let mut both_keys = good.to_vec();
    both_keys.extend(["--op", "cd63cb71954a9f4e48a5994e37a02baf"]);
    let mut no_key = good.to_vec();
    no_key.drain(2..4);
    for bad in [with(1, "465b"), no_key, both_keys, with(7, "ff9bb4d0b6")] {
        let out = run(&bad);
        assert!(!out.status.success(), "{bad:?}");
        assert!(!String::from_utf8_lossy(&out.stderr).contains("465b5ce8b199b49faa5f0a2ee238a6bc"));
    }
}
