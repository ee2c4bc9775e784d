//! `--metrics ADDR:PORT`: the page of [`crate::metrics`] over plain HTTP
//! (`GET /metrics`), for Prometheus and `outpost stats`.
//!
//! A few lines of HTTP/1.x on a thread of its own, one request per
//! connection, each with short timeouts: the page is small, scrapers are
//! few, and an HTTP library would bring an async runtime or much more
//! code than this. It reads the queue's size and oldest age from the spool
//! at each request. The address is an explicit one (`config` refuses a
//! wildcard): the counters are for the operator, not the world.
//!
//! May import `metrics`, `queue` and std; no other runtime file.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::ServerError;
use crate::metrics::{self, QueueGauge};
use crate::queue::Spool;

/// How long a scraper may take to send its request or read the page.
const TIMEOUT: Duration = Duration::from_secs(5);
/// The most of a request read (the request line and headers).
const MAX_REQUEST: usize = 8 * 1024;

/// The bound metrics listener, not yet answering.
#[derive(Debug)]
pub struct MetricsEndpoint {
    listener: TcpListener,
    address: SocketAddr,
}

impl MetricsEndpoint {
    /// Binds `address` (`outpost serve` does it with the other listeners,
    /// before anything is created).
    pub fn bind(address: SocketAddr) -> Result<MetricsEndpoint, ServerError> {
        let failed = |source| ServerError::Bind { address, source };
        let listener = TcpListener::bind(address).map_err(failed)?;
        let address = listener.local_addr().map_err(failed)?;
        Ok(MetricsEndpoint { listener, address })
    }

    /// The bound address (the port chosen for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Answers requests on a thread of its own (`metrics`) for the rest of
    /// the process's life, with the queue of `spool`.
    pub fn serve(self, spool: Arc<Spool>) -> Result<(), ServerError> {
        log::info!("metrics on http://{}/metrics", self.address);
        std::thread::Builder::new()
            .name("metrics".to_string())
            .spawn(move || {
                for stream in self.listener.incoming() {
                    match stream {
                        Ok(stream) => answer(stream, &spool),
                        Err(e) => log::warn!("metrics: cannot accept: {e}"),
                    }
                }
            })
            .map(|_| ())
            .map_err(|source| ServerError::Setup {
                what: "start the metrics thread",
                source,
            })
    }
}

/// Reads one request and answers it: the page for `GET /metrics`, 404 for
/// another path, 405 for another method. A client that is too slow or
/// sends too much is dropped.
fn answer(mut stream: TcpStream, spool: &Spool) {
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let Some(request_line) = read_request_line(&mut stream) else {
        return;
    };
    let mut words = request_line.split(' ');
    let (status, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", metrics::render(queue_gauge(spool))),
        (Some("GET"), _) => ("404 Not Found", "try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "GET only\n".to_string()),
    };
    let response = format!(
        "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes());
}

/// The request line, once the whole header has arrived.
fn read_request_line(stream: &mut TcpStream) -> Option<String> {
    let mut request = Vec::new();
    let mut buffer = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 || request.len() + n > MAX_REQUEST {
            return None;
        }
        request.extend_from_slice(&buffer[..n]);
    }
    let line = request.split(|&b| b == b'\r').next()?;
    Some(String::from_utf8_lossy(line).into_owned())
}

/// How many messages are queued and how old the oldest is (by its file's
/// time); an unreadable queue shows as empty.
fn queue_gauge(spool: &Spool) -> QueueGauge {
    let ids = spool.list().unwrap_or_default();
    let now = SystemTime::now();
    let oldest = ids
        .iter()
        .filter_map(|id| {
            std::fs::metadata(spool.message_path(id))
                .ok()?
                .modified()
                .ok()
        })
        .filter_map(|modified| now.duration_since(modified).ok())
        .max()
        .unwrap_or_default();
    QueueGauge {
        messages: ids.len(),
        oldest,
    }
}
