//! SASL response decoding (RFC 4954, PLAIN per RFC 4616, LOGIN): never
//! panics on any line or message; base64 of any bytes, padded or not and
//! with the spaces some clients add, decodes back to those bytes; a PLAIN
//! message built from a user and password decodes to exactly them.
//!
//! Input: the raw bytes are used as a response line, as a PLAIN message and
//! as the payload to encode.
#![no_main]

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use outpost::proto::sasl::{self, Credentials, SaslError};

fuzz_target!(|data: &[u8]| {
    // Any line, any message: an answer, never a panic.
    let line = String::from_utf8_lossy(data);
    let decoded = sasl::decode_response(&line);
    if let Ok(bytes) = &decoded {
        // Whatever decodes was base64 (or `=`); re-encoding is shorter
        // than or as long as the trimmed line.
        assert!(STANDARD.encode(bytes).len() <= line.trim_matches(' ').len() + 2);
        if let Ok(credentials) = sasl::decode_plain(bytes) {
            assert!(!credentials.username.is_empty() && !credentials.password.is_empty());
        }
    }
    let _ = sasl::decode_login(&line);
    let plain = sasl::decode_plain(data);

    // RFC 4616 §2: authzid NUL authcid NUL passwd, exactly two NULs.
    let nuls = data.iter().filter(|&&b| b == 0).count();
    if nuls != 2 || std::str::from_utf8(data).is_err() {
        assert_eq!(plain.unwrap_err(), SaslError::Malformed);
    }

    // base64(x) decodes to x, with or without padding and surrounding spaces.
    for encoded in [
        STANDARD.encode(data),
        STANDARD_NO_PAD.encode(data),
        format!("  {} ", STANDARD.encode(data)),
    ] {
        let back = sasl::decode_response(&encoded);
        if data.is_empty() {
            assert_eq!(back, Ok(Vec::new()));
        } else {
            assert_eq!(back.as_deref(), Ok(data), "{encoded}");
        }
    }

    // A PLAIN message built from a user and a password gives them back.
    if let Ok(text) = std::str::from_utf8(data) {
        let (user, password) = text.split_once('\u{1}').unwrap_or((text, "pw"));
        if !user.is_empty() && !password.is_empty() && !text.contains('\0') {
            let expected = Credentials {
                username: user.to_string(),
                password: password.to_string(),
            };
            let message = format!("\0{user}\0{password}");
            assert_eq!(sasl::decode_plain(message.as_bytes()), Ok(expected.clone()));
            let message = format!("{user}\0{user}\0{password}");
            assert_eq!(sasl::decode_plain(message.as_bytes()), Ok(expected.clone()));
            let line = STANDARD.encode(format!("\0{user}\0{password}"));
            let bytes = sasl::decode_response(&line).expect("valid base64");
            assert_eq!(sasl::decode_plain(&bytes), Ok(expected));
            let other = format!("x{user}\0{user}\0{password}");
            assert_eq!(
                sasl::decode_plain(other.as_bytes()),
                Err(SaslError::AuthzidMismatch)
            );
        }
    }
});
