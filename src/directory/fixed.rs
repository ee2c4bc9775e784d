//! A directory of fixed lists, for tests, fuzz targets and benchmarks that
//! run a session without a users file.

use crate::proto::session::Directory;

/// Local domains, mailboxes and send-as grants given as they are: every
/// comparison is exact (the session asks with the domain lowercased), and
/// a user may always send as itself. `postmaster@` each domain and the bare
/// `Postmaster` exist, in any case, as they do on a server with users.
#[derive(Debug, Clone, Default)]
pub struct FixedDirectory {
    domains: Vec<String>,
    mailboxes: Vec<String>,
    send_as: Vec<(String, String)>,
}

impl FixedDirectory {
    /// A directory where `domains` are local and `mailboxes` exist.
    pub fn new(domains: &[&str], mailboxes: &[&str]) -> FixedDirectory {
        FixedDirectory {
            domains: domains.iter().map(|d| d.to_string()).collect(),
            mailboxes: mailboxes.iter().map(|m| m.to_string()).collect(),
            send_as: Vec::new(),
        }
    }

    /// Lets `user` also send as `sender`.
    pub fn with_send_as(mut self, user: &str, sender: &str) -> FixedDirectory {
        self.send_as.push((user.to_string(), sender.to_string()));
        self
    }

    /// `example.com` is local with `alice@` and `bob@`; alice may also send
    /// as `sales@example.com`.
    pub fn example() -> FixedDirectory {
        FixedDirectory::new(&["example.com"], &["alice@example.com", "bob@example.com"])
            .with_send_as("alice@example.com", "sales@example.com")
    }
}

impl FixedDirectory {
    /// `postmaster` in any case, bare or at one of the domains.
    fn is_postmaster(&self, address: &str) -> bool {
        let (local, domain) = match address.rsplit_once('@') {
            Some((local, domain)) => (local, Some(domain)),
            None => (address, None),
        };
        local.eq_ignore_ascii_case("postmaster") && domain.map_or(true, |d| self.is_local_domain(d))
    }
}

impl Directory for FixedDirectory {
    fn is_local_domain(&self, domain: &str) -> bool {
        self.domains.iter().any(|d| d == domain)
    }

    fn mailbox_exists(&self, address: &str) -> bool {
        self.mailboxes.iter().any(|m| m == address) || self.is_postmaster(address)
    }

    fn may_send_as(&self, user: &str, sender: &str) -> bool {
        user == sender || self.send_as.iter().any(|(u, s)| u == user && s == sender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_directory() {
        let d = FixedDirectory::example();
        assert!(d.is_local_domain("example.com"));
        assert!(!d.is_local_domain("example.org"));
        assert!(d.mailbox_exists("bob@example.com"));
        assert!(!d.mailbox_exists("carol@example.com"));
        assert!(!d.mailbox_exists("Bob@example.com"));
        assert!(d.mailbox_exists("PostMaster@example.com"));
        assert!(d.mailbox_exists("Postmaster"));
        assert!(!d.mailbox_exists("postmaster@example.org"));
        assert!(d.may_send_as("bob@example.com", "bob@example.com"));
        assert!(d.may_send_as("alice@example.com", "sales@example.com"));
        assert!(!d.may_send_as("bob@example.com", "sales@example.com"));
    }
}
