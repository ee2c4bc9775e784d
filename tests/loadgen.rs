//! Runs the load generator against a tiny SMTP sink started inside the test on
//! 127.0.0.1:0: a hand-written test double that answers 220/250/354/250/221,
//! optionally with STARTTLS (rustls, throwaway certificate) and AUTH PLAIN, and
//! records the unstuffed size of every message it receives.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use outpost::loadgen::{self, Options, Parsed};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// No test conversation may take longer than this.
const LIMIT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct SinkLog {
    connections: AtomicUsize,
    /// Unstuffed size of each accepted message.
    sizes: Mutex<Vec<usize>>,
    /// Whether MAIL, RCPT and DATA of some transaction arrived in one read.
    saw_pipelined_group: AtomicBool,
    auth_ok: AtomicUsize,
    tls_sessions: AtomicUsize,
    /// Protocol violations by the client.
    errors: Mutex<Vec<String>>,
}

struct Sink {
    addr: String,
    log: Arc<SinkLog>,
    stop: Arc<AtomicBool>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

#[derive(Clone, Default)]
struct SinkConfig {
    pipelining: bool,
    tls: Option<Arc<ServerConfig>>,
    /// base64 of "\0user\0pass" that AUTH PLAIN must carry.
    auth_token: Option<String>,
    /// Reply to RCPT with this instead of 250.
    rcpt_reply: Option<&'static str>,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ServerConnection, TcpStream>>),
}

impl Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes),
            Stream::Tls(s) => {
                s.write_all(bytes)?;
                s.flush()
            }
        }
    }
}

fn start_sink(config: SinkConfig) -> Sink {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log = Arc::new(SinkLog::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (log2, stop2) = (log.clone(), stop.clone());
    thread::spawn(move || {
        let end = Instant::now() + LIMIT;
        // Bounded in time; polls because a blocking accept could not see `stop`.
        while Instant::now() < end && !stop2.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((tcp, _)) => {
                    tcp.set_nonblocking(false).unwrap();
                    tcp.set_read_timeout(Some(LIMIT)).unwrap();
                    log2.connections.fetch_add(1, Ordering::Relaxed);
                    let (log3, config) = (log2.clone(), config.clone());
                    thread::spawn(move || {
                        if let Err(e) = serve(Stream::Plain(tcp), &config, &log3) {
                            log3.errors.lock().unwrap().push(e);
                        }
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(2)),
            }
        }
    });
    Sink { addr, log, stop }
}

/// One SMTP conversation, line by line; returns a description of the client's mistake, if any.
fn serve(mut stream: Stream, config: &SinkConfig, log: &SinkLog) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 8192];
    stream
        .send(b"220 sink.test ESMTP\r\n")
        .map_err(|e| e.to_string())?;
    let mut in_data = false;
    let mut message_size = 0usize;
    let mut mail_seen = false;
    // Bounded by the read timeout and by the client closing.
    loop {
        let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
            let n = stream.read(&mut chunk).map_err(|e| e.to_string())?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            continue;
        };
        let line: Vec<u8> = buf.drain(..=lf).collect();
        if !line.ends_with(b"\r\n") {
            return Err(format!("bare LF in {:?}", String::from_utf8_lossy(&line)));
        }
        let text = &line[..line.len() - 2];
        if in_data {
            if text == b"." {
                in_data = false;
                log.sizes.lock().unwrap().push(message_size);
                stream
                    .send(b"250 2.0.0 Ok: queued\r\n")
                    .map_err(|e| e.to_string())?;
            } else {
                // RFC 5321 §4.5.2: the receiver drops one leading dot.
                message_size += line.len() - usize::from(text.starts_with(b"."));
            }
            continue;
        }
        let upper = String::from_utf8_lossy(text).to_ascii_uppercase();
        let reply: Vec<u8> = if upper.starts_with("EHLO ") {
            let mut r = String::from("250-sink.test\r\n");
            if config.pipelining {
                r.push_str("250-PIPELINING\r\n");
            }
            if config.tls.is_some() && matches!(stream, Stream::Plain(_)) {
                r.push_str("250-STARTTLS\r\n");
            }
            if config.auth_token.is_some() {
                r.push_str("250-AUTH LOGIN PLAIN\r\n");
            }
            r.push_str("250 8BITMIME\r\n");
            r.into_bytes()
        } else if upper == "STARTTLS" {
            let (Some(tls), Stream::Plain(mut tcp)) = (config.tls.clone(), stream) else {
                return Err("STARTTLS not offered".into());
            };
            if !buf.is_empty() {
                return Err("client pipelined after STARTTLS".into());
            }
            tcp.write_all(b"220 2.0.0 Ready to start TLS\r\n")
                .map_err(|e| e.to_string())?;
            let conn = ServerConnection::new(tls).map_err(|e| e.to_string())?;
            stream = Stream::Tls(Box::new(StreamOwned::new(conn, tcp)));
            log.tls_sessions.fetch_add(1, Ordering::Relaxed);
            continue;
        } else if let Some(token) = upper.strip_prefix("AUTH PLAIN ") {
            let token = &String::from_utf8_lossy(text)[upper.len() - token.len()..];
            if Some(token) == config.auth_token.as_deref() && matches!(stream, Stream::Tls(_)) {
                log.auth_ok.fetch_add(1, Ordering::Relaxed);
                b"235 2.7.0 Authentication successful\r\n".to_vec()
            } else {
                b"535 5.7.8 Authentication credentials invalid\r\n".to_vec()
            }
        } else if upper.starts_with("MAIL FROM:") {
            mail_seen = true;
            // MAIL, RCPT and DATA already buffered together: the client pipelined.
            if String::from_utf8_lossy(&buf).contains("DATA\r\n") {
                log.saw_pipelined_group.store(true, Ordering::Relaxed);
            }
            b"250 2.1.0 Ok\r\n".to_vec()
        } else if upper.starts_with("RCPT TO:") {
            config
                .rcpt_reply
                .unwrap_or("250 2.1.5 Ok\r\n")
                .as_bytes()
                .to_vec()
        } else if upper == "DATA" {
            if !mail_seen {
                return Err("DATA without MAIL".into());
            }
            mail_seen = false;
            in_data = true;
            message_size = 0;
            b"354 End data with <CR><LF>.<CR><LF>\r\n".to_vec()
        } else if upper == "RSET" {
            mail_seen = false;
            b"250 2.0.0 Ok\r\n".to_vec()
        } else if upper == "QUIT" {
            stream
                .send(b"221 2.0.0 Bye\r\n")
                .map_err(|e| e.to_string())?;
            return Ok(());
        } else {
            return Err(format!("unexpected command {upper:?}"));
        };
        stream.send(&reply).map_err(|e| e.to_string())?;
    }
}

fn opts(args: &str) -> Options {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    match loadgen::options::parse(&args).unwrap() {
        Parsed::Run(o) => *o,
        Parsed::Help(_) => panic!("help"),
    }
}

fn sizes(sink: &Sink) -> Vec<usize> {
    sink.log.sizes.lock().unwrap().clone()
}

fn no_sink_errors(sink: &Sink) {
    assert!(
        sink.log.errors.lock().unwrap().is_empty(),
        "{:?}",
        sink.log.errors.lock().unwrap()
    );
}

#[test]
fn reuse_sends_every_message_over_few_connections() {
    let sink = start_sink(SinkConfig::default());
    let o = opts(&format!(
        "--server {} --sessions 3 --messages 5 --size 4K --duration-limit 20",
        sink.addr
    ));
    let summary = loadgen::run_with(&o).unwrap();
    assert_eq!(
        (summary.sent, summary.failed, summary.not_attempted),
        (15, 0, 0)
    );
    assert_eq!(
        sizes(&sink),
        vec![4096; 15],
        "the sink saw the exact unstuffed size"
    );
    assert_eq!(sink.log.connections.load(Ordering::Relaxed), 3);
    assert!(summary.latency.p50_ms <= summary.latency.p99_ms);
    assert!(summary.latency.p99_ms <= summary.latency.max_ms);
    assert!(summary.msgs_per_sec() > 0.0);
    no_sink_errors(&sink);
}

#[test]
fn no_reuse_opens_a_connection_per_message_and_pipelines() {
    let sink = start_sink(SinkConfig {
        pipelining: true,
        ..SinkConfig::default()
    });
    let o = opts(&format!(
        "--server {} --sessions 2 --messages 4 --size 1K --recipients 3 --no-reuse --pipelining",
        sink.addr
    ));
    let summary = loadgen::run_with(&o).unwrap();
    assert_eq!(summary.sent, 8);
    assert_eq!(sizes(&sink), vec![1024; 8]);
    assert_eq!(sink.log.connections.load(Ordering::Relaxed), 8);
    assert!(sink.log.saw_pipelined_group.load(Ordering::Relaxed));
    assert_eq!((summary.connections, summary.pipelined_connections), (8, 8));
    no_sink_errors(&sink);
}

#[test]
fn pipelining_only_when_offered() {
    let sink = start_sink(SinkConfig::default());
    let o = opts(&format!(
        "--server {} --sessions 1 --messages 3 --pipelining",
        sink.addr
    ));
    let summary = loadgen::run_with(&o).unwrap();
    assert_eq!((summary.sent, summary.pipelined_connections), (3, 0));
    assert!(!sink.log.saw_pipelined_group.load(Ordering::Relaxed));
    no_sink_errors(&sink);
}

#[test]
fn starttls_and_auth() {
    let key = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![key.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der())),
        )
        .unwrap();
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.encode("\0bob\0pa:ss");
    let sink = start_sink(SinkConfig {
        pipelining: true,
        tls: Some(Arc::new(tls)),
        auth_token: Some(token),
        rcpt_reply: None,
    });
    let base = format!(
        "--server {} --sessions 2 --messages 3 --size 64K --starttls",
        sink.addr
    );

    // The self-signed certificate is refused without --insecure.
    let refused = loadgen::run_with(&opts(&format!("{base} --auth bob:pa:ss"))).unwrap();
    assert_eq!(refused.sent, 0);
    assert!(refused.connection_errors > 0);

    // A wrong password is an SMTP error reply, counted, not a crash.
    let wrong = loadgen::run_with(&opts(&format!("{base} --insecure --auth bob:nope"))).unwrap();
    assert_eq!(wrong.sent, 0);
    assert!(wrong.error_replies > 0);

    let ok = loadgen::run_with(&opts(&format!(
        "{base} --insecure --auth bob:pa:ss --pipelining"
    )))
    .unwrap();
    assert_eq!((ok.sent, ok.failed), (6, 0));
    assert_eq!(sizes(&sink), vec![65536; 6]);
    assert!(sink.log.auth_ok.load(Ordering::Relaxed) >= 2);
    assert!(sink.log.tls_sessions.load(Ordering::Relaxed) >= 2);
    assert!(sink.log.saw_pipelined_group.load(Ordering::Relaxed));
}

#[test]
fn rejected_recipients_are_counted_and_the_run_goes_on() {
    for pipelining in ["", "--pipelining"] {
        let sink = start_sink(SinkConfig {
            pipelining: true,
            rcpt_reply: Some("550 5.1.1 No such user\r\n"),
            ..SinkConfig::default()
        });
        let o = opts(&format!(
            "--server {} --sessions 2 --messages 3 {pipelining}",
            sink.addr
        ));
        let summary = loadgen::run_with(&o).unwrap();
        assert_eq!((summary.sent, summary.failed), (0, 6), "{pipelining}");
        assert!(summary.error_replies >= 6);
        // One connection per session: a rejection is followed by RSET, not a reconnect.
        assert_eq!(sink.log.connections.load(Ordering::Relaxed), 2);
    }
}

#[test]
fn no_server_ends_quickly() {
    // Bind and drop to find a port nobody listens on.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let o = opts(&format!(
        "--server 127.0.0.1:{port} --sessions 2 --messages 1000"
    ));
    let summary = loadgen::run_with(&o).unwrap();
    assert_eq!(summary.sent, 0);
    assert_eq!(summary.not_attempted, 2000);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn run_refuses_other_machines() {
    let args: Vec<String> = ["--server", "198.51.100.7:25"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(loadgen::run(&args), 2);
}

#[test]
fn duration_limit_stops_a_silent_server() {
    // Accepts connections but never says anything.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let started = Instant::now();
    let o = opts(&format!(
        "--server {addr} --sessions 2 --messages 5 --duration-limit 1"
    ));
    let summary = loadgen::run_with(&o).unwrap();
    assert_eq!(summary.sent, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}
