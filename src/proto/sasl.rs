//! AUTH PLAIN (RFC 4616) and LOGIN decoding, including Outlook's exact
//! `Username:` / `Password:` challenges. Decoding only; verification is the
//! runtime's, which answers with an [`AuthResult`].
//!
//! Base64 is decoded strictly (RFC 4648 alphabet, no whitespace inside, no
//! stray bits), except that missing (or partly missing) `=` padding is
//! accepted: some clients leave it off and nothing is ambiguous without it.

use std::time::Duration;

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine;

/// The standard alphabet, strict, but indifferent to padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `334 VXNlcm5hbWU6` ("Username:"): Outlook accepts only this exact text.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// `334 UGFzc3dvcmQ6` ("Password:").
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// A SASL identity and its password: decoded from a client's AUTH, or
/// configured for the relay host the outbound client logs in to.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication identity (the user's address).
    pub username: String,
    /// The password; never logged (Debug hides it).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The outcome of checking [`Credentials`], as the runtime reports it back
/// to the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthResult {
    /// Good credentials: 235 2.7.0.
    Success,
    /// Unknown user or wrong password (indistinguishable): 535 5.7.8.
    Failure,
    /// Too many failures from this client: 421 4.7.0 and close.
    Throttled {
        /// How long until the client may try again.
        wait: Duration,
    },
    /// A server-side problem: 454 4.7.0 so the client retries.
    TemporaryFailure,
}

/// Why a SASL response is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslError {
    /// The client sent `*` (RFC 4954 §4): 501 5.7.0.
    Cancelled,
    /// Not base64, or not of the mechanism's form: 501 5.5.2.
    Malformed,
    /// PLAIN with an authorization identity different from the user (we do
    /// not support proxy authorization): 535 5.7.8.
    AuthzidMismatch,
}

/// Decodes one client response line: `*` cancels, `=` is empty (RFC 4954).
/// Tolerates leading spaces (some Microsoft clients send two).
pub fn decode_response(line: &str) -> Result<Vec<u8>, SaslError> {
    match line.trim_matches(' ') {
        "*" => Err(SaslError::Cancelled),
        "=" => Ok(Vec::new()),
        text => BASE64.decode(text).map_err(|_| SaslError::Malformed),
    }
}

/// Decodes a LOGIN response (the user name or the password): base64 of
/// UTF-8 text.
pub fn decode_login(line: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_response(line)?).map_err(|_| SaslError::Malformed)
}

/// Decodes a PLAIN message `authzid NUL authcid NUL passwd`.
///
/// RFC 4616 §2: exactly two NULs, a non-empty authcid and password. An
/// authzid is accepted only when empty or equal to the authcid: we do not
/// let one user act as another.
pub fn decode_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let mut parts = message.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(passwd), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    let (authzid, username, password) = (utf8(authzid)?, utf8(authcid)?, utf8(passwd)?);
    if username.is_empty() || password.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && authzid != username {
        return Err(SaslError::AuthzidMismatch);
    }
    Ok(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

fn utf8(bytes: &[u8]) -> Result<&str, SaslError> {
    std::str::from_utf8(bytes).map_err(|_| SaslError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_outlooks() {
        assert_eq!(
            BASE64.decode(LOGIN_USERNAME_CHALLENGE).unwrap(),
            b"Username:"
        );
        assert_eq!(
            BASE64.decode(LOGIN_PASSWORD_CHALLENGE).unwrap(),
            b"Password:"
        );
    }

    #[test]
    fn responses() {
        let cases: &[(&str, Result<&[u8], SaslError>)] = &[
            ("dXNlcg==", Ok(b"user")),
            ("dXNlcg", Ok(b"user")),
            ("  dXNlcg==", Ok(b"user")),
            ("dXNlcg==  ", Ok(b"user")),
            ("AGEAYg==", Ok(b"\0a\0b")),
            ("=", Ok(b"")),
            (" = ", Ok(b"")),
            ("", Ok(b"")),
            ("*", Err(SaslError::Cancelled)),
            ("  *", Err(SaslError::Cancelled)),
            ("**", Err(SaslError::Malformed)),
            ("dXNlcg=", Ok(b"user")),
            ("dXNlcg===", Err(SaslError::Malformed)),
            ("dXN lcg==", Err(SaslError::Malformed)),
            ("dXNlcg-_", Err(SaslError::Malformed)),
            ("dXNlch==", Err(SaslError::Malformed)),
            ("d", Err(SaslError::Malformed)),
            ("\tdXNlcg==", Err(SaslError::Malformed)),
        ];
        for (line, expected) in cases {
            assert_eq!(
                decode_response(line).as_deref(),
                expected.as_deref(),
                "{line:?}"
            );
        }
    }

    #[test]
    fn login() {
        assert_eq!(
            decode_login("dXNlckBleGFtcGxlLmNvbQ=="),
            Ok("user@example.com".to_owned())
        );
        assert_eq!(decode_login("/w=="), Err(SaslError::Malformed));
        assert_eq!(decode_login("*"), Err(SaslError::Cancelled));
    }

    #[test]
    fn plain() {
        let ok = |u: &str, p: &str| {
            Ok(Credentials {
                username: u.to_owned(),
                password: p.to_owned(),
            })
        };
        let cases: &[(&[u8], Result<Credentials, SaslError>)] = &[
            (
                b"\0user@example.com\0secret",
                ok("user@example.com", "secret"),
            ),
            (
                b"user@example.com\0user@example.com\0secret",
                ok("user@example.com", "secret"),
            ),
            (
                b"\0j\xc3\xb6rg\0p\xc3\xa4ss word",
                ok("j\u{f6}rg", "p\u{e4}ss word"),
            ),
            (b"admin\0user\0secret", Err(SaslError::AuthzidMismatch)),
            (b"\0user\0", Err(SaslError::Malformed)),
            (b"\0\0secret", Err(SaslError::Malformed)),
            (b"user\0secret", Err(SaslError::Malformed)),
            (b"\0user\0sec\0ret", Err(SaslError::Malformed)),
            (b"", Err(SaslError::Malformed)),
            (b"\0us\xffer\0secret", Err(SaslError::Malformed)),
            (b"\0user\0sec\xff", Err(SaslError::Malformed)),
        ];
        for (message, expected) in cases {
            assert_eq!(&decode_plain(message), expected, "{message:?}");
        }
        // The whole way, as `AUTH PLAIN AHVzZXIAc2VjcmV0` arrives.
        let message = decode_response("AHVzZXIAc2VjcmV0").unwrap();
        assert_eq!(decode_plain(&message), ok("user", "secret"));
    }

    #[test]
    fn debug_hides_the_password() {
        let credentials = Credentials {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{credentials:?}").contains("hunter2"));
    }
}
