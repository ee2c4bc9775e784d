//! The socket and TLS side of `outpost check`: connect to one address with
//! timeouts, find out what the port speaks (plaintext SMTP with or without
//! STARTTLS, implicit TLS, something else, nothing), and record what was
//! seen as plain data for `findings` to judge. Blocking std sockets only;
//! every read, write and connect is bounded by the timeout.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::net::is_timeout;
use crate::proto::client::Extensions;
use crate::proto::reply::{Reply, ReplyReader};
use crate::tls::{client_config, CertCheck, ClientStream, VerdictSink};

/// Longest wait for a plaintext greeting before trying implicit TLS.
const GREETING_WAIT: Duration = Duration::from_secs(5);
/// Most TLS handshake round trips before giving up on a peer.
const MAX_HANDSHAKE_ROUNDS: usize = 32;
/// How much of a non-SMTP first line is kept for the report.
const MAX_SHOWN_BYTES: usize = 80;

/// How to probe: the same for every target of one run.
pub struct Settings {
    /// Bound on each connect, read and write.
    pub timeout: Duration,
    /// The name sent with EHLO.
    pub ehlo_name: String,
    /// Trusted roots: the public CAs plus `--ca-file`.
    pub roots: Arc<RootCertStore>,
}

/// One address to probe and the certificate name to expect there.
pub struct ProbeTarget {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The name sent as SNI and checked against the certificate.
    pub tls_name: ServerName<'static>,
    /// The name whose match is reported; `None` when the name is not
    /// checked (an IP address without `--sni`).
    pub checked_name: Option<String>,
}

/// Why no TCP connection was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectError {
    /// Connection refused: nothing listens.
    Refused,
    /// No answer within the timeout: a firewall drops the packets.
    TimedOut,
    /// Any other error (no route, network unreachable …).
    Other(String),
}

/// What the certificate check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertVerdict {
    /// Chain trusted, valid now, and valid for the name (`None`: the name
    /// was not checked).
    Trusted {
        /// The name checked.
        name: Option<String>,
    },
    /// Self-signed or issued by a CA that is not trusted.
    UnknownIssuer,
    /// Past its end date.
    Expired,
    /// Before its start date.
    NotYetValid,
    /// Trusted, but for other names.
    WrongName {
        /// The name checked.
        name: String,
        /// The names the certificate has, when known.
        presented: Vec<String>,
    },
    /// Any other reason, in rustls's words.
    Invalid(String),
}

/// A TLS session and what the server said inside it.
#[derive(Debug)]
pub struct TlsSession {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The certificate check.
    pub certificate: CertVerdict,
    /// The EHLO reply inside TLS, or why there was none.
    pub ehlo: Result<Extensions, ProbeError>,
}

/// A plaintext SMTP session (a 220 greeting came in the clear).
#[derive(Debug)]
pub struct PlainSession {
    /// The greeting.
    pub greeting: Reply,
    /// The EHLO reply before TLS, or why there was none.
    pub ehlo: Result<Extensions, ProbeError>,
    /// The STARTTLS attempt: `None` when not offered (or not tried).
    pub starttls: Option<Result<TlsSession, ProbeError>>,
}

/// What a port turned out to speak.
#[derive(Debug)]
pub enum PortOutcome {
    /// No TCP connection.
    Unreachable(ConnectError),
    /// Connected, and the server closed before saying anything.
    ClosedWithoutGreeting,
    /// SMTP in plaintext (port 25/587 style).
    Plaintext(PlainSession),
    /// TLS first, then SMTP (port 465 style).
    ImplicitTls {
        /// The greeting inside TLS.
        greeting: Reply,
        /// The session.
        session: TlsSession,
    },
    /// Connected; no SMTP greeting came and TLS did not work either.
    Silent {
        /// What went wrong with the TLS attempt.
        tls_error: ProbeError,
    },
    /// The first bytes were not SMTP and TLS did not work.
    NotSmtp {
        /// The start of what the port sent.
        first_line: String,
        /// What went wrong with the TLS attempt.
        tls_error: ProbeError,
    },
}

/// One connection attempt to a port-25 host for `--outbound`.
#[derive(Debug)]
pub enum Greeting {
    /// A greeting arrived.
    Received(Reply),
    /// No connection.
    Unreachable(ConnectError),
    /// Connected, but no greeting: what happened instead.
    Missing(ReadError),
}

/// Why a step of a probe did not work; shown in the findings.
#[derive(Debug)]
pub enum ProbeError {
    /// No reply could be read.
    Read(ReadError),
    /// EHLO was not sent because the greeting was not 220.
    GreetingNot220,
    /// EHLO was answered with something other than 250.
    EhloRefused(Reply),
    /// STARTTLS was answered with something other than 220.
    StartTlsRefused(Reply),
    /// Bytes followed the 220 to STARTTLS in plaintext (RFC 3207 §4.2).
    DataAfterStartTls,
    /// No TCP connection for the TLS attempt.
    Connect(ConnectError),
    /// TLS was asked for on a connection that already has it.
    TlsAlreadyActive,
    /// A socket option could not be set.
    Socket(io::Error),
    /// rustls refused the configuration or the connection setup.
    Tls(rustls::Error),
    /// The handshake needed more than its bound of round trips.
    HandshakeUnfinished,
    /// The server did not answer the ClientHello in time.
    HandshakeTimeout,
    /// The server closed the connection during the handshake.
    HandshakeClosed,
    /// The handshake failed otherwise.
    Handshake(io::Error),
    /// The handshake worked, but no greeting could be read inside TLS.
    AfterHandshake {
        /// The TLS version agreed.
        version: &'static str,
        /// What went wrong reading the greeting.
        error: ReadError,
    },
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Read(e) => write!(f, "{e}"),
            ProbeError::GreetingNot220 => write!(f, "not sent: the greeting was not 220"),
            ProbeError::EhloRefused(reply) => write!(f, "{reply}"),
            ProbeError::StartTlsRefused(reply) => write!(f, "STARTTLS answered {reply}"),
            ProbeError::DataAfterStartTls => {
                write!(f, "the server sent data after its STARTTLS reply")
            }
            ProbeError::Connect(ConnectError::Refused) => write!(f, "connection refused"),
            ProbeError::Connect(ConnectError::TimedOut) => write!(f, "connection timed out"),
            ProbeError::Connect(ConnectError::Other(e)) => write!(f, "{e}"),
            ProbeError::TlsAlreadyActive => write!(f, "TLS is already active"),
            ProbeError::Socket(e) => write!(f, "{e}"),
            ProbeError::Tls(e) => write!(f, "{e}"),
            ProbeError::HandshakeUnfinished => write!(f, "the TLS handshake did not finish"),
            ProbeError::HandshakeTimeout => write!(
                f,
                "no TLS handshake in time (the server did not answer the ClientHello)"
            ),
            ProbeError::HandshakeClosed => write!(
                f,
                "the server closed the connection during the TLS handshake"
            ),
            ProbeError::Handshake(e) => write!(f, "TLS handshake failed: {e}"),
            ProbeError::AfterHandshake { version, error } => {
                write!(f, "the TLS handshake worked ({version}), but then: {error}")
            }
        }
    }
}

/// Finds out what `target` speaks.
pub fn probe_port(target: &ProbeTarget, settings: &Settings) -> PortOutcome {
    let mut conn = match ProbeConnection::connect(target.addr, settings.timeout) {
        Ok(conn) => conn,
        Err(e) => return PortOutcome::Unreachable(e),
    };
    let first = conn.read_reply(settings.timeout.min(GREETING_WAIT));
    match first {
        Ok(greeting) => {
            let session = plaintext_session(conn, greeting, target, settings);
            PortOutcome::Plaintext(session)
        }
        Err(ReadError::Closed) => PortOutcome::ClosedWithoutGreeting,
        Err(ReadError::NotSmtp(first_line)) => match implicit_tls(target, settings) {
            Ok(outcome) => outcome,
            Err(tls_error) => PortOutcome::NotSmtp {
                first_line,
                tls_error,
            },
        },
        Err(ReadError::Silent | ReadError::Io(_)) => match implicit_tls(target, settings) {
            Ok(outcome) => outcome,
            Err(tls_error) => PortOutcome::Silent { tls_error },
        },
    }
}

/// Connects to `addr` and reads the greeting, then says QUIT.
pub fn greeting(addr: SocketAddr, timeout: Duration) -> Greeting {
    let mut conn = match ProbeConnection::connect(addr, timeout) {
        Ok(conn) => conn,
        Err(e) => return Greeting::Unreachable(e),
    };
    match conn.read_reply(timeout) {
        Ok(reply) => {
            conn.quit(timeout);
            Greeting::Received(reply)
        }
        Err(e) => Greeting::Missing(e),
    }
}

/// EHLO, STARTTLS when offered, EHLO again, QUIT.
fn plaintext_session(
    mut conn: ProbeConnection,
    greeting: Reply,
    target: &ProbeTarget,
    settings: &Settings,
) -> PlainSession {
    if greeting.code != 220 {
        return PlainSession {
            greeting,
            ehlo: Err(ProbeError::GreetingNot220),
            starttls: None,
        };
    }
    let ehlo = conn.ehlo(settings);
    let starttls = match &ehlo {
        Ok(ext) if ext.starttls => Some(conn.starttls(target, settings)),
        _ => None,
    };
    PlainSession {
        greeting,
        ehlo,
        starttls,
    }
}

/// A new connection with TLS first; `Err` says why it is not implicit TLS.
fn implicit_tls(target: &ProbeTarget, settings: &Settings) -> Result<PortOutcome, ProbeError> {
    let conn =
        ProbeConnection::connect(target.addr, settings.timeout).map_err(ProbeError::Connect)?;
    let (mut conn, version, certificate) = conn.start_tls(target, settings)?;
    let greeting = conn
        .read_reply(settings.timeout)
        .map_err(|error| ProbeError::AfterHandshake { version, error })?;
    let ehlo = if greeting.code == 220 {
        let ehlo = conn.ehlo(settings);
        conn.quit(settings.timeout);
        ehlo
    } else {
        Err(ProbeError::GreetingNot220)
    };
    Ok(PortOutcome::ImplicitTls {
        greeting,
        session: TlsSession {
            version,
            certificate,
            ehlo,
        },
    })
}

/// Why no reply could be read.
#[derive(Debug)]
pub enum ReadError {
    /// Nothing arrived in time.
    Silent,
    /// The peer closed the connection.
    Closed,
    /// What arrived is not an SMTP reply; the start of it.
    NotSmtp(String),
    /// A socket or TLS error.
    Io(io::Error),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Silent => write!(f, "no reply in time"),
            ReadError::Closed => write!(f, "the server closed the connection"),
            ReadError::NotSmtp(text) => write!(f, "not an SMTP reply: {text:?}"),
            ReadError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// A connection and the bytes read but not yet used.
struct ProbeConnection {
    stream: ClientStream,
    replies: ReplyReader,
}

impl ProbeConnection {
    fn connect(addr: SocketAddr, timeout: Duration) -> Result<ProbeConnection, ConnectError> {
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectError::TimedOut,
            _ => ConnectError::Other(e.to_string()),
        })?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(ProbeConnection {
            stream: ClientStream::Plain(tcp),
            replies: ReplyReader::new(),
        })
    }

    /// Reads one whole reply, waiting at most `wait` for each chunk.
    fn read_reply(&mut self, wait: Duration) -> Result<Reply, ReadError> {
        self.stream
            .tcp()
            .set_read_timeout(Some(wait))
            .map_err(ReadError::Io)?;
        loop {
            match self.replies.next_reply() {
                Ok(Some(reply)) => return Ok(reply),
                Ok(None) => {}
                Err(error) => {
                    let line = &self.replies.buffered()[error.at..];
                    return Err(ReadError::NotSmtp(shown(line)));
                }
            }
            let buffered = self.replies.buffered();
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) if buffered.is_empty() => return Err(ReadError::Closed),
                Ok(0) => return Err(ReadError::NotSmtp(shown(buffered))),
                Ok(n) => self.replies.push(&chunk[..n]),
                Err(e) if is_timeout(&e) && buffered.is_empty() => return Err(ReadError::Silent),
                Err(e) if is_timeout(&e) => return Err(ReadError::NotSmtp(shown(buffered))),
                Err(e) => return Err(ReadError::Io(e)),
            }
        }
    }

    /// Sends `line` and CRLF, then reads the reply.
    fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, ReadError> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| self.stream.flush())
            .map_err(ReadError::Io)?;
        self.read_reply(timeout)
    }

    fn ehlo(&mut self, settings: &Settings) -> Result<Extensions, ProbeError> {
        let reply = self
            .command(&format!("EHLO {}", settings.ehlo_name), settings.timeout)
            .map_err(ProbeError::Read)?;
        if reply.code != 250 {
            return Err(ProbeError::EhloRefused(reply));
        }
        Ok(Extensions::from_reply(&reply))
    }

    fn quit(&mut self, timeout: Duration) {
        // The session is over either way; a failed QUIT changes no finding.
        let _ = self.command("QUIT", timeout);
    }

    /// STARTTLS, the handshake, EHLO inside TLS, QUIT.
    fn starttls(
        mut self,
        target: &ProbeTarget,
        settings: &Settings,
    ) -> Result<TlsSession, ProbeError> {
        let reply = self
            .command("STARTTLS", settings.timeout)
            .map_err(ProbeError::Read)?;
        if reply.code != 220 {
            return Err(ProbeError::StartTlsRefused(reply));
        }
        if !self.replies.buffered().is_empty() {
            return Err(ProbeError::DataAfterStartTls);
        }
        let (mut conn, version, certificate) = self.start_tls(target, settings)?;
        let ehlo = conn.ehlo(settings);
        conn.quit(settings.timeout);
        Ok(TlsSession {
            version,
            certificate,
            ehlo,
        })
    }

    /// Completes a TLS handshake over this plaintext connection; returns
    /// the TLS connection, its version and the certificate verdict.
    fn start_tls(
        self,
        target: &ProbeTarget,
        settings: &Settings,
    ) -> Result<(ProbeConnection, &'static str, CertVerdict), ProbeError> {
        let ClientStream::Plain(tcp) = self.stream else {
            return Err(ProbeError::TlsAlreadyActive);
        };
        tcp.set_read_timeout(Some(settings.timeout))
            .map_err(ProbeError::Socket)?;
        let verdict = Arc::new(Mutex::new(None));
        let config = recording_config(settings.roots.clone(), &verdict)?;
        let connection = ClientConnection::new(Arc::new(config), target.tls_name.clone())
            .map_err(ProbeError::Tls)?;
        let mut stream = StreamOwned::new(connection, tcp);
        let mut rounds = 0;
        while stream.conn.is_handshaking() {
            rounds += 1;
            if rounds > MAX_HANDSHAKE_ROUNDS {
                return Err(ProbeError::HandshakeUnfinished);
            }
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(handshake_error)?;
        }
        let version = crate::tls::version_name(&stream.conn).unwrap_or("TLS");
        let recorded = verdict.lock().take();
        let certificate = match recorded {
            Some(result) => cert_verdict(&result, target.checked_name.as_deref()),
            None => CertVerdict::Invalid("the server sent no certificate".into()),
        };
        let conn = ProbeConnection {
            stream: ClientStream::Tls(Box::new(stream)),
            replies: ReplyReader::new(),
        };
        Ok((conn, version, certificate))
    }
}

fn handshake_error(e: io::Error) -> ProbeError {
    if is_timeout(&e) {
        ProbeError::HandshakeTimeout
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        ProbeError::HandshakeClosed
    } else {
        ProbeError::Handshake(e)
    }
}

/// The start of `bytes` as printable text.
fn shown(bytes: &[u8]) -> String {
    let line = bytes.split(|&b| b == b'\n').next().unwrap_or(bytes);
    let line = &line[..line.len().min(MAX_SHOWN_BYTES)];
    String::from_utf8_lossy(line)
        .trim_end_matches('\r')
        .chars()
        .map(|c| if c.is_control() { '.' } else { c })
        .collect()
}

/// Turns the webpki result into a verdict. The chain is checked before the
/// name, so a name mismatch means the chain itself is trusted; with no name
/// to check, that counts as trusted.
pub fn cert_verdict(result: &Result<(), rustls::Error>, checked_name: Option<&str>) -> CertVerdict {
    let error = match result {
        Ok(()) => {
            return CertVerdict::Trusted {
                name: checked_name.map(str::to_string),
            }
        }
        Err(rustls::Error::InvalidCertificate(error)) => error,
        Err(other) => return CertVerdict::Invalid(other.to_string()),
    };
    match (error, checked_name) {
        (CertificateError::UnknownIssuer, _) => CertVerdict::UnknownIssuer,
        (CertificateError::Expired | CertificateError::ExpiredContext { .. }, _) => {
            CertVerdict::Expired
        }
        (CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. }, _) => {
            CertVerdict::NotYetValid
        }
        (
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            None,
        ) => CertVerdict::Trusted { name: None },
        (CertificateError::NotValidForName, Some(name)) => CertVerdict::WrongName {
            name: name.to_string(),
            presented: Vec::new(),
        },
        (CertificateError::NotValidForNameContext { presented, .. }, Some(name)) => {
            CertVerdict::WrongName {
                name: name.to_string(),
                presented: presented.clone(),
            }
        }
        (other, _) => {
            CertVerdict::Invalid(rustls::Error::InvalidCertificate(other.clone()).to_string())
        }
    }
}

/// Builds a client configuration whose verifier records webpki's verdict
/// in `verdict` and accepts the certificate, so the session goes on and
/// everything else can be reported.
fn recording_config(
    roots: Arc<RootCertStore>,
    verdict: &Arc<Mutex<Option<Result<(), rustls::Error>>>>,
) -> Result<ClientConfig, ProbeError> {
    let verdict = verdict.clone();
    let record: VerdictSink = Box::new(move |_, result| {
        *verdict.lock() = Some(result);
    });
    client_config(roots, CertCheck::Observe(record)).map_err(ProbeError::Tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_not_smtp_is_shown_as_printable_text() {
        assert_eq!(shown(b"SSH-2.0-OpenSSH_9.6\r\nmore"), "SSH-2.0-OpenSSH_9.6");
        assert_eq!(shown(b"\x16\x03\x01"), "...");
        assert_eq!(shown(&[b'x'; 200]).len(), MAX_SHOWN_BYTES);
    }

    #[test]
    fn verdicts_from_webpki_errors() {
        let bad = |e: CertificateError| Err(rustls::Error::InvalidCertificate(e));
        assert_eq!(
            cert_verdict(&Ok(()), Some("mx.test")),
            CertVerdict::Trusted {
                name: Some("mx.test".into())
            }
        );
        assert_eq!(
            cert_verdict(&bad(CertificateError::UnknownIssuer), Some("mx.test")),
            CertVerdict::UnknownIssuer
        );
        assert_eq!(
            cert_verdict(&bad(CertificateError::Expired), None),
            CertVerdict::Expired
        );
        assert_eq!(
            cert_verdict(&bad(CertificateError::NotValidForName), None),
            CertVerdict::Trusted { name: None }
        );
        assert_eq!(
            cert_verdict(&bad(CertificateError::NotValidForName), Some("a.test")),
            CertVerdict::WrongName {
                name: "a.test".into(),
                presented: Vec::new()
            }
        );
        assert!(matches!(
            cert_verdict(&bad(CertificateError::BadSignature), None),
            CertVerdict::Invalid(_)
        ));
    }
}
