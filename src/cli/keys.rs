//! `simvault keys seal|rotate|hsm-init|migrate-root`: the root key and tenant key rotation.

use std::path::Path;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use zeroize::Zeroizing;

use super::{DataDir, explain, open_services};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::TenantId;
use crate::domain::task::TaskStatus;
use crate::pki::{self, KeyPaths};
use crate::service::admin;
use crate::startup;

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

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotateTarget {
    /// Rotate this tenant's key-encryption key.
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: Option<TenantId>,
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

pub(super) async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Seal(data) => seal_root_key(&data.path()),
        KeysCommand::Rotate(args) => rotate_tenant_key(&args).await,
        KeysCommand::HsmInit(_) => hsm_init(),
        KeysCommand::MigrateRoot(args) => migrate_root(&args).await,
    }
}

async fn rotate_tenant_key(args: &RotateArgs) -> anyhow::Result<()> {
    let config = Config::from_env(&args.data.path(), None)?;
    let Some(tenant) = &args.target.tenant else {
        return rotate_root_key(&config).await;
    };
    let db = startup::open_store(&config).await?;
    if !admin::tenant_exists(&db, tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}");
    }
    let services = open_services(&config, &db).await?;
    let task = services
        .tasks()
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
            .tasks()
            .run_rotation(&owner, config.tasks.lease, &stop)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let status = services
            .tasks()
            .host_task(tenant, task.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match status {
            Some(t) if t.status.is_finished() => {
                println!(
                    "rotation {}: {} re-wrapped, {} failed",
                    t.status, t.completed_items, t.failed_items
                );
                db.close().await;
                return if t.status == TaskStatus::Completed && t.failed_items == 0 {
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
    let n = crate::service::tasks::rotation::rotate_root(
        &db,
        &current,
        &next,
        &actor,
        SystemClock.now(),
    )
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
    let n = crate::service::tasks::rotation::move_root(
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
