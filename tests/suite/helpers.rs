//! Test harness: a real HTTPS server on port 0 over a fresh database (a temporary SQLite file,
//! or a fresh PostgreSQL schema), with a test CA, client certificates and signed tokens.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use simvault::auth::jwt::{MintClaims, mint_eddsa};
use simvault::clock::{Clock, SystemClock};
use simvault::config::Config;
use simvault::domain::{Role, TenantId};
use simvault::pki::{self, KeyPaths};
use simvault::service::{Services, admin};
use simvault::startup::{self, Application};
use simvault::store::Db;

/// Which store a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

pub const PG_ENV: &str = "SIMVAULT_TEST_DATABASE_URL";

/// The PostgreSQL URL, or `None` when it is unset or empty. The PostgreSQL tests are built
/// to run only when the variable was set at build time (`cfg(simvault_pg)`, see `build.rs`);
/// otherwise they are reported as ignored. One that runs without a URL fails in
/// [`TestDb::new`], never passes.
pub fn postgres_url() -> Option<String> {
    std::env::var(PG_ENV).ok().filter(|u| !u.is_empty())
}

/// A test of the PostgreSQL store: `postgres_test!(async fn name() { ... })` defines a
/// multi-threaded tokio test that is reported as ignored (with the reason) when the suite
/// was built without `SIMVAULT_TEST_DATABASE_URL`.
macro_rules! postgres_test {
    ($(#[$meta:meta])* async fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        #[cfg_attr(
            not(simvault_pg),
            ignore = "SIMVAULT_TEST_DATABASE_URL is unset: PostgreSQL store not tested"
        )]
        async fn $name() $body
    };
}
pub(crate) use postgres_test;

/// Runs a test body once per store: `both_stores!(name, body_fn)` defines `name::sqlite` and
/// `name::postgres`; the latter is reported as ignored when the suite was built without a
/// PostgreSQL URL (see [`postgres_test!`]).
macro_rules! both_stores {
    ($name:ident, $body:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$body($crate::helpers::Store::Sqlite).await
            }
            $crate::helpers::postgres_test!(
                async fn postgres() {
                    super::$body($crate::helpers::Store::Postgres).await
                }
            );
        }
    };
}
pub(crate) use both_stores;

/// The tenant whose `metrics` principals see platform-wide series in tests.
pub const PLATFORM_OPS: &str = "platform-ops";

/// A fresh, migrated database. Dropping it removes a PostgreSQL schema.
pub struct TestDb {
    pub db: Db,
    schema: Option<String>,
    _dir: Option<tempfile::TempDir>,
}

impl TestDb {
    pub async fn new(store: Store) -> TestDb {
        let t = Self::unmigrated(store).await;
        t.db.migrate().await.unwrap();
        t
    }

    /// A fresh database with the migrations up to `version` applied (a migration's test
    /// writes the rows it meets, then runs the rest with [`Db::migrate`]).
    pub async fn at_version(store: Store, version: i64) -> TestDb {
        let t = Self::unmigrated(store).await;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        match &t.db {
            Db::Sqlite(pools) => sqlx::migrate::Migrator::new(dir.join("sqlite"))
                .await
                .unwrap()
                .run_to(version, &pools.write)
                .await
                .unwrap(),
            Db::Postgres(p) => sqlx::migrate::Migrator::new(dir.join("postgres"))
                .await
                .unwrap()
                .run_to(version, p)
                .await
                .unwrap(),
        }
        t
    }

    async fn unmigrated(store: Store) -> TestDb {
        match store {
            Store::Sqlite => {
                let dir = tempfile::tempdir().unwrap();
                let db = Db::open_sqlite(&dir.path().join("simvault.db"))
                    .await
                    .unwrap();
                TestDb {
                    db,
                    schema: None,
                    _dir: Some(dir),
                }
            }
            Store::Postgres => {
                let url = postgres_url().unwrap_or_else(|| {
                    panic!("{PG_ENV} is unset or empty, but this PostgreSQL test was built to run")
                });
                let schema = format!("svt_{}", uuid::Uuid::new_v4().simple());
                let admin = Db::open_postgres(&url, None).await.unwrap();
                if let Db::Postgres(p) = &admin {
                    // Concurrent CREATE EXTENSION can race; whoever loses finds it installed.
                    let _ =
                        sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
                            .execute(p)
                            .await;
                    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                        .execute(p)
                        .await
                        .unwrap();
                }
                admin.close().await;
                let db = Db::open_postgres(&url, Some(&schema)).await.unwrap();
                TestDb {
                    db,
                    schema: Some(schema),
                    _dir: None,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (Some(schema), Some(url)) = (self.schema.take(), postgres_url()) else {
            return;
        };
        // Drop runs inside the test's runtime; clean up from a thread with its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(Db::Postgres(p)) = Db::open_postgres(&url, None).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .execute(&p)
                    .await;
                    p.close().await;
                }
            });
        })
        .join();
    }
}

/// A running server with its keys, store and helpers to make credentials.
pub struct TestApp {
    pub base: String,
    pub keys: KeyPaths,
    pub config: Config,
    pub services: Services,
    pub app: Application,
    _dir: tempfile::TempDir,
    pub test_db: TestDb,
}

impl TestApp {
    pub async fn spawn(store: Store) -> TestApp {
        Self::spawn_with(store, |_| {}).await
    }

    pub async fn spawn_with(store: Store, adjust: impl FnOnce(&mut Config)) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let keys = KeyPaths::new(dir.path());
        pki::init_keys(&keys).unwrap();
        let mut config = Config::from_env(dir.path(), Some("127.0.0.1:0".into())).unwrap();
        config.database_url = None;
        // The platform's own tenant sees platform-wide metrics (integrity failures and the
        // like); tests scrape through [`TestApp::platform_metrics`].
        config.metrics_platform_tenant = Some(tenant_id(PLATFORM_OPS));
        adjust(&mut config);
        let test_db = TestDb::new(store).await;
        let clock: simvault::clock::SharedClock = Arc::new(SystemClock);
        let keyring = startup::open_vault(&config, &test_db.db, clock.as_ref())
            .await
            .unwrap();
        let services =
            startup::services(&config, test_db.db.clone(), clock.clone(), keyring).unwrap();
        let app = Application::build_with(&config, test_db.db.clone(), clock)
            .await
            .unwrap();
        let base = format!("https://localhost:{}", app.local_addr().port());
        TestApp {
            base,
            keys,
            config,
            services,
            app,
            _dir: dir,
            test_db,
        }
    }

    /// A new connection pool to this server's store (after [`Application::stop`] closed it).
    pub async fn reopen_db(&self) -> Db {
        match &self.test_db.db {
            Db::Sqlite(_) => {
                Db::open_sqlite(&self.test_db.sqlite_dir().unwrap().join("simvault.db"))
                    .await
                    .unwrap()
            }
            Db::Postgres(_) => {
                Db::open_postgres(&postgres_url().unwrap(), self.test_db.pg_schema())
                    .await
                    .unwrap()
            }
        }
    }

    /// The data directory (keys) this server was started with.
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Runs the `simvault` binary against this server's keys and store.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        self.command(args).output().unwrap()
    }

    /// Runs the `simvault` binary with extra environment variables.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        self.command(args)
            .envs(env.iter().copied())
            .output()
            .unwrap()
    }

    /// Starts `simvault serve` expecting it to refuse to start: its output once it exits, or
    /// `None` (and the process killed) if it is still running after `limit`.
    pub fn serve_refused(
        &self,
        env: &[(&str, &str)],
        limit: Duration,
    ) -> Option<std::process::Output> {
        let mut child = self
            .command(&["serve", "--listen", "127.0.0.1:0"])
            .envs(env.iter().copied())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        while start.elapsed() < limit {
            if child.try_wait().unwrap().is_some() {
                return Some(child.wait_with_output().unwrap());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Starts another server process on this server's keys and store (a second replica);
    /// returns it and its base URL. Kill it when done.
    pub fn spawn_replica(&self, env: &[(&str, &str)]) -> (std::process::Child, String) {
        use std::io::BufRead as _;
        let mut cmd = self.command(&["serve", "--listen", "127.0.0.1:0"]);
        cmd.envs(env.iter().copied())
            .env("SIMVAULT_LOG", "info")
            .env("SIMVAULT_LOG_FORMAT", "json")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (found, addr) = std::sync::mpsc::channel();
        // Keep draining its log so the replica never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("simvault listening") {
                    let log: Value = serde_json::from_str(&line).unwrap_or_default();
                    if let Some(addr) = log["addr"].as_str() {
                        let _ = found.send(addr.to_owned());
                    }
                }
            }
        });
        let addr = addr
            .recv_timeout(Duration::from_secs(60))
            .expect("the replica did not start");
        let port = addr.rsplit(':').next().unwrap().to_owned();
        (child, format!("https://localhost:{port}"))
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_simvault"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env_remove("SIMVAULT_DATA_DIR");
        match (self.test_db.sqlite_dir(), self.test_db.pg_schema()) {
            (Some(dir), _) => {
                // The CLI finds SQLite at D/simvault.db: point D's database at the test's.
                let db = self.data_dir().join("simvault.db");
                if !db.exists() {
                    std::os::unix::fs::symlink(dir.join("simvault.db"), &db).unwrap();
                }
                cmd.env_remove("SIMVAULT_DATABASE_URL");
            }
            (None, Some(schema)) => {
                let url = postgres_url().expect("postgres url");
                let sep = if url.contains('?') { '&' } else { '?' };
                cmd.env(
                    "SIMVAULT_DATABASE_URL",
                    format!("{url}{sep}options%5Bsearch_path%5D={schema}%2Cpublic"),
                );
            }
            (None, None) => unreachable!("a test store is SQLite or PostgreSQL"),
        }
        cmd
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn tenant(&self, name: &str) {
        admin::create_tenant(
            &self.services.core.db,
            &SystemClock,
            &TenantId::parse(name).unwrap(),
        )
        .await
        .unwrap();
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        let ca = std::fs::read(self.keys.ca_cert()).unwrap();
        reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .timeout(Duration::from_secs(30))
    }

    /// A client like a browser's, without following redirects (so a test sees each `303` and
    /// its cookie) and without a cookie store (a test sends the cookie it means to).
    pub fn browser(&self) -> reqwest::Client {
        self.builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A client that trusts the server but presents no certificate.
    pub fn anonymous(&self) -> reqwest::Client {
        self.builder().build().unwrap()
    }

    /// A client presenting `cert_pem` + `key_pem`.
    pub fn with_identity(&self, cert_pem: &str, key_pem: &str) -> reqwest::Client {
        let identity =
            reqwest::Identity::from_pem(format!("{cert_pem}{key_pem}").as_bytes()).unwrap();
        self.builder().identity(identity).build().unwrap()
    }

    /// Issues a client certificate from the test CA and registers it for `tenant` with `roles`.
    pub async fn mtls_client(&self, tenant: &str, roles: &[Role], name: &str) -> reqwest::Client {
        let (cert, key) = self.registered_cert(tenant, roles, name).await;
        self.with_identity(&cert, &key)
    }

    /// Issues a client certificate from the test CA and registers it: `(cert PEM, key PEM)`.
    pub async fn registered_cert(
        &self,
        tenant: &str,
        roles: &[Role],
        name: &str,
    ) -> (String, String) {
        let (cert, key) = self.issue_cert(tenant, name);
        admin::register_identity(
            &self.services.core.db,
            &self.services.core.keyring,
            &SystemClock,
            &TenantId::parse(tenant).unwrap(),
            &pki::client_identity(&tenant_id(tenant), name),
            name,
            &roles.iter().copied().collect(),
        )
        .await
        .unwrap();
        (cert, key)
    }

    /// `/metrics` as the platform sees it (every series), scraped by a `metrics` identity of the
    /// platform's tenant.
    pub async fn platform_metrics(&self) -> String {
        let _ = admin::create_tenant(
            &self.services.core.db,
            &SystemClock,
            &TenantId::parse(PLATFORM_OPS).unwrap(),
        )
        .await;
        let name = format!("scraper-{}", uuid::Uuid::new_v4().simple());
        let scraper = self
            .mtls_client(PLATFORM_OPS, &[Role::Metrics], &name)
            .await;
        let res = scraper
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        res.text().await.unwrap()
    }

    /// A certificate from the test CA, not registered.
    pub fn issue_cert(&self, tenant: &str, name: &str) -> (String, String) {
        pki::issue_client_cert(
            &self.keys,
            &pki::client_identity(&tenant_id(tenant), name),
            name,
            30,
        )
        .unwrap()
    }

    /// A JWT signed by the deployment's key.
    pub fn token(&self, tenant: &str, roles: &[Role], sub: &str) -> String {
        let now = SystemClock.now_secs();
        self.sign(&MintClaims {
            iss: &self.config.jwt.issuer,
            aud: &self.config.jwt.audience,
            sub,
            tenant,
            roles: roles.iter().map(|r| r.as_str()).collect(),
            iat: now,
            nbf: now,
            exp: now + 600,
            jti: uuid::Uuid::new_v4().to_string(),
        })
    }

    pub fn sign(&self, claims: &MintClaims<'_>) -> String {
        mint_eddsa(&std::fs::read(self.keys.jwt_private()).unwrap(), claims).unwrap()
    }

    /// A bearer-token API client for `tenant` with `roles`.
    pub fn jwt_client(&self, tenant: &str, roles: &[Role]) -> Api {
        Api {
            app_base: self.base.clone(),
            client: self.anonymous(),
            token: Some(self.token(tenant, roles, "tester")),
        }
    }

    pub async fn mtls_api(&self, tenant: &str, roles: &[Role], name: &str) -> Api {
        Api {
            app_base: self.base.clone(),
            client: self.mtls_client(tenant, roles, name).await,
            token: None,
        }
    }
}

/// A client bound to one credential, with JSON helpers.
#[derive(Clone)]
pub struct Api {
    pub app_base: String,
    pub client: reqwest::Client,
    pub token: Option<String>,
}

/// Status, headers and JSON body of an answer.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    /// The JSON pointers of a validation problem's errors, in order.
    pub fn pointers(&self) -> Vec<&str> {
        self.body["errors"]
            .as_array()
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(|e| e["pointer"].as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl Api {
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}{}", self.app_base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    pub async fn send(rb: reqwest::RequestBuilder) -> Answer {
        let res = rb.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        Self::send(self.request(reqwest::Method::GET, path)).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        Self::send(self.request(reqwest::Method::DELETE, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        Self::send(self.request(reqwest::Method::POST, path).json(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Answer {
        Self::send(self.request(reqwest::Method::PATCH, path).json(body)).await
    }

    /// Creates a SIM and returns its JSON, asserting 201.
    pub async fn create_sim(&self, body: Value) -> Value {
        let a = self.post("/v1/sims", &body).await;
        assert_eq!(a.status, 201, "create failed: {:?}", a.body);
        a.body
    }
}

/// The tenant named `name` (a valid name).
pub fn tenant_id(name: &str) -> TenantId {
    TenantId::parse(name).unwrap()
}

/// Task `n` of a test: a real id, the UUID numbered `n`.
pub fn task_no(n: u128) -> simvault::domain::TaskId {
    uuid::Uuid::from_u128(n).into()
}

/// Webhook `n` of a test: a real id, the UUID numbered `n`.
pub fn hook_no(n: u128) -> simvault::domain::WebhookId {
    uuid::Uuid::from_u128(n).into()
}

/// A Luhn-valid ICCID ending in `n`.
pub fn iccid(n: u64) -> String {
    let body = format!("8944{n:014}");
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find(|s| simvault::domain::identifiers::luhn_valid(s))
        .unwrap()
}

pub fn sim_body(n: u64) -> Value {
    json!({"iccid": iccid(n), "imsi": format!("23415{n:010}")})
}

/// Runs raw SQL against a test store (tampering tests): `$body` sees `$pool`, the concrete pool.
macro_rules! raw_sql {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            simvault::store::Db::Sqlite(pools) => {
                let $pool = &pools.write;
                $body
            }
            simvault::store::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use raw_sql;

impl TestDb {
    /// The SQLite database file, if this is SQLite.
    pub fn sqlite_dir(&self) -> Option<&std::path::Path> {
        self._dir.as_ref().map(|d| d.path())
    }

    /// The PostgreSQL schema, if this is PostgreSQL.
    pub fn pg_schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }
}

/// `(action, outcome, record)` of one audit chain (a tenant's, or `_platform`), in order.
pub async fn chain_records(db: &Db, chain: &str) -> Vec<(String, String, serde_json::Value)> {
    let rows: Vec<(String, String, String)> = raw_sql!(db, p => sqlx::query_as(
        "SELECT action, outcome, record FROM audit_events WHERE tenant_id = $1 ORDER BY seq")
        .bind(chain)
        .fetch_all(p)
        .await)
    .unwrap();
    rows.into_iter()
        .map(|(a, o, r)| (a, o, serde_json::from_str(&r).unwrap()))
        .collect()
}

/// The body of `GET /v1/audit/export?{query}`, which must answer `200`.
pub async fn audit_export(api: &Api, query: &str) -> String {
    let res = api
        .request(reqwest::Method::GET, &format!("/v1/audit/export?{query}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.text().await.unwrap()
}
