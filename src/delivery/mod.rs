//! Outbound delivery: MX lookup, target selection, the retry schedule,
//! DKIM signatures for what leaves (`sign`), Maildir for local recipients, the check that a next hop is not this
//! server itself (`myself`), the per-destination connection limits and
//! the cache of idle sessions (`pool`), and the queue manager threads
//! ([`manager::Delivery`]) that drive `proto::client` over sockets with
//! rustls.
//!
//! Everything here runs on its own blocking threads with timeouts, never on
//! the event loop. The pure parts (`route`, `retry`, DNS response parsing)
//! take their randomness as a seed parameter (mixed by
//! [`crate::proto::splitmix`]) so they can be tested exactly.

pub mod config;
pub mod dns;
pub mod maildir;
pub mod manager;
pub mod myself;
pub mod outbound;
pub mod pool;
pub mod retry;
pub mod route;
pub mod sign;
