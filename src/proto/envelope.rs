//! The message the session hands to the spool: its envelope (RFC 5321
//! §2.3.1: the reverse-path, the recipients and their ESMTP parameters),
//! where it came from, its bytes, and why spooling can fail.
//!
//! Plain data shared by the session, the queue, delivery and the Received
//! header; it imports only the parameter types of `esmtp`.

use super::esmtp::{Body, Notify, Orcpt, Ret};

/// One recipient of the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recipient {
    /// The address as given (without angle brackets).
    pub address: String,
    /// RFC 3461 NOTIFY, if given.
    pub notify: Option<Notify>,
    /// RFC 3461 ORCPT, if given.
    pub orcpt: Option<Orcpt>,
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

/// Where a message came from, for the Received header, the envelope file
/// and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An SMTP client handed it over.
    Client(ClientOrigin),
    /// This server made it: a delivery report (RFC 3464).
    Internal,
}

impl Origin {
    /// The client's side, unless the server made the message itself.
    pub fn client(&self) -> Option<&ClientOrigin> {
        match self {
            Origin::Client(client) => Some(client),
            Origin::Internal => None,
        }
    }
}

/// Who sent a message over SMTP, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOrigin {
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
    /// Header fields the spool adds because the message lacks them.
    pub missing: MissingFields,
}

/// The header fields a message from a device or script lacks and the
/// submission server adds (RFC 6409 §8.2, §8.3); never set for mail from
/// other servers, which must arrive as it was sent. The spool writes them
/// right after its Received field.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingFields {
    /// Add `Message-ID: <queue-id@hostname>`.
    pub message_id: bool,
    /// Add `Date:`, the time of arrival.
    pub date: bool,
}

/// Why spooling failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EnqueueError {
    /// Out of disk space: 452 4.3.1.
    NoSpace,
    /// Any other spool problem: 451 4.3.0.
    Failed,
}
