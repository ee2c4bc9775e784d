//! The zero-configuration start: before `outpost serve` starts the server,
//! make its data directory usable. Creates the directory (mode 0700),
//! generates a self-signed certificate in `<data-dir>/tls/` when none is
//! given, and on the very first start (no `--users`, no `<data-dir>/users`)
//! creates the users file with `postmaster@<first local domain>` and a
//! generated password, shown once with the addresses to log in at.
//!
//! A first start never locks the administrator out: `outpost serve` binds
//! its listeners before calling [`prepare`], and removes the users file
//! again ([`undo`]) when the server then fails to start. Until the
//! password has been shown, `DATA-DIR/password-not-shown` holds the
//! generated users-file line; a later start that still finds it, with the
//! line unchanged in the users file (the process was killed before it
//! could show the password), says how to set one ([`unshown_password`]).

use std::io::Write;
use std::net::IpAddr;
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
    /// The self-signed certificate in the data directory (`None` with
    /// `--tls-cert`).
    pub certificate: Option<PathBuf>,
    /// The marker saying the password has not been shown yet.
    marker: PathBuf,
}

/// The marker file, in the data directory, of a generated password not
/// shown yet.
const NOT_SHOWN: &str = "password-not-shown";

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
    let self_signed = config.tls_cert.is_none().then_some(cert);
    let first = create_users_file_if_missing(config)?;
    Ok(first.map(|first| FirstStart {
        certificate: self_signed,
        ..first
    }))
}

/// Removes the users file a failed first start created (its password was
/// never shown), so that the next start is a first start again.
pub fn undo(first: &FirstStart) {
    for path in [&first.users_file, &first.marker] {
        if let Err(e) = std::fs::remove_file(path) {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

/// Records that the generated password has been shown.
pub fn shown(first: &FirstStart) {
    // Left behind, it would only make a later start repeat its advice.
    let _ = std::fs::remove_file(&first.marker);
}

/// On a start after a first start that never showed its password: the
/// advice to set one, naming the user. `None` when there is nothing to
/// say (no marker, or the user's line has changed since).
pub fn unshown_password(config: &Config) -> Option<String> {
    let marker = config.data_dir.join(NOT_SHOWN);
    let line = std::fs::read_to_string(&marker).ok()?;
    let line = line.trim_end();
    let users = std::fs::read_to_string(config.users_path()).unwrap_or_default();
    if !users.lines().any(|l| l.trim_end() == line) {
        let _ = std::fs::remove_file(&marker);
        return None;
    }
    let user = line.split(':').next().unwrap_or_default();
    Some(format!(
        "the password generated for {user} on the first start was never shown; \
         set one with: outpost users passwd {user} --data-dir {}",
        config.data_dir.display()
    ))
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
            let names = certificate_names(config, &interface_addresses());
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

/// The names a generated certificate is for: the host name, the local
/// domains, `localhost`, and the addresses the listeners serve, so a client
/// can verify it by address too (a specific listener address as it is;
/// for a wildcard one, `interfaces`: the machine's addresses of that
/// family, IPv6 link-local ones left out, whose names need a scope).
fn certificate_names(config: &Config, interfaces: &[IpAddr]) -> Vec<String> {
    let mut names = vec![config.hostname.clone()];
    names.extend(config.effective_local_domains());
    names.push("localhost".to_string());
    let mut addresses = Vec::new();
    for listener in config
        .smtp
        .iter()
        .chain(&config.submission)
        .chain(&config.submissions)
    {
        match listener.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => {
                addresses.extend(interfaces.iter().filter(|a| a.is_ipv4()));
            }
            // A wildcard IPv6 listener usually takes IPv4 connections too.
            IpAddr::V6(ip) if ip.is_unspecified() => addresses.extend(interfaces),
            ip => addresses.push(ip),
        }
    }
    // fe80::/10 (RFC 4291 §2.5.6).
    let link_local =
        |ip: &IpAddr| matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80);
    addresses.retain(|ip| !link_local(ip));
    names.extend(addresses.iter().map(IpAddr::to_string));
    names.sort();
    names.dedup();
    names
}

/// The machine's IP addresses (none when they cannot be listed).
fn interface_addresses() -> Vec<IpAddr> {
    let Ok(interfaces) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    interfaces
        .filter_map(|interface| {
            let address = interface.address?;
            let v4 = address.as_sockaddr_in().map(|a| IpAddr::V4(a.ip()));
            v4.or_else(|| address.as_sockaddr_in6().map(|a| IpAddr::V6(a.ip())))
        })
        .collect()
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
    // The marker first: a crash between the two leaves a marker naming
    // no line, which the next start removes.
    let marker = config.data_dir.join(NOT_SHOWN);
    write_new_private(&marker, &line)?;
    write_new_private(&path, &line)?;
    log::info!("created {} with the user {user}", path.display());
    Ok(Some(FirstStart {
        user,
        password,
        users_file: path,
        certificate: None,
        marker,
    }))
}

/// Writes a new file (mode 0600) and syncs it.
fn write_new_private(path: &Path, text: &str) -> Result<(), ServerError> {
    let failed = |source| ServerError::DataDir {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(failed)?;
    file.write_all(text.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
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
    if let Some(cert) = &first.certificate {
        text.push_str(&format!(
            "  The certificate is self-signed: mail clients will ask you to trust it.\n\
             \x20 It is {cert} (check it with: outpost bench --server ADDRESS --starttls \
             --ca {cert} --sni NAME)\n",
            cert = cert.display()
        ));
    }
    text.push_str(&format!(
        "  Add users with: outpost users add user@domain --data-dir {dir}\n\n",
        dir = first
            .users_file
            .parent()
            .unwrap_or(Path::new("."))
            .display(),
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn a_password_never_shown_is_reported_until_its_line_changes() {
        let dir = TempDir::new("first-start");
        let config = Config {
            data_dir: dir.path().join("data"),
            hostname: "mx.example".to_string(),
            ..Config::default()
        };
        let first = prepare(&config).unwrap().expect("a first start");
        assert_eq!(first.user, "postmaster@mx.example");
        // Killed before the password was shown: the next start says so.
        let advice = unshown_password(&config).expect("advice");
        assert!(advice.contains("postmaster@mx.example"), "{advice}");
        assert!(
            advice.contains("outpost users passwd postmaster@mx.example"),
            "{advice}"
        );
        // Once the line has been replaced, there is nothing to say.
        std::fs::write(config.users_path(), users_file_line(&first.user, "new")).unwrap();
        assert_eq!(unshown_password(&config), None);
        assert!(!first.marker.exists());
        // A start that showed the password leaves no advice behind.
        std::fs::remove_file(config.users_path()).unwrap();
        let first = prepare(&config).unwrap().expect("a first start");
        shown(&first);
        assert_eq!(unshown_password(&config), None);
        // A failed start removes what it created: the next is a first start.
        std::fs::remove_file(config.users_path()).unwrap();
        let first = prepare(&config).unwrap().expect("a first start");
        undo(&first);
        assert!(prepare(&config).unwrap().is_some());
    }

    #[test]
    fn the_certificate_names_the_addresses_the_listeners_serve() {
        let config = Config {
            hostname: "mx.example".to_string(),
            local_domains: vec!["example.org".to_string()],
            smtp: vec!["0.0.0.0:25".parse().unwrap()],
            submission: vec!["[2001:db8::5]:587".parse().unwrap()],
            submissions: vec!["192.0.2.7:465".parse().unwrap()],
            ..Config::default()
        };
        let interfaces: Vec<IpAddr> = ["127.0.0.1", "198.51.100.3", "::1", "fe80::1"]
            .iter()
            .map(|ip| ip.parse().unwrap())
            .collect();
        assert_eq!(
            certificate_names(&config, &interfaces),
            [
                "127.0.0.1",
                "192.0.2.7",
                "198.51.100.3",
                "2001:db8::5",
                "example.org",
                "localhost",
                "mx.example"
            ]
        );
        // A wildcard IPv6 listener: every address but the link-local one.
        let config = Config {
            smtp: vec!["[::]:25".parse().unwrap()],
            submission: Vec::new(),
            submissions: Vec::new(),
            ..config
        };
        let names = certificate_names(&config, &interfaces);
        assert!(names.contains(&"::1".to_string()), "{names:?}");
        assert!(names.contains(&"198.51.100.3".to_string()), "{names:?}");
        assert!(!names.contains(&"fe80::1".to_string()), "{names:?}");
    }
}
