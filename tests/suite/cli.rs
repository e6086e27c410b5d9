//! The command line, run as a real process: init, tenants, certificates, tokens, and the
//! quickstart whose printed curl commands must work as printed.

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use simvault::pki::KeyPaths;

fn simvault(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env_remove("SIMVAULT_DATA_DIR")
        .output()
        .unwrap()
}

fn mode(p: &Path) -> u32 {
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
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        running |= line.starts_with("simvault is running");
        if line.starts_with("Stop with") {
            break;
        }
        if running && line.starts_with("  ") {
            script.push_str(&line);
            script.push('\n');
        }
    }
    assert!(script.contains("curl"), "no commands printed");
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

/// `keys seal` seals the root key with a passphrase; `serve` then starts only with it.
#[test]
fn sealed_root_key_needs_its_passphrase() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    assert!(simvault(&data, &["init"]).status.success());
    let keys = KeyPaths::new(&data);
    let plain = std::fs::read_to_string(keys.root_key()).unwrap();
    let seal = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["keys", "seal", "--data-dir"])
        .arg(&data)
        .env("SIMVAULT_PASSPHRASE", "correct horse battery staple")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        seal.status.success(),
        "{}",
        String::from_utf8_lossy(&seal.stderr)
    );
    let sealed = std::fs::read_to_string(keys.root_key()).unwrap();
    assert!(sealed.contains("argon2id"));
    assert!(
        !sealed.contains(plain.trim()),
        "the plain key is gone from the file"
    );
    assert_eq!(mode(&keys.root_key()), 0o600);

    let serve = |passphrase: Option<&str>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_simvault"));
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env_remove("SIMVAULT_DATABASE_URL")
            .env_remove("SIMVAULT_PASSPHRASE")
            .env("SIMVAULT_LOG_FORMAT", "json")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(p) = passphrase {
            cmd.env("SIMVAULT_PASSPHRASE", p);
        }
        cmd.spawn().unwrap()
    };
    // Wrong passphrase, or none without a terminal: refuses to start.
    for (p, expect) in [
        (Some("wrong horse battery staple"), "wrong passphrase"),
        (None, "SIMVAULT_PASSPHRASE"),
    ] {
        let out = serve(p).wait_with_output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(expect), "{err}");
    }
    // The right one: serves until SIGTERM.
    let mut child = serve(Some("correct horse battery staple"));
    // Logs go to standard error (standard output is for commands' results).
    // Read them on a thread that keeps draining, so the server never writes to a closed pipe.
    let stderr = child.stderr.take().unwrap();
    let (seen, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("simvault listening") {
                let _ = seen.send(());
            }
        }
    });
    assert!(
        listening
            .recv_timeout(std::time::Duration::from_secs(60))
            .is_ok()
    );
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
}

/// The real server at trace level: creating, revealing, replacing and deleting canary secrets
/// leaves no trace of them in anything it logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_logs_even_at_trace_level() {
    use base64::Engine as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    init_with_tenant(&data);
    let out_dir = dir.path().to_str().unwrap().to_owned();
    assert!(
        simvault(
            &data,
            &[
                "cert",
                "issue",
                "--tenant",
                "acme",
                "--role",
                "provisioner",
                "--name",
                "p",
                "--out-dir",
                &out_dir
            ]
        )
        .status
        .success()
    );
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env("SIMVAULT_LOG", "trace")
        .env("SIMVAULT_LOG_FORMAT", "json")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let port = wait_for_port(&log_path);
    let ca = std::fs::read(KeyPaths::new(&data).ca_cert()).unwrap();
    let cert = std::fs::read_to_string(dir.path().join("p.pem")).unwrap();
    let key = std::fs::read_to_string(dir.path().join("p.key")).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .identity(reqwest::Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap())
        .build()
        .unwrap();
    let base = format!("https://localhost:{port}");
    let canary = serde_json::json!({
        "ki": "C0FFEE00C0FFEE00C0FFEE00C0FFEE01", "opc": "badc0ffee0ddf00dbadc0ffee0ddf00d",
        "pin1": "80604020", "puk1": "13572468", "activation_code": "LPA:1$SMDP.EXAMPLE.ORG$CANARY-7Q3Z"
    });
    let res = client
        .post(format!("{base}/v1/sims"))
        .json(&serde_json::json!({"iccid": "8944501234567890124", "sim_type": "esim", "secrets": canary}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let sim: serde_json::Value = res.json().await.unwrap();
    let id = sim["id"].as_str().unwrap();
    let read = client
        .get(format!(
            "{base}/v1/sims/{id}/secrets?fields=ki,opc,pin1,puk1,activation_code"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let body = read.text().await.unwrap();
    assert!(body.contains("c0ffee00c0ffee00c0ffee00c0ffee01"));
    let put = client
        .put(format!("{base}/v1/sims/{id}/secrets"))
        .json(&serde_json::json!({"pin1": "97531864", "ki": "bad"}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 400);
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());

    let logged = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&logged).to_ascii_lowercase();
    assert!(
        text.contains("\"level\":\"trace\""),
        "the server did log at trace level"
    );
    for value in [
        "c0ffee00c0ffee00c0ffee00c0ffee01",
        "badc0ffee0ddf00dbadc0ffee0ddf00d",
        "80604020",
        "13572468",
        "canary-7q3z",
        "97531864",
    ] {
        assert!(
            !text.contains(value),
            "secret value {value} found in the logs"
        );
        let b64 = base64::engine::general_purpose::STANDARD
            .encode(value)
            .to_ascii_lowercase();
        assert!(
            !text.contains(&b64),
            "secret value {value} found base64-encoded in the logs"
        );
    }
}

/// `keys rotate --tenant` and `keys rotate --root` from the command line, with a real server
/// reading the secrets back afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_rotation_commands() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    init_with_tenant(&data);
    // A SIM with a secret, written through the library on the same data directory.
    {
        let (db, services) = library(&data).await;
        crate::vault::seed_with_secrets(&services, "acme", 7, 25).await;
        db.close().await;
    }
    let out = simvault(&data, &["keys", "rotate", "--tenant", "acme"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("25 SIM keys to re-wrap")
            && text.contains("completed: 25 re-wrapped, 0 failed"),
        "{text}"
    );
    let before = std::fs::read(KeyPaths::new(&data).root_key()).unwrap();
    let out = simvault(&data, &["keys", "rotate", "--root"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_ne!(
        std::fs::read(KeyPaths::new(&data).root_key()).unwrap(),
        before
    );
    assert_eq!(mode(&KeyPaths::new(&data).root_key()), 0o600);
    // Both or neither of --tenant/--root: refused.
    assert!(!simvault(&data, &["keys", "rotate"]).status.success());
    // Both rotations are on the record: the tenant's in its chain, the root's on the platform's.
    let export = |chain: &[&str]| {
        let mut args = vec!["audit", "export"];
        args.extend(chain);
        let out = simvault(&data, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let tenant_log = export(&["--tenant", "acme"]);
    let rotations: Vec<serde_json::Value> = tenant_log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|r| r["action"] == "keys.rotate")
        .collect();
    assert_eq!(rotations.len(), 2, "{tenant_log}");
    assert!(
        rotations[0]["actor"]["subject"]
            .as_str()
            .unwrap()
            .starts_with("cli:")
    );
    assert_eq!(rotations[0]["actor"]["auth_method"], "local");
    assert_eq!(rotations[1]["outcome"], "completed");
    let platform_log = export(&["--platform"]);
    assert!(
        platform_log.contains("\"keys.rotate-root\""),
        "{platform_log}"
    );
    let out = simvault(&data, &["audit", "verify"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let verdict = String::from_utf8_lossy(&out.stdout);
    assert!(
        verdict.contains("acme: ok") && verdict.contains("_platform: ok"),
        "{verdict}"
    );

    let (_db, services) = library(&data).await;
    let principal = crate::vault::provisioner("acme");
    let key = simvault::store::sims::SimKey::Iccid(crate::helpers::iccid(19));
    let (_, revealed) = services
        .reveal_secrets(&principal, &key, &[simvault::domain::SecretField::Ki], None)
        .await
        .unwrap();
    assert_eq!(
        revealed[0].1.as_ref().unwrap().expose(),
        format!("{:032x}", 19)
    );
}

/// `kill -9` in the middle of a tenant key rotation; a restarted server resumes the task once
/// the dead process's lease runs out, and every secret still decrypts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_survives_kill_9() {
    const N: u64 = 4000;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    init_with_tenant(&data);
    let (db, services) = library(&data).await;
    crate::vault::seed_with_secrets(&services, "acme", 1, N).await;

    let mut rotate = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["keys", "rotate", "--tenant", "acme", "--data-dir"])
        .arg(&data)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env("SIMVAULT_TASK_LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let progress = |db: simvault::store::Db| async move {
        let rows: Vec<(String, i64, i64)> = crate::helpers::raw_sql!(&db, p => sqlx::query_as(
            "SELECT status, completed_items, total_items FROM tasks").fetch_all(p).await)
        .unwrap();
        rows.into_iter().next()
    };
    loop {
        if let Some((_, done, _)) = progress(db.clone()).await
            && done > 0
        {
            break;
        }
        assert!(
            rotate.try_wait().unwrap().is_none(),
            "the rotation finished before it could be killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .arg(rotate.id().to_string())
        .status();
    let _ = rotate.wait();
    let (status, done, total) = progress(db.clone()).await.unwrap();
    assert_eq!(status, "running");
    assert!(done < total, "killed mid-way: {done} of {total}");

    let mut server = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env("SIMVAULT_TASK_LEASE_SECS", "2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut finished = false;
    for _ in 0..600 {
        if progress(db.clone())
            .await
            .is_some_and(|(s, _, _)| s == "completed")
        {
            finished = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.id().to_string())
        .status();
    assert!(server.wait().unwrap().success());
    assert!(finished, "the restarted server did not finish the rotation");
    let versions: Vec<(i64, i64)> = crate::helpers::raw_sql!(&db, p => sqlx::query_as(
        "SELECT kek_version, count(*) FROM sim_deks GROUP BY kek_version").fetch_all(p).await)
    .unwrap();
    assert_eq!(versions, vec![(2, N as i64)]);
    let principal = crate::vault::provisioner("acme");
    for n in [1u64, 2000, N] {
        let key = simvault::store::sims::SimKey::Iccid(crate::helpers::iccid(n));
        let (_, revealed) = services
            .reveal_secrets(&principal, &key, &[simvault::domain::SecretField::Ki], None)
            .await
            .unwrap();
        assert_eq!(
            revealed[0].1.as_ref().unwrap().expose(),
            format!("{n:032x}")
        );
    }
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

/// SIGHUP to a running server puts a changed policy directory in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_policies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("d");
    let policies = crate::policies::default_policy_dir();
    init_with_tenant(&data);
    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simvault"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("SIMVAULT_DATABASE_URL")
        .env("SIMVAULT_POLICY_DIR", policies.path())
        .env("SIMVAULT_LOG_FORMAT", "json")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let port = wait_for_port(&log_path);
    let token = String::from_utf8(
        simvault(
            &data,
            &[
                "token", "--tenant", "acme", "--role", "operator", "--sub", "op",
            ],
        )
        .stdout,
    )
    .unwrap();
    let ca = std::fs::read(KeyPaths::new(&data).ca_cert()).unwrap();
    let client = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let status = || async {
        client
            .get(format!("https://localhost:{port}/metrics"))
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 403);
    std::fs::write(
        policies.path().join("operator-metrics.cedar"),
        "@id(\"operator-metrics\")\npermit (principal, action == Simvault::Action::\"metrics.read\", resource)\nwhen { principal.roles.contains(\"operator\") };",
    )
    .unwrap();
    let _ = Command::new("kill")
        .arg("-HUP")
        .arg(child.id().to_string())
        .status();
    let mut allowed = false;
    for _ in 0..100 {
        if status().await == 200 {
            allowed = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    assert!(child.wait().unwrap().success());
    assert!(allowed, "the reloaded policy was not in force");
}

/// Waits for a server started with JSON logs to say where it listens.
fn wait_for_port(log_path: &Path) -> String {
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
async fn library(data: &Path) -> (simvault::store::Db, simvault::service::Services) {
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
fn init_with_tenant(data: &Path) {
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
