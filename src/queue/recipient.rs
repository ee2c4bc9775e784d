//! One recipient's record in the spool: the address with its DSN
//! parameters, where its delivery stands, and whether the sender still has
//! to be told. Failures are typed (who said what, with which status), so a
//! report is built from these values and never from a reply string parsed
//! back. May import `proto` (envelope and reply types) and nothing above it.

use std::fmt;
use std::time::Duration;

use crate::proto::envelope::Recipient;
use crate::proto::reply::Enhanced;

/// One recipient of a queued message and its delivery state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipientEntry {
    /// The address, NOTIFY and ORCPT as accepted (or as alias expansion
    /// made them).
    pub recipient: Recipient,
    /// Where delivery stands.
    pub state: RecipientState,
    /// The final outcome still has to be reported to the sender (a
    /// failure, or a success asked for with NOTIFY=SUCCESS). Set together
    /// with the state and cleared once the report is spooled, so a crash
    /// in between repeats the report rather than losing it.
    pub report_due: bool,
}

impl RecipientEntry {
    /// A recipient not tried yet, with nothing to report.
    pub fn pending(recipient: Recipient) -> RecipientEntry {
        RecipientEntry {
            recipient,
            state: RecipientState::Pending,
            report_due: false,
        }
    }

    /// Not final yet: pending or deferred.
    pub fn is_open(&self) -> bool {
        self.state.is_open()
    }
}

/// Where delivery of one recipient stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecipientState {
    /// Not yet tried.
    Pending,
    /// Handed over: to the next hop `relay` (its host name), or into a
    /// Maildir or the discard transport when `relay` is `None`. A success
    /// report says "relayed" for a next hop, "delivered" otherwise.
    Delivered {
        /// The host name of the server that took the message.
        relay: Option<String>,
    },
    /// Failed for good; a report is due or sent.
    Failed(Failure),
    /// Failed for now; tried again later.
    Deferred {
        /// What the last attempt ended with (never [`Failure::Expired`]).
        last: Failure,
        /// How many attempts have failed so far.
        attempts: u32,
    },
}

impl RecipientState {
    /// Not final yet: pending or deferred.
    pub fn is_open(&self) -> bool {
        matches!(
            self,
            RecipientState::Pending | RecipientState::Deferred { .. }
        )
    }
}

/// Why a recipient was not delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// A session with a next hop ended so: the server's reply, or what our
    /// client concluded during the session (refused before MAIL, TLS not
    /// offered, connection lost).
    Remote {
        /// The host name of the server.
        host: String,
        /// The reply.
        reply: RemoteReply,
    },
    /// Our own verdict, no server involved: no such mailbox, DNS, connect
    /// failures, alias expansion.
    Local {
        /// The enhanced status code (RFC 3463).
        status: Enhanced,
        /// The explanation.
        text: String,
    },
    /// The message outlived the queue lifetime (RFC 3463 5.4.7).
    Expired {
        /// How long it had been queued.
        age: Duration,
        /// The last attempt's failure (never itself `Expired`).
        last: Box<Failure>,
    },
}

impl Failure {
    /// The status of this failure once it is final: the enhanced code in
    /// class 5 whatever the last reply's class was, `5.0.0` when there is
    /// none, and `5.4.7` (delivery time expired) for a message past its
    /// lifetime.
    pub fn final_status(&self) -> Enhanced {
        match self {
            Failure::Remote { reply, .. } => match reply.enhanced {
                Some(Enhanced(2 | 4 | 5, subject, detail)) => Enhanced(5, subject, detail),
                _ => Enhanced(5, 0, 0),
            },
            Failure::Local {
                status: Enhanced(_, subject, detail),
                ..
            } => Enhanced(5, *subject, *detail),
            Failure::Expired { .. } => Enhanced(5, 4, 7),
        }
    }

    /// The server that gave this answer, if one did.
    pub fn remote_host(&self) -> Option<&str> {
        match self {
            Failure::Remote { host, .. } => Some(host),
            Failure::Local { .. } => None,
            Failure::Expired { last, .. } => last.remote_host(),
        }
    }
}

/// One line for the mail log, the queue tool and a report's diagnostic:
/// `550 5.1.1 No such user`, `4.4.1 connect to …`, `gave up after 5 days:
/// 451 4.3.0 Try later`.
impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Remote { reply, .. } => reply.fmt(f),
            Failure::Local { status, text } => write!(f, "{status} {text}"),
            Failure::Expired { age, last } => {
                write!(f, "gave up after {}: {last}", human_duration(*age))
            }
        }
    }
}

/// A remote server's reply as recorded: code, enhanced status code and
/// the text lines joined by spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteReply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code, if the server gave one.
    pub enhanced: Option<Enhanced>,
    /// The text, one line.
    pub text: String,
}

/// `550 5.1.1 No such user`, or `554 Transaction failed` without an
/// enhanced code.
impl fmt::Display for RemoteReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some(status) = self.enhanced {
            write!(f, " {status}")?;
        }
        write!(f, " {}", self.text)
    }
}

/// `5 days`, `3 hours`, `2 minutes`, `4 seconds` (rounded down).
fn human_duration(d: Duration) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::remote_failure;

    #[test]
    fn failures_read_as_one_line() {
        let table = [
            (
                remote_failure(550, Some(Enhanced(5, 1, 1)), "No such user"),
                "550 5.1.1 No such user",
            ),
            (
                remote_failure(554, None, "Transaction failed"),
                "554 Transaction failed",
            ),
            (
                Failure::Local {
                    status: Enhanced(4, 4, 1),
                    text: "connect to mx: refused".into(),
                },
                "4.4.1 connect to mx: refused",
            ),
            (
                Failure::Expired {
                    age: Duration::from_secs(86_400),
                    last: Box::new(remote_failure(451, Some(Enhanced(4, 3, 0)), "later")),
                },
                "gave up after 1 day: 451 4.3.0 later",
            ),
        ];
        for (failure, line) in table {
            assert_eq!(failure.to_string(), line);
        }
    }

    #[test]
    fn final_statuses_are_class_five() {
        let table = [
            (
                remote_failure(550, Some(Enhanced(5, 1, 1)), "x"),
                Enhanced(5, 1, 1),
            ),
            (remote_failure(554, None, "x"), Enhanced(5, 0, 0)),
            (
                remote_failure(452, Some(Enhanced(4, 2, 2)), "full"),
                Enhanced(5, 2, 2),
            ),
            (
                Failure::Local {
                    status: Enhanced(5, 1, 10),
                    text: "null MX".into(),
                },
                Enhanced(5, 1, 10),
            ),
            (
                Failure::Expired {
                    age: Duration::from_secs(5),
                    last: Box::new(remote_failure(451, None, "x")),
                },
                Enhanced(5, 4, 7),
            ),
        ];
        for (failure, status) in table {
            assert_eq!(failure.final_status(), status, "{failure}");
        }
    }

    #[test]
    fn the_answering_host_survives_expiry() {
        let expired = Failure::Expired {
            age: Duration::from_secs(5),
            last: Box::new(remote_failure(451, None, "x")),
        };
        assert_eq!(expired.remote_host(), Some("mx.example.net"));
        let local = Failure::Local {
            status: Enhanced(4, 4, 1),
            text: "refused".into(),
        };
        assert_eq!(local.remote_host(), None);
    }

    #[test]
    fn durations_round_down() {
        assert_eq!(human_duration(Duration::from_secs(5 * 86_400)), "5 days");
        assert_eq!(human_duration(Duration::from_secs(3700)), "1 hour");
        assert_eq!(human_duration(Duration::from_secs(2)), "2 seconds");
    }
}
