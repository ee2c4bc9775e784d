//! Outpost: a single-binary SMTP server for submission (587/465) and inbound
//! mail (25), with a durable queue and outbound delivery.
//!
//! Layers, dependencies pointing down only:
//! `cli` (the `outpost` command line, the only user of `check` and
//! `loadgen`) on top; `runtime` (mio loop, workers, TLS) and `delivery` use
//! `queue`, `directory` (users, aliases, local mailboxes), `auth` (password
//! checks), `tls`, `config` and `maillog` (the one formatter of mail-log
//! lines); all of them use `proto`, the pure protocol core
//! that has no I/O and is what the fuzz targets and benchmarks link.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod loadgen;
pub mod maillog;
pub mod net;
pub mod proto;
pub mod queue;
pub mod runtime;
#[cfg(test)]
mod test_fixtures;
pub mod tls;
pub mod units;
