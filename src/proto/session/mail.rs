//! MAIL and RCPT: starting a transaction and collecting its recipients,
//! with the sender check and the relay policy (asking the `Directory`).

use super::{out_of_sequence, Content, Response, Role, Session, Transaction};
use crate::proto::address::{Domain, Mailbox, Path};
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
                    format!("You are logged in as {user} and may not send as <{sender}>"),
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
            message: Content::new(&self.config.memory),
            declared_size: params.size,
        });
        Response::ok(reply)
    }

    /// `RCPT TO:<path> params`: the relay policy lives here.
    pub(super) fn on_rcpt(&mut self, to: Path<'_>, params: RcptParams) -> Response {
        self.about.to = Some(path_text(&to));
        // Taken out while the policy borrows the session; put back below.
        let Some(mut transaction) = self.transaction.take() else {
            return out_of_sequence("Please send MAIL first");
        };
        let full = transaction.recipients.len() >= self.config.max_recipients;
        let response = if full {
            // RFC 5321 §4.5.3.1.10: 452 asks the client to send the rest in
            // another transaction.
            Response::ok(Reply::new(452, (4, 5, 3), "Too many recipients"))
        } else {
            self.recipient_policy(&to, transaction.smtputf8)
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

/// `local@domain` as written.
fn mailbox_text(mailbox: &Mailbox<'_>) -> String {
    let domain = match mailbox.domain {
        Domain::Name(name) | Domain::Literal(name) => name,
    };
    format!("{}@{}", mailbox.local, domain)
}
