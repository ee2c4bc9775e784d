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

/// The most of a `Message-ID:` value the log keeps (RFC 5322 §2.1.1: a
/// line is at most 998 octets; a real id is far shorter).
const MAX_MESSAGE_ID: usize = 255;

/// The value of the first `Message-ID:` field in the header section at the
/// start of `message` (up to the empty line), unfolded and trimmed; field
/// names match in any case (RFC 5322 §1.2.2).
pub fn message_id(message: &[u8]) -> Option<String> {
    let mut finder = MessageIdFinder::default();
    finder.feed(message);
    finder.value()
}

/// [`message_id`] over a message that arrives in pieces: feed each piece in
/// order; any split gives the same value as the whole. Keeps at most
/// [`MAX_MESSAGE_ID`] octets, whatever the header.
#[derive(Debug, Clone, Default)]
pub(super) struct MessageIdFinder {
    state: Find,
    value: Vec<u8>,
}

/// Where the finder is in the header section.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Find {
    /// At a line's start, this many letters of `message-id:` matched.
    #[default]
    Name,
    /// The line so far matches this many letters of `message-id:`.
    Letters(usize),
    /// A CR at a line's start: the empty line if LF follows.
    EmptyLine,
    /// The line is another field: skip to its end.
    Skip,
    /// Reading the value.
    Value,
    /// The value's line ended: a space or tab continues it (folding).
    ValueEnd,
    /// Found, or the header section ended without one.
    Done,
}

impl MessageIdFinder {
    const NAME: &'static [u8] = b"message-id:";

    /// Reads the next piece of the message.
    pub(super) fn feed(&mut self, piece: &[u8]) {
        let mut i = 0;
        while i < piece.len() && self.state != Find::Done {
            if self.state == Find::Skip {
                match memchr::memchr(b'\n', &piece[i..]) {
                    Some(lf) => {
                        i += lf + 1;
                        self.state = Find::Name;
                        continue;
                    }
                    None => return,
                }
            }
            self.state = self.next(piece[i]);
            i += 1;
        }
    }

    fn next(&mut self, byte: u8) -> Find {
        let letters = match self.state {
            Find::Name if byte == b'\r' => return Find::EmptyLine,
            Find::Name | Find::EmptyLine if byte == b'\n' => return Find::Done,
            Find::EmptyLine => return Find::Skip,
            Find::Name => 0,
            Find::Letters(n) => n,
            Find::Value | Find::ValueEnd => return self.next_in_value(byte),
            Find::Skip | Find::Done => return self.state,
        };
        if byte == b'\n' {
            Find::Name
        } else if byte.to_ascii_lowercase() != Self::NAME[letters] {
            Find::Skip
        } else if letters + 1 == Self::NAME.len() {
            Find::Value
        } else {
            Find::Letters(letters + 1)
        }
    }

    fn next_in_value(&mut self, byte: u8) -> Find {
        match (self.state, byte) {
            (Find::ValueEnd, b' ' | b'\t') | (Find::Value, _) if byte != b'\n' => {
                let leading = self.value.is_empty() && matches!(byte, b' ' | b'\t');
                if byte != b'\r' && !leading && self.value.len() < MAX_MESSAGE_ID {
                    self.value.push(byte);
                }
                Find::Value
            }
            (Find::Value, _) => Find::ValueEnd,
            _ => Find::Done,
        }
    }

    /// The value found so far (the whole of it once the field has ended).
    pub(super) fn value(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.value);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_from_the_header_section_only() {
        let table: &[(&[u8], Option<&str>)] = &[
            (
                b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody",
                Some("<a@b>"),
            ),
            (b"message-id:   <a@b>  \r\n\r\n", Some("<a@b>")),
            (
                b"Message-Id:\r\n <folded@b>\r\nTo: c\r\n\r\n",
                Some("<folded@b>"),
            ),
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            (b"Message-IDs: <a@b>\r\n\r\n", None),
            (b"Message-ID:\r\n\r\n", None),
            (b"Subject: first part\r\nMessage-ID: <a@b>", Some("<a@b>")),
            (b"X: y\n\nMessage-ID: <after-bare-lf-end@b>\n", None),
            (b"X: y\nMessage-ID: <bare-lf@b>\n", Some("<bare-lf@b>")),
            (
                b"Message-ID: <a@b>\r\nMessage-ID: <second@b>\r\n\r\n",
                Some("<a@b>"),
            ),
            (b"", None),
        ];
        for (message, want) in table {
            let text = String::from_utf8_lossy(message);
            assert_eq!(message_id(message).as_deref(), *want, "{text:?}");
            // Every split gives the same value.
            for split in 0..=message.len() {
                let mut finder = MessageIdFinder::default();
                finder.feed(&message[..split]);
                finder.feed(&message[split..]);
                assert_eq!(finder.value().as_deref(), *want, "{text:?} at {split}");
            }
        }
        let long = format!("Message-ID: <{}>\r\n\r\n", "x".repeat(1000));
        assert_eq!(message_id(long.as_bytes()).unwrap().len(), MAX_MESSAGE_ID);
    }
}
