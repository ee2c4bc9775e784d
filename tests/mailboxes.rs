//! Local mailboxes over real sockets: the postmaster (bare, and of every
//! local domain) reaches a real mailbox; what has no mailbox is refused at
//! RCPT rather than accepted and bounced to a forged sender; local parts
//! match in any case for RCPT, AUTH, the sender check and aliases, and the
//! mail lands in the one Maildir of the user the users file names. Delivery runs with a
//! loopback DNS responder, never the machine's resolver.

#[path = "support/dns.rs"]
mod dns_server;
mod support;

use std::path::Path;
use std::time::Duration;

use dns_server::{DnsServer, Zone};
use outpost::config::Config;
use outpost::runtime::Server;
use support::*;

const ALICE: &str = "alice@mx.test";
const PASSWORD: &str = "correct horse battery staple";
const BOB: &str = "bob@mx.test";

/// A server with `users` that delivers (DNS on loopback, answering
/// nothing), changed by `adjust`; the DNS server lives as long as it.
fn delivering(users: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> (TestServer, DnsServer) {
    let dns = DnsServer::start(Zone::new());
    let server = TestServer::start_with(users, |c| {
        c.deliver = true;
        c.delivery.dns_server = Some(dns.addr);
        adjust(c);
    });
    (server, dns)
}

/// The messages in `<data>/mail/<domain>/<local>/new`.
fn maildir(data: &Path, domain: &str, local: &str) -> Vec<String> {
    let new = data.join("mail").join(domain).join(local).join("new");
    let Ok(entries) = std::fs::read_dir(new) else {
        return Vec::new();
    };
    entries
        .map(|e| String::from_utf8_lossy(&std::fs::read(e.unwrap().path()).unwrap()).into_owned())
        .collect()
}

/// Waits (at most 10 s) until the Maildir holds `count` messages and the
/// queue is empty: delivered, and nothing (no bounce) left behind.
fn wait_delivered(server: &TestServer, domain: &str, local: &str, count: usize) -> Vec<String> {
    let done = wait_until(Duration::from_secs(10), || {
        maildir(server.data_dir(), domain, local).len() == count
            && server.queued_messages().is_empty()
    });
    let found = maildir(server.data_dir(), domain, local);
    assert!(
        done,
        "{local}@{domain}: {} of {count} messages, {} still queued",
        found.len(),
        server.queued_messages().len()
    );
    found
}

/// Sends one message from an outside sender over port 25 to `rcpt` (as
/// written between the angle brackets); returns the reply to the dot.
fn send_on_port_25(server: &TestServer, rcpt: &str, subject: &str) -> String {
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<victim@remote.test>")
        .starts_with("250"));
    let reply = client.command(&format!("RCPT TO:<{rcpt}>"));
    assert!(reply.starts_with("250 2.1.5"), "{rcpt}: {reply}");
    assert!(client.command("DATA").starts_with("354"));
    client.send(format!("Subject: {subject}\r\n\r\nhello\r\n").as_bytes());
    let reply = client.command(".");
    assert!(client.command("QUIT").starts_with("221"));
    reply
}

/// The reply to `RCPT TO:<rcpt>` from an outside sender on port 25.
fn rcpt_reply(server: &TestServer, rcpt: &str) -> String {
    let mut client = Client::greeted(server.smtp());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client
        .command("MAIL FROM:<forged@remote.test>")
        .starts_with("250"));
    client.command(&format!("RCPT TO:<{rcpt}>"))
}

// ---------------------------------------------------------------------------
// The postmaster.

#[test]
fn bare_postmaster_in_any_case_is_delivered_to_the_local_postmaster() {
    let (server, _dns) = delivering(&[(BOB, PASSWORD), (ALICE, PASSWORD)], |_| {});
    for (rcpt, subject) in [("Postmaster", "bare"), ("POSTMASTER", "shouting")] {
        let reply = send_on_port_25(&server, rcpt, subject);
        assert!(reply.starts_with("250 2.0.0"), "{reply}");
    }
    // postmaster@mx.test is its first user's: bob.
    let mail = wait_delivered(&server, HOSTNAME, "bob", 2);
    for subject in ["bare", "shouting"] {
        assert!(
            mail.iter()
                .any(|m| m.contains(&format!("Subject: {subject}\r\n"))),
            "{subject}: {mail:?}"
        );
    }
    assert!(maildir(server.data_dir(), HOSTNAME, "alice").is_empty());
}

#[test]
fn postmaster_of_a_domain_without_users_goes_to_the_postmaster_flag() {
    let (server, _dns) = delivering(&[(ALICE, PASSWORD), (BOB, PASSWORD)], |c| {
        c.local_domains = vec![HOSTNAME.into(), "empty.test".into()];
        c.postmaster = Some(BOB.into());
    });
    send_on_port_25(&server, "postmaster@EMPTY.test", "to empty.test");
    send_on_port_25(&server, "PostMaster@mx.test", "to mx.test");
    let bob = wait_delivered(&server, HOSTNAME, "bob", 1);
    assert!(bob[0].contains("Subject: to empty.test\r\n"), "{bob:?}");
    let alice = wait_delivered(&server, HOSTNAME, "alice", 1);
    assert!(alice[0].contains("Subject: to mx.test\r\n"), "{alice:?}");
}

// ---------------------------------------------------------------------------
// No backscatter: what has no mailbox is refused at RCPT.

#[test]
fn postmaster_of_a_domain_without_users_is_delivered_not_bounced() {
    // No --postmaster: the first user of the users file.
    let (server, _dns) = delivering(&[(ALICE, PASSWORD)], |c| {
        c.local_domains = vec![HOSTNAME.into(), "empty.test".into()];
        c.postmaster = None;
    });
    let reply = send_on_port_25(&server, "postmaster@empty.test", "spam");
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    // Delivered, and no report queued for the forged sender.
    let mail = wait_delivered(&server, HOSTNAME, "alice", 1);
    assert!(mail[0].contains("Subject: spam\r\n"));
}

#[test]
fn recipients_without_a_mailbox_are_refused_at_rcpt_and_nothing_is_queued() {
    let dir = TempDir::new("mailboxes-aliases");
    let aliases = dir.path().join("aliases");
    std::fs::write(
        &aliases,
        "sales@mx.test: alice@mx.test, ghost@mx.test\nops@mx.test: alice@mx.test\n",
    )
    .unwrap();
    // A server without users and without --postmaster: no mailbox at all.
    let (server, _dns) = delivering(&[], |c| {
        c.postmaster = None;
        c.delivery.aliases = Some(aliases.clone());
    });
    for rcpt in [
        "postmaster@mx.test",
        "Postmaster",
        "sales@mx.test",
        "ops@mx.test",
    ] {
        let reply = rcpt_reply(&server, rcpt);
        assert!(reply.starts_with("550 5.1.1"), "{rcpt}: {reply}");
    }
    // A --postmaster in a local domain that is no user reaches nothing.
    let (server_with_flag, _dns2) = delivering(&[(ALICE, PASSWORD)], |c| {
        c.local_domains = vec![HOSTNAME.into(), "empty.test".into()];
        c.postmaster = Some("root@mx.test".into());
        c.delivery.aliases = Some(aliases.clone());
    });
    let reply = rcpt_reply(&server_with_flag, "postmaster@empty.test");
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    // An alias with one target that has no mailbox is refused whole.
    let reply = rcpt_reply(&server_with_flag, "sales@mx.test");
    assert!(reply.starts_with("550 5.1.1"), "{reply}");
    assert!(rcpt_reply(&server_with_flag, "ops@mx.test").starts_with("250"));
    assert!(server.queued_messages().is_empty());
    assert!(server_with_flag.queued_messages().is_empty());
}

// ---------------------------------------------------------------------------
// Local parts in any case.

#[test]
fn local_parts_match_in_any_case_and_land_in_the_users_file_maildir() {
    let dir = TempDir::new("mailboxes-case");
    let aliases = dir.path().join("aliases");
    std::fs::write(&aliases, "Sales@MX.test: ALICE@mx.test\n").unwrap();
    // Bob is written with a capital in the users file.
    let (server, _dns) = delivering(&[(ALICE, PASSWORD), ("Bob@mx.test", PASSWORD)], |c| {
        c.delivery.aliases = Some(aliases.clone());
    });
    for (rcpt, subject) in [
        ("Alice@mx.test", "capital"),
        ("ALICE@MX.TEST", "shouting"),
        ("sales@mx.test", "alias"),
        ("bob@mx.test", "small bob"),
        ("BOB@mx.test", "big bob"),
    ] {
        let reply = send_on_port_25(&server, rcpt, subject);
        assert!(reply.starts_with("250 2.0.0"), "{rcpt}: {reply}");
    }
    let alice = wait_delivered(&server, HOSTNAME, "alice", 3);
    for subject in ["capital", "shouting", "alias"] {
        assert!(
            alice
                .iter()
                .any(|m| m.contains(&format!("Subject: {subject}\r\n"))),
            "{subject}"
        );
    }
    // One Maildir per user, named from the address the users file writes
    // (in lower case, as Maildir names always are).
    assert_eq!(wait_delivered(&server, HOSTNAME, "bob", 2).len(), 2);
    let mail = server.data_dir().join("mail").join(HOSTNAME);
    let mut names: Vec<_> = std::fs::read_dir(mail)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["alice", "bob"]);
}

#[test]
fn auth_and_the_sender_check_take_the_user_name_in_any_case() {
    let server = TestServer::start(&[(ALICE, PASSWORD), (BOB, PASSWORD)]);
    let mut client = Client::greeted(server.submission());
    assert!(client.command("EHLO client.test").starts_with("250"));
    assert!(client.command("STARTTLS").starts_with("220"));
    let mut client = client.into_tls(server.tls_client_config());
    let reply = client.login_plain("Alice@MX.test", PASSWORD);
    assert!(reply.starts_with("235"), "{reply}");
    // Sending as herself in another case is allowed, as bob is not.
    let reply = client.command("MAIL FROM:<bob@mx.test>");
    assert!(reply.starts_with("553 5.7.1"), "{reply}");
    let reply = client.transaction(
        "ALICE@mx.test",
        "someone@remote.test",
        "Subject: hi\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    assert_eq!(server.queued_messages().len(), 1);
}

#[test]
fn a_users_file_with_two_addresses_differing_only_in_case_is_refused_with_file_and_line() {
    let dir = TempDir::new("mailboxes-duplicate");
    let users = dir.path().join("users");
    let line = |address: &str| outpost::directory::users_file_line(address, PASSWORD);
    std::fs::write(
        &users,
        format!(
            "{}\n# bob\n{}\n{}\n",
            line(ALICE),
            line(BOB),
            line("Alice@MX.test")
        ),
    )
    .unwrap();
    let mut config = test_config(dir.path());
    config.users = Some(users.clone());
    outpost::cli::first_start::prepare(&config).unwrap();
    let error = match Server::start(config) {
        Ok(_) => panic!("the server started with a duplicate user"),
        Err(e) => e.to_string(),
    };
    let at = format!("{}:4: ", users.display());
    assert!(error.starts_with(&at), "{error}");
    assert!(error.contains("already on line 1"), "{error}");
}
