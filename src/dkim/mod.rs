//! DKIM signing (RFC 6376, relaxed/relaxed; rsa-sha256, and ed25519-sha256
//! of RFC 8463) of mail leaving for other domains, and the keys it uses.
//!
//! - `canon`: relaxed canonicalisation of a header field and, streamed,
//!   of the body with its hash;
//! - `header`: the header section's fields, which are signed (`From`
//!   over-signed), the `From:` domain;
//! - `sign`: [`MessageHasher`] (the message in pieces) and the
//!   `DKIM-Signature:` field for one key;
//! - `key`: one key in memory (PKCS#8, generation, signing with ring, the
//!   DNS record of its public half);
//! - `store`: the key files under `DATA-DIR/dkim/`, and [`KeyRing`], the
//!   keys in force (created at start, re-read on SIGHUP), which signs a
//!   message read through `std::io::Read`.
//!
//! The delivery threads sign, never the accept path: a message is signed
//! as it leaves, with the keys in force then. Everything but `store` is
//! pure; `store` reads and writes key files, nothing with sockets. May
//! import `proto` only.

pub mod canon;
pub mod header;
pub mod key;
pub mod sign;
pub mod store;

pub use key::{Algorithm, KeyError, SigningKey};
pub use sign::{Hashed, MessageHasher, SignError};
pub use store::{DomainKey, KeyRing, KeyStore, Settings, StoreError};
