//! `outpost queue list|show ID|flush|delete ID [--data-dir DIR]`: the
//! operator's view of the spool, safe while the server runs. The tools open
//! the spool with [`Spool::attach`] (no start-up clean-up, which would
//! remove the files a live server is still writing) and reach a running
//! manager only through the files: `flush` sets `next-attempt` to 0 and
//! creates the flush request file (see [`crate::delivery::manager`]).
//!
//! `delete` writes a `removed by outpost queue delete` line (see
//! [`crate::maillog`]) to standard error.
//!
//! Exit codes: 0 done, 1 no such message (or the spool cannot be read),
//! 2 usage.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::delivery::manager::request_flush;
use crate::maillog::{Line, Removed, RemovedBy};
use crate::queue::{QueueError, QueueId, QueuedMessage, RecipientState, Spool};

/// The default data directory, as for the server.
pub const DEFAULT_DATA_DIR: &str = "outpost-data";

const USAGE: &str = "usage: outpost queue list|show ID|flush|delete ID [--data-dir DIR]";

/// Runs `outpost queue ARGS` (the words after `queue`), printing to
/// stdout/stderr; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    super::init_logging();
    let stdout = std::io::stdout();
    let stderr = std::io::stderr();
    run_with(args, &mut stdout.lock(), &mut stderr.lock())
}

/// [`run`] with the output streams given (for tests).
pub fn run_with(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut data_dir = PathBuf::from(DEFAULT_DATA_DIR);
    let mut words = Vec::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--data-dir" {
            match iter.next() {
                Some(dir) => data_dir = PathBuf::from(dir),
                None => return usage(err),
            }
        } else if let Some(dir) = arg.strip_prefix("--data-dir=") {
            data_dir = PathBuf::from(dir);
        } else if arg == "-h" || arg == "--help" {
            let _ = writeln!(out, "{USAGE}");
            return 0;
        } else {
            words.push(arg.as_str());
        }
    }
    if !matches!(
        words.as_slice(),
        ["list"] | ["show", _] | ["flush"] | ["delete", _]
    ) {
        return usage(err);
    }
    let spool = match open(&data_dir, err) {
        Some(spool) => spool,
        None => return 1,
    };
    match words.as_slice() {
        ["show", id] => queue_id(id, err).map_or(1, |id| show(&spool, &id, out, err)),
        ["flush"] => flush(&spool, out, err),
        ["delete", id] => queue_id(id, err).map_or(1, |id| delete(&spool, &id, out, err)),
        _ => list(&spool, out, err),
    }
}

/// The queue id an argument names; an error message if it names none (it
/// never becomes a path).
fn queue_id(text: &str, err: &mut dyn Write) -> Option<QueueId> {
    match text.parse() {
        Ok(id) => Some(id),
        Err(e) => {
            let _ = writeln!(err, "{text}: {e}");
            None
        }
    }
}

fn usage(err: &mut dyn Write) -> i32 {
    let _ = writeln!(err, "{USAGE}");
    2
}

fn open(data_dir: &Path, err: &mut dyn Write) -> Option<Arc<Spool>> {
    if !data_dir.join("queue").is_dir() {
        let _ = writeln!(err, "no queue under {}", data_dir.display());
        return None;
    }
    // Root on a `--user` server's queue: the files it rewrites (`flush`)
    // must stay readable by the server.
    if let Err(e) = super::privileges::act_as_owner_of(&data_dir.join("queue")) {
        let _ = writeln!(err, "{e}");
        return None;
    }
    match Spool::attach(data_dir, "localhost") {
        Ok(spool) => Some(spool),
        Err(e) => {
            let _ = writeln!(err, "{e}");
            None
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// `3d4h`, `2h5m`, `4m10s`, `7s`.
fn age(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d{h}h")
    } else if h > 0 {
        format!("{h}h{m}m")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

fn state_text(state: &RecipientState) -> String {
    match state {
        RecipientState::Pending => "pending".into(),
        RecipientState::Delivered { .. } => "delivered".into(),
        RecipientState::Failed(failure) => format!("failed: {failure}"),
        RecipientState::Deferred { last, attempts } => {
            format!("deferred after {attempts} attempt(s): {last}")
        }
    }
}

fn sender_text(message: &QueuedMessage) -> String {
    if message.mail_from.sender.is_empty() {
        "<>".into()
    } else {
        format!("<{}>", message.mail_from.sender)
    }
}

fn list(spool: &Spool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let ids = match spool.list() {
        Ok(ids) => ids,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
    };
    let now = now();
    let mut shown = 0;
    for id in ids {
        let message = match spool.load(&id) {
            Ok(m) => m,
            Err(QueueError::Corrupt { reason, .. }) => {
                let _ = writeln!(out, "{id}  (corrupt: {reason})");
                continue;
            }
            // Delivered or deleted since the listing.
            Err(_) => continue,
        };
        shown += 1;
        let next = if message.next_attempt > now {
            format!(", next try in {}", age(message.next_attempt - now))
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "{id}  age {}  {} bytes  from {}  attempts {}{next}",
            age(now.saturating_sub(message.arrival)),
            message.message_length,
            sender_text(&message),
            message.attempts
        );
        for entry in &message.recipients {
            let (rcpt, state) = (&entry.recipient, &entry.state);
            let _ = writeln!(out, "    to <{}>: {}", rcpt.address, state_text(state));
        }
    }
    if shown == 0 {
        let _ = writeln!(out, "the queue is empty");
    }
    0
}

fn load(spool: &Spool, id: &QueueId, err: &mut dyn Write) -> Option<QueuedMessage> {
    match spool.load(id) {
        Ok(m) => Some(m),
        Err(QueueError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            let _ = writeln!(err, "no message {id} in the queue");
            None
        }
        Err(e) => {
            let _ = writeln!(err, "{id}: {e}");
            None
        }
    }
}

fn show(spool: &Spool, id: &QueueId, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(message) = load(spool, id, err) else {
        return 1;
    };
    let now = now();
    let env = &message.mail_from;
    let _ = writeln!(out, "id:        {}", message.id);
    let _ = writeln!(
        out,
        "arrival:   {} ({} ago)",
        crate::proto::dsn::format_date(message.arrival),
        age(now.saturating_sub(message.arrival))
    );
    let _ = writeln!(out, "sender:    {}", sender_text(&message));
    match message.origin.client() {
        Some(client) => {
            let _ = writeln!(
                out,
                "client:    {} (helo {}, {}{})",
                client.client_ip,
                client.helo,
                client.protocol,
                client
                    .auth_user
                    .as_deref()
                    .map(|u| format!(", user {u}"))
                    .unwrap_or_default()
            );
        }
        None => {
            let _ = writeln!(out, "client:    none (a delivery report made here)");
        }
    }
    let _ = writeln!(out, "size:      {} bytes", message.message_length);
    if let Some(envid) = &env.envid {
        let _ = writeln!(out, "envid:     {envid}");
    }
    let _ = writeln!(out, "attempts:  {}", message.attempts);
    let next = if message.next_attempt <= now {
        "now".to_string()
    } else {
        format!(
            "{} (in {})",
            crate::proto::dsn::format_date(message.next_attempt),
            age(message.next_attempt - now)
        )
    };
    let _ = writeln!(out, "next try:  {next}");
    for entry in &message.recipients {
        let (rcpt, state) = (&entry.recipient, &entry.state);
        let _ = writeln!(out, "rcpt:      <{}> {}", rcpt.address, state_text(state));
    }
    let _ = writeln!(out);
    match spool.read_message(id) {
        Ok(bytes) => {
            let end = find_header_end(&bytes);
            let _ = out.write_all(&bytes[..end]);
        }
        Err(e) => {
            let _ = writeln!(err, "{id}: {e}");
            return 1;
        }
    }
    0
}

/// The length of the header section (up to and including the empty line).
fn find_header_end(message: &[u8]) -> usize {
    let mut start = 0;
    while start < message.len() {
        let end = memchr::memchr(b'\n', &message[start..]).map_or(message.len(), |i| start + i + 1);
        if &message[start..end] == b"\r\n" || &message[start..end] == b"\n" {
            return end;
        }
        start = end;
    }
    message.len()
}

fn flush(spool: &Spool, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let ids = match spool.list() {
        Ok(ids) => ids,
        Err(e) => {
            let _ = writeln!(err, "{e}");
            return 1;
        }
    };
    let mut count = 0;
    for id in ids {
        let Ok(mut message) = spool.load(&id) else {
            continue;
        };
        if message.next_attempt != 0 {
            message.next_attempt = 0;
            if let Err(e) = spool.update(&id, &message) {
                // Delivered meanwhile; nothing to flush.
                let _ = writeln!(err, "{id}: {e}");
                continue;
            }
        }
        count += 1;
    }
    if let Err(e) = request_flush(spool.dir()) {
        let _ = writeln!(err, "cannot ask the server to flush: {e}");
        return 1;
    }
    let _ = writeln!(out, "{count} message(s) will be tried now");
    0
}

/// Removes a message and says so in the mail log (on standard error):
/// who, which message, whose.
fn delete(spool: &Spool, id: &QueueId, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let Some(message) = load(spool, id, err) else {
        return 1;
    };
    match spool.remove(id) {
        Ok(()) => {
            let user = std::env::var("USER").or_else(|_| std::env::var("LOGNAME"));
            Removed {
                queue_id: id,
                by: RemovedBy::Operator {
                    user: user.as_deref().ok(),
                    sender: &message.mail_from.sender,
                    recipients: message.recipients.len(),
                },
            }
            .log();
            let _ = writeln!(out, "deleted {id}");
            0
        }
        Err(e) => {
            let _ = writeln!(err, "{id}: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    #[test]
    fn ages() {
        for (secs, want) in [
            (7, "7s"),
            (250, "4m10s"),
            (7500, "2h5m"),
            (3 * 86_400 + 4 * 3600, "3d4h"),
        ] {
            assert_eq!(age(secs), want);
        }
    }

    #[test]
    fn header_end() {
        assert_eq!(find_header_end(b"A: b\r\n\r\nbody"), 8);
        assert_eq!(find_header_end(b"A: b\r\n"), 6);
    }

    #[test]
    fn usage_errors() {
        let dir = TempDir::new("qcli");
        std::fs::create_dir_all(dir.path().join("queue")).unwrap();
        let d = dir.path().to_string_lossy().to_string();
        let run = |args: &[&str]| {
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            let (mut out, mut err) = (Vec::new(), Vec::new());
            run_with(&args, &mut out, &mut err)
        };
        assert_eq!(run(&["--data-dir", &d, "bogus"]), 2);
        assert_eq!(run(&["--data-dir", &d, "show"]), 2);
        assert_eq!(run(&["--data-dir"]), 2);
        assert_eq!(run(&["--data-dir", &d, "list"]), 0);
        assert_eq!(run(&["--data-dir", &d, "show", "0000000000000000"]), 1);
        assert_eq!(run(&["--data-dir", &d, "delete", "../../etc/passwd"]), 1);
        assert_eq!(run(&["list", "--data-dir", "/nonexistent/outpost"]), 1);
    }
}
