//! The command parser on one line: never panics, ignores trailing spaces,
//! and treats the verb case-insensitively; a parsed path is what the
//! address parser says it is, and means the same without its angle
//! brackets; an error names the line's verb, and AUTH alone may have a
//! line longer than 512 octets.
//!
//! The first byte picks the mode: even, the rest is the raw line; odd, every
//! byte of the rest indexes a table of SMTP tokens, so the fuzzer builds
//! commands with parameters and addresses instead of random noise.
#![no_main]

use libfuzzer_sys::fuzz_target;
use outpost::proto::address::{self, Path};
use outpost::proto::command::{self, Command, Verb, MAX_AUTH_LINE};
use outpost::proto::line::MAX_COMMAND_LINE;

#[path = "common/mod.rs"]
mod common;

/// The SMTP command alphabet.
const TOKENS: &[&[u8]] = &[
    b"MAIL FROM:<",
    b"MAIL FROM: <",
    b"RCPT TO:<",
    b"RCPT TO: <",
    b"mail from:",
    b"rcpt to:",
    b"MAIL FROM: ",
    b"RCPT TO: ",
    b"alice@example.com",
    b"EHLO ",
    b"HELO ",
    b"DATA",
    b"BDAT ",
    b" LAST",
    b"RSET",
    b"NOOP",
    b"QUIT",
    b"VRFY ",
    b"EXPN ",
    b"HELP",
    b"STARTTLS",
    b"AUTH ",
    b"PLAIN",
    b"LOGIN",
    b"XOAUTH2",
    b"@",
    b">",
    b"<",
    b"<>",
    b"<Postmaster>",
    b" ",
    b"  ",
    b"\t",
    b" SIZE=",
    b" BODY=",
    b"7BIT",
    b"8BITMIME",
    b"BINARYMIME",
    b" SMTPUTF8",
    b" RET=",
    b"FULL",
    b"HDRS",
    b" ENVID=",
    b" AUTH=",
    b" NOTIFY=",
    b"NEVER",
    b"SUCCESS",
    b"FAILURE",
    b"DELAY",
    b",",
    b" ORCPT=",
    b"rfc822;",
    b"+2B",
    b" REQUIRETLS",
    b" MT-PRIORITY=3",
    b" BY=120;R",
    b"=",
    b"\"",
    b"\\",
    b"%",
    b"!",
    b".",
    b":",
    b"[",
    b"]",
    b"IPv6:",
    b"::1",
    b"192.0.2.1",
    b"example.com",
    b"a",
    b"b",
    b"alice",
    b"-",
    b"_",
    b"0",
    b"1",
    b"9",
    b"18446744073709551615",
    b"99999999999999999999",
    b"\xc3\xa9",
    b"\xe4\xbe\x8b",
    b"\xff",
    b"\x00",
    b"\r",
    b"*",
];

fn check(line: &[u8]) {
    let parsed = command::parse(line);

    // Trailing spaces never change the meaning (RFC 5321 §4.1.1 tolerance).
    let mut padded = line.to_vec();
    padded.extend_from_slice(b"   ");
    assert_eq!(command::parse(&padded), parsed, "trailing spaces: {line:?}");

    // Verbs are case-insensitive (RFC 5321 §2.4).
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let mut lower = line.to_vec();
    lower[..verb_end].make_ascii_lowercase();
    assert_eq!(command::parse(&lower), parsed, "verb case: {line:?}");

    let verb = parsed.as_ref().map_or_else(|e| Some(e.verb), Command::verb);
    // The verb is the line's first word, trailing blanks aside.
    let word = &line[..verb_end];
    let word = &word[..word
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1)];
    if let Some(verb) = verb {
        assert!(
            word.eq_ignore_ascii_case(name(verb).as_bytes()),
            "{verb:?} in {line:?}"
        );
    }
    // RFC 4954 §4: AUTH lines, and only they, may be longer than 512 octets.
    let limit = command::line_limit(line);
    let auth = line[..verb_end].eq_ignore_ascii_case(b"AUTH");
    assert_eq!(
        limit,
        if auth {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        },
        "{line:?}"
    );

    let Ok(parsed) = &parsed else {
        return;
    };
    match parsed {
        Command::Mail { from: path, .. } | Command::Rcpt { to: path, .. } => {
            check_path(path);
            check_unbracketed(line, parsed, path);
        }
        Command::Ehlo(name) | Command::Helo(name) => {
            assert!(!name.is_empty() && !name.contains(' '), "{name:?}")
        }
        Command::Bdat { .. }
        | Command::Data
        | Command::Rset
        | Command::Noop
        | Command::Quit
        | Command::Vrfy
        | Command::Expn
        | Command::Help
        | Command::StartTls
        | Command::Auth { .. }
        | Command::Unknown => {}
    }
}

/// How a verb is written.
fn name(verb: Verb) -> &'static str {
    match verb {
        Verb::Ehlo => "EHLO",
        Verb::Helo => "HELO",
        Verb::Mail => "MAIL",
        Verb::Rcpt => "RCPT",
        Verb::Data => "DATA",
        Verb::Bdat => "BDAT",
        Verb::Rset => "RSET",
        Verb::Noop => "NOOP",
        Verb::Quit => "QUIT",
        Verb::Vrfy => "VRFY",
        Verb::Expn => "EXPN",
        Verb::Help => "HELP",
        Verb::StartTls => "STARTTLS",
        Verb::Auth => "AUTH",
    }
}

/// A path from a command re-parses to itself when written back.
fn check_path(path: &Path<'_>) {
    let Some(mailbox) = path.mailbox() else {
        return;
    };
    let text = format!("<{mailbox}>");
    let (again, rest) = address::parse_path(&text, true).expect("a parsed path re-parses");
    assert_eq!(rest, "");
    assert_eq!(again.mailbox(), Some(mailbox), "{text}");
}

/// The line with its `<mailbox>` written without angle brackets (as old
/// clients send it) parses to the same command.
fn check_unbracketed(line: &[u8], parsed: &Command<'_>, path: &Path<'_>) {
    let Path::Mailbox {
        mailbox,
        source_route: false,
    } = path
    else {
        return;
    };
    let bracketed = format!("<{mailbox}>");
    let Ok(text) = std::str::from_utf8(line) else {
        return;
    };
    // Only when the line wrote the path in brackets, right after the colon
    // (a parameter such as ORCPT= may hold the same text).
    let Some(colon) = text.find(':') else {
        return;
    };
    let after = text[colon + 1..].trim_start_matches(' ');
    let Some(params) = after.strip_prefix(bracketed.as_str()) else {
        return;
    };
    let start = text.len() - after.len();
    let bare = format!("{}{mailbox}{params}", &text[..start]);
    assert_eq!(
        command::parse(bare.as_bytes()).as_ref(),
        Ok(parsed),
        "{text:?} without brackets"
    );
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let mode = common::byte(&mut data);
    if mode % 2 == 0 {
        check(data);
    } else {
        check(&common::detokenize(TOKENS, data));
    }
});
