//! TLS settings for the server side: rustls 0.23 with the ring provider,
//! TLS 1.2 and 1.3 only (current Windows has 1.0/1.1 disabled; RFC 8996
//! deprecates them), loading a PEM certificate chain and a PKCS#8, RSA or EC
//! key, and generating the self-signed certificate of a first start.
//!
//! rcgen with ring can only generate ECDSA P-256 keys; an RSA certificate
//! would be kinder to very old Windows TLS stacks, so production setups
//! should bring their own (e.g. from Let's Encrypt) with `--tls-cert`.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConnection, CommonState, DigitallySignedStruct, ProtocolVersion, RootCertStore,
    ServerConfig, SignatureScheme, StreamOwned,
};

/// Errors loading or creating TLS material; each names the file involved.
#[derive(Debug)]
pub enum TlsError {
    /// A file could not be read.
    Read {
        /// The file that could not be read.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A file could not be written.
    Write {
        /// The file that could not be written.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The certificate file holds no `CERTIFICATE` PEM block, or a bad one.
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The key file holds no usable private key.
    BadKey {
        /// The private key file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// rustls refused the certificate/key pair (e.g. they do not match).
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The private key file.
        key: PathBuf,
        /// Why rustls refused the pair.
        reason: String,
    },
    /// The self-signed certificate could not be generated.
    Generate(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Read { path, source } => {
                write!(f, "cannot read {}: {source}", path.display())
            }
            TlsError::Write { path, source } => {
                write!(f, "cannot write {}: {source}", path.display())
            }
            TlsError::BadCertificate { path, reason } => {
                write!(f, "bad certificate file {}: {reason}", path.display())
            }
            TlsError::BadKey { path, reason } => {
                write!(f, "bad private key file {}: {reason}", path.display())
            }
            TlsError::Rejected { cert, key, reason } => write!(
                f,
                "certificate {} and key {} cannot be used together: {reason}",
                cert.display(),
                key.display()
            ),
            TlsError::Generate(reason) => {
                write!(f, "cannot generate a self-signed certificate: {reason}")
            }
        }
    }
}

impl std::error::Error for TlsError {}

/// The protocol versions we speak: TLS 1.2 and 1.3 only.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Reads a PEM certificate chain (leaf first).
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: path.into(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::BadCertificate {
            path: path.into(),
            reason: "no -----BEGIN CERTIFICATE----- block found".to_string(),
        });
    }
    Ok(chain)
}

/// The public CAs (webpki-roots) plus, if given, the certificates of a PEM
/// file (a private CA, or a self-signed certificate to trust).
pub fn trusted_roots(extra: Option<&Path>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    if let Some(path) = extra {
        for cert in load_certificates(path)? {
            roots.add(cert).map_err(|e| TlsError::BadCertificate {
                path: path.into(),
                reason: e.to_string(),
            })?;
        }
    }
    Ok(roots)
}

/// Reads the first private key (PKCS#8, PKCS#1 RSA or SEC1 EC) from a PEM file.
pub fn load_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| TlsError::BadKey {
        path: path.into(),
        reason: format!(
            "{e} (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block; \
             encrypted keys are not supported)"
        ),
    })
}

/// The server's certificate and key as files, and the pair in use. New
/// handshakes take the pair in use; [`ServerCertificate::reload`] (SIGHUP)
/// reads the files again, so a renewed certificate needs no restart.
#[derive(Debug)]
pub struct ServerCertificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCertificate {
    /// Reads `cert` (the chain, leaf first) and `key`, which must match.
    pub fn load(cert: &Path, key: &Path) -> Result<ServerCertificate, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let current = certified_key(cert, key, &provider)?;
        Ok(ServerCertificate {
            cert: cert.into(),
            key: key.into(),
            provider,
            current: RwLock::new(Arc::new(current)),
        })
    }

    /// Reads the files again; on error the pair in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = certified_key(&self.cert, &self.key, &self.provider)?;
        *self.current.write() = Arc::new(fresh);
        Ok(())
    }
}

impl ResolvesServerCert for ServerCertificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().clone())
    }
}

fn certified_key(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = load_certificates(cert)?;
    let private_key = load_private_key(key)?;
    CertifiedKey::from_der(chain, private_key, provider).map_err(|e| TlsError::Rejected {
        cert: cert.into(),
        key: key.into(),
        reason: e.to_string(),
    })
}

/// The rustls server configuration presenting `certificate`.
pub fn server_config(certificate: Arc<ServerCertificate>) -> Result<Arc<ServerConfig>, TlsError> {
    let rejected = |e: rustls::Error| TlsError::Rejected {
        cert: certificate.cert.clone(),
        key: certificate.key.clone(),
        reason: e.to_string(),
    };
    let config = ServerConfig::builder_with_provider(certificate.provider.clone())
        .with_protocol_versions(VERSIONS)
        .map_err(rejected)?
        .with_no_client_auth()
        .with_cert_resolver(certificate.clone());
    Ok(Arc::new(config))
}

/// Generates a self-signed ECDSA P-256 certificate for `names` and writes it
/// to `cert` and `key` (the key with mode 0600), creating parent directories.
pub fn generate_self_signed(names: &[String], cert: &Path, key: &Path) -> Result<(), TlsError> {
    let certified = rcgen::generate_simple_self_signed(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    write_file(key, certified.signing_key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert, certified.cert.pem().as_bytes(), 0o644)?;
    Ok(())
}

/// Creates `path` with `mode` (Unix permissions set at creation, so the key
/// is never readable by others, not even briefly).
fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    use std::os::unix::fs::OpenOptionsExt;
    let failed = |source| TlsError::Write {
        path: path.into(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(failed)?;
    file.write_all(contents).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// The negotiated version as mail logs and Received headers write it
/// (`TLSv1.2`, `TLSv1.3`), once the handshake has got that far.
pub fn version_name(connection: &CommonState) -> Option<&'static str> {
    match connection.protocol_version()? {
        ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}

/// True when a read or write on a blocking socket gave up at its timeout
/// (Linux reports `WouldBlock`, other systems `TimedOut`).
pub fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A blocking client connection that may have been upgraded to TLS
/// (STARTTLS or implicit TLS): what outbound delivery and the load
/// generator speak SMTP over.
pub enum ClientStream {
    /// Plaintext TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl ClientStream {
    /// The TCP socket underneath (for timeouts and shutdown).
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => &s.sock,
        }
    }

    /// The negotiated TLS version, `TLSv1.2` or `TLSv1.3`; `None` in plaintext.
    pub fn tls_version(&self) -> Option<&'static str> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => version_name(&s.conn),
        }
    }
}

impl Read for ClientStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.read(buf),
            ClientStream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for ClientStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            ClientStream::Plain(s) => s.write(buf),
            ClientStream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            ClientStream::Plain(s) => s.flush(),
            ClientStream::Tls(s) => s.flush(),
        }
    }
}

/// What an [`ObservingVerifier`] does with webpki's verdict on a server's
/// certificate (for the server name it was checked against).
pub type VerdictSink = Box<dyn Fn(&ServerName<'_>, Result<(), rustls::Error>) + Send + Sync>;

/// Runs webpki's full certificate check, hands the verdict to a sink and
/// accepts the certificate whatever it says: for opportunistic TLS (RFC
/// 7435), where refusing would only push a message to plaintext, and for
/// `outpost check`, which reports the verdict and goes on. Handshake
/// signatures are still verified, so the session key is bound to the
/// presented certificate.
pub struct ObservingVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    sink: VerdictSink,
}

impl ObservingVerifier {
    /// Checks against `webpki`'s roots and tells `sink` the verdict.
    pub fn new(webpki: Arc<WebPkiServerVerifier>, sink: VerdictSink) -> ObservingVerifier {
        ObservingVerifier { webpki, sink }
    }
}

impl fmt::Debug for ObservingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObservingVerifier").finish_non_exhaustive()
    }
}

impl ServerCertVerifier for ObservingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map(|_| ());
        (self.sink)(server_name, verdict);
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("outpost-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn generated_certificate_loads_and_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = temp_dir("gen");
        let (cert, key) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
        generate_self_signed(&["mx.example".to_string()], &cert, &key).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        server_config(Arc::new(ServerCertificate::load(&cert, &key).unwrap())).unwrap();
        // Never overwrite existing material.
        assert!(generate_self_signed(&["x".to_string()], &cert, &key).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_name_the_file() {
        let dir = temp_dir("bad");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        let err = ServerCertificate::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cert.pem"), "{err}");
        std::fs::write(&cert, "not pem").unwrap();
        let err = ServerCertificate::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no -----BEGIN CERTIFICATE") && err.contains("cert.pem"),
            "{err}"
        );
        std::fs::remove_file(&cert).unwrap();
        generate_self_signed(&["a.example".to_string()], &cert, &dir.join("k1.pem")).unwrap();
        std::fs::write(
            &key,
            "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = ServerCertificate::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key.pem"), "{err}");
        // A key that does not belong to the certificate.
        std::fs::remove_file(&key).unwrap();
        generate_self_signed(&["b.example".to_string()], &dir.join("c2.pem"), &key).unwrap();
        let err = ServerCertificate::load(&cert, &key)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot be used together"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reload_takes_a_renewed_pair_and_keeps_the_old_one_on_error() {
        let dir = temp_dir("reload");
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        generate_self_signed(&["a.example".to_string()], &cert, &key).unwrap();
        let store = ServerCertificate::load(&cert, &key).unwrap();
        let in_use = |store: &ServerCertificate| store.current.read().cert[0].clone();
        let first = in_use(&store);

        let (new_cert, new_key) = (dir.join("new-cert.pem"), dir.join("new-key.pem"));
        generate_self_signed(&["a.example".to_string()], &new_cert, &new_key).unwrap();
        std::fs::rename(&new_cert, &cert).unwrap();
        std::fs::rename(&new_key, &key).unwrap();
        store.reload().unwrap();
        let renewed = in_use(&store);
        assert_ne!(renewed, first);

        std::fs::write(&cert, "half-written").unwrap();
        let err = store.reload().unwrap_err().to_string();
        assert!(err.contains("cert.pem"), "{err}");
        assert_eq!(in_use(&store), renewed);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
