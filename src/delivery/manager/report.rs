//! Pure helpers of the manager: which outcomes the sender asked to hear
//! about (RFC 3461 §4.1 NOTIFY), a client reply as it is recorded, the
//! report message handed to `proto::dsn`, and the mail log line.

use crate::proto::dsn::{self, DsnRecipient, ReportAction};
use crate::proto::envelope::{Envelope, MissingFields, NewMessage, Origin};
use crate::proto::esmtp::{Body, Notify};
use crate::proto::reply::{Enhanced, Reply};
use crate::proto::splitmix::splitmix64;
use crate::queue::{QueuedMessage, RecipientState, RemoteReply};

/// RFC 3461 §4.1: without NOTIFY the default is FAILURE,DELAY; NEVER
/// means no report at all.
pub(crate) fn wants(notify: Option<Notify>, action: ReportAction) -> bool {
    let n = notify.unwrap_or(Notify::IMPLIED);
    match action {
        ReportAction::Failed => n.failure,
        ReportAction::Delayed => n.delay,
        ReportAction::Delivered | ReportAction::Relayed => n.success,
    }
}

/// A client outcome's reply as it is recorded: the code, the enhanced
/// code and the text on one line ([`Reply::text_line`]).
pub(crate) fn remote_reply(reply: &Reply) -> RemoteReply {
    RemoteReply {
        code: reply.code,
        enhanced: reply.enhanced,
        text: reply.text_line().to_string(),
    }
}

/// What a report needs besides the message.
pub(crate) struct ReportContext<'a> {
    /// Our host name.
    pub hostname: &'a str,
    /// Now, seconds since the epoch.
    pub now: u64,
    /// Until when deferred recipients are retried (seconds since epoch).
    pub retry_until: u64,
}

/// The report for recipients `indices` of `message`, as a new message
/// from `<>` to the sender; their recorded states say what happened and
/// who said so (nothing is taken from this run's memory, so a report left
/// over by a crash reads the same). `kind` names the report in its
/// Message-ID.
pub(crate) fn report_message(
    message: &QueuedMessage,
    original: &[u8],
    indices: &[usize],
    ctx: &ReportContext<'_>,
    kind: &str,
) -> NewMessage {
    let now_date = dsn::format_date(ctx.now);
    let recipients: Vec<DsnRecipient> = indices
        .iter()
        .filter_map(|&i| {
            let entry = message.recipients.get(i)?;
            let (action, status, remote_mta, diagnostic) = match &entry.state {
                RecipientState::Failed(failure) => (
                    ReportAction::Failed,
                    failure.final_status(),
                    failure.remote_host().map(str::to_string),
                    Some(failure.to_string()),
                ),
                RecipientState::Deferred { last, .. } => (
                    ReportAction::Delayed,
                    Enhanced(4, 0, 0),
                    last.remote_host().map(str::to_string),
                    Some(last.to_string()),
                ),
                // A success report is due for a remote recipient only when
                // the next hop did not take NOTIFY over (RFC 3461 §5.2.2).
                RecipientState::Delivered { relay: Some(host) } => (
                    ReportAction::Relayed,
                    Enhanced(2, 0, 0),
                    Some(host.clone()),
                    None,
                ),
                RecipientState::Delivered { relay: None } => {
                    (ReportAction::Delivered, Enhanced(2, 0, 0), None, None)
                }
                RecipientState::Pending => return None,
            };
            let rcpt = &entry.recipient;
            Some(DsnRecipient {
                final_recipient: rcpt.address.clone(),
                original_recipient: rcpt.orcpt.clone(),
                action,
                status,
                remote_mta,
                diagnostic,
                last_attempt: Some(now_date.clone()),
                will_retry_until: (action == ReportAction::Delayed)
                    .then(|| dsn::format_date(ctx.retry_until)),
            })
        })
        .collect();
    let message_id = format!(
        "{}.{kind}.{}@{}",
        message.id,
        message.attempts,
        ctx.hostname.trim_end_matches('.')
    );
    let body = dsn::build(&dsn::DsnInput {
        reporting_mta: ctx.hostname,
        sender: &message.mail_from.sender,
        envid: message.mail_from.envid.as_deref(),
        ret: message.mail_from.ret,
        arrival_date: &dsn::format_date(message.arrival),
        recipients: &recipients,
        original,
        boundary_seed: seed_of(&message_id) ^ ctx.now,
        date: &now_date,
        message_id: &message_id,
    });
    let eight_bit = !body.is_ascii();
    NewMessage {
        envelope: Envelope {
            sender: String::new(),
            recipients: vec![crate::proto::envelope::Recipient {
                address: message.mail_from.sender.clone(),
                notify: None,
                orcpt: None,
            }],
            body: eight_bit.then_some(Body::EightBitMime),
            smtputf8: false,
            ret: None,
            envid: None,
        },
        origin: Origin::Internal,
        body,
        // The report has its own Message-ID and Date.
        missing: MissingFields::default(),
    }
}

/// A stable 64-bit seed from a text (queue id): retry jitter, MX shuffle,
/// MIME boundaries. Not for anything secret.
pub(crate) fn seed_of(text: &str) -> u64 {
    text.bytes()
        .fold(0x5eed, |acc, b| splitmix64(acc ^ u64::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_defaults_and_never() {
        let n = |s: bool, f: bool, d: bool| {
            Some(Notify {
                success: s,
                failure: f,
                delay: d,
            })
        };
        let table = [
            (None, [true, true, false]),
            (Some(Notify::NEVER), [false, false, false]),
            (n(true, false, false), [false, false, true]),
            (n(true, true, false), [true, false, true]),
            (n(false, false, true), [false, true, false]),
        ];
        for (notify, [failed, delayed, delivered]) in table {
            assert_eq!(wants(notify, ReportAction::Failed), failed, "{notify:?}");
            assert_eq!(wants(notify, ReportAction::Delayed), delayed, "{notify:?}");
            assert_eq!(
                wants(notify, ReportAction::Delivered),
                delivered,
                "{notify:?}"
            );
        }
    }

    #[test]
    fn replies_as_recorded() {
        let reply = Reply::new(250, (2, 0, 0), "Ok: queued");
        assert_eq!(remote_reply(&reply).to_string(), "250 2.0.0 Ok: queued");
        let lines = Reply::plain(550, vec![" first ".into(), "second".into()]);
        assert_eq!(remote_reply(&lines).to_string(), "550 first second");
        let broken = Reply::plain(451, vec!["try\rlater".into()]);
        assert_eq!(remote_reply(&broken).text, "try later");
    }
}
