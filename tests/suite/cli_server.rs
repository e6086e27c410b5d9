//! The server run from the command line: no secret in its logs even at trace level, and
//! policies reloaded on SIGHUP.

use std::process::Command;

use simvault::pki::KeyPaths;

use crate::cli::{init_with_tenant, simvault, wait_for_port};

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
