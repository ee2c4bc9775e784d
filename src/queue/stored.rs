//! A spooled message's bytes as delivery uses them: read from its file in
//! pieces when they are needed, so a message is never held whole in
//! memory, whatever its size. Reads are positional, so one open file
//! serves every recipient and every host tried. A small message that came
//! whole with the read of its envelope is kept as it was read.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// How much is read from the file at a time.
pub const PIECE: usize = 64 * 1024;

/// The message part of a `<id>.msg` file (after its envelope), checked
/// against its length and digest when opened.
#[derive(Debug)]
pub struct StoredMessage {
    file: File,
    /// Where the message starts in the file.
    start: u64,
    length: u64,
    /// The whole message, when it was read with its envelope.
    read_already: Option<Vec<u8>>,
}

impl StoredMessage {
    pub(super) fn new(
        file: File,
        start: u64,
        length: u64,
        read_already: Option<Vec<u8>>,
    ) -> StoredMessage {
        StoredMessage {
            file,
            start,
            length,
            read_already,
        }
    }

    /// The message's length in octets.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// The message has no octets (never true for a spooled message: it
    /// starts with its Received header).
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Reads the message from its start.
    pub fn reader(&self) -> StoredReader<'_> {
        StoredReader {
            message: self,
            position: 0,
        }
    }

    /// Calls `each` with the message in pieces of at most [`PIECE`]
    /// octets, in order, until it returns false.
    pub fn for_each_piece(&self, mut each: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
        if let Some(bytes) = &self.read_already {
            for piece in bytes.chunks(PIECE) {
                if !each(piece) {
                    break;
                }
            }
            return Ok(());
        }
        let mut buffer = vec![0; PIECE.min(self.length as usize).max(1)];
        let mut reader = self.reader();
        loop {
            let n = reader.read(&mut buffer)?;
            if n == 0 || !each(&buffer[..n]) {
                return Ok(());
            }
        }
    }

    /// The first `max` octets at most (the whole message if it is shorter).
    pub fn head(&self, max: usize) -> io::Result<Vec<u8>> {
        let length = usize::try_from(self.length).unwrap_or(usize::MAX).min(max);
        let mut bytes = vec![0; length];
        self.reader().read_exact(&mut bytes)?;
        Ok(bytes)
    }
}

/// A reader over a [`StoredMessage`]; it ends where the message ends.
#[derive(Debug)]
pub struct StoredReader<'a> {
    message: &'a StoredMessage,
    position: u64,
}

impl Read for StoredReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.message.length - self.position;
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if want == 0 {
            return Ok(0);
        }
        if let Some(bytes) = &self.message.read_already {
            let at = self.position as usize;
            buf[..want].copy_from_slice(&bytes[at..at + want]);
            self.position += want as u64;
            return Ok(want);
        }
        let n = self
            .message
            .file
            .read_at(&mut buf[..want], self.message.start + self.position)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the message file is shorter than its envelope says",
            ));
        }
        self.position += n as u64;
        Ok(n)
    }
}
