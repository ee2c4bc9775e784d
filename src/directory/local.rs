//! The server's answer to the session's [`Directory`] questions and to
//! delivery's "where does this recipient go": the set of local domains,
//! the users of the users file, the aliases and the postmaster.
//!
//! Both sides ask [`LocalDirectory::destinations`]: RCPT accepts a local
//! recipient only when it names a mailbox for every address the recipient
//! leads to, and delivery expands with the same answer, so nothing accepted
//! is later refused for want of a mailbox (which would send the message back
//! to a sender who is often forged: backscatter).

use std::sync::Arc;

use super::aliases::{AliasError, AliasTable, Postmasters};
use super::users::UserTable;
use crate::proto::address::lookup_key;
use crate::proto::session::Directory;

/// Local domains, users, aliases and the postmaster of last resort.
pub struct LocalDirectory {
    /// Normalised (lowercase, no trailing dot), in the order given: the
    /// first is where a bare `Postmaster` goes.
    domains: Vec<String>,
    users: Arc<UserTable>,
    aliases: Arc<AliasTable>,
    /// `--postmaster`: where `postmaster@` a domain without users goes.
    postmaster: Option<String>,
}

/// Why mail for a recipient has nowhere to go here.
#[derive(Debug)]
pub enum Unreachable {
    /// This address in a local domain (the recipient or one it leads to)
    /// is no user's mailbox.
    NoMailbox(String),
    /// The aliases of the recipient could not be expanded.
    Alias(AliasError),
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unreachable::NoMailbox(address) => write!(f, "<{address}>: no such mailbox here"),
            Unreachable::Alias(e) => write!(f, "alias expansion failed: {e}"),
        }
    }
}

impl LocalDirectory {
    /// A directory for `domains` (any case, trailing dot allowed), `users`
    /// and `aliases`. `postmaster@` a domain without users goes to
    /// `postmaster`, or without one to the first user of the users file.
    pub fn new(
        domains: &[String],
        users: Arc<UserTable>,
        aliases: Arc<AliasTable>,
        postmaster: Option<String>,
    ) -> LocalDirectory {
        let mut normalized: Vec<String> = Vec::new();
        for domain in domains.iter().map(|d| normalize_domain(d)) {
            if !normalized.contains(&domain) {
                normalized.push(domain);
            }
        }
        LocalDirectory {
            domains: normalized,
            users,
            aliases,
            postmaster,
        }
    }

    /// Where mail for `address` goes: the final addresses after aliases
    /// and the postmaster rule, in order, each either remote or a user's
    /// mailbox. Anything else makes the whole recipient unreachable.
    pub fn destinations(&self, address: &str) -> Result<Vec<String>, Unreachable> {
        let mailbox = |domain: &str| self.postmaster_mailbox(domain);
        let postmasters = Postmasters {
            local_domains: &self.domains,
            mailbox: &mailbox,
        };
        let finals = self
            .aliases
            .expand(address, postmasters)
            .map_err(Unreachable::Alias)?;
        match finals.iter().find(|a| !self.is_deliverable(a)) {
            Some(missing) => Err(Unreachable::NoMailbox(missing.clone())),
            None => Ok(finals),
        }
    }

    /// The user whose mailbox `address` (in any case) is, as the users file
    /// writes it: the name of its Maildir.
    pub fn mailbox_owner(&self, address: &str) -> Option<String> {
        self.users.mailbox_owner(address)
    }

    /// Whether the final addresses `a` and `b` are one mailbox: a local
    /// user's local part matches in any case, a remote one's only as
    /// written (RFC 5321 §2.4 leaves its case to the remote server); the
    /// domain matches in any case.
    pub fn same_mailbox(&self, a: &str, b: &str) -> bool {
        match (split_address(a), split_address(b)) {
            (Some((local_a, domain_a)), Some((local_b, domain_b))) => {
                normalize_domain(domain_a) == normalize_domain(domain_b)
                    && if self.is_local_domain(domain_a) {
                        lookup_key(local_a) == lookup_key(local_b)
                    } else {
                        local_a == local_b
                    }
            }
            _ => a == b,
        }
    }

    /// The local domains whose `postmaster@` has no mailbox (no users and
    /// no `--postmaster` that reaches one), to warn about at start.
    pub fn domains_without_postmaster(&self) -> Vec<String> {
        self.domains
            .iter()
            .filter(|d| self.destinations(&format!("postmaster@{d}")).is_err())
            .cloned()
            .collect()
    }

    /// A final address can be delivered: it is remote, or a user's.
    fn is_deliverable(&self, address: &str) -> bool {
        match split_address(address) {
            Some((_, domain)) if !self.is_local_domain(domain) => true,
            Some(_) => self.users.user_exists(address),
            None => false,
        }
    }

    /// RFC 5321 §4.5.1: who `postmaster@domain` reaches when no alias says:
    /// a user of that name, the domain's first user, `--postmaster`, or the
    /// first user of all.
    fn postmaster_mailbox(&self, domain: &str) -> Option<String> {
        let own = format!("postmaster@{domain}");
        if self.users.user_exists(&own) {
            return Some(own);
        }
        self.users
            .first_user(domain)
            .or_else(|| self.postmaster.clone())
            .or_else(|| self.users.first_of_all())
    }
}

fn normalize_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

/// Splits at the last `@` (a quoted local part may contain `@`).
fn split_address(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

/// The lookup form of `local@domain`, domain without its trailing dot.
fn address_key(address: &str) -> Option<String> {
    let (local, domain) = split_address(address)?;
    Some(lookup_key(&format!("{local}@{}", normalize_domain(domain))))
}

impl Directory for LocalDirectory {
    fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.contains(&normalize_domain(domain))
    }

    /// RFC 5321 §4.5.1: `postmaster` exists in every local domain, and
    /// bare; an alias is a mailbox too. Exists means [`Self::destinations`]
    /// finds a mailbox for all of it.
    fn mailbox_exists(&self, address: &str) -> bool {
        let ours = match split_address(address) {
            Some((_, domain)) => self.is_local_domain(domain),
            None => true,
        };
        if !ours {
            return false;
        }
        match self.destinations(address) {
            Ok(_) => true,
            Err(Unreachable::NoMailbox(missing)) if lookup_key(&missing) == lookup_key(address) => {
                false
            }
            Err(why) => {
                log::warn!("refused recipient <{address}>: {why}");
                false
            }
        }
    }

    /// A user may send as its own address, in any case (as it logs in).
    fn may_send_as(&self, user: &str, sender: &str) -> bool {
        match (address_key(user), address_key(sender)) {
            (Some(user), Some(sender)) => user == sender,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_password;
    use crate::directory::aliases::Aliases;

    const ALIASES: &str = "\
sales@example.com: Alice@example.com
team@example.com: alice@example.com, ghost@example.com
";

    fn directory_with(users: &[&str], postmaster: Option<&str>) -> LocalDirectory {
        let aliases = Aliases::parse(ALIASES).unwrap();
        let list = users
            .iter()
            .map(|u| (u.to_string(), hash_password("pw")))
            .collect();
        LocalDirectory::new(
            &["Example.com".to_string(), "example.net.".to_string()],
            Arc::new(UserTable::from_list(list).unwrap()),
            Arc::new(AliasTable::fixed(aliases)),
            postmaster.map(str::to_string),
        )
    }

    fn directory() -> LocalDirectory {
        directory_with(&["alice@example.com"], None)
    }

    #[test]
    fn domains_and_mailboxes() {
        let d = directory();
        for (domain, want) in [
            ("example.com", true),
            ("EXAMPLE.COM", true),
            ("example.net", true),
            ("example.com.", true),
            ("example.org", false),
            ("sub.example.com", false),
        ] {
            assert_eq!(d.is_local_domain(domain), want, "{domain}");
        }
        for (address, want) in [
            ("alice@example.com", true),
            ("alice@EXAMPLE.com", true),
            ("Alice@example.com", true),
            ("ALICE@Example.Com", true),
            ("bob@example.com", false),
            ("sales@example.com", true),
            ("Sales@Example.COM", true),
            ("sales@example.net", false),
            // An alias with a target that has no mailbox is refused whole.
            ("team@example.com", false),
            ("postmaster@example.net", true),
            ("PostMaster@example.com", true),
            ("Postmaster", true),
            ("postmaster", true),
            ("nobody", false),
            ("postmaster@example.org", false),
            ("alice@example.org", false),
        ] {
            assert_eq!(d.mailbox_exists(address), want, "{address}");
        }
    }

    #[test]
    fn rcpt_and_delivery_get_one_answer() {
        let d = directory();
        for (address, want) in [
            ("Alice@Example.com", Some(vec!["Alice@Example.com"])),
            ("sales@example.com", Some(vec!["Alice@example.com"])),
            ("Postmaster", Some(vec!["alice@example.com"])),
            ("postmaster@example.net", Some(vec!["alice@example.com"])),
            ("carol@remote.test", Some(vec!["carol@remote.test"])),
            ("team@example.com", None),
            ("bob@example.com", None),
        ] {
            let got = d.destinations(address).ok();
            let want = want.map(|list| list.iter().map(|a| a.to_string()).collect::<Vec<_>>());
            assert_eq!(got, want, "{address}");
            if d.is_local_domain(address.rsplit_once('@').map_or("", |(_, d)| d)) {
                assert_eq!(d.mailbox_exists(address), got.is_some(), "{address}");
            }
        }
        assert_eq!(
            d.mailbox_owner("ALICE@example.COM").as_deref(),
            Some("alice@example.com")
        );
    }

    #[test]
    fn a_local_mailbox_is_one_in_any_case_a_remote_one_only_as_written() {
        let d = directory();
        for (a, b, want) in [
            ("alice@example.com", "ALICE@Example.COM", true),
            ("alice@example.com", "alice@example.com.", true),
            ("alice@example.com", "alice@example.net", false),
            ("carol@remote.test", "carol@REMOTE.test", true),
            ("carol@remote.test", "Carol@remote.test", false),
            ("Postmaster", "Postmaster", true),
        ] {
            assert_eq!(d.same_mailbox(a, b), want, "{a} {b}");
        }
    }

    #[test]
    fn postmaster_reaches_a_real_mailbox_or_nothing() {
        // The domain's first user, else --postmaster, else the first user.
        let d = directory_with(
            &["bob@example.net", "alice@example.com"],
            Some("ops@remote.test"),
        );
        assert_eq!(
            d.destinations("postmaster@example.com").unwrap(),
            ["alice@example.com"]
        );
        let d = directory_with(&["bob@example.net"], Some("ops@remote.test"));
        assert_eq!(
            d.destinations("postmaster@example.com").unwrap(),
            ["ops@remote.test"]
        );
        let d = directory_with(&["bob@example.net"], None);
        assert_eq!(
            d.destinations("postmaster@example.com").unwrap(),
            ["bob@example.net"]
        );
        // A user named postmaster is its own postmaster.
        let d = directory_with(&["bob@example.com", "Postmaster@example.com"], None);
        assert_eq!(
            d.destinations("POSTMASTER@example.com").unwrap(),
            ["POSTMASTER@example.com"]
        );
        assert_eq!(
            d.mailbox_owner("POSTMASTER@example.com").as_deref(),
            Some("Postmaster@example.com")
        );
        // A --postmaster in a local domain must be a user.
        let d = directory_with(&[], Some("root@example.net"));
        assert!(!d.mailbox_exists("postmaster@example.com"));
        assert!(!d.mailbox_exists("Postmaster"));
        assert_eq!(
            d.domains_without_postmaster(),
            ["example.com", "example.net"]
        );
        let d = directory_with(&[], None);
        assert!(!d.mailbox_exists("postmaster@example.net"));
        assert!(directory().domains_without_postmaster().is_empty());
    }

    #[test]
    fn users_send_as_themselves_in_any_case() {
        let d = directory();
        for (user, sender, want) in [
            ("alice@example.com", "alice@example.com", true),
            ("alice@example.com", "alice@EXAMPLE.COM", true),
            ("alice@example.com", "Alice@example.com", true),
            ("ALICE@example.com", "alice@example.com.", true),
            ("alice@example.com", "bob@example.com", false),
            ("alice@example.com", "alice@example.org", false),
            ("alice@example.com", "", false),
        ] {
            assert_eq!(d.may_send_as(user, sender), want, "{user} as {sender}");
        }
    }
}
