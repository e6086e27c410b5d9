//! The web console end to end in a real headless Chromium: `tests/console/e2e.mjs` (driven by
//! playwright-core) signs in by console link, searches a SIM with the "Search" box and button,
//! opens its page, signs out; and checks what nobody gets: the old session after sign-out, a
//! second sign-in with a used link, another tenant's SIM by its id in the address bar. Every
//! page the browser sees has the console's CSP, no inline script or on* handler, and the browser
//! reports no CSP violation; the pages fit 390 px without horizontal scrolling; Tab reaches the
//! search box and Enter submits it.
//!
//! Needs Debian's Chromium (`/usr/bin/chromium`), Node.js and `npm ci --prefix tests/console`.
//! Without them the test says it was skipped and why, and passes, unless
//! `SIMVAULT_REQUIRE_BROWSER_DEPS=1` (set by `.ci/run` once they are installed), where a missing
//! dependency fails it. `SIMVAULT_CONSOLE_SCREENSHOTS=DIR` also saves PNGs of the search and SIM
//! pages at 1280 and 390 px in DIR.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use simvault::domain::Role;

use crate::console_sessions::ticket;
use crate::helpers::{Store, TestApp, both_stores, iccid};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The folder with `e2e.mjs` and its packages, or `None` (announced once) when Chromium, Node.js
/// or the packages are missing and they are not required.
fn browser_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let why = if !Path::new(CHROMIUM).exists() {
        "Chromium is not installed (apt-get install chromium)"
    } else if !node {
        "Node.js (`node`) is not installed"
    } else if !dir
        .join("node_modules/playwright-core/package.json")
        .exists()
    {
        "the npm packages are not installed (npm ci --prefix tests/console)"
    } else {
        return Some(dir);
    };
    if std::env::var("SIMVAULT_REQUIRE_BROWSER_DEPS").as_deref() == Ok("1") {
        panic!("SIMVAULT_REQUIRE_BROWSER_DEPS=1 but {why}");
    }
    static NOTICE: OnceLock<()> = OnceLock::new();
    NOTICE.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: console browser tests SKIPPED: {why}\n"
        );
    });
    None
}

/// Runs `e2e.mjs` on `scenario`: its exit status and the JSON line of each step.
fn run_e2e(dir: &Path, scenario: &Value) -> (Option<i32>, Vec<Value>, String) {
    let logs = tempfile::tempdir().unwrap();
    let err_path = logs.path().join("stderr");
    let mut child = Command::new("node")
        .arg(dir.join("e2e.mjs"))
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("node");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(scenario.to_string().as_bytes())
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
        out
    });
    let deadline = Instant::now() + Duration::from_secs(240);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = reader.join().unwrap();
    let lines = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    (status, lines, format!("{out}\n{stderr}"))
}

/// Creates SIM `n` in `tenant` through the API (a provisioner of that tenant): its JSON.
async fn sim(app: &TestApp, tenant: &str, n: u64, msisdn: &str) -> Value {
    let api = app
        .mtls_api(tenant, &[Role::Provisioner], &format!("prov-{tenant}-{n}"))
        .await;
    api.create_sim(json!({
        "iccid": iccid(n), "imsi": format!("23415{n:010}"), "msisdn": msisdn,
        "secrets": {"pin1": "1234", "puk1": "12345678"}
    }))
    .await
}

const STEPS: [&str; 10] = [
    "sign-in",
    "search-and-open-sim",
    "another-tenant-sim-is-not-found",
    "narrow-layout-has-no-horizontal-scroll",
    "keyboard-tab-reaches-search-enter-submits",
    "measure",
    "screenshots",
    "sign-out-ends-the-session",
    "a-used-console-link-is-refused",
    "every-page-has-the-csp-and-no-violation",
];

both_stores!(the_console_works_in_a_real_browser, in_chromium);
async fn in_chromium(store: Store) {
    let Some(dir) = browser_dir() else { return };
    let app = TestApp::spawn(store).await;
    app.tenant("acme").await;
    app.tenant("rival").await;
    let ours = sim(&app, "acme", 11, "447700900011").await;
    sim(&app, "acme", 12, "447700900012").await;
    let theirs = sim(&app, "rival", 13, "447700900013").await;
    let mut links = serde_json::Map::new();
    for who in ["support", "narrow", "shots1280", "shots390"] {
        // The screenshots show a plain name in the header.
        let sub = if who.starts_with("shots") {
            "alice@acme".to_owned()
        } else {
            format!("{who}@acme")
        };
        let t = ticket(&app, "acme", &[Role::Support], &sub, 300).await;
        links.insert(who.into(), app.url(&format!("/console/login/{t}")).into());
    }
    let scenario = json!({
        "base": app.base,
        // The server's certificate is from this test's own CA; the browser is told to accept
        // it (Chromium takes no CA file without a certificate database of its own).
        "ca": app.keys.ca_cert(),
        "ignoreHTTPSErrors": true,
        "links": links,
        "sim": {
            "id": ours["id"], "iccid": ours["iccid"], "imsi": ours["imsi"], "msisdn": ours["msisdn"],
        },
        "foreignSimId": theirs["id"],
        "foreignLeaks": [theirs["iccid"], theirs["imsi"], theirs["msisdn"]],
        "steps": STEPS,
        "screenshots": std::env::var("SIMVAULT_CONSOLE_SCREENSHOTS").ok(),
    });
    let (status, lines, output) = tokio::task::spawn_blocking(move || run_e2e(&dir, &scenario))
        .await
        .unwrap();
    // Shown with `--nocapture`: the figures of the measure step among them.
    println!("{output}");
    for name in STEPS {
        let line = lines
            .iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| panic!("no result for step {name}:\n{output}"));
        assert_eq!(line["ok"], true, "step {name} failed: {line}\n{output}");
    }
    assert_eq!(status, Some(0), "e2e.mjs did not exit cleanly:\n{output}");
    let measure = lines.iter().find(|l| l["step"] == "measure").unwrap();
    for page in ["search", "sim"] {
        // The console's pages stay small: a page and its two assets, a few tens of kilobytes.
        let m = &measure[page];
        assert!(m["requests"].as_u64().unwrap() <= 3, "{page}: {m}");
        assert!(m["body_bytes"].as_u64().unwrap() < 60_000, "{page}: {m}");
    }
    // What the browser did is in the audit log like any other console use: one sign-in with
    // the support link, the second use of it refused, the sign-out.
    let records = crate::helpers::chain_records(&app.test_db.db, "acme").await;
    let count = |action: &str, outcome: &str| {
        records
            .iter()
            .filter(|(a, o, r)| a == action && o == outcome && r["subject"] == "support@acme")
            .count()
    };
    assert_eq!(count("console.signin", "allowed"), 1, "{records:?}");
    assert!(count("console.signin", "denied") >= 1, "{records:?}");
    assert_eq!(count("console.signout", "completed"), 1, "{records:?}");
}
