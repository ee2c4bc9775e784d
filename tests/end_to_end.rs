//! The real `outpost` binary end to end: child processes with flags and
//! their own data directories, a loopback DNS responder, and a second
//! Outpost instance ("B", host mx.b.test, domain b.test) acting as the
//! recipient domain's MX for the sending instance ("A", host mx.test,
//! domain a.test). Mail is submitted to A over submission with STARTTLS
//! and AUTH, as a mail client would.
//!
//! Ports: the binary cannot report a port-0 listener, so free loopback
//! ports are found by binding 127.0.0.1:0 and dropping the socket; a start
//! that loses the race for a port is retried. Every wait polls against a
//! deadline, and every child is SIGKILLed by a Drop guard so none outlives
//! a failed assertion.

mod support;

#[path = "support/dns.rs"]
mod dns_server;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use support::{tls_client_config, unanswered_listener, Client, TempDir};

const BIN: &str = env!("CARGO_BIN_EXE_outpost");

/// How long a child gets to start listening.
const START_LIMIT: Duration = Duration::from_secs(20);
/// How long any delivery may take in these tests.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

const PASSWORD: &str = "correct horse battery staple";

/// The message as the author wrote it (not dot-stuffed): a line with a
/// leading dot, one that is only dots, and 8-bit-free text.
const MESSAGE: &str = "From: Alice <alice@a.test>\r\n\
To: Bob <bob@b.test>\r\n\
Subject: end to end\r\n\
Message-ID: <e2e@a.test>\r\n\
Date: Thu, 01 Jan 2026 08:00:00 +0000\r\n\
\r\n\
Hello Bob,\r\n\
.a line with a leading dot\r\n\
..\r\n\
last line\r\n";

/// A free loopback port (free when this returns; see the module doc),
/// never one handed out before in this process, so that one test's
/// reserved MX port cannot become another instance's listener.
fn free_port() -> u16 {
    static GIVEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    for _ in 0..100 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
    panic!("no fresh loopback port");
}

/// Polls `condition` every 50 ms until it holds or `limit` passes.
fn wait_for(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if condition() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(condition(), "timed out after {limit:?} waiting for {what}");
}

/// `outpost passwd ADDRESS` with the password on stdin: the users-file line.
fn users_line(address: &str) -> String {
    let mut child = Command::new(BIN)
        .args(["passwd", address])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "passwd: {output:?}");
    let line = String::from_utf8(output.stdout).unwrap();
    assert!(line.starts_with(&format!("{address}:")), "passwd: {line}");
    line
}

/// Writes a users file for `addresses` (all with [`PASSWORD`]).
fn users_file(path: &Path, addresses: &[&str]) -> PathBuf {
    let text: String = addresses.iter().map(|a| users_line(a)).collect();
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// `outpost queue ARGS --data-dir DIR`: exit code and stdout (stderr appended).
fn queue(data: &Path, args: &[&str]) -> (i32, String) {
    let output = Command::new(BIN)
        .arg("queue")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code().unwrap_or(-1), text)
}

fn queue_list(data: &Path) -> String {
    let (code, text) = queue(data, &["list"]);
    assert_eq!(code, 0, "queue list: {text}");
    text
}

fn queue_is_empty(data: &Path) -> bool {
    queue_list(data).contains("the queue is empty")
}

/// The files in `<data>/mail/<domain>/<local>/new/`, by name.
fn maildir(data: &Path, domain: &str, local: &str) -> Vec<Vec<u8>> {
    let new = data.join("mail").join(domain).join(local).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths.iter().map(|p| std::fs::read(p).unwrap()).collect()
}

/// The header field starting with `name:` (unfolded lines kept), first one.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    let start = message
        .find(&format!("\r\n{name}:"))
        .map(|i| i + 2)
        .or_else(|| message.starts_with(&format!("{name}:")).then_some(0))?;
    let rest = &message[start..];
    let mut end = 0;
    for line in rest.split_inclusive("\r\n") {
        if end > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        end += line.len();
    }
    Some(&rest[..end])
}

/// Does `address` answer with a 220 greeting line?
fn greets(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_secs(1)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\n") && line.len() < 512 {
        match stream.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            _ => return false,
        }
    }
    let _ = stream.write_all(b"QUIT\r\n");
    line.starts_with(b"220 ")
}

/// One way of starting an instance; the same spec restarts it on the same
/// data directory.
#[derive(Clone)]
struct Spec {
    name: &'static str,
    data: PathBuf,
    logs: PathBuf,
    hostname: &'static str,
    domain: &'static str,
    users: PathBuf,
    dns: SocketAddr,
    /// The smtp port, when it must be this one (B as the MX on a port A
    /// was told about before B started).
    smtp_port: Option<u16>,
    extra: Vec<String>,
}

/// A running `outpost serve`; SIGKILLed when dropped.
struct Outpost {
    child: Option<Child>,
    spec: Spec,
    smtp: SocketAddr,
    submission: SocketAddr,
    log: PathBuf,
}

impl Outpost {
    /// Starts `spec` and waits until its smtp listener greets.
    fn start(spec: &Spec, run: usize) -> Outpost {
        std::fs::create_dir_all(&spec.logs).unwrap();
        for attempt in 0..5 {
            let smtp_port = spec.smtp_port.unwrap_or_else(free_port);
            let submission_port = free_port();
            let smtp: SocketAddr = ([127, 0, 0, 1], smtp_port).into();
            let submission: SocketAddr = ([127, 0, 0, 1], submission_port).into();
            let log = spec
                .logs
                .join(format!("{}-run{run}-try{attempt}.log", spec.name));
            let child = Command::new(BIN)
                .arg("serve")
                .args(["--smtp", &smtp.to_string()])
                .args(["--submission", &submission.to_string()])
                .args(["--submissions", "off"])
                .args(["--hostname", spec.hostname])
                .args(["--local-domains", spec.domain])
                .arg("--data-dir")
                .arg(&spec.data)
                .arg("--users")
                .arg(&spec.users)
                .args(["--dns-server", &spec.dns.to_string()])
                .args(["--workers", "1", "--shutdown-grace", "1s"])
                .args(&spec.extra)
                .env("RUST_LOG", "info")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut outpost = Outpost {
                child: Some(child),
                spec: spec.clone(),
                smtp,
                submission,
                log,
            };
            if outpost.wait_ready() {
                return outpost;
            }
            let text = outpost.log_text();
            drop(outpost);
            assert!(
                spec.smtp_port.is_none() && text.contains("in use"),
                "{} did not start:\n{text}",
                spec.name
            );
        }
        panic!("{}: no free ports after 5 tries", spec.name);
    }

    /// Starts again on the same data directory (new listener ports unless
    /// the spec fixes them).
    fn restart(&mut self, run: usize) {
        self.kill9();
        *self = Outpost::start(&self.spec.clone(), run);
    }

    /// True once the smtp listener greets; false if the child exited.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_LIMIT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                eprintln!("{} exited at start: {status}", self.spec.name);
                return false;
            }
            if greets(self.smtp) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "{} not listening after {START_LIMIT:?}:\n{}",
            self.spec.name,
            self.log_text()
        );
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGKILL, then reap.
    fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
        let mut child = self.child.take().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("no exit 20 s after SIGTERM:\n{}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// This run's mail log (the child's stderr).
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The first delivery log line for queue id `id` with `status=STATUS`.
    fn delivery_line(&self, id: &str, status: &str) -> Option<String> {
        self.log_text()
            .lines()
            .find(|l| l.contains(&format!("{id}: to=<")) && l.contains(&format!("status={status}")))
            .map(str::to_string)
    }

    fn wait_delivery_line(&self, id: &str, status: &str) -> String {
        wait_for(DELIVERY_LIMIT, &format!("a {status} line for {id}"), || {
            self.delivery_line(id, status).is_some()
        });
        self.delivery_line(id, status).unwrap()
    }

    /// The PEM of this instance's self-signed certificate.
    fn cert_pem(&self) -> Vec<u8> {
        std::fs::read(self.spec.data.join("tls/cert.pem")).unwrap()
    }

    /// Submits `message` (not dot-stuffed) from `from` (also the login) to
    /// `to` over submission with STARTTLS and AUTH PLAIN; returns the queue
    /// id from the 250 reply.
    fn submit(&self, from: &str, to: &str, message: &str) -> String {
        let mut plain = Client::connect(self.submission);
        let greeting = plain.reply();
        assert!(greeting.starts_with("220 "), "{greeting}");
        let ehlo = plain.command("EHLO client.test");
        assert!(ehlo.contains("STARTTLS"), "{ehlo}");
        let go = plain.command("STARTTLS");
        assert!(go.starts_with("220 "), "{go}");
        // support::Client checks the name mx.test: A's host name.
        let mut client = plain.into_tls(tls_client_config(&self.cert_pem()));
        let auth = client.login_plain(from, PASSWORD);
        assert!(auth.starts_with("235 "), "AUTH: {auth}");
        let reply = client.transaction(from, to, &dot_stuff(message));
        assert!(reply.starts_with("250 "), "end of data: {reply}");
        let id = reply.trim_end().rsplit(' ').next().unwrap().to_string();
        let _ = client.command("QUIT");
        id
    }
}

impl Drop for Outpost {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// RFC 5321 §4.5.2: a leading dot is doubled on the wire.
fn dot_stuff(message: &str) -> String {
    message
        .split_inclusive("\r\n")
        .map(|line| {
            if line.starts_with('.') {
                format!(".{line}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// A temporary root (data directories, users files, logs) and the DNS
/// responder: b.test's MX is mx.b.test at 127.0.0.1.
struct World {
    root: TempDir,
    dns: DnsServer,
}

impl World {
    fn new(label: &str) -> World {
        World::with_zone(label, b_test_zone())
    }

    fn with_zone(label: &str, zone: Zone) -> World {
        World {
            root: TempDir::new(label),
            dns: DnsServer::start(zone),
        }
    }

    /// The sender's server A: host mx.test, domain a.test, user alice;
    /// remote mail goes to `mx_port`.
    fn a(&self, mx_port: u16, extra: &[&str]) -> Spec {
        let mut args = vec!["--mx-port".to_string(), mx_port.to_string()];
        args.extend(extra.iter().map(|s| s.to_string()));
        Spec {
            name: "a",
            data: self.root.path().join("a-data"),
            logs: self.root.path().join("logs"),
            hostname: "mx.test",
            domain: "a.test",
            users: users_file(&self.root.path().join("a-users"), &["alice@a.test"]),
            dns: self.dns.addr,
            smtp_port: None,
            extra: args,
        }
    }

    /// The recipient's MX, B: host mx.b.test, domain b.test, user bob,
    /// smtp listener on `port`.
    fn b(&self, port: u16) -> Spec {
        Spec {
            name: "b",
            data: self.root.path().join("b-data"),
            logs: self.root.path().join("logs"),
            hostname: "mx.b.test",
            domain: "b.test",
            users: users_file(&self.root.path().join("b-users"), &["bob@b.test"]),
            dns: self.dns.addr,
            smtp_port: Some(port),
            // B delivers only locally; a remote destination would wait.
            extra: vec!["--mx-port".into(), free_port().to_string()],
        }
    }
}

fn b_test_zone() -> Zone {
    Zone::new()
        .add("b.test", Rec::Mx(10, "mx.b.test".into()))
        .add("mx.b.test", Rec::A(Ipv4Addr::LOCALHOST))
}

/// `file` is [`MESSAGE`] byte for byte after a Return-Path with `sender`,
/// exactly two Received fields (A's and B's) and A's DKIM signature;
/// returns B's Received.
fn check_delivered_copy(file: &[u8], sender: &str) -> String {
    let text = String::from_utf8(file.to_vec()).unwrap();
    assert!(
        text.ends_with(MESSAGE),
        "body changed on the way:\n{text:?}"
    );
    let added = &text[..text.len() - MESSAGE.len()];
    assert!(
        added.starts_with(&format!("Return-Path: <{sender}>\r\n")),
        "{added}"
    );
    for line in added.split_inclusive("\r\n").skip(1) {
        assert!(
            line.starts_with("Received: ")
                || line.starts_with("DKIM-Signature: ")
                || line.starts_with([' ', '\t']),
            "unexpected added line {line:?} in\n{added}"
        );
    }
    assert_eq!(added.matches("Received: ").count(), 2, "{added}");
    assert_eq!(added.matches("DKIM-Signature: ").count(), 1, "{added}");
    header(added, "Received").unwrap().to_string()
}

/// Step 1 of the spec: `kill -9` right after the 250, the MX down at the
/// time; after the restart (MX now up) the message arrives exactly once.
#[test]
fn kill_9_after_250_then_restart_delivers_exactly_once() {
    let world = World::new("e2e-kill9");
    let mx_port = free_port();
    let mut a = Outpost::start(&world.a(mx_port, &["--retry", "1s"]), 1);
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    a.kill9();

    let a_data = a.spec.data.clone();
    assert!(queue_list(&a_data).contains(&id), "lost by kill -9");
    let b = Outpost::start(&world.b(mx_port), 1);
    a.restart(2);

    wait_for(DELIVERY_LIMIT, "delivery to B after the restart", || {
        !maildir(&b.spec.data, "b.test", "bob").is_empty() && queue_is_empty(&a_data)
    });
    let line = a.wait_delivery_line(&id, "sent");
    assert!(
        line.contains(&format!("relay=mx.b.test[127.0.0.1]:{mx_port}")),
        "{line}"
    );
    // Longer than the 1 s retry: nothing comes a second time.
    std::thread::sleep(Duration::from_millis(2500));
    let files = maildir(&b.spec.data, "b.test", "bob");
    assert_eq!(files.len(), 1, "delivered {} times", files.len());
    check_delivered_copy(&files[0], "alice@a.test");
    assert!(queue_is_empty(&a_data));
    assert!(queue_is_empty(&b.spec.data));
}

/// Step 2: A delivers to B as the MX; B offers STARTTLS with its
/// self-signed certificate and A uses it (opportunistic TLS).
#[test]
fn delivery_to_a_second_outpost_uses_starttls() {
    let world = World::new("e2e-tls");
    let mx_port = free_port();
    let b = Outpost::start(&world.b(mx_port), 1);
    let a = Outpost::start(&world.a(mx_port, &["--retry", "1s"]), 1);
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);

    wait_for(DELIVERY_LIMIT, "the message in B's Maildir", || {
        !maildir(&b.spec.data, "b.test", "bob").is_empty()
    });
    let files = maildir(&b.spec.data, "b.test", "bob");
    assert_eq!(files.len(), 1);
    let received_by_b = check_delivered_copy(&files[0], "alice@a.test");
    assert!(received_by_b.contains("by mx.b.test"), "{received_by_b}");
    assert!(received_by_b.contains("(using TLSv1."), "{received_by_b}");
    let text = String::from_utf8_lossy(&files[0]).into_owned();
    // The second Received field, A's, recorded the client's submission.
    let after_b = text.find(&received_by_b).unwrap() + received_by_b.len();
    let received_by_a = header(&text[after_b..], "Received").unwrap();
    assert!(
        received_by_a.starts_with("Received: from client.test"),
        "{received_by_a}"
    );
    assert!(
        received_by_a.contains("(authenticated as alice@a.test)"),
        "{received_by_a}"
    );

    let line = a.wait_delivery_line(&id, "sent");
    for part in [
        "to=<bob@b.test>".to_string(),
        format!("relay=mx.b.test[127.0.0.1]:{mx_port}"),
        "tls=TLSv1.".to_string(),
        "status=sent (250".to_string(),
    ] {
        assert!(line.contains(&part), "{part:?} not in {line}");
    }
    wait_for(DELIVERY_LIMIT, "A's queue to empty", || {
        queue_is_empty(&a.spec.data)
    });
    // Each server keeps the message's file for the next one, emptied:
    // nothing of the delivered message is left to read in its queue.
    let kept_files = |data: &Path| -> Vec<Vec<u8>> {
        std::fs::read_dir(data.join("queue"))
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_file())
            .map(|path| std::fs::read(path).unwrap())
            .collect()
    };
    for data in [&a.spec.data, &b.spec.data] {
        wait_for(
            DELIVERY_LIMIT,
            "the delivered message's file emptied",
            || kept_files(data).iter().flatten().all(|&byte| byte == 0),
        );
        assert_eq!(kept_files(data).len(), 1, "in {}", data.display());
    }
}

/// Step 3: B refuses an unknown user with 550; A's local sender gets
/// exactly one RFC 3464 report in her Maildir.
#[test]
fn refusal_550_gives_one_report_in_the_local_senders_maildir() {
    let world = World::new("e2e-550");
    let mx_port = free_port();
    let b = Outpost::start(&world.b(mx_port), 1);
    let a = Outpost::start(&world.a(mx_port, &["--retry", "1s"]), 1);
    let id = a.submit("alice@a.test", "nobody@b.test", MESSAGE);

    let line = a.wait_delivery_line(&id, "bounced");
    assert!(
        line.contains(&format!("relay=mx.b.test[127.0.0.1]:{mx_port}")),
        "{line}"
    );
    assert!(line.contains("status=bounced (550"), "{line}");
    wait_for(DELIVERY_LIMIT, "the report in alice's Maildir", || {
        !maildir(&a.spec.data, "a.test", "alice").is_empty() && queue_is_empty(&a.spec.data)
    });
    std::thread::sleep(Duration::from_millis(2500));
    let reports = maildir(&a.spec.data, "a.test", "alice");
    assert_eq!(reports.len(), 1, "{} reports", reports.len());
    let report = String::from_utf8_lossy(&reports[0]).into_owned();
    assert!(report.starts_with("Return-Path: <>\r\n"), "{report}");
    for needle in [
        "multipart/report",
        "report-type=delivery-status",
        "message/delivery-status",
        "Final-Recipient: rfc822; nobody@b.test",
        "Action: failed",
        "Remote-MTA: dns; mx.b.test",
        "Diagnostic-Code: smtp; 550",
        "Subject: end to end",
    ] {
        assert!(
            report
                .to_ascii_lowercase()
                .contains(&needle.to_ascii_lowercase()),
            "{needle:?} not in the report:\n{report}"
        );
    }
    let status = report
        .lines()
        .find(|l| l.starts_with("Status: "))
        .unwrap_or_else(|| panic!("no Status field:\n{report}"));
    assert!(status.starts_with("Status: 5."), "{status}");
    assert!(maildir(&b.spec.data, "b.test", "bob").is_empty());
}

/// Step 4: `--transport example.net=discard` takes the message off the
/// queue without DNS and without any connection.
#[test]
fn discard_transport_drops_without_connecting() {
    let world = World::with_zone("e2e-discard", Zone::new());
    // Anything connecting to the MX port would show up here.
    let sentinel = TcpListener::bind("127.0.0.1:0").unwrap();
    sentinel.set_nonblocking(true).unwrap();
    let mx_port = sentinel.local_addr().unwrap().port();
    let a = Outpost::start(
        &world.a(mx_port, &["--transport", "example.net=discard"]),
        1,
    );
    let id = a.submit("alice@a.test", "someone@example.net", MESSAGE);
    let line = a.wait_delivery_line(&id, "sent");
    assert!(line.contains("to=<someone@example.net>"), "{line}");
    assert!(line.contains("relay=discard"), "{line}");
    assert!(line.contains("discarded"), "{line}");
    wait_for(DELIVERY_LIMIT, "the queue to empty", || {
        queue_is_empty(&a.spec.data)
    });
    assert_eq!(
        world
            .dns
            .udp_queries
            .load(std::sync::atomic::Ordering::Relaxed)
            + world
                .dns
                .tcp_queries
                .load(std::sync::atomic::Ordering::Relaxed),
        0,
        "DNS was asked"
    );
    assert!(
        sentinel.accept().is_err(),
        "something connected to the MX port"
    );
}

/// Waits until `queue list` shows `id` deferred with a connection error
/// naming the MX and a time for the next try, and returns the listing.
fn wait_deferred(data: &Path, id: &str, mx_port: u16) -> String {
    let mut listing = String::new();
    wait_for(DELIVERY_LIMIT, "a deferred message in queue list", || {
        listing = queue_list(data);
        // The state is written after the attempt, the next try just after.
        listing.contains(id)
            && listing.contains("deferred after")
            && listing.contains("next try in")
    });
    assert!(
        listing.contains(&format!("mx.b.test[127.0.0.1]:{mx_port}")),
        "the last error should name the MX:\n{listing}"
    );
    listing
}

/// Step 5: the queue tools against the running binary on a waiting
/// message: list shows the last error, delete removes one message, flush
/// sends another once the far side is up (long before the next retry).
#[test]
fn queue_tools_on_a_waiting_message() {
    let world = World::new("e2e-queue");
    let mx_port = free_port();
    let a = Outpost::start(&world.a(mx_port, &["--retry", "1h"]), 1);
    let data = a.spec.data.clone();

    let doomed = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    let listing = wait_deferred(&data, &doomed, mx_port);
    assert!(
        listing.contains("to <bob@b.test>: deferred after 1 attempt(s): 4.4.1"),
        "{listing}"
    );
    assert!(listing.contains("from <alice@a.test>"), "{listing}");
    let line = a.wait_delivery_line(&doomed, "deferred");
    assert!(
        line.contains(&format!("mx.b.test[127.0.0.1]:{mx_port}")),
        "{line}"
    );
    let (code, shown) = queue(&data, &["show", &doomed]);
    assert_eq!(code, 0, "{shown}");
    assert!(
        shown.contains(&doomed) && shown.contains("Subject: end to end"),
        "{shown}"
    );

    let (code, text) = queue(&data, &["delete", &doomed]);
    assert_eq!(code, 0, "{text}");
    assert!(
        text.contains(&format!("{doomed}: removed by outpost queue delete user="))
            && text.contains("from=<alice@a.test> recipients=1"),
        "{text}"
    );
    assert!(queue_is_empty(&data));
    let (code, text) = queue(&data, &["show", &doomed]);
    assert_eq!(code, 1, "{text}");

    let waiting = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    wait_deferred(&data, &waiting, mx_port);
    let b = Outpost::start(&world.b(mx_port), 1);
    let (code, text) = queue(&data, &["flush"]);
    assert_eq!(code, 0, "{text}");
    wait_for(DELIVERY_LIMIT, "delivery after flush", || {
        !maildir(&b.spec.data, "b.test", "bob").is_empty() && queue_is_empty(&data)
    });
    let files = maildir(&b.spec.data, "b.test", "bob");
    assert_eq!(files.len(), 1, "the deleted message came through");
    check_delivered_copy(&files[0], "alice@a.test");
    a.wait_delivery_line(&waiting, "sent");
    assert!(a.delivery_line(&doomed, "sent").is_none());
}

/// Step 6: SIGTERM with an undeliverable message queued: exit status 0,
/// and the message is still queued after a restart.
#[test]
fn sigterm_keeps_the_waiting_message() {
    let world = World::new("e2e-sigterm");
    let mx_port = free_port();
    let mut a = Outpost::start(&world.a(mx_port, &["--retry", "1h"]), 1);
    let data = a.spec.data.clone();
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    wait_deferred(&data, &id, mx_port);

    let status = a.terminate();
    assert!(
        status.success(),
        "exit after SIGTERM: {status}\n{}",
        a.log_text()
    );
    assert!(
        a.log_text().contains("received a stop signal"),
        "{}",
        a.log_text()
    );
    assert!(queue_list(&data).contains(&id), "lost at SIGTERM");

    a.restart(2);
    // The restarted server keeps the schedule (next try in about an hour)
    // and the message waits; once the MX is up, a flush sends it.
    std::thread::sleep(Duration::from_millis(1000));
    let listing = queue_list(&data);
    assert!(listing.contains(&id), "{listing}");
    assert!(listing.contains("next try in"), "{listing}");
    let b = Outpost::start(&world.b(mx_port), 1);
    let (code, text) = queue(&data, &["flush"]);
    assert_eq!(code, 0, "{text}");
    wait_for(DELIVERY_LIMIT, "delivery after the restart", || {
        !maildir(&b.spec.data, "b.test", "bob").is_empty() && queue_is_empty(&data)
    });
    assert_eq!(maildir(&b.spec.data, "b.test", "bob").len(), 1);
    a.wait_delivery_line(&id, "sent");
}

/// SIGTERM to `a` with delivery of `id` under way (`during`): exit status
/// 0 within `limit`, and the message still queued. The cut-short attempt is
/// not held against it: it goes again first thing after a restart, not in
/// an hour.
fn terminate_promptly(a: &mut Outpost, id: &str, limit: Duration, during: &str) {
    let started = Instant::now();
    let status = a.terminate();
    let took = started.elapsed();
    assert!(status.success(), "{status}\n{}", a.log_text());
    assert!(
        took < limit,
        "SIGTERM took {took:?} {during}\n{}",
        a.log_text()
    );
    let listing = queue_list(&a.spec.data);
    assert!(listing.contains(id), "{listing}");
    assert!(!listing.contains("next try in"), "{listing}");
}

/// SIGTERM while a delivery waits on an MX that accepted the connection
/// but never greets.
#[test]
fn sigterm_during_a_stalled_delivery_exits_promptly() {
    let world = World::new("e2e-stall");
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mx_port = silent.local_addr().unwrap().port();
    let mut a = Outpost::start(&world.a(mx_port, &["--retry", "1h"]), 1);
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    // The connection is in the backlog (or accepted): A now waits for 220.
    let (_held, _) = silent.accept().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    terminate_promptly(
        &mut a,
        &id,
        Duration::from_secs(10),
        "with a stalled delivery",
    );
}

/// SIGTERM while a delivery's connect gets no answer (a firewall that drops
/// packets, as where port 25 is blocked), long before the 30 s connect
/// timeout.
#[test]
fn sigterm_during_an_unanswered_connect_exits_promptly() {
    let world = World::new("e2e-blackhole");
    let (blackhole, _held) = unanswered_listener();
    let mx_port = blackhole.local_addr().unwrap().port();
    let mut a = Outpost::start(&world.a(mx_port, &["--retry", "1h"]), 1);
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    std::thread::sleep(Duration::from_millis(500));
    terminate_promptly(
        &mut a,
        &id,
        Duration::from_secs(10),
        "with a connect in progress",
    );
}

/// SIGTERM while a delivery waits for a DNS server that never answers,
/// long before the resolver's timeouts.
#[test]
fn sigterm_during_an_unanswered_dns_question_exits_promptly() {
    let world = World::new("e2e-silent-dns");
    let silent_dns = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut spec = world.a(free_port(), &["--retry", "1h"]);
    spec.dns = silent_dns.local_addr().unwrap();
    let mut a = Outpost::start(&spec, 1);
    let id = a.submit("alice@a.test", "bob@b.test", MESSAGE);
    std::thread::sleep(Duration::from_millis(500));
    terminate_promptly(
        &mut a,
        &id,
        Duration::from_secs(5),
        "with a DNS question in flight",
    );
}

/// Local users of the load test below.
const LOAD_USERS: [&str; 2] = ["bob", "carol"];

/// One message to every [`LOAD_USERS`] mailbox over plain SMTP, `token` as
/// its Subject. `Ok(true)` when the final dot got its 250; an error when
/// the server went away (killed) first.
fn send_token(address: SocketAddr, token: &str) -> std::io::Result<bool> {
    use std::io::BufRead;
    let stream = TcpStream::connect_timeout(&address, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = std::io::BufReader::new(stream);
    let mut reply = move || -> std::io::Result<String> {
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return Ok(line);
            }
        }
    };
    let mut step = |command: &str, want: &str| -> std::io::Result<bool> {
        if !command.is_empty() {
            writer.write_all(command.as_bytes())?;
        }
        Ok(reply()?.starts_with(want))
    };
    let mut commands = vec![
        (String::new(), "220"),
        ("EHLO load.test\r\n".to_string(), "250"),
        ("MAIL FROM:<sender@x.test>\r\n".to_string(), "250"),
    ];
    for user in LOAD_USERS {
        commands.push((format!("RCPT TO:<{user}@b.test>\r\n"), "250"));
    }
    commands.push(("DATA\r\n".to_string(), "354"));
    commands.push((
        format!("Subject: {token}\r\nMessage-ID: <{token}@x.test>\r\n\r\nload\r\n.\r\n"),
        "250",
    ));
    for (command, want) in &commands {
        if !step(command, want)? {
            return Ok(false);
        }
    }
    let _ = step("QUIT\r\n", "221");
    Ok(true)
}

/// How often each Subject occurs in `local`'s Maildir (`new/` and `cur/`).
fn subjects_in_maildir(data: &Path, local: &str) -> std::collections::HashMap<String, usize> {
    let mut counts = std::collections::HashMap::new();
    for sub in ["new", "cur"] {
        let dir = data.join("mail/b.test").join(local).join(sub);
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let subject = header(&text, "Subject").unwrap_or("none").trim();
            let token = subject.trim_start_matches("Subject:").trim().to_string();
            *counts.entry(token).or_insert(0) += 1;
        }
    }
    counts
}

/// `kill -9` twenty times under load, each at a different moment, the
/// server restarted on the same data directory each time: every message
/// acknowledged with 250 is in each recipient's Maildir exactly once, and
/// no message (acknowledged or not) is there twice. A crash between the
/// Maildir rename and the queue's record must not deliver again.
#[test]
fn kill_9_twenty_times_under_load_loses_and_duplicates_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    const KILLS: usize = 20;
    const CLIENTS: usize = 3;
    /// Bounds the load: at most this many messages per client.
    const PER_CLIENT: usize = 150;

    let world = World::new("e2e-kill9-load");
    let addresses: Vec<String> = LOAD_USERS.iter().map(|u| format!("{u}@b.test")).collect();
    let address_refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
    let spec = Spec {
        users: users_file(&world.root.path().join("load-users"), &address_refs),
        name: "load",
        ..world.b(free_port())
    };
    let mut server = Outpost::start(&spec, 0);
    let smtp = server.smtp;

    let stop = Arc::new(AtomicBool::new(false));
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let stop = stop.clone();
            let acknowledged = acknowledged.clone();
            std::thread::spawn(move || {
                for seq in 0..PER_CLIENT {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let token = format!("c{client}-m{seq}");
                    match send_token(smtp, &token) {
                        Ok(true) => acknowledged.lock().unwrap().push(token),
                        // Refused or cut off by a kill: wait for the restart.
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            })
        })
        .collect();

    let count = || acknowledged.lock().unwrap().len();
    for kill in 0..KILLS {
        // Load is flowing again after the restart, then a moment that
        // differs from kill to kill.
        let before = count();
        wait_for(START_LIMIT, "a message accepted after the restart", || {
            count() > before || clients.iter().all(|c| c.is_finished())
        });
        std::thread::sleep(Duration::from_millis(10 + (kill as u64 * 37) % 250));
        server.restart(kill + 1);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() >= KILLS,
        "too little load: {}",
        acknowledged.len()
    );

    wait_for(DELIVERY_LIMIT, "every queued message delivered", || {
        queue_is_empty(&spec.data)
    });
    for user in LOAD_USERS {
        let counts = subjects_in_maildir(&spec.data, user);
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|token| !counts.contains_key(*token))
            .collect();
        assert!(lost.is_empty(), "{user}: lost after a 250: {lost:?}");
        let twice: Vec<(&String, &usize)> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{user}: delivered twice: {twice:?}");
        let tmp = spec.data.join("mail/b.test").join(user).join("tmp");
        assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0, "{user}: tmp/");
    }
    eprintln!(
        "{} messages acknowledged over {KILLS} kills",
        acknowledged.len()
    );
}

/// At start the server clears abandoned files from a mailbox's `tmp/`:
/// one of its own whose message is no longer queued, and another
/// program's untouched for more than 36 hours; a fresh one stays (another
/// program may be writing it right now).
#[test]
fn start_up_removes_abandoned_maildir_tmp_files() {
    let world = World::new("e2e-maildir-tmp");
    let spec = world.b(free_port());
    let tmp = spec.data.join("mail/b.test/bob/tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let orphan = "1795718460.outpost-0J5Z3K1M2N3P4Q5R-0.mx.b.test";
    let old = "1600000000.M1P2Q3.elsewhere";
    let fresh = "1795718460.M4P5Q6.elsewhere";
    for name in [orphan, old, fresh] {
        std::fs::write(tmp.join(name), b"partial").unwrap();
    }
    let long_ago = std::time::SystemTime::now() - Duration::from_secs(37 * 60 * 60);
    File::options()
        .write(true)
        .open(tmp.join(old))
        .unwrap()
        .set_modified(long_ago)
        .unwrap();

    let server = Outpost::start(&spec, 1);

    let left: Vec<String> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, vec![fresh.to_string()]);
    assert!(
        server
            .log_text()
            .contains("removed 2 abandoned files from tmp/"),
        "{}",
        server.log_text()
    );
}

/// A mail loop through the success report: a client on loopback (a relay
/// network) sends to alice with NOTIFY=SUCCESS from loop.test, whose MX is
/// 127.0.0.1 on A's own smtp port. The report must not come back in: A
/// sees that the MX is its own listener before connecting, the report
/// fails (and, from `<>`, is reported to nobody), and no second message
/// ever arrives, however long we watch.
#[test]
fn a_success_report_to_an_mx_that_is_ourselves_stops_at_once() {
    let zone = Zone::new()
        .add("loop.test", Rec::Mx(10, "mx.loop.test".into()))
        .add("mx.loop.test", Rec::A(Ipv4Addr::LOCALHOST));
    let world = World::with_zone("e2e-loop", zone);
    let port = free_port();
    let mut spec = world.a(port, &["--retry", "1s"]);
    spec.smtp_port = Some(port);
    let a = Outpost::start(&spec, 1);

    let mut client = Client::connect(a.smtp);
    assert!(client.reply().starts_with("220 "));
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client.command("MAIL FROM:<x@loop.test>").starts_with("250"));
    let rcpt = client.command("RCPT TO:<alice@a.test> NOTIFY=SUCCESS");
    assert!(rcpt.starts_with("250"), "{rcpt}");
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: tell me it arrived\r\n\r\nhi\r\n");
    let reply = client.command(".");
    assert!(reply.starts_with("250 "), "{reply}");
    let _ = client.command("QUIT");

    wait_for(DELIVERY_LIMIT, "the loop detected", || {
        a.log_text().contains("is this server")
    });
    wait_for(DELIVERY_LIMIT, "an empty queue", || {
        queue_is_empty(&a.spec.data)
    });
    // Longer than the 1 s retry: nothing comes in again.
    std::thread::sleep(Duration::from_millis(2500));
    assert!(queue_is_empty(&a.spec.data));
    let log = a.log_text();
    assert_eq!(log.matches("on smtp: queued").count(), 1, "{log}");
    assert!(
        log.contains("status=bounced (5.4.6 mail for loop.test loops back to myself)"),
        "{log}"
    );
    assert!(!log.contains("with our own host name"), "{log}");
    assert_eq!(maildir(&a.spec.data, "a.test", "alice").len(), 1);
}

/// A message of about `size` octets whose lines tell its number `n`;
/// some lines start with a dot.
fn big_message(n: usize, size: usize) -> String {
    let mut message = format!("From: alice@a.test\r\nSubject: big {n}\r\n\r\n");
    let mut line = 0;
    while message.len() < size {
        message.push_str(&format!(".{n} line {line:08} of a big message\r\n"));
        line += 1;
    }
    message
}

/// The peak resident memory of process `pid` (VmHWM), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Sends `message` to `to` over A's smtp port (127.0.0.1 relays), by DATA
/// or in BDAT chunks; returns the final reply.
fn send_big(address: SocketAddr, to: &str, message: &str, bdat: bool) -> String {
    let mut client = Client::connect(address);
    assert!(client.reply().starts_with("220 "));
    client.command("EHLO client.test");
    client.envelope("alice@a.test", to);
    if !bdat {
        let data = client.command("DATA");
        assert!(data.starts_with("354 "), "{data}");
        client.send(dot_stuff(message).as_bytes());
        client.send(b".\r\n");
        return client.reply();
    }
    let chunks: Vec<&[u8]> = message.as_bytes().chunks(3 << 20).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let last = if i + 1 == chunks.len() { " LAST" } else { "" };
        client.send(format!("BDAT {}{last}\r\n", chunk.len()).as_bytes());
        client.send(chunk);
        let reply = client.reply();
        if !last.is_empty() || !reply.starts_with("250 ") {
            return reply;
        }
    }
    unreachable!("the last chunk returns")
}

/// Big messages never sit whole in memory: four of 12 MiB at once, by
/// DATA and BDAT, go from A through its queue to B and into B's Maildir
/// byte for byte, while neither server's peak memory comes near one
/// message's size per connection; and a client that hangs up half-way
/// leaves nothing in the queue.
#[test]
fn big_messages_stream_through_both_servers_in_bounded_memory() {
    const SIZE: usize = 12 << 20;
    let world = World::new("e2e-big");
    let mx_port = free_port();
    let memory = [
        "--message-memory",
        "64KiB",
        "--message-memory-total",
        "1MiB",
    ];
    let mut b_spec = world.b(mx_port);
    b_spec.extra.extend(memory.iter().map(|s| s.to_string()));
    let b = Outpost::start(&b_spec, 1);
    let a = Outpost::start(&world.a(mx_port, &memory), 1);

    let senders: Vec<_> = (0..4)
        .map(|n| {
            let smtp = a.smtp;
            std::thread::spawn(move || {
                send_big(smtp, "bob@b.test", &big_message(n, SIZE), n % 2 == 1)
            })
        })
        .collect();
    for sender in senders {
        let reply = sender.join().unwrap();
        assert!(reply.starts_with("250 "), "{reply}");
    }
    wait_for(
        Duration::from_secs(120),
        "four big messages in B's Maildir",
        || {
            let new = b.spec.data.join("mail/b.test/bob/new");
            std::fs::read_dir(new).map_or(0, |d| d.count()) == 4
        },
    );
    wait_for(DELIVERY_LIMIT, "both queues to empty", || {
        queue_is_empty(&a.spec.data) && queue_is_empty(&b.spec.data)
    });
    let files = maildir(&b.spec.data, "b.test", "bob");
    let mut seen: Vec<usize> = files
        .iter()
        .map(|file| {
            let text = String::from_utf8_lossy(file);
            let n = (0..4)
                .find(|n| text.contains(&format!("Subject: big {n}\r\n")))
                .expect("a message of the test");
            check_delivered_copy_of(file, &big_message(n, SIZE), "alice@a.test");
            n
        })
        .collect();
    seen.sort();
    assert_eq!(seen, [0, 1, 2, 3]);
    // Four messages held whole would take 48 MiB on each side.
    for (name, server) in [("A", &a), ("B", &b)] {
        let peak = peak_rss_kib(server.pid());
        assert!(peak < 40 * 1024, "{name}'s peak memory {peak} KiB");
    }

    // Half a message, then the client hangs up: no file is left behind.
    let mut client = Client::connect(a.smtp);
    client.reply();
    client.command("EHLO client.test");
    client.envelope("alice@a.test", "bob@b.test");
    assert!(client.command("DATA").starts_with("354 "));
    client.send(dot_stuff(&big_message(9, 2 << 20)).as_bytes());
    drop(client);
    wait_for(DELIVERY_LIMIT, "the half message's file to go", || {
        std::fs::read_dir(a.spec.data.join("queue"))
            .unwrap()
            .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".msg"))
    });
    assert!(queue_is_empty(&a.spec.data));
}

/// `file` is `message` byte for byte after a Return-Path with `sender`
/// and the Received fields the servers added.
fn check_delivered_copy_of(file: &[u8], message: &str, sender: &str) {
    assert!(
        file.ends_with(message.as_bytes()),
        "body changed on the way"
    );
    let added = String::from_utf8_lossy(&file[..file.len() - message.len()]).into_owned();
    assert!(
        added.starts_with(&format!("Return-Path: <{sender}>\r\n")),
        "{added}"
    );
    assert_eq!(added.matches("Received: ").count(), 2, "{added}");
}
