//! CSV cells that a spreadsheet will not run. Every CSV export (the audit log and the SIM
//! inventory) passes each cell through [`defuse`]: a cell an attacker filled (a reason,
//! a subject, a tag) must never become a formula in the reviewer's spreadsheet (CSV injection).

use std::borrow::Cow;

/// `cell`, with a leading `'` when it starts with a character a spreadsheet reads as the
/// start of a formula (`=`, `+`, `-`, `@`) or that some strip before reading one (tab, CR).
/// The `'` makes the cell text; every other cell is returned as it is.
pub fn defuse(cell: &str) -> Cow<'_, str> {
    match cell.as_bytes().first() {
        Some(b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r') => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_are_quoted() {
        for (cell, safe) in [
            ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
            ("+1+1", "'+1+1"),
            ("-2+3", "'-2+3"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
        ] {
            assert_eq!(defuse(cell), safe, "{cell:?}");
        }
    }

    #[test]
    fn other_cells_are_untouched() {
        for cell in [
            "",
            "ticket 42",
            "a=b",
            "2026-01-15T10:30:00Z",
            "'=already",
            " =x",
        ] {
            assert!(
                matches!(defuse(cell), Cow::Borrowed(c) if c == cell),
                "{cell:?}"
            );
        }
    }
}
