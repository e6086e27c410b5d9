//! The two migration trees describe one schema: a fresh SQLite database and a fresh PostgreSQL
//! schema, each fully migrated, have the same tables, columns (with nullability and a type
//! class), primary and unique keys, foreign keys and indexes (with their columns), apart from
//! the differences listed in [`INTENDED`], each with its reason.
//!
//! On SQLite alone the test checks what needs no second database: both trees carry the same
//! migration files, and the SQLite schema is self-consistent.

use std::collections::{BTreeMap, BTreeSet};

use simvault::store::Db;

use crate::helpers::{Store, TestDb, both_stores};

/// The differences the two trees are meant to have. A difference missing from this list fails
/// the test, and so does an entry that no longer occurs (the list stays exact).
const INTENDED: &[(&str, &str)] = &[
    (
        "table sims_fts: only on sqlite",
        "substring search: SQLite's FTS5 trigram table, where PostgreSQL has pg_trgm indexes",
    ),
    (
        "column sims.pk: only on sqlite",
        "the integer rowid alias that the FTS5 table's rows refer to",
    ),
    (
        "sims: primary key (pk) on sqlite, (id) on postgres",
        "SQLite keys the row by its rowid alias (for FTS5); `id` is unique on both",
    ),
    (
        "sims: unique key (pk) only on sqlite",
        "the rowid alias again (a primary key is a unique key)",
    ),
    (
        "column sims.search_text: only on postgres",
        "the generated column that PostgreSQL's trigram search index covers",
    ),
    (
        "index sims.sims_search_trgm: only on postgres",
        "PostgreSQL's trigram search index (SQLite: the FTS5 table)",
    ),
    (
        "index sims.sims_iccid_trgm: only on postgres",
        "PostgreSQL's trigram ICCID index (SQLite: the FTS5 table)",
    ),
    (
        "index sims.sims_tags: only on postgres",
        "a GIN index on the JSONB tags; SQLite has no index type for JSON containment",
    ),
    (
        "column sims.tags: text on sqlite, json on postgres",
        "SQLite has no JSON type: JSON is stored as TEXT",
    ),
    (
        "column sims.compatibility_zones: text on sqlite, json on postgres",
        "SQLite has no JSON type: JSON is stored as TEXT",
    ),
    (
        "column sims.metadata: text on sqlite, json on postgres",
        "SQLite has no JSON type: JSON is stored as TEXT",
    ),
    (
        "column plans.compatibility_zones: text on sqlite, json on postgres",
        "SQLite has no JSON type: JSON is stored as TEXT",
    ),
    (
        "column tasks.params: text on sqlite, json on postgres",
        "SQLite has no JSON type: JSON is stored as TEXT",
    ),
    (
        "column sims.is_attached: integer on sqlite, bool on postgres",
        "SQLite has no boolean type: 0 and 1 in an INTEGER",
    ),
    (
        "column groups.imei_lock: integer on sqlite, bool on postgres",
        "SQLite has no boolean type: 0 and 1 in an INTEGER",
    ),
];

/// A column's type, in classes both dialects can be mapped to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Class {
    Integer,
    Text,
    Blob,
    Real,
    Bool,
    Json,
    Other,
}

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Integer => "integer",
            Class::Text => "text",
            Class::Blob => "blob",
            Class::Real => "real",
            Class::Bool => "bool",
            Class::Json => "json",
            Class::Other => "other",
        }
    }

    /// SQLite's affinity rules (section 3.1 of its datatype documentation), applied to the
    /// declared type.
    fn of_sqlite(declared: &str) -> Class {
        let t = declared.to_ascii_uppercase();
        if t.contains("INT") {
            Class::Integer
        } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
            Class::Text
        } else if t.contains("BLOB") || t.is_empty() {
            Class::Blob
        } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
            Class::Real
        } else {
            Class::Other
        }
    }

    fn of_postgres(data_type: &str) -> Class {
        match data_type {
            "bigint" | "integer" | "smallint" => Class::Integer,
            "text" | "character varying" | "character" => Class::Text,
            "bytea" => Class::Blob,
            "double precision" | "real" => Class::Real,
            "boolean" => Class::Bool,
            "jsonb" | "json" => Class::Json,
            _ => Class::Other,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    class: Class,
    nullable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    table: String,
    references: Vec<String>,
    on_delete: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    /// Every unique column list, the primary key's included.
    unique: BTreeSet<Vec<String>>,
    foreign_keys: BTreeSet<ForeignKey>,
    /// Indexes made by `CREATE INDEX`, by name (not those behind a key constraint).
    indexes: BTreeMap<String, Index>,
}

type Schema = BTreeMap<String, Table>;

/// A key or foreign key as PostgreSQL's catalogue lists it: table, kind (`p`, `u`, `f`),
/// columns, referenced table and columns, and the delete action.
type PgConstraint = (String, String, Vec<String>, String, Vec<String>, String);

/// Tables sqlx keeps for itself, and SQLite's own.
fn ignored_table(name: &str) -> bool {
    name == "_sqlx_migrations" || name.starts_with("sqlite_")
}

async fn sqlite_schema(db: &Db) -> Schema {
    let Db::Sqlite(pools) = db else {
        panic!("not SQLite")
    };
    let p = &pools.read;
    let masters: Vec<(String, String)> = sqlx::query_as(
        "SELECT name, COALESCE(sql, '') FROM sqlite_master WHERE type = 'table' ORDER BY name",
    )
    .fetch_all(p)
    .await
    .unwrap();
    let virtual_tables: Vec<String> = masters
        .iter()
        .filter(|(_, sql)| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL TABLE"))
        .map(|(name, _)| name.clone())
        .collect();
    // FTS5 keeps its data in shadow tables named after the virtual table.
    let shadow = |name: &str| {
        virtual_tables.iter().any(|v| {
            ["_data", "_idx", "_content", "_docsize", "_config"]
                .iter()
                .any(|suffix| name == format!("{v}{suffix}"))
        })
    };
    let mut schema = Schema::new();
    for (name, _) in &masters {
        if ignored_table(name) || shadow(name) {
            continue;
        }
        let mut table = Table::default();
        if virtual_tables.contains(name) {
            schema.insert(name.clone(), table);
            continue;
        }
        let columns: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\", pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(name)
        .fetch_all(p)
        .await
        .unwrap();
        let mut pk: Vec<(i64, String)> = Vec::new();
        for (column, declared, notnull, pk_pos) in columns {
            if pk_pos > 0 {
                pk.push((pk_pos, column.clone()));
            }
            // A primary key column counts as NOT NULL, as PostgreSQL makes it: SQLite's
            // legacy quirk allows NULL there, but every insert binds the key.
            let nullable = notnull == 0 && pk_pos == 0;
            table.columns.insert(
                column,
                Column {
                    class: Class::of_sqlite(&declared),
                    nullable,
                },
            );
        }
        pk.sort();
        table.primary_key = pk.into_iter().map(|(_, c)| c).collect();
        if !table.primary_key.is_empty() {
            table.unique.insert(table.primary_key.clone());
        }
        let indexes: Vec<(String, i64, String, i64)> =
            sqlx::query_as("SELECT name, \"unique\", origin, partial FROM pragma_index_list($1)")
                .bind(name)
                .fetch_all(p)
                .await
                .unwrap();
        for (index, unique, origin, partial) in indexes {
            let columns: Vec<String> = sqlx::query_scalar(
                "SELECT COALESCE(name, '<expression>') FROM pragma_index_info($1) ORDER BY seqno",
            )
            .bind(&index)
            .fetch_all(p)
            .await
            .unwrap();
            match origin.as_str() {
                "c" => {
                    if unique != 0 {
                        table.unique.insert(columns.clone());
                    }
                    table.indexes.insert(
                        index,
                        Index {
                            columns,
                            unique: unique != 0,
                            partial: partial != 0,
                        },
                    );
                }
                "u" => {
                    table.unique.insert(columns);
                }
                // The primary key's own index: read from the columns above.
                _ => {}
            }
        }
        let fks: Vec<(i64, i64, String, String, Option<String>, String)> = sqlx::query_as(
            "SELECT id, seq, \"table\", \"from\", \"to\", on_delete FROM pragma_foreign_key_list($1) \
             ORDER BY id, seq",
        )
        .bind(name)
        .fetch_all(p)
        .await
        .unwrap();
        let mut by_id: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for (id, _, target, from, to, on_delete) in fks {
            let fk = by_id.entry(id).or_insert_with(|| ForeignKey {
                columns: Vec::new(),
                table: target,
                references: Vec::new(),
                on_delete: on_delete.to_ascii_uppercase(),
            });
            fk.columns.push(from);
            fk.references.push(to.unwrap_or_default());
        }
        table.foreign_keys = by_id.into_values().collect();
        schema.insert(name.clone(), table);
    }
    schema
}

async fn postgres_schema(db: &Db, namespace: &str) -> Schema {
    let Db::Postgres(p) = db else {
        panic!("not PostgreSQL")
    };
    let mut schema = Schema::new();
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    .bind(namespace)
    .fetch_all(p)
    .await
    .unwrap();
    for name in tables.into_iter().filter(|t| !ignored_table(t)) {
        schema.insert(name, Table::default());
    }
    let columns: Vec<(String, String, String, bool)> = sqlx::query_as(
        "SELECT c.relname::text, a.attname::text, format_type(a.atttypid, NULL), NOT a.attnotnull \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(namespace)
    .fetch_all(p)
    .await
    .unwrap();
    for (table, column, data_type, nullable) in columns {
        if let Some(t) = schema.get_mut(&table) {
            t.columns.insert(
                column,
                Column {
                    class: Class::of_postgres(&data_type),
                    nullable,
                },
            );
        }
    }
    let constraints: Vec<PgConstraint> = sqlx::query_as(
        "SELECT t.relname::text, c.contype::text, \
             ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum \
                   ORDER BY k.ord), \
             COALESCE(f.relname::text, ''), \
             ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord) \
                   JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum \
                   ORDER BY k.ord), \
             c.confdeltype::text \
             FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid \
             JOIN pg_namespace n ON n.oid = t.relnamespace \
             LEFT JOIN pg_class f ON f.oid = c.confrelid \
             WHERE n.nspname = $1 AND c.contype IN ('p', 'u', 'f')",
    )
    .bind(namespace)
    .fetch_all(p)
    .await
    .unwrap();
    for (table, kind, columns, target, references, on_delete) in constraints {
        let Some(t) = schema.get_mut(&table) else {
            continue;
        };
        match kind.as_str() {
            "p" => {
                t.primary_key = columns.clone();
                t.unique.insert(columns);
            }
            "u" => {
                t.unique.insert(columns);
            }
            _ => {
                let on_delete = match on_delete.as_str() {
                    "c" => "CASCADE",
                    "n" => "SET NULL",
                    "d" => "SET DEFAULT",
                    "r" => "RESTRICT",
                    _ => "NO ACTION",
                };
                t.foreign_keys.insert(ForeignKey {
                    columns,
                    table: target,
                    references,
                    on_delete: on_delete.into(),
                });
            }
        }
    }
    let indexes: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, ix.indisunique, ix.indpred IS NOT NULL, \
         ARRAY(SELECT pg_get_indexdef(ix.indexrelid, k, true) \
               FROM generate_series(1, ix.indnkeyatts::int) k ORDER BY k) \
         FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid \
         JOIN pg_class t ON t.oid = ix.indrelid JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE n.nspname = $1 AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
               WHERE c.conindid = ix.indexrelid AND c.contype IN ('p', 'u', 'x'))",
    )
    .bind(namespace)
    .fetch_all(p)
    .await
    .unwrap();
    for (table, index, unique, partial, columns) in indexes {
        let Some(t) = schema.get_mut(&table) else {
            continue;
        };
        if unique {
            t.unique.insert(columns.clone());
        }
        t.indexes.insert(
            index,
            Index {
                columns,
                unique,
                partial,
            },
        );
    }
    schema
}

fn list(columns: &[String]) -> String {
    format!("({})", columns.join(", "))
}

fn describe_index(i: &Index) -> String {
    format!(
        "{}{}{}",
        if i.unique { "unique " } else { "" },
        list(&i.columns),
        if i.partial { " partial" } else { "" }
    )
}

fn describe_fk(fk: &ForeignKey) -> String {
    format!(
        "{} references {}{} on delete {}",
        list(&fk.columns),
        fk.table,
        list(&fk.references),
        fk.on_delete
    )
}

/// Where `a` (SQLite) and `b` (PostgreSQL) differ, one line per difference.
fn differences(a: &Schema, b: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    only(
        &mut out,
        "table",
        a.keys(),
        b.keys(),
        |k| b.contains_key(k),
        |k| a.contains_key(k),
    );
    for (name, ta) in a {
        let Some(tb) = b.get(name) else { continue };
        only(
            &mut out,
            &format!("column {name}."),
            ta.columns.keys(),
            tb.columns.keys(),
            |k| tb.columns.contains_key(k),
            |k| ta.columns.contains_key(k),
        );
        for (column, ca) in &ta.columns {
            let Some(cb) = tb.columns.get(column) else {
                continue;
            };
            if ca.class != cb.class {
                out.push(format!(
                    "column {name}.{column}: {} on sqlite, {} on postgres",
                    ca.class.name(),
                    cb.class.name()
                ));
            }
            if ca.nullable != cb.nullable {
                let null = |n: bool| if n { "nullable" } else { "NOT NULL" };
                out.push(format!(
                    "column {name}.{column}: {} on sqlite, {} on postgres",
                    null(ca.nullable),
                    null(cb.nullable)
                ));
            }
        }
        if ta.primary_key != tb.primary_key {
            out.push(format!(
                "{name}: primary key {} on sqlite, {} on postgres",
                list(&ta.primary_key),
                list(&tb.primary_key)
            ));
        }
        for (side, mine, theirs) in [
            ("sqlite", &ta.unique, &tb.unique),
            ("postgres", &tb.unique, &ta.unique),
        ] {
            for key in mine.difference(theirs) {
                out.push(format!("{name}: unique key {} only on {side}", list(key)));
            }
        }
        for (side, mine, theirs) in [
            ("sqlite", &ta.foreign_keys, &tb.foreign_keys),
            ("postgres", &tb.foreign_keys, &ta.foreign_keys),
        ] {
            for fk in mine.difference(theirs) {
                out.push(format!(
                    "{name}: foreign key {} only on {side}",
                    describe_fk(fk)
                ));
            }
        }
        only(
            &mut out,
            &format!("index {name}."),
            ta.indexes.keys(),
            tb.indexes.keys(),
            |k| tb.indexes.contains_key(k),
            |k| ta.indexes.contains_key(k),
        );
        for (index, ia) in &ta.indexes {
            if let Some(ib) = tb.indexes.get(index)
                && ia != ib
            {
                out.push(format!(
                    "index {name}.{index}: {} on sqlite, {} on postgres",
                    describe_index(ia),
                    describe_index(ib)
                ));
            }
        }
    }
    out
}

/// Reports the names present on one side only, as `{what}{name}: only on …`.
fn only<'a>(
    out: &mut Vec<String>,
    what: &str,
    a: impl Iterator<Item = &'a String>,
    b: impl Iterator<Item = &'a String>,
    in_b: impl Fn(&String) -> bool,
    in_a: impl Fn(&String) -> bool,
) {
    let sep = if what.ends_with('.') { "" } else { " " };
    for k in a.filter(|k| !in_b(k)) {
        out.push(format!("{what}{sep}{k}: only on sqlite"));
    }
    for k in b.filter(|k| !in_a(k)) {
        out.push(format!("{what}{sep}{k}: only on postgres"));
    }
}

/// Fails naming every unlisted difference, and every listed one that no longer occurs.
fn assert_only_intended(found: &[String]) {
    let intended: BTreeSet<&str> = INTENDED.iter().map(|(d, _)| *d).collect();
    let found_set: BTreeSet<&str> = found.iter().map(String::as_str).collect();
    let unexpected: Vec<&str> = found_set.difference(&intended).copied().collect();
    let stale: Vec<&str> = intended.difference(&found_set).copied().collect();
    assert!(
        unexpected.is_empty() && stale.is_empty(),
        "the migration trees drifted apart:\n  unexpected differences:\n    {}\n  \
         listed as intended but not found:\n    {}",
        unexpected.join("\n    "),
        stale.join("\n    ")
    );
}

fn migration_files(dialect: &str) -> BTreeSet<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(dialect);
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// What holds within the SQLite schema alone: every index and key names columns of its
/// table, every foreign key a key of an existing table, and every type maps to a class.
fn assert_self_consistent(schema: &Schema) {
    let mut problems = Vec::new();
    for (name, t) in schema {
        let known = |c: &String| t.columns.contains_key(c);
        for (index, i) in &t.indexes {
            if !i.columns.iter().all(known) {
                problems.push(format!("index {name}.{index} names a missing column"));
            }
        }
        for key in &t.unique {
            if !key.iter().all(known) {
                problems.push(format!("{name}: key {} names a missing column", list(key)));
            }
        }
        for fk in &t.foreign_keys {
            let target_key = schema
                .get(&fk.table)
                .is_some_and(|target| target.unique.contains(&fk.references));
            if !fk.columns.iter().all(known) || !target_key {
                problems.push(format!(
                    "{name}: foreign key {} is not to a key",
                    describe_fk(fk)
                ));
            }
        }
        for (column, c) in &t.columns {
            if c.class == Class::Other {
                problems.push(format!("column {name}.{column}: unknown type class"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

async fn migration_trees_agree(store: Store) {
    assert_eq!(
        migration_files("sqlite"),
        migration_files("postgres"),
        "both migration trees carry the same files"
    );
    let sqlite = TestDb::new(Store::Sqlite).await;
    let lite = sqlite_schema(&sqlite.db).await;
    assert!(lite.contains_key("sims") && lite.contains_key("audit_events"));
    assert_self_consistent(&lite);
    if store == Store::Postgres {
        let pg = TestDb::new(Store::Postgres).await;
        let postgres = postgres_schema(&pg.db, pg.pg_schema().unwrap()).await;
        assert!(
            postgres.contains_key("sims"),
            "the PostgreSQL schema was read"
        );
        assert_only_intended(&differences(&lite, &postgres));
    }
}
both_stores!(schema_parity, migration_trees_agree);

#[test]
fn a_drift_is_named() {
    let column = |class| Column {
        class,
        nullable: false,
    };
    let mut a = Schema::new();
    let mut t = Table::default();
    t.columns.insert("id".into(), column(Class::Text));
    t.columns.insert("n".into(), column(Class::Integer));
    t.indexes.insert(
        "t_n".into(),
        Index {
            columns: vec!["n".into()],
            unique: false,
            partial: false,
        },
    );
    a.insert("t".into(), t.clone());
    let mut b = a.clone();
    let tb = b.get_mut("t").unwrap();
    tb.columns.insert("n".into(), column(Class::Text));
    tb.columns.insert("extra".into(), column(Class::Text));
    tb.indexes.get_mut("t_n").unwrap().columns.push("id".into());
    assert_eq!(
        differences(&a, &b),
        [
            "column t.extra: only on postgres",
            "column t.n: integer on sqlite, text on postgres",
            "index t.t_n: (n) on sqlite, (n, id) on postgres",
        ]
    );
    assert!(differences(&a, &a).is_empty());
}
