//! `simvault audit verify|export`.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};

use super::{DataDir, explain};
use crate::config::Config;
use crate::domain::TenantId;
use crate::startup;

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
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: Option<TenantId>,
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
        Ok(self.tenant.as_ref().map(TenantId::to_string))
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

pub(super) async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => audit_verify(&args).await,
        AuditCommand::Export(args) => audit_export(&args).await,
    }
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
