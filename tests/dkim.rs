//! DKIM end to end on loopback: mail submitted on 587 (STARTTLS, AUTH) for
//! a remote domain is delivered through the loopback DNS responder to a
//! scripted receiver, and Python's dkimpy verifies the captured copy with
//! the key records exactly as `outpost dns` prints them; a tampered copy
//! fails. A non-delivery report to a remote sender is signed too. Also:
//! the printed records pass `outpost check --dns`, and keys made by
//! `openssl genpkey` are used, or refused when too short.

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use dns_server::{DnsServer, Rec, Zone};
use outpost::dkim::Algorithm;
use outpost::runtime::Server;
use support::fake_mx::{FakeMx, MxScript};
use support::{test_config, wait_until, Client, TempDir, TestServer, HOSTNAME};

const BIN: &str = env!("CARGO_BIN_EXE_outpost");

/// Checks every DKIM-Signature of the message in argv[1] with dkimpy; the
/// key records come from argv[2] (`name<TAB>string<TAB>string…` lines).
/// Prints `pass` or `fail` per signature, top first.
const VERIFY_PY: &str = r#"
import sys, dkim
message = open(sys.argv[1], 'rb').read()
records = {}
for line in open(sys.argv[2], encoding='ascii'):
    name, *strings = line.rstrip('\n').split('\t')
    records[name.lower()] = ''.join(strings).encode()
def dnsfunc(name, timeout=5):
    if isinstance(name, bytes):
        name = name.decode()
    return records.get(name.lower().rstrip('.') + '.')
def verdict(d, i):
    try:
        return 'pass' if d.verify(idx=i, dnsfunc=dnsfunc) else 'fail'
    except dkim.DKIMException:
        return 'fail'
d = dkim.DKIM(message)
count = sum(1 for h in d.headers if h[0].lower() == b'dkim-signature')
print(' '.join(verdict(d, i) for i in range(count)))
"#;

/// Runs `outpost ARGS`; returns stdout, after checking it succeeded.
fn outpost(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "outpost {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// One record line of `outpost dns`: name, type, and the data (TXT: its
/// quoted strings, unquoted).
struct Record {
    name: String,
    kind: String,
    data: Vec<String>,
}

fn parse_zone(text: &str) -> Vec<Record> {
    let mut records = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with(';')) {
        let mut words = line.splitn(5, ' ');
        let name = words.next().unwrap().to_string();
        assert_eq!(words.next(), Some("3600"), "{line}");
        assert_eq!(words.next(), Some("IN"), "{line}");
        let kind = words.next().unwrap().to_string();
        let rest = words.next().unwrap();
        let data = if kind == "TXT" {
            let strings: Vec<String> = rest
                .split('"')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect();
            assert!(strings.iter().all(|s| s.len() <= 255), "{line}");
            strings
        } else {
            vec![rest.to_string()]
        };
        records.push(Record { name, kind, data });
    }
    records
}

/// What dkimpy says of each signature of `message`, given the key records
/// `outpost dns DOMAIN` prints for `data_dir`.
fn dkimpy_verdicts(message: &[u8], data_dir: &Path, domain: &str) -> String {
    let zone = outpost(&[
        "dns",
        domain,
        "--data-dir",
        data_dir.to_str().unwrap(),
        "--hostname",
        HOSTNAME,
    ]);
    let dir = TempDir::new("dkimpy");
    let mut keys = String::new();
    for record in parse_zone(&zone) {
        if record.name.contains("._domainkey.") {
            keys.push_str(&format!("{}\t{}\n", record.name, record.data.join("\t")));
        }
    }
    assert!(!keys.is_empty(), "no key records in\n{zone}");
    std::fs::write(dir.path().join("records"), keys).unwrap();
    std::fs::write(dir.path().join("message"), message).unwrap();
    let output = Command::new("python3")
        .args(["-c", VERIFY_PY])
        .arg(dir.path().join("message"))
        .arg(dir.path().join("records"))
        .output()
        .expect("python3 with dkimpy (pip install dkimpy pynacl)");
    assert!(
        output.status.success(),
        "dkimpy: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// A server that delivers to `rx.test`'s MX, the scripted `rx`.
fn delivering_server(rx: &FakeMx, dns: &DnsServer, algorithms: Vec<Algorithm>) -> TestServer {
    let dns_addr = dns.addr;
    let port = rx.addr().port();
    TestServer::start_with(&[("alice@mx.test", "secret")], move |c| {
        c.deliver = true;
        c.delivery.dns_server = Some(dns_addr);
        c.delivery.mx_port = port;
        c.dkim.algorithms = algorithms;
    })
}

fn rx_zone() -> Zone {
    Zone::new()
        .add("rx.test", Rec::Mx(10, "mx.rx.test".into()))
        .add("mx.rx.test", Rec::A(Ipv4Addr::LOCALHOST))
}

const MESSAGE: &str = "From: Alice <alice@mx.test>\r\nTo: bob@rx.test\r\nSubject: signed\r\n\
    Date: Sat, 05 Dec 2026 10:00:00 +0000\r\nMessage-ID: <1@mx.test>\r\n\r\n\
    Hello Bob,  \r\n\r\n..a line that starts with a dot\r\n\r\n\r\n";

#[test]
fn mail_submitted_on_587_leaves_signed_and_dkimpy_verifies_it() {
    let dns = DnsServer::start(rx_zone());
    let rx = MxScript::new().start();
    let server = delivering_server(&rx, &dns, vec![Algorithm::Rsa, Algorithm::Ed25519]);
    let mut client = Client::greeted(server.submission());
    client.command("EHLO client.test");
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut client = client.into_tls(server.tls_client_config());
    assert!(client
        .login_plain("alice@mx.test", "secret")
        .starts_with("235"));
    let reply = client.transaction("alice@mx.test", "bob@rx.test", MESSAGE);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_until(Duration::from_secs(15), || rx.messages().len() == 1));
    let delivered = rx.messages().remove(0);
    let text = String::from_utf8_lossy(&delivered).into_owned();
    assert!(
        text.starts_with("DKIM-Signature: v=1; a=rsa-sha256;"),
        "{text}"
    );
    assert_eq!(text.matches("DKIM-Signature: ").count(), 2, "{text}");
    assert!(text.contains(" d=mx.test;"), "{text}");

    assert_eq!(
        dkimpy_verdicts(&delivered, server.data_dir(), HOSTNAME),
        "pass pass"
    );
    let tampered = text.replace("Hello Bob", "Hello Eve");
    assert_eq!(
        dkimpy_verdicts(tampered.as_bytes(), server.data_dir(), HOSTNAME),
        "fail fail"
    );
    let added_from = format!("From: mallory@mx.test\r\n{text}");
    assert_eq!(
        dkimpy_verdicts(added_from.as_bytes(), server.data_dir(), HOSTNAME),
        "fail fail",
        "From is over-signed"
    );
}

#[test]
fn a_report_to_a_remote_sender_is_signed_too() {
    let dns = DnsServer::start(rx_zone());
    // The first delivery (the message) is refused; the second (the
    // report to its sender, also at rx.test) is taken.
    let rx = MxScript::new()
        .reply_per_connection("RCPT", |n| {
            if n == 0 {
                "550 5.1.1 No such user here".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        })
        .start();
    let server = delivering_server(&rx, &dns, vec![Algorithm::Rsa]);
    // Loopback is a relay network: mail from a remote sender to a remote
    // recipient, as a device on the local network sends it.
    let mut client = Client::greeted(server.smtp());
    let body = "From: carol@rx.test\r\nTo: nobody@rx.test\r\nSubject: lost\r\n\r\nhello\r\n";
    let reply = client.send_mail("carol@rx.test", "nobody@rx.test", body);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(wait_until(Duration::from_secs(15), || rx.messages().len() == 1));
    let report = rx.messages().remove(0);
    let text = String::from_utf8_lossy(&report).into_owned();
    assert!(
        text.contains("From: Mail Delivery System <MAILER-DAEMON@mx.test>"),
        "{text}"
    );
    assert!(text.starts_with("DKIM-Signature: "), "{text}");
    let sessions = rx.wait_for_sessions(2);
    assert!(
        sessions[1].text().contains("MAIL FROM:<>"),
        "{}",
        sessions[1].text()
    );
    assert_eq!(
        dkimpy_verdicts(&report, server.data_dir(), HOSTNAME),
        "pass"
    );
}

#[test]
fn printed_records_pass_the_dns_check() {
    let dir = TempDir::new("dns-records");
    let zone_text = outpost(&[
        "dns",
        "example.test",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--hostname",
        "mx.example.test",
        "--local-domains",
        "example.test",
    ]);
    let records = parse_zone(&zone_text);
    let kinds: Vec<&str> = records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["MX", "TXT", "TXT", "TXT", "TXT", "SRV", "SRV"],
        "{zone_text}"
    );
    assert!(zone_text.contains("; PTR: "), "{zone_text}");
    // The MX host's address is the operator's to publish; the test's is
    // from the documentation range.
    let address = Ipv4Addr::new(192, 0, 2, 1);
    let mut zone = Zone::new()
        .add("mx.example.test", Rec::A(address))
        .ptr(address.into(), "mx.example.test");
    for record in &records {
        let name = record.name.trim_end_matches('.');
        zone = match record.kind.as_str() {
            "MX" => {
                let (preference, host) = record.data[0].split_once(' ').unwrap();
                zone.add(
                    name,
                    Rec::Mx(
                        preference.parse().unwrap(),
                        host.trim_end_matches('.').into(),
                    ),
                )
            }
            "TXT" => zone.add(name, Rec::TxtStrings(record.data.clone())),
            _ => zone,
        };
    }
    let dns = DnsServer::start(zone);
    let server: SocketAddr = dns.addr;
    // Checked as the server that printed them, sending from the MX host's
    // address.
    let output = Command::new(BIN)
        .args(["check", "--dns", "example.test", "--timeout", "2s"])
        .args(["--dns-server", &server.to_string()])
        .args(["--source-address", &address.to_string()])
        .args(["--data-dir", dir.path().to_str().unwrap()])
        .args(["--hostname", "mx.example.test"])
        .args(["--local-domains", "example.test"])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(!report.contains("error"), "{report}");
    assert!(!report.contains("warning"), "{report}");
    assert!(report.contains("matches this server's key"), "{report}");
    assert!(report.contains("SPF: v=spf1 mx -all"), "{report}");
    // A second run prints the same keys: they were created once.
    let again = outpost(&[
        "dns",
        "example.test",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--hostname",
        "mx.example.test",
    ]);
    assert_eq!(again, zone_text);
}

/// Writes an RSA key of `bits` with `openssl genpkey` to `path`.
fn openssl_rsa_key(path: &Path, bits: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("openssl")
        .args(["genpkey", "-algorithm", "RSA", "-pkeyopt"])
        .arg(format!("rsa_keygen_bits:{bits}"))
        .arg("-out")
        .arg(path)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
}

#[test]
fn openssl_keys_are_used_and_short_ones_refused() {
    let dir = TempDir::new("dkim-openssl");
    let key = dir.path().join("dkim/mx.test/mine.key");
    openssl_rsa_key(&key, 2048);
    let text = outpost(&[
        "dns",
        "mx.test",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--hostname",
        "mx.test",
        "--dkim-selector",
        "mine",
    ]);
    assert!(text.contains("; DKIM key mine (rsa-sha256), signs now\nmine._domainkey.mx.test. 3600 IN TXT \"v=DKIM1; k=rsa; p=MIIBIjAN"), "{text}");

    openssl_rsa_key(&key, 1024);
    let mut config = test_config(dir.path());
    config.dkim.selector = Some("mine".into());
    outpost::cli::first_start::prepare(&config).unwrap();
    let err = Server::start(config)
        .err()
        .expect("a 1024-bit key is refused");
    let message = err.to_string();
    assert!(
        message.contains("mine.key") && message.contains("1024 bits is too short"),
        "{message}"
    );
}
