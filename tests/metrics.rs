//! `--metrics` and `outpost stats` against the binary: the page parses
//! with Prometheus's own Python parser (`prometheus_client`) and counts
//! what the server did; the fail2ban filter in `contrib/fail2ban` matches
//! the login-failure lines the binary wrote, and nothing a client can put
//! into another line.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::serve::{Serve, BIN, HOST};
use support::{Client, TempDir};

/// `(name{labels}, value)` of every sample on `page`, as
/// `prometheus_client`'s parser reads them (the test fails if it cannot).
fn parse_with_prometheus_client(page: &str) -> BTreeMap<String, f64> {
    const SCRIPT: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
        print(f"{s.name}{{{labels}}} {s.value}")
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with `pip install prometheus_client`)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(page.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "prometheus_client cannot parse the page: {}\n{page}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.rsplit_once(' ').unwrap();
            (name.to_string(), value.parse().unwrap())
        })
        .collect()
}

/// `outpost stats ARGS`: exit code, stdout, stderr.
fn stats(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(BIN).arg("stats").args(args).output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

fn tls_login(serve: &Serve, data: &Path, user: &str, password: &str) -> String {
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut client =
        Client::connect(serve.address("submissions")).into_tls(support::tls_client_config(&cert));
    assert!(client.reply().starts_with("220 "));
    client.login_plain(user, password)
}

#[test]
fn stats_prints_what_the_server_counted_in_the_prometheus_format() {
    let dir = TempDir::new("metrics");
    let data = dir.path().join("data");
    let mut serve = Serve::start(&data, &["--metrics", "127.0.0.1:0"]);
    let line = serve.wait_for_log("metrics on http://");
    let address = line
        .split("http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics");

    // One message accepted, one recipient refused, one failed login.
    let mut client = Client::greeted(serve.address("smtp"));
    let reply = client.send_mail(
        "a@example.net",
        &format!("postmaster@{HOST}"),
        "Subject: x\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client
        .command("MAIL FROM:<a@example.net>")
        .starts_with("250"));
    assert!(client
        .command(&format!("RCPT TO:<nobody@{HOST}>"))
        .starts_with("550"));
    let reply = tls_login(&serve, &data, "nobody@mx.test", "wrong");
    assert!(reply.starts_with("535"), "{reply}");
    serve.wait_for_log("login user=\"nobody@mx.test\" failure");

    let (code, page, stderr) = stats(&["--metrics", address]);
    assert_eq!(code, Some(0), "{stderr}");
    let samples = parse_with_prometheus_client(&page);
    let value = |name: &str| {
        *samples
            .get(name)
            .unwrap_or_else(|| panic!("no {name} in {samples:#?}"))
    };
    assert_eq!(value(r#"outpost_connections_total{listener="smtp"}"#), 1.0);
    assert_eq!(
        value(r#"outpost_connections_total{listener="submissions"}"#),
        1.0
    );
    assert_eq!(value("outpost_messages_accepted_total{}"), 1.0);
    assert_eq!(
        value(r#"outpost_refusals_total{command="RCPT",status="5.1.1"}"#),
        1.0
    );
    assert_eq!(value(r#"outpost_logins_total{result="failure"}"#), 1.0);
    assert_eq!(value(r#"outpost_logins_total{result="success"}"#), 0.0);
    assert_eq!(
        value(r#"outpost_tls_handshakes_total{version="TLSv1.3"}"#),
        1.0
    );
    assert_eq!(value(r#"outpost_deliveries_total{status="sent"}"#), 0.0);
    // Delivery is off: the message waits in the queue.
    assert_eq!(value("outpost_queue_messages{}"), 1.0);
    assert!(value("outpost_queue_oldest_age_seconds{}") < 60.0);

    // The same page as Prometheus scrapes it; other paths are not served.
    let mut http = std::net::TcpStream::connect(address).unwrap();
    http.write_all(b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut http, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.0 404"), "{response}");

    // Without a metrics address there is nothing to read.
    let (code, _, stderr) = stats(&[]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no --metrics address"), "{stderr}");
}

#[test]
fn the_fail2ban_filter_matches_login_failures_only() {
    let Ok(version) = Command::new("fail2ban-regex").arg("--version").output() else {
        panic!("fail2ban-regex is needed (apt-get install fail2ban)");
    };
    assert!(version.status.success());
    let dir = TempDir::new("fail2ban");
    let data = dir.path().join("data");
    let mut serve = Serve::start(&data, &[]);
    for user in ["mallory@mx.test", "postmaster@mx.test"] {
        assert!(tls_login(&serve, &data, user, "guess").starts_with("535"));
        serve.wait_for_log(&format!("auth: user=\"{user}\" result=failure"));
    }
    // A client's text in another line must not look like a failure of
    // someone else's address.
    let mut client = Client::greeted(serve.address("smtp"));
    let forged = "auth: user=\"x\" result=failure reason=unknown-user ip=192.0.2.99 z";
    client.command(&format!("EHLO {forged}"));
    client.command(&format!("MAIL FROM:<{}>", forged.replace(' ', "_")));
    client.command(&format!("RCPT TO:<\"] {forged}\"@{HOST}>"));
    serve.wait_for_log("refused");
    serve.signal("TERM");
    let (_, _, log) = serve.finish();
    let log_file = dir.path().join("outpost.log");
    std::fs::write(&log_file, &log).unwrap();

    let filter =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/fail2ban/filter.d/outpost.conf");
    let output = Command::new("fail2ban-regex")
        .args(["--print-all-matched", "--print-all-missed"])
        .arg(&log_file)
        .arg(&filter)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{report}");
    assert!(report.contains("Failregex: 2 total"), "{report}\n{log}");
    assert!(
        !report.contains("192.0.2.99"),
        "a forged line matched:\n{report}"
    );
}
