//! Small helpers for the blocking std sockets of outbound delivery, the DNS
//! stub resolver, `outpost check` and the load generator (the server's own
//! sockets are non-blocking and never time out this way).
//!
//! May import: std only.

use std::io;

/// True when a read or write on a blocking socket gave up at its timeout
/// (`set_read_timeout`/`set_write_timeout`): Linux reports `WouldBlock`,
/// other systems `TimedOut`.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}
