//! The key commands, run as a real process: sealing the root key, tenant and root key
//! rotation, and a rotation that survives `kill -9`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use simvault::pki::KeyPaths;

use crate::cli::{init_with_tenant, library, mode, simvault};

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
        .secrets()
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
            .secrets()
            .reveal_secrets(&principal, &key, &[simvault::domain::SecretField::Ki], None)
            .await
            .unwrap();
        assert_eq!(
            revealed[0].1.as_ref().unwrap().expose(),
            format!("{n:032x}")
        );
    }
}
