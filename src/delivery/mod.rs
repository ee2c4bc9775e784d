//! Outbound delivery: MX lookup, target selection, the retry schedule,
//! Maildir for local recipients, and the queue manager threads
//! ([`manager::Delivery`]) that drive `proto::client` over sockets with
//! rustls.
//!
//! Everything here runs on its own blocking threads with timeouts, never on
//! the event loop. The pure parts (`route`, `retry`, DNS response parsing)
//! take their randomness as a seed parameter so they can be tested exactly.

pub mod config;
pub mod dns;
pub mod maildir;
pub mod manager;
pub mod retry;
pub mod route;
pub mod transport;

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, well-mixed function from a
/// seed to a pseudo-random number. Used to spread retries and shuffle equal
/// MX preferences deterministically from a caller-provided seed; not for
/// anything secret.
pub(crate) fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
