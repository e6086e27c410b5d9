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
    db.close().await;

    let app = Application::build(&config).await?;
    let port = app.local_addr().port();
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
