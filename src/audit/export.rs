//! The audit log as reviewers read it: one record's view (the `/v1/audit/events` item and an
//! export line alike) and the NDJSON and CSV renderings of an export, shared by the HTTP
//! export and `simvault audit export`.

use serde::Serialize;
use utoipa::ToSchema;

use super::AuditRecord;
use crate::domain::audit::AuditRow;

pub use crate::export::{ExportFormat, RenderError};

/// Who acted.
#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    pub subject: String,
    pub roles: Vec<String>,
    /// `mtls`, `jwt`, or `local` (the CLI or a background worker).
    pub auth_method: String,
    /// Certificate SHA-256 fingerprint or token id.
    pub credential_id: Option<String>,
    pub client_addr: Option<String>,
}

/// One audit record. Secret fields are named, never valued.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEventView {
    /// Position in the tenant's chain, from 1.
    pub seq: i64,
    pub id: String,
    /// RFC 3339, microsecond precision.
    pub occurred_at: String,
    pub actor: ActorView,
    pub request_id: Option<String>,
    pub action: String,
    pub sim_id: Option<String>,
    pub iccid: Option<String>,
    /// Secret field names involved.
    pub fields: Vec<String>,
    /// `allowed`, `denied`, `failed`, `completed`, or an operation's own outcome.
    pub outcome: String,
    pub reason: Option<String>,
    /// The policies that decided.
    pub policy_ids: Vec<String>,
    /// SHA-256 over `prev_hash` and the record's canonical text.
    pub hash: String,
    pub prev_hash: String,
}

impl TryFrom<AuditRow> for AuditEventView {
    type Error = RenderError;

    fn try_from(row: AuditRow) -> Result<Self, RenderError> {
        // The record is what the chain hashes; a row whose search columns disagree with it
        // was altered to move it in or out of filters, and is not shown as if it were whole.
        let r: AuditRecord = super::parse_row(&row).ok_or_else(|| {
            tracing::error!(
                seq = row.seq,
                "audit record unreadable or its search columns disagree with it"
            );
            RenderError("audit record failed its integrity check".into())
        })?;
        Ok(AuditEventView {
            seq: row.seq,
            id: r.id,
            occurred_at: precise_timestamp(r.occurred_at),
            actor: ActorView {
                subject: r.subject,
                roles: r.roles,
                auth_method: r.auth_method,
                credential_id: r.credential,
                client_addr: r.client_addr,
            },
            request_id: r.request_id,
            action: r.action,
            sim_id: r.sim_id,
            iccid: r.iccid,
            fields: r.fields,
            outcome: r.outcome.as_str().to_owned(),
            reason: r.reason,
            policy_ids: r.policy_ids,
            hash: row.hash,
            prev_hash: row.prev_hash,
        })
    }
}

/// RFC 3339 UTC with the record's full (microsecond) precision.
fn precise_timestamp(us: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

const CSV_HEADER: [&str; 18] = [
    "seq",
    "id",
    "occurred_at",
    "subject",
    "roles",
    "auth_method",
    "credential_id",
    "client_addr",
    "request_id",
    "action",
    "sim_id",
    "iccid",
    "fields",
    "outcome",
    "reason",
    "policy_ids",
    "hash",
    "prev_hash",
];

/// The CSV header line.
pub fn csv_header() -> Vec<u8> {
    crate::export::csv_header_line(&CSV_HEADER)
}

/// Renders rows in `format` (CSV without its header).
pub fn render(rows: Vec<AuditRow>, format: ExportFormat) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::with_capacity(rows.len() * 512);
    match format {
        ExportFormat::Ndjson => {
            for row in rows {
                serde_json::to_writer(&mut out, &AuditEventView::try_from(row)?)
                    .map_err(|e| RenderError(e.to_string()))?;
                out.push(b'\n');
            }
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            for row in rows {
                let v = AuditEventView::try_from(row)?;
                let opt = |o: &Option<String>| o.clone().unwrap_or_default();
                let cells = [
                    v.seq.to_string(),
                    v.id,
                    v.occurred_at,
                    v.actor.subject,
                    v.actor.roles.join(";"),
                    v.actor.auth_method,
                    opt(&v.actor.credential_id),
                    opt(&v.actor.client_addr),
                    opt(&v.request_id),
                    v.action,
                    opt(&v.sim_id),
                    opt(&v.iccid),
                    v.fields.join(";"),
                    v.outcome,
                    opt(&v.reason),
                    v.policy_ids.join(";"),
                    v.hash,
                    v.prev_hash,
                ];
                crate::export::csv_record(&mut w, &cells)?;
            }
            w.flush().map_err(|e| RenderError(e.to_string()))?;
        }
    }
    Ok(out)
}
/// An export's body from its pages as they arrive: the header line (CSV), then each page
/// rendered. A failure mid-way ends the body abruptly, so that a cut-off export is never taken
/// for a whole one. Served by the API and by the console alike.
pub fn body<E: std::fmt::Display>(
    pages: tokio::sync::mpsc::Receiver<Result<Vec<AuditRow>, E>>,
    format: ExportFormat,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    let header = match format {
        ExportFormat::Csv => Some(Ok(bytes::Bytes::from(csv_header()))),
        ExportFormat::Ndjson => None,
    };
    let rows = futures_util::stream::unfold(pages, move |mut pages| async move {
        let chunk = match pages.recv().await? {
            Ok(rows) => render(rows, format).map_err(|e| {
                tracing::error!(error = %e, "audit export failed mid-way");
                std::io::Error::other("audit export failed")
            }),
            Err(e) => {
                tracing::error!(error = %e, "audit export failed mid-way");
                Err(std::io::Error::other("audit export failed"))
            }
        };
        Some((chunk.map(bytes::Bytes::from), pages))
    });
    futures_util::StreamExt::chain(futures_util::stream::iter(header), rows)
}
