//! DKIM signatures for mail leaving for another domain: the keys in force
//! ([`KeyRing`]) sign the message as a delivery thread reads it, just
//! before it is sent. A message that cannot be signed goes unsigned, with
//! a log line: a missing signature costs less than mail that never leaves.

use crate::dkim::store::now_secs;
use crate::dkim::KeyRing;
use std::io::Read;

/// The `DKIM-Signature:` fields to put in front of `message` (queue id
/// `id`); empty without keys, or when its `From:` domain is not signed for.
pub fn signature_fields(keys: Option<&KeyRing>, id: &str, message: impl Read) -> Vec<u8> {
    let Some(keys) = keys else {
        return Vec::new();
    };
    match keys.sign(message, now_secs()) {
        Ok(fields) => fields,
        Err(e) => {
            log::warn!("{id}: sent without a DKIM signature: {e}");
            Vec::new()
        }
    }
}
