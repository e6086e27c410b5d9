//! Vendor batch files for `simvault import`: CSV with a header row, or JSON Lines.
//!
//! Each row becomes the JSON text of a `POST /v1/sims` body (held in zeroizing memory) and is
//! validated exactly like one; a bad row fails that row only, with its line number. An `eki`
//! column (Ki encrypted under a transport key) is decrypted here, in memory.
//!
//! Every buffer of ours that holds a row's plaintext is wiped: the file (zeroizing), the one
//! CSV record reused for every row (overwritten with zeros after each, and sized up front so
//! that it does not move while it holds a row), and the JSON built from it (zeroizing, sized
//! up front so that it never reallocates). What cannot be wiped: the csv reader's own input
//! buffer (private to the crate: at most [`CSV_READ_BUFFER`] bytes of raw file, freed when
//! the file is read), a record longer than [`RECORD_BYTES`] (its buffer grows, leaving the
//! old one unwiped), and whatever the JSON parser copies while decoding an escaped string.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};
use zeroize::Zeroizing;

use crate::domain::{LuhnPolicy, SecretField, SimInput, ValidationErrors, eki};
use crate::service::tasks::ImportRow;

/// The columns a CSV may name.
pub const COLUMNS: [&str; 16] = [
    "iccid",
    "imsi",
    "msisdn",
    "ki",
    "eki",
    "opc",
    "pin1",
    "puk1",
    "pin2",
    "puk2",
    "activation_code",
    "sim_type",
    "eid",
    "communication_plan",
    "rate_plan",
    "mno_integration_id",
];

/// The csv reader's input buffer, which cannot be wiped: kept small (a few rows).
pub const CSV_READ_BUFFER: usize = 4 * 1024;
/// The record buffer reserved up front: a SIM row is a few hundred bytes.
pub const RECORD_BYTES: usize = 16 * 1024;
/// Fields reserved up front (every column, with room).
const RECORD_FIELDS: usize = 2 * COLUMNS.len();

/// A file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// From `--format`, else the file name (`.jsonl`, `.ndjson`: JSON Lines; otherwise CSV).
    pub fn choose(flag: Option<&str>, path: &Path) -> Format {
        match flag {
            Some("jsonl") => Format::JsonLines,
            Some(_) => Format::Csv,
            None => match path.extension().and_then(|e| e.to_str()) {
                Some("jsonl" | "ndjson") => Format::JsonLines,
                _ => Format::Csv,
            },
        }
    }
}

/// Reads every row of `path`. A problem with the file as a whole (unreadable, a bad header,
/// an `eki` column without a transport key) is an error before anything is imported.
pub fn read_rows(
    path: &Path,
    format: Format,
    transport_key: Option<&[u8; 16]>,
    luhn: LuhnPolicy,
) -> anyhow::Result<Vec<ImportRow>> {
    let bytes =
        Zeroizing::new(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?);
    match format {
        Format::JsonLines => Ok(json_lines(&bytes, luhn)),
        Format::Csv => csv_rows(&bytes, transport_key, luhn),
    }
}

fn json_lines(bytes: &[u8], luhn: LuhnPolicy) -> Vec<ImportRow> {
    bytes
        .split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .map(|(i, line)| ImportRow {
            line: i64::try_from(i).unwrap_or(i64::MAX) + 1,
            sim: SimInput::parse(line, luhn),
        })
        .collect()
}

fn csv_rows(
    bytes: &[u8],
    transport_key: Option<&[u8; 16]>,
    luhn: LuhnPolicy,
) -> anyhow::Result<Vec<ImportRow>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .trim(csv::Trim::All)
        .buffer_capacity(CSV_READ_BUFFER)
        .from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .context("reading the CSV header")?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    for (i, name) in header.iter().enumerate() {
        if !COLUMNS.contains(&name.as_str()) {
            bail!(
                "unknown column {name:?} in the header; columns are {}",
                COLUMNS.join(", ")
            );
        }
        if header[..i].contains(name) {
            bail!("column {name:?} appears twice in the header");
        }
    }
    if !header.iter().any(|h| h == "iccid") {
        bail!("the header must name an iccid column");
    }
    if header.iter().any(|h| h == "eki") && transport_key.is_none() {
        bail!(
            "the file has an eki column: give the transport key with --transport-key-file or SIMVAULT_TRANSPORT_KEY"
        );
    }
    let mut rows = Vec::new();
    let mut record = csv::ByteRecord::with_capacity(RECORD_BYTES, RECORD_FIELDS);
    loop {
        let line = reader.position().line() + 1;
        let line = i64::try_from(line).unwrap_or(i64::MAX);
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let sim = csv_row(&header, &record, transport_key)
                    .and_then(|json| SimInput::parse(&json, luhn));
                let line = i64::try_from(record.position().map_or(0, |p| p.line())).unwrap_or(line);
                wipe(&mut record);
                rows.push(ImportRow { line, sim });
            }
            Err(e) => {
                wipe(&mut record);
                let at = e
                    .position()
                    .and_then(|p| i64::try_from(p.line()).ok())
                    .unwrap_or(line);
                let detail = match e.kind() {
                    csv::ErrorKind::UnequalLengths { .. } => {
                        "the row does not have as many fields as the header"
                    }
                    csv::ErrorKind::Utf8 { .. } => "the row is not valid UTF-8",
                    _ => "the row could not be read",
                };
                rows.push(ImportRow {
                    line: at,
                    sim: Err(ValidationErrors::single_pointer("", detail)),
                });
            }
        }
    }
    Ok(rows)
}

/// Overwrites every byte the record holds with zeros (`clear` alone only forgets them). The
/// zeros fit in the buffer already there, so nothing moves; the next read clears them.
fn wipe(record: &mut csv::ByteRecord) {
    let used = record.as_slice().len();
    record.clear();
    record.push_field(&vec![0; used]);
}

/// The most bytes the JSON of a row can take: the plain fields' object, and each secret as
/// `"name":"value"` with every character escaped (`\u00XX`, six bytes) and a separator.
fn json_bound(object: &[u8], secrets: &[(&str, Zeroizing<String>)]) -> usize {
    let secrets: usize = secrets
        .iter()
        .map(|(name, value)| name.len() + 4 + 6 * value.len())
        .sum();
    object.len() + "\"secrets\":{}},".len() + secrets
}

/// One CSV record as the JSON text of a SIM body (empty cells left out).
fn csv_row(
    header: &[String],
    record: &csv::ByteRecord,
    transport_key: Option<&[u8; 16]>,
) -> Result<Zeroizing<Vec<u8>>, ValidationErrors> {
    let mut plain = serde_json::Map::new();
    let mut secrets: Vec<(&str, Zeroizing<String>)> = Vec::new();
    let mut errs = ValidationErrors::new();
    for (name, cell) in header.iter().zip(record.iter()) {
        let Ok(text) = std::str::from_utf8(cell) else {
            errs.pointer(format!("/{name}"), "is not valid UTF-8");
            continue;
        };
        if text.is_empty() {
            continue;
        }
        if name == "eki" {
            match transport_key.map(|k| eki::decrypt_ki(k, text)) {
                Some(Ok(ki)) => secrets.push(("ki", ki)),
                Some(Err(e)) => errs.pointer("/eki", e.to_string()),
                None => errs.pointer("/eki", "no transport key"),
            }
        } else if name.parse::<SecretField>().is_ok() {
            secrets.push((name.as_str(), Zeroizing::new(text.to_owned())));
        } else {
            plain.insert(name.clone(), serde_json::Value::String(text.to_owned()));
        }
    }
    if secrets.iter().filter(|(n, _)| *n == "ki").count() > 1 {
        errs.pointer("/eki", "give ki or eki, not both");
    }
    errs.finish(())?;
    // Written by hand into zeroizing memory: the secrets never sit in a serde_json::Value.
    let object = serde_json::to_vec(&plain)
        .map_err(|_| ValidationErrors::single_pointer("", "the row could not be encoded"))?;
    let mut out = Zeroizing::new(Vec::with_capacity(json_bound(&object, &secrets)));
    if secrets.is_empty() {
        out.extend_from_slice(&object);
        return Ok(out);
    }
    out.extend_from_slice(&object[..object.len() - 1]);
    if !plain.is_empty() {
        out.push(b',');
    }
    out.extend_from_slice(b"\"secrets\":{");
    for (i, (name, value)) in secrets.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let _ = write!(out, "\"{name}\":");
        let _ = serde_json::to_writer(&mut *out, value.as_str());
    }
    out.extend_from_slice(b"}}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(text: &str, key: Option<&[u8; 16]>) -> anyhow::Result<Vec<ImportRow>> {
        csv_rows(text.as_bytes(), key, LuhnPolicy::Relaxed)
    }

    #[test]
    fn header_problems_refuse_the_file() {
        assert!(rows("iccid,colour\n", None).is_err());
        assert!(rows("iccid,imsi,imsi\n", None).is_err());
        assert!(rows("imsi\n", None).is_err());
        assert!(rows("iccid,eki\n", None).is_err());
    }

    #[test]
    fn a_wiped_record_holds_only_zeros() {
        let mut record = csv::ByteRecord::with_capacity(RECORD_BYTES, RECORD_FIELDS);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader("89445000000000000018,1234,0f1e2d3c4b5a69788796a5b4c3d2e1f0\n".as_bytes());
        assert!(reader.read_byte_record(&mut record).unwrap());
        let used = record.as_slice().len();
        assert!(used > 40);
        wipe(&mut record);
        assert_eq!(record.as_slice(), vec![0; used].as_slice());
    }

    #[test]
    fn the_row_json_never_outgrows_its_buffer() {
        // Every character of the secrets escaped: the worst case of the bound.
        let nasty = "\u{1}\u{2}\"\\\u{1f}".repeat(20);
        let header: Vec<String> = ["iccid", "imsi", "pin1", "ki"].map(str::to_owned).into();
        let mut record = csv::ByteRecord::new();
        for cell in [
            "89445000000000000018",
            "234150000000001",
            nasty.as_str(),
            "x",
        ] {
            record.push_field(cell.as_bytes());
        }
        let out = csv_row(&header, &record, None).unwrap();
        let reserved = out.capacity();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(value["secrets"]["pin1"], nasty.as_str());
        let object = br#"{"iccid":"89445000000000000018","imsi":"234150000000001"}"#;
        let secrets = [
            ("pin1", Zeroizing::new(nasty.clone())),
            ("ki", Zeroizing::new("x".to_owned())),
        ];
        assert!(out.len() <= json_bound(object, &secrets));
        assert!(
            reserved >= json_bound(object, &secrets),
            "reserved up front"
        );
    }

    #[test]
    fn each_row_stands_alone() {
        let text = "iccid,imsi,pin1\n\
                    89445000000000000018,234150000000001,1234\n\
                    12,234150000000002,1234\n\
                    89445000000000000026,234150000000003\n";
        let rows = rows(text, None).unwrap();
        assert_eq!(rows.len(), 3);
        let new = rows[0].sim.as_ref().unwrap();
        assert_eq!(new.secrets.len(), 1);
        assert_eq!(rows[1].line, 3);
        let e = rows[1].sim.as_ref().unwrap_err();
        assert!(format!("{e:?}").contains("/iccid"));
        // A short row fails on its own line.
        assert_eq!(rows[2].line, 4);
        assert!(rows[2].sim.is_err());
    }
}
