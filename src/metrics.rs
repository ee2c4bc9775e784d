//! The server's counters, rendered in the Prometheus text exposition
//! format (version 0.0.4) for `--metrics` and `outpost stats`.
//!
//! The counters are process-wide atomics, fed where the events are told:
//! [`crate::maillog`] counts every mail-log line as it writes it (messages
//! queued, refusals, logins, deliveries), the runtime counts connections
//! and TLS handshakes. Label values come from short fixed lists (listener
//! roles, outcomes, TLS versions) or from the server's own replies
//! (command and status code of a refusal), so the number of series stays
//! small whatever clients send. The queue's size and oldest age are read
//! from the spool when the page is rendered and passed in.
//!
//! May import nothing else of the crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Listener roles, as the log names them.
const LISTENERS: [&str; 3] = ["smtp", "submission", "submissions"];
/// Login outcomes.
const LOGINS: [&str; 4] = ["success", "failure", "throttled", "temporary_failure"];
/// Delivery outcomes of one recipient in one attempt.
const DELIVERIES: [&str; 3] = ["sent", "deferred", "bounced"];
/// TLS versions; anything else counts as `other`.
const TLS_VERSIONS: [&str; 3] = ["TLSv1.2", "TLSv1.3", "other"];

static CONNECTIONS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static ACCEPTED: AtomicU64 = AtomicU64::new(0);
static LOGIN_RESULTS: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
static DELIVERY_RESULTS: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
static TLS_HANDSHAKES: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];
/// Refusals by command and status (`5.1.1`, or the basic code).
static REFUSALS: Mutex<BTreeMap<(&'static str, String), u64>> = Mutex::new(BTreeMap::new());

/// A login's outcome, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// Logged in.
    Success,
    /// Unknown user or wrong password.
    Failure,
    /// Refused: too many failures.
    Throttled,
    /// The check could not be made.
    TemporaryFailure,
}

/// A recipient's outcome in one delivery attempt, as counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// Handed over.
    Sent,
    /// To be retried.
    Deferred,
    /// Failed for good.
    Bounced,
}

fn add(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// A connection was accepted on a listener of role `listener` (`smtp`,
/// `submission`, `submissions`).
pub fn connection(listener: &str) {
    if let Some(i) = LISTENERS.iter().position(|l| *l == listener) {
        add(&CONNECTIONS[i]);
    }
}

/// A TLS handshake finished with `version` (`TLSv1.3`, …).
pub fn tls_handshake(version: &str) {
    let i = TLS_VERSIONS.iter().position(|v| *v == version).unwrap_or(2);
    add(&TLS_HANDSHAKES[i]);
}

/// A message was queued (the client got its `250`).
pub fn message_accepted() {
    add(&ACCEPTED);
}

/// Input of `command` (`RCPT`, …; `-` for an unknown command) was refused
/// with `status` (the enhanced code, or the reply code without one).
pub fn refusal(command: &'static str, status: String) {
    *REFUSALS.lock().entry((command, status)).or_default() += 1;
}

/// A login was answered.
pub fn login(outcome: LoginOutcome) {
    add(&LOGIN_RESULTS[outcome as usize]);
}

/// A recipient's delivery attempt ended.
pub fn delivery(outcome: DeliveryOutcome) {
    add(&DELIVERY_RESULTS[outcome as usize]);
}

/// The queue as the page shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueGauge {
    /// Messages in the queue.
    pub messages: usize,
    /// Age of the oldest (zero for an empty queue).
    pub oldest: Duration,
}

/// The page: every counter and the queue gauges, in the Prometheus text
/// format.
pub fn render(queue: QueueGauge) -> String {
    let mut page = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, u64)]| {
        let _ = writeln!(page, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(page, "{name}{labels} {value}");
        }
    };
    let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let labelled = |label: &str, names: &[&str], counters: &[AtomicU64]| -> Vec<(String, u64)> {
        names
            .iter()
            .zip(counters)
            .map(|(name, counter)| (format!("{{{label}=\"{name}\"}}"), load(counter)))
            .collect()
    };
    family(
        "outpost_connections_total",
        "counter",
        "Connections accepted, by listener role.",
        &labelled("listener", &LISTENERS, &CONNECTIONS),
    );
    family(
        "outpost_messages_accepted_total",
        "counter",
        "Messages queued (answered 250).",
        &[(String::new(), load(&ACCEPTED))],
    );
    let refusals: Vec<(String, u64)> = REFUSALS
        .lock()
        .iter()
        .map(|((command, status), count)| {
            (
                format!(
                    "{{command=\"{command}\",status=\"{}\"}}",
                    label_value(status)
                ),
                *count,
            )
        })
        .collect();
    family(
        "outpost_refusals_total",
        "counter",
        "Commands, messages and chunks refused with a 4xx or 5xx, by command and status code.",
        &refusals,
    );
    family(
        "outpost_logins_total",
        "counter",
        "Logins answered, by result.",
        &labelled("result", &LOGINS, &LOGIN_RESULTS),
    );
    family(
        "outpost_deliveries_total",
        "counter",
        "Delivery attempts of one recipient, by status.",
        &labelled("status", &DELIVERIES, &DELIVERY_RESULTS),
    );
    family(
        "outpost_tls_handshakes_total",
        "counter",
        "TLS handshakes completed by clients, by protocol version.",
        &labelled("version", &TLS_VERSIONS, &TLS_HANDSHAKES),
    );
    family(
        "outpost_queue_messages",
        "gauge",
        "Messages in the queue.",
        &[(String::new(), queue.messages as u64)],
    );
    family(
        "outpost_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest message in the queue (0 when empty).",
        &[(String::new(), queue.oldest.as_secs())],
    );
    page
}

/// A label value with `\`, `"` and line feeds escaped, as the format wants.
fn label_value(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_family_with_help_and_type() {
        connection("submission");
        connection("no-such-listener");
        tls_handshake("TLSv1.3");
        tls_handshake("SSLv3");
        refusal("RCPT", "5.1.1".into());
        let page = render(QueueGauge {
            messages: 3,
            oldest: Duration::from_secs(90),
        });
        for family in [
            "outpost_connections_total counter",
            "outpost_messages_accepted_total counter",
            "outpost_refusals_total counter",
            "outpost_logins_total counter",
            "outpost_deliveries_total counter",
            "outpost_tls_handshakes_total counter",
            "outpost_queue_messages gauge",
            "outpost_queue_oldest_age_seconds gauge",
        ] {
            assert!(
                page.contains(&format!("# TYPE {family}\n")),
                "{family}\n{page}"
            );
        }
        assert!(page.contains("outpost_queue_messages 3\n"), "{page}");
        assert!(
            page.contains("outpost_queue_oldest_age_seconds 90\n"),
            "{page}"
        );
        assert!(page.contains("outpost_refusals_total{command=\"RCPT\",status=\"5.1.1\"} "));
        assert!(page.contains("outpost_tls_handshakes_total{version=\"other\"} "));
        assert_eq!(label_value("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
