//! The users file: one `address:hash` per line, `#` comments and blank
//! lines ignored. Addresses compare with the domain lowercased (RFC 5321
//! §2.4: domains are case-insensitive; local parts may not be).

use std::collections::HashMap;
use std::path::Path;

use super::hash::StoredHash;
use super::AuthError;

/// One user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The address with its domain lowercased.
    pub address: String,
    /// The verified-form hash.
    pub hash: StoredHash,
}

/// The users in file order, indexed by normalised address.
#[derive(Debug, Default)]
pub struct UserTable {
    users: Vec<User>,
    index: HashMap<String, usize>,
}

impl UserTable {
    /// Builds the table from `(address, hash)` pairs; `path` and the
    /// 1-based line numbers in `lines` are for error messages.
    pub fn build(
        entries: Vec<(usize, String, String)>,
        path: &Path,
    ) -> Result<UserTable, AuthError> {
        let mut table = UserTable::default();
        for (line, address, hash) in entries {
            let bad = |reason: String| AuthError::BadLine {
                path: path.to_path_buf(),
                line,
                reason,
            };
            if !is_plausible_address(&address) {
                return Err(bad(format!("{address:?} is not an address (local@domain)")));
            }
            let hash = StoredHash::parse(&hash).map_err(bad)?;
            let address = normalize(&address);
            if table.index.contains_key(&address) {
                return Err(bad(format!("{address} is listed twice")));
            }
            table.index.insert(address.clone(), table.users.len());
            table.users.push(User { address, hash });
        }
        Ok(table)
    }

    /// Parses the text of a users file.
    pub fn parse(text: &str, path: &Path) -> Result<UserTable, AuthError> {
        let mut entries = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            // Tolerate CRLF files and trailing blanks from editors.
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Hashes never contain ':', so the last one separates them.
            let Some((address, hash)) = line.rsplit_once(':') else {
                return Err(AuthError::BadLine {
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
        UserTable::build(entries, path)
    }

    /// The user with `address` (any case of the domain).
    pub fn get(&self, address: &str) -> Option<&User> {
        self.index.get(&normalize(address)).map(|&i| &self.users[i])
    }

    /// All users, in file order.
    pub fn users(&self) -> &[User] {
        &self.users
    }
}

/// `local@DOMAIN` → `local@domain`; the local part keeps its case.
pub fn normalize(address: &str) -> String {
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

    const HASH: &str = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1";

    #[test]
    fn parses_comments_blanks_and_crlf() {
        let text =
            format!("# users\r\n\r\nAlice@Example.ORG:{HASH}\r\n  \nbob@example.org:{HASH}  \n");
        let table = UserTable::parse(&text, Path::new("users")).unwrap();
        let names: Vec<_> = table.users().iter().map(|u| u.address.as_str()).collect();
        assert_eq!(names, ["Alice@example.org", "bob@example.org"]);
        assert!(table.get("Alice@EXAMPLE.org").is_some());
        assert!(
            table.get("alice@example.org").is_none(),
            "local part keeps its case"
        );
    }

    #[test]
    fn bad_lines_name_their_number() {
        let cases = [
            (format!("ok@example.org:{HASH}\nno-colon\n"), 2),
            (format!("\n\nnot-an-address:{HASH}\n"), 3),
            ("a@example.org:$1$md5$x\n".to_string(), 1),
            (format!("a@example.org:{HASH}\na@EXAMPLE.ORG:{HASH}\n"), 2),
            (format!("@example.org:{HASH}\n"), 1),
            (format!("a b@example.org:{HASH}\n"), 1),
        ];
        for (text, want) in cases {
            match UserTable::parse(&text, Path::new("users")) {
                Err(AuthError::BadLine { line, .. }) => assert_eq!(line, want, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
