//! Exports as people and other systems read them: the formats, the CSV cell rule every CSV
//! export follows, and the SIM inventory's rendering (the audit log's is in
//! [`crate::audit::export`]). Shared by the HTTP exports and the CLI, so that a file made
//! either way is the same file.
//!
//! Must never: render a secret value, or a PIN/PUK counter, into an inventory export; write a
//! CSV cell without [`csv_cell::defuse`].

pub mod csv_cell;
#[allow(dead_code)] // never built: they only describe shapes
pub mod schema;
pub mod sims;

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object a line.
    Ndjson,
    /// RFC 4180, a header line first.
    Csv,
}

impl ExportFormat {
    /// `ndjson` or `csv`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ndjson" => Some(ExportFormat::Ndjson),
            "csv" => Some(ExportFormat::Csv),
            _ => None,
        }
    }

    /// The media type of a file in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "application/x-ndjson",
            ExportFormat::Csv => "text/csv; charset=utf-8",
        }
    }

    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Ndjson => "ndjson",
            ExportFormat::Csv => "csv",
        }
    }
}

/// A row that could not be rendered (the cause is for the log only).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("internal error: {0}")]
pub struct RenderError(pub String);

/// The header line of a CSV export with these columns.
pub(crate) fn csv_header_line(columns: &[&str]) -> Vec<u8> {
    let mut line = columns.join(",").into_bytes();
    line.push(b'\n');
    line
}

/// Writes one CSV record, each cell defused first: the one way an export writes a CSV row.
pub(crate) fn csv_record<W: std::io::Write>(
    w: &mut csv::Writer<W>,
    cells: &[String],
) -> Result<(), RenderError> {
    let safe: Vec<_> = cells.iter().map(|c| csv_cell::defuse(c)).collect();
    w.write_record(safe.iter().map(|c| c.as_bytes()))
        .map_err(|e| RenderError(e.to_string()))
}
