//! Every transition of [`decide`], on plain values: no spool, no clock.

use super::*;
use crate::delivery::manager::report::{report_message, ReportContext};
use crate::delivery::retry::Schedule;
use crate::proto::envelope::Recipient;
use crate::proto::esmtp::Notify;
use crate::proto::reply::Enhanced;
use crate::test_fixtures::{self, remote_failure};

const ARRIVAL: u64 = 1_800_000_000;
const HOUR: u64 = 3600;
const DAY: u64 = 86_400;

fn policy() -> RetryPolicy {
    RetryPolicy {
        schedule: Schedule::List(vec![Duration::from_secs(600), Duration::from_secs(1800)]),
        max_lifetime: Duration::from_secs(5 * DAY),
        delay_warning: Some(Duration::from_secs(4 * HOUR)),
    }
}

/// A message from `sender` to `rcpt0@example.net`, `rcpt1@…`, one for each
/// NOTIFY in `notify`, arrived at [`ARRIVAL`], not tried yet.
fn message(sender: &str, notify: &[Option<Notify>]) -> QueuedMessage {
    let mut new = test_fixtures::new_message(b"Subject: x\r\n\r\n");
    new.envelope.sender = sender.into();
    new.envelope.recipients = notify
        .iter()
        .enumerate()
        .map(|(i, &notify)| Recipient {
            notify,
            ..test_fixtures::recipient(&format!("rcpt{i}@example.net"))
        })
        .collect();
    test_fixtures::queued_message(&new, ARRIVAL)
}

fn notify(success: bool, failure: bool, delay: bool) -> Option<Notify> {
    Some(Notify {
        success,
        failure,
        delay,
    })
}

const NEVER: Option<Notify> = Some(Notify::NEVER);

fn transient() -> RcptOutcome {
    RcptOutcome::Transient(remote_failure(
        451,
        Some(Enhanced(4, 3, 0)),
        "Try again later",
    ))
}

fn permanent() -> RcptOutcome {
    RcptOutcome::Permanent(remote_failure(550, Some(Enhanced(5, 1, 1)), "No such user"))
}

fn delivered() -> RcptOutcome {
    RcptOutcome::Delivered {
        said: "250 2.0.0 Ok".into(),
    }
}

/// One group to the MX, every recipient with `outcome`.
fn to_mx(message: &QueuedMessage, outcome: RcptOutcome, peer_dsn: bool) -> GroupResult {
    GroupResult {
        outcomes: (0..message.recipients.len())
            .map(|i| (i, outcome.clone()))
            .collect(),
        relay: "mx.example.net[192.0.2.25]:25".into(),
        remote_host: Some("mx.example.net".into()),
        tls: Some("TLSv1.3".into()),
        peer_dsn,
        conn_use: 1,
    }
}

/// One group into the Maildir.
fn to_maildir(message: &QueuedMessage, outcome: RcptOutcome) -> GroupResult {
    GroupResult {
        outcomes: (0..message.recipients.len())
            .map(|i| (i, outcome.clone()))
            .collect(),
        relay: "local".into(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
        conn_use: 0,
    }
}

/// Decides `groups` at `age` seconds after arrival.
fn run(message: &QueuedMessage, groups: Vec<GroupResult>, age: u64) -> Plan {
    let attempt = Attempted {
        groups,
        interrupted: false,
    };
    decide(message, &attempt, (ARRIVAL + age) * 1000, &policy())
}

fn states(plan: &Plan) -> Vec<RecipientState> {
    plan.message
        .recipients
        .iter()
        .map(|e| e.state.clone())
        .collect()
}

fn marks(plan: &Plan) -> Vec<bool> {
    plan.message
        .recipients
        .iter()
        .map(|e| e.report_due)
        .collect()
}

// ---------------------------------------------------------------------------
// Delivered and relayed.

#[test]
fn delivered_to_a_maildir_is_final_and_silent_by_default() {
    let m = message("alice@example.org", &[None]);
    let plan = run(&m, vec![to_maildir(&m, delivered())], 5);
    assert_eq!(states(&plan), [RecipientState::Delivered { relay: None }]);
    assert_eq!(marks(&plan), [false]);
    assert_eq!(plan.outcome_report, None);
    assert_eq!(plan.delay_report, None);
    assert_eq!(plan.message.attempts, 1);
    assert!(!plan.message.has_open_recipients());
}

#[test]
fn delivered_to_a_next_hop_records_it_for_a_relayed_report() {
    let m = message("alice@example.org", &[notify(true, false, false)]);
    let plan = run(&m, vec![to_mx(&m, delivered(), false)], 5);
    assert_eq!(
        states(&plan),
        [RecipientState::Delivered {
            relay: Some("mx.example.net".into())
        }]
    );
    assert_eq!(plan.outcome_report, Some(vec![0]));
}

#[test]
fn a_next_hop_with_dsn_reports_success_itself() {
    let m = message("alice@example.org", &[notify(true, true, false)]);
    let plan = run(&m, vec![to_mx(&m, delivered(), true)], 5);
    assert_eq!(marks(&plan), [false]);
    assert_eq!(plan.outcome_report, None);
}

// ---------------------------------------------------------------------------
// Transient, retry and expiry.

#[test]
fn a_transient_failure_is_retried_by_the_schedule() {
    let m = message("alice@example.org", &[None]);
    let plan = run(&m, vec![to_mx(&m, transient(), false)], 5);
    let RcptOutcome::Transient(failure) = transient() else {
        unreachable!()
    };
    assert_eq!(
        states(&plan),
        [RecipientState::Deferred {
            last: failure.clone(),
            attempts: 1
        }]
    );
    assert_eq!(plan.message.next_attempt, ARRIVAL + 5 + 600);
    assert_eq!(plan.outcome_report, None);
    assert_eq!(plan.delay_report, None);

    // The second failure counts on and takes the next delay.
    let again = run(&plan.message, vec![to_mx(&m, transient(), false)], 700);
    assert_eq!(
        states(&again),
        [RecipientState::Deferred {
            last: failure,
            attempts: 2
        }]
    );
    assert_eq!(again.message.attempts, 2);
    assert_eq!(again.message.next_attempt, ARRIVAL + 700 + 1800);
}

#[test]
fn retry_times_round_up_to_whole_seconds() {
    let m = message("alice@example.org", &[None]);
    let attempt = Attempted {
        groups: vec![to_mx(&m, transient(), false)],
        interrupted: false,
    };
    let plan = decide(&m, &attempt, ARRIVAL * 1000 + 1, &policy());
    assert_eq!(plan.message.next_attempt, ARRIVAL + 601);
}

#[test]
fn the_last_retry_waits_only_until_the_end_of_the_lifetime() {
    let m = message("alice@example.org", &[None]);
    let plan = run(&m, vec![to_mx(&m, transient(), false)], 5 * DAY - 60);
    assert_eq!(plan.message.next_attempt, ARRIVAL + 5 * DAY);
}

#[test]
fn past_the_lifetime_a_deferred_recipient_fails_as_expired() {
    let m = message("alice@example.org", &[None]);
    let plan = run(&m, vec![to_mx(&m, transient(), false)], 5 * DAY);
    let RcptOutcome::Transient(last) = transient() else {
        unreachable!()
    };
    let expired = Failure::Expired {
        age: Duration::from_secs(5 * DAY),
        last: Box::new(last),
    };
    assert_eq!(states(&plan), [RecipientState::Failed(expired.clone())]);
    assert_eq!(marks(&plan), [true]);
    assert_eq!(plan.outcome_report, Some(vec![0]));
    // Not "delayed" as well: nothing is deferred any more.
    assert_eq!(plan.delay_report, None);
    assert_eq!(expired.final_status(), Enhanced(5, 4, 7));
    assert!(
        plan.log[1].to_string().ends_with(
            "relay=none, delay=432000, tls=none, status=bounced \
             (gave up after 5 days: 451 4.3.0 Try again later)"
        ),
        "{:?}",
        plan.log
    );
}

#[test]
fn a_stopping_server_retries_at_once_and_never_gives_up() {
    let m = message("alice@example.org", &[None]);
    let attempt = Attempted {
        groups: vec![to_mx(&m, transient(), false)],
        interrupted: true,
    };
    let plan = decide(&m, &attempt, (ARRIVAL + 6 * DAY) * 1000, &policy());
    assert!(matches!(
        states(&plan)[0],
        RecipientState::Deferred { attempts: 1, .. }
    ));
    assert_eq!(plan.message.next_attempt, 0);
    assert_eq!(plan.outcome_report, None);
}

#[test]
fn an_attempt_that_tried_nothing_is_not_counted() {
    let mut m = message("alice@example.org", &[None]);
    m.attempts = 3;
    let plan = run(&m, Vec::new(), 5);
    assert_eq!(plan.message.attempts, 3);
}

// ---------------------------------------------------------------------------
// Permanent failures and reports.

#[test]
fn a_permanent_failure_is_final_and_reported() {
    let m = message("alice@example.org", &[None, None]);
    let mut group = to_mx(&m, permanent(), false);
    group.outcomes[1].1 = delivered();
    let plan = run(&m, vec![group], 5);
    let RcptOutcome::Permanent(failure) = permanent() else {
        unreachable!()
    };
    assert_eq!(
        states(&plan),
        [
            RecipientState::Failed(failure),
            RecipientState::Delivered {
                relay: Some("mx.example.net".into())
            }
        ]
    );
    assert_eq!(marks(&plan), [true, false]);
    assert_eq!(plan.outcome_report, Some(vec![0]));
    assert!(!plan.message.has_open_recipients());
    assert_eq!(
        plan.log.iter().map(ToString::to_string).collect::<Vec<_>>(),
        [
            "0J5Z3K1M2N3P4Q5R: to=<rcpt0@example.net>, relay=mx.example.net[192.0.2.25]:25, \
             delay=5.00, tls=TLSv1.3, status=bounced (550 5.1.1 No such user)",
            "0J5Z3K1M2N3P4Q5R: to=<rcpt1@example.net>, relay=mx.example.net[192.0.2.25]:25, \
             delay=5.00, tls=TLSv1.3, status=sent (250 2.0.0 Ok)",
        ]
    );
}

#[test]
fn the_null_sender_is_never_sent_a_report() {
    let m = message("", &[notify(true, true, true), None]);
    let mut group = to_mx(&m, permanent(), false);
    group.outcomes[1].1 = transient();
    let plan = run(&m, vec![group], 5 * HOUR);
    assert_eq!(marks(&plan), [false, false]);
    assert_eq!(plan.outcome_report, None);
    // The warning is still recorded as done, with nobody to send it to.
    assert_eq!(plan.delay_report, Some(Vec::new()));
}

#[test]
fn notify_decides_who_hears_what() {
    // (NOTIFY, reported when delivered, when failed, warned when delayed)
    let table = [
        (None, false, true, true),
        (NEVER, false, false, false),
        (notify(true, false, false), true, false, false),
        (notify(false, true, false), false, true, false),
        (notify(false, false, true), false, false, true),
        (notify(true, true, false), true, true, false),
        (notify(false, true, true), false, true, true),
        (notify(true, true, true), true, true, true),
    ];
    for (n, on_success, on_failure, on_delay) in table {
        let m = message("alice@example.org", &[n]);
        let success = run(&m, vec![to_mx(&m, delivered(), false)], 5);
        assert_eq!(marks(&success), [on_success], "{n:?} delivered");
        let failure = run(&m, vec![to_mx(&m, permanent(), false)], 5);
        assert_eq!(marks(&failure), [on_failure], "{n:?} failed");
        let delay = run(&m, vec![to_mx(&m, transient(), false)], 5 * HOUR);
        let warned: Vec<usize> = if on_delay { vec![0] } else { Vec::new() };
        assert_eq!(delay.delay_report, Some(warned), "{n:?} delayed");
        let expired = run(&m, vec![to_mx(&m, transient(), false)], 6 * DAY);
        assert_eq!(marks(&expired), [on_failure], "{n:?} expired");
    }
}

// ---------------------------------------------------------------------------
// The delay warning.

#[test]
fn the_delay_warning_comes_once_after_its_time() {
    let m = message("alice@example.org", &[None, notify(false, true, false)]);
    let early = run(&m, vec![to_mx(&m, transient(), false)], HOUR);
    assert_eq!(early.delay_report, None);
    let due = run(&m, vec![to_mx(&m, transient(), false)], 4 * HOUR);
    assert_eq!(due.delay_report, Some(vec![0]));
    let mut warned = due.message.clone();
    warned.delay_warned = true;
    let later = run(&warned, vec![to_mx(&m, transient(), false)], 8 * HOUR);
    assert_eq!(later.delay_report, None);
}

// ---------------------------------------------------------------------------
// Reports left over by a crash.

/// A message whose first recipient was relayed by mx.example.net and
/// whose second was refused by it, both with their report still due: a
/// crash came between writing the states and sending the report.
fn reports_left_by_a_crash(notify: &[Option<Notify>]) -> QueuedMessage {
    let mut m = message("alice@example.org", notify);
    m.recipients[0].state = RecipientState::Delivered {
        relay: Some("mx.example.net".into()),
    };
    m.recipients[0].report_due = true;
    m.recipients[1].state =
        RecipientState::Failed(remote_failure(550, Some(Enhanced(5, 1, 1)), "No such user"));
    m.recipients[1].report_due = true;
    m
}

#[test]
fn marks_left_by_a_crash_are_reported_without_a_new_attempt() {
    let mut m = reports_left_by_a_crash(&[notify(true, false, false), None, None]);
    m.recipients[2].state = RecipientState::Delivered { relay: None };
    let plan = run(&m, Vec::new(), 60);
    assert_eq!(plan.outcome_report, Some(vec![0, 1]));
    assert_eq!(plan.message.attempts, 0);
    assert!(plan.log.is_empty());
}

#[test]
fn a_success_report_left_by_a_crash_still_says_relayed() {
    let m = reports_left_by_a_crash(&[notify(true, false, false), notify(true, true, false)]);
    let plan = run(&m, Vec::new(), 60);
    let ctx = ReportContext {
        hostname: "out.example.org",
        now: ARRIVAL + 60,
        retry_until: ARRIVAL + 5 * DAY,
    };
    let recipients = plan.outcome_report.unwrap_or_default();
    let report = report_message(
        &plan.message,
        b"Subject: hi\r\n\r\nhi\r\n",
        &recipients,
        &ctx,
        "dsn",
    );
    let text = String::from_utf8(report.body).unwrap();
    let relayed = "Final-Recipient: rfc822; rcpt0@example.net\r\n\
                   Action: relayed\r\n\
                   Status: 2.0.0\r\n\
                   Remote-MTA: dns; mx.example.net\r\n";
    assert!(text.contains(relayed), "{text}");
    let failed = "Final-Recipient: rfc822; rcpt1@example.net\r\n\
                  Action: failed\r\n\
                  Status: 5.1.1\r\n\
                  Remote-MTA: dns; mx.example.net\r\n\
                  Diagnostic-Code: smtp; 550 5.1.1 No such user\r\n";
    assert!(text.contains(failed), "{text}");
}

// ---------------------------------------------------------------------------
// Groups written one at a time.

#[test]
fn recording_group_by_group_gives_the_states_decide_plans() {
    let m = message("alice@example.org", &[None, None]);
    let first = GroupResult {
        outcomes: vec![(0, delivered())],
        ..to_maildir(&m, delivered())
    };
    let second = GroupResult {
        outcomes: vec![(1, transient())],
        ..to_mx(&m, transient(), false)
    };
    let mut recorded = m.clone();
    let mut log = record(&mut recorded, &first, ARRIVAL * 1000);
    log.extend(record(&mut recorded, &second, ARRIVAL * 1000));
    let plan = run(&m, vec![first, second], 0);
    assert_eq!(recorded.recipients, plan.message.recipients);
    assert_eq!(log, plan.log);
}
