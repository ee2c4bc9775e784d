//! Deterministic test inputs shared by the benchmarks: message bodies in
//! wire form (dot-stuffed, ending in `.\r\n`) and pipelined command lines.
//! No randomness from the OS, so every run measures the same bytes.

use std::sync::Arc;
use std::time::Duration;

use outpost::directory::FixedDirectory;
use outpost::proto::dot::{self, DataStatus, Unstuffer};
use outpost::proto::session::{
    Action, ClientInfo, MessageMemory, NoLimits, Role, Session, SessionConfig,
};

/// The read size the server uses; bodies are fed to the unstuffer in
/// chunks of this size, like reads from a socket.
pub const CHUNK: usize = 64 * 1024;

/// The kinds of body measured.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// Prose in 72-78 character lines.
    Text,
    /// A base64 attachment: 76-character lines.
    Base64,
    /// Short lines, about half of them starting with a dot (stuffed).
    Dots,
}

impl Kind {
    /// All kinds, in report order.
    pub const ALL: [Kind; 3] = [Kind::Text, Kind::Base64, Kind::Dots];

    /// The name used in benchmark ids.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Base64 => "base64",
            Kind::Dots => "dots",
        }
    }
}

/// A small linear congruential generator: reproducible and dependency-free.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

const WORDS: [&str; 16] = [
    "the",
    "message",
    "server",
    "queue",
    "delivery",
    "of",
    "and",
    "mail",
    "a",
    "to",
    "report",
    "quarterly",
    "meeting",
    "attached",
    "please",
    "regards",
];
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// A message body (CRLF lines, not stuffed) of about `size` octets.
pub fn body(kind: Kind, size: usize) -> Vec<u8> {
    let mut rng = Lcg(size as u64 ^ kind as u64);
    let mut body = Vec::with_capacity(size + 100);
    body.extend_from_slice(
        b"From: Alice <alice@example.org>\r\nTo: Bob <bob@example.net>\r\n\
          Subject: benchmark\r\nMessage-ID: <1@example.org>\r\n\r\n",
    );
    while body.len() < size {
        match kind {
            Kind::Text => {
                let target = 72 + rng.below(7) as usize;
                let start = body.len();
                while body.len() - start < target {
                    if body.len() > start {
                        body.push(b' ');
                    }
                    let word = WORDS[rng.below(WORDS.len() as u32) as usize];
                    body.extend_from_slice(word.as_bytes());
                }
                body.truncate(start + target);
            }
            Kind::Base64 => {
                for _ in 0..76 {
                    body.push(BASE64[rng.below(64) as usize]);
                }
            }
            Kind::Dots => {
                if rng.below(2) == 0 {
                    body.push(b'.');
                }
                for _ in 0..rng.below(40) {
                    body.push(b'a' + rng.below(26) as u8);
                }
            }
        }
        body.extend_from_slice(b"\r\n");
    }
    body
}

/// The wire form of [`body`]: dot-stuffed, ending in `.\r\n`.
pub fn wire(kind: Kind, size: usize) -> Vec<u8> {
    let mut wire = Vec::new();
    dot::stuff(&body(kind, size), &mut wire);
    wire
}

/// One pipelined transaction's command lines, as a client sends them.
const TRANSACTION: &[&str] = &[
    "MAIL FROM:<alice.sender@example.org> SIZE=10240 BODY=8BITMIME",
    "RCPT TO:<bob@example.net>",
    "RCPT TO:<carol.recipient@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;carol@example.net",
    "RCPT TO:<dave@mail.example.com>",
    "DATA",
    "RSET",
    "NOOP",
    "EHLO client.example.org",
    "MAIL FROM:<> RET=HDRS ENVID=QQ314159",
    "RCPT TO:<postmaster@example.net>",
    "QUIT",
    "XYZZY unknown command",
];

/// About `size` octets of command lines, each ending in CRLF.
pub fn commands(size: usize) -> Vec<u8> {
    let mut buf = Vec::with_capacity(size + 200);
    while buf.len() < size {
        for line in TRANSACTION {
            buf.extend_from_slice(line.as_bytes());
            buf.extend_from_slice(b"\r\n");
        }
    }
    buf
}

/// Unstuffs `wire` fed in `CHUNK`s into `out`; returns the message length.
pub fn unstuff(wire: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let mut unstuffer = Unstuffer::new(usize::MAX);
    for chunk in wire.chunks(CHUNK) {
        if let DataStatus::End { result, .. } = unstuffer.feed(chunk, out) {
            assert_eq!(result, Ok(()));
            return out.len();
        }
    }
    panic!("no end of data");
}

/// One client conversation, EHLO to QUIT, with a 100 KiB message.
pub fn conversation() -> Vec<u8> {
    let message = body(Kind::Text, 100 * 1024);
    let mut input = format!(
        "EHLO client.example.org\r\n\
         MAIL FROM:<alice@example.org> SIZE={}\r\n\
         RCPT TO:<bob@example.net>\r\n\
         DATA\r\n",
        message.len()
    )
    .into_bytes();
    dot::stuff(&message, &mut input);
    input.extend_from_slice(b"QUIT\r\n");
    input
}

/// Plays the runtime: reads arrive in `CHUNK`s, unconsumed bytes stay in
/// the buffer, Enqueue is answered at once. Returns the reply bytes.
pub fn run_session(config: &Arc<SessionConfig>, input: &[u8], out: &mut Vec<u8>) -> usize {
    out.clear();
    let client = ClientInfo {
        ip: "192.0.2.7".to_string(),
        trusted: true,
        tls: None,
    };
    // No local domains: the trusted client relays every recipient.
    let directory = Arc::new(FixedDirectory::default());
    let mut session = Session::new(Role::Smtp, config.clone(), directory, client);
    session.greeting(out);
    let mut start = 0;
    let mut end = CHUNK.min(input.len());
    let mut messages = 0;
    while !session.is_closed() {
        let feed = session.feed(&input[start..end], out);
        start += feed.consumed;
        match feed.action {
            Some(Action::Enqueue(message)) => {
                messages += message.body.len();
                session.enqueued(Ok("ID"), out);
            }
            Some(_) => panic!("unexpected action"),
            None if session.is_closed() => {}
            None => {
                assert!(end < input.len(), "the conversation ended early");
                end = (end + CHUNK).min(input.len());
            }
        }
    }
    assert!(messages > 100 * 1024);
    out.len()
}

/// A server configuration for the session benchmark.
pub fn session_config() -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        hostname: "mx.example.com".to_string(),
        max_message_size: 10 * 1024 * 1024,
        max_recipients: 100,
        max_bad_commands: 10,
        soft_error_limit: 10,
        hard_error_limit: 20,
        error_delay: Duration::from_secs(1),
        smtp_auth: false,
        max_received: 50,
        auth_equals_line: false,
        sender_check: true,
        tls_available: false,
        sender_domain: "example.org".into(),
        memory: MessageMemory::new(128 * 1024, 32 << 20),
        limits: Arc::new(NoLimits),
    })
}
