//! Mail loops and repeated recipients, over real loopback sockets: the
//! server refuses a message that has passed too many relays, never
//! delivers to itself (its own listener as the MX, or a peer that greets
//! with its host name), and keeps a recipient named twice once. DNS is the
//! loopback responder; every wait is bounded.

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dns_server::{DnsServer, Rec, Zone};
use outpost::config::Config;
use outpost::delivery::retry::Schedule;
use support::fake_mx::MxScript;
use support::{wait_until, Client, TestServer, HOSTNAME};

/// How long any delivery may take in these tests.
const DELIVERY_LIMIT: Duration = Duration::from_secs(20);

/// A message with `hops` Received fields, dot-stuffing not needed.
fn message_with_hops(hops: usize) -> String {
    let mut message = String::new();
    for hop in 0..hops {
        message.push_str(&format!(
            "Received: from relay{hop}.example\r\n\tby relay{}.example; Thu, 26 Nov 2026 18:41:00 +0000\r\n",
            hop + 1
        ));
    }
    message.push_str("Subject: round and round\r\n\r\nReceived: body text is not a field\r\n");
    message
}

/// The files in the Maildir `new/` of `local@HOSTNAME`.
fn maildir(data: &Path, local: &str) -> Vec<String> {
    let new = data.join("mail").join(HOSTNAME).join(local).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    entries
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned())
        .collect()
}

/// The `.msg` files in the queue by name.
fn queue_names(data: &Path) -> HashSet<PathBuf> {
    let Ok(entries) = std::fs::read_dir(data.join("queue")) else {
        return HashSet::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "msg"))
        .collect()
}

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Delivery on, DNS from `dns`, MX hosts on `mx_port`, quick retries.
fn delivering(config: &mut Config, dns: &DnsServer, mx_port: u16) {
    config.deliver = true;
    config.delivery.dns_server = Some(dns.addr);
    config.delivery.mx_port = mx_port;
    config.delivery.retry.schedule = Schedule::List(vec![Duration::from_secs(1)]);
}

/// `domain`'s MX is `mx.domain` at 127.0.0.1.
fn loopback_mx(zone: Zone, domain: &str) -> Zone {
    let mx = format!("mx.{domain}");
    zone.add(domain, Rec::Mx(10, mx.clone()))
        .add(&mx, Rec::A(Ipv4Addr::LOCALHOST))
}

#[test]
fn more_received_fields_than_the_limit_are_refused_after_data() {
    let server = TestServer::start(&[("bob@mx.test", "pw")]);
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail("a@remote.example", "bob@mx.test", &message_with_hops(51));
    assert!(
        reply.starts_with("554 5.4.6 Too many hops: the message has 51 Received"),
        "{reply}"
    );
    assert!(server.queued_messages().is_empty());
    // The session goes on: fifty is the limit, and is accepted.
    let reply = client.transaction("a@remote.example", "bob@mx.test", &message_with_hops(50));
    assert!(reply.starts_with("250 "), "{reply}");
    assert_eq!(server.queued_messages().len(), 1);
}

#[test]
fn more_received_fields_than_the_limit_are_refused_at_the_last_chunk() {
    let server = TestServer::start_with(&[("bob@mx.test", "pw")], |c| c.max_received = 3);
    let mut client = Client::greeted(server.smtp());
    let ehlo = client.command("EHLO client.test");
    assert!(ehlo.contains("CHUNKING"), "{ehlo}");
    client.envelope("a@remote.example", "bob@mx.test");
    let message = message_with_hops(4);
    let (first, last) = message.split_at(40);
    client.send(format!("BDAT {}\r\n{first}", first.len()).as_bytes());
    let reply = client.reply();
    assert!(reply.starts_with("250 "), "{reply}");
    client.send(format!("BDAT {} LAST\r\n{last}", last.len()).as_bytes());
    let reply = client.reply();
    assert!(reply.starts_with("554 5.4.6 "), "{reply}");
    assert!(server.queued_messages().is_empty());
}

/// The loop of a success report: a local user gets mail with
/// NOTIFY=SUCCESS from a domain whose MX is this very server (127.0.0.1 on
/// its own smtp port, a relay network). The report must not go round.
#[test]
fn a_success_report_to_a_domain_whose_mx_is_ourselves_does_not_loop() {
    let dns = DnsServer::start(loopback_mx(Zone::new(), "loop.test"));
    let port = free_port();
    let server = TestServer::start_with(&[("bob@mx.test", "pw")], |c| {
        c.smtp = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
        delivering(c, &dns, port);
    });
    let data = server.data_dir().to_path_buf();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client.command("MAIL FROM:<x@loop.test>").starts_with("250"));
    assert!(client
        .command("RCPT TO:<bob@mx.test> NOTIFY=SUCCESS")
        .starts_with("250"));
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: tell me\r\n\r\nhi\r\n");
    assert!(client.command(".").starts_with("250"));

    // Every message that ever shows up in the queue, for a bounded time:
    // the original and its report, and nothing after them.
    let mut seen = HashSet::new();
    let started = Instant::now();
    let mut empty_since: Option<Instant> = None;
    while started.elapsed() < DELIVERY_LIMIT {
        let now = queue_names(&data);
        seen.extend(now.iter().cloned());
        match (now.is_empty(), empty_since) {
            (false, _) => empty_since = None,
            (true, None) => empty_since = Some(Instant::now()),
            (true, Some(since)) if since.elapsed() > Duration::from_secs(2) => break,
            (true, Some(_)) => {}
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(
        queue_names(&data).is_empty(),
        "the queue never emptied: {} messages seen",
        seen.len()
    );
    assert!(
        seen.len() <= 2,
        "{} messages went through the queue",
        seen.len()
    );
    assert_eq!(maildir(&data, "bob").len(), 1);
}

/// Mail relayed to a domain whose MX is our own listener fails for good,
/// with Postfix's words, and the sender is told.
#[test]
fn mail_for_a_domain_whose_mx_is_ourselves_bounces() {
    let dns = DnsServer::start(loopback_mx(Zone::new(), "loop.test"));
    let port = free_port();
    let server = TestServer::start_with(&[("alice@mx.test", "pw")], |c| {
        c.smtp = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, port))];
        delivering(c, &dns, port);
    });
    let report = report_to_alice(&server, "y@loop.test");
    assert!(
        report.contains("mail for loop.test loops back to myself"),
        "{report}"
    );
    assert!(report.contains("5.4.6"), "{report}");
    assert!(wait_until(DELIVERY_LIMIT, || queue_names(
        server.data_dir()
    )
    .is_empty()));
}

/// Alice sends to `to`; returns the report she gets back.
fn report_to_alice(server: &TestServer, to: &str) -> String {
    let data = server.data_dir();
    let mut client = Client::greeted(server.smtp());
    let reply = client.send_mail("alice@mx.test", to, "Subject: out\r\n\r\nhi\r\n");
    assert!(reply.starts_with("250 "), "{reply}");
    assert!(
        wait_until(DELIVERY_LIMIT, || maildir(data, "alice").len() == 1),
        "no report for alice"
    );
    maildir(data, "alice").remove(0)
}

/// A peer that greets with our own host name is ourselves under another
/// address (NAT, a forwarded port): nothing is sent, the mail bounces.
#[test]
fn a_peer_greeting_with_our_host_name_is_a_loop() {
    let dns = DnsServer::start(loopback_mx(Zone::new(), "far.test"));
    let mirror = MxScript::new()
        .greeting(format!("220 {HOSTNAME} ESMTP Outpost\r\n").as_bytes())
        .start();
    let server = TestServer::start_with(&[("alice@mx.test", "pw")], |c| {
        delivering(c, &dns, mirror.addr().port());
    });
    let report = report_to_alice(&server, "z@far.test");
    assert!(
        report.contains("mail for far.test loops back to myself"),
        "{report}"
    );
    let sessions = mirror.wait_for_sessions(1);
    assert_eq!(sessions.len(), 1, "tried once, never again");
    assert!(
        !sessions[0].text().contains("MAIL FROM"),
        "{}",
        sessions[0].text()
    );
}

#[test]
fn a_hundred_identical_recipients_get_one_copy() {
    let dns = DnsServer::start(Zone::new());
    let server = TestServer::start_with(&[("bob@mx.test", "pw")], |c| {
        delivering(c, &dns, 25);
    });
    let data = server.data_dir().to_path_buf();
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<a@remote.example>")
        .starts_with("250"));
    // Bob's mailbox by every name: his address in any case, and the
    // postmaster (the domain's first user), bare and with the domain.
    let names = [
        "bob@mx.test",
        "bob@MX.TEST",
        "Bob@mx.test",
        "BOB@Mx.Test",
        "Postmaster",
        "postmaster@mx.test",
    ];
    for n in 0..100 {
        let rcpt = format!("RCPT TO:<{}>", names[n % names.len()]);
        let reply = client.command(&rcpt);
        assert!(reply.starts_with("250 "), "RCPT {n}: {reply}");
    }
    assert!(client.command("DATA").starts_with("354"));
    client.send(b"Subject: once\r\n\r\nhi\r\n");
    assert!(client.command(".").starts_with("250"));
    assert!(wait_until(DELIVERY_LIMIT, || queue_names(&data).is_empty()));
    assert_eq!(maildir(&data, "bob").len(), 1);
}
