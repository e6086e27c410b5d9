//! Reading rows straight into the domain values that [`crate::domain::audit`] and
//! [`crate::domain::event`] define (the domain knows nothing of SQL, so their `FromRow` lives
//! here).

use crate::domain::audit::AuditRow;
use crate::domain::event::EventRow;

/// `FromRow` for a struct of text and integer columns (optional or not), by field name.
macro_rules! from_row {
    ($ty:ty { $($field:ident),+ $(,)? }) => {
        impl<'r, R: sqlx::Row> sqlx::FromRow<'r, R> for $ty
        where
            &'r str: sqlx::ColumnIndex<R>,
            String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
        {
            fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
                Ok(Self { $($field: row.try_get(stringify!($field))?,)+ })
            }
        }
    };
}

from_row!(AuditRow {
    tenant_id,
    seq,
    id,
    occurred_at,
    action,
    outcome,
    subject,
    sim_id,
    iccid,
    record,
    prev_hash,
    hash,
});

from_row!(EventRow {
    id,
    tenant_id,
    event_type,
    sim_id,
    payload,
    occurred_at,
});
