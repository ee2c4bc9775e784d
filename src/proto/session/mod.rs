//! The server side of one SMTP session as a state machine: bytes in,
//! replies, actions and events out. It never blocks: slow work (TLS
//! handshake, password checks, spooling) is asked for through an [`Action`]
//! and its result handed back by the caller.
//!
//! It owns the order of commands (EHLO before MAIL, MAIL before RCPT …),
//! the relay and sender policy (asking a [`Directory`]), the SASL dialogue,
//! the DATA and BDAT sections, the error limits (bad commands and refused
//! recipients: held replies past the soft limit, 421 at the hard limit)
//! and every reply text. Commands are parsed by
//! `command`, lines split by `line`, DATA unstuffed by `dot`; replies are
//! rendered in one place (`Session::answer`) with `reply::Reply`. What the
//! mail log needs is reported as [`SessionEvent`]s. It imports nothing with
//! I/O.
//!
//! - `mod.rs`: the session, feeding, the one renderer, the simple verbs;
//! - `greeting`: EHLO, HELO and STARTTLS;
//! - `mail`: MAIL and RCPT, with the relay and sender policy;
//! - `auth`: AUTH and the SASL dialogue;
//! - `data`: DATA and BDAT, up to the spool request;
//! - `memory`: the memory budget of messages being read;
//! - `invalid`: the replies to lines the command parser refused;
//! - `events`: what the session reports for the mail log.

use std::sync::Arc;
use std::time::Duration;

use super::command::{self, Command, Verb, MAX_AUTH_LINE};
use super::dot::Unstuffer;
use super::envelope::{EnqueueError, NewMessage, Recipient};
use super::esmtp;
use super::line::{LineSplitter, LineStatus};
use super::reply::Reply;
use super::sasl::{AuthResult, Credentials};

mod auth;
mod data;
mod events;
mod greeting;
mod invalid;
mod mail;
mod memory;
#[cfg(test)]
mod tests;

use auth::SaslStep;
use data::{Chunk, Content};
pub use events::{message_id, MessageSummary, RefusalContext, SessionEvent};
pub use memory::MessageMemory;

/// Which listener the connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Port 25: mail from other servers to local domains; relaying only for
    /// trusted networks, or authenticated users where `smtp_auth` offers
    /// AUTH.
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
    /// Errors (bad commands, refused recipients) after which each further
    /// error reply is held back for `error_delay` (Postfix's
    /// `smtpd_soft_error_limit`).
    pub soft_error_limit: u32,
    /// Errors after which the session gets 421 and is closed (Postfix's
    /// `smtpd_hard_error_limit`).
    pub hard_error_limit: u32,
    /// How long an error reply past the soft limit is held back (Postfix's
    /// `smtpd_error_sleep_time`).
    pub error_delay: Duration,
    /// AUTH is offered and taken on the smtp role too (it always is on the
    /// submission roles).
    pub smtp_auth: bool,
    /// Most `Received:` fields a message may arrive with (a mail loop).
    pub max_received: usize,
    /// Add `AUTH=LOGIN PLAIN` for Outlook 2003 and older.
    pub auth_equals_line: bool,
    /// An authenticated user may only send as addresses it owns.
    pub sender_check: bool,
    /// TLS is configured, so STARTTLS can be offered.
    pub tls_available: bool,
    /// The domain that completes a relay-network client's bare or
    /// `@localhost` address (`--sender-domain`).
    pub sender_domain: String,
    /// How much of the messages being read may stay in memory; the rest
    /// is handed out in parts to be written to the spool.
    pub memory: Arc<MessageMemory>,
    /// The daily sending limits of users and relay networks.
    pub limits: Arc<dyn SendingLimits>,
}

/// Questions about users and domains that the session asks the outside.
pub trait Directory: Send + Sync {
    /// Is `domain` (lowercase ASCII or UTF-8) one of ours?
    fn is_local_domain(&self, domain: &str) -> bool;
    /// Does mail for `address` (in a local domain, or the bare `Postmaster`
    /// of RFC 5321 §4.5.1) have a mailbox to go to?
    fn mailbox_exists(&self, address: &str) -> bool;
    /// May authenticated `user` use `sender` as its MAIL FROM address?
    fn may_send_as(&self, user: &str, sender: &str) -> bool;
}

/// Whose sending a message counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Account<'a> {
    /// An authenticated user.
    User(&'a str),
    /// The clients of `--relay-networks`, together.
    RelayNetworks,
}

/// A daily sending limit that one more message would pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitReached {
    /// What is limited: `messages` or `recipients`.
    pub what: &'static str,
    /// The limit, per rolling 24 hours.
    pub limit: u64,
    /// When sending opens again, as an RFC 5322 date.
    pub reopens: String,
}

/// The sending limits (RFC 6409 §5.1 leaves policy to the submission
/// server), asked by the session and kept outside: counting needs a
/// clock. Mail from other servers (port 25, no AUTH, not a relay network)
/// is never counted.
pub trait SendingLimits: Send + Sync + std::fmt::Debug {
    /// May `account` send one more message to `recipients` recipients?
    fn may_send(&self, account: Account<'_>, recipients: usize) -> Result<(), LimitReached>;
    /// `account` has sent a message to `recipients` recipients.
    fn sent(&self, account: Account<'_>, recipients: usize);
}

/// No limits: for tools and tests that run sessions without a server.
#[derive(Debug, Default)]
pub struct NoLimits;

impl SendingLimits for NoLimits {
    fn may_send(&self, _: Account<'_>, _: usize) -> Result<(), LimitReached> {
        Ok(())
    }

    fn sent(&self, _: Account<'_>, _: usize) {}
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
    /// The message being read is too big to keep in memory: start its
    /// spool file with this envelope and first part (the body), then feed
    /// on. The next parts come with [`Action::AppendMessage`] and the last
    /// with [`Action::FinishMessage`]. A message started and never
    /// finished (refused at its end, or its transaction reset) is dropped
    /// by the next `StartMessage` or when the session ends.
    StartMessage(Box<NewMessage>),
    /// Append this part to the message started, then feed on.
    AppendMessage(Vec<u8>),
    /// Append this last part to the message started, spool it durably,
    /// then call [`Session::enqueued`].
    FinishMessage {
        /// The octets since the last part.
        last_part: Vec<u8>,
        /// What the mail log says about the message.
        summary: MessageSummary,
    },
    /// The client has made too many errors: flush the output, wait this
    /// long (without blocking: the session reads nothing meanwhile, so
    /// pipelined commands wait too), then call
    /// [`Session::send_delayed_reply`].
    DelayReply(Duration),
}

/// The result of feeding input.
#[derive(Debug)]
pub struct Feed {
    /// How many input bytes were used; drop them from the buffer.
    pub consumed: usize,
    /// Something to do before feeding again; `None` means "read more"
    /// (or, once [`Session::is_closed`], "flush and close").
    pub action: Option<Action>,
}

/// What the session is reading right now.
enum Mode {
    /// Command lines.
    Command,
    /// SASL response lines of an AUTH dialogue.
    Sasl(SaslStep),
    /// The message after `354`, until CRLF.CRLF, into its transaction.
    Data {
        /// Finds the end and undoes dot-stuffing.
        unstuffer: Unstuffer,
        /// The transaction the message belongs to.
        transaction: Transaction,
    },
    /// The octets of one BDAT chunk (RFC 3030): counted, not unstuffed.
    Bdat(Chunk),
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
    /// `Action::Enqueue` is outstanding for this message.
    Enqueue {
        /// What the mail log says about it once it is spooled.
        message: MessageSummary,
    },
    /// `Action::DelayReply` is outstanding for this error reply.
    DelayedReply {
        /// The reply, sent when the delay is over.
        reply: Reply,
        /// The verb of the input it answers, for its refusal event.
        verb: Option<Verb>,
    },
}

/// A mail transaction: from MAIL to the end of DATA or the last BDAT.
struct Transaction {
    /// The reverse-path; empty for `<>`.
    sender: String,
    /// `BODY=`.
    body_type: Option<esmtp::Body>,
    /// `SMTPUTF8` was given.
    smtputf8: bool,
    /// `RET=`.
    ret: Option<esmtp::Ret>,
    /// `ENVID=`.
    envid: Option<String>,
    /// Accepted recipients.
    recipients: Vec<Recipient>,
    /// RCPT commands refused in this transaction (for the DATA reply).
    refused_recipients: usize,
    /// A BDAT chunk was accepted: DATA may not follow (RFC 3030 §3).
    used_bdat: bool,
    /// The message read so far.
    message: Content,
    /// `SIZE=` as declared (RFC 1870), to size the message buffer once.
    declared_size: Option<u64>,
}

/// How a reply counts against the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// It does not.
    None,
    /// An error (a refused recipient): counts towards the soft and hard
    /// error limits, so probing for user names is slowed, then stopped.
    Error,
    /// A bad command (syntax, unknown, out of sequence): an error, and
    /// counts towards `max_bad_commands` too.
    BadCommand,
}

/// What a handler wants said and done; rendered in [`Session::answer`].
struct Response {
    /// The reply, if this step has one now.
    reply: Option<Reply>,
    /// An action for the caller.
    action: Option<Action>,
    /// How the reply counts against the client.
    fault: Fault,
}

impl Response {
    /// A reply for a command that was fine.
    fn ok(reply: Reply) -> Response {
        Response {
            reply: Some(reply),
            action: None,
            fault: Fault::None,
        }
    }

    /// A reply for a bad command.
    fn bad(reply: Reply) -> Response {
        Response {
            reply: Some(reply),
            action: None,
            fault: Fault::BadCommand,
        }
    }

    /// A reply refusing a valid command in a way that counts as an error.
    fn error(reply: Reply) -> Response {
        Response {
            reply: Some(reply),
            action: None,
            fault: Fault::Error,
        }
    }

    /// An action, and maybe a reply to send before it.
    fn act(reply: Option<Reply>, action: Action) -> Response {
        Response {
            reply,
            action: Some(action),
            fault: Fault::None,
        }
    }

    /// Nothing to say yet (a BDAT chunk is still to come).
    fn silent() -> Response {
        Response {
            reply: None,
            action: None,
            fault: Fault::None,
        }
    }
}

/// What the error count says to do with an error reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Penalty {
    /// Send it now.
    None,
    /// Hold it back for `error_delay` (past the soft limit).
    Delay,
    /// Replace it with 421 and close (a limit is reached).
    Close,
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
    /// The transaction between MAIL and the message (while a message is
    /// read it travels in the mode).
    transaction: Option<Transaction>,
    pending: Option<Pending>,
    bad_commands: u32,
    /// Errors (bad commands and refused recipients) since the session
    /// started or last spooled a message.
    errors: u32,
    /// A closing reply was sent: nothing more is read.
    closed: bool,
    /// Reported and not yet taken.
    events: Vec<SessionEvent>,
    /// What the input being answered is about, for the log line of its
    /// refusal: set by MAIL, RCPT and the end of a message; kept with an
    /// error reply that is held back.
    about: RefusalContext,
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
            errors: 0,
            closed: false,
            events: Vec::new(),
            about: RefusalContext::default(),
        }
    }

    /// Appends the 220 greeting.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        // RFC 2034 §3: the greeting carries no enhanced status code.
        let text = format!("{} ESMTP Outpost ready", self.config.hostname);
        Reply::plain(220, vec![text.into()]).render(out);
    }

    /// Consumes client input, appending replies to `out`. While an action
    /// is outstanding, or once the session is closed, it consumes nothing.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut consumed = 0;
        while self.pending.is_none() && !self.closed && consumed < input.len() {
            let rest = &input[consumed..];
            // Each step takes the mode and leaves the next one behind.
            let step = match std::mem::replace(&mut self.mode, Mode::Command) {
                Mode::Command => self.step_line(None, rest, out),
                Mode::Sasl(sasl) => self.step_line(Some(sasl), rest, out),
                Mode::Data {
                    unstuffer,
                    transaction,
                } => self.step_data(unstuffer, transaction, rest, out),
                Mode::Bdat(chunk) => self.step_bdat(chunk, rest, out),
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

    /// The answer to [`Action::Authenticate`], reported as
    /// [`SessionEvent::Login`]. After [`AuthResult::Throttled`] the session
    /// is closed ([`Session::is_closed`]): flush the output and close the
    /// connection.
    pub fn auth_result(&mut self, result: AuthResult, out: &mut Vec<u8>) {
        let username = match self.pending.take() {
            Some(Pending::Authenticate { username }) => Some(username),
            _ => None,
        };
        if let Some(user) = &username {
            self.events.push(SessionEvent::Login {
                user: user.clone(),
                result,
            });
        }
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
            AuthResult::Throttled { wait } => Reply::new(
                421,
                (4, 7, 0),
                format!(
                    "Too many failed login attempts; please try again in {}",
                    wait_text(wait)
                ),
            )
            .and_close(),
            AuthResult::TemporaryFailure => Reply::new(
                454,
                (4, 7, 0),
                "Temporary authentication failure; please try again later",
            ),
        };
        self.answer(Response::ok(reply), None, out);
    }

    /// The answer to [`Action::Enqueue`] and [`Action::FinishMessage`]: the
    /// queue id, or why not;
    /// reported as [`SessionEvent::Queued`] or [`SessionEvent::NotQueued`].
    pub fn enqueued(&mut self, result: Result<&str, EnqueueError>, out: &mut Vec<u8>) {
        let mut recipients = None;
        if let Some(Pending::Enqueue { message }) = self.pending.take() {
            recipients = Some(message.recipients);
            self.events.push(match result {
                Ok(id) => SessionEvent::Queued {
                    queue_id: id.to_string(),
                    message,
                },
                Err(error) => SessionEvent::NotQueued { message, error },
            });
        }
        if result.is_ok() {
            // Like Postfix, the error limits count errors made without
            // delivering mail: a client that sends mail is not probing.
            self.errors = 0;
        }
        if let (Ok(_), Some(recipients)) = (result, recipients) {
            if let Some(account) = self.account() {
                self.config.limits.sent(account, recipients);
            }
        }
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
        self.answer(Response::ok(reply), None, out);
    }

    /// The answer to [`Action::DelayReply`]: the delay is over, so the held
    /// error reply is sent (and reported as [`SessionEvent::Refused`]).
    pub fn send_delayed_reply(&mut self, out: &mut Vec<u8>) {
        if let Some(Pending::DelayedReply { reply, verb }) = self.pending.take() {
            reply.render(out);
            let context = std::mem::take(&mut self.about);
            self.events
                .push(SessionEvent::refused(verb, reply, context));
        }
    }

    /// The client was idle too long: 421 4.4.2 and close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        let text = format!("{} Timeout: closing the connection", self.config.hostname);
        self.pending = None;
        self.answer(
            Response::ok(Reply::new(421, (4, 4, 2), text).and_close()),
            None,
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
            None,
            out,
        );
    }

    /// The session sent its last reply (after QUIT or a closing 421): flush
    /// the output and close the connection. It reads nothing more.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The events since the last call, oldest first. The caller takes them
    /// after each call into the session; until then they are kept.
    pub fn take_events(&mut self) -> Vec<SessionEvent> {
        std::mem::take(&mut self.events)
    }

    /// The session is inside DATA or BDAT (for choosing the timeout).
    pub fn in_data(&self) -> bool {
        matches!(self.mode, Mode::Data { .. } | Mode::Bdat(_))
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

    /// Counts a reply's fault and says what to do with the reply: a client
    /// that keeps getting it wrong is a broken script or a probe (a
    /// directory harvest tries thousands of user names), so past the soft
    /// limit each error waits, and at a hard limit the session ends.
    fn count(&mut self, fault: Fault) -> Penalty {
        if fault == Fault::None {
            return Penalty::None;
        }
        self.errors = self.errors.saturating_add(1);
        if fault == Fault::BadCommand {
            self.bad_commands = self.bad_commands.saturating_add(1);
        }
        let config = &self.config;
        if self.bad_commands >= config.max_bad_commands || self.errors >= config.hard_error_limit {
            Penalty::Close
        } else if self.errors > config.soft_error_limit && !config.error_delay.is_zero() {
            Penalty::Delay
        } else {
            Penalty::None
        }
    }

    /// The one place replies are rendered. Counts errors (holding back
    /// replies past the soft limit, turning the last allowed one into 421
    /// and close), marks the session closed on a closing reply, and
    /// remembers which action is outstanding. Returns the reply sent, if
    /// any, and the action.
    fn answer(
        &mut self,
        response: Response,
        verb: Option<Verb>,
        out: &mut Vec<u8>,
    ) -> (Option<Reply>, Option<Action>) {
        let Response {
            mut reply,
            mut action,
            fault,
        } = response;
        match self.count(fault) {
            Penalty::None => {}
            Penalty::Delay => {
                // An error reply comes without an action; it is held back
                // and sent by `send_delayed_reply`.
                if let (Some(held), None) = (reply.take(), &action) {
                    self.pending = Some(Pending::DelayedReply { reply: held, verb });
                    return (None, Some(Action::DelayReply(self.config.error_delay)));
                }
            }
            Penalty::Close => {
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
                action = None;
            }
        }
        if let Some(pending) = action.as_ref().and_then(pending_for) {
            self.pending = Some(pending);
        }
        (reply, action)
    }

    /// Answers the client's input (a line of `verb`, a SASL response or a
    /// message) and turns it into a step that used `used` bytes. A 4xx or
    /// 5xx reply is reported as [`SessionEvent::Refused`].
    fn finish_step(
        &mut self,
        used: usize,
        verb: Option<Verb>,
        response: Response,
        out: &mut Vec<u8>,
    ) -> Step {
        // Taken before the answer: a closing reply ends the transaction.
        let refusing = response.reply.as_ref().is_some_and(|r| r.code >= 400);
        let context = match refusing {
            true => self.refusal_context(verb),
            false => RefusalContext::default(),
        };
        let (reply, action) = self.answer(response, verb, out);
        if let Some(reply) = reply.filter(|reply| reply.code >= 400) {
            self.events
                .push(SessionEvent::refused(verb, reply, context));
            self.about = RefusalContext::default();
        } else if matches!(action, Some(Action::DelayReply(_))) {
            // Logged when the held reply is sent.
            self.about = context;
        } else {
            self.about = RefusalContext::default();
        }
        match action {
            Some(action) => Step::Act(used, action),
            None => Step::Progress(used),
        }
    }

    /// What a refusal now is about: what MAIL, RCPT or the end of the
    /// message noted, the HELO name, and the transaction's sender and
    /// first recipient where the input named none.
    fn refusal_context(&mut self, verb: Option<Verb>) -> RefusalContext {
        let mut context = std::mem::take(&mut self.about);
        context.helo.clone_from(&self.helo);
        if let Some(transaction) = &self.transaction {
            if context.from.is_none() {
                context.from = Some(transaction.sender.clone());
            }
            // A refused RCPT is about its own address (none if it did not
            // parse), never another recipient.
            if context.to.is_none() && verb != Some(Verb::Rcpt) {
                context.to = transaction.recipients.first().map(|r| r.address.clone());
                context.recipients = transaction.recipients.len();
            }
        }
        context
    }

    /// Reads one line: a command, or a response in the SASL step `sasl`.
    fn step_line(&mut self, sasl: Option<SaslStep>, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let (line, used) = match self.splitter.next(rest) {
            LineStatus::NeedMore { consumed } => {
                if let Some(sasl) = sasl {
                    self.mode = Mode::Sasl(sasl);
                }
                return Step::NeedMore(consumed);
            }
            // An over-long line also ends a SASL dialogue.
            LineStatus::TooLong { consumed } => {
                return self.finish_step(consumed, None, line_too_long(), out);
            }
            LineStatus::Line { line, consumed } => (line, consumed),
        };
        let (verb, response) = match sasl {
            // RFC 4954 §4: SASL responses may be up to MAX_AUTH_LINE (the
            // splitter's bound, which keeps memory bounded either way).
            Some(sasl) => (Some(Verb::Auth), self.on_sasl_response(sasl, line)),
            // RFC 5321 §4.5.3.1.4: 512 octets for commands, but RFC 4954
            // §4 allows AUTH lines up to MAX_AUTH_LINE.
            None if used > command::line_limit(line) => (None, line_too_long()),
            None => self.dispatch(line),
        };
        self.finish_step(used, verb, response, out)
    }

    /// Parses a command line and hands its fields to its verb's handler.
    fn dispatch(&mut self, line: &[u8]) -> (Option<Verb>, Response) {
        let command = match command::parse(line) {
            Ok(command) => command,
            Err(error) => return (Some(error.verb), invalid::reply(error)),
        };
        let verb = command.verb();
        let response = match command {
            Command::Ehlo(name) => self.on_ehlo(name),
            Command::Helo(name) => self.on_helo(name),
            Command::Mail { from, params } => self.on_mail(from, params),
            Command::Rcpt { to, params } => self.on_rcpt(to, params),
            Command::Data => self.on_data(),
            Command::Bdat { size, last } => self.on_bdat(size, last),
            Command::Rset => self.on_rset(),
            Command::Noop => on_noop(),
            Command::Quit => self.on_quit(),
            Command::Vrfy => on_vrfy(),
            Command::Expn => on_expn(),
            Command::Help => on_help(),
            Command::StartTls => self.on_starttls(),
            Command::Auth { mechanism, initial } => self.on_auth(mechanism, initial),
            Command::Unknown => on_unknown(),
        };
        (verb, response)
    }

    /// `RSET`: ends the transaction; EHLO and AUTH stay.
    fn on_rset(&mut self) -> Response {
        self.transaction = None;
        Response::ok(Reply::new(250, (2, 0, 0), "Reset OK"))
    }

    /// `QUIT`: 221 and close.
    fn on_quit(&mut self) -> Response {
        let text = format!("{} closing connection, goodbye", self.config.hostname);
        Response::ok(Reply::new(221, (2, 0, 0), text).and_close())
    }
}

/// What stays outstanding while the caller carries out `action`.
/// [`Action::DelayReply`] has none here: `Session::answer` asks for it
/// itself and keeps the held reply.
fn pending_for(action: &Action) -> Option<Pending> {
    match action {
        Action::StartTls => Some(Pending::StartTls),
        Action::Authenticate(credentials) => Some(Pending::Authenticate {
            username: credentials.username.clone(),
        }),
        Action::Enqueue(message) => Some(Pending::Enqueue {
            message: MessageSummary::of(message),
        }),
        Action::FinishMessage { summary, .. } => Some(Pending::Enqueue {
            message: summary.clone(),
        }),
        Action::StartMessage(_) | Action::AppendMessage(_) | Action::DelayReply(_) => None,
    }
}

/// The reply to an over-long line.
fn line_too_long() -> Response {
    Response::bad(Reply::new(500, (5, 5, 2), "Line too long"))
}

/// `NOOP`.
fn on_noop() -> Response {
    Response::ok(Reply::new(250, (2, 0, 0), "OK"))
}

/// `VRFY`: RFC 5321 §3.5.3 allows 252 instead of revealing users.
fn on_vrfy() -> Response {
    Response::ok(Reply::new(
        252,
        (2, 5, 0),
        "Cannot verify the user, but will accept the message and attempt delivery",
    ))
}

/// `EXPN`: mailing lists are not disclosed (RFC 5321 §3.5.2, §7.3).
fn on_expn() -> Response {
    Response::ok(Reply::new(502, (5, 5, 1), "EXPN is not supported"))
}

/// `HELP`.
fn on_help() -> Response {
    Response::ok(Reply::new(
        214,
        (2, 0, 0),
        "Supported commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH",
    ))
}

/// A verb we do not know.
fn on_unknown() -> Response {
    Response::bad(Reply::new(500, (5, 5, 1), "Command not recognized"))
}

/// `wait` for people, rounded up: `45 seconds`, `1 minute`, `10 minutes`.
fn wait_text(wait: Duration) -> String {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let (count, unit) = if seconds < 60 {
        (seconds.max(1), "second")
    } else {
        (seconds.div_ceil(60), "minute")
    };
    let plural = if count == 1 { "" } else { "s" };
    format!("{count} {unit}{plural}")
}
