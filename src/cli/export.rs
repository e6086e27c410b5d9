//! `simvault export`: a tenant's inventory (every SIM matching the list filters) as NDJSON or
//! CSV, streamed from the store, recorded in the tenant's audit log as `GET /v1/sims/export`
//! records it.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Args;

use super::{DataDir, explain, open_services};
use crate::config::Config;
use crate::domain::sim::SimListQuery;
use crate::domain::sim_filters::{Params, read_filters};
use crate::domain::{Location, TenantId, ValidationErrors};
use crate::export::ExportFormat;
use crate::service::admin;
use crate::service::sims::ForPlan;
use crate::startup;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The tenant whose inventory to export.
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
    /// `ndjson` (one SIM a line) or `csv` (a header line first).
    #[arg(long, default_value = "ndjson", value_parser = ["ndjson", "csv"])]
    pub format: String,
    /// Only SIMs in this state (repeatable: any of).
    #[arg(long, value_name = "STATE")]
    pub state: Vec<String>,
    /// Only `physical` or only `esim` SIMs.
    #[arg(long, value_name = "TYPE")]
    pub sim_type: Option<String>,
    /// Only SIMs in this compatibility zone (repeatable: any of).
    #[arg(long = "compatibility-zones", value_name = "ZONE")]
    pub zones: Vec<String>,
    /// Only SIMs carrying this tag (repeatable: all of).
    #[arg(long = "tags", value_name = "TAG")]
    pub tags: Vec<String>,
    /// Only SIMs in this group (its id or its name).
    #[arg(long, value_name = "GROUP")]
    pub group_id: Option<String>,
    #[arg(long)]
    pub vendor: Option<String>,
    /// Only SIMs on exactly this communication plan.
    #[arg(long, value_name = "PLAN")]
    pub communication_plan: Option<String>,
    /// Only SIMs on exactly this rate plan.
    #[arg(long, value_name = "PLAN")]
    pub rate_plan: Option<String>,
    /// Only SIMs with exactly this MNO integration id.
    #[arg(long, value_name = "ID")]
    pub mno_integration_id: Option<String>,
    /// Only SIMs in this condition (`data_limit_exceeded`, `unauthorized_imei`; repeatable:
    /// any of).
    #[arg(long, value_name = "CONDITION")]
    pub condition: Vec<String>,
    /// Only SIMs whose ICCID contains these digits.
    #[arg(long)]
    pub iccid: Option<String>,
    /// Only SIMs whose id, ICCID, MSISDN, IMSI, IMEI or EID contains this (any case).
    #[arg(long)]
    pub search: Option<String>,
    /// Only SIMs in any of this plan's zones (wins over --compatibility-zones).
    #[arg(long, value_name = "PLAN")]
    pub for_plan_id: Option<String>,
    /// Write here instead of stdout (created new; never overwritten).
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataDir,
}

impl ExportArgs {
    /// The filters, read by the same reader as the HTTP list and export (so that they are
    /// checked alike); a problem names the option.
    fn query(&self) -> anyhow::Result<(SimListQuery, Option<ForPlan>)> {
        let mut pairs = Vec::new();
        let mut add = |name: &str, values: &[String]| {
            pairs.extend(values.iter().map(|v| (name.to_owned(), v.clone())));
        };
        add("state", &self.state);
        add("sim_type", self.sim_type.as_slice());
        add("compatibility_zones", &self.zones);
        add("tags", &self.tags);
        add("group_id", self.group_id.as_slice());
        add("vendor", self.vendor.as_slice());
        add("communication_plan", self.communication_plan.as_slice());
        add("rate_plan", self.rate_plan.as_slice());
        add("mno_integration_id", self.mno_integration_id.as_slice());
        add("condition", &self.condition);
        add("iccid", self.iccid.as_slice());
        add("search", self.search.as_slice());
        add("for_plan_id", self.for_plan_id.as_slice());
        let mut errs = ValidationErrors::new();
        let mut query = SimListQuery::default();
        let plan = read_filters(Params(&pairs), &mut query, &mut errs);
        errs.finish(()).map_err(|e| problems(&e))?;
        Ok((query, plan.map(ForPlan)))
    }
}

/// Validation problems as one line, each naming its option (`--rate-plan`, where the HTTP
/// export names the parameter `rate_plan`).
fn problems(errs: &ValidationErrors) -> anyhow::Error {
    let details: Vec<String> = errs
        .errors()
        .iter()
        .map(|e| match &e.location {
            Location::Parameter(name) => {
                let option = format!("--{}", name.replace('_', "-"));
                match e.detail.strip_prefix(name.as_str()) {
                    Some(rest) => format!("{option}{rest}"),
                    None => format!("{option}: {}", e.detail),
                }
            }
            Location::Pointer(_) => e.detail.clone(),
        })
        .collect();
    anyhow::anyhow!("{}", details.join("; "))
}

pub(super) async fn run(args: &ExportArgs) -> anyhow::Result<()> {
    let format = ExportFormat::parse(&args.format).unwrap_or(ExportFormat::Ndjson);
    let (query, for_plan) = args.query()?;
    match &args.output {
        Some(path) => {
            if path.symlink_metadata().is_ok() {
                bail!("{} exists: it is never overwritten", path.display());
            }
            let (partial, file) = Partial::create(path)?;
            let mut out = std::io::BufWriter::new(file);
            export(args, format, query, for_plan, &mut out).await?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            partial.finish()
        }
        None => {
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            export(args, format, query, for_plan, &mut out).await
        }
    }
}

/// The export, written to `out` (flushed at its end).
async fn export(
    args: &ExportArgs,
    format: ExportFormat,
    query: SimListQuery,
    for_plan: Option<ForPlan>,
    out: &mut dyn std::io::Write,
) -> anyhow::Result<()> {
    use std::io::IsTerminal as _;
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let tenant = &args.tenant;
    if !admin::tenant_exists(&db, tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}: create it with `simvault tenant create {tenant}`");
    }
    let services = open_services(&config, &db).await?;
    let mut export = services
        .inventory()
        .host_export_sims(tenant, query, for_plan)
        .await
        .map_err(|e| match e {
            crate::service::ServiceError::Validation(v) => problems(&v),
            other => explain(other),
        })?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(export.count);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} SIMs  {per_sec}  eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if format == ExportFormat::Csv {
        out.write_all(&crate::export::sims::csv_header())?;
    }
    let mut n = 0u64;
    while let Some(page) = export.pages.recv().await {
        let sims = page.map_err(|e| anyhow::anyhow!("reading the inventory: {e}"))?;
        n += u64::try_from(sims.len()).unwrap_or(0);
        let bytes = crate::export::sims::render(sims, format)
            .map_err(|e| anyhow::anyhow!("rendering the export: {e}"))?;
        out.write_all(&bytes)?;
        if let Some(bar) = &bar {
            bar.set_position(n);
        }
    }
    out.flush()?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    db.close().await;
    eprintln!("{n} SIMs exported");
    Ok(())
}

/// The `--output` file while it is written: a new file beside it, readable by its owner only
/// (`0600`: it holds the inventory), put in place by [`Partial::finish`] once the export is
/// whole and removed otherwise, so that `FILE` is a whole export or is not there at all.
struct Partial {
    temp: PathBuf,
    target: PathBuf,
}

impl Partial {
    fn create(target: &std::path::Path) -> anyhow::Result<(Self, std::fs::File)> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let name = target
            .file_name()
            .with_context(|| format!("{} names no file", target.display()))?;
        let mut temp_name = std::ffi::OsString::from(".");
        temp_name.push(name);
        temp_name.push(format!(".{}.partial", uuid::Uuid::new_v4().simple()));
        let temp = target.with_file_name(temp_name);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .with_context(|| format!("creating a file beside {}", target.display()))?;
        let partial = Partial {
            temp,
            target: target.to_owned(),
        };
        Ok((partial, file))
    }

    /// Puts the written file in place as `FILE`, which must still not exist: linked (then
    /// the temporary name removed), since a rename would replace a `FILE` made while the
    /// export ran; renamed only where the file system has no links and `FILE` is not there.
    fn finish(self) -> anyhow::Result<()> {
        let placed = match std::fs::hard_link(&self.temp, &self.target) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                if self.target.symlink_metadata().is_ok() {
                    Err(std::io::ErrorKind::AlreadyExists.into())
                } else {
                    std::fs::rename(&self.temp, &self.target)
                }
            }
            linked => linked,
        };
        placed.with_context(|| {
            format!(
                "putting the export in place as {} (it must not exist yet)",
                self.target.display()
            )
        })
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.temp);
    }
}
