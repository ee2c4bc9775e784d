//! The transport driver against tiny receiving SMTP servers started here on
//! loopback: plaintext with PIPELINING, and STARTTLS with a self-signed
//! certificate (accepted in opportunistic mode, refused in verify mode).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use outpost::delivery::transport::{self, CertPolicy, Peer, TransportError};
use outpost::proto::client::{
    Client, ClientParams, Outcome, RecipientParams, SessionEnd, TlsPolicy,
};

const BODY: &[u8] = b"Subject: test\r\n\r\n.leading dot\r\nline two\r\n";

/// A scripted receiver for one connection; returns everything it read.
fn receiver(starttls: Option<Arc<rustls::ServerConfig>>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut log = Vec::new();
        let mut stream: Box<dyn ReadWrite> = Box::new(tcp.try_clone().unwrap());
        stream.write_all(b"220 rx.test ESMTP\r\n").unwrap();
        let mut tls_done = false;
        let mut reader = BufReader::new(stream);
        loop {
            let mut line = Vec::new();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                break;
            }
            log.extend_from_slice(&line);
            let upper = String::from_utf8_lossy(&line).to_ascii_uppercase();
            let w = reader.get_mut();
            if upper.starts_with("EHLO") {
                let tls_line = if starttls.is_some() && !tls_done {
                    "250-STARTTLS\r\n"
                } else {
                    ""
                };
                let text = format!("250-rx.test\r\n{tls_line}250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n");
                w.write_all(text.as_bytes()).unwrap();
            } else if upper.starts_with("STARTTLS") {
                w.write_all(b"220 2.0.0 Ready to start TLS\r\n").unwrap();
                let conn = rustls::ServerConnection::new(starttls.clone().unwrap()).unwrap();
                let sock = tcp.try_clone().unwrap();
                let tls = rustls::StreamOwned::new(conn, sock);
                reader = BufReader::new(Box::new(tls));
                tls_done = true;
            } else if upper.starts_with("MAIL") || upper.starts_with("RCPT") {
                w.write_all(b"250 2.1.0 Ok\r\n").unwrap();
            } else if upper.starts_with("DATA") {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .unwrap();
                loop {
                    let mut data = Vec::new();
                    reader.read_until(b'\n', &mut data).unwrap();
                    log.extend_from_slice(&data);
                    if data == b".\r\n" || data.is_empty() {
                        break;
                    }
                }
                reader
                    .get_mut()
                    .write_all(b"250 2.0.0 Ok: queued as X\r\n")
                    .unwrap();
            } else if upper.starts_with("QUIT") {
                let _ = w.write_all(b"221 2.0.0 Bye\r\n");
                break;
            } else {
                w.write_all(b"500 5.5.1 What?\r\n").unwrap();
            }
        }
        log
    });
    (addr, handle)
}

trait ReadWrite: Read + Write + Send {}
impl<T: Read + Write + Send> ReadWrite for T {}

fn params(tls: TlsPolicy) -> ClientParams {
    ClientParams {
        hostname: "out.test".into(),
        sender: "alice@out.test".into(),
        recipients: vec![
            RecipientParams {
                address: "bob@rx.test".into(),
                notify: None,
                orcpt: None,
            },
            RecipientParams {
                address: "carol@rx.test".into(),
                notify: None,
                orcpt: None,
            },
        ],
        body: BODY.into(),
        eight_bit_mime: false,
        smtputf8: false,
        ret: None,
        envid: None,
        tls,
        tls_active: false,
        credentials: None,
    }
}

fn server_tls() -> Arc<rustls::ServerConfig> {
    let key = rcgen::generate_simple_self_signed(vec!["rx.test".to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], private)
            .unwrap(),
    )
}

#[test]
fn delivers_byte_exact_with_pipelining() {
    let (addr, server) = receiver(None);
    let tls = transport::tls_config(CertPolicy::Opportunistic, None).unwrap();
    let peer = Peer {
        addr,
        host: "rx.test".into(),
        implicit_tls: false,
    };
    let attempt =
        transport::run(&peer, Client::new(params(TlsPolicy::Opportunistic)), &tls).unwrap();
    let log = server.join().unwrap();
    assert_eq!(attempt.report.end, SessionEnd::Completed);
    assert!(attempt
        .report
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Delivered(_))));
    assert_eq!(attempt.tls_version, None);
    let expected =
        b"EHLO out.test\r\nMAIL FROM:<alice@out.test> SIZE=41\r\nRCPT TO:<bob@rx.test>\r\n\
RCPT TO:<carol@rx.test>\r\nDATA\r\nSubject: test\r\n\r\n..leading dot\r\nline two\r\n.\r\nQUIT\r\n";
    assert_eq!(
        String::from_utf8_lossy(&log),
        String::from_utf8_lossy(expected)
    );
}

#[test]
fn uses_starttls_when_offered() {
    let (addr, server) = receiver(Some(server_tls()));
    let tls = transport::tls_config(CertPolicy::Opportunistic, None).unwrap();
    let peer = Peer {
        addr,
        host: "rx.test".into(),
        implicit_tls: false,
    };
    let attempt =
        transport::run(&peer, Client::new(params(TlsPolicy::Opportunistic)), &tls).unwrap();
    let log = String::from_utf8(server.join().unwrap()).unwrap();
    assert!(attempt.report.tls);
    assert!(attempt.tls_version.is_some());
    assert!(
        attempt
            .report
            .outcomes
            .iter()
            .all(|o| matches!(o, Outcome::Delivered(_))),
        "{:?}",
        attempt.report
    );
    assert!(
        log.starts_with("EHLO out.test\r\nSTARTTLS\r\nEHLO out.test\r\nMAIL FROM:"),
        "{log}"
    );
}

#[test]
fn verify_mode_refuses_a_self_signed_certificate() {
    let (addr, server) = receiver(Some(server_tls()));
    let tls = transport::tls_config(CertPolicy::Verify, None).unwrap();
    let peer = Peer {
        addr,
        host: "rx.test".into(),
        implicit_tls: false,
    };
    let attempt = transport::run(&peer, Client::new(params(TlsPolicy::Required)), &tls).unwrap();
    let _ = server.join();
    assert_eq!(attempt.report.end, SessionEnd::ConnectionLost);
    assert!(attempt
        .report
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Transient(_))));
}

#[test]
fn refused_connection_is_an_error_for_the_next_address() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let tls = transport::tls_config(CertPolicy::Opportunistic, None).unwrap();
    let peer = Peer {
        addr,
        host: "rx.test".into(),
        implicit_tls: false,
    };
    let err =
        transport::run(&peer, Client::new(params(TlsPolicy::Opportunistic)), &tls).unwrap_err();
    assert!(matches!(err, transport::TransportError::Connect { .. }));
}

/// Regression: a peer that accepts the connection and never greets used
/// to hold a stopping server for the whole 5-minute greeting timeout
/// (RFC 5321 §4.5.3.2.1); `close_all` now ends the wait at once, and no
/// connection is made after it.
#[test]
fn close_all_ends_a_session_waiting_on_a_silent_peer() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = Arc::new(transport::OpenConnections::default());
    let started = std::time::Instant::now();
    let session = session_in_background(silent.local_addr().unwrap(), &open);
    let (_held, _) = silent.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    open.close_all();
    let attempt = session.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(attempt
        .report
        .outcomes
        .iter()
        .all(|o| matches!(o, Outcome::Transient(_))));

    // Once closed, no new connection is made.
    let later = session_in_background(silent.local_addr().unwrap(), &open)
        .join()
        .unwrap();
    assert!(
        matches!(&later, Err(TransportError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::Interrupted),
        "{later:?}"
    );
}

/// A session with `addr` tracked in `open`, run on its own thread.
fn session_in_background(
    addr: SocketAddr,
    open: &Arc<transport::OpenConnections>,
) -> JoinHandle<Result<transport::Attempt, TransportError>> {
    let peer = Peer {
        addr,
        host: "rx.test".into(),
        implicit_tls: false,
    };
    let tls = transport::tls_config(CertPolicy::Opportunistic, None).unwrap();
    let open = open.clone();
    std::thread::spawn(move || {
        transport::run_tracked(
            &peer,
            Client::new(params(TlsPolicy::Opportunistic)),
            &tls,
            &open,
        )
    })
}

#[test]
fn close_all_ends_a_connect_that_gets_no_answer() {
    let (listener, _held) = support::unanswered_listener();
    let open = Arc::new(transport::OpenConnections::default());
    let session = session_in_background(listener.local_addr().unwrap(), &open);
    std::thread::sleep(Duration::from_millis(300));
    let closed = std::time::Instant::now();
    open.close_all();
    let result = session.join().unwrap();
    assert!(closed.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&result, Err(TransportError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::Interrupted),
        "{result:?}"
    );
}
