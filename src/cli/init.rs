//! `simvault init`: key material and the database for a new data directory.

use std::path::Path;

use crate::config::Config;
use crate::pki::{self, KeyPaths};
use crate::startup;

pub(super) async fn run(data_dir: &Path) -> anyhow::Result<()> {
    let keys = KeyPaths::new(data_dir);
    if keys.root_key().exists()
        && keys.server_cert().exists()
        && !keys.audit_signing_key().exists()
        && !keys.audit_verifying_key().exists()
    {
        // A data directory made before audit checkpoints: add just their key.
        pki::init_audit_key(&keys)?;
        println!(
            "added the audit checkpoint key {} to {}",
            keys.audit_signing_key().display(),
            data_dir.display()
        );
        return Ok(());
    }
    pki::init_keys(&keys)?;
    let config = Config::from_env(data_dir, None)?;
    startup::open_store(&config).await?.close().await;
    println!("initialised {}", data_dir.display());
    println!("  root key        {}", keys.root_key().display());
    println!("  CA certificate  {}", keys.ca_cert().display());
    println!("  server cert     {}", keys.server_cert().display());
    println!("  JWT public key  {}", keys.jwt_public().display());
    println!("  audit key       {}", keys.audit_verifying_key().display());
    Ok(())
}
