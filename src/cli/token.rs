//! `simvault token`: a signed JWT from the development identity provider.

use anyhow::{Context as _, bail};
use clap::Args;

use super::{DataDir, explain};
use crate::auth::jwt::{MintClaims, mint_eddsa};
use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::domain::{Role, TenantId};
use crate::service::admin;
use crate::startup;

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[arg(long, value_parser = TenantId::parse)]
    pub tenant: TenantId,
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

pub(super) async fn run(args: &TokenArgs) -> anyhow::Result<()> {
    let config = Config::from_env(&args.data.path(), None)?;
    let db = startup::open_store(&config).await?;
    let tenant = &args.tenant;
    if !admin::tenant_exists(&db, tenant).await.map_err(explain)? {
        bail!("no tenant {tenant}: create it with `simvault tenant create {tenant}`");
    }
    let roles = Role::parse_list(&args.roles).map_err(anyhow::Error::msg)?;
    println!(
        "{}",
        mint_token(&config, tenant, &roles, &args.sub, args.ttl)?
    );
    Ok(())
}

pub(super) fn mint_token(
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
