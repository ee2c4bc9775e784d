//! The binary called as `sendmail` (a symlink, as installed with
//! `ln -s "$(command -v outpost)" /usr/sbin/sendmail`) against a running
//! server on loopback: cron's `-t` with a Bcc, `-i`, the single-dot line,
//! `-f`/`-F`, the server found through the configuration file, and the
//! sysexits codes for an unreachable server and bad usage.

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use dns_server::{DnsServer, Zone};
use support::*;

const ALICE: &str = "alice@mx.test";
const BOB: &str = "bob@mx.test";
const PASSWORD: &str = "correct horse battery staple";

/// A delivering server with Alice and Bob (DNS on loopback, answering
/// nothing: only local mail is sent here).
fn delivering() -> (TestServer, DnsServer) {
    let dns = DnsServer::start(Zone::new());
    let server = TestServer::start_with(&[(ALICE, PASSWORD), (BOB, PASSWORD)], |c| {
        c.deliver = true;
        c.delivery.dns_server = Some(dns.addr);
    });
    (server, dns)
}

/// `dir/name`, a symlink to the outpost binary.
fn linked_as(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_outpost"), &link).unwrap();
    link
}

/// A configuration file naming the server's smtp listener and the sender
/// domain, as the server's own would.
fn config_file(dir: &Path, server: &TestServer) -> PathBuf {
    let path = dir.join("outpost.conf");
    std::fs::write(
        &path,
        format!("smtp = {}\nsender-domain = mx.test\n", server.smtp()),
    )
    .unwrap();
    path
}

/// Runs `program args` with `input` on standard input, as user `root`;
/// returns the exit code and standard error.
fn run(program: &Path, args: &[&str], input: &str) -> (i32, String) {
    let mut child = Command::new(program)
        .args(args)
        .env("LOGNAME", "root")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A call refused before reading its input closes the pipe early.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The messages in the Maildir of `local@mx.test`, waiting (at most 10 s)
/// for `count` of them.
fn mailbox(server: &TestServer, local: &str, count: usize) -> Vec<String> {
    let new = server
        .data_dir()
        .join("mail/mx.test")
        .join(local)
        .join("new");
    let read = || -> Vec<String> {
        std::fs::read_dir(&new)
            .map(|entries| {
                entries
                    .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
                    .collect()
            })
            .unwrap_or_default()
    };
    assert!(
        wait_until(Duration::from_secs(10), || read().len() == count),
        "{local}: {} of {count} messages",
        read().len()
    );
    read()
}

#[test]
fn cron_style_dash_t_sends_to_to_and_bcc_and_drops_the_bcc_field() {
    let (server, _dns) = delivering();
    let dir = TempDir::new("sendmail-t");
    let sendmail = linked_as(dir.path(), "sendmail");
    let config = config_file(dir.path(), &server);
    let message = "To: alice@mx.test\nBcc: bob@mx.test\nSubject: Cron <root@host> backup\n\n\
                   backup done\n.\nthe dot above stays with -i\n";
    let (code, stderr) = run(
        &sendmail,
        &["-FCron Daemon", "-i", "-odi", "-oem", "-t", "--config"],
        "",
    );
    assert_eq!(code, 64, "--config without its file: {stderr}");
    let config_arg = config.to_str().unwrap();
    let (code, stderr) = run(
        &sendmail,
        &[
            "-FCron Daemon",
            "-i",
            "-odi",
            "-oem",
            "-t",
            "--config",
            config_arg,
        ],
        message,
    );
    assert_eq!(code, 0, "{stderr}");
    for local in ["alice", "bob"] {
        let delivered = mailbox(&server, local, 1);
        let text = &delivered[0];
        assert!(!text.contains("Bcc:"), "{text}");
        assert!(
            text.contains("From: Cron Daemon <root@mx.test>\r\n"),
            "{text}"
        );
        assert!(
            text.contains("\r\n\r\nbackup done\r\n.\r\nthe dot above stays with -i\r\n"),
            "{text}"
        );
        assert_eq!(text.matches("Message-ID: <").count(), 1, "{text}");
    }
}

#[test]
fn recipients_as_arguments_and_a_single_dot_line_ends_the_message() {
    let (server, _dns) = delivering();
    let dir = TempDir::new("sendmail-args");
    let sendmail = linked_as(dir.path(), "sendmail");
    let server_arg = server.smtp().to_string();
    let (code, stderr) = run(
        &sendmail,
        &["-f", "alice@mx.test", "--server", &server_arg, "bob"],
        "Subject: args\n\nfirst\n.\nnot sent\n",
    );
    assert_eq!(code, 0, "{stderr}");
    let text = &mailbox(&server, "bob", 1)[0];
    assert!(text.ends_with("\r\n\r\nfirst\r\n"), "{text}");
    assert!(text.contains("From: alice@mx.test\r\n"), "{text}");
    // The same through `outpost sendmail`.
    let (code, stderr) = run(
        Path::new(env!("CARGO_BIN_EXE_outpost")),
        &[
            "sendmail",
            "-f",
            "alice@mx.test",
            "--server",
            &server_arg,
            "bob@mx.test",
        ],
        "Subject: again\n\nsecond\n",
    );
    assert_eq!(code, 0, "{stderr}");
    mailbox(&server, "bob", 2);
}

#[test]
fn exit_codes_say_try_later_without_a_server_and_usage_for_bad_calls() {
    let dir = TempDir::new("sendmail-codes");
    let sendmail = linked_as(dir.path(), "sendmail");
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let (code, stderr) = run(
        &sendmail,
        &["--server", &closed, "root@mx.test"],
        "Subject: x\n\ny\n",
    );
    assert_eq!(code, 75, "EX_TEMPFAIL: {stderr}");
    assert!(stderr.contains("cannot be reached"), "{stderr}");
    let (code, _) = run(&sendmail, &["--server", &closed], "Subject: x\n\ny\n");
    assert_eq!(code, 64, "no recipients");
    let (code, _) = run(&sendmail, &["-bs"], "");
    assert_eq!(code, 64, "an unsupported mode");
    let (code, _) = run(&sendmail, &["-t", "--server", &closed], "Subject: x\n\ny\n");
    assert_eq!(code, 65, "-t and no recipient in the message");
}

#[test]
fn mailq_lists_the_queue() {
    let server = TestServer::start(&[]);
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail(
        "root@mx.test",
        &format!("postmaster@{HOSTNAME}"),
        "Subject: q\r\n\r\nq\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let dir = TempDir::new("mailq");
    let mailq = linked_as(dir.path(), "mailq");
    let output = Command::new(&mailq)
        .arg("--data-dir")
        .arg(server.data_dir())
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("root@mx.test"), "{text}");
}
