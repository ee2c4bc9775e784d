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
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::ServerName;
use rustls::{CertificateError, ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::net::is_timeout;
use crate::proto::client::{Extensions, MAX_REPLY_LINE, MAX_REPLY_LINES};
use crate::tls::{ClientStream, ObservingVerifier, VerdictSink};

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
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The name sent as SNI and checked against the certificate.
    pub tls_name: ServerName<'static>,
    /// The name whose match is reported; `None` when the name is not
    /// checked (an IP address without `--sni`).
    pub checked_name: Option<String>,
}

/// An SMTP reply as read: its code and its text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The three-digit code.
    pub code: u16,
    /// The text of each line, without code and separator.
    pub lines: Vec<String>,
}

impl Reply {
    /// The first line's text (for a greeting: the server's name and banner).
    pub fn first_line(&self) -> &str {
        self.lines.first().map_or("", String::as_str)
    }
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1.2` or `TLSv1.3`.
    pub version: &'static str,
    /// The certificate check.
    pub certificate: CertVerdict,
    /// The EHLO reply inside TLS, or why there was none.
    pub ehlo: Result<Extensions, String>,
}

/// A plaintext SMTP session (a 220 greeting came in the clear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlainSession {
    /// The greeting.
    pub greeting: Reply,
    /// The EHLO reply before TLS, or why there was none.
    pub ehlo: Result<Extensions, String>,
    /// The STARTTLS attempt: `None` when not offered (or not tried).
    pub starttls: Option<Result<TlsSession, String>>,
}

/// What a port turned out to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
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
        tls_error: String,
    },
    /// The first bytes were not SMTP and TLS did not work.
    NotSmtp {
        /// The start of what the port sent.
        first_line: String,
        /// What went wrong with the TLS attempt.
        tls_error: String,
    },
}

/// One connection attempt to a port-25 host for `--outbound`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Greeting {
    /// A greeting arrived.
    Received(Reply),
    /// No connection.
    Unreachable(ConnectError),
    /// Connected, but no greeting: the text says what happened instead.
    Missing(String),
}

/// Finds out what `target` speaks.
pub fn probe_port(target: &Target, settings: &Settings) -> PortOutcome {
    let mut conn = match Conn::connect(target.addr, settings.timeout) {
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
    let mut conn = match Conn::connect(addr, timeout) {
        Ok(conn) => conn,
        Err(e) => return Greeting::Unreachable(e),
    };
    match conn.read_reply(timeout) {
        Ok(reply) => {
            conn.quit(timeout);
            Greeting::Received(reply)
        }
        Err(e) => Greeting::Missing(e.to_string()),
    }
}

/// EHLO, STARTTLS when offered, EHLO again, QUIT.
fn plaintext_session(
    mut conn: Conn,
    greeting: Reply,
    target: &Target,
    settings: &Settings,
) -> PlainSession {
    if greeting.code != 220 {
        return PlainSession {
            greeting,
            ehlo: Err("not sent: the greeting was not 220".into()),
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
fn implicit_tls(target: &Target, settings: &Settings) -> Result<PortOutcome, String> {
    let conn = Conn::connect(target.addr, settings.timeout).map_err(|e| match e {
        ConnectError::Refused => "connection refused".to_string(),
        ConnectError::TimedOut => "connection timed out".to_string(),
        ConnectError::Other(e) => e,
    })?;
    let (mut conn, version, certificate) = conn.start_tls(target, settings)?;
    let greeting = conn
        .read_reply(settings.timeout)
        .map_err(|e| format!("the TLS handshake worked ({version}), but then: {e}"))?;
    let ehlo = if greeting.code == 220 {
        let ehlo = conn.ehlo(settings);
        conn.quit(settings.timeout);
        ehlo
    } else {
        Err("not sent: the greeting was not 220".into())
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
enum ReadError {
    /// Nothing arrived in time.
    Silent,
    /// The peer closed the connection.
    Closed,
    /// What arrived is not an SMTP reply; the start of it.
    NotSmtp(String),
    /// A socket or TLS error.
    Io(String),
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
struct Conn {
    stream: ClientStream,
    buffer: Vec<u8>,
}

impl Conn {
    fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, ConnectError> {
        let tcp = TcpStream::connect_timeout(&addr, timeout).map_err(|e| match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused,
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectError::TimedOut,
            _ => ConnectError::Other(e.to_string()),
        })?;
        tcp.set_write_timeout(Some(timeout))
            .map_err(|e| ConnectError::Other(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        Ok(Conn {
            stream: ClientStream::Plain(tcp),
            buffer: Vec::new(),
        })
    }

    /// Reads one whole reply, waiting at most `wait` for each chunk.
    fn read_reply(&mut self, wait: Duration) -> Result<Reply, ReadError> {
        self.stream
            .tcp()
            .set_read_timeout(Some(wait))
            .map_err(|e| ReadError::Io(e.to_string()))?;
        loop {
            if let Some(reply) = take_reply(&mut self.buffer).map_err(ReadError::NotSmtp)? {
                return Ok(reply);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) if self.buffer.is_empty() => return Err(ReadError::Closed),
                Ok(0) => return Err(ReadError::NotSmtp(shown(&self.buffer))),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) if is_timeout(&e) && self.buffer.is_empty() => {
                    return Err(ReadError::Silent)
                }
                Err(e) if is_timeout(&e) => return Err(ReadError::NotSmtp(shown(&self.buffer))),
                Err(e) => return Err(ReadError::Io(e.to_string())),
            }
        }
    }

    /// Sends `line` and CRLF, then reads the reply.
    fn command(&mut self, line: &str, timeout: Duration) -> Result<Reply, ReadError> {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .and_then(|()| self.stream.flush())
            .map_err(|e| ReadError::Io(e.to_string()))?;
        self.read_reply(timeout)
    }

    fn ehlo(&mut self, settings: &Settings) -> Result<Extensions, String> {
        let reply = self
            .command(&format!("EHLO {}", settings.ehlo_name), settings.timeout)
            .map_err(|e| e.to_string())?;
        if reply.code != 250 {
            return Err(format!("{} {}", reply.code, reply.lines.join(" ")));
        }
        Ok(Extensions::parse(
            reply.lines.iter().skip(1).map(String::as_str),
        ))
    }

    fn quit(&mut self, timeout: Duration) {
        // The session is over either way; a failed QUIT changes no finding.
        let _ = self.command("QUIT", timeout);
    }

    /// STARTTLS, the handshake, EHLO inside TLS, QUIT.
    fn starttls(mut self, target: &Target, settings: &Settings) -> Result<TlsSession, String> {
        let reply = self
            .command("STARTTLS", settings.timeout)
            .map_err(|e| e.to_string())?;
        if reply.code != 220 {
            return Err(format!(
                "STARTTLS answered {} {}",
                reply.code,
                reply.lines.join(" ")
            ));
        }
        if !self.buffer.is_empty() {
            return Err("the server sent data after its STARTTLS reply".into());
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
        target: &Target,
        settings: &Settings,
    ) -> Result<(Conn, &'static str, CertVerdict), String> {
        let ClientStream::Plain(tcp) = self.stream else {
            return Err("TLS is already active".into());
        };
        tcp.set_read_timeout(Some(settings.timeout))
            .map_err(|e| e.to_string())?;
        let verdict = Arc::new(Mutex::new(None));
        let config = recording_config(settings.roots.clone(), &verdict)?;
        let connection = ClientConnection::new(Arc::new(config), target.tls_name.clone())
            .map_err(|e| e.to_string())?;
        let mut stream = StreamOwned::new(connection, tcp);
        let mut rounds = 0;
        while stream.conn.is_handshaking() {
            rounds += 1;
            if rounds > MAX_HANDSHAKE_ROUNDS {
                return Err("the TLS handshake did not finish".into());
            }
            stream
                .conn
                .complete_io(&mut stream.sock)
                .map_err(|e| handshake_error(&e))?;
        }
        let version = crate::tls::version_name(&stream.conn).unwrap_or("TLS");
        let recorded = verdict.lock().take();
        let certificate = match recorded {
            Some(result) => cert_verdict(&result, target.checked_name.as_deref()),
            None => CertVerdict::Invalid("the server sent no certificate".into()),
        };
        let conn = Conn {
            stream: ClientStream::Tls(Box::new(stream)),
            buffer: Vec::new(),
        };
        Ok((conn, version, certificate))
    }
}

fn handshake_error(e: &io::Error) -> String {
    if is_timeout(e) {
        "no TLS handshake in time (the server did not answer the ClientHello)".into()
    } else if e.kind() == io::ErrorKind::UnexpectedEof {
        "the server closed the connection during the TLS handshake".into()
    } else {
        format!("TLS handshake failed: {e}")
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

/// Takes one complete reply from the front of `buffer`: `Ok(None)` when
/// more bytes are needed, `Err` with the offending text when the bytes are
/// not an SMTP reply (RFC 5321 §4.2: three digits, then `-` on every line
/// but the last).
fn take_reply(buffer: &mut Vec<u8>) -> Result<Option<Reply>, String> {
    let mut start = 0;
    let mut code = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buffer[start..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            // A reply line starts with three digits; anything else can be
            // told apart as soon as its first bytes arrive.
            let may_be_reply = rest.iter().take(3).all(u8::is_ascii_digit);
            if rest.len() > MAX_REPLY_LINE || !may_be_reply {
                return Err(shown(rest));
            }
            return Ok(None);
        };
        let line = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
        let digits = line.get(..3).filter(|d| d.iter().all(u8::is_ascii_digit));
        let last = match line.get(3) {
            None | Some(b' ') => true,
            Some(b'-') => false,
            Some(_) => return Err(shown(line)),
        };
        let Some(digits) = digits else {
            return Err(shown(line));
        };
        let this_code = digits
            .iter()
            .fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
        if *code.get_or_insert(this_code) != this_code || lines.len() >= MAX_REPLY_LINES {
            return Err(shown(line));
        }
        lines.push(String::from_utf8_lossy(line.get(4..).unwrap_or(b"")).into_owned());
        start += end + 1;
        if last {
            buffer.drain(..start);
            return Ok(Some(Reply {
                code: this_code,
                lines,
            }));
        }
    }
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
) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let verdict = verdict.clone();
    let record: VerdictSink = Box::new(move |_, result| {
        *verdict.lock() = Some(result);
    });
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ObservingVerifier::new(webpki, record)))
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(bytes: &[u8]) -> (Result<Option<Reply>, String>, Vec<u8>) {
        let mut buffer = bytes.to_vec();
        let result = take_reply(&mut buffer);
        (result, buffer)
    }

    #[test]
    fn takes_whole_replies_only() {
        let (reply, rest) = take(b"250-mx.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n221 x");
        let reply = reply.unwrap().unwrap();
        assert_eq!(reply.code, 250);
        assert_eq!(reply.lines, ["mx.test", "STARTTLS", "AUTH PLAIN"]);
        assert_eq!(rest, b"221 x");
        assert_eq!(take(b"220-mx.test\r\n220 ESMTP").0, Ok(None));
        assert_eq!(take(b"22").0, Ok(None));
        assert_eq!(take(b"").0, Ok(None));
        assert_eq!(take(b"220\r\n").0.unwrap().unwrap().lines, [""]);
    }

    #[test]
    fn other_protocols_are_not_smtp() {
        assert_eq!(
            take(b"SSH-2.0-OpenSSH_9.6\r\n").0,
            Err("SSH-2.0-OpenSSH_9.6".into())
        );
        assert_eq!(take(b"\x16\x03\x01").0, Err("...".into()));
        assert!(take(b"HTTP/1.1 400").0.is_err());
        assert!(take(b"250-a\r\n550 b\r\n").0.is_err());
        assert!(take(b"220x\r\n").0.is_err());
        assert!(take(&[b'2'; MAX_REPLY_LINE + 10]).0.is_err());
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
