//! Spool tests on real files in a temporary directory.

use super::*;
use crate::test_fixtures::{new_message, TempDir};

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn store_then_load_round_trip() {
    let dir = TempDir::new("round-trip");
    let spool = Spool::open_with_hostname(dir.path(), "mail.example.org").unwrap();
    let new = new_message(b"Subject: hi\r\n\r\nHello.\r\n");
    let id = spool.store(&new).unwrap();
    assert_eq!(id.as_str().parse(), Ok(id.clone()));
    let loaded = spool.load(&id).unwrap();
    assert_eq!(loaded.id, id);
    assert_eq!(loaded.mail_from, MailFrom::of(&new.envelope));
    assert_eq!(loaded.origin, new.origin);
    let pending: Vec<RecipientEntry> = new
        .envelope
        .recipients
        .iter()
        .cloned()
        .map(RecipientEntry::pending)
        .collect();
    assert_eq!(loaded.recipients, pending);
    assert_eq!(loaded.attempts, 0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(loaded.arrival <= now && loaded.arrival + 60 > now);
}

#[test]
fn message_file_is_envelope_then_received_header_plus_exact_bytes() {
    let dir = TempDir::new("exact");
    let spool = Spool::open_with_hostname(dir.path(), "mail.example.org").unwrap();
    let body = b"Subject: x\r\n\r\n8-bit \xff\x00 bytes\r\n.leading dot\r\n".to_vec();
    let id = spool.store(&new_message(&body)).unwrap();
    let file = fs::read(spool.message_path(&id)).unwrap();
    let head_length = envfile::head_length(&file).unwrap();
    let (head, stored) = file.split_at(head_length);
    let env = std::str::from_utf8(head).unwrap();
    assert!(
        env.starts_with(&format!("version: 3\nid: {id}\narrival: ")),
        "{env}"
    );
    assert!(env.contains("\nrcpt: bob@example.com notify=- orcpt=- state=pending attempts=0\n"));
    assert!(env.lines().last().unwrap().starts_with("end "));
    let header_end = stored.windows(2).position(|w| w == b"\r\n").unwrap();
    assert!(stored.starts_with(b"Received: from DESKTOP-7Q2K3LM ([192.0.2.7])\r\n"));
    assert!(
        stored[header_end..].starts_with(b"\r\n\tby mail.example.org (Outpost) with ESMTPSA id ")
    );
    assert!(stored.ends_with(&body));
    let header_len = stored.len() - body.len();
    let header = std::str::from_utf8(&stored[..header_len]).unwrap();
    assert!(header.contains(&format!(" id {id}\r\n")), "{header}");
    assert!(header.ends_with(" +0000\r\n"), "{header}");
    assert_eq!(spool.read_message(&id).unwrap(), stored);
    // One file per message until delivery state changes.
    assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 1);
}

#[test]
fn permissions_are_private() {
    let dir = TempDir::new("perms");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"x\r\n")).unwrap();
    assert_eq!(mode(spool.dir()), 0o700);
    assert_eq!(mode(&spool.message_path(&id)), 0o600);
    let message = spool.load(&id).unwrap();
    spool.update(&id, &message).unwrap();
    assert_eq!(mode(&spool.dir().join(format!("{id}.env"))), 0o600);
}

#[test]
fn torn_envelope_is_corrupt_and_quarantined() {
    let dir = TempDir::new("torn");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"x\r\n")).unwrap();
    let path = spool.message_path(&id);
    let bytes = fs::read(&path).unwrap();
    // Cut inside the envelope head, and inside the trailer line.
    let head_length = envfile::head_length(&bytes).unwrap();
    for cut in [head_length / 2, head_length - 2] {
        fs::write(&path, &bytes[..cut]).unwrap();
        assert!(matches!(spool.load(&id), Err(QueueError::Corrupt { .. })));
    }
    // An updated envelope that is torn is corrupt too.
    fs::write(&path, &bytes).unwrap();
    let message = spool.load(&id).unwrap();
    spool.update(&id, &message).unwrap();
    let env = spool.dir().join(format!("{id}.env"));
    let env_bytes = fs::read(&env).unwrap();
    fs::write(&env, &env_bytes[..env_bytes.len() / 2]).unwrap();
    assert!(matches!(spool.load(&id), Err(QueueError::Corrupt { .. })));

    spool.quarantine(&id).unwrap();
    assert!(spool.list().unwrap().is_empty());
    let corrupt = spool.dir().join("corrupt");
    assert!(corrupt.join(format!("{id}.env")).exists());
    assert!(corrupt.join(format!("{id}.msg")).exists());
}

#[test]
fn truncated_or_altered_message_is_corrupt() {
    let dir = TempDir::new("torn-msg");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"hello world\r\n")).unwrap();
    let path = spool.message_path(&id);
    let mut bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
    assert!(matches!(spool.load(&id), Err(QueueError::Corrupt { .. })));
    let last = bytes.len() - 3;
    bytes[last] = b'W';
    fs::write(&path, &bytes).unwrap();
    assert!(spool.load(&id).is_ok(), "length matches");
    // The spool that wrote the file trusts its bytes; any other reads the
    // message through and checks its digest (after a restart, the tools).
    assert!(spool.read_message(&id).is_ok());
    let reopened = Spool::attach(dir.path(), "localhost").unwrap();
    assert!(matches!(
        reopened.read_message(&id),
        Err(QueueError::Corrupt { .. })
    ));
}

#[test]
fn reopen_finds_every_message_and_cleans_debris() {
    let dir = TempDir::new("reopen");
    let mut ids = Vec::new();
    {
        let spool = Spool::open(dir.path()).unwrap();
        for i in 0..5 {
            ids.push(
                spool
                    .store(&new_message(format!("m{i}\r\n").as_bytes()))
                    .unwrap(),
            );
        }
        let message = spool.load(&ids[1]).unwrap();
        spool.update(&ids[1], &message).unwrap();
    }
    let queue = dir.path().join("queue");
    // Debris of a crash: temp files (never acknowledged, or an update
    // that did not finish) and the state of a message whose removal was
    // cut short.
    fs::write(queue.join("0000000000000001.msg.tmp"), b"x").unwrap();
    fs::write(queue.join("0000000000000001.env.update.tmp"), b"x").unwrap();
    being_written(&queue.join("0000000000000002.msg"));
    fs::copy(
        queue.join(format!("{}.env", ids[1])),
        queue.join("0000000000000003.env"),
    )
    .unwrap();
    let spool = Spool::open(dir.path()).unwrap();
    assert_eq!(spool.list().unwrap(), ids);
    for id in &ids {
        spool.load(id).unwrap();
    }
    let mut left: Vec<String> = fs::read_dir(&queue)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    let mut want: Vec<String> = ids.iter().map(|id| format!("{id}.msg")).collect();
    want.push(format!("{}.env", ids[1]));
    want.sort();
    assert_eq!(left, want);
}

#[test]
fn ids_after_a_restart_sort_after_those_on_disk() {
    let dir = TempDir::new("ids");
    let queue = dir.path().join("queue");
    let future = "ZZZZZZZZZ0000000";
    {
        let spool = Spool::open(dir.path()).unwrap();
        let id = spool.store(&new_message(b"x\r\n")).unwrap();
        // As if made by a run whose clock was far ahead.
        fs::rename(
            queue.join(format!("{id}.msg")),
            queue.join(format!("{future}.msg")),
        )
        .unwrap();
    }
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"y\r\n")).unwrap();
    assert!(id.as_str() > future, "{id}");
}

/// A message file as the spool leaves it while it is being written.
fn being_written(path: &std::path::Path) {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(WRITING_MODE)
        .open(path)
        .unwrap();
    std::io::Write::write_all(&mut file, b"in flight").unwrap();
}

#[test]
fn attach_leaves_files_in_flight_alone_and_lists_only_finished_messages() {
    let dir = TempDir::new("attach");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"x\r\n")).unwrap();
    let tmp = spool.dir().join("0000000000000001.env.update.tmp");
    fs::write(&tmp, b"in flight").unwrap();
    let writing = spool.dir().join("0000000000000002.msg");
    being_written(&writing);
    let attached = Spool::attach(dir.path(), "h").unwrap();
    assert!(tmp.exists());
    assert!(writing.exists());
    assert_eq!(attached.list().unwrap(), vec![id.clone()]);
    assert_eq!(spool.list().unwrap(), vec![id]);
    // Named by hand, it is still no message: not shown, not deleted.
    let in_flight: QueueId = "0000000000000002".parse().unwrap();
    assert!(matches!(
        attached.load(&in_flight),
        Err(QueueError::Invalid { .. })
    ));
}

#[test]
fn a_stored_message_file_is_finished_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("finished");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"x\r\n")).unwrap();
    let mode = fs::metadata(spool.message_path(&id))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, FINISHED_MODE);
}

#[test]
fn update_and_remove() {
    let dir = TempDir::new("update");
    let spool = Spool::open(dir.path()).unwrap();
    let id = spool.store(&new_message(b"x\r\n")).unwrap();
    let mut message = spool.load(&id).unwrap();
    message.recipients[0].state = RecipientState::Delivered { relay: None };
    message.recipients[1].state = RecipientState::Deferred {
        last: Failure::Local {
            status: crate::proto::reply::Enhanced(4, 4, 1),
            text: "No answer from host".into(),
        },
        attempts: 1,
    };
    message.attempts = 1;
    message.next_attempt = 1_900_000_000;
    spool.update(&id, &message).unwrap();
    assert_eq!(spool.load(&id).unwrap(), message);
    assert!(!spool.dir().join(format!("{id}.env.update.tmp")).exists());

    let mut wrong = message.clone();
    wrong.recipients.clear();
    assert!(matches!(
        spool.update(&id, &wrong),
        Err(QueueError::Invalid { .. })
    ));

    spool.remove(&id).unwrap();
    assert!(spool.list().unwrap().is_empty());
    assert!(!spool.message_path(&id).exists());
    // A removed message is not brought back by a late update.
    assert!(spool.update(&id, &message).is_err());
    assert!(spool.list().unwrap().is_empty());
}

#[test]
fn bad_ids_never_become_paths() {
    // The spool takes only a `QueueId`, and no such text is one.
    for id in ["../../etc/passwd", "", "0123456789abcdef"] {
        assert_eq!(id.parse::<QueueId>(), Err(InvalidQueueId(id.into())));
    }
}

#[test]
fn disk_full_maps_to_no_space() {
    let cases = [
        (io::Error::from_raw_os_error(ENOSPC), EnqueueError::NoSpace),
        (io::Error::from_raw_os_error(EDQUOT), EnqueueError::NoSpace),
        (io::Error::from_raw_os_error(5), EnqueueError::Failed),
        (io::Error::other("x"), EnqueueError::Failed),
    ];
    for (source, want) in cases {
        let error = QueueError::Io {
            path: PathBuf::from("q"),
            source,
        };
        assert_eq!(error.as_enqueue_error(), want);
    }
    let corrupt = QueueError::Corrupt {
        path: PathBuf::from("q"),
        reason: "r".into(),
    };
    assert_eq!(corrupt.as_enqueue_error(), EnqueueError::Failed);
}

#[test]
fn store_failure_leaves_nothing_behind() {
    let dir = TempDir::new("fail");
    let spool = Spool::open(dir.path()).unwrap();
    let mut message = new_message(b"x\r\n");
    message.envelope.recipients.clear();
    assert!(spool.store(&message).is_err());
    assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 0);
}

#[test]
fn missing_fields_follow_the_received_field_and_count_in_the_checksum() {
    use crate::proto::envelope::MissingFields;
    let dir = TempDir::new("missing-fields");
    let spool = Spool::open_with_hostname(dir.path(), "mail.example.org").unwrap();
    let writer = SpoolWriter::start(Arc::clone(&spool));
    let body = b"Subject: backup done\r\n\r\nAll good.\r\n";
    let mut new = new_message(body);
    new.missing = MissingFields {
        message_id: true,
        date: true,
    };
    let whole = spool.store(&new).unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let streamed = writer.start_message(&new).unwrap();
    writer.submit_streamed(streamed, Box::new(move |r| tx.send(r).unwrap()));
    let streamed = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .unwrap()
        .unwrap();
    // A spool that did not write them checks their length and checksum.
    let reader = Spool::attach(dir.path(), "mail.example.org").unwrap();
    for id in [whole, streamed] {
        let (queued, stored) = reader.load_with_message(&id).unwrap();
        let message = stored.head(usize::MAX).unwrap();
        assert_eq!(queued.message_length, message.len() as u64);
        let text = String::from_utf8(message).unwrap();
        let added = text.split_once(";\r\n\t").unwrap().1;
        let date = rfc5322_date(queued.arrival);
        assert_eq!(
            added,
            format!(
                "{date}\r\nMessage-ID: <{id}@mail.example.org>\r\nDate: {date}\r\n\
                 Subject: backup done\r\n\r\nAll good.\r\n"
            )
        );
    }
}

#[test]
fn retire_takes_the_message_and_its_recorded_state() {
    let dir = TempDir::new("retire");
    let spool = Spool::open(dir.path()).unwrap();
    let plain = spool.store(&new_message(b"x\r\n")).unwrap();
    let deferred = spool.store(&new_message(b"y\r\n")).unwrap();
    let mut message = spool.load(&deferred).unwrap();
    message.attempts = 1;
    spool.update(&deferred, &message).unwrap();
    spool.retire(&plain).unwrap();
    spool.retire(&deferred).unwrap();
    assert!(spool.list().unwrap().is_empty());
    // What is left are the two files, emptied and kept for new messages.
    let kept = kept_files(&spool);
    assert_eq!(kept.len(), 2);
    for path in kept {
        let bytes = fs::read(&path).unwrap();
        assert!(!bytes.is_empty() && bytes.iter().all(|&b| b == 0));
        assert_eq!(mode(&path), 0o600);
    }
    // A message already gone is no error.
    spool.retire(&plain).unwrap();
}

/// The emptied files the spool keeps for new messages.
fn kept_files(spool: &Spool) -> Vec<PathBuf> {
    fs::read_dir(spool.dir())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .filter(|path| recycled::is_free_file(&path.file_name().unwrap().to_string_lossy()))
        .collect()
}

fn inode(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fs::metadata(path).unwrap().ino()
}

#[test]
fn a_delivered_file_is_reused_for_the_next_message_whole_and_exact() {
    let dir = TempDir::new("reuse");
    let spool = Spool::open(dir.path()).unwrap();
    let long = spool
        .store(&new_message(&b"long line\r\n".repeat(300)))
        .unwrap();
    spool.retire(&long).unwrap();
    let [kept] = kept_files(&spool).try_into().unwrap();
    let kept_inode = inode(&kept);
    for body in [&b"short\r\n"[..], &b"longer than that one\r\n".repeat(400)] {
        let id = spool.store(&new_message(body)).unwrap();
        assert_eq!(inode(&spool.message_path(&id)), kept_inode);
        assert!(kept_files(&spool).is_empty());
        assert_eq!(mode(&spool.message_path(&id)), 0o600);
        // Another spool checks its length and checksum: nothing of the
        // longer message before it is left, and nothing is missing.
        let reader = Spool::attach(dir.path(), "localhost").unwrap();
        let (queued, stored) = reader.load_with_message(&id).unwrap();
        let message = stored.head(usize::MAX).unwrap();
        assert!(message.ends_with(body));
        assert_eq!(queued.message_length, message.len() as u64);
        spool.retire(&id).unwrap();
    }
    assert_eq!(spool.list().unwrap(), Vec::<QueueId>::new());
}

#[test]
fn long_files_are_removed_and_few_are_kept() {
    let dir = TempDir::new("reuse-limits");
    let spool = Spool::open(dir.path()).unwrap();
    let long = vec![b'x'; recycled::MAX_FILE_LENGTH as usize];
    let id = spool.store(&new_message(&long)).unwrap();
    spool.retire(&id).unwrap();
    assert_eq!(fs::read_dir(spool.dir()).unwrap().count(), 0);
    let ids: Vec<QueueId> = (0..recycled::MAX_FILES + 3)
        .map(|i| {
            spool
                .store(&new_message(format!("{i}\r\n").as_bytes()))
                .unwrap()
        })
        .collect();
    for id in &ids {
        spool.retire(id).unwrap();
    }
    assert_eq!(kept_files(&spool).len(), recycled::MAX_FILES);
    assert_eq!(
        fs::read_dir(spool.dir()).unwrap().count(),
        recycled::MAX_FILES
    );
}

#[test]
fn start_up_removes_the_kept_files() {
    let dir = TempDir::new("reuse-restart");
    let spool = Spool::open(dir.path()).unwrap();
    let delivered = spool.store(&new_message(b"x\r\n")).unwrap();
    let waiting = spool.store(&new_message(b"y\r\n")).unwrap();
    spool.retire(&delivered).unwrap();
    assert_eq!(kept_files(&spool).len(), 1);
    drop(spool);
    let spool = Spool::open(dir.path()).unwrap();
    assert!(kept_files(&spool).is_empty());
    assert_eq!(spool.list().unwrap(), vec![waiting]);
}
