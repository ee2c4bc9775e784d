//! Applies a [`Plan`] to the spool. The order is what makes a crash at any
//! point safe:
//!
//! 1. Write the envelope with the new states and `report_due` marks,
//!    unless every recipient is final and none is to be reported (then the
//!    removal in step 4 is the durable record, one sync instead of three).
//!    A restart never delivers a finished recipient again and never
//!    forgets a report.
//! 2. Spool the outcome report, then clear the marks and write again. A
//!    crash in between sends that report twice at worst, never not at all.
//! 3. Spool the "delayed" warning, then record it as sent and write again;
//!    the same holds.
//! 4. Remove the message once no recipient is open; otherwise it waits
//!    for its next attempt.

use super::attempt::Next;
use super::decide::Plan;
use super::report::{self, ReportContext};
use super::Context;
use crate::maillog::{Line, Removed, RemovedBy, ReportKind, ReportSent};
use crate::proto::dsn::MAX_RETURNED_MESSAGE;
use crate::queue::{QueueError, QueueId, StoredMessage};

/// Carries out `plan` for the message whose bytes are `body`; reports
/// spooled are added to `injected`.
pub(crate) fn execute(
    ctx: &Context,
    plan: Plan,
    body: &StoredMessage,
    now: u64,
    injected: &mut Vec<QueueId>,
) -> Result<Next, QueueError> {
    let Plan {
        mut message,
        outcome_report,
        delay_report,
        log,
    } = plan;
    for line in &log {
        line.log();
    }
    let id = message.id.clone();
    let open = message.has_open_recipients();
    if open || message.recipients.iter().any(|e| e.report_due) {
        ctx.spool.update(&id, &message)?;
    }
    let report_ctx = ReportContext {
        hostname: &ctx.config.hostname,
        now,
        retry_until: message
            .arrival
            .saturating_add(ctx.config.retry.retry_until().as_secs()),
    };
    // What a report returns of the message: all of it up to the size a
    // report may return whole, else the start, whose header section it
    // returns. Read only when a report is sent.
    let reports = [&outcome_report, &delay_report];
    let original = if reports
        .iter()
        .any(|r| r.as_ref().is_some_and(|r| !r.is_empty()))
    {
        body.head(MAX_RETURNED_MESSAGE + 1)
            .map_err(|source| QueueError::Io {
                path: ctx.spool.message_path(&id),
                source,
            })?
    } else {
        Vec::new()
    };
    if let Some(recipients) = outcome_report {
        if !recipients.is_empty() {
            let report =
                report::report_message(&message, &original, &recipients, &report_ctx, "dsn");
            let report_id = ctx.spool.store(&report)?;
            ReportSent {
                queue_id: &id,
                kind: ReportKind::Outcome,
                report_id: &report_id,
                to: &message.mail_from.sender,
            }
            .log();
            injected.push(report_id);
        }
        for entry in &mut message.recipients {
            entry.report_due = false;
        }
        ctx.spool.update(&id, &message)?;
    }
    if let Some(recipients) = delay_report {
        if !recipients.is_empty() {
            let report =
                report::report_message(&message, &original, &recipients, &report_ctx, "delay");
            let report_id = ctx.spool.store(&report)?;
            ReportSent {
                queue_id: &id,
                kind: ReportKind::Delay,
                report_id: &report_id,
                to: &message.mail_from.sender,
            }
            .log();
            injected.push(report_id);
        }
        message.delay_warned = true;
        ctx.spool.update(&id, &message)?;
    }
    if open {
        Ok(Next::RetryAt(message.next_attempt))
    } else {
        ctx.spool.retire(&id)?;
        Removed {
            queue_id: &id,
            by: RemovedBy::Delivery,
        }
        .log();
        Ok(Next::Removed)
    }
}
