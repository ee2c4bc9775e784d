//! `outpost check` run as a program against real servers on 127.0.0.1:
//! the test server's STARTTLS and implicit-TLS ports, a closed port, a port
//! that never speaks, a scripted peer that speaks another protocol, and the
//! loopback DNS responder, which also serves a domain set up for mail from
//! this host (127.0.0.1, `--source-address`), whole and broken one way at a
//! time. No internet, and the machine's own resolver is never asked
//! (`--dns-server` always given).

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use support::fake_mx::MxScript;
use support::{TempDir, TestServer};

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

/// Runs `outpost check ARGS` asking `dns` with a 2 s timeout, as a host
/// that sends from 127.0.0.1.
fn check_with_dns(dns: &DnsServer, args: &[&str]) -> Run {
    let server = dns.addr.to_string();
    let mut all = args.to_vec();
    all.extend(["--dns-server", &server, "--timeout", "2s"]);
    all.extend(["--source-address", "127.0.0.1"]);
    check(&all)
}

/// The one way [`mail_zone`] is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broken {
    Nothing,
    DkimKey,
    NoDmarc,
    SpfWithoutUs,
    SpfLookups,
    NoPtr,
    PtrUnconfirmed,
    MxPrivate,
}

/// A server's data directory with the DKIM key of good.test, and the key
/// record exactly as `outpost dns` prints it (name and strings).
struct Keys {
    dir: TempDir,
    name: String,
    strings: Vec<String>,
}

/// The serve options of the server the mail check judges.
const SERVER: [&str; 4] = ["--hostname", "mx.test", "--local-domains", "good.test"];

fn keys() -> Keys {
    let dir = TempDir::new("check-dkim");
    let output = Command::new(env!("CARGO_BIN_EXE_outpost"))
        .args(["dns", "good.test", "--data-dir"])
        .arg(dir.path())
        .args(SERVER)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let zone = String::from_utf8(output.stdout).unwrap();
    let line = zone
        .lines()
        .find(|l| !l.starts_with(';') && l.contains("._domainkey."))
        .unwrap_or_else(|| panic!("no DKIM record in\n{zone}"));
    let name = line.split(' ').next().unwrap().trim_end_matches('.');
    let data = line.split_once(" IN TXT ").unwrap().1;
    let strings: Vec<String> = data
        .split('"')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    assert!(
        strings.len() > 1,
        "an RSA key record is longer than 255: {line}"
    );
    Keys {
        name: name.to_string(),
        strings,
        dir,
    }
}

/// good.test as it should be for mail from 127.0.0.1 named mx.test (its
/// MX elsewhere, at 192.0.2.1), except for `broken`.
fn mail_zone(keys: &Keys, broken: Broken) -> Zone {
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mx_address = match broken {
        Broken::MxPrivate => Ipv4Addr::new(10, 0, 0, 1),
        _ => Ipv4Addr::new(192, 0, 2, 1),
    };
    let spf = match broken {
        Broken::SpfWithoutUs => "v=spf1 mx -all",
        Broken::SpfLookups => "v=spf1 mx include:spf0.good.test -all",
        _ => "v=spf1 mx ip4:127.0.0.1 -all",
    };
    let mut dkim = keys.strings.clone();
    if broken == Broken::DkimKey {
        // Another key: one character of p= changed.
        let last = dkim.last_mut().unwrap();
        let at = last.len() - 8;
        let swapped = if &last[at..=at] == "A" { "B" } else { "A" };
        last.replace_range(at..=at, swapped);
    }
    let mut zone = Zone::new()
        .add("good.test", Rec::Mx(10, "mx1.good.test".into()))
        .add("mx1.good.test", Rec::A(mx_address))
        .add("good.test", Rec::Txt(spf.into()))
        .add(&keys.name, Rec::TxtStrings(dkim));
    if broken != Broken::NoDmarc {
        zone = zone.add(
            "_dmarc.good.test",
            Rec::Txt("v=DMARC1; p=none; rua=mailto:postmaster@good.test".into()),
        );
    }
    if broken != Broken::NoPtr {
        zone = zone.ptr(loopback, "mx.test");
    }
    let forward = match broken {
        Broken::PtrUnconfirmed => Ipv4Addr::new(192, 0, 2, 9),
        _ => Ipv4Addr::LOCALHOST,
    };
    zone = zone.add("mx.test", Rec::A(forward));
    // 10 includes and the mx: 11 terms that ask DNS.
    for i in 0..10 {
        let next = if i < 9 {
            format!("v=spf1 include:spf{}.good.test -all", i + 1)
        } else {
            "v=spf1 ip4:192.0.2.0/24 -all".to_string()
        };
        zone = zone.add(&format!("spf{i}.good.test"), Rec::Txt(next));
    }
    zone
}

/// `outpost check --dns good.test` by the server of `keys`, with the
/// extra `args`.
fn check_mail(keys: &Keys, broken: Broken, args: &[&str]) -> Run {
    let dns = DnsServer::start(mail_zone(keys, broken));
    let dir = keys.dir.path().to_str().unwrap();
    let mut all = vec!["--dns", "good.test", "--data-dir", dir];
    all.extend(args);
    check_with_dns(&dns, &all)
}

#[test]
fn domain_set_up_for_this_host_passes() {
    let keys = keys();
    let run = check_mail(&keys, Broken::Nothing, &SERVER);
    assert_has(&run, "ok: good.test: MX 10 mx1.good.test -> 192.0.2.1");
    assert_has(&run, "ok: good.test: SPF: v=spf1 mx ip4:127.0.0.1 -all");
    assert_has(&run, "ok: mx.test: host name mx.test is fully qualified");
    assert_has(
        &run,
        "ok: good.test: SPF passes for 127.0.0.1 (ip4:127.0.0.1)",
    );
    assert_has(
        &run,
        "ok: 127.0.0.1: reverse DNS of 127.0.0.1: mx.test, which resolves back to 127.0.0.1",
    );
    let selector = keys.name.split('.').next().unwrap();
    assert_has(
        &run,
        &format!("ok: good.test: DKIM record for selector {selector} matches this server's key"),
    );
    assert_has(
        &run,
        "ok: good.test: DMARC: v=DMARC1; p=none; rua=mailto:postmaster@good.test",
    );
    assert!(!run.stdout.contains("warning"), "{}", run.stdout);
    assert!(!run.stdout.contains("error"), "{}", run.stdout);
    assert_eq!(run.code, 0, "{}", run.stdout);
}

/// Asserts that `run` has `text` as a finding of `level`, followed by a
/// `fix:` line containing `fix`, and exits 1.
fn assert_problem(run: &Run, level: &str, text: &str, fix: &str) {
    let lines: Vec<&str> = run.stdout.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with(&format!("{level}: ")) && l.contains(text))
        .unwrap_or_else(|| panic!("no {level} {text:?} in:\n{}", run.stdout));
    let fix_line = lines.get(at + 1).copied().unwrap_or("");
    assert!(
        fix_line.starts_with("  fix: ") && fix_line.contains(fix),
        "fix {fix:?} missing after {:?} in:\n{}",
        lines[at],
        run.stdout
    );
    assert_eq!(run.code, 1, "{}", run.stdout);
}

/// How many findings of `level` `run` printed.
fn count(run: &Run, level: &str) -> usize {
    let prefix = format!("{level}: ");
    run.stdout
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .count()
}

#[test]
fn dkim_record_of_another_key_is_an_error() {
    let keys = keys();
    let run = check_mail(&keys, Broken::DkimKey, &SERVER);
    let selector = keys.name.split('.').next().unwrap();
    assert_problem(
        &run,
        "error",
        &format!(
            "the DKIM record for selector {selector} at {} does not match this server's key",
            keys.name
        ),
        &format!("replace it with {}. TXT \"{}\"", keys.name, keys.strings[0]),
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn dkim_record_missing_says_what_to_publish() {
    let keys = keys();
    let other = Keys {
        dir: TempDir::new("check-no-record"),
        name: "elsewhere._domainkey.good.test".into(),
        strings: keys.strings.clone(),
    };
    let dns = DnsServer::start(mail_zone(&other, Broken::Nothing));
    let dir = keys.dir.path().to_str().unwrap();
    let mut args = vec!["--dns", "good.test", "--data-dir", dir];
    args.extend(SERVER);
    let run = check_with_dns(&dns, &args);
    let printed: Vec<String> = keys.strings.iter().map(|s| format!("\"{s}\"")).collect();
    assert_problem(
        &run,
        "error",
        &format!(
            "no DKIM record for selector {} at {}",
            keys.name.split('.').next().unwrap(),
            keys.name
        ),
        &format!("publish {}. TXT {}", keys.name, printed.join(" ")),
    );
}

#[test]
fn missing_dmarc_is_a_warning_with_a_record_to_start_with() {
    let keys = keys();
    let run = check_mail(&keys, Broken::NoDmarc, &SERVER);
    assert_problem(
        &run,
        "warning",
        "good.test: no DMARC record at _dmarc.good.test",
        "publish _dmarc.good.test. TXT \"v=DMARC1; p=none; rua=mailto:postmaster@good.test\"",
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn spf_without_this_host_fails() {
    let keys = keys();
    let run = check_mail(&keys, Broken::SpfWithoutUs, &SERVER);
    assert_problem(
        &run,
        "error",
        "good.test: SPF fails for 127.0.0.1 (-all)",
        "add ip4:127.0.0.1 (or mx, when this host is good.test's MX) to good.test's SPF record: `v=spf1 mx ip4:127.0.0.1 -all`",
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn spf_with_eleven_lookups_is_a_permerror() {
    let keys = keys();
    let run = check_mail(&keys, Broken::SpfLookups, &SERVER);
    assert_problem(
        &run,
        "error",
        "good.test: SPF for 127.0.0.1: permerror: more than 10 DNS lookups",
        "replace an include by the ip4:/ip6: ranges it stands for",
    );
}

#[test]
fn missing_ptr_is_an_error() {
    let keys = keys();
    let run = check_mail(&keys, Broken::NoPtr, &SERVER);
    assert_problem(
        &run,
        "error",
        "127.0.0.1: no reverse DNS (PTR) for 127.0.0.1",
        "ask your hosting provider to set the PTR of 127.0.0.1 to mx.test",
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn ptr_that_does_not_resolve_back_is_an_error() {
    let keys = keys();
    let run = check_mail(&keys, Broken::PtrUnconfirmed, &SERVER);
    assert_problem(
        &run,
        "error",
        "the PTR of 127.0.0.1 is mx.test, which does not resolve back to 127.0.0.1 (reverse DNS not forward-confirmed)",
        "give mx.test an A/AAAA record 127.0.0.1",
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn mx_at_a_private_address_is_an_error() {
    let keys = keys();
    let run = check_mail(&keys, Broken::MxPrivate, &SERVER);
    assert_problem(
        &run,
        "error",
        "good.test: MX 10 mx1.good.test -> 10.0.0.1: 10.0.0.1 is a private (RFC 1918) address, which other servers cannot reach",
        "give mx1.good.test only the public addresses of the mail server",
    );
    assert_eq!(
        count(&run, "error") + count(&run, "warning"),
        1,
        "{}",
        run.stdout
    );
}

#[test]
fn host_name_that_is_not_fully_qualified_is_an_error() {
    let keys = keys();
    let run = check_mail(
        &keys,
        Broken::Nothing,
        &["--hostname", "mailhost", "--local-domains", "good.test"],
    );
    assert_problem(
        &run,
        "error",
        "mailhost: the host name mailhost is not a fully qualified name",
        "set --hostname to the server's public name, e.g. mail.good.test",
    );
    // The PTR names mx.test, not mailhost.
    assert_has(&run, "warning: 127.0.0.1: the PTR of 127.0.0.1 is mx.test (forward-confirmed), not the host name mailhost");
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
