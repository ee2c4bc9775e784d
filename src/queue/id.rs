//! Queue ids: 16 characters of `[0-9A-Z]`, 9 for the millisecond timestamp
//! (base 36 lasts until the year 5138) and 7 random ones from ring's
//! `SystemRandom`, so ids sort by arrival and `ls` shows the queue in order.

use parking_lot::Mutex;
use ring::rand::{SecureRandom, SystemRandom};

/// The length of a queue id.
pub const ID_LEN: usize = 16;
const TIME_DIGITS: usize = 9;
const RANDOM_DIGITS: usize = ID_LEN - TIME_DIGITS;
const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Is `id` 16 characters of `[0-9A-Z]`? Checked before an id from a user
/// (queue tools) becomes part of a path.
pub fn is_valid(id: &str) -> bool {
    id.len() == ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
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
    pub fn next(&self, unix_millis: u64) -> String {
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

    /// Makes every later id sort after `id` (one found on disk). Ids that
    /// are not valid are ignored.
    pub fn advance_past(&self, id: &str) {
        if let Some(value) = decode(id) {
            let mut last = self.last.lock();
            *last = (*last).max(value);
        }
    }
}

impl Default for IdGenerator {
    fn default() -> Self {
        IdGenerator::new()
    }
}

fn decode(id: &str) -> Option<u128> {
    if !is_valid(id) {
        return None;
    }
    id.bytes().try_fold(0u128, |value, b| {
        let digit = ALPHABET.iter().position(|&a| a == b)?;
        Some(value * 36 + digit as u128)
    })
}

fn encode(mut value: u128) -> String {
    let mut out = [b'0'; ID_LEN];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(value % 36) as usize];
        value /= 36;
    }
    out.iter().map(|&b| char::from(b)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_valid_unique_and_ordered() {
        let ids = IdGenerator::new();
        let mut previous = String::new();
        for i in 0..2000u64 {
            let id = ids.next(1_795_718_460_000 + i / 100);
            assert!(is_valid(&id), "{id}");
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
        ids.advance_past("not an id");
        assert!(ids.next(1_000_000_000_000) > on_disk);
        assert_eq!(decode(&encode(12_345)), Some(12_345));
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
            assert_eq!(is_valid(id), ok, "{id}");
        }
    }
}
