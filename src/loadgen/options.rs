//! What one run is asked to do ([`Options`]) and its bounds, and the
//! loopback guard: the load generator may only ever be pointed at this
//! machine.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Smallest message: room for the generated header block.
pub const MIN_SIZE: usize = 256;
/// Largest message; every session shares one copy, but the server may not.
pub const MAX_SIZE: usize = 100 * 1024 * 1024;
/// Upper bound on concurrent sessions: one OS thread each.
pub const MAX_SESSIONS: usize = 4096;
/// Upper bound on messages per session, so every run is bounded in count.
pub const MAX_MESSAGES: usize = 10_000_000;
/// RFC 5321 §4.5.3.1.8: servers must accept at least 100 recipients; more is pointless here.
pub const MAX_RECIPIENTS: usize = 100;

/// How the connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain SMTP.
    Plain,
    /// Plain greeting, then STARTTLS (RFC 3207).
    StartTls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
}

/// How certificates presented by the server are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trust {
    /// The webpki (Mozilla) roots.
    WebPkiRoots,
    /// Only the certificates in this PEM file.
    CaFile(PathBuf),
    /// Any certificate (`--insecure`); signatures are still checked.
    Any,
}

/// How the client authenticates (RFC 4954).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMechanism {
    /// AUTH PLAIN with an initial response (RFC 4616), one round trip.
    Plain,
    /// AUTH LOGIN: user name and password each answer a `334` challenge,
    /// three round trips, as Outlook does.
    Login,
}

/// Everything one run needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Target; always a loopback address.
    pub server: SocketAddr,
    /// Concurrent connections, one thread each.
    pub sessions: usize,
    /// Messages per session.
    pub messages: usize,
    /// Message size in bytes (headers and body, before dot-stuffing).
    pub size: usize,
    /// Recipients per message.
    pub recipients: usize,
    /// Reverse path.
    pub from: String,
    /// First recipient; further recipients get `+N` before the `@`.
    pub to: String,
    /// Send MAIL, RCPT and DATA in one write when the server offers PIPELINING (RFC 2920).
    pub pipelining: bool,
    /// Transport security.
    pub security: Security,
    /// Certificate checking for `security != Plain`.
    pub trust: Trust,
    /// The server name sent (SNI) and verified; `None`: the server's
    /// address is verified and no name is sent.
    pub sni: Option<String>,
    /// AUTH credentials (user, password).
    pub auth: Option<(String, String)>,
    /// The SASL mechanism used with `auth`.
    pub auth_mechanism: AuthMechanism,
    /// Resume TLS sessions from earlier connections (RFC 8446 §2.2), as a
    /// client with a session cache does; `false`: every handshake is full.
    pub tls_resumption: bool,
    /// Hard stop for the whole run.
    pub duration_limit: Duration,
    /// Many messages per connection (true) or one connection per message.
    pub reuse: bool,
    /// EHLO name.
    pub helo: String,
}

impl Options {
    /// What one latency sample measures: a message on a reused connection,
    /// or a whole session (connect, EHLO, TLS, AUTH, the message, QUIT)
    /// with one connection per message.
    pub fn latency_span(&self) -> &'static str {
        if self.reuse {
            "MAIL sent to final reply"
        } else {
            "connect to QUIT reply"
        }
    }
}

/// Why a target is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetError {
    /// `localhost:PORT` with a port that is no number (the target as given).
    BadPort(String),
    /// Port 0 (the target as given).
    PortZero(String),
    /// Neither `localhost:PORT` nor an IP address with a port (the target
    /// as given).
    NotAnAddress(String),
    /// An address outside 127.0.0.0/8 and ::1.
    NotLoopback(IpAddr),
}

impl TargetError {
    /// The target may name another machine, as opposed to a malformed port.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            TargetError::NotAnAddress(_) | TargetError::NotLoopback(_)
        )
    }
}

impl fmt::Display for TargetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetError::BadPort(s) => write!(f, "bad port in '{s}'"),
            TargetError::PortZero(s) => write!(f, "port 0 in '{s}'"),
            TargetError::NotAnAddress(s) => write!(
                f,
                "refusing to send load: '{s}' is not an IP address with a port; only 127.0.0.0/8, [::1] or localhost are allowed"
            ),
            TargetError::NotLoopback(ip) => write!(
                f,
                "refusing to send load: {ip} is not a loopback address; only 127.0.0.0/8 and ::1 are allowed"
            ),
        }
    }
}

impl std::error::Error for TargetError {}

/// Parses `HOST:PORT` and refuses anything that is not loopback (127.0.0.0/8, ::1,
/// or `localhost`). Names other than `localhost` are refused rather than resolved:
/// a benchmark must never send load to another machine by accident.
pub fn loopback_target(s: &str) -> Result<SocketAddr, TargetError> {
    let addr = if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| TargetError::BadPort(s.to_string()))?;
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
    } else {
        s.parse::<SocketAddr>()
            .map_err(|_| TargetError::NotAnAddress(s.to_string()))?
    };
    check_loopback(addr).map_err(|e| match e {
        TargetError::PortZero(_) => TargetError::PortZero(s.to_string()),
        other => other,
    })?;
    Ok(addr)
}

/// Refuses port 0 and any address that is not loopback.
pub fn check_loopback(addr: SocketAddr) -> Result<(), TargetError> {
    if addr.port() == 0 {
        return Err(TargetError::PortZero(addr.to_string()));
    }
    if !addr.ip().to_canonical().is_loopback() {
        return Err(TargetError::NotLoopback(addr.ip()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_guard() {
        for (input, want) in [
            ("127.0.0.1:25", Some("127.0.0.1:25")),
            ("127.1.2.3:2525", Some("127.1.2.3:2525")),
            ("[::1]:25", Some("[::1]:25")),
            ("localhost:587", Some("127.0.0.1:587")),
            ("[::ffff:127.0.0.1]:25", Some("[::ffff:127.0.0.1]:25")),
            ("10.0.0.1:25", None),
            ("192.168.1.1:25", None),
            ("0.0.0.0:25", None),
            ("[::]:25", None),
            ("[2001:db8::1]:25", None),
            ("[::ffff:10.0.0.1]:25", None),
            ("example.com:25", None),
            ("localhost.example.com:25", None),
            ("127.0.0.1", None),
        ] {
            let got = loopback_target(input).ok();
            assert_eq!(got, want.map(|w| w.parse().unwrap()), "{input}");
        }
    }

    #[test]
    fn refusals_and_malformed_ports() {
        for (input, refusal, text) in [
            ("localhost:x", false, "bad port in 'localhost:x'"),
            ("localhost:0", false, "port 0 in 'localhost:0'"),
            ("[::1]:0", false, "port 0 in '[::1]:0'"),
            (
                "example.com:25",
                true,
                "refusing to send load: 'example.com:25' is not an IP address with a port; only 127.0.0.0/8, [::1] or localhost are allowed",
            ),
            (
                "10.0.0.1:25",
                true,
                "refusing to send load: 10.0.0.1 is not a loopback address; only 127.0.0.0/8 and ::1 are allowed",
            ),
        ] {
            let error = loopback_target(input).unwrap_err();
            assert_eq!(error.is_refusal(), refusal, "{input}");
            assert_eq!(error.to_string(), text, "{input}");
        }
    }
}
