//! Daily sending limits over loopback: a user past `--max-messages-per-day`
//! gets `451 4.7.1` naming when sending opens again while other users send
//! on; the relay networks share one count of recipients; `--user-limits`
//! raises one user's limit; and the counts survive a restart of the binary.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::*;

const ALICE: &str = "alice@mx.test";
const BOB: &str = "bob@mx.test";
const PASSWORD: &str = "correct horse battery staple";

/// Logs in on the submission port over TLS as `user`.
fn logged_in(server: &TestServer, user: &str) -> Client<TlsStream> {
    let mut client = Client::greeted(server.submission());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut client = client.into_tls(server.tls_client_config());
    let auth = client.login_plain(user, PASSWORD);
    assert!(auth.starts_with("235"), "{auth}");
    client
}

fn message(n: usize) -> String {
    format!("Subject: message {n}\r\n\r\nhello\r\n")
}

#[test]
fn a_user_past_the_limit_is_told_when_sending_opens_and_others_send_on() {
    let dir = TempDir::new("limits-users");
    let exceptions = dir.path().join("user-limits");
    std::fs::write(&exceptions, "# the newsletter\nbob@mx.test messages=5\n").unwrap();
    let server = TestServer::start_with(&[(ALICE, PASSWORD), (BOB, PASSWORD)], |c| {
        c.max_messages_per_day = 2;
        c.user_limits = Some(exceptions.clone());
    });
    let mut alice = logged_in(&server, ALICE);
    for n in 0..2 {
        let reply = alice.transaction(ALICE, "someone@example.org", &message(n));
        assert!(reply.starts_with("250"), "{reply}");
    }
    let refused = alice.command(&format!("MAIL FROM:<{ALICE}>"));
    assert!(
        refused.starts_with(
            "451 4.7.1 Daily sending limit reached (2 messages in 24 hours); \
             sending opens again at "
        ),
        "{refused}"
    );
    assert!(refused.trim_end().ends_with("+0000"), "{refused}");
    let mut bob = logged_in(&server, BOB);
    for n in 0..3 {
        let reply = bob.transaction(BOB, "someone@example.org", &message(n));
        assert!(reply.starts_with("250"), "bob's own limit is 5: {reply}");
    }
}

#[test]
fn the_relay_networks_share_one_count_of_recipients() {
    let server = TestServer::start_with(&[], |c| c.max_recipients_per_day = 3);
    let postmaster = format!("postmaster@{HOSTNAME}");
    let mut first = Client::greeted(server.smtp());
    let reply = first.send_mail("cron@mx.test", &postmaster, &message(0));
    assert!(reply.starts_with("250"), "{reply}");
    let mut second = Client::greeted(server.smtp());
    assert!(second.command("EHLO other.test").starts_with("250"));
    assert!(second
        .command("MAIL FROM:<backup@mx.test>")
        .starts_with("250"));
    assert!(second.command("RCPT TO:<a@example.org>").starts_with("250"));
    assert!(second.command("RCPT TO:<b@example.org>").starts_with("250"));
    let refused = second.command("RCPT TO:<c@example.org>");
    assert!(refused.starts_with("451 4.7.1"), "{refused}");
    assert!(refused.contains("(3 recipients in 24 hours)"), "{refused}");
}

/// A running `outpost serve` child process, killed when dropped.
struct Serve {
    child: Child,
    smtp: SocketAddr,
}

impl Serve {
    /// Starts the binary on `data_dir` with at most one message a day and
    /// waits for its smtp listener.
    fn start(data_dir: &Path) -> Serve {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["serve", "--hostname", HOSTNAME, "--local-domains", HOSTNAME])
            .args(["--smtp", "127.0.0.1:0", "--submission", "off"])
            .args(["--submissions", "off", "--delivery", "off"])
            .args(["--shutdown-grace", "1s", "--max-messages-per-day", "1"])
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let smtp = loop {
            let line = lines.next().expect("the server exited").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split(' ').next().unwrap().parse().unwrap();
            }
        };
        // Keep reading, so the pipe never fills.
        std::thread::spawn(move || lines.for_each(drop));
        Serve { child, smtp }
    }

    /// SIGTERM, then waits for the exit.
    fn stop(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        assert!(self.child.wait().unwrap().success());
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_counts_survive_a_restart() {
    let dir = TempDir::new("limits-restart");
    let serve = Serve::start(dir.path());
    let postmaster = format!("postmaster@{HOSTNAME}");
    let mut client = Client::greeted(serve.smtp);
    let reply = client.send_mail("root@mx.test", &postmaster, &message(0));
    assert!(reply.starts_with("250"), "{reply}");
    drop(client);
    serve.stop();
    assert!(dir.path().join("sending-counts").exists());

    let serve = Serve::start(dir.path());
    let mut client = Client::greeted(serve.smtp);
    assert!(client.command("EHLO client.test").starts_with("250"));
    let refused = client.command("MAIL FROM:<root@mx.test>");
    assert!(refused.starts_with("451 4.7.1"), "{refused}");
    serve.stop();
}
