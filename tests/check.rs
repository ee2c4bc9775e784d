//! `outpost check` run as a program against real servers on 127.0.0.1:
//! the test server's STARTTLS and implicit-TLS ports, a closed port, a port
//! that never speaks, a scripted peer that speaks another protocol, and the
//! loopback DNS responder. No internet, and the
//! machine's own resolver is never asked (`--dns-server` always given).

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use support::fake_mx::MxScript;
use support::TestServer;

/// A run that takes longer than this is a failure (the tool's own timeouts
/// are far shorter).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// What one run of `outpost check` printed and returned.
struct Run {
    code: i32,
    stdout: String,
    elapsed: Duration,
}

/// Runs `outpost check ARGS`, killing it if it outlives [`RUN_LIMIT`].
fn check(args: &[&str]) -> Run {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .arg("check")
        .args(["--ehlo", "client.test"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > RUN_LIMIT {
            let _ = child.kill();
            panic!("outpost check {args:?} ran longer than {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        elapsed: started.elapsed(),
    }
}

fn assert_has(run: &Run, text: &str) {
    assert!(
        run.stdout.contains(text),
        "missing {text:?} in:\n{}",
        run.stdout
    );
}

fn cert_file(server: &TestServer) -> String {
    server
        .data_dir()
        .join("tls/cert.pem")
        .to_string_lossy()
        .into_owned()
}

/// A loopback port where nothing listens.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn users() -> [(&'static str, &'static str); 1] {
    [("user@mx.test", "secret")]
}

#[test]
fn starttls_port_is_identified_with_advice() {
    let server = TestServer::start(&users());
    let target = server.submission().to_string();
    let port = server.submission().port();
    let ca = cert_file(&server);
    let run = check(&[&target, "--sni", "mx.test", "--ca-file", &ca]);
    assert_has(&run, &format!("ok: {target}: plaintext SMTP, greeting: "));
    assert_has(&run, "STARTTLS works (TLSv1.");
    assert_has(&run, "certificate trusted and valid for mx.test");
    assert_has(&run, "AUTH after TLS: ");
    assert_has(&run, &format!("choose encryption STARTTLS on port {port}"));
    assert_has(&run, "not SSL/TLS");
    assert!(!run.stdout.contains("error"), "{}", run.stdout);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn implicit_tls_port_is_identified() {
    let server = TestServer::start(&users());
    let target = server.submissions().to_string();
    let port = server.submissions().port();
    let ca = cert_file(&server);
    let run = check(&[
        &target,
        "--sni",
        "localhost",
        "--ca-file",
        &ca,
        "--timeout",
        "2s",
    ]);
    assert_has(&run, &format!("ok: {target}: implicit TLS (TLSv1."));
    assert_has(&run, "certificate trusted and valid for localhost");
    assert_has(&run, &format!("choose encryption SSL/TLS on port {port}"));
    assert_has(&run, "not STARTTLS");
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn self_signed_certificate_is_untrusted_without_ca_file() {
    let server = TestServer::start(&users());
    let target = server.submissions().to_string();
    let run = check(&[&target, "--sni", "mx.test", "--timeout", "2s"]);
    assert_has(&run, "error: ");
    assert_has(
        &run,
        "certificate not trusted: self-signed or issued by an unknown CA",
    );
    assert_has(&run, "  fix: ");
    assert_has(&run, "--ca-file");
    assert_eq!(run.code, 1, "{}", run.stdout);

    // Trusted with the certificate, but not for a name it does not cover.
    let ca = cert_file(&server);
    let run = check(&[
        &target,
        "--sni",
        "smtp.other.test",
        "--ca-file",
        &ca,
        "--timeout",
        "2s",
    ]);
    assert_has(&run, "certificate not valid for the name smtp.other.test");
    assert_eq!(run.code, 1, "{}", run.stdout);

    // An IP address without --sni: the chain is checked, the name is not.
    let run = check(&[&target, "--ca-file", &ca, "--timeout", "2s"]);
    assert_has(&run, "certificate trusted; its name was not checked");
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn closed_port_is_refused() {
    let target = format!("127.0.0.1:{}", closed_port());
    let run = check(&[&target, "--timeout", "2s"]);
    assert_has(
        &run,
        &format!("error: {target}: connection refused: nothing listens on {target}"),
    );
    assert_has(&run, "  fix: ");
    assert_eq!(run.code, 1, "{}", run.stdout);
}

#[test]
fn silent_port_is_reported_within_the_timeout() {
    // The kernel completes the connections; nobody ever reads or writes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = listener.local_addr().unwrap().to_string();
    let run = check(&[&target, "--timeout", "1s"]);
    assert_has(
        &run,
        "no SMTP greeting came, neither in plaintext nor after TLS",
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.elapsed < Duration::from_secs(10), "{:?}", run.elapsed);
    drop(listener);
}

#[test]
fn other_protocol_is_named() {
    // Greets every connection (plaintext and the TLS attempt) like an SSH server.
    let ssh = MxScript::new().greeting(b"SSH-2.0-OpenSSH_9.6\r\n").start();
    let target = ssh.addr().to_string();
    let run = check(&[&target, "--timeout", "2s"]);
    assert_has(
        &run,
        &format!("error: {target}: this port does not speak SMTP: it sent \"SSH-2.0-OpenSSH_9.6\""),
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
}

#[test]
fn several_targets_in_one_run() {
    let server = TestServer::start(&users());
    let ca = cert_file(&server);
    let good = server.submission().to_string();
    let closed = format!("127.0.0.1:{}", closed_port());
    let run = check(&[&good, &closed, "--sni", "mx.test", "--ca-file", &ca]);
    assert_has(&run, &format!("ok: {good}: plaintext SMTP"));
    assert_has(&run, &format!("error: {closed}: connection refused"));
    assert_eq!(run.code, 1, "{}", run.stdout);
}

fn dns_zone() -> Zone {
    Zone::new()
        .add("good.test", Rec::Mx(10, "mx1.good.test".into()))
        .add("good.test", Rec::Mx(20, "mx2.good.test".into()))
        .add("good.test", Rec::Txt("v=spf1 mx -all".into()))
        .add("good.test", Rec::Txt("site-verification=123".into()))
        .add("mx1.good.test", Rec::A(Ipv4Addr::new(192, 0, 2, 1)))
        .add("mx2.good.test", Rec::Aaaa("2001:db8::2".parse().unwrap()))
        .add("nomx.test", Rec::A(Ipv4Addr::new(192, 0, 2, 3)))
        .add("null.test", Rec::Mx(0, ".".into()))
        .add("null.test", Rec::Txt("v=spf1 -all".into()))
        .add("null.test", Rec::Txt("v=spf1 mx".into()))
        .add("dangling.test", Rec::Mx(10, "gone.dangling.test".into()))
        .add("loop.test", Rec::Mx(10, "mx.loop.test".into()))
        .add("mx.loop.test", Rec::A(Ipv4Addr::LOCALHOST))
}

/// Runs `outpost check ARGS` asking `dns` with a 2 s timeout.
fn check_with_dns(dns: &DnsServer, args: &[&str]) -> Run {
    let server = dns.addr.to_string();
    let mut all = args.to_vec();
    all.extend(["--dns-server", &server, "--timeout", "2s"]);
    check(&all)
}

#[test]
fn dns_records_present() {
    let dns = DnsServer::start(dns_zone());
    let run = check_with_dns(&dns, &["--dns", "good.test"]);
    assert_has(&run, "ok: good.test: MX 10 mx1.good.test -> 192.0.2.1");
    assert_has(&run, "ok: good.test: MX 20 mx2.good.test -> 2001:db8::2");
    assert_has(&run, "ok: good.test: SPF: v=spf1 mx -all");
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn dns_records_missing_null_and_dangling() {
    let dns = DnsServer::start(dns_zone());
    let run = check_with_dns(&dns, &["--dns", "nomx.test"]);
    assert_has(
        &run,
        "warning: nomx.test: no MX record: mail falls back to the domain's own address (192.0.2.3)",
    );
    assert_has(&run, "  fix: add an MX record");
    assert_has(&run, "warning: nomx.test: no SPF record");
    assert_eq!(run.code, 1, "{}", run.stdout);

    let run = check_with_dns(&dns, &["--dns", "null.test"]);
    assert_has(&run, "null.test: null MX (0 .): the domain accepts no mail");
    assert_has(&run, "error: null.test: 2 SPF records");
    assert_eq!(run.code, 1, "{}", run.stdout);

    let run = check_with_dns(&dns, &["--dns", "dangling.test"]);
    assert_has(
        &run,
        "error: dangling.test: MX 10 gone.dangling.test has no address",
    );
    assert_eq!(run.code, 1, "{}", run.stdout);

    let run = check_with_dns(&dns, &["--dns", "absent.test"]);
    assert_has(&run, "error: absent.test: the domain does not exist");
    assert_eq!(run.code, 1, "{}", run.stdout);
}

#[test]
fn outbound_port_works() {
    let dns = DnsServer::start(dns_zone());
    let server = TestServer::start(&[]);
    let port = server.smtp().port().to_string();
    let run = check_with_dns(&dns, &["--outbound", "loop.test", "--port", &port]);
    assert_has(
        &run,
        &format!(
            "ok: loop.test: outbound port {port} works (mx.loop.test [127.0.0.1] greeting: 220 "
        ),
    );
    assert_eq!(run.code, 0, "{}", run.stdout);
}

#[test]
fn outbound_port_refused() {
    let dns = DnsServer::start(dns_zone());
    let port = closed_port().to_string();
    let run = check_with_dns(&dns, &["--outbound", "loop.test", "--port", &port]);
    assert_has(&run, &format!("error: loop.test: outbound port {port} does not work: mx.loop.test [127.0.0.1]: connection refused"));
    assert_has(&run, "--relay-host");
    assert_eq!(run.code, 1, "{}", run.stdout);

    let run = check_with_dns(&dns, &["--outbound", "null.test"]);
    assert_has(&run, "not tested: no mail host address");
    assert_eq!(run.code, 1, "{}", run.stdout);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(check(&[]).code, 2);
    assert_eq!(check(&["mail.example.com"]).code, 2);
    assert_eq!(check(&["--bogus", "127.0.0.1:25"]).code, 2);
    let help = check(&["--help"]);
    assert_eq!(help.code, 0);
    assert_has(&help, "--dns-server");
}
