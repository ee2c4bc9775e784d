//! The replies to command lines the parser refused: the one place where a
//! [`CommandError`] gets its code and text. 555 5.5.4 for parameters this
//! server does not take (RFC 5321 §4.1.1.11), 501 5.1.7 / 5.1.3 for a bad
//! sender / recipient address (RFC 3463), else 501 5.5.4. Every one counts
//! as a bad command.

use super::Response;
use crate::proto::command::{CommandError, ErrorKind, Extension, Param, Verb};
use crate::proto::reply::Reply;

/// The reply to a line the parser refused.
pub(super) fn reply(error: CommandError) -> Response {
    let CommandError { verb, kind } = error;
    // RFC 3463: X.1.7 is a bad sender address, X.1.3 a bad recipient.
    let address = if verb == Verb::Mail { 7 } else { 3 };
    let reply = match kind {
        ErrorKind::NotUtf8 => Reply::new(501, (5, 5, 4), not_utf8(verb)),
        ErrorKind::Syntax => Reply::new(501, (5, 5, 4), syntax(verb)),
        ErrorKind::BadAddress => Reply::new(501, (5, 1, address), bad_address(verb)),
        ErrorKind::AddressTooLong => Reply::new(
            501,
            (5, 1, address),
            "The address is too long (at most 64 octets before the @ and 255 after it)",
        ),
        ErrorKind::ParameterSyntax => Reply::new(
            501,
            (5, 5, 4),
            "Parameters are KEYWORD or KEYWORD=VALUE, separated by spaces",
        ),
        ErrorKind::BadValue(param) => Reply::new(501, (5, 5, 4), bad_value(param)),
        ErrorKind::Duplicate(param) => Reply::new(
            501,
            (5, 5, 4),
            format!("{} given more than once", param.keyword()),
        ),
        ErrorKind::UnknownParameter => Reply::new(555, (5, 5, 4), unknown_parameter(verb)),
        ErrorKind::Unsupported(extension) => Reply::new(555, (5, 5, 4), unsupported(extension)),
        ErrorKind::TooLarge => Reply::new(501, (5, 5, 4), "BDAT size is too large"),
    };
    Response::bad(reply)
}

fn not_utf8(verb: Verb) -> &'static str {
    match verb {
        Verb::Mail | Verb::Rcpt => "Addresses and parameters must be ASCII or UTF-8",
        _ => "The command must be ASCII text",
    }
}

/// How each verb is written (RFC 5321 §4.1.1, RFC 3030, RFC 3207, RFC 4954).
fn syntax(verb: Verb) -> &'static str {
    match verb {
        Verb::Ehlo => "Syntax: EHLO hostname",
        Verb::Helo => "Syntax: HELO hostname",
        Verb::Mail => "Syntax: MAIL FROM:<address> [parameters]",
        Verb::Rcpt => "Syntax: RCPT TO:<address> [parameters]",
        Verb::Data => "Syntax: DATA (without arguments)",
        Verb::Bdat => "Syntax: BDAT size [LAST]",
        Verb::Rset => "Syntax: RSET (without arguments)",
        Verb::Noop => "Syntax: NOOP [text]",
        Verb::Quit => "Syntax: QUIT (without arguments)",
        Verb::Vrfy => "Syntax: VRFY address",
        Verb::Expn => "Syntax: EXPN list",
        Verb::Help => "Syntax: HELP [topic]",
        Verb::StartTls => "Syntax: STARTTLS (without arguments)",
        Verb::Auth => "Syntax: AUTH mechanism [initial-response]",
    }
}

fn bad_address(verb: Verb) -> &'static str {
    match verb {
        Verb::Mail => "The sender address is not a valid address: use MAIL FROM:<user@example.com>",
        _ => "The recipient address is not a valid address: use RCPT TO:<user@example.com>",
    }
}

fn bad_value(param: Param) -> &'static str {
    match param {
        Param::Size => "SIZE must be the message size in octets, e.g. SIZE=12345",
        Param::Body => "BODY must be 7BIT, 8BITMIME or BINARYMIME",
        Param::SmtpUtf8 => "SMTPUTF8 takes no value",
        Param::Ret => "RET must be FULL or HDRS",
        Param::Envid => "ENVID must be xtext of at most 100 characters",
        Param::Auth => "AUTH must be <> or an xtext-encoded address",
        Param::Notify => {
            "NOTIFY must be NEVER, or a comma-separated list of SUCCESS, FAILURE and DELAY"
        }
        Param::Orcpt => "ORCPT must be address-type;address, e.g. ORCPT=rfc822;user@example.com",
    }
}

fn unknown_parameter(verb: Verb) -> &'static str {
    match verb {
        Verb::Mail => {
            "MAIL FROM parameter not supported: this server knows SIZE, BODY, SMTPUTF8, RET, ENVID and AUTH"
        }
        _ => "RCPT TO parameter not supported: this server knows NOTIFY and ORCPT",
    }
}

fn unsupported(extension: Extension) -> &'static str {
    match extension {
        Extension::RequireTls => "REQUIRETLS is not supported by this server",
        Extension::MtPriority => "MT-PRIORITY is not supported by this server",
        Extension::DeliverBy => "BY (deliver-by) is not supported by this server",
    }
}
