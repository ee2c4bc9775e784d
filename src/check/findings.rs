//! The judgment of `outpost check`: turns what the probes and lookups saw
//! into findings in plain words, each problem with a hint how to fix it.
//! Pure functions over data; no sockets.

use std::fmt;
use std::net::IpAddr;

use super::deliverability::non_public;
use super::lookup::{MailHosts, MxHost};
use super::probe::TlsSession;
use super::probe::{CertVerdict, ConnectError, Greeting, PlainSession, PortOutcome};
use crate::delivery::dns::DnsError;
use crate::proto::reply::Reply;

/// How a smarthost is configured, for the hints about a blocked port 25.
const SMARTHOST_HINT: &str = "deliver through your provider's submission server (a smarthost): \
     `outpost serve --relay-host smtp.provider.example:587 --relay-tls starttls --relay-user NAME --relay-password-file FILE`";

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// As it should be.
    Ok,
    /// Works, but not as it should.
    Warning,
    /// Does not work.
    Error,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// How serious.
    pub level: Level,
    /// What was checked (`HOST:PORT`, a domain).
    pub subject: String,
    /// What was found.
    pub message: String,
    /// What to do about it (problems only).
    pub fix: Option<String>,
}

impl Finding {
    /// As it should be.
    pub(super) fn ok(subject: &str, message: impl Into<String>) -> Finding {
        Finding {
            level: Level::Ok,
            subject: subject.to_string(),
            message: message.into(),
            fix: None,
        }
    }

    fn problem(
        level: Level,
        subject: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding {
            level,
            subject: subject.to_string(),
            message: message.into(),
            fix: Some(fix.into()),
        }
    }

    /// Works, but not as it should.
    pub(super) fn warning(
        subject: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::problem(Level::Warning, subject, message, fix)
    }

    /// A problem that stops things from working.
    pub(super) fn error(
        subject: &str,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) -> Finding {
        Finding::problem(Level::Error, subject, message, fix)
    }
}

impl fmt::Display for Finding {
    /// `LEVEL: SUBJECT: MESSAGE`, and `  fix: HINT` on a second line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.level {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Error => "error",
        };
        write!(f, "{level}: {}: {}", self.subject, self.message)?;
        if let Some(fix) = &self.fix {
            write!(f, "\n  fix: {fix}")?;
        }
        Ok(())
    }
}

/// Findings about one probed port; `subject` is `HOST:PORT` as given.
pub fn port_findings(subject: &str, port: u16, outcome: &PortOutcome) -> Vec<Finding> {
    match outcome {
        PortOutcome::Unreachable(e) => vec![unreachable(subject, port, e)],
        PortOutcome::ClosedWithoutGreeting => vec![Finding::error(
            subject,
            "the server accepted the connection and closed it without a greeting",
            "the server turns this address away (connection limit, blocklist); check its log",
        )],
        PortOutcome::Silent { tls_error } => vec![Finding::error(
            subject,
            format!(
                "connected, but no SMTP greeting came, neither in plaintext nor after TLS ({tls_error})"
            ),
            "this is not a working mail port, or something in between holds the connection; \
             mail clients use 587 (STARTTLS) or 465 (SSL/TLS)",
        )],
        PortOutcome::NotSmtp {
            first_line,
            tls_error,
        } => vec![Finding::error(
            subject,
            format!("this port does not speak SMTP: it sent {first_line:?} (and TLS: {tls_error})"),
            "check the port number: mail clients use 587 (STARTTLS) or 465 (SSL/TLS)",
        )],
        PortOutcome::Plaintext(session) => plaintext(subject, port, session),
        PortOutcome::ImplicitTls { greeting, session } => {
            implicit_tls(subject, port, greeting, session)
        }
    }
}

fn unreachable(subject: &str, port: u16, error: &ConnectError) -> Finding {
    match error {
        ConnectError::Refused => Finding::error(
            subject,
            format!("connection refused: nothing listens on {subject}"),
            "check the host name and port, and that the mail server is running \
             (mail clients use 587 with STARTTLS or 465 with SSL/TLS)",
        ),
        ConnectError::TimedOut if port == 25 => Finding::error(
            subject,
            "no answer: a firewall drops connections to this port",
            format!("if this is port 25 of another server, your provider probably blocks outbound port 25: {SMARTHOST_HINT}"),
        ),
        ConnectError::TimedOut => Finding::error(
            subject,
            "no answer: a firewall drops connections to this port",
            "open the port in the server's firewall (and the hosting provider's), or check the address",
        ),
        ConnectError::Other(e) => Finding::error(
            subject,
            format!("cannot connect: {e}"),
            "check the network and the address",
        ),
    }
}

/// The first line's text (for a greeting: the server's name and banner).
fn first_line(reply: &Reply) -> &str {
    reply.lines.first().map_or("", |line| line)
}

/// A greeting other than 220 means the server refuses the session.
fn refused_greeting(subject: &str, greeting: &Reply) -> Finding {
    Finding::error(
        subject,
        format!("the server refuses the session: {greeting}"),
        "the server turns this client away (blocklist, limits, maintenance); read its reply and its log",
    )
}

fn plaintext(subject: &str, port: u16, session: &PlainSession) -> Vec<Finding> {
    let greeting = &session.greeting;
    if greeting.code != 220 {
        return vec![refused_greeting(subject, greeting)];
    }
    let mut findings = vec![Finding::ok(
        subject,
        format!("plaintext SMTP, greeting: {}", first_line(greeting)),
    )];
    let ext = match &session.ehlo {
        Ok(ext) => ext,
        Err(e) => {
            findings.push(Finding::error(
                subject,
                format!("EHLO failed: {e}"),
                "the server does not accept EHLO from this client; check its log",
            ));
            return findings;
        }
    };
    if !ext.auth.is_empty() {
        findings.push(Finding::warning(
            subject,
            format!(
                "AUTH offered before TLS ({}): a client could send its password unencrypted",
                ext.auth.join(" ")
            ),
            "offer AUTH only after STARTTLS (or only on an implicit-TLS port)",
        ));
    }
    match &session.starttls {
        None if port == 25 => findings.push(Finding::warning(
            subject,
            "no STARTTLS offered: mail from other servers arrives unencrypted",
            "give the server a certificate so that it offers STARTTLS",
        )),
        None => findings.push(Finding::error(
            subject,
            "no STARTTLS offered: a mail client could only send its password and mail unencrypted",
            "give the server a certificate so that it offers STARTTLS, or use its SSL/TLS port (465)",
        )),
        Some(Err(e)) => findings.push(Finding::error(
            subject,
            format!("STARTTLS offered but failed: {e}"),
            "the server's TLS setup is broken (certificate or key); check its log",
        )),
        Some(Ok(tls)) => {
            findings.push(Finding::ok(subject, format!("STARTTLS works ({})", tls.version)));
            findings.extend(tls_findings(subject, port, tls));
            findings.push(Finding::ok(subject, starttls_advice(port)));
        }
    }
    findings
}

fn implicit_tls(subject: &str, port: u16, greeting: &Reply, session: &TlsSession) -> Vec<Finding> {
    if greeting.code != 220 {
        return vec![refused_greeting(subject, greeting)];
    }
    let mut findings = vec![Finding::ok(
        subject,
        format!(
            "implicit TLS ({}), greeting: {}",
            session.version,
            first_line(greeting)
        ),
    )];
    findings.extend(tls_findings(subject, port, session));
    findings.push(Finding::ok(
        subject,
        format!(
            "in a mail client choose encryption SSL/TLS on port {port} \
             (not STARTTLS or none: this server waits for a TLS handshake first, \
             so a client set to STARTTLS waits for a greeting that never comes)"
        ),
    ));
    findings
}

fn starttls_advice(port: u16) -> String {
    let advice = format!(
        "in a mail client choose encryption STARTTLS on port {port} \
         (not SSL/TLS: this server greets in plaintext, so a client set to SSL/TLS fails its handshake)"
    );
    if port == 25 {
        format!("{advice}; port 25 is meant for mail between servers, mail clients use 587 or 465")
    } else {
        advice
    }
}

/// The certificate and the AUTH mechanisms inside TLS.
fn tls_findings(subject: &str, port: u16, session: &TlsSession) -> Vec<Finding> {
    let mut findings = vec![certificate(subject, &session.certificate)];
    match &session.ehlo {
        Err(e) => findings.push(Finding::error(
            subject,
            format!("EHLO inside TLS failed: {e}"),
            "the server does not accept EHLO from this client; check its log",
        )),
        Ok(ext) if !ext.auth.is_empty() => findings.push(Finding::ok(
            subject,
            format!("AUTH after TLS: {}", ext.auth.join(" ")),
        )),
        Ok(_) if port == 25 => findings.push(Finding::ok(
            subject,
            "no AUTH: a port for mail from other servers",
        )),
        Ok(_) => findings.push(Finding::warning(
            subject,
            "no AUTH offered: mail clients cannot log in on this port",
            "this looks like a port for mail between servers; mail clients use 587 or 465, \
             or enable login on this port",
        )),
    }
    findings
}

fn certificate(subject: &str, verdict: &CertVerdict) -> Finding {
    const GET_A_CERTIFICATE: &str =
        "install a certificate from a public CA (e.g. Let's Encrypt) with \
         `outpost serve --tls-cert FILE --tls-key FILE`";
    match verdict {
        CertVerdict::Trusted { name: Some(name) } => {
            Finding::ok(subject, format!("certificate trusted and valid for {name}"))
        }
        CertVerdict::Trusted { name: None } => Finding::ok(
            subject,
            "certificate trusted; its name was not checked (an IP address was given: add --sni NAME)",
        ),
        CertVerdict::UnknownIssuer => Finding::error(
            subject,
            "certificate not trusted: self-signed or issued by an unknown CA",
            format!(
                "mail clients will warn or refuse: {GET_A_CERTIFICATE}; \
                 to check against a certificate you trust yourself, pass --ca-file PEM"
            ),
        ),
        CertVerdict::Expired => Finding::error(
            subject,
            "certificate expired",
            "renew the certificate and restart the server",
        ),
        CertVerdict::NotYetValid => Finding::error(
            subject,
            "certificate not valid yet",
            "check the clocks of this machine and of the server, or wait for the certificate's start date",
        ),
        CertVerdict::WrongName { name, presented } => {
            let names = if presented.is_empty() {
                String::new()
            } else {
                format!(" (it is for {})", presented.join(", "))
            };
            Finding::error(
                subject,
                format!("certificate not valid for the name {name}{names}"),
                format!(
                    "in the mail client use a server name the certificate covers, \
                     or get a certificate that includes {name}"
                ),
            )
        }
        CertVerdict::Invalid(e) => Finding::error(
            subject,
            format!("certificate rejected: {e}"),
            GET_A_CERTIFICATE,
        ),
    }
}

/// Findings about a domain's mail records.
pub fn dns_findings(domain: &str, hosts: &MailHosts) -> Vec<Finding> {
    match hosts {
        MailHosts::NoDomain => vec![Finding::error(
            domain,
            "the domain does not exist (NXDOMAIN)",
            "check the spelling, and that the domain's DNS zone is published",
        )],
        MailHosts::LookupFailed(e) => vec![Finding::error(
            domain,
            format!("MX lookup failed: {e}"),
            "check the DNS server (--dns-server) and the network, then try again",
        )],
        MailHosts::NullMx => vec![Finding::warning(
            domain,
            "null MX (0 .): the domain accepts no mail (RFC 7505)",
            "if this domain should receive mail, replace the null MX with an MX record for the mail server",
        )],
        MailHosts::NoMx(Ok(addrs)) if !addrs.is_empty() => vec![Finding::warning(
            domain,
            format!("no MX record: mail falls back to the domain's own address ({})", join(addrs)),
            format!("add an MX record naming the mail server, e.g. `{domain}. MX 10 mail.{domain}.`"),
        )],
        MailHosts::NoMx(_) => vec![Finding::error(
            domain,
            "no MX record and no address: the domain cannot receive mail",
            format!("add an MX record naming the mail server, e.g. `{domain}. MX 10 mail.{domain}.`"),
        )],
        MailHosts::Mx(hosts) => hosts
            .iter()
            .map(|mx| match &mx.addrs {
                Ok(addrs) if !addrs.is_empty() => mx_addresses(domain, mx, addrs),
                failed => Finding::error(
                    domain,
                    format!(
                        "MX {} {} has no address{}",
                        mx.preference,
                        mx.host,
                        failed.as_ref().err().map(|e| format!(" ({e})")).unwrap_or_default()
                    ),
                    format!(
                        "add an A (or AAAA) record for {}, or point the MX at a host that has one",
                        mx.host
                    ),
                ),
            })
            .collect(),
    }
}

/// An MX host's addresses are an error when one of them cannot be
/// reached from the internet.
fn mx_addresses(domain: &str, mx: &MxHost, addrs: &[IpAddr]) -> Finding {
    let shown = format!("MX {} {} -> {}", mx.preference, mx.host, join(addrs));
    match addrs.iter().find_map(|&ip| Some((ip, non_public(ip)?))) {
        None => Finding::ok(domain, shown),
        Some((ip, kind)) => Finding::error(
            domain,
            format!("{shown}: {ip} is a {kind} address, which other servers cannot reach"),
            format!(
                "give {} only the public addresses of the mail server (A/AAAA records)",
                mx.host
            ),
        ),
    }
}

/// Findings about a domain's SPF record (RFC 7208): `records` are its
/// TXT records that start with `v=spf1`.
pub fn spf_findings(domain: &str, records: &Result<Vec<String>, DnsError>) -> Vec<Finding> {
    const ADD_ONE: &str = "publish one TXT record such as `v=spf1 mx -all` \
         (the domain's MX hosts send its mail, nothing else does)";
    match records.as_deref() {
        Err(e) => vec![Finding::warning(
            domain,
            format!("SPF lookup failed: {e}"),
            "check the DNS server (--dns-server) and the network, then try again",
        )],
        Ok([]) => vec![Finding::warning(
            domain,
            "no SPF record: receiving servers may treat mail from this domain as spam",
            ADD_ONE,
        )],
        Ok([record]) => vec![Finding::ok(domain, format!("SPF: {record}"))],
        Ok(several) => vec![Finding::error(
            domain,
            format!(
                "{} SPF records: receiving servers treat that as an error (RFC 7208 §4.5)",
                several.len()
            ),
            "merge them into one TXT record starting with v=spf1",
        )],
    }
}

/// One connection attempt of `--outbound`.
#[derive(Debug)]
pub struct ConnectAttempt {
    /// The mail host's name.
    pub host: String,
    /// The address tried.
    pub ip: IpAddr,
    /// What happened.
    pub greeting: Greeting,
}

/// Findings of `--outbound`: whether any of the domain's mail hosts
/// greeted on `port`.
pub fn outbound_findings(
    domain: &str,
    port: u16,
    hosts: &MailHosts,
    attempts: &[ConnectAttempt],
) -> Vec<Finding> {
    if attempts.is_empty() {
        let mut findings: Vec<Finding> = dns_findings(domain, hosts)
            .into_iter()
            .filter(|f| f.level != Level::Ok)
            .collect();
        findings.push(Finding::error(
            domain,
            format!("outbound port {port} not tested: no mail host address to connect to"),
            "test with a domain that receives mail",
        ));
        return findings;
    }
    if let Some(worked) = attempts.iter().find_map(|a| match &a.greeting {
        Greeting::Received(reply) => Some((a, reply)),
        _ => None,
    }) {
        let (attempt, reply) = worked;
        return vec![Finding::ok(
            domain,
            format!(
                "outbound port {port} works ({} [{}] greeting: {} {})",
                attempt.host,
                attempt.ip,
                reply.code,
                first_line(reply)
            ),
        )];
    }
    let what: Vec<String> = attempts
        .iter()
        .map(|a| {
            let why = match &a.greeting {
                Greeting::Unreachable(ConnectError::Refused) => "connection refused".to_string(),
                Greeting::Unreachable(ConnectError::TimedOut) => "no answer".to_string(),
                Greeting::Unreachable(ConnectError::Other(e)) => e.clone(),
                Greeting::Missing(e) => format!("no greeting: {e}"),
                Greeting::Received(_) => "greeted".to_string(),
            };
            format!("{} [{}]: {why}", a.host, a.ip)
        })
        .collect();
    let all_timed_out = attempts
        .iter()
        .all(|a| matches!(a.greeting, Greeting::Unreachable(ConnectError::TimedOut)));
    let fix = if all_timed_out {
        format!("your provider probably blocks outbound port {port}: {SMARTHOST_HINT}")
    } else {
        format!(
            "the mail hosts are down or something between refuses port {port}; \
             if it stays so, {SMARTHOST_HINT}"
        )
    };
    let verdict = if all_timed_out {
        "blocked"
    } else {
        "does not work"
    };
    vec![Finding::error(
        domain,
        format!("outbound port {port} {verdict}: {}", what.join("; ")),
        fix,
    )]
}

fn join(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::probe::ProbeError;
    use crate::proto::client::Extensions;

    fn reply(code: u16, text: &str) -> Reply {
        Reply::plain(code, vec![text.to_string().into()])
    }

    fn ext(starttls: bool, auth: &[&str]) -> Extensions {
        Extensions {
            starttls,
            auth: auth.iter().map(|m| m.to_string()).collect(),
            ..Extensions::default()
        }
    }

    fn tls(certificate: CertVerdict, auth: &[&str]) -> TlsSession {
        TlsSession {
            version: "TLSv1.3",
            certificate,
            ehlo: Ok(ext(false, auth)),
        }
    }

    fn levels(findings: &[Finding]) -> Vec<Level> {
        findings.iter().map(|f| f.level).collect()
    }

    fn text(findings: &[Finding]) -> String {
        findings.iter().map(|f| format!("{f}\n")).collect()
    }

    fn trusted() -> CertVerdict {
        CertVerdict::Trusted {
            name: Some("mail.example".into()),
        }
    }

    #[test]
    fn starttls_port_all_good() {
        let outcome = PortOutcome::Plaintext(PlainSession {
            greeting: reply(220, "mail.example ESMTP"),
            ehlo: Ok(ext(true, &[])),
            starttls: Some(Ok(tls(trusted(), &["PLAIN", "LOGIN"]))),
        });
        let findings = port_findings("mail.example:587", 587, &outcome);
        assert!(
            levels(&findings).iter().all(|&l| l == Level::Ok),
            "{findings:?}"
        );
        let text = text(&findings);
        assert!(
            text.contains("choose encryption STARTTLS on port 587"),
            "{text}"
        );
        assert!(text.contains("not SSL/TLS"), "{text}");
        assert!(text.contains("AUTH after TLS: PLAIN LOGIN"), "{text}");
        assert!(text.contains("valid for mail.example"), "{text}");
    }

    #[test]
    fn plaintext_auth_and_missing_starttls_are_problems() {
        let outcome = PortOutcome::Plaintext(PlainSession {
            greeting: reply(220, "mail.example ESMTP"),
            ehlo: Ok(ext(false, &["PLAIN"])),
            starttls: None,
        });
        let findings = port_findings("mail.example:587", 587, &outcome);
        assert_eq!(levels(&findings), [Level::Ok, Level::Warning, Level::Error]);
        assert!(findings[1].message.contains("AUTH offered before TLS"));
        let on_25 = PortOutcome::Plaintext(PlainSession {
            greeting: reply(220, "mx"),
            ehlo: Ok(ext(false, &[])),
            starttls: None,
        });
        assert_eq!(
            levels(&port_findings("mx:25", 25, &on_25)),
            [Level::Ok, Level::Warning]
        );
    }

    #[test]
    fn implicit_tls_port_names_the_mistake() {
        let outcome = PortOutcome::ImplicitTls {
            greeting: reply(220, "mail.example ESMTP"),
            session: tls(CertVerdict::UnknownIssuer, &["PLAIN"]),
        };
        let findings = port_findings("mail.example:465", 465, &outcome);
        assert_eq!(
            levels(&findings),
            [Level::Ok, Level::Error, Level::Ok, Level::Ok]
        );
        let text = text(&findings);
        assert!(text.contains("implicit TLS (TLSv1.3)"), "{text}");
        assert!(text.contains("self-signed"), "{text}");
        assert!(text.contains("--ca-file"), "{text}");
        assert!(
            text.contains("choose encryption SSL/TLS on port 465"),
            "{text}"
        );
        assert!(text.contains("not STARTTLS"), "{text}");
    }

    #[test]
    fn certificate_problems_in_plain_words() {
        let wrong = CertVerdict::WrongName {
            name: "smtp.example".into(),
            presented: vec!["mail.example".into()],
        };
        let finding = certificate("x", &wrong);
        assert_eq!(finding.level, Level::Error);
        assert!(finding.message.contains("smtp.example"));
        assert!(finding.message.contains("it is for mail.example"));
        assert_eq!(
            certificate("x", &CertVerdict::Expired).message,
            "certificate expired"
        );
        assert_eq!(
            certificate("x", &CertVerdict::Trusted { name: None }).level,
            Level::Ok
        );
    }

    #[test]
    fn unreachable_ports() {
        let refused = port_findings(
            "h:587",
            587,
            &PortOutcome::Unreachable(ConnectError::Refused),
        );
        assert!(refused[0].message.contains("nothing listens on h:587"));
        let dropped = port_findings(
            "h:25",
            25,
            &PortOutcome::Unreachable(ConnectError::TimedOut),
        );
        assert!(dropped[0].fix.as_deref().unwrap().contains("--relay-host"));
        let silent = PortOutcome::Silent {
            tls_error: ProbeError::HandshakeTimeout,
        };
        assert_eq!(
            levels(&port_findings("h:2525", 2525, &silent)),
            [Level::Error]
        );
        let greeting = PortOutcome::Plaintext(PlainSession {
            greeting: reply(554, "go away"),
            ehlo: Err(ProbeError::GreetingNot220),
            starttls: None,
        });
        let findings = port_findings("h:25", 25, &greeting);
        assert!(findings[0].message.contains("554 go away"));
    }

    #[test]
    fn dns_records() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let hosts = MailHosts::Mx(vec![
            MxHost {
                preference: 10,
                host: "mx1.example".into(),
                addrs: Ok(vec![ip]),
            },
            MxHost {
                preference: 20,
                host: "mx2.example".into(),
                addrs: Err(DnsError::NxDomain),
            },
        ]);
        let findings = dns_findings("example", &hosts);
        assert_eq!(levels(&findings), [Level::Ok, Level::Error]);
        assert_eq!(findings[0].message, "MX 10 mx1.example -> 192.0.2.1");
        assert!(findings[1].message.contains("mx2.example has no address"));
        assert_eq!(
            levels(&dns_findings("e", &MailHosts::NoMx(Ok(vec![ip])))),
            [Level::Warning]
        );
        assert_eq!(
            levels(&dns_findings("e", &MailHosts::NoMx(Ok(vec![])))),
            [Level::Error]
        );
        assert!(dns_findings("e", &MailHosts::NullMx)[0]
            .message
            .contains("accepts no mail"));
        assert_eq!(
            levels(&dns_findings("e", &MailHosts::NoDomain)),
            [Level::Error]
        );
    }

    #[test]
    fn spf_records() {
        let one = Ok(vec!["v=spf1 mx -all".to_string()]);
        assert_eq!(spf_findings("e", &one)[0].message, "SPF: v=spf1 mx -all");
        assert_eq!(levels(&spf_findings("e", &Ok(vec![]))), [Level::Warning]);
        let two = Ok(vec!["v=spf1 -all".to_string(), "v=spf1 mx".to_string()]);
        assert_eq!(levels(&spf_findings("e", &two)), [Level::Error]);
        assert_eq!(
            levels(&spf_findings("e", &Err(DnsError::Timeout))),
            [Level::Warning]
        );
    }

    #[test]
    fn outbound_verdicts() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let attempt = |greeting| ConnectAttempt {
            host: "mx.example".into(),
            ip,
            greeting,
        };
        let hosts = MailHosts::NoMx(Ok(vec![ip]));
        let works = [
            attempt(Greeting::Unreachable(ConnectError::TimedOut)),
            attempt(Greeting::Received(reply(220, "mx.example ESMTP"))),
        ];
        let findings = outbound_findings("example", 25, &hosts, &works);
        assert_eq!(levels(&findings), [Level::Ok]);
        assert!(findings[0].message.contains("outbound port 25 works"));
        let blocked = [attempt(Greeting::Unreachable(ConnectError::TimedOut))];
        let findings = outbound_findings("example", 25, &hosts, &blocked);
        assert!(findings[0].message.starts_with("outbound port 25 blocked"));
        assert!(findings[0]
            .fix
            .as_deref()
            .unwrap()
            .contains("blocks outbound port 25"));
        let refused = [attempt(Greeting::Unreachable(ConnectError::Refused))];
        let findings = outbound_findings("example", 25, &hosts, &refused);
        assert!(findings[0].message.contains("connection refused"));
        let findings = outbound_findings("example", 25, &MailHosts::NullMx, &[]);
        assert_eq!(levels(&findings), [Level::Warning, Level::Error]);
    }
}
