//! MAIL and RCPT: starting a transaction and collecting its recipients,
//! with the sender check and the relay policy (asking the `Directory`),
//! and the sender domain that completes a local script's bare addresses.

use super::{out_of_sequence, Account, Content, Response, Role, Session, Transaction};
use crate::proto::address::{self, Domain, Mailbox, Path};
use crate::proto::command::{MailParams, RcptParams};
use crate::proto::envelope::Recipient;
use crate::proto::reply::Reply;

impl Session {
    /// `MAIL FROM:<path> params`: starts a transaction.
    pub(super) fn on_mail(&mut self, from: Path<'_>, params: MailParams<'_>) -> Response {
        self.about.from = Some(path_text(&from));
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
        let Some(sender) = self.sender_address(&from) else {
            return Response::bad(Reply::new(
                501,
                (5, 1, 7),
                "The sender address must include a domain, like user@example.com",
            ));
        };
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
                    format!("You are logged in as {user} and may not send as <{sender}>"),
                ));
            }
        }
        if let Some(refusal) = self.limit_refusal(1) {
            return Response::ok(refusal);
        }
        let reply = Reply::new(250, (2, 1, 0), format!("Sender <{sender}> OK"));
        // Mail from a device or script gets the header fields it lacks;
        // mail from other servers stays exactly as it was sent.
        let fix_up = self.role != Role::Smtp || self.client.trusted || self.auth_user.is_some();
        self.transaction = Some(Transaction {
            sender,
            body_type: params.body,
            smtputf8: params.smtputf8,
            ret: params.ret,
            envid: params.envid.map(str::to_string),
            recipients: Vec::new(),
            refused_recipients: 0,
            used_bdat: false,
            message: Content::new(&self.config.memory, fix_up),
            declared_size: params.size,
        });
        Response::ok(reply)
    }

    /// The envelope sender as queued: a relay-network client's bare local
    /// part or `user@localhost` gets the sender domain, as Postfix's
    /// `myorigin` does, so cron's `root` leaves as `root@example.org`.
    /// `None` for a bare local part from anyone else.
    fn sender_address(&self, from: &Path<'_>) -> Option<String> {
        let trusted = self.client.trusted;
        match from {
            Path::LocalPart(local) if trusted => Some(self.qualified(local)),
            Path::LocalPart(_) => None,
            Path::Mailbox {
                mailbox,
                source_route: false,
            } if trusted && is_localhost(&mailbox.domain) => Some(self.qualified(mailbox.local)),
            _ => Some(path_text(from)),
        }
    }

    /// Whose daily limits this session's mail counts against: the
    /// authenticated user, else the relay networks together; mail from
    /// other servers counts against nobody.
    pub(super) fn account(&self) -> Option<Account<'_>> {
        match &self.auth_user {
            Some(user) => Some(Account::User(user)),
            None if self.client.trusted => Some(Account::RelayNetworks),
            None => None,
        }
    }

    /// The refusal of one more message to `recipients` recipients past a
    /// daily limit. A 4xx: the client keeps the message (Outlook in its
    /// Outbox) and tries again later.
    fn limit_refusal(&self, recipients: usize) -> Option<Reply> {
        let account = self.account()?;
        let reached = self.config.limits.may_send(account, recipients).err()?;
        Some(Reply::new(
            451,
            (4, 7, 1),
            format!(
                "Daily sending limit reached ({} {} in 24 hours); sending opens again at {}",
                reached.limit, reached.what, reached.reopens
            ),
        ))
    }

    /// `local@` the sender domain.
    fn qualified(&self, local: &str) -> String {
        format!("{local}@{}", self.config.sender_domain)
    }

    /// `RCPT TO:<path> params`: the relay policy lives here. A bare local
    /// part from a relay-network client is qualified like the sender.
    pub(super) fn on_rcpt(&mut self, to: Path<'_>, params: RcptParams) -> Response {
        let qualified;
        let to = match to {
            Path::LocalPart(local) if self.client.trusted => {
                qualified = self.qualified(local);
                match address::parse_mailbox(&qualified, true) {
                    Ok(mailbox) => Path::Mailbox {
                        mailbox,
                        source_route: false,
                    },
                    Err(_) => to,
                }
            }
            _ => to,
        };
        self.about.to = Some(path_text(&to));
        // Taken out while the policy borrows the session; put back below.
        let Some(mut transaction) = self.transaction.take() else {
            return out_of_sequence("Please send MAIL first");
        };
        if transaction.used_bdat {
            // The message may be on its way to the spool already, with the
            // recipients it had; one added now could be lost (Exim refuses
            // it too).
            self.transaction = Some(transaction);
            return out_of_sequence("RCPT cannot follow BDAT in the same transaction");
        }
        let full = transaction.recipients.len() >= self.config.max_recipients;
        let response = if full {
            // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in
            // another transaction.
            Response::ok(Reply::new(452, (4, 5, 3), "Too many recipients"))
        } else {
            self.recipient_policy(&to, transaction.smtputf8)
        };
        let response = match &response.reply {
            Some(reply) if reply.code == 250 => self
                .limit_refusal(transaction.recipients.len() + 1)
                .map_or(response, Response::ok),
            _ => response,
        };
        let accepted = response
            .reply
            .as_ref()
            .is_some_and(|reply| reply.code == 250);
        if accepted {
            let address = path_text(&to);
            // The same recipient twice gets one copy; the first RCPT's
            // NOTIFY and ORCPT stand (Postfix accepts it the same way).
            let duplicate = transaction
                .recipients
                .iter()
                .any(|r| same_address(&r.address, &address));
            if !duplicate {
                transaction.recipients.push(Recipient {
                    address,
                    notify: params.notify,
                    orcpt: params.orcpt,
                });
            }
        } else {
            transaction.refused_recipients += 1;
        }
        self.transaction = Some(transaction);
        response
    }

    /// Whether `to` may receive mail through us, as a reply. Refusing an
    /// unknown user or a relay attempt counts as an error, so a client
    /// guessing user names (a directory harvest) is slowed, then cut off.
    fn recipient_policy(&self, to: &Path<'_>, smtputf8: bool) -> Response {
        let (mailbox, source_route) = match to {
            // RFC 5321 §4.5.1: <Postmaster> is the postmaster of this
            // server; the directory knows whose mailbox that is.
            Path::Postmaster => return self.local_recipient("Postmaster", "Postmaster"),
            Path::Null => {
                return Response::bad(Reply::new(
                    501,
                    (5, 1, 3),
                    "The empty address <> cannot receive mail",
                ))
            }
            Path::LocalPart(_) => {
                return Response::bad(Reply::new(
                    501,
                    (5, 1, 3),
                    "The recipient address must include a domain, like user@example.com",
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
            return self.local_recipient(&normalized, &address);
        }
        let may_relay = self.auth_user.is_some() || self.client.trusted;
        if !may_relay {
            return Response::error(Reply::new(554, (5, 7, 1), "Relay access denied"));
        }
        if trick {
            return Response::error(Reply::new(
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

    /// A recipient of ours is accepted only when the directory has a
    /// mailbox for it (postmaster included): whatever is accepted here must
    /// be deliverable, or the bounce would go to a possibly forged sender.
    fn local_recipient(&self, lookup: &str, address: &str) -> Response {
        if self.directory.mailbox_exists(lookup) {
            Response::ok(Reply::new(
                250,
                (2, 1, 5),
                format!("Recipient <{address}> OK"),
            ))
        } else {
            Response::error(Reply::new(550, (5, 1, 1), "No such user here"))
        }
    }
}

/// The address of a path as text: `local@domain`, `Postmaster`, or empty
/// for `<>`.
fn path_text(path: &Path<'_>) -> String {
    match path {
        Path::Null => String::new(),
        Path::Postmaster => "Postmaster".to_string(),
        Path::LocalPart(local) => local.to_string(),
        Path::Mailbox { mailbox, .. } => mailbox_text(mailbox),
    }
}

/// Whether two recipient addresses name the same mailbox: the local part
/// as written (RFC 5321 §2.4 leaves its case to the receiving host), the
/// domain in any case.
fn same_address(a: &str, b: &str) -> bool {
    match (a.rsplit_once('@'), b.rsplit_once('@')) {
        (Some((local_a, domain_a)), Some((local_b, domain_b))) => {
            local_a == local_b && domain_a.eq_ignore_ascii_case(domain_b)
        }
        _ => a == b,
    }
}

/// `localhost`, in any case: the domain of a local script's address.
fn is_localhost(domain: &Domain<'_>) -> bool {
    matches!(domain, Domain::Name(name) if name.eq_ignore_ascii_case("localhost"))
}

/// `local@domain` as written.
fn mailbox_text(mailbox: &Mailbox<'_>) -> String {
    let domain = match mailbox.domain {
        Domain::Name(name) | Domain::Literal(name) => name,
    };
    format!("{}@{}", mailbox.local, domain)
}
