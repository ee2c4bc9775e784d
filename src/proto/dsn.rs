//! Delivery status notifications: builds the RFC 3464 report (the bounce or
//! delay warning) a sender receives, from plain data. Pure: the caller
//! supplies dates, ids and the boundary seed.
//!
//! The message is `multipart/report; report-type=delivery-status` (RFC
//! 6522) with three parts: a text for a person (Outlook shows it as the
//! "Undeliverable" message, so it explains what happened and what to do),
//! the machine-readable `message/delivery-status`, and the original headers
//! (`text/rfc822-headers`) or, with RET=FULL, the whole original message.
//!
//! Everything from outside (the remote server's reply text, addresses,
//! ENVID/ORCPT) is untrusted: control characters are removed, diagnostic text
//! is kept ASCII, and every line is CRLF-terminated and at most 998 octets
//! (RFC 5322 §2.1.1), so nothing can inject headers or break the MIME
//! structure.

use std::fmt::Write as _;

use super::esmtp::{decode_xtext, Orcpt, Ret};
use super::reply::Enhanced;
use super::splitmix::splitmix64;

/// RFC 5322 §2.1.1: a line is at most 998 octets plus CRLF.
pub const MAX_LINE: usize = 998;
/// Lines of our own text are folded near this width (RFC 5322 §2.1.1 "SHOULD
/// be 78").
pub const FOLD_WIDTH: usize = 76;
/// With RET=FULL the original is returned whole only up to this size;
/// larger messages are returned as headers only.
pub const MAX_RETURNED_MESSAGE: usize = 1024 * 1024;
/// Diagnostic text from a remote server is cut at this length.
pub const MAX_DIAGNOSTIC: usize = 2000;

/// The `Action` field of one recipient (RFC 3464 §2.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportAction {
    /// Delivery failed for good.
    Failed,
    /// Not delivered yet; still being retried.
    Delayed,
    /// Delivered (NOTIFY=SUCCESS).
    Delivered,
    /// Passed to a next hop that does not send delivery reports (NOTIFY=
    /// SUCCESS; RFC 3461 §5.2.2): the last report the sender will get.
    Relayed,
}

impl ReportAction {
    fn as_str(self) -> &'static str {
        match self {
            ReportAction::Failed => "failed",
            ReportAction::Delayed => "delayed",
            ReportAction::Delivered => "delivered",
            ReportAction::Relayed => "relayed",
        }
    }
}

/// One recipient's entry in the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DsnRecipient {
    /// The address delivery was attempted to.
    pub final_recipient: String,
    /// `ORCPT=` as received, if any.
    pub original_recipient: Option<Orcpt>,
    /// What happened.
    pub action: ReportAction,
    /// The status code `x.y.z`.
    pub status: Enhanced,
    /// The remote server's host name, if one answered.
    pub remote_mta: Option<String>,
    /// The remote server's reply (e.g. `550 5.1.1 No such user`), or our
    /// own explanation when no server answered.
    pub diagnostic: Option<String>,
    /// When delivery was last attempted (RFC 5322 date).
    pub last_attempt: Option<String>,
    /// For `Delayed`: until when we keep trying (RFC 5322 date).
    pub will_retry_until: Option<String>,
}

/// Everything a report is made from.
#[derive(Debug, Clone)]
pub struct DsnInput<'a> {
    /// Our host name (`Reporting-MTA`, the From address's domain).
    pub reporting_mta: &'a str,
    /// The original envelope sender: the report goes there.
    pub sender: &'a str,
    /// `ENVID=` as received (xtext), if any.
    pub envid: Option<&'a str>,
    /// `RET=` of the original message.
    pub ret: Option<Ret>,
    /// When the original message arrived (RFC 5322 date).
    pub arrival_date: &'a str,
    /// The recipients to report on.
    pub recipients: &'a [DsnRecipient],
    /// The original message (CRLF line ends).
    pub original: &'a [u8],
    /// Seed for the MIME boundary.
    pub boundary_seed: u64,
    /// The report's own Date (RFC 5322 date).
    pub date: &'a str,
    /// The report's Message-ID without angle brackets.
    pub message_id: &'a str,
}

/// The complete report message, ready to be queued from `<>` to the sender.
pub fn build(input: &DsnInput<'_>) -> Vec<u8> {
    let host = clean_host(input.reporting_mta);
    let human = human_part(input, &host);
    let status = status_part(input, &host);
    let (third_type, third_body) = original_part(input);
    let parts = [&human[..], &status[..], &third_body[..]];

    let mut seed = input.boundary_seed;
    let boundary = loop {
        seed = splitmix64(seed);
        let candidate = format!("=_outpost_{seed:016x}");
        // RFC 2046 §5.1.1: the boundary must not occur in any part.
        if !parts.iter().any(|p| contains(p, candidate.as_bytes())) {
            break candidate;
        }
    };

    let subject = match summary_action(input.recipients) {
        ReportAction::Failed => "Undelivered Mail Returned to Sender",
        ReportAction::Delayed => "Delayed Mail (still being retried)",
        ReportAction::Delivered | ReportAction::Relayed => "Successful Mail Delivery Report",
    };
    let mut out = Vec::new();
    let mut header = |name: &str, value: &str| fold_field(&mut out, name, value);
    header(
        "From",
        &format!("Mail Delivery System <MAILER-DAEMON@{host}>"),
    );
    header("To", &format!("<{}>", clean_text(input.sender, false)));
    header("Subject", subject);
    header("Date", &clean_text(input.date, true));
    header(
        "Message-ID",
        &format!("<{}>", clean_text(input.message_id, true)),
    );
    // RFC 3834 §5: an automatic reply; auto-responders must not answer it.
    header("Auto-Submitted", "auto-replied");
    header("MIME-Version", "1.0");
    header(
        "Content-Type",
        &format!("multipart/report; report-type=delivery-status; boundary=\"{boundary}\""),
    );
    out.extend_from_slice(b"\r\nThis is a MIME-encapsulated message.\r\n");

    let human_type = if human.is_ascii() {
        "text/plain; charset=us-ascii"
    } else {
        "text/plain; charset=utf-8"
    };
    let status_type = "message/delivery-status";
    for (content_type, body) in [
        (human_type, &human),
        (status_type, &status),
        (third_type, &third_body),
    ] {
        out.extend_from_slice(format!("\r\n--{boundary}\r\n").as_bytes());
        out.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        if content_type == "text/plain; charset=us-ascii" {
            out.extend_from_slice(b"Content-Transfer-Encoding: 7bit\r\n");
        } else if !body.is_ascii() {
            out.extend_from_slice(b"Content-Transfer-Encoding: 8bit\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(body);
    }
    out.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    out
}

/// Formats a Unix time as an RFC 5322 date in UTC, e.g.
/// `Tue, 05 Mar 2024 14:03:09 +0000`. Pure: the caller reads the clock.
pub fn format_date(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // 1970-01-01 was a Thursday.
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Civil from days (Howard Hinnant's algorithm), for days since 1970.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let names = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{weekday}, {day:02} {} {year} {:02}:{:02}:{:02} +0000",
        names[(month - 1) as usize],
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The overall kind of report: failure wins over delay, delay over
/// success; a success is "relayed" only when every recipient was.
fn summary_action(recipients: &[DsnRecipient]) -> ReportAction {
    if recipients.iter().any(|r| r.action == ReportAction::Failed) {
        ReportAction::Failed
    } else if recipients.iter().any(|r| r.action == ReportAction::Delayed) {
        ReportAction::Delayed
    } else if recipients.iter().all(|r| r.action == ReportAction::Relayed) {
        ReportAction::Relayed
    } else {
        ReportAction::Delivered
    }
}

/// Delivered or relayed: no reason or advice to give.
fn is_success(action: ReportAction) -> bool {
    matches!(action, ReportAction::Delivered | ReportAction::Relayed)
}

/// Part 1: what happened, for a person.
fn human_part(input: &DsnInput<'_>, host: &str) -> Vec<u8> {
    let mut text = String::new();
    let intro = match summary_action(input.recipients) {
        ReportAction::Failed => {
            "Your message could not be delivered to one or more recipients. \
             It has been returned below, with the reasons."
        }
        ReportAction::Delayed => {
            "Your message has not been delivered yet to one or more recipients. \
             The mail server will keep trying; you do not need to send it again."
        }
        ReportAction::Delivered => "Your message was delivered to the recipients listed below.",
        ReportAction::Relayed => {
            "Your message was handed to the mail servers of the recipients listed below. \
             Those servers do not send delivery reports, so this is the last report you \
             will get about it."
        }
    };
    let _ = writeln!(text, "This is the mail system at {host}.\n");
    wrap_into(&mut text, intro);
    for r in input.recipients {
        text.push('\n');
        let address = clean_text(&r.final_recipient, false);
        let line = match r.action {
            ReportAction::Failed => format!("<{address}>: delivery failed."),
            ReportAction::Delayed => format!("<{address}>: not delivered yet, still trying."),
            ReportAction::Delivered => format!("<{address}>: delivered."),
            ReportAction::Relayed => {
                format!("<{address}>: handed to a server that sends no delivery reports.")
            }
        };
        wrap_into(&mut text, &line);
        if let Some(diag) = &r.diagnostic {
            let said = match &r.remote_mta {
                Some(mta) => format!(
                    "The server {} said: {}",
                    clean_host(mta),
                    clean_diagnostic(diag)
                ),
                None => format!("Reason: {}", clean_diagnostic(diag)),
            };
            wrap_into(&mut text, &said);
        }
        if !is_success(r.action) {
            wrap_into(&mut text, advice(r.status));
        }
        if let (ReportAction::Delayed, Some(until)) = (r.action, &r.will_retry_until) {
            wrap_into(
                &mut text,
                &format!("Delivery will be tried until {}.", clean_text(until, true)),
            );
        }
    }
    crlf(&text)
}

/// What the sender can do, chosen from the status code (RFC 3463 §3).
fn advice(status: Enhanced) -> &'static str {
    match (status.0, status.1, status.2) {
        (_, 1, 10) | (_, 1, 2) => {
            "The recipient's domain does not exist or does not accept mail. \
             Check the part of the address after the @."
        }
        (_, 1, 1) | (_, 1, 3) | (_, 1, 0) | (_, 1, 6) => {
            "The address is wrong or no longer exists. Check the spelling, \
             or ask the recipient for their current address."
        }
        (_, 2, 2) => "The recipient's mailbox is full. Try again later, or reach them another way.",
        (_, 2, 3) | (_, 3, 4) => {
            "The message is too big for the recipient's server. \
             Send smaller attachments, or share a link instead."
        }
        (_, 4, 7) => {
            "The recipient's server could not be reached for several days. \
             Check the address; if it is right, their mail server may be down."
        }
        (_, 4, _) => {
            "The recipient's server could not be reached. Check the address; \
             if it is right, their mail server may be down."
        }
        (_, 6, _) => {
            "The recipient's server cannot accept the message in its current form \
             (for example non-ASCII addresses or 8-bit content). \
             Try plain text, or an address without special characters."
        }
        (_, 7, _) => {
            "The recipient's server refused the message for policy reasons \
             (for example it took it for spam or does not accept mail from this server). \
             Contact the recipient another way, or ask your mail administrator."
        }
        (4, _, _) => "This is a temporary problem; the mail server keeps trying.",
        _ => {
            "The recipient's server refused the message. \
             If the problem persists, ask your mail administrator for help."
        }
    }
}

/// Part 2: `message/delivery-status` (RFC 3464 §2).
fn status_part(input: &DsnInput<'_>, host: &str) -> Vec<u8> {
    let mut out = Vec::new();
    fold_field(&mut out, "Reporting-MTA", &format!("dns; {host}"));
    if let Some(envid) = input.envid {
        fold_field(
            &mut out,
            "Original-Envelope-Id",
            &clean_text(&decode_xtext(envid), true),
        );
    }
    fold_field(
        &mut out,
        "Arrival-Date",
        &clean_text(input.arrival_date, true),
    );
    for r in input.recipients {
        out.extend_from_slice(b"\r\n");
        if let Some(orcpt) = &r.original_recipient {
            let kind = clean_atom(orcpt.addr_type());
            let address = decode_xtext(orcpt.address());
            fold_field(
                &mut out,
                "Original-Recipient",
                &format!("{kind}; {}", address_field(&address).1),
            );
        }
        let (kind, address) = address_field(&r.final_recipient);
        fold_field(&mut out, "Final-Recipient", &format!("{kind}; {address}"));
        fold_field(&mut out, "Action", r.action.as_str());
        let Enhanced(c, s, d) = r.status;
        fold_field(&mut out, "Status", &format!("{c}.{s}.{d}"));
        if let Some(mta) = &r.remote_mta {
            fold_field(&mut out, "Remote-MTA", &format!("dns; {}", clean_host(mta)));
        }
        if let Some(diag) = &r.diagnostic {
            fold_field(
                &mut out,
                "Diagnostic-Code",
                &format!("smtp; {}", clean_diagnostic(diag)),
            );
        }
        if let Some(date) = &r.last_attempt {
            fold_field(&mut out, "Last-Attempt-Date", &clean_text(date, true));
        }
        if let (ReportAction::Delayed, Some(until)) = (r.action, &r.will_retry_until) {
            fold_field(&mut out, "Will-Retry-Until", &clean_text(until, true));
        }
    }
    out
}

/// Part 3: the whole original (RET=FULL, under the cap) or its headers.
fn original_part(input: &DsnInput<'_>) -> (&'static str, Vec<u8>) {
    let full = input.ret == Some(Ret::Full) && input.original.len() <= MAX_RETURNED_MESSAGE;
    let content = if full {
        input.original
    } else {
        headers_of(input.original)
    };
    let mut body = safe_lines(content);
    if !full && body.is_empty() {
        body.extend_from_slice(b"X-Outpost-Note: the original message had no headers\r\n");
    }
    (
        if full {
            "message/rfc822"
        } else {
            "text/rfc822-headers"
        },
        body,
    )
}

/// The header section: everything up to the first empty line.
fn headers_of(message: &[u8]) -> &[u8] {
    let mut start = 0;
    while start < message.len() {
        let end = memchr::memchr(b'\n', &message[start..]).map_or(message.len(), |i| start + i + 1);
        let line = &message[start..end];
        if line == b"\r\n" || line == b"\n" {
            return &message[..start];
        }
        start = end;
    }
    message
}

/// Re-emits `content` with every line ending in CRLF and no line longer
/// than MAX_LINE (longer ones are broken), so the report stays valid even
/// if the original was not.
fn safe_lines(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 2);
    let mut pieces: Vec<&[u8]> = content.split(|&b| b == b'\n').collect();
    // `split` yields an empty last piece after a final LF: it is no line.
    if content.ends_with(b"\n") || content.is_empty() {
        pieces.pop();
    }
    for raw in pieces {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            out.extend_from_slice(b"\r\n");
        }
        for chunk in line.chunks(MAX_LINE) {
            out.extend(chunk.iter().map(|&b| if b == b'\r' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }
    out
}

/// `Name: value` folded at spaces to about FOLD_WIDTH, never above MAX_LINE.
fn fold_field(out: &mut Vec<u8>, name: &str, value: &str) {
    let mut line = format!("{name}:");
    for word in value.split(' ').filter(|w| !w.is_empty()) {
        if line.len() + 1 + word.len() > FOLD_WIDTH && line.trim() != format!("{name}:") {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            line.clear();
        }
        line.push(' ');
        let mut rest = word;
        // A single word longer than a line is split hard (diagnostic text
        // only; it is free text, so nothing depends on it staying whole).
        while line.len() + rest.len() > MAX_LINE {
            let room = MAX_LINE - line.len();
            let cut = floor_char_boundary(rest, room);
            line.push_str(&rest[..cut]);
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
            line = String::from(" ");
            rest = &rest[cut..];
        }
        line.push_str(rest);
    }
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i.max(1).min(s.len())
}

/// Appends `paragraph` wrapped at FOLD_WIDTH, then a newline.
fn wrap_into(text: &mut String, paragraph: &str) {
    let mut width = 0;
    // Words longer than a line (untrusted diagnostic text) are cut into
    // pieces so no line exceeds MAX_LINE.
    let words = paragraph.split_whitespace().flat_map(|w| {
        let mut pieces = Vec::new();
        let mut rest = w;
        while rest.len() > FOLD_WIDTH * 4 {
            let cut = floor_char_boundary(rest, FOLD_WIDTH * 4);
            pieces.push(&rest[..cut]);
            rest = &rest[cut..];
        }
        pieces.push(rest);
        pieces
    });
    for word in words {
        if width > 0 && width + 1 + word.chars().count() > FOLD_WIDTH {
            text.push('\n');
            width = 0;
        } else if width > 0 {
            text.push(' ');
            width += 1;
        }
        text.push_str(word);
        width += word.chars().count();
    }
    text.push('\n');
}

/// LF to CRLF for text we wrote ourselves (it has no CR).
fn crlf(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 32);
    for line in text.split_inclusive('\n') {
        let line = line.strip_suffix('\n').unwrap_or(line);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Untrusted text for one line: controls (CR, LF, TAB, NUL …) become
/// spaces, runs of spaces shrink to one; with `ascii`, non-ASCII becomes `?`.
fn clean_text(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let c = if c.is_control() {
            ' '
        } else if ascii && !c.is_ascii() {
            '?'
        } else {
            c
        };
        if !(c == ' ' && out.ends_with(' ')) {
            out.push(c);
        }
    }
    out.trim().to_string()
}

/// A remote server's reply: one ASCII line, length-capped.
fn clean_diagnostic(s: &str) -> String {
    let mut t = clean_text(s, true);
    if t.len() > MAX_DIAGNOSTIC {
        t.truncate(MAX_DIAGNOSTIC);
        t.push_str(" ...");
    }
    t
}

/// A host name: letters, digits, `-`, `.`, `_`, `:` and brackets (address
/// literals) only.
fn clean_host(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-._:[]".contains(*c))
        .take(255)
        .collect();
    if t.is_empty() {
        "unknown".to_string()
    } else {
        t
    }
}

fn clean_atom(s: &str) -> String {
    let t: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(32)
        .collect();
    if t.is_empty() {
        "rfc822".to_string()
    } else {
        t
    }
}

/// The address type and text for a recipient field: `rfc822` for ASCII,
/// `utf-8` with `\x{HEX}` escapes for internationalised addresses (RFC 6533
/// §3), so the delivery-status part stays ASCII.
fn address_field(address: &str) -> (&'static str, String) {
    let cleaned = clean_text(address, false).replace(' ', "");
    if cleaned.is_ascii() {
        return ("rfc822", cleaned);
    }
    let mut out = String::new();
    for c in cleaned.chars() {
        if c.is_ascii() && c != '\\' {
            out.push(c);
        } else {
            let _ = write!(out, "\\x{{{:X}}}", u32::from(c));
        }
    }
    ("utf-8", out)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORIGINAL: &[u8] = b"From: alice@example.org\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nBody line\r\n.dot\r\n";

    fn failed(addr: &str, status: Enhanced, diag: &str) -> DsnRecipient {
        DsnRecipient {
            final_recipient: addr.into(),
            original_recipient: Some("rfc822;Bob+40example.com".parse().unwrap()),
            action: ReportAction::Failed,
            status,
            remote_mta: Some("mx.example.com".into()),
            diagnostic: Some(diag.into()),
            last_attempt: Some("Tue, 05 Mar 2024 14:03:09 +0000".into()),
            will_retry_until: None,
        }
    }

    fn input<'a>(
        recipients: &'a [DsnRecipient],
        ret: Option<Ret>,
        original: &'a [u8],
        seed: u64,
    ) -> DsnInput<'a> {
        DsnInput {
            reporting_mta: "out.example.org",
            sender: "alice@example.org",
            envid: Some("QQ+2B1"),
            ret,
            arrival_date: "Tue, 05 Mar 2024 14:00:00 +0000",
            recipients,
            original,
            boundary_seed: seed,
            date: "Tue, 05 Mar 2024 14:03:10 +0000",
            message_id: "dsn.123@out.example.org",
        }
    }

    /// A minimal MIME reader for the tests: headers and the bodies of the
    /// parts between boundaries.
    struct Parsed {
        headers: Vec<(String, String)>,
        parts: Vec<(String, String)>,
    }

    fn parse(message: &[u8]) -> Parsed {
        let text = String::from_utf8(message.to_vec()).unwrap();
        for line in text.split("\r\n") {
            assert!(line.len() <= MAX_LINE, "line too long: {}", line.len());
            assert!(!line.contains('\r') && !line.contains('\n'));
        }
        assert!(text.ends_with("\r\n"));
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with(' ') {
                headers.last_mut().unwrap().1.push_str(line);
            } else {
                let (k, v) = line.split_once(':').unwrap();
                headers.push((k.to_string(), v.trim().to_string()));
            }
        }
        let ct = &headers.iter().find(|(k, _)| k == "Content-Type").unwrap().1;
        let boundary = ct
            .split("boundary=\"")
            .nth(1)
            .unwrap()
            .trim_end_matches('"');
        let delimiter = format!("\r\n--{boundary}");
        let pieces: Vec<&str> = body.split(&delimiter).collect();
        assert!(
            pieces.last().unwrap().starts_with("--\r\n"),
            "closing delimiter"
        );
        let parts = pieces[1..pieces.len() - 1]
            .iter()
            .map(|p| {
                let p = p.strip_prefix("\r\n").unwrap();
                let (h, b) = p.split_once("\r\n\r\n").unwrap();
                let ct = h
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Type: "))
                    .unwrap();
                (ct.to_string(), b.to_string())
            })
            .collect();
        Parsed { headers, parts }
    }

    fn header<'a>(p: &'a Parsed, name: &str) -> &'a str {
        &p.headers.iter().find(|(k, _)| k == name).unwrap().1
    }

    #[test]
    fn failure_report_has_the_three_parts_and_fields() {
        let r = [failed(
            "bob@example.com",
            Enhanced(5, 1, 1),
            "550 5.1.1 <bob@example.com>: no such user",
        )];
        let msg = build(&input(&r, None, ORIGINAL, 1));
        let p = parse(&msg);
        assert_eq!(
            header(&p, "From"),
            "Mail Delivery System <MAILER-DAEMON@out.example.org>"
        );
        assert_eq!(header(&p, "To"), "<alice@example.org>");
        assert_eq!(header(&p, "Subject"), "Undelivered Mail Returned to Sender");
        assert_eq!(header(&p, "Auto-Submitted"), "auto-replied");
        assert_eq!(header(&p, "MIME-Version"), "1.0");
        assert_eq!(header(&p, "Message-ID"), "<dsn.123@out.example.org>");
        assert!(header(&p, "Content-Type")
            .starts_with("multipart/report; report-type=delivery-status;"));
        assert_eq!(p.parts.len(), 3);
        assert_eq!(p.parts[0].0, "text/plain; charset=us-ascii");
        let human = &p.parts[0].1;
        assert!(human.contains("<bob@example.com>: delivery failed."));
        assert!(human.contains("mx.example.com said: 550 5.1.1"));
        assert!(human.contains("Check the spelling"));
        assert_eq!(p.parts[1].0, "message/delivery-status");
        let status = &p.parts[1].1;
        for field in [
            "Reporting-MTA: dns; out.example.org\r\n",
            "Original-Envelope-Id: QQ+1\r\n",
            "Arrival-Date: Tue, 05 Mar 2024 14:00:00 +0000\r\n",
            "\r\n\r\nOriginal-Recipient: rfc822; Bob@example.com\r\n",
            "Final-Recipient: rfc822; bob@example.com\r\n",
            "Action: failed\r\n",
            "Status: 5.1.1\r\n",
            "Remote-MTA: dns; mx.example.com\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <bob@example.com>: no such user\r\n",
            "Last-Attempt-Date: Tue, 05 Mar 2024 14:03:09 +0000\r\n",
        ] {
            assert!(status.contains(field), "missing {field:?} in\n{status}");
        }
        assert!(!status.contains("Will-Retry-Until"));
        assert_eq!(p.parts[2].0, "text/rfc822-headers");
        assert_eq!(
            p.parts[2].1,
            "From: alice@example.org\r\nTo: bob@example.com\r\nSubject: Hello\r\n"
        );
    }

    #[test]
    fn ret_full_returns_the_message_unless_too_big() {
        let r = [failed(
            "bob@example.com",
            Enhanced(5, 2, 2),
            "552 mailbox full",
        )];
        let p = parse(&build(&input(&r, Some(Ret::Full), ORIGINAL, 2)));
        assert_eq!(p.parts[2].0, "message/rfc822");
        assert_eq!(p.parts[2].1, "From: alice@example.org\r\nTo: bob@example.com\r\nSubject: Hello\r\n\r\nBody line\r\n.dot\r\n");
        assert!(p.parts[0].1.contains("mailbox is full"));
        let mut big = ORIGINAL.to_vec();
        big.extend(
            std::iter::repeat(b"0123456789abcdef\r\n")
                .take(MAX_RETURNED_MESSAGE / 16)
                .flatten(),
        );
        let p = parse(&build(&input(&r, Some(Ret::Full), &big, 2)));
        assert_eq!(p.parts[2].0, "text/rfc822-headers");
    }

    #[test]
    fn delayed_report_says_so() {
        let mut r = failed(
            "bob@example.com",
            Enhanced(4, 4, 1),
            "connect to mx.example.com: refused",
        );
        r.action = ReportAction::Delayed;
        r.remote_mta = None;
        r.will_retry_until = Some("Sun, 10 Mar 2024 14:00:00 +0000".into());
        let p = parse(&build(&input(&[r], None, ORIGINAL, 3)));
        assert_eq!(header(&p, "Subject"), "Delayed Mail (still being retried)");
        assert!(p.parts[1].1.contains("Action: delayed\r\n"));
        assert!(p.parts[1]
            .1
            .contains("Will-Retry-Until: Sun, 10 Mar 2024 14:00:00 +0000\r\n"));
        assert!(p.parts[0].1.contains("could not be reached"));
        assert!(p.parts[0].1.contains("Reason: connect to"));
    }

    #[test]
    fn success_reports_tell_delivered_from_relayed() {
        let success = |address: &str, action| {
            let mut r = failed(address, Enhanced(2, 0, 0), "");
            r.action = action;
            r.diagnostic = None;
            r
        };
        let relayed = success("bob@example.com", ReportAction::Relayed);
        let p = parse(&build(&input(
            std::slice::from_ref(&relayed),
            None,
            ORIGINAL,
            4,
        )));
        assert_eq!(header(&p, "Subject"), "Successful Mail Delivery Report");
        assert!(p.parts[1]
            .1
            .contains("Action: relayed\r\nStatus: 2.0.0\r\n"));
        let human = &p.parts[0].1;
        assert!(human.contains("this is the last report"), "{human}");
        assert!(human.contains("sends no delivery reports"), "{human}");
        assert!(!human.contains("Check the spelling"), "{human}");

        let local = success("carol@out.example.org", ReportAction::Delivered);
        let p = parse(&build(&input(&[relayed, local], None, ORIGINAL, 5)));
        let status = &p.parts[1].1;
        assert!(status.contains("Action: relayed\r\n"), "{status}");
        assert!(status.contains("Action: delivered\r\n"), "{status}");
        assert!(p.parts[0].1.contains("was delivered to the recipients"));
    }

    #[test]
    fn hostile_diagnostics_cannot_inject_lines_or_fields() {
        let evil = format!(
            "550 bad\r\nAction: delivered\r\n\r\n--=_outpost_\x00\u{e9}{}",
            "x".repeat(3000)
        );
        let r = [failed(
            "bob@example.com\r\nBcc: x@y",
            Enhanced(5, 7, 1),
            &evil,
        )];
        let msg = build(&input(&r, None, ORIGINAL, 4));
        let p = parse(&msg);
        let status = &p.parts[1].1;
        assert_eq!(
            status
                .split("\r\n")
                .filter(|l| l.starts_with("Action:"))
                .count(),
            1
        );
        assert!(!status.contains("\r\nBcc"));
        assert!(status.is_ascii());
        assert!(status
            .contains("Diagnostic-Code: smtp; 550 bad Action: delivered --=_outpost_\r\n ?xxx"));
        assert!(p.parts[0].1.contains("policy reasons"));
    }

    #[test]
    fn boundary_never_occurs_in_content() {
        let r = [failed("bob@example.com", Enhanced(5, 1, 1), "550 no")];
        // Put the boundary the seed would pick into the original first.
        let first = format!("=_outpost_{:016x}", splitmix64(9));
        let original = format!("Subject: {first}\r\n\r\n--{first}\r\n");
        let msg = build(&input(&r, Some(Ret::Full), original.as_bytes(), 9));
        let p = parse(&msg);
        assert_eq!(p.parts.len(), 3);
        assert!(!header(&p, "Content-Type").contains(&first));
    }

    #[test]
    fn utf8_addresses_stay_out_of_the_ascii_part() {
        let r = [failed("jürgen@bücher.example", Enhanced(5, 1, 1), "550 no")];
        let p = parse(&build(&input(&r, None, ORIGINAL, 5)));
        assert!(p.parts[1]
            .1
            .contains("Final-Recipient: utf-8; j\\x{FC}rgen@b\\x{FC}cher.example\r\n"));
        assert!(p.parts[1].1.is_ascii());
        assert_eq!(p.parts[0].0, "text/plain; charset=utf-8");
    }

    #[test]
    fn original_with_bad_lines_is_repaired() {
        let long = "h".repeat(2500);
        let original = format!("X-Long: {long}\nSubject: bare lf\r\n\r\nbody");
        let r = [failed("b@x.test", Enhanced(5, 0, 0), "550 no")];
        let p = parse(&build(&input(&r, Some(Ret::Full), original.as_bytes(), 6)));
        assert!(p.parts[2].1.contains("\r\nSubject: bare lf\r\n"));
        let p = parse(&build(&input(&r, None, b"no headers at all", 6)));
        assert_eq!(p.parts[2].1, "no headers at all\r\n");
    }

    #[test]
    fn dates() {
        assert_eq!(format_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(
            format_date(1_709_647_389),
            "Tue, 05 Mar 2024 14:03:09 +0000"
        );
        assert_eq!(format_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
