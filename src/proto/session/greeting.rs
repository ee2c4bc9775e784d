//! The greeting commands: EHLO and HELO (the name the client gives and the
//! extensions offered to it) and STARTTLS (RFC 3207), with the reset that
//! follows the handshake.

use std::borrow::Cow;

use super::{out_of_sequence, Action, Mode, Response, Session};
use crate::proto::command::MAX_AUTH_LINE;
use crate::proto::line::LineSplitter;
use crate::proto::reply::Reply;

/// RFC 5321 §4.1.2 / §4.5.3.1.2: a domain is at most 255 octets; that is as
/// much of a client's EHLO argument as we echo back.
const MAX_ECHOED_HELO: usize = 255;

impl Session {
    /// The TLS handshake finished with `version` (e.g. `TLSv1.3`); the
    /// session forgets EHLO and any transaction (RFC 3207 §4.2).
    pub fn tls_started(&mut self, version: &str) {
        self.tls = Some(version.to_string());
        self.helo = None;
        self.esmtp = false;
        self.transaction = None;
        self.mode = Mode::Command;
        self.splitter = LineSplitter::new(MAX_AUTH_LINE);
        self.pending = None;
    }

    /// The EHLO reply lines: greeting line, then the extensions we offer.
    fn ehlo_lines(&self, name: &str) -> Vec<Cow<'static, str>> {
        let mut lines: Vec<Cow<'static, str>> = vec![
            self.hello_line(name).into(),
            "PIPELINING".into(),
            format!("SIZE {}", self.config.max_message_size).into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ];
        if self.tls.is_none() {
            if self.config.tls_available {
                lines.push("STARTTLS".into());
            }
        } else if self.auth_enabled() {
            // RFC 4954 §4 and RFC 8314: no passwords over plaintext, so AUTH
            // is only advertised once the connection is encrypted.
            lines.push("AUTH PLAIN LOGIN".into());
            if self.config.auth_equals_line {
                lines.push("AUTH=PLAIN LOGIN".into());
            }
        }
        lines
    }

    /// `host Hello name [ip]`: the first line of the EHLO and HELO replies.
    fn hello_line(&self, name: &str) -> String {
        format!(
            "{} Hello {} [{}]",
            self.config.hostname,
            echo_safe(name),
            self.client.ip
        )
    }

    /// `EHLO name`: resets any transaction; the reply lists the extensions
    /// (without enhanced codes, RFC 2034 §3).
    pub(super) fn on_ehlo(&mut self, name: &str) -> Response {
        self.helo = Some(name.to_string());
        self.esmtp = true;
        self.transaction = None;
        Response::ok(Reply::plain(250, self.ehlo_lines(name)))
    }

    /// `HELO name`: plain SMTP; resets any transaction.
    pub(super) fn on_helo(&mut self, name: &str) -> Response {
        self.helo = Some(name.to_string());
        self.esmtp = false;
        self.transaction = None;
        Response::ok(Reply::plain(250, vec![self.hello_line(name).into()]))
    }

    /// `STARTTLS` (RFC 3207).
    pub(super) fn on_starttls(&mut self) -> Response {
        if self.tls.is_some() {
            return out_of_sequence("TLS is already active");
        }
        if self.auth_user.is_some() {
            return out_of_sequence("STARTTLS is not allowed after authentication");
        }
        if !self.config.tls_available {
            return Response::ok(Reply::new(454, (4, 7, 0), "TLS is not available"));
        }
        Response::act(
            Some(Reply::new(220, (2, 0, 0), "Ready to start TLS")),
            Action::StartTls,
        )
    }
}

/// The EHLO argument made safe to echo: printable characters only, at most
/// [`MAX_ECHOED_HELO`] octets, so our reply line stays under 512 octets.
fn echo_safe(name: &str) -> String {
    let mut echoed = String::new();
    for c in name.chars().filter(|c| !c.is_control()) {
        if echoed.len() + c.len_utf8() > MAX_ECHOED_HELO {
            break;
        }
        echoed.push(c);
    }
    echoed
}
