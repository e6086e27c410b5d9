//! PIN operations per second, through the service layer (policy, row lock, decryption,
//! counter update, PIN re-encryption, audit record, durable commit), on one SIM and spread
//! over many, with 32 concurrent callers.
//!
//!   cargo bench --bench pins                                   # SQLite
//!   SIMVAULT_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench pins
//!
//! Each run takes a few seconds per scenario and stops by itself.

mod common;

use std::sync::Arc;

use common::{iccid, per_second};

use simvault::clock::{SharedClock, SystemClock};
use simvault::config::Config;
use simvault::domain::pin::{PinType, Proof};
use simvault::domain::{AuthMethod, Iccid, LuhnPolicy, Principal, Role, SecretField, TenantId};
use simvault::service::Services;
use simvault::service::pins::PinChange;
use simvault::store::Db;
use simvault::store::sims::SimKey;

const CALLERS: usize = 32;
const SIMS: usize = 1000;
const SECONDS: u64 = 5;

async fn open(dir: &std::path::Path) -> anyhow::Result<(Db, &'static str)> {
    Ok(match std::env::var("SIMVAULT_BENCH_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            if let Db::Postgres(p) = Db::open_postgres(&url, None).await? {
                sqlx::query("DROP SCHEMA IF EXISTS pinbench CASCADE")
                    .execute(&p)
                    .await?;
                sqlx::query("CREATE SCHEMA pinbench").execute(&p).await?;
                let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
                    .execute(&p)
                    .await;
                p.close().await;
            }
            (Db::open_postgres(&url, Some("pinbench")).await?, "postgres")
        }
        _ => (Db::open_sqlite(&dir.join("simvault.db")).await?, "sqlite"),
    })
}

fn change(pin: &str) -> anyhow::Result<PinChange> {
    let value = || SecretField::Pin1.parse(pin).map_err(anyhow::Error::msg);
    Ok(PinChange {
        pin_type: PinType::Pin1,
        proof: Proof::Pin,
        presented: value()?,
        new_pin: value()?,
        reason: None,
    })
}

/// Correct resets (the PIN set to itself) for `SECONDS`, callers spread over `sims` SIMs.
async fn run(services: Arc<Services>, support: Principal, sims: usize) -> anyhow::Result<f64> {
    per_second(CALLERS, SECONDS, move |n| {
        let (services, support) = (services.clone(), support.clone());
        async move {
            let key = SimKey::Iccid(iccid(n % sims));
            services
                .pins()
                .change_pin(&support, &key, change("1234")?)
                .await?;
            Ok(())
        }
    })
    .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let keys = simvault::pki::KeyPaths::new(dir.path());
    simvault::pki::init_keys(&keys)?;
    let mut config = Config::from_env(dir.path(), None)?;
    config.pin_ops_per_minute = 0;
    let (db, store) = open(dir.path()).await?;
    db.migrate().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let keyring = simvault::startup::open_vault(&config, &db, clock.as_ref()).await?;
    let services = Arc::new(simvault::startup::services(
        &config,
        db.clone(),
        clock,
        keyring,
    )?);
    let tenant = TenantId::parse("bench").map_err(anyhow::Error::msg)?;
    simvault::service::admin::create_tenant(&db, &SystemClock, &tenant).await?;
    let provisioner = Principal::local(tenant.clone(), "bench");
    let provisioner = Principal {
        roles: [Role::Provisioner].into(),
        auth_method: AuthMethod::Mtls,
        ..provisioner
    };
    for n in 0..SIMS {
        let iccid = Iccid::parse(&iccid(n), LuhnPolicy::Enforce).map_err(anyhow::Error::msg)?;
        let mut new = simvault::domain::SimInput::new(iccid);
        new.secrets = vec![(
            SecretField::Pin1,
            Some(
                SecretField::Pin1
                    .parse("1234")
                    .map_err(anyhow::Error::msg)?,
            ),
        )];
        services.inventory().create_sim(&provisioner, new).await?;
    }
    let support = Principal {
        roles: [Role::Support].into(),
        auth_method: AuthMethod::Jwt,
        ..Principal::local(tenant, "support")
    };
    let one = run(services.clone(), support.clone(), 1).await?;
    let many = run(services.clone(), support, SIMS).await?;
    println!("store={store} callers={CALLERS}");
    println!("PIN resets/s on one SIM:          {one:>8.0}");
    println!("PIN resets/s over {SIMS} SIMs:      {many:>8.0}");
    Ok(())
}
