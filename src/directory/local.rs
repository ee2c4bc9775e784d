//! The server's answer to the session's [`Directory`] questions: the set of
//! local domains, the users of the users file and the aliases.

use std::collections::HashSet;
use std::sync::Arc;

use super::aliases::AliasTable;
use super::users::UserTable;
use crate::proto::session::Directory;

/// Local domains, users and aliases.
pub struct LocalDirectory {
    domains: HashSet<String>,
    users: Arc<UserTable>,
    aliases: Arc<AliasTable>,
}

impl LocalDirectory {
    /// A directory for `domains` (any case, trailing dot allowed), `users`
    /// and `aliases`.
    pub fn new(
        domains: &[String],
        users: Arc<UserTable>,
        aliases: Arc<AliasTable>,
    ) -> LocalDirectory {
        let domains = domains.iter().map(|d| normalize_domain(d)).collect();
        LocalDirectory {
            domains,
            users,
            aliases,
        }
    }
}

fn normalize_domain(domain: &str) -> String {
    domain.trim_end_matches('.').to_lowercase()
}

/// Splits at the last `@` (a quoted local part may contain `@`).
fn split_address(address: &str) -> Option<(&str, &str)> {
    address.rsplit_once('@')
}

impl Directory for LocalDirectory {
    fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.contains(&normalize_domain(domain))
    }

    /// RFC 5321 §4.5.1: `postmaster` must exist in every local domain. An
    /// alias is a mailbox too: it is expanded at delivery.
    fn mailbox_exists(&self, address: &str) -> bool {
        let Some((local, domain)) = split_address(address) else {
            return false;
        };
        if !self.is_local_domain(domain) {
            return false;
        }
        local.eq_ignore_ascii_case("postmaster")
            || self.users.user_exists(address)
            || self.aliases.contains(address)
    }

    /// A user may send as its own address: the local part exactly (RFC 5321
    /// §2.4 leaves its case to the owner), the domain in any case.
    fn may_send_as(&self, user: &str, sender: &str) -> bool {
        match (split_address(user), split_address(sender)) {
            (Some((user_local, user_domain)), Some((local, domain))) => {
                user_local == local && normalize_domain(user_domain) == normalize_domain(domain)
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::hash_password;
    use crate::directory::aliases::Aliases;

    fn directory() -> LocalDirectory {
        let aliases = Aliases::parse("sales@example.com: alice@example.com\n").unwrap();
        let users =
            UserTable::from_list(vec![("alice@example.com".into(), hash_password("pw"))]).unwrap();
        LocalDirectory::new(
            &["Example.com".to_string(), "example.net.".to_string()],
            Arc::new(users),
            Arc::new(AliasTable::fixed(aliases)),
        )
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
            ("bob@example.com", false),
            ("sales@example.com", true),
            ("Sales@Example.COM", true),
            ("sales@example.net", false),
            ("postmaster@example.net", true),
            ("PostMaster@example.com", true),
            ("postmaster@example.org", false),
            ("alice@example.org", false),
            ("no-at-sign", false),
        ] {
            assert_eq!(d.mailbox_exists(address), want, "{address}");
        }
    }

    #[test]
    fn users_send_as_themselves() {
        let d = directory();
        for (user, sender, want) in [
            ("alice@example.com", "alice@example.com", true),
            ("alice@example.com", "alice@EXAMPLE.COM", true),
            ("alice@example.com", "Alice@example.com", false),
            ("alice@example.com", "bob@example.com", false),
            ("alice@example.com", "alice@example.org", false),
            ("alice@example.com", "", false),
        ] {
            assert_eq!(d.may_send_as(user, sender), want, "{user} as {sender}");
        }
    }
}
