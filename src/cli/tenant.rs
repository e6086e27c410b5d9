//! `simvault tenant create`.

use clap::Subcommand;

use super::{DataDir, explain};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::TenantId;
use crate::service::admin;
use crate::startup;

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a tenant.
    Create {
        /// Tenant name: a-z, 0-9, '-' and '_'.
        #[arg(value_parser = TenantId::parse)]
        tenant: TenantId,
        #[command(flatten)]
        data: DataDir,
    },
}

pub(super) async fn run(command: TenantCommand) -> anyhow::Result<()> {
    let TenantCommand::Create { tenant, data } = command;
    let config = Config::from_env(&data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let actor = crate::domain::principal::cli_subject();
    admin::create_tenant_by(&db, &SystemClock, &tenant, &actor)
        .await
        .map_err(explain)?;
    println!("tenant {tenant} created");
    Ok(())
}
