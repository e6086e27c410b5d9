//! `simvault console-link`: a single-use, short-lived link that signs a person in to the web
//! console (development and break-glass sign-in), recorded on the tenant's chain.

use std::time::Duration;

use anyhow::bail;
use clap::Args;

use super::{DataDir, open_services};
use crate::config::Config;
use crate::domain::{Role, TenantId};
use crate::service::console::{Person, TicketToken};
use crate::service::{ServiceError, Services};
use crate::startup;

#[derive(Debug, Args)]
pub struct ConsoleLinkArgs {
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
    /// Comma-separated roles.
    #[arg(long = "role")]
    pub roles: String,
    /// Subject: who the person is (recorded with everything they do).
    #[arg(long)]
    pub sub: String,
    /// How long the link works, in seconds (once).
    #[arg(long, default_value_t = 300)]
    pub ttl: u64,
    #[command(flatten)]
    pub data: DataDir,
}

pub(super) async fn run(args: &ConsoleLinkArgs) -> anyhow::Result<()> {
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let services = open_services(&config, &db).await?;
    let roles = Role::parse_list(&args.roles).map_err(anyhow::Error::msg)?;
    let person = Person {
        tenant: args.tenant.clone(),
        subject: args.sub.clone(),
        roles,
    };
    let ticket = issue(&services, &person, Duration::from_secs(args.ttl)).await?;
    println!("{}", link(&config.console.public_url, &ticket));
    db.close().await;
    Ok(())
}

/// Issues a console link's ticket for `person`, recorded as done by the CLI's user.
pub(super) async fn issue(
    services: &Services,
    person: &Person,
    ttl: Duration,
) -> anyhow::Result<TicketToken> {
    let actor = crate::domain::principal::cli_subject();
    match services.console().issue_link(person, ttl, &actor).await {
        Ok((ticket, _expires)) => Ok(ticket),
        Err(ServiceError::NotFound) => bail!(
            "no tenant {t}: create it with `simvault tenant create {t}`",
            t = person.tenant
        ),
        Err(ServiceError::Validation(v)) => bail!(
            "{}",
            v.errors()
                .iter()
                .map(|e| e.detail.clone())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        Err(e) => bail!("{e}"),
    }
}

/// The link that redeems `ticket` at `base` (a public URL without its trailing slash).
pub(super) fn link(base: &str, ticket: &TicketToken) -> String {
    format!("{base}/console/login/{}", ticket.expose())
}
