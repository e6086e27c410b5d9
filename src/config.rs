//! Configuration from the environment (see the README's configuration reference), with
//! defaults that make `simvault serve` work out of the box on a data directory made by
//! `simvault init`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::auth::jwt::{ClaimNames, parse_algorithm};
use crate::domain::LuhnPolicy;
use crate::pki::KeyPaths;
use crate::server::Limits;
use crate::server::tls::TlsFiles;
use crate::vault::RootKeySource;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8443";
pub const DEFAULT_DATA_DIR: &str = "./simvault-data";
pub const DEFAULT_JWT_ISSUER: &str = "simvault";
pub const DEFAULT_JWT_AUDIENCE: &str = "simvault";
/// Where people reach this deployment (`SIMVAULT_PUBLIC_URL`): links and redirects are built on it.
pub const DEFAULT_PUBLIC_URL: &str = "https://localhost:8443";

#[derive(Debug, Clone)]
pub struct JwtSettings {
    /// PEM public key or JWKS file.
    pub keys: PathBuf,
    pub algorithm: jsonwebtoken::Algorithm,
    pub issuer: String,
    pub audience: String,
    pub claims: ClaimNames,
    /// Longest lifetime (`iat`, else `nbf`, to `exp`) a token may have been issued for.
    pub max_lifetime: std::time::Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// `postgres://…` selects PostgreSQL; otherwise SQLite at `data_dir/simvault.db`.
    pub database_url: Option<String>,
    pub listen: String,
    pub tls: TlsFiles,
    pub jwt: JwtSettings,
    pub iccid_luhn: LuhnPolicy,
    pub limits: Limits,
    pub root_key: RootKeySource,
    pub tasks: TaskSettings,
    /// A deployment's own policy directory (`simvault.cedarschema` + `*.cedar`); the built-in
    /// policies when unset.
    pub policy_dir: Option<PathBuf>,
    pub audit: AuditSettings,
    /// PIN operations (reset, unblock) a minute per principal, per replica; 0 = unlimited.
    pub pin_ops_per_minute: u32,
    /// The carrier's system (generic HTTP upstream), if any.
    pub upstream: Option<crate::adapters::upstream::HttpSettings>,
    /// The background sync of every SIM from upstream (interval 0: off).
    pub sync: crate::service::sync::SyncSettings,
    /// Webhook delivery.
    pub webhooks: crate::service::webhooks::WebhookSettings,
    /// How long a client identity's resolution is cached (at most 1 s; zero: none).
    pub identity_cache: std::time::Duration,
    /// Refused credentials: aggregated platform records and the per-address limit.
    pub refusals: crate::service::refusals::RefusalSettings,
    /// The tenant whose `metrics`/`admin` principals see platform-wide metrics (unset: none).
    pub metrics_platform_tenant: Option<crate::domain::TenantId>,
    /// The web console: session limits and the public address.
    pub console: crate::service::console::ConsoleSettings,
    /// Console sign-in by OpenID Connect (unset issuer: off).
    pub oidc: Option<crate::auth::oidc::OidcSettings>,
}

/// The audit log's signed checkpoints.
#[derive(Debug, Clone)]
pub struct AuditSettings {
    /// The Ed25519 private key the server signs checkpoints with.
    pub signing_key: PathBuf,
    /// Its public half, for `simvault audit verify`.
    pub verifying_key: PathBuf,
    /// How often each chain's head is signed (when it moved).
    pub checkpoint_interval: std::time::Duration,
}

/// Background task workers.
#[derive(Debug, Clone, Copy)]
pub struct TaskSettings {
    /// How long a claimed task stays with its worker without progress; a task whose worker
    /// died is resumed by another after this.
    pub lease: std::time::Duration,
    /// How often idle workers look for work (they are also woken when work is queued).
    pub poll: std::time::Duration,
    /// Whether this replica works on bulk tasks (`SIMVAULT_BULK_WORKER=false` makes an
    /// API-only replica; others do the work).
    pub bulk_worker: bool,
    /// Bulk batches this replica works on at once (one prepares while another commits).
    pub bulk_concurrency: usize,
}

impl Default for TaskSettings {
    fn default() -> Self {
        Self {
            lease: std::time::Duration::from_secs(30),
            poll: std::time::Duration::from_secs(5),
            bulk_worker: true,
            bulk_concurrency: 2,
        }
    }
}

/// A whole number from the environment within `range`, else `default` when unset.
fn seconds(name: &str, default: u64, range: std::ops::RangeInclusive<u64>) -> anyhow::Result<u64> {
    match env(name) {
        None => Ok(default),
        Some(v) => v
            .parse::<u64>()
            .ok()
            .filter(|n| range.contains(n))
            .with_context(|| {
                format!(
                    "{name} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                )
            }),
    }
}

/// The HSM holding the root key: `SIMVAULT_PKCS11_MODULE`, `_TOKEN_LABEL`, `_PIN` (all
/// required) and `_KEY_LABEL` (default `simvault-root`).
pub fn pkcs11_settings() -> anyhow::Result<crate::vault::pkcs11::Pkcs11Settings> {
    let required = |name: &str| {
        env(name).with_context(|| format!("{name} must be set for the pkcs11 root-key provider"))
    };
    Ok(crate::vault::pkcs11::Pkcs11Settings {
        module: PathBuf::from(required("SIMVAULT_PKCS11_MODULE")?),
        token_label: required("SIMVAULT_PKCS11_TOKEN_LABEL")?,
        pin: secrecy::SecretString::from(required("SIMVAULT_PKCS11_PIN")?),
        key_label: env("SIMVAULT_PKCS11_KEY_LABEL").unwrap_or_else(|| "simvault-root".into()),
    })
}

/// The identity provider for console sign-in: `SIMVAULT_OIDC_ISSUER` (unset: no OIDC sign-in),
/// `SIMVAULT_OIDC_CLIENT_ID` and `SIMVAULT_OIDC_CLIENT_SECRET` (then required), the redirect
/// `{SIMVAULT_PUBLIC_URL}/console/callback` (`public`, already checked to be https by the
/// console's settings), and the bearer JWT claim names.
pub fn oidc_settings(
    claims: &ClaimNames,
    public: &str,
) -> anyhow::Result<Option<crate::auth::oidc::OidcSettings>> {
    use crate::auth::oidc::{CALLBACK_PATH, OidcSettings, acceptable_url};
    let Some(issuer) = env("SIMVAULT_OIDC_ISSUER") else {
        return Ok(None);
    };
    anyhow::ensure!(
        acceptable_url(&issuer),
        "SIMVAULT_OIDC_ISSUER must be an https URL (http only on a loopback address)"
    );
    let required = |name: &str| {
        env(name).with_context(|| format!("{name} must be set when SIMVAULT_OIDC_ISSUER is"))
    };
    Ok(Some(OidcSettings {
        issuer,
        client_id: required("SIMVAULT_OIDC_CLIENT_ID")?,
        client_secret: secrecy::SecretString::from(required("SIMVAULT_OIDC_CLIENT_SECRET")?),
        redirect_uri: format!("{public}{CALLBACK_PATH}"),
        claims: claims.clone(),
    }))
}

/// Reads one environment variable; empty counts as unset.
pub fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Config {
    /// Defaults for a data directory, overridden by `SIMVAULT_*` variables.
    pub fn from_env(data_dir: &Path, listen: Option<String>) -> anyhow::Result<Config> {
        let keys = KeyPaths::new(data_dir);
        let path = |var: &str, default: PathBuf| env(var).map(PathBuf::from).unwrap_or(default);
        let algorithm =
            parse_algorithm(&env("SIMVAULT_JWT_ALGORITHM").unwrap_or_else(|| "EdDSA".into()))
                .map_err(anyhow::Error::msg)
                .context("SIMVAULT_JWT_ALGORITHM")?;
        let iccid_luhn = match env("SIMVAULT_ICCID_LUHN").as_deref() {
            None | Some("enforce") => LuhnPolicy::Enforce,
            Some("relaxed") => LuhnPolicy::Relaxed,
            Some(_) => anyhow::bail!("SIMVAULT_ICCID_LUHN must be enforce or relaxed"),
        };
        let claims = ClaimNames {
            tenant: env("SIMVAULT_JWT_TENANT_CLAIM").unwrap_or_else(|| "tenant".into()),
            roles: env("SIMVAULT_JWT_ROLES_CLAIM").unwrap_or_else(|| "roles".into()),
        };
        let console = console_from_env()?;
        Ok(Config {
            oidc: oidc_settings(&claims, &console.public_url)?,
            data_dir: data_dir.to_owned(),
            database_url: env("SIMVAULT_DATABASE_URL"),
            listen: listen
                .or_else(|| env("SIMVAULT_LISTEN"))
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            tls: TlsFiles {
                cert_chain: path("SIMVAULT_TLS_CERT", keys.server_cert()),
                private_key: path("SIMVAULT_TLS_KEY", keys.server_key()),
                client_ca: path("SIMVAULT_CLIENT_CA", keys.ca_cert()),
                client_crls: env("SIMVAULT_CLIENT_CRL")
                    .map(|v| v.split(',').map(|p| PathBuf::from(p.trim())).collect())
                    .unwrap_or_default(),
            },
            jwt: JwtSettings {
                keys: path("SIMVAULT_JWT_KEYS", keys.jwt_public()),
                algorithm,
                issuer: env("SIMVAULT_JWT_ISSUER").unwrap_or_else(|| DEFAULT_JWT_ISSUER.into()),
                audience: env("SIMVAULT_JWT_AUDIENCE")
                    .unwrap_or_else(|| DEFAULT_JWT_AUDIENCE.into()),
                claims: claims.clone(),
                max_lifetime: std::time::Duration::from_secs(seconds(
                    "SIMVAULT_JWT_MAX_LIFETIME_SECS",
                    24 * 3600,
                    60..=31 * 24 * 3600,
                )?),
            },
            metrics_platform_tenant: match env("SIMVAULT_METRICS_PLATFORM_TENANT") {
                None => None,
                Some(t) => Some(
                    crate::domain::TenantId::parse(&t)
                        .map_err(|e| anyhow::anyhow!("SIMVAULT_METRICS_PLATFORM_TENANT: {e}"))?,
                ),
            },
            iccid_luhn,
            console,
            limits: limits_from_env()?,
            policy_dir: env("SIMVAULT_POLICY_DIR").map(PathBuf::from),
            pin_ops_per_minute: match env("SIMVAULT_PIN_OPS_PER_MINUTE") {
                None => 30,
                Some(v) => v
                    .parse::<u32>()
                    .context("SIMVAULT_PIN_OPS_PER_MINUTE must be a whole number (0: no limit)")?,
            },
            upstream: match env("SIMVAULT_UPSTREAM_URL") {
                None => None,
                Some(url) => {
                    anyhow::ensure!(
                        url.starts_with("https://") || url.starts_with("http://"),
                        "SIMVAULT_UPSTREAM_URL must be an http(s) URL"
                    );
                    Some(crate::adapters::upstream::HttpSettings {
                        url,
                        token: env("SIMVAULT_UPSTREAM_TOKEN").map(secrecy::SecretString::from),
                        timeout: std::time::Duration::from_secs(seconds(
                            "SIMVAULT_UPSTREAM_TIMEOUT_SECS",
                            10,
                            1..=300,
                        )?),
                        client_identity: env("SIMVAULT_UPSTREAM_CLIENT_CERT")
                            .zip(env("SIMVAULT_UPSTREAM_CLIENT_KEY"))
                            .map(|(c, k)| (PathBuf::from(c), PathBuf::from(k))),
                        ca: env("SIMVAULT_UPSTREAM_CA").map(PathBuf::from),
                    })
                }
            },
            sync: crate::service::sync::SyncSettings {
                interval: std::time::Duration::from_secs(seconds(
                    "SIMVAULT_UPSTREAM_SYNC_SECS",
                    300,
                    0..=604_800,
                )?),
                concurrency: usize::try_from(seconds("SIMVAULT_UPSTREAM_CONCURRENCY", 8, 1..=256)?)
                    .unwrap_or(8),
            },
            audit: AuditSettings {
                signing_key: path("SIMVAULT_AUDIT_SIGNING_KEY", keys.audit_signing_key()),
                verifying_key: path("SIMVAULT_AUDIT_VERIFYING_KEY", keys.audit_verifying_key()),
                checkpoint_interval: std::time::Duration::from_secs(
                    match env("SIMVAULT_AUDIT_CHECKPOINT_SECS") {
                        None => 60,
                        Some(v) => v
                            .parse::<u64>()
                            .ok()
                            .filter(|s| (1..=86_400).contains(s))
                            .context("SIMVAULT_AUDIT_CHECKPOINT_SECS must be 1 to 86400 seconds")?,
                    },
                ),
            },
            webhooks: {
                let ms = |name, default, range| {
                    seconds(name, default, range).map(std::time::Duration::from_millis)
                };
                crate::service::webhooks::WebhookSettings {
                    allow_insecure: match env("SIMVAULT_WEBHOOK_ALLOW_INSECURE").as_deref() {
                        None | Some("false") | Some("0") => false,
                        Some("true") | Some("1") => true,
                        Some(_) => {
                            anyhow::bail!("SIMVAULT_WEBHOOK_ALLOW_INSECURE must be true or false")
                        }
                    },
                    timeout: std::time::Duration::from_secs(seconds(
                        "SIMVAULT_WEBHOOK_TIMEOUT_SECS",
                        10,
                        1..=120,
                    )?),
                    retry_base: ms("SIMVAULT_WEBHOOK_RETRY_BASE_MS", 10_000, 10..=3_600_000)?,
                    give_up_after: std::time::Duration::from_secs(seconds(
                        "SIMVAULT_WEBHOOK_GIVE_UP_SECS",
                        86_400,
                        1..=604_800,
                    )?),
                    poll: ms("SIMVAULT_WEBHOOK_POLL_MS", 1_000, 10..=60_000)?,
                    concurrency: usize::try_from(seconds(
                        "SIMVAULT_WEBHOOK_CONCURRENCY",
                        8,
                        1..=256,
                    )?)
                    .unwrap_or(8),
                }
            },
            identity_cache: std::time::Duration::from_millis(seconds(
                "SIMVAULT_IDENTITY_CACHE_MS",
                1_000,
                0..=1_000,
            )?),
            refusals: crate::service::refusals::RefusalSettings {
                window: std::time::Duration::from_secs(seconds(
                    "SIMVAULT_AUTH_REFUSAL_WINDOW_SECS",
                    10,
                    1..=3_600,
                )?),
                per_address: u32::try_from(seconds(
                    "SIMVAULT_AUTH_REFUSALS_PER_ADDRESS",
                    20,
                    1..=1_000_000,
                )?)
                .unwrap_or(20),
            },
            tasks: TaskSettings {
                lease: match env("SIMVAULT_TASK_LEASE_SECS") {
                    None => TaskSettings::default().lease,
                    Some(v) => std::time::Duration::from_secs(
                        v.parse::<u64>()
                            .ok()
                            .filter(|s| (1..=3600).contains(s))
                            .context("SIMVAULT_TASK_LEASE_SECS must be 1 to 3600 seconds")?,
                    ),
                },
                bulk_worker: match env("SIMVAULT_BULK_WORKER").as_deref() {
                    None | Some("true") | Some("1") => true,
                    Some("false") | Some("0") => false,
                    Some(_) => anyhow::bail!("SIMVAULT_BULK_WORKER must be true or false"),
                },
                bulk_concurrency: usize::try_from(seconds("SIMVAULT_BULK_CONCURRENCY", 2, 1..=16)?)
                    .unwrap_or(2),
                ..TaskSettings::default()
            },
            root_key: match env("SIMVAULT_ROOT_KEY_PROVIDER").as_deref() {
                None | Some("file") => RootKeySource::File(keys.root_key()),
                Some("env") => RootKeySource::Env,
                Some("pkcs11") => RootKeySource::Pkcs11(
                    pkcs11_settings()?,
                    std::time::Duration::from_secs(seconds(
                        "SIMVAULT_PKCS11_CACHE_SECS",
                        300,
                        1..=86_400,
                    )?),
                ),
                Some(_) => anyhow::bail!("SIMVAULT_ROOT_KEY_PROVIDER must be file, env or pkcs11"),
            },
        })
    }

    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join("simvault.db")
    }

    pub fn keys(&self) -> KeyPaths {
        KeyPaths::new(&self.data_dir)
    }
}

/// The web console: `SIMVAULT_CONSOLE_IDLE_SECS` (default 900), `SIMVAULT_CONSOLE_MAX_SECS`
/// (default 28800) and `SIMVAULT_PUBLIC_URL` (default `https://localhost:8443`).
fn console_from_env() -> anyhow::Result<crate::service::console::ConsoleSettings> {
    let defaults = crate::service::console::ConsoleSettings::default();
    let public_url = match env("SIMVAULT_PUBLIC_URL") {
        None => defaults.public_url,
        Some(raw) => {
            let url = url::Url::parse(raw.trim()).ok().filter(|u| {
                u.scheme() == "https"
                    && u.host().is_some()
                    && u.query().is_none()
                    && u.fragment().is_none()
                    && u.username().is_empty()
            });
            let Some(url) = url else {
                anyhow::bail!(
                    "SIMVAULT_PUBLIC_URL must be an https:// URL (the address people open the console at)"
                );
            };
            url.as_str().trim_end_matches('/').to_owned()
        }
    };
    Ok(crate::service::console::ConsoleSettings {
        idle: std::time::Duration::from_secs(seconds(
            "SIMVAULT_CONSOLE_IDLE_SECS",
            900,
            1..=86_400,
        )?),
        max: std::time::Duration::from_secs(seconds(
            "SIMVAULT_CONSOLE_MAX_SECS",
            28_800,
            1..=31 * 86_400,
        )?),
        public_url,
    })
}

/// Connection and body limits (API.md "Connection limits"): `SIMVAULT_IDLE_TIMEOUT_SECS`,
/// `SIMVAULT_HEADER_TIMEOUT_SECS`, `SIMVAULT_BODY_TIMEOUT_SECS`, `SIMVAULT_H2_KEEPALIVE_SECS`,
/// `SIMVAULT_MAX_CONNECTIONS`, `SIMVAULT_MAX_CONNECTIONS_PER_ADDR`,
/// `SIMVAULT_MAX_LARGE_BODIES_PER_PRINCIPAL`.
fn limits_from_env() -> anyhow::Result<Limits> {
    let d = Limits::default();
    let secs = |name, default: std::time::Duration, range| {
        seconds(name, default.as_secs(), range).map(std::time::Duration::from_secs)
    };
    let count = |name, default: usize, range: std::ops::RangeInclusive<u64>| {
        seconds(name, u64::try_from(default).unwrap_or(u64::MAX), range)
            .map(|n| usize::try_from(n).unwrap_or(default))
    };
    Ok(Limits {
        idle: secs("SIMVAULT_IDLE_TIMEOUT_SECS", d.idle, 1..=3600)?,
        header_read: secs("SIMVAULT_HEADER_TIMEOUT_SECS", d.header_read, 1..=300)?,
        body_progress: secs("SIMVAULT_BODY_TIMEOUT_SECS", d.body_progress, 1..=600)?,
        h2_keepalive: secs("SIMVAULT_H2_KEEPALIVE_SECS", d.h2_keepalive, 1..=3600)?,
        max_connections: count("SIMVAULT_MAX_CONNECTIONS", d.max_connections, 1..=1_000_000)?,
        max_connections_per_addr: count(
            "SIMVAULT_MAX_CONNECTIONS_PER_ADDR",
            d.max_connections_per_addr,
            1..=1_000_000,
        )?,
        large_bodies_per_principal: count(
            "SIMVAULT_MAX_LARGE_BODIES_PER_PRINCIPAL",
            d.large_bodies_per_principal,
            1..=1024,
        )?,
        ..d
    })
}

/// `--data-dir`, else `SIMVAULT_DATA_DIR`, else `./simvault-data`.
pub fn resolve_data_dir(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| env("SIMVAULT_DATA_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
}
