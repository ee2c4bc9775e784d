//! Signing one message (RFC 6376 §5): [`MessageHasher`] is fed the
//! message in pieces (the header section is kept, the body only hashed),
//! then [`signature_field`] writes a `DKIM-Signature:` field for one key,
//! relaxed/relaxed, covering the fields of [`SIGNED_FIELDS`] with `From`
//! signed once more than it occurs.
//!
//! [`SIGNED_FIELDS`]: super::header::SIGNED_FIELDS

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;

use super::canon::{relaxed_header, RelaxedBody};
use super::header::{fields, from_domain, select, signed_names};
use super::key::{KeyError, SigningKey};

/// The most header-section octets kept to sign; a message with a longer
/// header section goes unsigned. Real header sections are a few KiB; this
/// bounds the memory a signature can take.
pub const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// Signature lines are folded to stay within this many octets (RFC 5322
/// §2.1.1's recommended 78).
const LINE_WIDTH: usize = 78;

/// Why a message cannot be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignError {
    /// The header section is longer than [`MAX_HEADER_SECTION`].
    HeaderTooLarge,
    /// The key could not sign.
    Key(KeyError),
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignError::HeaderTooLarge => write!(
                f,
                "the header section is longer than {MAX_HEADER_SECTION} octets"
            ),
            SignError::Key(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SignError {}

/// A message fed in pieces of any size: keeps the header section (up to
/// [`MAX_HEADER_SECTION`]) and hashes the body as it passes.
pub struct MessageHasher {
    /// The header section so far; once the empty line is found, the
    /// section up to and including its last field's CRLF.
    header: Vec<u8>,
    in_body: bool,
    too_large: bool,
    body: RelaxedBody,
}

impl Default for MessageHasher {
    fn default() -> MessageHasher {
        MessageHasher::new()
    }
}

impl MessageHasher {
    /// Nothing fed yet.
    pub fn new() -> MessageHasher {
        MessageHasher {
            header: Vec::new(),
            in_body: false,
            too_large: false,
            body: RelaxedBody::new(),
        }
    }

    /// Feeds the next piece of the message.
    pub fn update(&mut self, piece: &[u8]) {
        if self.in_body {
            self.body.update(piece);
            return;
        }
        if self.too_large {
            // Only the end of the header section matters now: keep the
            // last three octets to find a CRLF CRLF across pieces.
            let keep = self.header.len().min(3);
            self.header.drain(..self.header.len() - keep);
        }
        let searched_to = self.header.len().saturating_sub(3);
        self.header.extend_from_slice(piece);
        let end = if self.header.starts_with(b"\r\n") && !self.too_large {
            Some(0)
        } else {
            memchr::memmem::find(&self.header[searched_to..], b"\r\n\r\n")
                .map(|at| searched_to + at + 2)
        };
        match end {
            Some(end) => {
                self.in_body = true;
                self.body.update(&self.header[end + 2..]);
                self.header.truncate(end);
            }
            None if self.header.len() > MAX_HEADER_SECTION => self.too_large = true,
            None => {}
        }
    }

    /// Once the header section is complete, the domain
    /// [`Hashed::from_domain`] will give (a message no key signs need not
    /// be read further); `None` before.
    pub fn from_domain(&self) -> Option<Option<String>> {
        self.in_body.then(|| from_domain(&fields(&self.header)))
    }

    /// Ends the message: its header section and body hash. A message
    /// without an empty line is all header section and an empty body.
    pub fn finish(self) -> Result<Hashed, SignError> {
        if self.too_large {
            return Err(SignError::HeaderTooLarge);
        }
        let mut header = self.header;
        if !self.in_body && !header.is_empty() && !header.ends_with(b"\r\n") {
            header.extend_from_slice(b"\r\n");
        }
        let (body_hash, _) = self.body.finish();
        Ok(Hashed { header, body_hash })
    }
}

/// A message read to its end, ready to be signed with any key.
#[derive(Debug, Clone)]
pub struct Hashed {
    header: Vec<u8>,
    body_hash: [u8; 32],
}

impl Hashed {
    /// The domain of the `From:` address (lower case), which picks the key;
    /// `None` when there is no single `From:` with an address.
    pub fn from_domain(&self) -> Option<String> {
        from_domain(&fields(&self.header))
    }

    /// The header section, each field ending in CRLF (without the empty
    /// line).
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// The SHA-256 of the relaxed body (`bh=`).
    pub fn body_hash(&self) -> [u8; 32] {
        self.body_hash
    }
}

/// What goes into one signature besides the message.
#[derive(Debug, Clone)]
pub struct SignatureParams<'a> {
    /// `d=`, the signing domain.
    pub domain: &'a str,
    /// `s=`, the selector naming the key record.
    pub selector: &'a str,
    /// `t=`, the signing time, seconds since the epoch.
    pub timestamp: u64,
}

/// The `DKIM-Signature:` field (folded, ending in CRLF) that signs
/// `message` with `key`, to be put in front of the message.
pub fn signature_field(
    message: &Hashed,
    key: &SigningKey,
    params: &SignatureParams<'_>,
) -> Result<String, SignError> {
    let fields = fields(&message.header);
    let names = signed_names(&fields);
    let mut template = Folded::new("DKIM-Signature:");
    template.tag("v=1;");
    template.tag(&format!("a={};", key.algorithm().signature_name()));
    template.tag("c=relaxed/relaxed;");
    template.tag(&format!("d={};", params.domain));
    template.tag(&format!("s={};", params.selector));
    template.tag(&format!("t={};", params.timestamp));
    let list = names.join(":");
    let mut pieces = list.split_inclusive(':').peekable();
    let first = pieces.next().unwrap_or("");
    template.fold();
    template.tag(&format!("h={first}"));
    for piece in pieces {
        template.glued(piece);
    }
    template.glued(";");
    template.fold();
    template.tag(&format!("bh={};", BASE64.encode(message.body_hash)));
    template.fold();
    template.tag("b=");
    let b = sign_fields(&fields, &names, template.text(), key).map_err(SignError::Key)?;
    template.glued_folded(&BASE64.encode(b));
    Ok(template.finish())
}

/// The signature over the fields `names` selects and the signature field
/// itself with an empty `b=` (RFC 6376 §3.7), all in relaxed form; the
/// signature field comes last, without its CRLF.
pub fn sign_fields<S: AsRef<str>>(
    fields: &[&[u8]],
    names: &[S],
    template: &str,
    key: &SigningKey,
) -> Result<Vec<u8>, KeyError> {
    let mut data = Vec::new();
    for field in select(fields, names) {
        relaxed_header(field, &mut data);
    }
    relaxed_header(template.as_bytes(), &mut data);
    data.truncate(data.len() - 2);
    key.sign(&data)
}

/// A header field being written, folded before a word that would make
/// the line longer than [`LINE_WIDTH`].
struct Folded {
    text: String,
    line_start: usize,
}

impl Folded {
    fn new(name: &str) -> Folded {
        Folded {
            text: name.to_string(),
            line_start: 0,
        }
    }

    fn line_len(&self) -> usize {
        self.text.len() - self.line_start
    }

    /// A word after a space, or on a new line.
    fn tag(&mut self, word: &str) {
        if self.line_len() > 0 && self.line_len() + 1 + word.len() > LINE_WIDTH {
            self.fold();
        }
        self.text.push(' ');
        self.text.push_str(word);
    }

    /// A word right after the previous one (a fold, if needed, is white
    /// space that verifiers ignore inside `h=`).
    fn glued(&mut self, word: &str) {
        if self.line_len() + word.len() > LINE_WIDTH {
            self.fold();
            self.text.push(' ');
        }
        self.text.push_str(word);
    }

    /// A long value, in as many lines as it needs.
    fn glued_folded(&mut self, value: &str) {
        let mut rest = value;
        while !rest.is_empty() {
            let room = LINE_WIDTH.saturating_sub(self.line_len()).max(1);
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.text.push_str(now);
            rest = later;
            if !rest.is_empty() {
                self.fold();
                self.text.push(' ');
            }
        }
    }

    /// Ends the line; the next word starts a continuation line.
    fn fold(&mut self) {
        self.text.push_str("\r\n");
        self.line_start = self.text.len();
    }

    fn text(&self) -> &str {
        &self.text
    }

    fn finish(mut self) -> String {
        self.text.push_str("\r\n");
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::key::Algorithm;
    use ring::signature::{UnparsedPublicKey, ED25519};

    /// RFC 8463 Appendix A: the message (A.3, without its signatures) and
    /// the Ed25519 key (A.2).
    const RFC8463_MESSAGE: &[u8] = b"From: Joe SixPack <joe@football.example.com>\r\n\
        To: Suzie Q <suzie@shopping.example.net>\r\n\
        Subject: Is dinner ready?\r\n\
        Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n\
        Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\
        \r\n\
        Hi.\r\n\
        \r\n\
        We lost the game.  Are you hungry yet?\r\n\
        \r\n\
        Joe.\r\n";
    const RFC8463_SEED: &str = "nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=";
    const RFC8463_PUBLIC: &str = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    /// A.3's Ed25519 signature field, with its `b=` emptied.
    const RFC8463_TEMPLATE: &str = "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n \
        d=football.example.com; i=@football.example.com;\r\n \
        q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n \
        subject : date : message-id : from : subject : date;\r\n \
        bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n \
        b=";
    const RFC8463_B: &str =
        "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";

    fn rfc8463_key() -> SigningKey {
        SigningKey::ed25519_from_seed(
            &BASE64.decode(RFC8463_SEED).unwrap(),
            &BASE64.decode(RFC8463_PUBLIC).unwrap(),
        )
        .unwrap()
    }

    fn hashed(pieces: &[&[u8]]) -> Hashed {
        let mut hasher = MessageHasher::new();
        for piece in pieces {
            hasher.update(piece);
        }
        hasher.finish().unwrap()
    }

    #[test]
    fn reproduces_the_rfc8463_example_signature() {
        let message = hashed(&[RFC8463_MESSAGE]);
        assert_eq!(
            BASE64.encode(message.body_hash()),
            "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8="
        );
        assert_eq!(
            message.from_domain().as_deref(),
            Some("football.example.com")
        );
        let names = [
            "from",
            "to",
            "subject",
            "date",
            "message-id",
            "from",
            "subject",
            "date",
        ];
        let b = sign_fields(
            &fields(&message.header),
            &names,
            RFC8463_TEMPLATE,
            &rfc8463_key(),
        )
        .unwrap();
        assert_eq!(BASE64.encode(b), RFC8463_B);
    }

    /// Checks `field` as a verifier would: `bh=` against the body, `b=`
    /// against the header fields it names, with ring and the public key.
    fn verify(message: &[u8], field: &str, key: &SigningKey) {
        let tags: Vec<(String, String)> = field
            .trim_start_matches("DKIM-Signature:")
            .split(';')
            .filter_map(|t| t.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.split_whitespace().collect()))
            .collect();
        let tag = |name: &str| tags.iter().find(|(k, _)| k == name).unwrap().1.clone();
        assert_eq!(tag("bh"), BASE64.encode(hashed(&[message]).body_hash()));
        let end = memchr::memmem::find(message, b"\r\n\r\n").unwrap() + 2;
        let all = fields(&message[..end]);
        let names: Vec<String> = tag("h").split(':').map(str::to_string).collect();
        let b_at = field.rfind("b=").unwrap();
        let template = &field[..b_at + 2];
        let mut data = Vec::new();
        for f in select(&all, &names) {
            relaxed_header(f, &mut data);
        }
        relaxed_header(template.as_bytes(), &mut data);
        data.truncate(data.len() - 2);
        let signature = BASE64.decode(tag("b")).unwrap();
        let hash = ring::digest::digest(&ring::digest::SHA256, &data);
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        UnparsedPublicKey::new(&ED25519, key.public_key())
            .verify(hash.as_ref(), &signature)
            .unwrap();
    }

    #[test]
    fn signs_a_message_verifiably_and_over_signs_from() {
        let key = rfc8463_key();
        let message = hashed(&[RFC8463_MESSAGE]);
        let params = SignatureParams {
            domain: "football.example.com",
            selector: "brisbane",
            timestamp: 1528637909,
        };
        let field = signature_field(&message, &key, &params).unwrap();
        assert!(
            field.starts_with(
                "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n \
             d=football.example.com; s=brisbane; t=1528637909;\r\n \
             h=from:to:subject:date:message-id:from;\r\n \
             bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b="
            ),
            "{field}"
        );
        assert!(field.ends_with("\r\n"));
        assert!(
            field.split("\r\n").all(|line| line.len() <= LINE_WIDTH),
            "{field}"
        );
        verify(RFC8463_MESSAGE, &field, &key);
    }

    #[test]
    fn the_header_section_is_found_at_every_split() {
        let whole = hashed(&[RFC8463_MESSAGE]);
        for i in 0..=RFC8463_MESSAGE.len() {
            let split = hashed(&[&RFC8463_MESSAGE[..i], &RFC8463_MESSAGE[i..]]);
            assert_eq!(split.header, whole.header, "{i}");
            assert_eq!(split.body_hash, whole.body_hash, "{i}");
        }
    }

    #[test]
    fn odd_shapes_of_message() {
        // No header section at all: the body starts at once.
        let m = hashed(&[b"\r\nbody\r\n"]);
        assert!(m.header.is_empty());
        assert_eq!(m.body_hash, hashed(&[b"X: y\r\n\r\nbody\r\n"]).body_hash);
        // No empty line: all header, empty body.
        let m = hashed(&[b"From: a@b.test\r\nSubject: x"]);
        assert_eq!(m.header, b"From: a@b.test\r\nSubject: x\r\n");
        assert_eq!(m.body_hash, hashed(&[b"X: y\r\n\r\n"]).body_hash);
        assert_eq!(m.from_domain().as_deref(), Some("b.test"));
    }

    #[test]
    fn an_endless_header_section_is_refused_with_bounded_memory() {
        let mut hasher = MessageHasher::new();
        let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
        for _ in 0..(2 * MAX_HEADER_SECTION / line.len()) {
            hasher.update(line);
            assert!(hasher.header.len() <= MAX_HEADER_SECTION + line.len());
        }
        assert_eq!(hasher.finish().unwrap_err(), SignError::HeaderTooLarge);
    }
}
