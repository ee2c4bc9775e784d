//! The path and mailbox parsers, with SMTPUTF8 on and off: never panic;
//! what parses without SMTPUTF8 is ASCII and parses the same with it; a
//! parsed mailbox written back as `<local@domain>` (or behind a source
//! route) parses to the same mailbox; limits and relay-trick flags hold. A
//! path without angle brackets parses exactly when it does with them, to
//! the same path and the same rest.
//!
//! The first byte picks the mode: even, the rest is raw text; odd, each
//! byte of the rest indexes a table of address tokens (quotes, escapes,
//! `%`, `!`, literals, UTF-8), which reaches the relay-trick forms quickly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::address::{
    self, AddressError, Domain, Mailbox, Path, MAX_DOMAIN, MAX_LOCAL_PART,
};

#[path = "common/mod.rs"]
mod common;

/// The address alphabet.
const TOKENS: &[&[u8]] = &[
    b"<",
    b">",
    b"<>",
    b"<Postmaster>",
    b"@",
    b"a",
    b"b",
    b"alice",
    b"example",
    b".",
    b"com",
    b"\"",
    b"\\",
    b"\\\"",
    b" ",
    b"%",
    b"!",
    b",",
    b":",
    b"@a,@b:",
    b"[",
    b"]",
    b"IPv6:",
    b"::1",
    b"192.0.2.1",
    b"256.1.1.1",
    b"-",
    b"_",
    b"+",
    b"=",
    b"0",
    b"9",
    b"\xc3\xa9",
    b"\xe4\xbe\x8b",
    b"\xf0\x9f\x93\xa7",
    b"\x00",
    b"\t",
    b"postmaster",
    b" SIZE=10",
];

fn check_mailbox_shape(mailbox: &Mailbox<'_>) {
    assert!(mailbox.local.len() <= MAX_LOCAL_PART, "{mailbox}");
    assert!(!mailbox.local.is_empty());
    match mailbox.domain {
        Domain::Name(name) => {
            assert!(!name.is_empty() && name.len() <= MAX_DOMAIN);
            assert!(!name.starts_with('.') && !name.ends_with('.'), "{name}");
        }
        Domain::Literal(literal) => {
            assert!(
                literal.starts_with('[') && literal.ends_with(']'),
                "{literal}"
            );
            assert!(literal.len() <= MAX_DOMAIN);
        }
    }
    // A dot-atom cannot hold `@`; only a quoted local part can.
    if mailbox.local.contains('@') {
        assert!(mailbox.local.starts_with('"'), "{mailbox}");
    }
    assert_eq!(
        mailbox.has_relay_trick(),
        mailbox.local.contains(['%', '!', '@'])
    );
    assert_eq!(mailbox.is_ascii(), mailbox.to_string().is_ascii());

    // Written back, it parses to itself, bare, in brackets and behind a
    // source route (RFC 5321 §4.1.2 A-d-l).
    let text = mailbox.to_string();
    assert_eq!(address::parse_mailbox(&text, true), Ok(*mailbox), "{text}");
    let bracketed = format!("<{text}>");
    assert_eq!(
        address::parse_path(&bracketed, true),
        Ok((
            Path::Mailbox {
                mailbox: *mailbox,
                source_route: false
            },
            ""
        )),
        "{bracketed}"
    );
    let routed = format!("<@relay.example,@b.example:{text}> SIZE=1");
    assert_eq!(
        address::parse_path(&routed, true),
        Ok((
            Path::Mailbox {
                mailbox: *mailbox,
                source_route: true
            },
            " SIZE=1"
        )),
        "{routed}"
    );
}

fn check_path(s: &str) {
    let with = address::parse_path(s, true);
    let without = address::parse_path(s, false);
    match with {
        Ok((path, rest)) => {
            assert!(s.ends_with(rest) && rest.len() < s.len());
            let used = &s[..s.len() - rest.len()];
            assert!(used.starts_with('<') && used.ends_with('>'), "{used}");
            if used.is_ascii() {
                assert_eq!(without, with, "{s:?}");
                assert!(path.is_ascii());
            } else {
                assert_eq!(without, Err(AddressError::NeedsUtf8), "{s:?}");
            }
            if let Some(mailbox) = path.mailbox() {
                check_mailbox_shape(mailbox);
            }
        }
        Err(error) => {
            assert_ne!(error, AddressError::NeedsUtf8, "NeedsUtf8 with SMTPUTF8 on");
            assert_eq!(without, Err(error), "{s:?}");
        }
    }
}

/// `s` as a path without angle brackets: the same as `<path>` followed by
/// the same rest, both ways round.
fn check_unbracketed_path(s: &str) {
    let with = address::parse_unbracketed_path(s, true);
    let without = address::parse_unbracketed_path(s, false);
    match with {
        Ok((path, rest)) => {
            assert!(path != Path::Null, "{s:?}");
            assert!(rest.is_empty() || rest.starts_with(' '), "{s:?}");
            let used = &s[..s.len() - rest.len()];
            let bracketed = format!("<{used}>{rest}");
            assert_eq!(
                address::parse_path(&bracketed, true),
                Ok((path, rest)),
                "{s:?}"
            );
            if used.is_ascii() {
                assert_eq!(without, with, "{s:?}");
            } else {
                assert_eq!(without, Err(AddressError::NeedsUtf8), "{s:?}");
            }
            if let Some(mailbox) = path.mailbox() {
                check_mailbox_shape(mailbox);
            }
        }
        Err(error) => {
            assert_ne!(error, AddressError::NeedsUtf8, "NeedsUtf8 with SMTPUTF8 on");
            assert_eq!(without, Err(error), "{s:?}");
        }
    }
    // A bracketed path other than `<>`, followed by nothing or a space,
    // parses the same without its brackets.
    if let Ok((path, rest)) = address::parse_path(s, true) {
        let inside = &s[1..s.len() - rest.len() - 1];
        // A bare local part is taken in brackets only.
        let bare_local = matches!(path, Path::LocalPart(_));
        if path != Path::Null && !bare_local && (rest.is_empty() || rest.starts_with(' ')) {
            let bare = format!("{inside}{rest}");
            assert_eq!(
                address::parse_unbracketed_path(&bare, true),
                Ok((path, rest)),
                "{s:?}"
            );
        }
    }
}

fn check_bare_mailbox(s: &str) {
    let with = address::parse_mailbox(s, true);
    let without = address::parse_mailbox(s, false);
    match with {
        Ok(mailbox) => {
            assert_eq!(mailbox.to_string(), s);
            if s.is_ascii() {
                assert_eq!(without, with);
            } else {
                assert_eq!(without, Err(AddressError::NeedsUtf8));
            }
            check_mailbox_shape(&mailbox);
        }
        Err(error) => {
            assert_ne!(error, AddressError::NeedsUtf8);
            assert_eq!(without, Err(error));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mode = common::byte(&mut data);
    let bytes = if mode % 2 == 0 {
        data.to_vec()
    } else {
        common::detokenize(TOKENS, data)
    };
    let text = String::from_utf8_lossy(&bytes);
    check_path(&text);
    check_path(&format!("<{text}"));
    check_unbracketed_path(&text);
    check_unbracketed_path(&format!("<{text}"));
    check_bare_mailbox(&text);
});
