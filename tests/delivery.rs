//! The queue manager end to end on loopback: messages stored with the
//! Spool, `Delivery` started on them, a DNS responder and the scripted
//! receiving SMTP server of `tests/support` (one offering STARTTLS). Every
//! wait is bounded.

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use outpost::cli::queue as queue_cli;
use outpost::delivery::config::{self, DeliveryConfig};
use outpost::delivery::manager::{Delivery, DeliveryHandle};
use outpost::delivery::retry::{RetryPolicy, Schedule};
use outpost::directory::{users_file_line, AliasTable, LocalDirectory, UserTable};
use outpost::proto::envelope::{
    ClientOrigin, Envelope, MissingFields, NewMessage, Origin, Recipient,
};
use outpost::proto::esmtp::Notify;
use outpost::queue::{QueueId, RecipientState, Spool};
use support::fake_mx::{self_signed_tls_and_pem, MxScript, MxSession, END_OF_DATA};
use support::TempDir;

const BODY: &[u8] = b"From: alice@local.test\r\nTo: bob@rx.test\r\nSubject: hello\r\n\r\n.leading dot\r\nline two\r\n..two dots\r\n";

/// A fresh data directory, removed when the test ends.
fn data_dir(name: &str) -> TempDir {
    let _ = env_logger::builder().is_test(true).try_init();
    TempDir::new(&format!("delivery-{name}"))
}

fn users(addresses: &[&str]) -> Arc<UserTable> {
    let list = addresses
        .iter()
        .map(|a| {
            let line = users_file_line(a, "secret");
            let (addr, hash) = line.split_once(':').unwrap();
            (addr.to_string(), hash.to_string())
        })
        .collect();
    Arc::new(UserTable::from_list(list).unwrap())
}

fn message(sender: &str, recipients: &[&str]) -> NewMessage {
    NewMessage {
        envelope: Envelope {
            sender: sender.into(),
            recipients: recipients
                .iter()
                .map(|r| Recipient {
                    address: r.to_string(),
                    notify: None,
                    orcpt: None,
                })
                .collect(),
            body: None,
            smtputf8: false,
            ret: None,
            envid: Some("ENV42".into()),
        },
        origin: Origin::Client(ClientOrigin {
            client_ip: "127.0.0.1".into(),
            helo: "client.test".into(),
            tls: None,
            auth_user: Some(sender.into()),
            protocol: "ESMTPA",
        }),
        body: BODY.to_vec(),
        missing: MissingFields::default(),
    }
}

fn base_config(dir: &Path, dns: &DnsServer, mx_port: u16) -> DeliveryConfig {
    DeliveryConfig {
        hostname: "out.local.test".into(),
        local_domains: vec!["local.test".into()],
        data_dir: dir.to_path_buf(),
        dns_server: Some(dns.addr),
        mx_port,
        retry: RetryPolicy {
            schedule: Schedule::List(vec![Duration::from_secs(1)]),
            ..RetryPolicy::default()
        },
        max_outbound_connections: 4,
        ..DeliveryConfig::default()
    }
}

fn mx_zone(domain: &str) -> Zone {
    let mx = format!("mx.{domain}");
    Zone::new()
        .add(domain, Rec::Mx(10, mx.clone()))
        .add(&mx, Rec::A(Ipv4Addr::LOCALHOST))
}

/// Polls `cond` every 50 ms for at most `secs` seconds.
fn wait_for(secs: u64, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn maildir_files(dir: &Path, domain: &str, user: &str) -> Vec<Vec<u8>> {
    let new = dir.join("mail").join(domain).join(user).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    entries
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect()
}

fn store(spool: &Spool, sender: &str, recipients: &[&str]) -> QueueId {
    spool.store(&message(sender, recipients)).unwrap()
}

fn start(config: DeliveryConfig, spool: &Arc<Spool>, users: Arc<UserTable>) -> DeliveryHandle {
    let aliases = AliasTable::load(config.aliases.as_deref()).unwrap();
    let directory = LocalDirectory::new(&config.local_domains, users, Arc::new(aliases), None);
    Delivery::start(config, spool.clone(), Arc::new(directory)).unwrap()
}

fn queue_is_empty(spool: &Spool) -> bool {
    spool.list().unwrap().is_empty()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// One test's world: a fresh data directory, its spool and a DNS responder
/// on loopback. The fields drop in this order: the spool before its
/// directory.
struct Rig {
    spool: Arc<Spool>,
    dns: DnsServer,
    tmp: TempDir,
}

impl Rig {
    /// A fresh data directory named after `name`, its spool and a DNS
    /// responder answering from `zone`.
    fn new(name: &str, zone: Zone) -> Rig {
        let tmp = data_dir(name);
        let dns = DnsServer::start(zone);
        let spool = Spool::open(tmp.path()).unwrap();
        Rig { spool, dns, tmp }
    }

    /// The data directory.
    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The settings the tests start from, for this data directory and DNS
    /// responder, with MXs listening on `mx_port`.
    fn config(&self, mx_port: u16) -> DeliveryConfig {
        base_config(self.dir(), &self.dns, mx_port)
    }

    /// Spools a message from `sender` to `recipients`.
    fn store(&self, sender: &str, recipients: &[&str]) -> QueueId {
        store(&self.spool, sender, recipients)
    }

    /// `n` messages from alice to bob@rx.test, spooled before delivery starts.
    fn store_many(&self, n: usize) -> Vec<QueueId> {
        (0..n)
            .map(|_| self.store("alice@local.test", &["bob@rx.test"]))
            .collect()
    }

    /// Starts delivery on the spool; alice@local.test is the only user.
    fn start(&self, config: DeliveryConfig) -> DeliveryHandle {
        self.start_with(config, &["alice@local.test"])
    }

    /// Starts delivery on the spool with `addresses` the local users.
    fn start_with(&self, config: DeliveryConfig, addresses: &[&str]) -> DeliveryHandle {
        start(config, &self.spool, users(addresses))
    }

    /// Whether the spool holds no message.
    fn queue_is_empty(&self) -> bool {
        queue_is_empty(&self.spool)
    }

    /// The messages in `user`@local.test's Maildir `new/`.
    fn maildir(&self, user: &str) -> Vec<Vec<u8>> {
        maildir_files(self.dir(), "local.test", user)
    }
}

#[test]
fn delivers_to_the_mx_byte_exact() {
    let rig = Rig::new("mx", mx_zone("rx.test"));
    let rx = MxScript::new().start();
    let id = rig.store("alice@local.test", &["bob@rx.test", "carol@rx.test"]);
    let spooled = rig.spool.read_message(&id).unwrap();
    let delivery = rig.start(rig.config(rx.addr().port()));
    delivery.notify(id);
    wait_for(10, "the message at the MX", || rx.messages().len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    assert_eq!(text(&rx.messages()[0]), text(&spooled));
    assert_eq!(rx.messages()[0], spooled);
    let sessions = rx.wait_for_sessions(1);
    assert_eq!(sessions.len(), 1, "one transaction for the domain");
    let t = sessions[0].text();
    assert!(t.starts_with("EHLO out.local.test\r\n"), "{t}");
    assert!(
        t.contains("RCPT TO:<bob@rx.test>") && t.contains("RCPT TO:<carol@rx.test>"),
        "{t}"
    );
    delivery.shutdown();
}

#[test]
fn uses_starttls_when_offered() {
    let rig = Rig::new("starttls", mx_zone("rx.test"));
    let (tls, _) = self_signed_tls_and_pem(&["mx.rx.test"]);
    let rx = MxScript::new().starttls(tls).start();
    let id = rig.store("alice@local.test", &["bob@rx.test"]);
    let spooled = rig.spool.read_message(&id).unwrap();
    let delivery = rig.start(rig.config(rx.addr().port()));
    delivery.notify(id);
    wait_for(10, "the message at the MX", || rx.messages().len() == 1);
    assert_eq!(rx.messages()[0], spooled);
    let sessions = rx.wait_for_sessions(1);
    assert_eq!(sessions.iter().filter(|s| s.tls).count(), 1);
    assert!(sessions[0]
        .text()
        .starts_with("EHLO out.local.test\r\nSTARTTLS\r\n"));
    delivery.shutdown();
}

#[test]
fn a_451_is_retried_and_delivered_once() {
    let rig = Rig::new("retry", mx_zone("rx.test"));
    let rx = MxScript::new()
        .reply_per_connection("RCPT", |n| {
            if n == 0 {
                "451 4.7.1 Greylisted, try again".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        })
        .start();
    let id = rig.store("alice@local.test", &["bob@rx.test"]);
    let delivery = rig.start(rig.config(rx.addr().port()));
    delivery.notify(id);
    wait_for(10, "the retried message", || rx.messages().len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(rx.messages().len(), 1);
    rx.wait_for_sessions(2);
    assert_eq!(rx.sessions().len(), 2);
    assert!(rig.maildir("alice").is_empty(), "no report");
    delivery.shutdown();
}

#[test]
fn a_550_sends_exactly_one_report_to_the_local_sender() {
    let rig = Rig::new("bounce", mx_zone("rx.test"));
    let rx = MxScript::new()
        .reply("RCPT", "550 5.1.1 No such user here")
        .start();
    let id = rig.store("alice@local.test", &["bob@rx.test"]);
    let delivery = rig.start(rig.config(rx.addr().port()));
    delivery.notify(id);
    wait_for(10, "the report", || rig.maildir("alice").len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    std::thread::sleep(Duration::from_millis(500));
    let reports = rig.maildir("alice");
    assert_eq!(reports.len(), 1);
    let report = text(&reports[0]);
    for needle in [
        "Return-Path: <>\r\n",
        "Content-Type: multipart/report; report-type=delivery-status",
        "Reporting-MTA: dns; out.local.test",
        "Original-Envelope-Id: ENV42",
        "Final-Recipient: rfc822; bob@rx.test",
        "Action: failed",
        "Status: 5.1.1",
        "Remote-MTA: dns; mx.rx.test",
        "Diagnostic-Code: smtp; 550 5.1.1 No such user here",
        "Arrival-Date: ",
        "Subject: hello",
    ] {
        assert!(report.contains(needle), "{needle:?} missing in\n{report}");
    }
    // The report was made here: its Received field has no client.
    let received = report
        .lines()
        .find(|l| l.starts_with("Received: "))
        .unwrap();
    assert!(
        received.starts_with("Received: by ") && received.contains(" (Outpost) id "),
        "{report}"
    );
    assert!(rx.messages().is_empty());
    delivery.shutdown();
}

#[test]
fn a_null_mx_bounces_at_once() {
    let rig = Rig::new(
        "nullmx",
        Zone::new().add("nomail.test", Rec::Mx(0, ".".into())),
    );
    let id = rig.store("alice@local.test", &["bob@nomail.test"]);
    let delivery = rig.start(rig.config(1));
    delivery.notify(id);
    wait_for(10, "the report", || rig.maildir("alice").len() == 1);
    let report = text(&rig.maildir("alice")[0]);
    assert!(report.contains("Status: 5.1.10"), "{report}");
    assert!(report.contains("Final-Recipient: rfc822; bob@nomail.test"));
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    delivery.shutdown();
}

#[test]
fn a_refusing_mx_warns_once_then_bounces_after_the_lifetime() {
    let rig = Rig::new("refused", mx_zone("dead.test"));
    let closed = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = rig.store("alice@local.test", &["bob@dead.test"]);
    let mut config = rig.config(closed);
    config.retry.max_lifetime = Duration::from_secs(4);
    config.retry.delay_warning = Some(Duration::from_secs(1));
    let delivery = rig.start(config);
    delivery.notify(id.clone());
    wait_for(5, "a deferral", || {
        rig.spool
            .load(&id)
            .is_ok_and(|m| matches!(m.recipients[0].state, RecipientState::Deferred { .. }))
    });
    wait_for(15, "the delay warning and the report", || {
        rig.maildir("alice").len() == 2
    });
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    let mut reports: Vec<String> = rig.maildir("alice").iter().map(|r| text(r)).collect();
    reports.sort_by_key(|r| r.contains("Action: failed"));
    let (delayed, failed) = (&reports[0], &reports[1]);
    assert!(delayed.contains("Action: delayed"), "{delayed}");
    assert!(delayed.contains("Will-Retry-Until: "), "{delayed}");
    assert!(delayed.contains("Status: 4.0.0"), "{delayed}");
    assert!(failed.contains("Action: failed"), "{failed}");
    assert!(failed.contains("Status: 5.4.7"), "{failed}");
    assert!(failed.contains("gave up after"), "{failed}");
    assert!(failed.contains("Connection refused"), "{failed}");
    delivery.shutdown();
}

#[test]
fn smarthost_over_starttls_with_auth() {
    let rig = Rig::new("relay", Zone::new());
    let (tls, pem) = self_signed_tls_and_pem(&["127.0.0.1"]);
    let rx = MxScript::new()
        .starttls(tls)
        .auth("relayuser", "relay-secret")
        .start();
    let ca = rig.dir().join("relay-ca.pem");
    std::fs::write(&ca, pem).unwrap();
    let password = rig.dir().join("relay-password");
    std::fs::write(&password, "relay-secret\n").unwrap();
    let id = rig.store("alice@local.test", &["bob@far.away.test"]);
    let spooled = rig.spool.read_message(&id).unwrap();
    let mut config = rig.config(1);
    config.relay_host =
        Some(config::parse_host_port(&format!("127.0.0.1:{}", rx.addr().port())).unwrap());
    config.relay_tls = config::parse_relay_tls("starttls").unwrap();
    config.relay_user = Some("relayuser".into());
    config.relay_password_file = Some(password);
    config.relay_ca = Some(ca);
    let delivery = rig.start(config);
    delivery.notify(id);
    wait_for(10, "the message at the smarthost", || {
        rx.messages().len() == 1
    });
    assert_eq!(rx.messages()[0], spooled);
    let sessions = rx.wait_for_sessions(1);
    assert_eq!(
        sessions[0].auth,
        vec!["\0relayuser\0relay-secret".to_string()]
    );
    assert_eq!(sessions.iter().filter(|s| s.tls).count(), 1);
    let t = sessions[0].text();
    assert!(
        t.starts_with("EHLO out.local.test\r\nSTARTTLS\r\nEHLO"),
        "{t}"
    );
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    delivery.shutdown();
}

#[test]
fn local_delivery_with_an_alias_and_postmaster() {
    let rig = Rig::new("alias", Zone::new());
    let aliases = rig.dir().join("aliases");
    std::fs::write(
        &aliases,
        "# team\nsales@local.test: carol@local.test, alice@local.test\n",
    )
    .unwrap();
    let id = rig.store(
        "someone@remote.test",
        &["sales@local.test", "postmaster@local.test"],
    );
    let spooled = rig.spool.read_message(&id).unwrap();
    let mut config = rig.config(1);
    config.aliases = Some(aliases);
    let delivery = rig.start_with(config, &["alice@local.test", "carol@local.test"]);
    delivery.notify(id);
    wait_for(10, "carol's copy", || rig.maildir("carol").len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    // alice gets one copy through the alias and postmaster@ goes to her
    // too (first user of the domain): delivered once.
    let alice = rig.maildir("alice");
    assert_eq!(alice.len(), 1);
    let mut want = b"Return-Path: <someone@remote.test>\r\n".to_vec();
    want.extend_from_slice(&spooled);
    assert_eq!(alice[0], want);
    assert_eq!(rig.maildir("carol")[0], want);
    delivery.shutdown();
}

#[test]
fn a_message_spooled_before_start_is_delivered_once() {
    let tmp = data_dir("restart");
    let dir = tmp.path();
    let dns = DnsServer::start(mx_zone("rx.test"));
    let rx = MxScript::new().start();
    let spool = Spool::open(dir).unwrap();
    store(
        &spool,
        "alice@local.test",
        &["bob@rx.test", "alice@local.test"],
    );
    drop(spool);
    // As after kill -9: the server restarts on the same data directory.
    let spool = Spool::open(dir).unwrap();
    let delivery = start(
        base_config(dir, &dns, rx.addr().port()),
        &spool,
        users(&["alice@local.test"]),
    );
    wait_for(10, "both deliveries", || {
        rx.messages().len() == 1 && maildir_files(dir, "local.test", "alice").len() == 1
    });
    wait_for(5, "an empty queue", || queue_is_empty(&spool));
    delivery.shutdown();
    // A second start finds nothing to do.
    let delivery = start(
        base_config(dir, &dns, rx.addr().port()),
        &spool,
        users(&["alice@local.test"]),
    );
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(rx.messages().len(), 1);
    assert_eq!(maildir_files(dir, "local.test", "alice").len(), 1);
    delivery.shutdown();
}

fn queue_tool(dir: &Path, args: &[&str]) -> (i32, String) {
    let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    all.push("--data-dir".into());
    all.push(dir.to_string_lossy().into_owned());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = queue_cli::run_with(&all, &mut out, &mut err);
    (code, format!("{}{}", text(&out), text(&err)))
}

#[test]
fn queue_tools_on_waiting_messages() {
    let rig = Rig::new("tools", mx_zone("rx.test"));
    let rx = MxScript::new()
        .reply_per_connection("RCPT", |n| {
            if n < 2 {
                "451 4.7.1 Greylisted, come back later".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        })
        .start();
    let keep = rig.store("alice@local.test", &["bob@rx.test"]);
    let gone = rig.store("alice@local.test", &["carol@rx.test"]);
    let mut config = rig.config(rx.addr().port());
    config.retry.schedule = Schedule::List(vec![Duration::from_secs(3600)]);
    let delivery = rig.start(config);
    delivery.notify(keep.clone());
    delivery.notify(gone.clone());
    wait_for(10, "two deferrals", || {
        [&keep, &gone].iter().all(|id| {
            rig.spool
                .load(id)
                .is_ok_and(|m| m.next_attempt > 0 && m.attempts == 1)
        })
    });
    let (keep, gone) = (keep.to_string(), gone.to_string());

    let (code, out) = queue_tool(rig.dir(), &["list"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&keep) && out.contains(&gone), "{out}");
    assert!(
        out.contains("to <bob@rx.test>: deferred after 1 attempt(s): 451 4.7.1 Greylisted"),
        "{out}"
    );
    assert!(out.contains("from <alice@local.test>"), "{out}");

    let (code, out) = queue_tool(rig.dir(), &["show", &keep]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Subject: hello") && out.contains("Received: "),
        "{out}"
    );
    assert!(!out.contains("line two"), "headers only: {out}");

    let (code, out) = queue_tool(rig.dir(), &["delete", &gone]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(queue_tool(rig.dir(), &["show", &gone]).0, 1);
    assert_eq!(queue_tool(rig.dir(), &["delete", &gone]).0, 1);
    assert_eq!(queue_tool(rig.dir(), &["frobnicate"]).0, 2);

    let (code, out) = queue_tool(rig.dir(), &["flush"]);
    assert_eq!(code, 0, "{out}");
    wait_for(10, "the flushed message", || rx.messages().len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    wait_for(3, "the flush request to be consumed", || {
        !rig.spool.dir().join("flush").exists()
    });
    let (code, out) = queue_tool(rig.dir(), &["list"]);
    assert_eq!((code, out.trim()), (0, "the queue is empty"));
    assert_eq!(
        rx.messages().len(),
        1,
        "{:?}",
        rx.sessions().iter().map(|s| s.text()).collect::<Vec<_>>()
    );
    assert!(text(&rx.messages()[0]).contains("To: bob@rx.test"));
    delivery.shutdown();
}

#[test]
fn notify_success_reports_relayed_for_a_next_hop_without_dsn_and_delivered_for_maildir() {
    let rig = Rig::new("success", mx_zone("rx.test"));
    let rx = MxScript::new().start();
    let mut new = message("alice@local.test", &["bob@rx.test", "carol@local.test"]);
    for rcpt in &mut new.envelope.recipients {
        rcpt.notify = Some(Notify {
            success: true,
            failure: true,
            delay: false,
        });
    }
    let id = rig.spool.store(&new).unwrap();
    let delivery = rig.start_with(
        rig.config(rx.addr().port()),
        &["alice@local.test", "carol@local.test"],
    );
    delivery.notify(id);
    wait_for(10, "the success report", || rig.maildir("alice").len() == 1);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    let report = text(&rig.maildir("alice")[0]);
    assert!(
        report.contains("Subject: Successful Mail Delivery Report"),
        "{report}"
    );
    // The receiver announced no DSN, so bob's report is the last one
    // (RFC 3461 §5.2.2); carol's copy is in her Maildir.
    assert!(
        report.contains("Final-Recipient: rfc822; bob@rx.test\r\nAction: relayed\r\nStatus: 2.0.0\r\nRemote-MTA: dns; mx.rx.test"),
        "{report}"
    );
    assert!(
        report.contains("Final-Recipient: rfc822; carol@local.test\r\nAction: delivered\r\n"),
        "{report}"
    );
    assert_eq!(rig.maildir("carol").len(), 1);
    delivery.shutdown();
}

#[test]
fn a_queued_message_with_too_many_received_fields_is_returned_not_delivered() {
    let rig = Rig::new("hops", Zone::new());
    let with_hops = |hops: usize| {
        let mut m = message("alice@local.test", &["bob@local.test"]);
        let mut body = "Received: from a.example by b.example; date\r\n".repeat(hops);
        body.push_str("Subject: hops\r\n\r\nhi\r\n");
        m.body = body.into_bytes();
        rig.spool.store(&m).unwrap()
    };
    // Queued under a higher limit, or before one existed; our own
    // Received field is not counted.
    let over = with_hops(4);
    let at = with_hops(3);
    let mut config = rig.config(25);
    config.max_received = 3;
    let delivery = rig.start_with(config, &["alice@local.test", "bob@local.test"]);
    delivery.notify(over);
    delivery.notify(at);
    wait_for(10, "an empty queue", || rig.queue_is_empty());
    let bob = rig.maildir("bob");
    assert_eq!(bob.len(), 1, "only the message within the limit");
    assert_eq!(text(&bob[0]).matches("Received: from a.example").count(), 3);
    let reports = rig.maildir("alice");
    assert_eq!(reports.len(), 1);
    let report = text(&reports[0]);
    assert!(report.contains("Status: 5.4.6"), "{report}");
    assert!(
        report.contains("Too many hops: 4 Received header fields"),
        "{report}"
    );
    delivery.shutdown();
}

/// Lines longer than RFC 5321's 1000 octets, taken by the real server over
/// SMTP, leave it as they came: relayed to the MX and written to Maildir
/// byte for byte (the dot-stuffed one unstuffed, then stuffed again).
#[test]
fn long_lines_are_relayed_and_delivered_unchanged() {
    let dns = DnsServer::start(mx_zone("rx.test"));
    let rx = MxScript::new()
        .keywords(&["8BITMIME", "SIZE 1000000"])
        .start();
    let server = support::TestServer::start_with(&[("alice@mx.test", "secret")], |c| {
        c.deliver = true;
        c.delivery.dns_server = Some(dns.addr);
        c.delivery.mx_port = rx.addr().port();
    });
    let message = format!(
        "Subject: long lines\r\n\r\n{}\r\n{}\r\n.{}\r\nend\r\n",
        "a".repeat(998),
        "b".repeat(5000),
        "c".repeat(70_000),
    );
    let wire = message.replace("\r\n.", "\r\n..");
    let mut client = support::Client::greeted(server.smtp());
    let reply = client.send_mail("sender@mx.test", "bob@rx.test", &wire);
    assert!(reply.starts_with("250"), "{reply}");
    let reply = client.transaction("sender@mx.test", "alice@mx.test", &wire);
    assert!(reply.starts_with("250"), "{reply}");
    assert!(client.command("QUIT").starts_with("221"));

    wait_for(20, "the message at the MX", || rx.messages().len() == 1);
    let relayed = &rx.messages()[0];
    assert!(
        relayed.ends_with(message.as_bytes()),
        "relayed: {}",
        text(&relayed[..200.min(relayed.len())])
    );
    assert!(relayed.starts_with(b"Received: "));
    let transcript = rx.wait_for_sessions(1)[0].text();
    assert!(
        transcript.contains(&wire),
        "the long lines went out as sent"
    );

    wait_for(20, "the Maildir copy", || {
        maildir_files(server.data_dir(), "mx.test", "alice").len() == 1
    });
    let delivered = &maildir_files(server.data_dir(), "mx.test", "alice")[0];
    assert!(delivered.ends_with(message.as_bytes()), "delivered");
}

/// `--outbound-address`: the next hop sees the connection come from the
/// configured local address.
#[test]
fn delivery_connects_from_the_outbound_address() {
    let rig = Rig::new("source", mx_zone("rx.test"));
    let rx = MxScript::new().start();
    let id = rig.store("alice@local.test", &["bob@rx.test"]);
    let mut config = rig.config(rx.addr().port());
    config.outbound_addresses = config::parse_outbound_addresses("127.0.0.2").unwrap();
    let delivery = rig.start(config);
    delivery.notify(id);
    wait_for(10, "the message at the MX", || rx.messages().len() == 1);
    let sessions = rx.wait_for_sessions(1);
    assert_eq!(
        sessions[0].peer.map(|p| p.ip()),
        Some("127.0.0.2".parse().unwrap())
    );
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    delivery.shutdown();
}

/// An MX that refuses our IPv6 address with 5.7.25 (Gmail's "IPv6
/// sending guidelines") gets the message over IPv4 in the same attempt;
/// with `--outbound-ip-family ipv4` IPv6 is never tried.
#[test]
fn an_ipv6_refusal_for_missing_ptr_is_retried_over_ipv4() {
    let v6 = MxScript::new()
        .reply(
            "MAIL",
            "550 5.7.25 [::1] The IP address sending this message does not have a PTR record",
        )
        .start_on("[::1]:0".parse().unwrap());
    let port = v6.addr().port();
    let v4 = MxScript::new().start_on(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    let zone = Zone::new()
        .add("rx.test", Rec::Mx(10, "mx.rx.test".into()))
        .add("mx.rx.test", Rec::A(Ipv4Addr::LOCALHOST))
        .add("mx.rx.test", Rec::Aaaa(Ipv6Addr::LOCALHOST));
    let rig = Rig::new("ipv6-fallback", zone);
    let first = rig.store("alice@local.test", &["bob@rx.test"]);
    let delivery = rig.start(rig.config(port));
    delivery.notify(first);
    wait_for(10, "the message over IPv4", || v4.messages().len() == 1);
    assert_eq!(v6.wait_for_sessions(1).len(), 1, "IPv6 was tried first");
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    delivery.shutdown();

    let mut config = rig.config(port);
    config.ip_family = config::parse_ip_family("ipv4").unwrap();
    let delivery = rig.start(config);
    delivery.notify(rig.store("alice@local.test", &["bob@rx.test"]));
    wait_for(10, "the second message over IPv4", || {
        v4.messages().len() == 2
    });
    assert_eq!(v6.connections(), 1, "IPv6 not tried with ipv4 only");
    delivery.shutdown();
}

/// `--transport DOMAIN=relay`: that domain goes through the smarthost,
/// the others straight to their MX.
#[test]
fn transport_relay_sends_one_domain_through_the_smarthost() {
    let rig = Rig::new("transport-relay", mx_zone("rx.test"));
    let direct = MxScript::new().start();
    let smarthost = MxScript::new().start();
    let id = rig.store("alice@local.test", &["bob@rx.test", "carol@far.test"]);
    let mut config = rig.config(direct.addr().port());
    config.relay_host =
        Some(config::parse_host_port(&format!("127.0.0.1:{}", smarthost.addr().port())).unwrap());
    config.relay_tls = config::parse_relay_tls("none").unwrap();
    config.add_transport("far.test=relay").unwrap();
    let delivery = rig.start(config);
    delivery.notify(id);
    wait_for(10, "both copies", || {
        direct.messages().len() == 1 && smarthost.messages().len() == 1
    });
    assert!(direct.wait_for_sessions(1)[0]
        .text()
        .contains("RCPT TO:<bob@rx.test>"));
    assert!(smarthost.wait_for_sessions(1)[0]
        .text()
        .contains("RCPT TO:<carol@far.test>"));
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    delivery.shutdown();
}

/// How many MAIL commands a session carried.
fn mail_commands(session: &MxSession) -> usize {
    session.text().matches("MAIL FROM:").count()
}

#[test]
fn messages_to_one_destination_share_kept_connections_in_parallel() {
    let rig = Rig::new("reuse", mx_zone("rx.test"));
    // A slow answer to the final dot: deliveries overlap.
    let rx = MxScript::new()
        .pause(END_OF_DATA, Duration::from_millis(100))
        .start();
    rig.store_many(20);
    let mut config = rig.config(rx.addr().port());
    config.max_outbound_connections = 4;
    let delivery = rig.start(config);
    // A session is recorded when it ends: the kept ones end idle, with QUIT.
    wait_for(30, "20 messages at the MX", || rx.messages().len() == 20);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    let sessions = rx.sessions();
    assert!(rx.connections() < 20, "{} connections", rx.connections());
    assert!(
        (2..=4).contains(&rx.peak_connections()),
        "{} at once",
        rx.peak_connections()
    );
    assert!(sessions.iter().any(|s| s.messages.len() > 1));
    for session in &sessions {
        let text = session.text();
        assert!(text.starts_with("EHLO out.local.test\r\n"), "{text}");
        assert_eq!(text.matches("EHLO").count(), 1, "{text}");
        assert!(text.ends_with(".\r\nQUIT\r\n"), "{text}");
        assert_eq!(mail_commands(session), session.messages.len(), "{text}");
    }
    assert!(rx.mistakes().is_empty(), "{:?}", rx.mistakes());
    delivery.shutdown();
}

/// Three messages, one at a time, to an MX that `closes` each connection
/// when it is used for a second message: every message arrives without a
/// retry, and each kept connection was tried before a new one took over.
fn kept_connections_closed_by_the_peer(name: &str, closes: MxScript) {
    let rig = Rig::new(name, mx_zone("rx.test"));
    let rx = closes.start();
    rig.store_many(3);
    let mut config = rig.config(rx.addr().port());
    config.max_outbound_connections = 1;
    // A deferred message would wait an hour: arriving at all means it
    // was not deferred.
    config.retry.schedule = Schedule::List(vec![Duration::from_secs(3600)]);
    let delivery = rig.start(config);
    wait_for(30, "3 messages at the MX", || rx.messages().len() == 3);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    let sessions = rx.wait_for_sessions(3);
    assert_eq!(rx.connections(), 3);
    let tried_again = sessions.iter().filter(|s| mail_commands(s) == 2).count();
    let texts: Vec<String> = sessions.iter().map(MxSession::text).collect();
    assert_eq!(tried_again, 2, "{texts:?}");
    assert!(sessions.iter().all(|s| s.messages.len() == 1));
    assert!(rig.maildir("alice").is_empty(), "no report");
    delivery.shutdown();
}

#[test]
fn a_kept_connection_the_peer_dropped_is_replaced_without_a_retry() {
    // Closed without a word when the next MAIL arrives.
    kept_connections_closed_by_the_peer("dropped", MxScript::new().hang_up_after(1));
    // Or told 421, as a peer says on its idle timeout.
    let idle_timeout = MxScript::new().reply_per_transaction("MAIL", |_, carried| {
        if carried == 1 {
            "421 4.4.2 rx.test Idle timeout, closing".into()
        } else {
            "250 2.1.0 Ok".into()
        }
    });
    kept_connections_closed_by_the_peer("idle-421", idle_timeout);
}

#[test]
fn a_4xx_on_a_kept_connection_defers_and_retries_as_on_a_new_one() {
    let rig = Rig::new("kept-4xx", mx_zone("rx.test"));
    // The second transaction on the first connection is greylisted.
    let rx = MxScript::new()
        .reply_per_transaction("RCPT", |connection, carried| {
            if (connection, carried) == (0, 1) {
                "451 4.7.1 Greylisted, try again".into()
            } else {
                "250 2.1.5 Ok".into()
            }
        })
        .start();
    rig.store_many(2);
    let mut config = rig.config(rx.addr().port());
    config.max_outbound_connections = 1;
    let delivery = rig.start(config);
    wait_for(30, "both messages at the MX", || rx.messages().len() == 2);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    let sessions = rx.wait_for_sessions(2);
    assert_eq!(rx.connections(), 2);
    let first = sessions
        .iter()
        .find(|s| mail_commands(s) == 2)
        .expect("the kept connection carried the second message");
    // Not kept after the refusal: QUIT right after it.
    assert!(
        first.text().ends_with("DATA\r\nQUIT\r\n"),
        "{}",
        first.text()
    );
    assert_eq!(first.messages.len(), 1);
    assert!(rig.maildir("alice").is_empty(), "no report");
    delivery.shutdown();
}

#[test]
fn never_more_connections_to_one_destination_than_the_limit() {
    let rig = Rig::new("limit", mx_zone("rx.test"));
    let rx = MxScript::new()
        .pause(END_OF_DATA, Duration::from_millis(100))
        .start();
    rig.store_many(10);
    let mut config = rig.config(rx.addr().port());
    config.max_outbound_connections = 6;
    config.max_connections_per_destination = 2;
    let delivery = rig.start(config);
    wait_for(30, "10 messages at the MX", || rx.messages().len() == 10);
    wait_for(5, "an empty queue", || rig.queue_is_empty());
    assert_eq!(rx.peak_connections(), 2);
    delivery.shutdown();
}
