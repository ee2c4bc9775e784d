//! systemd's readiness protocol (sd_notify(3)), for a `Type=notify` unit:
//! `READY=1` once the listeners are bound and the queue recovered,
//! `RELOADING=1` then `READY=1` around a reload (SIGHUP), `STOPPING=1` when
//! a stop begins. Each is one datagram to the socket systemd names in
//! `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading
//! `@`). Without that variable every call does nothing.
//!
//! May import: std and rustix (the monotonic clock).

use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The environment variable systemd sets for a `Type=notify` service.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Where the notices go; nowhere when not run by systemd.
#[derive(Debug)]
pub(crate) struct SystemdNotify {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl SystemdNotify {
    /// Sends nothing.
    pub fn disabled() -> SystemdNotify {
        SystemdNotify { target: None }
    }

    /// The socket `$NOTIFY_SOCKET` names, if it is set and usable.
    pub fn from_env() -> SystemdNotify {
        let Some(name) = std::env::var_os(NOTIFY_SOCKET) else {
            return SystemdNotify::disabled();
        };
        let address = match name.as_bytes().strip_prefix(b"@") {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name),
            None => SocketAddr::from_pathname(&name),
        };
        match (address, UnixDatagram::unbound()) {
            (Ok(address), Ok(socket)) => SystemdNotify {
                target: Some((socket, address)),
            },
            (Err(e), _) | (_, Err(e)) => {
                log::warn!("${NOTIFY_SOCKET} is set but unusable ({e}): systemd will not hear that we are ready");
                SystemdNotify::disabled()
            }
        }
    }

    /// The server serves: listeners bound, queue recovered.
    pub fn ready(&self, status: &str) {
        self.send(&format!(
            "READY=1\nSTATUS={status}\nMAINPID={}",
            std::process::id()
        ));
    }

    /// A reload begins; [`SystemdNotify::ready`] ends it.
    pub fn reloading(&self) {
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let micros = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1_000;
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={micros}"));
    }

    /// A stop begins.
    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.target {
            if let Err(e) = socket.send_to_addr(message.as_bytes(), address) {
                log::warn!("cannot tell systemd {message:?}: {e}");
            }
        }
    }
}
