//! The values of the ESMTP parameters this server reads and passes on:
//! `BODY=` (RFC 6152, RFC 3030), `RET=`, `NOTIFY=`, `ORCPT=` and `ENVID=`
//! (RFC 3461, with RFC 6533's UTF-8 ORCPT), and xtext, the encoding the DSN
//! parameters use (RFC 3461 §4).
//!
//! Each type reads with [`FromStr`] (keywords in any
//! case, as on a command line) and writes with [`Display`] (upper case, as
//! sent and stored), and `parse(render(x)) == x`. The command parser, the
//! outbound client, the envelope file and the DSN builder all go through
//! here, so they agree on what is valid. Pure; imports nothing.

use std::fmt::{self, Display};
use std::str::FromStr;

/// A parameter value that is not one of its grammar's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidValue;

impl Display for InvalidValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid ESMTP parameter value")
    }
}

impl std::error::Error for InvalidValue {}

/// The keyword of `table` that `value` names, in any case; no allocation
/// (this runs for MAIL and RCPT parameters).
fn keyword<T: Copy>(value: &str, table: &[(&str, T)]) -> Result<T, InvalidValue> {
    table
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(value))
        .map(|&(_, v)| v)
        .ok_or(InvalidValue)
}

/// `BODY=` of MAIL (RFC 6152, RFC 3030).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `BODY=7BIT`
    SevenBit,
    /// `BODY=8BITMIME`
    EightBitMime,
    /// `BODY=BINARYMIME` (only with BDAT)
    BinaryMime,
}

impl Body {
    const NAMES: [(&'static str, Body); 3] = [
        ("7BIT", Body::SevenBit),
        ("8BITMIME", Body::EightBitMime),
        ("BINARYMIME", Body::BinaryMime),
    ];
}

impl FromStr for Body {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Body, InvalidValue> {
        keyword(value, &Body::NAMES)
    }
}

impl Display for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        })
    }
}

/// `RET=` of MAIL (RFC 3461 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ret {
    /// Return the whole message in a failure report.
    Full,
    /// Return the headers only.
    Hdrs,
}

impl FromStr for Ret {
    type Err = InvalidValue;

    fn from_str(value: &str) -> Result<Ret, InvalidValue> {
        keyword(value, &[("FULL", Ret::Full), ("HDRS", Ret::Hdrs)])
    }
}

impl Display for Ret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ret::Full => "FULL",
            Ret::Hdrs => "HDRS",
        })
    }
}

/// `NOTIFY=` of RCPT (RFC 3461 §4.1): the outcomes the sender wants to
/// hear about. No flag set is `NEVER`, so `NEVER` combined with another
/// flag cannot be held, only refused when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    /// `SUCCESS`: report delivery.
    pub success: bool,
    /// `FAILURE`: report failure.
    pub failure: bool,
    /// `DELAY`: report a delay.
    pub delay: bool,
}

impl Notify {
    /// `NEVER`: no report at all.
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// What a recipient without `NOTIFY=` gets: `FAILURE,DELAY` (RFC 3461
    /// §4.1).
    pub const IMPLIED: Notify = Notify {
        success: false,
        failure: true,
        delay: true,
    };

    /// The flags in the order they are written.
    fn flags(self) -> [(bool, &'static str); 3] {
        [
            (self.success, "SUCCESS"),
            (self.failure, "FAILURE"),
            (self.delay, "DELAY"),
        ]
    }
}

impl FromStr for Notify {
    type Err = InvalidValue;

    /// `"NEVER" / 1#("SUCCESS" / "FAILURE" / "DELAY")`, each at most once.
    fn from_str(value: &str) -> Result<Notify, InvalidValue> {
        if value.eq_ignore_ascii_case("NEVER") {
            return Ok(Notify::NEVER);
        }
        let mut notify = Notify::NEVER;
        for item in value.split(',') {
            let flag = match keyword(item, &[("SUCCESS", 0), ("FAILURE", 1), ("DELAY", 2)])? {
                0 => &mut notify.success,
                1 => &mut notify.failure,
                _ => &mut notify.delay,
            };
            if *flag {
                return Err(InvalidValue);
            }
            *flag = true;
        }
        Ok(notify)
    }
}

impl Display for Notify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if *self == Notify::NEVER {
            return f.write_str("NEVER");
        }
        let mut separator = "";
        for (_, name) in self.flags().iter().filter(|(on, _)| *on) {
            write!(f, "{separator}{name}")?;
            separator = ",";
        }
        Ok(())
    }
}

/// RFC 3461 §4.2: an ORCPT value is at most 500 characters.
pub const MAX_ORCPT: usize = 500;

/// RFC 3461 §4.4: an ENVID value is at most 100 characters.
pub const MAX_ENVID: usize = 100;

/// `ORCPT=addr-type ";" address` of RCPT (RFC 3461 §4.2): the recipient
/// as the sender first wrote it. The address is xtext, or UTF-8 text (RFC
/// 6533 utf-8-addr-xtext / utf-8-addr-unitext), kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Orcpt {
    /// The whole value, `addr-type;address`.
    value: String,
    /// Where the `;` is in `value`.
    semicolon: usize,
}

impl Orcpt {
    /// `rfc822;` and `address` as xtext: the ORCPT of a recipient that
    /// came without one (RFC 3461 §4.2, e.g. before alias expansion).
    pub fn rfc822(address: &str) -> Orcpt {
        Orcpt {
            value: format!("rfc822;{}", encode_xtext(address)),
            semicolon: "rfc822".len(),
        }
    }

    /// The address type, e.g. `rfc822`.
    pub fn addr_type(&self) -> &str {
        &self.value[..self.semicolon]
    }

    /// The address as written: xtext, or UTF-8 text.
    pub fn address(&self) -> &str {
        &self.value[self.semicolon + 1..]
    }

    /// The address is plain (ASCII) xtext, which any DSN peer accepts; a
    /// UTF-8 one is not passed on.
    pub fn is_xtext(&self) -> bool {
        self.address().is_ascii()
    }
}

impl FromStr for Orcpt {
    type Err = InvalidValue;

    /// `addr-type` is an atom (RFC 5322) and the address non-empty xtext,
    /// or, if not ASCII, printable text; neither holds `=` or a space, as
    /// no esmtp-value does (RFC 5321 §4.1.2, RFC 6531 §3.3).
    fn from_str(value: &str) -> Result<Orcpt, InvalidValue> {
        let (addr_type, address) = value.split_once(';').ok_or(InvalidValue)?;
        let atom = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/?^_`{|}~".contains(&b);
        let unitext = |b: u8| matches!(b, 33..=60 | 62..=126 | 0x80..);
        let valid = value.len() <= MAX_ORCPT
            && !addr_type.is_empty()
            && addr_type.bytes().all(atom)
            && !address.is_empty()
            && if address.is_ascii() {
                is_xtext(address)
            } else {
                address.bytes().all(unitext)
            };
        if !valid {
            return Err(InvalidValue);
        }
        Ok(Orcpt {
            value: value.to_string(),
            semicolon: addr_type.len(),
        })
    }
}

impl Display for Orcpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// `ENVID=` (RFC 3461 §4.4): 1 to [`MAX_ENVID`] characters of xtext.
pub fn is_envid(value: &str) -> bool {
    !value.is_empty() && value.len() <= MAX_ENVID && is_xtext(value)
}

/// xtext (RFC 3461 §4): `!`..`~` except `+` and `=`, or `+` and two
/// upper-case hex digits.
pub fn is_xtext(text: &str) -> bool {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                let hex =
                    |c: Option<&u8>| c.is_some_and(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F'));
                if !(hex(b.get(i + 1)) && hex(b.get(i + 2))) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            _ => return false,
        }
    }
    true
}

/// `text` as xtext: `+XX` for `+`, `=`, space, controls and every byte of
/// a non-ASCII character.
pub fn encode_xtext(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// The text xtext stands for: `+XX` is the octet XX. Lenient, since the
/// result is only shown (in a report): lower-case hex is read too, an
/// invalid escape is kept as written, and bytes that do not form UTF-8
/// become U+FFFD.
pub fn decode_xtext(xtext: &str) -> String {
    let bytes = xtext.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'+' {
            let hex = |at: usize| bytes.get(at).and_then(|&b| char::from(b).to_digit(16));
            if let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) {
                out.push((hi * 16 + lo) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trips<T: FromStr + Display + PartialEq + fmt::Debug>(value: T) {
        let text = value.to_string();
        assert_eq!(text.parse::<T>().ok(), Some(value), "{text}");
    }

    #[test]
    fn body_and_ret_round_trip_and_read_any_case() {
        for body in [Body::SevenBit, Body::EightBitMime, Body::BinaryMime] {
            round_trips(body);
        }
        for ret in [Ret::Full, Ret::Hdrs] {
            round_trips(ret);
        }
        assert_eq!("8bitmime".parse(), Ok(Body::EightBitMime));
        assert_eq!("hdrs".parse(), Ok(Ret::Hdrs));
        for bad in ["", "8BIT", "7BIT ", "BINARY"] {
            assert_eq!(bad.parse::<Body>(), Err(InvalidValue), "{bad}");
        }
        for bad in ["", "FULLL", "HEADERS"] {
            assert_eq!(bad.parse::<Ret>(), Err(InvalidValue), "{bad}");
        }
    }

    #[test]
    fn every_notify_round_trips() {
        for bits in 0..8 {
            round_trips(Notify {
                success: bits & 1 != 0,
                failure: bits & 2 != 0,
                delay: bits & 4 != 0,
            });
        }
        assert_eq!(Notify::NEVER.to_string(), "NEVER");
        assert_eq!(Notify::IMPLIED.to_string(), "FAILURE,DELAY");
    }

    #[test]
    fn notify_grammar() {
        let n = |success, failure, delay| {
            Ok(Notify {
                success,
                failure,
                delay,
            })
        };
        let cases = [
            ("NEVER", Ok(Notify::NEVER)),
            ("never", Ok(Notify::NEVER)),
            ("SUCCESS", n(true, false, false)),
            ("delay,Failure", n(false, true, true)),
            ("SUCCESS,FAILURE,DELAY", n(true, true, true)),
            ("NEVER,SUCCESS", Err(InvalidValue)),
            ("SUCCESS,NEVER", Err(InvalidValue)),
            ("NEVER,NEVER", Err(InvalidValue)),
            ("SUCCESS,SUCCESS", Err(InvalidValue)),
            ("SUCCESS,", Err(InvalidValue)),
            ("", Err(InvalidValue)),
            ("SOMETIMES", Err(InvalidValue)),
        ];
        for (text, want) in cases {
            assert_eq!(text.parse::<Notify>(), want, "{text}");
        }
    }

    #[test]
    fn orcpt_grammar_and_round_trip() {
        for good in [
            "rfc822;bob@example.com",
            "rfc822;odd+20guy@example.net",
            "x-local;a+2Bb",
            "utf-8;ünï@example.com",
            "utf-8;user\\x{E9}@example.com",
        ] {
            let orcpt: Orcpt = good.parse().unwrap();
            assert_eq!(orcpt.to_string(), good);
            round_trips(orcpt);
        }
        let long = format!("rfc822;{}", "a".repeat(MAX_ORCPT - 7));
        assert!(long.parse::<Orcpt>().is_ok());
        let too_long = format!("{long}a");
        for bad in [
            "",
            "rfc822",
            ";bob@x",
            "rfc822;",
            "rfc 822;bob@x",
            "rfc=822;bob@x",
            "rfc822;bob@x NOTIFY=NEVER",
            "rfc822;a+zzb",
            "rfc822;a=b",
            "rfc822;ünï cödé",
            too_long.as_str(),
        ] {
            assert_eq!(bad.parse::<Orcpt>(), Err(InvalidValue), "{bad}");
        }
        let orcpt: Orcpt = "RFC822;a+2Bb".parse().unwrap();
        assert_eq!((orcpt.addr_type(), orcpt.address()), ("RFC822", "a+2Bb"));
        assert!(orcpt.is_xtext());
        assert!(!"utf-8;ü@x".parse::<Orcpt>().unwrap().is_xtext());
    }

    #[test]
    fn orcpt_of_an_address_is_xtext() {
        let orcpt = Orcpt::rfc822("\"a b\"+c=d@ü.example");
        assert_eq!(orcpt.to_string(), "rfc822;\"a+20b\"+2Bc+3Dd@+C3+BC.example");
        assert!(orcpt.is_xtext());
        round_trips(orcpt);
    }

    #[test]
    fn xtext_validity() {
        for (text, ok) in [
            ("", true),
            ("abc", true),
            ("a+2Bb+3D", true),
            ("+", false),
            ("a+2", false),
            ("a+2b", false),
            ("a+zz", false),
            ("a=b", false),
            ("a b", false),
            ("a\tb", false),
            ("ü", false),
        ] {
            assert_eq!(is_xtext(text), ok, "{text:?}");
        }
        assert!(is_envid("QQ314159") && is_envid(&"x".repeat(MAX_ENVID)));
        assert!(!is_envid("") && !is_envid(&"x".repeat(MAX_ENVID + 1)) && !is_envid("a+zz"));
    }

    #[test]
    fn xtext_round_trips() {
        for text in [
            "",
            "plain@example.com",
            "a+b=c@x",
            "\"a b\"@x",
            "\r\n\t\u{7f}",
            "ünï cödé",
            "+2B",
        ] {
            let encoded = encode_xtext(text);
            assert!(is_xtext(&encoded), "{encoded}");
            assert_eq!(decode_xtext(&encoded), text);
        }
        assert_eq!(encode_xtext("a+b=c@x"), "a+2Bb+3Dc@x");
        assert_eq!(encode_xtext("\"a b\"@x"), "\"a+20b\"@x");
    }

    #[test]
    fn decoding_is_lenient() {
        assert_eq!(decode_xtext("a+2Bb+3D"), "a+b=");
        assert_eq!(decode_xtext("a+2bb"), "a+b");
        assert_eq!(decode_xtext("bad+zz+"), "bad+zz+");
        assert_eq!(decode_xtext("end+4"), "end+4");
        assert_eq!(decode_xtext("+FF"), "\u{fffd}");
    }
}
