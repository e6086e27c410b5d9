//! Persistence: one module per aggregate over SQLite (the embedded default) or PostgreSQL
//! (scale-out), chosen from the database URL at run time.
//!
//! Each repository function is written once and compiled for both backends through the
//! [`on_pool!`], [`on_tx!`] and [`on_conn!`] macros; the dialects differ only in the named
//! helpers [`Tx::row_lock`] and [`Tx::skip_locked`]. A read accepts a [`Conn`]: the pool or
//! an open transaction, so no query has a twin for each. The service layer owns transactions
//! ([`Db::begin`]). This module knows nothing of HTTP.

pub mod audit;
pub mod console;
pub mod console_oidc;
mod domain_rows;
pub mod files;
pub mod groups;
pub mod identities;
pub mod keys;
pub mod lifecycle;
pub mod links;
pub mod outbox;
pub mod plans;
pub mod sims;
pub mod tasks;
pub mod tenants;
pub mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, Postgres, Sqlite, SqlitePool};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint refused the write; the constraint or column name is given.
    #[error("conflict on {0}")]
    Conflict(String),
    #[error("not found")]
    NotFound,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A row failed its integrity check: it is refused, never returned.
    #[error(transparent)]
    Integrity(#[from] crate::vault::IntegrityFailure),
}

impl StoreError {
    /// Turns a unique-constraint violation into [`StoreError::Conflict`] naming the constraint,
    /// and passes every other error through.
    fn from_write(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e
            && db.is_unique_violation()
        {
            let name = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            return StoreError::Conflict(name);
        }
        StoreError::Database(e)
    }
}

/// A stored name (a state, a kind) this release does not know: the row is not read.
impl From<crate::domain::names::UnknownName> for StoreError {
    fn from(e: crate::domain::names::UnknownName) -> Self {
        StoreError::Corrupt(e.to_string())
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The SQL literal of one of this crate's stored names (a state, a kind: `'pending'`), so
/// that no query spells a state itself. The names are constants of `a-z`, `_` and `-`,
/// never input.
pub(crate) fn sql_text(name: &'static str) -> String {
    debug_assert!(
        name.bytes()
            .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'-')
    );
    format!("'{name}'")
}

/// A stored tenant column: a name that does not parse as a tenant is corrupt, never a default.
pub(crate) fn stored_tenant(s: &str) -> StoreResult<crate::domain::TenantId> {
    crate::domain::TenantId::parse(s)
        .map_err(|e| StoreError::Corrupt(format!("tenant column {s:?}: {e}")))
}

/// A stored id column (a task's, a webhook's): text that does not parse as its id is corrupt.
pub(crate) fn stored_id<I>(column: &str, s: &str) -> StoreResult<I>
where
    I: std::str::FromStr<Err = uuid::Error>,
{
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("{column} column {s:?}: {e}")))
}

/// A connection pool to one of the supported databases.
#[derive(Clone, Debug)]
pub enum Db {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// SQLite allows one writer at a time: writes queue for a single connection in the pool
/// (asynchronously, instead of spinning on the busy timeout), while reads, which WAL mode
/// lets run beside the writer, have connections of their own.
#[derive(Clone, Debug)]
pub struct SqlitePools {
    pub read: SqlitePool,
    pub write: SqlitePool,
}

/// An open transaction. Dropping it without [`Tx::commit`] rolls it back.
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, Sqlite>),
    Postgres(sqlx::Transaction<'static, Postgres>),
}

/// Runs `$body` with `$pool` bound to the concrete (read) pool of whichever backend `$db` is.
macro_rules! on_pool {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::store::Db::Sqlite(pools) => {
                let $pool = &pools.read;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the concrete connection of the transaction `$tx`.
/// Use `&mut *$conn` as the executor so the body can run several statements.
macro_rules! on_tx {
    ($tx:expr, $conn:ident => $body:expr) => {
        match $tx {
            $crate::store::Tx::Sqlite(t) => {
                let $conn: &mut sqlx::SqliteConnection = &mut *t;
                $body
            }
            $crate::store::Tx::Postgres(t) => {
                let $conn: &mut sqlx::PgConnection = &mut *t;
                $body
            }
        }
    };
}
/// Runs `$body` with `$c` bound to the executor behind the [`Conn`] `$conn` (a mutable
/// binding): the (read) pool, or the transaction's connection. `$body` runs one statement
/// with `$c` as its executor; invoke the macro once per statement.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match &mut $conn {
            $crate::store::Conn::Pool(db) => $crate::store::on_pool!(*db, $c => $body),
            $crate::store::Conn::Tx(tx) => $crate::store::on_tx!(&mut **tx, $c => $body),
        }
    };
}
pub(crate) use {on_conn, on_pool, on_tx};

/// Where a read runs: on the pool, or inside an open transaction (which sees its own
/// writes, and which, holding locks, must not wait for a second pooled connection: under
/// load that deadlocks against the pool). Built from `&Db` or `&mut Tx`.
pub enum Conn<'a> {
    Pool(&'a Db),
    Tx(&'a mut Tx),
}

impl<'a> From<&'a Db> for Conn<'a> {
    fn from(db: &'a Db) -> Self {
        Conn::Pool(db)
    }
}

impl<'a> From<&'a mut Tx> for Conn<'a> {
    fn from(tx: &'a mut Tx) -> Self {
        Conn::Tx(tx)
    }
}

impl Conn<'_> {
    /// [`Tx::row_lock`] inside a transaction; nothing on the pool, where a lock would end
    /// with the statement.
    pub fn row_lock(&self) -> &'static str {
        match self {
            Conn::Pool(_) => "",
            Conn::Tx(tx) => tx.row_lock(),
        }
    }
}

/// The SQL dialect of a backend, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Db {
    /// Opens (creating if needed) the SQLite database at `path`: WAL, full fsync on commit
    /// (an acknowledged write survives power loss), foreign keys on, a busy timeout so
    /// concurrent writers queue instead of failing.
    pub async fn open_sqlite(path: &Path) -> StoreResult<Db> {
        files::prepare_database(path).map_err(sqlx::Error::Io)?;
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(opts.clone())
            .await?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        files::seal_companions(path).map_err(sqlx::Error::Io)?;
        Ok(Db::Sqlite(SqlitePools { read, write }))
    }

    /// Connects to PostgreSQL. `search_path` selects a schema (tests use one per test).
    pub async fn open_postgres(url: &str, search_path: Option<&str>) -> StoreResult<Db> {
        let mut opts = PgConnectOptions::from_str(url)?;
        if let Some(schema) = search_path {
            opts = opts.options([("search_path", format!("{schema},public"))]);
        }
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        Ok(Db::Postgres(pool))
    }

    /// Opens the store named by `database_url` (`postgres://…`), or else the SQLite file.
    pub async fn open(database_url: Option<&str>, sqlite_path: &Path) -> StoreResult<Db> {
        match database_url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Db::open_postgres(url, None).await
            }
            Some(url) if url.starts_with("sqlite:") => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .trim_start_matches("sqlite:");
                Db::open_sqlite(Path::new(path)).await
            }
            Some(_) => Err(StoreError::Database(sqlx::Error::Configuration(
                "SIMVAULT_DATABASE_URL must start with postgres:// or sqlite:".into(),
            ))),
            None => Db::open_sqlite(sqlite_path).await,
        }
    }

    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Db::Sqlite(p) => SQLITE_MIGRATIONS.run(&p.write).await,
            Db::Postgres(p) => POSTGRES_MIGRATIONS.run(p).await,
        }
        .map_err(|e| StoreError::Database(sqlx::Error::Migrate(Box::new(e))))
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite(_) => Dialect::Sqlite,
            Db::Postgres(_) => Dialect::Postgres,
        }
    }

    /// Begins a write transaction. On SQLite it takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so a read-then-write transaction cannot fail half-way on lock upgrade.
    pub async fn begin(&self) -> StoreResult<Tx> {
        Ok(match self {
            Db::Sqlite(p) => Tx::Sqlite(p.write.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(p) => Tx::Postgres(p.begin().await?),
        })
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, p => sqlx::query("SELECT 1").execute(p).await.map(|_| ()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite(p) => {
                p.read.close().await;
                p.write.close().await;
            }
            Db::Postgres(p) => p.close().await,
        }
    }
}

impl Tx {
    pub async fn commit(self) -> StoreResult<()> {
        match self {
            Tx::Sqlite(t) => t.commit().await?,
            Tx::Postgres(t) => t.commit().await?,
        }
        Ok(())
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Tx::Sqlite(_) => Dialect::Sqlite,
            Tx::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The clause that locks selected rows until this transaction ends: PostgreSQL's
    /// ` FOR UPDATE`; nothing on SQLite, whose write transaction already holds the database.
    pub fn row_lock(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR UPDATE",
        }
    }

    /// The clause that locks selected rows against other changes and deletion until this
    /// transaction ends, for a change that keeps the row's key: PostgreSQL's
    /// ` FOR NO KEY UPDATE` (it does not wait for, nor block, [`Tx::key_share`] holders);
    /// nothing on SQLite (one writer).
    pub fn no_key_update(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR NO KEY UPDATE",
        }
    }

    /// The clause that keeps a selected row's key from being deleted or changed until this
    /// transaction ends, without blocking other readers or sharers: PostgreSQL's
    /// ` FOR KEY SHARE` (what a foreign key check takes); nothing on SQLite (one writer).
    pub fn key_share(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR KEY SHARE",
        }
    }

    /// [`Tx::row_lock`] that passes over rows another transaction has locked, so concurrent
    /// claimers (replicas) take disjoint sets: PostgreSQL's ` FOR UPDATE SKIP LOCKED`;
    /// nothing on SQLite, whose single writer serialises the claims.
    pub fn skip_locked(&self) -> &'static str {
        match self {
            Tx::Sqlite(_) => "",
            Tx::Postgres(_) => " FOR UPDATE SKIP LOCKED",
        }
    }

    /// A statement that leases one batch of rows to a claimer: `pick` (a `SELECT` of one
    /// column with its `ORDER BY` and `LIMIT`) runs once, in a materialised CTE, skipping
    /// rows other claimers hold ([`Tx::skip_locked`]); `update` (`UPDATE … FROM picked WHERE
    /// … = picked.pick …`) then leases what it picked. Written as `IN (pick)` instead,
    /// PostgreSQL may re-run the pick for each row it updates, each run passing over the rows
    /// updated so far, and so lease every row whatever the limit.
    pub(crate) fn claim_batch(&self, pick: &str, update: &str) -> String {
        let skip = self.skip_locked();
        format!("WITH picked (pick) AS MATERIALIZED ({pick}{skip}) {update}")
    }
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

/// Builds SQL text with numbered placeholders (`$1`, `$2`, …), which both backends accept.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl SqlBuilder {
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `value`.
    pub(crate) fn bind(&mut self, value: Bind) -> &mut Self {
        self.binds.push(value);
        self.sql.push('$');
        self.sql.push_str(&self.binds.len().to_string());
        self
    }

    pub(crate) fn bind_text(&mut self, value: impl Into<String>) -> &mut Self {
        self.bind(Bind::Text(value.into()))
    }

    /// Appends `($n, $n+1, …)`, a placeholder for each of `values` (an `IN` list).
    pub(crate) fn bind_texts<S: Into<String>>(
        &mut self,
        values: impl IntoIterator<Item = S>,
    ) -> &mut Self {
        self.push("(");
        for (i, value) in values.into_iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.bind_text(value);
        }
        self.push(")")
    }
}

/// Binds `binds` in order onto a query of either backend.
macro_rules! bind_all {
    ($query:expr, $binds:expr) => {{
        let mut q = $query;
        for b in $binds {
            q = match b {
                $crate::store::Bind::Text(s) => q.bind(s.clone()),
                $crate::store::Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

/// `($1, $2, …), (…), …`: placeholders for `rows` rows of `columns` values each.
pub(crate) fn placeholders(rows: usize, columns: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 1..=columns {
            if c > 1 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(r * columns + c).to_string());
        }
        out.push(')');
    }
    out
}

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern.
pub(crate) fn like_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Decodes a JSON array of strings stored by this crate.
pub(crate) fn json_labels(
    text: &serde_json::Value,
) -> StoreResult<std::collections::BTreeSet<String>> {
    serde_json::from_value(text.clone()).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_escape("a%b_c\\d"), "a\\%b\\_c\\\\d");
    }

    #[test]
    fn builder_numbers_placeholders() {
        let mut b = SqlBuilder::default();
        b.push("a = ")
            .bind_text("x")
            .push(" AND b = ")
            .bind(Bind::Int(2));
        assert_eq!(b.sql, "a = $1 AND b = $2");
        assert_eq!(b.binds.len(), 2);
    }
}
