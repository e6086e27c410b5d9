//! Console sign-in by OpenID Connect against a real provider (`oidc-provider` from npm, run by
//! `tests/console/oidc-provider.mjs` on loopback, one per test): discovery, the authorization
//! URL, the provider's login and consent walked with plain HTTP, and the identity from the ID
//! token; then what an attacker does not get: a forged state, a code used twice, another
//! sign-in's state, nonce or verifier, an ID token for another client, a forged or re-signed
//! token, an expired or stale one, a provider stating another issuer, and roles the settings
//! do not map; and the provider's keys fetched again after a rotation, at most once a minute.
//!
//! Needs Node.js and `npm ci --prefix tests/console` (`.ci/run` does it). Without them these
//! tests say so and pass, unless `SIMVAULT_REQUIRE_BROWSER_DEPS=1` (set by `.ci/run` once the
//! packages are installed), where a missing dependency fails them.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::{Value, json};
use simvault::auth::jwt::ClaimNames;
use simvault::auth::oidc::{
    CALLBACK_PATH, IdTokenProblem, OidcClient, OidcError, OidcSettings, PendingLogin, http_client,
};
use simvault::clock::{Clock, SharedClock, SystemClock};
use simvault::domain::{Role, Timestamp};

const PUBLIC_URL: &str = "https://localhost:8443";
pub(crate) const CLIENT: &str = "simvault-console";
pub(crate) const SECRET: &str = "console-secret-0123456789";
const OTHER_CLIENT: &str = "another-app";
const OTHER_SECRET: &str = "another-secret-9876543210";

pub(crate) fn redirect_uri() -> String {
    format!("{PUBLIC_URL}{CALLBACK_PATH}")
}

/// The folder with the provider script and its packages, or `None` (announced once) when Node.js
/// or the packages are missing and they are not required.
pub(crate) fn provider_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let packages = dir.join("node_modules/oidc-provider/package.json").exists();
    let why = match (node, packages) {
        (true, true) => return Some(dir),
        (false, _) => "Node.js (`node`) is not installed",
        (true, false) => "the npm packages are not installed (npm ci --prefix tests/console)",
    };
    if std::env::var("SIMVAULT_REQUIRE_BROWSER_DEPS").as_deref() == Ok("1") {
        panic!("SIMVAULT_REQUIRE_BROWSER_DEPS=1 but {why}");
    }
    static NOTICE: OnceLock<()> = OnceLock::new();
    NOTICE.get_or_init(|| {
        let _ = writeln!(
            std::io::stderr(),
            "\nNOTE: OpenID Connect sign-in tests SKIPPED: {why}\n"
        );
    });
    None
}

/// How a provider is started.
pub(crate) struct Options {
    pub(crate) accounts: Value,
    pub(crate) clients: Vec<(&'static str, &'static str)>,
    pub(crate) auth_method: &'static str,
    pub(crate) issuer_host: &'static str,
    pub(crate) port: u16,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            accounts: json!({ "alice": { "tenant": "acme", "roles": ["support"] } }),
            clients: vec![(CLIENT, SECRET)],
            auth_method: "client_secret_basic",
            issuer_host: "127.0.0.1",
            port: 0,
        }
    }
}

/// A provider process of its own, killed on drop.
pub(crate) struct Provider {
    child: Child,
    port: u16,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Provider {
    pub(crate) fn start(dir: &Path, options: &Options) -> Provider {
        let clients: Vec<Value> = options
            .clients
            .iter()
            .map(|(id, secret)| {
                json!({ "client_id": id, "client_secret": secret, "redirect_uri": redirect_uri() })
            })
            .collect();
        let logs = tempfile::tempdir().unwrap();
        let log = logs.path().join("provider.log");
        let mut child = Command::new("node")
            .arg(dir.join("oidc-provider.mjs"))
            .arg(options.port.to_string())
            .current_dir(dir)
            .env("OIDC_CLIENTS", Value::from(clients).to_string())
            .env("OIDC_ACCOUNTS", options.accounts.to_string())
            .env("OIDC_AUTH_METHOD", options.auth_method)
            .env("OIDC_ISSUER_HOST", options.issuer_host)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("node");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Drained to the end: the provider's later output must not meet a closed pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            panic!(
                "the provider did not start: {line:?}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        Provider {
            child,
            port,
            log,
            _logs: logs,
        }
    }

    pub(crate) fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let _ = writeln!(std::io::stderr(), "provider log:\n{log}");
        }
    }
}

/// The wall clock moved on by however much a test says.
#[derive(Debug, Default)]
struct ShiftedClock(AtomicI64);

impl Clock for ShiftedClock {
    fn now(&self) -> Timestamp {
        SystemClock.now() + self.0.load(Ordering::SeqCst) * 1_000_000
    }
}

fn settings(issuer: &str, client: &str, secret: &str, claims: ClaimNames) -> OidcSettings {
    OidcSettings {
        issuer: issuer.to_owned(),
        client_id: client.to_owned(),
        client_secret: SecretString::from(secret),
        redirect_uri: redirect_uri(),
        claims,
    }
}

async fn discover_with(
    issuer: &str,
    client: &str,
    secret: &str,
    claims: ClaimNames,
    clock: SharedClock,
) -> Result<OidcClient, OidcError> {
    let http = http_client(Duration::from_secs(10)).unwrap();
    OidcClient::discover(&settings(issuer, client, secret, claims), http, clock).await
}

async fn discover(p: &Provider) -> OidcClient {
    discover_with(
        &p.issuer(),
        CLIENT,
        SECRET,
        ClaimNames::default(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap()
}

/// What the provider sent the browser back with.
#[derive(Debug)]
pub(crate) struct Callback {
    pub(crate) code: String,
    pub(crate) state: String,
}

fn between<'a>(text: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

/// Plays the browser: follows the provider's redirects, fills its login form as `login` and
/// its consent form, and stops at the redirect to the console's callback.
pub(crate) async fn sign_in(authorize: &url::Url, login: &str) -> Callback {
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = authorize.clone();
    let mut form: Option<Vec<(&str, String)>> = None;
    for _ in 0..12 {
        let request = match form.take() {
            Some(fields) => browser.post(url.clone()).form(&fields),
            None => browser.get(url.clone()),
        };
        let response = request.send().await.unwrap();
        let status = response.status();
        if status.is_redirection() {
            let location = response.headers()["location"].to_str().unwrap();
            url = url.join(location).unwrap();
            if url.as_str().starts_with(&redirect_uri()) {
                let query: std::collections::HashMap<_, _> = url.query_pairs().collect();
                return Callback {
                    code: query
                        .get("code")
                        .unwrap_or_else(|| panic!("{url}"))
                        .to_string(),
                    state: query["state"].to_string(),
                };
            }
            continue;
        }
        let html = response.text().await.unwrap();
        assert!(status.is_success(), "{status}: {html}");
        let prompt_at = html
            .find("name=\"prompt\"")
            .unwrap_or_else(|| panic!("{html}"));
        let action = between(&html[..prompt_at], "action=\"", "\"")
            .or_else(|| {
                let from = html[..prompt_at].rfind("action=\"")?;
                between(&html[from..], "action=\"", "\"")
            })
            .unwrap_or_else(|| panic!("{html}"));
        let prompt = between(&html[prompt_at..], "value=\"", "\"").unwrap();
        url = url.join(&action.replace("&amp;", "&")).unwrap();
        form = Some(match prompt {
            "login" => vec![
                ("prompt", "login".into()),
                ("login", login.into()),
                ("password", "any".into()),
            ],
            "consent" => vec![("prompt", "consent".into())],
            other => panic!("unexpected prompt {other}"),
        });
    }
    panic!("the provider never sent the browser back to the callback");
}

fn roles(names: &[Role]) -> BTreeSet<Role> {
    names.iter().copied().collect()
}

#[tokio::test]
async fn discovery_and_sign_in_give_the_id_tokens_identity() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let client = discover(&p).await;
    let (url, pending) = client.begin();
    let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(query["response_type"], "code");
    assert_eq!(query["client_id"], CLIENT);
    assert_eq!(query["redirect_uri"], redirect_uri());
    assert_eq!(query["code_challenge_method"], "S256");
    assert!(query["code_challenge"].len() >= 43, "{url}");
    assert!(query["scope"].split(' ').any(|s| s == "openid"), "{url}");
    assert_eq!(query["state"], pending.state().expose_secret());
    assert!(query["nonce"].len() >= 16, "{url}");
    // The verifier itself never goes to the browser.
    assert!(!url.as_str().contains(pending.verifier().expose_secret()));

    let back = sign_in(&url, "alice").await;
    assert_eq!(back.state, pending.state().expose_secret());
    let who = client
        .finish(&back.code, &back.state, &pending)
        .await
        .unwrap();
    assert_eq!(who.tenant.as_str(), "acme");
    assert_eq!(who.roles, roles(&[Role::Support]));
    assert_eq!(who.subject, "alice");
}

#[tokio::test]
async fn a_forged_state_is_refused_before_the_code_is_spent() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let client = discover(&p).await;
    let (url, pending) = client.begin();
    let back = sign_in(&url, "alice").await;
    for forged in ["", "forged", &format!("{}x", back.state), &back.state[1..]] {
        assert_eq!(
            client.finish(&back.code, forged, &pending).await,
            Err(OidcError::State),
            "{forged:?}"
        );
    }
    // Nothing was exchanged: the code still works with the right state.
    assert!(
        client
            .finish(&back.code, &back.state, &pending)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_code_used_twice_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let client = discover(&p).await;
    let (url, pending) = client.begin();
    let back = sign_in(&url, "alice").await;
    assert!(
        client
            .finish(&back.code, &back.state, &pending)
            .await
            .is_ok()
    );
    let again = client.finish(&back.code, &back.state, &pending).await;
    assert_eq!(
        again,
        Err(OidcError::Exchange("the provider refused the code"))
    );
    // The error names a category, never the code.
    let shown = format!("{again:?} {}", again.clone().unwrap_err());
    assert!(!shown.contains(&back.code), "{shown}");
}

/// `pending` with the parts named in `from_other` taken from `other`.
fn mixed(pending: &PendingLogin, other: &PendingLogin, from_other: &[&str]) -> PendingLogin {
    let mut mine = serde_json::to_value(pending).unwrap();
    let theirs = serde_json::to_value(other).unwrap();
    for part in from_other {
        mine[*part] = theirs[*part].clone();
    }
    serde_json::from_value(mine).unwrap()
}

#[tokio::test]
async fn another_sign_ins_pending_state_nonce_or_verifier_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let client = discover(&p).await;
    let (_, other) = client.begin();
    for (parts, want) in [
        (&["state"][..], OidcError::State),
        (
            &["verifier"],
            OidcError::Exchange("the provider refused the code"),
        ),
        (&["nonce"], OidcError::IdToken(IdTokenProblem::Nonce)),
        (
            &["nonce", "verifier"],
            OidcError::Exchange("the provider refused the code"),
        ),
    ] {
        let (url, pending) = client.begin();
        let back = sign_in(&url, "alice").await;
        let wrong = mixed(&pending, &other, parts);
        assert_eq!(
            client.finish(&back.code, &back.state, &wrong).await,
            Err(want),
            "{parts:?}"
        );
    }
    // The whole of another sign-in fails on its state.
    let (url, _) = client.begin();
    let back = sign_in(&url, "alice").await;
    assert_eq!(
        client.finish(&back.code, &back.state, &other).await,
        Err(OidcError::State)
    );
}

/// Signs in through `client` and exchanges the code by hand (as the token endpoint's other side
/// would see it), giving the raw ID token and its sign-in.
async fn raw_id_token(
    p: &Provider,
    client: &OidcClient,
    (id, secret): (&str, &str),
) -> (String, PendingLogin) {
    let (url, pending) = client.begin();
    let back = sign_in(&url, "alice").await;
    let response: Value = reqwest::Client::new()
        .post(format!("{}/token", p.issuer()))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &back.code),
            ("redirect_uri", &redirect_uri()),
            ("code_verifier", pending.verifier().expose_secret()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = response["id_token"]
        .as_str()
        .unwrap_or_else(|| panic!("{response}"));
    (token.to_owned(), pending)
}

#[tokio::test]
async fn an_id_token_for_another_client_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        clients: vec![(CLIENT, SECRET), (OTHER_CLIENT, OTHER_SECRET)],
        ..Options::default()
    };
    let p = Provider::start(&dir, &options);
    let ours = discover(&p).await;
    let theirs = discover_with(
        &p.issuer(),
        OTHER_CLIENT,
        OTHER_SECRET,
        ClaimNames::default(),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let (token, pending) = raw_id_token(&p, &theirs, (OTHER_CLIENT, OTHER_SECRET)).await;
    assert!(theirs.verify_id_token(&token, &pending).await.is_ok());
    assert_eq!(
        ours.verify_id_token(&token, &pending).await,
        Err(OidcError::IdToken(IdTokenProblem::Audience))
    );
}

fn forge(header: Value, payload: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64.encode(header.to_string()),
        B64.encode(payload.to_string()),
        B64.encode(signature)
    )
}

fn hs256(header: &Value, payload: &Value, key: &[u8]) -> String {
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = header["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&h, payload, &jsonwebtoken::EncodingKey::from_secret(key)).unwrap()
}

#[tokio::test]
async fn forged_and_re_signed_id_tokens_are_refused() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let client = discover(&p).await;
    let (token, pending) = raw_id_token(&p, &client, (CLIENT, SECRET)).await;
    assert!(client.verify_id_token(&token, &pending).await.is_ok());

    let parts: Vec<&str> = token.split('.').collect();
    let header: Value = serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
    let payload: Value = serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
    let mut promoted = payload.clone();
    promoted["tenant"] = json!("victim");
    promoted["roles"] = json!(["admin"]);
    let jwks: Value = reqwest::get(format!("{}/jwks", p.issuer()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    let none = json!({ "alg": "none", "typ": "JWT", "kid": header["kid"] });
    use IdTokenProblem::{Algorithm, Signature};
    let cases = [
        ("alg none", forge(none.clone(), &payload, b""), Algorithm),
        ("alg none, promoted", forge(none, &promoted, b""), Algorithm),
        (
            "HS256 with the client secret",
            hs256(&header, &promoted, SECRET.as_bytes()),
            Algorithm,
        ),
        (
            "HS256 with the provider's public key",
            hs256(&header, &promoted, jwks["keys"][0].to_string().as_bytes()),
            Algorithm,
        ),
        (
            "the real signature over other claims",
            format!(
                "{}.{}.{}",
                parts[0],
                B64.encode(promoted.to_string()),
                parts[2]
            ),
            Signature,
        ),
        (
            "no signature",
            format!("{}.{}.", parts[0], parts[1]),
            Signature,
        ),
    ];
    for (what, forged, want) in cases {
        assert_eq!(
            client.verify_id_token(&forged, &pending).await,
            Err(OidcError::IdToken(want)),
            "{what}"
        );
    }
}

#[tokio::test]
async fn a_provider_stating_another_issuer_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        issuer_host: "localhost",
        ..Options::default()
    };
    let p = Provider::start(&dir, &options);
    let got = discover_with(
        &p.issuer(),
        CLIENT,
        SECRET,
        ClaimNames::default(),
        Arc::new(SystemClock),
    )
    .await;
    assert_eq!(
        got.unwrap_err(),
        OidcError::Discovery("the provider states another issuer")
    );
    // With a trailing slash, the issuer is another string too.
    let slash = format!("http://localhost:{}/", p.port);
    let got = discover_with(
        &slash,
        CLIENT,
        SECRET,
        ClaimNames::default(),
        Arc::new(SystemClock),
    )
    .await;
    assert_eq!(
        got.unwrap_err(),
        OidcError::Discovery("the provider states another issuer")
    );
}

#[tokio::test]
async fn roles_the_settings_do_not_map_give_no_role_and_claim_paths_are_followed() {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        accounts: json!({
            "bob": { "tenant": "acme", "roles": ["superuser", "wizard"] },
            "carol": { "tenant": "acme", "roles": ["support", "root", "auditor"] },
            "dave": { "tenant": "acme", "roles": "operator offline_access" },
            "erin": { "roles": ["support"] },
            "frank": { "tenant": "Not A Tenant!", "roles": ["support"] },
            "grace": { "org": { "id": "globex" }, "realm_access": { "roles": ["admin", "x"] } },
        }),
        ..Options::default()
    };
    let p = Provider::start(&dir, &options);
    let client = discover(&p).await;
    for (login, want) in [
        ("bob", Ok(BTreeSet::new())),
        ("carol", Ok(roles(&[Role::Support, Role::Auditor]))),
        ("dave", Ok(roles(&[Role::Operator]))),
        ("erin", Err(OidcError::Claim("tenant"))),
        ("frank", Err(OidcError::Claim("tenant"))),
        ("grace", Err(OidcError::Claim("tenant"))),
    ] {
        let (url, pending) = client.begin();
        let back = sign_in(&url, login).await;
        let got = client.finish(&back.code, &back.state, &pending).await;
        assert_eq!(got.map(|who| who.roles), want, "{login}");
    }
    let nested = discover_with(
        &p.issuer(),
        CLIENT,
        SECRET,
        ClaimNames {
            tenant: "org.id".into(),
            roles: "realm_access.roles".into(),
        },
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    let (url, pending) = nested.begin();
    let back = sign_in(&url, "grace").await;
    let who = nested
        .finish(&back.code, &back.state, &pending)
        .await
        .unwrap();
    assert_eq!(who.tenant.as_str(), "globex");
    assert_eq!(who.roles, roles(&[Role::Admin]));
    assert_eq!(who.subject, "grace");
}

#[tokio::test]
async fn client_secret_post_is_used_when_it_is_all_the_provider_takes() {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        auth_method: "client_secret_post",
        ..Options::default()
    };
    let p = Provider::start(&dir, &options);
    let client = discover(&p).await;
    let (url, pending) = client.begin();
    let back = sign_in(&url, "alice").await;
    let who = client
        .finish(&back.code, &back.state, &pending)
        .await
        .unwrap();
    assert_eq!(who.subject, "alice");
}

#[tokio::test]
async fn an_expired_or_stale_id_token_is_refused() {
    let Some(dir) = provider_dir() else { return };
    let p = Provider::start(&dir, &Options::default());
    let clock = Arc::new(ShiftedClock::default());
    let client = discover_with(
        &p.issuer(),
        CLIENT,
        SECRET,
        ClaimNames::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    let (token, pending) = raw_id_token(&p, &client, (CLIENT, SECRET)).await;
    assert!(client.verify_id_token(&token, &pending).await.is_ok());
    // Issued more than ten minutes ago (it comes straight from the token endpoint), expired, or
    // issued in the future beyond the clock skew: each refused.
    for shift in [11 * 60, 2 * 3600, -120] {
        clock.0.store(shift, Ordering::SeqCst);
        assert_eq!(
            client.verify_id_token(&token, &pending).await,
            Err(OidcError::IdToken(IdTokenProblem::Time)),
            "{shift}"
        );
    }
}

/// A port free now, for providers started one after another at the same issuer.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_rotated_key_is_fetched_again_at_most_once_a_minute() {
    let Some(dir) = provider_dir() else { return };
    let options = Options {
        port: free_port(),
        ..Options::default()
    };
    let clock = Arc::new(ShiftedClock::default());
    let first = Provider::start(&dir, &options);
    let issuer = first.issuer();
    let client = discover_with(
        &issuer,
        CLIENT,
        SECRET,
        ClaimNames::default(),
        clock.clone(),
    )
    .await
    .unwrap();
    drop(first);

    // The provider comes back with a new key: tokens name a key the client does not hold.
    let _second = Provider::start(&dir, &options);
    let attempt = || async {
        let (url, pending) = client.begin();
        let back = sign_in(&url, "alice").await;
        client.finish(&back.code, &back.state, &pending).await
    };
    // Within a minute of the last fetch, the keys are not fetched again.
    clock.0.store(30, Ordering::SeqCst);
    assert_eq!(
        attempt().await,
        Err(OidcError::IdToken(IdTokenProblem::UnknownKey))
    );
    clock.0.store(61, Ordering::SeqCst);
    assert!(attempt().await.is_ok());
    assert!(attempt().await.is_ok());
}

/// `simvault init` with these OIDC variables (it reads the configuration first).
fn init_with(vars: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_simvault"));
    command
        .arg("init")
        .arg("--data-dir")
        .arg(dir.path().join("d"))
        .env_remove("SIMVAULT_DATABASE_URL")
        .env_remove("SIMVAULT_DATA_DIR");
    for name in [
        "SIMVAULT_OIDC_ISSUER",
        "SIMVAULT_OIDC_CLIENT_ID",
        "SIMVAULT_OIDC_CLIENT_SECRET",
        "SIMVAULT_PUBLIC_URL",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied()).output().unwrap()
}

#[test]
fn unsafe_or_incomplete_oidc_settings_are_refused_at_start() {
    let issuer = ("SIMVAULT_OIDC_ISSUER", "https://idp.example.com/realms/ops");
    let id = ("SIMVAULT_OIDC_CLIENT_ID", CLIENT);
    let secret = ("SIMVAULT_OIDC_CLIENT_SECRET", SECRET);
    for (vars, says) in [
        (
            vec![
                ("SIMVAULT_OIDC_ISSUER", "http://idp.example.com"),
                id,
                secret,
            ],
            "SIMVAULT_OIDC_ISSUER must be an https URL",
        ),
        (vec![issuer, secret], "SIMVAULT_OIDC_CLIENT_ID must be set"),
        (vec![issuer, id], "SIMVAULT_OIDC_CLIENT_SECRET must be set"),
        (
            vec![
                issuer,
                id,
                secret,
                ("SIMVAULT_PUBLIC_URL", "http://vault.example.com"),
            ],
            "SIMVAULT_PUBLIC_URL must be an https:// URL",
        ),
    ] {
        let out = init_with(&vars);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{vars:?}");
        assert!(stderr.contains(says), "{vars:?}: {stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
    }
    let out = init_with(&[issuer, id, secret]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
