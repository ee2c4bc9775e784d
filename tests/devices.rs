//! Mail from devices and scripts, over loopback against the real server:
//! a message without `Message-ID:` or `Date:` submitted on port 587 (with
//! Python's smtplib, STARTTLS and AUTH) gets both, once; a message that has
//! them is stored byte for byte; mail from another server on port 25 is
//! left alone; cron's bare `MAIL FROM:<root>` from a relay-network client
//! is queued as `root@` the sender domain.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};

use outpost::queue::{QueuedMessage, Spool};
use support::*;

const ALICE: &str = "alice@mx.test";
const ALICE_PASSWORD: &str = "correct horse battery staple";

/// Every queued message, oldest first, with the bytes stored for it.
fn queued(server: &TestServer) -> Vec<(QueuedMessage, String)> {
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let mut ids = spool.list().unwrap();
    ids.sort();
    ids.iter()
        .map(|id| {
            let message = spool.load(id).unwrap();
            let bytes = spool.read_message(id).unwrap();
            (message, String::from_utf8(bytes).unwrap())
        })
        .collect()
}

/// The stored message after our own Received field.
fn after_received(stored: &str) -> &str {
    let (received, rest) = stored.split_once(" +0000\r\n").unwrap();
    assert!(received.starts_with("Received: "), "{stored}");
    rest
}

/// How many header fields named `name` the message has.
fn fields(message: &str, name: &str) -> usize {
    let header = message.split("\r\n\r\n").next().unwrap();
    header
        .split("\r\n")
        .filter(|line| {
            line.split_once(':')
                .is_some_and(|(field, _)| field.eq_ignore_ascii_case(name))
        })
        .count()
}

/// Sends each file of `messages` as its own transaction with smtplib:
/// STARTTLS on `port`, verified against the server's certificate, then
/// AUTH. The bytes go as they are (smtplib only dot-stuffs them).
const PYTHON_CLIENT: &str = r#"
import smtplib, ssl, sys
port, cafile, user, password, recipient = sys.argv[1:6]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
client = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
client.starttls(context=context)
client.login(user, password)
for path in sys.argv[6:]:
    with open(path, "rb") as f:
        refused = client.sendmail(user, [recipient], f.read())
    assert not refused, refused
client.quit()
"#;

fn python_submits(server: &TestServer, dir: &Path, messages: &[&str]) {
    let cafile = dir.join("ca.pem");
    std::fs::write(&cafile, &server.cert_pem).unwrap();
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(server.submission().port().to_string())
        .arg(&cafile)
        .args([ALICE, ALICE_PASSWORD, "bob@example.org"]);
    for (i, message) in messages.iter().enumerate() {
        let path = dir.join(format!("message{i}.eml"));
        std::fs::write(&path, message).unwrap();
        command.arg(path);
    }
    let output = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        output.status.success(),
        "smtplib failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn submitted_mail_gets_the_message_id_and_date_it_lacks_once_and_complete_mail_is_untouched() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("devices-smtplib");
    let bare =
        "From: alice@mx.test\r\nTo: bob@example.org\r\nSubject: printer\r\n\r\nToner low.\r\n";
    let complete = "From: alice@mx.test\r\nTo: bob@example.org\r\n\
                    Message-ID: <given.1@printer.example>\r\n\
                    Date: Thu, 01 Jan 2026 08:00:00 +0100\r\n\
                    Subject: complete\r\n\r\n.Dot first, and 8 bits: caf\u{e9}\r\n";
    python_submits(&server, dir.path(), &[bare, complete]);
    let stored = queued(&server);
    assert_eq!(stored.len(), 2);

    let (message, text) = &stored[0];
    let added = format!(
        "Message-ID: <{}@{HOSTNAME}>\r\nDate: {}\r\n",
        message.id,
        outpost::proto::received::rfc5322_date(message.arrival)
    );
    assert_eq!(after_received(text), format!("{added}{bare}"));
    assert_eq!(fields(text, "message-id"), 1);
    assert_eq!(fields(text, "date"), 1);

    let (_, text) = &stored[1];
    assert_eq!(after_received(text), complete, "stored byte for byte");
}

#[test]
fn mail_from_another_server_on_port_25_is_left_as_it_was_sent() {
    // Loopback is not a relay network here: this is another server.
    let server = TestServer::start_with(&[], |config| config.relay_networks.clear());
    let mut client = Client::greeted(server.smtp());
    let body = "From: someone@example.org\r\nSubject: no id\r\n\r\nHello.\r\n";
    let reply = client.send_mail(
        "someone@example.org",
        &format!("postmaster@{HOSTNAME}"),
        body,
    );
    assert!(reply.starts_with("250"), "{reply}");
    let stored = queued(&server);
    assert_eq!(after_received(&stored[0].1), body);
}

/// cron's way: `MAIL FROM:<root>`, `RCPT TO:<root>`, a message with only
/// Subject and To.
fn cron_sends(address: SocketAddr) -> String {
    let mut client = Client::greeted(address);
    assert!(client.command("HELO localhost").starts_with("250"));
    assert!(client.command("MAIL FROM:<root>").starts_with("250"));
    let rcpt = client.command(&format!("RCPT TO:<postmaster@{HOSTNAME}>"));
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"To: root\r\nSubject: Cron <root@host> run-parts /etc/cron.daily\r\n\r\nok\r\n");
    client.command(".")
}

#[test]
fn cron_mail_from_a_relay_network_is_queued_from_root_at_the_sender_domain() {
    let server = TestServer::start(&[]);
    let reply = cron_sends(server.smtp());
    assert!(reply.starts_with("250"), "{reply}");
    let server_set = TestServer::start_with(&[], |config| {
        config.sender_domain = Some("example.net".into());
    });
    cron_sends(server_set.smtp());

    let (message, text) = &queued(&server)[0];
    assert_eq!(message.mail_from.sender, format!("root@{HOSTNAME}"));
    assert_eq!(fields(text, "message-id"), 1);
    assert_eq!(fields(text, "date"), 1);
    let (message, _) = &queued(&server_set)[0];
    assert_eq!(message.mail_from.sender, "root@example.net");

    // From a client outside the relay networks, a bare sender is refused.
    let strict = TestServer::start_with(&[], |config| config.relay_networks.clear());
    let mut client = Client::greeted(strict.smtp());
    assert!(client.command("HELO localhost").starts_with("250"));
    let mail = client.command("MAIL FROM:<root>");
    assert!(mail.starts_with("501 5.1.7"), "{mail}");
}
