//! AUTH (RFC 4954) and its SASL dialogue: PLAIN (RFC 4616) and LOGIN,
//! with or without an initial response. Decoding is `sasl`'s; checking the
//! credentials is the caller's, asked for with `Action::Authenticate`.

use super::{out_of_sequence, Action, Mode, Response, Role, Session};
use crate::proto::reply::Reply;
use crate::proto::sasl::{self, Credentials, SaslError};

/// Which response an AUTH dialogue waits for.
pub(super) enum SaslStep {
    /// AUTH PLAIN sent an empty `334 ` challenge; the next line is the
    /// response.
    Plain,
    /// AUTH LOGIN sent `334 VXNlcm5hbWU6`; the next line is the user name.
    LoginUser,
    /// AUTH LOGIN sent `334 UGFzc3dvcmQ6`; the next line is the password.
    LoginPassword {
        /// The user name already decoded.
        username: String,
    },
}

impl Session {
    /// AUTH is offered and taken here: always on the submission roles, on
    /// the smtp role only with `smtp_auth` (as Postfix, chasquid and mox
    /// do), so port 25 gives password guessers nothing to try.
    pub(super) fn auth_enabled(&self) -> bool {
        self.role != Role::Smtp || self.config.smtp_auth
    }

    /// `AUTH mechanism [initial-response]` (RFC 4954).
    pub(super) fn on_auth(&mut self, mechanism: &str, initial: Option<&str>) -> Response {
        if !self.auth_enabled() {
            // Postfix's reply where AUTH is off.
            return out_of_sequence("Error: authentication not enabled");
        }
        if self.auth_user.is_some() {
            // RFC 4954 §4: AUTH once per session.
            return out_of_sequence("You are already logged in");
        }
        if !self.esmtp {
            return out_of_sequence("Please introduce yourself with EHLO first");
        }
        if self.transaction.is_some() {
            // RFC 4954 §4: not during a mail transaction.
            return out_of_sequence("AUTH is not allowed during a mail transaction");
        }
        if self.tls.is_none() {
            // RFC 4954 §6 / RFC 8314: no passwords over plaintext.
            return Response::ok(Reply::new(
                538,
                (5, 7, 11),
                "Encryption required for requested authentication mechanism",
            ));
        }
        if mechanism.eq_ignore_ascii_case("PLAIN") {
            match initial {
                Some(initial) => finish_plain(initial.as_bytes()),
                None => {
                    // RFC 4954 §4: an empty challenge is `334 ` with a space.
                    self.mode = Mode::Sasl(SaslStep::Plain);
                    Response::ok(Reply::plain(334, vec!["".into()]))
                }
            }
        } else if mechanism.eq_ignore_ascii_case("LOGIN") {
            match initial {
                // Outlook's cloud sender gives the user name at once.
                Some(initial) => self.login_username(initial.as_bytes()),
                None => {
                    self.mode = Mode::Sasl(SaslStep::LoginUser);
                    Response::ok(Reply::plain(
                        334,
                        vec![sasl::LOGIN_USERNAME_CHALLENGE.into()],
                    ))
                }
            }
        } else {
            Response::ok(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication mechanism; use PLAIN or LOGIN",
            ))
        }
    }

    /// A line during an AUTH dialogue, at step `step`.
    pub(super) fn on_sasl_response(&mut self, step: SaslStep, line: &[u8]) -> Response {
        match step {
            SaslStep::Plain => finish_plain(line),
            SaslStep::LoginUser => self.login_username(line),
            SaslStep::LoginPassword { username } => match decode_text(line) {
                Ok(password) => Response::act(
                    None,
                    Action::Authenticate(Credentials { username, password }),
                ),
                Err(error) => sasl_refusal(error),
            },
        }
    }

    /// Takes the LOGIN user name and asks for the password.
    fn login_username(&mut self, response: &[u8]) -> Response {
        match decode_text(response) {
            Ok(username) if !username.is_empty() => {
                self.mode = Mode::Sasl(SaslStep::LoginPassword { username });
                Response::ok(Reply::plain(
                    334,
                    vec![sasl::LOGIN_PASSWORD_CHALLENGE.into()],
                ))
            }
            Ok(_) => sasl_refusal(SaslError::Malformed),
            Err(error) => sasl_refusal(error),
        }
    }
}

/// Decodes a PLAIN response and asks for it to be checked.
fn finish_plain(response: &[u8]) -> Response {
    let decoded = std::str::from_utf8(response)
        .map_err(|_| SaslError::Malformed)
        .and_then(sasl::decode_response)
        .and_then(|message| sasl::decode_plain(&message));
    match decoded {
        Ok(credentials) => Response::act(None, Action::Authenticate(credentials)),
        Err(error) => sasl_refusal(error),
    }
}

/// The reply to a refused SASL response.
fn sasl_refusal(error: SaslError) -> Response {
    match error {
        // RFC 4954 §4: a `*` response cancels with 501.
        SaslError::Cancelled => {
            Response::ok(Reply::new(501, (5, 7, 0), "Authentication cancelled"))
        }
        SaslError::Malformed => Response::bad(Reply::new(
            501,
            (5, 5, 2),
            "The authentication data could not be decoded; please try again",
        )),
        SaslError::AuthzidMismatch => Response::ok(Reply::new(
            535,
            (5, 7, 8),
            "Authentication failed: wrong user name or password",
        )),
    }
}

/// Decodes one SASL response line to UTF-8 text.
fn decode_text(line: &[u8]) -> Result<String, SaslError> {
    let line = std::str::from_utf8(line).map_err(|_| SaslError::Malformed)?;
    sasl::decode_login(line)
}
