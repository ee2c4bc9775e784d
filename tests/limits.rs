//! Daily sending limits over loopback: a user past `--max-messages-per-day`
//! gets `451 4.7.1` naming when sending opens again while other users send
//! on; the relay networks share one count of recipients; `--user-limits`
//! raises one user's limit, and is read again on SIGHUP; and the counts
//! survive a restart of the binary.

mod support;

use std::path::Path;

use support::serve::Serve;
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

/// `outpost serve` on `data_dir` with at most one message a day and `extra`.
fn serve(data_dir: &Path, extra: &[&str]) -> Serve {
    let mut args = vec!["--max-messages-per-day", "1"];
    args.extend_from_slice(extra);
    Serve::start(data_dir, &args)
}

/// SIGTERM, then the exit code.
fn stop(serve: Serve) -> Option<i32> {
    serve.signal("TERM");
    serve.finish().0
}

#[test]
fn the_counts_survive_a_restart() {
    let dir = TempDir::new("limits-restart");
    let server = serve(dir.path(), &[]);
    let postmaster = format!("postmaster@{HOSTNAME}");
    let mut client = Client::greeted(server.address("smtp"));
    let reply = client.send_mail("root@mx.test", &postmaster, &message(0));
    assert!(reply.starts_with("250"), "{reply}");
    drop(client);
    assert_eq!(stop(server), Some(0));
    assert!(dir.path().join("sending-counts").exists());

    let server = serve(dir.path(), &[]);
    let mut client = Client::greeted(server.address("smtp"));
    assert!(client.command("EHLO client.test").starts_with("250"));
    let refused = client.command("MAIL FROM:<root@mx.test>");
    assert!(refused.starts_with("451 4.7.1"), "{refused}");
    assert_eq!(stop(server), Some(0));
}

#[test]
fn sighup_reads_the_user_limits_again_and_a_bad_file_changes_nothing() {
    let dir = TempDir::new("limits-reload");
    let limits = dir.path().join("user-limits");
    std::fs::write(&limits, "# none yet\n").unwrap();
    let data = dir.path().join("data");
    let mut server = serve(&data, &["--user-limits", limits.to_str().unwrap()]);
    let postmaster = format!("postmaster@{HOSTNAME}");
    let mut client = Client::greeted(server.address("smtp"));
    let reply = client.send_mail("root@mx.test", &postmaster, &message(0));
    assert!(reply.starts_with("250"), "{reply}");
    let refused = client.command("MAIL FROM:<root@mx.test>");
    assert!(refused.starts_with("451 4.7.1"), "{refused}");

    // The relay networks get three a day: the next one goes.
    std::fs::write(&limits, "relay-networks messages=3\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("user limits: 1 in force");
    let reply = client.send_mail("root@mx.test", &postmaster, &message(1));
    assert!(reply.starts_with("250"), "{reply}");

    // A file with a mistake is named in the log and the three stay.
    std::fs::write(&limits, "relay-networks messages=three\n").unwrap();
    server.signal("HUP");
    let error = server.wait_for_log("user limits not reloaded");
    assert!(error.contains("user-limits:1: expected"), "{error}");
    let reply = client.send_mail("root@mx.test", &postmaster, &message(2));
    assert!(reply.starts_with("250"), "{reply}");
    let refused = client.command("MAIL FROM:<root@mx.test>");
    assert!(
        refused.starts_with("451 4.7.1 Daily sending limit reached (3 messages"),
        "{refused}"
    );
    drop(client);
    assert_eq!(stop(server), Some(0));
}
