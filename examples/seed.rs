//! Seeds a tenant with synthetic SIMs for load tests (`benches/load.sh`), straight through the
//! store in large transactions, far faster than one HTTPS request per SIM.
//!
//! `cargo run --release --example seed -- DATA_DIR TENANT COUNT` (honours SIMVAULT_DATABASE_URL).

use std::collections::BTreeSet;
use std::path::PathBuf;

use simvault::clock::{Clock, SystemClock};
use simvault::config::Config;
use simvault::domain::{Iccid, Imsi, LuhnPolicy, Msisdn, SimInput, SimType, TenantId};
use simvault::service::admin;
use simvault::service::sims::new_sim;
use simvault::store::sims;

fn iccid(n: u64) -> Option<Iccid> {
    let body = format!("8988{n:014}");
    (0..10)
        .map(|d| format!("{body}{d}"))
        .find_map(|s| Iccid::parse(&s, LuhnPolicy::Enforce).ok())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    anyhow::ensure!(args.len() == 4, "usage: seed DATA_DIR TENANT COUNT");
    let config = Config::from_env(&PathBuf::from(&args[1]), None)?;
    let tenant = TenantId::parse(&args[2]).map_err(anyhow::Error::msg)?;
    let count: u64 = args[3].parse()?;
    let db = simvault::startup::open_store(&config).await?;
    // The database's own integrity key (opening the vault adopts an older database first).
    let integrity = simvault::startup::open_vault(&config, &db, &SystemClock)
        .await?
        .integrity()?;
    if !admin::tenant_exists(&db, &tenant).await? {
        admin::create_tenant(&db, &SystemClock, &tenant).await?;
    }
    let zones = ["eu", "us", "apac", "latam"];
    let start = SystemClock.now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(2000) {
        let mut tx = db.begin().await?;
        for &n in chunk {
            let now = start + i64::try_from(n)?;
            let mut new = SimInput::new(iccid(n).ok_or_else(|| anyhow::anyhow!("no iccid"))?);
            new.imsi = Some(Imsi::parse(&format!("23415{n:010}")).map_err(anyhow::Error::msg)?);
            new.msisdn = Some(Msisdn::parse(&format!("4477{n:08}")).map_err(anyhow::Error::msg)?);
            new.sim_type = if n % 5 == 0 {
                SimType::Esim
            } else {
                SimType::Physical
            };
            new.vendor = Some(if n % 2 == 0 { "GEMALTO" } else { "IDEMIA" }.into());
            new.tags = BTreeSet::from([format!("batch-{}", n / 1000)]);
            new.compatibility_zones = BTreeSet::from([zones[(n % 4) as usize].to_owned()]);
            let (sim, _) = new_sim(&tenant, new, now);
            sims::insert(&mut tx, &integrity, &sim).await?;
        }
        tx.commit().await?;
    }
    match &db {
        simvault::store::Db::Sqlite(p) => {
            sqlx::query("ANALYZE").execute(&p.write).await.map(|_| ())?
        }
        simvault::store::Db::Postgres(p) => sqlx::query("ANALYZE").execute(p).await.map(|_| ())?,
    }
    db.close().await;
    println!("seeded {count} SIMs into tenant {tenant}");
    Ok(())
}
