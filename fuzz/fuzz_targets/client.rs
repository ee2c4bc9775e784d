//! The outbound client state machine (`proto::client::Client`) fed arbitrary
//! server replies in fuzzer-chosen chunks, with this target playing the
//! caller: `StartTls` is answered with `tls_started`, `SendBody` with the
//! body stuffed by `proto::dot::Stuffer` in fuzzer-chosen pieces (as the
//! delivery driver writes it) and `body_sent`, `Done` ends the run.
//!
//! The target keeps its own model of the dialogue: the commands the client
//! sent and still waits for, matched in order with the replies it completed
//! (chunks are additionally cut after every complete reply, so each call
//! into the client answers at most one reply and its output is the
//! client's reaction to exactly that reply). Checked:
//! - no panic, and the run ends (every loop is bounded by the input);
//! - everything sent is a CRLF-terminated command line of at most 512
//!   octets (no CR or LF inside), an AUTH continuation, or the message body
//!   dot-stuffed (the reference stuffing here, whole, against the pieces
//!   the target stuffed) ending in `.\r\n`;
//! - the body (or the empty `.\r\n`) goes out only as the reaction to a 354
//!   that answered DATA; the whole body only after a 2xx to MAIL and at
//!   least one 2xx to RCPT; DATA outside a pipelined batch only after an
//!   accepted RCPT;
//! - AUTH (and its continuations) never before TLS when TLS is required;
//!   no MAIL at all when the message needs 8BITMIME or SMTPUTF8 and the
//!   peer's EHLO did not offer it;
//! - nothing is sent after QUIT;
//! - the report has exactly one outcome per recipient; a recipient is
//!   Delivered only if its RCPT got a 2xx and the reply after the body was
//!   2xx (and then it is Delivered); when the client ended the session
//!   itself, no recipient is left with the "no answer" fallback.
//!
//! Input: 1 parameters byte (TLS policy, credentials, 8-bit body, SMTPUTF8,
//! DSN parameters, 8BITMIME declared, recipients), 1 mode byte (raw bytes or
//! reply tokens, body variant), 4 bytes of chunk pattern, then the server's
//! bytes.
#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use outpost::proto::client::{
    BodyFacts, Client, ClientAction, ClientParams, Extensions, Outcome, RecipientParams, TlsPolicy,
};
use outpost::proto::dot::Stuffer;
use outpost::proto::esmtp::{Notify, Orcpt, Ret};
use outpost::proto::reply::MAX_REPLY_LINE;
use outpost::proto::sasl::Credentials;

#[path = "common/mod.rs"]
mod common;

/// Whole reply lines (and some broken ones): random bytes become dialogues.
const TOKENS: &[&[u8]] = &[
    b"220 mx.example ESMTP\r\n",
    b"220-mx.example first line\r\n",
    b"220 2.0.0 Ready to start TLS\r\n",
    b"250-mx.example Hello\r\n",
    b"250-PIPELINING\r\n",
    b"250-STARTTLS\r\n",
    b"250-SIZE 1000000\r\n",
    b"250-SIZE 10\r\n",
    b"250-8BITMIME\r\n",
    b"250-SMTPUTF8\r\n",
    b"250-DSN\r\n",
    b"250-AUTH PLAIN LOGIN\r\n",
    b"250-AUTH LOGIN\r\n",
    b"250-AUTH=LOGIN PLAIN\r\n",
    b"250-ENHANCEDSTATUSCODES\r\n",
    b"250-CHUNKING\r\n",
    b"250 PIPELINING\r\n",
    b"250 8BITMIME\r\n",
    b"250 STARTTLS\r\n",
    b"250 mx.example\r\n",
    b"250 2.1.0 Ok\r\n",
    b"250 2.1.5 Ok\r\n",
    b"250 2.0.0 Ok: queued as 4711\r\n",
    b"251 2.1.5 forwarding\r\n",
    b"354 End data with <CR><LF>.<CR><LF>\r\n",
    b"354 go ahead\r\n",
    b"334 \r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"334 UGFzc3dvcmQ6\r\n",
    b"235 2.7.0 Authentication successful\r\n",
    b"221 2.0.0 Bye\r\n",
    b"421 4.7.0 Closing\r\n",
    b"450 4.2.1 Mailbox busy\r\n",
    b"451 4.3.0 Try again later\r\n",
    b"452 4.5.3 Too many recipients\r\n",
    b"454 4.7.0 TLS not available\r\n",
    b"500 5.5.1 Unknown command\r\n",
    b"502 5.5.1 Not implemented\r\n",
    b"503 5.5.1 Bad sequence\r\n",
    b"530 5.7.0 Must issue STARTTLS first\r\n",
    b"535 5.7.8 Bad credentials\r\n",
    b"550 5.1.1 No such user\r\n",
    b"550-5.1.1 first line\r\n",
    b"552 5.3.4 Too big\r\n",
    b"553 5.7.1 Sender rejected\r\n",
    b"554 5.7.1 Rejected\r\n",
    b"554 No valid recipients\r\n",
    b"250 ok\n",
    b"250-",
    b"ok\r\n",
    b"\r\n",
    b"999 bad code\r\n",
    b"25",
    b"2500 x\r\n",
    b"250x\r\n",
    b"hello\r\n",
    b"250 \xff\xfe\r\n",
    b"550-5.1.1 a\r\n550 5.1.1 b\r\n",
    b"250-a\r\n451 b\r\n",
];

/// Reference dot-stuffing (RFC 5321 §4.5.2) of a body with CRLF line ends.
fn stuffed(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in body.split_inclusive(|&b| b == b'\n') {
        if line.first() == Some(&b'.') {
            out.push(b'.');
        }
        out.extend_from_slice(line);
    }
    out.extend_from_slice(b".\r\n");
    out
}

fn has_bare_newline(body: &[u8]) -> bool {
    body.iter().enumerate().any(|(i, &b)| {
        (b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
            || (b == b'\r' && body.get(i + 1) != Some(&b'\n'))
    })
}

/// What `Client::finish` says of a recipient it has no outcome for.
const NO_ANSWER: &str = "No answer for this recipient";

const ADDRESSES: [&str; 3] = ["bob@example.com", "carol@example.net", "dave@example.org"];

/// The parameters, and the message they describe.
fn params(p: u8, mode: u8) -> (ClientParams, Vec<u8>) {
    let tls = match p & 3 {
        0 => TlsPolicy::Never,
        1 => TlsPolicy::Opportunistic,
        _ => TlsPolicy::Required,
    };
    let dsn = p & 0x20 != 0;
    let count = if p & 0x80 != 0 { 3 } else { 1 };
    let mut recipients: Vec<RecipientParams> = ADDRESSES[..count]
        .iter()
        .map(|a| RecipientParams {
            address: a.to_string(),
            notify: dsn.then_some(Notify {
                success: true,
                failure: true,
                delay: false,
            }),
            // One xtext ORCPT, one in UTF-8 that is not passed on.
            orcpt: dsn.then(|| {
                if a.starts_with('b') {
                    Orcpt::rfc822(a)
                } else {
                    format!("utf-8;\u{fc}{a}").parse().unwrap()
                }
            }),
        })
        .collect();
    if mode & 0x10 != 0 {
        // An address that must never reach the wire as it is.
        recipients.push(RecipientParams {
            address: "evil> SIZE=1@example.com".into(),
            notify: None,
            orcpt: None,
        });
    }
    let mut body = b"From: alice@example.org\r\nSubject: hi\r\n\r\nhello\r\n".to_vec();
    if p & 0x08 != 0 {
        body.extend_from_slice(b"caf\xc3\xa9\r\n");
    }
    match (mode >> 1) & 3 {
        1 => body.extend_from_slice(b".\r\n..two dots\r\n.\r\n"),
        2 => body.extend_from_slice(b"bare\nline\r\n"),
        3 => body.extend_from_slice(&vec![b'x'; 600]),
        _ => {}
    }
    if !body.ends_with(b"\r\n") {
        body.extend_from_slice(b"\r\n");
    }
    let params = ClientParams {
        hostname: "out.example".into(),
        sender: if p & 0x10 != 0 {
            "j\u{f6}rg@example.org".into()
        } else {
            "alice@example.org".into()
        },
        recipients,
        body: BodyFacts::of(&body),
        eight_bit_mime: p & 0x40 != 0,
        smtputf8: p & 0x10 != 0,
        ret: dsn.then_some(Ret::Hdrs),
        envid: dsn.then(|| "abc+2Bdef".into()),
        tls,
        tls_active: p & 3 == 3,
        credentials: (p & 0x04 != 0).then(|| Credentials {
            username: "alice@example.org".into(),
            password: "secret".into(),
        }),
    };
    (params, body)
}

/// A command the client sent and whose reply it waits for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Sent {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    Auth,
    Mail,
    Rcpt(usize),
    Data,
    Body { full: bool },
}

/// The target's picture of the dialogue.
struct Model {
    params: ClientParams,
    stuffed: Vec<u8>,
    eight_bit: bool,
    pending: VecDeque<Sent>,
    extensions: Extensions,
    tls: bool,
    mail_ok: bool,
    accepted: Vec<usize>,
    /// The reply to the last command was a 354 to DATA.
    data_go: bool,
    /// The reply after a full body.
    final_code: Option<u16>,
    quit: bool,
}

impl Model {
    /// The client completed a reply: match it with the oldest command.
    fn on_reply(&mut self, code: u16, lines: &[String]) {
        self.data_go = false;
        let Some(sent) = self.pending.pop_front() else {
            panic!("reply {code} while the client waits for nothing");
        };
        match sent {
            Sent::Ehlo if code == 250 => {
                let lines = without_enhanced_code(code, lines);
                self.extensions = Extensions::parse(lines.iter().skip(1).map(|l| l.as_str()));
            }
            Sent::Ehlo | Sent::Helo => self.extensions = Extensions::default(),
            Sent::Mail => {
                self.mail_ok = code / 100 == 2;
                self.accepted.clear();
            }
            Sent::Rcpt(i) if code / 100 == 2 && self.mail_ok => self.accepted.push(i),
            Sent::Data => self.data_go = code == 354,
            Sent::Body { full: true } => self.final_code = Some(code),
            _ => {}
        }
    }

    /// Checks what the client sent in reaction to one reply (or at start).
    fn on_output(&mut self, mut out: &[u8]) {
        let batch_has_mail = out.starts_with(b"MAIL ") || contains(out, b"\r\nMAIL ");
        while !out.is_empty() {
            assert!(
                !self.quit,
                "bytes after QUIT: {:?}",
                String::from_utf8_lossy(out)
            );
            if self.data_go {
                let full = !self.stuffed.is_empty() && out.starts_with(&self.stuffed);
                if full || out.starts_with(b".\r\n") {
                    self.data_go = false;
                    if full {
                        assert!(self.mail_ok, "body after a refused MAIL");
                        assert!(!self.accepted.is_empty(), "body without an accepted RCPT");
                        assert!(
                            !self.eight_bit || self.extensions.eight_bit_mime,
                            "8-bit body to a peer without 8BITMIME"
                        );
                        out = &out[self.stuffed.len()..];
                    } else {
                        out = &out[3..];
                    }
                    self.pending.push_back(Sent::Body { full });
                    continue;
                }
            }
            let end = out
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap_or_else(|| {
                    panic!("unterminated output {:?}", String::from_utf8_lossy(out))
                });
            let line = &out[..end];
            out = &out[end + 2..];
            assert!(end + 2 <= 512, "command line of {} octets", end + 2);
            assert!(
                !line.contains(&b'\r') && !line.contains(&b'\n'),
                "CR or LF inside {:?}",
                String::from_utf8_lossy(line)
            );
            let text = String::from_utf8_lossy(line);
            let verb = text.split(' ').next().unwrap_or("");
            match verb {
                "EHLO" => self.pending.push_back(Sent::Ehlo),
                "HELO" => self.pending.push_back(Sent::Helo),
                "STARTTLS" => {
                    assert!(!self.tls, "STARTTLS inside TLS");
                    self.pending.push_back(Sent::StartTls)
                }
                "MAIL" => {
                    assert!(
                        !self.eight_bit || self.extensions.eight_bit_mime,
                        "MAIL for an 8-bit message to a peer without 8BITMIME"
                    );
                    assert!(
                        !self.params.smtputf8 || self.extensions.smtputf8,
                        "MAIL for an SMTPUTF8 message to a peer without SMTPUTF8"
                    );
                    self.check_tls_policy();
                    self.mail_ok = false;
                    self.accepted.clear();
                    self.pending.push_back(Sent::Mail)
                }
                "RCPT" => {
                    let address = text
                        .strip_prefix("RCPT TO:<")
                        .and_then(|r| r.split_once('>'))
                        .map(|(a, _)| a)
                        .unwrap_or_else(|| panic!("bad RCPT {text:?}"));
                    let i = ADDRESSES
                        .iter()
                        .position(|a| *a == address)
                        .unwrap_or_else(|| panic!("RCPT for an unknown address {text:?}"));
                    self.pending.push_back(Sent::Rcpt(i))
                }
                "DATA" => {
                    assert_eq!(line, b"DATA");
                    assert!(
                        batch_has_mail || !self.accepted.is_empty(),
                        "DATA outside a pipelined batch before an accepted RCPT"
                    );
                    self.pending.push_back(Sent::Data)
                }
                "QUIT" => self.quit = true,
                "AUTH" => self.sent_credentials(),
                _ if self.pending.back() == Some(&Sent::Auth) || self.pending.is_empty() => {
                    // An AUTH continuation (reaction to a 334): base64 only.
                    assert!(
                        line.iter()
                            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(b)),
                        "unexpected line {text:?}"
                    );
                    self.sent_credentials();
                }
                _ => panic!("unexpected line {text:?}"),
            }
        }
    }

    fn sent_credentials(&mut self) {
        assert!(
            self.params.credentials.is_some(),
            "AUTH without credentials"
        );
        assert!(
            self.tls || self.params.tls != TlsPolicy::Required,
            "credentials sent before TLS while TLS is required"
        );
        self.pending.push_back(Sent::Auth);
    }

    fn check_tls_policy(&self) {
        assert!(
            self.tls || self.params.tls != TlsPolicy::Required,
            "MAIL in plaintext while TLS is required"
        );
    }
}

/// The reply's lines as the reader gives them: an enhanced status code
/// (`class.subject.detail`, class matching the reply) that starts the first
/// line is taken off every line that starts with it.
fn without_enhanced_code(code: u16, lines: &[String]) -> Vec<String> {
    let Some(first) = lines.first() else {
        return Vec::new();
    };
    let word = first.split(' ').next().unwrap_or("");
    let parts: Vec<&str> = word.split('.').collect();
    let numeric = |p: &str, max: u32| p.parse::<u32>().is_ok_and(|n| n <= max);
    let is_code = word.is_ascii()
        && parts.len() == 3
        && numeric(parts[0], 255)
        && parts[0].parse::<u16>().ok() == Some(code / 100)
        && numeric(parts[1], 65535)
        && numeric(parts[2], 65535);
    if !is_code {
        return lines.to_vec();
    }
    let prefix = &first[..(word.len() + 1).min(first.len())];
    lines
        .iter()
        .map(|l| l.strip_prefix(prefix).unwrap_or(l).to_string())
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let p = common::byte(&mut data);
    let mode = common::byte(&mut data);
    let pattern = common::take(&mut data, 4);
    let stream = if mode & 1 == 1 {
        common::detokenize(TOKENS, data)
    } else {
        data.to_vec()
    };
    let (params, body) = params(p, mode);
    let bare = has_bare_newline(&body);
    let mut model = Model {
        stuffed: if bare { Vec::new() } else { stuffed(&body) },
        eight_bit: params.eight_bit_mime || body.iter().any(|&b| b >= 0x80),
        tls: params.tls_active,
        params: params.clone(),
        pending: VecDeque::from([Sent::Greeting]),
        extensions: Extensions::default(),
        mail_ok: false,
        accepted: Vec::new(),
        data_go: false,
        final_code: None,
        quit: false,
    };

    let mut client = Client::new(params.clone());
    let mut out = Vec::new();
    let mut ended_itself = false;
    // The reply being collected: its lines (text after the code) and code.
    let mut line = Vec::new();
    // The client cut an over-long line: bytes up to its LF are dropped.
    let mut dropping = false;
    let mut lines: Vec<String> = Vec::new();
    let mut reply_code: Option<u16> = None;
    'chunks: for chunk in common::chunks(pattern, &stream) {
        let mut rest = chunk;
        while !rest.is_empty() {
            // Cut the chunk after the next complete reply, or after a line
            // that is no reply line at all (the client gives up there).
            let mut cut = rest.len();
            let mut completed = None;
            let mut broken = false;
            for (i, &b) in rest.iter().enumerate() {
                if dropping {
                    dropping = b != b'\n';
                    continue;
                }
                line.push(b);
                // A line that reaches the limit without its LF is cut
                // there, keeping room for a CRLF; its code still counts.
                let too_long = b != b'\n' && line.len() == MAX_REPLY_LINE;
                if b != b'\n' && !too_long {
                    continue;
                }
                let mut l = &line[..line.len() - 1];
                if too_long {
                    l = &line[..MAX_REPLY_LINE - 2];
                    dropping = true;
                } else if l.last() == Some(&b'\r') {
                    l = &l[..l.len() - 1];
                }
                let code = l
                    .get(..3)
                    .filter(|c| c.iter().all(u8::is_ascii_digit))
                    .and_then(|c| std::str::from_utf8(c).ok())
                    .and_then(|c| c.parse::<u16>().ok())
                    .filter(|c| (200..600).contains(c));
                let separator_ok = matches!(l.get(3), None | Some(b' ') | Some(b'-'));
                if code.is_none() || !separator_ok || (reply_code.is_some() && reply_code != code) {
                    cut = i + 1;
                    broken = true;
                    break;
                }
                reply_code = code;
                let text = String::from_utf8_lossy(l).into_owned();
                lines.push(text.get(4..).unwrap_or("").to_string());
                let last = l.get(3) != Some(&b'-');
                line.clear();
                if last {
                    cut = i + 1;
                    completed = Some((code.unwrap_or(0), std::mem::take(&mut lines)));
                    reply_code = None;
                    break;
                }
                if lines.len() >= 100 {
                    // MAX_REPLY_LINES: the client gives up.
                    cut = i + 1;
                    broken = true;
                    break;
                }
            }
            let (piece, tail) = rest.split_at(cut);
            rest = tail;
            let before = out.len();
            let mut action = client.receive(piece, &mut out);
            if action == Some(ClientAction::SendBody) {
                assert_eq!(completed.as_ref().map(|c| c.0), Some(354));
                let mut stuffer = Stuffer::new();
                for body_piece in common::chunks(pattern, &body) {
                    stuffer.push(body_piece, &mut out);
                }
                stuffer.finish(&mut out);
                action = client.body_sent(&mut out);
            }
            if broken {
                assert_eq!(
                    action,
                    Some(ClientAction::Done),
                    "a broken reply line was accepted"
                );
            } else if let Some((code, reply_lines)) = &completed {
                // A session the client already ended takes no more replies.
                if !client.is_done() || action.is_some() {
                    model.on_reply(*code, reply_lines);
                }
            }
            model.on_output(&out[before..]);
            match action {
                None => {}
                Some(ClientAction::SendBody) => panic!("SendBody twice for one 354"),
                Some(ClientAction::StartTls) => {
                    assert_eq!(completed.as_ref().map(|c| c.0), Some(220));
                    // Bytes read with the 220 are plaintext: dropped.
                    line.clear();
                    dropping = false;
                    lines.clear();
                    reply_code = None;
                    model.tls = true;
                    model.pending.clear();
                    let before = out.len();
                    client.tls_started(&mut out);
                    assert_eq!(&out[before..], b"EHLO out.example\r\n");
                    model.on_output(&out[before..]);
                    continue 'chunks;
                }
                Some(ClientAction::Done) => {
                    assert!(model.quit, "Done without QUIT");
                    ended_itself = true;
                    break 'chunks;
                }
            }
        }
    }

    let report = client.finish();
    let server_said_no_answer = stream
        .windows(NO_ANSWER.len())
        .any(|w| w == NO_ANSWER.as_bytes());
    assert_eq!(report.outcomes.len(), params.recipients.len());
    for (i, outcome) in report.outcomes.iter().enumerate() {
        let accepted = model.accepted.contains(&i);
        let delivered = accepted && model.final_code.is_some_and(|c| c / 100 == 2);
        match outcome {
            Outcome::Delivered(_) => assert!(
                delivered,
                "recipient {i} Delivered without a 2xx RCPT and a 2xx after the body"
            ),
            _ => assert!(
                !delivered,
                "recipient {i} accepted and delivered: {outcome:?}"
            ),
        }
        // A server may say the words itself: a refused greeting, for one,
        // fails every recipient with its text. Then they prove nothing.
        if ended_itself && !server_said_no_answer {
            assert!(
                !outcome.reply().lines.iter().any(|l| l.contains(NO_ANSWER)),
                "recipient {i} left without an outcome by a finished session: {outcome:?}"
            );
        }
    }
});
