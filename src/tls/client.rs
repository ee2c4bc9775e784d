//! The client side, for outbound delivery, `outpost check` and the load
//! generator: the blocking stream they speak SMTP over, a verifier that
//! reports webpki's verdict instead of refusing (opportunistic TLS), and
//! the root certificates they are checked against, and the one
//! `rustls::ClientConfig` builder all three use, each with its own roots and
//! its own way of treating the server's certificate.
//!
//! May import: rustls, webpki-roots, std, and the shared parts in `tls`.

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
    StreamOwned,
};

use super::{load_certificates, version_name, TlsError};

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

/// How a client configuration treats the server's certificate.
pub enum CertCheck {
    /// Refuse a certificate that does not verify for the server name.
    Verify,
    /// Accept any certificate and hand webpki's verdict to the sink (see
    /// [`ObservingVerifier`]).
    Observe(VerdictSink),
}

/// The client configuration of delivery, `outpost check` and the load
/// generator: the ring provider, rustls's safe default protocol versions,
/// no client certificate, and the server's certificate checked against
/// `roots` as `check` says. A verifier that cannot be built from `roots`
/// (none in it) is a [`rustls::Error::General`].
pub fn client_config(
    roots: Arc<RootCertStore>,
    check: CertCheck,
) -> Result<ClientConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .map_err(|e| rustls::Error::General(e.to_string()))?;
    Ok(match check {
        CertCheck::Verify => builder.with_webpki_verifier(webpki),
        CertCheck::Observe(sink) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(ObservingVerifier::new(webpki, sink))),
    }
    .with_no_client_auth())
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
