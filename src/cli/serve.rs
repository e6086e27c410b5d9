//! `simvault serve` and `simvault quickstart`.

use std::path::Path;

use anyhow::bail;
use clap::Args;

use super::token::mint_token;
use super::{DataDir, cert, explain, init};
use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::{Role, TenantId};
use crate::pki::KeyPaths;
use crate::service::admin;
use crate::startup::{self, Application};

#[derive(Debug, Args, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub data: DataDir,
    /// Listen address. Default: $SIMVAULT_LISTEN, then 127.0.0.1:8443
    #[arg(long)]
    pub listen: Option<String>,
}

pub(super) async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
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

pub(super) async fn quickstart(args: &ServeArgs) -> anyhow::Result<()> {
    let data_dir = args.data.path();
    let keys = KeyPaths::new(&data_dir);
    if !keys.server_cert().exists() {
        init::run(&data_dir).await?;
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
            &tenant,
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
    // Console links for the demo people (an hour each: the quickstart's reader is slower than
    // a script).
    let services = super::open_services(&config, &db).await?;
    let mut tickets = Vec::new();
    for (role, sub) in [
        (Role::Support, "demo-support"),
        (Role::Auditor, "demo-auditor"),
    ] {
        let person = crate::service::console::Person {
            tenant: tenant.clone(),
            subject: sub.to_owned(),
            roles: [role].into(),
        };
        tickets.push(
            super::console_link::issue(&services, &person, std::time::Duration::from_secs(3600))
                .await?,
        );
    }
    drop(services);
    db.close().await;

    let app = Application::build(&config).await?;
    let port = app.local_addr().port();
    // Links point at the public URL when one is configured, else at this server.
    let base = match crate::config::env("SIMVAULT_PUBLIC_URL") {
        Some(_) => config.console.public_url.clone(),
        None => format!("https://localhost:{port}"),
    };
    let [support_link, auditor_link] =
        [&tickets[0], &tickets[1]].map(|t| super::console_link::link(&base, t));
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

Open the web console (each link signs in once, within an hour; the browser must trust {ca}):
demo support staff: {support_link}
demo auditor:       {auditor_link}

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
