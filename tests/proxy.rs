//! Outpost behind the real HAProxy (Debian's package), started here on
//! loopback in front of the server with `send-proxy-v2` and `send-proxy`:
//! the address the PROXY header names is the client for relaying and the
//! Received header, implicit TLS works through the proxy, and a header is
//! taken only from `--proxy-from`. Clients use distinct loopback source
//! addresses (127.0.0.5, 127.0.0.6) so the real client differs from the
//! proxy's 127.0.0.1.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rustix::net::{AddressFamily, SocketType};
use support::{Client, TempDir, TestServer};

/// A loopback port that was free a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TCP connection to `to` from the loopback address `source`.
fn connect_from(source: &str, to: SocketAddr) -> Client<TcpStream> {
    let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
    let source: SocketAddr = format!("{source}:0").parse().unwrap();
    rustix::net::bind(&socket, &source).unwrap();
    rustix::net::connect(&socket, &to).unwrap();
    let stream = TcpStream::from(socket);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    Client::from_stream(stream)
}

/// HAProxy in the foreground with one `listen` section per entry
/// (frontend port, backend address, `send-proxy` option); killed on drop.
struct Haproxy {
    child: Child,
    _dir: TempDir,
}

impl Haproxy {
    fn start(routes: &[(u16, SocketAddr, &str)]) -> Haproxy {
        let dir = TempDir::new("haproxy");
        let mut config = String::from(
            "global\n  maxconn 100\n\
             defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n",
        );
        for (n, (port, backend, option)) in routes.iter().enumerate() {
            config.push_str(&format!(
                "listen route{n}\n  bind 127.0.0.1:{port}\n  server outpost {backend} {option}\n"
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("haproxy is needed for this test (apt-get install haproxy)");
        let deadline = Instant::now() + Duration::from_secs(10);
        for (port, _, _) in routes {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(Instant::now() < deadline, "haproxy did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Haproxy { child, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server trusts 127.0.0.5 to relay and takes PROXY headers from
/// 127.0.0.1 (HAProxy's address on loopback).
fn server_behind_proxy() -> TestServer {
    TestServer::start_with(&[], |c| {
        c.proxy_from = vec!["127.0.0.1/32".parse().unwrap()];
        c.relay_networks = vec!["127.0.0.5/32".parse().unwrap()];
    })
}

#[test]
fn the_proxy_header_names_the_client_for_relaying_received_and_tls() {
    let server = server_behind_proxy();
    let (v2, v1, tls) = (free_port(), free_port(), free_port());
    let _haproxy = Haproxy::start(&[
        (v2, server.smtp(), "send-proxy-v2"),
        (v1, server.smtp(), "send-proxy"),
        (tls, server.submissions(), "send-proxy-v2"),
    ]);
    let to = |port| SocketAddr::from(([127, 0, 0, 1], port));

    // 127.0.0.5 through v2: a relay network client, recorded as itself.
    let mut client = connect_from("127.0.0.5", to(v2));
    assert!(client.reply().starts_with("220 "));
    client.command("EHLO five.test");
    let reply = client.transaction(
        "a@five.test",
        "b@elsewhere.example",
        "Subject: v2\r\n\r\nhi\r\n",
    );
    assert!(reply.starts_with("250 "), "{reply}");
    let queued = std::fs::read_to_string(&server.queued_messages()[0]).unwrap();
    assert!(queued.contains("from five.test ([127.0.0.5])"), "{queued}");
    assert!(queued.contains("\nclient: 127.0.0.5\n"), "{queued}");

    // 127.0.0.6 through v1: not a relay network client.
    let mut client = connect_from("127.0.0.6", to(v1));
    assert!(client.reply().starts_with("220 "));
    client.command("EHLO six.test");
    assert!(client.command("MAIL FROM:<a@six.test>").starts_with("250"));
    let rcpt = client.command("RCPT TO:<b@elsewhere.example>");
    assert!(rcpt.starts_with("554 5.7.1"), "{rcpt}");

    // Implicit TLS through v2: the TLS bytes follow the header.
    let plain = connect_from("127.0.0.5", to(tls));
    let mut client = plain.into_tls(server.tls_client_config());
    assert!(client.reply().starts_with("220 "));
    assert!(client.command("EHLO five.test").contains("AUTH"));
}

#[test]
fn a_header_is_taken_only_from_proxy_from() {
    let server = server_behind_proxy();
    // From a client: a PROXY line is just an unknown command, and the
    // session stays the client's own.
    let mut client = connect_from("127.0.0.6", server.smtp());
    assert!(client.reply().starts_with("220 "));
    let reply = client.command("PROXY TCP4 127.0.0.5 127.0.0.1 4000 25");
    assert!(reply.starts_with("500 5.5."), "{reply}");
    client.command("EHLO six.test");
    client.command("MAIL FROM:<a@six.test>");
    assert!(client
        .command("RCPT TO:<b@elsewhere.example>")
        .starts_with("554"));

    // From the proxy's address, the header is required: no greeting, and
    // SMTP instead of a header closes the connection.
    let mut client = connect_from("127.0.0.1", server.smtp());
    client.send(b"EHLO sneaky.test\r\n");
    let closed = client.expect_closed();
    assert!(closed < Duration::from_secs(5), "{closed:?}");
}
