//! The test message: a realistic text mail of an exact size, and its
//! dot-stuffed wire form (RFC 5321 §4.5.2).

/// Longest generated body line before CRLF; RFC 5322 §2.1.1 recommends 78.
const WRAP: usize = 72;

/// Words the body is made of; plain prose is what most mail looks like.
const WORDS: &[&str] = &[
    "the",
    "quarterly",
    "report",
    "is",
    "attached",
    "and",
    "please",
    "review",
    "before",
    "Thursday",
    "meeting",
    "we",
    "will",
    "discuss",
    "numbers",
    "shipping",
    "delays",
    "for",
    "customers",
    "in",
    "region",
    "north",
    "budget",
    "of",
    "team",
    "a",
    "new",
    "server",
    "mail",
    "queue",
    "delivery",
    "was",
    "delayed",
    "by",
    "an",
    "hour",
    "thanks",
    "regards",
    "schedule",
    "update",
    "invoice",
    "project",
    "deadline",
    "with",
    "to",
    "on",
    "it",
    "that",
];

/// Lines that start with a dot, including a lone ".", which would end the
/// message early if the client forgot to stuff it (RFC 5321 §4.5.2).
const DOT_LINES: &[&str] = &[
    ".",
    "..",
    ". indented with a leading dot",
    "...and a trailing thought",
    ".hidden-file-name.txt",
];

/// Builds a message of exactly `size` bytes (headers and body, CRLF line
/// endings, ending in CRLF, before dot-stuffing). Sizes below the header block
/// give the header block alone. Deterministic: the same size gives the same bytes.
pub fn message(size: usize, from: &str, to: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(size + WRAP + 2);
    out.extend_from_slice(
        format!(
            "From: Bench Sender <{from}>\r\n\
             To: <{to}>\r\n\
             Subject: Outpost load test message\r\n\
             Date: Mon, 1 Jan 2024 12:00:00 +0000\r\n\
             Message-ID: <bench.1@outpost.invalid>\r\n\
             MIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             \r\n"
        )
        .as_bytes(),
    );
    // A fixed xorshift sequence: varied text without a random-number dependency.
    let mut state: u32 = 0x9e37_79b9;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        state as usize
    };
    let mut line = String::with_capacity(WRAP + 16);
    let mut line_number = 0usize;
    while out.len() < size {
        line.clear();
        line_number += 1;
        if line_number % 9 == 0 {
            line.push_str(DOT_LINES[(line_number / 9) % DOT_LINES.len()]);
        } else if line_number % 7 != 0 {
            // Every seventh line stays empty: paragraphs.
            loop {
                let word = WORDS[next() % WORDS.len()];
                if !line.is_empty() && line.len() + 1 + word.len() > WRAP {
                    break;
                }
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(word);
            }
        }
        let room = size - out.len();
        if line.len() + 2 <= room {
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(b"\r\n");
        } else {
            // The last line is cut to fit exactly (all ASCII, so any cut is valid).
            let keep = room.saturating_sub(2);
            out.extend_from_slice(&line.as_bytes()[..keep]);
            if room >= 2 {
                out.extend_from_slice(b"\r\n");
            } else {
                // One byte of room left: end the previous line's text with it instead.
                let crlf = out.len() - 2;
                out.insert(crlf, b'x');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire form without the final `.\r\n`.
    fn dot_stuff(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::proto::dot::stuff(message, &mut out);
        out.truncate(out.len() - 3);
        out
    }

    /// The receiving side's view: removes one leading dot from each line.
    fn unstuff(data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in data.split_inclusive(|&b| b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn stuffing_table() {
        for (input, want) in [
            (&b""[..], &b""[..]),
            (b"hello\r\n", b"hello\r\n"),
            (b".\r\n", b"..\r\n"),
            (b"..\r\n", b"...\r\n"),
            (b"a\r\n.b\r\nc.d\r\n", b"a\r\n..b\r\nc.d\r\n"),
            (b"a\r\n.\r\n.\r\n", b"a\r\n..\r\n..\r\n"),
            (b"x.\r\n \r\n. \r\n", b"x.\r\n \r\n.. \r\n"),
        ] {
            assert_eq!(
                dot_stuff(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(unstuff(want), input);
        }
    }

    #[test]
    fn exact_sizes_and_clean_lines() {
        let from = "bench@example.com";
        let to = "rcpt@example.net";
        let header_len = message(0, from, to).len();
        assert!(
            header_len < crate::loadgen::options::MIN_SIZE,
            "{header_len}"
        );
        for size in (header_len..header_len + 200).chain([1024, 1025, 4096, 65536, 1 << 20]) {
            let m = message(size, from, to);
            assert_eq!(m.len(), size, "size {size}");
            assert!(m.ends_with(b"\r\n"));
            for line in m.split(|&b| b == b'\n') {
                // Every LF is preceded by CR, no bare CR, short lines.
                assert!(line.len() <= WRAP + 2);
                assert!(!line[..line.len().saturating_sub(1)].contains(&b'\r'));
            }
            assert_eq!(
                m.iter().filter(|&&b| b == b'\n').count(),
                m.windows(2).filter(|w| w == b"\r\n").count()
            );
        }
    }

    #[test]
    fn body_has_dot_lines_and_stuffs_back() {
        let m = message(64 * 1024, "a@b.c", "d@e.f");
        assert!(m.windows(4).any(|w| w == b"\n.\r\n"), "no lone dot line");
        assert!(m.windows(4).any(|w| w == b"\n. i"));
        let s = dot_stuff(&m);
        // No line of the wire form is a lone dot: the message cannot end early.
        assert!(!s.windows(4).any(|w| w == b"\n.\r\n"));
        assert!(!s.starts_with(b".\r\n"));
        assert_eq!(unstuff(&s), m);
        assert!(s.len() > m.len());
    }

    #[test]
    fn deterministic() {
        assert_eq!(
            message(5000, "a@b.c", "d@e.f"),
            message(5000, "a@b.c", "d@e.f")
        );
    }
}
