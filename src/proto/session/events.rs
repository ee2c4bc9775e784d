//! What a session reports for the mail log, as data: refusals, logins and
//! spooled messages. The runtime takes them with `Session::take_events` and
//! words the log lines; no reply bytes are read back.

use std::borrow::Cow;

use crate::proto::command::Verb;
use crate::proto::envelope::{EnqueueError, NewMessage};
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
    pub(super) fn refused(verb: Option<Verb>, reply: Reply) -> SessionEvent {
        SessionEvent::Refused {
            verb,
            code: reply.code,
            enhanced: reply.enhanced,
            text: reply.lines.into_iter().last().unwrap_or_default(),
        }
    }
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
        }
    }
}
