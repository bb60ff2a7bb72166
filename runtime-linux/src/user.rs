//! Resolving `USER` strings against the container's own `/etc/passwd` and
//! `/etc/group`, with the rules of Docker (moby `pkg/user`, runc
//! `libcontainer/user`): `name`, `uid`, `name:group`, `uid:gid`, and any mix.
//!
//! - A name must exist in `/etc/passwd`; a numeric uid need not (its gid is
//!   then 0, its home `/`).
//! - A group name must exist in `/etc/group`; a numeric gid need not.
//! - Supplementary groups are the groups of `/etc/group` that list the user
//!   name as a member (Docker adds them even when a group is given).

use crate::error::{Error, Result};

/// A resolved user: what the process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids, in `/etc/group` order, without `gid`.
    pub additional_gids: Vec<u32>,
    /// Home directory from `/etc/passwd` (`/` when the user has no entry),
    /// used for `HOME` when the environment does not set it.
    pub home: String,
}

struct PasswdEntry<'a> {
    name: &'a str,
    uid: u32,
    gid: u32,
    home: &'a str,
}

fn passwd_entries(passwd: &str) -> impl Iterator<Item = PasswdEntry<'_>> {
    passwd.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 4 {
            return None;
        }
        Some(PasswdEntry {
            name: f[0],
            uid: f[2].parse().ok()?,
            gid: f[3].parse().ok()?,
            home: f.get(5).copied().unwrap_or("/"),
        })
    })
}

struct GroupEntry<'a> {
    name: &'a str,
    gid: u32,
    members: Vec<&'a str>,
}

fn group_entries(group: &str) -> impl Iterator<Item = GroupEntry<'_>> {
    group.lines().filter_map(|line| {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let f: Vec<&str> = line.split(':').collect();
        if f.len() < 3 {
            return None;
        }
        Some(GroupEntry {
            name: f[0],
            gid: f[2].parse().ok()?,
            members: f
                .get(3)
                .map(|m| {
                    m.split(',')
                        .map(str::trim)
                        .filter(|m| !m.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
        })
    })
}

/// Resolves `spec` (`user`, `uid`, `user:group`, `uid:gid`) against the
/// contents of the container's `/etc/passwd` and `/etc/group` (empty strings
/// when the files are missing).
pub fn resolve_user(spec: &str, passwd: &str, group: &str) -> Result<User> {
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user_part = if user_part.is_empty() { "0" } else { user_part };

    let by_name = passwd_entries(passwd).find(|e| e.name == user_part);
    let (uid, mut gid, home, name) = match (by_name, user_part.parse::<u32>()) {
        (Some(e), _) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
        (None, Ok(uid)) => match passwd_entries(passwd).find(|e| e.uid == uid) {
            Some(e) => (e.uid, e.gid, e.home.to_string(), Some(e.name.to_string())),
            None => (uid, 0, "/".to_string(), None),
        },
        (None, Err(_)) => {
            return Err(Error::UserNotFound {
                user: user_part.to_string(),
            });
        }
    };

    if let Some(g) = group_part.filter(|g| !g.is_empty()) {
        gid = match group_entries(group).find(|e| e.name == g) {
            Some(e) => e.gid,
            None => g.parse::<u32>().map_err(|_| Error::GroupNotFound {
                group: g.to_string(),
            })?,
        };
    }

    let mut additional_gids = Vec::new();
    if let Some(name) = &name {
        for e in group_entries(group) {
            if e.members.contains(&name.as_str())
                && e.gid != gid
                && !additional_gids.contains(&e.gid)
            {
                additional_gids.push(e.gid);
            }
        }
    }
    Ok(User {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
        nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
        kiln:x:1000:1000::/home/kiln:/bin/sh\n";
    const GROUP: &str =
        "root:x:0:\nstaff:x:50:kiln,other\nnogroup:x:65534:\nkiln:x:1000:\nwheel:x:10:root\n";

    fn r(s: &str) -> Result<User> {
        resolve_user(s, PASSWD, GROUP)
    }

    #[test]
    fn name_uses_passwd_and_member_groups() -> Result<()> {
        let u = r("kiln")?;
        assert_eq!((u.uid, u.gid, u.additional_gids), (1000, 1000, vec![50]));
        assert_eq!(u.home, "/home/kiln");
        let root = r("root")?;
        assert_eq!((root.uid, root.gid, root.additional_gids), (0, 0, vec![10]));
        Ok(())
    }

    #[test]
    fn numeric_uid_without_entry_gets_gid_zero() -> Result<()> {
        let u = r("4242")?;
        assert_eq!((u.uid, u.gid, u.home.as_str()), (4242, 0, "/"));
        assert!(u.additional_gids.is_empty());
        assert_eq!(r("65534")?.gid, 65534);
        Ok(())
    }

    #[test]
    fn groups_by_name_and_number() -> Result<()> {
        assert_eq!(r("nobody:staff")?.gid, 50);
        assert_eq!(r("kiln:7")?.gid, 7);
        assert_eq!(
            r("1:2")?,
            User {
                uid: 1,
                gid: 2,
                additional_gids: vec![],
                home: "/".into()
            }
        );
        assert_eq!(r("kiln:staff")?.additional_gids, Vec::<u32>::new());
        Ok(())
    }

    #[test]
    fn unknown_names_fail() {
        assert!(matches!(r("ghost"), Err(Error::UserNotFound { user }) if user == "ghost"));
        assert!(
            matches!(r("kiln:ghosts"), Err(Error::GroupNotFound { group }) if group == "ghosts")
        );
    }
}
