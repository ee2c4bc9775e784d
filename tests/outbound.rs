//! The outbound SMTP driver (`delivery::outbound`) against scripted receiving SMTP servers (`FakeMx`)
//! on loopback: plaintext with PIPELINING, and STARTTLS with a self-signed
//! certificate (accepted in opportunistic mode, refused in verify mode).

mod support;

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use outpost::delivery::outbound::{self, CertPolicy, OutboundError, Peer};
use outpost::proto::client::{
    BodyFacts, Client, ClientParams, Outcome, RecipientParams, SessionEnd, TlsPolicy,
};
use support::fake_mx::{self_signed_tls, FakeMx, MxScript};

const BODY: &[u8] = b"Subject: test\r\n\r\n.leading dot\r\nline two\r\n";

/// A receiver offering PIPELINING, SIZE and 8BITMIME, and STARTTLS with a
/// self-signed certificate for rx.test when `starttls`.
fn receiver(starttls: bool) -> FakeMx {
    let script = MxScript::new().keywords(&["PIPELINING", "SIZE 100000", "8BITMIME"]);
    if starttls {
        script.starttls(self_signed_tls(&["rx.test"])).start()
    } else {
        script.start()
    }
}

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
        body: BodyFacts::of(BODY),
        eight_bit_mime: false,
        smtputf8: false,
        ret: None,
        envid: None,
        tls,
        tls_active: false,
        credentials: None,
    }
}

/// One attempt at `addr` (named rx.test) for the two recipients of [`params`].
fn attempt(
    addr: SocketAddr,
    cert: CertPolicy,
    tls: TlsPolicy,
) -> Result<outbound::Attempt, OutboundError> {
    let config = outbound::tls_config(cert, None).unwrap();
    outbound::run(&peer(addr), Client::new(params(tls)), BODY, &config)
}

/// The receiving server at `addr`, named rx.test, without implicit TLS.
fn peer(addr: SocketAddr) -> Peer {
    Peer {
        addr,
        source: None,
        host: "rx.test".into(),
        implicit_tls: false,
    }
}

/// Every recipient's outcome of `attempt` is `expected`.
fn all_outcomes(attempt: &outbound::Attempt, expected: fn(&Outcome) -> bool) -> bool {
    attempt.report.outcomes.iter().all(expected)
}

#[test]
fn delivers_byte_exact_with_pipelining() {
    let server = receiver(false);
    let attempt = attempt(
        server.addr(),
        CertPolicy::Opportunistic,
        TlsPolicy::Opportunistic,
    )
    .unwrap();
    let log = server.wait_for_sessions(1)[0].transcript.clone();
    assert_eq!(attempt.report.end, SessionEnd::Completed);
    assert!(all_outcomes(&attempt, |o| matches!(
        o,
        Outcome::Delivered(_)
    )));
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
    let server = receiver(true);
    let attempt = attempt(
        server.addr(),
        CertPolicy::Opportunistic,
        TlsPolicy::Opportunistic,
    )
    .unwrap();
    let log = server.wait_for_sessions(1)[0].text();
    assert!(attempt.report.tls);
    assert!(attempt.tls_version.is_some());
    assert!(
        all_outcomes(&attempt, |o| matches!(o, Outcome::Delivered(_))),
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
    let server = receiver(true);
    let attempt = attempt(server.addr(), CertPolicy::Verify, TlsPolicy::Required).unwrap();
    server.wait_for_sessions(1);
    assert_eq!(attempt.report.end, SessionEnd::ConnectionLost);
    assert!(all_outcomes(&attempt, |o| matches!(
        o,
        Outcome::Transient(_)
    )));
}

#[test]
fn refused_connection_is_an_error_for_the_next_address() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let err = attempt(addr, CertPolicy::Opportunistic, TlsPolicy::Opportunistic).unwrap_err();
    assert!(matches!(err, outbound::OutboundError::Connect { .. }));
}

/// Regression: a peer that accepts the connection and never greets used
/// to hold a stopping server for the whole 5-minute greeting timeout
/// (RFC 5321 §4.5.3.2.1); `close_all` now ends the wait at once, and no
/// connection is made after it.
#[test]
fn close_all_ends_a_session_waiting_on_a_silent_peer() {
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let open = Arc::new(outbound::OpenConnections::default());
    let started = std::time::Instant::now();
    let session = session_in_background(silent.local_addr().unwrap(), &open);
    let (_held, _) = silent.accept().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    open.close_all();
    let attempt = session.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(all_outcomes(&attempt, |o| matches!(
        o,
        Outcome::Transient(_)
    )));

    // Once closed, no new connection is made.
    let later = session_in_background(silent.local_addr().unwrap(), &open)
        .join()
        .unwrap();
    assert!(
        matches!(&later, Err(OutboundError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::Interrupted),
        "{later:?}"
    );
}

/// A session with `addr` tracked in `open`, run on its own thread.
fn session_in_background(
    addr: SocketAddr,
    open: &Arc<outbound::OpenConnections>,
) -> JoinHandle<Result<outbound::Attempt, OutboundError>> {
    let peer = peer(addr);
    let tls = outbound::tls_config(CertPolicy::Opportunistic, None).unwrap();
    let open = open.clone();
    std::thread::spawn(move || {
        outbound::run_session(
            &peer,
            params(TlsPolicy::Opportunistic),
            None,
            BODY,
            &tls,
            &open,
        )
        .map(|run| run.attempt)
    })
}

#[test]
fn close_all_ends_a_connect_that_gets_no_answer() {
    let (listener, _held) = support::unanswered_listener();
    let open = Arc::new(outbound::OpenConnections::default());
    let session = session_in_background(listener.local_addr().unwrap(), &open);
    std::thread::sleep(Duration::from_millis(300));
    let closed = std::time::Instant::now();
    open.close_all();
    let result = session.join().unwrap();
    assert!(closed.elapsed() < Duration::from_secs(5));
    assert!(
        matches!(&result, Err(OutboundError::Connect { source, .. })
            if source.kind() == std::io::ErrorKind::Interrupted),
        "{result:?}"
    );
}
