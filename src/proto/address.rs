//! RFC 5321 paths and mailboxes (§4.1.2), the null path `<>`, UTF-8 local
//! parts and domains under SMTPUTF8 (RFC 6531), and the relay tricks parsed
//! for what they are so policy can refuse them.
//!
//! CONTRACT (implementation pending).

/// The domain part of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain<'a> {
    /// A host name, e.g. `example.com` (may be UTF-8 under SMTPUTF8).
    Name(&'a str),
    /// An address literal including brackets, e.g. `[192.0.2.1]`, `[IPv6:…]`.
    Literal(&'a str),
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
    /// An ordinary mailbox. `source_route` is true when a source route
    /// `@a,@b:` preceded it (RFC 5321 §4.1.2; accepted and ignored per
    /// Appendix C, but policy refuses relaying with it).
    Mailbox {
        mailbox: Mailbox<'a>,
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

impl<'a> Mailbox<'a> {
    /// True when the local part hides another routing step: `%`, `!`, or an
    /// `@` inside a quoted local part. Such mailboxes never open a relay.
    pub fn has_relay_trick(&self) -> bool {
        todo!()
    }
}

/// Parses `<path>` at the start of `s` (after `FROM:` / `TO:` and optional
/// spaces were removed). Returns the path and the rest of `s` (the ESMTP
/// parameters, leading spaces not removed). `utf8` allows non-ASCII.
pub fn parse_path(s: &str, utf8: bool) -> Result<(Path<'_>, &str), AddressError> {
    let _ = (s, utf8);
    todo!()
}

/// Parses a bare mailbox `local@domain` (no angle brackets), as found in
/// SASL identities, the users file and `--local-domains` checks.
pub fn parse_mailbox(s: &str, utf8: bool) -> Result<Mailbox<'_>, AddressError> {
    let _ = (s, utf8);
    todo!()
}
