//! The real server on loopback listeners: a third-party client (lettre) on
//! the happy paths of all three ports, and raw sockets for the runtime's
//! limits, timeouts, TLS mix-ups, load and shutdown.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};
use support::*;

const ALICE: &str = "alice@mx.test";
const ALICE_PASSWORD: &str = "correct horse battery staple";

fn message(from: &str, to: &str, subject: &str) -> Message {
    Message::builder()
        .from(from.parse::<Mailbox>().unwrap())
        .to(to.parse::<Mailbox>().unwrap())
        .subject(subject)
        .body(String::from("Hello from the integration test.\r\n"))
        .unwrap()
}

fn lettre_tls(server: &TestServer) -> TlsParameters {
    TlsParameters::builder(HOSTNAME.to_string())
        .add_root_certificate(Certificate::from_pem(&server.cert_pem).unwrap())
        .build_rustls()
        .unwrap()
}

/// A lettre client for `port` with `tls`, logging in as Alice with
/// `password` through `mechanism`.
fn authenticated_mailer(
    server: &TestServer,
    port: u16,
    tls: fn(TlsParameters) -> Tls,
    mechanism: Mechanism,
    password: &str,
) -> SmtpTransport {
    SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .tls(tls(lettre_tls(server)))
        .credentials(Credentials::new(ALICE.into(), password.into()))
        .authentication(vec![mechanism])
        .timeout(Some(Duration::from_secs(10)))
        .build()
}

fn queued_text(server: &TestServer) -> Vec<String> {
    server
        .queued_messages()
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

#[test]
fn lettre_submission_starttls_and_auth_login() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mailer = authenticated_mailer(
        &server,
        server.submission().port(),
        Tls::Required,
        Mechanism::Login,
        ALICE_PASSWORD,
    );
    mailer
        .send(&message(ALICE, "bob@example.org", "via 587"))
        .unwrap();
    let queued = queued_text(&server);
    assert_eq!(queued.len(), 1);
    assert!(queued[0].contains("Subject: via 587"), "{}", queued[0]);
}

#[test]
fn lettre_submissions_implicit_tls_and_auth_plain() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mailer = authenticated_mailer(
        &server,
        server.submissions().port(),
        Tls::Wrapper,
        Mechanism::Plain,
        ALICE_PASSWORD,
    );
    mailer
        .send(&message(ALICE, "bob@example.org", "via 465"))
        .unwrap();
    let queued = queued_text(&server);
    assert_eq!(queued.len(), 1);
    assert!(queued[0].contains("Subject: via 465"), "{}", queued[0]);
    assert!(
        queued[0].contains("(using TLSv1.3) (authenticated as alice@mx.test)"),
        "{}",
        queued[0]
    );
}

#[test]
fn tls_1_2_clients_are_served_and_recorded() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_root_certificates(root_store(&server.cert_pem))
    .with_no_client_auth();
    let mut client = Client::connect(server.submissions()).into_tls(std::sync::Arc::new(config));
    assert!(client.reply().starts_with("220"));
    let login = client.login_plain(ALICE, ALICE_PASSWORD);
    assert!(login.starts_with("235"), "{login}");
    let reply = client.transaction(ALICE, "postmaster@mx.test", "Subject: tls12\r\n\r\nhi\r\n");
    assert!(reply.starts_with("250"), "{reply}");
    let queued = queued_text(&server);
    assert!(queued[0].contains("(using TLSv1.2)"), "{}", queued[0]);
}

fn root_store(cert_pem: &[u8]) -> rustls::RootCertStore {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    roots
}

#[test]
fn lettre_wrong_password_is_refused() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mailer = authenticated_mailer(
        &server,
        server.submissions().port(),
        Tls::Wrapper,
        Mechanism::Plain,
        "wrong",
    );
    let err = mailer
        .send(&message(ALICE, "bob@example.org", "nope"))
        .unwrap_err();
    assert!(err.to_string().contains("535"), "{err}");
    assert!(server.queued_messages().is_empty());
}

#[test]
fn lettre_plain_smtp_to_a_local_user() {
    // Not from a relay network, so only local recipients are accepted.
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| c.relay_networks.clear());
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(server.smtp().port())
        .tls(Tls::None)
        .timeout(Some(Duration::from_secs(10)))
        .build();
    mailer
        .send(&message("someone@example.org", ALICE, "via 25"))
        .unwrap();
    assert_eq!(server.queued_messages().len(), 1);
}

#[test]
fn starttls_discards_pipelined_plaintext() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut client = Client::greeted(server.submission());
    assert!(client.command("EHLO client.test").starts_with("250"));
    // CVE-2011-0411: the RSET rides along in plaintext and must be dropped.
    client.send(b"STARTTLS\r\nRSET\r\n");
    assert!(client.reply().starts_with("220"));
    let mut tls = client.into_tls(server.tls_client_config());
    let ehlo = tls.command("EHLO client.test");
    assert!(
        ehlo.starts_with("250-"),
        "the first reply after TLS must answer EHLO: {ehlo}"
    );
    assert!(ehlo.contains("AUTH"), "{ehlo}");
    assert!(tls.command("QUIT").starts_with("221"));
}

#[test]
fn per_ip_connection_limit() {
    let server = TestServer::start_with(&[], |c| {
        c.relay_networks.clear();
        c.max_connections_per_ip = 2;
    });
    let _first = Client::greeted(server.smtp());
    let _second = Client::greeted(server.submission());
    let mut third = Client::connect(server.smtp());
    let reply = third.reply();
    assert!(
        reply.starts_with("421 4.7.0") && reply.contains("your address"),
        "{reply}"
    );
    third.expect_closed();
    drop(_first);
    // The slot frees up once the server has seen the close.
    assert!(wait_until(Duration::from_secs(5), || {
        let mut again = Client::connect(server.smtp());
        again.reply().starts_with("220")
    }));
}

#[test]
fn relay_networks_are_exempt_from_the_per_ip_limit_but_not_the_total() {
    let server = TestServer::start_with(&[], |c| {
        c.max_connections_per_ip = 1;
        c.max_connections = 3;
    });
    let _held: Vec<_> = (0..3).map(|_| Client::greeted(server.smtp())).collect();
    let mut fourth = Client::connect(server.smtp());
    let reply = fourth.reply();
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
}

#[test]
fn idle_client_times_out() {
    let server = TestServer::start_with(&[], |c| c.command_timeout = Duration::from_millis(300));
    let mut client = Client::greeted(server.smtp());
    let started = Instant::now();
    let reply = client.reply();
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    client.expect_closed();
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn slow_client_is_cut_off_by_the_connection_timeout() {
    let server = TestServer::start_with(&[], |c| c.connection_timeout = Duration::from_millis(800));
    let mut client = Client::greeted(server.smtp());
    let started = Instant::now();
    // Keep talking so the idle timeout never fires.
    let mut reply = String::new();
    while started.elapsed() < Duration::from_secs(5) {
        reply = client.command("NOOP");
        if !reply.starts_with("250") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    client.expect_closed();
}

#[test]
fn talking_before_the_greeting_is_refused() {
    let server = TestServer::start_with(&[], |c| c.greeting_delay = Duration::from_millis(500));
    let mut eager = Client::connect(server.smtp());
    eager.send(b"EHLO eager.test\r\n");
    let reply = eager.reply();
    assert!(reply.starts_with("554 5.5.1"), "{reply}");
    eager.expect_closed();
    let started = Instant::now();
    let _patient = Client::greeted(server.smtp());
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[test]
fn tls_client_on_the_plaintext_port_is_closed_quickly() {
    let server = TestServer::start(&[]);
    let mut client = Client::connect(server.submission());
    // A TLS ClientHello begins with the handshake record type 0x16.
    client.send(&[0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]);
    assert!(client.expect_closed() < Duration::from_secs(3));
}

#[test]
fn plaintext_client_on_the_implicit_tls_port_is_closed_quickly() {
    let server = TestServer::start_with(&[], |c| {
        c.tls_handshake_timeout = Duration::from_millis(500)
    });
    // One that talks first...
    let mut talker = Client::connect(server.submissions());
    talker.send(b"EHLO plain.test\r\n");
    assert!(talker.expect_closed() < Duration::from_secs(3));
    // ...and one that waits for a greeting that never comes in plaintext.
    let mut waiter = Client::connect(server.submissions());
    assert!(waiter.expect_closed() < Duration::from_secs(3));
}

#[test]
fn two_hundred_concurrent_clients_each_send_a_message() {
    const CLIENTS: usize = 200;
    let server = TestServer::start(&[]);
    let address = server.smtp();
    let threads: Vec<_> = (0..CLIENTS)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::greeted(address);
                let body = format!("Subject: load {i}\r\n\r\nmessage {i}\r\n");
                let reply = client.send_mail("load@example.org", "postmaster@mx.test", &body);
                assert!(reply.starts_with("250"), "client {i}: {reply}");
                assert!(client.command("QUIT").starts_with("221"));
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(server.queued_messages().len(), CLIENTS);
}

#[test]
fn shutdown_lets_a_session_finish_then_closes_idle_ones() {
    let mut server = TestServer::start(&[]);
    let address = server.smtp();
    let mut idle = Client::greeted(address);
    let mut busy = Client::greeted(address);
    assert!(busy.command("EHLO busy.test").starts_with("250"));
    assert!(busy.command("MAIL FROM:<a@example.org>").starts_with("250"));
    assert!(busy
        .command("RCPT TO:<postmaster@mx.test>")
        .starts_with("250"));
    assert!(busy.command("DATA").starts_with("354"));
    busy.send(b"Subject: in flight\r\n\r\n");
    let started = Instant::now();
    let stopper = std::thread::spawn(move || server.shutdown());
    // The stop is underway: no new connections, but the message may finish.
    std::thread::sleep(Duration::from_millis(200));
    let reply = busy.command("still here\r\n.");
    assert!(reply.starts_with("250"), "{reply}");
    // After the grace period (1 s in tests) the rest get 421 4.3.2.
    let reply = idle.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    idle.expect_closed();
    stopper.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(8));
    assert!(
        std::net::TcpStream::connect(address).is_err(),
        "still accepting after shutdown"
    );
}

#[test]
fn sigterm_stops_the_binary_with_exit_code_zero() {
    let dir = TempDir::new("sigterm");
    let mut binary = Binary::start(dir.path(), &["--shutdown-grace", "1s"]);
    let mut client = Client::greeted(binary.address);
    assert!(client.command("NOOP").starts_with("250"));
    binary.signal("TERM");
    let reply = client.reply();
    assert!(reply.starts_with("421 4.3.2"), "{reply}");
    assert_eq!(binary.exit_code(), Some(0));
    let stdout = std::io::read_to_string(binary.child.stdout.take().unwrap()).unwrap();
    assert!(
        stdout.contains("postmaster@mx.test"),
        "first start message: {stdout}"
    );
}

#[test]
fn a_client_that_does_not_read_its_replies_is_slowed_down_not_buffered() {
    const COMMANDS: usize = 200_000;
    let server = TestServer::start(&[]);
    let mut client = Client::greeted(server.smtp());
    let mut writer = client.stream.try_clone().unwrap();
    // Megabytes of replies pile up unread; the server must stop reading
    // (bounded output) rather than buffer them, and catch up later.
    let sender = std::thread::spawn(move || {
        use std::io::Write;
        let batch = "NOOP\r\n".repeat(1000);
        for _ in 0..COMMANDS / 1000 {
            writer.write_all(batch.as_bytes()).unwrap();
        }
        writer.write_all(b"QUIT\r\n").unwrap();
    });
    std::thread::sleep(Duration::from_millis(300));
    let mut noops = 0;
    loop {
        let reply = client.reply();
        if reply.starts_with("221") {
            break;
        }
        assert!(reply.starts_with("250"), "{reply}");
        noops += 1;
    }
    sender.join().unwrap();
    assert_eq!(noops, COMMANDS);
}

#[test]
fn large_bdat_chunks_and_long_data_pass_through_the_bounded_input_buffer() {
    let server = TestServer::start(&[]);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    client.envelope("a@example.org", "postmaster@mx.test");
    let line = format!("{}\r\n", "x".repeat(98));
    let body = format!("Subject: big\r\n\r\n{}", line.repeat(3000));
    client.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    client.send(body.as_bytes());
    let reply = client.reply();
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction("a@example.org", "postmaster@mx.test", &body);
    assert!(reply.starts_with("250"), "{reply}");
    let queued = server.queued_messages();
    assert_eq!(queued.len(), 2);
    for path in queued {
        assert!(std::fs::metadata(path).unwrap().len() > body.len() as u64);
    }
}

#[test]
fn commands_sent_while_a_message_is_being_spooled_are_answered() {
    // QUIT arrives while the spool syncs the message: the connection is
    // parked then, and must still read it when the 250 is ready.
    let server = TestServer::start(&[]);
    for _ in 0..20 {
        let mut client = Client::greeted(server.smtp());
        assert!(client.command("EHLO client.test").starts_with("250"));
        client.envelope("a@example.org", "postmaster@mx.test");
        assert!(client.command("DATA").starts_with("354"));
        client.send(b"Subject: t\r\n\r\nbody\r\n.\r\n");
        client.send(b"QUIT\r\n");
        let queued = client.reply();
        assert!(queued.starts_with("250"), "{queued}");
        let bye = client.reply();
        assert!(bye.starts_with("221"), "{bye}");
    }
}

#[test]
fn zero_workers_serve_on_the_event_loop() {
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| c.workers = 0);
    // TLS, a password check and spooling, all with no worker thread.
    let mailer = authenticated_mailer(
        &server,
        server.submission().port(),
        Tls::Required,
        Mechanism::Login,
        ALICE_PASSWORD,
    );
    mailer
        .send(&message(ALICE, "bob@example.org", "no workers"))
        .unwrap();
    // Many plain clients at once.
    let address = server.smtp();
    let threads: Vec<_> = (0..20)
        .map(|i| {
            std::thread::spawn(move || {
                let mut client = Client::greeted(address);
                let body = format!("Subject: inline {i}\r\n\r\nmessage {i}\r\n");
                let reply = client.send_mail("load@example.org", "postmaster@mx.test", &body);
                assert!(reply.starts_with("250"), "client {i}: {reply}");
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(queued_text(&server).len(), 21);
}

#[test]
fn mail_for_an_alias_of_a_local_domain_is_accepted_from_other_servers() {
    let files = TempDir::new("aliases");
    let aliases = files.path().join("aliases");
    std::fs::write(&aliases, format!("sales@{HOSTNAME}: {ALICE}\n")).unwrap();
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| {
        c.relay_networks.clear();
        c.delivery.aliases = Some(aliases.clone());
    });
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO other.example").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<someone@other.example>")
        .starts_with("250"));
    let reply = client.command(&format!("RCPT TO:<Sales@{HOSTNAME}>"));
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.command(&format!("RCPT TO:<nobody@{HOSTNAME}>"));
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
}

/// The `outpost` binary serving plain SMTP on a loopback port, its log
/// read on a thread (so the pipe never fills) and kept for
/// [`Binary::wait_for_log`].
struct Binary {
    child: std::process::Child,
    address: std::net::SocketAddr,
    log: std::sync::mpsc::Receiver<String>,
}

impl Binary {
    /// `outpost serve` with data in `dir`, the smtp role only, and `extra`.
    fn start(dir: &std::path::Path, extra: &[&str]) -> Binary {
        let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
            .args(["serve", "--hostname", HOSTNAME, "--smtp", "127.0.0.1:0"])
            .args(["--submission", "off", "--submissions", "off"])
            .args(extra)
            .arg("--data-dir")
            .arg(dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        let mut binary = Binary {
            child,
            address: ([0, 0, 0, 0], 0).into(),
            log,
        };
        let line = binary.wait_for_log("listening on ");
        binary.address = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|address| address.parse().ok())
            .expect("the server logged its address");
        binary
    }

    /// Waits up to 10 s for a log line containing `text`.
    fn wait_for_log(&self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(_) => {}
                Err(e) => panic!("no log line with {text:?}: {e}"),
            }
        }
    }

    /// Sends the server `SIG<name>`.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to 10 s for the server to exit; its exit code.
    fn exit_code(&mut self) -> Option<i32> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn sighup_reloads_the_users_file_the_aliases_the_certificate_and_the_dkim_keys() {
    let dir = TempDir::new("sighup");
    let users = dir.path().join("users");
    let aliases = dir.path().join("aliases");
    let bob = format!("bob@{HOSTNAME}");
    let alice_line = format!("{ALICE}:{}\n", outpost::auth::hash_password(ALICE_PASSWORD));
    std::fs::write(&users, &alice_line).unwrap();
    std::fs::write(&aliases, "").unwrap();
    let (users_arg, aliases_arg) = (users.to_str().unwrap(), aliases.to_str().unwrap());
    let mut binary = Binary::start(
        &dir.path().join("data"),
        &[
            "--local-domains",
            HOSTNAME,
            "--relay-networks",
            "none",
            "--delivery",
            "off",
            "--users",
            users_arg,
            "--aliases",
            aliases_arg,
        ],
    );
    let rcpt = |to: &str| {
        let mut client = Client::greeted(binary.address);
        client.command("EHLO other.example");
        client.command("MAIL FROM:<someone@other.example>");
        client.command(&format!("RCPT TO:<{to}>"))
    };
    assert!(rcpt(&bob).starts_with("550"));
    assert!(rcpt(&format!("sales@{HOSTNAME}")).starts_with("550"));

    // A users file that does not parse leaves the old one in force.
    std::fs::write(&users, "not a users line\n").unwrap();
    binary.signal("HUP");
    binary.wait_for_log("users file not reloaded");
    assert!(rcpt(ALICE).starts_with("250"));

    let bob_line = format!("{bob}:{}\n", outpost::auth::hash_password("bob's password"));
    std::fs::write(&users, format!("{alice_line}{bob_line}")).unwrap();
    std::fs::write(&aliases, format!("sales@{HOSTNAME}: {bob}\n")).unwrap();
    binary.signal("HUP");
    binary.wait_for_log("aliases: 1 in force");
    assert!(rcpt(&bob).starts_with("250"));
    assert!(rcpt(&format!("sales@{HOSTNAME}")).starts_with("250"));
    assert!(rcpt(ALICE).starts_with("250"));

    // A renewed certificate (written next to the old pair, then moved over
    // it, as certbot's deploy hooks do) is presented after SIGHUP.
    let tls = dir.path().join("data/tls");
    let (cert, key) = (tls.join("cert.pem"), tls.join("key.pem"));
    let (new_cert, new_key) = (tls.join("new-cert.pem"), tls.join("new-key.pem"));
    outpost::tls::generate_self_signed(&[HOSTNAME.to_string()], &new_cert, &new_key).unwrap();
    let renewed = std::fs::read(&new_cert).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    binary.signal("HUP");
    // Every reload logs "TLS certificate reloaded": read up to this reload's
    // first line, so that the line of the reload before is not taken for it.
    binary.wait_for_log("received SIGHUP");
    binary.wait_for_log("TLS certificate reloaded");
    let mut client = Client::greeted(binary.address);
    assert!(client.command("EHLO other.example").contains("STARTTLS"));
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut client = client.into_tls(tls_client_config(&renewed));
    assert!(client.command("EHLO other.example").starts_with("250"));
    assert!(client.command("QUIT").starts_with("221"));

    // A new key (made by `outpost dns`, as to rotate) signs after SIGHUP;
    // one that does not load leaves the keys in force as they were.
    let data = dir.path().join("data");
    let made = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["dns", HOSTNAME, "--hostname", HOSTNAME, "--dkim-selector"])
        .arg("outpost209912")
        .arg("--data-dir")
        .arg(&data)
        .output()
        .unwrap();
    assert!(made.status.success());
    binary.signal("HUP");
    binary.wait_for_log(&format!(
        "DKIM keys in force: outpost209912._domainkey.{HOSTNAME}"
    ));
    let new_key = data.join(format!("dkim/{HOSTNAME}/outpost209912.key"));
    std::fs::write(&new_key, "not a key").unwrap();
    binary.signal("HUP");
    binary.wait_for_log("DKIM keys not reloaded");

    binary.signal("TERM");
    assert_eq!(binary.exit_code(), Some(0));
}

/// A client that sends its last command and closes its side at once (the
/// FIN comes with the data) is answered and let go at once, not kept
/// until the idle timeout; the same for one that hangs up mid-message.
#[test]
fn a_client_that_closes_right_after_its_last_bytes_is_let_go_at_once() {
    let server = TestServer::start(&[]);
    for (label, input) in [
        ("after NOOP", b"EHLO c\r\nNOOP\r\n".to_vec()),
        (
            "mid-message",
            [
                &b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<postmaster>\r\nDATA\r\n"[..],
                &[b'x'; 100][..],
            ]
            .concat(),
        ),
    ] {
        for _ in 0..20 {
            let mut stream = std::net::TcpStream::connect(server.smtp()).unwrap();
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut greeting = [0u8; 64];
            let _ = std::io::Read::read(&mut stream, &mut greeting).unwrap();
            std::io::Write::write_all(&mut stream, &input).unwrap();
            stream.shutdown(std::net::Shutdown::Write).unwrap();
            let started = Instant::now();
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut stream, &mut rest).unwrap();
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{label}: the server kept the connection {:?}",
                started.elapsed()
            );
        }
    }
}
