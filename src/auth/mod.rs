//! Users and passwords: the users file (`address:hash` per line, hashes
//! `$6$`, `$2y$`/`$2b$`, `$argon2id$`), verification off the protocol
//! workers, and failed-login throttling per client IP.
//!
//! CONTRACT (implementation pending).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use crate::proto::sasl::Credentials;
use crate::proto::session::AuthResult;

/// Errors loading the users file.
#[derive(Debug)]
pub enum AuthError {
    /// The file could not be read.
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A line is not `address:hash` with a supported hash.
    BadLine {
        path: std::path::PathBuf,
        line: usize,
        reason: String,
    },
}

/// Called with the result of a check, on an auth thread.
pub type AuthDone = Box<dyn FnOnce(AuthResult) + Send>;

/// The user table plus throttling and a small cache of verified
/// credentials, shared by all sessions.
pub struct Authenticator {}

impl Authenticator {
    /// Loads the users file.
    pub fn load(path: &Path) -> Result<Arc<Authenticator>, AuthError> {
        let _ = path;
        todo!()
    }

    /// Checks credentials on an auth thread and calls `done`. Unknown user
    /// and wrong password take the same time and give `Failure`; too many
    /// failures from `client` give `Throttled`.
    pub fn verify(&self, client: IpAddr, credentials: Credentials, done: AuthDone) {
        let _ = (client, credentials, done);
        todo!()
    }

    /// Is `address` a user (lowercase compare of the domain)?
    pub fn user_exists(&self, address: &str) -> bool {
        let _ = address;
        todo!()
    }
}

/// Hashes `password` as SHA-512-crypt (`$6$`, like `openssl passwd -6`).
pub fn hash_password(password: &str) -> String {
    let _ = password;
    todo!()
}
