//! Outpost: a single-binary SMTP server for submission (587/465) and inbound
//! mail (25), with a durable queue and outbound delivery.
//!
//! # Modules and their roles
//!
//! Dependencies point down only; `tests/layering.rs` enforces it.
//!
//! | module | role | may import |
//! |---|---|---|
//! | [`cli`] | the `outpost` command line: `serve` (with the data-dir lock, the first start, `--check-config`, `--user`), `passwd`, `users`, `queue`, `stats`, `check`, `bench`, `dns`, `sendmail` (also as `sendmail` and `mailq`) | everything below |
//! | [`check`] | `outpost check`: what a port speaks, its certificate, outbound port 25, and whether a domain's DNS (MX, SPF, reverse DNS, DKIM, DMARC) makes this server's mail trusted | `proto`, `tls`, `net`, `delivery::dns`, `dkim` (the key files) |
//! | [`loadgen`] | `outpost bench`: the load generator | `proto`, `tls`, `net` |
//! | [`runtime`] | the I/O edge: listeners, mio event loops, worker pool, connections, plain/TLS transport | all but `cli`, `check`, `loadgen` |
//! | [`delivery`] | the scheduler and delivery threads: routing, DNS, the outbound SMTP driver, DKIM signing of what leaves, Maildir, reports | `queue`, `directory`, `dkim`, `maillog`, `proto`, `tls`, `net`, `units`, `work_queue` |
//! | [`queue`] | the spool: durable message files, the envelope file format, group commit | `proto`, `work_queue` |
//! | [`maillog`] | the wording of every mail-log line (queued, refused, login, delivery, report sent, removed); its doc is the format reference; counts each line | `proto`, `queue`, `metrics` |
//! | [`dkim`] | DKIM signing (relaxed canonicalisation, rsa-sha256, ed25519-sha256) and the signing keys under `DATA-DIR/dkim/` | `proto` |
//! | [`metrics`] | the server's counters and their Prometheus text page (`--metrics`, `outpost stats`) | — |
//! | [`directory`] | lookups: the users table, aliases, "does this local mailbox exist, and whose is it" | `proto`, `auth` (its hash port) |
//! | [`auth`] | password verification on its own threads, the failed-login throttle, and the daily sending limits per account | `proto`, `maillog`, `net` |
//! | [`tls`] | rustls configuration, server side (`tls::server`) and client side (`tls::client`) | — |
//! | [`config`] | the `serve` options: one table feeds the parser, the config file and `--help` | `delivery::{config, retry}`, `dkim`, `units` |
//! | [`proto`] | the pure protocol core: line splitter, dot-unstuffer, command, reply and ESMTP parameter grammars, the session state machine, SASL, the PROXY protocol header, the outbound client, Received and DSN builders. Bytes in, bytes and typed actions out; no I/O, no clock, no threads | nothing else of the crate |
//! | [`net`], [`units`], [`work_queue`] | small helpers: socket timeouts, the key a client is counted under (an IPv4 address, an IPv6 /64); sizes and durations in flags; a queue that worker threads sleep on without spinning | — |
//!
//! # The path of a message
//!
//! 1. **Accept.** The accepting thread ([`runtime`]'s `Acceptor`) takes a
//!    new connection, counts it against `--max-connections` and the per-IP
//!    limit, and hands it to the worker with the fewest connections (behind
//!    a `--proxy-from` load balancer, the PROXY header it reads first
//!    names the client it is counted and known as). That
//!    worker's event loop owns it for its whole life: bytes pass through the
//!    connection's transport (plain, or rustls after STARTTLS or on 465) into
//!    [`proto::session::Session::feed`], which answers and asks for
//!    actions: start TLS, check a password (answered by [`auth`]'s threads),
//!    spool a message, or hold an error reply back (a timer of the loop,
//!    for a client past the soft error limit).
//! 2. **Keep.** [`queue::SpoolWriter`] writes the message file (envelope head,
//!    then the message with its Received field), fsyncs it, renames it into
//!    place and fsyncs the directory, for a whole batch at once (group
//!    commit). Only then does the session answer `250`. The writer tells
//!    delivery the new id.
//! 3. **Deliver.** The scheduler thread ([`delivery::manager`]) keeps the
//!    queue's timetable and gives due messages to delivery threads. An
//!    attempt groups the recipients by route: a local mailbox (looked up in
//!    [`directory`], written to Maildir), `--transport discard`, or SMTP to
//!    a `--transport` host, the smarthost or the domain's MX
//!    ([`delivery::outbound`] drives [`proto::client::Client`] over a
//!    blocking socket). A pure `decide` turns the outcomes and the retry
//!    policy into a plan: each recipient's typed state, the reports to send
//!    and the next attempt; an executor applies it to the spool in a
//!    crash-safe order.
//! 4. **Report.** A failure for good, a delay warning or a requested success
//!    becomes an RFC 3464 report ([`proto::dsn`]), spooled like any message
//!    (with [`proto::envelope::Origin::Internal`]) and delivered to the
//!    sender.
//!
//! # Threads
//!
//! - the main thread: the command line; for `serve`, it waits for the server
//!   to stop;
//! - `outpost-loop`: the accepting thread (listeners, signals); with
//!   `--workers 0` it also serves every connection itself;
//! - `outpost-worker-N`: one event loop each, serving their connections;
//! - `auth-N` and `auth-delay`: password hashes, and the delay of a failed login;
//! - `spool-writer`, `spool-commit` and `spool-sync-N`: the spool's group-commit
//!   pipeline;
//! - `delivery-scheduler` and `delivery-N` (`--max-outbound-connections`):
//!   the queue's timetable and the attempts.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod check;
pub mod cli;
pub mod config;
pub mod delivery;
pub mod directory;
pub mod dkim;
pub mod loadgen;
pub mod maillog;
pub mod metrics;
pub mod net;
pub mod proto;
pub mod queue;
pub mod runtime;
#[cfg(test)]
mod test_fixtures;
pub mod tls;
pub mod units;
pub mod work_queue;
