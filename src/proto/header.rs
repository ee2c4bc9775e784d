//! What the header section of a message (RFC 5322 §2.2, up to the first
//! empty line) holds, noted as the message passes in pieces: how many
//! `Received:` fields (the hop count of RFC 5321 §6.3) and whether it has
//! a `Message-ID:` and a `Date:` (RFC 6409 §8: a submission server adds
//! them when missing). Field names match in any case, with optional white
//! space before the colon (RFC 5322 §4.5.3); folded continuation lines are
//! not fields. Any split of the message gives the same result, and the
//! state is a few words whatever the line lengths (plus the first
//! `Message-ID:` value, for the log, up to [`MAX_MESSAGE_ID`] octets). It
//! also renders the fields the spool adds when they are missing. Imports
//! only the envelope's [`MissingFields`].

use super::envelope::MissingFields;

/// The field names noted, lowercase; none is longer than [`MAX_NAME`].
const RECEIVED: &[u8] = b"received";
const MESSAGE_ID: &[u8] = b"message-id";
const DATE: &[u8] = b"date";
/// The longest field name noted.
const MAX_NAME: usize = 10;
/// The most of a `Message-ID:` value kept (RFC 5322 §2.1.1: a line is at
/// most 998 octets; a real id is far shorter).
pub const MAX_MESSAGE_ID: usize = 255;

/// Reads a message's header section piece by piece.
#[derive(Debug, Clone, Default)]
pub struct HeaderScanner {
    received: usize,
    message_id: bool,
    date: bool,
    /// The current line's field name so far, lowercase.
    name: [u8; MAX_NAME],
    /// Where the current line is in its field name.
    state: NameState,
    /// Octets of the current line so far, and whether the first is CR
    /// (a line of just CR before its LF is the empty line).
    line_len: usize,
    first_is_cr: bool,
    /// The empty line that ends the header section has been seen.
    header_done: bool,
    /// The first `Message-ID:` value so far, unfolded.
    message_id_value: Vec<u8>,
    /// Whether the octets passing belong to that value.
    capture: Capture,
}

/// Where the scanner is in taking the first `Message-ID:` value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Capture {
    /// Not in it (before it, or done with it).
    #[default]
    Off,
    /// The octets are the value.
    Value,
    /// The value's line ended: a space or tab continues it (folding).
    Folded,
}

/// How far the current line has got in its field name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum NameState {
    /// At the start of the line.
    #[default]
    Start,
    /// This many octets of the name so far.
    Name(usize),
    /// A name of this length, then only spaces or tabs.
    Blanks(usize),
    /// Settled: noted, or not a field of interest.
    Done,
}

impl HeaderScanner {
    /// Reads the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) {
        let mut i = 0;
        while i < piece.len() && !self.header_done {
            let skipping = self.capture != Capture::Value;
            if skipping && self.state == NameState::Done && self.line_len > 1 {
                // Settled and not empty: only the line's end matters.
                match memchr::memchr(b'\n', &piece[i..]) {
                    Some(lf) => i += lf,
                    None => return,
                }
            }
            let byte = piece[i];
            i += 1;
            if byte == b'\n' {
                self.end_line();
                continue;
            }
            if self.line_len == 0 {
                self.first_is_cr = byte == b'\r';
                if self.capture == Capture::Folded {
                    let continued = matches!(byte, b' ' | b'\t');
                    self.capture = if continued {
                        Capture::Value
                    } else {
                        Capture::Off
                    };
                }
            }
            self.line_len += 1;
            let in_value = self.capture == Capture::Value;
            self.state = self.next_state(byte);
            if in_value {
                self.keep(byte);
            }
        }
    }

    /// Takes `byte` into the `Message-ID:` value: CRs and leading blanks
    /// left out, at most [`MAX_MESSAGE_ID`] octets.
    fn keep(&mut self, byte: u8) {
        let leading = self.message_id_value.is_empty() && matches!(byte, b' ' | b'\t');
        if byte != b'\r' && !leading && self.message_id_value.len() < MAX_MESSAGE_ID {
            self.message_id_value.push(byte);
        }
    }

    /// The `Received:` fields seen so far.
    pub fn received(&self) -> usize {
        self.received
    }

    /// A `Message-ID:` field was seen.
    pub fn has_message_id(&self) -> bool {
        self.message_id
    }

    /// The first `Message-ID:` field's value so far (all of it once its
    /// field has ended), unfolded and trimmed.
    pub fn message_id(&self) -> Option<String> {
        let text = String::from_utf8_lossy(&self.message_id_value);
        let text = text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// A `Date:` field was seen.
    pub fn has_date(&self) -> bool {
        self.date
    }

    /// The header section has ended: no later piece changes anything.
    pub fn is_complete(&self) -> bool {
        self.header_done
    }

    fn next_state(&mut self, byte: u8) -> NameState {
        let len = match self.state {
            NameState::Done => return NameState::Done,
            NameState::Start => 0,
            NameState::Name(len) => len,
            NameState::Blanks(len) => {
                return match byte {
                    b':' => self.field(len),
                    b' ' | b'\t' => NameState::Blanks(len),
                    _ => NameState::Done,
                }
            }
        };
        match byte {
            b':' if len > 0 => self.field(len),
            b' ' | b'\t' if len > 0 => NameState::Blanks(len),
            // RFC 5322 §3.6.8 ftext: printable ASCII but the colon.
            33..=126 if len < MAX_NAME => {
                self.name[len] = byte.to_ascii_lowercase();
                NameState::Name(len + 1)
            }
            _ => NameState::Done,
        }
    }

    /// A field whose name is the first `len` octets of `name` begins.
    fn field(&mut self, len: usize) -> NameState {
        match &self.name[..len] {
            RECEIVED => self.received += 1,
            MESSAGE_ID => {
                if !self.message_id {
                    self.capture = Capture::Value;
                }
                self.message_id = true;
            }
            DATE => self.date = true,
            _ => {}
        }
        NameState::Done
    }

    fn end_line(&mut self) {
        if self.line_len == 0 || (self.line_len == 1 && self.first_is_cr) {
            self.header_done = true;
            self.capture = Capture::Off;
        } else if self.capture == Capture::Value {
            self.capture = Capture::Folded;
        }
        self.state = NameState::Start;
        self.line_len = 0;
    }
}

/// The fields `missing` asks for, each ending in CRLF: a `Message-ID:`
/// made of the queue id, unique, and our host name (RFC 5322 §3.6.4), and
/// the `Date:` of arrival (`date`, an RFC 5322 §3.3 date).
pub fn missing_fields(
    missing: MissingFields,
    queue_id: &str,
    hostname: &str,
    date: &str,
) -> String {
    let mut fields = String::new();
    if missing.message_id {
        fields.push_str(&format!("Message-ID: <{queue_id}@{hostname}>\r\n"));
    }
    if missing.date {
        fields.push_str(&format!("Date: {date}\r\n"));
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `Received:` count and whether a Message-ID and a Date were seen.
    type Facts = (usize, bool, bool);

    /// The facts of `message` fed whole, byte by byte and split at every
    /// index; all must agree.
    fn scan(message: &[u8]) -> Facts {
        let facts = |s: &HeaderScanner| (s.received(), s.has_message_id(), s.has_date());
        let mut whole = HeaderScanner::default();
        whole.feed(message);
        let expected = facts(&whole);
        let mut bytes = HeaderScanner::default();
        for byte in message {
            bytes.feed(std::slice::from_ref(byte));
        }
        assert_eq!(facts(&bytes), expected, "byte by byte");
        for split in 0..=message.len() {
            let mut scanner = HeaderScanner::default();
            let (a, b) = message.split_at(split);
            scanner.feed(a);
            scanner.feed(b);
            assert_eq!(facts(&scanner), expected, "split at {split}");
            assert_eq!(scanner.is_complete(), whole.is_complete());
        }
        expected
    }

    #[test]
    fn the_first_message_id_value_from_the_header_section_only() {
        let table: &[(&[u8], Option<&str>)] = &[
            (
                b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nbody",
                Some("<a@b>"),
            ),
            (b"message-id:   <a@b>  \r\n\r\n", Some("<a@b>")),
            (
                b"Message-Id:\r\n <folded@b>\r\nTo: c\r\n\r\n",
                Some("<folded@b>"),
            ),
            (b"Subject: x\r\n\r\nMessage-ID: <in-body@b>\r\n", None),
            (b"Message-IDs: <a@b>\r\n\r\n", None),
            (b"Message-ID:\r\n\r\n", None),
            (b"Subject: first part\r\nMessage-ID: <a@b>", Some("<a@b>")),
            (b"X: y\n\nMessage-ID: <after-bare-lf-end@b>\n", None),
            (b"X: y\nMessage-ID: <bare-lf@b>\n", Some("<bare-lf@b>")),
            (
                b"Message-ID: <a@b>\r\nMessage-ID: <second@b>\r\n\r\n",
                Some("<a@b>"),
            ),
            (b"", None),
        ];
        for (message, want) in table {
            let text = String::from_utf8_lossy(message);
            // Every split gives the same value.
            for split in 0..=message.len() {
                let mut scanner = HeaderScanner::default();
                scanner.feed(&message[..split]);
                scanner.feed(&message[split..]);
                assert_eq!(
                    scanner.message_id().as_deref(),
                    *want,
                    "{text:?} at {split}"
                );
            }
        }
        let long = format!("Message-ID: <{}>\r\n\r\n", "x".repeat(1000));
        let mut scanner = HeaderScanner::default();
        scanner.feed(long.as_bytes());
        assert_eq!(scanner.message_id().unwrap().len(), MAX_MESSAGE_ID);
    }

    #[test]
    fn fields_are_noted_in_the_header_section_only() {
        let cases: &[(&[u8], Facts)] = &[
            (b"", (0, false, false)),
            (b"Subject: x\r\n\r\nbody\r\n", (0, false, false)),
            (
                b"Message-ID: <a@b>\r\nDate: Thu, 1 Jan 1970\r\n\r\n",
                (0, true, true),
            ),
            (b"message-id : <a@b>\r\nDATE\t: x\r\n\r\n", (0, true, true)),
            (
                b"Received: a\r\nreceived: b\r\nRECEIVED : c\r\n\r\n",
                (3, false, false),
            ),
            // After the empty line it is body text.
            (
                b"Subject: x\r\n\r\nMessage-ID: <a@b>\r\nDate: x\r\n",
                (0, false, false),
            ),
            // A folded continuation is not a field.
            (
                b"Subject: x\r\n Date: y\r\n\tMessage-ID: z\r\n\r\n",
                (0, false, false),
            ),
            // Near misses.
            (
                b"X-Message-ID: a\r\nDated: b\r\nMessage-IDs: c\r\nDate\r\nResent-Date: d\r\n\r\n",
                (0, false, false),
            ),
            (b"Date x: y\r\nMessage ID: z\r\n\r\n", (0, false, false)),
            // Bare LF line ends, and a message that is all header.
            (b"Received: a\nDate: b\nMessage-Id: c\n", (1, true, true)),
        ];
        for (message, expected) in cases {
            assert_eq!(
                scan(message),
                *expected,
                "{:?}",
                String::from_utf8_lossy(message)
            );
        }
    }

    #[test]
    fn missing_fields_are_rendered_in_order() {
        let both = MissingFields {
            message_id: true,
            date: true,
        };
        assert_eq!(
            missing_fields(both, "0J5Z3K1M2N3P4Q5R", "mail.example.org", "D"),
            "Message-ID: <0J5Z3K1M2N3P4Q5R@mail.example.org>\r\nDate: D\r\n"
        );
        let date = MissingFields {
            message_id: false,
            date: true,
        };
        assert_eq!(missing_fields(date, "I", "h", "D"), "Date: D\r\n");
        assert_eq!(missing_fields(MissingFields::default(), "I", "h", "D"), "");
    }

    #[test]
    fn only_an_empty_line_ends_the_header_section() {
        let mut scanner = HeaderScanner::default();
        scanner.feed(b"\r\r\nDate: x\r\n");
        assert!(scanner.has_date() && !scanner.is_complete());
        scanner.feed(b"\r\nMessage-ID: y\r\n");
        assert!(scanner.is_complete() && !scanner.has_message_id());
        let mut long = b"Date".to_vec();
        long.extend_from_slice(&[b' '; 2000]);
        long.extend_from_slice(b": x\r\n\r\n");
        assert_eq!(scan(&long), (0, false, true));
    }
}
