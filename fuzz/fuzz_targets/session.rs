//! The whole server session, driven by arbitrary client bytes in
//! fuzzer-chosen chunks on each listener role, with this target playing the
//! runtime: STARTTLS always succeeds, one fixed user/password is right,
//! the spool always succeeds.
//!
//! Checked after every call into the session:
//! - no panic, no livelock, the read buffer stays bounded;
//! - every reply line is `ddd`, `-` or space, text, CRLF, at most 512
//!   octets; continuation lines share the code; the last line has a space;
//! - every reply but the greeting, the EHLO/HELO reply, 334 and 354 has an
//!   enhanced code (RFC 3463) whose class is the reply's first digit;
//! - an Enqueue comes only after a 250 to MAIL and as many 250s to RCPT as
//!   it has recipients (at least one), with the sender and every recipient
//!   taken from the client's bytes; on port 25 without AUTH or a trusted
//!   network every recipient is local and exists (no open relay); on
//!   587/465 only after a successful AUTH; the sender passes the sender
//!   check; the origin tells the truth about TLS and AUTH;
//! - 235 appears only right after the credential check said Success, and
//!   credentials are only ever asked to be checked over TLS;
//! - a closing reply (221, 421) closes the session (`is_closed`), with no
//!   action, and nothing is fed after it;
//! - the events tell the mail log the truth: each 4xx/5xx reply to input
//!   is one refusal with the same code and text, each credential check one
//!   login, each spooled message one `Queued`; nothing else;
//! - with little message memory (a settings bit) messages come in parts:
//!   parts only while one is started, the finished message checked as a
//!   whole one, its summary's size the sum of its parts; once the session
//!   is gone its memory share is back.
//!
//! Input: 1 settings byte (role, token mode, trusted, sender check, …),
//! 4 bytes of chunk pattern, then the client's bytes (raw, or each byte an
//! index into a table of whole SMTP commands and DATA fragments).
#![no_main]

use std::sync::Arc;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use outpost::directory::FixedDirectory;
use outpost::proto::command::MAX_AUTH_LINE;
use outpost::proto::envelope::NewMessage;
use outpost::proto::reply::Enhanced;
use outpost::proto::sasl::AuthResult;
use outpost::proto::session::{
    Action, ClientInfo, MessageMemory, MessageSummary, NoLimits, Role, Session, SessionConfig,
    SessionEvent,
};

#[path = "common/mod.rs"]
mod common;

const HOSTNAME: &str = "mx.example.com";
/// What a relay-network client's bare addresses are completed with.
const SENDER_DOMAIN: &str = "example.org";
/// How the EHLO and HELO replies start.
const HELLO: &str = "mx.example.com Hello ";
const USER: &str = "alice@example.com";
const PASSWORD: &str = "secret";
/// Mailboxes of `FixedDirectory::example()`, lowercase.
const MAILBOXES: [&str; 3] = [
    "alice@example.com",
    "bob@example.com",
    "postmaster@example.com",
];

/// Whole commands and DATA pieces: random bytes become conversations.
const TOKENS: &[&[u8]] = &[
    b"EHLO client.example\r\n",
    b"EHLO DESKTOP-7Q2K3LM\r\n",
    b"EHLO [127.0.0.1]\r\n",
    b"HELO client.example\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n",
    b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUuY29tAHdyb25n\r\n",
    b"AGFsaWNlQGV4YW1wbGUuY29tAHNlY3JldA==\r\n",
    b"AUTH LOGIN\r\n",
    b"AUTH LOGIN YWxpY2VAZXhhbXBsZS5jb20=\r\n",
    b"YWxpY2VAZXhhbXBsZS5jb20=\r\n",
    b"c2VjcmV0\r\n",
    b"d3Jvbmc=\r\n",
    b"*\r\n",
    b"=\r\n",
    b"AUTH CRAM-MD5\r\n",
    b"MAIL FROM:<alice@example.com>\r\n",
    b"MAIL FROM: <alice@example.com>\r\n",
    b"MAIL FROM:<sales@example.com> SIZE=100 BODY=8BITMIME\r\n",
    b"MAIL FROM:<mallory@evil.example>\r\n",
    b"MAIL FROM:<>\r\n",
    b"MAIL FROM:<j\xc3\xb6rg@example.com> SMTPUTF8\r\n",
    b"MAIL FROM:<a@b> BODY=BINARYMIME\r\n",
    b"MAIL FROM:<a@b> SIZE=99999999\r\n",
    b"MAIL FROM:<a@b> RET=HDRS ENVID=x+2By\r\n",
    b"MAIL FROM:<a@b> REQUIRETLS\r\n",
    b"RCPT TO:<bob@example.com>\r\n",
    b"RCPT TO:<BOB@EXAMPLE.COM>\r\n",
    b"RCPT TO:<alice@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.com\r\n",
    b"RCPT TO:<Postmaster>\r\n",
    b"RCPT TO:<postmaster@example.com>\r\n",
    b"RCPT TO:<nobody@example.com>\r\n",
    b"RCPT TO:<victim@elsewhere.example>\r\n",
    b"RCPT TO:<victim%elsewhere.example@example.com>\r\n",
    b"RCPT TO:<victim!elsewhere.example@example.com>\r\n",
    b"RCPT TO:<\"victim@elsewhere.example\"@example.com>\r\n",
    b"RCPT TO:<@example.com:victim@elsewhere.example>\r\n",
    b"RCPT TO:<bob@[192.0.2.1]>\r\n",
    b"RCPT TO:<\xe7\x94\xa8\xe6\x88\xb7@example.com>\r\n",
    b"RCPT TO:<>\r\n",
    b"DATA\r\n",
    b"Subject: hi\r\n\r\nhello\r\n",
    b"..leading dot\r\n",
    b"\r\n.\r\n",
    b".\r\n",
    b"\n.\n",
    b"\r.\r\n",
    b"\r\n.\n",
    b"\r\n\x00.\r\n",
    b"BDAT 5\r\nhello",
    b"BDAT 0 LAST\r\n",
    b"BDAT 7 LAST\r\nbye\r\n\r\n",
    b"BDAT 99999999999 LAST\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"VRFY bob\r\n",
    b"EXPN list\r\n",
    b"HELP\r\n",
    b"QUIT\r\n",
    b"XYZZY\r\n",
    b"\r\n",
    b"\n",
    b"\r",
];

/// One reply as it went out.
#[derive(Debug)]
struct Parsed {
    code: u16,
    /// `(class, subject, detail)` if the lines carry one.
    enhanced: Option<(u8, u16, u16)>,
    /// The first line's text after `ddd` and the separator.
    first_text: String,
}

/// `class.subject.detail ` at the start of a reply text (RFC 3463 §2).
fn enhanced_prefix(text: &[u8]) -> Option<(u8, u16, u16)> {
    let text = std::str::from_utf8(text).ok()?;
    let (code, _) = text.split_once(' ').unwrap_or((text, ""));
    let mut parts = code.split('.');
    let (Some(class), Some(subject), Some(detail), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    let digits = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit())
    };
    if !(digits(class, 1) && digits(subject, 3) && digits(detail, 3)) {
        return None;
    }
    Some((
        class.parse().ok()?,
        subject.parse().ok()?,
        detail.parse().ok()?,
    ))
}

/// Splits what one call appended into replies, checking the wire form.
fn parse_replies(out: &[u8]) -> Vec<Parsed> {
    assert!(
        out.is_empty() || out.ends_with(b"\r\n"),
        "unterminated reply: {out:?}"
    );
    let mut replies = Vec::new();
    let mut current: Option<Parsed> = None;
    for line in out.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "bare LF in a reply: {line:?}");
        assert!(
            line.len() <= 512,
            "reply line over 512 octets (RFC 5321 §4.5.3.1.5)"
        );
        let body = &line[..line.len() - 2];
        assert!(!body.contains(&b'\r'), "bare CR in a reply: {line:?}");
        assert!(body.len() >= 4, "short reply line: {line:?}");
        assert!(
            body[..3].iter().all(u8::is_ascii_digit),
            "bad code: {line:?}"
        );
        assert!(b"2345".contains(&body[0]), "bad reply class: {line:?}");
        let code: u16 = std::str::from_utf8(&body[..3]).unwrap().parse().unwrap();
        let text = &body[4..];
        let enhanced = enhanced_prefix(text);
        match &current {
            Some(previous) => {
                assert_eq!(
                    previous.code, code,
                    "continuation changes the code: {line:?}"
                );
                assert_eq!(
                    previous.enhanced, enhanced,
                    "enhanced code changes: {line:?}"
                );
            }
            None => {
                current = Some(Parsed {
                    code,
                    enhanced,
                    first_text: String::from_utf8_lossy(text).into_owned(),
                })
            }
        }
        match body[3] {
            b'-' => {}
            b' ' => replies.extend(current.take()),
            _ => panic!("separator is neither '-' nor ' ': {line:?}"),
        }
    }
    assert!(current.is_none(), "multi-line reply without its last line");
    replies
}

/// What the target knows about the conversation so far.
struct Driver {
    role: Role,
    trusted: bool,
    sender_check: bool,
    session: Session,
    out: Vec<u8>,
    /// Everything the session has consumed, to check that envelope
    /// addresses come from the client.
    seen: Vec<u8>,
    tls: bool,
    auth_ok: bool,
    greeted: bool,
    /// A 250 to MAIL was seen, and how many 250s to RCPT since.
    mail_ok: bool,
    rcpts_ok: usize,
    closed: bool,
    /// The message being handed out in parts.
    streaming: Option<NewMessage>,
}

impl Driver {
    /// Checks what the last call appended to the output. `allow_235` is
    /// true only right after the credential check said Success.
    fn take_replies(&mut self, from: usize, allow_235: bool) -> Vec<Parsed> {
        let replies = parse_replies(&self.out[from..]);
        for reply in &replies {
            let is_greeting = !self.greeted;
            self.greeted = true;
            let is_hello = reply.code == 250
                && reply.enhanced.is_none()
                && reply.first_text.starts_with(HELLO);
            let exempt = is_greeting && reply.code == 220
                || is_hello
                || reply.code == 334
                || reply.code == 354;
            match reply.enhanced {
                Some((class, _, _)) => {
                    assert_eq!(
                        u16::from(class),
                        reply.code / 100,
                        "enhanced class: {reply:?}"
                    )
                }
                None => assert!(exempt, "reply without an enhanced code: {reply:?}"),
            }
            assert!(
                reply.code != 235 || allow_235,
                "235 without a successful check"
            );
            match (reply.code, reply.enhanced) {
                (250, Some((2, 1, 0))) => {
                    self.mail_ok = true;
                    self.rcpts_ok = 0;
                }
                (250, Some((2, 1, 5))) => {
                    assert!(self.mail_ok, "250 to RCPT without MAIL");
                    self.rcpts_ok += 1;
                }
                // EHLO, HELO, RSET, STARTTLS and QUIT end any transaction.
                (250, None) | (220, _) | (221, _) => self.end_transaction(),
                (250, Some(_)) if reply.first_text.ends_with("Reset OK") => self.end_transaction(),
                _ => {}
            }
        }
        replies
    }

    /// The session reported each 4xx/5xx reply among `replies` as a
    /// refusal with the same code and text, in order, and nothing else.
    fn check_refusals(&mut self, replies: &[Parsed]) {
        let events = self.session.take_events();
        let refusals: Vec<&Parsed> = replies.iter().filter(|r| r.code >= 400).collect();
        assert_eq!(events.len(), refusals.len(), "{events:?} for {replies:?}");
        for (event, reply) in events.iter().zip(refusals) {
            let SessionEvent::Refused {
                code,
                enhanced,
                text,
                ..
            } = event
            else {
                panic!("not a refusal: {event:?}");
            };
            assert_eq!(*code, reply.code);
            let text = text.replace(['\r', '\n'], " ");
            let written = match enhanced {
                Some(Enhanced(class, subject, detail)) => {
                    format!("{class}.{subject}.{detail} {text}")
                }
                None => text,
            };
            assert_eq!(written, reply.first_text, "{event:?}");
        }
    }

    fn end_transaction(&mut self) {
        self.mail_ok = false;
        self.rcpts_ok = 0;
    }

    fn check_message(&mut self, message: &NewMessage) {
        let envelope = &message.envelope;
        assert!(self.mail_ok, "Enqueue without a 250 to MAIL");
        assert!(
            !envelope.recipients.is_empty(),
            "Enqueue without recipients"
        );
        assert!(
            envelope.recipients.len() <= self.rcpts_ok,
            "more recipients than 250s to RCPT"
        );
        // Case-insensitive: `<postmaster>` in any case is recorded as
        // `Postmaster` (RFC 5321 §4.1.1.3).
        let appears = |text: &str| {
            let text = text.as_bytes();
            text.is_empty()
                || self
                    .seen
                    .windows(text.len())
                    .any(|w| w.eq_ignore_ascii_case(text))
        };
        // A relay-network client's bare `root` (or `root@localhost`) is
        // completed with the sender domain (Postfix's myorigin).
        let from_client = |address: &str| {
            appears(address)
                || (self.trusted
                    && address
                        .strip_suffix(&format!("@{SENDER_DOMAIN}"))
                        .is_some_and(|local| appears(local)))
        };
        assert!(
            from_client(&envelope.sender),
            "sender not from the client: {envelope:?}"
        );
        for recipient in &envelope.recipients {
            assert!(
                from_client(&recipient.address),
                "recipient not from the client: {envelope:?} seen {:?}",
                String::from_utf8_lossy(&self.seen)
            );
        }
        if self.role != Role::Smtp {
            assert!(self.auth_ok, "Enqueue on a submission port without AUTH");
        }
        if !self.auth_ok && !self.trusted {
            // Port 25 without AUTH: local recipients only, never a relay.
            for recipient in &envelope.recipients {
                let address = recipient.address.to_lowercase();
                assert!(
                    address == "postmaster" || MAILBOXES.contains(&address.as_str()),
                    "open relay to {address:?}"
                );
            }
        }
        if self.auth_ok && self.sender_check && !envelope.sender.is_empty() {
            assert!(
                envelope.sender == USER || envelope.sender == "sales@example.com",
                "sender check bypassed: {}",
                envelope.sender
            );
        }
        assert_eq!(message.origin.client().unwrap().tls.is_some(), self.tls);
        assert_eq!(
            message.origin.client().unwrap().auth_user.as_deref(),
            self.auth_ok.then_some(USER)
        );
        self.end_transaction();
    }

    /// Checks a message handed to the spool and answers it.
    fn spooled(&mut self, message: &NewMessage) {
        self.check_message(message);
        let from = self.out.len();
        self.session.enqueued(Ok("ID"), &mut self.out);
        match &self.session.take_events()[..] {
            [SessionEvent::Queued {
                queue_id,
                message: m,
            }] => {
                assert_eq!(queue_id, "ID");
                assert_eq!(*m, summary_of(message));
            }
            other => panic!("events of a spooled message: {other:?}"),
        }
        let replies = self.take_replies(from, false);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].code, 250);
    }

    /// Feeds one chunk and answers every action, like the runtime.
    fn chunk(&mut self, buf: &mut Vec<u8>, chunk: &[u8]) {
        buf.extend_from_slice(chunk);
        for _ in 0..100_000 {
            let from = self.out.len();
            let feed = self.session.feed(buf, &mut self.out);
            assert!(feed.consumed <= buf.len());
            self.seen.extend_from_slice(&buf[..feed.consumed]);
            buf.drain(..feed.consumed);
            let replies = self.take_replies(from, false);
            self.check_refusals(&replies);
            let closing = replies.iter().any(|r| r.code == 221 || r.code == 421);
            assert_eq!(closing, self.session.is_closed());
            if closing {
                assert!(feed.action.is_none(), "an action with the last reply");
                self.closed = true;
                return;
            }
            match feed.action {
                None => {
                    assert!(buf.len() < MAX_AUTH_LINE, "read buffer not bounded");
                    return;
                }
                Some(Action::StartTls) => {
                    assert!(!self.tls, "STARTTLS asked for twice");
                    // RFC 3207 §4.2: the pipelined rest is dropped.
                    assert!(buf.is_empty(), "bytes after STARTTLS were kept");
                    self.session.tls_started("TLSv1.3");
                    self.tls = true;
                    self.end_transaction();
                }
                Some(Action::Authenticate(credentials)) => {
                    assert!(self.tls, "credentials checked over plaintext");
                    assert!(!self.auth_ok, "a second AUTH was accepted");
                    let good = credentials.username == USER && credentials.password == PASSWORD;
                    let result = if good {
                        AuthResult::Success
                    } else {
                        AuthResult::Failure
                    };
                    let from = self.out.len();
                    self.session.auth_result(result, &mut self.out);
                    let login = SessionEvent::Login {
                        user: credentials.username,
                        result,
                    };
                    assert_eq!(self.session.take_events(), [login]);
                    let replies = self.take_replies(from, good);
                    assert_eq!(replies.len(), 1);
                    assert_eq!(replies[0].code == 235, good);
                    self.auth_ok |= good;
                }
                Some(Action::DelayReply(_)) => {
                    // The held error reply, reported when it is sent.
                    let from = self.out.len();
                    self.session.send_delayed_reply(&mut self.out);
                    let replies = self.take_replies(from, false);
                    assert_eq!(replies.len(), 1);
                    assert!(replies[0].code >= 400, "a held reply that is no error");
                    self.check_refusals(&replies);
                }
                Some(Action::Enqueue(message)) => self.spooled(&message),
                Some(Action::StartMessage(first)) => {
                    // One left unfinished before is dropped here.
                    self.streaming = Some(*first);
                }
                Some(Action::AppendMessage(part)) => {
                    let message = self.streaming.as_mut().expect("a part before the start");
                    message.body.extend_from_slice(&part);
                }
                Some(Action::FinishMessage { last_part, summary }) => {
                    let mut message = self.streaming.take().expect("an end before the start");
                    message.body.extend_from_slice(&last_part);
                    assert_eq!(summary, summary_of(&message));
                    self.spooled(&message);
                }
            }
        }
        panic!("the session neither consumed its input nor asked to read more");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let settings = common::byte(&mut data);
    let role = [Role::Smtp, Role::Submission, Role::Submissions][usize::from(settings & 3) % 3];
    let tokens = settings & 0x04 != 0;
    let trusted = settings & 0x08 != 0;
    let sender_check = settings & 0x10 != 0;
    let config = SessionConfig {
        hostname: HOSTNAME.to_string(),
        max_message_size: 1000,
        max_recipients: 3,
        max_bad_commands: if settings & 0x40 != 0 { 5 } else { 50 },
        soft_error_limit: 10,
        hard_error_limit: 20,
        error_delay: Duration::from_secs(1),
        // Only a sender check's absence is lost on port 25 without AUTH.
        smtp_auth: sender_check,
        max_received: 50,
        auth_equals_line: settings & 0x20 != 0,
        sender_check,
        tls_available: true,
        sender_domain: SENDER_DOMAIN.into(),
        limits: Arc::new(NoLimits),
        memory: if settings & 0x80 != 0 {
            MessageMemory::new(40, 100)
        } else {
            MessageMemory::new(1 << 20, 1 << 20)
        },
    };
    let memory = Arc::clone(&config.memory);
    let pattern = common::take(&mut data, 4);
    let mapped;
    if tokens {
        mapped = common::detokenize(TOKENS, data);
        data = &mapped;
    }
    let tls = role == Role::Submissions;
    let client = ClientInfo {
        ip: "192.0.2.7".to_string(),
        trusted,
        tls: tls.then(|| "TLSv1.3".to_string()),
    };
    let session = Session::new(
        role,
        Arc::new(config),
        Arc::new(FixedDirectory::example()),
        client,
    );
    let mut driver = Driver {
        role,
        trusted,
        sender_check,
        session,
        out: Vec::new(),
        seen: Vec::new(),
        tls,
        auth_ok: false,
        greeted: false,
        mail_ok: false,
        rcpts_ok: 0,
        closed: false,
        streaming: None,
    };
    driver.session.greeting(&mut driver.out);
    let greeting = driver.take_replies(0, false);
    assert_eq!(greeting.len(), 1);
    assert_eq!(greeting[0].code, 220);

    let mut buf = Vec::new();
    for chunk in common::chunks(pattern, data) {
        driver.chunk(&mut buf, chunk);
        if driver.closed {
            trace(&driver);
            drop(driver);
            assert_eq!(memory.in_use(), 0, "message memory not given back");
            return;
        }
    }
    // The client went quiet: the idle timeout closes politely.
    let from = driver.out.len();
    driver.session.timed_out(&mut driver.out);
    let replies = driver.take_replies(from, false);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].code, 421);
    assert!(driver.session.is_closed());
    assert!(driver.session.take_events().is_empty());
    trace(&driver);
    drop(driver);
    assert_eq!(memory.in_use(), 0, "message memory not given back");
});

/// What the mail log should say about `message`.
fn summary_of(message: &NewMessage) -> MessageSummary {
    let client = message.origin.client().expect("a client's message");
    MessageSummary {
        sender: message.envelope.sender.clone(),
        recipients: message.envelope.recipients.len(),
        size: message.body.len(),
        auth_user: client.auth_user.clone(),
        tls: client.tls.clone(),
        message_id: outpost::proto::session::message_id(&message.body),
    }
}

/// With `OUTPOST_FUZZ_TRACE=1`, prints the conversation (for reading a seed
/// or a crash: `cargo fuzz run session FILE`).
fn trace(driver: &Driver) {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    if *ON.get_or_init(|| std::env::var_os("OUTPOST_FUZZ_TRACE").is_some()) {
        eprintln!(
            "--- client\n{}\n--- server\n{}",
            String::from_utf8_lossy(&driver.seen),
            String::from_utf8_lossy(&driver.out)
        );
    }
}
