//! What an attempt means, decided without touching anything: the message
//! as loaded and what each destination said go in; a [`Plan`] comes out
//! with every recipient's new state, the attempt count and next attempt
//! time, which reports to send, and the mail log lines. The executor
//! (`execute.rs`) applies it to the spool; the delivery I/O is in
//! `attempt.rs`. Pure: no clock, no files, no sockets, so every transition
//! is tested here.
//!
//! Rules, per recipient: handed over → delivered (a success report only
//! if NOTIFY=SUCCESS and the next hop does not report itself, RFC 3461
//! §6.2.2); permanent failure → failed, reported unless NOTIFY says
//! otherwise; transient failure → deferred, tried again by the retry
//! schedule until the queue lifetime ends, then failed as expired (RFC
//! 3463 5.4.7); once past `--delay-warning`, one "delayed" report for the
//! deferred recipients whose NOTIFY includes DELAY. Without NOTIFY a
//! sender hears of failures and delays (RFC 3461 §4.1); the null sender
//! `<>` never gets a report.

use std::time::Duration;

use super::report;
use crate::delivery::retry::{Decision, RetryPolicy};
use crate::maillog::{Delivery, DeliveryStatus};
use crate::proto::dsn::ReportAction;
use crate::queue::{Failure, QueuedMessage, RecipientEntry, RecipientState};

/// One recipient's result in this attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RcptOutcome {
    /// Handed over; `said` is for the mail log (`250 2.0.0 Ok`,
    /// `delivered to maildir …`).
    Delivered {
        /// What the next hop or the Maildir said.
        said: String,
    },
    /// Failed for now: try again later.
    Transient(Failure),
    /// Failed for good.
    Permanent(Failure),
}

/// What one destination (a group of recipients) said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupResult {
    /// Recipients (indices into `QueuedMessage::recipients`) and their
    /// outcomes.
    pub outcomes: Vec<(usize, RcptOutcome)>,
    /// `host[ip]:port`, `local`, `discard` or `none`, for the log.
    pub relay: String,
    /// The host name of the next hop that took the session, if one did.
    pub remote_host: Option<String>,
    /// The TLS version of the session, for the log.
    pub tls: Option<String>,
    /// The next hop announced DSN: it passes NOTIFY=SUCCESS on itself.
    pub peer_dsn: bool,
    /// Which transaction of its connection the session was (1: a new
    /// connection; more: a kept one); 0 without a connection.
    pub conn_use: u32,
}

/// Everything one attempt found out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempted {
    /// One result per destination tried, in order.
    pub groups: Vec<GroupResult>,
    /// The server began stopping: the rest is tried first thing after the
    /// restart, and a connection it closed says nothing about the peer.
    pub interrupted: bool,
}

/// What to do with the message after an attempt; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// The message with this attempt's outcomes, attempt count, next
    /// attempt and `report_due` marks.
    pub message: QueuedMessage,
    /// The final outcomes to report now: every recipient marked
    /// `report_due` (empty when the sender is `<>`). `None` when none is
    /// marked; otherwise the marks are cleared once it is spooled.
    pub outcome_report: Option<Vec<usize>>,
    /// The "delayed" warning is due: the recipients it names (empty when
    /// none asked for it). `None` when it is not due; otherwise it is
    /// recorded as sent once spooled.
    pub delay_report: Option<Vec<usize>>,
    /// Mail log lines, in order.
    pub log: Vec<Delivery>,
}

/// Decides what `attempt` means for `message` at `now_millis` (since the
/// epoch) under `policy`.
pub(crate) fn decide(
    message: &QueuedMessage,
    attempt: &Attempted,
    now_millis: u64,
    policy: &RetryPolicy,
) -> Plan {
    let mut message = message.clone();
    let mut log = Vec::new();
    for group in &attempt.groups {
        log.extend(record(&mut message, group, now_millis));
    }
    let now = now_millis / 1000;
    let age = Duration::from_secs(now.saturating_sub(message.arrival));
    if !attempt.groups.is_empty() {
        message.attempts += 1;
    }
    if attempt.interrupted {
        message.next_attempt = 0;
    } else if message.has_open_recipients() {
        let seed = report::seed_of(message.id.as_str());
        match policy.after_failure(age, message.attempts, seed) {
            Decision::GiveUp => log.extend(expire(&mut message, age)),
            Decision::RetryAfter(after) => {
                let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                message.next_attempt = now_millis.saturating_add(millis).div_ceil(1000);
            }
        }
    }

    let tell_sender = !message.mail_from.sender.is_empty();
    let marked: Vec<usize> = indices(&message, |entry| entry.report_due);
    let outcome_report =
        (!marked.is_empty()).then(|| if tell_sender { marked } else { Vec::new() });
    let deferred = indices(&message, |entry| {
        matches!(entry.state, RecipientState::Deferred { .. })
    });
    let delay_report =
        (!deferred.is_empty() && policy.warn_now(age, message.delay_warned)).then(|| {
            deferred
                .into_iter()
                .filter(|&i| {
                    tell_sender
                        && report::wants(
                            message.recipients[i].recipient.notify,
                            ReportAction::Delayed,
                        )
                })
                .collect()
        });
    Plan {
        message,
        outcome_report,
        delay_report,
        log,
    }
}

/// Writes one group's outcomes, known at `now_millis`, into `message`
/// (states and report marks) and returns their log lines. The attempt also
/// uses it to write each group's outcome down before the next group
/// starts.
pub(crate) fn record(
    message: &mut QueuedMessage,
    group: &GroupResult,
    now_millis: u64,
) -> Vec<Delivery> {
    let delay = Duration::from_millis(now_millis.saturating_sub(arrival_millis(message)));
    let tell_sender = !message.mail_from.sender.is_empty();
    let mut log = Vec::new();
    for (index, outcome) in &group.outcomes {
        let Some(entry) = message.recipients.get_mut(*index) else {
            continue;
        };
        let notify = entry.recipient.notify;
        let (state, status, text, due) = match outcome {
            RcptOutcome::Delivered { said } => (
                RecipientState::Delivered {
                    relay: group.remote_host.clone(),
                },
                DeliveryStatus::Sent,
                said.clone(),
                // RFC 3461 §6.2.2: a DSN-capable next hop got NOTIFY and
                // reports success itself.
                !group.peer_dsn && tell_sender && report::wants(notify, ReportAction::Delivered),
            ),
            RcptOutcome::Permanent(failure) => (
                RecipientState::Failed(failure.clone()),
                DeliveryStatus::Bounced,
                failure.to_string(),
                tell_sender && report::wants(notify, ReportAction::Failed),
            ),
            RcptOutcome::Transient(failure) => {
                let attempts = match &entry.state {
                    RecipientState::Deferred { attempts, .. } => attempts + 1,
                    _ => 1,
                };
                let state = RecipientState::Deferred {
                    last: failure.clone(),
                    attempts,
                };
                (state, DeliveryStatus::Deferred, failure.to_string(), false)
            }
        };
        log.push(Delivery {
            queue_id: message.id.clone(),
            recipient: entry.recipient.address.clone(),
            relay: group.relay.clone(),
            delay,
            conn_use: group.conn_use,
            tls: group.tls.clone(),
            status,
            said: text,
        });
        entry.state = state;
        entry.report_due = due;
    }
    log
}

/// When `message` arrived, in milliseconds since the epoch: the envelope
/// file's second, made precise by its queue id's millisecond when that
/// falls within it.
fn arrival_millis(message: &QueuedMessage) -> u64 {
    let second = message.arrival.saturating_mul(1000);
    match message.id.millis() {
        ms if ms / 1000 == message.arrival => ms,
        _ => second,
    }
}

/// The queue lifetime is over: every deferred recipient fails as expired.
fn expire(message: &mut QueuedMessage, age: Duration) -> Vec<Delivery> {
    let tell_sender = !message.mail_from.sender.is_empty();
    let mut log = Vec::new();
    for entry in &mut message.recipients {
        let RecipientState::Deferred { last, .. } = &entry.state else {
            continue;
        };
        let failure = Failure::Expired {
            age,
            last: Box::new(last.clone()),
        };
        log.push(Delivery {
            queue_id: message.id.clone(),
            recipient: entry.recipient.address.clone(),
            relay: "none".into(),
            delay: age,
            conn_use: 0,
            tls: None,
            status: DeliveryStatus::Bounced,
            said: failure.to_string(),
        });
        entry.report_due =
            tell_sender && report::wants(entry.recipient.notify, ReportAction::Failed);
        entry.state = RecipientState::Failed(failure);
    }
    log
}

/// The positions of the recipients `pick` chooses.
fn indices(message: &QueuedMessage, pick: impl Fn(&RecipientEntry) -> bool) -> Vec<usize> {
    (0..message.recipients.len())
        .filter(|&i| pick(&message.recipients[i]))
        .collect()
}

#[cfg(test)]
mod tests;
