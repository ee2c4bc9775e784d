//! `outpost users add|passwd|delete ADDRESS` and `outpost users list`:
//! edit the users file and make the running server load it.
//!
//! An edit never leaves a half-written or invalid file: the new text must
//! parse as a users file, is written to a temporary file in the same
//! directory (same mode and owner as the old one), synced, renamed over the
//! old one, and the directory is synced. Comments and the order of the
//! other lines are kept. Then the server holding the data directory's lock
//! (see [`super::lock`]) gets SIGHUP, which re-reads the file.
//!
//! Exit codes: 0 done, 1 failed (no such user, already a user, I/O), 2 usage.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::lock::running_server;
use super::passwd::read_new_password;
use super::queue::DEFAULT_DATA_DIR;
use super::{EXIT_FAILURE, EXIT_USAGE};
use crate::directory::users::Users;
use crate::proto::address::lookup_key;

const USAGE: &str =
    "usage: outpost users add|passwd|delete ADDRESS | list   [--data-dir DIR] [--users FILE]\n\
\x20 The password (add, passwd) is asked twice on a terminal, else read from stdin.\n\
\x20 --data-dir DIR  the server's data directory [default: ./outpost-data]\n\
\x20 --users FILE    the users file [default: DATA-DIR/users]";

/// A change to the users file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edit<'a> {
    /// A new user with this `address:hash` line.
    Add(&'a str),
    /// The user's line gets this hash.
    Passwd(&'a str),
    /// The user's line goes.
    Delete,
}

/// Runs `outpost users ARGS`; returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let mut options = getopts::Options::new();
    options.optopt("", "data-dir", "the server's data directory", "DIR");
    options.optopt("", "users", "the users file", "FILE");
    options.optflag("h", "help", "show this help");
    let matches = match options.parse(args) {
        Ok(matches) => matches,
        Err(e) => {
            eprintln!("outpost users: {e}\n{USAGE}");
            return EXIT_USAGE;
        }
    };
    if matches.opt_present("help") {
        println!("{USAGE}");
        return 0;
    }
    let data_dir = PathBuf::from(
        matches
            .opt_str("data-dir")
            .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
    );
    let users = matches
        .opt_str("users")
        .map(PathBuf::from)
        .unwrap_or_else(|| data_dir.join("users"));
    let words: Vec<&str> = matches.free.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["list"] => list(&users),
        [command @ ("add" | "passwd" | "delete"), address] => {
            change(command, address, &users, &data_dir)
        }
        _ => {
            eprintln!("{USAGE}");
            return EXIT_USAGE;
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("outpost users: {e}");
            EXIT_FAILURE
        }
    }
}

fn list(users: &Path) -> Result<(), String> {
    let table = Users::read(users).map_err(|e| e.to_string())?;
    for user in table.users() {
        println!("{}", user.address);
    }
    Ok(())
}

/// `add`, `passwd` or `delete` `address` in the file `users`, then asks
/// the server on `data_dir` to reload.
fn change(command: &str, address: &str, users: &Path, data_dir: &Path) -> Result<(), String> {
    let valid = address
        .rsplit_once('@')
        .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && !address.contains(|c: char| c.is_whitespace() || c == ':');
    if !valid {
        return Err(format!("{address:?} is not an address local@domain"));
    }
    let old = match std::fs::read_to_string(users) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && command == "add" => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", users.display())),
    };
    // Checked before the password is asked for: the edit must be possible.
    let probe = match command {
        "add" => Edit::Add(""),
        "passwd" => Edit::Passwd(""),
        _ => Edit::Delete,
    };
    edit_text(&old, address, probe)?;
    let (line, hash);
    let edit = match command {
        "add" => {
            line = crate::directory::users_file_line(address, &read_new_password()?);
            Edit::Add(&line)
        }
        "passwd" => {
            hash = crate::auth::hash_password(&read_new_password()?);
            Edit::Passwd(&hash)
        }
        _ => Edit::Delete,
    };
    let new = edit_text(&old, address, edit)?;
    // Never write a file the server would refuse.
    Users::parse(&new, users).map_err(|e| format!("not changed: {e}"))?;
    write_atomically(users, &new).map_err(|e| format!("cannot write {}: {e}", users.display()))?;
    let done = match command {
        "add" => "added",
        "passwd" => "changed the password of",
        _ => "deleted",
    };
    println!("{done} {address} in {}", users.display());
    println!("{}", reload(data_dir));
    Ok(())
}

/// The users file `text` with `edit` applied to `address`'s line; other
/// lines, comments and blank lines stay as they are. An error when the
/// user exists (add) or does not (passwd, delete).
fn edit_text(text: &str, address: &str, edit: Edit) -> Result<String, String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let key = lookup_key(address);
    let mut out = String::with_capacity(text.len() + 128);
    let mut found = false;
    for raw in text.split_inclusive('\n') {
        let line = raw.trim();
        let listed = (!line.is_empty() && !line.starts_with('#'))
            .then(|| line.rsplit_once(':'))
            .flatten()
            .filter(|(listed, _)| lookup_key(listed.trim()) == key);
        let Some((listed, _)) = listed else {
            out.push_str(raw);
            continue;
        };
        found = true;
        match edit {
            Edit::Add(_) => {
                return Err(format!(
                    "{address} is already a user (outpost users passwd changes its password)"
                ))
            }
            Edit::Passwd(hash) => out.push_str(&format!("{}:{hash}\n", listed.trim())),
            Edit::Delete => {}
        }
    }
    match edit {
        Edit::Add(line) => {
            if !out.is_empty() && !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(line);
            out.push('\n');
        }
        _ if !found => return Err(format!("{address} is not a user")),
        _ => {}
    }
    Ok(out)
}

/// Replaces `path` with `text` so that a reader sees the old file or the
/// new one, never a mix: a temporary file in the same directory with the
/// old file's mode and owner (0600 for a new file), synced, renamed over
/// `path`; then the directory is synced.
fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let old = std::fs::metadata(path).ok();
    let mode = old.as_ref().map_or(0o600, |m| m.mode() & 0o7777);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(text.as_bytes())?;
        // The mode given at creation is narrowed by the umask: set it as it was.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some(old) = &old {
            // Root editing a file the server's user owns must leave it
            // readable by that user.
            std::os::unix::fs::fchown(&file, Some(old.uid()), Some(old.gid()))?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result?;
    File::open(dir)?.sync_all()
}

/// Asks the server holding `data_dir`'s lock to reload (SIGHUP); says what
/// happened.
fn reload(data_dir: &Path) -> String {
    let Some(pid) = running_server(data_dir) else {
        return format!(
            "no server is running on {}: the change takes effect at its next start",
            data_dir.display()
        );
    };
    let sent = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| std::io::Error::other("not a process id"))
        .and_then(|pid| {
            rustix::process::kill_process(pid, rustix::process::Signal::HUP).map_err(Into::into)
        });
    match sent {
        Ok(()) => format!("the server (pid {pid}) is reloading the users file"),
        Err(e) => format!(
            "could not signal the server (pid {pid}): {e}; run `kill -HUP {pid}` to load the change"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# staff\nalice@example.org:$6$a\n\nBob@Example.org:$6$b\n";

    #[test]
    fn edits_keep_the_other_lines() {
        let added = edit_text(
            FILE,
            "carol@example.org",
            Edit::Add("carol@example.org:$6$c"),
        );
        assert_eq!(added.unwrap(), format!("{FILE}carol@example.org:$6$c\n"));
        let added = edit_text("a@b:$6$a", "c@d", Edit::Add("c@d:$6$c")).unwrap();
        assert_eq!(added, "a@b:$6$a\nc@d:$6$c\n");
        let changed = edit_text(FILE, "bob@example.org", Edit::Passwd("$6$new")).unwrap();
        assert_eq!(
            changed,
            "# staff\nalice@example.org:$6$a\n\nBob@Example.org:$6$new\n"
        );
        let deleted = edit_text(FILE, "ALICE@example.org", Edit::Delete).unwrap();
        assert_eq!(deleted, "# staff\n\nBob@Example.org:$6$b\n");
        let from_bom = edit_text("\u{feff}a@b:$6$a\n", "a@b", Edit::Delete).unwrap();
        assert_eq!(from_bom, "");
    }

    #[test]
    fn edits_that_cannot_apply_are_refused() {
        let again = edit_text(FILE, "bob@example.org", Edit::Add("bob@example.org:x"));
        assert!(again.unwrap_err().contains("already a user"));
        let missing = edit_text(FILE, "carol@example.org", Edit::Delete);
        assert!(missing.unwrap_err().contains("is not a user"));
        let missing = edit_text(FILE, "carol@example.org", Edit::Passwd("x"));
        assert!(missing.unwrap_err().contains("is not a user"));
    }

    #[test]
    fn a_replaced_file_keeps_its_mode() {
        let dir = crate::test_fixtures::TempDir::new("users-write");
        let path = dir.path().join("users");
        std::fs::write(&path, "old\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        write_atomically(&path, "new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "new\n");
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o640);
        let fresh = dir.path().join("fresh");
        write_atomically(&fresh, "x\n").unwrap();
        assert_eq!(std::fs::metadata(&fresh).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "a temporary file was left: {names:?}");
    }
}
