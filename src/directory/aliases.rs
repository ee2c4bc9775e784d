//! The alias table (`--aliases FILE`) and its expansion.
//!
//! One alias a line, `alias@domain: target, target`, targets local or
//! remote addresses; `#` starts a comment; blank lines are ignored. Keys
//! compare without regard to case ([`lookup_key`]), as users do.
//!
//! `postmaster@<each local domain>` always exists (RFC 5321 §4.5.1): unless
//! the file aliases it, it goes where [`Postmasters`] says. `Postmaster`
//! without a domain is `postmaster@` the first local domain.
//!
//! Expansion is recursive with two guards: an address that is already on
//! the path being expanded is delivered as it is (so `bob@x: bob@x,
//! archive@x` keeps a copy for bob, and `a: b` plus `b: a` cannot loop),
//! and chains deeper than [`MAX_DEPTH`] or lists longer than
//! [`MAX_TARGETS`] are refused. Pure apart from loading the file;
//! [`AliasTable`] is the copy in force, which SIGHUP re-reads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use parking_lot::RwLock;

use crate::proto::address::lookup_key;

/// Nested aliases followed before giving up (Postfix's limit is 1000
/// levels of recursion; real tables rarely nest more than two or three).
pub const MAX_DEPTH: usize = 10;
/// Addresses one recipient may expand to.
pub const MAX_TARGETS: usize = 1000;

/// Errors of the alias table.
#[derive(Debug)]
pub enum AliasError {
    /// The file could not be read.
    Io {
        /// The alias file.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A line is not `alias@domain: target, ...`.
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line.
        reason: String,
    },
    /// Expansion went deeper than [`MAX_DEPTH`].
    TooDeep(String),
    /// Expansion gave more than [`MAX_TARGETS`] addresses.
    TooMany(String),
}

impl std::fmt::Display for AliasError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AliasError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            AliasError::Syntax { line, reason } => write!(f, "aliases line {line}: {reason}"),
            AliasError::TooDeep(a) => {
                write!(f, "aliases of {a} nest deeper than {MAX_DEPTH} levels")
            }
            AliasError::TooMany(a) => write!(f, "{a} expands to more than {MAX_TARGETS} addresses"),
        }
    }
}

impl std::error::Error for AliasError {}

/// The alias table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Aliases {
    map: HashMap<String, Vec<String>>,
}

impl Aliases {
    /// A table without aliases (postmaster still works).
    pub fn empty() -> Aliases {
        Aliases::default()
    }

    /// Reads and parses the alias file.
    pub fn load(path: &Path) -> Result<Aliases, AliasError> {
        let text = std::fs::read_to_string(path).map_err(|source| AliasError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Aliases::parse(&text)
    }

    /// Parses the text of an alias file. A second line for the same alias
    /// adds its targets to the first.
    pub fn parse(text: &str) -> Result<Aliases, AliasError> {
        // A byte-order mark (Windows Notepad) is not part of the first alias.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let syntax = |reason: &str| AliasError::Syntax {
                line: index + 1,
                reason: reason.to_string(),
            };
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let (alias, targets) = line
                .split_once(':')
                .ok_or_else(|| syntax("expected `alias@domain: target, target`"))?;
            let alias = alias.trim();
            if !is_address(alias) {
                return Err(syntax("the alias must be an address local@domain"));
            }
            let mut list = Vec::new();
            for target in targets.split(',').map(str::trim) {
                if target.is_empty() {
                    continue;
                }
                let target = target
                    .strip_prefix('<')
                    .and_then(|t| t.strip_suffix('>'))
                    .unwrap_or(target);
                if !is_address(target) {
                    return Err(syntax(&format!(
                        "{target:?} is not an address local@domain"
                    )));
                }
                list.push(target.to_string());
            }
            if list.is_empty() {
                return Err(syntax("an alias needs at least one target"));
            }
            map.entry(key(alias)).or_default().extend(list);
        }
        Ok(Aliases { map })
    }

    /// True when `address` is an alias (compared without regard to case).
    pub fn contains(&self, address: &str) -> bool {
        self.map.contains_key(&key(address))
    }

    /// How many aliases the table has.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when the file defined no aliases.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The final addresses `address` is delivered to, without duplicates,
    /// in the order found. An address that is no alias is its own result.
    /// `postmaster@` a local domain goes where `postmasters` says unless
    /// aliased.
    pub fn expand(
        &self,
        address: &str,
        postmasters: Postmasters<'_>,
    ) -> Result<Vec<String>, AliasError> {
        let mut out = Vec::new();
        let mut path = Vec::new();
        self.walk(address, postmasters, &mut path, &mut out, address)?;
        Ok(out)
    }

    fn walk(
        &self,
        address: &str,
        postmasters: Postmasters<'_>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
        origin: &str,
    ) -> Result<(), AliasError> {
        let k = key(address);
        let targets = if path.contains(&k) {
            None
        } else if let Some(list) = self.map.get(&k) {
            Some(list.clone())
        } else {
            postmasters
                .target(address)
                .filter(|t| key(t) != k)
                .map(|t| vec![t])
        };
        let Some(targets) = targets else {
            if !out.iter().any(|o: &String| key(o) == k) {
                if out.len() >= MAX_TARGETS {
                    return Err(AliasError::TooMany(origin.to_string()));
                }
                out.push(address.to_string());
            }
            return Ok(());
        };
        if path.len() >= MAX_DEPTH {
            return Err(AliasError::TooDeep(origin.to_string()));
        }
        path.push(k);
        for target in &targets {
            self.walk(target, postmasters, path, out, origin)?;
        }
        path.pop();
        Ok(())
    }
}

/// The alias table in force, shared by the sessions (which accept mail for
/// aliases of local domains) and delivery (which expands them).
#[derive(Debug)]
pub struct AliasTable {
    path: Option<PathBuf>,
    current: RwLock<Aliases>,
}

impl AliasTable {
    /// The table of `path` (`--aliases`), or an empty one without a file.
    pub fn load(path: Option<&Path>) -> Result<AliasTable, AliasError> {
        let current = match path {
            Some(path) => Aliases::load(path)?,
            None => Aliases::empty(),
        };
        Ok(AliasTable {
            path: path.map(Path::to_path_buf),
            current: RwLock::new(current),
        })
    }

    /// Re-reads the file and puts it in force; on error the old table
    /// stays. Returns how many aliases are in force (0 without a file).
    pub fn reload(&self) -> Result<usize, AliasError> {
        let Some(path) = &self.path else {
            return Ok(0);
        };
        let fresh = Aliases::load(path)?;
        let count = fresh.len();
        *self.current.write() = fresh;
        Ok(count)
    }

    /// A table of `aliases` that is not read from a file (reload keeps it).
    #[cfg(test)]
    pub fn fixed(aliases: Aliases) -> AliasTable {
        AliasTable {
            path: None,
            current: RwLock::new(aliases),
        }
    }

    /// See [`Aliases::contains`].
    pub fn contains(&self, address: &str) -> bool {
        self.current.read().contains(address)
    }

    /// See [`Aliases::expand`].
    pub fn expand(
        &self,
        address: &str,
        postmasters: Postmasters<'_>,
    ) -> Result<Vec<String>, AliasError> {
        self.current.read().expand(address, postmasters)
    }
}

/// RFC 5321 §4.5.1: `postmaster@` every local domain, and `Postmaster`
/// without a domain, reach a person unless the table aliases them.
#[derive(Clone, Copy)]
pub struct Postmasters<'a> {
    /// The domains delivered here; a bare `Postmaster` is the first one's.
    pub local_domains: &'a [String],
    /// The mailbox `postmaster@` a local domain reaches, if there is one.
    pub mailbox: &'a dyn Fn(&str) -> Option<String>,
}

impl Postmasters<'_> {
    /// Where `address` leads when it is a postmaster: the mailbox of
    /// `postmaster@` a local domain, `postmaster@` the first local domain
    /// for a bare `Postmaster`.
    fn target(&self, address: &str) -> Option<String> {
        let Some((local, domain)) = address.rsplit_once('@') else {
            let primary = self
                .local_domains
                .first()
                .filter(|_| is_postmaster(address))?;
            return Some(format!("postmaster@{primary}"));
        };
        let local_domain = self
            .local_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain));
        if !is_postmaster(local) || !local_domain {
            return None;
        }
        (self.mailbox)(domain)
    }
}

/// `postmaster` in any case.
fn is_postmaster(local: &str) -> bool {
    local.eq_ignore_ascii_case("postmaster")
}

/// The lookup form of an address.
fn key(address: &str) -> String {
    lookup_key(address)
}

/// `local@domain` with something on both sides and no spaces or controls.
fn is_address(text: &str) -> bool {
    match text.rsplit_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !text.chars().any(|c| c.is_whitespace() || c.is_control())
                && !text.contains([',', '<', '>'])
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::TempDir;

    fn mailbox(domain: &str) -> Option<String> {
        (domain.eq_ignore_ascii_case("example.org")).then(|| "alice@example.org".to_string())
    }

    /// `local` are the local domains; only example.org has a postmaster.
    fn postmasters(local: &[String]) -> Postmasters<'_> {
        Postmasters {
            local_domains: local,
            mailbox: &mailbox,
        }
    }

    fn local() -> Vec<String> {
        vec!["example.org".into(), "other.org".into()]
    }

    fn expand(table: &Aliases, address: &str) -> Vec<String> {
        table.expand(address, postmasters(&local())).unwrap()
    }

    const FILE: &str = "\
# team aliases
sales@example.org: bob@example.org, carol@example.net   # two people
Info@Example.org: sales@example.org
bob@example.org: bob@example.org, archive@example.org
a@example.org: b@example.org
b@example.org: a@example.org, c@example.org

sales@example.org: <dave@example.org>
";

    #[test]
    fn parses_and_expands() {
        let table = Aliases::parse(FILE).unwrap();
        assert_eq!(table.len(), 5);
        let cases: [(&str, &[&str]); 10] = [
            ("nobody@example.org", &["nobody@example.org"]),
            (
                "sales@example.org",
                &[
                    "bob@example.org",
                    "archive@example.org",
                    "carol@example.net",
                    "dave@example.org",
                ],
            ),
            (
                "INFO@example.ORG",
                &[
                    "bob@example.org",
                    "archive@example.org",
                    "carol@example.net",
                    "dave@example.org",
                ],
            ),
            ("a@example.org", &["a@example.org", "c@example.org"]),
            ("postmaster@example.org", &["alice@example.org"]),
            // Without a domain: the postmaster of the first local domain.
            ("Postmaster", &["alice@example.org"]),
            ("POSTMASTER", &["alice@example.org"]),
            ("nobody", &["nobody"]),
            // No user in other.org: postmaster stays as it is.
            ("postmaster@other.org", &["postmaster@other.org"]),
            // Not a local domain: no postmaster rule.
            ("postmaster@remote.test", &["postmaster@remote.test"]),
        ];
        for (address, want) in cases {
            assert_eq!(expand(&table, address), want, "{address}");
        }
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_alias() {
        let table = Aliases::parse("\u{feff}sales@example.org: bob@example.org\n").unwrap();
        assert_eq!(table.len(), 1);
        let plain = Aliases::parse("sales@example.org: bob@example.org\n").unwrap();
        assert_eq!(format!("{table:?}"), format!("{plain:?}"));
    }

    #[test]
    fn postmaster_can_be_aliased() {
        let table = Aliases::parse("postmaster@example.org: ops@example.net\n").unwrap();
        assert_eq!(
            expand(&table, "postmaster@example.org"),
            ["ops@example.net"]
        );
        assert_eq!(expand(&table, "PostMaster"), ["ops@example.net"]);
        assert_eq!(
            expand(&Aliases::empty(), "Postmaster@Example.Org"),
            ["alice@example.org"]
        );
    }

    #[test]
    fn deep_chains_are_refused() {
        let mut text = String::new();
        for i in 0..=MAX_DEPTH {
            text.push_str(&format!("l{i}@x.test: l{}@x.test\n", i + 1));
        }
        let table = Aliases::parse(&text).unwrap();
        assert!(matches!(
            table.expand("l0@x.test", postmasters(&local())),
            Err(AliasError::TooDeep(_))
        ));
        assert_eq!(expand(&table, "l2@x.test"), ["l11@x.test"]);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        for (text, line) in [
            ("ok@x: y@x\nbroken\n", 2),
            ("nodomain: y@x\n", 1),
            ("a@x:\n", 1),
            ("a@x: not an address\n", 1),
            ("a@x: y@x,, z\n", 1),
        ] {
            match Aliases::parse(text) {
                Err(AliasError::Syntax { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn reload_takes_a_good_file_and_keeps_the_old_table_on_a_bad_one() {
        let dir = TempDir::new("aliases");
        let file = dir.path().join("aliases");
        std::fs::write(&file, "sales@example.org: bob@example.org\n").unwrap();
        let table = AliasTable::load(Some(&file)).unwrap();
        assert!(table.contains("Sales@example.org"));
        std::fs::write(&file, "info@example.org: carol@example.org\n").unwrap();
        assert_eq!(table.reload().unwrap(), 1);
        assert!(table.contains("info@example.org"));
        assert!(!table.contains("sales@example.org"));
        std::fs::write(&file, "no colon here\n").unwrap();
        assert!(matches!(
            table.reload(),
            Err(AliasError::Syntax { line: 1, .. })
        ));
        assert!(table.contains("info@example.org"));
        let none = AliasTable::load(None).unwrap();
        assert_eq!(none.reload().unwrap(), 0);
        assert!(!none.contains("info@example.org"));
    }
}
