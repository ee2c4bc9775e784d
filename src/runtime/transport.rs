//! The layer between a connection's socket and its buffers: bytes as they
//! come ([`Transport::Plain`]) or through rustls ([`Transport::Tls`], on the
//! implicit-TLS port or after STARTTLS). Reading fills the input buffer up
//! to [`MAX_INPUT`]; flushing moves the output buffer into the socket as far
//! as the socket takes it; [`Transport::upgrade`] starts a server handshake;
//! [`Transport::close_notify`] ends TLS politely. This is the only file
//! that does the server's rustls I/O.
//!
//! Nothing here blocks: the socket is non-blocking and "would block" ends a
//! read or a flush. The socket is any `Read + Write`, so the tests use
//! socket pairs.
//!
//! May import: `limits` (buffer sizes), rustls and std; no other runtime
//! file.

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{InvalidMessage, ServerConfig, ServerConnection};

use super::limits::{MAX_INPUT, MAX_OUTPUT, READ_CHUNK};

/// How a connection's bytes travel.
pub(crate) enum Transport {
    /// Plaintext: the socket's bytes are the protocol's.
    Plain,
    /// rustls decrypts what is read and encrypts what is flushed.
    Tls(Box<ServerConnection>),
}

/// How a read ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// The socket is still open; `drained` when it had nothing more to
    /// give (rather than the input buffer being full).
    Open {
        /// The socket would block: nothing more until a readiness event.
        drained: bool,
    },
    /// The client closed its side (or, over TLS, sent close_notify).
    Eof,
    /// A socket or TLS error; the text says what, in plain words.
    Failed(String),
    /// What arrived where a TLS record was due is not TLS (often plaintext
    /// SMTP on the implicit-TLS port).
    NotTls,
}

thread_local! {
    /// Each loop thread's read buffer: bytes land here and only what arrived
    /// is copied into the connection's input, instead of zeroing a whole
    /// chunk of the input for every read.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_CHUNK].into_boxed_slice());
}

impl Transport {
    /// Starts a server handshake with `config`: from now on every byte read
    /// or flushed goes through rustls, starting with `early`, TLS bytes
    /// already read from the socket.
    pub fn upgrade(
        &mut self,
        config: &Arc<ServerConfig>,
        early: &[u8],
    ) -> Result<(), rustls::Error> {
        let mut tls = ServerConnection::new(Arc::clone(config))?;
        // A client that does not read cannot make rustls buffer without end.
        tls.set_buffer_limit(Some(MAX_OUTPUT));
        // TLS bytes read before the upgrade (behind a PROXY header).
        let mut early = early;
        while !early.is_empty() {
            match tls.read_tls(&mut early) {
                Ok(0) => break,
                Ok(_) => {
                    tls.process_new_packets()?;
                }
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
        }
        *self = Transport::Tls(Box::new(tls));
        Ok(())
    }

    /// TLS is on (the handshake may still be running).
    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// The negotiated version (`TLSv1.2`, `TLSv1.3`) once the handshake has
    /// finished; `None` while it runs and in plaintext.
    pub fn established(&self) -> Option<&'static str> {
        match self {
            Transport::Tls(tls) if !tls.is_handshaking() => {
                Some(crate::tls::version_name(tls).unwrap_or("TLS"))
            }
            _ => None,
        }
    }

    /// rustls holds records for the socket (handshake messages, encrypted
    /// replies, alerts).
    pub fn wants_write(&self) -> bool {
        match self {
            Transport::Plain => false,
            Transport::Tls(tls) => tls.wants_write(),
        }
    }

    /// Appends what the client sent to `input` until the socket would block
    /// or `input` holds [`MAX_INPUT`] bytes.
    pub fn read<S: Read + Write>(&mut self, socket: &mut S, input: &mut Vec<u8>) -> ReadOutcome {
        match self {
            Transport::Plain => read_plain(socket, input),
            Transport::Tls(tls) => read_tls(tls, socket, input),
        }
    }

    /// Writes `output` (and whatever rustls has to send) until both are
    /// empty or the socket would block. `Ok(true)` when bytes reached the
    /// socket. Over TLS, replies wait in `output` until the handshake is
    /// done.
    pub fn flush<S: Write>(&mut self, socket: &mut S, output: &mut Vec<u8>) -> io::Result<bool> {
        match self {
            Transport::Plain => flush_plain(socket, output),
            Transport::Tls(tls) => flush_tls(tls, socket, output),
        }
    }

    /// Tells a TLS client that nothing more will come (close_notify), as
    /// far as the socket takes it now: the connection closes next either
    /// way. Nothing in plaintext or before the handshake has finished.
    pub fn close_notify<S: Write>(&mut self, socket: &mut S) {
        if let Transport::Tls(tls) = self {
            if !tls.is_handshaking() {
                tls.send_close_notify();
                let _ = flush_tls(tls, socket, &mut Vec::new());
            }
        }
    }
}

fn read_plain<S: Read>(socket: &mut S, input: &mut Vec<u8>) -> ReadOutcome {
    SCRATCH.with_borrow_mut(|scratch| {
        while input.len() < MAX_INPUT {
            let room = READ_CHUNK.min(MAX_INPUT - input.len());
            match socket.read(&mut scratch[..room]) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => {
                    input.extend_from_slice(&scratch[..n]);
                    // A short read from a TCP socket took all it had; the
                    // next arrival raises a new edge.
                    if n < room {
                        return ReadOutcome::Open { drained: true };
                    }
                }
                Err(e) => match e.kind() {
                    io::ErrorKind::WouldBlock => return ReadOutcome::Open { drained: true },
                    io::ErrorKind::Interrupted => {}
                    _ => return ReadOutcome::Failed(e.to_string()),
                },
            }
        }
        ReadOutcome::Open { drained: false }
    })
}

/// Moves decrypted bytes out of rustls, then feeds it more from the socket,
/// until the socket would block or `input` is full.
fn read_tls<S: Read + Write>(
    tls: &mut ServerConnection,
    socket: &mut S,
    input: &mut Vec<u8>,
) -> ReadOutcome {
    loop {
        match drain_plaintext(tls, input) {
            Ok(false) => {}
            Ok(true) => return ReadOutcome::Eof,
            Err(e) => return ReadOutcome::Failed(e.to_string()),
        }
        if input.len() >= MAX_INPUT {
            return ReadOutcome::Open { drained: false };
        }
        match tls.read_tls(socket) {
            Ok(0) => return ReadOutcome::Eof,
            Ok(_) => {
                if let Err(e) = tls.process_new_packets() {
                    // Send the alert rustls prepared, if the socket takes it.
                    let _ = tls.write_tls(socket);
                    if e == rustls::Error::InvalidMessage(InvalidMessage::InvalidContentType) {
                        return ReadOutcome::NotTls;
                    }
                    return ReadOutcome::Failed(format!(
                        "TLS handshake failed: {}",
                        tls_failure(&e)
                    ));
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                return ReadOutcome::Open { drained: true }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return ReadOutcome::Failed(e.to_string()),
        }
    }
}

/// What a TLS error means, in words for the server's operator: the
/// common reasons a client gives up on the handshake (its alert), or why
/// rustls gave up on the client, without rustls's type names.
fn tls_failure(error: &rustls::Error) -> String {
    use rustls::{AlertDescription as Alert, Error, PeerIncompatible as Incompatible};
    let text = match error {
        Error::AlertReceived(Alert::UnknownCA) => {
            "the client does not trust our certificate (unknown CA)"
        }
        Error::AlertReceived(Alert::BadCertificate) => {
            "the client rejected our certificate (bad certificate)"
        }
        Error::AlertReceived(Alert::CertificateExpired) => {
            "the client says our certificate has expired"
        }
        Error::AlertReceived(Alert::CertificateUnknown) => {
            "the client rejected our certificate (certificate unknown: a self-signed \
             certificate, or a name that does not match?)"
        }
        Error::AlertReceived(Alert::ProtocolVersion)
        | Error::PeerIncompatible(
            Incompatible::Tls12NotOffered
            | Incompatible::Tls12NotOfferedOrEnabled
            | Incompatible::SupportedVersionsExtensionRequired
            | Incompatible::ServerDoesNotSupportTls12Or13,
        ) => "no TLS version in common (this server speaks TLS 1.2 and 1.3; an old client?)",
        Error::AlertReceived(Alert::HandshakeFailure)
        | Error::PeerIncompatible(
            Incompatible::NoCipherSuitesInCommon
            | Incompatible::NoKxGroupsInCommon
            | Incompatible::NoSignatureSchemesInCommon,
        ) => "no cipher suite, key exchange or signature scheme in common",
        Error::AlertReceived(alert) => {
            return format!("the client ended the handshake (TLS alert {alert:?})");
        }
        Error::PeerIncompatible(why) => {
            return format!("the client's TLS does not fit ours ({why:?})");
        }
        Error::InvalidMessage(_) | Error::InappropriateMessage { .. } => {
            "the client broke the TLS protocol"
        }
        Error::DecryptError => "a record did not decrypt (a broken client or connection)",
        other => return other.to_string(),
    };
    text.to_string()
}

/// Copies plaintext rustls has decrypted into `input` (up to the limit).
/// Returns true when the client sent close_notify.
fn drain_plaintext(tls: &mut ServerConnection, input: &mut Vec<u8>) -> io::Result<bool> {
    SCRATCH.with_borrow_mut(|scratch| {
        while input.len() < MAX_INPUT {
            let room = READ_CHUNK.min(MAX_INPUT - input.len());
            match tls.reader().read(&mut scratch[..room]) {
                Ok(0) => return Ok(true),
                Ok(n) => input.extend_from_slice(&scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    })
}

fn flush_plain<S: Write>(socket: &mut S, output: &mut Vec<u8>) -> io::Result<bool> {
    let mut progress = false;
    while !output.is_empty() {
        match socket.write(output) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                output.drain(..n);
                progress = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(progress)
}

fn flush_tls<S: Write>(
    tls: &mut ServerConnection,
    socket: &mut S,
    output: &mut Vec<u8>,
) -> io::Result<bool> {
    let mut progress = false;
    loop {
        if !output.is_empty() && !tls.is_handshaking() {
            let taken = tls.writer().write(output)?;
            output.drain(..taken);
        }
        if !tls.wants_write() {
            return Ok(progress);
        }
        match tls.write_tls(socket) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => progress = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(progress),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixStream;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    use super::*;

    /// A connected pair of non-blocking sockets: the server's end and the
    /// client's.
    fn socket_pair() -> (UnixStream, UnixStream) {
        let (server, client) = UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        client.set_nonblocking(true).unwrap();
        (server, client)
    }

    /// Everything the client's end can read now.
    fn read_all(client: &mut UnixStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match client.read(&mut buffer) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return got,
                Err(e) => panic!("{e}"),
            }
        }
    }

    /// A server and a client configuration that trust the same freshly
    /// generated certificate for `mx.test`.
    fn tls_configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let generated = rcgen::generate_simple_self_signed(vec!["mx.test".to_string()]).unwrap();
        let cert = CertificateDer::from(generated.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(generated.signing_key.serialize_der().into());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// A server transport and a rustls client that have finished their
    /// handshake over `server`/`client`.
    fn handshake(
        server: &mut UnixStream,
        client: &mut UnixStream,
    ) -> (Transport, ClientConnection) {
        let (server_config, client_config) = tls_configs();
        let mut transport = Transport::Plain;
        transport.upgrade(&server_config, &[]).unwrap();
        let name = ServerName::try_from("mx.test").unwrap();
        let mut tls_client = ClientConnection::new(client_config, name).unwrap();
        let (mut input, mut output) = (Vec::new(), Vec::new());
        for _ in 0..20 {
            while tls_client.wants_write() {
                tls_client.write_tls(client).unwrap();
            }
            let read = transport.read(server, &mut input);
            assert_eq!(read, ReadOutcome::Open { drained: true });
            transport.flush(server, &mut output).unwrap();
            if tls_client.read_tls(client).is_ok() {
                tls_client.process_new_packets().unwrap();
            }
            if transport.established().is_some() && !tls_client.is_handshaking() {
                assert!(input.is_empty(), "no plaintext during the handshake");
                return (transport, tls_client);
            }
        }
        panic!("the handshake did not finish");
    }

    /// The plaintext the client has received so far, and whether the
    /// server's close_notify came with it.
    fn client_receives(
        tls_client: &mut ClientConnection,
        client: &mut UnixStream,
    ) -> (Vec<u8>, bool) {
        while matches!(tls_client.read_tls(client), Ok(n) if n > 0) {
            tls_client.process_new_packets().unwrap();
        }
        let mut got = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            match tls_client.reader().read(&mut buffer) {
                Ok(0) => return (got, true),
                Ok(n) => got.extend_from_slice(&buffer[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return (got, false),
                Err(e) => panic!("{e}"),
            }
        }
    }

    #[test]
    fn a_plain_read_takes_what_arrived_and_says_the_socket_is_drained() {
        let (mut server, mut client) = socket_pair();
        let mut transport = Transport::Plain;
        let mut input = b"EHLO".to_vec();
        client.write_all(b" a.test\r\n").unwrap();
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: true });
        assert_eq!(input, b"EHLO a.test\r\n");
        // Nothing more has come.
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: true });
        assert_eq!(input.len(), 13);
    }

    #[test]
    fn a_plain_read_stops_at_the_input_limit_and_leaves_the_rest_in_the_socket() {
        let (mut server, mut client) = socket_pair();
        let mut transport = Transport::Plain;
        client.write_all(&vec![b'x'; MAX_INPUT + 100]).unwrap();
        let mut input = Vec::new();
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: false });
        assert_eq!(input.len(), MAX_INPUT);
        input.clear();
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: true });
        assert_eq!(input.len(), 100);
    }

    #[test]
    fn a_plain_read_reports_the_client_closing() {
        let (mut server, mut client) = socket_pair();
        client.write_all(b"QUIT\r\n").unwrap();
        drop(client);
        let mut transport = Transport::Plain;
        let mut input = Vec::new();
        // A short read took all there was; the close is seen by the read
        // after it (the next readiness event's).
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: true });
        assert_eq!(input, b"QUIT\r\n");
        assert_eq!(transport.read(&mut server, &mut input), ReadOutcome::Eof);
    }

    #[test]
    fn a_plain_flush_writes_what_the_socket_takes_and_keeps_the_rest() {
        let (mut server, mut client) = socket_pair();
        let mut transport = Transport::Plain;
        let mut output = b"250 OK\r\n".to_vec();
        assert!(transport.flush(&mut server, &mut output).unwrap());
        assert!(output.is_empty());
        assert_eq!(read_all(&mut client), b"250 OK\r\n");
        // Nothing to write is no progress.
        assert!(!transport.flush(&mut server, &mut output).unwrap());
        // A client that does not read: the socket fills, the rest waits.
        let mut output = vec![b'y'; 4 << 20];
        assert!(transport.flush(&mut server, &mut output).unwrap());
        assert!(!output.is_empty());
        assert!(!transport.flush(&mut server, &mut output).unwrap());
        let waiting = output.len();
        let taken = read_all(&mut client).len();
        assert!(transport.flush(&mut server, &mut output).unwrap());
        assert!(output.len() < waiting && taken > 0);
    }

    #[test]
    fn a_plain_flush_to_a_closed_client_fails() {
        let (mut server, client) = socket_pair();
        drop(client);
        let mut output = b"250 OK\r\n".to_vec();
        assert!(Transport::Plain.flush(&mut server, &mut output).is_err());
    }

    #[test]
    fn over_tls_the_buffers_hold_plaintext_and_close_notify_ends_both_ways() {
        let (mut server, mut client) = socket_pair();
        let (mut transport, mut tls_client) = handshake(&mut server, &mut client);
        assert!(transport.is_tls() && !transport.wants_write());
        assert!(matches!(
            transport.established(),
            Some("TLSv1.2" | "TLSv1.3")
        ));

        tls_client.writer().write_all(b"EHLO a.test\r\n").unwrap();
        tls_client.write_tls(&mut client).unwrap();
        let mut input = Vec::new();
        let read = transport.read(&mut server, &mut input);
        assert_eq!(read, ReadOutcome::Open { drained: true });
        assert_eq!(input, b"EHLO a.test\r\n");

        let mut output = b"250 mx.test\r\n".to_vec();
        assert!(transport.flush(&mut server, &mut output).unwrap());
        assert!(output.is_empty() && !transport.wants_write());
        assert_eq!(
            client_receives(&mut tls_client, &mut client),
            (b"250 mx.test\r\n".to_vec(), false)
        );

        transport.close_notify(&mut server);
        assert_eq!(
            client_receives(&mut tls_client, &mut client),
            (Vec::new(), true)
        );
        tls_client.send_close_notify();
        tls_client.write_tls(&mut client).unwrap();
        assert_eq!(transport.read(&mut server, &mut input), ReadOutcome::Eof);
    }

    #[test]
    fn replies_wait_for_the_handshake() {
        let (mut server, mut client) = socket_pair();
        let (server_config, _) = tls_configs();
        let mut transport = Transport::Plain;
        transport.upgrade(&server_config, &[]).unwrap();
        assert!(transport.is_tls() && transport.established().is_none());
        let mut output = b"220 too early\r\n".to_vec();
        assert!(!transport.flush(&mut server, &mut output).unwrap());
        assert_eq!(output, b"220 too early\r\n");
        assert!(read_all(&mut client).is_empty());
        // close_notify before the handshake sends nothing either.
        transport.close_notify(&mut server);
        assert!(read_all(&mut client).is_empty());
    }

    #[test]
    fn plaintext_on_a_tls_transport_fails_with_an_alert() {
        let (mut server, mut client) = socket_pair();
        let (server_config, _) = tls_configs();
        let mut transport = Transport::Plain;
        transport.upgrade(&server_config, &[]).unwrap();
        client.write_all(b"EHLO a.test\r\n").unwrap();
        let mut input = Vec::new();
        // The connection's log tells plaintext clients by it.
        assert_eq!(transport.read(&mut server, &mut input), ReadOutcome::NotTls);
        assert!(input.is_empty());
        // The alert record (content type 21) went to the client.
        assert_eq!(read_all(&mut client).first(), Some(&21));
    }

    #[test]
    fn tls_failures_in_plain_words() {
        use rustls::{AlertDescription as Alert, Error, PeerIncompatible};
        let table = [
            (
                Error::AlertReceived(Alert::UnknownCA),
                "the client does not trust our certificate (unknown CA)",
            ),
            (
                Error::PeerIncompatible(PeerIncompatible::Tls12NotOffered),
                "no TLS version in common (this server speaks TLS 1.2 and 1.3; an old client?)",
            ),
            (
                Error::AlertReceived(Alert::DecodeError),
                "the client ended the handshake (TLS alert DecodeError)",
            ),
        ];
        for (error, want) in table {
            assert_eq!(tls_failure(&error), want);
        }
    }
}
