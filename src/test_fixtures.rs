//! Fixtures shared by the unit tests inside the crate (compiled for tests
//! only): a temporary directory removed when dropped, a sample message as
//! the session hands it to the spool and as the spool reads it back, and a
//! remote server's refusal. The integration tests have their own temporary
//! directory in `tests/support`, as they cannot see this module.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::proto::envelope::{
    ClientOrigin, Envelope, MissingFields, NewMessage, Origin, Recipient,
};
use crate::proto::reply::Enhanced;
use crate::queue::{Failure, QueuedMessage, RemoteReply};

/// A fresh, empty directory under the system temp dir, removed when dropped.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    /// A new directory whose name starts with `outpost-{label}`, unique per
    /// process and call.
    pub(crate) fn new(label: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "outpost-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A message from alice@example.org to bob@example.com and
/// carol@example.net, sent by an authenticated client over TLS, with `body`.
pub(crate) fn new_message(body: &[u8]) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            sender: "alice@example.org".into(),
            recipients: vec![recipient("bob@example.com"), recipient("carol@example.net")],
            body: None,
            smtputf8: false,
            ret: None,
            envid: None,
        },
        origin: Origin::Client(ClientOrigin {
            client_ip: "192.0.2.7".into(),
            helo: "DESKTOP-7Q2K3LM".into(),
            tls: Some("TLSv1.3".into()),
            auth_user: Some("alice@example.org".into()),
            protocol: "ESMTPSA",
        }),
        body: body.to_vec(),
        missing: MissingFields::default(),
    }
}

/// A recipient without DSN parameters.
pub(crate) fn recipient(address: &str) -> Recipient {
    Recipient {
        address: address.into(),
        notify: None,
        orcpt: None,
    }
}

/// `message` as the spool reads it back before its first attempt: queue id
/// `0J5Z3K1M2N3P4Q5R`, arrived at `arrival` (seconds since the epoch),
/// every recipient pending. The length is the body's and the checksum is
/// zeros: no file stands behind it.
pub(crate) fn queued_message(message: &NewMessage, arrival: u64) -> QueuedMessage {
    QueuedMessage::arrived(
        "0J5Z3K1M2N3P4Q5R".parse().unwrap(),
        arrival,
        message,
        message.body.len() as u64,
        "0".repeat(64),
    )
}

/// mx.example.net answered `code`, `enhanced` and `text`.
pub(crate) fn remote_failure(code: u16, enhanced: Option<Enhanced>, text: &str) -> Failure {
    Failure::Remote {
        host: "mx.example.net".into(),
        reply: RemoteReply {
            code,
            enhanced,
            text: text.into(),
        },
    }
}
