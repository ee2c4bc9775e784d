//! The outbound SMTP client as a pure state machine: server reply bytes in
//! (any chunking), command bytes out, and at the end one [`Outcome`] per
//! recipient plus how the session ended.
//!
//! It owns the dialogue of RFC 5321 §3–4 with the extensions we use:
//! EHLO/HELO fallback, STARTTLS (RFC 3207, performed by the caller on
//! [`ClientAction::StartTls`]), AUTH PLAIN/LOGIN (RFC 4954), SIZE (RFC 1870),
//! 8BITMIME (RFC 6152), SMTPUTF8 (RFC 6531), DSN (RFC 3461) and PIPELINING
//! (RFC 2920). The socket, TLS and timers live in `delivery/`; this module
//! imports nothing with I/O, like the rest of `proto/`.

use std::time::Duration;

use base64::Engine as _;

use super::esmtp::{self, Notify, Orcpt, Ret};
use super::reply::{Reply, ReplyReader};
use super::sasl::Credentials;

/// RFC 5321 §4.5.3.2.1/.2/.3/.4/.6: waiting for the greeting, MAIL, RCPT
/// replies and the final reply after the end of data.
pub const TIMEOUT_GREETING: Duration = Duration::from_secs(5 * 60);
/// RFC 5321 §4.5.3.2.4: waiting for the 354 to DATA.
pub const TIMEOUT_DATA_INIT: Duration = Duration::from_secs(2 * 60);
/// RFC 5321 §4.5.3.2.5: each write of message data.
pub const TIMEOUT_DATA_BLOCK: Duration = Duration::from_secs(3 * 60);
/// RFC 5321 §4.5.3.2.6: waiting for the reply to the final dot.
pub const TIMEOUT_DATA_END: Duration = Duration::from_secs(10 * 60);
/// RFC 5321 §4.5.3.2.2/.3 (and our choice for EHLO, STARTTLS, AUTH, QUIT).
pub const TIMEOUT_COMMAND: Duration = Duration::from_secs(5 * 60);

/// Whether to use STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsPolicy {
    /// Never send STARTTLS.
    Never,
    /// Use STARTTLS when the peer offers it, go on in plaintext otherwise.
    Opportunistic,
    /// Fail the session (transiently) unless TLS is in use.
    Required,
}

/// One recipient to deliver to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientParams {
    /// The address without angle brackets.
    pub address: String,
    /// `NOTIFY=` to pass on (RFC 3461 §4.1), sent only to a DSN peer.
    pub notify: Option<Notify>,
    /// `ORCPT=` as received, sent only to a DSN peer and only if it is
    /// xtext.
    pub orcpt: Option<Orcpt>,
}

/// Everything one delivery attempt needs.
#[derive(Debug, Clone)]
pub struct ClientParams {
    /// Our name for EHLO/HELO (`--hostname`).
    pub hostname: String,
    /// The reverse-path without angle brackets; empty for `<>`.
    pub sender: String,
    /// The recipients, all for this peer; outcomes come back in this order.
    pub recipients: Vec<RecipientParams>,
    /// What the client must know about the message; the caller holds its
    /// bytes (CRLF line ends, not yet dot-stuffed) and sends them on
    /// [`ClientAction::SendBody`].
    pub body: BodyFacts,
    /// The sender declared `BODY=8BITMIME` (8-bit content is also detected).
    pub eight_bit_mime: bool,
    /// The message needs SMTPUTF8 (declared by the sender).
    pub smtputf8: bool,
    /// `RET=` to pass on to a DSN peer.
    pub ret: Option<Ret>,
    /// `ENVID=` as received (xtext), passed on to a DSN peer.
    pub envid: Option<String>,
    /// STARTTLS policy.
    pub tls: TlsPolicy,
    /// The connection is already encrypted (implicit TLS to a smarthost).
    pub tls_active: bool,
    /// AUTH credentials; `None` for MX delivery.
    pub credentials: Option<Credentials>,
}

/// What the peer announced in its EHLO reply (RFC 5321 §4.1.1.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extensions {
    /// STARTTLS (RFC 3207).
    pub starttls: bool,
    /// PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// SIZE (RFC 1870); `Some(0)` means announced without a limit.
    pub size: Option<u64>,
    /// 8BITMIME (RFC 6152).
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531).
    pub smtputf8: bool,
    /// AUTH mechanisms, upper case (RFC 4954).
    pub auth: Vec<String>,
    /// DSN (RFC 3461).
    pub dsn: bool,
    /// CHUNKING (RFC 3030).
    pub chunking: bool,
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub enhanced_status_codes: bool,
}

impl Extensions {
    /// The extensions in an EHLO reply: its keyword lines, all but the
    /// first (which names the server).
    pub fn from_reply(reply: &Reply) -> Extensions {
        Extensions::parse(reply.lines.iter().skip(1).map(|line| &**line))
    }

    /// Parses the keyword lines of an EHLO reply (all lines but the first).
    pub fn parse<'a>(lines: impl IntoIterator<Item = &'a str>) -> Extensions {
        let mut ext = Extensions::default();
        for line in lines {
            let mut words = line.split_ascii_whitespace();
            let Some(keyword) = words.next() else {
                continue;
            };
            match keyword.to_ascii_uppercase().as_str() {
                "STARTTLS" => ext.starttls = true,
                "PIPELINING" => ext.pipelining = true,
                "SIZE" => {
                    ext.size = Some(words.next().and_then(|n| n.parse().ok()).unwrap_or(0));
                }
                "8BITMIME" => ext.eight_bit_mime = true,
                "SMTPUTF8" => ext.smtputf8 = true,
                "DSN" => ext.dsn = true,
                "CHUNKING" => ext.chunking = true,
                "ENHANCEDSTATUSCODES" => ext.enhanced_status_codes = true,
                "AUTH" => {
                    for mech in words {
                        let mech = mech.to_ascii_uppercase();
                        if !ext.auth.contains(&mech) {
                            ext.auth.push(mech);
                        }
                    }
                }
                _ => {}
            }
        }
        ext
    }
}

/// The final result for one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer took responsibility (2xx after the final dot).
    Delivered(Reply),
    /// Try again later (4xx, or a connection-level problem).
    Transient(Reply),
    /// Give up and report to the sender (5xx, or refused by us).
    Permanent(Reply),
}

impl Outcome {
    /// Classifies a peer's reply by its first digit (RFC 5321 §4.2.1); a
    /// reply that is neither 2xx nor 5xx where a final answer was due is
    /// treated as transient.
    pub fn from_reply(reply: Reply) -> Outcome {
        match reply.code / 100 {
            2 => Outcome::Delivered(reply),
            5 => Outcome::Permanent(reply),
            _ => Outcome::Transient(reply),
        }
    }

    /// The reply behind this outcome.
    pub fn reply(&self) -> &Reply {
        match self {
            Outcome::Delivered(r) | Outcome::Transient(r) | Outcome::Permanent(r) => r,
        }
    }
}

/// How the session ended, for the log and for choosing the next MX host
/// (RFC 5321 §5.1: a connection-level failure moves on to the next host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// The transaction ran; the outcomes are the peer's answers.
    Completed,
    /// The message was refused before MAIL by a local check (8-bit, SMTPUTF8,
    /// size, bad address, bare CR/LF): trying another host would not help.
    Refused,
    /// The greeting was not 220.
    Greeting(Reply),
    /// EHLO and HELO were refused.
    Hello(Reply),
    /// TLS was required but the peer does not offer or refused STARTTLS.
    TlsUnavailable,
    /// Authentication failed or no usable mechanism was offered.
    Auth(Reply),
    /// The peer sent something that is not an SMTP reply.
    Protocol(&'static str),
    /// The connection broke or timed out (reported by the caller).
    ConnectionLost,
    /// The peer greeted or answered EHLO/HELO with our own host name: the
    /// connection came back to this server, and every recipient failed
    /// for good (a mail loop; Postfix does the same).
    LoopsBack,
}

impl SessionEnd {
    /// True when trying the next MX host may help.
    pub fn try_next_host(&self) -> bool {
        !matches!(
            self,
            SessionEnd::Completed | SessionEnd::Refused | SessionEnd::LoopsBack
        )
    }
}

/// What the client must know about a message it sends: its size, and
/// what may keep it from going out as it is. Gathered from the message in
/// pieces (it is never needed whole).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BodyFacts {
    /// Octets in all.
    pub length: u64,
    /// Some octet is over 127.
    pub eight_bit: bool,
    /// A CR without its LF or an LF without its CR (RFC 5321 §2.3.8).
    pub bare_newline: bool,
    /// The last octet so far is a CR (its LF may start the next piece).
    ends_in_cr: bool,
}

impl BodyFacts {
    /// The facts of a message given whole.
    pub fn of(message: &[u8]) -> BodyFacts {
        let mut facts = BodyFacts::default();
        facts.add(message);
        facts.finish()
    }

    /// Takes in the next piece of the message.
    pub fn add(&mut self, piece: &[u8]) {
        self.length += piece.len() as u64;
        self.eight_bit |= piece.iter().any(|&b| b >= 0x80);
        if self.bare_newline {
            return;
        }
        let mut ends_in_cr = self.ends_in_cr;
        let mut next = 0;
        for at in memchr::memchr2_iter(b'\r', b'\n', piece) {
            let lf = piece[at] == b'\n';
            // Right after a CR, only its LF may come; anywhere else an LF
            // is bare, and so is a CR that had something else after it.
            let after_cr = ends_in_cr && at == next;
            let bare = if after_cr { !lf } else { lf || ends_in_cr };
            if bare {
                self.bare_newline = true;
                return;
            }
            ends_in_cr = !lf;
            next = at + 1;
        }
        if ends_in_cr && next != piece.len() {
            self.bare_newline = true;
        }
        self.ends_in_cr = ends_in_cr && next == piece.len();
    }

    /// The facts once the last piece is in (a final CR has no LF).
    pub fn finish(mut self) -> BodyFacts {
        self.bare_newline |= self.ends_in_cr;
        self.ends_in_cr = false;
        self
    }
}

/// What the caller must do besides sending the output bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAction {
    /// Send the output, then run the TLS handshake and call
    /// [`Client::tls_started`]. Any bytes read before the handshake are
    /// dropped (RFC 3207 §4.2: nothing from the plaintext phase survives).
    StartTls,
    /// Send the output, then the message dot-stuffed and ended with
    /// `.\r\n` (`proto::dot::Stuffer`, in pieces as it is written), then
    /// call [`Client::body_sent`]. The body is never copied into the
    /// output.
    SendBody,
    /// Send the output (usually QUIT) and close, or keep the connection
    /// for another transaction when [`Report::held`]; [`Client::finish`] has the
    /// results.
    Done,
}

/// The result of a finished session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// One outcome per recipient, in the order of `ClientParams::recipients`.
    pub outcomes: Vec<Outcome>,
    /// How the session ended.
    pub end: SessionEnd,
    /// The peer's extensions (after STARTTLS, the second EHLO's).
    pub extensions: Extensions,
    /// TLS was in use when the message was sent.
    pub tls: bool,
    /// The session ended after a transaction that delivered to every
    /// recipient, without QUIT ([`Client::keeping_session`]): the
    /// connection may carry the next message.
    pub held: bool,
    /// The code of the peer's first reply to this client (its greeting on
    /// a new connection, the reply to MAIL on a resumed one); `None` when
    /// it never answered. A resumed session that broke unanswered, or whose
    /// MAIL got 421, had been closed by the peer while idle.
    pub first_code: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Greeting,
    /// A reused connection, waiting for [`Client::begin`] to send MAIL.
    Ready,
    Ehlo,
    Helo,
    StartTls,
    Handshake,
    AuthPlain,
    AuthLoginUser,
    AuthLoginPassword,
    Mail,
    Rcpt(usize),
    Data,
    Body,
    Done,
}

/// The outbound session: one per transaction, on a new connection
/// ([`Client::new`]) or a kept one ([`Client::resume`]).
#[derive(Debug)]
pub struct Client {
    params: ClientParams,
    state: State,
    replies: ReplyReader,
    extensions: Extensions,
    tls_active: bool,
    authenticated: bool,
    pipelined: bool,
    /// The MAIL reply when it failed; in a pipelined batch the RCPT and DATA
    /// replies that follow are then consumed but ignored.
    mail_failure: Option<Reply>,
    accepted: Vec<usize>,
    outcomes: Vec<Option<Outcome>>,
    end: Option<SessionEnd>,
    /// End a fully delivered transaction without QUIT.
    keep: bool,
    held: bool,
    first_code: Option<u16>,
}

impl Client {
    /// A client for one connection; the server speaks first.
    pub fn new(params: ClientParams) -> Client {
        let outcomes = vec![None; params.recipients.len()];
        let tls_active = params.tls_active;
        Client {
            params,
            state: State::Greeting,
            replies: ReplyReader::new(),
            extensions: Extensions::default(),
            tls_active,
            authenticated: false,
            pipelined: false,
            mail_failure: None,
            accepted: Vec::new(),
            outcomes,
            end: None,
            keep: false,
            held: false,
            first_code: None,
        }
    }

    /// A client for a connection that already carried a transaction which
    /// ended with the peer's 2xx to the final dot (RFC 5321 §4.1.1.4: the
    /// peer has cleared its state): [`Client::begin`] sends MAIL at once.
    /// `extensions` and `tls_active` are what that session negotiated; with
    /// credentials, it had authenticated.
    pub fn resume(params: ClientParams, extensions: Extensions, tls_active: bool) -> Client {
        let authenticated = params.credentials.is_some();
        let mut client = Client::new(params);
        client.state = State::Ready;
        client.extensions = extensions;
        client.tls_active = tls_active;
        client.authenticated = authenticated;
        client
    }

    /// After a transaction that delivered to every recipient, end with
    /// [`ClientAction::Done`] but without QUIT, so that the caller can keep
    /// the connection for the next message ([`Report::held`]).
    pub fn keeping_session(mut self) -> Client {
        self.keep = true;
        self
    }

    /// Starts the session: nothing for a new connection (the server speaks
    /// first), MAIL (and with PIPELINING the rest) for a resumed one. An
    /// action as from [`Client::receive`].
    pub fn begin(&mut self, out: &mut Vec<u8>) -> Option<ClientAction> {
        if self.state != State::Ready {
            return None;
        }
        self.start_transaction(out)
    }

    /// How long to wait for the next reply (RFC 5321 §4.5.3.2).
    pub fn reply_timeout(&self) -> Duration {
        match self.state {
            State::Greeting => TIMEOUT_GREETING,
            State::Data => TIMEOUT_DATA_INIT,
            State::Body => TIMEOUT_DATA_END,
            _ => TIMEOUT_COMMAND,
        }
    }

    /// True once [`ClientAction::Done`] was returned.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Feeds bytes read from the server, appending commands to send to
    /// `out`. Returns an action when the caller must do more than write.
    pub fn receive(&mut self, input: &[u8], out: &mut Vec<u8>) -> Option<ClientAction> {
        if matches!(self.state, State::Done | State::Handshake | State::Ready) {
            return None;
        }
        self.replies.push(input);
        loop {
            let action = match self.replies.next_reply() {
                Ok(None) => return None,
                Ok(Some(reply)) => self.on_reply(reply, out),
                Err(error) => Some(self.broken(error.kind.reason(), out)),
            };
            match action {
                None => {}
                // Replies that came with the 354 are read once the body is out.
                Some(ClientAction::SendBody) => return action,
                // The rest of the input belongs to a phase that is over:
                // after STARTTLS it must not be read as if it came over TLS
                // (RFC 3207 §4.2, CVE-2011-0411), after the end nothing is
                // read any more.
                Some(_) => {
                    self.replies.clear();
                    return action;
                }
            }
        }
    }

    /// The caller sent the body after [`ClientAction::SendBody`]: reads
    /// any reply bytes that arrived with the 354, like
    /// [`Client::receive`].
    pub fn body_sent(&mut self, out: &mut Vec<u8>) -> Option<ClientAction> {
        self.receive(&[], out)
    }

    /// The caller finished the TLS handshake: EHLO again (RFC 3207 §4.2).
    pub fn tls_started(&mut self, out: &mut Vec<u8>) {
        if self.state != State::Handshake {
            return;
        }
        self.tls_active = true;
        self.extensions = Extensions::default();
        self.replies.clear();
        self.send_ehlo(out);
    }

    /// The connection broke or timed out: every recipient without an
    /// outcome gets a transient one.
    pub fn connection_lost(&mut self, what: &str) {
        if self.state == State::Done {
            return;
        }
        let reply = Reply::new(421, (4, 4, 2), format!("Connection lost: {what}"));
        self.finish_all(Outcome::Transient(reply), SessionEnd::ConnectionLost);
    }

    /// The results. Recipients still without an outcome (the caller stopped
    /// early) count as transient failures.
    pub fn finish(mut self) -> Report {
        if self.state != State::Done {
            self.connection_lost("the session ended early");
        }
        let fallback = Reply::new(451, (4, 3, 0), "No answer for this recipient");
        Report {
            outcomes: self
                .outcomes
                .into_iter()
                .map(|o| o.unwrap_or_else(|| Outcome::Transient(fallback.clone())))
                .collect(),
            end: self.end.unwrap_or(SessionEnd::Completed),
            extensions: self.extensions,
            tls: self.tls_active,
            held: self.held,
            first_code: self.first_code,
        }
    }

    fn on_reply(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<ClientAction> {
        self.first_code.get_or_insert(reply.code);
        match self.state {
            State::Greeting => {
                if reply.code != 220 {
                    return Some(self.fail_session(
                        reply.clone(),
                        SessionEnd::Greeting(reply),
                        out,
                    ));
                }
                if self.names_us(&reply) {
                    return Some(self.loops_back(out));
                }
                self.send_ehlo(out);
                None
            }
            State::Ehlo | State::Helo if reply.code == 250 && self.names_us(&reply) => {
                Some(self.loops_back(out))
            }
            State::Ehlo => match reply.code {
                250 => {
                    self.extensions = Extensions::from_reply(&reply);
                    self.after_hello(out)
                }
                500..=599 => {
                    // RFC 5321 §3.2: an old server that does not know EHLO.
                    push_line(out, &format!("HELO {}", self.params.hostname));
                    self.state = State::Helo;
                    None
                }
                _ => Some(self.fail_session(reply.clone(), SessionEnd::Hello(reply), out)),
            },
            State::Helo => {
                if reply.code != 250 {
                    return Some(self.fail_session(reply.clone(), SessionEnd::Hello(reply), out));
                }
                self.extensions = Extensions::default();
                self.after_hello(out)
            }
            State::StartTls => {
                if reply.code == 220 {
                    self.state = State::Handshake;
                    return Some(ClientAction::StartTls);
                }
                if self.params.tls == TlsPolicy::Required {
                    return Some(self.tls_unavailable(out));
                }
                // Opportunistic: the session is unchanged after a refused
                // STARTTLS (RFC 3207 §4), so go on in plaintext.
                self.after_tls_choice(out)
            }
            State::Handshake | State::Done | State::Ready => None,
            State::AuthPlain | State::AuthLoginPassword => match reply.code {
                235 => {
                    self.authenticated = true;
                    self.start_transaction(out)
                }
                334 if self.state == State::AuthPlain => {
                    // The server wanted the response after an empty challenge.
                    let response = self.plain_response();
                    push_line(out, &response);
                    None
                }
                _ => Some(self.auth_failed(reply, out)),
            },
            State::AuthLoginUser => {
                if reply.code != 334 {
                    return Some(self.auth_failed(reply, out));
                }
                let password = self.params.credentials.as_ref().map(|c| c.password.clone());
                push_line(out, &b64(password.unwrap_or_default().as_bytes()));
                self.state = State::AuthLoginPassword;
                None
            }
            State::Mail => self.on_mail_reply(reply, out),
            State::Rcpt(i) => self.on_rcpt_reply(i, reply, out),
            State::Data => self.on_data_reply(reply, out),
            State::Body => {
                if self.mail_failure.is_some() {
                    // The empty message after a pipelined DATA that was
                    // accepted although MAIL failed: the recipients get the
                    // MAIL reply, not this one (RFC 2920 §3.1).
                    return Some(self.end_after_mail_failure(out));
                }
                if !self.accepted.is_empty() {
                    let outcome = Outcome::from_reply(reply);
                    for &i in &self.accepted {
                        self.outcomes[i] = Some(outcome.clone());
                    }
                }
                let all_delivered = self
                    .outcomes
                    .iter()
                    .all(|o| matches!(o, Some(Outcome::Delivered(_))));
                if self.keep && all_delivered {
                    // Only a session that took everything is kept: a peer
                    // that deferred or refused something may be
                    // throttling this connection.
                    self.end.get_or_insert(SessionEnd::Completed);
                    self.held = true;
                    self.state = State::Done;
                    return Some(ClientAction::Done);
                }
                Some(self.quit(SessionEnd::Completed, out))
            }
        }
    }

    fn send_ehlo(&mut self, out: &mut Vec<u8>) {
        push_line(out, &format!("EHLO {}", self.params.hostname));
        self.state = State::Ehlo;
    }

    fn after_hello(&mut self, out: &mut Vec<u8>) -> Option<ClientAction> {
        if !self.tls_active && self.params.tls != TlsPolicy::Never && self.extensions.starttls {
            push_line(out, "STARTTLS");
            self.state = State::StartTls;
            return None;
        }
        self.after_tls_choice(out)
    }

    fn after_tls_choice(&mut self, out: &mut Vec<u8>) -> Option<ClientAction> {
        if !self.tls_active && self.params.tls == TlsPolicy::Required {
            return Some(self.tls_unavailable(out));
        }
        let Some(credentials) = self.params.credentials.clone() else {
            return self.start_transaction(out);
        };
        if self.authenticated {
            return self.start_transaction(out);
        }
        if self.extensions.auth.iter().any(|m| m == "PLAIN") {
            // RFC 4954 §4: the initial response saves a round trip.
            let response = self.plain_response();
            push_line(out, &format!("AUTH PLAIN {response}"));
            self.state = State::AuthPlain;
        } else if self.extensions.auth.iter().any(|m| m == "LOGIN") {
            push_line(
                out,
                &format!("AUTH LOGIN {}", b64(credentials.username.as_bytes())),
            );
            self.state = State::AuthLoginUser;
        } else {
            let reply = Reply::new(
                530,
                (4, 7, 0),
                "The server does not offer AUTH PLAIN or LOGIN",
            );
            return Some(self.auth_failed(reply, out));
        }
        None
    }

    fn plain_response(&self) -> String {
        let (user, password) = match &self.params.credentials {
            Some(c) => (c.username.as_str(), c.password.as_str()),
            None => ("", ""),
        };
        // RFC 4616 §2: authzid NUL authcid NUL passwd, empty authzid.
        b64(format!("\0{user}\0{password}").as_bytes())
    }

    /// Local checks, then MAIL (and with PIPELINING, all RCPTs and DATA).
    fn start_transaction(&mut self, out: &mut Vec<u8>) -> Option<ClientAction> {
        if let Err(reply) = self.check_message() {
            self.finish_all(Outcome::Permanent(reply), SessionEnd::Refused);
            return Some(self.quit_only(out));
        }
        for (i, rcpt) in self.params.recipients.iter().enumerate() {
            if !address_is_safe(&rcpt.address) || rcpt.address.is_empty() {
                let reply = Reply::new(553, (5, 1, 3), "The recipient address is not valid");
                self.outcomes[i] = Some(Outcome::Permanent(reply));
            }
        }
        let mut mail = format!("MAIL FROM:<{}>", self.params.sender);
        let ext = &self.extensions;
        if ext.size.is_some() {
            mail.push_str(&format!(" SIZE={}", self.params.body.length));
        }
        if self.needs_eight_bit() && ext.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if self.params.smtputf8 && ext.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        if ext.dsn {
            if let Some(ret) = self.params.ret {
                mail.push_str(&format!(" RET={ret}"));
            }
            // An ENVID that is not xtext is dropped, never sent: it could
            // split the command line.
            let envid = self.params.envid.as_deref();
            if let Some(envid) = envid.filter(|e| esmtp::is_envid(e)) {
                mail.push_str(&format!(" ENVID={envid}"));
            }
        }
        push_line(out, &mail);
        self.state = State::Mail;
        self.pipelined = self.extensions.pipelining;
        if self.pipelined {
            // RFC 2920 §3.1: MAIL, every RCPT and DATA in one write; the
            // replies are then read in order.
            for i in 0..self.params.recipients.len() {
                self.push_rcpt(i, out);
            }
            push_line(out, "DATA");
        }
        None
    }

    /// Refusals that no other host could change: the message must not go
    /// out in a form the peer did not agree to.
    fn check_message(&self) -> Result<(), Reply> {
        if !address_is_safe(&self.params.sender) {
            return Err(Reply::new(
                553,
                (5, 1, 7),
                "The sender address is not valid",
            ));
        }
        if self.params.body.bare_newline {
            return Err(Reply::new(
                554,
                (5, 6, 0),
                "The message contains a bare CR or LF and cannot be sent as SMTP data",
            ));
        }
        if self.needs_eight_bit() && !self.extensions.eight_bit_mime {
            // RFC 6152 §3: 8-bit data may only go to a server that announces
            // 8BITMIME; we do not downgrade.
            return Err(Reply::new(
                554,
                (5, 6, 3),
                "The message contains 8-bit data and the receiving server does not accept it \
                 (no 8BITMIME)",
            ));
        }
        if self.params.smtputf8 && !self.extensions.smtputf8 {
            // RFC 6531 §3.2: no SMTPUTF8 message to a server without it.
            return Err(Reply::new(
                554,
                (5, 6, 7),
                "The message has internationalised addresses and the receiving server does not \
                 accept them (no SMTPUTF8)",
            ));
        }
        if let Some(limit) = self.extensions.size.filter(|&n| n > 0) {
            if self.params.body.length > limit {
                // RFC 1870 §6: a fixed limit below the size is a permanent failure.
                return Err(Reply::new(
                    552,
                    (5, 3, 4),
                    format!(
                        "The message is {} bytes; the receiving server accepts at most {limit}",
                        self.params.body.length
                    ),
                ));
            }
        }
        Ok(())
    }

    fn needs_eight_bit(&self) -> bool {
        self.params.eight_bit_mime || self.params.body.eight_bit
    }

    fn push_rcpt(&self, i: usize, out: &mut Vec<u8>) {
        let rcpt = &self.params.recipients[i];
        if self.outcomes[i].is_some() {
            return;
        }
        let mut line = format!("RCPT TO:<{}>", rcpt.address);
        if self.extensions.dsn {
            if let Some(notify) = rcpt.notify {
                line.push_str(&format!(" NOTIFY={notify}"));
            }
            // RFC 6533 §3: a UTF-8 ORCPT would need downgrading for a peer;
            // it is left out instead.
            if let Some(orcpt) = rcpt.orcpt.as_ref().filter(|o| o.is_xtext()) {
                line.push_str(&format!(" ORCPT={orcpt}"));
            }
        }
        push_line(out, &line);
    }

    /// The next recipient at or after `i` that is sent (not refused locally).
    fn next_rcpt(&self, i: usize) -> Option<usize> {
        (i..self.params.recipients.len()).find(|&j| self.outcomes[j].is_none())
    }

    fn on_mail_reply(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<ClientAction> {
        if reply.code / 100 != 2 {
            self.mail_failure = Some(reply);
        }
        match (self.next_rcpt(0), self.pipelined) {
            (Some(i), true) => {
                self.state = State::Rcpt(i);
                None
            }
            (None, true) => {
                self.state = State::Data;
                None
            }
            (Some(i), false) if self.mail_failure.is_none() => {
                self.push_rcpt(i, out);
                self.state = State::Rcpt(i);
                None
            }
            _ => Some(self.end_after_mail_failure(out)),
        }
    }

    fn on_rcpt_reply(&mut self, i: usize, reply: Reply, out: &mut Vec<u8>) -> Option<ClientAction> {
        if self.mail_failure.is_none() {
            if reply.code / 100 == 2 {
                self.accepted.push(i);
            } else {
                self.outcomes[i] = Some(Outcome::from_reply(reply));
            }
        }
        let next = self.next_rcpt(i + 1);
        if self.pipelined {
            self.state = next.map_or(State::Data, State::Rcpt);
            return None;
        }
        match next {
            Some(j) => {
                self.push_rcpt(j, out);
                self.state = State::Rcpt(j);
                None
            }
            None if self.accepted.is_empty() => Some(self.quit(SessionEnd::Completed, out)),
            None => {
                push_line(out, "DATA");
                self.state = State::Data;
                None
            }
        }
    }

    fn on_data_reply(&mut self, reply: Reply, out: &mut Vec<u8>) -> Option<ClientAction> {
        if self.mail_failure.is_some() {
            if reply.code == 354 {
                // RFC 2920 §3.1: a DATA accepted without recipients is ended
                // with an empty message that the server will refuse.
                out.extend_from_slice(b".\r\n");
                self.state = State::Body;
                return None;
            }
            return Some(self.end_after_mail_failure(out));
        }
        if reply.code == 354 {
            self.state = State::Body;
            if self.accepted.is_empty() {
                out.extend_from_slice(b".\r\n");
                return None;
            }
            return Some(ClientAction::SendBody);
        }
        if reply.code / 100 == 2 {
            // RFC 5321 §4.3.2: DATA is answered with 354 or an error. A 2xx
            // before any body was sent cannot mean the message was taken.
            return Some(self.broken("the server answered DATA with 2xx instead of 354", out));
        }
        if !self.accepted.is_empty() {
            let outcome = Outcome::from_reply(reply);
            for &i in &self.accepted {
                self.outcomes[i] = Some(outcome.clone());
            }
        }
        Some(self.quit(SessionEnd::Completed, out))
    }

    fn end_after_mail_failure(&mut self, out: &mut Vec<u8>) -> ClientAction {
        let reply = self
            .mail_failure
            .clone()
            .unwrap_or_else(|| Reply::new(451, (4, 3, 0), "The sender was not accepted"));
        let outcome = Outcome::from_reply(reply);
        for slot in self.outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = Some(outcome.clone());
        }
        self.quit(SessionEnd::Completed, out)
    }

    fn fail_session(&mut self, reply: Reply, end: SessionEnd, out: &mut Vec<u8>) -> ClientAction {
        // A session-level refusal (even a 5xx greeting) is about this host,
        // not the message: the recipients stay queued and the next MX host
        // may be tried. The peer's reply is kept as it was for the log.
        self.finish_all(Outcome::Transient(reply), end);
        self.quit_only(out)
    }

    /// Whether a greeting or EHLO/HELO reply names the peer with our own
    /// host name (its first word, RFC 5321 §4.2).
    fn names_us(&self, reply: &Reply) -> bool {
        let peer = reply
            .lines
            .first()
            .and_then(|line| line.split_ascii_whitespace().next());
        peer.is_some_and(|name| {
            name.trim_end_matches('.')
                .eq_ignore_ascii_case(self.params.hostname.trim_end_matches('.'))
        })
    }

    /// The peer is this server: every recipient fails with
    /// [`loops_back_reply`].
    fn loops_back(&mut self, out: &mut Vec<u8>) -> ClientAction {
        for (slot, rcpt) in self.outcomes.iter_mut().zip(&self.params.recipients) {
            if slot.is_none() {
                *slot = Some(Outcome::Permanent(loops_back_reply(&rcpt.address)));
            }
        }
        self.quit(SessionEnd::LoopsBack, out)
    }

    fn tls_unavailable(&mut self, out: &mut Vec<u8>) -> ClientAction {
        let reply = Reply::new(
            454,
            (4, 7, 0),
            "TLS is required but the receiving server does not offer STARTTLS",
        );
        self.finish_all(Outcome::Transient(reply), SessionEnd::TlsUnavailable);
        self.quit_only(out)
    }

    fn auth_failed(&mut self, reply: Reply, out: &mut Vec<u8>) -> ClientAction {
        // A refused login is a configuration problem on our side: keep the
        // mail queued while the operator fixes it.
        let text = format!("Authentication failed: {}", reply.lines.join(" "));
        let transient = Reply::new(454, (4, 7, 0), text);
        self.finish_all(Outcome::Transient(transient), SessionEnd::Auth(reply));
        self.quit_only(out)
    }

    fn broken(&mut self, reason: &'static str, out: &mut Vec<u8>) -> ClientAction {
        let reply = Reply::new(451, (4, 5, 0), reason);
        self.finish_all(Outcome::Transient(reply), SessionEnd::Protocol(reason));
        self.quit_only(out)
    }

    fn finish_all(&mut self, outcome: Outcome, end: SessionEnd) {
        for slot in self.outcomes.iter_mut().filter(|o| o.is_none()) {
            *slot = Some(outcome.clone());
        }
        self.end.get_or_insert(end);
        self.state = State::Done;
    }

    fn quit(&mut self, end: SessionEnd, out: &mut Vec<u8>) -> ClientAction {
        self.end.get_or_insert(end);
        self.quit_only(out)
    }

    fn quit_only(&mut self, out: &mut Vec<u8>) -> ClientAction {
        // Like Postfix, we do not wait for the 221: every outcome is known.
        push_line(out, "QUIT");
        self.state = State::Done;
        ClientAction::Done
    }
}

/// `554 5.4.6 mail for DOMAIN loops back to myself` for a recipient whose
/// next hop is this server (Postfix's wording; RFC 3463 §3.5: routing loop).
pub fn loops_back_reply(address: &str) -> Reply {
    let domain = address
        .rsplit_once('@')
        .map_or(address, |(_, domain)| domain);
    Reply::new(
        554,
        (5, 4, 6),
        format!("mail for {domain} loops back to myself"),
    )
}

fn push_line(out: &mut Vec<u8>, line: &str) {
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An address goes between angle brackets on a command line: it must not
/// contain anything that ends the path or the line.
fn address_is_safe(address: &str) -> bool {
    address.len() <= 320
        && !address
            .bytes()
            .any(|b| b < 0x20 || b == 0x7f || b == b'<' || b == b'>' || b == b' ')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::reply::{Enhanced, MAX_REPLY_LINE};

    /// The message the tests send (its facts are in `params`).
    const BODY: &[u8] = b"Subject: hi\r\n\r\nhello\r\n";

    /// A CR not followed by LF, or an LF not preceded by CR, found the
    /// plain way.
    fn has_bare_newline(body: &[u8]) -> bool {
        body.iter().enumerate().any(|(i, &b)| {
            (b == b'\n' && (i == 0 || body[i - 1] != b'\r'))
                || (b == b'\r' && body.get(i + 1) != Some(&b'\n'))
        })
    }

    #[test]
    fn body_facts_from_pieces_are_those_of_the_whole() {
        let bodies: [&[u8]; 9] = [
            b"",
            b"a\r\nb\r\n",
            b"a\nb",
            b"a\rb\r\n",
            b"\r\r\n",
            b"ends in cr\r",
            b"\n",
            b"caf\xc3\xa9\r\n",
            b"\r\n\r\n.\r\n",
        ];
        for body in bodies {
            let whole = BodyFacts::of(body);
            assert_eq!(whole.length, body.len() as u64);
            assert_eq!(whole.bare_newline, has_bare_newline(body), "{body:?}");
            assert_eq!(whole.eight_bit, body.iter().any(|&b| b >= 0x80));
            for a in 0..=body.len() {
                for b in a..=body.len() {
                    let mut facts = BodyFacts::default();
                    for piece in [&body[..a], &body[a..b], &body[b..]] {
                        facts.add(piece);
                    }
                    assert_eq!(facts.finish(), whole, "{body:?} cut at {a} and {b}");
                }
            }
        }
    }

    fn params(rcpts: &[&str]) -> ClientParams {
        ClientParams {
            hostname: "out.example".into(),
            sender: "alice@example.org".into(),
            recipients: rcpts
                .iter()
                .map(|a| RecipientParams {
                    address: a.to_string(),
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            body: BodyFacts::of(BODY),
            eight_bit_mime: false,
            smtputf8: false,
            ret: None,
            envid: None,
            tls: TlsPolicy::Opportunistic,
            tls_active: false,
            credentials: None,
        }
    }

    /// Feeds the server's bytes in the given chunks; returns everything the
    /// client sent, the actions, and the report.
    fn run(p: ClientParams, chunks: &[&[u8]]) -> (Vec<u8>, Vec<ClientAction>, Report) {
        let mut client = Client::new(p);
        let mut out = Vec::new();
        let mut actions = Vec::new();
        for chunk in chunks {
            let mut action = client.receive(chunk, &mut out);
            // The caller's part: the body, then what came with the 354.
            while action == Some(ClientAction::SendBody) {
                crate::proto::dot::stuff(BODY, &mut out);
                action = client.body_sent(&mut out);
            }
            if let Some(a) = action {
                actions.push(a);
                if a == ClientAction::StartTls {
                    client.tls_started(&mut out);
                }
            }
        }
        (out, actions, client.finish())
    }

    /// Whole, byte by byte, and split at every index: identical results.
    fn run_all_splits(p: ClientParams, server: &[u8]) -> (Vec<u8>, Vec<ClientAction>, Report) {
        let whole = run(p.clone(), &[server]);
        let bytes: Vec<&[u8]> = server.chunks(1).collect();
        assert_eq!(run(p.clone(), &bytes), whole, "byte by byte");
        for i in 0..=server.len() {
            assert_eq!(
                run(p.clone(), &[&server[..i], &server[i..]]),
                whole,
                "split at {i}"
            );
        }
        whole
    }

    const NO_PIPELINING: &[u8] = b"220 mx.example ESMTP\r\n\
        250-mx.example hello\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n\
        250 2.1.0 Ok\r\n\
        250 2.1.5 Ok\r\n\
        550 5.1.1 No such user\r\n\
        354 Go ahead\r\n\
        250 2.0.0 Ok: queued as 123\r\n";

    /// Drives `client` (after [`Client::begin`]) through `server`'s bytes
    /// as one chunk; returns what it sent, its last action and the report.
    fn drive(mut client: Client, server: &[u8]) -> (String, Option<ClientAction>, Report) {
        let mut out = Vec::new();
        let mut action = client.begin(&mut out);
        if action.is_none() {
            action = client.receive(server, &mut out);
        }
        while action == Some(ClientAction::SendBody) {
            crate::proto::dot::stuff(BODY, &mut out);
            action = client.body_sent(&mut out);
        }
        (String::from_utf8(out).unwrap(), action, client.finish())
    }

    const PIPELINED_OK: &[u8] = b"220 mx.example ESMTP\r\n\
        250-mx.example hello\r\n250 PIPELINING\r\n\
        250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n250 2.0.0 Ok: queued\r\n";

    #[test]
    fn a_kept_session_ends_without_quit_only_when_everything_was_delivered() {
        let client = Client::new(params(&["bob@example.com"])).keeping_session();
        let (out, action, report) = drive(client, PIPELINED_OK);
        assert!(!out.contains("QUIT"), "{out}");
        assert_eq!(action, Some(ClientAction::Done));
        assert!(report.held);
        assert_eq!(report.first_code, Some(220));
        assert!(report.extensions.pipelining);

        // A refused recipient, or a 4xx to the final dot: QUIT as always.
        let refused = b"220 mx.example ESMTP\r\n250-mx.example hello\r\n250 PIPELINING\r\n\
            250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n450 4.2.0 Later\r\n354 Go ahead\r\n250 Ok\r\n";
        let client = Client::new(params(&["bob@example.com", "carol@example.com"]));
        let (out, _, report) = drive(client.keeping_session(), refused);
        assert!(out.ends_with("QUIT\r\n") && !report.held, "{out}");
        let deferred = b"220 mx.example ESMTP\r\n250-mx.example hello\r\n250 PIPELINING\r\n\
            250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n451 4.3.0 Try later\r\n";
        let client = Client::new(params(&["bob@example.com"])).keeping_session();
        let (out, _, report) = drive(client, deferred);
        assert!(out.ends_with("QUIT\r\n") && !report.held, "{out}");

        // Without keeping_session, the same delivery ends with QUIT.
        let (out, _, report) = drive(Client::new(params(&["bob@example.com"])), PIPELINED_OK);
        assert!(out.ends_with("QUIT\r\n") && !report.held, "{out}");
    }

    #[test]
    fn a_resumed_session_sends_mail_at_once_with_what_was_negotiated() {
        let extensions = Extensions::parse(["PIPELINING", "SIZE 1000"]);
        let client = Client::resume(params(&["bob@example.com"]), extensions, true);
        let replies = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 Go ahead\r\n250 2.0.0 Ok\r\n";
        let (out, action, report) = drive(client.keeping_session(), replies);
        assert_eq!(
            out,
            "MAIL FROM:<alice@example.org> SIZE=22\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\
             Subject: hi\r\n\r\nhello\r\n.\r\n"
        );
        assert_eq!(action, Some(ClientAction::Done));
        assert!(report.held && report.tls);
        assert!(matches!(report.outcomes[0], Outcome::Delivered(_)));

        // The peer closed it meanwhile: lost, and nothing was answered.
        let mut client = Client::resume(params(&["bob@example.com"]), Extensions::default(), false);
        let mut out = Vec::new();
        assert_eq!(client.begin(&mut out), None);
        assert!(out.starts_with(b"MAIL FROM:"));
        client.connection_lost("the server closed the connection");
        let report = client.finish();
        assert!(report.first_code.is_none() && !report.held);
        assert_eq!(report.end, SessionEnd::ConnectionLost);

        // A local refusal on a resumed session: QUIT, nothing sent before it.
        let eight_bit = ClientParams {
            eight_bit_mime: true,
            ..params(&["bob@example.com"])
        };
        let (out, action, report) =
            drive(Client::resume(eight_bit, Extensions::default(), false), b"");
        assert_eq!(out, "QUIT\r\n");
        assert_eq!(action, Some(ClientAction::Done));
        assert_eq!(report.end, SessionEnd::Refused);
    }

    #[test]
    fn plain_transaction_without_pipelining() {
        let (out, actions, report) = run_all_splits(
            params(&["bob@example.com", "nobody@example.com"]),
            NO_PIPELINING,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "EHLO out.example\r\nMAIL FROM:<alice@example.org> SIZE=22\r\n\
             RCPT TO:<bob@example.com>\r\nRCPT TO:<nobody@example.com>\r\nDATA\r\n\
             Subject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"
        );
        assert_eq!(actions, vec![ClientAction::Done]);
        assert_eq!(report.end, SessionEnd::Completed);
        assert!(
            matches!(&report.outcomes[0], Outcome::Delivered(r) if r.code == 250
            && r.enhanced == Some(Enhanced(2, 0, 0)) && r.lines[0] == "Ok: queued as 123")
        );
        assert!(
            matches!(&report.outcomes[1], Outcome::Permanent(r) if r.code == 550
            && r.lines[0] == "No such user")
        );
    }

    #[test]
    fn pipelining_sends_mail_rcpts_and_data_in_one_write() {
        let server = b"220 mx.example ESMTP\r\n\
            250-mx.example\r\n250-PIPELINING\r\n250-DSN\r\n250 8BITMIME\r\n\
            250 2.1.0 Ok\r\n451 4.2.0 Try later\r\n250 2.1.5 Ok\r\n354 Go\r\n250 2.0.0 Ok\r\n";
        let mut p = params(&["a@example.com", "b@example.com"]);
        p.ret = Some(Ret::Hdrs);
        p.envid = Some("abc+2Bdef".into());
        p.recipients[1].notify = Some(Notify::IMPLIED);
        p.recipients[1].orcpt = Some(Orcpt::rfc822("b@example.com"));
        let (out, _, report) = run_all_splits(p.clone(), server);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "EHLO out.example\r\nMAIL FROM:<alice@example.org> RET=HDRS ENVID=abc+2Bdef\r\n\
             RCPT TO:<a@example.com>\r\n\
             RCPT TO:<b@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;b@example.com\r\n\
             DATA\r\nSubject: hi\r\n\r\nhello\r\n.\r\nQUIT\r\n"
        );
        // The batch is written before any reply is read.
        let mut client = Client::new(p);
        let mut out = Vec::new();
        client.receive(b"220 x\r\n250-x\r\n250 PIPELINING\r\n", &mut out);
        assert!(out.ends_with(b"RCPT TO:<b@example.com>\r\nDATA\r\n"));
        assert!(matches!(&report.outcomes[0], Outcome::Transient(r) if r.code == 451));
        assert!(matches!(&report.outcomes[1], Outcome::Delivered(_)));
    }

    #[test]
    fn pipelined_mail_failure_fails_every_recipient_with_its_reply() {
        let server = b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n\
            553 5.7.1 Sender rejected\r\n503 5.5.1 No MAIL\r\n503 5.5.1 No MAIL\r\n554 No valid recipients\r\n";
        let (out, _, report) = run_all_splits(params(&["a@x.test", "b@x.test"]), server);
        assert!(out.ends_with(b"DATA\r\nQUIT\r\n"));
        for o in &report.outcomes {
            assert!(matches!(o, Outcome::Permanent(r) if r.code == 553));
        }
    }

    #[test]
    fn client_fuzz_pipelined_mail_refused_then_354_keeps_the_mail_reply() {
        // Found by the client fuzz target: the server refuses MAIL but
        // answers the pipelined DATA with 354. The empty message goes out,
        // and the recipients must fail with the MAIL reply, not end up
        // without an outcome (which became a transient "no answer").
        let server = b"220 mx\r\n250-mx\r\n250 PIPELINING\r\n\
            553 5.7.1 Sender rejected\r\n503 5.5.1 No MAIL\r\n503 5.5.1 No MAIL\r\n\
            354 go ahead\r\n554 5.5.1 No valid recipients\r\n";
        let (out, _, report) = run_all_splits(params(&["a@x.test", "b@x.test"]), server);
        assert!(out.ends_with(b"DATA\r\n.\r\nQUIT\r\n"));
        assert_eq!(report.end, SessionEnd::Completed);
        for o in &report.outcomes {
            assert!(matches!(o, Outcome::Permanent(r) if r.code == 553), "{o:?}");
        }
    }

    #[test]
    fn client_fuzz_data_answered_with_250_is_not_a_delivery() {
        // Found by the client fuzz target: a 250 to DATA (instead of 354)
        // marked the accepted recipients Delivered although no body was
        // ever sent.
        let server = b"220 mx\r\n250 mx\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n\
            250 2.0.0 Ok: queued\r\n";
        let (out, _, report) = run_all_splits(params(&["a@x.test"]), server);
        assert!(out.ends_with(b"DATA\r\nQUIT\r\n"));
        assert!(
            matches!(&report.outcomes[0], Outcome::Transient(_)),
            "{report:?}"
        );
        assert!(matches!(report.end, SessionEnd::Protocol(_)));
    }

    #[test]
    fn no_accepted_recipient_means_no_data() {
        let server = b"220 mx\r\n250 mx\r\n250 ok\r\n550 no\r\n";
        let (out, _, report) = run_all_splits(params(&["a@x.test"]), server);
        assert_eq!(
            out,
            b"EHLO out.example\r\nMAIL FROM:<alice@example.org>\r\nRCPT TO:<a@x.test>\r\nQUIT\r\n"
        );
        assert!(matches!(&report.outcomes[0], Outcome::Permanent(_)));
    }

    /// A change to the parameters, the server's replies, the expected code and status.
    type Case = (fn(&mut ClientParams), &'static [u8], u16, (u8, u16, u16));

    #[test]
    fn refuses_eight_bit_and_smtputf8_and_oversize_before_mail() {
        let ehlo_plain = b"220 mx\r\n250-mx\r\n250 SIZE 10\r\n".as_slice();
        let cases: [Case; 3] = [
            (
                |p| p.body = BodyFacts::of("Subject: caf\u{e9}\r\n\r\n".as_bytes()),
                b"220 mx\r\n250 mx\r\n",
                554,
                (5, 6, 3),
            ),
            (
                |p| p.smtputf8 = true,
                b"220 mx\r\n250-mx\r\n250 8BITMIME\r\n",
                554,
                (5, 6, 7),
            ),
            (|_| {}, ehlo_plain, 552, (5, 3, 4)),
        ];
        for (change, server, code, (c, s, d)) in cases {
            let mut p = params(&["a@x.test"]);
            change(&mut p);
            let (out, actions, report) = run_all_splits(p, server);
            assert_eq!(out, b"EHLO out.example\r\nQUIT\r\n");
            assert_eq!(actions, vec![ClientAction::Done]);
            assert_eq!(report.end, SessionEnd::Refused);
            assert!(!report.end.try_next_host());
            assert!(
                matches!(&report.outcomes[0], Outcome::Permanent(r)
                if r.code == code && r.enhanced == Some(Enhanced(c, s, d))),
                "{report:?}"
            );
        }
    }

    #[test]
    fn eight_bit_goes_out_with_body_param_when_announced() {
        let mut p = params(&["a@x.test"]);
        p.body = BodyFacts::of("Subject: caf\u{e9}\r\n\r\n".as_bytes());
        let server =
            b"220 mx\r\n250-mx\r\n250 8BITMIME\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n";
        let (out, _, report) = run_all_splits(p, server);
        assert!(String::from_utf8_lossy(&out)
            .contains("MAIL FROM:<alice@example.org> BODY=8BITMIME\r\n"));
        assert!(matches!(&report.outcomes[0], Outcome::Delivered(_)));
    }

    #[test]
    fn ehlo_refused_falls_back_to_helo() {
        let server = b"220 old\r\n500 what?\r\n250 old\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n";
        let (out, _, report) = run_all_splits(params(&["a@x.test"]), server);
        assert!(out.starts_with(
            b"EHLO out.example\r\nHELO out.example\r\nMAIL FROM:<alice@example.org>\r\n"
        ));
        assert!(matches!(&report.outcomes[0], Outcome::Delivered(_)));
    }

    #[test]
    fn a_peer_with_our_own_name_is_a_loop() {
        let cases: [(&[u8], &[u8]); 4] = [
            (b"220 OUT.example. ESMTP\r\n", b"QUIT\r\n"),
            (
                b"220 mx ESMTP\r\n250-out.example hello\r\n250 PIPELINING\r\n",
                b"EHLO out.example\r\nQUIT\r\n",
            ),
            (
                b"220 mx\r\n502 no\r\n250 out.example\r\n",
                b"EHLO out.example\r\nHELO out.example\r\nQUIT\r\n",
            ),
            (b"220 out.example\r\n", b"QUIT\r\n"),
        ];
        for (server, sent) in cases {
            let (out, _, report) = run_all_splits(params(&["a@x.test", "b@y.test"]), server);
            assert_eq!(out, sent, "{server:?}");
            assert_eq!(report.end, SessionEnd::LoopsBack);
            assert!(!report.end.try_next_host());
            assert_eq!(
                report.outcomes,
                [
                    Outcome::Permanent(loops_back_reply("a@x.test")),
                    Outcome::Permanent(loops_back_reply("b@y.test")),
                ]
            );
        }
        let reply = loops_back_reply("a@x.test");
        assert_eq!((reply.code, reply.enhanced), (554, Some(Enhanced(5, 4, 6))));
        assert_eq!(reply.lines, ["mail for x.test loops back to myself"]);
        // A name that only starts like ours is someone else.
        let (_, _, report) =
            run_all_splits(params(&["a@x.test"]), b"220 out.example.net\r\n250 mx\r\n");
        assert_ne!(report.end, SessionEnd::LoopsBack);
    }

    #[test]
    fn greeting_refusal_is_transient_and_moves_to_next_host() {
        for server in [&b"421 4.3.2 busy\r\n"[..], b"554 no service for you\r\n"] {
            let (out, _, report) = run_all_splits(params(&["a@x.test"]), server);
            assert_eq!(out, b"QUIT\r\n");
            assert!(matches!(report.end, SessionEnd::Greeting(_)));
            assert!(report.end.try_next_host());
            assert!(
                matches!(&report.outcomes[0], Outcome::Transient(r) if r.code == 421 || r.code == 554)
            );
        }
    }

    #[test]
    fn starttls_then_ehlo_again_and_plaintext_leftovers_dropped() {
        let mut client = Client::new(params(&["a@x.test"]));
        let mut out = Vec::new();
        assert_eq!(
            client.receive(b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n", &mut out),
            None
        );
        assert_eq!(out, b"EHLO out.example\r\nSTARTTLS\r\n");
        out.clear();
        // An injected reply after the 220 must not be taken as the EHLO reply.
        let action = client.receive(b"220 go ahead\r\n250-evil\r\n250 PIPELINING\r\n", &mut out);
        assert_eq!(action, Some(ClientAction::StartTls));
        client.tls_started(&mut out);
        assert_eq!(out, b"EHLO out.example\r\n");
        out.clear();
        client.receive(b"250-mx\r\n250 8BITMIME\r\n", &mut out);
        assert_eq!(out, b"MAIL FROM:<alice@example.org>\r\n");
        let action = client.receive(b"250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n", &mut out);
        assert_eq!(action, Some(ClientAction::SendBody));
        // The reply that came with the 354 is read once the body is out.
        assert_eq!(client.body_sent(&mut out), Some(ClientAction::Done));
        let report = client.finish();
        assert!(report.tls);
        assert!(matches!(&report.outcomes[0], Outcome::Delivered(_)));
    }

    #[test]
    fn tls_required_but_not_offered_is_a_transient_session_failure() {
        let mut p = params(&["a@x.test"]);
        p.tls = TlsPolicy::Required;
        let (out, _, report) = run_all_splits(p.clone(), b"220 mx\r\n250 mx\r\n");
        assert_eq!(out, b"EHLO out.example\r\nQUIT\r\n");
        assert_eq!(report.end, SessionEnd::TlsUnavailable);
        assert!(matches!(&report.outcomes[0], Outcome::Transient(_)));
        let (_, _, report) =
            run_all_splits(p, b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n454 no tls\r\n");
        assert_eq!(report.end, SessionEnd::TlsUnavailable);
    }

    #[test]
    fn tls_policy_never_does_not_send_starttls() {
        let mut p = params(&["a@x.test"]);
        p.tls = TlsPolicy::Never;
        let (out, ..) = run(p, &[b"220 mx\r\n250-mx\r\n250 STARTTLS\r\n"]);
        assert_eq!(
            out,
            b"EHLO out.example\r\nMAIL FROM:<alice@example.org>\r\n"
        );
    }

    #[test]
    fn auth_plain_and_login() {
        let creds = Credentials {
            username: "u".into(),
            password: "p".into(),
        };
        let mut p = params(&["a@x.test"]);
        p.tls_active = true;
        p.credentials = Some(creds);
        let (out, _, report) = run_all_splits(
            p.clone(),
            b"220 mx\r\n250-mx\r\n250 AUTH LOGIN PLAIN\r\n235 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n",
        );
        assert!(out.starts_with(b"EHLO out.example\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:"));
        assert!(matches!(&report.outcomes[0], Outcome::Delivered(_)));
        let (out, ..) = run_all_splits(
            p.clone(),
            b"220 mx\r\n250-mx\r\n250-AUTH=LOGIN\r\n250 AUTH LOGIN\r\n334 UGFzc3dvcmQ6\r\n235 ok\r\n",
        );
        assert_eq!(
            out,
            b"EHLO out.example\r\nAUTH LOGIN dQ==\r\ncA==\r\nMAIL FROM:<alice@example.org>\r\n"
        );
        let (_, _, report) = run_all_splits(
            p,
            b"220 mx\r\n250-mx\r\n250 AUTH PLAIN\r\n535 5.7.8 bad\r\n",
        );
        assert!(matches!(report.end, SessionEnd::Auth(_)));
        assert!(matches!(&report.outcomes[0], Outcome::Transient(r) if r.code == 454));
    }

    #[test]
    fn broken_peers_end_the_session() {
        for server in [
            &b"hello\r\n"[..],
            b"220-a\r\n250 b\r\n",
            b"220 a\r\n250x\r\n",
        ] {
            let (out, _, report) = run_all_splits(params(&["a@x.test"]), server);
            assert!(out.ends_with(b"QUIT\r\n"));
            assert!(matches!(report.end, SessionEnd::Protocol(_)), "{server:?}");
        }
    }

    #[test]
    fn an_over_long_reply_line_is_cut_and_its_code_counts() {
        let mut long = b"220 ".to_vec();
        long.extend(std::iter::repeat(b'x').take(MAX_REPLY_LINE + 10));
        let (out, _, _) = run(params(&["a@x.test"]), &[&[&long[..], b"\r\n"].concat()]);
        assert!(out.starts_with(b"EHLO "));
        // A 250 after the data whose text runs long means the message was
        // taken: as an error it would be sent again.
        let mut taken = b"250 2.0.0 Ok: queued as ".to_vec();
        taken.extend(std::iter::repeat(b'\0').take(3 * MAX_REPLY_LINE));
        taken.extend_from_slice(b"\r\n");
        let server = [
            &b"220 mx\r\n250 mx\r\n250 ok\r\n250 ok\r\n354 go\r\n"[..],
            &taken,
        ]
        .concat();
        let (_, _, report) = run_all_splits(params(&["a@x.test"]), &server);
        assert!(
            matches!(&report.outcomes[0], Outcome::Delivered(r) if r.code == 250),
            "{report:?}"
        );
    }

    #[test]
    fn connection_lost_makes_pending_recipients_transient() {
        let mut client = Client::new(params(&["a@x.test"]));
        let mut out = Vec::new();
        client.receive(b"220 mx\r\n", &mut out);
        client.connection_lost("timeout");
        let report = client.finish();
        assert_eq!(report.end, SessionEnd::ConnectionLost);
        assert!(matches!(&report.outcomes[0], Outcome::Transient(r) if r.code == 421));
    }

    #[test]
    fn unsafe_addresses_and_params_never_reach_the_wire() {
        let mut p = params(&["ok@x.test", "evil>\r\nRSET@x.test"]);
        p.envid = Some("a b".into());
        p.recipients[0].orcpt = Some("utf-8;\u{fc}@x.test".parse().unwrap());
        let server = b"220 mx\r\n250-mx\r\n250 DSN\r\n250 ok\r\n250 ok\r\n354 go\r\n250 ok\r\n";
        let (out, _, report) = run(p, &[server]);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("RSET") && !text.contains("ENVID") && !text.contains("ORCPT"));
        assert!(matches!(&report.outcomes[0], Outcome::Delivered(_)));
        assert!(matches!(&report.outcomes[1], Outcome::Permanent(r) if r.code == 553));
        let mut p = params(&["a@x.test"]);
        p.body = BodyFacts::of(b"a\nb\r\n");
        let (_, _, report) = run(p, &[b"220 mx\r\n250 mx\r\n"]);
        assert!(matches!(&report.outcomes[0], Outcome::Permanent(r) if r.code == 554));
    }

    #[test]
    fn parses_extensions() {
        let ext = Extensions::parse([
            "PIPELINING",
            "size 5000",
            "8bitmime",
            "SMTPUTF8",
            "AUTH PLAIN login",
            "DSN",
            "CHUNKING",
            "STARTTLS",
        ]);
        assert!(
            ext.pipelining
                && ext.eight_bit_mime
                && ext.smtputf8
                && ext.dsn
                && ext.chunking
                && ext.starttls
        );
        assert_eq!(ext.size, Some(5000));
        assert_eq!(ext.auth, vec!["PLAIN".to_string(), "LOGIN".to_string()]);
        assert_eq!(Extensions::parse(["SIZE"]).size, Some(0));
    }

    #[test]
    fn extensions_come_from_the_keyword_lines_of_an_ehlo_reply() {
        let ehlo = |lines: &[&str]| {
            Reply::plain(250, lines.iter().map(|l| l.to_string().into()).collect())
        };
        assert_eq!(Extensions::from_reply(&ehlo(&["x"])), Extensions::default());
        // The first line is the server's name, not a keyword.
        assert_eq!(
            Extensions::from_reply(&ehlo(&["PIPELINING"])),
            Extensions::default()
        );
        let ext = Extensions::from_reply(&ehlo(&["x", "pipelining", "AUTH LOGIN", "STARTTLS"]));
        assert!(ext.pipelining && ext.starttls);
        assert_eq!(ext.auth, vec!["LOGIN".to_string()]);
    }
}
