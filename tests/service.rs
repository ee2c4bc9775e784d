//! The `outpost` binary as a service runs it: one server per data
//! directory, the first start, the start-up summary, the configuration
//! check, user management against a running server and the systemd
//! notifications. Every server here is a child process on loopback port-0
//! listeners; its addresses come from its `listening on` log lines.

mod support;

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::serve::{Serve, BIN, HOST};
use support::{Client, TempDir};

/// Runs `outpost ARGS` to its end.
fn outpost(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn a_second_server_on_the_same_data_dir_exits_naming_the_first() {
    let dir = TempDir::new("two-servers");
    let data = dir.path().join("data");
    let first = Serve::start(&data, &[]);
    // A message in flight: the second server's start-up clean-up would
    // delete it if it ran.
    let in_flight = data.join("queue/0123456789abcdef.msg");
    std::fs::write(&in_flight, b"in flight").unwrap();
    // Mode 0200: the mark of a message file still being written.
    std::fs::set_permissions(&in_flight, std::fs::Permissions::from_mode(0o200)).unwrap();

    let second = Serve::spawn(&data, &[]);
    let (code, _, log) = second.finish();
    assert_eq!(code, Some(1), "{log}");
    let want = format!(
        "another outpost (pid {}) is serving {}",
        first.child.id(),
        data.display()
    );
    assert!(log.contains(&want), "{log}");
    assert!(in_flight.exists(), "the second server touched the queue");
    assert_eq!(
        std::fs::read_to_string(data.join("lock")).unwrap().trim(),
        first.child.id().to_string()
    );

    // The queue tools work beside the running server.
    let list = outpost(&["queue", "list", "--data-dir", data.to_str().unwrap()]);
    assert!(list.status.success(), "{list:?}");
    let mut client = Client::greeted(first.address("smtp"));
    assert!(client.command("QUIT").starts_with("221"));

    // Once the first has stopped, a new server starts on the directory.
    first.signal("TERM");
    let (code, _, _) = first.finish();
    assert_eq!(code, Some(0));
    let again = Serve::start(&data, &[]);
    again.signal("TERM");
    assert_eq!(again.finish().0, Some(0));
}

#[test]
fn a_port_in_use_stops_a_first_start_before_it_creates_anything() {
    let dir = TempDir::new("port-in-use");
    let data = dir.path().join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().map(|a| (taken, a)).unwrap();
    let serve = Serve::spawn(&data, &["--submission", &taken.1.to_string()]);
    let (code, stdout, log) = serve.finish();
    assert_eq!(code, Some(1), "{log}");
    assert!(
        log.contains(&format!("cannot listen on {}", taken.1)),
        "{log}"
    );
    assert!(!stdout.contains("Password"), "{stdout}");
    assert!(!data.join("users").exists());
    assert!(!data.join("tls").exists());
    assert!(!data.join("queue").exists());
}

#[test]
fn a_first_start_that_fails_later_removes_its_users_file() {
    let dir = TempDir::new("failed-first-start");
    let data = dir.path().join("data");
    let missing = dir.path().join("no-such-aliases");
    let serve = Serve::spawn(&data, &["--aliases", missing.to_str().unwrap()]);
    let (code, stdout, log) = serve.finish();
    assert_eq!(code, Some(1), "{log}");
    assert!(!stdout.contains("Password"), "{stdout}");
    assert!(!data.join("users").exists(), "{log}");
    assert!(!data.join("password-not-shown").exists());

    // The next start is a first start again, and shows its password.
    let serve = Serve::start(&data, &[]);
    serve.signal("TERM");
    let (code, stdout, log) = serve.finish();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        stdout.contains(&format!("User name: postmaster@{HOST}")),
        "{stdout}"
    );
    assert!(stdout.contains("Password: "), "{stdout}");
    assert!(data.join("users").exists());
    assert!(!data.join("password-not-shown").exists());
    assert!(!log.contains("never shown"), "{log}");
}

#[test]
fn version_flags_print_the_version() {
    for flag in ["--version", "-V"] {
        let output = outpost(&[flag]);
        assert!(output.status.success());
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("outpost {}\n", env!("CARGO_PKG_VERSION"))
        );
    }
}

/// Writes a self-signed pair for `names`, valid until `not_after` (year,
/// month, day), as `cert.pem` and `key.pem` in `dir`.
fn certificate(dir: &Path, names: &[&str], not_after: (i32, u8, u8)) -> (String, String) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = rcgen::date_time_ymd(2019, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let text = |p: &Path| p.to_str().unwrap().to_string();
    (text(&cert_path), text(&key_path))
}

#[test]
fn the_start_summary_and_its_warnings_are_logged_at_start_and_reload() {
    let dir = TempDir::new("summary");
    let (cert, key) = certificate(dir.path(), &["other.example"], (2020, 1, 1));
    let args = ["--tls-cert", &cert, "--tls-key", &key, "--sink"];
    let mut serve = Serve::start(&dir.path().join("data"), &args);
    let line = serve.wait_for_log("; certificate for ");
    let want = format!(
        "outpost {} as {HOST}: local domains {HOST}; 1 user; certificate for other.example \
         until 2020-01-01; delivery sink",
        env!("CARGO_PKG_VERSION")
    );
    assert!(line.contains(&want), "{line}");
    serve.wait_for_log("expired on 2020-01-01");
    serve.wait_for_log(&format!(
        "the host name {HOST} is not among the TLS certificate's names (other.example)"
    ));
    serve.wait_for_log("--sink is on");

    // A renewed certificate: the summary after SIGHUP names it, without warnings.
    certificate(dir.path(), &[HOST], (2999, 1, 1));
    serve.signal("HUP");
    let line = serve.wait_for_log("; certificate for ");
    assert!(
        line.contains(&format!("certificate for {HOST} until 2999-01-01")),
        "{line}"
    );
    serve.signal("TERM");
    let (code, _, log) = serve.finish();
    assert_eq!(code, Some(0));
    let after_reload = log.rsplit("; certificate for ").next().unwrap();
    assert!(!after_reload.contains("expired"), "{log}");
}

#[test]
fn a_config_file_with_quotes_and_a_users_file_with_a_byte_order_mark() {
    let dir = TempDir::new("config-file");
    let data = dir.path().join("data");
    let config = dir.path().join("outpost.conf");
    let users = dir.path().join("users");
    std::fs::write(
        &config,
        "\u{feff}# written by Notepad\nhostname = \"mail.example.com\"\nlocal-domains = 'example.com'\n",
    )
    .unwrap();
    let hash = outpost::auth::hash_password("secret");
    std::fs::write(&users, format!("\u{feff}alice@example.com:{hash}\r\n")).unwrap();
    let (config_arg, users_arg) = (config.to_str().unwrap(), users.to_str().unwrap());
    let serve = Serve::run(
        Command::new(BIN)
            .args(["serve", "--config", config_arg, "--users", users_arg])
            .args(["--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0"])
            .args(["--submissions", "off", "--delivery", "off"])
            .arg("--data-dir")
            .arg(&data),
    )
    .listening(2);
    let mut client = Client::connect(serve.address("smtp"));
    let greeting = client.reply();
    assert!(greeting.starts_with("220 mail.example.com "), "{greeting}");
    client.command("EHLO client.test");
    client.command("MAIL FROM:<someone@other.example>");
    let rcpt = client.command("RCPT TO:<alice@example.com>");
    assert!(rcpt.starts_with("250"), "example.com is local: {rcpt}");
    // The certificate generated for mail.example.com: log in under that name.
    let mut plain = Client::greeted(serve.address("submission"));
    plain.command("EHLO client.test");
    assert!(plain.command("STARTTLS").starts_with("220"));
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let name = rustls::pki_types::ServerName::try_from("mail.example.com").unwrap();
    let connection =
        rustls::ClientConnection::new(support::tls_client_config(&cert), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, plain.stream);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    let mut client = Client::from_stream(stream);
    let auth = client.login_plain("alice@example.com", "secret");
    assert!(auth.starts_with("235"), "{auth}");
}

#[test]
fn check_config_prints_each_setting_with_its_source() {
    let dir = TempDir::new("check-config");
    let data = dir.path().join("data");
    let config = dir.path().join("outpost.conf");
    std::fs::write(&config, "# limits\nmax-recipients = 7\n").unwrap();
    let config_arg = config.to_str().unwrap();
    let data_arg = data.to_str().unwrap();
    let check = |extra: &[&str]| {
        let mut args = vec!["serve", "--check-config", "--data-dir", data_arg];
        args.extend_from_slice(extra);
        outpost(&args)
    };
    let output = check(&["--config", config_arg, "--hostname", "mx.example"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let line = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(&format!("{name} = ")))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        line("max-recipients"),
        format!("max-recipients = 7 # {config_arg}:2")
    );
    assert_eq!(line("hostname"), "hostname = mx.example # command line");
    assert_eq!(line("max-received"), "max-received = 50 # default");
    assert!(text.contains("configuration OK"), "{text}");
    assert!(!data.exists(), "--check-config created the data directory");

    // A warning is not an error; a second line for one option is.
    let output = check(&["--hostname", "mailhost"]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert!(
        text.contains("warning: the host name mailhost is not fully qualified"),
        "{text}"
    );
    std::fs::write(&config, "max-recipients = 7\nmax-recipients = 8\n").unwrap();
    let output = check(&["--config", config_arg]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let text = String::from_utf8_lossy(&output.stderr);
    assert!(
        text.contains(&format!(
            "{config_arg}:2: max-recipients is already set on line 1"
        )),
        "{text}"
    );
    // A users file that does not parse fails the check.
    let users = dir.path().join("users");
    std::fs::write(&users, "not a users line\n").unwrap();
    let output = check(&["--users", users.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("error: "));
}
/// EHLO, STARTTLS and AUTH PLAIN on `serve`'s submission port: the AUTH reply.
fn login(serve: &Serve, data: &Path, user: &str, password: &str) -> String {
    let mut plain = Client::greeted(serve.address("submission"));
    assert!(plain.command("EHLO client.test").contains("STARTTLS"));
    assert!(plain.command("STARTTLS").starts_with("220"));
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let mut client = plain.into_tls(support::tls_client_config(&cert));
    client.login_plain(user, password)
}

/// Runs `outpost users ARGS --data-dir DATA` with `stdin`: exit code,
/// stdout and stderr.
fn users(data: &Path, args: &[&str], stdin: &str) -> (Option<i32>, String, String) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .arg("users")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read its input may have exited already.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let output = child.wait_with_output().unwrap();
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).into_owned();
    (
        output.status.code(),
        text(output.stdout),
        text(output.stderr),
    )
}

#[test]
fn users_command_changes_what_a_running_server_accepts() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("users-command");
    let data = dir.path().join("data");
    let mut serve = Serve::start(&data, &[]);
    let bob = format!("bob@{HOST}");

    let (code, out, err) = users(&data, &["add", &bob], "first password\n");
    assert_eq!(code, Some(0), "{out}{err}");
    let pid = serve.child.id();
    assert!(
        out.contains(&format!("server (pid {pid}) is reloading")),
        "{out}"
    );
    serve.wait_for_log("(2 users)");
    assert!(login(&serve, &data, &bob, "first password").starts_with("235"));

    let (code, out, err) = users(&data, &["passwd", &bob], "second password\n");
    assert_eq!(code, Some(0), "{out}{err}");
    serve.wait_for_log("auth: reloaded");
    assert!(login(&serve, &data, &bob, "first password").starts_with("535"));
    assert!(login(&serve, &data, &bob, "second password").starts_with("235"));

    let (code, out, err) = users(&data, &["delete", &bob], "");
    assert_eq!(code, Some(0), "{out}{err}");
    serve.wait_for_log("(1 users)");
    assert!(login(&serve, &data, &bob, "second password").starts_with("535"));

    let (code, out, _) = users(&data, &["list"], "");
    assert_eq!((code, out), (Some(0), format!("postmaster@{HOST}\n")));
    let (code, _, err) = users(&data, &["delete", &bob], "");
    assert_eq!(code, Some(1));
    assert!(err.contains("is not a user"), "{err}");
    let (code, _, err) = users(&data, &["add", &format!("postmaster@{HOST}")], "x\n");
    assert_eq!(code, Some(1));
    assert!(err.contains("already a user"), "{err}");
    let mode = std::fs::metadata(data.join("users")).unwrap().permissions();
    assert_eq!(mode.mode() & 0o777, 0o600);

    // Without a server, the change waits for the next start.
    serve.signal("TERM");
    assert_eq!(serve.finish().0, Some(0));
    let (code, out, _) = users(&data, &["add", &bob], "third password\n");
    assert_eq!(code, Some(0));
    assert!(out.contains("no server is running"), "{out}");
}

#[test]
fn passwd_on_a_terminal_reads_twice_without_echo() {
    use std::io::Write;
    use std::sync::{Arc, Mutex};
    // `script` (util-linux) runs the command on a pseudo-terminal.
    let command = format!("{BIN} passwd alice@example.com");
    let run = |first: &str, second: &str| {
        let mut child = Command::new("script")
            .args(["-qec", &command, "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut stdout = child.stdout.take().unwrap();
        let sink = seen.clone();
        let reader = std::thread::spawn(move || {
            let mut chunk = [0u8; 256];
            while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                sink.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let mut stdin = child.stdin.take().unwrap();
        for (prompt, answer) in [("New password: ", first), ("Repeat it: ", second)] {
            let shown = || String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
            let deadline = Instant::now() + Duration::from_secs(10);
            while !shown().contains(prompt) {
                assert!(Instant::now() < deadline, "no {prompt:?} in {:?}", shown());
                std::thread::sleep(Duration::from_millis(20));
            }
            stdin.write_all(format!("{answer}\n").as_bytes()).unwrap();
        }
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let text = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
        (status.code(), text)
    };
    let (code, text) = run("hunter2", "hunter2");
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("alice@example.com:$6$"), "{text}");
    assert!(!text.contains("hunter2"), "the password was echoed: {text}");
    let (code, text) = run("hunter2", "hunter3");
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("the two passwords differ"), "{text}");
}

/// Receives the next datagram on `socket` (10 s at most), as text.
fn notice(socket: &std::os::unix::net::UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let n = socket.recv(&mut buffer).expect("no notice from the server");
    String::from_utf8_lossy(&buffer[..n]).into_owned()
}

/// Runs a server with `$NOTIFY_SOCKET` set to `name`, receiving on
/// `socket`: READY=1 once serving, RELOADING=1 then READY=1 around SIGHUP,
/// STOPPING=1 on SIGTERM.
fn notices_arrive(socket: &std::os::unix::net::UnixDatagram, name: &str) {
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = TempDir::new("notify");
    let data = dir.path().join("data");
    let mut command = Command::new(BIN);
    command
        .args(["serve", "--hostname", HOST, "--smtp", "127.0.0.1:0"])
        .args(["--submission", "off", "--submissions", "off"])
        .arg("--data-dir")
        .arg(&data)
        .env("NOTIFY_SOCKET", name);
    let serve = Serve::run(&mut command).listening(1);
    let ready = notice(socket);
    let pid = serve.child.id();
    assert!(ready.starts_with("READY=1\n"), "{ready}");
    assert!(ready.contains(&format!("MAINPID={pid}")), "{ready}");
    // Ready means serving: the greeting comes at once.
    let mut client = Client::greeted(serve.address("smtp"));
    assert!(client.command("QUIT").starts_with("221"));

    serve.signal("HUP");
    let reloading = notice(socket);
    assert!(
        reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="),
        "{reloading}"
    );
    assert!(notice(socket).starts_with("READY=1\n"));
    serve.signal("TERM");
    assert_eq!(notice(socket), "STOPPING=1");
    assert_eq!(serve.finish().0, Some(0));
}

#[test]
fn systemd_hears_ready_reloading_and_stopping_on_a_path_socket() {
    let dir = TempDir::new("notify-socket");
    let path = dir.path().join("notify");
    let socket = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    notices_arrive(&socket, path.to_str().unwrap());
}

#[test]
fn systemd_hears_ready_on_an_abstract_socket() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("outpost-test-notify-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let socket = std::os::unix::net::UnixDatagram::bind_addr(&address).unwrap();
    notices_arrive(&socket, &format!("@{name}"));
}

#[test]
fn the_sample_config_for_the_systemd_unit_passes_the_check() {
    let dir = TempDir::new("sample-config");
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/systemd/outpost.conf");
    let data = dir.path().join("data");
    let output = outpost(&[
        "serve",
        "--check-config",
        "--config",
        sample,
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let smtp = text.lines().find(|l| l.starts_with("smtp = ")).unwrap();
    let smtp: Vec<&str> = smtp.split_whitespace().collect();
    assert_eq!(
        smtp,
        ["smtp", "=", "0.0.0.0:25", "#", &format!("{sample}:5")]
    );
    assert!(!text.contains("warning:"), "{text}");
}

/// The `Uid:` or `Gid:` line of `/proc/PID/status`: real, effective,
/// saved and file-system ids.
fn process_ids(pid: u32, field: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .unwrap()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// The id `getent DATABASE NAME` gives (third field).
fn getent_id(database: &str, name: &str) -> u32 {
    let output = Command::new("getent")
        .args([database, name])
        .output()
        .unwrap();
    let line = String::from_utf8(output.stdout).unwrap();
    line.split(':').nth(2).unwrap().trim().parse().unwrap()
}

/// The one file in the Maildir `new/` of `postmaster@mx.test`, once there.
fn delivered_file(data: &Path) -> std::path::PathBuf {
    let new = data.join(format!("mail/{HOST}/postmaster/new"));
    let found = support::wait_until(Duration::from_secs(10), || {
        std::fs::read_dir(&new).is_ok_and(|mut entries| entries.next().is_some())
    });
    assert!(found, "nothing delivered to {}", new.display());
    let entry = std::fs::read_dir(&new).unwrap().next().unwrap().unwrap();
    entry.path()
}

fn is_root() -> bool {
    let uid = process_ids(std::process::id(), "Uid:");
    if !uid.starts_with("0 ") {
        eprintln!("skipped: needs root (uid {uid})");
    }
    uid.starts_with("0 ")
}

#[test]
fn a_server_started_as_root_runs_as_the_user_and_owns_its_data() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        return;
    }
    let nobody = getent_id("passwd", "nobody");
    let nogroup = getent_id("passwd", "nobody").to_string();
    let want_ids = |id: u32| format!("{id} {id} {id} {id}");
    let dir = TempDir::new("run-as-user");
    let data = dir.path().join("data");

    // A first start as root: ports, certificate and lock as root, then
    // the user; mail is still accepted and delivered to a Maildir.
    let mut command = Serve::command(&data);
    command.args(["--user", "nobody"]);
    let serve = Serve::run(&mut command).listening(3);
    assert!(
        serve
            .seen
            .iter()
            .any(|l| l.contains("running as user nobody")),
        "{:#?}",
        serve.seen
    );
    let pid = serve.child.id();
    assert_eq!(process_ids(pid, "Uid:"), want_ids(nobody));
    assert_eq!(process_ids(pid, "Gid:"), want_ids(nogroup.parse().unwrap()));
    assert_eq!(process_ids(pid, "Groups:"), nogroup);
    let mut client = Client::greeted(serve.address("smtp"));
    let reply = client.send_mail(
        "a@example.net",
        &format!("postmaster@{HOST}"),
        "Subject: hi\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let file = delivered_file(&data);
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(std::fs::metadata(&file).unwrap().uid(), nobody);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(file.parent().unwrap()), 0o700);
    assert_eq!(mode(&data), 0o700);
    serve.signal("TERM");
    assert_eq!(serve.finish().0, Some(0));

    // Every file of the data directory is the user's.
    let mut pending = vec![data.clone()];
    while let Some(path) = pending.pop() {
        assert_eq!(
            std::fs::symlink_metadata(&path).unwrap().uid(),
            nobody,
            "{}",
            path.display()
        );
        if path.is_dir() {
            pending.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        }
    }

    // A queued message is the user's file, and stays so after root's
    // `outpost queue flush` rewrites its envelope.
    let serve = Serve::spawn(&data, &["--user", "nobody"]).listening(3);
    let mut client = Client::greeted(serve.address("smtp"));
    let reply = client.send_mail(
        "a@example.net",
        &format!("postmaster@{HOST}"),
        "Subject: again\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let flush = outpost(&["queue", "flush", "--data-dir", data.to_str().unwrap()]);
    assert!(flush.status.success(), "{flush:?}");
    let queued: Vec<_> = std::fs::read_dir(data.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    assert!(queued.len() >= 2, "{queued:?}");
    for path in queued {
        assert_eq!(
            std::fs::metadata(&path).unwrap().uid(),
            nobody,
            "{}",
            path.display()
        );
    }
    serve.signal("TERM");
    assert_eq!(serve.finish().0, Some(0));
}

#[test]
fn maildir_group_access_opens_the_mailboxes_to_the_group() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !is_root() {
        return;
    }
    let mail_gid = getent_id("group", "mail");
    let dir = TempDir::new("maildir-group");
    let data = dir.path().join("data");
    let mut command = Serve::command(&data);
    command.args([
        "--user",
        "nobody",
        "--group",
        "mail",
        "--maildir-group-access",
    ]);
    let serve = Serve::run(&mut command).listening(3);
    assert!(
        serve
            .seen
            .iter()
            .any(|l| l.contains("running as user nobody")),
        "{:#?}",
        serve.seen
    );
    let mut client = Client::greeted(serve.address("smtp"));
    let reply = client.send_mail(
        "a@example.net",
        &format!("postmaster@{HOST}"),
        "Subject: hi\r\n\r\nhello\r\n",
    );
    assert!(reply.starts_with("250"), "{reply}");
    let file = delivered_file(&data);
    let meta = |path: &Path| std::fs::metadata(path).unwrap();
    assert_eq!(
        (meta(&file).gid(), meta(&file).permissions().mode() & 0o7777),
        (mail_gid, 0o640)
    );
    for dir in [
        "mail",
        &format!("mail/{HOST}"),
        &format!("mail/{HOST}/postmaster/cur"),
    ] {
        let dir = data.join(dir);
        assert_eq!(
            (meta(&dir).gid(), meta(&dir).permissions().mode() & 0o7777),
            (mail_gid, 0o2770),
            "{}",
            dir.display()
        );
    }
    // The group may pass through the data directory, not read it.
    assert_eq!(meta(&data).permissions().mode() & 0o7777, 0o710);
    assert_eq!(
        meta(&data.join("queue")).permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_low_port_without_the_privilege_says_how_to_grant_it() {
    if !is_root() {
        return;
    }
    let dir = TempDir::new("low-port");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::os::unix::fs::chown(&data, Some(getent_id("passwd", "nobody")), None).unwrap();
    // As an ordinary user without capabilities.
    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                BIN,
                "serve",
            ])
            .args(["--hostname", HOST, "--data-dir", data.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let output = as_nobody(&[
        "--smtp",
        "127.0.0.1:1",
        "--submission",
        "off",
        "--submissions",
        "off",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen on 127.0.0.1:1: Permission denied"),
        "{stderr}"
    );
    assert!(
        stderr.contains("setcap cap_net_bind_service=+ep"),
        "{stderr}"
    );
    assert!(
        stderr.contains("AmbientCapabilities=CAP_NET_BIND_SERVICE"),
        "{stderr}"
    );

    // Only root can switch users.
    let output = as_nobody(&["--user", "root"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--user root: only root can switch users"),
        "{stderr}"
    );
}

#[test]
fn bench_verifies_the_generated_certificate_by_name_and_by_address() {
    let dir = TempDir::new("cert-names");
    let data = dir.path().join("data");
    let serve = Serve::start(&data, &[]);
    let cert = data.join("tls/cert.pem");
    let smtp = serve.address("smtp").to_string();
    let bench = |extra: &[&str]| {
        let mut args = vec!["bench", "--server", &smtp, "--starttls", "--sessions", "1"];
        args.extend(["--messages", "1", "--ca", cert.to_str().unwrap()]);
        args.extend(extra);
        let output = outpost(&args);
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        (output.status.success(), text)
    };
    // By name (SNI) and by the listener's address (an IP name in the
    // certificate): both verify.
    for extra in [&["--sni", HOST][..], &[]] {
        let (ok, text) = bench(extra);
        assert!(ok, "{extra:?}: {text}");
        assert!(text.contains("messages: 1 sent"), "{extra:?}: {text}");
    }
    // A name the certificate does not have fails verification.
    let (_, text) = bench(&["--sni", "other.example"]);
    assert!(text.contains("messages: 0 sent"), "{text}");

    // The first start's banner says where the certificate is.
    serve.signal("TERM");
    let (code, stdout, _) = serve.finish();
    assert_eq!(code, Some(0));
    assert!(
        stdout.contains(&format!("It is {} (check it with", cert.display())),
        "{stdout}"
    );
}
