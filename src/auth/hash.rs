//! Password hashes as standard tools write them: SHA-512-crypt `$6$`
//! (`openssl passwd -6`, glibc `crypt`), bcrypt `$2y$`/`$2b$`/`$2a$`
//! (`htpasswd -B`) and argon2id PHC strings (`argon2` CLI). Verification is
//! delegated to the RustCrypto/bcrypt crates, whose comparisons are
//! constant-time.

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use ring::rand::{SecureRandom, SystemRandom};
use sha_crypt::{sha512_crypt_b64, Sha512Params, ROUNDS_DEFAULT, ROUNDS_MAX, ROUNDS_MIN};

/// The `crypt(3)` base-64 alphabet, used for `$6$` salts.
const CRYPT_ALPHABET: &[u8; 64] =
    b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
/// SHA-crypt uses at most 16 salt characters.
const SALT_LEN: usize = 16;
/// Length of [`generate_password`]'s result: 20 characters of a
/// 57-symbol alphabet is about 116 bits.
const GENERATED_PASSWORD_LEN: usize = 20;
/// No look-alikes (0/O, 1/l/I) so a printed password can be typed.
const PASSWORD_ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";

/// A stored hash whose form has been checked at load time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// `$6$[rounds=N$]salt$hash`.
    ShaCrypt(String),
    /// `$2a$`, `$2b$` or `$2y$` bcrypt.
    Bcrypt(String),
    /// `$argon2id$v=19$m=..,t=..,p=..$salt$hash`.
    Argon2id(String),
}

impl StoredHash {
    /// Recognises a hash string, or says why it is not supported.
    pub fn parse(text: &str) -> Result<StoredHash, String> {
        if text.starts_with("$6$") {
            check_sha_crypt(text)?;
            Ok(StoredHash::ShaCrypt(text.to_string()))
        } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            text.parse::<bcrypt::HashParts>()
                .map_err(|e| format!("bad bcrypt hash: {e}"))?;
            Ok(StoredHash::Bcrypt(text.to_string()))
        } else if text.starts_with("$argon2id$") {
            let parsed = PasswordHash::new(text).map_err(|e| format!("bad argon2id hash: {e}"))?;
            let params_ok = argon2::Params::try_from(&parsed).is_ok();
            if parsed.salt.is_none() || parsed.hash.is_none() || !params_ok {
                return Err("argon2id hash lacks parameters, salt or hash".to_string());
            }
            Ok(StoredHash::Argon2id(text.to_string()))
        } else {
            Err("unsupported hash (use $6$, $2y$/$2b$ or $argon2id$)".to_string())
        }
    }

    /// The hash as written in the users file.
    pub fn as_str(&self) -> &str {
        match self {
            StoredHash::ShaCrypt(s) | StoredHash::Bcrypt(s) | StoredHash::Argon2id(s) => s,
        }
    }

    /// Does `password` match? Slow on purpose (that is the hash's job);
    /// call it only on an auth thread.
    pub fn verify(&self, password: &str) -> bool {
        match self {
            StoredHash::ShaCrypt(hash) => sha_crypt_matches(password, hash),
            StoredHash::Bcrypt(hash) => bcrypt::verify(password, hash).unwrap_or(false),
            StoredHash::Argon2id(hash) => PasswordHash::new(hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// The parts of `$6$[rounds=N$]salt$hash`.
struct ShaCryptParts<'a> {
    rounds: usize,
    salt: &'a str,
    hash: &'a str,
}

fn split_sha_crypt(text: &str) -> Result<ShaCryptParts<'_>, String> {
    let rest = text.strip_prefix("$6$").ok_or("not a $6$ hash")?;
    let mut parts: Vec<&str> = rest.split('$').collect();
    let rounds = match parts.first().and_then(|p| p.strip_prefix("rounds=")) {
        Some(number) => {
            let rounds: usize = number.parse().map_err(|_| "bad rounds= value")?;
            parts.remove(0);
            // crypt(3) clamps out-of-range rounds rather than refusing them.
            rounds.clamp(ROUNDS_MIN, ROUNDS_MAX)
        }
        None => ROUNDS_DEFAULT,
    };
    let [salt, hash] = parts[..] else {
        return Err("expected $6$[rounds=N$]salt$hash".to_string());
    };
    if hash.len() != 86 || !hash.bytes().all(|b| CRYPT_ALPHABET.contains(&b)) {
        return Err("the $6$ hash part must be 86 characters of ./0-9A-Za-z".to_string());
    }
    Ok(ShaCryptParts { rounds, salt, hash })
}

fn check_sha_crypt(text: &str) -> Result<(), String> {
    split_sha_crypt(text).map(|_| ())
}

fn sha_crypt_matches(password: &str, text: &str) -> bool {
    let Ok(parts) = split_sha_crypt(text) else {
        return false;
    };
    let Ok(params) = Sha512Params::new(parts.rounds) else {
        return false;
    };
    match sha512_crypt_b64(password.as_bytes(), parts.salt.as_bytes(), &params) {
        Ok(computed) => constant_time_eq(computed.as_bytes(), parts.hash.as_bytes()),
        Err(_) => false,
    }
}

/// Compares without an early exit, so the time taken does not tell how
/// many leading bytes matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

/// Hashes `password` as SHA-512-crypt (`$6$`, like `openssl passwd -6`)
/// with a random 16-character salt and the default 5000 rounds.
pub fn hash_password(password: &str) -> String {
    let salt = random_salt();
    let hashed = Sha512Params::new(ROUNDS_DEFAULT)
        .and_then(|params| sha512_crypt_b64(password.as_bytes(), salt.as_bytes(), &params));
    match hashed {
        Ok(hash) => format!("$6${salt}${hash}"),
        // Only a rounds count out of range can fail, and the default is in
        // range; a hash that verifies nothing is the safe answer anyway.
        Err(_) => format!("$6${salt}$!"),
    }
}

/// A salt needs to be unique, not secret: if the system RNG fails, a salt
/// derived from the clock and a counter still does its job.
fn random_salt() -> String {
    let mut bytes = [0u8; SALT_LEN];
    if SystemRandom::new().fill(&mut bytes).is_err() {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let seed = format!(
            "{nanos}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
        bytes.copy_from_slice(&digest.as_ref()[..SALT_LEN]);
    }
    bytes
        .iter()
        .map(|b| char::from(CRYPT_ALPHABET[usize::from(b % 64)]))
        .collect()
}

/// A random password for the first-start user, from ring's
/// `SystemRandom`. Fails only if the operating system has no randomness.
pub fn generate_password() -> Result<String, ring::error::Unspecified> {
    let rng = SystemRandom::new();
    let mut password = String::with_capacity(GENERATED_PASSWORD_LEN);
    // Rejection sampling: bytes past the largest multiple of the alphabet
    // size are redrawn so every character is equally likely.
    let limit = 256 - 256 % PASSWORD_ALPHABET.len();
    while password.len() < GENERATED_PASSWORD_LEN {
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes)?;
        for b in bytes {
            if usize::from(b) < limit && password.len() < GENERATED_PASSWORD_LEN {
                password.push(char::from(
                    PASSWORD_ALPHABET[usize::from(b) % PASSWORD_ALPHABET.len()],
                ));
            }
        }
    }
    Ok(password)
}

/// Argon2id with tiny costs, so debug-build tests stay fast.
#[cfg(test)]
pub(crate) fn small_argon2() -> Argon2<'static> {
    let params = argon2::Params::new(256, 1, 1, None).unwrap();
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    /// From the glibc crypt test vectors (`Hello world!`, salt `saltstring`).
    const GLIBC_VECTOR: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
    const GLIBC_VECTOR_ROUNDS: &str = "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.";

    #[test]
    fn sha_crypt_vectors() {
        for vector in [GLIBC_VECTOR, GLIBC_VECTOR_ROUNDS] {
            let hash = StoredHash::parse(vector).unwrap();
            assert!(hash.verify("Hello world!"), "{vector}");
            assert!(!hash.verify("Hello world"), "{vector}");
        }
    }

    #[test]
    fn hash_password_makes_verifiable_default_round_hashes() {
        let hash = hash_password("s3cret pass");
        assert!(
            hash.starts_with("$6$") && !hash.contains("rounds="),
            "{hash}"
        );
        assert_eq!(hash.split('$').nth(2).unwrap().len(), SALT_LEN);
        let stored = StoredHash::parse(&hash).unwrap();
        assert!(stored.verify("s3cret pass"));
        assert!(!stored.verify("s3cret pas"));
        assert_ne!(hash, hash_password("s3cret pass"), "salts must differ");
    }

    #[test]
    fn bcrypt_kinds() {
        let made = bcrypt::hash_with_result("pw", 4).unwrap();
        for version in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            let text = made.format_for_version(version);
            let stored = StoredHash::parse(&text).unwrap();
            assert!(matches!(stored, StoredHash::Bcrypt(_)));
            assert!(stored.verify("pw"), "{text}");
            assert!(!stored.verify("pW"), "{text}");
        }
    }

    #[test]
    fn argon2id() {
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let text = small_argon2()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        let stored = StoredHash::parse(&text).unwrap();
        assert!(matches!(stored, StoredHash::Argon2id(_)));
        assert!(stored.verify("pw"));
        assert!(!stored.verify("px"));
    }

    #[test]
    fn unsupported_and_malformed_hashes() {
        for text in [
            "",
            "plain",
            "$1$salt$md5hash",
            "$5$salt$sha256",
            "$6$salt",
            "$6$salt$short",
            "$6$rounds=x$salt$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1",
            "$2y$99$nonsense",
            "$argon2i$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$argon2id$garbage",
        ] {
            assert!(StoredHash::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn generated_passwords() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), GENERATED_PASSWORD_LEN);
        assert!(a.bytes().all(|c| PASSWORD_ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(constant_time_eq(b"", b""));
    }
}
