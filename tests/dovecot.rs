//! The Dovecot pairing of the README, for real: the binary runs as an
//! ordinary user and delivers a message to a Maildir, then Dovecot, set up
//! with `contrib/dovecot/99-outpost.conf` (its paths and user pointed at
//! the test's), logs the user in with the password of Outpost's users file
//! and reads the message over IMAP on loopback. Needs root (the server
//! switches users; Dovecot drops to the mail user) and `dovecot-imapd`.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::serve::Serve;
use support::{Client, TempDir};

const ALICE: &str = "alice@mx.test";
const PASSWORD: &str = "correct horse";

/// A Dovecot started on a config file; stopped when dropped.
struct Dovecot {
    config: std::path::PathBuf,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = Command::new("doveadm")
            .arg("-c")
            .arg(&self.config)
            .arg("stop")
            .status();
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// Starts Dovecot with the repository's pairing config, its data directory
/// and mail user replaced by `data` and `nobody`, IMAP on `port`.
fn start_dovecot(dir: &Path, data: &Path, port: u16) -> Dovecot {
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/dovecot/99-outpost.conf");
    let pairing = std::fs::read_to_string(sample)
        .unwrap()
        .replace("/var/lib/outpost", data.to_str().unwrap())
        .replace("uid=outpost gid=outpost", "uid=nobody gid=nogroup");
    let run = dir.join("dovecot-run");
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(dir.join("99-outpost.conf"), pairing).unwrap();
    let config = dir.join("dovecot.conf");
    std::fs::write(
        &config,
        format!(
            "base_dir = {run}\nstate_dir = {run}/state\nlog_path = {dir}/dovecot.log\n\
             protocols = imap\nlisten = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\n\
             auth_mechanisms = plain\n\
             service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    \
             port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
             !include {dir}/99-outpost.conf\n",
            run = run.display(),
            dir = dir.display(),
        ),
    )
    .unwrap();
    let status = Command::new("dovecot")
        .arg("-c")
        .arg(&config)
        .status()
        .expect("dovecot (apt-get install dovecot-imapd)");
    assert!(status.success(), "dovecot did not start");
    Dovecot { config }
}

#[test]
fn dovecot_reads_what_outpost_delivered_with_the_same_password() {
    let uid = std::fs::read_to_string("/proc/self/status").unwrap();
    if !uid.lines().any(|l| l.starts_with("Uid:\t0\t")) {
        eprintln!("skipped: needs root");
        return;
    }
    let dir = TempDir::new("dovecot");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let users = format!("{ALICE}:{}\n", outpost::auth::hash_password(PASSWORD));
    std::fs::write(data.join("users"), users).unwrap();

    let mut command = Serve::command(&data);
    command.args(["--user", "nobody"]);
    let mut serve = Serve::run(&mut command).listening(3);
    let mut client = Client::greeted(serve.address("smtp"));
    let reply = client.send_mail(
        "a@example.net",
        ALICE,
        "Subject: read me with Dovecot\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    serve.wait_for_log("status=sent (delivered to maildir");

    let port = free_port();
    let _dovecot = start_dovecot(dir.path(), &data, port);
    std::thread::sleep(Duration::from_millis(500));
    let script = format!(
        "import imaplib\n\
         m = imaplib.IMAP4('127.0.0.1', {port})\n\
         m.login('{ALICE}', '{PASSWORD}')\n\
         m.select('INBOX')\n\
         typ, data = m.fetch('1', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')\n\
         print(data[0][1].decode().strip())\n\
         m.logout()\n"
    );
    let output = Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    let log = std::fs::read_to_string(dir.path().join("dovecot.log")).unwrap_or_default();
    assert!(
        output.status.success(),
        "{}\n{log}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Subject: read me with Dovecot"
    );
}
