//! One delivery attempt of one message, on a delivery thread: expand
//! aliases, group the recipients still to do by destination, deliver each
//! group (Maildir, discard, or SMTP to a `--transport` host, the smarthost
//! or the domain's MX) and write its outcomes to the envelope file right
//! after it, then let `decide()` plan the rest and `execute()` apply the
//! plan (retry, reports, removal).
//!
//! Crash safety: each group's outcomes are written before the next group
//! starts, so a restart never delivers a done recipient again; the last
//! group's are written by the executor together with what follows from
//! them (see `execute.rs` for its order).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ClientConfig;

use super::decide::{self, decide, Attempted, GroupResult, RcptOutcome};
use super::execute::execute;
use super::report;
use super::Context;
use crate::delivery::config::{HostPort, RelayTls, TransportRoute};
use crate::delivery::dns::DnsError;
use crate::delivery::maildir::{Delivered, DeliveryKey, MaildirError};
use crate::delivery::outbound::{self, CertPolicy, OutboundError, Peer};
use crate::delivery::pool::NextHop;
use crate::delivery::{route, sign};
use crate::directory::Unreachable;
use crate::maillog::{Line, Removed, RemovedBy};
use crate::proto::client::{
    loops_back_reply, BodyFacts, ClientParams, Outcome, RecipientParams, Report, SessionEnd,
    TlsPolicy,
};
use crate::proto::dsn::ReportAction;
use crate::proto::envelope::Recipient;
use crate::proto::esmtp::{Body, Orcpt};
use crate::proto::received::ReceivedCounter;
use crate::proto::reply::{Enhanced, Reply};
use crate::proto::sasl::Credentials;
use crate::queue::{
    Failure, QueueError, QueueId, QueuedMessage, RecipientEntry, RecipientState, StoredMessage,
};

/// What the scheduler should do with the message next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Every recipient is final and reported: the message is gone.
    Removed,
    /// The message disappeared (deleted by the queue tool) or was
    /// quarantined.
    Gone,
    /// Try again at this time (seconds since the epoch).
    RetryAt(u64),
}

/// The result of one job.
#[derive(Debug)]
pub(crate) struct Finished {
    /// The message.
    pub id: QueueId,
    /// What to do with it next.
    pub next: Next,
    /// Reports spooled during the attempt, to be scheduled.
    pub injected: Vec<QueueId>,
}

/// After an unexpected error (spool I/O), try again this much later.
const ERROR_RETRY: Duration = Duration::from_secs(5 * 60);

/// Where a group of recipients goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Destination {
    Local,
    Discard,
    Host(HostPort),
    Relay(HostPort),
    Mx(String),
}

impl Destination {
    /// The key its connections count against in `delivery::pool`.
    fn pool_key(&self) -> String {
        match self {
            Destination::Local | Destination::Discard => String::new(),
            Destination::Host(hp) | Destination::Relay(hp) => format!("host:{hp}"),
            Destination::Mx(domain) => format!("mx:{domain}"),
        }
    }
}

/// Runs one attempt of `id`; never panics on bad files or I/O.
pub(crate) fn run(ctx: &Context, id: &QueueId) -> Finished {
    let mut injected = Vec::new();
    let next = match attempt(ctx, id, &mut injected) {
        Ok(next) => next,
        Err(QueueError::Corrupt { path, reason }) => {
            log::error!(
                "{id}: corrupt queue file {}: {reason}; moving it to queue/corrupt/",
                path.display()
            );
            if let Err(e) = ctx.spool.quarantine(id) {
                log::error!("{id}: quarantine failed: {e}");
            }
            Next::Gone
        }
        Err(QueueError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Removed {
                queue_id: id,
                by: RemovedBy::Meanwhile,
            }
            .log();
            Next::Gone
        }
        Err(e) => {
            log::error!("{id}: delivery attempt failed: {e}");
            Next::RetryAt(now_secs() + ERROR_RETRY.as_secs())
        }
    };
    Finished {
        id: id.clone(),
        next,
        injected,
    }
}

fn attempt(ctx: &Context, id: &QueueId, injected: &mut Vec<QueueId>) -> Result<Next, QueueError> {
    let (mut message, body) = ctx.spool.load_with_message(id)?;
    if expand_aliases(ctx, &mut message) {
        ctx.spool.update(id, &message)?;
    }
    let mut attempted = Attempted {
        groups: Vec::new(),
        interrupted: false,
    };
    let loop_failure = too_many_hops(ctx, id, &body)?;
    // What the envelope file says after each group but the last.
    let mut recorded = message.clone();
    let groups = group(ctx, &message);
    let last_group = groups.len().saturating_sub(1);
    for (group_index, (destination, indices)) in groups.into_iter().enumerate() {
        if ctx.stopping.load(Ordering::Relaxed) {
            attempted.interrupted = true;
            break;
        }
        let result = match &loop_failure {
            Some(failure) => failed_group(&indices, failure),
            None => deliver_group(ctx, &message, &body, &destination, &indices),
        };
        // Written right after each group: a restart must neither lose nor
        // repeat what this group did. The last group's outcome is written
        // by the executor, together with what follows from it.
        if group_index < last_group {
            decide::record(&mut recorded, &result, now_millis());
            ctx.spool.update(id, &recorded)?;
        }
        attempted.groups.push(result);
    }
    // A connection the shutdown closed says nothing about the peer: the
    // message goes again first thing after the restart.
    if ctx.stopping.load(Ordering::Relaxed) {
        attempted.interrupted = true;
    }
    let now = now_millis();
    let plan = decide(&message, &attempted, now, &ctx.config.retry);
    execute(ctx, plan, &body, now / 1000, injected)
}

/// The failure of every recipient of a queued message that has passed
/// more relays than `--max-received` allows (RFC 5321 §6.3: a loop), if
/// it has. The stored message starts with our own Received field, which
/// is not counted; only its header section is read.
fn too_many_hops(
    ctx: &Context,
    id: &QueueId,
    body: &StoredMessage,
) -> Result<Option<Failure>, QueueError> {
    let mut counter = ReceivedCounter::default();
    body.for_each_piece(|piece| {
        counter.feed(piece);
        !counter.is_complete()
    })
    .map_err(|source| QueueError::Io {
        path: ctx.spool.message_path(id),
        source,
    })?;
    let hops = counter.count().saturating_sub(1);
    let max = ctx.config.max_received;
    Ok((hops > max).then(|| {
        local(
            (5, 4, 6),
            format!("Too many hops: {hops} Received header fields, at most {max} (a mail loop?)"),
        )
    }))
}

/// A group none of whose recipients was tried: each fails with `failure`.
fn failed_group(indices: &[usize], failure: &Failure) -> GroupResult {
    GroupResult {
        outcomes: indices
            .iter()
            .map(|&i| (i, RcptOutcome::Permanent(failure.clone())))
            .collect(),
        relay: "none".to_string(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
        conn_use: 0,
    }
}

/// The failure of a recipient whose next hop is this server.
fn loops_back(address: &str) -> Failure {
    let reply = loops_back_reply(address);
    local((5, 4, 6), reply.lines.join(" "))
}

/// Every recipient of the group fails with [`loops_back`].
fn loops_back_group(message: &QueuedMessage, indices: &[usize], relay: String) -> GroupResult {
    GroupResult {
        outcomes: indices
            .iter()
            .map(|&i| {
                let address = &message.recipients[i].recipient.address;
                (i, RcptOutcome::Permanent(loops_back(address)))
            })
            .collect(),
        relay,
        remote_host: None,
        tls: None,
        peer_dsn: false,
        conn_use: 0,
    }
}

/// Replaces every open recipient that is an alias (or a postmaster) by
/// the addresses it expands to, each with the original's NOTIFY and, when
/// none was given, the original address as ORCPT (RFC 3461 §4.2) so a
/// report names what the sender wrote; a mailbox reached twice is served
/// once, for the first. Asks the directory what RCPT asked,
/// so a recipient without a mailbox fails here only if the directory
/// changed since. Returns true when anything changed; the caller writes it
/// down, so expansion happens once.
fn expand_aliases(ctx: &Context, message: &mut QueuedMessage) -> bool {
    let tell_sender = !message.mail_from.sender.is_empty();
    let mut entries: Vec<RecipientEntry> = Vec::new();
    let mut changed = false;
    // Whether a recipient still to be served already goes to `address`'s mailbox.
    let reaches = |entries: &[RecipientEntry], address: &str| {
        entries.iter().any(|e| {
            e.state == RecipientState::Pending
                && ctx.directory.same_mailbox(&e.recipient.address, address)
        })
    };
    for entry in &message.recipients {
        let rcpt = &entry.recipient;
        let expanded = if entry.is_open() {
            ctx.directory.destinations(&rcpt.address)
        } else {
            Ok(vec![rcpt.address.clone()])
        };
        match expanded {
            Ok(list) if list.len() == 1 && list[0] == rcpt.address => {
                // A mailbox named again (a local user in other case, or
                // after the postmaster that maps to it) gets no second copy.
                if entry.is_open() && reaches(&entries, &rcpt.address) {
                    changed = true;
                } else {
                    entries.push(entry.clone());
                }
            }
            Ok(list) => {
                changed = true;
                for address in list {
                    if reaches(&entries, &address) {
                        continue;
                    }
                    entries.push(RecipientEntry::pending(Recipient {
                        address,
                        notify: rcpt.notify,
                        orcpt: rcpt
                            .orcpt
                            .clone()
                            .or_else(|| Some(Orcpt::rfc822(&rcpt.address))),
                    }));
                }
            }
            Err(why) => {
                changed = true;
                let failure = match &why {
                    Unreachable::Alias(e) => {
                        log::warn!("{}: alias expansion of {}: {e}", message.id, rcpt.address);
                        local((5, 4, 6), format!("Alias expansion failed: {e}"))
                    }
                    Unreachable::NoMailbox(_) => local((5, 1, 1), why.to_string()),
                };
                entries.push(RecipientEntry {
                    recipient: rcpt.clone(),
                    state: RecipientState::Failed(failure),
                    report_due: tell_sender && report::wants(rcpt.notify, ReportAction::Failed),
                });
            }
        }
    }
    if changed {
        message.recipients = entries;
    }
    changed
}

/// Open recipients by destination, in the order of first appearance.
fn group(ctx: &Context, message: &QueuedMessage) -> Vec<(Destination, Vec<usize>)> {
    let mut groups: Vec<(Destination, Vec<usize>)> = Vec::new();
    for (index, entry) in message.recipients.iter().enumerate() {
        if !entry.is_open() {
            continue;
        }
        let domain = entry
            .recipient
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.trim_end_matches('.').to_ascii_lowercase())
            .unwrap_or_default();
        let destination = if ctx.config.is_local(&domain) {
            Destination::Local
        } else {
            match ctx.config.transport_for(&domain) {
                Some(TransportRoute::Discard) => Destination::Discard,
                Some(TransportRoute::Host(hp)) => Destination::Host(hp.clone()),
                Some(TransportRoute::Relay) => match &ctx.config.relay_host {
                    Some(hp) => Destination::Relay(hp.clone()),
                    None => Destination::Mx(domain),
                },
                None => match &ctx.config.relay_host {
                    Some(hp) if !ctx.config.relay_is_per_domain() => Destination::Relay(hp.clone()),
                    _ => Destination::Mx(domain),
                },
            }
        };
        match groups.iter_mut().find(|(d, _)| *d == destination) {
            Some((_, list)) => list.push(index),
            None => groups.push((destination, vec![index])),
        }
    }
    groups
}

fn deliver_group(
    ctx: &Context,
    message: &QueuedMessage,
    body: &StoredMessage,
    destination: &Destination,
    indices: &[usize],
) -> GroupResult {
    let local_result = |relay: &str, outcome: &dyn Fn(usize) -> RcptOutcome| GroupResult {
        outcomes: indices.iter().map(|&i| (i, outcome(i))).collect(),
        relay: relay.to_string(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
        conn_use: 0,
    };
    match destination {
        Destination::Local => local_result("local", &|i| deliver_local(ctx, message, body, i)),
        Destination::Discard => local_result("discard", &|_| RcptOutcome::Delivered {
            said: "discarded (--transport discard)".into(),
        }),
        remote => deliver_remote(ctx, message, body, remote, indices),
    }
}

/// Our own verdict on a recipient: `status` and `text`.
fn local(status: (u8, u16, u16), text: String) -> Failure {
    Failure::Local {
        status: Enhanced(status.0, status.1, status.2),
        text,
    }
}

/// Delivers recipient `index` of `message` to its Maildir. The file's
/// name comes from the queue id and `index`, so an attempt after a crash
/// that struck between the Maildir rename and the queue's record finds the
/// file and writes no second copy.
fn deliver_local(
    ctx: &Context,
    message: &QueuedMessage,
    body: &StoredMessage,
    index: usize,
) -> RcptOutcome {
    let rcpt = &message.recipients[index].recipient;
    let Some(user) = ctx.directory.mailbox_owner(&rcpt.address) else {
        return RcptOutcome::Permanent(local(
            (5, 1, 1),
            format!("<{}>: no such mailbox here", rcpt.address),
        ));
    };
    let Some((local_part, domain)) = user.rsplit_once('@') else {
        return RcptOutcome::Permanent(local(
            (5, 1, 3),
            format!("<{}>: bad address", rcpt.address),
        ));
    };
    let key = DeliveryKey {
        queue_id: &message.id,
        recipient: index,
        arrival: message.arrival,
    };
    match ctx.mail.deliver(
        local_part,
        &domain.to_ascii_lowercase(),
        &message.mail_from.sender,
        &mut body.reader(),
        key,
    ) {
        Ok(delivered) => {
            let name = delivered
                .path()
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let said = match delivered {
                Delivered::Written(_) => format!("delivered to maildir {name}"),
                Delivered::Found(_) => {
                    format!("delivered to maildir {name} (by an earlier attempt)")
                }
            };
            RcptOutcome::Delivered { said }
        }
        Err(MaildirError::BadName(name)) => RcptOutcome::Permanent(local(
            (5, 1, 3),
            format!("<{}>: unusable mailbox name {name:?}", rcpt.address),
        )),
        Err(e @ MaildirError::Io { .. }) => {
            RcptOutcome::Transient(local((4, 3, 0), format!("local delivery failed: {e}")))
        }
    }
}

/// How to reach one destination.
struct Route {
    hosts: Vec<String>,
    port: u16,
    implicit_tls: bool,
    policy: TlsPolicy,
    tls: Arc<ClientConfig>,
    credentials: Option<Credentials>,
}

fn deliver_remote(
    ctx: &Context,
    message: &QueuedMessage,
    body: &StoredMessage,
    destination: &Destination,
    indices: &[usize],
) -> GroupResult {
    let unreached = |outcome: RcptOutcome| GroupResult {
        outcomes: indices.iter().map(|&i| (i, outcome.clone())).collect(),
        relay: "none".to_string(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
        conn_use: 0,
    };
    let route = match route_for(ctx, destination, message.id.as_str()) {
        Ok(route) => route,
        Err(outcome) => return unreached(outcome),
    };
    // The signature goes in front of the message through the same
    // dot-stuffing, and counts in its size.
    let added_header = sign::signature_fields(
        ctx.config.dkim.as_ref(),
        message.id.as_str(),
        &message.origin,
        body.reader(),
    );
    let mut facts = BodyFacts::default();
    facts.add(&added_header);
    let read = body.for_each_piece(|piece| {
        facts.add(piece);
        true
    });
    if let Err(e) = read {
        let failure = local((4, 3, 0), format!("reading the queued message failed: {e}"));
        return unreached(RcptOutcome::Transient(failure));
    }
    let params = ClientParams {
        hostname: ctx.config.hostname.clone(),
        sender: message.mail_from.sender.clone(),
        recipients: indices
            .iter()
            .map(|&i| {
                let r = &message.recipients[i].recipient;
                RecipientParams {
                    address: r.address.clone(),
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                }
            })
            .collect(),
        body: facts.finish(),
        eight_bit_mime: matches!(
            message.mail_from.body,
            Some(Body::EightBitMime | Body::BinaryMime)
        ),
        smtputf8: message.mail_from.smtputf8,
        ret: message.mail_from.ret,
        envid: message.mail_from.envid.clone(),
        tls: route.policy,
        tls_active: route.implicit_tls,
        credentials: route.credentials.clone(),
    };
    let mut last_error = None;
    let pool_key = destination.pool_key();
    // RFC 5321 §5.1: try the hosts in order until one takes the
    // connection; what it says then is the answer.
    for host in &route.hosts {
        let addrs = match host_addrs(ctx, host) {
            Ok(addrs) => addrs,
            Err(e) => {
                last_error = Some(local((4, 4, 3), format!("lookup of {host} failed: {e}")));
                continue;
            }
        };
        let family = ctx.config.ip_family;
        let mut addrs: Vec<IpAddr> = addrs.into_iter().filter(|&ip| family.allows(ip)).collect();
        // IPv6 first, as RFC 6724 prefers; a host without IPv6 routing
        // fails those at once and goes on to IPv4.
        addrs.sort_by_key(IpAddr::is_ipv4);
        if addrs.is_empty() {
            let text = format!("{host} has no address of the family --outbound-ip-family allows");
            last_error = Some(local((4, 4, 3), text));
            continue;
        }
        // Set once the peer refused our IPv6 address: its IPv4 ones remain.
        let mut ipv4_only = false;
        for (n, &ip) in addrs.iter().enumerate() {
            if ipv4_only && ip.is_ipv6() {
                continue;
            }
            let source = ctx.config.source_for(ip);
            let peer = Peer {
                addr: SocketAddr::new(ip, route.port),
                source,
                host: host.clone(),
                implicit_tls: route.implicit_tls,
            };
            let relay = match source {
                Some(source) => format!("{host}[{ip}]:{} from {source}", route.port),
                None => format!("{host}[{ip}]:{}", route.port),
            };
            if ctx.own.is_self(peer.addr) {
                // Like Postfix with an MX list that names us: the hosts
                // before us were the way out; with none tried, the mail
                // has nowhere to go but back here.
                log::warn!("{}: {relay} is this server", message.id);
                return match last_error {
                    None => loops_back_group(message, indices, relay),
                    Some(failure) => unreached(RcptOutcome::Transient(failure)),
                };
            }
            let hop = NextHop {
                addr: peer.addr,
                source,
                host: host.clone(),
                implicit_tls: route.implicit_tls,
                tls: route.policy,
                smarthost: matches!(destination, Destination::Relay(_)),
                user: route.credentials.as_ref().map(|c| c.username.clone()),
            };
            let mut lease = ctx.pool.lease(&pool_key, &hop);
            let run = outbound::run_session(
                &peer,
                params.clone(),
                lease.take_session(),
                added_header.as_slice().chain(body.reader()),
                &route.tls,
                &ctx.connections,
            );
            let healthy = run.as_ref().is_ok_and(|r| healthy(&r.attempt.report));
            ctx.pool.feedback(&pool_key, healthy);
            let (result, kept) = match run {
                Ok(r) => (Ok((r.attempt, r.conn_use)), r.kept),
                Err(e) => (Err(e), None),
            };
            lease.finish(kept);
            match result {
                Ok((attempt, _)) if attempt.report.end == SessionEnd::LoopsBack => {
                    log::warn!(
                        "{}: {relay} names itself with our own host name {}",
                        message.id,
                        ctx.config.hostname
                    );
                    return loops_back_group(message, indices, relay);
                }
                Ok((attempt, _))
                    if ip.is_ipv6()
                        && refused_for_ipv6(&attempt.report.outcomes)
                        && addrs[n + 1..].iter().any(IpAddr::is_ipv4) =>
                {
                    // Gmail and others refuse IPv6 senders without a PTR
                    // or authentication (5.7.25, "IPv6 sending
                    // guidelines"); the same host over IPv4 may accept.
                    log::info!(
                        "{}: {relay} refused our IPv6 address; trying {host} over IPv4",
                        message.id
                    );
                    ipv4_only = true;
                }
                Ok((attempt, conn_use)) => {
                    let said = |reply| Failure::Remote {
                        host: host.clone(),
                        reply: report::remote_reply(reply),
                    };
                    let outcomes = indices
                        .iter()
                        .zip(&attempt.report.outcomes)
                        .map(|(&i, outcome)| {
                            let outcome = match outcome {
                                Outcome::Delivered(r) => RcptOutcome::Delivered {
                                    said: report::remote_reply(r).to_string(),
                                },
                                Outcome::Transient(r) => RcptOutcome::Transient(said(r)),
                                Outcome::Permanent(r) => RcptOutcome::Permanent(said(r)),
                            };
                            (i, outcome)
                        })
                        .collect();
                    return GroupResult {
                        outcomes,
                        relay,
                        remote_host: Some(host.clone()),
                        tls: attempt.tls_version.clone(),
                        peer_dsn: attempt.report.extensions.dsn,
                        conn_use,
                    };
                }
                Err(OutboundError::Connect { source, .. }) => {
                    last_error = Some(local((4, 4, 1), format!("connect to {relay}: {source}")));
                }
                Err(e) => last_error = Some(local((4, 4, 0), format!("{relay}: {e}"))),
            }
        }
    }
    let failure =
        last_error.unwrap_or_else(|| local((4, 4, 0), "no address to connect to".to_string()));
    unreached(RcptOutcome::Transient(failure))
}

/// Whether a session shows its destination able to take mail (the rule of
/// `delivery::pool`): something was delivered, or nothing failed for now.
fn healthy(report: &Report) -> bool {
    let any = |f: fn(&Outcome) -> bool| report.outcomes.iter().any(f);
    any(|o| matches!(o, Outcome::Delivered(_))) || !any(|o| matches!(o, Outcome::Transient(_)))
}

/// Did the peer refuse the message for coming over IPv6 (no PTR for our
/// IPv6 address, or its IPv6 sending policy) and deliver nothing?
fn refused_for_ipv6(outcomes: &[Outcome]) -> bool {
    let for_ipv6 = |reply: &Reply| {
        let text = reply.lines.join(" ").to_ascii_lowercase();
        reply.enhanced == Some(Enhanced(5, 7, 25))
            || (text.contains("ipv6")
                && ["ptr", "reverse", "guidelines", "policy"]
                    .iter()
                    .any(|w| text.contains(w)))
    };
    !outcomes.iter().any(|o| matches!(o, Outcome::Delivered(_)))
        && outcomes
            .iter()
            .any(|o| matches!(o, Outcome::Permanent(r) if for_ipv6(r)))
}

/// The hosts, port and TLS settings for a destination. An `Err` is the
/// outcome for every recipient (DNS said no, or not now).
fn route_for(ctx: &Context, destination: &Destination, id: &str) -> Result<Route, RcptOutcome> {
    let mx_policy = match ctx.config.outbound_tls {
        CertPolicy::Opportunistic => TlsPolicy::Opportunistic,
        CertPolicy::Verify => TlsPolicy::Required,
    };
    match destination {
        Destination::Relay(hp) => {
            let (policy, implicit_tls) = match ctx.config.relay_tls {
                RelayTls::StartTls => (TlsPolicy::Required, false),
                RelayTls::Tls => (TlsPolicy::Never, true),
                RelayTls::None => (TlsPolicy::Never, false),
            };
            Ok(Route {
                hosts: vec![hp.host.clone()],
                port: hp.port,
                implicit_tls,
                policy,
                tls: ctx.relay_tls.clone(),
                credentials: ctx.credentials.clone(),
            })
        }
        Destination::Host(hp) => Ok(Route {
            hosts: vec![hp.host.clone()],
            port: hp.port,
            implicit_tls: false,
            policy: mx_policy,
            tls: ctx.mx_tls.clone(),
            credentials: None,
        }),
        Destination::Mx(domain) => {
            let resolver = ctx.resolver.as_ref().map_err(|why| {
                RcptOutcome::Transient(local((4, 4, 3), format!("no DNS resolver: {why}")))
            })?;
            let records = resolver.mx(domain).map_err(|e| match e {
                DnsError::NxDomain => RcptOutcome::Permanent(local(
                    (5, 1, 2),
                    format!("The recipient's domain {domain} does not exist (DNS: NXDOMAIN)"),
                )),
                e => RcptOutcome::Transient(local(
                    (4, 4, 3),
                    format!("MX lookup of {domain} failed: {e}"),
                )),
            })?;
            let targets = route::select(domain, &records, report::seed_of(id)).map_err(|e| {
                RcptOutcome::Permanent(Failure::Local {
                    status: e.status(),
                    text: e.text().to_string(),
                })
            })?;
            Ok(Route {
                hosts: targets.into_iter().map(|t| t.host).collect(),
                port: ctx.config.mx_port,
                implicit_tls: false,
                policy: mx_policy,
                tls: ctx.mx_tls.clone(),
                credentials: None,
            })
        }
        Destination::Local | Destination::Discard => Err(RcptOutcome::Transient(local(
            (4, 3, 0),
            "internal routing error".to_string(),
        ))),
    }
}

/// Why a next hop's addresses are not known.
#[derive(Debug)]
enum HostAddressError<'a> {
    /// There is no resolver (no usable resolv.conf).
    NoResolver(&'a DnsError),
    /// The name has no A or AAAA records.
    NoRecords,
    /// The lookup failed.
    Dns(DnsError),
}

impl std::fmt::Display for HostAddressError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostAddressError::NoResolver(e) => e.fmt(f),
            HostAddressError::Dns(e) => e.fmt(f),
            HostAddressError::NoRecords => write!(f, "no A or AAAA records"),
        }
    }
}

/// An IP literal as it is (`127.0.0.1`, `[::1]`), a name through DNS.
fn host_addrs<'a>(ctx: &'a Context, host: &str) -> Result<Vec<IpAddr>, HostAddressError<'a>> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let resolver = ctx
        .resolver
        .as_ref()
        .map_err(HostAddressError::NoResolver)?;
    match resolver.ip_addrs(host) {
        Ok(addrs) if addrs.is_empty() => Err(HostAddressError::NoRecords),
        Ok(addrs) => Ok(addrs),
        Err(e) => Err(HostAddressError::Dns(e)),
    }
}

/// Seconds since the epoch.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Milliseconds since the epoch.
pub(crate) fn now_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
