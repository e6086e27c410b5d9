//! `simvault import`: SIMs with their secrets from a vendor file, as a durable task.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;
use zeroize::Zeroizing;

use super::{DataDir, explain, open_services};
use crate::config::Config;
use crate::domain::TenantId;
use crate::domain::task::{ItemStatus, TaskStatus};
use crate::service::admin;
use crate::startup;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tenant to import into.
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
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

pub(super) async fn run(args: &ImportArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let config = Config::from_env(&args.data.path(), None)?;
    let tenant = &args.tenant;
    let key = transport_key(args)?;
    let format = crate::import_file::Format::choose(args.format.as_deref(), &args.file);
    let rows =
        crate::import_file::read_rows(&args.file, format, key.as_deref(), config.iccid_luhn)?;
    if rows.is_empty() {
        bail!("{} holds no rows", args.file.display());
    }
    let db = startup::open_store(&config).await?;
    if !admin::tenant_exists(&db, tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}: create it with `simvault tenant create {tenant}`");
    }
    let services = open_services(&config, &db).await?;
    let task = services
        .tasks()
        .queue_import(
            &crate::domain::Principal::cli(tenant.clone()),
            rows,
            Vec::new(),
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let task_id = task.id;
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
        let (row, worked) = services
            .tasks()
            .advance_task(tenant, task_id, &owner, config.tasks.lease)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
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
        if row.status.is_finished() {
            break row;
        }
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
        let failed = services
            .tasks()
            .host_task_items(tenant, task_id, Some(ItemStatus::Failed), offset, 1000)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
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
    if done.failed_items > 0 || done.status != TaskStatus::Completed {
        bail!("{} row(s) were not imported", done.failed_items);
    }
    Ok(())
}
