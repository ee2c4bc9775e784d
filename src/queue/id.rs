//! Queue ids: 16 characters of `[0-9A-Z]`, 9 for the millisecond timestamp
//! (base 36 lasts until the year 5138) and 7 random ones from ring's
//! `SystemRandom`, so ids sort by arrival and `ls` shows the queue in order.
//!
//! A [`QueueId`] is checked once, where it enters (made here, parsed from
//! the command line, a file name or an envelope file), so every id the
//! spool turns into a path is known to be safe.

use std::fmt;
use std::str::FromStr;

use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};

/// The length of a queue id.
pub const ID_LEN: usize = 16;
const TIME_DIGITS: usize = 9;
const RANDOM_DIGITS: usize = ID_LEN - TIME_DIGITS;
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// A queue id: 16 characters of `[0-9A-Z]`, time-ordered. It names the
/// message's files, so it never holds anything else.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueId(String);

impl QueueId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The millisecond it was made for (the message's arrival, Unix
    /// time), read back from its first digits.
    pub fn millis(&self) -> u64 {
        self.0.bytes().take(TIME_DIGITS).fold(0, |value, b| {
            let digit = ALPHABET.iter().position(|&a| a == b).unwrap_or(0) as u64;
            value * 36 + digit
        })
    }
}

/// Text that is not a queue id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidQueueId(pub String);

impl fmt::Display for InvalidQueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not a queue id", self.0)
    }
}

impl std::error::Error for InvalidQueueId {}

impl FromStr for QueueId {
    type Err = InvalidQueueId;

    fn from_str(text: &str) -> Result<QueueId, InvalidQueueId> {
        let valid = text.len() == ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
        if valid {
            Ok(QueueId(text.to_string()))
        } else {
            Err(InvalidQueueId(text.to_string()))
        }
    }
}

impl fmt::Display for QueueId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for QueueId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Hands out ids that are unique and strictly increasing within the process.
pub struct IdGenerator {
    rng: SystemRandom,
    last: Mutex<u128>,
}

impl IdGenerator {
    /// A generator with no ids handed out yet.
    pub fn new() -> IdGenerator {
        IdGenerator {
            rng: SystemRandom::new(),
            last: Mutex::new(0),
        }
    }

    /// The next id for a message arriving at `unix_millis`.
    pub fn next(&self, unix_millis: u64) -> QueueId {
        let random_space = 36u128.pow(RANDOM_DIGITS as u32);
        let mut bytes = [0u8; 8];
        // A failing system RNG only costs unpredictability, not uniqueness:
        // the counter below still makes every id distinct.
        let random = match self.rng.fill(&mut bytes) {
            Ok(()) => u128::from(u64::from_le_bytes(bytes)) % random_space,
            Err(_) => 0,
        };
        let time = u128::from(unix_millis) % 36u128.pow(TIME_DIGITS as u32);
        let mut value = time * random_space + random;
        let mut last = self.last.lock();
        if value <= *last {
            // Same millisecond (or the clock stepped back): keep the order.
            value = *last + 1;
        }
        *last = value;
        encode(value)
    }

    /// Makes every later id sort after `id` (one found on disk).
    pub fn advance_past(&self, id: &QueueId) {
        let value = decode(id);
        let mut last = self.last.lock();
        *last = (*last).max(value);
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

fn decode(id: &QueueId) -> u128 {
    id.0.bytes().fold(0u128, |value, b| {
        let digit = ALPHABET.iter().position(|&a| a == b).unwrap_or(0);
        value * 36 + digit as u128
    })
}

fn encode(mut value: u128) -> QueueId {
    let mut out = [b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 36) as usize];
        value /= 36;
    }
    QueueId(out.iter().map(|&b| char::from(b)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_tells_its_millisecond() {
        let ms = 1_795_718_460_123;
        assert_eq!(IdGenerator::new().next(ms).millis(), ms);
    }

    #[test]
    fn ids_are_valid_unique_and_ordered() {
        let ids = IdGenerator::new();
        let mut previous = ids.next(1_795_718_460_000);
        for i in 0..2000u64 {
            let id = ids.next(1_795_718_460_000 + i / 100);
            assert_eq!(id.as_str().parse(), Ok(id.clone()), "{id}");
            assert!(id > previous, "{id} after {previous}");
            previous = id;
        }
    }

    #[test]
    fn clock_going_back_keeps_order() {
        let ids = IdGenerator::new();
        let a = ids.next(2_000_000_000_000);
        let b = ids.next(1_000_000_000_000);
        assert!(b > a);
    }

    #[test]
    fn ids_sort_after_one_found_on_disk() {
        let ids = IdGenerator::new();
        let on_disk = ids.next(2_000_000_000_000);
        let ids = IdGenerator::new();
        ids.advance_past(&on_disk);
        assert!(ids.next(1_000_000_000_000) > on_disk);
        assert_eq!(decode(&encode(12_345)), 12_345);
    }

    #[test]
    fn validity() {
        for (id, ok) in [
            ("0123456789ABCDEF", true),
            ("0123456789abcdef", false),
            ("0123456789ABCDE", false),
            ("../../etc/passwd", false),
            ("0123456789ABCDE/", false),
        ] {
            assert_eq!(id.parse::<QueueId>().is_ok(), ok, "{id}");
            if !ok {
                assert_eq!(
                    id.parse::<QueueId>().unwrap_err().to_string(),
                    format!("{id:?} is not a queue id")
                );
            }
        }
    }
}
