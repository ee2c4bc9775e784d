//! What a session reports for the mail log, as data: refusals, logins and
//! spooled messages. The runtime takes them with `Session::take_events` and
//! words the log lines; no reply bytes are read back.

use std::borrow::Cow;

use crate::proto::command::Verb;
use crate::proto::envelope::{EnqueueError, NewMessage};
use crate::proto::header::HeaderScanner;
use crate::proto::reply::{Enhanced, Reply};
use crate::proto::sasl::AuthResult;

/// Something that happened in a session that belongs in the mail log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The client's input (a command line, a SASL response, a message or
    /// a BDAT chunk) was answered with a 4xx or 5xx reply.
    Refused {
        /// The verb of the refused line, or the DATA/BDAT/AUTH the message,
        /// chunk or response belongs to; `None` for an unknown verb or an
        /// over-long line.
        verb: Option<Verb>,
        /// The reply code.
        code: u16,
        /// The enhanced status code, if the reply has one.
        enhanced: Option<Enhanced>,
        /// The reply's text (its last line).
        text: Cow<'static, str>,
        /// The session's state: HELO name, sender, recipient.
        context: RefusalContext,
    },
    /// A credential check was answered.
    Login {
        /// The user name the client gave.
        user: String,
        /// What the check said.
        result: AuthResult,
    },
    /// A message was spooled.
    Queued {
        /// The spool's id for it.
        queue_id: String,
        /// The message.
        message: MessageSummary,
    },
    /// Spooling a message failed; the client was told to try later.
    NotQueued {
        /// The message.
        message: MessageSummary,
        /// Why.
        error: EnqueueError,
    },
}

impl SessionEvent {
    /// The event for a refusal of input of `verb` with `reply`.
    pub(super) fn refused(
        verb: Option<Verb>,
        reply: Reply,
        context: RefusalContext,
    ) -> SessionEvent {
        SessionEvent::Refused {
            verb,
            code: reply.code,
            enhanced: reply.enhanced,
            text: reply.lines.into_iter().last().unwrap_or_default(),
            context,
        }
    }
}

/// What a refusal was about, for a log line that answers "why was this
/// mail refused" on its own (Postfix's `NOQUEUE: reject` line has the same
/// fields). Absent what the session did not know yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusalContext {
    /// The EHLO or HELO name.
    pub helo: Option<String>,
    /// The sender of the transaction, or of the refused MAIL.
    pub from: Option<String>,
    /// The address of the refused RCPT, or the transaction's first
    /// recipient.
    pub to: Option<String>,
    /// The transaction's recipients (0 for a refused MAIL or RCPT).
    pub recipients: usize,
}

/// What the mail log says about a message handed to the spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageSummary {
    /// The reverse-path; empty for `<>`.
    pub sender: String,
    /// How many recipients it has.
    pub recipients: usize,
    /// Its size in octets.
    pub size: usize,
    /// The authenticated user who sent it.
    pub auth_user: Option<String>,
    /// The TLS version it came over.
    pub tls: Option<String>,
    /// The value of its `Message-ID:` header field, if it has one.
    pub message_id: Option<String>,
}

impl MessageSummary {
    /// The summary of `message`.
    pub(super) fn of(message: &NewMessage) -> MessageSummary {
        MessageSummary {
            sender: message.envelope.sender.clone(),
            recipients: message.envelope.recipients.len(),
            size: message.body.len(),
            auth_user: message.origin.client().and_then(|c| c.auth_user.clone()),
            tls: message.origin.client().and_then(|c| c.tls.clone()),
            message_id: message_id(&message.body),
        }
    }
}

/// The value of the first `Message-ID:` field in the header section at the
/// start of `message` (up to the empty line), unfolded and trimmed; field
/// names match in any case (RFC 5322 §1.2.2).
pub fn message_id(message: &[u8]) -> Option<String> {
    let mut scanner = HeaderScanner::default();
    scanner.feed(message);
    scanner.message_id()
}
