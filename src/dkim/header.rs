//! The header section of a message: its fields, which of them a signature
//! covers (RFC 6376 §5.4), and the domain of the `From:` field that picks
//! the signing key.

use super::canon::is_wsp;

/// The fields signed when present, in this order (RFC 6376 §5.4.1's
/// recommendation, less the fields that relays legitimately change).
pub const SIGNED_FIELDS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "reply-to",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
];

/// The header fields of `section` (the message up to, not including, the
/// empty line), each without its final CRLF and with its folded lines. A
/// field ends at a CRLF not followed by white space.
pub fn fields(section: &[u8]) -> Vec<&[u8]> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + 1 < section.len() {
        if section[i] == b'\r' && section[i + 1] == b'\n' {
            let continued = section.get(i + 2).is_some_and(|&b| is_wsp(b));
            if !continued {
                fields.push(&section[start..i]);
                start = i + 2;
            }
            i += 2;
        } else {
            i += 1;
        }
    }
    if start < section.len() {
        fields.push(&section[start..]);
    }
    fields
}

/// A field's name as written (before the colon, white space trimmed).
pub fn name(field: &[u8]) -> &[u8] {
    let end = field.iter().position(|&b| b == b':').unwrap_or(field.len());
    let name = &field[..end];
    let last = name.iter().rposition(|&b| !is_wsp(b)).map_or(0, |l| l + 1);
    &name[..last]
}

/// The value of a field (after the colon).
pub fn value(field: &[u8]) -> &[u8] {
    match field.iter().position(|&b| b == b':') {
        Some(colon) => &field[colon + 1..],
        None => b"",
    }
}

/// The `h=` list for a message with these fields: each name of
/// [`SIGNED_FIELDS`] once per occurrence, then `from` once more, so that
/// a `From:` added later breaks the signature ("over-signing", §8.15).
pub fn signed_names(fields: &[&[u8]]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for &wanted in SIGNED_FIELDS {
        let count = fields
            .iter()
            .filter(|f| name(f).eq_ignore_ascii_case(wanted.as_bytes()))
            .count();
        names.extend((0..count).map(|_| wanted));
    }
    names.push("from");
    names
}

/// The fields `names` select, in order (§5.4.2): each name takes the last
/// instance not yet taken; a name with none left selects nothing.
pub fn select<'a, S: AsRef<str>>(fields: &[&'a [u8]], names: &[S]) -> Vec<&'a [u8]> {
    let mut taken = vec![false; fields.len()];
    let mut selected = Vec::new();
    for wanted in names {
        let wanted = wanted.as_ref().trim().as_bytes();
        let found = (0..fields.len())
            .rev()
            .find(|&i| !taken[i] && name(fields[i]).eq_ignore_ascii_case(wanted));
        if let Some(i) = found {
            taken[i] = true;
            selected.push(fields[i]);
        }
    }
    selected
}

/// The domain of the author's address in the one `From:` field, lower
/// case; `None` when there is no `From:`, more than one, or no address
/// with a domain in it. With several mailboxes in the field, the first.
pub fn from_domain(fields: &[&[u8]]) -> Option<String> {
    let mut from = fields
        .iter()
        .filter(|f| name(f).eq_ignore_ascii_case(b"from"));
    let field = from.next()?;
    if from.next().is_some() {
        return None;
    }
    let text = String::from_utf8_lossy(value(field));
    let mailbox = first_mailbox(&strip_comments_and_quotes(&text));
    let (_, domain) = mailbox.rsplit_once('@')?;
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let valid = !domain.is_empty()
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b >= 0x80);
    valid.then_some(domain)
}

/// The text without RFC 5322 comments and quoted strings (where a `<`, `@`
/// or `,` does not count), each replaced by a space.
fn strip_comments_and_quotes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut depth = 0usize;
    let mut quoted = false;
    let mut escaped = false;
    for c in text.chars() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted || depth > 0 => escaped = true,
            '"' if depth == 0 => {
                quoted = !quoted;
                out.push(' ');
            }
            '(' if !quoted => depth += 1,
            ')' if !quoted && depth > 0 => {
                depth -= 1;
                out.push(' ');
            }
            _ if quoted || depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

/// The address of the first mailbox of a list: inside `<>` when the
/// mailbox has angle brackets, else the mailbox itself.
fn first_mailbox(list: &str) -> String {
    let first = list.split(',').find(|m| m.contains('@')).unwrap_or("");
    let address = match (first.find('<'), first.rfind('>')) {
        (Some(open), Some(close)) if open < close => &first[open + 1..close],
        (Some(open), None) => &first[open + 1..],
        _ => first,
    };
    address.trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &[u8] = b"Received: from a\r\n\tby b; date\r\nFrom: Joe <joe@Example.COM>\r\n\
        To: x@y\r\nSubject: one\r\nsubject : two\r\nX-Other: z";

    #[test]
    fn splits_fields_with_their_folds() {
        let f = fields(HEADER);
        assert_eq!(f.len(), 6);
        assert_eq!(f[0], b"Received: from a\r\n\tby b; date");
        assert_eq!(f[5], b"X-Other: z");
        assert_eq!(name(f[4]), b"subject");
        assert_eq!(value(f[4]), b" two");
        assert!(fields(b"").is_empty());
    }

    #[test]
    fn names_to_sign_over_sign_from() {
        let f = fields(HEADER);
        assert_eq!(
            signed_names(&f),
            ["from", "to", "subject", "subject", "from"]
        );
    }

    #[test]
    fn selection_takes_the_last_instance_first() {
        let f = fields(HEADER);
        let picked = select(&f, &["subject", "from", "subject", "subject", "from", "cc"]);
        assert_eq!(
            picked,
            [
                &b"subject : two"[..],
                b"From: Joe <joe@Example.COM>",
                b"Subject: one"
            ]
        );
    }

    #[test]
    fn from_domains() {
        let from = |value: &str| {
            let field = format!("From: {value}");
            from_domain(&[field.as_bytes()])
        };
        for (value, want) in [
            ("joe@example.com", Some("example.com")),
            ("Joe <joe@Example.COM.>", Some("example.com")),
            (
                "\"Smith, J <j@evil.test>\" <joe@example.com>",
                Some("example.com"),
            ),
            (
                "joe@example.com (Joe @ home <x@evil.test>)",
                Some("example.com"),
            ),
            ("a@one.test, b@two.test", Some("one.test")),
            (
                "Mail Delivery System <MAILER-DAEMON@mx.example.org>",
                Some("mx.example.org"),
            ),
            ("undisclosed", None),
            ("joe@", None),
            ("joe@exa mple.com", None),
        ] {
            assert_eq!(from(value).as_deref(), want, "{value:?}");
        }
        assert_eq!(from_domain(&[b"To: a@b.test"]), None);
        assert_eq!(from_domain(&[b"From: a@b.test", b"FROM: c@d.test"]), None);
    }
}
