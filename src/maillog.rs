//! The mail log: every line about a message or a login is worded here, so
//! this is the reference for their format. Callers hand over typed data and
//! call [`Line::log`]; the lines go to the `log` target `outpost::maillog`
//! (standard error with `outpost serve`; `RUST_LOG=outpost::maillog=info`
//! keeps only them). Lines about the server itself (start-up, reloads,
//! connection errors) are written where they happen.
//!
//! A line names its subject first: the client (`PEER on ROLE`, e.g.
//! `203.0.113.7:50312 on submission`) for what happened in a session, the
//! queue id for what happened to a queued message. `grep QUEUE-ID` follows a
//! message from `queued` to `removed`; `grep 'PEER on'` follows a session.
//!
//! | kind | example | level |
//! |---|---|---|
//! | [`Queued`] | `203.0.113.7:50312 on submission: queued 0J5Z3K1M2N3P4Q5R from=<alice@example.org> message-id=<x1@example.org> recipients=2 size=1834 auth=alice@example.org tls=TLSv1.3` | info |
//! | [`NotQueued`] | `203.0.113.7:50312 on smtp: rejected message from=<a@example.net> recipients=1: spool failed (Failed)` | warn |
//! | [`Refused`] | `203.0.113.7:50312 on smtp: refused RCPT: 550 5.1.1 No such user here; from=<a@example.net> to=<bob@example.org> helo=<mx.example.net>` | info |
//! | [`Login`] | `203.0.113.7:50312 on submission: login user="alice@example.org" success` | info |
//! | [`LoginCheck`] | `auth: user="alice@example.org" result=failure reason=wrong-password ip=203.0.113.7 failures=3 from-ip=5` | warn |
//! | [`Delivery`] | `0J5Z3K1M2N3P4Q5R: to=<bob@example.net>, relay=mx.example.net[192.0.2.25]:25, conn_use=2, delay=0.12, tls=TLSv1.3, status=sent (250 2.0.0 Ok)` | info |
//! | [`ReportSent`] | `0J5Z3K1M2N3P4Q5R: sender notification 0J5Z3K1M2N3P4Q6A to <alice@example.org>` | info |
//! | [`Removed`] | `0J5Z3K1M2N3P4Q5R: removed` | info |
//!
//! Fields:
//! - **queued**: the queue id the `250` named, the reverse-path (empty for
//!   `<>`), the message's `Message-ID:` (`-` without one), the number of recipients, the size in octets, the
//!   authenticated user and the TLS version (`-` for none). `--sink` writes
//!   no line per message.
//! - **rejected message**: spooling failed after DATA, the client got a
//!   `451`; the spool's error kind in parentheses.
//! - **refused**: a command, SASL response, message or BDAT chunk answered
//!   with a 4xx or 5xx: its verb (none for an unknown command), the reply
//!   code, enhanced code (when the reply has one) and text, as the client
//!   saw them; then, as Postfix's `NOQUEUE: reject` line has them, what
//!   the session knew: `from=` (the transaction's sender, or the refused
//!   MAIL's), `to=` (the refused RCPT's address, or the first recipient,
//!   with `recipients=N` when there are more) and `helo=`. The client's
//!   address leads the line; no reverse lookup is made for it.
//! - **login**: the session's answer to AUTH: `success`, `failure (bad user
//!   name or password)`, `refused (too many failures from this address)`
//!   or `temporary failure`. The user name is quoted and escaped.
//! - **auth**: the password checker's tally behind it: `result=success`
//!   (debug level), `result=throttled`, or `result=failure` with the reason
//!   (`unknown-user` or `wrong-password`: the client is told the same for
//!   both, so it cannot probe for user names) and the failures of this
//!   login and of this address within the throttle window.
//! - **delivery**: one line per recipient and attempt, after Postfix's
//!   `smtp` lines: the recipient, the relay (`host[ip]:port`, `local` for a
//!   Maildir, `discard`, or `none` when nothing was reached), `conn_use=N`
//!   when the connection had carried N-1 messages before (a kept one), the
//!   seconds from arrival to this outcome (`delay=0.12`: hundredths below
//!   100 s, as Postfix writes it), the TLS version (`none`), `status=sent|deferred|bounced`
//!   and what the next hop or the Maildir said (for an expiry, `gave up
//!   after …` and the last error).
//! - **notification**: a delivery report (`sender notification`) or a
//!   delay warning (`delay notification`) was queued under the second id,
//!   addressed to the sender.
//! - **removed**: the message left the queue: `removed` when delivery is
//!   done with every recipient, `removed from the queue meanwhile` when
//!   delivery found it gone, `removed by outpost queue delete` with the
//!   operator's login name (`$USER`), the sender and the recipient count
//!   when an operator deleted it (that line goes to the command's own
//!   standard error).
//!
//! Text from outside (addresses, reply texts, user names) never splits a
//! line: control characters and Unicode line separators become spaces, or
//! are escaped inside quotes.
//!
//! Each line is also counted for `--metrics` as it is written
//! ([`Line::count`]): this is the one place every such event passes.
//!
//! May import `proto` and `queue` types and `metrics`; `runtime`,
//! `delivery`, `auth` and `cli` call it.

use std::fmt::{self, Display, Formatter};
use std::net::IpAddr;
use std::time::Duration;

use log::Level;

use crate::metrics::{self, DeliveryOutcome, LoginOutcome};
use crate::proto::command::Verb;
use crate::proto::envelope::EnqueueError;
use crate::proto::reply::Enhanced;
use crate::proto::sasl::AuthResult;
use crate::proto::session::{MessageSummary, RefusalContext};
use crate::queue::QueueId;

/// One line of the mail log.
pub trait Line: Display {
    /// The level it is logged at.
    fn level(&self) -> Level {
        Level::Info
    }

    /// Adds the event to the server's counters ([`crate::metrics`]).
    fn count(&self) {}

    /// Writes the line to the mail log, and counts it.
    fn log(&self) {
        self.count();
        log::log!(self.level(), "{self}");
    }
}

/// Text from outside, written so that it stays on one line: control
/// characters and the Unicode line and paragraph separators become spaces.
struct OneLine<'a>(&'a str);

impl Display for OneLine<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let breaks = |c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}';
        for (i, part) in self.0.split(breaks).enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(part)?;
        }
        Ok(())
    }
}

/// A delay in seconds as Postfix writes `delay=`: hundredths below 100 s
/// (`0.05`), whole seconds above (`432000`).
struct Seconds(Duration);

impl Display for Seconds {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let secs = self.0.as_secs_f64();
        if secs < 100.0 {
            write!(f, "{secs:.2}")
        } else {
            write!(f, "{}", self.0.as_secs())
        }
    }
}

/// A message was spooled; the client got the `250` naming its id.
#[derive(Debug)]
pub struct Queued<'a> {
    /// The client, `PEER on ROLE`.
    pub client: &'a str,
    /// The spool's id for the message.
    pub queue_id: &'a str,
    /// The message.
    pub message: &'a MessageSummary,
}

impl Display for Queued<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let m = self.message;
        write!(
            f,
            "{}: queued {} from=<{}> message-id={} recipients={} size={} auth={} tls={}",
            self.client,
            self.queue_id,
            OneLine(&m.sender),
            OneLine(m.message_id.as_deref().unwrap_or("-")),
            m.recipients,
            m.size,
            OneLine(m.auth_user.as_deref().unwrap_or("-")),
            OneLine(m.tls.as_deref().unwrap_or("-")),
        )
    }
}

impl Line for Queued<'_> {
    fn count(&self) {
        metrics::message_accepted();
    }
}

/// Spooling a message failed; the client was told to try later.
#[derive(Debug)]
pub struct NotQueued<'a> {
    /// The client, `PEER on ROLE`.
    pub client: &'a str,
    /// The message.
    pub message: &'a MessageSummary,
    /// Why.
    pub error: EnqueueError,
}

impl Display for NotQueued<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: rejected message from=<{}> recipients={}: spool failed ({:?})",
            self.client,
            OneLine(&self.message.sender),
            self.message.recipients,
            self.error
        )
    }
}

impl Line for NotQueued<'_> {
    fn level(&self) -> Level {
        Level::Warn
    }
}

/// The client's input was answered with a 4xx or 5xx reply.
#[derive(Debug)]
pub struct Refused<'a> {
    /// The client, `PEER on ROLE`.
    pub client: &'a str,
    /// The verb of the refused input (`None`: an unknown command or an
    /// over-long line).
    pub verb: Option<Verb>,
    /// The HELO name, sender and recipient the refusal was about.
    pub context: &'a RefusalContext,
    /// The reply code.
    pub code: u16,
    /// The enhanced status code, if the reply has one.
    pub enhanced: Option<Enhanced>,
    /// The reply's text.
    pub text: &'a str,
}

impl Display for Refused<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{}: refused", self.client)?;
        if let Some(verb) = self.verb {
            write!(f, " {}", Verb::name(verb))?;
        }
        write!(f, ": {}", self.code)?;
        if let Some(Enhanced(class, subject, detail)) = self.enhanced {
            write!(f, " {class}.{subject}.{detail}")?;
        }
        write!(f, " {}", OneLine(self.text))?;
        let context = self.context;
        let mut separator = "; ";
        let mut field = |f: &mut Formatter<'_>, name: &str, value: &str| {
            let written = write!(f, "{separator}{name}=<{}>", OneLine(value));
            separator = " ";
            written
        };
        if let Some(from) = &context.from {
            field(f, "from", from)?;
        }
        if let Some(to) = &context.to {
            field(f, "to", to)?;
        }
        if let Some(helo) = &context.helo {
            field(f, "helo", helo)?;
        }
        if context.recipients > 1 {
            write!(f, " recipients={}", context.recipients)?;
        }
        Ok(())
    }
}

impl Line for Refused<'_> {
    fn count(&self) {
        let status = match self.enhanced {
            Some(Enhanced(class, subject, detail)) => format!("{class}.{subject}.{detail}"),
            None => self.code.to_string(),
        };
        metrics::refusal(self.verb.map_or("-", Verb::name), status);
    }
}

/// The session answered a login.
#[derive(Debug)]
pub struct Login<'a> {
    /// The client, `PEER on ROLE`.
    pub client: &'a str,
    /// The user name the client gave.
    pub user: &'a str,
    /// What the check said.
    pub result: AuthResult,
}

impl Display for Login<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let outcome = match self.result {
            AuthResult::Success => "success",
            AuthResult::Failure => "failure (bad user name or password)",
            AuthResult::Throttled { .. } => "refused (too many failures from this address)",
            AuthResult::TemporaryFailure => "temporary failure",
        };
        write!(f, "{}: login user={:?} {outcome}", self.client, self.user)
    }
}

impl Line for Login<'_> {
    fn count(&self) {
        metrics::login(match self.result {
            AuthResult::Success => LoginOutcome::Success,
            AuthResult::Failure => LoginOutcome::Failure,
            AuthResult::Throttled { .. } => LoginOutcome::Throttled,
            AuthResult::TemporaryFailure => LoginOutcome::TemporaryFailure,
        });
    }
}

/// What the password checker found, with the throttle's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The password matched.
    Success,
    /// Not checked: too many recent failures.
    Throttled,
    /// Unknown user or wrong password (the client is told the same for
    /// both; the log says which).
    Failure {
        /// The user exists: the password was wrong.
        known: bool,
        /// Recent failures of this user from this address.
        failures: u32,
        /// Recent failures from this address.
        from_ip: u32,
    },
}

/// The password checker's verdict on one login.
#[derive(Debug)]
pub struct LoginCheck<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The user name as the checker compares it.
    pub user: &'a str,
    /// The verdict.
    pub verdict: Verdict,
}

impl Display for LoginCheck<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let (user, ip) = (self.user, self.client);
        match self.verdict {
            Verdict::Success => write!(f, "auth: user={user:?} result=success ip={ip}"),
            Verdict::Throttled => write!(f, "auth: user={user:?} result=throttled ip={ip}"),
            Verdict::Failure {
                known,
                failures,
                from_ip,
            } => {
                let reason = if known {
                    "wrong-password"
                } else {
                    "unknown-user"
                };
                write!(
                    f,
                    "auth: user={user:?} result=failure reason={reason} ip={ip} \
                     failures={failures} from-ip={from_ip}"
                )
            }
        }
    }
}

impl Line for LoginCheck<'_> {
    fn level(&self) -> Level {
        match self.verdict {
            Verdict::Success => Level::Debug,
            Verdict::Throttled | Verdict::Failure { .. } => Level::Warn,
        }
    }
}

/// The outcome of one recipient in a delivery attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Handed over.
    Sent,
    /// Will be retried.
    Deferred,
    /// Failed for good.
    Bounced,
}

/// One recipient's outcome in one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's queue id.
    pub queue_id: QueueId,
    /// The recipient's address.
    pub recipient: String,
    /// `host[ip]:port`, `local`, `discard` or `none`.
    pub relay: String,
    /// From arrival to this outcome.
    pub delay: Duration,
    /// Which transaction of its connection this was, logged as
    /// `conn_use=N` when more than 1 (a kept connection, as Postfix logs it).
    pub conn_use: u32,
    /// The TLS version of the session, if any.
    pub tls: Option<String>,
    /// The outcome.
    pub status: DeliveryStatus,
    /// What the next hop or the Maildir said, or why it failed.
    pub said: String,
}

impl Display for Delivery {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Bounced => "bounced",
        };
        write!(
            f,
            "{}: to=<{}>, relay={}, ",
            self.queue_id,
            OneLine(&self.recipient),
            OneLine(&self.relay),
        )?;
        if self.conn_use > 1 {
            write!(f, "conn_use={}, ", self.conn_use)?;
        }
        write!(
            f,
            "delay={}, tls={}, status={status} ({})",
            Seconds(self.delay),
            OneLine(self.tls.as_deref().unwrap_or("none")),
            OneLine(&self.said)
        )
    }
}

impl Line for Delivery {
    fn count(&self) {
        metrics::delivery(match self.status {
            DeliveryStatus::Sent => DeliveryOutcome::Sent,
            DeliveryStatus::Deferred => DeliveryOutcome::Deferred,
            DeliveryStatus::Bounced => DeliveryOutcome::Bounced,
        });
    }
}

/// Which report about a message was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// The final outcomes (failed, or delivered when asked for).
    Outcome,
    /// The "delayed" warning.
    Delay,
}

/// A report to the sender was queued as a message of its own.
#[derive(Debug)]
pub struct ReportSent<'a> {
    /// The message reported on.
    pub queue_id: &'a QueueId,
    /// Which report.
    pub kind: ReportKind,
    /// The report's own queue id.
    pub report_id: &'a QueueId,
    /// Its recipient: the original sender.
    pub to: &'a str,
}

impl Display for ReportSent<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            ReportKind::Outcome => "sender",
            ReportKind::Delay => "delay",
        };
        write!(
            f,
            "{}: {kind} notification {} to <{}>",
            self.queue_id,
            self.report_id,
            OneLine(self.to)
        )
    }
}

impl Line for ReportSent<'_> {}

/// Who took a message out of the queue.
#[derive(Debug)]
pub enum RemovedBy<'a> {
    /// Delivery: no recipient is left open.
    Delivery,
    /// Someone else, before delivery got to it (found missing).
    Meanwhile,
    /// An operator, with `outpost queue delete`.
    Operator {
        /// The operator's login name (`$USER`), if known.
        user: Option<&'a str>,
        /// The message's reverse-path; empty for `<>`.
        sender: &'a str,
        /// How many recipients it had.
        recipients: usize,
    },
}

/// A message left the queue.
#[derive(Debug)]
pub struct Removed<'a> {
    /// The message's queue id.
    pub queue_id: &'a QueueId,
    /// Who removed it.
    pub by: RemovedBy<'a>,
}

impl Display for Removed<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let id = self.queue_id;
        match &self.by {
            RemovedBy::Delivery => write!(f, "{id}: removed"),
            RemovedBy::Meanwhile => write!(f, "{id}: removed from the queue meanwhile"),
            RemovedBy::Operator {
                user,
                sender,
                recipients,
            } => write!(
                f,
                "{id}: removed by outpost queue delete user={:?} from=<{}> recipients={recipients}",
                user.unwrap_or("-"),
                OneLine(sender)
            ),
        }
    }
}

impl Line for Removed<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = "203.0.113.7:50312 on submission";

    fn id(text: &str) -> QueueId {
        text.parse().unwrap()
    }

    fn summary(sender: &str) -> MessageSummary {
        MessageSummary {
            sender: sender.into(),
            recipients: 2,
            size: 1834,
            auth_user: Some("alice@example.org".into()),
            tls: Some("TLSv1.3".into()),
            message_id: Some("<x1@example.org>".into()),
        }
    }

    /// A line that passed hostile text: one line, nothing forged.
    fn assert_one_line(line: &str) {
        assert!(
            !line.contains(|c: char| c.is_control() || c == '\u{2028}' || c == '\u{2029}'),
            "{line:?}"
        );
    }

    #[test]
    fn queued_and_not_queued() {
        let message = summary("alice@example.org");
        let line = Queued {
            client: CLIENT,
            queue_id: "0J5Z3K1M2N3P4Q5R",
            message: &message,
        };
        assert_eq!(
            line.to_string(),
            "203.0.113.7:50312 on submission: queued 0J5Z3K1M2N3P4Q5R \
             from=<alice@example.org> message-id=<x1@example.org> recipients=2 size=1834 \
             auth=alice@example.org tls=TLSv1.3"
        );
        assert_eq!(line.level(), Level::Info);
        let anonymous = MessageSummary {
            sender: String::new(),
            auth_user: None,
            tls: None,
            message_id: None,
            ..message
        };
        let line = Queued {
            client: CLIENT,
            queue_id: "0J5Z3K1M2N3P4Q5R",
            message: &anonymous,
        };
        assert!(
            line.to_string()
                .ends_with("from=<> message-id=- recipients=2 size=1834 auth=- tls=-"),
            "{line}"
        );
        let line = NotQueued {
            client: CLIENT,
            message: &anonymous,
            error: EnqueueError::Failed,
        };
        assert_eq!(
            line.to_string(),
            "203.0.113.7:50312 on submission: rejected message from=<> recipients=2: \
             spool failed (Failed)"
        );
        assert_eq!(line.level(), Level::Warn);
    }

    #[test]
    fn hostile_sender_and_user_stay_on_one_line() {
        let mut message = summary("a@x\r\n203.0.113.9:1 on smtp: queued FAKE");
        message.auth_user = Some("bob\nauth: forged".into());
        let line = Queued {
            client: CLIENT,
            queue_id: "0J5Z3K1M2N3P4Q5R",
            message: &message,
        }
        .to_string();
        assert_one_line(&line);
        assert!(line.contains("from=<a@x  203.0.113.9:1 on smtp: queued FAKE>"));
    }

    #[test]
    fn refusals_with_and_without_enhanced_code_and_context() {
        let none = RefusalContext::default();
        let rcpt = RefusalContext {
            helo: Some("mx.example.net".into()),
            from: Some("a@example.net".into()),
            to: Some("bob@example.org".into()),
            recipients: 0,
        };
        let data = RefusalContext {
            helo: Some("c".into()),
            from: Some(String::new()),
            to: Some("bob@example.org".into()),
            recipients: 3,
        };
        let table = [
            (
                Some(Verb::Rcpt),
                &rcpt,
                550,
                Some(Enhanced(5, 1, 1)),
                "No such user here",
                "refused RCPT: 550 5.1.1 No such user here; from=<a@example.net> \
                 to=<bob@example.org> helo=<mx.example.net>",
            ),
            (
                Some(Verb::Data),
                &data,
                552,
                Some(Enhanced(5, 3, 4)),
                "Message too big",
                "refused DATA: 552 5.3.4 Message too big; from=<> to=<bob@example.org> \
                 helo=<c> recipients=3",
            ),
            (
                None,
                &none,
                500,
                None,
                "Line too long",
                "refused: 500 Line too long",
            ),
        ];
        for (verb, context, code, enhanced, text, want) in table {
            let line = Refused {
                client: CLIENT,
                verb,
                context,
                code,
                enhanced,
                text,
            };
            assert_eq!(
                line.to_string(),
                format!("203.0.113.7:50312 on submission: {want}")
            );
        }
    }

    #[test]
    fn hostile_reply_text_and_helo_stay_on_one_line() {
        for text in [
            "Bad HELO evil\r\n1.2.3.4:5 on smtp: login user=\"root\" success",
            "nul\0bell\x07esc\x1b[2J",
            "line\u{2028}separator\u{2029}paragraph\u{85}next",
        ] {
            let context = RefusalContext {
                helo: Some(text.into()),
                ..RefusalContext::default()
            };
            let line = Refused {
                client: CLIENT,
                verb: Some(Verb::Helo),
                context: &context,
                code: 501,
                enhanced: Some(Enhanced(5, 5, 4)),
                text,
            }
            .to_string();
            assert_one_line(&line);
            assert!(line.starts_with(CLIENT), "{line}");
        }
    }

    #[test]
    fn logins() {
        let table = [
            (AuthResult::Success, "success"),
            (AuthResult::Failure, "failure (bad user name or password)"),
            (
                AuthResult::Throttled {
                    wait: std::time::Duration::from_secs(60),
                },
                "refused (too many failures from this address)",
            ),
            (AuthResult::TemporaryFailure, "temporary failure"),
        ];
        for (result, said) in table {
            let line = Login {
                client: CLIENT,
                user: "alice@example.org",
                result,
            };
            assert_eq!(
                line.to_string(),
                format!("{CLIENT}: login user=\"alice@example.org\" {said}")
            );
        }
        let hostile = Login {
            client: CLIENT,
            user: "x\r\n1.2.3.4:5 on smtp: login user=\"root\" success",
            result: AuthResult::Failure,
        }
        .to_string();
        assert_one_line(&hostile);
        assert!(hostile.contains(r#"user="x\r\n1.2.3.4:5 on smtp: login user=\"root\" success""#));
    }

    #[test]
    fn password_checks() {
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let check = |verdict| LoginCheck {
            client: ip,
            user: "alice@example.org",
            verdict,
        };
        let table = [
            (
                Verdict::Success,
                "auth: user=\"alice@example.org\" result=success ip=203.0.113.7",
                Level::Debug,
            ),
            (
                Verdict::Throttled,
                "auth: user=\"alice@example.org\" result=throttled ip=203.0.113.7",
                Level::Warn,
            ),
            (
                Verdict::Failure {
                    known: true,
                    failures: 3,
                    from_ip: 5,
                },
                "auth: user=\"alice@example.org\" result=failure reason=wrong-password \
                 ip=203.0.113.7 failures=3 from-ip=5",
                Level::Warn,
            ),
            (
                Verdict::Failure {
                    known: false,
                    failures: 1,
                    from_ip: 1,
                },
                "auth: user=\"alice@example.org\" result=failure reason=unknown-user \
                 ip=203.0.113.7 failures=1 from-ip=1",
                Level::Warn,
            ),
        ];
        for (verdict, want, level) in table {
            assert_eq!(check(verdict).to_string(), want);
            assert_eq!(check(verdict).level(), level);
        }
        let hostile = LoginCheck {
            client: ip,
            user: "a\nauth: forged",
            verdict: Verdict::Throttled,
        };
        assert_one_line(&hostile.to_string());
    }

    fn delivery(status: DeliveryStatus, said: &str) -> Delivery {
        Delivery {
            queue_id: id("0J5Z3K1M2N3P4Q5R"),
            recipient: "bob@example.net".into(),
            relay: "mx.example.net[192.0.2.25]:25".into(),
            delay: Duration::from_millis(3040),
            conn_use: 1,
            tls: Some("TLSv1.3".into()),
            status,
            said: said.into(),
        }
    }

    #[test]
    fn deliveries() {
        let table = [
            (DeliveryStatus::Sent, "250 2.0.0 Ok", "sent"),
            (DeliveryStatus::Deferred, "451 4.3.0 Try later", "deferred"),
            (DeliveryStatus::Bounced, "550 5.1.1 No such user", "bounced"),
        ];
        for (status, said, word) in table {
            assert_eq!(
                delivery(status, said).to_string(),
                format!(
                    "0J5Z3K1M2N3P4Q5R: to=<bob@example.net>, relay=mx.example.net[192.0.2.25]:25, \
                     delay=3.04, tls=TLSv1.3, status={word} ({said})"
                )
            );
        }
        let local = Delivery {
            relay: "local".into(),
            tls: None,
            ..delivery(DeliveryStatus::Sent, "delivered to maildir")
        };
        assert!(
            local
                .to_string()
                .ends_with("relay=local, delay=3.04, tls=none, status=sent (delivered to maildir)"),
            "{local}"
        );
        // A kept connection says which use it was; a long delay is in seconds.
        let reused = Delivery {
            conn_use: 3,
            delay: Duration::from_secs(432_000),
            ..delivery(DeliveryStatus::Sent, "250 2.0.0 Ok")
        };
        assert!(
            reused
                .to_string()
                .contains(":25, conn_use=3, delay=432000, tls="),
            "{reused}"
        );
    }

    #[test]
    fn hostile_remote_text_stays_on_one_line() {
        let line = Delivery {
            recipient: "b@x\r\nY".into(),
            relay: "mx\n[1.2.3.4]:25".into(),
            ..delivery(DeliveryStatus::Sent, "250 ok\r\n0J5Z3K1M2N3P4Q5R: removed")
        }
        .to_string();
        assert_one_line(&line);
        assert_eq!(
            line,
            "0J5Z3K1M2N3P4Q5R: to=<b@x  Y>, relay=mx [1.2.3.4]:25, delay=3.04, tls=TLSv1.3, \
             status=sent (250 ok  0J5Z3K1M2N3P4Q5R: removed)"
        );
    }

    #[test]
    fn reports() {
        let (queue_id, report_id) = (id("0J5Z3K1M2N3P4Q5R"), id("0J5Z3K1M2N3P4Q6A"));
        let line = |kind| {
            ReportSent {
                queue_id: &queue_id,
                kind,
                report_id: &report_id,
                to: "alice@example.org",
            }
            .to_string()
        };
        assert_eq!(
            line(ReportKind::Outcome),
            "0J5Z3K1M2N3P4Q5R: sender notification 0J5Z3K1M2N3P4Q6A to <alice@example.org>"
        );
        assert_eq!(
            line(ReportKind::Delay),
            "0J5Z3K1M2N3P4Q5R: delay notification 0J5Z3K1M2N3P4Q6A to <alice@example.org>"
        );
    }

    #[test]
    fn removals() {
        let queue_id = id("0J5Z3K1M2N3P4Q5R");
        let line = |by| Removed {
            queue_id: &queue_id,
            by,
        };
        assert_eq!(
            line(RemovedBy::Delivery).to_string(),
            "0J5Z3K1M2N3P4Q5R: removed"
        );
        assert_eq!(
            line(RemovedBy::Meanwhile).to_string(),
            "0J5Z3K1M2N3P4Q5R: removed from the queue meanwhile"
        );
        assert_eq!(
            line(RemovedBy::Operator {
                user: Some("root"),
                sender: "alice@example.org",
                recipients: 2,
            })
            .to_string(),
            "0J5Z3K1M2N3P4Q5R: removed by outpost queue delete user=\"root\" \
             from=<alice@example.org> recipients=2"
        );
        let hostile = line(RemovedBy::Operator {
            user: Some("x\ny"),
            sender: "a\r\nb",
            recipients: 1,
        })
        .to_string();
        assert_one_line(&hostile);
        assert!(hostile.ends_with(r#"user="x\ny" from=<a  b> recipients=1"#));
    }
}
