//! Batch import rate: 100,000 SIMs with every card secret (Ki, OPc, PIN1/2, PUK1/2) through
//! the import task (rows sealed into durable items, then worked off in leased batches: SIM
//! rows, per-SIM keys, encrypted secrets, outbox events, one audit record per SIM), against
//! plain inserts of the same rows without encryption or audit.
//!
//!   cargo bench --bench import                                   # SQLite
//!   SIMVAULT_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench import
//!
//! SIMVAULT_BENCH_SIMS changes the count (default 100000). Stops by itself.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use simvault::clock::{Clock, SharedClock, SystemClock};
use simvault::config::Config;
use simvault::domain::{
    AuthMethod, Iccid, Imsi, LuhnPolicy, Msisdn, Principal, Role, SecretField, SimInput, TenantId,
};
use simvault::service::tasks::ImportRow;
use simvault::store::Db;

use common::iccid;

async fn open(dir: &std::path::Path, schema: &str) -> anyhow::Result<(Db, &'static str)> {
    Ok(match std::env::var("SIMVAULT_BENCH_DATABASE_URL") {
        Ok(url) if !url.is_empty() => {
            if let Db::Postgres(p) = Db::open_postgres(&url, None).await? {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP SCHEMA IF EXISTS {schema} CASCADE"
                )))
                .execute(&p)
                .await?;
                sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
                    .execute(&p)
                    .await?;
                let _ = sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public")
                    .execute(&p)
                    .await;
                p.close().await;
            }
            (Db::open_postgres(&url, Some(schema)).await?, "postgres")
        }
        _ => (
            Db::open_sqlite(&dir.join(format!("{schema}.db"))).await?,
            "sqlite",
        ),
    })
}

fn row(n: usize) -> anyhow::Result<SimInput> {
    let e = anyhow::Error::msg;
    let mut new = SimInput::new(Iccid::parse(&iccid(n), LuhnPolicy::Enforce).map_err(e)?);
    new.imsi = Some(Imsi::parse(&format!("23415{n:010}")).map_err(e)?);
    new.msisdn = Some(Msisdn::parse(&format!("4477{n:08}")).map_err(e)?);
    let value =
        |f: SecretField, v: String| f.parse(&v).map(Some).map_err(|m| anyhow::anyhow!("{m}"));
    new.secrets = vec![
        (
            SecretField::Ki,
            value(SecretField::Ki, format!("{n:032x}"))?,
        ),
        (
            SecretField::Opc,
            value(SecretField::Opc, format!("{:032x}", n + 1))?,
        ),
        (SecretField::Pin1, value(SecretField::Pin1, "1234".into())?),
        (
            SecretField::Puk1,
            value(SecretField::Puk1, "12345678".into())?,
        ),
        (SecretField::Pin2, value(SecretField::Pin2, "5678".into())?),
        (
            SecretField::Puk2,
            value(SecretField::Puk2, "87654321".into())?,
        ),
    ];
    Ok(new)
}

/// Plain inserts of the same SIM rows and their secret values (in clear), in transactions
/// of 500 multi-row statements: no keys, no encryption, no items, no events, no audit.
async fn raw_inserts(db: &Db, tenant: &TenantId, count: usize) -> anyhow::Result<f64> {
    let integrity = simvault::vault::IntegrityKey::derive(&simvault::vault::new_key()?)?;
    let start = Instant::now();
    let now = SystemClock.now();
    let mut done = 0;
    while done < count {
        let end = (done + 500).min(count);
        let mut sims = Vec::with_capacity(end - done);
        let mut plain = Vec::new();
        for n in done..end {
            let (sim, secrets) = simvault::service::sims::new_sim(tenant, row(n)?, now);
            for (field, value) in secrets {
                if let Some(v) = value {
                    plain.push((sim.id.to_string(), field.as_str(), v.expose().to_owned()));
                }
            }
            sims.push(sim);
        }
        let mut tx = db.begin().await?;
        simvault::store::sims::insert_many(&mut tx, &integrity, &sims).await?;
        tx.commit().await?;
        insert_plain_secrets(db, &plain).await?;
        done = end;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

/// The secret values in clear, in a table of their own (500 SIMs' worth per statement).
async fn insert_plain_secrets(db: &Db, rows: &[(String, &str, String)]) -> anyhow::Result<()> {
    for chunk in rows.chunks(3000) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${})", 3 * i + 1, 3 * i + 2, 3 * i + 3))
            .collect();
        let sql = format!(
            "INSERT INTO plain_secrets (sim_id, field, value) VALUES {}",
            values.join(", ")
        );
        match db {
            Db::Sqlite(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, field, value) in chunk {
                    q = q.bind(id).bind(*field).bind(value);
                }
                q.execute(&p.write).await?;
            }
            Db::Postgres(p) => {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (id, field, value) in chunk {
                    q = q.bind(id).bind(*field).bind(value);
                }
                q.execute(p).await?;
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::var("SIMVAULT_BENCH_SIMS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir()?;
    let keys = simvault::pki::KeyPaths::new(dir.path());
    simvault::pki::init_keys(&keys)?;
    let config = Config::from_env(dir.path(), None)?;
    let tenant = TenantId::parse("bench").map_err(anyhow::Error::msg)?;

    // Baseline, in a database of its own.
    let (raw_db, store) = open(dir.path(), "importraw").await?;
    raw_db.migrate().await?;
    simvault::service::admin::create_tenant(&raw_db, &SystemClock, &tenant).await?;
    let ddl = "CREATE TABLE plain_secrets (sim_id TEXT NOT NULL, field TEXT NOT NULL, \
               value TEXT NOT NULL, PRIMARY KEY (sim_id, field))";
    match &raw_db {
        Db::Sqlite(p) => sqlx::query(ddl).execute(&p.write).await.map(|_| ())?,
        Db::Postgres(p) => sqlx::query(ddl).execute(p).await.map(|_| ())?,
    }
    let raw = raw_inserts(&raw_db, &tenant, count).await?;
    raw_db.close().await;

    let (db, _) = open(dir.path(), "importbench").await?;
    db.migrate().await?;
    let clock: SharedClock = Arc::new(SystemClock);
    let keyring = simvault::startup::open_vault(&config, &db, clock.as_ref()).await?;
    let services = simvault::startup::services(&config, db.clone(), clock, keyring)?;
    simvault::service::admin::create_tenant(&db, &SystemClock, &tenant).await?;
    let provisioner = Principal {
        roles: [Role::Provisioner].into(),
        auth_method: AuthMethod::Mtls,
        ..Principal::local(tenant.clone(), "bench")
    };
    let rows = (0..count)
        .map(|n| {
            Ok(ImportRow {
                line: i64::try_from(n)? + 1,
                sim: Ok(row(n)?),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let start = Instant::now();
    let task = services
        .tasks()
        .start_import(&provisioner, rows)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let queued = start.elapsed();
    let id = task.id;
    // As the server's worker does: `bulk_concurrency` loops leasing batches side by side.
    let services = Arc::new(services);
    let workers: Vec<_> = (0..config.tasks.bulk_concurrency)
        .map(|w| {
            let (services, db, tenant, id) = (services.clone(), db.clone(), tenant.clone(), id);
            tokio::spawn(async move {
                let owner = format!("bench-{w}");
                loop {
                    let integrity = services.core.keyring.integrity()?;
                    let row = simvault::store::tasks::get(&db, &integrity, &tenant, &id)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("task vanished"))?;
                    if row.status == simvault::domain::task::TaskStatus::Completed {
                        return anyhow::Ok(row.completed_items);
                    }
                    let worked = services
                        .tasks()
                        .work_on(&row.id, &owner, Duration::from_secs(60))
                        .await
                        .map_err(|e| anyhow::anyhow!("{e}"))?;
                    if !worked {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            })
        })
        .collect();
    for w in workers {
        let imported = w.await??;
        anyhow::ensure!(
            imported == i64::try_from(count)?,
            "{imported} of {count} imported"
        );
    }
    let total = start.elapsed();
    let rate = count as f64 / total.as_secs_f64();
    println!(
        "store={store} sims={count} (Ki, OPc, PIN1/2, PUK1/2 each), {} worker loop(s)",
        config.tasks.bulk_concurrency
    );
    println!("plain inserts (no encryption, no audit): {raw:>9.0} SIMs/s");
    println!(
        "import task (queued in {:.1} s, done in {:.1} s):  {rate:>9.0} SIMs/s  = {:.2}x",
        queued.as_secs_f64(),
        total.as_secs_f64(),
        rate / raw
    );
    db.close().await;
    Ok(())
}
