//! The one line that says what is running, logged at start and after each
//! reload (SIGHUP): version, host name, local domains, users, the
//! certificate's names and expiry, and how mail leaves. With it, the
//! warnings an operator must not miss: a certificate expired or expiring
//! within [`EXPIRY_WARNING`], a host name the certificate does not name,
//! and `--sink`.
//!
//! May import: the parent's `ServerContext`, `config` and `tls`.

use std::time::{Duration, SystemTime};

use super::ServerContext;
use crate::config::Config;
use crate::tls::CertificateFacts;

/// A certificate expiring sooner than this gets a warning at every start
/// and reload (Let's Encrypt renews 30 days before expiry; 14 days left
/// means renewal has been failing for two weeks).
pub const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 24 * 3600);

/// The summary line and its warnings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// What is running, in one line.
    pub line: String,
    /// What needs attention, one sentence each.
    pub warnings: Vec<String>,
}

/// Logs the summary of the server `shared` describes (at `info`, the
/// warnings at `warn`).
pub(crate) fn log_summary(shared: &ServerContext) {
    let facts = shared.certificate.facts();
    let certificate = shared.certificate.cert_path().display().to_string();
    let summary = summarize(
        &shared.config,
        shared.users.len(),
        &certificate,
        facts.as_ref(),
        SystemTime::now(),
    );
    log::info!("{}", summary.line);
    for warning in &summary.warnings {
        log::warn!("{warning}");
    }
}

/// The summary of a server with `config`, `users` users and the
/// certificate file `certificate` (its `facts`, when it parses), at `now`.
pub fn summarize(
    config: &Config,
    users: usize,
    certificate: &str,
    facts: Option<&CertificateFacts>,
    now: SystemTime,
) -> Summary {
    let mut warnings = Vec::new();
    let certificate_text = match facts {
        Some(facts) => {
            match facts.remaining(now) {
                None => warnings.push(format!(
                    "the TLS certificate {certificate} expired on {}: clients that check it \
                     refuse to connect; renew it and send SIGHUP",
                    facts.expiry_date
                )),
                Some(left) if left < EXPIRY_WARNING => warnings.push(format!(
                    "the TLS certificate {certificate} expires on {} (in {} days): renew it \
                     and send SIGHUP",
                    facts.expiry_date,
                    left.as_secs() / 86_400
                )),
                Some(_) => {}
            }
            if !facts.covers(&config.hostname) {
                warnings.push(format!(
                    "the host name {} is not among the TLS certificate's names ({}): mail \
                     clients that check the name refuse the connection",
                    config.hostname,
                    facts.names.join(", ")
                ));
            }
            format!(
                "certificate for {} until {}",
                facts.names.join(","),
                facts.expiry_date
            )
        }
        None => {
            warnings.push(format!(
                "the TLS certificate {certificate} does not parse as X.509: its names and \
                 expiry are unknown"
            ));
            "certificate unreadable".to_string()
        }
    };
    if config.sink {
        warnings.push(
            "--sink is on: every message is accepted and thrown away, nothing is delivered"
                .to_string(),
        );
    }
    let line = format!(
        "outpost {} as {}: local domains {}; {users} user{}; {certificate_text}; delivery {}",
        env!("CARGO_PKG_VERSION"),
        config.hostname,
        config.effective_local_domains().join(","),
        if users == 1 { "" } else { "s" },
        delivery_mode(config),
    );
    Summary { line, warnings }
}

/// How accepted mail leaves: `sink`, `off`, `smarthost HOST:PORT` or
/// `direct`.
fn delivery_mode(config: &Config) -> String {
    if config.sink {
        "sink (messages are thrown away)".to_string()
    } else if !config.deliver {
        "off (mail stays queued)".to_string()
    } else if let Some(relay) = &config.delivery.relay_host {
        format!("smarthost {relay}")
    } else {
        "direct (to each domain's MX)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn config() -> Config {
        Config {
            hostname: "mx.example".to_string(),
            local_domains: vec!["example.com".to_string(), "example.net".to_string()],
            deliver: true,
            ..Config::default()
        }
    }

    fn facts(names: &[&str], left: Duration, now: SystemTime) -> CertificateFacts {
        CertificateFacts {
            names: names.iter().map(|n| n.to_string()).collect(),
            not_after: now + left,
            expiry_date: "2027-03-01".to_string(),
        }
    }

    #[test]
    fn the_line_says_what_runs() {
        let now = SystemTime::now();
        let cert = facts(&["mx.example", "localhost"], 60 * DAY, now);
        let summary = summarize(&config(), 3, "c.pem", Some(&cert), now);
        assert_eq!(
            summary.line,
            format!(
                "outpost {} as mx.example: local domains example.com,example.net; 3 users; \
                 certificate for mx.example,localhost until 2027-03-01; delivery direct (to each domain's MX)",
                env!("CARGO_PKG_VERSION")
            )
        );
        assert!(summary.warnings.is_empty(), "{:?}", summary.warnings);
    }

    #[test]
    fn delivery_modes() {
        let mut config = config();
        let mode = |c: &Config| delivery_mode(c);
        assert!(mode(&config).starts_with("direct"));
        config.delivery.relay_host =
            Some(crate::delivery::config::parse_host_port("smtp.provider.example:587").unwrap());
        assert_eq!(mode(&config), "smarthost smtp.provider.example:587");
        config.deliver = false;
        assert!(mode(&config).starts_with("off"));
        config.sink = true;
        assert!(mode(&config).starts_with("sink"));
    }

    #[test]
    fn warnings() {
        let now = SystemTime::now();
        let warned = |config: &Config, cert: Option<&CertificateFacts>| {
            summarize(config, 1, "c.pem", cert, now).warnings.join("\n")
        };
        let soon = facts(&["mx.example"], 3 * DAY + DAY / 2, now);
        let text = warned(&config(), Some(&soon));
        assert!(text.contains("expires on 2027-03-01 (in 3 days)"), "{text}");
        let gone = CertificateFacts {
            not_after: now - DAY,
            ..soon.clone()
        };
        assert!(warned(&config(), Some(&gone)).contains("expired on"));
        let other = facts(&["other.example"], 60 * DAY, now);
        let text = warned(&config(), Some(&other));
        assert!(
            text.contains(
                "the host name mx.example is not among the TLS certificate's names (other.example)"
            ),
            "{text}"
        );
        let wildcard = facts(&["*.example"], 60 * DAY, now);
        assert_eq!(warned(&config(), Some(&wildcard)), "");
        let sink = Config {
            sink: true,
            ..config()
        };
        let text = warned(&sink, Some(&wildcard));
        assert!(text.contains("--sink is on"), "{text}");
        assert!(warned(&config(), None).contains("does not parse"));
    }
}
