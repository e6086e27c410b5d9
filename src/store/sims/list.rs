//! The SIM list: the search and filter query builder and the page read.

use super::{SQL, SimRow, link_columns};
use crate::domain::Sim;
use crate::domain::TenantId;
use crate::domain::condition::Condition;
use crate::domain::sim::SimListQuery;
use crate::domain::sim_filters::StatusTerm;
use crate::store::{Bind, Db, Dialect, SqlBuilder, StoreResult, bind_all, like_escape, on_pool};
use crate::vault::IntegrityKey;

/// Shortest term the trigram indexes can serve; shorter terms fall back to a scan.
const TRIGRAM: usize = 3;

/// An FTS5 query matching rows that contain every distinct trigram of `term` (optionally in
/// one column). It selects candidates only; callers confirm the substring with `LIKE`.
///
/// Why not a phrase query: a phrase must check token positions and reads every position list
/// of every trigram, which for identifiers full of common trigrams (`000`, country codes) cost
/// several times more than this AND of distinct trigrams plus a check of the few candidates.
fn fts_trigrams(term: &str, column: Option<&str>) -> String {
    let chars: Vec<char> = term.chars().collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut parts = Vec::new();
    for w in chars.windows(TRIGRAM) {
        let tri: String = w.iter().collect();
        if seen.insert(tri.clone()) {
            let quoted = format!("\"{}\"", tri.replace('"', "\"\""));
            parts.push(match column {
                Some(c) => format!("{c} : {quoted}"),
                None => quoted,
            });
        }
    }
    parts.join(" AND ")
}

/// Whether the SIM is (`true`) or is not in condition `c`: the stored text is the names,
/// comma-separated.
fn push_condition(b: &mut SqlBuilder, c: Condition, is_in: bool) {
    b.push(if is_in {
        "(',' || s.conditions || ',') LIKE "
    } else {
        "(',' || s.conditions || ',') NOT LIKE "
    })
    .bind_text(format!("%,{},%", c.as_str()));
}

/// One [`StatusTerm`]: its states (any when none), with and without its conditions.
fn push_term(b: &mut SqlBuilder, term: &StatusTerm) {
    b.push("(1 = 1");
    if !term.states.is_empty() {
        b.push(" AND s.state IN ")
            .bind_texts(term.states.iter().map(|st| st.as_str()));
    }
    for (conditions, is_in) in [(&term.with, true), (&term.without, false)] {
        for c in conditions {
            b.push(" AND ");
            push_condition(b, *c, is_in);
        }
    }
    b.push(")");
}

fn push_filters(b: &mut SqlBuilder, dialect: Dialect, tenant_id: &TenantId, q: &SimListQuery) {
    b.push(" FROM sims s WHERE s.tenant_id = ")
        .bind_text(tenant_id);
    b.push(" AND s.deleted_at IS NULL");
    if !q.states.is_empty() {
        b.push(" AND s.state IN (");
        for (i, st) in q.states.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind_text(st.as_str());
        }
        b.push(")");
    }
    if let Some(t) = q.sim_type {
        b.push(" AND s.sim_type = ").bind_text(t.as_str());
    }
    if let Some(g) = &q.group_id {
        // The group's id, or its name: filters written for the free-text labels groups
        // replaced keep working.
        b.push(" AND s.group_id IN (SELECT g.id FROM groups g WHERE g.tenant_id = s.tenant_id AND (g.id = ")
            .bind_text(g.clone())
            .push(" OR g.name = ")
            .bind_text(g.clone())
            .push("))");
    }
    if let Some(v) = &q.vendor {
        b.push(" AND s.vendor = ").bind_text(v.clone());
    }
    if !q.conditions.is_empty() {
        b.push(" AND (");
        for (i, c) in q.conditions.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            push_condition(b, *c, true);
        }
        b.push(")");
    }
    if !q.any_of.is_empty() {
        b.push(" AND (");
        for (i, term) in q.any_of.iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            push_term(b, term);
        }
        b.push(")");
    }
    let carrier = &q.carrier;
    for (column, value) in [
        (" AND s.communication_plan = ", &carrier.communication_plan),
        (" AND s.rate_plan = ", &carrier.rate_plan),
        (" AND s.mno_integration_id = ", &carrier.mno_integration_id),
    ] {
        if let Some(v) = value {
            b.push(column).bind_text(v.clone());
        }
    }
    if !q.compatibility_zones.is_empty() {
        b.push(match dialect {
            Dialect::Sqlite => " AND EXISTS (SELECT 1 FROM json_each(s.compatibility_zones) z WHERE z.value IN (",
            Dialect::Postgres => " AND EXISTS (SELECT 1 FROM jsonb_array_elements_text(s.compatibility_zones) z WHERE z IN (",
        });
        for (i, zone) in q.compatibility_zones.iter().enumerate() {
            if i > 0 {
                b.push(", ");
            }
            b.bind_text(zone.clone());
        }
        b.push("))");
    }
    for tag in &q.tags {
        match dialect {
            Dialect::Sqlite => {
                b.push(" AND EXISTS (SELECT 1 FROM json_each(s.tags) t WHERE t.value = ");
                b.bind_text(tag.clone()).push(")");
            }
            // `?` is jsonb's "contains this string element", served by the GIN index.
            Dialect::Postgres => {
                b.push(" AND s.tags ? ").bind_text(tag.clone());
            }
        }
    }
    for (column, term) in [("iccid", &q.iccid), ("msisdn", &q.msisdn)] {
        let Some(term) = term else { continue };
        if dialect == Dialect::Sqlite && term.chars().count() >= TRIGRAM {
            b.push(" AND s.pk IN (SELECT rowid FROM sims_fts WHERE sims_fts MATCH ");
            b.bind_text(fts_trigrams(term, Some(column))).push(")");
        }
        b.push(&format!(" AND s.{column} LIKE "));
        b.bind_text(format!("%{}%", like_escape(term)))
            .push(" ESCAPE '\\'");
    }
    if let Some(term) = &q.search {
        let term = term.to_lowercase();
        match dialect {
            Dialect::Sqlite => {
                if term.chars().count() >= TRIGRAM {
                    b.push(" AND s.pk IN (SELECT rowid FROM sims_fts WHERE sims_fts MATCH ");
                    b.bind_text(fts_trigrams(&term, None)).push(")");
                }
                let pattern = format!("%{}%", like_escape(&term));
                b.push(" AND (");
                for (i, col) in [
                    "lower(s.id)",
                    "s.iccid",
                    "s.msisdn",
                    "s.imsi",
                    "s.imei",
                    "s.eid",
                ]
                .iter()
                .enumerate()
                {
                    if i > 0 {
                        b.push(" OR ");
                    }
                    b.push(col)
                        .push(" LIKE ")
                        .bind_text(pattern.clone())
                        .push(" ESCAPE '\\'");
                }
                b.push(")");
            }
            Dialect::Postgres => {
                b.push(" AND s.search_text LIKE ");
                b.bind_text(format!("%{}%", like_escape(&term)))
                    .push(" ESCAPE '\\'");
            }
        }
    }
}

#[derive(sqlx::FromRow)]
struct CountedRow {
    #[sqlx(flatten)]
    sim: SimRow,
    total_count: i64,
}

/// One page of `tenant_id`'s live SIMs matching `q`, and how many match in all.
///
/// With a substring filter the expensive part is the trigram lookup, so one statement serves
/// both the page and the total (`count(*) OVER ()`) and the lookup runs once. Without one,
/// counting through an index and reading the page in index order is cheaper than a window
/// over every row, so those are two statements.
pub async fn list(
    db: &Db,
    integrity: &IntegrityKey,
    tenant_id: &TenantId,
    q: &SimListQuery,
) -> StoreResult<(Vec<Sim>, u64)> {
    let dialect = db.dialect();
    let windowed = q.search.is_some() || q.iccid.is_some() || q.msisdn.is_some();

    let mut page = SqlBuilder::default();
    page.push("SELECT ");
    page.push(&SQL.prefixed);
    page.push(&link_columns("s"));
    if windowed {
        page.push(", count(*) OVER () AS total_count");
    }
    push_filters(&mut page, dialect, tenant_id, q);
    let dir = if q.descending { "DESC" } else { "ASC" };
    let col = q.sort_by.column();
    page.push(&format!(
        " ORDER BY s.{col} {dir} NULLS LAST, s.id {dir} LIMIT "
    ));
    page.bind(Bind::Int(i64::from(q.page_size)));
    page.push(" OFFSET ");
    page.bind(Bind::Int(i64::try_from(q.offset()).unwrap_or(i64::MAX)));
    let page_sql = sqlx::AssertSqlSafe(page.sql);

    let (rows, total): (Vec<SimRow>, Option<i64>) = if windowed {
        let rows: Vec<CountedRow> = on_pool!(db, p => bind_all!(sqlx::query_as(page_sql), &page.binds)
            .fetch_all(p)
            .await)?;
        let total = rows.first().map(|r| r.total_count);
        (rows.into_iter().map(|r| r.sim).collect(), total)
    } else {
        let rows = on_pool!(db, p => bind_all!(sqlx::query_as(page_sql), &page.binds)
            .fetch_all(p)
            .await)?;
        (rows, None)
    };
    // A page past the end (or an unwindowed query) still needs the total.
    let total = match total {
        Some(t) => t,
        None if windowed && q.offset() == 0 => 0,
        None => count_matching(db, tenant_id, q).await?,
    };
    let sims = rows
        .into_iter()
        .map(|r| r.into_sim(integrity))
        .collect::<StoreResult<Vec<_>>>()?;
    Ok((sims, u64::try_from(total).unwrap_or(0)))
}

/// How many of `tenant_id`'s live SIMs match `q`'s filters (its paging and sorting aside).
async fn count_matching(db: &Db, tenant_id: &TenantId, q: &SimListQuery) -> StoreResult<i64> {
    let mut count = SqlBuilder::default();
    count.push("SELECT count(*)");
    push_filters(&mut count, db.dialect(), tenant_id, q);
    let count_sql = sqlx::AssertSqlSafe(count.sql);
    Ok(
        on_pool!(db, p => bind_all!(sqlx::query_scalar(count_sql), &count.binds)
        .fetch_one(p)
        .await)?,
    )
}

/// [`count_matching`], for an export's record.
pub async fn count(db: &Db, tenant_id: &TenantId, q: &SimListQuery) -> StoreResult<u64> {
    Ok(u64::try_from(count_matching(db, tenant_id, q).await?).unwrap_or(0))
}

/// Where an export stopped: the last SIM sent, by its place in the export order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportCursor {
    created_at: i64,
    id: String,
}

impl ExportCursor {
    /// The place of `sim` in the export order.
    pub fn after(sim: &Sim) -> Self {
        Self {
            created_at: sim.created_at,
            id: sim.id.to_string(),
        }
    }
}

/// Up to `limit` of `tenant_id`'s live SIMs matching `q`'s filters, in the export order
/// (oldest first: `created_at`, then `id`), from just after `after`. Keyset paging over the
/// `(tenant_id, created_at, id)` index: each page costs the same however deep the export is,
/// and no SIM is sent twice, however it changes meanwhile (its creation time never moves).
/// Each row is checked like any other read.
pub async fn export_page(
    db: &Db,
    integrity: &IntegrityKey,
    tenant_id: &TenantId,
    q: &SimListQuery,
    after: Option<&ExportCursor>,
    limit: u32,
) -> StoreResult<Vec<Sim>> {
    let mut page = SqlBuilder::default();
    page.push("SELECT ");
    page.push(&SQL.prefixed);
    page.push(&link_columns("s"));
    push_filters(&mut page, db.dialect(), tenant_id, q);
    if let Some(c) = after {
        page.push(" AND (s.created_at > ")
            .bind(Bind::Int(c.created_at))
            .push(" OR (s.created_at = ")
            .bind(Bind::Int(c.created_at))
            .push(" AND s.id > ")
            .bind_text(c.id.clone())
            .push("))");
    }
    page.push(" ORDER BY s.created_at ASC, s.id ASC LIMIT ");
    page.bind(Bind::Int(i64::from(limit)));
    let sql = sqlx::AssertSqlSafe(page.sql);
    let rows: Vec<SimRow> = on_pool!(db, p => bind_all!(sqlx::query_as(sql), &page.binds)
        .fetch_all(p)
        .await)?;
    rows.into_iter().map(|r| r.into_sim(integrity)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fts_queries_use_each_distinct_trigram_once_and_quote_them() {
        assert_eq!(fts_trigrams("33333", None), "\"333\"");
        assert_eq!(
            fts_trigrams("12345", Some("iccid")),
            "iccid : \"123\" AND iccid : \"234\" AND iccid : \"345\""
        );
        assert_eq!(fts_trigrams("a\"bc", None), "\"a\"\"b\" AND \"\"\"bc\"");
        assert_eq!(fts_trigrams("ab", None), "");
    }
}
