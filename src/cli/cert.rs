//! `simvault cert issue|revoke|list`: client certificates and their registered identities.
//! Every change is recorded on the platform chain by `cli:<user>`; nothing here prints key
//! material (the private key goes to its file only).

use std::path::{Path, PathBuf};

use anyhow::bail;
use clap::{Args, Subcommand};

use super::DataDir;
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::principal::cli_subject;
use crate::domain::{Role, TenantId, format_timestamp};
use crate::pki;
use crate::service::ServiceError;
use crate::service::identities::{self, NewIdentity, RevokeError};
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Issue a client certificate (O/N.pem and O/N.key) and register its identity.
    Issue(CertIssueArgs),
    /// Revoke a registered identity: its certificate is refused from its next request on
    /// (within the identity cache's bound, at most 1 s), open connections included. A
    /// revoked identity keeps its name.
    Revoke(CertRevokeArgs),
    /// List registered identities (never key material).
    List(CertListArgs),
}

#[derive(Debug, Args)]
pub struct CertIssueArgs {
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
    /// Comma-separated roles: provisioner, support, operator, auditor, admin, auc, metrics.
    #[arg(long = "role")]
    pub roles: String,
    /// Client name: letters, digits, '.', '-' and '_'.
    #[arg(long)]
    pub name: String,
    /// Where to write N.pem and N.key (default: the current directory).
    #[arg(long = "out-dir", value_name = "O", default_value = ".")]
    pub out_dir: PathBuf,
    /// Validity in days.
    #[arg(long, default_value_t = 365)]
    pub days: i64,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
pub struct CertRevokeArgs {
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
    /// The client name it was issued with.
    #[arg(long)]
    pub name: String,
    #[command(flatten)]
    pub data: DataDir,
}

#[derive(Debug, Args)]
pub struct CertListArgs {
    /// Only this tenant's identities.
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: Option<TenantId>,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub data: DataDir,
}

pub(crate) async fn run(command: CertCommand) -> anyhow::Result<()> {
    match command {
        CertCommand::Issue(args) => {
            let config = Config::from_env(&args.data.path(), None)?;
            let db = startup::open_store(&config).await?;
            let (cert, key) = issue_cert(
                &config,
                &db,
                &args.tenant,
                &args.roles,
                &args.name,
                &args.out_dir,
                args.days,
            )
            .await?;
            db.close().await;
            println!(
                "certificate: {}\nprivate key: {}",
                cert.display(),
                key.display()
            );
            Ok(())
        }
        CertCommand::Revoke(args) => revoke(&args).await,
        CertCommand::List(args) => list(&args).await,
    }
}

fn valid_client_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
        && !name.starts_with('.')
}

/// Issues a certificate for `name` of `tenant` and registers its identity (MACed, recorded
/// as `identity.register`); the files are written only once the registration committed.
pub(super) async fn issue_cert(
    config: &Config,
    db: &crate::store::Db,
    tenant: &TenantId,
    roles: &str,
    name: &str,
    out_dir: &Path,
    days: i64,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    let roles = Role::parse_list(roles).map_err(anyhow::Error::msg)?;
    if !valid_client_name(name) {
        bail!("--name must be 1 to 64 letters, digits, '.', '-' or '_'");
    }
    let cert_path = out_dir.join(format!("{name}.pem"));
    let key_path = out_dir.join(format!("{name}.key"));
    for p in [&cert_path, &key_path] {
        if p.exists() {
            bail!("{} exists; refusing to overwrite it", p.display());
        }
    }
    let keyring = startup::open_vault(config, db, &SystemClock).await?;
    let identity = pki::client_identity(tenant, name);
    let (cert, key) = pki::issue_client_cert(&config.keys(), &identity, name, days)?;
    let new = NewIdentity {
        tenant,
        identity: &identity,
        name,
        roles: &roles,
    };
    identities::register(
        db,
        &*keyring.integrity()?,
        &SystemClock,
        new,
        Some(&cli_subject()),
    )
    .await
    .map_err(|e| match e {
        ServiceError::NotFound => {
            anyhow::anyhow!("no tenant {tenant}: create it with `simvault tenant create {tenant}`")
        }
        other => anyhow::anyhow!("{other}"),
    })?;
    std::fs::create_dir_all(out_dir)?;
    pki::write_new(&cert_path, cert.as_bytes(), false)?;
    pki::write_new(&key_path, key.as_bytes(), true)?;
    Ok((cert_path, key_path))
}

async fn revoke(args: &CertRevokeArgs) -> anyhow::Result<()> {
    let tenant = &args.tenant;
    if !valid_client_name(&args.name) {
        bail!("--name must be 1 to 64 letters, digits, '.', '-' or '_'");
    }
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let keyring = startup::open_vault(&config, &db, &SystemClock).await?;
    let revoked = identities::revoke(
        &db,
        &*keyring.integrity()?,
        &SystemClock,
        tenant,
        &args.name,
        &cli_subject(),
    )
    .await;
    db.close().await;
    match revoked {
        Ok(row) => {
            println!(
                "revoked {} (tenant {}, name {}); its certificate is refused from its next request",
                row.identity, row.tenant_id, row.name
            );
            Ok(())
        }
        Err(RevokeError::Service(e)) => Err(anyhow::anyhow!("{e}")),
        Err(e) => Err(e.into()),
    }
}

async fn list(args: &CertListArgs) -> anyhow::Result<()> {
    let tenant = args.tenant.as_ref();
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let keyring = startup::open_vault(&config, &db, &SystemClock).await?;
    let rows = identities::list(&db, &*keyring.integrity()?, &SystemClock, tenant)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"));
    db.close().await;
    let rows = rows?;
    if args.json {
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "identity": r.identity,
                    "tenant": r.tenant_id,
                    "name": r.name,
                    "roles": r.roles.split(',').collect::<Vec<_>>(),
                    "created_at": format_timestamp(r.created_at),
                    "revoked_at": r.revoked_at.map(format_timestamp),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(items));
        return Ok(());
    }
    println!("IDENTITY\tTENANT\tNAME\tROLES\tCREATED\tREVOKED");
    for r in &rows {
        println!(
            "{}\t{}\t{}\t{}\t{}\t{}",
            r.identity,
            r.tenant_id,
            r.name,
            r.roles,
            format_timestamp(r.created_at),
            r.revoked_at
                .map(format_timestamp)
                .unwrap_or_else(|| "-".into())
        );
    }
    if rows.is_empty() {
        eprintln!("no identities registered");
    }
    Ok(())
}
