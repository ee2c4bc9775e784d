//! The server side: TLS 1.2 and 1.3 only (current Windows has 1.0/1.1
//! disabled; RFC 8996 deprecates them), a PEM certificate chain with a
//! PKCS#8, RSA or EC key that SIGHUP reloads, and the self-signed
//! certificate of a first start.
//!
//! rcgen with ring can only generate ECDSA P-256 keys; an RSA certificate
//! would be kinder to very old Windows TLS stacks, so production setups
//! should bring their own (e.g. from Let's Encrypt) with `--tls-cert`.
//!
//! May import: rustls, rcgen, parking_lot, std, and the shared parts in `tls`
//! (`facts` for what the certificate in use says).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivateKeyDer;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use super::{load_certificates, CertificateFacts, TlsError};

/// The protocol versions we speak: TLS 1.2 and 1.3 only.
static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

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

    /// The names and expiry of the leaf certificate in use; `None` if it
    /// does not parse as X.509.
    pub fn facts(&self) -> Option<CertificateFacts> {
        let current = self.current.read().clone();
        current
            .cert
            .first()
            .and_then(|leaf| CertificateFacts::from_der(leaf))
    }

    /// The certificate file.
    pub fn cert_path(&self) -> &Path {
        &self.cert
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn generated_certificate_loads_and_key_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = TempDir::new("tls-gen");
        let dir = tmp.path();
        let (cert, key) = (dir.join("tls/cert.pem"), dir.join("tls/key.pem"));
        generate_self_signed(&["mx.example".to_string()], &cert, &key).unwrap();
        let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        server_config(Arc::new(ServerCertificate::load(&cert, &key).unwrap())).unwrap();
        // Never overwrite existing material.
        assert!(generate_self_signed(&["x".to_string()], &cert, &key).is_err());
    }

    #[test]
    fn errors_name_the_file() {
        let tmp = TempDir::new("tls-bad");
        let dir = tmp.path();
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
    }

    #[test]
    fn reload_takes_a_renewed_pair_and_keeps_the_old_one_on_error() {
        let tmp = TempDir::new("tls-reload");
        let dir = tmp.path();
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
    }
}
