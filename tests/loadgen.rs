//! Runs the load generator against a scripted SMTP receiver (`FakeMx`)
//! started inside the test on 127.0.0.1:0, optionally with STARTTLS (rustls,
//! throwaway certificate) and AUTH PLAIN; it records the unstuffed size of
//! every message it receives. The `outpost bench` binary also runs against
//! a real `outpost serve --sink` (STARTTLS, AUTH LOGIN, `--csv`).

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use outpost::cli::bench::{self, BenchArgs};
use outpost::loadgen::{self, LoadgenError, Options, Summary};
use support::fake_mx::{self_signed_tls, FakeMx, MxScript, MxSession};
use support::serve::{Serve, BIN};
use support::TempDir;

/// A receiver offering 8BITMIME, and PIPELINING when `pipelining`.
fn script(pipelining: bool) -> MxScript {
    if pipelining {
        MxScript::new().keywords(&["PIPELINING", "8BITMIME"])
    } else {
        MxScript::new().keywords(&["8BITMIME"])
    }
}

/// Every session, once all connections made so far have ended.
fn sessions(sink: &FakeMx) -> Vec<MxSession> {
    sink.wait_for_sessions(sink.connections())
}

/// Runs the load, each session error shown on stderr.
fn run(o: &Options) -> Result<Summary, LoadgenError> {
    loadgen::run(o, |session, e| eprintln!("session {session}: {e}"), |_| {})
}

fn opts(args: &str) -> Options {
    let args: Vec<String> = args.split_whitespace().map(String::from).collect();
    match bench::parse(&args).unwrap() {
        BenchArgs::Run(o) => o.load,
        BenchArgs::Help(_) => panic!("help"),
    }
}

/// The size of every message received.
fn sizes(sink: &FakeMx) -> Vec<usize> {
    sessions(sink)
        .iter()
        .flat_map(|s| s.messages.iter().map(Vec::len))
        .collect()
}

/// Some transaction came as one pipelined group.
fn saw_pipelined_group(sink: &FakeMx) -> bool {
    sessions(sink).iter().any(|s| s.pipelined)
}

fn no_sink_errors(sink: &FakeMx) {
    let mistakes: Vec<String> = sessions(sink)
        .into_iter()
        .flat_map(|s| s.mistakes)
        .collect();
    assert!(mistakes.is_empty(), "{mistakes:?}");
}

#[test]
fn reuse_sends_every_message_over_few_connections() {
    let sink = script(false).start();
    let o = opts(&format!(
        "--server {} --sessions 3 --messages 5 --size 4K --duration-limit 20",
        sink.addr()
    ));
    let summary = run(&o).unwrap();
    assert_eq!(
        (summary.sent, summary.failed, summary.not_attempted),
        (15, 0, 0)
    );
    assert_eq!(
        sizes(&sink),
        vec![4096; 15],
        "the sink saw the exact unstuffed size"
    );
    assert_eq!(sink.connections(), 3);
    assert!(summary.latency.p50_ms <= summary.latency.p99_ms);
    assert!(summary.latency.p99_ms <= summary.latency.max_ms);
    assert!(summary.msgs_per_sec() > 0.0);
    no_sink_errors(&sink);
}

#[test]
fn no_reuse_opens_a_connection_per_message_and_pipelines() {
    let sink = script(true).start();
    let o = opts(&format!(
        "--server {} --sessions 2 --messages 4 --size 1K --recipients 3 --no-reuse --pipelining",
        sink.addr()
    ));
    let summary = run(&o).unwrap();
    assert_eq!(summary.sent, 8);
    assert_eq!(sizes(&sink), vec![1024; 8]);
    assert_eq!(sink.connections(), 8);
    assert!(saw_pipelined_group(&sink));
    assert_eq!((summary.connections, summary.pipelined_connections), (8, 8));
    no_sink_errors(&sink);
}

#[test]
fn pipelining_only_when_offered() {
    let sink = script(false).start();
    let o = opts(&format!(
        "--server {} --sessions 1 --messages 3 --pipelining",
        sink.addr()
    ));
    let summary = run(&o).unwrap();
    assert_eq!((summary.sent, summary.pipelined_connections), (3, 0));
    assert!(!saw_pipelined_group(&sink));
    no_sink_errors(&sink);
}

#[test]
fn starttls_and_auth() {
    let sink = script(true)
        .starttls(self_signed_tls(&["localhost"]))
        .auth("bob", "pa:ss")
        .start();
    let base = format!(
        "--server {} --sessions 2 --messages 3 --size 64K --starttls",
        sink.addr()
    );

    // The self-signed certificate is refused without --insecure.
    let refused = run(&opts(&format!("{base} --auth bob:pa:ss"))).unwrap();
    assert_eq!(refused.sent, 0);
    assert!(refused.connection_errors > 0);

    // A wrong password is an SMTP error reply, counted, not a crash.
    let wrong = run(&opts(&format!("{base} --insecure --auth bob:nope"))).unwrap();
    assert_eq!(wrong.sent, 0);
    assert!(wrong.error_replies > 0);

    let ok = run(&opts(&format!(
        "{base} --insecure --auth bob:pa:ss --pipelining"
    )))
    .unwrap();
    assert_eq!((ok.sent, ok.failed), (6, 0));
    assert_eq!(sizes(&sink), vec![65536; 6]);
    let all = sessions(&sink);
    assert!(all.iter().filter(|s| s.authenticated).count() >= 2);
    assert!(all.iter().filter(|s| s.tls).count() >= 2);
    assert!(saw_pipelined_group(&sink));
}

#[test]
fn rejected_recipients_are_counted_and_the_run_goes_on() {
    for pipelining in ["", "--pipelining"] {
        let sink = script(true).reply("RCPT", "550 5.1.1 No such user").start();
        let o = opts(&format!(
            "--server {} --sessions 2 --messages 3 {pipelining}",
            sink.addr()
        ));
        let summary = run(&o).unwrap();
        assert_eq!((summary.sent, summary.failed), (0, 6), "{pipelining}");
        assert!(summary.error_replies >= 6);
        // One connection per session: a rejection is followed by RSET, not a reconnect.
        assert_eq!(sink.connections(), 2);
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
    let summary = run(&o).unwrap();
    assert_eq!(summary.sent, 0);
    assert_eq!(summary.not_attempted, 2000);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn run_refuses_other_machines() {
    let args: Vec<String> = ["outpost", "bench", "--server", "198.51.100.7:25"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(outpost::cli::main_with_args(args), 2);
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
    let summary = run(&o).unwrap();
    assert_eq!(summary.sent, 0);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    drop(listener);
}

/// The real binary against a real `outpost serve --sink`: one STARTTLS and
/// AUTH LOGIN session per message, as Outlook sends, with the time line and
/// latency histogram written to a CSV file.
#[test]
fn the_binary_writes_csv_against_a_real_server_with_auth_login() {
    const USER: &str = "bench@mx.test";
    const PASSWORD: &str = "bench pass";
    let dir = TempDir::new("bench-csv");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let users = dir.path().join("users");
    let line = format!("{USER}:{}\n", outpost::auth::hash_password(PASSWORD));
    std::fs::write(&users, line).unwrap();
    let serve = Serve::start(&data, &["--sink", "--users", users.to_str().unwrap()]);
    let csv = dir.path().join("run.csv");
    let bench = |password: &str, resumption: &str| {
        Command::new(BIN)
            .args([
                "bench",
                "--server",
                &serve.address("submission").to_string(),
            ])
            .args(["--sessions", "2", "--messages", "3", "--no-reuse"])
            .args(["--starttls", "--insecure", "--auth-mechanism", "login"])
            .args(["--auth", &format!("{USER}:{password}"), "--from", USER])
            .args(["--tls-resumption", resumption])
            .args(["--progress", "always", "--csv"])
            .arg(&csv)
            .output()
            .unwrap()
    };

    let out = bench(PASSWORD, "on");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("security=starttls auth=login"), "{stdout}");
    assert!(stdout.contains("connections: 6 ("), "{stdout}");
    // A client with a session cache resumes; the server lets it.
    assert!(!stdout.contains("TLS resumed on 0\n"), "{stdout}");
    assert!(
        stdout.contains("latency ms (connect to QUIT reply)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("result sessions=2 size=1024 msgs=6 "),
        "{stdout}"
    );
    // Not a terminal, but --progress always: a plain line per second, the
    // last one when the run ends.
    let last_progress = stderr.lines().rfind(|l| l.contains(" sent "));
    assert!(
        last_progress.is_some_and(|l| l.contains(" 6 sent ") && l.ends_with(" 0 errors")),
        "{stderr}"
    );

    let text = std::fs::read_to_string(&csv).unwrap();
    let blocks: Vec<&str> = text.split("\n\n\n").collect();
    assert_eq!(blocks.len(), 2, "{text}");
    let rows = |block: &str| -> Vec<Vec<f64>> {
        block
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(',').map(|f| f.parse().unwrap()).collect())
            .collect()
    };
    assert!(blocks[0].contains("# second,messages,msgs_per_s,sessions_opened,errors\n"));
    let timeline = rows(blocks[0]);
    assert!(timeline.iter().all(|r| r.len() == 5), "{text}");
    assert_eq!(timeline.last().unwrap()[1], 6.0, "{text}");
    assert_eq!(timeline.iter().map(|r| r[3]).sum::<f64>(), 6.0, "{text}");
    assert_eq!(timeline.iter().map(|r| r[4]).sum::<f64>(), 0.0, "{text}");
    assert!(blocks[1].contains("(connect to QUIT reply), microseconds\n"));
    let histogram = rows(blocks[1]);
    assert!(histogram.iter().all(|r| r.len() == 3), "{text}");
    assert_eq!(histogram.iter().map(|r| r[1]).sum::<f64>(), 6.0, "{text}");
    assert_eq!(histogram.last().unwrap()[2], 1.0, "{text}");
    assert!(histogram.windows(2).all(|w| w[0][0] < w[1][0]), "{text}");

    // Without resumption every handshake is a full one.
    let out = bench(PASSWORD, "off");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("tls-resumption=off"), "{stdout}");
    assert!(stdout.contains("TLS resumed on 0\n"), "{stdout}");

    // A wrong password is refused at the LOGIN password step: counted, exit 1.
    let out = bench("wrong", "on");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("AUTH LOGIN password answered 535"),
        "{stderr}"
    );
}
