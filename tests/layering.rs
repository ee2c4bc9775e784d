//! Keeps the protocol core pure: nothing under `src/proto/` may reach for
//! sockets, files, threads, clocks (a `Duration` value is fine), the event loop, TLS or channels, so the
//! core stays fuzzable and benchable (see the module docs of `proto`).

use std::fs;
use std::path::{Path, PathBuf};

/// Paths the pure core must never name.
const FORBIDDEN: &[&str] = &[
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
    "crate::runtime",
    "crate::queue",
    "crate::delivery",
    "crate::auth",
    "crate::tls",
    "crate::config",
];

#[test]
fn proto_uses_no_io() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/proto");
    let mut offences = Vec::new();
    for path in rust_files(&dir) {
        let text = fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for bad in FORBIDDEN {
                if code.contains(bad) {
                    offences.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(
        offences.is_empty(),
        "the pure core uses I/O:\n{}",
        offences.join("\n")
    );
}

/// The `.rs` files under `dir`, in subfolders too (e.g. `proto/session/`).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
