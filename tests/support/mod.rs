//! Helpers for integration tests: a temporary data directory, a real
//! server on 127.0.0.1 port-0 listeners with a self-signed certificate and
//! chosen users, a raw-socket client that reads whole replies (plain or
//! TLS), and a rustls client configuration that trusts the test certificate.
//!
//! Also `FakeMx` (in `fake_mx.rs`), a scripted receiving SMTP server for
//! tests of the outbound side.
//!
//! Use from a test file with `mod support;` and `use support::*;`.
#![allow(dead_code)]

pub mod fake_mx;
pub mod serve;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost::config::Config;
use outpost::runtime::{Server, ServerHandle};

/// The test server's host name and only local domain.
pub const HOSTNAME: &str = "mx.test";
/// Where `postmaster@` [`HOSTNAME`] goes when the test server has no users
/// (`--postmaster`).
pub const POSTMASTER: &str = "ops@example.net";

/// How long a raw client waits for a reply before the test fails.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A fresh, empty directory under the system temp dir.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("outpost-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration for a test server in `data_dir`: one port-0 listener per
/// role on 127.0.0.1, host and local domain [`HOSTNAME`], `--postmaster`
/// [`POSTMASTER`], loopback trusted (the default), two workers, short grace
/// period.
pub fn test_config(data_dir: &Path) -> Config {
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Config {
        smtp: vec![any_port],
        submission: vec![any_port],
        submissions: vec![any_port],
        hostname: HOSTNAME.to_string(),
        data_dir: data_dir.to_path_buf(),
        local_domains: vec![HOSTNAME.to_string()],
        // Most tests send to postmaster@mx.test: it reaches a mailbox even
        // on a server started without users.
        postmaster: Some(POSTMASTER.to_string()),
        workers: 2,
        shutdown_grace: Duration::from_secs(1),
        // Accept-path tests inspect the queue; delivery tests turn it on
        // with a loopback DNS server.
        deliver: false,
        ..Config::default()
    }
}

/// A running server with its data directory.
pub struct TestServer {
    handle: Option<ServerHandle>,
    /// The PEM of the server's self-signed certificate.
    pub cert_pem: Vec<u8>,
    dir: TempDir,
}

impl TestServer {
    /// A server with `users` (address, password) and the defaults of
    /// [`test_config`].
    pub fn start(users: &[(&str, &str)]) -> TestServer {
        TestServer::start_with(users, |_| {})
    }

    /// Like [`TestServer::start`], with `adjust` changing the configuration.
    pub fn start_with(users: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> TestServer {
        // `RUST_LOG=info cargo test -- --nocapture` shows the server's log.
        let _ = env_logger::builder().is_test(true).try_init();
        let dir = TempDir::new("server");
        let mut users_file = String::new();
        for (address, password) in users {
            users_file.push_str(&format!(
                "{address}:{}\n",
                outpost::auth::hash_password(password)
            ));
        }
        let users_path = dir.path().join("users");
        std::fs::write(&users_path, users_file).unwrap();
        let mut config = test_config(dir.path());
        config.users = Some(users_path);
        adjust(&mut config);
        outpost::cli::first_start::prepare(&config).unwrap();
        let handle = Server::start(config).unwrap();
        let cert_pem = std::fs::read(dir.path().join("tls/cert.pem")).unwrap();
        TestServer {
            handle: Some(handle),
            cert_pem,
            dir,
        }
    }

    /// The server handle.
    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    /// The first smtp (port-25 role) listener.
    pub fn smtp(&self) -> SocketAddr {
        self.handle().smtp_addrs()[0]
    }

    /// The first submission (port-587 role) listener.
    pub fn submission(&self) -> SocketAddr {
        self.handle().submission_addrs()[0]
    }

    /// The first submissions (port-465 role) listener.
    pub fn submissions(&self) -> SocketAddr {
        self.handle().submissions_addrs()[0]
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `.msg` files in the queue, sorted.
    pub fn queued_messages(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(self.dir.path().join("queue")) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "msg"))
            .collect();
        files.sort();
        files
    }

    /// A rustls client configuration trusting this server's certificate.
    pub fn tls_client_config(&self) -> Arc<rustls::ClientConfig> {
        tls_client_config(&self.cert_pem)
    }

    /// Stops the server gracefully and waits for it.
    pub fn shutdown(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.shutdown();
        }
    }
}

/// A rustls client configuration (ring provider) that trusts `cert_pem`.
pub fn tls_client_config(cert_pem: &[u8]) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    Arc::new(config)
}

/// A TLS stream to the server.
pub type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A line-oriented raw client over a plain or TLS stream.
pub struct Client<S: Read + Write> {
    /// The stream.
    pub stream: S,
    buffer: Vec<u8>,
}

impl Client<TcpStream> {
    /// Connects without reading anything.
    pub fn connect(address: SocketAddr) -> Client<TcpStream> {
        let stream = TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Connects and checks for the 220 greeting.
    pub fn greeted(address: SocketAddr) -> Client<TcpStream> {
        let mut client = Client::connect(address);
        let greeting = client.reply();
        assert!(greeting.starts_with("220 "), "greeting: {greeting:?}");
        client
    }

    /// Wraps the connection in TLS (after a 220 to STARTTLS, or at once on
    /// port 465) and completes the handshake.
    pub fn into_tls(self, config: Arc<rustls::ClientConfig>) -> Client<TlsStream> {
        assert!(
            self.buffer.is_empty(),
            "unread plaintext before TLS: {:?}",
            self.buffer
        );
        let name = rustls::pki_types::ServerName::try_from(HOSTNAME).unwrap();
        let connection = rustls::ClientConnection::new(config, name).unwrap();
        let mut stream = rustls::StreamOwned::new(connection, self.stream);
        while stream.conn.is_handshaking() {
            stream.conn.complete_io(&mut stream.sock).unwrap();
        }
        Client {
            stream,
            buffer: Vec::new(),
        }
    }
}

impl<S: Read + Write> Client<S> {
    /// A client over a connection set up by the caller (e.g. TLS checked
    /// against another name than [`HOSTNAME`]).
    pub fn from_stream(stream: S) -> Client<S> {
        Client {
            stream,
            buffer: Vec::new(),
        }
    }

    /// Sends raw bytes.
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
        self.stream.flush().unwrap();
    }

    /// Sends `line` plus CRLF and returns the reply.
    pub fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    /// Reads one whole reply (all continuation lines), CRLFs kept. Panics
    /// if the connection closes first or nothing comes in time.
    pub fn reply(&mut self) -> String {
        match self.try_reply() {
            Ok(reply) => reply,
            Err(e) => panic!(
                "no reply: {e}; have {:?}",
                String::from_utf8_lossy(&self.buffer)
            ),
        }
    }

    /// Reads one whole reply, or the error (EOF, timeout) that came first.
    pub fn try_reply(&mut self) -> io::Result<String> {
        let mut start = 0;
        loop {
            while let Some(end) = self.buffer[start..].iter().position(|&b| b == b'\n') {
                let line_end = start + end + 1;
                let line = &self.buffer[start..line_end];
                if line.len() < 4 || line[3] != b'-' {
                    let reply: Vec<u8> = self.buffer.drain(..line_end).collect();
                    return Ok(String::from_utf8_lossy(&reply).into_owned());
                }
                start = line_end;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    }

    /// Waits (at most [`READ_TIMEOUT`]) for the server to close, ignoring
    /// further data; returns how long it took.
    pub fn expect_closed(&mut self) -> Duration {
        let started = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            match self.stream.read(&mut chunk) {
                Ok(0) => return started.elapsed(),
                Ok(_) => {}
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    panic!("the server did not close the connection within {READ_TIMEOUT:?}")
                }
                // A reset or a TLS error also means closed.
                Err(_) => return started.elapsed(),
            }
        }
    }

    /// EHLO then AUTH PLAIN with an initial response; returns the AUTH reply.
    pub fn login_plain(&mut self, user: &str, password: &str) -> String {
        use base64::Engine;
        let ehlo = self.command("EHLO client.test");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"));
        self.command(&format!("AUTH PLAIN {token}"))
    }

    /// EHLO, MAIL, RCPT, DATA with `body` (dot-stuffed by the caller, no
    /// final dot), then the 250 reply to the final dot.
    pub fn send_mail(&mut self, from: &str, to: &str, body: &str) -> String {
        let ehlo = self.command("EHLO client.test");
        assert!(ehlo.starts_with("250"), "EHLO: {ehlo}");
        self.transaction(from, to, body)
    }

    /// MAIL and RCPT (after EHLO, and AUTH if needed), both accepted.
    pub fn envelope(&mut self, from: &str, to: &str) {
        let mail = self.command(&format!("MAIL FROM:<{from}>"));
        assert!(mail.starts_with("250"), "MAIL: {mail}");
        let rcpt = self.command(&format!("RCPT TO:<{to}>"));
        assert!(rcpt.starts_with("250"), "RCPT: {rcpt}");
    }

    /// MAIL, RCPT, DATA with `body` (after EHLO, and AUTH if needed), then
    /// the reply to the final dot.
    pub fn transaction(&mut self, from: &str, to: &str, body: &str) -> String {
        self.envelope(from, to);
        let data = self.command("DATA");
        assert!(data.starts_with("354"), "DATA: {data}");
        self.send(body.as_bytes());
        self.command(".")
    }
}

/// Waits until `condition` holds, polling for at most `limit`.
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    condition()
}

/// A loopback listener that never accepts, its accept queue filled by the
/// returned connections: the kernel drops further connection requests, as
/// a firewall that blocks the port does. Keep both while it is needed.
pub fn unanswered_listener() -> (TcpListener, Vec<TcpStream>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while held.len() < 2000 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => held.push(stream),
            Err(_) => return (listener, held),
        }
    }
    panic!("the accept queue of {addr} never filled");
}
