//! The `simvault` command line: parsing (clap) and dispatch, one file per top-level command.

mod audit;
mod cert;
mod console_link;
mod export;
mod import;
mod init;
mod keys;
mod milenage;
mod policy;
mod serve;
mod tenant;
mod token;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, resolve_data_dir};
use crate::service::{ServiceError, Services};
use crate::startup;
use crate::store::Db;

pub use audit::{AuditCommand, AuditExportArgs, AuditVerifyArgs, ChainChoice};
pub use cert::{CertCommand, CertIssueArgs, CertListArgs, CertRevokeArgs};
pub use console_link::ConsoleLinkArgs;
pub use export::ExportArgs;
pub use import::ImportArgs;
pub use keys::{KeysCommand, MigrateRootArgs, RotateArgs, RotateTarget};
pub use milenage::MilenageArgs;
pub use policy::PolicyCommand;
pub use serve::ServeArgs;
pub use tenant::TenantCommand;
pub use token::TokenArgs;

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
        command: CertCommand,
    },
    /// Print a signed JWT (development identity provider).
    Token(TokenArgs),
    /// Print a link that signs a person in to the web console once, within --ttl seconds
    /// (development and break-glass sign-in; recorded in the tenant's audit log).
    ConsoleLink(ConsoleLinkArgs),
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
    /// Export a tenant's inventory (every SIM matching the filters, the same as `GET /v1/sims`
    /// takes) as NDJSON or CSV, without secrets or PIN/PUK counters, to stdout or --output;
    /// shows progress on a terminal. Recorded in the tenant's audit log (`sim.export`).
    Export(Box<ExportArgs>),
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

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(d) => init::run(&d.path()).await,
        Command::Tenant { command } => tenant::run(command).await,
        Command::Cert { command } => cert::run(command).await,
        Command::Token(args) => token::run(&args).await,
        Command::ConsoleLink(args) => console_link::run(&args).await,
        Command::Import(args) => import::run(&args).await,
        Command::Export(args) => export::run(&args).await,
        Command::Keys { command } => keys::run(command).await,
        Command::Policy { command } => policy::run(command),
        Command::Audit { command } => audit::run(command).await,
        Command::Milenage(args) => milenage::run(&args),
        Command::Serve(args) => serve::serve(&args).await,
        Command::Quickstart(args) => serve::quickstart(&args).await,
    }
}

fn explain(e: ServiceError) -> anyhow::Error {
    match e {
        ServiceError::NotFound => anyhow::anyhow!("no such tenant"),
        other => anyhow::anyhow!("{other}"),
    }
}

/// The services over `db` as the server would open them: the system clock and the
/// configured root key.
async fn open_services(config: &Config, db: &Db) -> anyhow::Result<Services> {
    let clock: SharedClock = std::sync::Arc::new(SystemClock);
    let keyring = startup::open_vault(config, db, clock.as_ref()).await?;
    startup::services(config, db.clone(), clock, keyring)
}
