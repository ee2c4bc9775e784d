//! The `Received:` trace header (RFC 5321 §4.4, protocol names of RFC 3848)
//! and the RFC 5322 §3.3 date it ends with. Pure: the caller passes the
//! date, the queue id and our host name.
//!
//! The EHLO name is chosen by the client, so it is never written raw: a name
//! that is not a syntactically valid domain or address literal goes into a
//! comment with every byte that could end the comment or the header (CR, LF,
//! parentheses, backslash, controls, non-ASCII) replaced by `?`.

use super::envelope::{ClientOrigin, Origin};
use super::header::HeaderScanner;

/// RFC 5322 §2.1.1: a header line is at most 998 octets before CRLF.
pub const MAX_HEADER_LINE: usize = 998;

/// The longest EHLO name, host name or user name copied into the header;
/// an RFC 1035 domain is at most 255 octets, so this never cuts a real one
/// and keeps every folded line far below [`MAX_HEADER_LINE`].
const MAX_FIELD: usize = 255;

/// The number of `Received:` fields in the header section of `message`
/// (up to the first empty line), the hop count of RFC 5321 §6.3: a
/// message that has passed too many relays is in a loop. Field names
/// match in any case, with optional white space before the colon
/// (RFC 5322 §4.5.3); folded continuation lines are not fields.
pub fn count_received(message: &[u8]) -> usize {
    let mut counter = ReceivedCounter::default();
    counter.feed(message);
    counter.count()
}

/// [`count_received`] over a message that arrives in pieces: feed each
/// piece in order; any split gives the same count as the whole. Keeps a
/// few words of state, whatever the line lengths.
#[derive(Debug, Clone, Default)]
pub struct ReceivedCounter(HeaderScanner);

impl ReceivedCounter {
    /// Reads the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) {
        self.0.feed(piece);
    }

    /// The `Received:` fields counted so far.
    pub fn count(&self) -> usize {
        self.0.received()
    }

    /// The header section has ended: no later piece changes the count.
    pub fn is_complete(&self) -> bool {
        self.0.is_complete()
    }
}

/// Renders the `Received:` header, folded with CRLF + TAB (`<TAB>` below),
/// ending in CRLF:
///
/// ```text
/// Received: from DESKTOP-7Q2K3LM ([192.0.2.7])
/// <TAB>by mail.example.org (Outpost) with ESMTPSA id 0J5Z3K1M2N3P4Q5R
/// <TAB>(using TLSv1.3) (authenticated as alice@example.org);
/// <TAB>Thu, 26 Nov 2026 18:41:00 +0000
/// ```
///
/// A message the server made itself (a delivery report) has no `from`
/// clause: `Received: by mail.example.org (Outpost) id …;`.
pub fn received_header(origin: &Origin, hostname: &str, queue_id: &str, date: &str) -> String {
    let mut lines = match origin {
        Origin::Client(client) => client_lines(client, hostname, queue_id),
        Origin::Internal => vec![format!(
            "Received: by {} (Outpost) id {}",
            comment_text(hostname),
            comment_text(queue_id)
        )],
    };
    // RFC 5321 §4.4: the date-time follows a semicolon at the end.
    if let Some(last) = lines.last_mut() {
        last.push(';');
    }
    lines.push(comment_text(date));
    let mut header = lines.join("\r\n\t");
    header.push_str("\r\n");
    header
}

/// The lines of a client's Received header before the date.
fn client_lines(origin: &ClientOrigin, hostname: &str, queue_id: &str) -> Vec<String> {
    let ip = address_literal(&origin.client_ip);
    let from = if is_domain(&origin.helo) || is_address_literal(&origin.helo) {
        // RFC 5321 §4.4 Extended-Domain: Domain FWS "(" TCP-info ")".
        format!("from {} ({})", origin.helo, ip)
    } else {
        // Not a usable domain: record the IP as the From-domain and the
        // claimed name as a comment, like Exim's `(helo=...)`.
        format!("from {} (helo={})", ip, comment_text(&origin.helo))
    };
    let by = format!(
        "by {} (Outpost) with {} id {}",
        comment_text(hostname),
        comment_text(origin.protocol),
        comment_text(queue_id)
    );
    let mut notes = Vec::new();
    if let Some(tls) = &origin.tls {
        notes.push(format!("(using {})", comment_text(tls)));
    }
    if let Some(user) = &origin.auth_user {
        notes.push(format!("(authenticated as {})", comment_text(user)));
    }
    let mut lines = vec![format!("Received: {from}"), by];
    if !notes.is_empty() {
        lines.push(notes.join(" "));
    }
    lines
}

/// `[192.0.2.7]` or `[IPv6:2001:db8::7]` (RFC 5321 §4.1.3).
fn address_literal(ip: &str) -> String {
    let clean = comment_text(ip);
    if clean.contains(':') {
        format!("[IPv6:{clean}]")
    } else {
        format!("[{clean}]")
    }
}

/// RFC 5321 §4.1.2 Domain: LDH labels separated by dots; a single label
/// (Outlook's `DESKTOP-7Q2K3LM`) is syntactically fine.
fn is_domain(name: &str) -> bool {
    if name.is_empty() || name.len() > MAX_FIELD {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    })
}

/// `[...]` holding only characters an IPv4 or IPv6 literal can contain.
fn is_address_literal(name: &str) -> bool {
    let Some(inner) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) else {
        return false;
    };
    let inner = inner.strip_prefix("IPv6:").unwrap_or(inner);
    !inner.is_empty()
        && inner.len() <= 45
        && inner
            .bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b'.' || b == b':')
}

/// Text safe inside a header comment (RFC 5322 §3.2.2): printable ASCII
/// except `(`, `)` and `\`, at most [`MAX_FIELD`] characters; anything else
/// becomes `?` so a client cannot close the comment or inject a header.
fn comment_text(text: &str) -> String {
    text.chars()
        .take(MAX_FIELD)
        .map(|c| match c {
            '(' | ')' | '\\' => '?',
            ' '..='~' => c,
            _ => '?',
        })
        .collect()
}

const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Formats seconds since the Unix epoch as an RFC 5322 §3.3 date in UTC,
/// e.g. `Thu, 26 Nov 2026 18:41:00 +0000`.
pub fn rfc5322_date(unix_seconds: u64) -> String {
    let days = unix_seconds / 86_400;
    let rest = unix_seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday.
    let weekday = DAY_NAMES[(days % 7) as usize];
    format!(
        "{weekday}, {day:02} {} {year:04} {:02}:{:02}:{:02} +0000",
        MONTH_NAMES[(month - 1) as usize],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to (year, month 1..=12, day 1..=31) in the
/// proleptic Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(helo: &str, tls: Option<&str>, user: Option<&str>) -> ClientOrigin {
        ClientOrigin {
            client_ip: "192.0.2.7".into(),
            helo: helo.into(),
            tls: tls.map(String::from),
            auth_user: user.map(String::from),
            protocol: "ESMTPSA",
        }
    }

    fn origin(helo: &str, tls: Option<&str>, user: Option<&str>) -> Origin {
        Origin::Client(client(helo, tls, user))
    }

    #[test]
    fn renders_full_header() {
        let h = received_header(
            &origin(
                "DESKTOP-7Q2K3LM",
                Some("TLSv1.3"),
                Some("alice@example.org"),
            ),
            "mail.example.org",
            "0J5Z3K1M2N3P4Q5R",
            "Thu, 26 Nov 2026 18:41:00 +0000",
        );
        assert_eq!(
            h,
            "Received: from DESKTOP-7Q2K3LM ([192.0.2.7])\r\n\
             \tby mail.example.org (Outpost) with ESMTPSA id 0J5Z3K1M2N3P4Q5R\r\n\
             \t(using TLSv1.3) (authenticated as alice@example.org);\r\n\
             \tThu, 26 Nov 2026 18:41:00 +0000\r\n"
        );
    }

    #[test]
    fn plain_smtp_without_tls_or_user() {
        let mut o = client("mx.example.net", None, None);
        o.protocol = "ESMTP";
        o.client_ip = "2001:db8::7".into();
        let h = received_header(&Origin::Client(o), "mail.example.org", "ID", "D");
        assert_eq!(
            h,
            "Received: from mx.example.net ([IPv6:2001:db8::7])\r\n\
             \tby mail.example.org (Outpost) with ESMTP id ID;\r\n\tD\r\n"
        );
    }

    #[test]
    fn a_report_made_here_has_no_from_clause() {
        let h = received_header(&Origin::Internal, "mail.example.org", "ID", "D");
        assert_eq!(
            h,
            "Received: by mail.example.org (Outpost) id ID;\r\n\tD\r\n"
        );
    }

    #[test]
    fn hostile_helo_is_neutralised() {
        let cases = [
            "evil\r\nX-Injected: yes",
            "a) (forged comment",
            "back\\slash",
            "ünïcode",
            "",
            "under_score.example",
            "-leading.example",
        ];
        for helo in cases {
            let h = received_header(&origin(helo, None, None), "h", "I", "D");
            let body = h.strip_suffix("\r\n").unwrap();
            for line in body.split("\r\n") {
                assert!(!line.contains('\r') && !line.contains('\n'), "{helo:?}");
                assert!(line.len() < MAX_HEADER_LINE);
            }
            assert!(
                h.starts_with("Received: from [192.0.2.7] (helo="),
                "{helo:?}: {h}"
            );
            let first = body.split("\r\n").next().unwrap();
            // Exactly one comment: the one we opened.
            assert_eq!(first.matches('(').count(), 1, "{first}");
            assert_eq!(first.matches(')').count(), 1, "{first}");
        }
    }

    #[test]
    fn address_literal_helo_is_kept() {
        let h = received_header(&origin("[192.0.2.7]", None, None), "h", "I", "D");
        assert!(h.starts_with("Received: from [192.0.2.7] ([192.0.2.7])\r\n"));
        let h = received_header(&origin("[IPv6:::1]", None, None), "h", "I", "D");
        assert!(h.starts_with("Received: from [IPv6:::1] ([192.0.2.7])\r\n"));
    }

    #[test]
    fn long_names_stay_under_the_line_limit() {
        let long = "a".repeat(5000);
        let h = received_header(
            &origin(&long, Some(&long), Some(&long)),
            &long,
            &long,
            &long,
        );
        for line in h.strip_suffix("\r\n").unwrap().split("\r\n") {
            assert!(line.len() <= MAX_HEADER_LINE, "{}", line.len());
        }
    }

    #[test]
    fn dates() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 +0000"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 +0000"),
            (1_798_310_460, "Sat, 26 Dec 2026 18:41:00 +0000"),
            (1_795_718_460, "Thu, 26 Nov 2026 18:41:00 +0000"),
            (4_102_444_799, "Thu, 31 Dec 2099 23:59:59 +0000"),
        ];
        for (secs, want) in cases {
            assert_eq!(rfc5322_date(secs), want, "{secs}");
        }
    }

    #[test]
    fn received_fields_are_counted_in_the_header_section_only() {
        let cases: &[(&[u8], usize)] = &[
            (b"", 0),
            (b"Subject: x\r\n\r\nbody\r\n", 0),
            (b"Received: a\r\nreceived: b\r\nRECEIVED : c\r\n\r\n", 3),
            // A folded field counts once; its continuation is not a field.
            (
                b"Received: from a\r\n Received: by b\r\n\tReceived: c\r\n\r\n",
                1,
            ),
            // Fields after the empty line are body text.
            (b"Received: a\r\n\r\nReceived: b\r\n", 1),
            // Other names, and lines without a colon, are not counted.
            (b"X-Received: a\r\nReceived-SPF: b\r\nReceived\r\n\r\n", 0),
            // Bare LF line ends, and a message that is all header.
            (b"Received: a\nReceived: b\n", 2),
        ];
        for (message, expected) in cases {
            assert_eq!(
                count_received(message),
                *expected,
                "{:?}",
                String::from_utf8_lossy(message)
            );
            for split in 0..=message.len() {
                let mut counter = ReceivedCounter::default();
                let (a, b) = message.split_at(split);
                counter.feed(a);
                counter.feed(b);
                assert_eq!(counter.count(), *expected, "split at {split}");
            }
            let mut counter = ReceivedCounter::default();
            for byte in message.iter() {
                counter.feed(std::slice::from_ref(byte));
            }
            assert_eq!(counter.count(), *expected, "byte by byte");
        }
    }

    #[test]
    fn blanks_before_the_colon_may_be_many_and_only_an_empty_line_ends_the_header() {
        let mut message = b"Received".to_vec();
        message.extend_from_slice(&[b' '; 2000]);
        message.extend_from_slice(b": x\r\nX: y\r\n\r\n");
        assert_eq!(count_received(&message), 1);
        assert_eq!(count_received(b"\r\r\nReceived: x\r\n\r\n"), 1);
        assert_eq!(count_received(b"\r\nReceived: x\r\n"), 0);
    }
}
