//! TLS in both directions, rustls 0.23 with the ring provider. `server` is
//! what the listeners present: the certificate, its reload, the self-signed
//! certificate of a first start. `client` is what outbound delivery,
//! `outpost check` and the load generator speak through: the stream type,
//! the certificate verifier that reports instead of refusing, the trusted
//! roots and the client configuration built from them. This file holds what both share: the errors, reading PEM
//! certificates and naming the negotiated version.
//!
//! May import: rustls, rcgen, webpki-roots, x509-parser, parking_lot and std; nothing
//! else of the crate (`runtime`, `delivery`, `check` and `loadgen` import
//! this).

mod client;
mod facts;
mod server;

use std::fmt;
use std::path::{Path, PathBuf};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::{CommonState, ProtocolVersion};

pub use client::{
    client_config, trusted_roots, CertCheck, ClientStream, ObservingVerifier, VerdictSink,
};
pub use facts::CertificateFacts;
pub use server::{generate_self_signed, load_private_key, server_config, ServerCertificate};

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

/// The negotiated version as mail logs and Received headers write it
/// (`TLSv1.2`, `TLSv1.3`), once the handshake has got that far.
pub fn version_name(connection: &CommonState) -> Option<&'static str> {
    match connection.protocol_version()? {
        ProtocolVersion::TLSv1_3 => Some("TLSv1.3"),
        ProtocolVersion::TLSv1_2 => Some("TLSv1.2"),
        _ => Some("TLS"),
    }
}
