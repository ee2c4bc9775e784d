//! The zero-configuration start: before `outpost serve` starts the server,
//! make its data directory usable. Creates the directory (mode 0700),
//! generates a self-signed certificate in `<data-dir>/tls/` when none is
//! given, and on the very first start (no `--users`, no `<data-dir>/users`)
//! creates the users file with `postmaster@<first local domain>` and a
//! generated password, shown once with the addresses to log in at.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::directory::users_file_line;
use crate::proto::session::Role;
use crate::runtime::{certificate_paths, role_name, ServerError, ServerHandle};
use crate::tls::ServerCertificate;

/// The user created on the very first start, whose password is shown once.
#[derive(Debug, Clone)]
pub struct FirstStart {
    /// The user's address, e.g. `postmaster@mx.example`.
    pub user: String,
    /// The generated password.
    pub password: String,
    /// The users file that was created.
    pub users_file: PathBuf,
}

/// Makes `config.data_dir` ready for [`crate::runtime::Server::start`]:
/// the directory, the certificate pair and, on the very first start, the
/// users file with its generated user (returned).
pub fn prepare(config: &Config) -> Result<Option<FirstStart>, ServerError> {
    create_private_dir(&config.data_dir)?;
    let (cert, key) = certificate_paths(config)?;
    if config.tls_cert.is_none() {
        generate_certificate_if_missing(config, &cert, &key)?;
    }
    // Tried before the users file is written: a start that then failed on
    // the certificate would have used up the only showing of the password.
    ServerCertificate::load(&cert, &key).map_err(ServerError::Tls)?;
    create_users_file_if_missing(config)
}

fn create_private_dir(path: &Path) -> Result<(), ServerError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(|source| ServerError::DataDir {
            path: path.to_path_buf(),
            source,
        })
}

/// Generates the pair in `<data-dir>/tls/` if neither file exists; one
/// without the other is an error (it is not ours to overwrite).
fn generate_certificate_if_missing(
    config: &Config,
    cert: &Path,
    key: &Path,
) -> Result<(), ServerError> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(()),
        (false, false) => {
            let mut names = vec![config.hostname.clone()];
            names.extend(config.effective_local_domains());
            names.push("localhost".to_string());
            names.sort();
            names.dedup();
            crate::tls::generate_self_signed(&names, cert, key).map_err(ServerError::Tls)?;
            let dir = cert.parent().unwrap_or(Path::new("."));
            log::info!(
                "generated a self-signed certificate for {names:?} in {}",
                dir.display()
            );
            Ok(())
        }
        _ => Err(ServerError::TlsPair(format!(
            "only one of {} and {} exists; remove it to generate a new pair",
            cert.display(),
            key.display()
        ))),
    }
}

/// On the very first start (no `--users`, no `<data-dir>/users`), creates
/// the users file with `postmaster@<first local domain>` and a generated
/// password.
fn create_users_file_if_missing(config: &Config) -> Result<Option<FirstStart>, ServerError> {
    if config.users.is_some() {
        return Ok(None);
    }
    let path = config.users_path();
    if path.exists() {
        return Ok(None);
    }
    let domain = config
        .effective_local_domains()
        .into_iter()
        .next()
        .unwrap_or_default();
    let user = format!("postmaster@{domain}");
    let password = crate::auth::generate_password().map_err(|_| ServerError::Setup {
        what: "generate a password",
        source: std::io::Error::other("the system random number generator failed"),
    })?;
    let line = format!("{}\n", users_file_line(&user, &password));
    let failed = |source| ServerError::DataDir {
        path: path.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(failed)?;
    file.write_all(line.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    log::info!("created {} with the user {user}", path.display());
    Ok(Some(FirstStart {
        user,
        password,
        users_file: path,
    }))
}

/// How to log in with the user created on the first start, with the
/// addresses `handle` listens on.
pub fn message(first: &FirstStart, handle: &ServerHandle) -> String {
    let mut text = format!(
        "\nFirst start: created the user {user} in {file}.\n\
         \x20 User name: {user}\n\
         \x20 Password:  {password}   (shown only this once)\n",
        user = first.user,
        password = first.password,
        file = first.users_file.display(),
    );
    let ports = [
        (
            handle.submission_addrs(),
            Role::Submission,
            "STARTTLS, login required",
        ),
        (
            handle.submissions_addrs(),
            Role::Submissions,
            "SSL/TLS, login required",
        ),
        (
            handle.smtp_addrs(),
            Role::Smtp,
            "mail from other servers; STARTTLS offered",
        ),
    ];
    for (addresses, role, how) in ports {
        for address in addresses {
            text.push_str(&format!("  {:<12} {address}  ({how})\n", role_name(role)));
        }
    }
    text.push_str(&format!(
        "  The certificate is self-signed: mail clients will ask you to trust it.\n\
         \x20 Add users with: outpost passwd user@domain >> {file}\n\
         \x20 then send this server SIGHUP (kill -HUP {pid}) to load them.\n\n",
        file = first.users_file.display(),
        pid = std::process::id(),
    ));
    text
}
