//! RFC 5321 paths and mailboxes (§4.1.2), the null path `<>`, UTF-8 local
//! parts and domains under SMTPUTF8 (RFC 6531), and the relay tricks parsed
//! for what they are so policy can refuse them.
//!
//! Strict where the grammar protects the server (no trailing dot in a
//! domain, no empty labels, a registered tag in address literals), liberal
//! only where real clients need it. Address literals are checked with
//! `core::net` parsers (pure; no sockets).

use core::fmt;
use core::net::{Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1: a local part is at most 64 octets.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2: a domain is at most 255 octets.
pub const MAX_DOMAIN: usize = 255;
/// RFC 1035 §2.3.4: a label is at most 63 octets.
const MAX_LABEL: usize = 63;

/// The domain part of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain<'a> {
    /// A host name, e.g. `example.com` (may be UTF-8 under SMTPUTF8).
    Name(&'a str),
    /// An address literal including brackets, e.g. `[192.0.2.1]`, `[IPv6:…]`.
    Literal(&'a str),
}

impl<'a> Domain<'a> {
    /// The domain as written (a literal keeps its brackets).
    pub fn as_str(&self) -> &'a str {
        match self {
            Domain::Name(s) | Domain::Literal(s) => s,
        }
    }
}

/// A mailbox `local@domain`, borrowed from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mailbox<'a> {
    /// The local part as written (a quoted string keeps its quotes).
    pub local: &'a str,
    /// The domain.
    pub domain: Domain<'a>,
}

/// A reverse-path or forward-path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path<'a> {
    /// `<>`: the null reverse-path of bounces (RFC 5321 §4.5.5).
    Null,
    /// `<Postmaster>` without a domain (RFC 5321 §4.1.1.3, RCPT only).
    Postmaster,
    /// A bare local part without a domain, e.g. `<root>`: not RFC 5321
    /// syntax, but what cron and scripts on the local host send. The
    /// session takes it only from relay-network clients, qualified with
    /// the sender domain.
    LocalPart(&'a str),
    /// An ordinary mailbox. `source_route` is true when a source route
    /// `@a,@b:` preceded it (RFC 5321 §4.1.2; accepted and ignored per
    /// Appendix C, but policy refuses relaying with it).
    Mailbox {
        /// The mailbox itself.
        mailbox: Mailbox<'a>,
        /// Whether a source route preceded the mailbox.
        source_route: bool,
    },
}

/// Why a path does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressError {
    /// Not of RFC 5321 path syntax.
    Syntax,
    /// Non-ASCII without SMTPUTF8.
    NeedsUtf8,
    /// Local part over 64 or domain over 255 octets (RFC 5321 §4.5.3.1).
    TooLong,
}

impl fmt::Display for AddressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressError::Syntax => "address syntax error",
            AddressError::NeedsUtf8 => "non-ASCII address without SMTPUTF8",
            AddressError::TooLong => "address too long",
        })
    }
}

impl std::error::Error for AddressError {}

impl<'a> Mailbox<'a> {
    /// True when the local part hides another routing step: `%`, `!`, or an
    /// `@` inside a quoted local part. Such mailboxes never open a relay.
    pub fn has_relay_trick(&self) -> bool {
        // A dot-atom cannot hold `@`, so any `@` here is a quoted one.
        self.local.bytes().any(|b| matches!(b, b'%' | b'!' | b'@'))
    }

    /// True when the mailbox is all ASCII (needs no SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        self.local.is_ascii() && self.domain.as_str().is_ascii()
    }
}

impl fmt::Display for Mailbox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain.as_str())
    }
}

impl<'a> Path<'a> {
    /// True when the path is all ASCII (needs no SMTPUTF8).
    pub fn is_ascii(&self) -> bool {
        match self {
            Path::Null | Path::Postmaster => true,
            Path::LocalPart(local) => local.is_ascii(),
            Path::Mailbox { mailbox, .. } => mailbox.is_ascii(),
        }
    }

    /// The mailbox, if the path has one.
    pub fn mailbox(&self) -> Option<&Mailbox<'a>> {
        match self {
            Path::Mailbox { mailbox, .. } => Some(mailbox),
            Path::Null | Path::Postmaster | Path::LocalPart(_) => None,
        }
    }
}

/// Parses `<path>` at the start of `s` (after `FROM:` / `TO:` and optional
/// spaces were removed). Returns the path and the rest of `s` (the ESMTP
/// parameters, leading spaces not removed). `utf8` allows non-ASCII.
pub fn parse_path(s: &str, utf8: bool) -> Result<(Path<'_>, &str), AddressError> {
    let bytes = s.as_bytes();
    if bytes.first() != Some(&b'<') {
        return Err(AddressError::Syntax);
    }
    if bytes.get(1) == Some(&b'>') {
        return Ok((Path::Null, &s[2..]));
    }
    let ends = |next: Option<&u8>| next == Some(&b'>');
    // Only in brackets: bare, `root SIZE=1` could be a typo as well.
    if let Some(end) = bare_local_part(s, 1, utf8, ends)? {
        return Ok((Path::LocalPart(&s[1..end]), &s[end + 1..]));
    }
    let (path, end) = path_inside(s, 1, utf8, ends)?;
    Ok((path, &s[end + 1..]))
}

/// Parses a path written without its angle brackets at the start of `s`,
/// as in `MAIL FROM: user@example.com SIZE=10`: old devices and scripts
/// send it, and Postfix takes it by default (`strict_rfc821_envelopes =
/// no`). The path ends at a space or at the end of `s`; it is checked
/// exactly as `<path>` is (source routes, quoted local parts and relay
/// tricks included), and there is no bare null path. Returns the path and
/// the rest of `s`, as [`parse_path`] does.
pub fn parse_unbracketed_path(s: &str, utf8: bool) -> Result<(Path<'_>, &str), AddressError> {
    let (path, end) = path_inside(s, 0, utf8, |next| matches!(next, None | Some(&b' ')))?;
    Ok((path, &s[end..]))
}

/// `Postmaster` or `[A-d-l ":"] Mailbox` from `pos`, which `ends` must
/// accept the byte after (`>`, or a space or nothing when unbracketed);
/// returns the path and the index of that byte.
fn path_inside(
    s: &str,
    pos: usize,
    utf8: bool,
    ends: impl Fn(Option<&u8>) -> bool,
) -> Result<(Path<'_>, usize), AddressError> {
    let bytes = s.as_bytes();
    const POSTMASTER: &str = "postmaster";
    // Compared as bytes: `s` may hold UTF-8 where a char boundary is not.
    let postmaster_end = pos + POSTMASTER.len();
    if bytes
        .get(pos..postmaster_end)
        .is_some_and(|b| b.eq_ignore_ascii_case(POSTMASTER.as_bytes()))
        && ends(bytes.get(postmaster_end))
    {
        return Ok((Path::Postmaster, postmaster_end));
    }
    let mut pos = pos;
    // A-d-l ":" — the source route, e.g. `@a,@b:`.
    let source_route = bytes.get(pos) == Some(&b'@');
    if source_route {
        loop {
            pos += 1; // the '@'
            let (_, end) = domain(s, pos)?;
            pos = end;
            match bytes.get(pos) {
                Some(b',') if bytes.get(pos + 1) == Some(&b'@') => pos += 1,
                Some(b':') => {
                    pos += 1;
                    break;
                }
                _ => return Err(AddressError::Syntax),
            }
        }
    }
    let (mailbox, end) = mailbox(s, pos)?;
    if !ends(bytes.get(end)) {
        return Err(AddressError::Syntax);
    }
    if !utf8 && !s[..end].is_ascii() {
        return Err(AddressError::NeedsUtf8);
    }
    Ok((
        Path::Mailbox {
            mailbox,
            source_route,
        },
        end,
    ))
}

/// The end of a dot-string local part at `pos` that `ends` accepts with
/// no `@domain` after it, if that is what is there.
fn bare_local_part(
    s: &str,
    pos: usize,
    utf8: bool,
    ends: impl Fn(Option<&u8>) -> bool,
) -> Result<Option<usize>, AddressError> {
    let bytes = s.as_bytes();
    let Ok(end) = dot_string(bytes, pos) else {
        return Ok(None);
    };
    // `<Postmaster>` is a path of its own.
    if !ends(bytes.get(end)) || s[pos..end].eq_ignore_ascii_case("postmaster") {
        return Ok(None);
    }
    if end - pos > MAX_LOCAL_PART {
        return Err(AddressError::TooLong);
    }
    if !utf8 && !s[..end].is_ascii() {
        return Err(AddressError::NeedsUtf8);
    }
    Ok(Some(end))
}

/// Parses a bare mailbox `local@domain` (no angle brackets), as found in
/// SASL identities, the users file and `--local-domains` checks.
pub fn parse_mailbox(s: &str, utf8: bool) -> Result<Mailbox<'_>, AddressError> {
    let (mailbox, end) = mailbox(s, 0)?;
    if end != s.len() {
        return Err(AddressError::Syntax);
    }
    if !utf8 && !s.is_ascii() {
        return Err(AddressError::NeedsUtf8);
    }
    Ok(mailbox)
}

/// The form local users and aliases are looked up and compared by: the
/// whole address lowercased. Domains are case-insensitive (RFC 5321 §2.4);
/// local parts of our own mailboxes match without regard to case too, as
/// in Postfix and Dovecot, so `Alice@` and `alice@` are one mailbox.
pub fn lookup_key(address: &str) -> String {
    address.to_lowercase()
}

/// `Local-part "@" ( Domain / address-literal )` starting at `pos`;
/// returns the mailbox and the index after it.
fn mailbox(s: &str, pos: usize) -> Result<(Mailbox<'_>, usize), AddressError> {
    let bytes = s.as_bytes();
    let local_end = if bytes.get(pos) == Some(&b'"') {
        quoted_string(bytes, pos)?
    } else {
        dot_string(bytes, pos)?
    };
    if local_end - pos > MAX_LOCAL_PART {
        return Err(AddressError::TooLong);
    }
    if bytes.get(local_end) != Some(&b'@') {
        return Err(AddressError::Syntax);
    }
    let (domain, end) = if bytes.get(local_end + 1) == Some(&b'[') {
        address_literal(s, local_end + 1)?
    } else {
        domain(s, local_end + 1)?
    };
    Ok((
        Mailbox {
            local: &s[pos..local_end],
            domain,
        },
        end,
    ))
}

/// RFC 5322 atext, plus any non-ASCII byte (RFC 6531 §3.3 UTF8-non-ascii;
/// `s` is a `&str`, so such bytes always form whole characters).
fn is_atext(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b) || b >= 0x80
}

/// `Dot-string = Atom *("." Atom)`; returns the index after it.
fn dot_string(bytes: &[u8], pos: usize) -> Result<usize, AddressError> {
    let mut i = pos;
    loop {
        let start = i;
        while i < bytes.len() && is_atext(bytes[i]) {
            i += 1;
        }
        if i == start {
            // Empty atom: leading, trailing or doubled dot.
            return Err(AddressError::Syntax);
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
        } else {
            return Ok(i);
        }
    }
}

/// `Quoted-string` (RFC 5321 §4.1.2) starting at the opening quote;
/// returns the index after the closing quote.
fn quoted_string(bytes: &[u8], pos: usize) -> Result<usize, AddressError> {
    let mut i = pos + 1;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'"' => return Ok(i + 1),
            // quoted-pairSMTP = %d92 %d32-126
            b'\\' => match bytes.get(i + 1) {
                Some(32..=126) => i += 2,
                _ => return Err(AddressError::Syntax),
            },
            // qtextSMTP = %d32-33 / %d35-91 / %d93-126, and UTF-8.
            32..=126 | 0x80.. => i += 1,
            _ => return Err(AddressError::Syntax),
        }
    }
    Err(AddressError::Syntax)
}

/// `Domain = sub-domain *("." sub-domain)`, each a letter-digit-hyphen
/// label (or a U-label); returns the domain and the index after it.
fn domain(s: &str, pos: usize) -> Result<(Domain<'_>, usize), AddressError> {
    let bytes = s.as_bytes();
    let mut i = pos;
    loop {
        let start = i;
        while i < bytes.len()
            && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-' || bytes[i] >= 0x80)
        {
            i += 1;
        }
        let label = &bytes[start..i];
        if label.is_empty() || label[0] == b'-' || label[label.len() - 1] == b'-' {
            // Empty label (a trailing or doubled dot) or a hyphen at an edge.
            return Err(AddressError::Syntax);
        }
        if label.len() > MAX_LABEL {
            return Err(AddressError::TooLong);
        }
        if bytes.get(i) == Some(&b'.') {
            i += 1;
        } else {
            break;
        }
    }
    if i - pos > MAX_DOMAIN {
        return Err(AddressError::TooLong);
    }
    Ok((Domain::Name(&s[pos..i]), i))
}

/// `address-literal` starting at `[`: an IPv4 address or `IPv6:` and an
/// IPv6 address (RFC 5321 §4.1.3). General literals need a registered tag,
/// and IPv6 is the only one.
fn address_literal(s: &str, pos: usize) -> Result<(Domain<'_>, usize), AddressError> {
    let close = s[pos..].find(']').ok_or(AddressError::Syntax)? + pos;
    let inner = &s[pos + 1..close];
    let valid = match inner.get(..5) {
        Some(tag) if tag.eq_ignore_ascii_case("IPv6:") => inner[5..].parse::<Ipv6Addr>().is_ok(),
        _ => inner.parse::<Ipv4Addr>().is_ok(),
    };
    if !valid {
        return Err(AddressError::Syntax);
    }
    if close + 1 - pos > MAX_DOMAIN {
        return Err(AddressError::TooLong);
    }
    Ok((Domain::Literal(&s[pos..=close]), close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mb<'a>(local: &'a str, domain: &'a str) -> Path<'a> {
        let domain = if domain.starts_with('[') {
            Domain::Literal(domain)
        } else {
            Domain::Name(domain)
        };
        Path::Mailbox {
            mailbox: Mailbox { local, domain },
            source_route: false,
        }
    }

    fn routed<'a>(local: &'a str, domain: &'a str) -> Path<'a> {
        match mb(local, domain) {
            Path::Mailbox { mailbox, .. } => Path::Mailbox {
                mailbox,
                source_route: true,
            },
            other => other,
        }
    }

    #[test]
    fn parses_paths() {
        let cases: &[(&str, Path, &str)] = &[
            ("<>", Path::Null, ""),
            ("<> SIZE=10", Path::Null, " SIZE=10"),
            ("<Postmaster>", Path::Postmaster, ""),
            ("<POSTMASTER> X", Path::Postmaster, " X"),
            (
                "<postmaster@example.com>",
                mb("postmaster", "example.com"),
                "",
            ),
            ("<a@b>", mb("a", "b"), ""),
            (
                "<john.doe+tag@mail.example.org> BODY=8BITMIME",
                mb("john.doe+tag", "mail.example.org"),
                " BODY=8BITMIME",
            ),
            (
                "<a-b_c!#$%&'*/=?^`{|}~@x-1.y2>",
                mb("a-b_c!#$%&'*/=?^`{|}~", "x-1.y2"),
                "",
            ),
            (
                "<\"john doe\"@example.com>",
                mb("\"john doe\"", "example.com"),
                "",
            ),
            (
                "<\"a\\\"b\"@example.com>",
                mb("\"a\\\"b\"", "example.com"),
                "",
            ),
            ("<\"a>b\"@example.com>x", mb("\"a>b\"", "example.com"), "x"),
            ("<a@[192.0.2.1]>", mb("a", "[192.0.2.1]"), ""),
            ("<a@[IPv6:2001:db8::1]>", mb("a", "[IPv6:2001:db8::1]"), ""),
            (
                "<a@[ipv6:::ffff:192.0.2.1]>",
                mb("a", "[ipv6:::ffff:192.0.2.1]"),
                "",
            ),
            ("<@a,@b.c:user@d>", routed("user", "d"), ""),
            ("<@relay:user@other>", routed("user", "other"), ""),
            ("<user%other@ours>", mb("user%other", "ours"), ""),
            // cron's `root`: a bare local part.
            ("<root>", Path::LocalPart("root"), ""),
            ("<www-data> SIZE=1", Path::LocalPart("www-data"), " SIZE=1"),
            ("<first.last>", Path::LocalPart("first.last"), ""),
        ];
        for (input, path, rest) in cases {
            assert_eq!(parse_path(input, false), Ok((*path, *rest)), "{input}");
        }
    }

    #[test]
    fn unbracketed_paths_are_checked_as_bracketed_ones() {
        // (without brackets, the same path with them, the rest)
        let cases: &[(&str, &str, &str)] = &[
            ("a@b", "<a@b>", ""),
            ("Postmaster", "<Postmaster>", ""),
            ("postmaster SIZE=1", "<postmaster>", " SIZE=1"),
            ("postmaster@b", "<postmaster@b>", ""),
            (
                "john.doe+tag@mail.example.org BODY=8BITMIME",
                "<john.doe+tag@mail.example.org>",
                " BODY=8BITMIME",
            ),
            ("\"john doe\"@example.com", "<\"john doe\"@example.com>", ""),
            ("a@[IPv6:2001:db8::1] X", "<a@[IPv6:2001:db8::1]>", " X"),
            ("@a,@b.c:user@d", "<@a,@b.c:user@d>", ""),
            ("user%other@ours", "<user%other@ours>", ""),
            ("user!other@ours", "<user!other@ours>", ""),
            ("\"user@other\"@ours", "<\"user@other\"@ours>", ""),
        ];
        for (bare, bracketed, rest) in cases {
            let (path, _) = parse_path(bracketed, false).expect(bracketed);
            assert_eq!(
                parse_unbracketed_path(bare, false),
                Ok((path, *rest)),
                "{bare}"
            );
        }
        // The relay tricks are still seen for what they are.
        for bare in ["user%other@ours", "user!other@ours", "\"user@other\"@ours"] {
            let (path, _) = parse_unbracketed_path(bare, false).unwrap();
            assert!(path.mailbox().unwrap().has_relay_trick(), "{bare}");
        }
        let bad: &[(&str, AddressError)] = &[
            ("", AddressError::Syntax),
            ("a", AddressError::Syntax),
            ("a@", AddressError::Syntax),
            ("a@b>", AddressError::Syntax),
            ("<a@b", AddressError::Syntax),
            ("a@b<", AddressError::Syntax),
            ("a@b,c", AddressError::Syntax),
            ("a b@c", AddressError::Syntax),
            ("a@b\tX", AddressError::Syntax),
            ("a@b.", AddressError::Syntax),
            ("@a:", AddressError::Syntax),
            ("postmaster@", AddressError::Syntax),
            ("j\u{f6}rg@b", AddressError::NeedsUtf8),
        ];
        for (bare, error) in bad {
            assert_eq!(
                parse_unbracketed_path(bare, false).map(|p| p.0),
                Err(*error),
                "{bare}"
            );
        }
        let long = format!("{}@b", "x".repeat(65));
        assert_eq!(
            parse_unbracketed_path(&long, true).map(|p| p.0),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn rejects_bad_paths() {
        let cases: &[(&str, AddressError)] = &[
            ("", AddressError::Syntax),
            ("a@b", AddressError::Syntax),
            ("<a@b", AddressError::Syntax),
            ("<@b>", AddressError::Syntax),
            ("<a@>", AddressError::Syntax),
            ("<a@b.>", AddressError::Syntax),
            ("<a@.b>", AddressError::Syntax),
            ("<a@b..c>", AddressError::Syntax),
            ("<a@-b>", AddressError::Syntax),
            ("<a@b->", AddressError::Syntax),
            ("<a@b_c>", AddressError::Syntax),
            ("<.a@b>", AddressError::Syntax),
            ("<a.@b>", AddressError::Syntax),
            ("<a..b@c>", AddressError::Syntax),
            ("<a b@c>", AddressError::Syntax),
            ("<a@b c>", AddressError::Syntax),
            ("<a@b@c>", AddressError::Syntax),
            ("<\"a@b>", AddressError::Syntax),
            ("<\"a\tb\"@c>", AddressError::Syntax),
            ("<a@[1.2.3]>", AddressError::Syntax),
            ("<a@[1.2.3.256]>", AddressError::Syntax),
            ("<a@[IPv6:1.2.3.4]>", AddressError::Syntax),
            ("<a@[foo:bar]>", AddressError::Syntax),
            ("<a@[1.2.3.4>", AddressError::Syntax),
            ("<@a:>", AddressError::Syntax),
            ("<@a,b:c@d>", AddressError::Syntax),
            ("<@a c@d>", AddressError::Syntax),
            ("<@:a@b>", AddressError::Syntax),
            ("<Postmaster@>", AddressError::Syntax),
        ];
        for (input, error) in cases {
            assert_eq!(parse_path(input, true).map(|p| p.0), Err(*error), "{input}");
        }
        // `<>>`: the null path followed by junk the command parser rejects.
        assert_eq!(parse_path("<>>", false), Ok((Path::Null, ">")));
    }

    #[test]
    fn length_limits() {
        let local64 = "l".repeat(64);
        let ok = format!("<{local64}@example.com>");
        assert!(parse_path(&ok, false).is_ok());
        let long = format!("<{local64}x@example.com>");
        assert_eq!(parse_path(&long, false), Err(AddressError::TooLong));
        let label = "d".repeat(63);
        let domain = [label.as_str(); 4].join("."); // 255 octets
        assert!(parse_path(&format!("<a@{domain}>"), false).is_ok());
        assert_eq!(
            parse_path(&format!("<a@{domain}x>"), false),
            Err(AddressError::TooLong)
        );
        assert_eq!(
            parse_path(&format!("<a@x.{domain}>"), false),
            Err(AddressError::TooLong)
        );
        assert_eq!(
            parse_path(&format!("<a@{label}x.com>"), false),
            Err(AddressError::TooLong)
        );
    }

    #[test]
    fn utf8_needs_smtputf8() {
        for input in [
            "<jörg@example.com>",
            "<a@bücher.example>",
            "<\"jö rg\"@example.com>",
            "<用户@例子.中国>",
        ] {
            assert_eq!(
                parse_path(input, false),
                Err(AddressError::NeedsUtf8),
                "{input}"
            );
            let (path, rest) = parse_path(input, true).unwrap();
            assert!(!path.is_ascii(), "{input}");
            assert_eq!(rest, "");
        }
        assert!(parse_path("<a@b>", false).unwrap().0.is_ascii());
        // Non-ASCII in the parameters is not the path's business.
        assert_eq!(
            parse_path("<a@b> ENVID=ü", false),
            Ok((mb("a", "b"), " ENVID=ü"))
        );
        // Never in an address literal.
        assert_eq!(parse_path("<a@[1.2.3.ü]>", true), Err(AddressError::Syntax));
    }

    #[test]
    fn relay_tricks() {
        let cases: &[(&str, bool, bool)] = &[
            // (path, has_relay_trick, source_route)
            ("<user%other@ours>", true, false),
            ("<user!other@ours>", true, false),
            ("<\"user@other\"@ours>", true, false),
            ("<@relay:user@other>", false, true),
            ("<@a,@b:user%c@d>", true, true),
            ("<user@ours>", false, false),
            ("<\"user other\"@ours>", false, false),
        ];
        for (input, trick, route) in cases {
            match parse_path(input, false) {
                Ok((
                    Path::Mailbox {
                        mailbox,
                        source_route,
                    },
                    "",
                )) => {
                    assert_eq!(mailbox.has_relay_trick(), *trick, "{input}");
                    assert_eq!(source_route, *route, "{input}");
                }
                other => panic!("{input}: {other:?}"),
            }
        }
    }

    #[test]
    fn bare_mailboxes() {
        let m = parse_mailbox("User@Example.com", false).unwrap();
        assert_eq!(
            m,
            Mailbox {
                local: "User",
                domain: Domain::Name("Example.com")
            }
        );
        assert_eq!(m.to_string(), "User@Example.com");
        assert_eq!(
            parse_mailbox("a@[192.0.2.1]", false)
                .unwrap()
                .domain
                .as_str(),
            "[192.0.2.1]"
        );
        for bad in ["", "a", "a@", "@b", "<a@b>", "a@b ", " a@b", "a@b."] {
            assert_eq!(parse_mailbox(bad, true), Err(AddressError::Syntax), "{bad}");
        }
        assert_eq!(parse_mailbox("ü@b", false), Err(AddressError::NeedsUtf8));
        assert!(parse_mailbox("ü@b", true).is_ok());
    }
}
