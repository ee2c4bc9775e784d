//! The envelope: rendering and a pure parser over bytes (the parser is what
//! the fuzz target links). It heads every message file `<id>.msg` as the
//! message was accepted, and `<id>.env` holds it once delivery state
//! changes.
//!
//! Plain text an operator can read (`head <id>.msg`, `cat <id>.env`), one
//! `key: value` per line (LF), keys in a fixed order, then one `rcpt:` line
//! per recipient, each followed by what its state needs: a `failure:` line
//! for a failed or deferred one, a `remote-mta:` line for one handed to a
//! next hop. Then the trailer `end <message-length> <sha256>`:
//!
//! ```text
//! version: 3
//! id: 0J5Z3K1M2N3P4Q5R
//! arrival: 1795718460 Thu, 26 Nov 2026 18:41:00 +0000
//! sender: alice@example.org
//! client: 192.0.2.7
//! helo: DESKTOP-7Q2K3LM
//! protocol: ESMTPSA
//! auth-user: alice@example.org
//! tls: TLSv1.3
//! body: 8BITMIME
//! smtputf8: no
//! ret:
//! envid:
//! message-sha256: 9f86d08…
//! attempts: 1
//! next-attempt: 1795718760
//! rcpt: bob@example.com notify=- orcpt=- state=deferred attempts=1
//! failure: remote mx.example.com 451 4.3.0 Try again later
//! rcpt: carol@example.com notify=SUCCESS orcpt=- state=delivered attempts=0 report=due
//! remote-mta: mx.example.com
//! rcpt: dave@example.net notify=- orcpt=- state=failed attempts=0
//! failure: expired 432000 local 4.4.1 connect to mx.example.net[192.0.2.9]:25: refused
//! end 1234 5e884898…
//! ```
//!
//! A delivery report made by this server has no client: its `client`,
//! `helo`, `auth-user` and `tls` are empty and its `protocol` is `internal`.
//!
//! A failure is one of `remote <host> <code> <x.y.z or -> <text>`, `local
//! <x.y.z> <text>` and `expired <seconds queued> <remote … or local …>`:
//! the typed [`Failure`], so reports never parse reply text back.
//!
//! Delivery adds two optional markers, written only when set: a
//! `delay-warned: yes` line after `next-attempt` (the "delayed" report was
//! sent) and a trailing `report=due` word on a `rcpt:` line (its outcome is
//! still to be reported to the sender).
//!
//! Version 2 files (before typed failures) are still read, so a queue
//! survives an upgrade: their `reply:` line becomes a [`Failure::Local`]
//! with the status the reply text starts with (a lifetime expiry, `gave up
//! after …`, becomes [`Failure::Expired`]); the next write is version 3.
//!
//! The trailer's checksum is SHA-256 over every byte before it (the `end`
//! line's length included); since those bytes include `message-sha256`, the trailer proves the
//! envelope whole and, through the recorded digest and length, the message
//! file too. Keeping the message's digest in the envelope means updating
//! delivery state does not have to re-read a 25 MiB message.
//!
//! Values are client-controlled (EHLO name, addresses, ENVID, reply text),
//! so every byte that could break the line structure is written as `%XX`:
//! controls, DEL and `%` always, and spaces in single-token values.

use ring::digest::{digest, SHA256};

use std::time::Duration;

use super::{Failure, MailFrom, QueuedMessage, RecipientEntry, RecipientState, RemoteReply};
use crate::proto::envelope::{ClientOrigin, Origin, Recipient};
use crate::proto::esmtp::{Body, Notify, Orcpt, Ret};
use crate::proto::received::rfc5322_date;
use crate::proto::reply::Enhanced;

/// The format version written (3: typed failures, the next hop of a
/// delivered recipient).
pub const VERSION: u32 = 3;

/// The older version still read (2: failures as reply text).
pub const VERSION_2: u32 = 2;

/// Why an envelope file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvError {
    /// 1-based line number where the problem was found (0: whole file).
    pub line: usize,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for EnvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.reason)
    }
}

/// The `protocol` of a message this server made itself (a delivery report),
/// which has no client.
const INTERNAL: &str = "internal";

/// Protocol names of RFC 3848 and RFC 6531 §3.7.4, as `Origin` wants them.
const PROTOCOLS: [&str; 12] = [
    "SMTP",
    "ESMTP",
    "ESMTPA",
    "ESMTPS",
    "ESMTPSA",
    "LMTP",
    "UTF8SMTP",
    "UTF8SMTPA",
    "UTF8SMTPS",
    "UTF8SMTPSA",
    "UTF8LMTP",
    "LMTPA",
];

/// SHA-256 of `data` as lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(digest(&SHA256, data).as_ref())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Renders `message` as the bytes of an envelope file, trailer included.
pub fn render(message: &QueuedMessage) -> Vec<u8> {
    render_with_length_width(message, 0)
}

/// As [`render`], with the trailer's message length in 20 digits (leading
/// zeros; the parser reads them as any number). A message file written
/// before its length and digest are known starts with this form, and is
/// rewritten in place, at the same length, once they are.
pub fn render_fixed_width(message: &QueuedMessage) -> Vec<u8> {
    render_with_length_width(message, 20)
}

fn render_with_length_width(message: &QueuedMessage, width: usize) -> Vec<u8> {
    let env = &message.mail_from;
    let origin = &message.origin;
    let mut out = String::new();
    let mut field = |key: &str, value: &str| {
        out.push_str(key);
        out.push(':');
        if !value.is_empty() {
            out.push(' ');
            out.push_str(value);
        }
        out.push('\n');
    };
    field("version", &VERSION.to_string());
    field("id", message.id.as_str());
    field(
        "arrival",
        &format!("{} {}", message.arrival, rfc5322_date(message.arrival)),
    );
    field("sender", &encode(&env.sender, false));
    match origin {
        Origin::Client(client) => {
            field("client", &encode(&client.client_ip, false));
            field("helo", &encode(&client.helo, false));
            field("protocol", client.protocol);
            field(
                "auth-user",
                &encode(client.auth_user.as_deref().unwrap_or(""), false),
            );
            field("tls", &encode(client.tls.as_deref().unwrap_or(""), false));
        }
        Origin::Internal => {
            field("client", "");
            field("helo", "");
            field("protocol", INTERNAL);
            field("auth-user", "");
            field("tls", "");
        }
    }
    field("body", &env.body.map(|b| b.to_string()).unwrap_or_default());
    field("smtputf8", if env.smtputf8 { "yes" } else { "no" });
    field("ret", &env.ret.map(|r| r.to_string()).unwrap_or_default());
    field("envid", &encode(env.envid.as_deref().unwrap_or(""), false));
    field("message-sha256", &message.message_sha256);
    field("attempts", &message.attempts.to_string());
    field("next-attempt", &message.next_attempt.to_string());
    if message.delay_warned {
        field("delay-warned", "yes");
    }
    for entry in &message.recipients {
        let recipient = &entry.recipient;
        let (state_name, attempts) = match &entry.state {
            RecipientState::Pending => ("pending", 0),
            RecipientState::Delivered { .. } => ("delivered", 0),
            RecipientState::Failed(_) => ("failed", 0),
            RecipientState::Deferred { attempts, .. } => ("deferred", *attempts),
        };
        field(
            "rcpt",
            &format!(
                "{} notify={} orcpt={} state={} attempts={}{}",
                encode(&recipient.address, false),
                recipient
                    .notify
                    .map_or_else(|| "-".into(), |n| n.to_string()),
                recipient
                    .orcpt
                    .as_ref()
                    .map_or_else(|| "-".into(), |o| encode(&o.to_string(), false)),
                state_name,
                attempts,
                if entry.report_due { " report=due" } else { "" }
            ),
        );
        match &entry.state {
            RecipientState::Pending | RecipientState::Delivered { relay: None } => {}
            RecipientState::Delivered { relay: Some(host) } => {
                field("remote-mta", &encode(host, false));
            }
            RecipientState::Failed(failure) | RecipientState::Deferred { last: failure, .. } => {
                field("failure", &failure_text(failure));
            }
        }
    }
    out.push_str(&format!("end {:0width$} ", message.message_length));
    let checksum = sha256_hex(out.as_bytes());
    out.push_str(&checksum);
    out.push('\n');
    out.into_bytes()
}

/// The length of the envelope at the start of `bytes` (a message file):
/// up to and including its trailer line, or `None` if `bytes` holds no
/// complete trailer line yet. Values never hold a newline (they are
/// `%XX`-escaped) and no key is `end`, so the first line that starts with
/// `end ` is the trailer.
pub fn head_length(bytes: &[u8]) -> Option<usize> {
    let start = memchr::memmem::find(bytes, b"\nend ")? + 1;
    let end = memchr::memchr(b'\n', &bytes[start..])?;
    Some(start + end + 1)
}

/// Parses and checks an envelope file. Never panics; anything torn,
/// truncated, reordered or altered is an [`EnvError`].
pub fn parse(bytes: &[u8]) -> Result<QueuedMessage, EnvError> {
    let whole = |reason: &str| EnvError {
        line: 0,
        reason: reason.to_string(),
    };
    if !bytes.ends_with(b"\n") {
        return Err(whole("file does not end with a newline (torn write)"));
    }
    let body = &bytes[..bytes.len() - 1];
    let trailer_start = body.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let (prefix, trailer) = bytes.split_at(trailer_start);
    let trailer = std::str::from_utf8(&trailer[..trailer.len() - 1])
        .map_err(|_| whole("trailer is not UTF-8"))?;
    let mut parts = trailer.split(' ');
    let (Some("end"), Some(length), Some(checksum), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(whole(
            "missing trailer `end <length> <sha256>` (torn write)",
        ));
    };
    let message_length = parse_number(length).ok_or_else(|| whole("bad length in trailer"))?;
    // The checksum covers everything before it, the length included.
    let covered = &bytes[..bytes.len() - 1 - checksum.len()];
    if sha256_hex(covered) != checksum {
        return Err(whole("checksum mismatch"));
    }
    let text = std::str::from_utf8(prefix).map_err(|_| whole("not UTF-8"))?;
    let mut lines = Lines {
        lines: text.split_terminator('\n').enumerate().peekable(),
    };

    let (line, version) = lines.expect("version")?;
    let version = match parse_number(version) {
        Some(v) if v == u64::from(VERSION) || v == u64::from(VERSION_2) => v as u32,
        _ => {
            return Err(EnvError {
                line,
                reason: format!("unknown version {version}"),
            })
        }
    };
    let (line, id) = lines.expect("id")?;
    let id = id.parse().map_err(|_| EnvError {
        line,
        reason: "bad id".into(),
    })?;
    let (line, arrival) = lines.expect("arrival")?;
    let arrival = arrival
        .split(' ')
        .next()
        .and_then(parse_number)
        .ok_or_else(|| EnvError {
            line,
            reason: "bad arrival time".into(),
        })?;
    let sender = lines.decoded("sender")?;
    let client_ip = lines.decoded("client")?;
    let helo = lines.decoded("helo")?;
    let (line, protocol) = lines.expect("protocol")?;
    if protocol.is_empty() || !protocol.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(EnvError {
            line,
            reason: "bad protocol".into(),
        });
    }
    let auth_user = optional(lines.decoded("auth-user")?);
    let tls = optional(lines.decoded("tls")?);
    let origin = if protocol == INTERNAL {
        Origin::Internal
    } else {
        // A name this version does not know (a newer writer) is not worth
        // losing the message over: it only feeds logs and reports.
        let protocol = PROTOCOLS
            .iter()
            .copied()
            .find(|p| *p == protocol)
            .unwrap_or("ESMTP");
        Origin::Client(ClientOrigin {
            client_ip,
            helo,
            tls,
            auth_user,
            protocol,
        })
    };
    let (line, body) = lines.expect("body")?;
    let body = match body {
        "" => None,
        text => Some(text.parse::<Body>().map_err(|_| EnvError {
            line,
            reason: "bad body".into(),
        })?),
    };
    let (line, smtputf8) = lines.expect("smtputf8")?;
    let smtputf8 = match smtputf8 {
        "yes" => true,
        "no" => false,
        _ => {
            return Err(EnvError {
                line,
                reason: "bad smtputf8".into(),
            })
        }
    };
    let (line, ret) = lines.expect("ret")?;
    let ret = match ret {
        "" => None,
        text => Some(text.parse::<Ret>().map_err(|_| EnvError {
            line,
            reason: "bad ret".into(),
        })?),
    };
    let envid = optional(lines.decoded("envid")?);
    let (line, message_sha256) = lines.expect("message-sha256")?;
    if message_sha256.len() != 64 || !message_sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(EnvError {
            line,
            reason: "bad message-sha256".into(),
        });
    }
    let attempts = lines.number("attempts")?;
    let attempts = u32::try_from(attempts).map_err(|_| EnvError {
        line: 0,
        reason: "attempts out of range".into(),
    })?;
    let next_attempt = lines.number("next-attempt")?;
    let delay_warned = match lines.lines.peek() {
        Some((_, line)) if line.starts_with("delay-warned:") => {
            let (line, value) = lines.expect("delay-warned")?;
            if value != "yes" {
                return Err(EnvError {
                    line,
                    reason: "bad delay-warned".into(),
                });
            }
            true
        }
        _ => false,
    };

    let mut recipients = Vec::new();
    while lines.lines.peek().is_some() {
        recipients.push(lines.recipient(version)?);
    }
    if recipients.is_empty() {
        return Err(whole("no recipients"));
    }
    Ok(QueuedMessage {
        id,
        arrival,
        mail_from: MailFrom {
            sender,
            body,
            smtputf8,
            ret,
            envid,
        },
        origin,
        recipients,
        attempts,
        next_attempt,
        delay_warned,
        message_length,
        message_sha256: message_sha256.to_string(),
    })
}

struct Lines<'a> {
    lines: std::iter::Peekable<std::iter::Enumerate<std::str::SplitTerminator<'a, char>>>,
}

impl<'a> Lines<'a> {
    /// The next line, which must be `key:` or `key: value`; returns the
    /// 1-based line number and the value.
    fn expect(&mut self, key: &str) -> Result<(usize, &'a str), EnvError> {
        let Some((index, line)) = self.lines.next() else {
            return Err(EnvError {
                line: 0,
                reason: format!("missing `{key}`"),
            });
        };
        let number = index + 1;
        let value = line
            .strip_prefix(key)
            .and_then(|rest| rest.strip_prefix(':'))
            .ok_or_else(|| EnvError {
                line: number,
                reason: format!("expected `{key}:`"),
            })?;
        let value = if value.is_empty() {
            value
        } else {
            value.strip_prefix(' ').ok_or_else(|| EnvError {
                line: number,
                reason: "expected space".into(),
            })?
        };
        Ok((number, value))
    }

    fn decoded(&mut self, key: &str) -> Result<String, EnvError> {
        let (line, value) = self.expect(key)?;
        decode(value).ok_or_else(|| EnvError {
            line,
            reason: format!("bad encoding in `{key}`"),
        })
    }

    fn number(&mut self, key: &str) -> Result<u64, EnvError> {
        let (line, value) = self.expect(key)?;
        parse_number(value).ok_or_else(|| EnvError {
            line,
            reason: format!("bad number `{key}`"),
        })
    }

    /// The next value if the next line is `key:`.
    fn optional(&mut self, key: &str) -> Result<Option<(usize, &'a str)>, EnvError> {
        let next_is_key = self.lines.peek().is_some_and(|(_, line)| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(':'))
        });
        if next_is_key {
            self.expect(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn recipient(&mut self, version: u32) -> Result<RecipientEntry, EnvError> {
        let (line, value) = self.expect("rcpt")?;
        let bad = |reason: &str| EnvError {
            line,
            reason: reason.to_string(),
        };
        let mut words = value.split(' ');
        let address = words.next().and_then(decode).filter(|a| !a.is_empty());
        let address = address.ok_or_else(|| bad("bad recipient address"))?;
        let mut next = |name: &str| {
            words
                .next()
                .and_then(|w| w.strip_prefix(name))
                .and_then(|w| w.strip_prefix('='))
                .ok_or_else(|| bad(&format!("expected `{name}=`")))
        };
        let notify = match next("notify")? {
            "-" => None,
            text => Some(text.parse::<Notify>().map_err(|_| bad("bad notify"))?),
        };
        let orcpt = match next("orcpt")? {
            "-" => None,
            text => Some(
                decode(text)
                    .and_then(|o| o.parse::<Orcpt>().ok())
                    .ok_or_else(|| bad("bad orcpt"))?,
            ),
        };
        let state = next("state")?;
        let attempts = next("attempts")?;
        let attempts = parse_number(attempts)
            .and_then(|a| u32::try_from(a).ok())
            .ok_or_else(|| bad("bad attempts"))?;
        let report_due = match words.next() {
            None => false,
            Some("report=due") => true,
            Some(_) => return Err(bad("trailing words")),
        };
        if words.next().is_some() {
            return Err(bad("trailing words"));
        }
        let state = match state {
            "pending" => RecipientState::Pending,
            "delivered" if version == VERSION_2 => RecipientState::Delivered { relay: None },
            "delivered" => RecipientState::Delivered {
                relay: self.remote_mta()?,
            },
            "failed" => RecipientState::Failed(self.failure(version, true)?),
            "deferred" => RecipientState::Deferred {
                last: self.failure(version, false)?,
                attempts,
            },
            _ => return Err(bad("unknown state")),
        };
        Ok(RecipientEntry {
            recipient: Recipient {
                address,
                notify,
                orcpt,
            },
            state,
            report_due,
        })
    }

    /// The optional `remote-mta:` line of a delivered recipient.
    fn remote_mta(&mut self) -> Result<Option<String>, EnvError> {
        let Some((line, value)) = self.optional("remote-mta")? else {
            return Ok(None);
        };
        decode(value).map(Some).ok_or_else(|| EnvError {
            line,
            reason: "bad remote-mta".into(),
        })
    }

    /// The failure line of a failed (`expired` allowed) or deferred
    /// recipient: `failure:`, or `reply:` in a version 2 file.
    fn failure(&mut self, version: u32, may_expire: bool) -> Result<Failure, EnvError> {
        if version == VERSION_2 {
            return Ok(legacy_failure(&self.decoded("reply")?, may_expire));
        }
        let (line, value) = self.expect("failure")?;
        parse_failure(value, may_expire).ok_or_else(|| EnvError {
            line,
            reason: "bad failure".into(),
        })
    }
}

/// The value of a `failure:` line.
fn failure_text(failure: &Failure) -> String {
    let with_text = |head: String, text: &str| {
        if text.is_empty() {
            head
        } else {
            format!("{head} {}", encode(text, true))
        }
    };
    match failure {
        Failure::Remote { host, reply } => with_text(
            format!(
                "remote {} {} {}",
                encode(host, false),
                reply.code,
                reply
                    .enhanced
                    .map_or_else(|| "-".into(), |status| status.to_string())
            ),
            &reply.text,
        ),
        Failure::Local { status, text } => with_text(format!("local {status}"), text),
        Failure::Expired { age, last } => {
            format!("expired {} {}", age.as_secs(), failure_text(last))
        }
    }
}

/// Parses [`failure_text`]; `expired` only when `may_expire`, and never
/// nested.
fn parse_failure(value: &str, may_expire: bool) -> Option<Failure> {
    let (kind, rest) = value.split_once(' ')?;
    // The text is the rest of the line; it may be empty.
    let split = |rest: &'_ str| -> (String, String) {
        match rest.split_once(' ') {
            Some((word, text)) => (word.to_string(), text.to_string()),
            None => (rest.to_string(), String::new()),
        }
    };
    match kind {
        "remote" => {
            let (host, rest) = rest.split_once(' ')?;
            let host = decode(host)?;
            let (code, rest) = rest.split_once(' ')?;
            let code = u16::try_from(parse_number(code)?).ok()?;
            let (status, text) = split(rest);
            let enhanced = match status.as_str() {
                "-" => None,
                status => Some(parse_status(status)?),
            };
            Some(Failure::Remote {
                host,
                reply: RemoteReply {
                    code,
                    enhanced,
                    text: decode(&text)?,
                },
            })
        }
        "local" => {
            let (status, text) = split(rest);
            Some(Failure::Local {
                status: parse_status(&status)?,
                text: decode(&text)?,
            })
        }
        "expired" if may_expire => {
            let (age, last) = rest.split_once(' ')?;
            let age = Duration::from_secs(parse_number(age)?);
            let last = parse_failure(last, false)?;
            Some(Failure::Expired {
                age,
                last: Box::new(last),
            })
        }
        _ => None,
    }
}

/// `class.subject.detail`, any numbers that fit (a remote server's class
/// is kept as it was sent).
fn parse_status(text: &str) -> Option<Enhanced> {
    let mut parts = text.split('.');
    let mut number = || parse_number(parts.next()?);
    let (class, subject, detail) = (number()?, number()?, number()?);
    if parts.next().is_some() {
        return None;
    }
    Some(Enhanced(
        u8::try_from(class).ok()?,
        u16::try_from(subject).ok()?,
        u16::try_from(detail).ok()?,
    ))
}

/// A status as version 2 recognised one at the start of a reply: class
/// 2, 4 or 5 (RFC 3463 §3.1).
fn legacy_status(text: &str) -> Option<Enhanced> {
    parse_status(text).filter(|Enhanced(class, _, _)| matches!(class, 2 | 4 | 5))
}

/// The start of a version 2 reply stored for a message past its lifetime.
const GAVE_UP: &str = "gave up after ";

/// A version 2 `reply:` (one line of text) as a typed failure: `gave up
/// after 5 days: …` is an expiry (for a failed recipient); otherwise the
/// status the text starts with (`550 5.1.1 …`, `5.1.2 …`), else one from
/// the reply code's class, else `5.0.0` (failed) or `4.0.0` (deferred),
/// with the rest as the text. The host that answered was not recorded.
fn legacy_failure(reply: &str, may_expire: bool) -> Failure {
    if let Some((age, last)) = reply
        .strip_prefix(GAVE_UP)
        .filter(|_| may_expire)
        .and_then(|rest| rest.split_once(": "))
        .and_then(|(age, last)| Some((legacy_duration(age)?, last)))
    {
        return Failure::Expired {
            age,
            last: Box::new(legacy_failure(last, false)),
        };
    }
    let default = if may_expire {
        Enhanced(5, 0, 0)
    } else {
        Enhanced(4, 0, 0)
    };
    let (first, rest) = reply.split_once(' ').unwrap_or((reply, ""));
    let code = Some(first)
        .filter(|w| w.len() == 3)
        .and_then(parse_number)
        .filter(|c| (200..600).contains(c));
    let (status, text) = match code {
        Some(code) => {
            let (second, after) = rest.split_once(' ').unwrap_or((rest, ""));
            match legacy_status(second) {
                Some(status) => (status, after),
                None => (Enhanced((code / 100) as u8, 0, 0), rest),
            }
        }
        None => match legacy_status(first) {
            Some(status) => (status, rest),
            None => (default, reply),
        },
    };
    Failure::Local {
        status,
        text: text.to_string(),
    }
}

/// `5 days`, `1 hour`, `2 minutes`, `4 seconds`.
fn legacy_duration(text: &str) -> Option<Duration> {
    let (n, unit) = text.split_once(' ')?;
    let n = parse_number(n)?;
    let unit = match unit.trim_end_matches('s') {
        "day" => 86_400,
        "hour" => 3600,
        "minute" => 60,
        "second" => 1,
        _ => return None,
    };
    Some(Duration::from_secs(n.checked_mul(unit)?))
}

fn optional(value: String) -> Option<String> {
    if value.is_empty() {
        None
    } else {
        Some(value)
    }
}

/// Digits only (no sign, no spaces), as `str::parse` would also accept `+1`.
fn parse_number(text: &str) -> Option<u64> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `%XX` for controls, DEL, `%` and (unless `allow_space`) space.
fn encode(value: &str, allow_space: bool) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        let escape = c < ' ' || c == '\u{7f}' || c == '%' || (c == ' ' && !allow_space);
        if escape {
            out.push_str(&format!("%{:02X}", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}

/// Reverses [`encode`]; `None` for a bad escape or a raw byte that
/// [`encode`] would have escaped (except space, which `reply` keeps).
fn decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return None;
                }
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if b < b' ' || b == 0x7f => return None,
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::remote_failure;

    fn entry(address: &str, notify: Option<Notify>, orcpt: Option<&str>) -> RecipientEntry {
        RecipientEntry::pending(Recipient {
            address: address.into(),
            notify,
            orcpt: orcpt.map(|o| o.parse().unwrap()),
        })
    }

    pub(crate) fn sample() -> QueuedMessage {
        let mut recipients = vec![
            entry("bob@example.com", None, None),
            entry(
                "\"odd guy\"@example.net",
                Some(Notify {
                    success: true,
                    failure: true,
                    delay: false,
                }),
                Some("rfc822;odd+20guy@example.net"),
            ),
            entry("carol@example.com", Some(Notify::NEVER), None),
            entry("dave@example.com", Some(Notify::IMPLIED), None),
            entry("erin@example.com", None, None),
            entry("frank@example.com", None, None),
        ];
        recipients[1].state = RecipientState::Delivered {
            relay: Some("mx.example.net".into()),
        };
        recipients[2].state = RecipientState::Failed(remote_failure(
            550,
            Some(Enhanced(5, 1, 1)),
            "No such user\r\nhere",
        ));
        recipients[3].state = RecipientState::Deferred {
            last: remote_failure(451, Some(Enhanced(4, 3, 0)), "Try later"),
            attempts: 3,
        };
        recipients[4].state = RecipientState::Failed(Failure::Expired {
            age: Duration::from_secs(432_000),
            last: Box::new(Failure::Local {
                status: Enhanced(4, 4, 1),
                text: "connect to mx[192.0.2.9]:25: 100% refused".into(),
            }),
        });
        recipients[5].state = RecipientState::Delivered { relay: None };
        QueuedMessage {
            id: "0J5Z3K1M2N3P4Q5R".parse().unwrap(),
            arrival: 1_795_718_460,
            mail_from: MailFrom {
                sender: "alice@example.org".into(),
                body: Some(Body::EightBitMime),
                smtputf8: true,
                ret: Some(Ret::Hdrs),
                envid: Some("QQ314159".into()),
            },
            origin: Origin::Client(ClientOrigin {
                client_ip: "192.0.2.7".into(),
                helo: "evil\r\nhelo 100%".into(),
                tls: Some("TLSv1.3".into()),
                auth_user: Some("alice@example.org".into()),
                protocol: "ESMTPSA",
            }),
            recipients,
            attempts: 3,
            next_attempt: 1_795_719_000,
            delay_warned: false,
            message_length: 1234,
            message_sha256: sha256_hex(b"message"),
        }
    }

    #[test]
    fn round_trip() {
        let message = sample();
        let bytes = render(&message);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.contains("\nhelo: evil%0D%0Ahelo%20100%25\n"), "{text}");
        assert!(
            text.contains("\nfailure: remote mx.example.net 451 4.3.0 Try later\n"),
            "{text}"
        );
        assert!(
            text.contains("\nfailure: expired 432000 local 4.4.1 connect to mx[192.0.2.9]:25: 100%25 refused\n"),
            "{text}"
        );
        assert!(text.contains(" state=delivered attempts=0\nremote-mta: mx.example.net\n"));
        assert!(text.contains("\narrival: 1795718460 Thu, 26 Nov 2026 18:41:00 +0000\n"));
        assert_eq!(parse(&bytes).unwrap(), message);
    }

    #[test]
    fn the_fixed_width_form_reads_the_same_and_keeps_its_length() {
        let mut message = sample();
        let fixed = render_fixed_width(&message);
        assert!(String::from_utf8_lossy(&fixed).contains("\nend 00000000000000001234 "));
        assert_eq!(parse(&fixed).unwrap(), message);
        let before = fixed.len();
        message.message_length = 26_214_400;
        message.message_sha256 = sha256_hex(b"another message");
        assert_eq!(render_fixed_width(&message).len(), before);
    }

    #[test]
    fn failures_of_every_shape_round_trip() {
        let failures = [
            remote_failure(550, None, "Transaction failed"),
            remote_failure(250, Some(Enhanced(2, 0, 0)), ""),
            remote_failure(354, Some(Enhanced(3, 0, 0)), "  odd  spacing "),
            Failure::Remote {
                host: "a b".into(),
                reply: RemoteReply {
                    code: 7,
                    enhanced: None,
                    text: "-".into(),
                },
            },
            Failure::Local {
                status: Enhanced(5, 1, 10),
                text: String::new(),
            },
        ];
        for failure in failures {
            let mut message = sample();
            message.recipients[0].state = RecipientState::Failed(failure.clone());
            message.recipients[1].state = RecipientState::Deferred {
                last: failure,
                attempts: 1,
            };
            assert_eq!(parse(&render(&message)).unwrap(), message);
        }
    }

    #[test]
    fn delivery_markers_round_trip_and_are_optional() {
        let mut message = sample();
        let old_format = String::from_utf8(render(&message)).unwrap();
        assert!(!old_format.contains("delay-warned") && !old_format.contains("report="));
        message.delay_warned = true;
        message.recipients[1].report_due = true;
        message.recipients[2].report_due = true;
        let text = String::from_utf8(render(&message)).unwrap();
        assert!(text.contains("\nnext-attempt: 1795719000\ndelay-warned: yes\nrcpt: "));
        assert!(
            text.contains(" state=delivered attempts=0 report=due\nremote-mta: "),
            "{text}"
        );
        assert_eq!(parse(text.as_bytes()).unwrap(), message);
    }

    /// A version 2 file as written before failures were typed.
    fn version_2(rcpts: &str) -> Vec<u8> {
        let text = format!(
            "version: 2\nid: 0J5Z3K1M2N3P4Q5R\narrival: 1795718460\nsender: a@b\nclient: 1.2.3.4\n\
             helo: h\nprotocol: ESMTP\nauth-user:\ntls:\nbody:\nsmtputf8: no\nret:\nenvid:\n\
             message-sha256: {}\nattempts: 2\nnext-attempt: 0\n{rcpts}end 5 ",
            sha256_hex(b"x")
        );
        let mut bytes = text.clone().into_bytes();
        bytes.extend_from_slice(sha256_hex(text.as_bytes()).as_bytes());
        bytes.push(b'\n');
        bytes
    }

    #[test]
    fn version_2_files_are_read_with_typed_failures() {
        let bytes = version_2(
            "rcpt: b@x notify=- orcpt=- state=delivered attempts=0 report=due\n\
             rcpt: c@x notify=- orcpt=- state=failed attempts=0 report=due\n\
             reply: 550 5.1.1 No such user\n\
             rcpt: d@x notify=- orcpt=- state=failed attempts=0\n\
             reply: gave up after 5 days: 451 4.3.0 Try later\n\
             rcpt: e@x notify=- orcpt=- state=deferred attempts=2\n\
             reply: 4.4.1 connect to mx[1.2.3.4]:25: refused\n\
             rcpt: f@x notify=- orcpt=- state=failed attempts=0\n\
             reply: 554 Transaction failed\n\
             rcpt: g@x notify=- orcpt=- state=deferred attempts=1\n\
             reply: no address to connect to\n",
        );
        let message = parse(&bytes).unwrap();
        let states: Vec<&RecipientState> = message.recipients.iter().map(|e| &e.state).collect();
        let local = |status: Enhanced, text: &str| Failure::Local {
            status,
            text: text.into(),
        };
        assert_eq!(
            states,
            [
                &RecipientState::Delivered { relay: None },
                &RecipientState::Failed(local(Enhanced(5, 1, 1), "No such user")),
                &RecipientState::Failed(Failure::Expired {
                    age: Duration::from_secs(5 * 86_400),
                    last: Box::new(local(Enhanced(4, 3, 0), "Try later")),
                }),
                &RecipientState::Deferred {
                    last: local(Enhanced(4, 4, 1), "connect to mx[1.2.3.4]:25: refused"),
                    attempts: 2,
                },
                &RecipientState::Failed(local(Enhanced(5, 0, 0), "Transaction failed")),
                &RecipientState::Deferred {
                    last: local(Enhanced(4, 0, 0), "no address to connect to"),
                    attempts: 1,
                },
            ]
        );
        assert!(message.recipients[0].report_due && message.recipients[1].report_due);
        // What it reads is written as version 3 and read back the same.
        let rendered = render(&message);
        assert!(rendered.starts_with(b"version: 3\n"));
        assert_eq!(parse(&rendered).unwrap(), message);
    }

    #[test]
    fn other_versions_and_bad_failures_are_refused() {
        assert!(parse(&version_2(
            "rcpt: b@x notify=- orcpt=- state=pending attempts=0\n"
        ))
        .is_ok());
        let mut four = render(&sample());
        four[9] = b'4';
        let text = String::from_utf8(four).unwrap();
        let (body, _) = text.rsplit_once(' ').unwrap();
        let resealed = format!("{body} {}\n", sha256_hex(format!("{body} ").as_bytes()));
        assert!(parse(resealed.as_bytes())
            .unwrap_err()
            .reason
            .contains("version"));
        for bad in [
            "expired 5 expired 5 local 4.0.0 x",
            "remote mx",
            "remote mx 550",
            "remote mx x50 5.1.1 x",
            "local x.y.z text",
            "local",
            "other 5.0.0 x",
        ] {
            assert!(parse_failure(bad, true).is_none(), "{bad}");
        }
        assert!(parse_failure("expired 5 local 4.0.0 x", false).is_none());
    }

    #[test]
    fn recipient_parameters_are_read_by_their_grammar() {
        let rcpt = |notify: &str, orcpt: &str| {
            parse(&version_2(&format!(
                "rcpt: b@x notify={notify} orcpt={orcpt} state=pending attempts=0\n"
            )))
            .map(|m| m.recipients[0].recipient.clone())
        };
        let read = rcpt("SUCCESS,DELAY", "rfc822;b+2Bc@x").unwrap();
        assert_eq!(
            read.notify.map(|n| n.to_string()).as_deref(),
            Some("SUCCESS,DELAY")
        );
        assert_eq!(
            read.orcpt.map(|o| o.to_string()).as_deref(),
            Some("rfc822;b+2Bc@x")
        );
        // Only a hand-edited file holds these: it is refused like any
        // other bad value.
        for notify in ["NEVER,SUCCESS", "", "SOMETIMES"] {
            assert_eq!(
                rcpt(notify, "-").unwrap_err().reason,
                "bad notify",
                "{notify}"
            );
        }
        for orcpt in ["rfc822", "rfc822;a%20b", "rfc822;a+zz"] {
            assert_eq!(rcpt("-", orcpt).unwrap_err().reason, "bad orcpt", "{orcpt}");
        }
    }

    #[test]
    fn minimal_round_trip() {
        let mut message = sample();
        message.mail_from.sender = String::new();
        message.mail_from.body = None;
        message.mail_from.ret = None;
        message.mail_from.envid = None;
        message.mail_from.smtputf8 = false;
        message.origin = Origin::Client(ClientOrigin {
            client_ip: "::1".into(),
            helo: String::new(),
            tls: None,
            auth_user: None,
            protocol: "ESMTP",
        });
        assert_eq!(parse(&render(&message)).unwrap(), message);
    }

    #[test]
    fn a_report_made_here_round_trips_without_a_client() {
        let mut message = sample();
        message.origin = Origin::Internal;
        let text = render(&message);
        let head = String::from_utf8_lossy(&text);
        assert!(
            head.contains("\nclient:\nhelo:\nprotocol: internal\n"),
            "{head}"
        );
        assert_eq!(parse(&text).unwrap(), message);
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = render(&sample());
        for cut in 0..bytes.len() {
            assert!(
                parse(&bytes[..cut]).is_err(),
                "accepted a file cut at {cut}"
            );
        }
    }

    #[test]
    fn head_length_finds_the_trailer_before_the_message() {
        let head = render(&sample());
        let mut file = head.clone();
        file.extend_from_slice(b"Received: x\r\n\r\nend of the message\r\nend 1 2\n");
        assert_eq!(head_length(&file), Some(head.len()));
        assert_eq!(head_length(&head), Some(head.len()));
        for cut in 0..head.len() {
            assert_eq!(head_length(&head[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn every_single_byte_change_is_rejected() {
        let bytes = render(&sample());
        for i in 0..bytes.len() {
            let mut changed = bytes.clone();
            changed[i] ^= 0x01;
            assert!(parse(&changed).is_err(), "accepted a change at {i}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let cases: [&[u8]; 8] = [
            b"",
            b"\n",
            b"end 0 x\n",
            b"end\n",
            b"version: 2\nend 1 2 3\n",
            b"\xff\xfe\n",
            b"end 99999999999999999999999 00\n",
            b"%%%\nend 0 0\n",
        ];
        for case in cases {
            assert!(parse(case).is_err());
        }
    }

    #[test]
    fn checksummed_but_malformed_is_rejected() {
        // A file with a correct trailer whose content is wrong must still
        // fail on the content, not panic.
        let bodies = [
            "version: 2\n",
            "version: 2\nid: X\n",
            "version: 2\nid: %zz\n",
            "version: 2\nid: A\narrival: -1\n",
        ];
        for body in bodies {
            let covered = format!("{body}end 0 ");
            let file = format!("{covered}{}\n", sha256_hex(covered.as_bytes()));
            assert!(parse(file.as_bytes()).is_err(), "{body}");
        }
    }

    #[test]
    fn unknown_protocol_name_is_kept_as_esmtp() {
        let mut message = sample();
        if let Origin::Client(client) = &mut message.origin {
            client.protocol = "ESMTPSX";
        }
        let parsed = parse(&render(&message)).unwrap();
        assert_eq!(parsed.origin.client().unwrap().protocol, "ESMTP");
    }

    #[test]
    fn encoding_round_trips() {
        for value in [
            "",
            "plain",
            "a b",
            "100%",
            "\r\n\t\u{7f}",
            "ünï cödé",
            "%41",
        ] {
            assert_eq!(decode(&encode(value, false)).as_deref(), Some(value));
            assert_eq!(decode(&encode(value, true)).as_deref(), Some(value));
            assert!(!encode(value, false).contains(' '));
        }
    }
}
