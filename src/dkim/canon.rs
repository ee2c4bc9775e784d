//! RFC 6376 §3.4 "relaxed" canonicalisation: of one header field
//! ([`relaxed_header`]) and of the body, fed in pieces of any size
//! ([`RelaxedBody`]), with the SHA-256 body hash of §3.7 taken as it goes.
//!
//! The body is streamed so that a large message is never held whole: the
//! only state kept between pieces is a pending CR, a pending run of white
//! space and the count of line ends not yet written (a run of empty lines
//! is dropped if the body ends there, §3.4.4).

use ring::digest;

/// `true` for the white space of RFC 5234 (WSP: space and horizontal tab).
pub fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One header field (`name: value`, folded lines included, without its
/// final CRLF) in relaxed form (§3.4.2), appended to `out` with a CRLF:
/// the name in lower case, no white space around the colon, folds
/// removed, every run of white space one space, none at the value's ends.
pub fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let (name, value) = match field.iter().position(|&b| b == b':') {
        Some(colon) => (&field[..colon], &field[colon + 1..]),
        None => (field, &b""[..]),
    };
    out.extend(trim_wsp(name).iter().map(u8::to_ascii_lowercase));
    out.push(b':');
    relaxed_value(value, out);
    out.extend_from_slice(b"\r\n");
}

/// A header value in relaxed form, without the CRLF.
fn relaxed_value(value: &[u8], out: &mut Vec<u8>) {
    let mut space = false;
    let mut written = false;
    let mut i = 0;
    while i < value.len() {
        let b = value[i];
        // A fold is CRLF before white space; unfolding drops the CRLF.
        let fold = b == b'\r' && value.get(i + 1) == Some(&b'\n');
        if fold {
            i += 2;
            continue;
        }
        if is_wsp(b) {
            space = true;
        } else {
            if space && written {
                out.push(b' ');
            }
            space = false;
            written = true;
            out.push(b);
        }
        i += 1;
    }
}

fn trim_wsp(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|&b| !is_wsp(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|&b| !is_wsp(b))
        .map_or(start, |e| e + 1);
    &bytes[start..end]
}

/// Canonical output is hashed in pieces of about this size.
const HASH_BATCH: usize = 16 * 1024;

/// The relaxed body canonicalisation (§3.4.4) and its SHA-256 hash, fed
/// the body in pieces of any size: the same bytes give the same hash
/// however they are cut.
///
/// A CR not followed by LF, and an LF not preceded by CR, are ordinary
/// characters here (the queue only holds CRLF lines; this keeps any other
/// input well defined).
pub struct RelaxedBody {
    hash: digest::Context,
    /// Canonical bytes not yet hashed.
    batch: Vec<u8>,
    /// Canonical bytes so far (hashed or in `batch`).
    length: u64,
    /// Line ends seen but not yet written: written when more text follows.
    line_ends: u64,
    /// White space seen since the last text on this line.
    space: bool,
    /// The last byte was a CR whose LF may be in the next piece.
    cr: bool,
}

impl Default for RelaxedBody {
    fn default() -> RelaxedBody {
        RelaxedBody::new()
    }
}

impl RelaxedBody {
    /// An empty body.
    pub fn new() -> RelaxedBody {
        RelaxedBody {
            hash: digest::Context::new(&digest::SHA256),
            batch: Vec::with_capacity(HASH_BATCH + 64),
            length: 0,
            line_ends: 0,
            space: false,
            cr: false,
        }
    }

    /// Feeds the next piece of the body.
    pub fn update(&mut self, piece: &[u8]) {
        for &b in piece {
            if self.cr {
                self.cr = false;
                if b == b'\n' {
                    self.line_ends += 1;
                    self.space = false;
                    continue;
                }
                self.text(b'\r');
            }
            match b {
                b'\r' => self.cr = true,
                b' ' | b'\t' => self.space = true,
                _ => self.text(b),
            }
            if self.batch.len() >= HASH_BATCH {
                self.flush();
            }
        }
    }

    /// A byte that is neither white space nor part of a line end: the line
    /// ends and white space before it are written first.
    fn text(&mut self, b: u8) {
        for _ in 0..self.line_ends {
            self.batch.extend_from_slice(b"\r\n");
            if self.batch.len() >= HASH_BATCH {
                self.flush();
            }
        }
        self.line_ends = 0;
        if self.space {
            self.batch.push(b' ');
            self.space = false;
        }
        self.batch.push(b);
    }

    fn flush(&mut self) {
        self.hash.update(&self.batch);
        self.length += self.batch.len() as u64;
        self.batch.clear();
    }

    /// Ends the body: trailing white space and empty lines are dropped, a
    /// body with any text ends in exactly one CRLF (an empty body stays
    /// empty). Returns the SHA-256 hash and the canonical length.
    pub fn finish(mut self) -> ([u8; 32], u64) {
        if self.cr {
            self.cr = false;
            self.text(b'\r');
        }
        if self.length > 0 || !self.batch.is_empty() {
            self.batch.extend_from_slice(b"\r\n");
        }
        self.flush();
        let mut hash = [0u8; 32];
        hash.copy_from_slice(self.hash.finish().as_ref());
        (hash, self.length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(field: &str) -> String {
        let mut out = Vec::new();
        relaxed_header(field.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    /// The canonical body, found by hashing: the test compares against the
    /// hash of the expected text.
    fn body_hash(pieces: &[&[u8]]) -> ([u8; 32], u64) {
        let mut body = RelaxedBody::new();
        for piece in pieces {
            body.update(piece);
        }
        body.finish()
    }

    fn sha256(bytes: &[u8]) -> ([u8; 32], u64) {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(digest::digest(&digest::SHA256, bytes).as_ref());
        (hash, bytes.len() as u64)
    }

    #[test]
    fn header_fields_in_relaxed_form() {
        for (field, want) in [
            // RFC 6376 §3.4.5, the example's two fields.
            ("A: X", "a:X\r\n"),
            ("B : Y\t\r\n\tZ  ", "b:Y Z\r\n"),
            (
                "Subject:   Is dinner\t ready?  ",
                "subject:Is dinner ready?\r\n",
            ),
            ("SUBJECT:", "subject:\r\n"),
            ("To: a@b,\r\n  c@d", "to:a@b, c@d\r\n"),
            ("X-Odd", "x-odd:\r\n"),
            ("Name \t:\t", "name:\r\n"),
        ] {
            assert_eq!(header(field), want, "{field:?}");
        }
    }

    #[test]
    fn bodies_in_relaxed_form() {
        for (body, want) in [
            // RFC 6376 §3.4.5.
            (&b" C \r\nD \t E\r\n\r\n\r\n"[..], &b" C\r\nD E\r\n"[..]),
            (b"", b""),
            (b"\r\n", b""),
            (b"\r\n\r\n \t \r\n", b""),
            (b"no line end", b"no line end\r\n"),
            (b"trailing  \t", b"trailing\r\n"),
            (b"a\r\n\r\nb\r\n", b"a\r\n\r\nb\r\n"),
            (b"a\r\n \r\nb", b"a\r\n\r\nb\r\n"),
            (b"bare\rcr\nlf\r", b"bare\rcr\nlf\r\r\n"),
            (b"\tleading", b" leading\r\n"),
            // RFC 8463 Appendix A's body.
            (
                b"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n\r\n",
                b"Hi.\r\n\r\nWe lost the game. Are you hungry yet?\r\n\r\nJoe.\r\n",
            ),
        ] {
            assert_eq!(
                body_hash(&[body]),
                sha256(want),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn every_split_gives_the_same_hash() {
        let body: &[u8] = b" C \r\nD \t E\r\n\r\n\rx\r\n  \r\n\r\nlast \t\r\n\r\n";
        let whole = body_hash(&[body]);
        for i in 0..=body.len() {
            for j in i..=body.len() {
                assert_eq!(
                    body_hash(&[&body[..i], &body[i..j], &body[j..]]),
                    whole,
                    "{i} {j}"
                );
            }
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(body_hash(&bytes), whole);
    }

    #[test]
    fn long_bodies_hash_across_batches() {
        let line = b"0123456789 abcdefghij \t klmnopqrstuvwxyz  \r\n";
        let body: Vec<u8> = line
            .iter()
            .cycle()
            .take(line.len() * 2000)
            .copied()
            .collect();
        let canonical: Vec<u8> = b"0123456789 abcdefghij klmnopqrstuvwxyz\r\n"
            .iter()
            .cycle()
            .take(40 * 2000)
            .copied()
            .collect();
        let whole = body_hash(&[&body]);
        assert_eq!(whole, sha256(&canonical));
        let pieces: Vec<&[u8]> = body.chunks(7777).collect();
        assert_eq!(body_hash(&pieces), whole);
    }
}
