//! DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030): reading the message into
//! its transaction, then asking for it to be spooled with
//! `Action::Enqueue`. A message that outgrows its memory share (see
//! `memory`) is handed out in parts as it arrives (`Action::StartMessage`,
//! `AppendMessage`, `FinishMessage`), so no message is ever held whole.
//! What is checked at the end (NULs, the `Received:` count) is counted
//! as the octets pass, and so is whether the header section lacks a
//! `Message-ID:` or `Date:` that the spool adds (RFC 6409 §8) for mail
//! from a device or script. A refused BDAT chunk is still read to its end, so
//! its octets are never taken for commands. A message with a NUL is
//! refused at its end, whether it came by DATA or by BDAT: a next hop that
//! drops NULs could take what is left for the end of data (SMTP smuggling).

use std::sync::Arc;

use super::memory::{MemoryShare, MessageMemory};
use super::{
    out_of_sequence, Action, Fault, MessageSummary, Mode, RefusalContext, Response, Session, Step,
    Transaction,
};
use crate::proto::command::Verb;
use crate::proto::dot::{BodyError, DataStatus, Unstuffer};
use crate::proto::envelope::{ClientOrigin, Envelope, MissingFields, NewMessage, Origin};
use crate::proto::esmtp::Body;
use crate::proto::header::HeaderScanner;
use crate::proto::reply::Reply;

/// The longest header section of a device's message kept in memory past
/// the memory budget until it ends. RFC 5322 sets no bound; a mail
/// client's header section is a few KiB.
pub(super) const MAX_HEADER_HOLD: usize = 64 * 1024;

/// Octets the unstuffer may write beyond the input it is given: a CR that
/// ended the previous input, held back until it is known to start CR LF.
const HELD_BACK: usize = 1;

/// The message of a transaction as it is read.
pub(super) struct Content {
    /// The octets read and not yet handed out.
    held: Vec<u8>,
    /// Octets read in all.
    size: u64,
    /// Earlier octets were handed out (`Action::StartMessage` was asked).
    started: bool,
    /// What the header section holds so far (`Received:` fields, a
    /// `Message-ID:`, a `Date:`).
    header: HeaderScanner,
    /// Mail from a device or script: the spool adds the `Message-ID:` and
    /// `Date:` it lacks, so its header section is read whole before the
    /// first part is handed out.
    fix_up: bool,
    /// A BDAT chunk had a NUL (DATA's unstuffer notes its own).
    nul: bool,
    /// The memory `held` may use.
    memory: MemoryShare,
}

impl Content {
    /// An empty message taking its memory from `memory`; `fix_up` when
    /// the fields it lacks are to be added.
    pub(super) fn new(memory: &Arc<MessageMemory>, fix_up: bool) -> Content {
        Content {
            held: Vec::new(),
            size: 0,
            started: false,
            header: HeaderScanner::default(),
            fix_up,
            nul: false,
            memory: MemoryShare::new(memory),
        }
    }

    /// Counts the octets added to `held` since it was `before` long.
    fn added_since(&mut self, before: usize) {
        let added = &self.held[before..];
        self.header.feed(added);
        self.size += added.len() as u64;
    }

    /// Makes room in memory for `incoming` more octets. Without room, the
    /// octets held so far are returned, to be handed out; with nothing
    /// held the octets are read anyway (they are in the input buffer
    /// already) and handed out after.
    fn make_room(&mut self, incoming: usize) -> Option<Vec<u8>> {
        let needed = self.held.len() + incoming;
        if needed <= self.held.capacity() {
            return None;
        }
        // Grow by doubling within the share, so a message is copied a few
        // times at most on its way to the largest buffer it may keep.
        let doubled = (self.held.capacity() * 2).min(self.memory.per_message());
        let target = needed.max(doubled);
        if self.memory.cover(target) || self.memory.cover(needed) || self.held.is_empty() {
            let mut target = if self.memory.cover(target) {
                target
            } else {
                needed
            };
            if self.started {
                // Each part after the first takes at once all the share
                // covers: growing it again from empty would copy every
                // part a second time.
                target = target.max(self.memory.covered());
            }
            self.held.reserve_exact(target - self.held.len());
            return None;
        }
        if self.fix_up && !self.started && !self.header.is_complete() && needed <= MAX_HEADER_HOLD {
            // Past the budget, but bounded: whether fields are missing is
            // known only once the header section has ended.
            self.held.reserve(needed - self.held.len());
            return None;
        }
        let part = std::mem::take(&mut self.held);
        // The next part's buffer may take all one message may keep, if the
        // budget has it ([`Content::room_for`] reads into it).
        self.memory.cover(self.memory.per_message());
        Some(part)
    }

    /// How many of `incoming` octets to read now. Once the message is
    /// handed out in parts, only what its buffer has room for, less
    /// `slack` for octets the reader still owes from earlier input: every
    /// part is then one full buffer, written with one call. Without room,
    /// all of them (`make_room` hands the buffer out).
    fn room_for(&self, incoming: usize, slack: usize) -> usize {
        // An empty buffer after a part is given all the share covers.
        let capacity = self.held.capacity().max(self.memory.covered());
        let spare = capacity - self.held.len();
        if self.started && spare > slack {
            incoming.min(spare - slack)
        } else {
            incoming
        }
    }

    /// The fields the spool is to add. Only what the header section is
    /// known to lack: `whole` when the message has ended, otherwise only
    /// once its header section has (a header section longer than
    /// [`MAX_HEADER_HOLD`] is left as it is).
    fn missing(&self, whole: bool) -> MissingFields {
        if !self.fix_up || !(whole || self.header.is_complete()) {
            return MissingFields::default();
        }
        MissingFields {
            message_id: !self.header.has_message_id(),
            date: !self.header.has_date(),
        }
    }
}

/// One BDAT chunk being read.
pub(super) struct Chunk {
    /// Octets of the chunk still to come.
    remaining: u64,
    /// The chunk's declared size, for the reply.
    size: u64,
    /// `BDAT n LAST`.
    last: bool,
    /// The transaction the chunk is added to, or the answer sent once the
    /// refused chunk has been read and thrown away.
    into: Result<Transaction, Refusal>,
}

/// The answer to a refused BDAT chunk.
pub(super) struct Refusal {
    /// The error reply.
    reply: Reply,
    /// Whether it counts as a bad command (a sequence error).
    bad: bool,
}

impl Session {
    /// `DATA`: the message follows, dot-stuffed, until CRLF.CRLF.
    pub(super) fn on_data(&mut self) -> Response {
        let mut transaction = match self.transaction.take() {
            None => return out_of_sequence("Please send MAIL first"),
            Some(transaction) => match data_refusal(&transaction) {
                Some(refusal) => {
                    self.transaction = Some(transaction);
                    return refusal;
                }
                None => transaction,
            },
        };
        // Grow the buffer once to the declared size instead of doubling
        // from empty (each doubling copies the message so far), as far as
        // the memory share allows.
        let per_message = transaction.message.memory.per_message() as u64;
        let presize = transaction.declared_size.unwrap_or(0).min(per_message) as usize;
        if transaction.message.memory.cover(presize) {
            transaction.message.held.reserve_exact(presize);
        }
        self.mode = Mode::Data {
            unstuffer: Unstuffer::new(self.config.max_message_size),
            transaction,
        };
        // RFC 2034 §3: only 2xx, 4xx and 5xx replies carry enhanced codes.
        Response::ok(Reply::plain(
            354,
            vec!["End data with <CR><LF>.<CR><LF>".into()],
        ))
    }

    /// `BDAT size [LAST]` (RFC 3030): the chunk is always read, even when the
    /// command is refused, so its octets are never taken for commands.
    pub(super) fn on_bdat(&mut self, size: u64, last: bool) -> Response {
        let max = self.config.max_message_size;
        let into = match self.transaction.take() {
            None => Err(Refusal {
                reply: Reply::new(503, (5, 5, 1), "Please send MAIL first"),
                bad: true,
            }),
            Some(transaction) if transaction.recipients.is_empty() => {
                let refusal = if transaction.refused_recipients > 0 {
                    Refusal {
                        reply: Reply::new(554, (5, 5, 1), "No valid recipients"),
                        bad: false,
                    }
                } else {
                    Refusal {
                        reply: Reply::new(503, (5, 5, 1), "Please send RCPT first"),
                        bad: true,
                    }
                };
                self.transaction = Some(transaction);
                Err(refusal)
            }
            // The message got too big: the transaction ends here.
            Some(transaction) if transaction.message.size.saturating_add(size) > max as u64 => {
                Err(Refusal {
                    reply: Reply::new(
                        552,
                        (5, 3, 4),
                        format!("Message too big: this server accepts messages up to {max} bytes"),
                    ),
                    bad: false,
                })
            }
            Some(mut transaction) => {
                transaction.used_bdat = true;
                Ok(transaction)
            }
        };
        let chunk = Chunk {
            remaining: size,
            size,
            last,
            into,
        };
        if size == 0 {
            return self.finish_chunk(chunk);
        }
        self.mode = Mode::Bdat(chunk);
        Response::silent()
    }

    /// Reads DATA octets through the unstuffer.
    pub(super) fn step_data(
        &mut self,
        mut unstuffer: Unstuffer,
        mut transaction: Transaction,
        rest: &[u8],
        out: &mut Vec<u8>,
    ) -> Step {
        let now = &rest[..transaction.message.room_for(rest.len(), HELD_BACK)];
        if let Some(part) = transaction.message.make_room(now.len() + HELD_BACK) {
            let action = self.hand_out(&mut transaction, part);
            self.mode = Mode::Data {
                unstuffer,
                transaction,
            };
            return Step::Act(0, action);
        }
        let before = transaction.message.held.len();
        let status = unstuffer.feed(now, &mut transaction.message.held);
        transaction.message.added_since(before);
        match status {
            DataStatus::NeedMore => {
                self.mode = Mode::Data {
                    unstuffer,
                    transaction,
                };
                match now.len() < rest.len() {
                    true => Step::Progress(now.len()),
                    false => Step::NeedMore(now.len()),
                }
            }
            DataStatus::End { consumed, result } => {
                let response = self.finish_message(transaction, result);
                self.finish_step(consumed, Some(Verb::Data), response, out)
            }
        }
    }

    /// Reads BDAT chunk octets as they are.
    pub(super) fn step_bdat(&mut self, mut chunk: Chunk, rest: &[u8], out: &mut Vec<u8>) -> Step {
        let mut take = usize::try_from(chunk.remaining).map_or(rest.len(), |r| r.min(rest.len()));
        if let Ok(transaction) = &mut chunk.into {
            take = transaction.message.room_for(take, 0);
            if let Some(part) = transaction.message.make_room(take) {
                let action = self.hand_out(transaction, part);
                self.mode = Mode::Bdat(chunk);
                return Step::Act(0, action);
            }
            let content = &mut transaction.message;
            let before = content.held.len();
            content.held.extend_from_slice(&rest[..take]);
            content.nul |= memchr::memchr(0, &rest[..take]).is_some();
            content.added_since(before);
        }
        chunk.remaining -= take as u64;
        if chunk.remaining > 0 {
            self.mode = Mode::Bdat(chunk);
            return match take < rest.len() {
                true => Step::Progress(take),
                false => Step::NeedMore(take),
            };
        }
        let response = self.finish_chunk(chunk);
        self.finish_step(take, Some(Verb::Bdat), response, out)
    }

    /// A BDAT chunk has been read: answer it.
    fn finish_chunk(&mut self, chunk: Chunk) -> Response {
        match chunk.into {
            Err(refusal) => Response {
                reply: Some(refusal.reply),
                action: None,
                fault: if refusal.bad {
                    Fault::BadCommand
                } else {
                    Fault::None
                },
            },
            Ok(transaction) if chunk.last => {
                let result = match transaction.message.nul {
                    true => Err(BodyError::Nul),
                    false => Ok(()),
                };
                self.finish_message(transaction, result)
            }
            Ok(transaction) => {
                self.transaction = Some(transaction);
                Response::ok(Reply::new(
                    250,
                    (2, 0, 0),
                    format!("{} octets received", chunk.size),
                ))
            }
        }
    }

    /// The message is complete: spool it, or say why not. Either way the
    /// transaction ends here.
    fn finish_message(
        &mut self,
        transaction: Transaction,
        result: Result<(), BodyError>,
    ) -> Response {
        let reply = match result {
            Ok(()) => match self.too_many_hops(transaction.message.header.received()) {
                Some(reply) => reply,
                None => return Response::act(None, self.spool_request(transaction)),
            },
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
            Err(BodyError::Nul) => Reply::new(
                550,
                (5, 6, 0),
                "NUL characters in a message are not allowed (see RFC 5322 section 2.3)",
            ),
        };
        self.about = RefusalContext {
            helo: None,
            from: Some(transaction.sender),
            to: transaction.recipients.first().map(|r| r.address.clone()),
            recipients: transaction.recipients.len(),
        };
        Response::ok(reply)
    }

    /// The refusal of a message that has passed more relays than
    /// `max_received` allows: it is in a mail loop (RFC 5321 §6.3). Counted
    /// on the header section as it arrived, before the message is spooled.
    fn too_many_hops(&self, hops: usize) -> Option<Reply> {
        let max = self.config.max_received;
        (hops > max).then(|| {
            Reply::new(
                554,
                (5, 4, 6),
                format!(
                    "Too many hops: the message has {hops} Received header fields, \
                     this server accepts at most {max} (a mail loop?)"
                ),
            )
        })
    }

    /// The spool request for a finished transaction: the whole message, or
    /// the last part of one handed out in parts.
    fn spool_request(&self, transaction: Transaction) -> Action {
        let Transaction {
            sender,
            recipients,
            body_type,
            smtputf8,
            ret,
            envid,
            message,
            ..
        } = transaction;
        if message.started {
            return Action::FinishMessage {
                last_part: message.held,
                summary: MessageSummary {
                    sender,
                    recipients: recipients.len(),
                    size: usize::try_from(message.size).unwrap_or(usize::MAX),
                    auth_user: self.auth_user.clone(),
                    tls: self.tls.clone(),
                    message_id: message.header.message_id(),
                },
            };
        }
        let envelope = Envelope {
            sender,
            recipients,
            body: body_type,
            smtputf8,
            ret,
            envid,
        };
        let missing = message.missing(true);
        Action::Enqueue(Box::new(self.new_message(envelope, message.held, missing)))
    }

    /// The action that hands `part`, the octets of `transaction`'s message
    /// held so far, to the caller to write out.
    fn hand_out(&self, transaction: &mut Transaction, part: Vec<u8>) -> Action {
        if transaction.message.started {
            return Action::AppendMessage(part);
        }
        transaction.message.started = true;
        let envelope = Envelope {
            sender: transaction.sender.clone(),
            recipients: transaction.recipients.clone(),
            body: transaction.body_type,
            smtputf8: transaction.smtputf8,
            ret: transaction.ret,
            envid: transaction.envid.clone(),
        };
        let missing = transaction.message.missing(false);
        Action::StartMessage(Box::new(self.new_message(envelope, part, missing)))
    }

    /// The spool request for `envelope`, `body` and the fields it lacks,
    /// with what the session knows about the client.
    fn new_message(&self, envelope: Envelope, body: Vec<u8>, missing: MissingFields) -> NewMessage {
        let protocol = self.protocol(envelope.smtputf8);
        NewMessage {
            envelope,
            origin: Origin::Client(ClientOrigin {
                client_ip: self.client.ip.clone(),
                helo: self.helo.clone().unwrap_or_default(),
                tls: self.tls.clone(),
                auth_user: self.auth_user.clone(),
                protocol,
            }),
            body,
            missing,
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

/// Why DATA cannot start in `transaction`, if it cannot.
fn data_refusal(transaction: &Transaction) -> Option<Response> {
    if transaction.used_bdat {
        // RFC 3030 §3: DATA and BDAT cannot be mixed in one transaction.
        return Some(out_of_sequence(
            "DATA cannot follow BDAT in the same transaction",
        ));
    }
    if transaction.body_type == Some(Body::BinaryMime) {
        // RFC 3030 §3: BINARYMIME bodies can only be sent with BDAT.
        return Some(out_of_sequence(
            "A BODY=BINARYMIME message must be sent with BDAT",
        ));
    }
    if transaction.recipients.is_empty() {
        return Some(if transaction.refused_recipients > 0 {
            // RFC 2920 §3.1: pipelined DATA after only failed RCPTs.
            Response::ok(Reply::new(554, (5, 5, 1), "No valid recipients"))
        } else {
            out_of_sequence("Please send RCPT first")
        });
    }
    None
}
