//! The server side of one SMTP session as a state machine: bytes in,
//! replies and actions out. It never blocks: slow work (TLS handshake,
//! password checks, spooling) is asked for through an [`Action`] and its
//! result handed back by the caller.
//!
//! It owns the order of commands (EHLO before MAIL, MAIL before RCPT …),
//! the relay and sender policy (asking a [`Directory`]), the SASL dialogue,
//! the DATA and BDAT sections and every reply text. Commands are parsed by
//! `command`, lines split by `line`, DATA unstuffed by `dot`; replies are
//! rendered in one place (`Session::answer`) with `reply::Reply`.
//! It imports nothing with I/O.

use std::borrow::Cow;
use std::sync::Arc;

use super::address::{Domain, Mailbox, Path};
use super::command::{self, Body, Command, Ret};
use super::dot::{BodyError, DataStatus, Unstuffer};
use super::envelope::{EnqueueError, Envelope, NewMessage, Origin, Recipient};
use super::line::{LineSplitter, LineStatus, MAX_COMMAND_LINE};
use super::reply::Reply;
use super::sasl::{self, AuthResult, Credentials, SaslError};

/// RFC 4954 §4: AUTH command lines and SASL responses may be up to 12288
/// octets, longer than the 512 of other commands (large PLAIN responses).
pub const MAX_AUTH_LINE: usize = 12288;

/// RFC 5321 §4.1.2 / §4.5.3.1.2: a domain is at most 255 octets; that is as
/// much of a client's EHLO argument as we echo back.
const MAX_ECHOED_HELO: usize = 255;

/// The most message buffer reserved ahead on the word of `SIZE=`; bigger
/// messages grow the buffer as they arrive.
const PRESIZE_LIMIT: u64 = 4 << 20;

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

/// What the caller must do before feeding more input.
#[derive(Debug)]
pub enum Action {
    /// Flush the output (it ends with `220 2.0.0 Ready to start TLS`), drop every
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
    /// `SIZE=` as declared (RFC 1870), to size the message buffer once.
    declared_size: Option<u64>,
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

/// True when the line's verb is `MAIL` (for choosing the enhanced code of a
/// bad address: 5.1.7 for the sender, 5.1.3 for a recipient, RFC 3463).
fn is_mail(line: &[u8]) -> bool {
    line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"MAIL")
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

    /// The answer to [`Action::Authenticate`]. After
    /// [`AuthResult::Throttled`] the session is closed ([`Session::is_closed`]):
    /// flush the output and close the connection.
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
            declared_size: params.size,
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
        // Grow the buffer once to the declared size instead of doubling
        // from empty (each doubling copies the message so far). The size
        // was checked against the limit at MAIL; a lying client costs at
        // most PRESIZE_LIMIT of untouched address space.
        let presize = transaction.declared_size.unwrap_or(0).min(PRESIZE_LIMIT);
        if let Some(transaction) = &mut self.transaction {
            transaction.message.reserve(presize as usize);
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

    /// Unknown verbs (500) and known verbs with bad arguments: 555 for
    /// unknown MAIL/RCPT parameters (RFC 5321 §4.1.1.11), 501 5.1.7 / 5.1.3
    /// for a bad sender / recipient address, else 501 5.5.4.
    fn on_unknown(&mut self, line: &[u8], command: Command<'_>) -> Response {
        match command {
            Command::Invalid(text) if command::is_unsupported_parameter(text) => {
                Response::bad(Reply::new(555, (5, 5, 4), text))
            }
            Command::Invalid(text) if command::is_bad_address(text) => {
                let detail = if is_mail(line) { 7 } else { 3 };
                Response::bad(Reply::new(501, (5, 1, detail), text))
            }
            Command::Invalid(text) => Response::bad(Reply::new(501, (5, 5, 4), text)),
            _ => Response::bad(Reply::new(500, (5, 5, 1), "Command not recognized")),
        }
    }

    /// Reads DATA octets through the unstuffer.
    fn step_data(&mut self, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let Mode::Data(unstuffer) = &mut self.mode else {
            return Step::NeedMore(0);
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
            return Step::NeedMore(0);
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

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD_PASSWORD: &str = "secret";

    /// A directory with fixed data: `example.com` is local with alice and
    /// bob; alice may also send as `sales@example.com`.
    struct FixedDirectory;

    impl Directory for FixedDirectory {
        fn is_local_domain(&self, domain: &str) -> bool {
            domain == "example.com"
        }
        fn mailbox_exists(&self, address: &str) -> bool {
            matches!(address, "alice@example.com" | "bob@example.com")
        }
        fn may_send_as(&self, user: &str, sender: &str) -> bool {
            user == sender || (user == "alice@example.com" && sender == "sales@example.com")
        }
    }

    fn config() -> SessionConfig {
        SessionConfig {
            hostname: "mx.example.com".to_string(),
            max_message_size: 1000,
            max_recipients: 3,
            max_bad_commands: 5,
            max_line_length: 1000,
            auth_equals_line: false,
            sender_check: true,
            tls_available: true,
        }
    }

    fn session_with(role: Role, config: SessionConfig, trusted: bool) -> Session {
        let tls = (role == Role::Submissions).then(|| "TLSv1.3".to_string());
        let client = ClientInfo {
            ip: "192.0.2.7".to_string(),
            trusted,
            tls,
        };
        Session::new(role, Arc::new(config), Arc::new(FixedDirectory), client)
    }

    fn session(role: Role) -> Session {
        session_with(role, config(), false)
    }

    /// Everything a conversation produced, for comparing runs.
    #[derive(Debug, Default, PartialEq)]
    struct Run {
        out: Vec<u8>,
        messages: Vec<NewMessage>,
        logins: Vec<String>,
        closed: bool,
        tls_starts: usize,
    }

    impl Run {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.out).into_owned()
        }

        /// The code of each complete reply, in order.
        fn codes(&self) -> Vec<u16> {
            self.text()
                .split("\r\n")
                .filter(|line| line.len() >= 4 && line.as_bytes()[3] == b' ')
                .map(|line| line[..3].parse().unwrap())
                .collect()
        }
    }

    /// Plays the caller: keeps a buffer, answers actions like the runtime
    /// would (password `secret` is right, the spool always succeeds with id
    /// `Q1`), and feeds the chunks in order.
    fn drive(session: &mut Session, chunks: &[&[u8]]) -> Run {
        let mut run = Run::default();
        let mut buf = Vec::new();
        for chunk in chunks {
            buf.extend_from_slice(chunk);
            for _ in 0..10_000 {
                let feed = session.feed(&buf, &mut run.out);
                buf.drain(..feed.consumed);
                match feed.action {
                    None => break,
                    Some(Action::Close) => {
                        run.closed = true;
                        check_replies(&run.out);
                        return run;
                    }
                    Some(Action::StartTls) => {
                        assert!(buf.is_empty(), "pipelined bytes after STARTTLS were kept");
                        run.tls_starts += 1;
                        session.tls_started("TLSv1.3");
                    }
                    Some(Action::Authenticate(credentials)) => {
                        let result = if credentials.password == GOOD_PASSWORD {
                            AuthResult::Success
                        } else {
                            AuthResult::Failure
                        };
                        run.logins.push(credentials.username);
                        session.auth_result(result, &mut run.out);
                    }
                    Some(Action::Enqueue(message)) => {
                        run.messages.push(*message);
                        session.enqueued(Ok("Q1"), &mut run.out);
                    }
                }
                assert!(!session.is_closed() || run.closed);
            }
        }
        check_replies(&run.out);
        run
    }

    fn drive_all(session: &mut Session, input: &[u8]) -> Run {
        drive(session, &[input])
    }

    /// Every reply line is `ddd[ -]text\r\n`, at most 512 octets (RFC 5321
    /// §4.5.3.1.5), a multi-line reply keeps its code and ends with a space
    /// line, and an enhanced code, where present, matches the reply class.
    fn check_replies(out: &[u8]) {
        assert!(
            out.is_empty() || out.ends_with(b"\r\n"),
            "unterminated reply: {out:?}"
        );
        let mut continuing: Option<&[u8]> = None;
        for line in out.split_inclusive(|&b| b == b'\n') {
            assert!(line.ends_with(b"\r\n"), "bare LF in reply: {line:?}");
            assert!(line.len() <= 512, "reply line over 512 octets");
            let body = &line[..line.len() - 2];
            assert!(!body.contains(&b'\r'), "bare CR in reply: {line:?}");
            assert!(body.len() >= 4, "short reply line: {line:?}");
            let code = &body[..3];
            assert!(code.iter().all(u8::is_ascii_digit), "bad code: {line:?}");
            assert!(b"2345".contains(&code[0]), "bad code class: {line:?}");
            if let Some(previous) = continuing {
                assert_eq!(previous, code, "continuation changes the code: {line:?}");
            }
            continuing = match body[3] {
                b'-' => Some(code),
                b' ' => None,
                _ => panic!("no separator after the code: {line:?}"),
            };
            let text = &body[4..];
            if text.len() >= 2 && text[0].is_ascii_digit() && text[1] == b'.' {
                assert_eq!(text[0], code[0], "enhanced code class differs: {line:?}");
            }
        }
        assert!(continuing.is_none(), "multi-line reply never ended");
    }

    fn b64(text: &str) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    fn plain_response(user: &str, password: &str) -> String {
        b64(&format!("\0{user}\0{password}"))
    }

    const EHLO_PLAIN: &str = "250-mx.example.com Hello client.example [192.0.2.7]\r\n\
        250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
        250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 STARTTLS\r\n";
    const EHLO_TLS: &str = "250-mx.example.com Hello client.example [192.0.2.7]\r\n\
        250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
        250-ENHANCEDSTATUSCODES\r\n250-CHUNKING\r\n250-DSN\r\n250 AUTH PLAIN LOGIN\r\n";

    #[test]
    fn session_can_move_between_threads() {
        fn assert_send<T: Send>() {}
        assert_send::<Session>();
    }

    #[test]
    fn greeting_has_no_enhanced_code() {
        let mut out = Vec::new();
        session(Role::Smtp).greeting(&mut out);
        assert_eq!(out, b"220 mx.example.com ESMTP Outpost ready\r\n");
        check_replies(&out);
    }

    #[test]
    fn ehlo_advertises_by_role_and_tls() {
        let mut smtp = session(Role::Smtp);
        assert_eq!(
            drive_all(&mut smtp, b"EHLO client.example\r\n").text(),
            EHLO_PLAIN
        );
        let mut submissions = session(Role::Submissions);
        assert_eq!(
            drive_all(&mut submissions, b"EHLO client.example\r\n").text(),
            EHLO_TLS
        );

        let mut old_outlook = config();
        old_outlook.auth_equals_line = true;
        let mut s = session_with(Role::Submissions, old_outlook, false);
        let text = drive_all(&mut s, b"EHLO DESKTOP-7Q2K3LM\r\n").text();
        assert!(
            text.ends_with("250-AUTH PLAIN LOGIN\r\n250 AUTH=PLAIN LOGIN\r\n"),
            "{text}"
        );

        let mut no_tls = config();
        no_tls.tls_available = false;
        let mut s = session_with(Role::Submission, no_tls, false);
        let text = drive_all(&mut s, b"EHLO [127.0.0.1]\r\nSTARTTLS\r\n").text();
        assert!(
            !text.contains("STARTTLS") && !text.contains("AUTH"),
            "{text}"
        );
        assert!(
            text.ends_with("454 4.7.0 TLS is not available\r\n"),
            "{text}"
        );
    }

    #[test]
    fn helo_is_plain_smtp() {
        let mut s = session(Role::Smtp);
        let run = drive_all(
            &mut s,
            b"HELO relay.example\r\nMAIL FROM:<x@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
              DATA\r\nhi\r\n.\r\n",
        );
        assert!(run
            .text()
            .starts_with("250 mx.example.com Hello relay.example [192.0.2.7]\r\n"));
        assert_eq!(run.codes(), [250, 250, 250, 354, 250]);
        assert_eq!(run.messages[0].origin.protocol, "SMTP");
    }

    /// The whole happy path on each listener, as a transcript.
    #[test]
    fn full_transaction_on_each_role() {
        let auth = format!(
            "AUTH PLAIN {}\r\n",
            plain_response("alice@example.com", "secret")
        );
        let cases: [(Role, Vec<&[u8]>, &str); 4] = [
            (Role::Smtp, vec![b"EHLO client.example\r\n"], "ESMTP"),
            (
                Role::Smtp,
                vec![
                    b"EHLO client.example\r\nSTARTTLS\r\n",
                    b"EHLO client.example\r\n",
                    auth.as_bytes(),
                ],
                "ESMTPSA",
            ),
            (
                Role::Submission,
                vec![
                    b"EHLO client.example\r\nSTARTTLS\r\n",
                    b"EHLO client.example\r\n",
                    auth.as_bytes(),
                ],
                "ESMTPSA",
            ),
            (
                Role::Submissions,
                vec![b"EHLO client.example\r\n", auth.as_bytes()],
                "ESMTPSA",
            ),
        ];
        for (role, setup, protocol) in cases {
            let mut s = session(role);
            let mut chunks = setup.clone();
            chunks.extend_from_slice(&[
                b"MAIL FROM:<alice@example.com>\r\n",
                b"RCPT TO:<bob@example.com>\r\n",
                b"DATA\r\n",
                b"Subject: hi\r\n\r\n..dot\r\nbye\r\n.\r\n",
                b"QUIT\r\n",
            ]);
            let run = drive(&mut s, &chunks);
            let text = run.text();
            let tail = "250 2.1.0 Sender <alice@example.com> OK\r\n\
                250 2.1.5 Recipient <bob@example.com> OK\r\n\
                354 End data with <CR><LF>.<CR><LF>\r\n\
                250 2.0.0 Ok: queued as Q1\r\n\
                221 2.0.0 mx.example.com closing connection, goodbye\r\n";
            assert!(text.ends_with(tail), "{role:?}: {text}");
            assert!(run.closed && s.is_closed());
            let message = &run.messages[0];
            assert_eq!(message.body, b"Subject: hi\r\n\r\n.dot\r\nbye\r\n");
            assert_eq!(message.envelope.sender, "alice@example.com");
            assert_eq!(message.envelope.recipients[0].address, "bob@example.com");
            assert_eq!(message.origin.protocol, protocol, "{role:?}");
            assert_eq!(message.origin.helo, "client.example");
            assert_eq!(message.origin.client_ip, "192.0.2.7");
            if protocol == "ESMTPSA" {
                assert_eq!(
                    message.origin.auth_user.as_deref(),
                    Some("alice@example.com")
                );
                assert_eq!(message.origin.tls.as_deref(), Some("TLSv1.3"));
            }
        }
    }

    /// Outlook's AUTH LOGIN, PLAIN in both forms, and every way it fails.
    #[test]
    fn auth_dialogues() {
        let user = b64("alice@example.com");
        let good = b64("secret");
        let bad = b64("wrong");
        let plain = plain_response("alice@example.com", "secret");
        let cases: Vec<(String, &str)> = vec![
            (
                format!("AUTH LOGIN\r\n{user}\r\n{good}\r\n"),
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                format!("auth login {user}\r\n{good}\r\n"),
                "334 UGFzc3dvcmQ6\r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                format!("AUTH LOGIN\r\n{user}\r\n{bad}\r\n"),
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n\
                 535 5.7.8 Authentication failed: wrong user name or password\r\n",
            ),
            (
                format!("AUTH PLAIN {plain}\r\n"),
                "235 2.7.0 Authentication successful\r\n",
            ),
            (
                format!("AUTH PLAIN\r\n{plain}\r\n"),
                "334 \r\n235 2.7.0 Authentication successful\r\n",
            ),
            // Two spaces before the base64, as some Microsoft clients send.
            (
                format!("AUTH PLAIN\r\n  {plain}\r\n"),
                "334 \r\n235 2.7.0 Authentication successful\r\n",
            ),
            (
                "AUTH LOGIN\r\n*\r\n".into(),
                "334 VXNlcm5hbWU6\r\n501 5.7.0 Authentication cancelled\r\n",
            ),
            (
                format!("AUTH LOGIN\r\n{user}\r\n*\r\n"),
                "334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n501 5.7.0 Authentication cancelled\r\n",
            ),
            (
                "AUTH PLAIN\r\n*\r\n".into(),
                "334 \r\n501 5.7.0 Authentication cancelled\r\n",
            ),
            (
                "AUTH PLAIN !!notbase64\r\n".into(),
                "501 5.5.2 The authentication data could not be decoded; please try again\r\n",
            ),
            (
                "AUTH CRAM-MD5\r\n".into(),
                "504 5.5.4 Unrecognized authentication mechanism; use PLAIN or LOGIN\r\n",
            ),
            (
                format!("AUTH PLAIN {plain}\r\nAUTH PLAIN {plain}\r\n"),
                "235 2.7.0 Authentication successful\r\n503 5.5.1 You are already logged in\r\n",
            ),
        ];
        for (input, expected) in cases {
            let mut s = session(Role::Submissions);
            drive_all(&mut s, b"EHLO DESKTOP-7Q2K3LM\r\n");
            let run = drive_all(&mut s, input.as_bytes());
            assert_eq!(run.text(), expected, "{input:?}");
        }
    }

    /// RFC 4954 §4: AUTH lines and responses may exceed 512 octets; other
    /// commands may not.
    #[test]
    fn long_auth_lines_are_read() {
        let long = plain_response("alice@example.com", &"p".repeat(600));
        let input = format!("EHLO c\r\nAUTH PLAIN {long}\r\nAUTH PLAIN\r\n{long}\r\n");
        let run = drive_all(&mut session(Role::Submissions), input.as_bytes());
        let failed = "535 5.7.8 Authentication failed: wrong user name or password\r\n";
        assert!(
            run.text().ends_with(&format!("{failed}334 \r\n{failed}")),
            "{}",
            run.text()
        );
        assert_eq!(run.logins.len(), 2);
        let run = drive_all(
            &mut session(Role::Smtp),
            format!("NOOP {long}\r\n").as_bytes(),
        );
        assert_eq!(run.text(), "500 5.5.2 Line too long\r\n");
    }

    #[test]
    fn auth_result_variants() {
        let cases = [
            (
                AuthResult::Success,
                "235 2.7.0 Authentication successful\r\n",
                false,
            ),
            (
                AuthResult::Failure,
                "535 5.7.8 Authentication failed: wrong user name or password\r\n",
                false,
            ),
            (
                AuthResult::Throttled,
                "421 4.7.0 Too many failed login attempts; please try again later\r\n",
                true,
            ),
            (
                AuthResult::TemporaryFailure,
                "454 4.7.0 Temporary authentication failure; please try again later\r\n",
                false,
            ),
        ];
        for (result, expected, closes) in cases {
            let mut s = session(Role::Submissions);
            let mut out = Vec::new();
            let input = format!(
                "EHLO c\r\nAUTH PLAIN {}\r\nNOOP\r\n",
                plain_response("alice@example.com", "x")
            );
            let feed = s.feed(input.as_bytes(), &mut out);
            assert!(matches!(feed.action, Some(Action::Authenticate(_))));
            // Nothing is read while the check is outstanding.
            let rest = &input.as_bytes()[feed.consumed..];
            assert_eq!(rest, b"NOOP\r\n");
            let again = s.feed(rest, &mut out);
            assert_eq!((again.consumed, again.action.is_none()), (0, true));
            out.clear();
            s.auth_result(result, &mut out);
            assert_eq!(String::from_utf8_lossy(&out), expected);
            assert_eq!(s.is_closed(), closes);
            assert_eq!(s.auth_user().is_some(), result == AuthResult::Success);
            check_replies(&out);
        }
    }

    #[test]
    fn auth_needs_tls_and_is_not_advertised_before() {
        for role in [Role::Smtp, Role::Submission] {
            let mut s = session(role);
            let plain = plain_response("alice@example.com", "secret");
            let run = drive_all(
                &mut s,
                format!("EHLO c\r\nAUTH PLAIN {plain}\r\nAUTH LOGIN\r\nMAIL FROM:<alice@example.com>\r\n")
                    .as_bytes(),
            );
            let text = run.text();
            assert!(!text.contains("AUTH PLAIN LOGIN"), "{text}");
            assert!(text.contains("250 STARTTLS\r\n"));
            let refusal =
                "538 5.7.11 Encryption required for requested authentication mechanism\r\n";
            assert_eq!(text.matches(refusal).count(), 2, "{text}");
            assert!(run.logins.is_empty());
            if role == Role::Submission {
                assert!(
                    text.ends_with("530 5.7.0 Authentication required\r\n"),
                    "{text}"
                );
            }
        }
    }

    #[test]
    fn auth_sequence_errors() {
        let plain = plain_response("alice@example.com", "secret");
        let cases: Vec<(Role, String, &str)> = vec![
            // AUTH before EHLO.
            (Role::Submissions, format!("AUTH PLAIN {plain}\r\n"), "503 5.5.1 Please introduce yourself with EHLO first\r\n"),
            // AUTH inside a transaction (trusted relay on port 25 over TLS).
            (
                Role::Smtp,
                format!("EHLO c\r\nSTARTTLS\r\nEHLO c\r\nMAIL FROM:<a@b.example>\r\nAUTH PLAIN {plain}\r\n"),
                "503 5.5.1 AUTH is not allowed during a mail transaction\r\n",
            ),
        ];
        for (role, input, expected) in cases {
            let mut s = session(role);
            let mut chunks: Vec<&[u8]> = Vec::new();
            for part in input.split_inclusive("STARTTLS\r\n") {
                chunks.push(part.as_bytes());
            }
            let run = drive(&mut s, &chunks);
            assert!(run.text().ends_with(expected), "{input}: {}", run.text());
        }
    }

    /// `(recipient, authenticated, trusted, expected reply)` on port 25.
    #[test]
    fn relay_policy() {
        let denied = "554 5.7.1 Relay access denied";
        let trick =
            "550 5.7.1 Addresses with %, !, a quoted @ or a source route are not accepted; \
                     please use a plain address like user@example.com";
        let cases: [(&str, bool, bool, &str); 23] = [
            (
                "<bob@example.com>",
                false,
                false,
                "250 2.1.5 Recipient <bob@example.com> OK",
            ),
            (
                "<Bob@EXAMPLE.com>",
                false,
                false,
                "550 5.1.1 No such user here",
            ),
            (
                "<carol@example.com>",
                false,
                false,
                "550 5.1.1 No such user here",
            ),
            (
                "<postmaster@example.com>",
                false,
                false,
                "250 2.1.5 Recipient <postmaster@example.com> OK",
            ),
            (
                "<PostMaster@Example.COM>",
                false,
                false,
                "250 2.1.5 Recipient <PostMaster@Example.COM> OK",
            ),
            (
                "<Postmaster>",
                false,
                false,
                "250 2.1.5 Recipient <Postmaster> OK",
            ),
            (
                "<PostmAster>",
                false,
                false,
                "250 2.1.5 Recipient <Postmaster> OK",
            ),
            ("<x@elsewhere.example>", false, false, denied),
            (
                "<x@elsewhere.example>",
                false,
                true,
                "250 2.1.5 Recipient <x@elsewhere.example> OK",
            ),
            (
                "<x@elsewhere.example>",
                true,
                false,
                "250 2.1.5 Recipient <x@elsewhere.example> OK",
            ),
            // The tricks, each with a local domain on the outside.
            ("<x%elsewhere.example@example.com>", false, false, denied),
            ("<elsewhere.example!x@example.com>", false, false, denied),
            (
                "<\"x@elsewhere.example\"@example.com>",
                false,
                false,
                denied,
            ),
            ("<@example.com:x@elsewhere.example>", false, false, denied),
            ("<@elsewhere.example:bob@example.com>", false, false, denied),
            ("<x@[192.0.2.1]>", false, false, denied),
            ("<bob@[127.0.0.1]>", false, false, denied),
            // Never relayed even for a trusted or logged-in client.
            ("<x%elsewhere.example@example.com>", false, true, trick),
            ("<elsewhere.example!x@example.com>", true, false, trick),
            ("<\"x@elsewhere.example\"@example.com>", true, false, trick),
            ("<@example.com:x@elsewhere.example>", false, true, trick),
            ("<x%y@elsewhere.example>", true, false, trick),
            (
                "<x@[192.0.2.1]>",
                true,
                false,
                "250 2.1.5 Recipient <x@[192.0.2.1]> OK",
            ),
        ];
        for (rcpt, authenticated, trusted, expected) in cases {
            let mut s = session_with(Role::Smtp, config(), trusted);
            let mut chunks: Vec<Vec<u8>> = vec![b"EHLO c\r\n".to_vec()];
            if authenticated {
                chunks.push(b"STARTTLS\r\n".to_vec());
                chunks.push(b"EHLO c\r\n".to_vec());
                let auth = format!(
                    "AUTH PLAIN {}\r\n",
                    plain_response("alice@example.com", "secret")
                );
                chunks.push(auth.into_bytes());
            }
            let sender = if authenticated {
                "alice@example.com"
            } else {
                "a@remote.example"
            };
            chunks.push(format!("MAIL FROM:<{sender}>\r\nRCPT TO:{rcpt}\r\n").into_bytes());
            let chunks: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
            let run = drive(&mut s, &chunks);
            let expected = format!("{expected}\r\n");
            assert!(run.text().ends_with(&expected), "{rcpt}: {}", run.text());
        }
    }

    #[test]
    fn submission_after_auth_may_send_anywhere_but_not_via_tricks() {
        let plain = plain_response("alice@example.com", "secret");
        let mut s = session(Role::Submissions);
        let run = drive_all(
            &mut s,
            format!(
                "EHLO DESKTOP-7Q2K3LM\r\nAUTH PLAIN {plain}\r\nMAIL FROM: <alice@example.com>\r\n\
                 RCPT TO: <friend@elsewhere.example>\r\nRCPT TO:<a%b@elsewhere.example>\r\n\
                 RCPT TO:<carol@example.com>\r\n"
            )
            .as_bytes(),
        );
        assert_eq!(run.codes(), [250, 235, 250, 250, 550, 550]);
    }

    #[test]
    fn sender_check() {
        let plain = plain_response("alice@example.com", "secret");
        let cases: [(&str, bool, &str); 5] = [
            (
                "<alice@example.com>",
                true,
                "250 2.1.0 Sender <alice@example.com> OK",
            ),
            (
                "<sales@example.com>",
                true,
                "250 2.1.0 Sender <sales@example.com> OK",
            ),
            ("<>", true, "250 2.1.0 Sender <> OK"),
            (
                "<bob@example.com>",
                true,
                "553 5.7.1 You are not allowed to send as <bob@example.com>",
            ),
            (
                "<bob@example.com>",
                false,
                "250 2.1.0 Sender <bob@example.com> OK",
            ),
        ];
        for (sender, check, expected) in cases {
            let mut cfg = config();
            cfg.sender_check = check;
            let mut s = session_with(Role::Submissions, cfg, false);
            let input = format!("EHLO c\r\nAUTH PLAIN {plain}\r\nMAIL FROM:{sender}\r\n");
            let run = drive_all(&mut s, input.as_bytes());
            assert!(
                run.text().ends_with(&format!("{expected}\r\n")),
                "{sender}: {}",
                run.text()
            );
        }
    }

    /// Commands out of order, and their replies.
    #[test]
    fn sequence_errors() {
        let cases: [(&str, &str); 9] = [
            (
                "MAIL FROM:<a@b.example>\r\n",
                "503 5.5.1 Please introduce yourself with EHLO first",
            ),
            (
                "EHLO c\r\nRCPT TO:<bob@example.com>\r\n",
                "503 5.5.1 Please send MAIL first",
            ),
            ("EHLO c\r\nDATA\r\n", "503 5.5.1 Please send MAIL first"),
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nDATA\r\n",
                "503 5.5.1 Please send RCPT first",
            ),
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nMAIL FROM:<a@b.example>\r\n",
                "503 5.5.1 A transaction is already in progress; send RSET first",
            ),
            // RFC 2920: a pipelined DATA after only refused recipients.
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\nDATA\r\n",
                "554 5.5.1 No valid recipients",
            ),
            // EHLO ends the transaction.
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nEHLO c\r\nRCPT TO:<bob@example.com>\r\n",
                "503 5.5.1 Please send MAIL first",
            ),
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRSET\r\nRCPT TO:<bob@example.com>\r\n",
                "503 5.5.1 Please send MAIL first",
            ),
            ("EHLO c\r\nSTARTTLS\r\n", "220 2.0.0 Ready to start TLS"),
        ];
        for (input, expected) in cases {
            let mut s = session(Role::Smtp);
            let mut out = Vec::new();
            s.feed(input.as_bytes(), &mut out);
            let text = String::from_utf8_lossy(&out);
            assert!(
                text.ends_with(&format!("{expected}\r\n")),
                "{input:?}: {text}"
            );
            check_replies(&out);
        }
    }

    /// Bad arguments: the parser's text, with the code that fits.
    #[test]
    fn syntax_errors() {
        let cases: [(&str, &str); 5] = [
            ("EHLO\r\n", "501 5.5.4 Syntax: EHLO hostname"),
            (
                "EHLO c\r\nMAIL FROM:<a@b.example> FOO=1\r\n",
                "555 5.5.4 MAIL FROM parameter not supported: this server knows SIZE, BODY, \
                 SMTPUTF8, RET, ENVID and AUTH",
            ),
            (
                "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@example.com> XYZ\r\n",
                "555 5.5.4 RCPT TO parameter not supported: this server knows NOTIFY and ORCPT",
            ),
            (
                "EHLO c\r\nMAIL FROM:<not an address>\r\n",
                "501 5.1.7 The sender address is not a valid address: use MAIL FROM:<user@example.com>",
            ),
            (
                "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@@example.com>\r\n",
                "501 5.1.3 The recipient address is not a valid address: use RCPT TO:<user@example.com>",
            ),
        ];
        for (input, expected) in cases {
            let run = drive_all(&mut session(Role::Smtp), input.as_bytes());
            assert!(
                run.text().ends_with(&format!("{expected}\r\n")),
                "{input:?}: {}",
                run.text()
            );
        }
    }

    #[test]
    fn simple_commands() {
        let mut s = session(Role::Smtp);
        let run = drive_all(
            &mut s,
            b"NOOP\r\nVRFY bob\r\nHELP\r\nRSET\r\nEXPN list\r\nFOO\r\n",
        );
        assert_eq!(
            run.text(),
            "250 2.0.0 OK\r\n\
             252 2.5.0 Cannot verify the user, but will accept the message and attempt delivery\r\n\
             214 2.0.0 Supported commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH\r\n\
             250 2.0.0 Reset OK\r\n\
             502 5.5.1 EXPN is not supported\r\n\
             500 5.5.1 Command not recognized\r\n"
        );
    }

    #[test]
    fn rset_keeps_ehlo_and_auth() {
        let plain = plain_response("alice@example.com", "secret");
        let mut s = session(Role::Submissions);
        let run = drive_all(
            &mut s,
            format!("EHLO c\r\nAUTH PLAIN {plain}\r\nMAIL FROM:<alice@example.com>\r\nRSET\r\nMAIL FROM:<alice@example.com>\r\n")
                .as_bytes(),
        );
        assert_eq!(run.codes(), [250, 235, 250, 250, 250]);
    }

    /// A whole transaction in one write (RFC 2920).
    #[test]
    fn pipelined_transaction_in_one_feed() {
        let mut s = session(Role::Smtp);
        let mut out = Vec::new();
        let input = b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
                      RCPT TO:<nobody@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\n\
                      Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n";
        let feed = s.feed(input, &mut out);
        let Some(Action::Enqueue(message)) = feed.action else {
            panic!("no message")
        };
        assert_eq!(&input[feed.consumed..], b"QUIT\r\n");
        let recipients: Vec<&str> = message
            .envelope
            .recipients
            .iter()
            .map(|r| r.address.as_str())
            .collect();
        assert_eq!(recipients, ["bob@example.com", "alice@example.com"]);
        s.enqueued(Ok("Q7"), &mut out);
        let feed = s.feed(b"QUIT\r\n", &mut out);
        assert!(matches!(feed.action, Some(Action::Close)));
        let run = Run {
            out,
            ..Run::default()
        };
        assert_eq!(run.codes(), [250, 250, 250, 550, 250, 354, 250, 221]);
        assert!(run.text().contains("250 2.0.0 Ok: queued as Q7\r\n"));
    }

    /// Every sequence of the public SMTP smuggling lists, followed by
    /// commands an attacker hopes we take as a second message.
    #[test]
    fn smuggling_sequences_never_end_data() {
        let sequences: [&[u8]; 10] = [
            b"\n.\n",
            b"\n.\r\n",
            b"\r.\n",
            b"\r.\r",
            b"\r.\r\n",
            b"\r\n.\r",
            b"\r\n.\n",
            b"\n.\r",
            b"\r\n\x00.\r\n",
            b"\r\n.\x00\r\n",
        ];
        for sequence in sequences {
            let mut input =
                b"EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n\
                              Subject: real\r\n\r\nhello"
                    .to_vec();
            input.extend_from_slice(sequence);
            input.extend_from_slice(
                b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<alice@example.com>\r\nDATA\r\nforged\r\n",
            );
            input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
            let mut s = session(Role::Smtp);
            let run = drive_all(&mut s, &input);
            let codes = run.codes();
            assert_eq!(codes.len(), 6, "{sequence:?}: {}", run.text());
            assert_eq!(codes[..4], [250, 250, 250, 354]);
            assert_eq!(codes[5], 221);
            if sequence.contains(&0) {
                // Not a line end at all: one message with the text inside.
                assert_eq!(codes[4], 250);
                assert_eq!(run.messages.len(), 1);
                assert_eq!(run.messages[0].envelope.recipients.len(), 1);
                assert_eq!(run.messages[0].envelope.sender, "a@remote.example");
            } else {
                assert!(
                    run.text().contains(
                        "550 5.5.2 Bare CR or LF in message is not allowed (see RFC 5321 section 2.3.8)\r\n"
                    ),
                    "{sequence:?}: {}",
                    run.text()
                );
                assert!(run.messages.is_empty());
            }
        }
    }

    #[test]
    fn starttls_discards_pipelined_bytes_and_resets() {
        let mut s = session(Role::Submission);
        let mut out = Vec::new();
        let input = b"EHLO c\r\nSTARTTLS\r\nMAIL FROM:<evil@example.com>\r\nRCPT TO:<x@elsewhere.example>\r\n";
        let feed = s.feed(input, &mut out);
        assert!(matches!(feed.action, Some(Action::StartTls)));
        assert_eq!(feed.consumed, input.len());
        assert!(String::from_utf8_lossy(&out).ends_with("220 2.0.0 Ready to start TLS\r\n"));
        // Nothing is read until the handshake is done.
        assert_eq!(s.feed(b"NOOP\r\n", &mut out).consumed, 0);
        s.tls_started("TLSv1.2");
        assert_eq!(s.tls_version(), Some("TLSv1.2"));
        assert_eq!(s.helo_name(), None);
        out.clear();
        // EHLO state was forgotten: MAIL needs a new EHLO (RFC 3207 §4.2).
        s.feed(
            b"MAIL FROM:<a@b.example>\r\nEHLO c\r\nSTARTTLS\r\n",
            &mut out,
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("503 5.5.1 Please introduce yourself with EHLO first\r\n"));
        assert!(
            text.contains("250 AUTH PLAIN LOGIN\r\n") && !text.contains("STARTTLS"),
            "{text}"
        );
        assert!(
            text.ends_with("503 5.5.1 TLS is already active\r\n"),
            "{text}"
        );
    }

    #[test]
    fn starttls_forgets_a_transaction() {
        let mut s = session_with(Role::Smtp, config(), true);
        let run = drive(
            &mut s,
            &[
                b"EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\nSTARTTLS\r\n",
                b"EHLO c\r\nDATA\r\n",
            ],
        );
        assert_eq!(run.tls_starts, 1);
        assert!(
            run.text().ends_with("503 5.5.1 Please send MAIL first\r\n"),
            "{}",
            run.text()
        );
    }

    #[test]
    fn bdat_chunks() {
        let prefix = "EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n";
        /// A script after MAIL and RCPT, the reply codes, the message.
        type Case = (&'static str, &'static [u16], Option<&'static [u8]>);
        let cases: [Case; 6] = [
            // Binary content: bare LF and CR and dot lines are just octets.
            (
                "BDAT 8\r\nab\n.\r\ncdBDAT 6 LAST\r\n\r.\r\n\r\nNOOP\r\n",
                &[250, 250, 250, 250, 250, 250],
                Some(b"ab\n.\r\ncd\r.\r\n\r\n"),
            ),
            (
                "BDAT 0 LAST\r\nNOOP\r\n",
                &[250, 250, 250, 250, 250],
                Some(b""),
            ),
            (
                "BDAT 2\r\nabBDAT 0 LAST\r\n",
                &[250, 250, 250, 250, 250],
                Some(b"ab"),
            ),
            // DATA may not follow BDAT.
            (
                "BDAT 2\r\nabDATA\r\nRSET\r\n",
                &[250, 250, 250, 250, 503, 250],
                None,
            ),
            // Too big: the chunk is read fully, then 552, and the
            // transaction is gone.
            (
                "BDAT 600\r\n@600BDAT 600 LAST\r\n@600RCPT TO:<bob@example.com>\r\n",
                &[250, 250, 250, 250, 552, 503],
                None,
            ),
            // Without MAIL the chunk is still read and not taken as commands.
            (
                "RSET\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
                &[250, 250, 250, 250, 503, 250],
                None,
            ),
        ];
        for (script, codes, body) in cases {
            let script = script.replace("@600", &"x".repeat(600));
            let mut s = session(Role::Smtp);
            let run = drive_all(&mut s, format!("{prefix}{script}").as_bytes());
            assert_eq!(run.codes(), codes, "{script:?}: {}", run.text());
            assert_eq!(
                run.messages.first().map(|m| m.body.as_slice()),
                body,
                "{script:?}"
            );
            assert!(!run.closed);
        }
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, format!("{prefix}BDAT 3\r\nabc").as_bytes());
        assert!(run.text().ends_with("250 2.0.0 3 octets received\r\n"));
        let mut s = session(Role::Smtp);
        let run = drive_all(&mut s, format!("{prefix}BDAT 3\r\nab").as_bytes());
        assert!(s.in_data() && run.codes().len() == 3);
    }

    #[test]
    fn limits() {
        let head = "EHLO c\r\nMAIL FROM:<a@remote.example>\r\n";
        let big = "x".repeat(1100);
        let cases: Vec<(String, &str)> = vec![
            (
                format!("{head}RCPT TO:<bob@example.com>\r\nRCPT TO:<bob@example.com>\r\nRCPT TO:<alice@example.com>\r\nRCPT TO:<postmaster@example.com>\r\n"),
                "452 4.5.3 Too many recipients",
            ),
            (
                "EHLO c\r\nMAIL FROM:<a@remote.example> SIZE=1001\r\n".into(),
                "552 5.3.4 Message too big: this server accepts messages up to 1000 bytes",
            ),
            (
                format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{big}\r\n.\r\nRCPT TO:<bob@example.com>\r\n"),
                "503 5.5.1 Please send MAIL first",
            ),
            (format!("{}\r\n", "N".repeat(600)), "500 5.5.2 Line too long"),
            (format!("NOOP {}\r\nNOOP\r\n", "N".repeat(20_000)), "250 2.0.0 OK"),
        ];
        for (input, expected) in cases {
            let mut s = session(Role::Smtp);
            let run = drive_all(&mut s, input.as_bytes());
            assert!(
                run.text().ends_with(&format!("{expected}\r\n")),
                "{}",
                run.text()
            );
        }
        let mut s = session(Role::Smtp);
        let run = drive_all(
            &mut s,
            format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{big}\r\n.\r\n").as_bytes(),
        );
        assert!(
            run.text().contains("552 5.3.4 Message too big"),
            "{}",
            run.text()
        );
        let long_line = "y".repeat(1001);
        let mut roomy = config();
        roomy.max_message_size = 5000;
        let run = drive_all(
            &mut session_with(Role::Smtp, roomy, false),
            format!("{head}RCPT TO:<bob@example.com>\r\nDATA\r\n{long_line}\r\n.\r\n").as_bytes(),
        );
        assert!(run.text().ends_with("550 5.5.2 A line in the message is longer than 1000 characters (see RFC 5321 section 4.5.3.1.6)\r\n"), "{}", run.text());
        assert!(run.messages.is_empty());
    }

    #[test]
    fn too_many_bad_commands_close() {
        let mut s = session(Role::Smtp);
        let run = drive_all(
            &mut s,
            b"FOO\r\nBAR\r\nRCPT TO:<x@y.example>\r\nDATA\r\nBAZ\r\nNOOP\r\n",
        );
        assert_eq!(run.codes(), [500, 500, 503, 503, 421]);
        assert!(run
            .text()
            .ends_with("421 4.7.0 Too many errors; closing the connection\r\n"));
        assert!(run.closed && s.is_closed());
        let mut out = Vec::new();
        let after = s.feed(b"NOOP\r\n", &mut out);
        assert_eq!((after.consumed, out.len()), (0, 0));
    }

    #[test]
    fn smtputf8_is_needed_for_non_ascii() {
        let cases: [(&str, &[u16]); 3] = [
            ("MAIL FROM:<jörg@remote.example>\r\n", &[250, 553]),
            (
                "MAIL FROM:<jörg@remote.example> SMTPUTF8\r\nRCPT TO:<bob@example.com>\r\n",
                &[250, 250, 250],
            ),
            (
                "MAIL FROM:<a@remote.example>\r\nRCPT TO:<bøb@example.com>\r\n",
                &[250, 250, 553],
            ),
        ];
        for (input, codes) in cases {
            let mut s = session(Role::Smtp);
            let run = drive_all(&mut s, format!("EHLO c\r\n{input}").as_bytes());
            assert_eq!(run.codes(), codes, "{input}: {}", run.text());
        }
    }

    #[test]
    fn enqueue_errors_end_the_transaction() {
        let cases = [
            (
                EnqueueError::NoSpace,
                "452 4.3.1 Insufficient system storage; please try again later\r\n",
            ),
            (
                EnqueueError::Failed,
                "451 4.3.0 The message could not be stored; please try again later\r\n",
            ),
        ];
        for (error, expected) in cases {
            let mut s = session(Role::Smtp);
            let mut out = Vec::new();
            let feed = s.feed(
                b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n",
                &mut out,
            );
            assert!(matches!(feed.action, Some(Action::Enqueue(_))));
            out.clear();
            s.enqueued(Err(error), &mut out);
            assert_eq!(String::from_utf8_lossy(&out), expected);
            out.clear();
            s.feed(b"RCPT TO:<bob@example.com>\r\n", &mut out);
            assert_eq!(out, b"503 5.5.1 Please send MAIL first\r\n");
        }
    }

    #[test]
    fn timeouts_and_shutdown_close() {
        let mut s = session(Role::Smtp);
        let mut out = Vec::new();
        s.feed(
            b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\npart",
            &mut out,
        );
        assert!(s.in_data());
        out.clear();
        s.timed_out(&mut out);
        assert_eq!(
            out,
            b"421 4.4.2 mx.example.com Timeout: closing the connection\r\n"
        );
        assert!(s.is_closed() && !s.in_data());
        let mut s = session(Role::Smtp);
        out.clear();
        s.shutting_down(&mut out);
        assert_eq!(
            out,
            b"421 4.3.2 mx.example.com The server is shutting down; please try again later\r\n"
        );
        assert!(s.is_closed());
    }

    #[test]
    fn protocol_names_follow_rfc_3848() {
        let plain = plain_response("alice@example.com", "secret");
        let auth = format!("AUTH PLAIN {plain}\r\n");
        let message = "MAIL FROM:<alice@example.com>\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n";
        let utf8 =
            "MAIL FROM:<alice@example.com> SMTPUTF8\r\nRCPT TO:<bob@example.com>\r\nDATA\r\n.\r\n";
        let tls = "EHLO c\r\nSTARTTLS\r\n";
        let cases: [(Role, Vec<&str>, &str); 7] = [
            (Role::Smtp, vec!["HELO c\r\n", message], "SMTP"),
            (Role::Smtp, vec!["EHLO c\r\n", message], "ESMTP"),
            (Role::Smtp, vec!["EHLO c\r\n", utf8], "UTF8SMTP"),
            (Role::Smtp, vec![tls, "EHLO c\r\n", message], "ESMTPS"),
            (Role::Smtp, vec![tls, "EHLO c\r\n", utf8], "UTF8SMTPS"),
            (
                Role::Submissions,
                vec!["EHLO c\r\n", &auth, message],
                "ESMTPSA",
            ),
            (
                Role::Submissions,
                vec!["EHLO c\r\n", &auth, utf8],
                "UTF8SMTPSA",
            ),
        ];
        for (role, chunks, protocol) in cases {
            let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
            let run = drive(&mut session(role), &chunks);
            assert_eq!(run.messages[0].origin.protocol, protocol, "{}", run.text());
        }
    }

    /// The same conversations fed whole, byte by byte and split at every
    /// index give identical replies, messages and logins.
    #[test]
    fn identical_at_every_split_point() {
        let plain = plain_response("alice@example.com", "secret");
        let user = b64("alice@example.com");
        let password = b64("secret");
        let transcripts: Vec<(Role, String)> = vec![
            (
                Role::Smtp,
                "EHLO c\r\nMAIL FROM:<a@remote.example>\r\nRCPT TO:<bob@example.com>\r\n\
                 RCPT TO:<x@elsewhere.example>\r\nDATA\r\nSubject: s\r\n\r\n..a\r\n.b\r\n\r\n.\r\n\
                 MAIL FROM:<a@remote.example>\r\nRCPT TO:<alice@example.com>\r\n\
                 BDAT 5\r\n12\r\n.BDAT 3 LAST\r\nxyzRSET\r\nFOO\r\nQUIT\r\n"
                    .into(),
            ),
            (
                Role::Submissions,
                format!(
                    "EHLO DESKTOP-7Q2K3LM\r\nAUTH LOGIN\r\n{user}\r\n{password}\r\n\
                     MAIL FROM: <alice@example.com>\r\nRCPT TO: <friend@elsewhere.example>\r\n\
                     DATA\r\nbad\nline\r\n.\r\nRSET\r\nMAIL FROM:<alice@example.com> SIZE=5\r\n\
                     RCPT TO:<bob@example.com>\r\nDATA\r\nhello\r\n.\r\n{}\r\nNOOP\r\nQUIT\r\n",
                    "L".repeat(700)
                ),
            ),
            (
                Role::Submissions,
                format!("EHLO c\r\nAUTH PLAIN\r\n{plain}\r\nAUTH LOGIN\r\nQUIT\r\n"),
            ),
        ];
        for (role, transcript) in transcripts {
            let input = transcript.as_bytes();
            let whole = drive_all(&mut session(role), input);
            assert!(whole.closed, "{}", whole.text());
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(drive(&mut session(role), &bytes), whole);
            for split in 0..=input.len() {
                let (a, b) = input.split_at(split);
                assert_eq!(
                    drive(&mut session(role), &[a, b]),
                    whole,
                    "split at {split}"
                );
            }
        }
    }
}
