//! The server side of one SMTP session as a state machine: bytes in,
//! replies and actions out. It never blocks: slow work (TLS handshake,
//! password checks, spooling) is asked for through an [`Action`] and its
//! result handed back by the caller.
//!
//! It owns the order of commands (EHLO before MAIL, MAIL before RCPT …),
//! the relay and sender policy (asking a [`Directory`]), the SASL dialogue,
//! the DATA and BDAT sections and every reply text. Commands are parsed by
//! `command`, lines split by `line`, DATA unstuffed by `dot`; replies are
//! rendered in one place ([`Session::answer`]) with `reply::Reply`.
//! It imports nothing with I/O.

use std::borrow::Cow;
use std::sync::Arc;

use super::address::{Domain, Mailbox, Path};
use super::command::{self, Body, Command, Notify, Ret};
use super::dot::{BodyError, DataStatus, Unstuffer};
use super::line::{LineSplitter, LineStatus, MAX_COMMAND_LINE};
use super::reply::Reply;
use super::sasl::{self, Credentials, SaslError};

/// RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288
/// octets, longer than the 512 of other commands (large PLAIN responses).
pub const MAX_AUTH_LINE: usize = 12288;

/// RFC 5321 §4.1.2 / §4.5.3.1.2: a domain is at most 255 octets; that is as
/// much of a client's EHLO argument as we echo back.
const MAX_ECHOED_HELO: usize = 255;

/// Which listener the connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from other servers to local domains; relaying only for
    /// authenticated users or trusted networks.
    Smtp,
    /// Port 587: STARTTLS, then AUTH required before MAIL.
    Submission,
    /// Port 465: implicit TLS (RFC 8314), AUTH required before MAIL.
    Submissions,
}

/// Settings shared by all sessions of one server.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our host name, for the greeting, EHLO reply and Received header.
    pub hostname: String,
    /// Largest message accepted, in octets (SIZE and DATA/BDAT).
    pub max_message_size: usize,
    /// Most recipients per message (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Unknown or bad commands before 421 and close.
    pub max_bad_commands: u32,
    /// Longest text line in DATA, octets including CRLF.
    pub max_line_length: usize,
    /// Add `AUTH=LOGIN PLAIN` for Outlook 2003 and older.
    pub auth_equals_line: bool,
    /// An authenticated user may only send as addresses it owns.
    pub sender_check: bool,
    /// TLS is configured, so STARTTLS can be offered.
    pub tls_available: bool,
}

/// Questions about users and domains that the session asks the outside.
pub trait Directory: Send + Sync {
    /// Is `domain` (lowercase ASCII or UTF-8) one of ours?
    fn is_local_domain(&self, domain: &str) -> bool;
    /// Does mail for `address` (in a local domain) have somewhere to go?
    fn mailbox_exists(&self, address: &str) -> bool;
    /// May authenticated `user` use `sender` as its MAIL FROM address?
    fn may_send_as(&self, user: &str, sender: &str) -> bool;
}

/// What the session knows about the client from the socket.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    /// The client's IP address as text (no reverse lookup is ever done).
    pub ip: String,
    /// The client is in `--relay-networks` (may relay without AUTH).
    pub trusted: bool,
    /// TLS version if the connection is already encrypted (port 465).
    pub tls: Option<String>,
}

/// One recipient of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given (without angle brackets).
    pub address: String,
    /// RFC 3461 NOTIFY, if given.
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT, if given (as written).
    pub orcpt: Option<String>,
}

/// The envelope of one accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse-path; empty string for the null path `<>`.
    pub sender: String,
    /// The recipients, in order.
    pub recipients: Vec<Recipient>,
    /// `BODY=` as given.
    pub body: Option<Body>,
    /// The message asked for SMTPUTF8.
    pub smtputf8: bool,
    /// RFC 3461 RET.
    pub ret: Option<Ret>,
    /// RFC 3461 ENVID as written.
    pub envid: Option<String>,
}

/// Who sent a message and how, for the Received header, the envelope file
/// and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Client IP as text.
    pub client_ip: String,
    /// The EHLO/HELO name as given (escape before writing into headers).
    pub helo: String,
    /// TLS version, e.g. `TLSv1.3`.
    pub tls: Option<String>,
    /// The authenticated user.
    pub auth_user: Option<String>,
    /// `SMTP`, `ESMTP`, `ESMTPS`, `ESMTPSA` … (RFC 3848).
    pub protocol: &'static str,
}

/// A message the session wants spooled before it answers 250.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The envelope.
    pub envelope: Envelope,
    /// Where it came from.
    pub origin: Origin,
    /// The message bytes, dot-unstuffed, CRLF line ends.
    pub body: Vec<u8>,
}

/// What the caller must do before feeding more input.
#[derive(Debug)]
pub enum Action {
    /// Flush the output (it ends with `220 Ready to start TLS`), drop every
    /// byte the client sent after STARTTLS, do the TLS handshake, then call
    /// [`Session::tls_started`].
    StartTls,
    /// Check these credentials, then call [`Session::auth_result`].
    Authenticate(Credentials),
    /// Spool this message durably, then call [`Session::enqueued`].
    Enqueue(Box<NewMessage>),
    /// Flush the output and close the connection.
    Close,
}

/// The outcome of a credential check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Good credentials: 235 2.7.0.
    Success,
    /// Unknown user or wrong password (indistinguishable): 535 5.7.8.
    Failure,
    /// Too many failures from this client: 421 4.7.0 and close.
    Throttled,
    /// A server-side problem: 454 4.7.0 so the client retries.
    TemporaryFailure,
}

/// Why spooling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueError {
    /// Out of disk space: 452 4.3.1.
    NoSpace,
    /// Any other spool problem: 451 4.3.0.
    Failed,
}

/// The result of feeding input.
#[derive(Debug)]
pub struct Feed {
    /// How many input bytes were used; drop them from the buffer.
    pub consumed: usize,
    /// Something to do before feeding again; `None` means "read more".
    pub action: Option<Action>,
}

/// What the session is reading right now.
enum Mode {
    /// Command lines.
    Command,
    /// The message after `354`, until CRLF.CRLF.
    Data(Unstuffer),
    /// The octets of one BDAT chunk (RFC 3030): counted, not unstuffed.
    Bdat(Chunk),
    /// AUTH PLAIN sent an empty `334 ` challenge; the next line is the
    /// response.
    AuthPlain,
    /// AUTH LOGIN sent `334 VXNlcm5hbWU6`; the next line is the user name.
    AuthLoginUser,
    /// AUTH LOGIN sent `334 UGFzc3dvcmQ6`; the next line is the password.
    AuthLoginPassword {
        /// The user name already decoded.
        username: String,
    },
}

/// One BDAT chunk being read.
struct Chunk {
    /// Octets of the chunk still to come.
    remaining: u64,
    /// The chunk's declared size, for the reply.
    size: u64,
    /// `BDAT n LAST`.
    last: bool,
    /// The chunk is read and thrown away, then this is the answer.
    refusal: Option<Refusal>,
}

/// The answer to a refused BDAT chunk, sent once the chunk is read.
struct Refusal {
    /// The error reply.
    reply: Reply,
    /// Whether the transaction ends with it (e.g. the message got too big).
    reset: bool,
    /// Whether it counts as a bad command (a sequence error).
    bad: bool,
}

/// An action the caller has not answered yet.
enum Pending {
    /// `Action::StartTls` is outstanding.
    StartTls,
    /// `Action::Authenticate` is outstanding for this user.
    Authenticate {
        /// Becomes the authenticated user on success.
        username: String,
    },
    /// `Action::Enqueue` is outstanding.
    Enqueue,
}

/// A mail transaction: from MAIL to the end of DATA or the last BDAT.
struct Transaction {
    /// The reverse-path; empty for `<>`.
    sender: String,
    /// `BODY=`.
    body_type: Option<Body>,
    /// `SMTPUTF8` was given.
    smtputf8: bool,
    /// `RET=`.
    ret: Option<Ret>,
    /// `ENVID=`.
    envid: Option<String>,
    /// Accepted recipients.
    recipients: Vec<Recipient>,
    /// RCPT commands refused in this transaction (for the DATA reply).
    refused_recipients: usize,
    /// A BDAT chunk was accepted: DATA may not follow (RFC 3030 §3).
    used_bdat: bool,
    /// The message collected so far.
    message: Vec<u8>,
}

/// What a handler wants said and done; rendered in [`Session::answer`].
struct Response {
    /// The reply, if this step has one now.
    reply: Option<Reply>,
    /// An action for the caller.
    action: Option<Action>,
    /// The command was bad (syntax, unknown, out of sequence): counts
    /// towards `max_bad_commands`.
    bad: bool,
}

impl Response {
    /// A reply for a command that was fine.
    fn ok(reply: Reply) -> Response {
        Response {
            reply: Some(reply),
            action: None,
            bad: false,
        }
    }

    /// A reply for a bad command.
    fn bad(reply: Reply) -> Response {
        Response {
            reply: Some(reply),
            action: None,
            bad: true,
        }
    }

    /// An action, and maybe a reply to send before it.
    fn act(reply: Option<Reply>, action: Action) -> Response {
        Response {
            reply,
            action: Some(action),
            bad: false,
        }
    }
}

/// What one step of [`Session::feed`] did with the input.
enum Step {
    /// Used this many bytes; go on with the rest.
    Progress(usize),
    /// Used this many bytes; wait for more input.
    NeedMore(usize),
    /// Used this many bytes; the caller must do this first.
    Act(usize, Action),
}

/// A sequence error: the command is valid but not now (RFC 5321 §4.2.4).
fn out_of_sequence(text: &'static str) -> Response {
    Response::bad(Reply::new(503, (5, 5, 1), text))
}

/// The address of a path as text: `local@domain`, `Postmaster`, or empty
/// for `<>`.
fn path_text(path: &Path<'_>) -> String {
    match path {
        Path::Null => String::new(),
        Path::Postmaster => "Postmaster".to_string(),
        Path::Mailbox { mailbox, .. } => mailbox_text(mailbox),
    }
}

/// `local@domain` as written.
fn mailbox_text(mailbox: &Mailbox<'_>) -> String {
    let domain = match mailbox.domain {
        Domain::Name(name) | Domain::Literal(name) => name,
    };
    format!("{}@{}", mailbox.local, domain)
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

/// True when the line's verb is `MAIL` or `RCPT` (for choosing 555 over 501).
fn is_mail_or_rcpt(line: &[u8]) -> bool {
    line.len() >= 4
        && (line[..4].eq_ignore_ascii_case(b"MAIL") || line[..4].eq_ignore_ascii_case(b"RCPT"))
}

/// True when the line's verb is `AUTH`, whose line may be longer
/// (RFC 4954 §4).
fn is_auth(line: &[u8]) -> bool {
    line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ")
}

/// The reply to a refused SASL response.
fn sasl_refusal(error: SaslError) -> Response {
    match error {
        // RFC 4954 §4: a `*` response cancels with 501.
        SaslError::Cancelled => {
            Response::ok(Reply::new(501, (5, 7, 0), "Authentication cancelled"))
        }
        SaslError::Malformed => Response::bad(Reply::new(
            501,
            (5, 5, 2),
            "The authentication data could not be decoded; please try again",
        )),
        SaslError::AuthzidMismatch => Response::ok(Reply::new(
            535,
            (5, 7, 8),
            "Authentication failed: wrong user name or password",
        )),
    }
}

/// Decodes one SASL response line to UTF-8 text.
fn decode_text(line: &[u8]) -> Result<String, SaslError> {
    let line = std::str::from_utf8(line).map_err(|_| SaslError::Malformed)?;
    let bytes = sasl::decode_response(line)?;
    String::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

/// One SMTP server session.
pub struct Session {
    role: Role,
    config: Arc<SessionConfig>,
    directory: Arc<dyn Directory>,
    client: ClientInfo,
    splitter: LineSplitter,
    mode: Mode,
    /// The EHLO/HELO name, once given.
    helo: Option<String>,
    /// The client said EHLO (not HELO): ESMTP.
    esmtp: bool,
    /// TLS version once encrypted.
    tls: Option<String>,
    /// The authenticated user.
    auth_user: Option<String>,
    transaction: Option<Transaction>,
    pending: Option<Pending>,
    bad_commands: u32,
    closed: bool,
}

impl Session {
    /// A new session for a client on a listener of `role`.
    pub fn new(
        role: Role,
        config: Arc<SessionConfig>,
        directory: Arc<dyn Directory>,
        client: ClientInfo,
    ) -> Session {
        let tls = client.tls.clone();
        Session {
            role,
            config,
            directory,
            client,
            splitter: LineSplitter::new(MAX_AUTH_LINE),
            mode: Mode::Command,
            helo: None,
            esmtp: false,
            tls,
            auth_user: None,
            transaction: None,
            pending: None,
            bad_commands: 0,
            closed: false,
        }
    }

    /// Appends the 220 greeting.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        // RFC 2034 §3: the greeting carries no enhanced status code.
        let text = format!("{} ESMTP Outpost ready", self.config.hostname);
        Reply::plain(220, vec![text.into()]).render(out);
    }

    /// Consumes client input, appending replies to `out`. While an action
    /// is outstanding it consumes nothing.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut consumed = 0;
        while self.pending.is_none() && !self.closed && consumed < input.len() {
            let rest = &input[consumed..];
            let step = match self.mode {
                Mode::Data(_) => self.step_data(rest, out),
                Mode::Bdat(_) => self.step_bdat(rest, out),
                _ => self.step_line(rest, out),
            };
            match step {
                Step::Progress(used) => consumed += used,
                Step::NeedMore(used) => {
                    consumed += used;
                    break;
                }
                Step::Act(used, action) => {
                    consumed += used;
                    if matches!(action, Action::StartTls) {
                        // RFC 3207 §4.2, CVE-2011-0411: whatever the client
                        // pipelined after STARTTLS was sent in plaintext and
                        // must not be read as if it came over TLS.
                        consumed = input.len();
                    }
                    return Feed {
                        consumed,
                        action: Some(action),
                    };
                }
            }
        }
        Feed {
            consumed,
            action: None,
        }
    }

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

    /// The answer to [`Action::Authenticate`].
    pub fn auth_result(&mut self, result: AuthResult, out: &mut Vec<u8>) {
        let username = match self.pending.take() {
            Some(Pending::Authenticate { username }) => Some(username),
            _ => None,
        };
        let reply = match result {
            AuthResult::Success => {
                self.auth_user = username;
                Reply::new(235, (2, 7, 0), "Authentication successful")
            }
            // The same text for an unknown user and a wrong password, so
            // the reply does not tell which user names exist.
            AuthResult::Failure => Reply::new(
                535,
                (5, 7, 8),
                "Authentication failed: wrong user name or password",
            ),
            AuthResult::Throttled => Reply::new(
                421,
                (4, 7, 0),
                "Too many failed login attempts; please try again later",
            )
            .and_close(),
            AuthResult::TemporaryFailure => Reply::new(
                454,
                (4, 7, 0),
                "Temporary authentication failure; please try again later",
            ),
        };
        self.answer(Response::ok(reply), out);
    }

    /// The answer to [`Action::Enqueue`]: the queue id, or why not.
    pub fn enqueued(&mut self, result: Result<&str, EnqueueError>, out: &mut Vec<u8>) {
        self.pending = None;
        let reply = match result {
            Ok(id) => Reply::new(250, (2, 0, 0), format!("Ok: queued as {id}")),
            Err(EnqueueError::NoSpace) => Reply::new(
                452,
                (4, 3, 1),
                "Insufficient system storage; please try again later",
            ),
            Err(EnqueueError::Failed) => Reply::new(
                451,
                (4, 3, 0),
                "The message could not be stored; please try again later",
            ),
        };
        self.answer(Response::ok(reply), out);
    }

    /// The client was idle too long: 421 4.4.2 and close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        let text = format!("{} Timeout: closing the connection", self.config.hostname);
        self.pending = None;
        self.answer(
            Response::ok(Reply::new(421, (4, 4, 2), text).and_close()),
            out,
        );
    }

    /// The server is shutting down: 421 4.3.2 and close.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        let text = format!(
            "{} The server is shutting down; please try again later",
            self.config.hostname
        );
        self.pending = None;
        self.answer(
            Response::ok(Reply::new(421, (4, 3, 2), text).and_close()),
            out,
        );
    }

    /// The session has asked to close (after QUIT or a fatal reply).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The session is inside DATA or BDAT (for choosing the timeout).
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data(_) | Mode::Bdat(_))
    }

    /// The authenticated user, if any (for logging and the Received header).
    pub fn auth_user(&self) -> Option<&str> {
        self.auth_user.as_deref()
    }

    /// The TLS version, once the connection is encrypted.
    pub fn tls_version(&self) -> Option<&str> {
        self.tls.as_deref()
    }

    /// The EHLO/HELO name as the client gave it, if it has.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// The one place replies are rendered. Counts bad commands (turning the
    /// last allowed one into 421 and close), marks the session closed on a
    /// closing reply, and remembers which action is outstanding.
    fn answer(&mut self, response: Response, out: &mut Vec<u8>) -> Option<Action> {
        let Response {
            mut reply,
            mut action,
            bad,
        } = response;
        if bad {
            self.bad_commands = self.bad_commands.saturating_add(1);
            if self.bad_commands >= self.config.max_bad_commands {
                // Like Postfix's smtpd_hard_error_limit: a client that keeps
                // getting it wrong is a broken script or a probe.
                reply = Some(
                    Reply::new(421, (4, 7, 0), "Too many errors; closing the connection")
                        .and_close(),
                );
                action = None;
            }
        }
        if let Some(reply) = &reply {
            reply.render(out);
            if reply.close {
                self.closed = true;
                self.transaction = None;
                self.mode = Mode::Command;
                return Some(Action::Close);
            }
        }
        match &action {
            Some(Action::StartTls) => self.pending = Some(Pending::StartTls),
            Some(Action::Authenticate(credentials)) => {
                self.pending = Some(Pending::Authenticate {
                    username: credentials.username.clone(),
                })
            }
            Some(Action::Enqueue(_)) => self.pending = Some(Pending::Enqueue),
            Some(Action::Close) => self.closed = true,
            None => {}
        }
        action
    }

    /// Turns a handler's response into a step that used `used` bytes.
    fn finish_step(&mut self, used: usize, response: Response, out: &mut Vec<u8>) -> Step {
        match self.answer(response, out) {
            Some(action) => Step::Act(used, action),
            None => Step::Progress(used),
        }
    }

    /// Reads one line: a command, or a SASL response during AUTH.
    fn step_line(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let (line, used) = match self.splitter.next(rest) {
            LineStatus::NeedMore { consumed } => return Step::NeedMore(consumed),
            LineStatus::TooLong { consumed } => {
                let response = self.line_too_long();
                return self.finish_step(consumed, response, out);
            }
            LineStatus::Line { line, consumed } => (line, consumed),
        };
        let in_sasl = !matches!(self.mode, Mode::Command);
        // RFC 5321 §4.5.3.1.4: 512 octets for commands; RFC 4954 §4 allows
        // AUTH lines and SASL responses up to MAX_AUTH_LINE (the splitter's
        // bound, which keeps memory bounded either way).
        let response = if used > MAX_COMMAND_LINE && !in_sasl && !is_auth(line) {
            self.line_too_long()
        } else if in_sasl {
            self.on_sasl_response(line)
        } else {
            self.dispatch(line)
        };
        self.finish_step(used, response, out)
    }

    /// The reply to an over-long line, which also ends a SASL dialogue.
    fn line_too_long(&mut self) -> Response {
        self.mode = Mode::Command;
        Response::bad(Reply::new(500, (5, 5, 2), "Line too long"))
    }

    /// Parses a command line and hands it to its verb's handler.
    fn dispatch(&mut self, line: &[u8]) -> Response {
        let command = command::parse(line);
        match command {
            Command::Ehlo(_) => self.on_ehlo(line, command),
            Command::Helo(_) => self.on_helo(line, command),
            Command::Mail { .. } => self.on_mail(line, command),
            Command::Rcpt { .. } => self.on_rcpt(line, command),
            Command::Data => self.on_data(line, command),
            Command::Bdat { .. } => self.on_bdat(line, command),
            Command::Rset => self.on_rset(line, command),
            Command::Noop => self.on_noop(line, command),
            Command::Quit => self.on_quit(line, command),
            Command::Vrfy => self.on_vrfy(line, command),
            Command::Expn => self.on_expn(line, command),
            Command::Help => self.on_help(line, command),
            Command::StartTls => self.on_starttls(line, command),
            Command::Auth { .. } => self.on_auth(line, command),
            Command::Invalid(_) | Command::Unknown => self.on_unknown(line, command),
        }
    }

    /// The EHLO reply lines: greeting line, then the extensions we offer.
    fn ehlo_lines(&self, name: &str) -> Vec<Cow<'static, str>> {
        let mut lines: Vec<Cow<'static, str>> = vec![
            format!(
                "{} Hello {} [{}]",
                self.config.hostname,
                echo_safe(name),
                self.client.ip
            )
            .into(),
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
        } else {
            // RFC 4954 §4 and RFC 8314: no passwords over plaintext, so AUTH
            // is only advertised once the connection is encrypted.
            lines.push("AUTH PLAIN LOGIN".into());
            if self.config.auth_equals_line {
                lines.push("AUTH=PLAIN LOGIN".into());
            }
        }
        lines
    }

    /// `EHLO name`: resets any transaction; the reply lists the extensions
    /// (without enhanced codes, RFC 2034 §3).
    fn on_ehlo(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Ehlo(name) = command else {
            return self.on_unknown(line, command);
        };
        self.helo = Some(name.to_string());
        self.esmtp = true;
        self.transaction = None;
        Response::ok(Reply::plain(250, self.ehlo_lines(name)))
    }

    /// `HELO name`: plain SMTP; resets any transaction.
    fn on_helo(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Helo(name) = command else {
            return self.on_unknown(line, command);
        };
        self.helo = Some(name.to_string());
        self.esmtp = false;
        self.transaction = None;
        let text = format!(
            "{} Hello {} [{}]",
            self.config.hostname,
            echo_safe(name),
            self.client.ip
        );
        Response::ok(Reply::plain(250, vec![text.into()]))
    }

    /// `MAIL FROM:<path> params`: starts a transaction.
    fn on_mail(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Mail { from, params } = command else {
            return self.on_unknown(line, command);
        };
        if self.helo.is_none() {
            return out_of_sequence("Please introduce yourself with EHLO first");
        }
        if self.role != Role::Smtp && self.auth_user.is_none() {
            // RFC 4954 §6: submission requires authentication.
            return Response::bad(Reply::new(530, (5, 7, 0), "Authentication required"));
        }
        if self.transaction.is_some() {
            return out_of_sequence("A transaction is already in progress; send RSET first");
        }
        if matches!(from, Path::Postmaster) {
            return Response::bad(Reply::new(
                501,
                (5, 1, 7),
                "The sender address is not valid",
            ));
        }
        let sender = path_text(&from);
        if !sender.is_ascii() && !params.smtputf8 {
            // RFC 6531 §3.5: a non-ASCII address needs the SMTPUTF8 parameter.
            return Response::ok(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII addresses require the SMTPUTF8 parameter",
            ));
        }
        let max = self.config.max_message_size;
        if params.size.is_some_and(|size| size > max as u64) {
            // RFC 1870 §6.
            return Response::ok(Reply::new(
                552,
                (5, 3, 4),
                format!("Message too big: this server accepts messages up to {max} bytes"),
            ));
        }
        if let Some(user) = &self.auth_user {
            if self.config.sender_check
                && !sender.is_empty()
                && !self.directory.may_send_as(user, &sender)
            {
                return Response::ok(Reply::new(
                    553,
                    (5, 7, 1),
                    format!("You are not allowed to send as <{sender}>"),
                ));
            }
        }
        let reply = Reply::new(250, (2, 1, 0), format!("Sender <{sender}> OK"));
        self.transaction = Some(Transaction {
            sender,
            body_type: params.body,
            smtputf8: params.smtputf8,
            ret: params.ret,
            envid: params.envid.map(str::to_string),
            recipients: Vec::new(),
            refused_recipients: 0,
            used_bdat: false,
            message: Vec::new(),
        });
        Response::ok(reply)
    }

    /// `RCPT TO:<path> params`: the relay policy lives here.
    fn on_rcpt(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Rcpt { to, params } = command else {
            return self.on_unknown(line, command);
        };
        let Some(transaction) = &self.transaction else {
            return out_of_sequence("Please send MAIL first");
        };
        let smtputf8 = transaction.smtputf8;
        let full = transaction.recipients.len() >= self.config.max_recipients;
        let response = if full {
            // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in
            // another transaction.
            Response::ok(Reply::new(452, (4, 5, 3), "Too many recipients"))
        } else {
            self.recipient_policy(&to, smtputf8)
        };
        let Some(transaction) = &mut self.transaction else {
            return response;
        };
        let accepted = response
            .reply
            .as_ref()
            .is_some_and(|reply| reply.code == 250);
        if accepted {
            transaction.recipients.push(Recipient {
                address: path_text(&to),
                notify: params.notify,
                orcpt: params.orcpt.map(str::to_string),
            });
        } else {
            transaction.refused_recipients += 1;
        }
        response
    }

    /// Whether `to` may receive mail through us, as a reply.
    fn recipient_policy(&self, to: &Path<'_>, smtputf8: bool) -> Response {
        let (mailbox, source_route) = match to {
            // RFC 5321 §4.5.1: <Postmaster> always exists.
            Path::Postmaster => {
                return Response::ok(Reply::new(250, (2, 1, 5), "Recipient <Postmaster> OK"))
            }
            Path::Null => {
                return Response::bad(Reply::new(
                    501,
                    (5, 1, 3),
                    "The empty address <> cannot receive mail",
                ))
            }
            Path::Mailbox {
                mailbox,
                source_route,
            } => (mailbox, *source_route),
        };
        let address = mailbox_text(mailbox);
        if !address.is_ascii() && !smtputf8 {
            return Response::ok(Reply::new(
                553,
                (5, 6, 7),
                "Non-ASCII addresses require the SMTPUTF8 parameter on MAIL",
            ));
        }
        // Relay tricks (`a%b@us`, `a!b@us`, `"a@b"@us`, `@us:a@b`) and
        // address literals name another hop: never treat them as local,
        // whatever their domain says.
        let trick = mailbox.has_relay_trick() || source_route;
        let local_domain = match mailbox.domain {
            Domain::Name(name) if !trick => {
                let lower = name.to_lowercase();
                self.directory.is_local_domain(&lower).then_some(lower)
            }
            _ => None,
        };
        if let Some(domain) = local_domain {
            let normalized = format!("{}@{}", mailbox.local, domain);
            // RFC 5321 §4.5.1: postmaster@ every local domain exists.
            let exists = mailbox.local.eq_ignore_ascii_case("postmaster")
                || self.directory.mailbox_exists(&normalized);
            return if exists {
                Response::ok(Reply::new(
                    250,
                    (2, 1, 5),
                    format!("Recipient <{address}> OK"),
                ))
            } else {
                Response::ok(Reply::new(550, (5, 1, 1), "No such user here"))
            };
        }
        let may_relay = self.auth_user.is_some() || self.client.trusted;
        if !may_relay {
            return Response::ok(Reply::new(554, (5, 7, 1), "Relay access denied"));
        }
        if trick {
            return Response::ok(Reply::new(
                550,
                (5, 7, 1),
                "Addresses with %, !, a quoted @ or a source route are not accepted; \
                 please use a plain address like user@example.com",
            ));
        }
        Response::ok(Reply::new(
            250,
            (2, 1, 5),
            format!("Recipient <{address}> OK"),
        ))
    }

    /// `DATA`: the message follows, dot-stuffed, until CRLF.CRLF.
    fn on_data(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        let Some(transaction) = &self.transaction else {
            return out_of_sequence("Please send MAIL first");
        };
        if transaction.used_bdat {
            // RFC 3030 §3: DATA and BDAT cannot be mixed in one transaction.
            return out_of_sequence("DATA cannot follow BDAT in the same transaction");
        }
        if transaction.body_type == Some(Body::BinaryMime) {
            // RFC 3030 §3: BINARYMIME bodies can only be sent with BDAT.
            return out_of_sequence("A BODY=BINARYMIME message must be sent with BDAT");
        }
        if transaction.recipients.is_empty() {
            return if transaction.refused_recipients > 0 {
                // RFC 2920 §3.1: pipelined DATA after only failed RCPTs.
                Response::ok(Reply::new(554, (5, 5, 1), "No valid recipients"))
            } else {
                out_of_sequence("Please send RCPT first")
            };
        }
        self.mode = Mode::Data(Unstuffer::new(
            self.config.max_message_size,
            self.config.max_line_length,
        ));
        // RFC 2034 §3: only 2xx, 4xx and 5xx replies carry enhanced codes.
        Response::ok(Reply::plain(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".into()],
        ))
    }

    /// `BDAT size [LAST]` (RFC 3030): the chunk is always read, even when the
    /// command is refused, so its octets are never taken for commands.
    fn on_bdat(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Bdat { size, last } = command else {
            return self.on_unknown(line, command);
        };
        let max = self.config.max_message_size;
        let refusal = match &mut self.transaction {
            None => Some(Refusal {
                reply: Reply::new(503, (5, 5, 1), "Please send MAIL first"),
                reset: false,
                bad: true,
            }),
            Some(transaction) if transaction.recipients.is_empty() => {
                let reply = if transaction.refused_recipients > 0 {
                    Reply::new(554, (5, 5, 1), "No valid recipients")
                } else {
                    Reply::new(503, (5, 5, 1), "Please send RCPT first")
                };
                let bad = reply.code == 503;
                Some(Refusal {
                    reply,
                    reset: false,
                    bad,
                })
            }
            Some(transaction)
                if (transaction.message.len() as u64).saturating_add(size) > max as u64 =>
            {
                Some(Refusal {
                    reply: Reply::new(
                        552,
                        (5, 3, 4),
                        format!("Message too big: this server accepts messages up to {max} bytes"),
                    ),
                    reset: true,
                    bad: false,
                })
            }
            Some(transaction) => {
                transaction.used_bdat = true;
                None
            }
        };
        self.mode = Mode::Bdat(Chunk {
            remaining: size,
            size,
            last,
            refusal,
        });
        if size == 0 {
            return self.finish_chunk();
        }
        Response {
            reply: None,
            action: None,
            bad: false,
        }
    }

    /// `RSET`: ends the transaction; EHLO and AUTH stay.
    fn on_rset(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        self.transaction = None;
        Response::ok(Reply::new(250, (2, 0, 0), "Reset OK"))
    }

    /// `NOOP`.
    fn on_noop(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        Response::ok(Reply::new(250, (2, 0, 0), "OK"))
    }

    /// `QUIT`: 221 and close.
    fn on_quit(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        let text = format!("{} closing connection, goodbye", self.config.hostname);
        Response::ok(Reply::new(221, (2, 0, 0), text).and_close())
    }

    /// `VRFY`: RFC 5321 §3.5.3 allows 252 instead of revealing users.
    fn on_vrfy(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        Response::ok(Reply::new(
            252,
            (2, 5, 0),
            "Cannot verify the user, but will accept the message and attempt delivery",
        ))
    }

    /// `EXPN`: mailing lists are not disclosed (RFC 5321 §3.5.2, §7.3).
    fn on_expn(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        Response::ok(Reply::new(502, (5, 5, 1), "EXPN is not supported"))
    }

    /// `HELP`.
    fn on_help(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
        Response::ok(Reply::new(
            214,
            (2, 0, 0),
            "Supported commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
        ))
    }

    /// `STARTTLS` (RFC 3207).
    fn on_starttls(&mut self, _line: &[u8], _command: Command<'_>) -> Response {
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

    /// `AUTH mechanism [initial-response]` (RFC 4954).
    fn on_auth(&mut self, line: &[u8], command: Command<'_>) -> Response {
        let Command::Auth { mechanism, initial } = command else {
            return self.on_unknown(line, command);
        };
        if self.auth_user.is_some() {
            // RFC 4954 §4: AUTH once per session.
            return out_of_sequence("You are already logged in");
        }
        if !self.esmtp {
            return out_of_sequence("Please introduce yourself with EHLO first");
        }
        if self.transaction.is_some() {
            // RFC 4954 §4: not during a mail transaction.
            return out_of_sequence("AUTH is not allowed during a mail transaction");
        }
        if self.tls.is_none() {
            // RFC 4954 §6 / RFC 8314: no passwords over plaintext.
            return Response::ok(Reply::new(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        if mechanism.eq_ignore_ascii_case("PLAIN") {
            match initial {
                Some(initial) => self.finish_plain(initial.as_bytes()),
                None => {
                    // RFC 4954 §4: an empty challenge is `334 ` with a space.
                    self.mode = Mode::AuthPlain;
                    Response::ok(Reply::plain(334, vec!["".into()]))
                }
            }
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            match initial {
                // Outlook's cloud sender gives the user name at once.
                Some(initial) => self.login_username(initial.as_bytes()),
                None => {
                    self.mode = Mode::AuthLoginUser;
                    Response::ok(Reply::plain(
                        334,
                        vec![sasl::LOGIN_USERNAME_CHALLENGE.into()],
                    ))
                }
            }
        } else {
            Response::ok(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication mechanism; use PLAIN or LOGIN",
            ))
        }
    }

    /// A line during an AUTH dialogue.
    fn on_sasl_response(&mut self, line: &[u8]) -> Response {
        match std::mem::replace(&mut self.mode, Mode::Command) {
            Mode::AuthPlain => self.finish_plain(line),
            Mode::AuthLoginUser => self.login_username(line),
            Mode::AuthLoginPassword { username } => match decode_text(line) {
                Ok(password) => Response::act(
                    None,
                    Action::Authenticate(Credentials { username, password }),
                ),
                Err(error) => sasl_refusal(error),
            },
            other => {
                self.mode = other;
                self.dispatch(line)
            }
        }
    }

    /// Decodes a PLAIN response and asks for it to be checked.
    fn finish_plain(&mut self, response: &[u8]) -> Response {
        self.mode = Mode::Command;
        let decoded = std::str::from_utf8(response)
            .map_err(|_| SaslError::Malformed)
            .and_then(sasl::decode_response)
            .and_then(|message| sasl::decode_plain(&message));
        match decoded {
            Ok(credentials) => Response::act(None, Action::Authenticate(credentials)),
            Err(error) => sasl_refusal(error),
        }
    }

    /// Takes the LOGIN user name and asks for the password.
    fn login_username(&mut self, response: &[u8]) -> Response {
        match decode_text(response) {
            Ok(username) if !username.is_empty() => {
                self.mode = Mode::AuthLoginPassword { username };
                Response::ok(Reply::plain(
                    334,
                    vec![sasl::LOGIN_PASSWORD_CHALLENGE.into()],
                ))
            }
            Ok(_) => {
                self.mode = Mode::Command;
                sasl_refusal(SaslError::Malformed)
            }
            Err(error) => {
                self.mode = Mode::Command;
                sasl_refusal(error)
            }
        }
    }

    /// Unknown verbs (500) and known verbs with bad arguments (501, or 555
    /// for MAIL/RCPT parameters, RFC 5321 §4.1.1.11).
    fn on_unknown(&mut self, line: &[u8], command: Command<'_>) -> Response {
        match command {
            Command::Invalid(text) if is_mail_or_rcpt(line) && text.contains("arameter") => {
                Response::bad(Reply::new(555, (5, 5, 4), text))
            }
            Command::Invalid(text) => Response::bad(Reply::new(501, (5, 5, 4), text)),
            _ => Response::bad(Reply::new(500, (5, 5, 1), "Command not recognized")),
        }
    }

    /// Reads DATA octets through the unstuffer.
    fn step_data(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let Mode::Data(unstuffer) = &mut self.mode else {
            return Step::Progress(0);
        };
        let mut scratch = Vec::new();
        let sink = match &mut self.transaction {
            Some(transaction) => &mut transaction.message,
            None => &mut scratch,
        };
        match unstuffer.feed(rest, sink) {
            DataStatus::NeedMore => Step::NeedMore(rest.len()),
            DataStatus::End { consumed, result } => {
                self.mode = Mode::Command;
                let response = self.finish_message(result);
                self.finish_step(consumed, response, out)
            }
        }
    }

    /// Reads BDAT chunk octets as they are.
    fn step_bdat(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let Mode::Bdat(chunk) = &mut self.mode else {
            return Step::Progress(0);
        };
        let take = usize::try_from(chunk.remaining).map_or(rest.len(), |r| r.min(rest.len()));
        if chunk.refusal.is_none() {
            if let Some(transaction) = &mut self.transaction {
                transaction.message.extend_from_slice(&rest[..take]);
            }
        }
        chunk.remaining -= take as u64;
        if chunk.remaining > 0 {
            return Step::NeedMore(take);
        }
        let response = self.finish_chunk();
        self.finish_step(take, response, out)
    }

    /// The current BDAT chunk has been read: answer it.
    fn finish_chunk(&mut self) -> Response {
        let Mode::Bdat(chunk) = std::mem::replace(&mut self.mode, Mode::Command) else {
            return Response {
                reply: None,
                action: None,
                bad: false,
            };
        };
        if let Some(refusal) = chunk.refusal {
            if refusal.reset {
                self.transaction = None;
            }
            return Response {
                reply: Some(refusal.reply),
                action: None,
                bad: refusal.bad,
            };
        }
        if chunk.last {
            return self.finish_message(Ok(()));
        }
        Response::ok(Reply::new(
            250,
            (2, 0, 0),
            format!("{} octets received", chunk.size),
        ))
    }

    /// The message is complete: spool it, or say why not. Either way the
    /// transaction ends here.
    fn finish_message(&mut self, result: Result<(), BodyError>) -> Response {
        let Some(transaction) = self.transaction.take() else {
            return out_of_sequence("Please send MAIL first");
        };
        let reply = match result {
            Ok(()) => {
                let message = self.new_message(transaction);
                return Response::act(None, Action::Enqueue(Box::new(message)));
            }
            Err(BodyError::TooBig) => Reply::new(
                552,
                (5, 3, 4),
                format!(
                    "Message too big: this server accepts messages up to {} bytes",
                    self.config.max_message_size
                ),
            ),
            // RFC 5321 §2.3.8 and the 2023 SMTP smuggling attacks.
            Err(BodyError::BareNewline) => Reply::new(
                550,
                (5, 5, 2),
                "Bare CR or LF in message is not allowed (see RFC 5321 section 2.3.8)",
            ),
            Err(BodyError::LineTooLong) => Reply::new(
                550,
                (5, 5, 2),
                format!(
                    "A line in the message is longer than {} characters (see RFC 5321 section 4.5.3.1.6)",
                    self.config.max_line_length
                ),
            ),
        };
        Response::ok(reply)
    }

    /// The spool request for a finished transaction.
    fn new_message(&self, transaction: Transaction) -> NewMessage {
        NewMessage {
            envelope: Envelope {
                sender: transaction.sender,
                recipients: transaction.recipients,
                body: transaction.body_type,
                smtputf8: transaction.smtputf8,
                ret: transaction.ret,
                envid: transaction.envid,
            },
            origin: Origin {
                client_ip: self.client.ip.clone(),
                helo: self.helo.clone().unwrap_or_default(),
                tls: self.tls.clone(),
                auth_user: self.auth_user.clone(),
                protocol: self.protocol(transaction.smtputf8),
            },
            body: transaction.message,
        }
    }

    /// The `with` protocol name of the Received header (RFC 3848, and
    /// RFC 6531 §3.7.3 for SMTPUTF8).
    fn protocol(&self, smtputf8: bool) -> &'static str {
        let tls = self.tls.is_some();
        let auth = self.auth_user.is_some();
        match (self.esmtp, smtputf8, tls, auth) {
            (false, _, _, _) => "SMTP",
            (true, false, false, false) => "ESMTP",
            (true, false, false, true) => "ESMTPA",
            (true, false, true, false) => "ESMTPS",
            (true, false, true, true) => "ESMTPSA",
            (true, true, false, false) => "UTF8SMTP",
            (true, true, false, true) => "UTF8SMTPA",
            (true, true, true, false) => "UTF8SMTPS",
            (true, true, true, true) => "UTF8SMTPSA",
        }
    }
}
