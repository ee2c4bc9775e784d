//! What a TLS handshake costs the server, per core: full rustls handshakes
//! in memory (no sockets), the server built exactly as `outpost serve`
//! builds it (`tls::ServerCertificate` + `tls::server_config`), with an
//! ECDSA P-256 certificate (what a first start generates) and an RSA-2048
//! one (what many operators bring). Only the server's own calls are timed
//! (`ServerConnection::new`, `read_tls`, `process_new_packets`,
//! `write_tls`); the client's work is not counted. The throughput line
//! (`elem/s`) is handshakes per second on one core.
//!
//! Variants: `tls13` and `tls12` full handshakes (the client keeps no
//! session, as a client that connects for the first time), and `tls13`
//! resumed (the client resumes the previous session, as one client sending
//! again soon does: no certificate signature, still a key exchange).
//!
//! Run: `cargo bench --bench tls_handshake` (about a minute on 2 cores).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use outpost::dkim::key::{Algorithm, SigningKey};
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, HandshakeKind, ServerConfig, ServerConnection};

/// The name in the certificates and the one the client asks for.
const NAME: &str = "bench.test";
/// A handshake is a handful of flights; more means something is wrong.
const MAX_FLIGHTS: usize = 16;

/// A directory for the certificate files, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("outpost-tls-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes a self-signed RSA-2048 certificate and its key, generated the way
/// `outpost dkim` makes RSA keys (ring cannot generate RSA keys).
fn write_rsa_2048(cert: &Path, key: &Path) {
    let der = SigningKey::generate(Algorithm::Rsa).expect("generate an RSA-2048 key");
    let pair = rcgen::KeyPair::from_pkcs8_der_and_sign_algo(&der.into(), &rcgen::PKCS_RSA_SHA256)
        .expect("the RSA key is usable by rcgen");
    let certificate = rcgen::CertificateParams::new(vec![NAME.to_string()])
        .and_then(|params| params.self_signed(&pair))
        .expect("self-sign the RSA certificate");
    std::fs::write(cert, certificate.pem()).expect("write the certificate");
    std::fs::write(key, pair.serialize_pem()).expect("write the key");
}

/// The server configuration of `outpost serve` for one certificate, and
/// the certificate itself for the client to trust.
fn server(dir: &Path, kind: &str) -> (Arc<ServerConfig>, PathBuf) {
    let cert = dir.join(format!("{kind}-cert.pem"));
    let key = dir.join(format!("{kind}-key.pem"));
    match kind {
        "ecdsa_p256" => outpost::tls::generate_self_signed(&[NAME.to_string()], &cert, &key)
            .expect("generate the ECDSA certificate"),
        _ => write_rsa_2048(&cert, &key),
    }
    let certificate =
        outpost::tls::ServerCertificate::load(&cert, &key).expect("load the certificate");
    let config = outpost::tls::server_config(Arc::new(certificate)).expect("server config");
    (config, cert)
}

/// A client trusting the certificate in `cert`, speaking only `version`,
/// resuming or not.
fn client(
    cert: &Path,
    version: &'static rustls::SupportedProtocolVersion,
    resume: bool,
) -> Arc<ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in outpost::tls::load_certificates(cert).expect("read the certificate") {
        roots.add(cert).expect("trust the certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[version])
        .expect("protocol version")
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// One handshake in memory; returns the time spent in the server's calls
/// and what kind of handshake it was.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> (Duration, HandshakeKind) {
    let name = ServerName::try_from(NAME).expect("server name");
    let mut c = ClientConnection::new(client.clone(), name).expect("client connection");
    let started = Instant::now();
    let mut s = ServerConnection::new(server.clone()).expect("server connection");
    let mut in_server = started.elapsed();
    let mut wire = Vec::with_capacity(8192);
    for _ in 0..MAX_FLIGHTS {
        if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
            break;
        }
        wire.clear();
        while c.wants_write() {
            c.write_tls(&mut wire).expect("client writes");
        }
        let started = Instant::now();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            s.read_tls(&mut rest).expect("server reads");
            s.process_new_packets()
                .expect("server accepts the client's flight");
        }
        wire.clear();
        while s.wants_write() {
            s.write_tls(&mut wire).expect("server writes");
        }
        in_server += started.elapsed();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            c.read_tls(&mut rest).expect("client reads");
            c.process_new_packets()
                .expect("client accepts the server's flight");
        }
    }
    assert!(
        !c.is_handshaking() && !s.is_handshaking(),
        "the handshake did not finish"
    );
    let kind = c.handshake_kind().expect("a finished handshake has a kind");
    (in_server, black_box(kind))
}

fn handshakes(c: &mut Criterion) {
    let scratch = Scratch::new();
    for kind in ["ecdsa_p256", "rsa_2048"] {
        let (server, cert) = server(&scratch.0, kind);
        let mut group = c.benchmark_group(format!("tls_handshake/{kind}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(1));
        group.measurement_time(Duration::from_secs(4));
        for (id, version, resume) in [
            ("tls13_full", &rustls::version::TLS13, false),
            ("tls12_full", &rustls::version::TLS12, false),
            ("tls13_resumed", &rustls::version::TLS13, true),
        ] {
            let client = client(&cert, version, resume);
            let want = if resume {
                // The first handshake leaves the session to resume.
                handshake(&server, &client);
                HandshakeKind::Resumed
            } else {
                HandshakeKind::Full
            };
            group.bench_function(id, |b| {
                b.iter_custom(|iterations| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iterations {
                        let (spent, got) = handshake(&server, &client);
                        assert_eq!(got, want, "{kind} {id}");
                        total += spent;
                    }
                    total
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, handshakes);
criterion_main!(benches);
