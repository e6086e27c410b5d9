//! Secret reads (Ki and OPc, audited, 32 callers, through the service layer) with the root key
//! in a file and in a PKCS#11 token, same run and same database; and the cost of one KEK unwrap
//! by each (what a cache miss costs).
//!
//!   benches/hsm.sh            # makes a SoftHSM2 token and runs this with it
//!
//! Needs SOFTHSM2_CONF (or a real module) and SIMVAULT_PKCS11_MODULE, _TOKEN_LABEL, _PIN.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{iccid, per_second};

use simvault::clock::{SharedClock, SystemClock};
use simvault::config::Config;
use simvault::domain::{
    AuthMethod, Iccid, LuhnPolicy, Principal, Role, SecretField, SimInput, TenantId,
};
use simvault::service::Services;
use simvault::store::sims::SimKey;
use simvault::vault::{Keyring, RootKeySource};

const CALLERS: usize = 32;
const SIMS: usize = 1000;
const SECONDS: u64 = 5;

async fn reads(services: Arc<Services>, who: Principal) -> anyhow::Result<f64> {
    per_second(CALLERS, SECONDS, move |n| {
        let (services, who) = (services.clone(), who.clone());
        async move {
            let key = SimKey::Iccid(iccid(n % SIMS));
            services
                .secrets()
                .reveal_secrets(&who, &key, &[SecretField::Ki, SecretField::Opc], None)
                .await
                .map(|_| ())
                .map_err(|e| anyhow::anyhow!("{e}"))
        }
    })
    .await
}

/// KEK unwraps per second by a root key (no cache: a fresh keyring each time).
fn unwraps(root: Arc<dyn simvault::vault::RootKey>) -> anyhow::Result<f64> {
    let ring = Keyring::new(root.clone());
    let tenant = simvault::domain::TenantId::parse("bench").map_err(anyhow::Error::msg)?;
    let (_, wrapped) = ring.new_kek(&tenant, 1)?;
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        Keyring::new(root.clone()).open_kek(&tenant, 1, ring.format(), &wrapped)?;
        n += 1;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = simvault::pki::KeyPaths::new(dir.path());
    simvault::pki::init_keys(&keys)?;
    let file_config = Config::from_env(dir.path(), None)?;
    let settings = simvault::config::pkcs11_settings()?;
    let mut hsm_config = file_config.clone();
    hsm_config.root_key = RootKeySource::Pkcs11(settings.clone(), Duration::from_secs(300));
    let db = simvault::store::Db::open_sqlite(&dir.path().join("simvault.db")).await?;
    db.migrate().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let file_ring = simvault::startup::open_vault(&file_config, &db, clock.as_ref()).await?;
    let services = Arc::new(simvault::startup::services(
        &file_config,
        db.clone(),
        clock.clone(),
        file_ring.clone(),
    )?);
    let tenant = TenantId::parse("bench").map_err(anyhow::Error::msg)?;
    simvault::service::admin::create_tenant(&db, &SystemClock, &tenant).await?;
    let who = Principal {
        roles: [Role::Provisioner].into(),
        auth_method: AuthMethod::Mtls,
        ..Principal::local(tenant, "bench")
    };
    for n in 0..SIMS {
        let mut new = SimInput::new(
            Iccid::parse(&iccid(n), LuhnPolicy::Enforce).map_err(anyhow::Error::msg)?,
        );
        new.secrets = vec![
            (
                SecretField::Ki,
                Some(
                    SecretField::Ki
                        .parse(&format!("{n:032x}"))
                        .map_err(anyhow::Error::msg)?,
                ),
            ),
            (
                SecretField::Opc,
                Some(
                    SecretField::Opc
                        .parse(&format!("{:032x}", n + 1))
                        .map_err(anyhow::Error::msg)?,
                ),
            ),
        ];
        services
            .inventory()
            .create_sim(&who, new)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    reads(services.clone(), who.clone()).await?; // warm-up

    // Into the token, then a server built on it.
    if let Err(e) = simvault::vault::pkcs11::create_root_key(&settings) {
        eprintln!("({e}: using the existing key)");
    }
    let hsm_root = simvault::vault::root::load(&hsm_config.root_key)?;
    let hsm_ring = Keyring::new(hsm_root.clone());
    simvault::service::tasks::rotation::move_root(&db, &file_ring, &hsm_ring, "bench", "bench", 0)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    // One PKCS#11 context per process: the server's keyring on the same provider.
    let hsm_ring = Arc::new(Keyring::new(hsm_root.clone()));
    let hsm_services = Arc::new(simvault::startup::services(
        &hsm_config,
        db.clone(),
        clock,
        hsm_ring,
    )?);
    // Alternate the two (the database grows with every audited read, so order matters):
    // the file keyring keeps its cached tenant key, which the move did not change.
    let (mut file, mut hsm) = (0.0, 0.0);
    for _ in 0..3 {
        file += reads(services.clone(), who.clone()).await? / 3.0;
        hsm += reads(hsm_services.clone(), who.clone()).await? / 3.0;
    }
    let file_root = simvault::vault::root::load(&file_config.root_key)?;
    println!(
        "secret reads/s (Ki+OPc, audited, {CALLERS} callers, SQLite; mean of 3 alternating runs):"
    );
    println!("  file root key:   {file:>8.0}");
    println!("  PKCS#11 (SoftHSM2): {hsm:>8.0}   = {:.2}x", hsm / file);
    println!(
        "KEK unwraps/s (a cache miss): file {:.0}, PKCS#11 {:.0}",
        unwraps(file_root)?,
        unwraps(hsm_root)?
    );
    db.close().await;
    Ok(())
}
