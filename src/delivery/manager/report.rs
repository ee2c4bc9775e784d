//! Pure helpers of the manager: which outcomes the sender asked to hear
//! about (RFC 3461 §4.1 NOTIFY), the status code behind a stored reply, the
//! report message handed to `proto::dsn`, and the mail log line.

use std::time::Duration;

use crate::proto::command::Notify;
use crate::proto::dsn::{self, Action, DsnRecipient};
use crate::proto::envelope::{Envelope, NewMessage, Origin};
use crate::proto::reply::{Enhanced, Reply};
use crate::queue::{QueuedMessage, RecipientState};

/// RFC 3461 §4.1: without NOTIFY the default is FAILURE,DELAY; NEVER
/// means no report at all.
pub(crate) fn wants(notify: Option<Notify>, action: Action) -> bool {
    let n = match notify {
        Some(n) if n.never => return false,
        Some(n) if n.success || n.failure || n.delay => n,
        _ => Notify {
            failure: true,
            delay: true,
            ..Notify::default()
        },
    };
    match action {
        Action::Failed => n.failure,
        Action::Delayed => n.delay,
        Action::Delivered | Action::Relayed => n.success,
    }
}

/// A reply as one log- and file-friendly line: `550 5.1.1 No such user`.
pub(crate) fn reply_line(reply: &Reply) -> String {
    let text = reply
        .lines
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" ");
    match reply.enhanced {
        Some(Enhanced(c, s, d)) => format!("{} {c}.{s}.{d} {text}", reply.code),
        None => format!("{} {text}", reply.code),
    }
}

/// The status of a stored failure: the enhanced code in `550 5.1.1 …` or
/// `5.1.10 …`, else one from the reply code; always class 5 (the failure
/// is final whatever the last reply said). A given-up message is 5.4.7
/// (RFC 3463: delivery time expired).
pub(crate) fn failure_status(reply: &str) -> Enhanced {
    if reply.starts_with(GAVE_UP) {
        return Enhanced(5, 4, 7);
    }
    let mut words = reply.split_ascii_whitespace();
    let first = words.next().unwrap_or("");
    let candidate = if first.len() == 3 && first.bytes().all(|b| b.is_ascii_digit()) {
        words.next().unwrap_or("")
    } else {
        first
    };
    match parse_enhanced(candidate) {
        Some(Enhanced(_, s, d)) => Enhanced(5, s, d),
        None => Enhanced(5, 0, 0),
    }
}

/// The start of the reason stored for a message past its lifetime.
pub(crate) const GAVE_UP: &str = "gave up after ";

/// `gave up after 5 days: <last error>`.
pub(crate) fn gave_up(age: Duration, last: &str) -> String {
    format!("{GAVE_UP}{}: {last}", human_duration(age))
}

/// `5 days`, `3 hours`, `2 minutes`, `4 seconds` (rounded down).
pub(crate) fn human_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (n, unit) = if secs >= 86_400 {
        (secs / 86_400, "day")
    } else if secs >= 3600 {
        (secs / 3600, "hour")
    } else if secs >= 60 {
        (secs / 60, "minute")
    } else {
        (secs, "second")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn parse_enhanced(text: &str) -> Option<Enhanced> {
    let mut parts = text.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !matches!(class, 2 | 4 | 5) {
        return None;
    }
    Some(Enhanced(class, subject, detail))
}

/// What a report needs to know that the envelope file does not keep.
pub(crate) struct ReportContext<'a> {
    /// Our host name.
    pub hostname: &'a str,
    /// Now, seconds since the epoch.
    pub now: u64,
    /// The remote host that gave each recipient its outcome in this run.
    pub remote_mta: &'a dyn Fn(usize) -> Option<String>,
    /// Until when deferred recipients are retried (seconds since epoch).
    pub retry_until: u64,
}

/// The report for recipients `indices` of `message` (their states say
/// what happened), as a new message from `<>` to the sender. `kind` names
/// the report in its Message-ID.
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
            let rcpt = message.envelope.recipients.get(i)?;
            let state = message.states.get(i)?;
            let (action, status, diagnostic) = match state {
                RecipientState::Failed { reply } => {
                    (Action::Failed, failure_status(reply), Some(reply.clone()))
                }
                RecipientState::Deferred { reply, .. } => {
                    (Action::Delayed, Enhanced(4, 0, 0), Some(reply.clone()))
                }
                // A success report is due for a remote recipient only when
                // the next hop did not take NOTIFY over (RFC 3461 §5.2.2).
                RecipientState::Delivered if (ctx.remote_mta)(i).is_some() => {
                    (Action::Relayed, Enhanced(2, 0, 0), None)
                }
                RecipientState::Delivered => (Action::Delivered, Enhanced(2, 0, 0), None),
                RecipientState::Pending => return None,
            };
            Some(DsnRecipient {
                final_recipient: rcpt.address.clone(),
                original_recipient: rcpt.orcpt.clone(),
                action,
                status,
                remote_mta: (ctx.remote_mta)(i),
                diagnostic,
                last_attempt: Some(now_date.clone()),
                will_retry_until: (action == Action::Delayed)
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
        sender: &message.envelope.sender,
        envid: message.envelope.envid.as_deref(),
        ret: message.envelope.ret,
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
                address: message.envelope.sender.clone(),
                notify: None,
                orcpt: None,
            }],
            body: eight_bit.then_some(crate::proto::command::Body::EightBitMime),
            smtputf8: false,
            ret: None,
            envid: None,
        },
        origin: Origin {
            client_ip: "127.0.0.1".into(),
            helo: ctx.hostname.to_string(),
            tls: None,
            auth_user: None,
            protocol: "ESMTP",
        },
        body,
    }
}

/// A stable 64-bit seed from a text (queue id): retry jitter, MX shuffle,
/// MIME boundaries. Not for anything secret.
pub(crate) fn seed_of(text: &str) -> u64 {
    text.bytes().fold(0x5eed, |acc, b| {
        super::super::splitmix64(acc ^ u64::from(b))
    })
}

/// The outcome of one recipient in the mail log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogStatus {
    /// Handed over.
    Sent,
    /// Will be retried.
    Deferred,
    /// Failed for good; the sender gets a report.
    Bounced,
}

/// One line of the mail log per recipient and attempt, after Postfix's
/// `qmgr`/`smtp` lines: `ID: to=<rcpt>, relay=host[ip]:port, delay=3,
/// tls=TLSv1.3, status=sent (250 2.0.0 Ok)`.
pub(crate) fn log_line(
    id: &str,
    rcpt: &str,
    relay: &str,
    delay_secs: u64,
    tls: Option<&str>,
    status: LogStatus,
    reply: &str,
) -> String {
    let status = match status {
        LogStatus::Sent => "sent",
        LogStatus::Deferred => "deferred",
        LogStatus::Bounced => "bounced",
    };
    let clean = |s: &str| s.replace(|c: char| c.is_control(), " ");
    format!(
        "{id}: to=<{}>, relay={}, delay={delay_secs}, tls={}, status={status} ({})",
        clean(rcpt),
        clean(relay),
        tls.unwrap_or("none"),
        clean(reply)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_defaults_and_never() {
        let n = |s: bool, f: bool, d: bool, never: bool| {
            Some(Notify {
                never,
                success: s,
                failure: f,
                delay: d,
            })
        };
        let table = [
            (None, [true, true, false]),
            (n(false, false, false, true), [false, false, false]),
            (n(true, false, false, false), [false, false, true]),
            (n(true, true, false, false), [true, false, true]),
            (n(false, false, true, false), [false, true, false]),
        ];
        for (notify, [failed, delayed, delivered]) in table {
            assert_eq!(wants(notify, Action::Failed), failed, "{notify:?}");
            assert_eq!(wants(notify, Action::Delayed), delayed, "{notify:?}");
            assert_eq!(wants(notify, Action::Delivered), delivered, "{notify:?}");
        }
    }

    #[test]
    fn statuses_of_stored_failures() {
        let table = [
            ("550 5.1.1 No such user", Enhanced(5, 1, 1)),
            ("5.1.10 null MX", Enhanced(5, 1, 10)),
            ("554 Transaction failed", Enhanced(5, 0, 0)),
            ("452 4.2.2 Mailbox full", Enhanced(5, 2, 2)),
            ("gave up after 5 days: connect refused", Enhanced(5, 4, 7)),
            ("", Enhanced(5, 0, 0)),
            ("550 9.9.9 odd", Enhanced(5, 0, 0)),
        ];
        for (reply, want) in table {
            assert_eq!(failure_status(reply), want, "{reply}");
        }
    }

    #[test]
    fn durations_and_lines() {
        assert_eq!(human_duration(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human_duration(Duration::from_secs(3700)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(2)), "2 seconds");
        assert_eq!(
            gave_up(Duration::from_secs(86_400), "refused"),
            "gave up after 1 day: refused"
        );
        let reply = Reply::new(250, (2, 0, 0), "Ok: queued");
        assert_eq!(reply_line(&reply), "250 2.0.0 Ok: queued");
        assert_eq!(
            log_line(
                "ID",
                "b@x",
                "mx[1.2.3.4]:25",
                3,
                Some("TLSv1.3"),
                LogStatus::Sent,
                "250 ok\r\n"
            ),
            "ID: to=<b@x>, relay=mx[1.2.3.4]:25, delay=3, tls=TLSv1.3, status=sent (250 ok  )"
        );
    }
}
