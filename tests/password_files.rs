//! Users files made by the standard tools verify through `outpost::auth`:
//! `openssl passwd -6 -stdin` ($6$) and `htpasswd -nbB` (bcrypt $2y$).
//! A missing tool skips its part with a note (CI installs apache2-utils).

mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use outpost::auth::Authenticator;
use outpost::directory::UserTable;
use outpost::proto::sasl::{AuthResult, Credentials};
use support::TempDir;

fn check(auth: &Arc<Authenticator>, ip: &str, user: &str, password: &str) -> AuthResult {
    let (tx, rx) = std::sync::mpsc::channel();
    let credentials = Credentials {
        username: user.into(),
        password: password.into(),
    };
    auth.verify(
        ip.parse().unwrap(),
        credentials,
        Box::new(move |r| tx.send(r).unwrap()),
    );
    rx.recv_timeout(Duration::from_secs(30)).unwrap()
}

/// Runs `program args`, feeding `stdin`; `None` if the program is missing.
fn run(program: &str, args: &[&str], stdin: &str) -> Option<String> {
    let mut child = match Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            println!("note: `{program}` not found on PATH, skipping its part of this test");
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{program} failed");
    Some(String::from_utf8(output.stdout).unwrap().trim().to_string())
}

fn verify_file(name: &str, user: &str, line: &str, password: &str) {
    let dir = TempDir::new("pwfiles");
    let path = dir.path().join("users");
    std::fs::write(&path, format!("# made by {name}\n{line}\n")).unwrap();
    let auth = Authenticator::new(Arc::new(UserTable::load(&path).unwrap()));
    assert_eq!(
        check(&auth, "192.0.2.1", user, password),
        AuthResult::Success,
        "{line}"
    );
    assert_eq!(
        check(&auth, "192.0.2.2", user, "not it"),
        AuthResult::Failure,
        "{line}"
    );
}

#[test]
fn openssl_passwd_sha512_crypt() {
    let password = "correct horse battery staple";
    let Some(hash) = run(
        "openssl",
        &["passwd", "-6", "-stdin"],
        &format!("{password}\n"),
    ) else {
        return;
    };
    assert!(hash.starts_with("$6$"), "{hash}");
    verify_file(
        "openssl",
        "alice@example.org",
        &format!("alice@example.org:{hash}"),
        password,
    );
}

#[test]
fn htpasswd_bcrypt() {
    let password = "Tr0ub4dor&3";
    let Some(line) = run("htpasswd", &["-nbB", "bob@example.org", password], "") else {
        return;
    };
    assert!(line.starts_with("bob@example.org:$2y$"), "{line}");
    verify_file("htpasswd", "bob@Example.ORG", &line, password);
}
