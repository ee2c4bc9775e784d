//! `Serve`: the `outpost` binary as a child process on loopback port-0
//! listeners, its log read line by line; its addresses come from its
//! `listening on` log lines.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_outpost");
/// The host name and local domain of every `Serve`.
pub const HOST: &str = "mx.test";

/// A running `outpost serve`, its stderr read on a thread (so the pipe
/// never fills); SIGKILLed when dropped.
pub struct Serve {
    pub child: Child,
    log: Receiver<String>,
    /// Every log line seen so far.
    pub seen: Vec<String>,
    /// `(role, address)` from the `listening on` lines.
    pub listeners: Vec<(String, SocketAddr)>,
}

impl Serve {
    /// `outpost serve` on `data_dir` with loopback port-0 listeners for
    /// every role and `extra`; waits until every listener is logged.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Serve {
        Serve::spawn(data_dir, extra).listening(3)
    }

    /// Starts `outpost serve` on `data_dir` (loopback port-0 listeners for
    /// every role, delivery off) with `extra`, without waiting.
    pub fn spawn(data_dir: &Path, extra: &[&str]) -> Serve {
        let mut command = Serve::command(data_dir);
        command.args(["--delivery", "off"]).args(extra);
        Serve::run(&mut command)
    }

    /// `outpost serve` on `data_dir` with loopback port-0 listeners for
    /// every role, one worker and a short grace period; delivery as
    /// configured (on by default).
    pub fn command(data_dir: &Path) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--hostname", HOST, "--local-domains", HOST])
            .args(["--smtp", "127.0.0.1:0", "--submission", "127.0.0.1:0"])
            .args(["--submissions", "127.0.0.1:0", "--workers", "1"])
            .args(["--shutdown-grace", "1s", "--data-dir"])
            .arg(data_dir);
        command
    }

    /// Runs `command` (an `outpost serve`) with its output captured.
    pub fn run(command: &mut Command) -> Serve {
        let mut child = command
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (lines, log) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        Serve {
            child,
            log,
            seen: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// Waits for `count` `listening on` lines and notes the addresses.
    pub fn listening(mut self, count: usize) -> Serve {
        for _ in 0..count {
            let line = self.wait_for_log("listening on ");
            let mut words = line.split("listening on ").nth(1).unwrap().split(' ');
            let address = words.next().unwrap().parse().unwrap();
            let role = words.next().unwrap().trim_matches(['(', ')']).to_string();
            self.listeners.push((role, address));
        }
        self
    }

    /// The first listener of `role`.
    pub fn address(&self, role: &str) -> SocketAddr {
        self.listeners
            .iter()
            .find(|(r, _)| r == role)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {role} listener"))
    }

    /// Waits up to 10 s for a log line containing `text`.
    pub fn wait_for_log(&mut self, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.log.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(text) {
                        return line;
                    }
                }
                Err(e) => panic!("no log line with {text:?}: {e}\n{:#?}", self.seen),
            }
        }
    }

    /// Sends the server `SIG<name>`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to 10 s for the child to exit: its exit code, its
    /// standard output and every log line.
    pub fn finish(mut self) -> (Option<i32>, String, String) {
        let started = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the server did not exit"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut stdout = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        while let Ok(line) = self.log.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        (status.code(), stdout, self.seen.join("\n"))
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
