//! Acceptance transcripts against the real server on loopback listeners,
//! spoken with raw bytes: relay policy and its tricks, submission and AUTH
//! (Outlook's dialogue included), login throttling, SMTP smuggling,
//! STARTTLS injection, pipelining, BDAT, the protocol limits, durability of
//! the spool and `--sink`.

mod support;

use std::time::{Duration, Instant};

use base64::Engine;
use outpost::queue::{QueueId, Spool};
use support::*;

const ALICE: &str = "alice@mx.test";
const ALICE_PASSWORD: &str = "correct horse battery staple";
const BOB: &str = "bob@mx.test";
const BOB_PASSWORD: &str = "tr0ub4dor&3";

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// The queue id in a `250 2.0.0 Ok: queued as <id>` reply.
fn queue_id(reply: &str) -> QueueId {
    assert!(
        reply.starts_with("250 2.0.0 "),
        "not a queued reply: {reply}"
    );
    reply
        .trim_end()
        .rsplit_once("queued as ")
        .and_then(|(_, id)| id.parse().ok())
        .unwrap_or_else(|| panic!("no queue id in {reply}"))
}

/// The queued message bytes without the Received header we prepend (its
/// first line plus its folded continuation lines).
fn after_received(message: &[u8]) -> &[u8] {
    assert!(message.starts_with(b"Received: "), "{message:?}");
    let mut at = 0;
    loop {
        let end = at
            + message[at..]
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("a whole Received header")
            + 2;
        at = end;
        if !matches!(message.get(at), Some(b' ' | b'\t')) {
            return &message[at..];
        }
    }
}

/// A server whose smtp listener does not trust loopback (`--relay-networks
/// none`), so 127.0.0.1 is an ordinary outside client.
fn untrusting_server() -> TestServer {
    TestServer::start_with(&[(ALICE, ALICE_PASSWORD), (BOB, BOB_PASSWORD)], |c| {
        c.relay_networks = Vec::new();
    })
}

/// Greeted, EHLO'd and upgraded to TLS on the submission port.
fn submission_tls(server: &TestServer) -> Client<TlsStream> {
    let mut client = Client::greeted(server.submission());
    assert!(client.command("EHLO client.test").starts_with("250"));
    let reply = client.command("STARTTLS");
    assert!(reply.starts_with("220 2.0.0"), "{reply}");
    let mut tls = client.into_tls(server.tls_client_config());
    let ehlo = tls.command("EHLO client.test");
    assert!(ehlo.starts_with("250-"), "{ehlo}");
    tls
}

/// Greeted on the implicit-TLS port and logged in as `user`.
fn logged_in(server: &TestServer, user: &str, password: &str) -> Client<TlsStream> {
    let mut client = Client::connect(server.submissions()).into_tls(server.tls_client_config());
    assert!(client.reply().starts_with("220 "));
    let reply = client.login_plain(user, password);
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
    client
}

// ---------------------------------------------------------------------------
// Relay policy on the smtp listener, from an untrusted client.

#[test]
fn relay_to_a_remote_domain_is_denied() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO outside.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<someone@example.org>")
        .starts_with("250"));
    let reply = client.command("RCPT TO:<victim@example.net>");
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    let reply = client.command("DATA");
    assert!(reply.starts_with("554 5.5.1"), "{reply}");
    assert!(client.command("QUIT").starts_with("221"));
    assert!(server.queued_messages().is_empty());
}

#[test]
fn relay_tricks_to_a_local_domain_never_get_250() {
    let tricks = [
        "<alice%victim.example@mx.test>",
        "<@mx.test:alice@victim.example>",
        "<\"alice@victim.example\"@mx.test>",
        "<alice!victim.example@mx.test>",
        "<alice@[127.0.0.1]>",
        "<@mx.test,@mx.test:alice@mx.test>",
        "<alice%mx.test@mx.test>",
    ];
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO outside.test").starts_with("250"));
    // Each also without angle brackets, as old clients write addresses.
    let unbracketed = tricks.map(|trick| format!(" {}", &trick[1..trick.len() - 1]));
    for trick in tricks.map(String::from).into_iter().chain(unbracketed) {
        assert!(client
            .command("MAIL FROM:<someone@example.org>")
            .starts_with("250"));
        let reply = client.command(&format!("RCPT TO:{trick}"));
        assert!(
            reply.starts_with('5') && !reply.starts_with("250"),
            "{trick}: {reply}"
        );
        let data = client.command("DATA");
        assert!(!data.starts_with("354"), "{trick}: DATA {data}");
        assert!(client.command("RSET").starts_with("250"));
    }
    assert!(client.command("QUIT").starts_with("221"));
    assert!(server.queued_messages().is_empty());
}

#[test]
fn relay_tricks_are_refused_even_for_trusted_networks() {
    // Loopback is a relay network by default: plain remote addresses pass,
    // but an address that hides another hop still does not.
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO printer.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<scanner@mx.test>")
        .starts_with("250"));
    for trick in [
        "<alice%victim.example@mx.test>",
        "<@mx.test:alice@victim.example>",
        "<\"alice@victim.example\"@mx.test>",
        "<alice!victim.example@mx.test>",
        " alice%victim.example@mx.test",
        " @mx.test:alice@victim.example",
        "\"alice@victim.example\"@mx.test",
        " alice!victim.example@mx.test NOTIFY=NEVER",
    ] {
        let reply = client.command(&format!("RCPT TO:{trick}"));
        assert!(reply.starts_with("550 5.7.1"), "{trick}: {reply}");
    }
    let reply = client.command("RCPT TO:<friend@example.net>");
    assert!(reply.starts_with("250 2.1.5"), "{reply}");
}

#[test]
fn unknown_local_user_is_refused_with_5_1_1() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO outside.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<someone@example.org>")
        .starts_with("250"));
    let reply = client.command("RCPT TO:<nobody@mx.test>");
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
}

#[test]
fn known_local_user_and_postmaster_are_accepted_and_queued() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail(
        "someone@example.org",
        ALICE,
        "Subject: to alice\r\n\r\nhello\r\n",
    );
    let first = queue_id(&reply);
    // Domain case does not matter; postmaster always exists (RFC 5321 §4.5.1).
    assert!(client
        .command("MAIL FROM:<someone@example.org>")
        .starts_with("250"));
    for rcpt in ["<postmaster@mx.test>", "<Postmaster>", "<bob@MX.TEST>"] {
        let reply = client.command(&format!("RCPT TO:{rcpt}"));
        assert!(reply.starts_with("250 2.1.5"), "{rcpt}: {reply}");
    }
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: to postmaster\r\n\r\nhello\r\n");
    let second = queue_id(&client.command("."));
    assert!(client.command("QUIT").starts_with("221"));

    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let loaded = spool.load(&first).unwrap();
    assert_eq!(loaded.mail_from.sender, "someone@example.org");
    let recipients: Vec<_> = loaded
        .recipients
        .iter()
        .map(|e| e.recipient.address.clone())
        .collect();
    assert_eq!(recipients, [ALICE]);
    let loaded = spool.load(&second).unwrap();
    assert_eq!(loaded.recipients.len(), 3);
    assert_eq!(server.queued_messages().len(), 2);
}

// ---------------------------------------------------------------------------
// Submission: TLS first, then AUTH, then mail.

#[test]
fn submission_refuses_auth_before_tls_and_does_not_advertise_it() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut client = Client::greeted(server.submission());
    let ehlo = client.command("EHLO client.test");
    assert!(
        ehlo.contains("250-STARTTLS") || ehlo.contains("250 STARTTLS"),
        "{ehlo}"
    );
    assert!(!ehlo.contains("AUTH"), "AUTH offered before TLS: {ehlo}");
    let plain = b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"));
    let reply = client.command(&format!("AUTH PLAIN {plain}"));
    assert!(reply.starts_with("538 5.7.11"), "{reply}");
    let reply = client.command("AUTH LOGIN");
    assert!(reply.starts_with("538 5.7.11"), "{reply}");
    // And no transaction without AUTH.
    let reply = client.command(&format!("MAIL FROM:<{ALICE}>"));
    assert!(reply.starts_with("530 5.7.0"), "{reply}");
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut tls = client.into_tls(server.tls_client_config());
    let ehlo = tls.command("EHLO client.test");
    assert!(ehlo.contains("AUTH PLAIN LOGIN"), "{ehlo}");
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
}

#[test]
fn submission_requires_auth_before_mail() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    let reply = tls.command(&format!("MAIL FROM:<{ALICE}>"));
    assert!(reply.starts_with("530 5.7.0"), "{reply}");
    let reply = tls.command("RCPT TO:<bob@example.org>");
    assert!(reply.starts_with("503"), "{reply}");
    let login = b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"));
    assert!(tls
        .command(&format!("AUTH PLAIN {login}"))
        .starts_with("235 2.7.0"));
    let reply = tls.transaction(ALICE, "bob@example.org", "Subject: ok\r\n\r\nhi\r\n");
    queue_id(&reply);
}

#[test]
fn wrong_password_and_unknown_user_get_the_same_535() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut first = logged_out_submissions(&server);
    let wrong_password = first.login_plain(ALICE, "not the password");
    assert!(wrong_password.starts_with("535 5.7.8"), "{wrong_password}");
    let mut second = logged_out_submissions(&server);
    let unknown_user = second.login_plain("mallory@mx.test", "not the password");
    assert_eq!(wrong_password, unknown_user);
    // The session goes on: a correct login still works.
    let reply = second.command(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

fn logged_out_submissions(server: &TestServer) -> Client<TlsStream> {
    let mut client = Client::connect(server.submissions()).into_tls(server.tls_client_config());
    assert!(client.reply().starts_with("220 "));
    client
}

#[test]
fn outlook_auth_login_dialogue_uses_the_exact_challenges() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    assert_eq!(tls.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(tls.command(&b64(ALICE)), "334 UGFzc3dvcmQ6\r\n");
    let reply = tls.command(&b64(ALICE_PASSWORD));
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

#[test]
fn auth_login_with_an_initial_response_asks_for_the_password_at_once() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    assert_eq!(
        tls.command(&format!("AUTH LOGIN {}", b64(ALICE))),
        "334 UGFzc3dvcmQ6\r\n"
    );
    let reply = tls.command(&b64(ALICE_PASSWORD));
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

#[test]
fn auth_plain_without_initial_response_gets_an_empty_challenge() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    assert_eq!(tls.command("AUTH PLAIN"), "334 \r\n");
    let reply = tls.command(&b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}")));
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

#[test]
fn star_aborts_every_auth_dialogue_with_501() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    assert_eq!(tls.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    let reply = tls.command("*");
    assert!(reply.starts_with("501"), "{reply}");
    assert_eq!(tls.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(tls.command(&b64(ALICE)), "334 UGFzc3dvcmQ6\r\n");
    let reply = tls.command("*");
    assert!(reply.starts_with("501"), "{reply}");
    assert_eq!(tls.command("AUTH PLAIN"), "334 \r\n");
    let reply = tls.command("*");
    assert!(reply.starts_with("501"), "{reply}");
    // Still not logged in, and still able to log in.
    let reply = tls.command(&format!("MAIL FROM:<{ALICE}>"));
    assert!(reply.starts_with("530 5.7.0"), "{reply}");
    let reply = tls.command(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert!(reply.starts_with("235"), "{reply}");
}

#[test]
fn outlook_syntax_space_after_colon_and_machine_name_are_accepted() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut client = Client::greeted(server.submission());
    assert!(client.command("EHLO DESKTOP-7Q2K3LM").starts_with("250"));
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut tls = client.into_tls(server.tls_client_config());
    assert!(tls.command("EHLO DESKTOP-7Q2K3LM").starts_with("250"));
    assert_eq!(tls.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    assert_eq!(tls.command(&b64(ALICE)), "334 UGFzc3dvcmQ6\r\n");
    assert!(tls.command(&b64(ALICE_PASSWORD)).starts_with("235"));
    let reply = tls.command(&format!("MAIL FROM: <{ALICE}>"));
    assert!(reply.starts_with("250 2.1.0"), "{reply}");
    let reply = tls.command("RCPT TO: <bob@example.org>");
    assert!(reply.starts_with("250 2.1.5"), "{reply}");
    assert!(tls.command("DATA").starts_with("354"));
    tls.send(b"Subject: from Outlook\r\n\r\nhi\r\n");
    let id = queue_id(&tls.command("."));
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let loaded = spool.load(&id).unwrap();
    assert_eq!(loaded.origin.client().unwrap().helo, "DESKTOP-7Q2K3LM");
    assert_eq!(
        loaded.origin.client().unwrap().auth_user.as_deref(),
        Some(ALICE)
    );
    let text = String::from_utf8(spool.read_message(&id).unwrap()).unwrap();
    assert!(text.contains("DESKTOP-7Q2K3LM"), "{text}");
}

#[test]
fn mail_and_rcpt_without_angle_brackets_are_accepted_with_their_parameters() {
    let server = untrusting_server();
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO old-scanner.test").starts_with("250"));
    for (mail, rcpt) in [
        (
            "MAIL FROM: scanner@example.org SIZE=100".to_string(),
            format!("RCPT TO: {ALICE}"),
        ),
        (
            "MAIL FROM:scanner@example.org".to_string(),
            format!("RCPT TO:{ALICE} NOTIFY=NEVER"),
        ),
    ] {
        let reply = client.command(&mail);
        assert!(reply.starts_with("250 2.1.0"), "{mail}: {reply}");
        let reply = client.command(&rcpt);
        assert!(reply.starts_with("250 2.1.5"), "{rcpt}: {reply}");
        assert!(client.command("DATA").starts_with("354"));
        client.send(b"Subject: scan\r\n\r\nscanned\r\n");
        let loaded = spool.load(&queue_id(&client.command("."))).unwrap();
        assert_eq!(loaded.mail_from.sender, "scanner@example.org");
        assert_eq!(loaded.recipients[0].recipient.address, ALICE);
    }
    // The same checks as with brackets: no relay, no unknown users, no
    // size over the limit, no junk after the address.
    for (line, expected) in [
        ("MAIL FROM: a@example.org SIZE=999999999999", "552 5.3.4"),
        ("MAIL FROM: a@example.org>", "501 5.1.7"),
        ("MAIL FROM: <>", "250 2.1.0"),
        ("RCPT TO: friend@example.net", "554 5.7.1"),
        ("RCPT TO: nobody@mx.test", "550 5.1.1"),
        ("RCPT TO: alice@mx.test,bob@mx.test", "501 5.1.3"),
    ] {
        let reply = client.command(line);
        assert!(reply.starts_with(expected), "{line}: {reply}");
    }
    assert!(client.command("QUIT").starts_with("221"));
    assert_eq!(server.queued_messages().len(), 2);
}

#[test]
fn sending_as_another_users_address_is_refused() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD), (BOB, BOB_PASSWORD)]);
    let mut tls = logged_in(&server, ALICE, ALICE_PASSWORD);
    let reply = tls.command(&format!("MAIL FROM:<{BOB}>"));
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
    let reply = tls.command("MAIL FROM:<ceo@example.com>");
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
    // Her own address, in any domain case, is fine.
    let reply = tls.command("MAIL FROM:<alice@MX.TEST>");
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn auth_equals_line_is_advertised_only_when_asked_for() {
    for (enabled, expected) in [(false, false), (true, true)] {
        let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| {
            c.auth_equals_line = enabled;
        });
        let mut tls = submission_tls(&server);
        let ehlo = tls.command("EHLO client.test");
        assert!(ehlo.contains("AUTH PLAIN LOGIN\r\n"), "{ehlo}");
        assert_eq!(ehlo.contains("AUTH=PLAIN LOGIN\r\n"), expected, "{ehlo}");
    }
}

#[test]
fn auth_equals_line_flag_reaches_the_config() {
    let args: Vec<String> = ["--auth-equals-line"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    match outpost::config::parse_args(&args).unwrap() {
        outpost::config::ServeArgs::Run(config) => assert!(config.auth_equals_line),
        other => panic!("{other:?}"),
    }
}

#[test]
fn starttls_after_auth_is_refused() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = logged_in(&server, ALICE, ALICE_PASSWORD);
    let reply = tls.command("STARTTLS");
    assert!(reply.starts_with("503 5.5.1"), "{reply}");
    // The session is unharmed.
    let reply = tls.transaction(ALICE, "bob@example.org", "Subject: x\r\n\r\nx\r\n");
    queue_id(&reply);
}

// ---------------------------------------------------------------------------
// Login throttling across connections.

#[test]
fn repeated_wrong_passwords_from_one_ip_end_in_421_and_close() {
    // AuthLimits::default(): 5 failures in 10 minutes, 0.5 s more delay per
    // failure, so five failures cost 0.5 + 1 + 1.5 + 2 + 2.5 = 7.5 s.
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let started = Instant::now();
    let mut failures = 0;
    for connection in 0..3 {
        let mut client = logged_out_submissions(&server);
        assert!(client.command("EHLO guesser.test").starts_with("250"));
        for _ in 0..2 {
            if failures == 5 {
                break;
            }
            let reply = client.command(&format!(
                "AUTH PLAIN {}",
                b64(&format!("\0{ALICE}\0guess {failures}"))
            ));
            assert!(
                reply.starts_with("535 5.7.8"),
                "connection {connection}, failure {failures}: {reply}"
            );
            failures += 1;
        }
    }
    assert_eq!(failures, 5);
    assert!(
        started.elapsed() >= Duration::from_secs(7),
        "no growing delay"
    );
    // The sixth try is refused at once (no delay to wait out), and the
    // connection closes. Even the right password is refused meanwhile.
    for password in ["guess 5", ALICE_PASSWORD] {
        let mut client = logged_out_submissions(&server);
        let asked = Instant::now();
        let reply = client.login_plain(ALICE, password);
        assert!(reply.starts_with("421 4.7.0"), "{password}: {reply}");
        assert!(asked.elapsed() < Duration::from_secs(2), "{password}");
        client.expect_closed();
    }
}

// ---------------------------------------------------------------------------
// SMTP smuggling: only CRLF.CRLF ends DATA; bare CR or LF, or a NUL (which a
// next hop may drop), rejects the message at its real end.

/// The reply to a message with a bare CR or LF.
const BARE: &str = "550 5.5.2";
/// The reply to a message with a NUL.
const NUL: &str = "550 5.6.0";

const SMUGGLING: &[(&str, &[u8], &str)] = &[
    // (name, end-of-data imitation, the refusal at the real end)
    ("LF.LF", b"\n.\n", BARE),
    ("LF.CRLF", b"\n.\r\n", BARE),
    ("CR.LF", b"\r.\n", BARE),
    ("CR.CR", b"\r.\r", BARE),
    ("CR.CRLF", b"\r.\r\n", BARE),
    ("CRLF.CR", b"\r\n.\r", BARE),
    ("CRLF.LF", b"\r\n.\n", BARE),
    ("LF.CR", b"\n.\r", BARE),
    ("CRLF NUL.CRLF", b"\r\n\x00.\r\n", NUL),
    ("CRLF.NUL CRLF", b"\r\n.\x00\r\n", NUL),
];

#[test]
fn every_smuggling_sequence_is_refused_and_never_queues_a_second_message() {
    let server = untrusting_server();
    for (name, fake_end, refusal) in SMUGGLING {
        let mut client = Client::greeted(server.smtp());
        assert!(client.command("EHLO outside.test").starts_with("250"));
        client.envelope("sender@example.org", ALICE);
        assert!(client.command("DATA").starts_with("354"));
        let mut body = b"Subject: smuggling test\r\n\r\nfirst message".to_vec();
        body.extend_from_slice(fake_end);
        body.extend_from_slice(
            format!(
                "MAIL FROM:<evil@x>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n\
                 Subject: smuggled\r\n\r\nsmuggled message\r\n.\r\n"
            )
            .as_bytes(),
        );
        client.send(&body);
        // One reply, at the real end: nothing in between was a command.
        let reply = client.reply();
        assert!(reply.starts_with(refusal), "{name}: {reply}");
        let reply = client.command("QUIT");
        assert!(reply.starts_with("221"), "{name}: {reply}");
        client.expect_closed();
        assert!(server.queued_messages().is_empty(), "{name}");
    }
}

#[test]
fn smuggling_sequences_split_across_writes_are_refused_too() {
    let server = untrusting_server();
    for (name, fake_end, refusal) in SMUGGLING {
        let mut client = Client::greeted(server.smtp());
        assert!(client.command("EHLO outside.test").starts_with("250"));
        client.envelope("sender@example.org", ALICE);
        assert!(client.command("DATA").starts_with("354"));
        client.send(b"Subject: split\r\n\r\nfirst");
        // One byte at a time, with pauses so each arrives in its own read.
        for byte in fake_end.iter() {
            client.send(&[*byte]);
            std::thread::sleep(Duration::from_millis(5));
        }
        client.send(b"MAIL FROM:<evil@x>\r\nRCPT TO:<bob@mx.test>\r\nDATA\r\nsmuggled\r\n.\r\n");
        let reply = client.reply();
        assert!(reply.starts_with(refusal), "{name}: {reply}");
        assert!(client.command("QUIT").starts_with("221"), "{name}");
    }
    assert!(server.queued_messages().is_empty());
}

// ---------------------------------------------------------------------------
// STARTTLS injection (CVE-2011-0411) and pipelining.

#[test]
fn commands_injected_after_starttls_are_not_answered() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    for (port, injected) in [
        (server.submission(), "RSET\r\n"),
        (server.smtp(), "MAIL FROM:<evil@x>\r\n"),
        (
            server.smtp(),
            "MAIL FROM:<evil@x>\r\nRCPT TO:<postmaster@mx.test>\r\n",
        ),
    ] {
        let mut client = Client::greeted(port);
        assert!(client.command("EHLO client.test").starts_with("250"));
        client.send(format!("STARTTLS\r\n{injected}").as_bytes());
        let reply = client.reply();
        assert!(reply.starts_with("220 2.0.0"), "{injected:?}: {reply}");
        let mut tls = client.into_tls(server.tls_client_config());
        let ehlo = tls.command("EHLO client.test");
        assert!(
            ehlo.starts_with("250-") && ehlo.contains("Hello client.test"),
            "{injected:?}: the first reply over TLS must answer our EHLO: {ehlo}"
        );
        // The injected MAIL did not start a transaction.
        let reply = tls.command("RCPT TO:<postmaster@mx.test>");
        assert!(reply.starts_with("503"), "{injected:?}: {reply}");
        let reply = tls.command("NOOP");
        assert!(reply.starts_with("250"), "{injected:?}: {reply}");
    }
    assert!(server.queued_messages().is_empty());
}

#[test]
fn a_whole_transaction_pipelined_in_one_write_is_answered_in_order() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    client.send(
        b"EHLO pipeliner.test\r\n\
          MAIL FROM:<sender@example.org>\r\n\
          RCPT TO:<alice@mx.test>\r\n\
          RCPT TO:<nobody@mx.test>\r\n\
          RCPT TO:<bob@mx.test>\r\n\
          DATA\r\n\
          Subject: pipelined\r\n\
          \r\n\
          ..a dot-stuffed line\r\n\
          .\r\n\
          NOOP\r\n\
          QUIT\r\n",
    );
    let ehlo = client.reply();
    assert!(
        ehlo.starts_with("250-") && ehlo.contains("PIPELINING"),
        "{ehlo}"
    );
    let expected = ["250 2.1.0", "250 2.1.5", "550 5.1.1", "250 2.1.5", "354 "];
    for prefix in expected {
        let reply = client.reply();
        assert!(reply.starts_with(prefix), "want {prefix}: {reply}");
    }
    let id = queue_id(&client.reply());
    assert!(client.reply().starts_with("250 2.0.0"));
    assert!(client.reply().starts_with("221"));
    client.expect_closed();
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let loaded = spool.load(&id).unwrap();
    assert_eq!(loaded.recipients.len(), 2);
    let bytes = spool.read_message(&id).unwrap();
    assert_eq!(
        after_received(&bytes),
        b"Subject: pipelined\r\n\r\n.a dot-stuffed line\r\n"
    );
}

// ---------------------------------------------------------------------------
// BDAT (RFC 3030).

#[test]
fn bdat_chunks_are_queued_byte_for_byte() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    let ehlo = client.command("EHLO chunker.test");
    assert!(ehlo.contains("CHUNKING"), "{ehlo}");
    client.envelope("sender@example.org", ALICE);
    // Two chunks in one write; the second has a leading dot that DATA
    // would unstuff, and no final CRLF: BDAT takes octets as they are.
    client.send(b"BDAT 10\r\nSubject: bBDAT 5 LAST\r\n\r\n..x");
    let reply = client.reply();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let id = queue_id(&client.reply());
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let bytes = spool.read_message(&id).unwrap();
    assert_eq!(after_received(&bytes), b"Subject: b\r\n..x");
    assert!(client.command("QUIT").starts_with("221"));
}

#[test]
fn bdat_with_bare_line_feeds_is_accepted_as_binary() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO chunker.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<sender@example.org> BODY=BINARYMIME")
        .starts_with("250"));
    assert!(client
        .command(&format!("RCPT TO:<{ALICE}>"))
        .starts_with("250"));
    let body = b"Subject: binary\n\nbare\nline feeds\rand a bare CR\xff\r\n.\n";
    client.send(format!("BDAT {} LAST\r\n", body.len()).as_bytes());
    client.send(body);
    let id = queue_id(&client.reply());
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let bytes = spool.read_message(&id).unwrap();
    assert_eq!(after_received(&bytes), body);
    // And the session is in step afterwards.
    assert!(client.command("NOOP").starts_with("250"));
}

#[test]
fn a_nul_in_bdat_chunks_refuses_the_message_at_the_last_chunk() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO chunker.test").starts_with("250"));
    for body in ["BINARYMIME", "8BITMIME"] {
        assert!(client
            .command(&format!("MAIL FROM:<sender@example.org> BODY={body}"))
            .starts_with("250"));
        assert!(client
            .command(&format!("RCPT TO:<{ALICE}>"))
            .starts_with("250"));
        // The NUL sits in the first chunk; the refusal waits for LAST.
        client.send(b"BDAT 8\r\nx\r\n\x00.\r\nM");
        assert!(client.reply().starts_with("250 2.0.0"), "{body}");
        client.send(b"BDAT 7 LAST\r\nAIL x\r\n");
        let reply = client.reply();
        assert!(reply.starts_with("550 5.6.0"), "{body}: {reply}");
    }
    // In step afterwards, and nothing was queued.
    assert!(client.command("NOOP").starts_with("250"));
    assert!(server.queued_messages().is_empty());
}

// ---------------------------------------------------------------------------
// Limits, each with its reply and enhanced code.

#[test]
fn a_command_line_over_512_octets_is_refused_and_the_session_continues() {
    let server = TestServer::start(&[]);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    let long = format!("MAIL FROM:<{}@example.org>", "a".repeat(600));
    let reply = client.command(&long);
    assert!(reply.starts_with("500 5.5.2"), "{reply}");
    // Far over the limit: still one reply, then back in step.
    let huge = format!("NOOP {}", "x".repeat(100_000));
    let reply = client.command(&huge);
    assert!(reply.starts_with("500 5.5.2"), "{reply}");
    let reply = client.send_mail(
        "a@example.org",
        "postmaster@mx.test",
        "Subject: x\r\n\r\nx\r\n",
    );
    queue_id(&reply);
}

#[test]
fn text_lines_over_1000_octets_are_accepted_and_kept_unchanged() {
    // From another server (loopback is no relay network here): stored as sent.
    let server = TestServer::start_with(&[], |c| c.relay_networks.clear());
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    // Around RFC 5321's 1000 octets, a line over one read, and a dot-stuffed one.
    for line in [
        "y".repeat(998),
        "y".repeat(999),
        "y".repeat(5000),
        "z".repeat(100_000),
        format!(".{}", "d".repeat(3000)),
    ] {
        let wire_line = if line.starts_with('.') {
            format!(".{line}")
        } else {
            line.clone()
        };
        let body = format!("Subject: long\r\n\r\n{wire_line}\r\nafter\r\n");
        let reply = client.transaction("a@example.org", "postmaster@mx.test", &body);
        let id = queue_id(&reply);
        let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
        let bytes = spool.read_message(&id).unwrap();
        let message = format!("Subject: long\r\n\r\n{line}\r\nafter\r\n");
        assert_eq!(after_received(&bytes), message.as_bytes(), "{}", line.len());
    }
}

#[test]
fn a_long_line_is_bounded_by_the_message_size_limit_alone() {
    const LIMIT: usize = 20_000;
    let server = TestServer::start_with(&[], |c| c.max_message_size = LIMIT);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    let body = format!("{}\r\n", "y".repeat(LIMIT + 1));
    let reply = client.transaction("a@example.org", "postmaster@mx.test", &body);
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    assert!(client.command("NOOP").starts_with("250"));
    assert!(server.queued_messages().is_empty());
    let body = format!("{}\r\n", "y".repeat(LIMIT - 2));
    queue_id(&client.transaction("a@example.org", "postmaster@mx.test", &body));
}

#[test]
fn size_over_the_limit_is_refused_at_mail() {
    let server = TestServer::start_with(&[], |c| c.max_message_size = 10_000);
    let mut client = Client::greeted(server.smtp());
    let ehlo = client.command("EHLO client.test");
    assert!(ehlo.contains("SIZE 10000"), "{ehlo}");
    let reply = client.command("MAIL FROM:<a@example.org> SIZE=10001");
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    let reply = client.command("MAIL FROM:<a@example.org> SIZE=10000");
    assert!(reply.starts_with("250"), "{reply}");
}

#[test]
fn a_body_over_the_limit_is_read_to_the_end_then_refused() {
    let server = TestServer::start_with(&[], |c| c.max_message_size = 10_000);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    client.envelope("a@example.org", "postmaster@mx.test");
    assert!(client.command("DATA").starts_with("354"));
    // 30 KB, with lines that look like commands: they must stay data.
    let mut body = String::from("Subject: big\r\n\r\n");
    for i in 0..300 {
        body.push_str(&format!("QUIT line {i} {}\r\n", "z".repeat(80)));
    }
    client.send(body.as_bytes());
    let reply = client.command(".");
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    // The next command in the same session works.
    let reply = client.transaction(
        "a@example.org",
        "postmaster@mx.test",
        "Subject: small\r\n\r\nok\r\n",
    );
    queue_id(&reply);
    assert_eq!(server.queued_messages().len(), 1);
}

#[test]
fn a_bdat_body_over_the_limit_is_refused_and_skipped() {
    let server = TestServer::start_with(&[], |c| c.max_message_size = 1_000);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    client.envelope("a@example.org", "postmaster@mx.test");
    let chunk = "QUIT\r\n".repeat(400);
    client.send(format!("BDAT {} LAST\r\n{chunk}", chunk.len()).as_bytes());
    let reply = client.reply();
    assert!(reply.starts_with("552 5.3.4"), "{reply}");
    assert!(client.command("NOOP").starts_with("250"));
    assert!(server.queued_messages().is_empty());
}

#[test]
fn more_recipients_than_the_limit_get_452() {
    let server = TestServer::start_with(&[], |c| c.max_recipients = 3);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<a@example.org>")
        .starts_with("250"));
    for i in 0..3 {
        let reply = client.command(&format!("RCPT TO:<r{i}@example.net>"));
        assert!(reply.starts_with("250"), "{reply}");
    }
    let reply = client.command("RCPT TO:<r3@example.net>");
    assert!(reply.starts_with("452 4.5.3"), "{reply}");
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: three\r\n\r\nx\r\n");
    let id = queue_id(&client.command("."));
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    assert_eq!(spool.load(&id).unwrap().recipients.len(), 3);
}

#[test]
fn too_many_bad_commands_end_in_421_and_close() {
    let server = TestServer::start_with(&[], |c| c.max_bad_commands = 3);
    let mut client = Client::greeted(server.smtp());
    let reply = client.command("FROB");
    assert!(reply.starts_with("500 5.5.1"), "{reply}");
    let reply = client.command("RCPT TO:<a@example.org>");
    assert!(reply.starts_with("503 5.5.1"), "{reply}");
    let reply = client.command("XYZZY");
    assert!(reply.starts_with("421 4.7.0"), "{reply}");
    client.expect_closed();
}

/// A directory harvest: a pipelined burst of unknown recipients gets its
/// first errors at once, each one past `--soft-error-limit` after
/// `--error-delay`, and 421 4.7.0 and close at `--hard-error-limit`. The
/// delay is a timer, not a sleep: the only worker keeps serving others.
#[test]
fn a_directory_harvest_is_slowed_then_cut_off() {
    let delay = Duration::from_secs(1);
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| {
        c.relay_networks = Vec::new();
        c.soft_error_limit = 3;
        c.hard_error_limit = 6;
        c.error_delay = delay;
        c.workers = 1;
    });
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO harvester.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<probe@example.org>")
        .starts_with("250"));
    // 100 guesses in one write: small enough to be read whole, so the
    // close is a clean one.
    let burst: String = (0..100)
        .map(|n| format!("RCPT TO:<guess{n}@mx.test>\r\n"))
        .collect();
    let started = Instant::now();
    client.send(burst.as_bytes());
    let mut replies = Vec::new();
    for _ in 0..6 {
        replies.push((client.reply(), started.elapsed()));
    }
    for (reply, _) in &replies[..5] {
        assert_eq!(reply, "550 5.1.1 No such user here\r\n");
    }
    assert_eq!(
        replies[5].0,
        "421 4.7.0 Too many errors; closing the connection\r\n"
    );
    let took = |n: usize| replies[n].1;
    assert!(took(2) < delay, "the first 3 errors wait: {:?}", took(2));
    assert!(took(3) >= delay, "the 4th error came after {:?}", took(3));
    assert!(
        took(4) >= delay * 2,
        "the 5th error came after {:?}",
        took(4)
    );
    assert!(took(5) < delay * 10, "421 came after {:?}", took(5));
    client.expect_closed();

    // Meanwhile the same worker serves another client without waiting.
    let mut prober = Client::greeted(server.smtp());
    assert!(prober.command("EHLO harvester.test").starts_with("250"));
    assert!(prober
        .command("MAIL FROM:<probe@example.org>")
        .starts_with("250"));
    for n in 0..4 {
        prober.send(format!("RCPT TO:<again{n}@mx.test>\r\n").as_bytes());
    }
    for _ in 0..3 {
        assert!(prober.reply().starts_with("550"));
    }
    // The 4th reply is held now; a sleeping worker would send it before
    // it could answer anyone else.
    let mut other = Client::greeted(server.smtp());
    assert!(other.command("NOOP").starts_with("250"));
    prober.stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let early = prober.stream.peek(&mut byte);
    assert!(
        matches!(&early, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the held reply was sent before another session was served: {early:?}"
    );
    prober.stream.set_nonblocking(false).unwrap();
    assert!(prober.reply().starts_with("550"), "the held reply comes");
}

// ---------------------------------------------------------------------------
// Durability and the sink.

#[test]
fn a_queued_message_is_whole_on_disk_and_survives_a_restart() {
    // From another server (loopback is no relay network here): stored as sent.
    let mut server =
        TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| c.relay_networks.clear());
    let mut client = Client::greeted(server.smtp());
    let body = "Subject: durable\r\n\r\nkeep me\r\n";
    let id = queue_id(&client.send_mail("sender@example.org", ALICE, body));
    // The 250 came after the files were in place: check at once, no waiting.
    let queue = server.data_dir().join("queue");
    assert!(queue.join(format!("{id}.msg")).is_file());
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let loaded = spool.load(&id).unwrap();
    assert_eq!(loaded.id, id);
    assert_eq!(loaded.mail_from.sender, "sender@example.org");
    assert_eq!(loaded.recipients[0].recipient.address, ALICE);
    assert_eq!(loaded.origin.client().unwrap().client_ip, "127.0.0.1");
    assert_eq!(loaded.origin.client().unwrap().helo, "client.test");
    let bytes = spool.read_message(&id).unwrap();
    assert_eq!(after_received(&bytes), body.as_bytes());
    // The envelope heads the file as plain text, the message follows.
    let file = std::fs::read(queue.join(format!("{id}.msg"))).unwrap();
    let text = String::from_utf8_lossy(&file);
    assert!(text.starts_with("version: 3\n"), "{text}");
    assert!(text.contains("\nsender: sender@example.org\n"), "{text}");
    assert!(file.ends_with(&bytes));
    drop(client);
    server.shutdown();

    // A new server on the same data directory finds it (recovery keeps it).
    let mut config = test_config(server.data_dir());
    config.users = Some(server.data_dir().join("users"));
    let again = outpost::runtime::Server::start(config).unwrap();
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    assert_eq!(spool.list().unwrap(), vec![id.clone()]);
    assert_eq!(spool.read_message(&id).unwrap(), bytes);
    // It still accepts mail, with a new id.
    let mut client = Client::greeted(again.smtp_addrs()[0]);
    let second = queue_id(&client.send_mail("sender@example.org", ALICE, body));
    assert_ne!(second, id);
    drop(client);
    again.shutdown();
    assert_eq!(spool.list().unwrap().len(), 2);
}

#[test]
fn sink_mode_answers_250_with_an_id_and_writes_nothing() {
    let server = TestServer::start_with(&[], |c| c.sink = true);
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail(
        "bench@example.org",
        "postmaster@mx.test",
        "Subject: sink\r\n\r\ngone\r\n",
    );
    queue_id(&reply);
    let reply = client.transaction("bench@example.org", "postmaster@mx.test", "x\r\n");
    queue_id(&reply);
    assert!(client.command("QUIT").starts_with("221"));
    assert!(server.queued_messages().is_empty());
    let queue = server.data_dir().join("queue");
    let leftovers: Vec<_> = std::fs::read_dir(&queue)
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    let files: Vec<_> = leftovers.iter().filter(|p| p.is_file()).collect();
    assert!(files.is_empty(), "{files:?}");
}

// ---------------------------------------------------------------------------
// The limits at their exact boundaries.

#[test]
fn a_command_line_of_exactly_512_octets_is_accepted() {
    let server = TestServer::start(&[]);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    // `MAIL FROM:<` + local + `@example.org>` + CRLF = 512 octets.
    let fixed = "MAIL FROM:<@example.org>\r\n".len();
    let local = "a".repeat(512 - fixed);
    let reply = client.command(&format!("MAIL FROM:<{local}@example.org>"));
    assert!(!reply.starts_with("500"), "512 octets: {reply}");
    assert!(client.command("RSET").starts_with("250"));
    let local = "a".repeat(513 - fixed);
    let reply = client.command(&format!("MAIL FROM:<{local}@example.org>"));
    assert!(reply.starts_with("500 5.5.2"), "513 octets: {reply}");
}

#[test]
fn a_message_of_exactly_the_size_limit_is_accepted() {
    const LIMIT: usize = 4_000;
    let server = TestServer::start_with(&[], |c| c.max_message_size = LIMIT);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    let head = "Subject: exact\r\n\r\n";
    for (size, accepted) in [(LIMIT, true), (LIMIT + 1, false)] {
        // Lines of 100 octets, the last one shorter, all ending in CRLF.
        let mut body = head.to_string();
        while body.len() + 100 <= size {
            body.push_str(&format!("{}\r\n", "w".repeat(98)));
        }
        let rest = size - body.len();
        if rest > 0 {
            assert!(rest >= 2);
            body.push_str(&format!("{}\r\n", "v".repeat(rest - 2)));
        }
        assert_eq!(body.len(), size);
        assert!(client
            .command(&format!("MAIL FROM:<a@example.org> SIZE={size}"))
            .starts_with(if accepted { "250" } else { "552 5.3.4" }));
        if !accepted {
            assert!(client
                .command("MAIL FROM:<a@example.org>")
                .starts_with("250"));
        }
        assert!(client
            .command("RCPT TO:<postmaster@mx.test>")
            .starts_with("250"));
        assert!(client.command("DATA").starts_with("354"));
        client.send(body.as_bytes());
        let reply = client.command(".");
        if accepted {
            queue_id(&reply);
        } else {
            assert!(reply.starts_with("552 5.3.4"), "{size}: {reply}");
        }
        // The same through BDAT.
        client.envelope("a@example.org", "postmaster@mx.test");
        client.send(format!("BDAT {size} LAST\r\n{body}").as_bytes());
        let reply = client.reply();
        if accepted {
            queue_id(&reply);
        } else {
            assert!(reply.starts_with("552 5.3.4"), "BDAT {size}: {reply}");
        }
    }
    assert_eq!(server.queued_messages().len(), 2);
}

#[test]
fn microsoft_double_space_before_the_plain_response_is_accepted() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    let reply = tls.command(&format!(
        "AUTH PLAIN  {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert!(reply.starts_with("235 2.7.0"), "{reply}");
}

#[test]
fn smtp_listener_with_smtp_auth_offers_auth_after_starttls_and_then_relays() {
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| {
        c.relay_networks = Vec::new();
        c.smtp_auth = true;
    });
    let mut client = Client::greeted(server.smtp());
    let ehlo = client.command("EHLO laptop.test");
    assert!(
        ehlo.contains("STARTTLS") && !ehlo.contains("AUTH"),
        "{ehlo}"
    );
    assert!(client
        .command("MAIL FROM:<alice@mx.test>")
        .starts_with("250"));
    let reply = client.command("RCPT TO:<friend@example.net>");
    assert!(reply.starts_with("554 5.7.1"), "{reply}");
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut tls = client.into_tls(server.tls_client_config());
    let login = tls.login_plain(ALICE, ALICE_PASSWORD);
    assert!(login.starts_with("235 2.7.0"), "{login}");
    let reply = tls.transaction(ALICE, "friend@example.net", "Subject: relayed\r\n\r\nx\r\n");
    let id = queue_id(&reply);
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let loaded = spool.load(&id).unwrap();
    assert_eq!(loaded.origin.client().unwrap().protocol, "ESMTPSA");
}

/// Port 25 offers no AUTH unless `--smtp-auth on`, and answers one as
/// Postfix does; the submission port still offers and takes it.
#[test]
fn smtp_listener_offers_no_auth_by_default() {
    let server = untrusting_server();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO laptop.test").contains("STARTTLS"));
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut tls = client.into_tls(server.tls_client_config());
    let ehlo = tls.command("EHLO laptop.test");
    assert!(ehlo.starts_with("250") && !ehlo.contains("AUTH"), "{ehlo}");
    let reply = tls.command(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert_eq!(reply, "503 5.5.1 Error: authentication not enabled\r\n");
    // Without a login, relaying stays closed.
    assert!(tls.command("MAIL FROM:<alice@mx.test>").starts_with("250"));
    let reply = tls.command("RCPT TO:<friend@example.net>");
    assert!(reply.starts_with("554 5.7.1"), "{reply}");

    let mut submission = submission_tls(&server);
    let login = submission.command(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert!(login.starts_with("235 2.7.0"), "{login}");
}

#[test]
fn informational_commands_answer_with_enhanced_codes() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("HELO old.test").starts_with("250"));
    for (command, prefix) in [
        ("VRFY alice", "252 2."),
        ("EXPN staff", "502 5.5.1"),
        ("HELP", "214 2.0.0"),
        ("NOOP", "250 2.0.0"),
        ("RSET", "250 2.0.0"),
        ("AUTH PLAIN", "503 5.5.1"),
        ("QUIT", "221 2.0.0"),
    ] {
        let reply = client.command(command);
        assert!(reply.starts_with(prefix), "{command}: {reply}");
    }
    client.expect_closed();
}

#[test]
fn an_over_long_line_during_auth_ends_the_dialogue_not_the_session() {
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let mut tls = submission_tls(&server);
    assert_eq!(tls.command("AUTH LOGIN"), "334 VXNlcm5hbWU6\r\n");
    let reply = tls.command(&"A".repeat(50_000));
    assert!(reply.starts_with("500 5.5.2"), "{reply}");
    // Back in command mode: this is a command, not a SASL response.
    let reply = tls.command("NOOP");
    assert!(reply.starts_with("250"), "{reply}");
    let reply = tls.command(&format!(
        "AUTH PLAIN {}",
        b64(&format!("\0{ALICE}\0{ALICE_PASSWORD}"))
    ));
    assert!(reply.starts_with("235"), "{reply}");
}

#[test]
fn a_spool_that_cannot_be_written_gives_451_never_250() {
    let server = TestServer::start(&[]);
    let queue = server.data_dir().join("queue");
    // A file where the queue directory was: every write fails, even as root.
    std::fs::remove_dir_all(&queue).unwrap();
    std::fs::write(&queue, b"not a directory").unwrap();
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail(
        "a@example.org",
        "postmaster@mx.test",
        "Subject: x\r\n\r\nx\r\n",
    );
    assert!(reply.starts_with("451 4.3.0"), "{reply}");
    // The session is still usable, and once the spool is back, so is the queue.
    std::fs::remove_file(&queue).unwrap();
    std::fs::create_dir(&queue).unwrap();
    let reply = client.transaction(
        "a@example.org",
        "postmaster@mx.test",
        "Subject: y\r\n\r\ny\r\n",
    );
    queue_id(&reply);
    assert_eq!(server.queued_messages().len(), 1);
}
