//! `outpost serve --check-config`: prints every effective setting with
//! where it came from, then loads what the server would load at start
//! (users file, alias file, certificate pair) and prints the start-up
//! summary with its warnings. Exit 0 when the server could start with this
//! configuration, 2 when it could not.

use std::io::Write;

use super::EXIT_USAGE;
use crate::config::{self, Config, Setting};
use crate::directory::{AliasTable, UserTable};
use crate::runtime::{certificate_paths, summary};
use crate::tls::ServerCertificate;

/// Prints the report for `config` (parsed into `settings`) to `out`;
/// returns the exit code.
pub fn run(config: &Config, settings: &[Setting], out: &mut dyn Write) -> i32 {
    let width = settings
        .iter()
        .map(|s| s.name.len() + s.value.len() + 3)
        .max()
        .unwrap_or(0);
    for setting in settings {
        let text = format!("{} = {}", setting.name, setting.value);
        let _ = writeln!(out, "{text:<width$}  # {}", setting.source);
    }
    let _ = writeln!(out);
    let mut errors = Vec::new();
    let mut warnings = config::warnings(config);

    let users_path = config.users_path();
    let users = if config.users.is_none() && !users_path.exists() {
        let _ = writeln!(
            out,
            "users: {} does not exist yet; the first start creates it",
            users_path.display()
        );
        Some(0)
    } else {
        match UserTable::load(&users_path) {
            Ok(users) => Some(users.len()),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        }
    };
    if let Err(e) = AliasTable::load(config.delivery.aliases.as_deref()) {
        errors.push(e.to_string());
    }
    match certificate_paths(config) {
        Err(e) => errors.push(e.to_string()),
        Ok((cert, _)) if config.tls_cert.is_none() && !cert.exists() => {
            let _ = writeln!(
                out,
                "certificate: {} does not exist yet; the first start generates a self-signed one",
                cert.display()
            );
        }
        Ok((cert, key)) => match ServerCertificate::load(&cert, &key) {
            Err(e) => errors.push(e.to_string()),
            Ok(loaded) => {
                let facts = loaded.facts();
                let now = std::time::SystemTime::now();
                let shown = cert.display().to_string();
                let report =
                    summary::summarize(config, users.unwrap_or(0), &shown, facts.as_ref(), now);
                let _ = writeln!(out, "{}", report.line);
                warnings.extend(report.warnings);
            }
        },
    }
    for warning in &warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    for error in &errors {
        let _ = writeln!(out, "error: {error}");
    }
    if errors.is_empty() {
        let _ = writeln!(out, "configuration OK");
        0
    } else {
        EXIT_USAGE
    }
}
