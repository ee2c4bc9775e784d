//! The server side of one SMTP session as a state machine: bytes in,
//! replies and actions out. It never blocks: slow work (TLS handshake,
//! password checks, spooling) is asked for through an [`Action`] and its
//! result handed back by the caller.
//!
//! CONTRACT (implementation pending).

use std::sync::Arc;

use super::command::{Body, Notify, Ret};
use super::sasl::Credentials;

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

/// One SMTP server session.
pub struct Session {
    _config: Arc<SessionConfig>,
}

impl Session {
    /// A new session for a client on a listener of `role`.
    pub fn new(
        role: Role,
        config: Arc<SessionConfig>,
        directory: Arc<dyn Directory>,
        client: ClientInfo,
    ) -> Session {
        let _ = (role, directory, client);
        Session { _config: config }
    }

    /// Appends the 220 greeting.
    pub fn greeting(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// Consumes client input, appending replies to `out`. While an action
    /// is outstanding it consumes nothing.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let _ = (input, out);
        todo!()
    }

    /// The TLS handshake finished with `version` (e.g. `TLSv1.3`); the
    /// session forgets EHLO and any transaction (RFC 3207 §4.2).
    pub fn tls_started(&mut self, version: &str) {
        let _ = version;
        todo!()
    }

    /// The answer to [`Action::Authenticate`].
    pub fn auth_result(&mut self, result: AuthResult, out: &mut Vec<u8>) {
        let _ = (result, out);
        todo!()
    }

    /// The answer to [`Action::Enqueue`]: the queue id, or why not.
    pub fn enqueued(&mut self, result: Result<&str, EnqueueError>, out: &mut Vec<u8>) {
        let _ = (result, out);
        todo!()
    }

    /// The client was idle too long: 421 4.4.2 and close.
    pub fn timed_out(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// The server is shutting down: 421 4.3.2 and close.
    pub fn shutting_down(&mut self, out: &mut Vec<u8>) {
        let _ = out;
        todo!()
    }

    /// The session has asked to close (after QUIT or a fatal reply).
    pub fn is_closed(&self) -> bool {
        todo!()
    }

    /// The session is inside DATA or BDAT (for choosing the timeout).
    pub fn in_data(&self) -> bool {
        todo!()
    }
}
