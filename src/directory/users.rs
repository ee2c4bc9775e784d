//! The users file and the table of users in force.
//!
//! One `address:hash` per line, `#` comments and blank lines ignored;
//! hashes are `$6$`, `$2y$`/`$2b$` or `$argon2id$` (checked when the file is
//! read, verified by `auth`). Addresses compare without regard to case
//! ([`lookup_key`]), so two lines that differ only in case are refused; a
//! user's mailbox is named by the address as the file writes it (domain
//! lowercased). [`UserTable`] is the copy in force, which SIGHUP re-reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::auth::{hash_password, StoredHash, StoredHashes};
use crate::proto::address::lookup_key;

/// Errors loading the users file.
#[derive(Debug)]
pub enum UsersError {
    /// The file could not be read.
    Io {
        /// The users file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line is not `address:hash` with a supported hash.
    BadLine {
        /// The users file.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
}

impl std::fmt::Display for UsersError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UsersError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            UsersError::BadLine { path, line, reason } => {
                write!(f, "{}:{line}: {reason}", path.display())
            }
        }
    }
}

impl std::error::Error for UsersError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UsersError::Io { source, .. } => Some(source),
            UsersError::BadLine { .. } => None,
        }
    }
}

/// One `address:hash` line for the users file, hashing `password` as
/// `$6$` (what `outpost passwd` prints).
pub fn users_file_line(address: &str, password: &str) -> String {
    format!("{address}:{}", hash_password(password))
}

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The address as the users file writes it, domain lowercased: the
    /// name of its mailbox.
    pub address: String,
    /// The verified-form hash.
    pub hash: StoredHash,
}

/// The users of one users file, in file order, indexed by
/// [`lookup_key`].
#[derive(Debug, Default)]
pub struct Users {
    users: Vec<User>,
    index: HashMap<String, usize>,
}

impl Users {
    /// Builds the table from `(line, address, hash)` entries; `path` and
    /// the 1-based line numbers are for error messages.
    pub fn build(entries: Vec<(usize, String, String)>, path: &Path) -> Result<Users, UsersError> {
        let mut table = Users::default();
        let mut lines: HashMap<String, usize> = HashMap::new();
        for (line, address, hash) in entries {
            let bad = |reason: String| UsersError::BadLine {
                path: path.to_path_buf(),
                line,
                reason,
            };
            if !is_plausible_address(&address) {
                return Err(bad(format!("{address:?} is not an address (local@domain)")));
            }
            let hash = StoredHash::parse(&hash).map_err(bad)?;
            let address = lowercase_domain(&address);
            let key = lookup_key(&address);
            if let Some(first) = lines.get(&key) {
                return Err(bad(format!(
                    "{address} is already on line {first} (addresses match without regard to case)"
                )));
            }
            lines.insert(key.clone(), line);
            table.index.insert(key, table.users.len());
            table.users.push(User { address, hash });
        }
        Ok(table)
    }

    /// Parses the text of a users file.
    pub fn parse(text: &str, path: &Path) -> Result<Users, UsersError> {
        // Windows Notepad starts a UTF-8 file with a byte-order mark; left
        // in, it would become part of the first user's address.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            // Tolerate CRLF files and trailing blanks from editors.
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Hashes never contain ':', so the last one separates them.
            let Some((address, hash)) = line.rsplit_once(':') else {
                return Err(UsersError::BadLine {
                    path: path.to_path_buf(),
                    line: index + 1,
                    reason: "expected address:hash".into(),
                });
            };
            entries.push((
                index + 1,
                address.trim().to_string(),
                hash.trim().to_string(),
            ));
        }
        Users::build(entries, path)
    }

    /// The user with `address` (in any case).
    pub fn get(&self, address: &str) -> Option<&User> {
        self.index
            .get(&lookup_key(address))
            .map(|&i| &self.users[i])
    }

    /// All users, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }

    /// Reads and parses the users file at `path`.
    pub fn read(path: &Path) -> Result<Users, UsersError> {
        let text = std::fs::read_to_string(path).map_err(|source| UsersError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Users::parse(&text, path)
    }
}

/// The users in force, shared by the sessions (who has a mailbox), the
/// password verifiers (whose hash to check) and delivery (whose mailbox it
/// is).
#[derive(Debug)]
pub struct UserTable {
    /// The users file, for [`UserTable::reload`]; `None` when built from a
    /// list.
    path: Option<PathBuf>,
    current: RwLock<Users>,
}

impl UserTable {
    /// Loads the users file.
    pub fn load(path: &Path) -> Result<UserTable, UsersError> {
        Ok(UserTable {
            path: Some(path.to_path_buf()),
            current: RwLock::new(Users::read(path)?),
        })
    }

    /// A table of `(address, hash)` pairs that is not read from a file
    /// (reload keeps it).
    pub fn from_list(users: Vec<(String, String)>) -> Result<UserTable, UsersError> {
        let entries = users
            .into_iter()
            .enumerate()
            .map(|(i, (address, hash))| (i + 1, address, hash));
        let users = Users::build(entries.collect(), Path::new("<users list>"))?;
        Ok(UserTable {
            path: None,
            current: RwLock::new(users),
        })
    }

    /// Re-reads the users file (SIGHUP). On error the old table stays in
    /// force. Without a file it does nothing.
    pub fn reload(&self) -> Result<(), UsersError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        let users = Users::read(path)?;
        let count = users.users().len();
        *self.current.write() = users;
        log::info!("auth: reloaded {} ({count} users)", path.display());
        Ok(())
    }

    /// How many users are in force.
    pub fn len(&self) -> usize {
        self.current.read().users().len()
    }

    /// No user is in force.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Is `address` a user (compared without regard to case)?
    pub fn user_exists(&self, address: &str) -> bool {
        self.current.read().get(address).is_some()
    }

    /// The users whose address is in `domain` (any case), in file order.
    pub fn users_for_domain(&self, domain: &str) -> Vec<String> {
        let domain = domain.to_lowercase();
        self.current
            .read()
            .users()
            .iter()
            .filter(|u| u.address.rsplit_once('@').is_some_and(|(_, d)| d == domain))
            .map(|u| u.address.clone())
            .collect()
    }

    /// The first user of `domain` in file order (where `postmaster@` goes
    /// unless aliased).
    pub fn first_user(&self, domain: &str) -> Option<String> {
        self.users_for_domain(domain).into_iter().next()
    }

    /// The first user of the file, whatever its domain.
    pub fn first_of_all(&self) -> Option<String> {
        self.current
            .read()
            .users()
            .first()
            .map(|u| u.address.clone())
    }

    /// The user the mailbox `address` (in any case) belongs to, as the
    /// users file writes it: the name of its Maildir.
    pub fn mailbox_owner(&self, address: &str) -> Option<String> {
        self.current.read().get(address).map(|u| u.address.clone())
    }
}

impl StoredHashes for UserTable {
    fn stored_hash(&self, user: &str) -> Option<StoredHash> {
        self.current.read().get(user).map(|u| u.hash.clone())
    }

    fn sample_hash(&self) -> Option<StoredHash> {
        let users = self.current.read();
        users.users().first().map(|u| u.hash.clone())
    }
}

/// `local@DOMAIN` → `local@domain`; the local part keeps its case.
fn lowercase_domain(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => format!("{local}@{}", domain.to_lowercase()),
        None => address.to_string(),
    }
}

fn is_plausible_address(address: &str) -> bool {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !address.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    #[test]
    fn parses_comments_blanks_and_crlf() {
        let text =
            format!("# users\r\n\r\nAlice@Example.ORG:{HASH}\r\n  \nbob@example.org:{HASH}  \n");
        let table = Users::parse(&text, Path::new("users")).unwrap();
        let names: Vec<_> = table.users().iter().map(|u| u.address.as_str()).collect();
        assert_eq!(names, ["Alice@example.org", "bob@example.org"]);
        for address in [
            "Alice@EXAMPLE.org",
            "alice@example.org",
            "ALICE@example.ORG",
        ] {
            let user = table.get(address).map(|u| u.address.as_str());
            assert_eq!(user, Some("Alice@example.org"), "{address}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_address() {
        let text = format!("\u{feff}alice@example.org:{HASH}\n");
        let table = Users::parse(&text, Path::new("users")).unwrap();
        assert!(table.get("alice@example.org").is_some());
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases = [
            (format!("ok@example.org:{HASH}\nno-colon\n"), 2),
            (format!("\n\nnot-an-address:{HASH}\n"), 3),
            ("a@example.org:$1$md5$x\n".to_string(), 1),
            (format!("a@example.org:{HASH}\na@EXAMPLE.ORG:{HASH}\n"), 2),
            (
                format!("Alice@example.org:{HASH}\n# x\nalice@example.org:{HASH}\n"),
                3,
            ),
            (format!("@example.org:{HASH}\n"), 1),
            (format!("a b@example.org:{HASH}\n"), 1),
        ];
        for (text, want) in cases {
            match Users::parse(&text, Path::new("users")) {
                Err(UsersError::BadLine { line, .. }) => assert_eq!(line, want, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn addresses_differing_only_in_case_are_refused_with_file_and_line() {
        let text =
            format!("alice@example.org:{HASH}\nbob@example.org:{HASH}\nAlice@Example.org:{HASH}\n");
        let error = Users::parse(&text, Path::new("/etc/outpost/users")).unwrap_err();
        assert_eq!(
            error.to_string(),
            "/etc/outpost/users:3: Alice@example.org is already on line 1 \
             (addresses match without regard to case)"
        );
    }

    #[test]
    fn directory_questions() {
        let table = UserTable::from_list(vec![
            ("alice@Example.org".into(), HASH.into()),
            ("bob@example.org".into(), HASH.into()),
            ("carol@example.net".into(), HASH.into()),
        ])
        .unwrap();
        assert!(table.user_exists("alice@EXAMPLE.org"));
        assert!(table.user_exists("ALICE@example.org"));
        assert_eq!(
            table.users_for_domain("EXAMPLE.ORG"),
            ["alice@example.org", "bob@example.org"]
        );
        assert_eq!(
            table.first_user("example.net").as_deref(),
            Some("carol@example.net")
        );
        assert_eq!(table.first_user("example.com"), None);
        assert_eq!(table.first_of_all().as_deref(), Some("alice@example.org"));
        for (address, want) in [
            ("alice@example.org", Some("alice@example.org")),
            ("alice@EXAMPLE.org", Some("alice@example.org")),
            ("Alice@example.org", Some("alice@example.org")),
            ("BOB@Example.Org", Some("bob@example.org")),
            ("dave@example.org", None),
            ("no-at-sign", None),
        ] {
            assert_eq!(table.mailbox_owner(address).as_deref(), want, "{address}");
        }
    }

    #[test]
    fn load_and_reload_the_users_file() {
        let dir = TempDir::new("users-reload");
        let path = dir.path().join("users");
        std::fs::write(&path, format!("# test\na@example.org:{HASH}\n")).unwrap();
        let table = UserTable::load(&path).unwrap();
        assert!(table.user_exists("a@example.org"));
        std::fs::write(&path, format!("b@example.org:{HASH}\n")).unwrap();
        table.reload().unwrap();
        assert!(!table.user_exists("a@example.org"));
        assert!(table.user_exists("b@example.org"));
        // A broken file leaves the old table in force.
        std::fs::write(&path, "broken line\n").unwrap();
        assert!(matches!(
            table.reload(),
            Err(UsersError::BadLine { line: 1, .. })
        ));
        assert!(table.user_exists("b@example.org"));
        drop(dir);
        assert!(matches!(UserTable::load(&path), Err(UsersError::Io { .. })));
        // A table from a list has nothing to re-read.
        let listed = UserTable::from_list(vec![("c@example.org".into(), HASH.into())]).unwrap();
        listed.reload().unwrap();
        assert!(listed.user_exists("c@example.org"));
    }
}
