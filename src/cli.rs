//! The `simvault` command line: parsing (clap) and the operator commands (`cert` in its own
//! file).

mod cert;

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};

use zeroize::Zeroizing;

use crate::auth::jwt::{MintClaims, mint_eddsa};
use crate::clock::{Clock, SystemClock};
use crate::config::{Config, resolve_data_dir};
use crate::domain::{Role, TenantId};
use crate::pki::{self, KeyPaths};
use crate::service::{ServiceError, admin};
use crate::startup::{self, Application};

#[derive(Debug, Parser)]
#[command(name = "simvault", version, about = "A hardened SIM credential vault")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct DataDir {
    /// Data directory (keys, SQLite database). Default: $SIMVAULT_DATA_DIR, then ./simvault-data
    #[arg(long = "data-dir", value_name = "D")]
    pub data_dir: Option<PathBuf>,
}

impl DataDir {
    pub(crate) fn path(&self) -> PathBuf {
        resolve_data_dir(self.data_dir.clone())
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the root key, a development CA, the server certificate (localhost, 127.0.0.1,
    /// ::1), the JWT signing key pair and the database. Never overwrites key material.
    Init(DataDir),
    /// Manage tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage client certificates.
    Cert {
        #[command(subcommand)]
        command: cert::CertCommand,
    },
    /// Print a signed JWT (development identity provider).
    Token(TokenArgs),
    /// Check a policy directory (simvault.cedarschema + *.cedar): parse, validate against the
    /// schema, and report the first problem with its file and line.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Manage the root key.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Verify and export the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Import SIMs with their secrets from a vendor file: CSV with a header naming columns
    /// among iccid, imsi, msisdn, ki, eki, opc, pin1, puk1, pin2, puk2, activation_code,
    /// sim_type, eid; or JSON Lines of `POST /v1/sims` bodies. Runs as a durable task (a
    /// running server shares the work; an interrupted import resumes), shows progress, and
    /// lists the rows that failed. Exits 1 if any row failed.
    Import(ImportArgs),
    /// Offline Milenage calculator (3GPP TS 35.206) for checking cards; touches no database.
    /// Key material given on the command line is visible to other local users through the
    /// process list: use it on a workstation, not a shared host.
    Milenage(MilenageArgs),
    /// Serve the HTTPS API.
    Serve(ServeArgs),
    /// Initialise a data directory if needed, create a `demo` tenant with a provisioner
    /// certificate and support/operator tokens, print working curl commands, and serve.
    Quickstart(ServeArgs),
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name: a-z, 0-9, '-' and '_'.
        tenant: String,
        #[command(flatten)]
        data: DataDir,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate DIR (default: $SIMVAULT_POLICY_DIR, else ./policies).
    Check { dir: Option<PathBuf> },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Seal the root key file with a passphrase (Argon2id). The passphrase comes from
    /// SIMVAULT_PASSPHRASE or is asked for twice on the terminal; `serve` then needs it too.
    Seal(DataDir),
    /// Rotate a tenant's key-encryption key: add a version and re-wrap every SIM key under it,
    /// here and now (a running server's worker shares the work), printing progress.
    Rotate(RotateArgs),
    /// Create the root key inside the HSM named by SIMVAULT_PKCS11_MODULE, _TOKEN_LABEL, _PIN
    /// and _KEY_LABEL: AES-256, sensitive, never extractable. Refuses if the label exists.
    /// (`--data-dir` is accepted for symmetry; the key lives in the token.)
    HsmInit(DataDir),
    /// Move the root key between providers, re-wrapping every tenant key in one transaction
    /// (servers keep serving; restart them with the new provider afterwards). From the
    /// configured provider to `pkcs11` (the HSM of SIMVAULT_PKCS11_*), or to `file` (a new
    /// D/keys/root.key).
    MigrateRoot(MigrateRootArgs),
}

#[derive(Debug, Args)]
pub struct MigrateRootArgs {
    /// `pkcs11` or `file`.
    #[arg(long, value_parser = ["pkcs11", "file"])]
    pub to: String,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Args)]
pub struct MilenageArgs {
    /// K, 32 hex digits.
    #[arg(long)]
    pub k: String,
    /// OPc, 32 hex digits.
    #[arg(long, required_unless_present = "op", conflicts_with = "op")]
    pub opc: Option<String>,
    /// OP, 32 hex digits (OPc is derived from it).
    #[arg(long)]
    pub op: Option<String>,
    /// RAND, 32 hex digits.
    #[arg(long)]
    pub rand: String,
    /// SQN, 12 hex digits.
    #[arg(long)]
    pub sqn: String,
    /// AMF, 4 hex digits.
    #[arg(long)]
    pub amf: String,
    /// One JSON object of lower-case hex.
    #[arg(long)]
    pub json: bool,
}

// Holds key material: never printed.
impl std::fmt::Debug for MilenageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MilenageArgs")
    }
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Check hash chains and signed checkpoints: one tenant's, the platform chain
    /// (`--platform`), or every chain. Exits non-zero naming the first bad sequence number.
    Verify(AuditVerifyArgs),
    /// Write one chain's records, oldest first, as NDJSON or CSV (to stdout or --output).
    Export(AuditExportArgs),
}

#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct ChainChoice {
    /// A tenant's chain.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The platform chain (refused authentications, root key operations).
    #[arg(long)]
    pub platform: bool,
}

impl ChainChoice {
    /// The chain named, or `None` for every chain.
    fn chain(&self) -> anyhow::Result<Option<String>> {
        if self.platform {
            return Ok(Some(crate::audit::PLATFORM_CHAIN.to_owned()));
        }
        self.tenant
            .as_deref()
            .map(|t| {
                TenantId::parse(t)
                    .map(|t| t.as_str().to_owned())
                    .map_err(anyhow::Error::msg)
            })
            .transpose()
    }
}

#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub chain: ChainChoice,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    pub chain: ChainChoice,
    /// `ndjson` or `csv`.
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
    pub format: String,
    /// Write here instead of stdout (created new; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotateTarget {
    /// Rotate this tenant's key-encryption key.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Rotate the root key: re-wrap every tenant key under a new one and replace the key
    /// file (sealed again with the same passphrase if it was sealed). Restart every replica
    /// afterwards.
    #[arg(long)]
    pub root: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    #[command(flatten)]
    pub target: RotateTarget,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long)]
    pub tenant: String,
    /// Comma-separated roles.
    #[arg(long = "role")]
    pub roles: String,
    /// Subject (who the token is for).
    #[arg(long)]
    pub sub: String,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl: i64,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tenant to import into.
    #[arg(long)]
    pub tenant: String,
    /// The file (CSV, or JSON Lines if named .jsonl/.ndjson or with --format jsonl).
    pub file: PathBuf,
    /// `csv` or `jsonl` (default: from the file name).
    #[arg(long, value_parser = ["csv", "jsonl"])]
    pub format: Option<String>,
    /// A file holding the transport key (32 hex digits) the `eki` column is encrypted under
    /// (AES-128-CBC, zero IV). Default: $SIMVAULT_TRANSPORT_KEY.
    #[arg(long, value_name = "FILE")]
    pub transport_key_file: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Listen address. Default: $SIMVAULT_LISTEN, then 127.0.0.1:8443
    #[arg(long)]
    pub listen: Option<String>,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(d) => init(&d.path()).await,
        Command::Tenant {
            command: TenantCommand::Create { tenant, data },
        } => {
            let tenant = TenantId::parse(&tenant).map_err(anyhow::Error::msg)?;
            let config = Config::from_env(&data.path(), None)?;
            let db = startup::open_store(&config).await?;
            let actor = crate::domain::principal::cli_subject();
            admin::create_tenant_by(&db, &SystemClock, &tenant, &actor)
                .await
                .map_err(explain)?;
            println!("tenant {tenant} created");
            Ok(())
        }
        Command::Cert { command } => cert::run(command).await,
        Command::Token(args) => {
            let config = Config::from_env(&args.data.path(), None)?;
            let db = startup::open_store(&config).await?;
            let tenant = TenantId::parse(&args.tenant).map_err(anyhow::Error::msg)?;
            if !admin::tenant_exists(&db, &tenant).await.map_err(explain)? {
                bail!("no tenant {tenant}: create it with `simvault tenant create {tenant}`");
            }
            let roles = Role::parse_list(&args.roles).map_err(anyhow::Error::msg)?;
            println!(
                "{}",
                mint_token(&config, &tenant, &roles, &args.sub, args.ttl)?
            );
            Ok(())
        }
        Command::Import(args) => import(&args).await,
        Command::Keys {
            command: KeysCommand::Seal(data),
        } => seal_root_key(&data.path()),
        Command::Keys {
            command: KeysCommand::Rotate(args),
        } => rotate_tenant_key(&args).await,
        Command::Keys {
            command: KeysCommand::HsmInit(_),
        } => hsm_init(),
        Command::Keys {
            command: KeysCommand::MigrateRoot(args),
        } => migrate_root(&args).await,
        Command::Policy {
            command: PolicyCommand::Check { dir },
        } => {
            let dir = dir
                .or_else(|| crate::config::env("SIMVAULT_POLICY_DIR").map(PathBuf::from))
                .unwrap_or_else(|| PathBuf::from("policies"));
            let policy = crate::policy::Policy::load_dir(&dir)?;
            println!("{}: {policy:?}, valid", dir.display());
            Ok(())
        }
        Command::Audit {
            command: AuditCommand::Verify(args),
        } => audit_verify(&args).await,
        Command::Audit {
            command: AuditCommand::Export(args),
        } => audit_export(&args).await,
        Command::Milenage(args) => milenage(&args),
        Command::Serve(args) => serve(&args).await,
        Command::Quickstart(args) => quickstart(&args).await,
    }
}

/// `n` bytes from hex (either case), or an error naming the option.
fn hex_arg<const N: usize>(name: &str, value: &str) -> anyhow::Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    let bytes = Zeroizing::new(hex::decode(value.trim()).unwrap_or_default());
    if bytes.len() != N {
        bail!("--{name} must be {} hexadecimal digits", N * 2);
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// `simvault milenage`: computes f1–f5* for one challenge, offline.
fn milenage(args: &MilenageArgs) -> anyhow::Result<()> {
    use crate::domain::milenage::{Milenage, opc_from_op};
    let k = hex_arg::<16>("k", &args.k)?;
    let opc = match (&args.opc, &args.op) {
        (Some(opc), _) => hex_arg::<16>("opc", opc)?,
        (None, Some(op)) => opc_from_op(&k, &*hex_arg::<16>("op", op)?),
        (None, None) => bail!("give --opc or --op"),
    };
    let rand = hex_arg::<16>("rand", &args.rand)?;
    let sqn = hex_arg::<6>("sqn", &args.sqn)?;
    let amf = hex_arg::<2>("amf", &args.amf)?;
    let out = Milenage::new(&k, &opc).compute(&rand, &sqn, &amf);
    let fields = [
        ("opc", hex::encode(*opc)),
        ("mac_a", hex::encode(out.mac_a)),
        ("mac_s", hex::encode(out.mac_s)),
        ("res", hex::encode(out.res)),
        ("ck", hex::encode(*out.ck)),
        ("ik", hex::encode(*out.ik)),
        ("ak", hex::encode(out.ak)),
        ("ak_star", hex::encode(out.ak_star)),
        ("autn", hex::encode(out.autn(&sqn, &amf))),
    ];
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (name, value) in &fields {
            println!("{name:<8} {value}");
        }
    }
    Ok(())
}

fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such tenant"),
        other => anyhow::anyhow!("{other}"),
    }
}

async fn rotate_tenant_key(args: &RotateArgs) -> anyhow::Result<()> {
    let config = Config::from_env(&args.data.path(), None)?;
    let Some(tenant) = &args.target.tenant else {
        return rotate_root_key(&config).await;
    };
    let tenant = TenantId::parse(tenant).map_err(anyhow::Error::msg)?;
    let db = startup::open_store(&config).await?;
    if !admin::tenant_exists(&db, &tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}");
    }
    let clock: crate::clock::SharedClock = std::sync::Arc::new(SystemClock);
    let keyring = startup::open_vault(&config, &db, clock.as_ref()).await?;
    let services = startup::services(&config, db.clone(), clock, keyring)?;
    let task = services
        .start_rotation(&crate::domain::Principal::cli(tenant.clone()), Vec::new())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "rotation task {} started: {} SIM keys to re-wrap",
        task.id, task.total_items
    );
    let (_keep, stop) = tokio::sync::watch::channel(false);
    let owner = uuid::Uuid::new_v4().to_string();
    loop {
        let worked = services
            .run_rotation(&owner, config.tasks.lease, &stop)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let status = crate::store::tasks::get(&db, tenant.as_str(), &task.id.to_string()).await?;
        match status {
            Some(t) if t.status == "completed" || t.status == "failed" => {
                println!(
                    "rotation {}: {} re-wrapped, {} failed",
                    t.status, t.completed_items, t.failed_items
                );
                db.close().await;
                return if t.status == "completed" && t.failed_items == 0 {
                    Ok(())
                } else {
                    bail!("some SIM keys could not be re-wrapped (see the log)")
                };
            }
            Some(t) => {
                println!("{} of {} re-wrapped", t.completed_items, t.total_items);
                if worked.is_none() {
                    // A running server's worker holds the task: wait for it.
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                }
            }
            None => bail!("the rotation task disappeared"),
        }
    }
}

/// The transport key for `eki` columns: `--transport-key-file`, else the environment.
fn transport_key(args: &ImportArgs) -> anyhow::Result<Option<Zeroizing<[u8; 16]>>> {
    let text = match &args.transport_key_file {
        Some(path) => Some(Zeroizing::new(std::fs::read_to_string(path).with_context(
            || format!("reading the transport key {}", path.display()),
        )?)),
        None => crate::config::env("SIMVAULT_TRANSPORT_KEY").map(Zeroizing::new),
    };
    text.map(|t| {
        crate::domain::eki::parse_transport_key(&t)
            .context("the transport key must be 32 hexadecimal digits")
    })
    .transpose()
}

async fn import(args: &ImportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let config = Config::from_env(&args.data.path(), None)?;
    let tenant = TenantId::parse(&args.tenant).map_err(anyhow::Error::msg)?;
    let key = transport_key(args)?;
    let format = crate::import_file::Format::choose(args.format.as_deref(), &args.file);
    let rows =
        crate::import_file::read_rows(&args.file, format, key.as_deref(), config.iccid_luhn)?;
    if rows.is_empty() {
        bail!("{} holds no rows", args.file.display());
    }
    let db = startup::open_store(&config).await?;
    if !admin::tenant_exists(&db, &tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}: create it with `simvault tenant create {tenant}`");
    }
    let clock: crate::clock::SharedClock = std::sync::Arc::new(SystemClock);
    let keyring = startup::open_vault(&config, &db, clock.as_ref()).await?;
    let services = startup::services(&config, db.clone(), clock, keyring)?;
    let task = services
        .queue_import(
            &crate::domain::Principal::cli(tenant.clone()),
            rows,
            Vec::new(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let task_id = task.id.to_string();
    println!("import task {task_id}: {} row(s)", task.total_items);
    let total = u64::try_from(task.total_items).unwrap_or(0);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} rows  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let owner = uuid::Uuid::new_v4().to_string();
    let mut last_line = std::time::Instant::now();
    let done = loop {
        let row = crate::store::tasks::get(&db, tenant.as_str(), &task_id)
            .await?
            .context("the import task disappeared")?;
        let processed = u64::try_from(row.completed_items + row.failed_items).unwrap_or(0);
        match &bar {
            Some(bar) => bar.set_position(processed),
            None if last_line.elapsed() >= std::time::Duration::from_secs(2) => {
                eprintln!("{processed} of {total} rows");
                last_line = std::time::Instant::now();
            }
            None => {}
        }
        if row.status == "completed" || row.status == "failed" {
            break row;
        }
        let worked = services
            .work_on(&row, &owner, config.tasks.lease)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !worked {
            // A running server's worker holds the rest: wait for it.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    };
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    println!(
        "import {}: {} imported, {} failed",
        done.status, done.completed_items, done.failed_items
    );
    let mut offset = 0;
    loop {
        let (failed, _) =
            crate::store::tasks::items(&db, &task_id, Some("failed"), offset, 1000).await?;
        if failed.is_empty() {
            break;
        }
        offset += i64::try_from(failed.len()).unwrap_or(0);
        for item in failed {
            println!(
                "line {}: {}",
                item.line.unwrap_or(item.seq),
                item.error.unwrap_or_default()
            );
        }
    }
    db.close().await;
    if done.failed_items > 0 || done.status != "completed" {
        bail!("{} row(s) were not imported", done.failed_items);
    }
    Ok(())
}

/// Re-wraps every tenant key under a new root key. The new key file is written first (as
/// `root.key.next`), the database switched in one transaction, then the file renamed into
/// place; if the process dies between the last two steps, the next start finishes the job.
async fn rotate_root_key(config: &Config) -> anyhow::Result<()> {
    use crate::vault::root::{self, LocalRootKey};
    use crate::vault::{Keyring, RootKeySource};
    let RootKeySource::File(path) = &config.root_key else {
        bail!(
            "--root rotates the root key file; with SIMVAULT_ROOT_KEY_PROVIDER=env use a key file for the rotation"
        );
    };
    let db = startup::open_store(config).await?;
    let current = startup::open_vault(config, &db, &SystemClock).await?;
    let sealed = root::is_sealed(&std::fs::read_to_string(path)?);
    let key = crate::vault::new_key()?;
    let contents = if sealed {
        Zeroizing::new(root::seal_with_passphrase(
            &key,
            &root::passphrase("Root key passphrase: ")?,
        )?)
    } else {
        root::encode_plain(&key)
    };
    let next_path = root::next_path(path);
    let _ = std::fs::remove_file(&next_path);
    pki::write_new(&next_path, contents.as_bytes(), true)?;
    let next = Keyring::new(std::sync::Arc::new(LocalRootKey::new(key)));
    let actor = crate::domain::principal::cli_subject();
    let n = crate::service::rotation::rotate_root(&db, &current, &next, &actor, SystemClock.now())
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    std::fs::rename(&next_path, path)?;
    db.close().await;
    println!(
        "root key rotated: {n} tenant key version(s) re-wrapped; restart every replica with the new key"
    );
    Ok(())
}

fn hsm_init() -> anyhow::Result<()> {
    let settings = crate::config::pkcs11_settings()?;
    crate::vault::pkcs11::create_root_key(&settings)?;
    let [sensitive, extractable, always_sensitive, never_extractable] =
        crate::vault::pkcs11::key_attributes(&settings)?;
    if !sensitive || extractable || !always_sensitive || !never_extractable {
        bail!(
            "the token created the key but reports sensitive={sensitive} extractable={extractable} \
             always_sensitive={always_sensitive} never_extractable={never_extractable}: do not use it"
        );
    }
    println!(
        "root key {:?} created in token {:?}: sensitive=true extractable=false \
         always_sensitive=true never_extractable=true",
        settings.key_label, settings.token_label
    );
    Ok(())
}

async fn migrate_root(args: &MigrateRootArgs) -> anyhow::Result<()> {
    use crate::vault::root::{self, LocalRootKey};
    use crate::vault::{Keyring, RootKeySource};
    let config = Config::from_env(&args.data.path(), None)?;
    let keys = KeyPaths::new(&args.data.path());
    let from_hsm = matches!(config.root_key, RootKeySource::Pkcs11(..));
    if from_hsm == (args.to == "pkcs11") {
        bail!(
            "the configured provider (SIMVAULT_ROOT_KEY_PROVIDER) is already {}: nothing to move",
            args.to
        );
    }
    let db = startup::open_store(&config).await?;
    let current = startup::open_vault(&config, &db, &SystemClock).await?;
    let actor = crate::domain::principal::cli_subject();
    let (next, file) = if args.to == "pkcs11" {
        let hsm = crate::vault::pkcs11::Pkcs11RootKey::open(
            crate::config::pkcs11_settings()?,
            std::time::Duration::from_secs(300),
        )?;
        (Keyring::new(std::sync::Arc::new(hsm)), None)
    } else {
        let path = keys.root_key();
        if path.exists() {
            bail!(
                "{} exists (a root key from before the HSM?): move it away first",
                path.display()
            );
        }
        let key = crate::vault::new_key()?;
        let next_path = root::next_path(&path);
        let _ = std::fs::remove_file(&next_path);
        pki::write_new(&next_path, root::encode_plain(&key).as_bytes(), true)?;
        (
            Keyring::new(std::sync::Arc::new(LocalRootKey::new(key))),
            Some((next_path, path)),
        )
    };
    let n = crate::service::rotation::move_root(
        &db,
        &current,
        &next,
        &actor,
        &format!("keys.migrate-root.{}", args.to),
        SystemClock.now(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some((next_path, path)) = file {
        std::fs::rename(&next_path, &path)?;
    }
    db.close().await;
    println!(
        "root key moved to {}: {n} tenant key version(s) re-wrapped; restart every replica with \
         SIMVAULT_ROOT_KEY_PROVIDER={}",
        args.to, args.to
    );
    if args.to == "pkcs11" && matches!(config.root_key, RootKeySource::File(_)) {
        println!(
            "{} no longer opens this database's keys; keep it offline only for old backups, or destroy it",
            keys.root_key().display()
        );
    }
    Ok(())
}

/// Replaces the plain root key file by a sealed one (written beside it, then renamed over it).
fn seal_root_key(data_dir: &Path) -> anyhow::Result<()> {
    use crate::vault::root;
    let path = KeyPaths::new(data_dir).root_key();
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    if root::is_sealed(&text) {
        bail!("{} is already sealed", path.display());
    }
    let key = root::read_file(&path, || bail!("not sealed"))?;
    let passphrase = root::passphrase("New root key passphrase: ")?;
    if std::env::var_os("SIMVAULT_PASSPHRASE").is_none() {
        let again = root::passphrase("Repeat the passphrase: ")?;
        use secrecy::ExposeSecret;
        if again.expose_secret() != passphrase.expose_secret() {
            bail!("the passphrases differ");
        }
    }
    let sealed = root::seal_with_passphrase(&key, &passphrase)?;
    let tmp = path.with_extension("key.sealing");
    let _ = std::fs::remove_file(&tmp);
    pki::write_new(&tmp, sealed.as_bytes(), true)?;
    std::fs::rename(&tmp, &path)?;
    println!(
        "sealed {}; serve now needs SIMVAULT_PASSPHRASE or a terminal to ask",
        path.display()
    );
    Ok(())
}

async fn init(data_dir: &Path) -> anyhow::Result<()> {
    let keys = KeyPaths::new(data_dir);
    if keys.root_key().exists()
        && keys.server_cert().exists()
        && !keys.audit_signing_key().exists()
        && !keys.audit_verifying_key().exists()
    {
        // A data directory made before audit checkpoints: add just their key.
        pki::init_audit_key(&keys)?;
        println!(
            "added the audit checkpoint key {} to {}",
            keys.audit_signing_key().display(),
            data_dir.display()
        );
        return Ok(());
    }
    pki::init_keys(&keys)?;
    let config = Config::from_env(data_dir, None)?;
    startup::open_store(&config).await?.close().await;
    println!("initialised {}", data_dir.display());
    println!("  root key        {}", keys.root_key().display());
    println!("  CA certificate  {}", keys.ca_cert().display());
    println!("  server cert     {}", keys.server_cert().display());
    println!("  JWT public key  {}", keys.jwt_public().display());
    println!("  audit key       {}", keys.audit_verifying_key().display());
    Ok(())
}

/// `simvault audit verify`: every chain asked for, each with its checkpoints.
async fn audit_verify(args: &AuditVerifyArgs) -> anyhow::Result<()> {
    use crate::service::audit;
    let config = Config::from_env(&args.data.path(), None)?;
    let key = crate::audit::CheckpointKey::from_file(&config.audit.verifying_key)?;
    let db = startup::open_store(&config).await?;
    let chains = match args.chain.chain()? {
        Some(chain) => vec![chain],
        None => audit::chains(&db).await.map_err(explain)?,
    };
    let mut broken = Vec::new();
    for chain in &chains {
        let v = audit::verify_chain(&db, &key, chain)
            .await
            .map_err(explain)?;
        match v.first_bad_seq {
            None => println!(
                "{chain}: ok, {} records, {} signed checkpoints, head {}",
                v.checked,
                v.checkpoints,
                v.head_hash.as_deref().unwrap_or("(empty)")
            ),
            Some(seq) => {
                println!(
                    "{chain}: BROKEN at sequence number {seq} ({} records intact before it)",
                    v.checked
                );
                broken.push(format!("{chain} at {seq}"));
            }
        }
    }
    db.close().await;
    if chains.is_empty() {
        println!("no audit records yet");
    }
    if broken.is_empty() {
        Ok(())
    } else {
        bail!("audit log altered: {}", broken.join(", "))
    }
}

/// `simvault audit export`: one chain, oldest first, streamed page by page.
async fn audit_export(args: &AuditExportArgs) -> anyhow::Result<()> {
    use std::io::Write as _;
    let Some(chain) = args.chain.chain()? else {
        bail!("name the chain to export: --tenant T or --platform");
    };
    let format = if args.format == "csv" {
        crate::audit::export::ExportFormat::Csv
    } else {
        crate::audit::export::ExportFormat::Ndjson
    };
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let mut out: Box<dyn std::io::Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .with_context(|| format!("creating {} (it must not exist yet)", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    if format == crate::audit::export::ExportFormat::Csv {
        out.write_all(&crate::audit::export::csv_header())?;
    }
    let (pages_tx, mut pages) = tokio::sync::mpsc::channel(2);
    tokio::spawn(crate::service::audit::export(
        db.clone(),
        chain,
        Default::default(),
        pages_tx,
    ));
    let mut n = 0usize;
    while let Some(page) = pages.recv().await {
        let rows = page.map_err(explain)?;
        n += rows.len();
        let bytes = crate::audit::export::render(rows, format)
            .map_err(|e| anyhow::anyhow!("rendering the export: {e}"))?;
        out.write_all(&bytes)?;
    }
    out.flush()?;
    db.close().await;
    eprintln!("{n} records exported");
    Ok(())
}

fn mint_token(
    config: &Config,
    tenant: &TenantId,
    roles: &std::collections::BTreeSet<Role>,
    sub: &str,
    ttl: i64,
) -> anyhow::Result<String> {
    // The server refuses a token issued for longer than its maximum: minting one is a trap.
    let max = i64::try_from(config.jwt.max_lifetime.as_secs()).unwrap_or(i64::MAX);
    if !(1..=max).contains(&ttl) {
        bail!(
            "--ttl must be between 1 and {max} seconds (the server's SIMVAULT_JWT_MAX_LIFETIME_SECS)"
        );
    }
    let key_path = config.keys().jwt_private();
    let key =
        std::fs::read(&key_path).with_context(|| format!("reading {}", key_path.display()))?;
    let now = SystemClock.now_secs();
    let claims = MintClaims {
        iss: &config.jwt.issuer,
        aud: &config.jwt.audience,
        sub,
        tenant: tenant.as_str(),
        roles: roles.iter().map(|r| r.as_str()).collect(),
        iat: now,
        nbf: now,
        exp: now + ttl,
        jti: uuid::Uuid::new_v4().to_string(),
    };
    mint_eddsa(&key, &claims)
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let config = Config::from_env(&args.data.path(), args.listen.clone())?;
    if !config.tls.cert_chain.exists() {
        bail!(
            "no server certificate at {}: run `simvault init --data-dir {}` first (or `simvault quickstart`)",
            config.tls.cert_chain.display(),
            config.data_dir.display()
        );
    }
    let app = Application::build(&config).await?;
    app.run_until_signalled().await
}

async fn quickstart(args: &ServeArgs) -> anyhow::Result<()> {
    let data_dir = args.data.path();
    let keys = KeyPaths::new(&data_dir);
    if !keys.server_cert().exists() {
        init(&data_dir).await?;
    }
    let config = Config::from_env(&data_dir, args.listen.clone())?;
    let db = startup::open_store(&config).await?;
    let tenant = TenantId::parse("demo").map_err(anyhow::Error::msg)?;
    if !admin::tenant_exists(&db, &tenant).await.map_err(explain)? {
        let actor = crate::domain::principal::cli_subject();
        admin::create_tenant_by(&db, &SystemClock, &tenant, &actor)
            .await
            .map_err(explain)?;
    }
    let clients = data_dir.join("clients");
    let cert = clients.join("demo-provisioner.pem");
    let key = clients.join("demo-provisioner.key");
    if !cert.exists() {
        cert::issue_cert(
            &config,
            &db,
            "demo",
            "provisioner",
            "demo-provisioner",
            &clients,
            365,
        )
        .await?;
    }
    let support = mint_token(
        &config,
        &tenant,
        &[Role::Support].into(),
        "demo-support",
        24 * 3600,
    )?;
    let operator = mint_token(
        &config,
        &tenant,
        &[Role::Operator].into(),
        "demo-operator",
        24 * 3600,
    )?;
    db.close().await;

    let app = Application::build(&config).await?;
    let port = app.local_addr().port();
    let ca = abs(&keys.ca_cert());
    let (cert, key) = (abs(&cert), abs(&key));
    println!(
        r#"
simvault is running on https://localhost:{port}  (data: {data})

Create a SIM as the demo provisioner (mutual TLS):
  curl --cacert {ca} --cert {cert} --key {key} \
    -H 'content-type: application/json' \
    -d '{{"iccid":"8944501234567890124","imsi":"234150123456789","msisdn":"447123456789","tags":["demo"]}}' \
    https://localhost:{port}/v1/sims

List SIMs as demo support staff (bearer token, valid 24 h):
  export SUPPORT_TOKEN={support}
  curl --cacert {ca} -H "Authorization: Bearer $SUPPORT_TOKEN" https://localhost:{port}/v1/sims

Tag a SIM as the demo operator:
  export OPERATOR_TOKEN={operator}
  curl --cacert {ca} -H "Authorization: Bearer $OPERATOR_TOKEN" -X PATCH \
    -H 'content-type: application/json' -d '{{"tags":["demo","vip"]}}' \
    https://localhost:{port}/v1/sims/8944501234567890124

API description: curl --cacert {ca} https://localhost:{port}/openapi.json
Stop with Ctrl-C.
"#,
        data = abs(&data_dir),
    );
    app.run_until_signalled().await
}

fn abs(p: &Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_owned())
        .display()
        .to_string()
}
