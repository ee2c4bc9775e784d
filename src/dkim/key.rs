//! One DKIM signing key in memory: read from PKCS#8 (DER or PEM, as
//! `openssl genpkey` writes it), generated, used to sign, and shown as the
//! DNS record that publishes its public half (RFC 6376 §3.6.1).
//!
//! Signing is ring's (rsa-sha256: RSASSA-PKCS1-v1_5 with SHA-256;
//! ed25519-sha256: RFC 8463, Ed25519 over the SHA-256 of the data). ring
//! cannot generate RSA keys nor tell their size in bits, so the `rsa`
//! crate does both, and gives the public key as SubjectPublicKeyInfo.

use std::fmt;

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, RsaKeyPair, RSA_PKCS1_SHA256};
use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, PrivateKeyInfo};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;

/// RFC 8301 §3.2: signers MUST use RSA keys of at least 1024 bits and
/// SHOULD use 2048; Gmail and Microsoft treat shorter keys as no
/// signature, so this server refuses them.
pub const MIN_RSA_BITS: usize = 2048;
/// The size of a generated RSA key.
pub const GENERATED_RSA_BITS: usize = 2048;

/// RFC 1035 §3.3.14: one character-string of a TXT record is at most 255
/// octets; longer values are split into several.
pub const TXT_STRING_MAX: usize = 255;

/// OID 1.2.840.113549.1.1.1, rsaEncryption (RFC 8017).
const RSA_OID: &str = "1.2.840.113549.1.1.1";
/// OID 1.3.101.112, Ed25519 (RFC 8410).
const ED25519_OID: &str = "1.3.101.112";

/// A signing algorithm (RFC 6376 §3.3, RFC 8463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `rsa-sha256`, verified everywhere.
    Rsa,
    /// `ed25519-sha256` (RFC 8463); Gmail and Microsoft do not verify it.
    Ed25519,
}

impl Algorithm {
    /// The `a=` value of a signature.
    pub fn signature_name(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa-sha256",
            Algorithm::Ed25519 => "ed25519-sha256",
        }
    }

    /// The `k=` value of a key record.
    pub fn key_type(self) -> &'static str {
        match self {
            Algorithm::Rsa => "rsa",
            Algorithm::Ed25519 => "ed25519",
        }
    }
}

/// Why a key cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// Not a PEM `PRIVATE KEY` (PKCS#8) block.
    NotPkcs8Pem,
    /// The PKCS#8 structure does not parse.
    BadPkcs8(String),
    /// A key of another kind than RSA or Ed25519; holds its OID.
    UnsupportedAlgorithm(String),
    /// An RSA key shorter than [`MIN_RSA_BITS`]; holds its size.
    RsaTooSmall(usize),
    /// ring refused the key (inconsistent, or a size it does not sign with).
    Rejected(String),
    /// The system random number generator failed.
    Random,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyError::NotPkcs8Pem => write!(
                f,
                "not a PKCS#8 PEM private key (-----BEGIN PRIVATE KEY-----); \
                 convert one with `openssl pkcs8 -topk8 -nocrypt`"
            ),
            KeyError::BadPkcs8(why) => write!(f, "not a valid PKCS#8 private key: {why}"),
            KeyError::UnsupportedAlgorithm(oid) => {
                write!(f, "a key of type {oid}; DKIM keys are RSA or Ed25519")
            }
            KeyError::RsaTooSmall(bits) => write!(
                f,
                "an RSA key of {bits} bits is too short: DKIM keys need at least \
                 {MIN_RSA_BITS} (make one with `openssl genpkey -algorithm RSA \
                 -pkeyopt rsa_keygen_bits:2048`)"
            ),
            KeyError::Rejected(why) => write!(f, "key refused: {why}"),
            KeyError::Random => write!(f, "the system random number generator failed"),
        }
    }
}

impl std::error::Error for KeyError {}

enum Pair {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

/// A private key ready to sign, with its public half for DNS.
pub struct SigningKey {
    pair: Pair,
    /// SubjectPublicKeyInfo (RSA) or the raw 32 bytes (Ed25519): what `p=`
    /// publishes.
    public: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("algorithm", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM `PRIVATE KEY` block (PKCS#8).
    pub fn from_pem(pem: &[u8]) -> Result<SigningKey, KeyError> {
        let der = PrivatePkcs8KeyDer::from_pem_slice(pem).map_err(|_| KeyError::NotPkcs8Pem)?;
        SigningKey::from_pkcs8(der.secret_pkcs8_der())
    }

    /// Reads a PKCS#8 DER private key, RSA (at least [`MIN_RSA_BITS`]) or
    /// Ed25519 (version 1, as OpenSSL writes it, or 2, as ring does).
    pub fn from_pkcs8(der: &[u8]) -> Result<SigningKey, KeyError> {
        let info = PrivateKeyInfo::try_from(der).map_err(|e| KeyError::BadPkcs8(e.to_string()))?;
        match info.algorithm.oid.to_string().as_str() {
            RSA_OID => {
                let parsed = rsa::RsaPrivateKey::from_pkcs8_der(der)
                    .map_err(|e| KeyError::BadPkcs8(e.to_string()))?;
                let bits = rsa::traits::PublicKeyParts::n(&parsed).bits();
                if bits < MIN_RSA_BITS {
                    return Err(KeyError::RsaTooSmall(bits));
                }
                let public = parsed
                    .to_public_key()
                    .to_public_key_der()
                    .map_err(|e| KeyError::BadPkcs8(e.to_string()))?
                    .into_vec();
                let pair =
                    RsaKeyPair::from_pkcs8(der).map_err(|e| KeyError::Rejected(e.to_string()))?;
                Ok(SigningKey {
                    pair: Pair::Rsa(pair),
                    public,
                })
            }
            ED25519_OID => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                    .map_err(|e| KeyError::Rejected(e.to_string()))?;
                Ok(SigningKey::ed25519(pair))
            }
            other => Err(KeyError::UnsupportedAlgorithm(other.to_string())),
        }
    }

    /// An Ed25519 key from its 32-byte seed and public key (RFC 8032), as
    /// RFC 8463's example gives it.
    pub fn ed25519_from_seed(seed: &[u8], public: &[u8]) -> Result<SigningKey, KeyError> {
        let pair = Ed25519KeyPair::from_seed_and_public_key(seed, public)
            .map_err(|e| KeyError::Rejected(e.to_string()))?;
        Ok(SigningKey::ed25519(pair))
    }

    fn ed25519(pair: Ed25519KeyPair) -> SigningKey {
        let public = pair.public_key().as_ref().to_vec();
        SigningKey {
            pair: Pair::Ed25519(pair),
            public,
        }
    }

    /// A new key as PKCS#8 DER: RSA of [`GENERATED_RSA_BITS`], or Ed25519.
    pub fn generate(algorithm: Algorithm) -> Result<Vec<u8>, KeyError> {
        match algorithm {
            Algorithm::Rsa => {
                let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, GENERATED_RSA_BITS)
                    .map_err(|_| KeyError::Random)?;
                let der = key
                    .to_pkcs8_der()
                    .map_err(|e| KeyError::BadPkcs8(e.to_string()))?;
                Ok(der.as_bytes().to_vec())
            }
            Algorithm::Ed25519 => {
                let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
                    .map_err(|_| KeyError::Random)?;
                Ok(doc.as_ref().to_vec())
            }
        }
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Rsa(_) => Algorithm::Rsa,
            Pair::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// The public key as `p=` publishes it: for RSA the DER
    /// SubjectPublicKeyInfo, for Ed25519 the raw 32 bytes (RFC 8463 §4.2).
    pub fn public_key(&self) -> &[u8] {
        &self.public
    }

    /// The text of the key's DNS TXT record: `v=DKIM1; k=rsa; p=…`.
    pub fn dns_record(&self) -> String {
        format!(
            "v=DKIM1; k={}; p={}",
            self.algorithm().key_type(),
            BASE64.encode(&self.public)
        )
    }

    /// The signature of `data` (the canonical header fields, RFC 6376
    /// §3.7): RSASSA-PKCS1-v1_5 over its SHA-256, or Ed25519 over its
    /// SHA-256 (RFC 8463 §3).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, KeyError> {
        match &self.pair {
            Pair::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public().modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    data,
                    &mut signature,
                )
                .map_err(|_| KeyError::Random)?;
                Ok(signature)
            }
            Pair::Ed25519(pair) => {
                let hash = ring::digest::digest(&ring::digest::SHA256, data);
                Ok(pair.sign(hash.as_ref()).as_ref().to_vec())
            }
        }
    }
}

/// PKCS#8 DER as a PEM `PRIVATE KEY` block (RFC 7468), lines of 64.
pub fn pkcs8_pem(der: &[u8]) -> String {
    let text = BASE64.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

/// `value` as TXT record data in a zone file: quoted strings of at most
/// [`TXT_STRING_MAX`] octets (a DKIM key record needs several).
pub fn txt_data(value: &str) -> String {
    value
        .as_bytes()
        .chunks(TXT_STRING_MAX)
        .map(|piece| format!("\"{}\"", String::from_utf8_lossy(piece)))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};

    #[test]
    fn generated_keys_sign_and_verify_with_their_published_half() {
        for algorithm in [Algorithm::Rsa, Algorithm::Ed25519] {
            let der = SigningKey::generate(algorithm).unwrap();
            let key = SigningKey::from_pem(pkcs8_pem(&der).as_bytes()).unwrap();
            assert_eq!(key.algorithm(), algorithm);
            let signature = key.sign(b"data").unwrap();
            match algorithm {
                Algorithm::Rsa => {
                    // ring verifies PKCS#1 RSAPublicKey: the BIT STRING's
                    // content at the end of the SubjectPublicKeyInfo.
                    let spki = key.public_key();
                    let pkcs1 = &spki[spki.len() - 270..];
                    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pkcs1)
                        .verify(b"data", &signature)
                        .unwrap();
                    assert!(key.dns_record().starts_with(
                        "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
                    ));
                }
                Algorithm::Ed25519 => {
                    let hash = ring::digest::digest(&ring::digest::SHA256, b"data");
                    UnparsedPublicKey::new(&ED25519, key.public_key())
                        .verify(hash.as_ref(), &signature)
                        .unwrap();
                    assert_eq!(key.public_key().len(), 32);
                    assert!(key.dns_record().starts_with("v=DKIM1; k=ed25519; p="));
                }
            }
        }
    }

    #[test]
    fn bad_keys_say_why() {
        assert_eq!(
            SigningKey::from_pem(
                b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"
            )
            .unwrap_err(),
            KeyError::NotPkcs8Pem
        );
        assert!(matches!(
            SigningKey::from_pkcs8(b"\x30\x03\x02\x01\x00"),
            Err(KeyError::BadPkcs8(_))
        ));
        let small = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
        let der = small.to_pkcs8_der().unwrap();
        let err = SigningKey::from_pkcs8(der.as_bytes()).unwrap_err();
        assert_eq!(err, KeyError::RsaTooSmall(1024));
        assert!(err.to_string().contains("at least 2048"), "{err}");
    }

    #[test]
    fn txt_values_are_cut_into_strings_of_255() {
        assert_eq!(txt_data("v=spf1 mx -all"), "\"v=spf1 mx -all\"");
        let long = "x".repeat(300);
        assert_eq!(
            txt_data(&long),
            format!("\"{}\" \"{}\"", "x".repeat(255), "x".repeat(45))
        );
    }
}
