//! DKIM canonicalisation and signing over arbitrary messages: nothing
//! panics; the message fed in fuzzer-chosen pieces gives the same header
//! section, body hash and signature field as fed whole (Ed25519 signatures
//! are deterministic); and the signature verifies with ring against the
//! key's public half, recomputed the way a verifier does (the fields `h=`
//! names, then the signature field with `b=` emptied, all relaxed).
//!
//! Input: 1 byte of settings (high four bits all set: RSA instead of
//! Ed25519, for one input in 16 since RSA signing is slow; bit 1 set: the
//! rest is raw instead of mapped into a header alphabet), 4 bytes of chunk
//! pattern, then the message.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use outpost::dkim::canon::relaxed_header;
use outpost::dkim::header::{fields, select};
use outpost::dkim::sign::{signature_field, SignatureParams};
use outpost::dkim::{Algorithm, Hashed, MessageHasher, SigningKey};
use ring::signature::{UnparsedPublicKey, ED25519, RSA_PKCS1_2048_8192_SHA256};

#[path = "common/mod.rs"]
mod common;

/// Header-section text: field names, addresses, folds, comments, quotes.
const TOKENS: &[&[u8]] = &[
    b"From: ",
    b"FROM :",
    b"To: ",
    b"Subject: ",
    b"Cc:",
    b"Message-ID: <1@x>",
    b"alice@example.com",
    b"<bob@Example.ORG.>",
    b"@",
    b"\r\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"\r\n\t",
    b" ",
    b"\t",
    b"  \t ",
    b":",
    b",",
    b"(comment <x@y>)",
    b"\"quoted, name\"",
    b"\\",
    b"\r",
    b"\n",
    b"body text",
    b"DKIM-Signature: v=1; b=",
    b"h=from:to",
    b"\xc3\xa9",
];

fn keys() -> &'static (SigningKey, SigningKey) {
    static KEYS: OnceLock<(SigningKey, SigningKey)> = OnceLock::new();
    KEYS.get_or_init(|| {
        let load = |algorithm| {
            let der = SigningKey::generate(algorithm).unwrap();
            SigningKey::from_pkcs8(&der).unwrap()
        };
        (load(Algorithm::Rsa), load(Algorithm::Ed25519))
    })
}

fn hash(chunks: &[&[u8]]) -> Hashed {
    let mut hasher = MessageHasher::new();
    for chunk in chunks {
        hasher.update(chunk);
    }
    // Inputs here are far below the header-section limit.
    hasher.finish().unwrap()
}

/// The value of tag `name` in a signature field, white space removed.
fn tag(field: &str, name: &str) -> String {
    field
        .trim_start_matches("DKIM-Signature:")
        .split(';')
        .filter_map(|t| t.split_once('='))
        .find(|(k, _)| k.trim() == name)
        .map(|(_, v)| v.split_whitespace().collect())
        .unwrap()
}

fuzz_target!(|data: &[u8]| {
    let mut data = data;
    let settings = common::byte(&mut data);
    let pattern = common::take(&mut data, 4).to_vec();
    let message = if settings & 2 != 0 {
        data.to_vec()
    } else {
        common::detokenize(TOKENS, data)
    };
    let (rsa, ed25519) = keys();
    let key = if settings >> 4 == 0xf { rsa } else { ed25519 };

    let whole = hash(&[&message]);
    let pieces = hash(&common::chunks(&pattern, &message));
    assert_eq!(whole.header(), pieces.header());
    assert_eq!(whole.body_hash(), pieces.body_hash());
    assert_eq!(whole.from_domain(), pieces.from_domain());

    let params = SignatureParams {
        domain: "example.com",
        selector: "fuzz",
        timestamp: 1_800_000_000,
    };
    let field = signature_field(&whole, key, &params).unwrap();
    if key.algorithm() == Algorithm::Ed25519 {
        assert_eq!(field, signature_field(&pieces, key, &params).unwrap());
    }
    assert!(field.ends_with("\r\n") && field.split("\r\n").all(|l| l.len() <= 78));

    // Verify as a receiver would.
    let all = fields(whole.header());
    let names: Vec<String> = tag(&field, "h").split(':').map(str::to_string).collect();
    let b_at = field.rfind("b=").unwrap();
    let mut signed = Vec::new();
    for f in select(&all, &names) {
        relaxed_header(f, &mut signed);
    }
    relaxed_header(field[..b_at + 2].as_bytes(), &mut signed);
    signed.truncate(signed.len() - 2);
    let signature = base64_decode(&tag(&field, "b"));
    let verified = match key.algorithm() {
        Algorithm::Ed25519 => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &signed);
            UnparsedPublicKey::new(&ED25519, key.public_key()).verify(digest.as_ref(), &signature)
        }
        Algorithm::Rsa => {
            // ring takes the PKCS#1 key: the end of the SubjectPublicKeyInfo.
            let spki = key.public_key();
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki[spki.len() - 270..])
                .verify(&signed, &signature)
        }
    };
    assert!(verified.is_ok(), "signature does not verify:\n{field}");
});

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}
