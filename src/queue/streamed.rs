//! A message written to the spool as it arrives, for messages too big to
//! keep in memory. Its file `<id>.msg`, marked as being written, is laid
//! out as every message file (envelope, Received header, message), but the
//! envelope is written first with a placeholder length and digest in the
//! fixed-width form ([`envfile::render_fixed_width`]); once the last part is
//! in, the real envelope, of exactly the same length, is written over it.
//! Then the spool writer marks it finished and syncs it like any other:
//! nothing is acknowledged before that. A message dropped before it is
//! finished takes its file with it, and start-up removes any file a crash
//! left being written.

use std::fs::{self, File};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use ring::digest::{Context, SHA256};

use super::{envfile, io_error, write_new, QueueError, QueueId, QueuedMessage, Spool, Staged};
use crate::proto::envelope::NewMessage;

/// A message file being written part by part.
pub struct StreamedMessage {
    id: QueueId,
    path: PathBuf,
    /// `None` once the file has been handed on (or failed and removed).
    file: Option<File>,
    /// The envelope as it will be written at the end.
    queued: QueuedMessage,
    /// The length of the envelope written first.
    head_length: usize,
    /// SHA-256 of the message bytes so far (Received header included).
    digest: Context,
    /// Message bytes so far.
    length: u64,
}

impl StreamedMessage {
    /// Creates the file of `first` (its envelope, the Received header and
    /// `first.body`, the first part of the message) in `spool`.
    pub(super) fn start(spool: &Spool, first: &NewMessage) -> Result<StreamedMessage, QueueError> {
        if first.envelope.recipients.is_empty() {
            return Err(QueueError::Invalid {
                reason: "a message without recipients".into(),
            });
        }
        let (id, arrival, header) = spool.arrival(first);
        let placeholder = "0".repeat(64);
        let queued = QueuedMessage::arrived(id.clone(), arrival, first, 0, placeholder);
        let mut head = envfile::render_fixed_width(&queued);
        let head_length = head.len();
        head.extend_from_slice(header.as_bytes());
        let path = spool.message_path(&id);
        let file = write_new(&path, &[&head, &first.body]).inspect_err(|_| {
            let _ = fs::remove_file(&path);
        })?;
        let mut digest = Context::new(&SHA256);
        digest.update(header.as_bytes());
        digest.update(&first.body);
        Ok(StreamedMessage {
            id,
            path,
            file: Some(file),
            queued,
            head_length,
            digest,
            length: (header.len() + first.body.len()) as u64,
        })
    }

    /// Appends the next part of the message.
    pub fn append(&mut self, part: &[u8]) -> Result<(), QueueError> {
        let Some(file) = &mut self.file else {
            return Err(QueueError::Stopped);
        };
        if let Err(error) = file.write_all(part) {
            self.abandon();
            return Err(io_error(&self.path)(error));
        }
        self.digest.update(part);
        self.length += part.len() as u64;
        Ok(())
    }

    /// Writes the real envelope over the placeholder: the file is complete,
    /// still to be marked finished and synced.
    pub(super) fn finish(mut self) -> Result<Staged, QueueError> {
        let Some(file) = self.file.take() else {
            return Err(QueueError::Stopped);
        };
        self.queued.message_length = self.length;
        self.queued.message_sha256 = envfile::hex(self.digest.clone().finish().as_ref());
        let head = envfile::render_fixed_width(&self.queued);
        let written = if head.len() == self.head_length {
            file.write_all_at(&head, 0).map_err(io_error(&self.path))
        } else {
            Err(QueueError::Invalid {
                reason: "the envelope changed length while the message was written".into(),
            })
        };
        match written {
            Ok(()) => Ok(Staged {
                id: self.id.clone(),
                path: self.path.clone(),
                file: Arc::new(file),
                finished: false,
            }),
            Err(error) => {
                let _ = fs::remove_file(&self.path);
                Err(error)
            }
        }
    }

    fn abandon(&mut self) {
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for StreamedMessage {
    /// A message never finished was never acknowledged: its file goes.
    fn drop(&mut self) {
        self.abandon();
    }
}

impl std::fmt::Debug for StreamedMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamedMessage")
            .field("id", &self.id)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::SpoolWriter;
    use crate::test_fixtures::{new_message, TempDir};
    use std::time::Duration;

    #[test]
    fn a_message_written_in_parts_reads_back_like_one_stored_whole() {
        let dir = TempDir::new("streamed");
        let spool = Spool::open_with_hostname(dir.path(), "mail.example.org").unwrap();
        let writer = SpoolWriter::start(Arc::clone(&spool));
        let whole: Vec<u8> = (0..100_000u32)
            .flat_map(|i| format!("line {i}\r\n").into_bytes())
            .collect();
        let (first, rest) = whole.split_at(1000);
        let mut streamed = writer.start_message(&new_message(first)).unwrap();
        for part in rest.chunks(65_536) {
            streamed.append(part).unwrap();
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        writer.submit_streamed(streamed, Box::new(move |r| tx.send(r).unwrap()));
        let id = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        let (queued, stored) = spool.load_with_message(&id).unwrap();
        let body = stored.head(usize::MAX).unwrap();
        assert!(
            body.ends_with(&whole),
            "the message follows its Received header"
        );
        assert!(body.starts_with(b"Received: "));
        let stored = spool.store(&new_message(&whole)).unwrap();
        let other = spool.load(&stored).unwrap();
        assert_eq!(queued.recipients, other.recipients);
        assert_eq!(queued.message_length, other.message_length);
        let names: Vec<_> = fs::read_dir(spool.dir()).unwrap().collect();
        assert_eq!(names.len(), 2, "one file per message, no other");
    }

    #[test]
    fn a_message_never_finished_leaves_no_file() {
        let dir = TempDir::new("streamed-drop");
        let spool = Spool::open(dir.path()).unwrap();
        let mut streamed = spool
            .start_message(&new_message(b"Subject: x\r\n\r\n"))
            .unwrap();
        streamed.append(&[b'x'; 10_000]).unwrap();
        assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 1);
        drop(streamed);
        assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 0);
        assert!(spool.list().unwrap().is_empty());
    }
}
