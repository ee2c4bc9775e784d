//! One delivery attempt of one message, on a delivery thread: expand
//! aliases, group the recipients still to do by destination, deliver each
//! group (Maildir, discard, or SMTP to a `--transport` host, the smarthost
//! or the domain's MX), write each recipient's outcome to the envelope file
//! right after its group, then decide the retry, spool the reports and
//! remove the message once every recipient is final.
//!
//! Crash safety: a recipient's state and its "report due" mark are written
//! together before anything else happens, so a restart never delivers a
//! done recipient again and never forgets a report; the report itself is
//! spooled before the mark is cleared, so a crash in that window can at
//! worst send one report twice.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::ClientConfig;

use super::report::{self, LogStatus, ReportContext};
use super::Context;
use crate::delivery::config::{HostPort, RelayTls, TransportRoute};
use crate::delivery::dns::DnsError;
use crate::delivery::maildir::MaildirError;
use crate::delivery::retry::Decision;
use crate::delivery::route;
use crate::delivery::transport::{self, CertPolicy, Peer, TransportError};
use crate::proto::client::{
    Client, ClientParams, Credentials, Outcome, RecipientParams, TlsPolicy,
};
use crate::proto::command::Body;
use crate::proto::dsn::Action;
use crate::proto::envelope::Recipient;
use crate::queue::{QueueError, QueueId, QueuedMessage, RecipientState};

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
    /// The key that allows one connection at a time per destination.
    fn lock_key(&self) -> String {
        match self {
            Destination::Local | Destination::Discard => String::new(),
            Destination::Host(hp) | Destination::Relay(hp) => format!("host:{hp}"),
            Destination::Mx(domain) => format!("mx:{domain}"),
        }
    }
}

/// One recipient's result in this attempt.
enum RcptResult {
    Delivered(String),
    Transient(String),
    Permanent(String),
}

/// The results of one group.
struct GroupResult {
    outcomes: Vec<RcptResult>,
    /// `host[ip]:port`, `local`, `discard` or `none`.
    relay: String,
    /// The remote host name, for `Remote-MTA`.
    remote_host: Option<String>,
    tls: Option<String>,
    /// The peer announced DSN: it passes NOTIFY=SUCCESS on itself.
    peer_dsn: bool,
}

/// Runs one attempt of `id`; never panics on bad files or I/O.
pub(crate) fn run(ctx: &Context, id: &str) -> Finished {
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
            log::info!("{id}: removed from the queue meanwhile");
            Next::Gone
        }
        Err(e) => {
            log::error!("{id}: delivery attempt failed: {e}");
            Next::RetryAt(now_secs() + ERROR_RETRY.as_secs())
        }
    };
    Finished {
        id: id.to_string(),
        next,
        injected,
    }
}

fn attempt(ctx: &Context, id: &str, injected: &mut Vec<QueueId>) -> Result<Next, QueueError> {
    let (mut message, body) = ctx.spool.load_with_message(id)?;
    if expand_aliases(ctx, &mut message) {
        ctx.spool.update(id, &message)?;
    }
    let started = now_secs();
    let delay = started.saturating_sub(message.arrival);
    let mut remote_mta: HashMap<usize, String> = HashMap::new();
    let mut attempted = false;
    let mut interrupted = false;
    let groups = group(ctx, &message);
    let last_group = groups.len().saturating_sub(1);
    for (group_index, (destination, indices)) in groups.into_iter().enumerate() {
        if ctx.stopping.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        attempted = true;
        let result = deliver_group(ctx, &message, &body, &destination, &indices);
        for (&index, outcome) in indices.iter().zip(result.outcomes) {
            let rcpt = &message.envelope.recipients[index];
            let (state, status, text, action) = match outcome {
                RcptResult::Delivered(text) => (
                    RecipientState::Delivered,
                    LogStatus::Sent,
                    text,
                    Some(Action::Delivered),
                ),
                RcptResult::Permanent(text) => (
                    RecipientState::Failed {
                        reply: text.clone(),
                    },
                    LogStatus::Bounced,
                    text,
                    Some(Action::Failed),
                ),
                RcptResult::Transient(text) => {
                    let attempts = match &message.states[index] {
                        RecipientState::Deferred { attempts, .. } => attempts + 1,
                        _ => 1,
                    };
                    (
                        RecipientState::Deferred {
                            reply: text.clone(),
                            attempts,
                        },
                        LogStatus::Deferred,
                        text,
                        None,
                    )
                }
            };
            log::info!(
                "{}",
                report::log_line(
                    id,
                    &rcpt.address,
                    &result.relay,
                    delay,
                    result.tls.as_deref(),
                    status,
                    &text
                )
            );
            // RFC 3461 §6.2.2: a DSN-capable next hop got NOTIFY and
            // reports success itself.
            let due = match action {
                Some(Action::Delivered) if result.peer_dsn => false,
                Some(action) => {
                    !message.envelope.sender.is_empty() && report::wants(rcpt.notify, action)
                }
                None => false,
            };
            set_state(&mut message, index, state, due);
            if let Some(host) = &result.remote_host {
                remote_mta.insert(index, host.clone());
            }
        }
        // Written right after each group: a restart must neither lose nor
        // repeat what this group did. The last group's outcome is written
        // below, together with what follows from it.
        if group_index < last_group {
            ctx.spool.update(id, &message)?;
        }
    }

    // A connection the shutdown closed says nothing about the peer: the
    // message goes again first thing after the restart.
    if ctx.stopping.load(Ordering::Relaxed) {
        interrupted = true;
    }
    let now = now_secs();
    let age = Duration::from_secs(now.saturating_sub(message.arrival));
    if attempted {
        message.attempts += 1;
    }
    let open = |m: &QueuedMessage| {
        m.states
            .iter()
            .any(|s| matches!(s, RecipientState::Pending | RecipientState::Deferred { .. }))
    };
    if interrupted {
        // Shutting down: the rest is tried first thing after the restart.
        message.next_attempt = 0;
    } else if open(&message) {
        let seed = report::seed_of(id);
        match ctx.config.retry.after_failure(age, message.attempts, seed) {
            Decision::GiveUp => {
                for index in 0..message.states.len() {
                    if let RecipientState::Deferred { reply, .. } = &message.states[index] {
                        let reason = report::gave_up(age, reply);
                        let rcpt = &message.envelope.recipients[index];
                        log::info!(
                            "{}",
                            report::log_line(
                                id,
                                &rcpt.address,
                                "none",
                                age.as_secs(),
                                None,
                                LogStatus::Bounced,
                                &reason
                            )
                        );
                        let due = !message.envelope.sender.is_empty()
                            && report::wants(rcpt.notify, Action::Failed);
                        set_state(
                            &mut message,
                            index,
                            RecipientState::Failed { reply: reason },
                            due,
                        );
                    }
                }
            }
            Decision::RetryAfter(after) => {
                message.next_attempt = ceil_secs(now_millis() + after.as_millis() as u64);
            }
        }
    }
    let reports_due = message.report_due.iter().any(|&due| due);
    if open(&message) || reports_due {
        ctx.spool.update(id, &message)?;
    }
    // Otherwise every recipient is final and nobody is to be told: the
    // removal below is the durable record (one sync instead of three).

    let retry_until = message
        .arrival
        .saturating_add(ctx.config.retry.retry_until().as_secs());
    let remote = |i: usize| remote_mta.get(&i).cloned();
    let report_ctx = ReportContext {
        hostname: &ctx.config.hostname,
        now,
        remote_mta: &remote,
        retry_until,
    };

    // One report per message and attempt batch for every final outcome
    // the sender asked to hear about (also those left over by a crash).
    let due: Vec<usize> = (0..message.states.len())
        .filter(|&i| message.is_report_due(i))
        .collect();
    if !due.is_empty() {
        if !message.envelope.sender.is_empty() {
            let report = report::report_message(&message, &body, &due, &report_ctx, "dsn");
            injected.push(ctx.spool.store(&report)?);
            log::info!(
                "{id}: sender notification {} to <{}>",
                injected.last().map_or("", String::as_str),
                message.envelope.sender
            );
        }
        message.report_due = vec![false; message.states.len()];
        ctx.spool.update(id, &message)?;
    }

    // RFC 3464 "delayed": once, after --delay-warning, for recipients still
    // being retried whose NOTIFY includes DELAY.
    let deferred: Vec<usize> = (0..message.states.len())
        .filter(|&i| matches!(message.states[i], RecipientState::Deferred { .. }))
        .collect();
    if !deferred.is_empty() && ctx.config.retry.warn_now(age, message.delay_warned) {
        let wanted: Vec<usize> = deferred
            .into_iter()
            .filter(|&i| report::wants(message.envelope.recipients[i].notify, Action::Delayed))
            .collect();
        if !wanted.is_empty() && !message.envelope.sender.is_empty() {
            let report = report::report_message(&message, &body, &wanted, &report_ctx, "delay");
            injected.push(ctx.spool.store(&report)?);
            log::info!(
                "{id}: delay notification {} to <{}>",
                injected.last().map_or("", String::as_str),
                message.envelope.sender
            );
        }
        message.delay_warned = true;
        ctx.spool.update(id, &message)?;
    }

    if open(&message) {
        Ok(Next::RetryAt(message.next_attempt))
    } else {
        ctx.spool.remove(id)?;
        log::info!("{id}: removed");
        Ok(Next::Removed)
    }
}

fn set_state(message: &mut QueuedMessage, index: usize, state: RecipientState, due: bool) {
    message.states[index] = state;
    if message.report_due.len() < message.states.len() {
        message.report_due.resize(message.states.len(), false);
    }
    message.report_due[index] = due;
}

/// Replaces every open recipient that is an alias (or `postmaster@`) by
/// the addresses it expands to, each with the original's NOTIFY and, when
/// none was given, the original address as ORCPT (RFC 3461 §4.2) so a
/// report names what the sender wrote. Returns true when anything changed;
/// the caller writes it down, so expansion happens once.
fn expand_aliases(ctx: &Context, message: &mut QueuedMessage) -> bool {
    let first_user = |domain: &str| ctx.users.first_user(domain);
    let mut recipients = Vec::new();
    let mut states = Vec::new();
    let mut due = Vec::new();
    let mut changed = false;
    for (index, (rcpt, state)) in message.recipients().enumerate() {
        let open = matches!(
            state,
            RecipientState::Pending | RecipientState::Deferred { .. }
        );
        let expanded = if open {
            ctx.aliases
                .expand(&rcpt.address, &ctx.config.local_domains, &first_user)
        } else {
            Ok(vec![rcpt.address.clone()])
        };
        match expanded {
            Ok(list) if list.len() == 1 && list[0] == rcpt.address => {
                recipients.push(rcpt.clone());
                states.push(state.clone());
                due.push(message.is_report_due(index));
            }
            Ok(list) => {
                changed = true;
                for address in list {
                    let duplicate = recipients.iter().zip(&states).any(
                        |(r, s): (&Recipient, &RecipientState)| {
                            r.address.eq_ignore_ascii_case(&address)
                                && matches!(s, RecipientState::Pending)
                        },
                    );
                    if duplicate {
                        continue;
                    }
                    recipients.push(Recipient {
                        address,
                        notify: rcpt.notify,
                        orcpt: rcpt
                            .orcpt
                            .clone()
                            .or_else(|| Some(format!("rfc822;{}", xtext(&rcpt.address)))),
                    });
                    states.push(RecipientState::Pending);
                    due.push(false);
                }
            }
            Err(e) => {
                changed = true;
                log::warn!("{}: alias expansion of {}: {e}", message.id, rcpt.address);
                let wants = !message.envelope.sender.is_empty()
                    && report::wants(rcpt.notify, Action::Failed);
                recipients.push(rcpt.clone());
                states.push(RecipientState::Failed {
                    reply: format!("5.4.6 Alias expansion failed: {e}"),
                });
                due.push(wants);
            }
        }
    }
    if changed {
        message.envelope.recipients = recipients;
        message.states = states;
        message.report_due = due;
    }
    changed
}

/// RFC 3461 §4: xtext, `+XX` for `+`, `=`, controls and non-ASCII.
fn xtext(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// Open recipients by destination, in the order of first appearance.
fn group(ctx: &Context, message: &QueuedMessage) -> Vec<(Destination, Vec<usize>)> {
    let mut groups: Vec<(Destination, Vec<usize>)> = Vec::new();
    for (index, (rcpt, state)) in message.recipients().enumerate() {
        if !matches!(
            state,
            RecipientState::Pending | RecipientState::Deferred { .. }
        ) {
            continue;
        }
        let domain = rcpt
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
                None => match &ctx.config.relay_host {
                    Some(hp) => Destination::Relay(hp.clone()),
                    None => Destination::Mx(domain),
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
    body: &[u8],
    destination: &Destination,
    indices: &[usize],
) -> GroupResult {
    let local_result = |relay: &str, outcomes| GroupResult {
        outcomes,
        relay: relay.to_string(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
    };
    match destination {
        Destination::Local => {
            let outcomes = indices
                .iter()
                .map(|&i| deliver_local(ctx, message, body, &message.envelope.recipients[i]))
                .collect();
            local_result("local", outcomes)
        }
        Destination::Discard => local_result(
            "discard",
            indices
                .iter()
                .map(|_| RcptResult::Delivered("discarded (--transport discard)".into()))
                .collect(),
        ),
        remote => {
            let _busy = ctx.busy.lock(remote.lock_key());
            deliver_remote(ctx, message, body, remote, indices)
        }
    }
}

fn deliver_local(
    ctx: &Context,
    message: &QueuedMessage,
    body: &[u8],
    rcpt: &Recipient,
) -> RcptResult {
    let Some(user) = local_user(ctx, &rcpt.address) else {
        return RcptResult::Permanent(format!("5.1.1 <{}>: no such mailbox here", rcpt.address));
    };
    let Some((local, domain)) = user.rsplit_once('@') else {
        return RcptResult::Permanent(format!("5.1.3 <{}>: bad address", rcpt.address));
    };
    match ctx.mail.deliver(
        local,
        &domain.to_ascii_lowercase(),
        &message.envelope.sender,
        body,
    ) {
        Ok(path) => RcptResult::Delivered(format!(
            "delivered to maildir {}",
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        )),
        Err(MaildirError::BadName(name)) => RcptResult::Permanent(format!(
            "5.1.3 <{}>: unusable mailbox name {name:?}",
            rcpt.address
        )),
        Err(e @ MaildirError::Io { .. }) => {
            RcptResult::Transient(format!("4.3.0 local delivery failed: {e}"))
        }
    }
}

/// The user `address` belongs to, as the users file writes it: exact, or
/// with the local part in another case.
fn local_user(ctx: &Context, address: &str) -> Option<String> {
    if ctx.users.user_exists(address) {
        return Some(address.to_string());
    }
    let (_, domain) = address.rsplit_once('@')?;
    ctx.users
        .users_for_domain(domain)
        .into_iter()
        .find(|u| u.eq_ignore_ascii_case(address))
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
    body: &[u8],
    destination: &Destination,
    indices: &[usize],
) -> GroupResult {
    let all = |make: &dyn Fn() -> RcptResult, relay: &str| GroupResult {
        outcomes: indices.iter().map(|_| make()).collect(),
        relay: relay.to_string(),
        remote_host: None,
        tls: None,
        peer_dsn: false,
    };
    let route = match route_for(ctx, destination, &message.id) {
        Ok(route) => route,
        Err(failure) => {
            return match failure {
                RcptResult::Permanent(text) => all(&|| RcptResult::Permanent(text.clone()), "none"),
                RcptResult::Transient(text) | RcptResult::Delivered(text) => {
                    all(&|| RcptResult::Transient(text.clone()), "none")
                }
            }
        }
    };
    let params = ClientParams {
        hostname: ctx.config.hostname.clone(),
        sender: message.envelope.sender.clone(),
        recipients: indices
            .iter()
            .map(|&i| {
                let r = &message.envelope.recipients[i];
                RecipientParams {
                    address: r.address.clone(),
                    notify: r.notify,
                    orcpt: r.orcpt.clone(),
                }
            })
            .collect(),
        body: body.to_vec(),
        eight_bit_mime: matches!(
            message.envelope.body,
            Some(Body::EightBitMime | Body::BinaryMime)
        ),
        smtputf8: message.envelope.smtputf8,
        ret: message.envelope.ret,
        envid: message.envelope.envid.clone(),
        tls: route.policy,
        tls_active: route.implicit_tls,
        credentials: route.credentials.clone(),
    };
    let mut last_error = String::from("no address to connect to");
    // RFC 5321 §5.1: try the hosts in order until one takes the
    // connection; what it says then is the answer.
    for host in &route.hosts {
        let addrs = match host_addrs(ctx, host) {
            Ok(addrs) => addrs,
            Err(e) => {
                last_error = format!("4.4.3 lookup of {host} failed: {e}");
                continue;
            }
        };
        for ip in addrs {
            let peer = Peer {
                addr: SocketAddr::new(ip, route.port),
                host: host.clone(),
                implicit_tls: route.implicit_tls,
            };
            let relay = format!("{host}[{ip}]:{}", route.port);
            match transport::run_tracked(
                &peer,
                Client::new(params.clone()),
                &route.tls,
                &ctx.connections,
            ) {
                Ok(attempt) => {
                    let outcomes = attempt
                        .report
                        .outcomes
                        .iter()
                        .map(|o| match o {
                            Outcome::Delivered(r) => RcptResult::Delivered(report::reply_line(r)),
                            Outcome::Transient(r) => RcptResult::Transient(report::reply_line(r)),
                            Outcome::Permanent(r) => RcptResult::Permanent(report::reply_line(r)),
                        })
                        .collect();
                    return GroupResult {
                        outcomes,
                        relay,
                        remote_host: Some(host.clone()),
                        tls: attempt.tls_version.clone(),
                        peer_dsn: attempt.report.extensions.dsn,
                    };
                }
                Err(TransportError::Connect { source, .. }) => {
                    last_error = format!("4.4.1 connect to {relay}: {source}");
                }
                Err(e) => last_error = format!("4.4.0 {relay}: {e}"),
            }
        }
    }
    all(&|| RcptResult::Transient(last_error.clone()), "none")
}

/// The hosts, port and TLS settings for a destination. An `Err` is the
/// outcome for every recipient (DNS said no, or not now).
fn route_for(ctx: &Context, destination: &Destination, id: &str) -> Result<Route, RcptResult> {
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
            let resolver = ctx
                .resolver
                .as_ref()
                .map_err(|why| RcptResult::Transient(format!("4.4.3 no DNS resolver: {why}")))?;
            let records = resolver.mx(domain).map_err(|e| match e {
                DnsError::NxDomain => RcptResult::Permanent(format!(
                    "5.1.2 The recipient's domain {domain} does not exist (DNS: NXDOMAIN)"
                )),
                e => RcptResult::Transient(format!("4.4.3 MX lookup of {domain} failed: {e}")),
            })?;
            let targets = route::select(domain, &records, report::seed_of(id)).map_err(|e| {
                let s = e.status();
                RcptResult::Permanent(format!("{}.{}.{} {}", s.0, s.1, s.2, e.text()))
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
        Destination::Local | Destination::Discard => Err(RcptResult::Transient(
            "4.3.0 internal routing error".to_string(),
        )),
    }
}

/// An IP literal as it is (`127.0.0.1`, `[::1]`), a name through DNS.
fn host_addrs(ctx: &Context, host: &str) -> Result<Vec<IpAddr>, String> {
    let literal = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = literal.parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let resolver = ctx.resolver.as_ref().map_err(Clone::clone)?;
    match resolver.ip_addrs(host) {
        Ok(addrs) if addrs.is_empty() => Err("no A or AAAA records".into()),
        Ok(addrs) => Ok(addrs),
        Err(e) => Err(e.to_string()),
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

/// Milliseconds rounded up to whole seconds, so a retry is never early.
fn ceil_secs(millis: u64) -> u64 {
    millis.div_ceil(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtext_encodes_plus_equals_and_spaces() {
        assert_eq!(xtext("a+b=c@x"), "a+2Bb+3Dc@x");
        assert_eq!(xtext("\"a b\"@x"), "\"a+20b\"@x");
    }

    #[test]
    fn retry_times_round_up() {
        assert_eq!(ceil_secs(10_000), 10);
        assert_eq!(ceil_secs(10_001), 11);
    }
}
