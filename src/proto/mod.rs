//! The pure protocol core: bytes in, replies and actions out.
//!
//! Nothing here touches sockets, files, threads or clocks (`tests/layering.rs`
//! keeps it that way), so every part can be unit-tested, fuzzed and benched.

pub mod address;
pub mod client;
pub mod command;
pub mod dot;
pub mod dsn;
pub mod envelope;
pub mod esmtp;
pub mod header;
pub mod line;
pub mod proxy;
pub mod received;
pub mod reply;
pub mod sasl;
pub mod session;
pub mod splitmix;
