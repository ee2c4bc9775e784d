//! Transcript tests of the session: what a client sends, what it is
//! answered, what the caller is asked to do.

use super::*;
use crate::directory::FixedDirectory;
use crate::proto::command::Verb;
use crate::proto::envelope::{EnqueueError, MissingFields, NewMessage};
use crate::proto::reply::Enhanced;
use crate::proto::sasl::AuthResult;

const GOOD_PASSWORD: &str = "secret";

fn config() -> SessionConfig {
    SessionConfig {
        hostname: "mx.example.com".to_string(),
        max_message_size: 1000,
        max_recipients: 3,
        max_bad_commands: 5,
        soft_error_limit: 10,
        hard_error_limit: 20,
        error_delay: Duration::from_secs(1),
        smtp_auth: true,
        max_received: 50,
        auth_equals_line: false,
        sender_check: true,
        tls_available: true,
        sender_domain: "example.org".into(),
        memory: MessageMemory::new(1 << 20, 64 << 20),
        limits: Arc::new(NoLimits),
    }
}

fn session_with(role: Role, config: SessionConfig, trusted: bool) -> Session {
    let tls = (role == Role::Submissions).then(|| "TLSv1.3".to_string());
    let client = ClientInfo {
        ip: "192.0.2.7".to_string(),
        trusted,
        tls,
    };
    Session::new(
        role,
        Arc::new(config),
        Arc::new(FixedDirectory::example()),
        client,
    )
}

fn session(role: Role) -> Session {
    session_with(role, config(), false)
}

/// Everything a conversation produced, for comparing runs.
#[derive(Debug, Default, PartialEq)]
struct Run {
    out: Vec<u8>,
    messages: Vec<NewMessage>,
    logins: Vec<String>,
    events: Vec<SessionEvent>,
    closed: bool,
    tls_starts: usize,
    /// Replies held back for the error delay, in order (their codes).
    delayed: Vec<u16>,
    /// Parts handed out by messages too big for memory.
    parts: usize,
    /// The length and capacity of each part after the first.
    later_parts: Vec<(usize, usize)>,
    /// The message being handed out in parts.
    streaming: Option<NewMessage>,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.out).into_owned()
    }

    /// The code of each complete reply, in order.
    fn codes(&self) -> Vec<u16> {
        self.text()
            .split("\r\n")
            .filter(|line| line.len() >= 4 && line.as_bytes()[3] == b' ')
            .map(|line| line[..3].parse().unwrap())
            .collect()
    }
}

/// Plays the caller: keeps a buffer, answers actions like the runtime
/// would (password `secret` is right, the spool always succeeds with id
/// `Q1`, a delayed reply is sent at once), and feeds the chunks in order.
fn drive(session: &mut Session, chunks: &[&[u8]]) -> Run {
    let mut run = Run::default();
    let mut buf = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        for _ in 0..10_000 {
            let feed = session.feed(&buf, &mut run.out);
            buf.drain(..feed.consumed);
            run.events.extend(session.take_events());
            if session.is_closed() {
                assert!(feed.action.is_none(), "an action with the last reply");
                run.closed = true;
                check_replies(&run.out);
                return run;
            }
            match feed.action {
                None => break,
                Some(Action::StartTls) => {
                    assert!(buf.is_empty(), "pipelined bytes after STARTTLS were kept");
                    run.tls_starts += 1;
                    session.tls_started("TLSv1.3");
                }
                Some(Action::Authenticate(credentials)) => {
                    let result = if credentials.password == GOOD_PASSWORD {
                        AuthResult::Success
                    } else {
                        AuthResult::Failure
                    };
                    run.logins.push(credentials.username);
                    session.auth_result(result, &mut run.out);
                }
                Some(Action::Enqueue(message)) => {
                    run.messages.push(*message);
                    session.enqueued(Ok("Q1"), &mut run.out);
                }
                Some(Action::StartMessage(first)) => {
                    run.parts += 1;
                    run.streaming = Some(*first);
                }
                Some(Action::AppendMessage(part)) => {
                    run.parts += 1;
                    run.later_parts.push((part.len(), part.capacity()));
                    let message = run.streaming.as_mut().expect("a part before the start");
                    message.body.extend_from_slice(&part);
                }
                Some(Action::FinishMessage { last_part, summary }) => {
                    run.later_parts
                        .push((last_part.len(), last_part.capacity()));
                    let mut message = run.streaming.take().expect("an end before the start");
                    message.body.extend_from_slice(&last_part);
                    assert_eq!(summary.size, message.body.len());
                    assert_eq!(summary.recipients, message.envelope.recipients.len());
                    run.messages.push(message);
                    session.enqueued(Ok("Q1"), &mut run.out);
                }
                Some(Action::DelayReply(delay)) => {
                    assert_eq!(delay, session.config.error_delay);
                    let before = run.out.len();
                    session.send_delayed_reply(&mut run.out);
                    let held = String::from_utf8_lossy(&run.out[before..]).into_owned();
                    run.delayed.push(held[..3].parse().unwrap());
                }
            }
            run.events.extend(session.take_events());
        }
    }
    check_replies(&run.out);
    run
}

fn drive_all(session: &mut Session, input: &[u8]) -> Run {
    drive(session, &[input])
}

/// Every reply line is `ddd[ -]text\r\n`, at most 512 octets (RFC 5321
/// §4.5.3.1.5), a multi-line reply keeps its code and ends with a space
/// line, and an enhanced code, where present, matches the reply class.
fn check_replies(out: &[u8]) {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "unterminated reply: {out:?}"
    );
    let mut continuing: Option<&[u8]> = None;
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "bare LF in reply: {line:?}");
        assert!(line.len() <= 512, "reply line over 512 octets");
        let body = &line[..line.len() - 2];
        assert!(!body.contains(&b'\r'), "bare CR in reply: {line:?}");
        assert!(body.len() >= 4, "short reply line: {line:?}");
        let code = &body[..3];
        assert!(code.iter().all(u8::is_ascii_digit), "bad code: {line:?}");
        assert!(b"2345".contains(&code[0]), "bad code class: {line:?}");
        if let Some(previous) = continuing {
            assert_eq!(previous, code, "continuation changes the code: {line:?}");
        }
        continuing = match body[3] {
            b'-' => Some(code),
            b' ' => None,
            _ => panic!("no separator after the code: {line:?}"),
        };
        let text = &body[4..];
        if text.len() >= 2 && text[0].is_ascii_digit() && text[1] == b'.' {
            assert_eq!(text[0], code[0], "enhanced code class differs: {line:?}");
        }
    }
    assert!(continuing.is_none(), "multi-line reply never ended");
}

fn b64(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn plain_response(user: &str, password: &str) -> String {
    b64(&format!("\0{user}\0{password}"))
}

const EHLO_PLAIN: &str = "250-mx.example.com Hello client.example [192.0.2.7]\r\n\
    250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
    250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n";
const EHLO_TLS: &str = "250-mx.example.com Hello client.example [192.0.2.7]\r\n\
    250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
    250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n";

#[test]
fn session_can_move_between_threads() {
    fn assert_send<T: Send>() {}
    assert_send::<Session>();
}

#[test]
fn greeting_has_no_enhanced_code() {
    let mut out = Vec::new();
    session(Role::Smtp).greeting(&mut out);
    assert_eq!(out, b"220 mx.example.com ESMTP Outpost ready\r\n");
    check_replies(&out);
}

#[test]
fn ehlo_advertises_by_role_and_tls() {
    let mut smtp = session(Role::Smtp);
    assert_eq!(
        drive_all(&mut smtp, b"EHLO client.example\r\n").text(),
        EHLO_PLAIN
    );
    let mut submissions = session(Role::Submissions);
    assert_eq!(
        drive_all(&mut submissions, b"EHLO client.example\r\n").text(),
        EHLO_TLS
    );

    let mut old_outlook = config();
    old_outlook.auth_equals_line = true;
    let mut s = session_with(Role::Submissions, old_outlook, false);
    let text = drive_all(&mut s, b"EHLO DESKTOP-7Q2K3LM\r\n").text();
    assert!(
        text.ends_with("250-AUTH PLAIN LOGIN\r\n250 AUTH=PLAIN LOGIN\r\n"),
        "{text}"
    );

    let mut no_tls = config();
    no_tls.tls_available = false;
    let mut s = session_with(Role::Submission, no_tls, false);
    let text = drive_all(&mut s, b"EHLO [127.0.0.1]\r\nSTARTTLS\r\n").text();
    assert!(
        !text.contains("STARTTLS") && !text.contains("AUTH"),
        "{text}"
    );
    assert!(
        text.ends_with("454 4.7.0 TLS is not available\r\n"),
        "{text}"
    );
}

#[test]
fn helo_is_plain_smtp() {
    let mut s = session(Role::Smtp);
    let run = drive_all(
        &mut s,
        b"HELO relay.example\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
          DATA\r\nhi\r\n.\r\n",
    );
    assert!(run
        .text()
        .starts_with("250 mx.example.com Hello relay.example [192.0.2.7]\r\n"));
    assert_eq!(run.codes(), [250, 250, 250, 354, 250]);
    assert_eq!(run.messages[0].origin.client().unwrap().protocol, "SMTP");
}

/// The whole happy path on each listener, as a transcript.
#[test]
fn full_transaction_on_each_role() {
    let auth = format!(
        "AUTH PLAIN {}\r\n",
        plain_response("alice@example.com", "secret")
    );
    let cases: [(Role, Vec<&[u8]>, &str); 4] = [
        (Role::Smtp, vec![b"EHLO client.example\r\n"], "ESMTP"),
        (
            Role::Smtp,
            vec![
                b"EHLO client.example\r\nSTARTTLS\r\n",
                b"EHLO client.example\r\n",
                auth.as_bytes(),
            ],
            "ESMTPSA",
        ),
        (
            Role::Submission,
            vec![
                b"EHLO client.example\r\nSTARTTLS\r\n",
                b"EHLO client.example\r\n",
                auth.as_bytes(),
            ],
            "ESMTPSA",
        ),
        (
            Role::Submissions,
            vec![b"EHLO client.example\r\n", auth.as_bytes()],
            "ESMTPSA",
        ),
    ];
    for (role, setup, protocol) in cases {
        let mut s = session(role);
        let mut chunks = setup.clone();
        chunks.extend_from_slice(&[
            b"MAIL FROM:<alice@example.com>\r\n",
            b"RCPT TO:<bob@example.com>\r\n",
            b"DATA\r\n",
            b"Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n",
            b"QUIT\r\n",
        ]);
        let run = drive(&mut s, &chunks);
        let text = run.text();
        let tail = "250 2.1.0 Sender <alice@example.com> OK\r\n\
            250 2.1.5 Recipient <bob@example.com> OK\r\n\
            354 End data with <CR><LF>.<CR><LF>\r\n\
            250 2.0.0 Ok: queued as Q1\r\n\
            221 2.0.0 mx.example.com closing connection, goodbye\r\n";
        assert!(text.ends_with(tail), "{role:?}: {text}");
        assert!(run.closed && s.is_closed());
        let message = &run.messages[0];
        assert_eq!(message.body, b"Subject: hi\r\n\r\n.dot\r\nbye\r\n");
        assert_eq!(message.envelope.sender, "alice@example.com");
        assert_eq!(message.envelope.recipients[0].address, "bob@example.com");
        assert_eq!(
            message.origin.client().unwrap().protocol,
            protocol,
            "{role:?}"
        );
        assert_eq!(message.origin.client().unwrap().helo, "client.example");
        assert_eq!(message.origin.client().unwrap().client_ip, "192.0.2.7");
        if protocol == "ESMTPSA" {
            assert_eq!(
                message.origin.client().unwrap().auth_user.as_deref(),
                Some("alice@example.com")
            );
            assert_eq!(
                message.origin.client().unwrap().tls.as_deref(),
                Some("TLSv1.3")
            );
        }
    }
}

/// Outlook's AUTH LOGIN, PLAIN in both forms, and every way it fails.
#[test]
fn auth_dialogues() {
    let user = b64("alice@example.com");
    let good = b64("secret");
    let bad = b64("wrong");
    let plain = plain_response("alice@example.com", "secret");
    let cases: Vec<(String, &str)> = vec![
        (
            format!("AUTH LOGIN\r\n{user}\r\n{good}\r\n"),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
        ),
        (
            format!("auth login {user}\r\n{good}\r\n"),
            "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
        ),
        (
            format!("AUTH LOGIN\r\n{user}\r\n{bad}\r\n"),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n\
             535 5.7.8 Authentication failed: wrong user name or password\r\n",
        ),
        (
            format!("AUTH PLAIN {plain}\r\n"),
            "235 2.7.0 Authentication successful\r\n",
        ),
        (
            format!("AUTH PLAIN\r\n{plain}\r\n"),
            "334 \r\n235 2.7.0 Authentication successful\r\n",
        ),
        // Two spaces before the base64, as some Microsoft clients send.
        (
            format!("AUTH PLAIN\r\n  {plain}\r\n"),
            "334 \r\n235 2.7.0 Authentication successful\r\n",
        ),
        (
            "AUTH LOGIN\r\n*\r\n".into(),
            "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication cancelled\r\n",
        ),
        (
            format!("AUTH LOGIN\r\n{user}\r\n*\r\n"),
            "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.7.0 Authentication cancelled\r\n",
        ),
        (
            "AUTH PLAIN\r\n*\r\n".into(),
            "334 \r\n501 5.7.0 Authentication cancelled\r\n",
        ),
        (
            "AUTH PLAIN !!notbase64\r\n".into(),
            "501 5.5.2 The authentication data could not be decoded; please try again\r\n",
        ),
        (
            "AUTH CRAM-MD5\r\n".into(),
            "504 5.5.4 Unrecognized authentication mechanism; use PLAIN or LOGIN\r\n",
        ),
        (
            format!("AUTH PLAIN {plain}\r\nAUTH PLAIN {plain}\r\n"),
            "235 2.7.0 Authentication successful\r\n503 5.5.1 You are already logged in\r\n",
        ),
    ];
    for (input, expected) in cases {
        let mut s = session(Role::Submissions);
        drive_all(&mut s, b"EHLO DESKTOP-7Q2K3LM\r\n");
        let run = drive_all(&mut s, input.as_bytes());
        assert_eq!(run.text(), expected, "{input:?}");
    }
}

/// RFC 4954 §4: AUTH lines and responses may exceed 512 octets; other
/// commands may not.
#[test]
fn long_auth_lines_are_read() {
    let long = plain_response("alice@example.com", &"p".repeat(600));
    let input = format!("EHLO c\r\nAUTH PLAIN {long}\r\nAUTH PLAIN\r\n{long}\r\n");
    let run = drive_all(&mut session(Role::Submissions), input.as_bytes());
    let failed = "535 5.7.8 Authentication failed: wrong user name or password\r\n";
    assert!(
        run.text().ends_with(&format!("{failed}334 \r\n{failed}")),
        "{}",
        run.text()
    );
    assert_eq!(run.logins.len(), 2);
    let run = drive_all(
        &mut session(Role::Smtp),
        format!("NOOP {long}\r\n").as_bytes(),
    );
    assert_eq!(run.text(), "500 5.5.2 Line too long\r\n");
}

#[test]
fn auth_result_variants() {
    let cases = [
        (
            AuthResult::Success,
            "235 2.7.0 Authentication successful\r\n",
            false,
        ),
        (
            AuthResult::Failure,
            "535 5.7.8 Authentication failed: wrong user name or password\r\n",
            false,
        ),
        (
            AuthResult::Throttled {
                wait: Duration::from_secs(599),
            },
            "421 4.7.0 Too many failed login attempts; please try again in 10 minutes\r\n",
            true,
        ),
        (
            AuthResult::Throttled {
                wait: Duration::from_millis(44_200),
            },
            "421 4.7.0 Too many failed login attempts; please try again in 45 seconds\r\n",
            true,
        ),
        (
            AuthResult::TemporaryFailure,
            "454 4.7.0 Temporary authentication failure; please try again later\r\n",
            false,
        ),
    ];
    for (result, expected, closes) in cases {
        let mut s = session(Role::Submissions);
        let mut out = Vec::new();
        let input = format!(
            "EHLO c\r\nAUTH PLAIN {}\r\nNOOP\r\n",
            plain_response("alice@example.com", "x")
        );
        let feed = s.feed(input.as_bytes(), &mut out);
        assert!(matches!(feed.action, Some(Action::Authenticate(_))));
        // Nothing is read while the check is outstanding.
        let rest = &input.as_bytes()[feed.consumed..];
        assert_eq!(rest, b"NOOP\r\n");
        let again = s.feed(rest, &mut out);
        assert_eq!((again.consumed, again.action.is_none()), (0, true));
        out.clear();
        s.auth_result(result, &mut out);
        assert_eq!(String::from_utf8_lossy(&out), expected);
        assert_eq!(s.is_closed(), closes);
        assert_eq!(s.auth_user().is_some(), result == AuthResult::Success);
        check_replies(&out);
    }
}

#[test]
fn auth_needs_tls_and_is_not_advertised_before() {
    for role in [Role::Smtp, Role::Submission] {
        let mut s = session(role);
        let plain = plain_response("alice@example.com", "secret");
        let run = drive_all(
            &mut s,
            format!(
                "EHLO c\r\nAUTH PLAIN {plain}\r\nAUTH LOGIN\r\nMAIL FROM:<alice@example.com>\r\n"
            )
            .as_bytes(),
        );
        let text = run.text();
        assert!(!text.contains("AUTH PLAIN LOGIN"), "{text}");
        assert!(text.contains("250 STARTTLS\r\n"));
        let refusal = "538 5.7.11 Encryption required for requested authentication mechanism\r\n";
        assert_eq!(text.matches(refusal).count(), 2, "{text}");
        assert!(run.logins.is_empty());
        if role == Role::Submission {
            assert!(
                text.ends_with("530 5.7.0 Authentication required\r\n"),
                "{text}"
            );
        }
    }
}

#[test]
fn auth_sequence_errors() {
    let plain = plain_response("alice@example.com", "secret");
    let cases: Vec<(Role, String, &str)> = vec![
        // AUTH before EHLO.
        (
            Role::Submissions,
            format!("AUTH PLAIN {plain}\r\n"),
            "503 5.5.1 Please introduce yourself with EHLO first\r\n",
        ),
        // AUTH inside a transaction (trusted relay on port 25 over TLS).
        (
            Role::Smtp,
            format!(
                "EHLO c\r\nSTARTTLS\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN {plain}\r\n"
            ),
            "503 5.5.1 AUTH is not allowed during a mail transaction\r\n",
        ),
    ];
    for (role, input, expected) in cases {
        let mut s = session(role);
        let mut chunks: Vec<&[u8]> = Vec::new();
        for part in input.split_inclusive("STARTTLS\r\n") {
            chunks.push(part.as_bytes());
        }
        let run = drive(&mut s, &chunks);
        assert!(run.text().ends_with(expected), "{input}: {}", run.text());
    }
}

/// `(recipient, authenticated, trusted, expected reply)` on port 25.
#[test]
fn relay_policy() {
    let denied = "554 5.7.1 Relay access denied";
    let trick = "550 5.7.1 Addresses with %, !, a quoted @ or a source route are not accepted; \
                 please use a plain address like user@example.com";
    let cases: [(&str, bool, bool, &str); 23] = [
        (
            "<bob@example.com>",
            false,
            false,
            "250 2.1.5 Recipient <bob@example.com> OK",
        ),
        (
            "<Bob@EXAMPLE.com>",
            false,
            false,
            "550 5.1.1 No such user here",
        ),
        (
            "<carol@example.com>",
            false,
            false,
            "550 5.1.1 No such user here",
        ),
        (
            "<postmaster@example.com>",
            false,
            false,
            "250 2.1.5 Recipient <postmaster@example.com> OK",
        ),
        (
            "<PostMaster@Example.COM>",
            false,
            false,
            "250 2.1.5 Recipient <PostMaster@Example.COM> OK",
        ),
        (
            "<Postmaster>",
            false,
            false,
            "250 2.1.5 Recipient <Postmaster> OK",
        ),
        (
            "<PostmAster>",
            false,
            false,
            "250 2.1.5 Recipient <Postmaster> OK",
        ),
        ("<x@elsewhere.example>", false, false, denied),
        (
            "<x@elsewhere.example>",
            false,
            true,
            "250 2.1.5 Recipient <x@elsewhere.example> OK",
        ),
        (
            "<x@elsewhere.example>",
            true,
            false,
            "250 2.1.5 Recipient <x@elsewhere.example> OK",
        ),
        // The tricks, each with a local domain on the outside.
        ("<x%elsewhere.example@example.com>", false, false, denied),
        ("<elsewhere.example!x@example.com>", false, false, denied),
        (
            "<\"x@elsewhere.example\"@example.com>",
            false,
            false,
            denied,
        ),
        ("<@example.com:x@elsewhere.example>", false, false, denied),
        ("<@elsewhere.example:bob@example.com>", false, false, denied),
        ("<x@[192.0.2.1]>", false, false, denied),
        ("<bob@[127.0.0.1]>", false, false, denied),
        // Never relayed even for a trusted or logged-in client.
        ("<x%elsewhere.example@example.com>", false, true, trick),
        ("<elsewhere.example!x@example.com>", true, false, trick),
        ("<\"x@elsewhere.example\"@example.com>", true, false, trick),
        ("<@example.com:x@elsewhere.example>", false, true, trick),
        ("<x%y@elsewhere.example>", true, false, trick),
        (
            "<x@[192.0.2.1]>",
            true,
            false,
            "250 2.1.5 Recipient <x@[192.0.2.1]> OK",
        ),
    ];
    // Each path also without its angle brackets (`RCPT TO: x@y`, as old
    // clients send it): the same checks, the same answer.
    let unbracketed = cases.map(|(rcpt, authenticated, trusted, expected)| {
        let bare = rcpt.trim_start_matches('<').trim_end_matches('>');
        (bare, authenticated, trusted, expected)
    });
    for (rcpt, authenticated, trusted, expected) in cases.into_iter().chain(unbracketed) {
        let mut s = session_with(Role::Smtp, config(), trusted);
        let mut chunks: Vec<Vec<u8>> = vec![b"EHLO c\r\n".to_vec()];
        if authenticated {
            chunks.push(b"STARTTLS\r\n".to_vec());
            chunks.push(b"EHLO c\r\n".to_vec());
            let auth = format!(
                "AUTH PLAIN {}\r\n",
                plain_response("alice@example.com", "secret")
            );
            chunks.push(auth.into_bytes());
        }
        let sender = if authenticated {
            "alice@example.com"
        } else {
            "a@remote.example"
        };
        chunks.push(format!("MAIL FROM:<{sender}>\r\nRCPT TO:{rcpt}\r\n").into_bytes());
        let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let run = drive(&mut s, &chunks);
        let expected = format!("{expected}\r\n");
        assert!(run.text().ends_with(&expected), "{rcpt}: {}", run.text());
    }
}

#[test]
fn submission_after_auth_may_send_anywhere_but_not_via_tricks() {
    let plain = plain_response("alice@example.com", "secret");
    let mut s = session(Role::Submissions);
    let run = drive_all(
        &mut s,
        format!(
            "EHLO DESKTOP-7Q2K3LM\r\nAUTH PLAIN {plain}\r\nMAIL FROM: <alice@example.com>\r\n\
             RCPT TO: <friend@elsewhere.example>\r\nRCPT TO:<a%b@elsewhere.example>\r\n\
             RCPT TO:<carol@example.com>\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(run.codes(), [250, 235, 250, 250, 550, 550]);
}

#[test]
fn sender_check() {
    let plain = plain_response("alice@example.com", "secret");
    let cases: [(&str, bool, &str); 5] = [
        (
            "<alice@example.com>",
            true,
            "250 2.1.0 Sender <alice@example.com> OK",
        ),
        (
            "<sales@example.com>",
            true,
            "250 2.1.0 Sender <sales@example.com> OK",
        ),
        ("<>", true, "250 2.1.0 Sender <> OK"),
        (
            "<bob@example.com>",
            true,
            "553 5.7.1 You are logged in as alice@example.com and may not send as <bob@example.com>",
        ),
        (
            "<bob@example.com>",
            false,
            "250 2.1.0 Sender <bob@example.com> OK",
        ),
    ];
    // And each mailbox again without its angle brackets.
    let unbracketed = cases
        .iter()
        .filter(|case| case.0 != "<>")
        .map(|&(sender, check, expected)| (&sender[1..sender.len() - 1], check, expected));
    for (sender, check, expected) in cases.into_iter().chain(unbracketed) {
        let mut cfg = config();
        cfg.sender_check = check;
        let mut s = session_with(Role::Submissions, cfg, false);
        let input = format!("EHLO c\r\nAUTH PLAIN {plain}\r\nMAIL FROM:{sender}\r\n");
        let run = drive_all(&mut s, input.as_bytes());
        assert!(
            run.text().ends_with(&format!("{expected}\r\n")),
            "{sender}: {}",
            run.text()
        );
    }
}

/// Commands out of order, and their replies.
#[test]
fn sequence_errors() {
    let cases: [(&str, &str); 9] = [
        (
            "MAIL FROM:<a@b.example>\r\n",
            "503 5.5.1 Please introduce yourself with EHLO first",
        ),
        (
            "EHLO c\r\nRCPT TO:<bob@example.com>\r\n",
            "503 5.5.1 Please send MAIL first",
        ),
        ("EHLO c\r\nDATA\r\n", "503 5.5.1 Please send MAIL first"),
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n",
            "503 5.5.1 Please send RCPT first",
        ),
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n",
            "503 5.5.1 A transaction is already in progress; send RSET first",
        ),
        // RFC 2920: a pipelined DATA after only refused recipients.
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n",
            "554 5.5.1 No valid recipients",
        ),
        // EHLO ends the transaction.
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<bob@example.com>\r\n",
            "503 5.5.1 Please send MAIL first",
        ),
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nRCPT TO:<bob@example.com>\r\n",
            "503 5.5.1 Please send MAIL first",
        ),
        ("EHLO c\r\nSTARTTLS\r\n", "220 2.0.0 Ready to start TLS"),
    ];
    for (input, expected) in cases {
        let mut s = session(Role::Smtp);
        let mut out = Vec::new();
        s.feed(input.as_bytes(), &mut out);
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.ends_with(&format!("{expected}\r\n")),
            "{input:?}: {text}"
        );
        check_replies(&out);
    }
}

/// Bad arguments: the parser's text, with the code that fits.
#[test]
fn syntax_errors() {
    let cases: [(&str, &str); 5] = [
        ("EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
        (
            "EHLO c\r\nMAIL FROM:<a@b.example> FOO=1\r\n",
            "555 5.5.4 MAIL FROM parameter not supported: this server knows SIZE, BODY, \
             SMTPUTF8, RET, ENVID and AUTH",
        ),
        (
            "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com> XYZ\r\n",
            "555 5.5.4 RCPT TO parameter not supported: this server knows NOTIFY and ORCPT",
        ),
        (
            "EHLO c\r\nMAIL FROM:<not an address>\r\n",
            "501 5.1.7 The sender address is not a valid address: use MAIL FROM:<user@example.com>",
        ),
        (
            "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@@example.com>\r\n",
            "501 5.1.3 The recipient address is not a valid address: use RCPT TO:<user@example.com>",
        ),
    ];
    for (input, expected) in cases {
        let run = drive_all(&mut session(Role::Smtp), input.as_bytes());
        assert!(
            run.text().ends_with(&format!("{expected}\r\n")),
            "{input:?}: {}",
            run.text()
        );
    }
}

/// Every way the parser refuses a line, with the code and text chosen for
/// it; each counts as a bad command.
#[test]
fn parser_errors_have_their_replies() {
    let long = "x".repeat(65);
    let mail_long = format!("MAIL FROM:<{long}@b>");
    let rcpt_long = format!("RCPT TO:<{long}@b>");
    let too_long = "The address is too long (at most 64 octets before the @ and 255 after it)";
    let (mail_too_long, rcpt_too_long) = (
        format!("501 5.1.7 {too_long}"),
        format!("501 5.1.3 {too_long}"),
    );
    let cases: Vec<(&[u8], &str)> = vec![
        (b"EHLO", "501 5.5.4 Syntax: EHLO hostname"),
        (b"HELO", "501 5.5.4 Syntax: HELO hostname"),
        (b"MAIL FROM:", "501 5.5.4 Syntax: MAIL FROM:<address> [parameters]"),
        (
            b"MAIL FROM: a@b>",
            "501 5.1.7 The sender address is not a valid address: use MAIL FROM:<user@example.com>",
        ),
        (b"RCPT FROM:<a@b>", "501 5.5.4 Syntax: RCPT TO:<address> [parameters]"),
        (b"DATA x", "501 5.5.4 Syntax: DATA (without arguments)"),
        (b"RSET x", "501 5.5.4 Syntax: RSET (without arguments)"),
        (b"QUIT x", "501 5.5.4 Syntax: QUIT (without arguments)"),
        (b"STARTTLS now", "501 5.5.4 Syntax: STARTTLS (without arguments)"),
        (b"BDAT x", "501 5.5.4 Syntax: BDAT size [LAST]"),
        (b"BDAT 99999999999999999999", "501 5.5.4 BDAT size is too large"),
        (b"AUTH", "501 5.5.4 Syntax: AUTH mechanism [initial-response]"),
        (b"EHLO h\xffst", "501 5.5.4 The command must be ASCII text"),
        (b"AUTH PLAIN \xff", "501 5.5.4 The command must be ASCII text"),
        (
            b"MAIL FROM:<a@b\xff>",
            "501 5.5.4 Addresses and parameters must be ASCII or UTF-8",
        ),
        (
            b"RCPT TO:<\xe4@b>",
            "501 5.5.4 Addresses and parameters must be ASCII or UTF-8",
        ),
        (
            b"MAIL FROM:<Postmaster>",
            "501 5.1.7 The sender address is not a valid address: use MAIL FROM:<user@example.com>",
        ),
        (
            b"RCPT TO:<>",
            "501 5.1.3 The recipient address is not a valid address: use RCPT TO:<user@example.com>",
        ),
        (mail_long.as_bytes(), &mail_too_long),
        (rcpt_long.as_bytes(), &rcpt_too_long),
        (
            b"MAIL FROM:<a@b> SIZE=",
            "501 5.5.4 Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces",
        ),
        (
            b"MAIL FROM:<a@b> SIZE=x",
            "501 5.5.4 SIZE must be the message size in octets, e.g. SIZE=12345",
        ),
        (
            b"MAIL FROM:<a@b> BODY=8BIT",
            "501 5.5.4 BODY must be 7BIT, 8BITMIME or BINARYMIME",
        ),
        (b"MAIL FROM:<a@b> SMTPUTF8=yes", "501 5.5.4 SMTPUTF8 takes no value"),
        (b"MAIL FROM:<a@b> RET=ALL", "501 5.5.4 RET must be FULL or HDRS"),
        (
            b"MAIL FROM:<a@b> ENVID=a+2b",
            "501 5.5.4 ENVID must be xtext of at most 100 characters",
        ),
        (
            b"MAIL FROM:<a@b> AUTH=a+",
            "501 5.5.4 AUTH must be <> or an xtext-encoded address",
        ),
        (
            b"RCPT TO:<a@b> NOTIFY=ALWAYS",
            "501 5.5.4 NOTIFY must be NEVER, or a comma-separated list of SUCCESS, FAILURE and DELAY",
        ),
        (
            b"RCPT TO:<a@b> ORCPT=rfc822",
            "501 5.5.4 ORCPT must be address-type;address, e.g. ORCPT=rfc822;user@example.com",
        ),
        (b"MAIL FROM:<a@b> SIZE=1 SIZE=2", "501 5.5.4 SIZE given more than once"),
        (
            b"MAIL FROM:<a@b> SMTPUTF8 smtputf8",
            "501 5.5.4 SMTPUTF8 given more than once",
        ),
        (
            b"RCPT TO:<a@b> NOTIFY=NEVER NOTIFY=NEVER",
            "501 5.5.4 NOTIFY given more than once",
        ),
        (
            b"MAIL FROM:<a@b> NOTIFY=NEVER",
            "555 5.5.4 MAIL FROM parameter not supported: this server knows SIZE, BODY, \
             SMTPUTF8, RET, ENVID and AUTH",
        ),
        (
            b"RCPT TO:<a@b> SIZE=10",
            "555 5.5.4 RCPT TO parameter not supported: this server knows NOTIFY and ORCPT",
        ),
        (
            b"MAIL FROM:<a@b> REQUIRETLS",
            "555 5.5.4 REQUIRETLS is not supported by this server",
        ),
        (
            b"RCPT TO:<a@b> MT-PRIORITY=3",
            "555 5.5.4 MT-PRIORITY is not supported by this server",
        ),
        (
            b"MAIL FROM:<a@b> BY=120;R",
            "555 5.5.4 BY (deliver-by) is not supported by this server",
        ),
    ];
    for (line, expected) in cases {
        let mut config = config();
        config.max_bad_commands = 2;
        let mut s = session_with(Role::Smtp, config, false);
        let input = [line, b"\r\nFOO\r\n"].concat();
        let run = drive_all(&mut s, &input);
        // The second bad command reaches the limit: the first counted.
        assert_eq!(
            run.text(),
            format!("{expected}\r\n421 4.7.0 Too many errors; closing the connection\r\n"),
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
}

/// What the mail log hears: refusals of input with their verb, logins,
/// messages spooled or not; nothing for replies the caller asked for.
#[test]
fn events_report_refusals_logins_and_messages() {
    // (HELO name, from, to, recipients)
    let refused =
        |verb,
         code,
         (class, subject, detail),
         text: &'static str,
         (helo, from, to, recipients): (&str, Option<&str>, Option<&str>, usize)| {
            SessionEvent::Refused {
                verb,
                code,
                enhanced: Some(Enhanced(class, subject, detail)),
                text: text.into(),
                context: RefusalContext {
                    helo: Some(helo.into()),
                    from: from.map(str::to_string),
                    to: to.map(str::to_string),
                    recipients,
                },
            }
        };
    let plain = plain_response("alice@example.com", "secret");
    let input = format!(
        "EHLO c\r\nFOO\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<alice@example.com>\r\n\
         RCPT TO:<bob@example.com>\r\nRCPT TO:<>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n"
    );
    let run = drive_all(&mut session(Role::Submissions), input.as_bytes());
    let alice = Some("alice@example.com".to_string());
    assert_eq!(
        run.events,
        [
            refused(
                None,
                500,
                (5, 5, 1),
                "Command not recognized",
                ("c", None, None, 0)
            ),
            SessionEvent::Login {
                user: "alice@example.com".into(),
                result: AuthResult::Success,
            },
            refused(
                Some(Verb::Rcpt),
                501,
                (5, 1, 3),
                "The recipient address is not a valid address: use RCPT TO:<user@example.com>",
                ("c", Some("alice@example.com"), None, 0),
            ),
            SessionEvent::Queued {
                queue_id: "Q1".into(),
                message: MessageSummary {
                    sender: "alice@example.com".into(),
                    recipients: 1,
                    size: 4,
                    auth_user: alice.clone(),
                    tls: Some("TLSv1.3".into()),
                    message_id: None,
                },
            },
        ]
    );

    let mut s = session(Role::Smtp);
    let mut out = Vec::new();
    let message = b"MAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n";
    let input = [
        &b"EHLO c\r\n"[..],
        message,
        b"a\nb\r\n.\r\n",
        message,
        b".\r\n",
    ]
    .concat();
    let feed = s.feed(&input, &mut out);
    assert!(matches!(feed.action, Some(Action::Enqueue(_))));
    s.enqueued(Err(EnqueueError::NoSpace), &mut out);
    s.feed(b"BDAT 1 LAST\r\nx", &mut out);
    s.timed_out(&mut out);
    assert_eq!(
        s.take_events(),
        [
            refused(
                Some(Verb::Data),
                550,
                (5, 5, 2),
                "Bare CR or LF in message is not allowed (see RFC 5321 section 2.3.8)",
                ("c", Some(""), Some("bob@example.com"), 1),
            ),
            SessionEvent::NotQueued {
                message: MessageSummary {
                    sender: String::new(),
                    recipients: 1,
                    size: 0,
                    auth_user: None,
                    tls: None,
                    message_id: None,
                },
                error: EnqueueError::NoSpace,
            },
            refused(
                Some(Verb::Bdat),
                503,
                (5, 5, 1),
                "Please send MAIL first",
                ("c", None, None, 0)
            ),
        ]
    );
    assert!(s.take_events().is_empty());
}

#[test]
fn simple_commands() {
    let mut s = session(Role::Smtp);
    let run = drive_all(
        &mut s,
        b"NOOP\r\nVRFY bob\r\nHELP\r\nRSET\r\nEXPN list\r\nFOO\r\n",
    );
    assert_eq!(
        run.text(),
        "250 2.0.0 OK\r\n\
         252 2.5.0 Cannot verify the user, but will accept the message and attempt delivery\r\n\
         214 2.0.0 Supported commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH\r\n\
         250 2.0.0 Reset OK\r\n\
         502 5.5.1 EXPN is not supported\r\n\
         500 5.5.1 Command not recognized\r\n"
    );
}

#[test]
fn rset_keeps_ehlo_and_auth() {
    let plain = plain_response("alice@example.com", "secret");
    let mut s = session(Role::Submissions);
    let run = drive_all(
        &mut s,
        format!("EHLO c\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<alice@example.com>\r\nRSET\r\nMAIL FROM:<alice@example.com>\r\n")
            .as_bytes(),
    );
    assert_eq!(run.codes(), [250, 235, 250, 250, 250]);
}

/// A whole transaction in one write (RFC 2920).
#[test]
fn pipelined_transaction_in_one_feed() {
    let mut s = session(Role::Smtp);
    let mut out = Vec::new();
    let input = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
                  RCPT TO:<nobody@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\
                  Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
    let feed = s.feed(input, &mut out);
    let Some(Action::Enqueue(message)) = feed.action else {
        panic!("no message")
    };
    assert_eq!(&input[feed.consumed..], b"QUIT\r\n");
    let recipients: Vec<&str> = message
        .envelope
        .recipients
        .iter()
        .map(|r| r.address.as_str())
        .collect();
    assert_eq!(recipients, ["bob@example.com", "alice@example.com"]);
    s.enqueued(Ok("Q7"), &mut out);
    let feed = s.feed(b"QUIT\r\n", &mut out);
    assert!(feed.action.is_none() && s.is_closed());
    let run = Run {
        out,
        ..Run::default()
    };
    assert_eq!(run.codes(), [250, 250, 250, 550, 250, 354, 250, 221]);
    assert!(run.text().contains("250 2.0.0 Ok: queued as Q7\r\n"));
}

/// Every sequence of the public SMTP smuggling lists, followed by
/// commands an attacker hopes we take as a second message.
#[test]
fn smuggling_sequences_never_end_data() {
    let sequences: [&[u8]; 10] = [
        b"\n.\n",
        b"\n.\r\n",
        b"\r.\n",
        b"\r.\r",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\n",
        b"\n.\r",
        b"\r\n\x00.\r\n",
        b"\r\n.\x00\r\n",
    ];
    for sequence in sequences {
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\
                          Subject: real\r\n\r\nhello"
                .to_vec();
        input.extend_from_slice(sequence);
        input.extend_from_slice(
            b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nforged\r\n",
        );
        input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, &input);
        let codes = run.codes();
        assert_eq!(codes.len(), 6, "{sequence:?}: {}", run.text());
        assert_eq!(codes[..4], [250, 250, 250, 354]);
        assert_eq!(codes[5], 221);
        // One refusal, at the real end, whatever the sequence.
        let refusal = if sequence.contains(&0) {
            "550 5.6.0 NUL characters in a message are not allowed (see RFC 5322 section 2.3)\r\n"
        } else {
            "550 5.5.2 Bare CR or LF in message is not allowed (see RFC 5321 section 2.3.8)\r\n"
        };
        assert!(run.text().contains(refusal), "{sequence:?}: {}", run.text());
        assert!(run.messages.is_empty());
    }
}

#[test]
fn starttls_discards_pipelined_bytes_and_resets() {
    let mut s = session(Role::Submission);
    let mut out = Vec::new();
    let input =
        b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@elsewhere.example>\r\n";
    let feed = s.feed(input, &mut out);
    assert!(matches!(feed.action, Some(Action::StartTls)));
    assert_eq!(feed.consumed, input.len());
    assert!(String::from_utf8_lossy(&out).ends_with("220 2.0.0 Ready to start TLS\r\n"));
    // Nothing is read until the handshake is done.
    assert_eq!(s.feed(b"NOOP\r\n", &mut out).consumed, 0);
    s.tls_started("TLSv1.2");
    assert_eq!(s.tls_version(), Some("TLSv1.2"));
    assert_eq!(s.helo_name(), None);
    out.clear();
    // EHLO state was forgotten: MAIL needs a new EHLO (RFC 3207 §4.2).
    s.feed(
        b"MAIL FROM:<a@b.example>\r\nEHLO c\r\nSTARTTLS\r\n",
        &mut out,
    );
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("503 5.5.1 Please introduce yourself with EHLO first\r\n"));
    assert!(
        text.contains("250 AUTH PLAIN LOGIN\r\n") && !text.contains("STARTTLS"),
        "{text}"
    );
    assert!(
        text.ends_with("503 5.5.1 TLS is already active\r\n"),
        "{text}"
    );
}

#[test]
fn starttls_forgets_a_transaction() {
    let mut s = session_with(Role::Smtp, config(), true);
    let run = drive(
        &mut s,
        &[
            b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\nSTARTTLS\r\n",
            b"EHLO c\r\nDATA\r\n",
        ],
    );
    assert_eq!(run.tls_starts, 1);
    assert!(
        run.text().ends_with("503 5.5.1 Please send MAIL first\r\n"),
        "{}",
        run.text()
    );
}

#[test]
fn bdat_chunks() {
    let prefix = "EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n";
    /// A script after MAIL and RCPT, the reply codes, the message.
    type Case = (&'static str, &'static [u16], Option<&'static [u8]>);
    let cases: [Case; 6] = [
        // Binary content: bare LF and CR and dot lines are just octets.
        (
            "BDAT 8\r\nab\n.\r\ncdBDAT 6 LAST\r\n\r.\r\n\r\nNOOP\r\n",
            &[250, 250, 250, 250, 250, 250],
            Some(b"ab\n.\r\ncd\r.\r\n\r\n"),
        ),
        (
            "BDAT 0 LAST\r\nNOOP\r\n",
            &[250, 250, 250, 250, 250],
            Some(b""),
        ),
        (
            "BDAT 2\r\nabBDAT 0 LAST\r\n",
            &[250, 250, 250, 250, 250],
            Some(b"ab"),
        ),
        // DATA may not follow BDAT.
        (
            "BDAT 2\r\nabDATA\r\nRSET\r\n",
            &[250, 250, 250, 250, 503, 250],
            None,
        ),
        // Too big: the chunk is read fully, then 552, and the
        // transaction is gone.
        (
            "BDAT 600\r\n@600BDAT 600 LAST\r\n@600RCPT TO:<bob@example.com>\r\n",
            &[250, 250, 250, 250, 552, 503],
            None,
        ),
        // Without MAIL the chunk is still read and not taken as commands.
        (
            "RSET\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
            &[250, 250, 250, 250, 503, 250],
            None,
        ),
    ];
    for (script, codes, body) in cases {
        let script = script.replace("@600", &"x".repeat(600));
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, format!("{prefix}{script}").as_bytes());
        assert_eq!(run.codes(), codes, "{script:?}: {}", run.text());
        assert_eq!(
            run.messages.first().map(|m| m.body.as_slice()),
            body,
            "{script:?}"
        );
        assert!(!run.closed);
    }
    let mut s = session(Role::Smtp);
    let run = drive_all(&mut s, format!("{prefix}BDAT 3\r\nabc").as_bytes());
    assert!(run.text().ends_with("250 2.0.0 3 octets received\r\n"));
    let mut s = session(Role::Smtp);
    let run = drive_all(&mut s, format!("{prefix}BDAT 3\r\nab").as_bytes());
    assert!(s.in_data() && run.codes().len() == 3);
}

#[test]
fn limits() {
    let head = "EHLO c\r\nMAIL FROM:<a@remote.example>\r\n";
    let big = "x".repeat(1100);
    let cases: Vec<(String, &str)> = vec![
        (
            format!("{head}RCPT TO:<bob@example.com>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<postmaster@example.com>\r\nRCPT TO:<Postmaster>\r\n"),
            "452 4.5.3 Too many recipients",
        ),
        (
            "EHLO c\r\nMAIL FROM:<a@remote.example> SIZE=1001\r\n".into(),
            "552 5.3.4 Message too big: this server accepts messages up to 1000 bytes",
        ),
        (
            format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{big}\r\n.\r\nRCPT TO:<bob@example.com>\r\n"),
            "503 5.5.1 Please send MAIL first",
        ),
        (format!("{}\r\n", "N".repeat(600)), "500 5.5.2 Line too long"),
        (format!("NOOP {}\r\nNOOP\r\n", "N".repeat(20_000)), "250 2.0.0 OK"),
    ];
    for (input, expected) in cases {
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, input.as_bytes());
        assert!(
            run.text().ends_with(&format!("{expected}\r\n")),
            "{}",
            run.text()
        );
    }
    let mut s = session(Role::Smtp);
    let run = drive_all(
        &mut s,
        format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{big}\r\n.\r\n").as_bytes(),
    );
    assert!(
        run.text().contains("552 5.3.4 Message too big"),
        "{}",
        run.text()
    );
    // A line longer than RFC 5321's 1000 octets is kept as it is; only
    // the size limit bounds it.
    let long_line = "y".repeat(4000);
    let mut roomy = config();
    roomy.max_message_size = 5000;
    let run = drive_all(
        &mut session_with(Role::Smtp, roomy, false),
        format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{long_line}\r\n.\r\n").as_bytes(),
    );
    assert_eq!(run.messages.len(), 1, "{}", run.text());
    assert_eq!(run.messages[0].body, format!("{long_line}\r\n").as_bytes());
}

#[test]
fn nul_in_bdat_refuses_the_message_at_its_end() {
    let head = "EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n";
    for chunks in [
        "BDAT 7 LAST\r\na\r\n\x00.\r\n",
        "BDAT 4\r\na\r\n\x00BDAT 6 LAST\r\n.\r\nx\r\n",
        "BDAT 3\r\nab\x00BDAT 0 LAST\r\n",
    ] {
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, format!("{head}{chunks}QUIT\r\n").as_bytes());
        assert!(
            run.text().ends_with(
                "550 5.6.0 NUL characters in a message are not allowed (see RFC 5322 section 2.3)\r\n\
                 221 2.0.0 mx.example.com closing connection, goodbye\r\n"
            ),
            "{chunks:?}: {}",
            run.text()
        );
        // Every chunk but the last was taken as usual.
        let refused = run.codes().iter().filter(|&&c| c == 550).count();
        assert_eq!(refused, 1, "{}", run.text());
        assert!(run.messages.is_empty());
    }
}

#[test]
fn too_many_bad_commands_close() {
    let mut s = session(Role::Smtp);
    let run = drive_all(
        &mut s,
        b"FOO\r\nBAR\r\nRCPT TO:<x@y.example>\r\nDATA\r\nBAZ\r\nNOOP\r\n",
    );
    assert_eq!(run.codes(), [500, 500, 503, 503, 421]);
    assert!(run
        .text()
        .ends_with("421 4.7.0 Too many errors; closing the connection\r\n"));
    assert!(run.closed && s.is_closed());
    let mut out = Vec::new();
    let after = s.feed(b"NOOP\r\n", &mut out);
    assert_eq!((after.consumed, out.len()), (0, 0));
}

#[test]
fn smtputf8_is_needed_for_non_ascii() {
    let cases: [(&str, &[u16]); 3] = [
        ("MAIL FROM:<jörg@remote.example>\r\n", &[250, 553]),
        (
            "MAIL FROM:<jörg@remote.example> SMTPUTF8\r\nRCPT TO:<bob@example.com>\r\n",
            &[250, 250, 250],
        ),
        (
            "MAIL FROM:<a@remote.example>\r\nRCPT TO:<bøb@example.com>\r\n",
            &[250, 250, 553],
        ),
    ];
    for (input, codes) in cases {
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, format!("EHLO c\r\n{input}").as_bytes());
        assert_eq!(run.codes(), codes, "{input}: {}", run.text());
    }
}

#[test]
fn enqueue_errors_end_the_transaction() {
    let cases = [
        (
            EnqueueError::NoSpace,
            "452 4.3.1 Insufficient system storage; please try again later\r\n",
        ),
        (
            EnqueueError::Failed,
            "451 4.3.0 The message could not be stored; please try again later\r\n",
        ),
    ];
    for (error, expected) in cases {
        let mut s = session(Role::Smtp);
        let mut out = Vec::new();
        let feed = s.feed(
            b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n",
            &mut out,
        );
        assert!(matches!(feed.action, Some(Action::Enqueue(_))));
        out.clear();
        s.enqueued(Err(error), &mut out);
        assert_eq!(String::from_utf8_lossy(&out), expected);
        out.clear();
        s.feed(b"RCPT TO:<bob@example.com>\r\n", &mut out);
        assert_eq!(out, b"503 5.5.1 Please send MAIL first\r\n");
    }
}

#[test]
fn timeouts_and_shutdown_close() {
    let mut s = session(Role::Smtp);
    let mut out = Vec::new();
    s.feed(
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\npart",
        &mut out,
    );
    assert!(s.in_data());
    out.clear();
    s.timed_out(&mut out);
    assert_eq!(
        out,
        b"421 4.4.2 mx.example.com Timeout: closing the connection\r\n"
    );
    assert!(s.is_closed() && !s.in_data());
    let mut s = session(Role::Smtp);
    out.clear();
    s.shutting_down(&mut out);
    assert_eq!(
        out,
        b"421 4.3.2 mx.example.com The server is shutting down; please try again later\r\n"
    );
    assert!(s.is_closed());
}

#[test]
fn protocol_names_follow_rfc_3848() {
    let plain = plain_response("alice@example.com", "secret");
    let auth = format!("AUTH PLAIN {plain}\r\n");
    let message = "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n";
    let utf8 =
        "MAIL FROM:<alice@example.com> SMTPUTF8\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n";
    let tls = "EHLO c\r\nSTARTTLS\r\n";
    let cases: [(Role, Vec<&str>, &str); 7] = [
        (Role::Smtp, vec!["HELO c\r\n", message], "SMTP"),
        (Role::Smtp, vec!["EHLO c\r\n", message], "ESMTP"),
        (Role::Smtp, vec!["EHLO c\r\n", utf8], "UTF8SMTP"),
        (Role::Smtp, vec![tls, "EHLO c\r\n", message], "ESMTPS"),
        (Role::Smtp, vec![tls, "EHLO c\r\n", utf8], "UTF8SMTPS"),
        (
            Role::Submissions,
            vec!["EHLO c\r\n", &auth, message],
            "ESMTPSA",
        ),
        (
            Role::Submissions,
            vec!["EHLO c\r\n", &auth, utf8],
            "UTF8SMTPSA",
        ),
    ];
    for (role, chunks, protocol) in cases {
        let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
        let run = drive(&mut session(role), &chunks);
        assert_eq!(
            run.messages[0].origin.client().unwrap().protocol,
            protocol,
            "{}",
            run.text()
        );
    }
}

/// The same conversations fed whole, byte by byte and split at every
/// index give identical replies, messages and logins.
#[test]
fn identical_at_every_split_point() {
    let plain = plain_response("alice@example.com", "secret");
    let user = b64("alice@example.com");
    let password = b64("secret");
    let transcripts: Vec<(Role, String)> = vec![
        (
            Role::Smtp,
            "EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
             RCPT TO:<x@elsewhere.example>\r\nDATA\r\nSubject: s\r\n\r\n..a\r\n.b\r\n\r\n.\r\n\
             MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\n\
             BDAT 5\r\n12\r\n.BDAT 3 LAST\r\nxyzRSET\r\nFOO\r\nQUIT\r\n"
                .into(),
        ),
        (
            Role::Submissions,
            format!(
                "EHLO DESKTOP-7Q2K3LM\r\nAUTH LOGIN\r\n{user}\r\n{password}\r\n\
                 MAIL FROM: <alice@example.com>\r\nRCPT TO: <friend@elsewhere.example>\r\n\
                 DATA\r\nbad\nline\r\n.\r\nRSET\r\nMAIL FROM:<alice@example.com> SIZE=5\r\n\
                 RCPT TO:<bob@example.com>\r\nDATA\r\nhello\r\n.\r\n{}\r\nNOOP\r\nQUIT\r\n",
                "L".repeat(700)
            ),
        ),
        (
            Role::Submissions,
            format!("EHLO c\r\nAUTH PLAIN\r\n{plain}\r\nAUTH LOGIN\r\nQUIT\r\n"),
        ),
    ];
    for (role, transcript) in transcripts {
        let input = transcript.as_bytes();
        let whole = drive_all(&mut session(role), input);
        assert!(whole.closed, "{}", whole.text());
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(drive(&mut session(role), &bytes), whole);
        for split in 0..=input.len() {
            let (a, b) = input.split_at(split);
            assert_eq!(
                drive(&mut session(role), &[a, b]),
                whole,
                "split at {split}"
            );
        }
    }
}

#[test]
fn duplicate_recipients_are_accepted_and_kept_once() {
    let mut s = session(Role::Smtp);
    let run = drive_all(
        &mut s,
        b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\n\
          RCPT TO:<bob@example.com> NOTIFY=SUCCESS\r\nRCPT TO:<bob@EXAMPLE.com> NOTIFY=NEVER\r\n\
          RCPT TO:<bob@example.com>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n\
          RCPT TO:<alice@example.com>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n",
    );
    assert_eq!(
        run.codes(),
        [250, 250, 250, 250, 250, 250, 250, 250, 354, 250]
    );
    let recipients = &run.messages[0].envelope.recipients;
    let addresses: Vec<&str> = recipients.iter().map(|r| r.address.as_str()).collect();
    assert_eq!(addresses, ["bob@example.com", "alice@example.com"]);
    // The first RCPT's parameters stand.
    assert!(recipients[0].notify.is_some_and(|n| n.success));
}

#[test]
fn duplicates_do_not_count_towards_the_recipient_limit() {
    let mut s = session(Role::Smtp);
    let mut input = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\n".to_vec();
    for _ in 0..10 {
        input.extend_from_slice(b"RCPT TO:<bob@example.com>\r\n");
    }
    input.extend_from_slice(b"RCPT TO:<alice@example.com>\r\n");
    let run = drive_all(&mut s, &input);
    assert_eq!(run.codes(), [250; 13]);
}

#[test]
fn a_message_with_too_many_received_fields_is_refused() {
    let message = |hops: usize| {
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
                .to_vec();
        for hop in 0..hops {
            input.extend_from_slice(
                format!("Received: from hop{hop}\r\n\tby x; date\r\n").as_bytes(),
            );
        }
        input.extend_from_slice(b"Subject: x\r\n\r\nReceived: in the body\r\n.\r\n");
        input
    };
    let mut config = config();
    config.max_received = 3;
    config.max_message_size = 10_000;
    let accepted = drive_all(
        &mut session_with(Role::Smtp, config.clone(), false),
        &message(3),
    );
    assert_eq!(accepted.messages.len(), 1);
    let refused = drive_all(
        &mut session_with(Role::Smtp, config.clone(), false),
        &message(4),
    );
    assert!(refused.messages.is_empty());
    assert!(refused
        .text()
        .contains("554 5.4.6 Too many hops: the message has 4 Received"));
    // The same through BDAT, at the last chunk.
    let bdat = |hops: usize| {
        let body = message(hops);
        let start = body.windows(6).position(|w| w == b"DATA\r\n").unwrap() + 6;
        let content = &body[start..body.len() - 3];
        let mut input = body[..start - 6].to_vec();
        input.extend_from_slice(format!("BDAT {} LAST\r\n", content.len()).as_bytes());
        input.extend_from_slice(content);
        input
    };
    let refused = drive_all(
        &mut session_with(Role::Smtp, config.clone(), false),
        &bdat(4),
    );
    assert!(refused.messages.is_empty());
    assert_eq!(refused.codes(), [250, 250, 250, 554]);
    let accepted = drive_all(&mut session_with(Role::Smtp, config, false), &bdat(3));
    assert_eq!(accepted.messages.len(), 1);
}

/// A config with small error limits: 2 errors free, then each held back,
/// 421 at the 5th.
fn strict_errors() -> SessionConfig {
    let mut config = config();
    config.max_bad_commands = 50;
    config.soft_error_limit = 2;
    config.hard_error_limit = 5;
    config
}

/// A directory harvest: unknown users past the soft limit get their 550
/// held back (pipelined commands behind it wait), and the hard limit ends
/// the session without reading the rest.
#[test]
fn unknown_recipients_are_slowed_then_cut_off() {
    let mut s = session_with(Role::Smtp, strict_errors(), false);
    let mut input = String::from("EHLO c\r\nMAIL FROM:<x@remote.example>\r\n");
    for n in 0..100 {
        input.push_str(&format!("RCPT TO:<guess{n}@example.com>\r\n"));
    }
    let run = drive_all(&mut s, input.as_bytes());
    assert_eq!(run.codes(), [250, 250, 550, 550, 550, 550, 421]);
    assert_eq!(run.delayed, [550, 550], "the 3rd and 4th errors wait");
    assert!(run.text().ends_with(
        "550 5.1.1 No such user here\r\n421 4.7.0 Too many errors; closing the connection\r\n"
    ));
    assert!(run.closed);
    // Each reply is reported once, when it is sent.
    let refusals = run
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Refused { code: 550, .. }))
        .count();
    assert_eq!(refusals, 4);
}

/// While a reply is held back the session reads nothing; the caller sends
/// it, and the pipelined rest is answered after it.
#[test]
fn a_held_reply_holds_the_pipeline() {
    let mut s = session_with(Role::Smtp, strict_errors(), false);
    let mut out = Vec::new();
    let input = b"EHLO c\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<a@example.com>\r\n\
        RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.com>\r\nNOOP\r\n";
    let feed = s.feed(input, &mut out);
    assert!(matches!(feed.action, Some(Action::DelayReply(d)) if d == Duration::from_secs(1)));
    let rest = &input[feed.consumed..];
    assert_eq!(rest, b"NOOP\r\n");
    let sent = |out: &[u8]| String::from_utf8_lossy(out).matches("550 5.1.1").count();
    assert_eq!(sent(&out), 2, "the third 550 is held back");
    let again = s.feed(rest, &mut out);
    assert_eq!((again.consumed, again.action.is_none()), (0, true));
    s.send_delayed_reply(&mut out);
    let feed = s.feed(rest, &mut out);
    assert_eq!(feed.consumed, rest.len());
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.ends_with("550 5.1.1 No such user here\r\n550 5.1.1 No such user here\r\n550 5.1.1 No such user here\r\n250 2.0.0 OK\r\n"),
        "{text}"
    );
}

/// Bad commands and refused recipients add up; `max_bad_commands` still
/// closes on bad commands alone; a spooled message starts the count again
/// (errors "without delivering mail", as Postfix counts them); a zero
/// delay holds nothing back.
#[test]
fn what_counts_as_an_error() {
    let mixed = "EHLO c\r\nFOO\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<a@example.com>\r\n\
        RCPT TO:<x@elsewhere.example>\r\nBAR\r\nRCPT TO:<b@example.com>\r\n";
    let run = drive_all(
        &mut session_with(Role::Smtp, strict_errors(), false),
        mixed.as_bytes(),
    );
    assert_eq!(run.codes(), [250, 500, 250, 550, 554, 500, 421]);
    assert_eq!(run.delayed, [554, 500]);

    let mut few_bad = strict_errors();
    few_bad.max_bad_commands = 2;
    let run = drive_all(
        &mut session_with(Role::Smtp, few_bad, false),
        b"EHLO c\r\nFOO\r\nBAR\r\n",
    );
    assert_eq!(run.codes(), [250, 500, 421]);

    let mut input = String::from("EHLO c\r\n");
    for _ in 0..3 {
        input.push_str(
            "MAIL FROM:<x@remote.example>\r\nRCPT TO:<nobody@example.com>\r\n\
             RCPT TO:<ghost@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\nhi\r\n.\r\n",
        );
    }
    let run = drive_all(
        &mut session_with(Role::Smtp, strict_errors(), false),
        input.as_bytes(),
    );
    assert_eq!(run.messages.len(), 3);
    assert!(run.delayed.is_empty() && !run.closed);

    let mut no_delay = strict_errors();
    no_delay.error_delay = Duration::ZERO;
    let run = drive_all(
        &mut session_with(Role::Smtp, no_delay, false),
        b"EHLO c\r\nFOO\r\nBAR\r\nBAZ\r\nQUX\r\nQUUX\r\n",
    );
    assert_eq!(run.codes(), [250, 500, 500, 500, 500, 421]);
    assert!(run.delayed.is_empty());
}

/// Without `smtp_auth`, port 25 neither offers nor takes AUTH (Postfix's
/// reply); the submission roles are unchanged.
#[test]
fn auth_on_port_25_only_when_enabled() {
    let mut off = config();
    off.smtp_auth = false;
    let plain = plain_response("alice@example.com", "secret");
    let after_tls = format!("EHLO c\r\nAUTH PLAIN {plain}\r\n");
    let input: [&[u8]; 2] = [b"EHLO c\r\nSTARTTLS\r\n", after_tls.as_bytes()];
    let run = drive(&mut session_with(Role::Smtp, off.clone(), false), &input);
    let text = run.text();
    assert_eq!(run.tls_starts, 1);
    assert!(!text.contains("AUTH PLAIN LOGIN"), "{text}");
    assert!(
        text.ends_with("250 DSN\r\n503 5.5.1 Error: authentication not enabled\r\n"),
        "{text}"
    );
    assert!(run.logins.is_empty());

    let run = drive(&mut session_with(Role::Smtp, config(), false), &input);
    assert!(run
        .text()
        .ends_with("250 AUTH PLAIN LOGIN\r\n235 2.7.0 Authentication successful\r\n"));

    let submissions_input = format!("EHLO client.example\r\nAUTH PLAIN {plain}\r\n");
    let run = drive_all(
        &mut session_with(Role::Submissions, off, false),
        submissions_input.as_bytes(),
    );
    assert!(run.text().starts_with(EHLO_TLS));
    assert_eq!(run.codes().last(), Some(&235));
}

/// A config whose messages may keep `per_message` octets in memory, out
/// of `total` for all sessions.
fn small_memory(per_message: usize, total: usize) -> SessionConfig {
    let mut config = config();
    config.max_message_size = 1 << 20;
    config.memory = MessageMemory::new(per_message, total);
    config
}

/// A message of about `size` octets: a header section with `received`
/// Received fields, then numbered lines, some starting with a dot.
fn big_message(received: usize, size: usize) -> Vec<u8> {
    let mut message = Vec::new();
    for i in 0..received {
        message.extend_from_slice(format!("Received: from hop{i} by relay{i}\r\n").as_bytes());
    }
    message.extend_from_slice(b"Subject: big\r\n\r\n");
    let mut i = 0;
    while message.len() < size {
        message.extend_from_slice(format!(".line {i} of the body\r\n").as_bytes());
        i += 1;
    }
    message
}

fn dot_stuffed(message: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    crate::proto::dot::stuff(message, &mut out);
    out
}

#[test]
fn a_message_bigger_than_its_memory_is_handed_out_in_parts() {
    let message = big_message(3, 20_000);
    let prefix = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n";
    let mut data = prefix.to_vec();
    data.extend_from_slice(b"DATA\r\n");
    data.extend_from_slice(&dot_stuffed(&message));
    data.extend_from_slice(b"QUIT\r\n");
    let mut bdat = prefix.to_vec();
    for (i, piece) in message.chunks(7000).enumerate() {
        let last = if (i + 1) * 7000 >= message.len() {
            " LAST"
        } else {
            ""
        };
        bdat.extend_from_slice(format!("BDAT {}{last}\r\n", piece.len()).as_bytes());
        bdat.extend_from_slice(piece);
    }
    bdat.extend_from_slice(b"QUIT\r\n");
    for input in [&data, &bdat] {
        let whole = drive_all(
            &mut session_with(Role::Smtp, small_memory(1 << 20, 64 << 20), false),
            input,
        );
        assert_eq!(whole.parts, 0);
        assert_eq!(whole.messages.len(), 1);
        for piece in [1, 100, 4096] {
            let config = small_memory(4096, 1 << 20);
            let memory = Arc::clone(&config.memory);
            let chunks: Vec<&[u8]> = input.chunks(piece).collect();
            let run = drive(&mut session_with(Role::Smtp, config, false), &chunks);
            assert!(run.parts >= 4, "{} parts with pieces of {piece}", run.parts);
            assert!(run.messages == whole.messages, "pieces of {piece}");
            assert!(run.out == whole.out, "pieces of {piece}");
            assert!(run.messages[0].body == message);
            assert_eq!(memory.in_use(), 0, "the share comes back");
        }
    }
}

/// Once a message goes out in parts, each part is read into a buffer of
/// its whole memory share, filled to the brim and never past it (the
/// share is what the budget counts), whatever the reads bring.
#[test]
fn parts_after_the_first_fill_their_share_and_never_outgrow_it() {
    let message = big_message(3, 100_000);
    let prefix = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n";
    let mut data = prefix.to_vec();
    data.extend_from_slice(b"DATA\r\n");
    data.extend_from_slice(&dot_stuffed(&message));
    let mut bdat = prefix.to_vec();
    for piece in message.chunks(30_000) {
        bdat.extend_from_slice(format!("BDAT {}\r\n", piece.len()).as_bytes());
        bdat.extend_from_slice(piece);
    }
    bdat.extend_from_slice(b"BDAT 0 LAST\r\n");
    let share = 4096;
    for (input, slack) in [(&data, 1), (&bdat, 0)] {
        for piece in [1, 100, 4095, 4097, 65_536] {
            let chunks: Vec<&[u8]> = input.chunks(piece).collect();
            let run = drive(
                &mut session_with(Role::Smtp, small_memory(share, 1 << 20), false),
                &chunks,
            );
            assert!(run.messages.len() == 1 && run.messages[0].body == message);
            let (last, full) = run.later_parts.split_last().unwrap();
            assert!(full.len() >= 5, "{} parts, pieces of {piece}", full.len());
            for &(length, capacity) in full {
                assert!(
                    length + slack >= share && capacity <= share,
                    "a part of {length} octets in {capacity}, pieces of {piece}"
                );
            }
            assert!(last.1 <= share, "pieces of {piece}");
        }
    }
}

#[test]
fn when_the_shared_memory_is_taken_even_a_small_message_goes_out_in_parts() {
    let config = Arc::new(small_memory(64 * 1024, 64 * 1024));
    let memory = Arc::clone(&config.memory);
    let client = || ClientInfo {
        ip: "192.0.2.7".to_string(),
        trusted: false,
        tls: None,
    };
    let new_session = || {
        Session::new(
            Role::Smtp,
            Arc::clone(&config),
            Arc::new(FixedDirectory::example()),
            client(),
        )
    };
    let start = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n";
    // The first session holds 60 KiB of an unfinished message.
    let mut greedy = new_session();
    let mut input = start.to_vec();
    input.extend_from_slice(&dot_stuffed(&big_message(0, 60 * 1024))[..60 * 1024]);
    let held = drive_all(&mut greedy, &input);
    assert_eq!(held.parts, 0);
    assert!(memory.in_use() >= 60 * 1024);
    // The second gets what is left, and hands out the rest.
    let message = big_message(0, 16 * 1024);
    let mut input = start.to_vec();
    input.extend_from_slice(&dot_stuffed(&message));
    // Read in pieces, as from a socket: what one read brings is read even
    // without memory, and handed out with the next.
    let chunks: Vec<&[u8]> = input.chunks(4096).collect();
    let run = drive(&mut new_session(), &chunks);
    assert!(run.parts >= 1);
    assert_eq!(run.messages.len(), 1);
    assert!(run.messages[0].body == message);
    drop(greedy);
    assert_eq!(memory.in_use(), 0);
}

#[test]
fn loops_and_nuls_are_found_across_parts() {
    for (received, expected) in [(50, 250), (51, 554)] {
        let message = big_message(received, 30_000);
        let mut input =
            b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n"
                .to_vec();
        input.extend_from_slice(&dot_stuffed(&message));
        let chunks: Vec<&[u8]> = input.chunks(10).collect();
        let run = drive(
            &mut session_with(Role::Smtp, small_memory(256, 1 << 20), false),
            &chunks,
        );
        assert_eq!(
            run.codes().last(),
            Some(&expected),
            "{received} Received fields"
        );
    }
    let mut input =
        b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nBDAT 5000\r\n"
            .to_vec();
    input.extend_from_slice(&[b'x'; 4000]);
    input.push(0);
    input.extend_from_slice(&[b'x'; 999]);
    input.extend_from_slice(b"BDAT 3000 LAST\r\n");
    input.extend_from_slice(&[b'y'; 3000]);
    let run = drive_all(
        &mut session_with(Role::Smtp, small_memory(1024, 1 << 20), false),
        &input,
    );
    assert!(run.parts > 0);
    assert!(run.messages.is_empty());
    assert_eq!(run.codes().last(), Some(&550));
}

/// The message of one transaction from a session of `role` (trusted or
/// not), sent whole and in pieces through a small memory; every run must
/// spool the same message.
fn spooled_from(role: Role, trusted: bool, message: &[u8]) -> NewMessage {
    let mut input = b"EHLO c\r\n".to_vec();
    if role != Role::Smtp {
        let plain = plain_response("alice@example.com", GOOD_PASSWORD);
        input.extend_from_slice(format!("AUTH PLAIN {plain}\r\n").as_bytes());
    }
    input.extend_from_slice(b"MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\n");
    input.extend_from_slice(b"DATA\r\n");
    input.extend_from_slice(&dot_stuffed(message));
    input.extend_from_slice(b".\r\nQUIT\r\n");
    let whole = drive_all(
        &mut session_with(role, small_memory(1 << 20, 64 << 20), trusted),
        &input,
    );
    assert_eq!(whole.messages.len(), 1, "{}", whole.text());
    for piece in [1, 7, 4096] {
        let chunks: Vec<&[u8]> = input.chunks(piece).collect();
        let run = drive(
            &mut session_with(role, small_memory(256, 1 << 20), trusted),
            &chunks,
        );
        if piece == 1 {
            assert!(run.parts > 0, "the message went out in parts");
        }
        assert!(run.messages == whole.messages, "pieces of {piece}");
    }
    whole.messages.into_iter().next().unwrap()
}

#[test]
fn mail_from_devices_and_scripts_gets_the_message_id_and_date_it_lacks() {
    let body = ".line\r\n".repeat(10_000);
    let bare = format!("Subject: backup done\r\n\r\n{body}");
    let dated = format!("Date: Thu, 1 Jan 2026 00:00:00 +0000\r\nSubject: x\r\n\r\n{body}");
    let complete = format!("Message-ID: <1@host>\r\n{dated}");
    let both = MissingFields {
        message_id: true,
        date: true,
    };
    let id_only = MissingFields {
        message_id: true,
        date: false,
    };
    let none = MissingFields::default();
    let cases = [
        (Role::Submissions, false, &bare, both),
        (Role::Submissions, false, &dated, id_only),
        (Role::Submissions, false, &complete, none),
        // A relay-network client on port 25: a device or script.
        (Role::Smtp, true, &bare, both),
        // Another server on port 25: its mail is left as it was sent.
        (Role::Smtp, false, &bare, none),
    ];
    for (role, trusted, message, missing) in cases {
        let spooled = spooled_from(role, trusted, message.as_bytes());
        assert_eq!(spooled.missing, missing, "{role:?} trusted={trusted}");
        assert_eq!(spooled.body, message.as_bytes(), "the message is untouched");
    }
}

#[test]
fn a_header_section_longer_than_the_memory_is_read_whole_before_the_first_part() {
    let mut message = String::new();
    for i in 0..100 {
        message.push_str(&format!("X-Long-Header-{i}: {}\r\n", "v".repeat(60)));
    }
    message.push_str("Message-ID: <late@host>\r\n\r\n");
    message.push_str(&"body line\r\n".repeat(10_000));
    assert!(message.len() > data::MAX_HEADER_HOLD);
    let spooled = spooled_from(Role::Smtp, true, message.as_bytes());
    assert_eq!(
        spooled.missing,
        MissingFields {
            message_id: false,
            date: true
        }
    );
}

#[test]
fn bare_and_localhost_senders_of_relay_networks_take_the_sender_domain() {
    let cases: &[(&str, bool, &str)] = &[
        (
            "MAIL FROM:<root>",
            true,
            "250 2.1.0 Sender <root@example.org> OK",
        ),
        (
            "MAIL FROM:<root@LocalHost>",
            true,
            "250 2.1.0 Sender <root@example.org> OK",
        ),
        (
            "MAIL FROM:<root@host.example>",
            true,
            "250 2.1.0 Sender <root@host.example> OK",
        ),
        ("MAIL FROM:<root>", false, "501 5.1.7"),
        (
            "MAIL FROM:<root@localhost>",
            false,
            "250 2.1.0 Sender <root@localhost> OK",
        ),
    ];
    for (line, trusted, reply) in cases {
        let input = format!("EHLO c\r\n{line}\r\n");
        let run = drive_all(
            &mut session_with(Role::Smtp, config(), *trusted),
            input.as_bytes(),
        );
        let last = run.text().lines().last().unwrap().to_string();
        assert!(last.starts_with(reply), "{line} trusted={trusted}: {last}");
    }
    // A bare recipient is completed the same way.
    let mut completing = config();
    completing.sender_domain = "example.com".into();
    let input =
        b"EHLO c\r\nMAIL FROM:<root>\r\nRCPT TO:<bob>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\n";
    let run = drive_all(&mut session_with(Role::Smtp, completing, true), input);
    assert_eq!(run.messages.len(), 1, "{}", run.text());
    assert_eq!(run.messages[0].envelope.sender, "root@example.com");
    assert_eq!(
        run.messages[0].envelope.recipients[0].address,
        "bob@example.com"
    );
    let run = drive_all(
        &mut session_with(Role::Smtp, config(), false),
        b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob>\r\n",
    );
    assert_eq!(run.codes().last(), Some(&501));
}

/// A recipient after a BDAT chunk would miss the message, which may be
/// on its way to the spool with the recipients it had: refused, and the
/// message still goes to the first recipient only.
#[test]
fn rcpt_after_bdat_is_refused() {
    let input = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
        BDAT 5\r\nhelloRCPT TO:<carol@example.com>\r\nBDAT 0 LAST\r\n";
    let run = drive_all(&mut session(Role::Smtp), input);
    assert_eq!(run.codes(), [250, 250, 250, 250, 503, 250]);
    assert_eq!(run.messages.len(), 1);
    assert_eq!(run.messages[0].envelope.recipients.len(), 1);
}
