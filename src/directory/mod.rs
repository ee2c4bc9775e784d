//! The lookup role: which domains are local, which mailboxes exist and
//! whose they are, and where aliases lead. The users file and the alias
//! file are read here and re-read on SIGHUP; the tables in force are shared
//! by the sessions (through [`LocalDirectory`], the implementation of the
//! session's [`Directory`](crate::proto::session::Directory) port), the
//! password verifiers (which ask [`UserTable`] for stored hashes) and
//! delivery (which expands aliases and finds each local mailbox's owner).
//!
//! May import `proto` and the stored-hash formats of `auth`; nothing else.

pub mod aliases;
mod fixed;
mod local;
pub mod users;

pub use aliases::{AliasError, AliasTable, Postmasters};
pub use fixed::FixedDirectory;
pub use local::{LocalDirectory, Unreachable};
pub use users::{users_file_line, UserTable, UsersError};
