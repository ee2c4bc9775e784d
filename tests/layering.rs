//! Guards the crate's layers (the map is in `src/lib.rs`): dependencies point
//! down, the protocol core has no I/O, and only the command line reaches the
//! diagnosis and load-generator tools.
//!
//! It reads the source as text: every `crate::NAME`, `crate::{NAME, …}` and
//! `super::…` path outside comments is resolved to the top-level module it
//! names, and checked against the rules below. Test code (`tests.rs`, the
//! `#[cfg(test)] mod tests` at a file's end) may use any module.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Paths the pure core (`src/proto/`) must never name: sockets, files,
/// threads, clocks (a `Duration` value is fine), the event loop, TLS or
/// channels, so that it stays fuzzable and benchable.
const PROTO_FORBIDDEN_PATHS: &[&str] = &[
    "std::net",
    "std::fs",
    "std::thread",
    "SystemTime",
    "Instant",
    "std::process",
    "std::sync::mpsc",
    "std::env",
    "mio::",
    "rustls",
    "crossbeam",
    "parking_lot",
];

/// Which top-level modules a module may not import.
const RULES: &[(&str, &[&str])] = &[
    // The core imports nothing else of the crate (checked separately: every
    // other module is forbidden).
    ("queue", &["delivery", "runtime", "cli", "check", "loadgen"]),
    ("delivery", &["runtime", "cli", "check", "loadgen"]),
    (
        "directory",
        &["runtime", "delivery", "queue", "cli", "check", "loadgen"],
    ),
    (
        "auth",
        &[
            "runtime",
            "delivery",
            "queue",
            "directory",
            "cli",
            "check",
            "loadgen",
        ],
    ),
    (
        "tls",
        &["runtime", "delivery", "queue", "cli", "check", "loadgen"],
    ),
    (
        "config",
        &[
            "runtime",
            "queue",
            "directory",
            "auth",
            "cli",
            "check",
            "loadgen",
        ],
    ),
    ("runtime", &["cli", "check", "loadgen"]),
    // The mail log's wording: typed data from `proto` and `queue` in, lines out.
    (
        "maillog",
        &[
            "runtime",
            "delivery",
            "cli",
            "check",
            "loadgen",
            "directory",
            "auth",
            "tls",
            "config",
        ],
    ),
    // Counters: fed by everyone, imports no one.
    (
        "metrics",
        &[
            "runtime",
            "delivery",
            "queue",
            "directory",
            "auth",
            "tls",
            "config",
            "maillog",
            "proto",
            "cli",
            "check",
            "loadgen",
        ],
    ),
    // A queue for worker threads: used by the spool and delivery, imports no one.
    (
        "work_queue",
        &[
            "runtime",
            "delivery",
            "queue",
            "directory",
            "auth",
            "tls",
            "config",
            "maillog",
            "metrics",
            "proto",
            "cli",
            "check",
            "loadgen",
        ],
    ),
    ("check", &["runtime", "cli", "loadgen"]),
    // DKIM: pure signing plus its key files; the delivery threads use it.
    (
        "dkim",
        &[
            "runtime",
            "delivery",
            "queue",
            "directory",
            "auth",
            "tls",
            "config",
            "maillog",
            "cli",
            "check",
            "loadgen",
            "net",
        ],
    ),
    ("loadgen", &["runtime", "cli", "check"]),
];

/// Modules that only `cli` may import.
const CLI_ONLY: &[&str] = &["check", "loadgen"];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file below `dir`, depth first.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The module path of a file: `src/delivery/manager/attempt.rs` is
/// `delivery::manager::attempt`, `src/delivery/mod.rs` is `delivery`.
fn module_path(file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The code of a line, without its `//` comment.
fn code(line: &str) -> &str {
    line.split("//").next().unwrap_or("")
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifiers at the top level of a `{a::x, b, c::{…}}` group that starts
/// at `text[0] == '{'`.
fn group_heads(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expect_head = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'{' => {
                depth += 1;
                expect_head = depth == 1;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            b',' if depth == 1 => expect_head = true,
            b if expect_head && is_ident(b) => {
                let start = i;
                while i < bytes.len() && is_ident(bytes[i]) {
                    i += 1;
                }
                heads.push(text[start..i].to_string());
                expect_head = false;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    heads
}

/// The top-level modules of the crate that `text` (a file's code, comments
/// removed) names, given the file's module path.
fn imported_modules(text: &str, here: &[String]) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !text.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let at_word_start = i == 0 || !is_ident(bytes[i - 1]) && bytes[i - 1] != b':';
        let rest = &text[i..];
        if at_word_start && rest.starts_with("crate::") {
            let after = &rest["crate::".len()..];
            if after.starts_with('{') {
                found.extend(group_heads(after));
            } else {
                found.extend(first_ident(after));
            }
            i += "crate::".len();
            continue;
        }
        if at_word_start && rest.starts_with("super::") {
            let mut ups = 0;
            let mut after = rest;
            while let Some(next) = after.strip_prefix("super::") {
                ups += 1;
                after = next;
            }
            if ups < here.len() {
                found.insert(here[0].clone());
            } else if after.starts_with('{') {
                found.extend(group_heads(after));
            } else {
                found.extend(first_ident(after));
            }
            i += rest.len() - after.len();
            continue;
        }
        i += 1;
    }
    found
}

fn first_ident(text: &str) -> Option<String> {
    let end = text
        .bytes()
        .position(|b| !is_ident(b))
        .unwrap_or(text.len());
    (end > 0).then(|| text[..end].to_string())
}

/// A file's text up to its `#[cfg(test)] mod tests`: tests may use any
/// module (fixtures, other layers' types) without making the code depend on it.
fn production_code(text: &str) -> &str {
    let mut offset = 0;
    let mut lines = text.split_inclusive('\n').peekable();
    while let Some(line) = lines.next() {
        let is_test_module = line.trim() == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|next| next.trim_start().starts_with("mod "));
        if is_test_module {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// For every file outside the tests: its top-level module and the top-level modules it imports.
fn imports() -> Vec<(PathBuf, String, BTreeSet<String>)> {
    rust_files(&src())
        .into_iter()
        .filter_map(|file| {
            let here = module_path(&file);
            let top = here.first()?.clone();
            let name = file.file_name()?.to_str()?;
            if name == "tests.rs" || name == "test_fixtures.rs" {
                return None;
            }
            let text: String = production_code(&fs::read_to_string(&file).unwrap())
                .lines()
                .map(|l| format!("{}\n", code(l)))
                .collect();
            let mut modules = imported_modules(&text, &here);
            modules.remove(&top);
            Some((file, top, modules))
        })
        .collect()
}

#[test]
fn proto_uses_no_io_and_nothing_else_of_the_crate() {
    let mut offences = Vec::new();
    for file in rust_files(&src().join("proto")) {
        let text = fs::read_to_string(&file).unwrap();
        for (n, line) in text.lines().enumerate() {
            for bad in PROTO_FORBIDDEN_PATHS {
                if code(line).contains(bad) {
                    offences.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    for (file, top, modules) in imports() {
        if top == "proto" && !modules.is_empty() {
            offences.push(format!("{}: imports {modules:?}", file.display()));
        }
    }
    assert!(
        offences.is_empty(),
        "the pure core reaches out:\n{}",
        offences.join("\n")
    );
}

#[test]
fn dependencies_point_down() {
    let mut offences = Vec::new();
    for (file, top, modules) in imports() {
        let forbidden = RULES
            .iter()
            .find(|(m, _)| *m == top)
            .map_or(&[][..], |(_, f)| *f);
        for module in &modules {
            let cli_only = CLI_ONLY.contains(&module.as_str()) && top != "cli";
            if forbidden.contains(&module.as_str()) || cli_only {
                offences.push(format!("{}: {top} imports {module}", file.display()));
            }
        }
    }
    assert!(
        offences.is_empty(),
        "layering broken:\n{}",
        offences.join("\n")
    );
}

#[test]
fn the_import_reader_sees_every_form_of_path() {
    let here: Vec<String> = ["delivery", "manager", "attempt"]
        .map(String::from)
        .to_vec();
    let text = "use crate::queue::Spool;\nuse crate::{auth, proto::dsn};\n\
                use super::super::super::runtime::x;\nuse super::decide;\nlet a = crate::tls::x();\n\
                use std::sync::Arc; // crate::cli\n";
    let text: String = text.lines().map(|l| format!("{}\n", code(l))).collect();
    let found = imported_modules(&text, &here);
    let expected: BTreeSet<String> = ["auth", "delivery", "proto", "queue", "runtime", "tls"]
        .map(String::from)
        .into();
    assert_eq!(found, expected);
}
