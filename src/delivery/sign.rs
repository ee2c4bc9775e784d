//! DKIM signatures for mail leaving for another domain: the keys in force
//! ([`KeyRing`]) sign the message as a delivery thread reads it, just
//! before it is sent. A message that cannot be signed goes unsigned, with
//! a log line: a missing signature costs less than mail that never leaves.
//!
//! Only mail this server vouches for is signed: its own reports, mail from
//! logged-in users, and mail from the relay networks. A message from
//! anyone else (port 25, say, sent to an alias that forwards it away)
//! keeps whatever `From:` it claims without our signature on it.

use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Arc;

use crate::dkim::store::now_secs;
use crate::dkim::KeyRing;
use crate::proto::envelope::Origin;

/// Is an unauthenticated client at this address one whose mail is ours
/// (`--relay-networks`)?
pub type TrustedClient = dyn Fn(IpAddr) -> bool + Send + Sync;

/// What signs, and whose mail.
#[derive(Clone)]
pub struct Signing {
    /// The keys in force (re-read on SIGHUP).
    pub keys: Arc<KeyRing>,
    /// The relay networks.
    pub trusted: Arc<TrustedClient>,
}

impl fmt::Debug for Signing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signing")
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

/// Does this server vouch for mail from `origin`: a report of its own, a
/// logged-in user, or a client in the relay networks?
pub fn vouches_for(origin: &Origin, trusted: &TrustedClient) -> bool {
    match origin {
        Origin::Internal => true,
        Origin::Client(client) if client.auth_user.is_some() => true,
        Origin::Client(client) => client
            .client_ip
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .is_ok_and(trusted),
    }
}

/// The `DKIM-Signature:` fields to put in front of `message` (queue id
/// `id`, from `origin`); empty without keys, for mail this server does not
/// vouch for, or when its `From:` domain is not signed for.
pub fn signature_fields(
    signing: Option<&Signing>,
    id: &str,
    origin: &Origin,
    message: impl Read,
) -> Vec<u8> {
    let Some(signing) = signing else {
        return Vec::new();
    };
    if !vouches_for(origin, &*signing.trusted) {
        return Vec::new();
    }
    match signing.keys.sign(message, now_secs()) {
        Ok(fields) => fields,
        Err(e) => {
            log::warn!("{id}: sent without a DKIM signature: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::envelope::ClientOrigin;

    fn client(ip: &str, user: Option<&str>) -> Origin {
        Origin::Client(ClientOrigin {
            client_ip: ip.into(),
            helo: "client.test".into(),
            tls: None,
            auth_user: user.map(str::to_string),
            protocol: "ESMTP",
        })
    }

    #[test]
    fn signs_reports_users_and_relay_networks_only() {
        let loopback = |ip: IpAddr| ip.is_loopback();
        assert!(vouches_for(&Origin::Internal, &loopback));
        assert!(vouches_for(
            &client("192.0.2.7", Some("alice@a.test")),
            &loopback
        ));
        assert!(vouches_for(&client("127.0.0.1", None), &loopback));
        assert!(vouches_for(&client("::1", None), &loopback));
        assert!(!vouches_for(&client("192.0.2.7", None), &loopback));
        assert!(!vouches_for(&client("unknown", None), &loopback));
    }
}
