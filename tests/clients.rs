//! Real third-party clients against the real server: Python's smtplib,
//! curl and swaks, each a separate process bounded by a timeout, each
//! checked by the message it leaves in the queue. A missing tool skips its
//! test with a note on stderr (CI installs swaks and curl; python3 is part
//! of the base image).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outpost::queue::{QueuedMessage, Spool};
use support::*;

const ALICE: &str = "alice@mx.test";
const ALICE_PASSWORD: &str = "correct horse battery staple";
const REMOTE: &str = "bob@example.org";

/// How long an external client may run before it is killed.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Is `tool` on the PATH? If not, says so: the test is skipped.
fn installed(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !found {
        eprintln!("note: {tool} is not installed; skipping this test");
    }
    found
}

/// What a finished client printed.
struct Run {
    success: bool,
    output: String,
}

/// Runs `command` with its output going to files in `dir`, killing it
/// after [`CLIENT_TIMEOUT`].
fn run_bounded(mut command: Command, dir: &Path) -> Run {
    let out_path = dir.join("client.out");
    let err_path = dir.join("client.err");
    command
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > CLIENT_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = format!(
        "stdout:\n{}\nstderr:\n{}",
        std::fs::read_to_string(&out_path).unwrap_or_default(),
        std::fs::read_to_string(&err_path).unwrap_or_default()
    );
    assert!(
        status.is_some(),
        "client did not finish in {CLIENT_TIMEOUT:?}\n{output}"
    );
    Run {
        success: status.is_some_and(|s| s.success()),
        output,
    }
}

/// The server's certificate as a file for the clients' `--cacert`.
fn ca_file(server: &TestServer, dir: &Path) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, &server.cert_pem).unwrap();
    path
}

/// The only queued message, with its bytes as text.
fn only_queued(server: &TestServer) -> (QueuedMessage, String) {
    let spool = Spool::attach(server.data_dir(), HOSTNAME).unwrap();
    let ids = spool.list().unwrap();
    assert_eq!(ids.len(), 1, "queued: {ids:?}");
    let message = spool.load(&ids[0]).unwrap();
    let bytes = spool.read_message(&ids[0]).unwrap();
    (message, String::from_utf8_lossy(&bytes).into_owned())
}

fn assert_envelope(message: &QueuedMessage, sender: &str, recipient: &str) {
    assert_eq!(message.mail_from.sender, sender);
    let recipients: Vec<&str> = message
        .recipients
        .iter()
        .map(|e| e.recipient.address.as_str())
        .collect();
    assert_eq!(recipients, [recipient]);
}

// ---------------------------------------------------------------------------
// Python smtplib.

/// Sends one message with smtplib. `mode` is `starttls` (SMTP, starttls,
/// login) or `ssl` (SMTP_SSL, login). The certificate chain is verified
/// against the server's own certificate; the name is not, since the
/// certificate names mx.test and we connect to 127.0.0.1.
const PYTHON_CLIENT: &str = r#"
import smtplib, ssl, sys
mode, port, cafile, user, password, sender, recipient = sys.argv[1:8]
context = ssl.create_default_context(cafile=cafile)
context.check_hostname = False
context.verify_mode = ssl.CERT_REQUIRED
message = ("From: %s\r\nTo: %s\r\nSubject: smtplib %s\r\n\r\nSent by Python's smtplib.\r\n"
           % (sender, recipient, mode))
if mode == "ssl":
    client = smtplib.SMTP_SSL("127.0.0.1", int(port), context=context, timeout=20)
else:
    client = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
    client.ehlo()
    client.starttls(context=context)
client.ehlo()
client.login(user, password)
refused = client.sendmail(sender, [recipient], message)
assert not refused, refused
client.quit()
print("sent")
"#;

fn python_sends(mode: &str, port_of: fn(&TestServer) -> std::net::SocketAddr) {
    if !installed("python3") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("smtplib");
    let cafile = ca_file(&server, dir.path());
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(PYTHON_CLIENT)
        .arg(mode)
        .arg(port_of(&server).port().to_string())
        .arg(&cafile)
        .args([ALICE, ALICE_PASSWORD, ALICE, REMOTE]);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "smtplib failed\n{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert_eq!(
        message.origin.client().unwrap().auth_user.as_deref(),
        Some(ALICE)
    );
    assert!(message.origin.client().unwrap().tls.is_some());
    assert!(text.contains(&format!("Subject: smtplib {mode}")), "{text}");
}

#[test]
fn python_smtplib_starttls_and_login_on_submission() {
    python_sends("starttls", TestServer::submission);
}

#[test]
fn python_smtplib_ssl_on_submissions() {
    python_sends("ssl", TestServer::submissions);
}

// ---------------------------------------------------------------------------
// curl.

/// curl's arguments for `scheme://mx.test:port`, with `mx.test` pinned to
/// 127.0.0.1 (no resolver) so the certificate's name checks out.
fn curl_command(scheme: &str, port: u16, cafile: &Path, mail: &Path) -> Command {
    let mut command = Command::new("curl");
    command
        .args(["--silent", "--show-error", "--max-time", "20"])
        .arg("--resolve")
        .arg(format!("{HOSTNAME}:{port}:127.0.0.1"))
        .arg("--url")
        .arg(format!("{scheme}://{HOSTNAME}:{port}"))
        .arg("--cacert")
        .arg(cafile)
        .arg("--upload-file")
        .arg(mail);
    command
}

fn curl_mail(dir: &Path, subject: &str) -> PathBuf {
    let path = dir.join("mail.txt");
    std::fs::write(
        &path,
        format!("From: {ALICE}\r\nTo: {REMOTE}\r\nSubject: {subject}\r\n\r\nSent by curl.\r\n"),
    )
    .unwrap();
    path
}

#[test]
fn curl_starttls_and_login_on_submission() {
    if !installed("curl") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("curl");
    let cafile = ca_file(&server, dir.path());
    let mail = curl_mail(dir.path(), "curl starttls");
    let mut command = curl_command("smtp", server.submission().port(), &cafile, &mail);
    command
        .arg("--ssl-reqd")
        .args(["--mail-from", ALICE, "--mail-rcpt", REMOTE])
        .arg("--user")
        .arg(format!("{ALICE}:{ALICE_PASSWORD}"));
    let run = run_bounded(command, dir.path());
    assert!(run.success, "curl failed\n{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert_eq!(
        message.origin.client().unwrap().auth_user.as_deref(),
        Some(ALICE)
    );
    assert!(text.contains("Subject: curl starttls"), "{text}");
}

#[test]
fn curl_implicit_tls_on_submissions() {
    if !installed("curl") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("curl");
    let cafile = ca_file(&server, dir.path());
    let mail = curl_mail(dir.path(), "curl smtps");
    let mut command = curl_command("smtps", server.submissions().port(), &cafile, &mail);
    command
        .args(["--mail-from", ALICE, "--mail-rcpt", REMOTE])
        .arg("--user")
        .arg(format!("{ALICE}:{ALICE_PASSWORD}"));
    let run = run_bounded(command, dir.path());
    assert!(run.success, "curl failed\n{}", run.output);
    let (message, _) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert_eq!(
        message.origin.client().unwrap().tls.as_deref(),
        Some("TLSv1.3")
    );
}

#[test]
fn curl_wrong_password_is_refused_and_nothing_is_queued() {
    if !installed("curl") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("curl");
    let cafile = ca_file(&server, dir.path());
    let mail = curl_mail(dir.path(), "curl wrong password");
    let mut command = curl_command("smtps", server.submissions().port(), &cafile, &mail);
    command
        .args(["--mail-from", ALICE, "--mail-rcpt", REMOTE])
        .arg("--user")
        .arg(format!("{ALICE}:not the password"));
    let run = run_bounded(command, dir.path());
    assert!(!run.success, "curl should have failed\n{}", run.output);
    assert!(server.queued_messages().is_empty());
}

/// An old script's way: MAIL and RCPT without angle brackets (sent with
/// `docmd`, as smtplib itself always adds them), then a message with a
/// line longer than 1000 octets.
const PYTHON_UNBRACKETED: &str = r#"
import smtplib, sys
port, sender, recipient, line = sys.argv[1:5]
client = smtplib.SMTP("127.0.0.1", int(port), timeout=20)
client.ehlo("old-scanner.test")
for verb, argument in (("MAIL", "FROM: %s SIZE=10000" % sender), ("RCPT", "TO: %s" % recipient)):
    code, text = client.docmd(verb, argument)
    assert code == 250, (verb, code, text)
code, text = client.data("Subject: smtplib unbracketed\r\n\r\n%s\r\n" % line)
assert code == 250, (code, text)
client.quit()
print("sent")
"#;

#[test]
fn python_smtplib_without_angle_brackets_and_with_a_long_line() {
    if !installed("python3") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("smtplib");
    let line = "L".repeat(3000);
    let mut command = Command::new("python3");
    command
        .arg("-c")
        .arg(PYTHON_UNBRACKETED)
        .arg(server.smtp().port().to_string())
        .args([REMOTE, ALICE, &line]);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "smtplib failed\n{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, REMOTE, ALICE);
    assert!(
        text.ends_with(&format!("Subject: smtplib unbracketed\r\n\r\n{line}\r\n")),
        "{text}"
    );
}

// ---------------------------------------------------------------------------
// swaks.

fn swaks_command(port: u16, cafile: &Path) -> Command {
    let mut command = Command::new("swaks");
    command
        .args(["--server", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .args(["--timeout", "20", "--tls-verify", "--tls-sni", HOSTNAME])
        .arg("--tls-ca-path")
        .arg(cafile)
        .args(["--from", ALICE, "--to", REMOTE]);
    command
}

#[test]
fn swaks_starttls_and_auth_login_on_submission() {
    if !installed("swaks") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("swaks");
    let cafile = ca_file(&server, dir.path());
    let mut command = swaks_command(server.submission().port(), &cafile);
    command
        .args(["-tls", "--auth", "LOGIN", "--auth-user", ALICE])
        .args(["--auth-password", ALICE_PASSWORD])
        .args(["--header", "Subject: swaks starttls"]);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "swaks failed\n{}", run.output);
    // swaks shows the dialogue: Outlook's exact challenges went over TLS.
    assert!(run.output.contains("334 VXNlcm5hbWU6"), "{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert_eq!(
        message.origin.client().unwrap().auth_user.as_deref(),
        Some(ALICE)
    );
    assert!(text.contains("Subject: swaks starttls"), "{text}");
}

#[test]
fn swaks_tls_on_connect_and_auth_plain_on_submissions() {
    if !installed("swaks") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("swaks");
    let cafile = ca_file(&server, dir.path());
    let mut command = swaks_command(server.submissions().port(), &cafile);
    command
        .args(["--tls-on-connect", "--auth", "PLAIN", "--auth-user", ALICE])
        .args(["--auth-password", ALICE_PASSWORD])
        .args(["--header", "Subject: swaks tlsc"]);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "swaks failed\n{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert!(text.contains("Subject: swaks tlsc"), "{text}");
}

#[test]
fn swaks_pipelined_plain_delivery_to_a_local_user() {
    if !installed("swaks") {
        return;
    }
    let server = TestServer::start_with(&[(ALICE, ALICE_PASSWORD)], |c| {
        c.relay_networks = Vec::new();
    });
    let dir = TempDir::new("swaks");
    let mut command = Command::new("swaks");
    command
        .args(["--server", "127.0.0.1", "--port"])
        .arg(server.smtp().port().to_string())
        .args(["--timeout", "20", "--pipeline"])
        .args(["--from", "someone@example.org", "--to", ALICE])
        .args(["--header", "Subject: swaks pipelined"]);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "swaks failed\n{}", run.output);
    let (message, _) = only_queued(&server);
    assert_envelope(&message, "someone@example.org", ALICE);
    assert_eq!(message.origin.client().unwrap().auth_user, None);
}

#[test]
fn swaks_and_curl_really_verify_the_certificate() {
    // Without the server's certificate as CA the same commands must fail,
    // or the tests above would prove nothing about TLS verification.
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("verify");
    let stranger = TempDir::new("stranger");
    let other = TestServer::start(&[]);
    let wrong_ca = ca_file(&other, stranger.path());
    if installed("swaks") {
        let mut command = swaks_command(server.submissions().port(), &wrong_ca);
        command
            .args(["--tls-on-connect", "--auth", "PLAIN", "--auth-user", ALICE])
            .args(["--auth-password", ALICE_PASSWORD]);
        let run = run_bounded(command, dir.path());
        assert!(!run.success, "swaks trusted a stranger\n{}", run.output);
    }
    if installed("curl") {
        let mail = curl_mail(dir.path(), "untrusted");
        let mut command = curl_command("smtps", server.submissions().port(), &wrong_ca, &mail);
        command
            .args(["--mail-from", ALICE, "--mail-rcpt", REMOTE])
            .arg("--user")
            .arg(format!("{ALICE}:{ALICE_PASSWORD}"));
        let run = run_bounded(command, dir.path());
        assert!(!run.success, "curl trusted a stranger\n{}", run.output);
    }
    assert!(server.queued_messages().is_empty());
}

#[test]
fn swaks_sends_a_long_line_that_is_queued_unchanged() {
    if !installed("swaks") {
        return;
    }
    let server = TestServer::start(&[(ALICE, ALICE_PASSWORD)]);
    let dir = TempDir::new("swaks");
    let cafile = ca_file(&server, dir.path());
    let line = "W".repeat(4000);
    let mut command = swaks_command(server.smtp().port(), &cafile);
    command
        .args(["--header", "Subject: swaks long line", "--body"])
        .arg(&line);
    let run = run_bounded(command, dir.path());
    assert!(run.success, "swaks failed\n{}", run.output);
    let (message, text) = only_queued(&server);
    assert_envelope(&message, ALICE, REMOTE);
    assert!(text.contains(&format!("\r\n\r\n{line}\r\n")), "{text}");
}
