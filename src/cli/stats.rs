//! `outpost stats [--config FILE] [OPTIONS]`: prints the counters of a
//! running server, read from its `--metrics` address (taken from the same
//! config file and options as `outpost serve`), in the Prometheus text
//! format.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::config::{self, ServeArgs};

/// How long the server may take to connect and answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `outpost stats` with the arguments after `stats`; returns the
/// exit code.
pub fn run(args: &[String]) -> i32 {
    let config = match config::parse_args(args) {
        Ok(ServeArgs::Run(config) | ServeArgs::Check(config, _)) => config,
        Ok(ServeArgs::Help) => {
            println!(
                "Usage: outpost stats [--config FILE] [--metrics ADDR:PORT]\n\n\
                 Prints the counters of the server running with that configuration \
                 (its --metrics address), in the Prometheus text format."
            );
            return 0;
        }
        Err(e) => {
            eprintln!("outpost: {e}");
            return EXIT_USAGE;
        }
    };
    let Some(address) = config.metrics else {
        eprintln!(
            "outpost: the configuration has no --metrics address; start the server \
             with --metrics 127.0.0.1:9187 (or `metrics = ...` in its config file)"
        );
        return EXIT_USAGE;
    };
    match fetch(address) {
        Ok(page) => {
            print!("{page}");
            let _ = std::io::stdout().flush();
            0
        }
        Err(e) => {
            eprintln!("outpost: cannot read the metrics at http://{address}/metrics: {e}");
            EXIT_FAILURE
        }
    }
}

/// `GET /metrics` from `address`: the page, or why not.
fn fetch(address: SocketAddr) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&address, TIMEOUT)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(stream, "GET /metrics HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("not an HTTP response"))?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(std::io::Error::other(format!("the server said {status:?}")));
    }
    Ok(body.to_string())
}
