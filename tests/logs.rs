//! The log answers "why did this mail not go through?" on its own: each
//! refusal line names the client, its HELO name, the sender, the recipient
//! and the reply; the queued line names the Message-ID; a failed TLS
//! handshake and a failed login say in words what went wrong. Each test
//! drives the `outpost` binary and reads its standard error.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use support::serve::{Serve, HOST};
use support::{Client, TempDir};

const ALICE: &str = "alice@mx.test";
const PASSWORD: &str = "correct horse";

/// A server on `dir/data` whose users file holds [`ALICE`].
fn serve_with_alice(dir: &TempDir, extra: &[&str]) -> Serve {
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let users = format!("{ALICE}:{}\n", outpost::auth::hash_password(PASSWORD));
    std::fs::write(data.join("users"), users).unwrap();
    Serve::start(&data, extra)
}

/// A TLS client on the submissions port that trusts the server's
/// certificate; greeted.
fn submissions(serve: &Serve, data: &Path) -> Client<support::TlsStream> {
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut client =
        Client::connect(serve.address("submissions")).into_tls(support::tls_client_config(&cert));
    assert!(client.reply().starts_with("220 "));
    client
}

#[test]
fn a_refused_recipient_is_logged_with_client_helo_sender_and_recipient() {
    let dir = TempDir::new("log-refusal");
    let mut serve = serve_with_alice(&dir, &[]);
    let mut client = Client::greeted(serve.address("smtp"));
    assert!(client.command("EHLO client.example").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<a@example.net>")
        .starts_with("250"));
    let reply = client.command(&format!("RCPT TO:<nobody@{HOST}>"));
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    let line = serve.wait_for_log("refused RCPT");
    let peer = client.stream.local_addr().unwrap();
    let want = format!(
        "{peer} on smtp: refused RCPT: {}; from=<a@example.net> to=<nobody@{HOST}> \
         helo=<client.example>",
        reply.trim_end()
    );
    assert!(line.ends_with(&want), "{line}\nwant: {want}");
}

#[test]
fn the_queued_line_names_the_message_id_of_small_and_streamed_messages() {
    let dir = TempDir::new("log-message-id");
    let mut serve = serve_with_alice(&dir, &["--message-memory", "1KiB"]);
    let small = "Message-ID: <small.1@example.net>\r\nSubject: hi\r\n\r\nhello\r\n";
    let big = format!(
        "Subject: big\r\nMessage-Id:\r\n <big.2@example.net>\r\n\r\n{}",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\r\n".repeat(2000)
    );
    let mut client = Client::greeted(serve.address("smtp"));
    for (body, id) in [
        (small, "<small.1@example.net>"),
        (big.as_str(), "<big.2@example.net>"),
    ] {
        let reply = client.send_mail("a@example.net", ALICE, body);
        assert!(reply.starts_with("250"), "{reply}");
        let queued = reply.trim_end().rsplit(' ').next().unwrap().to_string();
        let line = serve.wait_for_log(&format!("queued {queued}"));
        assert!(
            line.contains(&format!(
                "from=<a@example.net> message-id={id} recipients=1"
            )),
            "{line}"
        );
    }
}

#[test]
fn a_client_that_does_not_trust_the_certificate_is_logged_in_plain_words() {
    let dir = TempDir::new("log-tls");
    let mut serve = serve_with_alice(&dir, &[]);
    // Trusts nothing: the handshake ends with its "unknown CA" alert.
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(HOST).unwrap();
    let mut tls = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut socket = std::net::TcpStream::connect(serve.address("submissions")).unwrap();
    socket
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut failed = false;
    while tls.is_handshaking() && !failed {
        failed = tls.complete_io(&mut socket).is_err();
    }
    assert!(failed, "the handshake should fail");
    let _ = socket.flush();
    let line = serve.wait_for_log("TLS handshake failed");
    assert!(
        line.ends_with(
            "on submissions: connection failed: TLS handshake failed: \
             the client does not trust our certificate (unknown CA)"
        ),
        "{line}"
    );
}

#[test]
fn logins_tell_an_unknown_user_from_a_wrong_password_and_the_lockout_says_how_long() {
    let dir = TempDir::new("log-login");
    let data = dir.path().join("data");
    let mut serve = serve_with_alice(&dir, &[]);

    // The client hears the same for both; the log tells them apart.
    let unknown = submissions(&serve, &data).login_plain("mallory@mx.test", PASSWORD);
    let wrong = submissions(&serve, &data).login_plain(ALICE, "guess 1");
    assert_eq!(unknown, wrong);
    assert!(unknown.starts_with("535 5.7.8"), "{unknown}");
    let line = serve.wait_for_log("user=\"mallory@mx.test\" result=failure");
    assert!(line.contains("reason=unknown-user ip=127.0.0.1"), "{line}");
    let line = serve.wait_for_log("user=\"alice@mx.test\" result=failure");
    assert!(
        line.contains("reason=wrong-password ip=127.0.0.1"),
        "{line}"
    );

    // The fifth failure of a user locks that user out at this address;
    // the reply says for how long (the 10-minute window).
    for guess in 2..=5 {
        let reply = submissions(&serve, &data).login_plain(ALICE, &format!("guess {guess}"));
        assert!(reply.starts_with("535"), "{reply}");
    }
    let mut client = submissions(&serve, &data);
    let reply = client.login_plain(ALICE, PASSWORD);
    assert_eq!(
        reply,
        "421 4.7.0 Too many failed login attempts; please try again in 10 minutes\r\n"
    );
    serve.wait_for_log("result=throttled");
}

#[test]
fn the_sender_check_names_the_logged_in_user() {
    let dir = TempDir::new("log-sender-check");
    let data = dir.path().join("data");
    let mut serve = serve_with_alice(&dir, &[]);
    let mut client = submissions(&serve, &data);
    assert!(client.login_plain(ALICE, PASSWORD).starts_with("235"));
    let reply = client.command("MAIL FROM:<boss@mx.test>");
    assert_eq!(
        reply,
        "553 5.7.1 You are logged in as alice@mx.test and may not send as <boss@mx.test>\r\n"
    );
    let line = serve.wait_for_log("refused MAIL");
    assert!(
        line.ends_with("; from=<boss@mx.test> helo=<client.test>"),
        "{line}"
    );
}
