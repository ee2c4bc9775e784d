//! `--user` and `--group`: a server started as root does what needs root
//! (binds the listeners, reads the certificate and key, takes the data
//! directory's lock, prepares a first start), hands the data directory to
//! the user, then gives up root for good before any thread is started.
//!
//! The switch uses `nix`'s `setgroups`, `setgid` and `setuid`: the C
//! library's calls, which change every thread of the process (the raw
//! system calls change one thread only). It then checks that root cannot
//! be taken back.
//!
//! May import `config` only.

use std::fmt;
use std::fs;
use std::os::unix::fs::{lchown, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::unistd::{Gid, Group, Uid, User};

use crate::config::Config;

/// Errors resolving or switching to the `--user`.
#[derive(Debug)]
pub enum PrivilegeError {
    /// `--group` without `--user`.
    GroupWithoutUser,
    /// The user or group is not known to the system.
    Unknown {
        /// `user` or `group`.
        kind: &'static str,
        /// The name given.
        name: String,
    },
    /// Looking up the user or group failed.
    Lookup {
        /// The name given.
        name: String,
        /// The system's error.
        source: nix::Error,
    },
    /// The process is not root and is not already that user.
    NotRoot {
        /// The user asked for.
        user: String,
    },
    /// Handing the data directory to the user failed.
    Chown {
        /// The file or directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// The owner of a directory could not be read.
    Owner {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },
    /// A system call of the switch failed, or root could be taken back.
    Switch {
        /// What was being done.
        what: &'static str,
        /// The system's error (`None`: root could be taken back).
        source: Option<nix::Error>,
    },
}

impl fmt::Display for PrivilegeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivilegeError::GroupWithoutUser => f.write_str("--group needs --user"),
            PrivilegeError::Unknown { kind, name } => write!(f, "--{kind} {name}: no such {kind}"),
            PrivilegeError::Lookup { name, source } => write!(f, "cannot look up {name}: {source}"),
            PrivilegeError::NotRoot { user } => write!(
                f,
                "--user {user}: only root can switch users (start as root, or leave out --user)"
            ),
            PrivilegeError::Chown { path, source } => {
                write!(f, "cannot give {} to the --user: {source}", path.display())
            }
            PrivilegeError::Owner { path, source } => {
                write!(f, "cannot read the owner of {}: {source}", path.display())
            }
            PrivilegeError::Switch {
                what,
                source: Some(e),
            } => write!(f, "cannot {what}: {e}"),
            PrivilegeError::Switch { what, source: None } => {
                write!(f, "cannot {what}: root could be taken back")
            }
        }
    }
}

impl std::error::Error for PrivilegeError {}

/// The user and group a server runs as after start.
#[derive(Debug, Clone)]
pub struct RunAs {
    user: String,
    uid: Uid,
    group: String,
    gid: Gid,
}

impl RunAs {
    /// The `--user` and `--group` of `config`, looked up; `None` without
    /// `--user`.
    pub fn from_config(config: &Config) -> Result<Option<RunAs>, PrivilegeError> {
        let Some(user_name) = &config.user else {
            return match config.group {
                Some(_) => Err(PrivilegeError::GroupWithoutUser),
                None => Ok(None),
            };
        };
        let user = lookup_user(user_name)?;
        let group = match &config.group {
            Some(name) => lookup_group(name)?,
            None => Group::from_gid(user.gid)
                .map_err(|source| PrivilegeError::Lookup {
                    name: user_name.clone(),
                    source,
                })?
                .unwrap_or_else(|| Group {
                    name: user.gid.to_string(),
                    passwd: Default::default(),
                    gid: user.gid,
                    mem: Vec::new(),
                }),
        };
        if !Uid::effective().is_root() && Uid::effective() != user.uid {
            return Err(PrivilegeError::NotRoot {
                user: user_name.clone(),
            });
        }
        Ok(Some(RunAs {
            user: user.name,
            uid: user.uid,
            group: group.name,
            gid: group.gid,
        }))
    }

    /// Gives `data_dir` and everything in it (symbolic links not followed)
    /// to the user and group, so the server can still write there after
    /// the switch; only what belongs to someone else is changed. The data
    /// directory itself becomes 0710 with `group_access` (the group may
    /// pass through to the Maildirs) and 0700 otherwise. Returns how many
    /// entries changed owner. Does nothing unless the process is root.
    pub fn own_data_dir(
        &self,
        data_dir: &Path,
        group_access: bool,
    ) -> Result<usize, PrivilegeError> {
        if !Uid::effective().is_root() {
            return Ok(0);
        }
        let mode = if group_access { 0o710 } else { 0o700 };
        fs::set_permissions(data_dir, fs::Permissions::from_mode(mode)).map_err(|source| {
            PrivilegeError::Chown {
                path: data_dir.to_path_buf(),
                source,
            }
        })?;
        let mut changed = 0;
        let mut pending = vec![data_dir.to_path_buf()];
        while let Some(path) = pending.pop() {
            let failed = |source| PrivilegeError::Chown {
                path: path.clone(),
                source,
            };
            let meta = fs::symlink_metadata(&path).map_err(failed)?;
            if meta.uid() != self.uid.as_raw() || meta.gid() != self.gid.as_raw() {
                lchown(&path, Some(self.uid.as_raw()), Some(self.gid.as_raw())).map_err(failed)?;
                changed += 1;
            }
            if meta.is_dir() {
                for entry in fs::read_dir(&path).map_err(failed)? {
                    pending.push(entry.map_err(failed)?.path());
                }
            }
        }
        Ok(changed)
    }

    /// Gives up root for good: supplementary groups to just the group,
    /// then the group, then the user (real, effective and saved). Call
    /// before any thread starts. Without root (already the user) it does
    /// nothing.
    pub fn switch(&self) -> Result<(), PrivilegeError> {
        if !Uid::effective().is_root() {
            return Ok(());
        }
        let failed = |what| {
            move |e| PrivilegeError::Switch {
                what,
                source: Some(e),
            }
        };
        nix::unistd::setgroups(&[self.gid]).map_err(failed("set the supplementary groups"))?;
        nix::unistd::setgid(self.gid).map_err(failed("switch to the group"))?;
        nix::unistd::setuid(self.uid).map_err(failed("switch to the user"))?;
        if !self.uid.is_root() && nix::unistd::setuid(Uid::from_raw(0)).is_ok() {
            return Err(PrivilegeError::Switch {
                what: "give up root",
                source: None,
            });
        }
        Ok(())
    }

    /// `user NAME (uid N), group NAME (gid N)`, for the log.
    pub fn describe(&self) -> String {
        format!(
            "user {} (uid {}), group {} (gid {})",
            self.user, self.uid, self.group, self.gid
        )
    }
}

/// Run as root on a directory a `--user` server owns (`outpost queue`):
/// switches to the directory's owner and group first, so every file the
/// command writes stays the server's. Returns whether it switched.
pub fn act_as_owner_of(dir: &Path) -> Result<bool, PrivilegeError> {
    let meta = fs::metadata(dir).map_err(|source| PrivilegeError::Owner {
        path: dir.to_path_buf(),
        source,
    })?;
    if !Uid::effective().is_root() || meta.uid() == 0 {
        return Ok(false);
    }
    let owner = RunAs {
        user: meta.uid().to_string(),
        uid: Uid::from_raw(meta.uid()),
        group: meta.gid().to_string(),
        gid: Gid::from_raw(meta.gid()),
    };
    owner.switch().map(|()| true)
}

fn lookup_user(name: &str) -> Result<User, PrivilegeError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    };
    found
        .map_err(|source| PrivilegeError::Lookup {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| PrivilegeError::Unknown {
            kind: "user",
            name: name.to_string(),
        })
}

fn lookup_group(name: &str) -> Result<Group, PrivilegeError> {
    let found = match name.parse::<u32>() {
        Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
        Err(_) => Group::from_name(name),
    };
    found
        .map_err(|source| PrivilegeError::Lookup {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| PrivilegeError::Unknown {
            kind: "group",
            name: name.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(user: Option<&str>, group: Option<&str>) -> Config {
        Config {
            user: user.map(str::to_string),
            group: group.map(str::to_string),
            ..Config::default()
        }
    }

    #[test]
    fn users_and_groups_by_name_or_number() {
        assert!(RunAs::from_config(&config(None, None)).unwrap().is_none());
        let root = RunAs::from_config(&config(Some("root"), None))
            .unwrap()
            .unwrap();
        assert_eq!(root.describe(), "user root (uid 0), group root (gid 0)");
        let by_number = RunAs::from_config(&config(Some("0"), Some("0")))
            .unwrap()
            .unwrap();
        assert_eq!(by_number.describe(), root.describe());
        for (user, group, want) in [
            (None, Some("root"), "--group needs --user"),
            (
                Some("no-such-user-here"),
                None,
                "--user no-such-user-here: no such user",
            ),
            (
                Some("root"),
                Some("no-such-group-here"),
                "--group no-such-group-here: no such group",
            ),
        ] {
            let e = RunAs::from_config(&config(user, group)).unwrap_err();
            assert_eq!(e.to_string(), want);
        }
    }
}
