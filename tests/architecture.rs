//! The layering, checked on the source: a path in a layer that names a module or crate the
//! layer must not reach fails the test, naming the file and line. The compiler holds most of
//! the line (`store` and `vault` are private to the crate, the use cases' fields to
//! `service`); this holds the rest (what is visible inside the crate). It also holds the size
//! of a source file: one over [`MAX_LINES`] is split by responsibility.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

/// A layer and the names it must not use as a path segment.
struct Rule {
    dir: &'static str,
    forbidden: &'static [&'static str],
}

const RULES: &[Rule] = &[
    // The HTTP layer reaches the store and the vault only through the use cases.
    Rule {
        dir: "api",
        forbidden: &["store", "vault"],
    },
    // The web console is a door like the API: the use cases only.
    Rule {
        dir: "console",
        forbidden: &["store", "vault"],
    },
    // The use cases know nothing of HTTP: the adapters do.
    Rule {
        dir: "service",
        forbidden: &["axum", "reqwest", "hyper"],
    },
    // The domain is pure: no SQL, no HTTP, no OpenAPI.
    Rule {
        dir: "domain",
        forbidden: &["sqlx", "axum", "utoipa", "reqwest"],
    },
];

#[test]
fn layers_name_only_what_they_may() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for rule in RULES {
        for file in rust_files(&src.join(rule.dir)) {
            let shown = file
                .strip_prefix(&src)
                .unwrap_or(&file)
                .display()
                .to_string();
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{shown}: {e}"));
            for (line, name) in forbidden_paths(&text, rule.forbidden) {
                found.push(format!("src/{shown}:{line}: names `{name}`"));
            }
        }
    }
    assert!(found.is_empty(), "layering broken:\n{}", found.join("\n"));
}

/// The most lines a source file under `src/` may have.
const MAX_LINES: usize = 600;

#[test]
fn no_source_file_is_over_the_line_limit() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    for file in rust_files(&src) {
        let shown = file
            .strip_prefix(&src)
            .unwrap_or(&file)
            .to_string_lossy()
            .replace('\\', "/");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let lines = text.lines().count();
        if lines > MAX_LINES {
            found.push(format!("src/{shown}: {lines} lines"));
        }
    }
    assert!(
        found.is_empty(),
        "source files over {MAX_LINES} lines (split them by responsibility):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_checker_sees_paths_and_skips_comments_and_text() {
    let code = r#"
use crate::{audit, store};
use super::super::vault::Keyring;
// crate::store::sims in a comment
/* a block comment naming store::x */
let s = "store::x in a string";
fn f(store: &str) -> usize { store.len() }
let k: crate::store::sims::SimKey = todo();
let c = 'x'; fn g<'a>(v: &'a str) {}
let r = r"vault::x";
"#;
    assert_eq!(
        forbidden_paths(code, &["store", "vault"]),
        vec![(2, "store"), (3, "vault"), (8, "store")]
    );
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        let entries = std::fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display()));
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Where `text` names one of `names` as a path segment (`a::name`, `name::b`, or anywhere in a
/// `use` declaration), comments and literals aside: `(line, name)`.
fn forbidden_paths<'n>(text: &str, names: &[&'n str]) -> Vec<(usize, &'n str)> {
    let code = blank_comments_and_literals(text);
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut in_use = false;
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        if c == b';' {
            in_use = false;
        }
        if !(c.is_ascii_alphabetic() || c == b'_') {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
            i += 1;
        }
        let word = &code[start..i];
        if word == "use" {
            in_use = true;
            continue;
        }
        let Some(name) = names.iter().find(|n| **n == word) else {
            continue;
        };
        let before = code[..start].trim_end().ends_with("::");
        let after = code[i..].trim_start().starts_with("::");
        if in_use || before || after {
            let line = code[..start].matches('\n').count() + 1;
            found.push((line, *name));
        }
    }
    found
}

/// `text` with every comment and string or character literal replaced by spaces (newlines
/// kept, so lines still count).
fn blank_comments_and_literals(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let blank = |out: &mut Vec<u8>, from: usize, to: usize| {
        for c in &mut out[from..to] {
            if *c != b'\n' {
                *c = b' ';
            }
        }
    };
    let mut i = 0;
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if rest.starts_with(b"/*") {
            let (mut depth, mut j) = (0usize, i);
            while j < b.len() {
                if b[j..].starts_with(b"/*") {
                    depth += 1;
                    j += 2;
                } else if b[j..].starts_with(b"*/") {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if let Some(hashes) = raw_string_start(b, i) {
            // r"…", r#"…"#, br"…"
            let open = b[i..]
                .iter()
                .position(|&c| c == b'"')
                .map_or(b.len(), |p| i + p);
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let end = b[open + 1..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map_or(b.len(), |p| open + 1 + p + close.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            blank(&mut out, i, end);
            i = end;
        } else if b[i] == b'\'' {
            // A character literal ('x', '\n', '\u{..}'), or a lifetime ('a) left alone.
            let j = if b.get(i + 1) == Some(&b'\\') {
                b.get(i + 3..)
                    .and_then(|r| r.iter().position(|&c| c == b'\''))
                    .map(|p| i + 3 + p)
            } else {
                let width = text[i + 1..].chars().next().map_or(1, char::len_utf8);
                (b.get(i + 1 + width) == Some(&b'\'')).then_some(i + 1 + width)
            };
            match j {
                Some(j) => {
                    blank(&mut out, i, j + 1);
                    i = j + 1;
                }
                None => i += 1,
            }
        } else if is_ident(b[i]) {
            // Skip a whole identifier, so that the `r` or `b` ending one starts no literal.
            while i < b.len() && is_ident(b[i]) {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// At `i`, a raw string's start (`r"`, `r#"`, `br"`…): how many `#` it has.
fn raw_string_start(b: &[u8], i: usize) -> Option<usize> {
    if i > 0 && is_ident(b[i - 1]) {
        return None;
    }
    let mut j = i;
    if b.get(j) == Some(&b'b') {
        j += 1;
    }
    if b.get(j) != Some(&b'r') {
        return None;
    }
    j += 1;
    let hashes = b[j..].iter().take_while(|&&c| c == b'#').count();
    (b.get(j + hashes) == Some(&b'"')).then_some(hashes)
}
