//! AUTH PLAIN (RFC 4616) and LOGIN decoding, including Outlook's exact
//! `Username:` / `Password:` challenges. Decoding only; verification is the
//! runtime's.
//!
//! CONTRACT (implementation pending).

/// `334 VXNlcm5hbWU6` ("Username:"): Outlook accepts only this exact text.
pub const LOGIN_USERNAME_CHALLENGE: &str = "VXNlcm5hbWU6";
/// `334 UGFzc3dvcmQ6` ("Password:").
pub const LOGIN_PASSWORD_CHALLENGE: &str = "UGFzc3dvcmQ6";

/// Credentials decoded from a SASL exchange.
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
    let _ = line;
    todo!()
}

/// Decodes a PLAIN message `authzid NUL authcid NUL passwd`.
pub fn decode_plain(message: &[u8]) -> Result<Credentials, SaslError> {
    let _ = message;
    todo!()
}
