//! The DSN builder (`proto::dsn::build`) on arbitrary original messages,
//! diagnostic texts, addresses, ENVID/ORCPT, host names and RET, checked
//! with a small MIME splitter written here:
//! - every line ends in CRLF (no bare CR or LF) and is at most 998 octets;
//! - the top-level header section and the delivery-status part contain no
//!   control characters but HT (nothing can inject a header or a line);
//! - the Content-Type is multipart/report with a boundary, and the boundary
//!   occurs only on its delimiter lines: three parts, then the close
//!   delimiter, nothing but an empty epilogue after it;
//! - the parts are text/plain, message/delivery-status, and
//!   text/rfc822-headers or (RET=FULL) message/rfc822;
//! - the delivery-status part has the per-message fields, then one group
//!   per recipient with exactly one Final-Recipient, ReportAction and Status, the
//!   ReportAction and Status those of the recipient;
//! - built again with the first build's delimiter lines planted in the
//!   original and in a diagnostic, the boundary changes and all of the
//!   above still holds (boundaries never collide).
//!
//! Input: 1 flags byte (RET, recipient count, actions, optional fields),
//! 8 bytes of boundary seed, then fields separated by 0xFF: original
//! message, diagnostic, recipient address, ENVID, ORCPT, remote MTA,
//! reporting MTA, sender, date.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::dsn::{build, DsnInput, DsnRecipient, ReportAction, MAX_LINE};
use outpost::proto::esmtp::{Orcpt, Ret};
use outpost::proto::reply::Enhanced;

#[path = "common/mod.rs"]
mod common;

/// One part of the multipart body: its Content-Type and body lines.
struct Part<'a> {
    content_type: String,
    body: Vec<&'a [u8]>,
}

fn lines(msg: &[u8]) -> Vec<&[u8]> {
    for (i, &b) in msg.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && msg[i - 1] == b'\r', "bare LF at {i}");
        }
        if b == b'\r' {
            assert_eq!(msg.get(i + 1), Some(&b'\n'), "bare CR at {i}");
        }
    }
    assert!(msg.ends_with(b"\r\n"), "output does not end with CRLF");
    let lines: Vec<&[u8]> = msg[..msg.len() - 2].split(|&b| b == b'\n').collect();
    let lines: Vec<&[u8]> = lines
        .into_iter()
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect();
    for l in &lines {
        assert!(l.len() <= MAX_LINE, "line of {} octets", l.len());
    }
    lines
}

/// Unfolded header fields up to the first empty line; returns them and the
/// index of the first body line.
fn headers(lines: &[&[u8]]) -> (Vec<(String, String)>, usize) {
    let mut fields: Vec<(String, String)> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if l.is_empty() {
            return (fields, i + 1);
        }
        no_controls(l);
        let text = String::from_utf8_lossy(l);
        if l[0] == b' ' || l[0] == b'\t' {
            let last = fields
                .last_mut()
                .expect("continuation line before any field");
            last.1.push_str(&text);
        } else {
            let (name, value) = text.split_once(':').expect("header line without a colon");
            assert!(
                !name.is_empty() && !name.contains(' '),
                "bad field name {name:?}"
            );
            fields.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (fields, lines.len())
}

fn no_controls(line: &[u8]) {
    assert!(
        !line.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f),
        "control character in {:?}",
        String::from_utf8_lossy(line)
    );
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// Splits the report into its parts; checks the boundary is used only on
/// delimiter lines. Returns the boundary and the parts.
fn split(msg: &[u8]) -> (String, Vec<Part<'_>>) {
    let all = lines(msg);
    let (top, body_start) = headers(&all);
    let content_type = field(&top, "content-type").expect("no Content-Type");
    assert!(content_type.starts_with("multipart/report; report-type=delivery-status;"));
    let boundary = content_type
        .split_once("boundary=\"")
        .and_then(|(_, b)| b.split_once('"'))
        .map(|(b, _)| b.to_string())
        .expect("no boundary");
    assert!(
        !boundary.is_empty() && boundary.len() <= 70,
        "RFC 2046 §5.1.1"
    );
    let delimiter = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut parts: Vec<Vec<&[u8]>> = Vec::new();
    let mut closed = false;
    for l in &all[body_start..] {
        if closed {
            panic!("text after the close delimiter");
        }
        if *l == delimiter.as_bytes() {
            parts.push(Vec::new());
        } else if *l == close.as_bytes() {
            closed = true;
        } else {
            assert!(
                !l.windows(boundary.len()).any(|w| w == boundary.as_bytes()),
                "the boundary occurs inside a part"
            );
            if let Some(p) = parts.last_mut() {
                p.push(l);
            }
        }
    }
    assert!(closed, "no close delimiter");
    let parts = parts
        .into_iter()
        .map(|p| {
            let (fields, start) = headers(&p);
            Part {
                content_type: field(&fields, "content-type")
                    .expect("part without Content-Type")
                    .to_string(),
                body: p[start..].to_vec(),
            }
        })
        .collect();
    (boundary, parts)
}

fn check(msg: &[u8], input: &DsnInput<'_>) -> String {
    let (boundary, parts) = split(msg);
    assert_eq!(parts.len(), 3, "three parts");
    assert!(parts[0].content_type.starts_with("text/plain"));
    assert_eq!(parts[1].content_type, "message/delivery-status");
    let full = input.ret == Some(Ret::Full);
    assert_eq!(
        parts[2].content_type,
        if full {
            "message/rfc822"
        } else {
            "text/rfc822-headers"
        }
    );
    // message/delivery-status: per-message fields, then groups separated
    // by empty lines (RFC 3464 §2.1).
    let mut groups: Vec<Vec<&[u8]>> = vec![Vec::new()];
    for l in &parts[1].body {
        no_controls(l);
        if l.is_empty() {
            groups.push(Vec::new());
        } else {
            groups.last_mut().expect("one group").push(l);
        }
    }
    while groups.last().is_some_and(|g| g.is_empty()) {
        groups.pop();
    }
    let (message, recipients) = groups.split_first().expect("per-message fields");
    let (message_fields, _) = headers(message);
    assert!(field(&message_fields, "reporting-mta").is_some());
    assert_eq!(
        recipients.len(),
        input.recipients.len(),
        "one group per recipient"
    );
    for (group, r) in recipients.iter().zip(input.recipients) {
        let (fields, _) = headers(group);
        for name in ["final-recipient", "action", "status"] {
            assert_eq!(
                fields.iter().filter(|(n, _)| n == name).count(),
                1,
                "exactly one {name}"
            );
        }
        let action = match r.action {
            ReportAction::Failed => "failed",
            ReportAction::Delayed => "delayed",
            ReportAction::Delivered => "delivered",
            ReportAction::Relayed => "relayed",
        };
        assert_eq!(field(&fields, "action"), Some(action));
        let Enhanced(c, s, d) = r.status;
        assert_eq!(
            field(&fields, "status"),
            Some(format!("{c}.{s}.{d}").as_str())
        );
    }
    boundary
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let flags = common::byte(&mut data);
    let seed_bytes = common::take(&mut data, 8);
    let mut seed = [0u8; 8];
    seed[..seed_bytes.len()].copy_from_slice(seed_bytes);
    let mut fields = data.split(|&b| b == 0xff);
    let mut next = || fields.next().unwrap_or(b"");
    let original = next().to_vec();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let diagnostic = text(next());
    let address = text(next());
    let envid = text(next());
    // The fuzzer's ORCPT if it is one, else its text as the address of an
    // `rfc822` one.
    let orcpt = text(next());
    let orcpt: Option<Orcpt> = orcpt.parse().ok().or_else(|| Some(Orcpt::rfc822(&orcpt)));
    let remote = text(next());
    let host = text(next());
    let sender = text(next());
    let date = text(next());

    let count = usize::from(flags >> 4 & 3) + 1;
    let recipients: Vec<DsnRecipient> = (0..count)
        .map(|i| {
            let action = match (flags >> (i % 4)) & 3 {
                0 => ReportAction::Failed,
                1 => ReportAction::Delayed,
                2 => ReportAction::Delivered,
                _ => ReportAction::Relayed,
            };
            DsnRecipient {
                final_recipient: if i == 0 {
                    address.clone()
                } else {
                    format!("r{i}@example.com")
                },
                original_recipient: orcpt.clone().filter(|_| flags & 0x40 != 0),
                action,
                status: Enhanced(
                    if action == ReportAction::Delivered {
                        2
                    } else {
                        4 + (i as u8 & 1)
                    },
                    seed[i] as u16,
                    seed[i + 1] as u16 * 3,
                ),
                remote_mta: (i != 1).then(|| remote.clone()),
                diagnostic: (i != 2).then(|| diagnostic.clone()),
                last_attempt: Some(date.clone()),
                will_retry_until: Some(date.clone()),
            }
        })
        .collect();
    let ret = match flags & 0x80 != 0 {
        true => Some(Ret::Full),
        false if flags & 0x08 != 0 => Some(Ret::Hdrs),
        false => None,
    };
    let input = DsnInput {
        reporting_mta: &host,
        sender: &sender,
        envid: (flags & 0x04 != 0).then_some(envid.as_str()),
        ret,
        arrival_date: &date,
        recipients: &recipients,
        original: &original,
        boundary_seed: u64::from_le_bytes(seed),
        date: &date,
        message_id: &envid,
    };
    let msg = build(&input);
    let boundary = check(&msg, &input);

    // Plant the boundary in the original and a diagnostic: the builder must
    // pick another one.
    let mut planted = format!("--{boundary}\r\n").into_bytes();
    planted.extend_from_slice(&original);
    planted.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut planted_recipients = recipients.clone();
    planted_recipients[0].diagnostic = Some(format!("550 {boundary}"));
    let again = DsnInput {
        original: &planted,
        recipients: &planted_recipients,
        ..input.clone()
    };
    let second = check(&build(&again), &again);
    assert_ne!(second, boundary, "the boundary collides with the content");
});
