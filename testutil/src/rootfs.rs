//! Busybox root filesystems made from Debian's `busybox-static`.
//!
//! [`busybox_rootfs`] fills a directory with what a minimal container image
//! holds: the static `/bin/busybox`, one symlink per applet at the path
//! `busybox --list-full` names (as `busybox --install -s` makes them),
//! `/etc/passwd` and `/etc/group` with `root`, `nobody` (65534) and a test
//! user ([`TEST_USER`], uid [`TEST_UID`], primary group [`TEST_GID`], also a
//! member of the supplementary group [`TEST_SUPPLEMENTARY_GROUP`] /
//! [`TEST_SUPPLEMENTARY_GID`]), `/tmp` with mode 1777 and the empty mount
//! points a runtime expects (`/proc`, `/sys`, `/dev`).
//!
//! ```no_run
//! let dir = tempfile::tempdir()?;
//! kiln_testutil::rootfs::busybox_rootfs(dir.path())?;
//! assert!(dir.path().join("bin/sh").exists());
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::Path;
use std::process::Command;

/// Where Debian's `busybox-static` installs the static binary.
pub const HOST_BUSYBOX: &str = "/bin/busybox";

/// Name of the unprivileged test user in the generated `/etc/passwd`.
pub const TEST_USER: &str = "kiln";
/// Uid of [`TEST_USER`].
pub const TEST_UID: u32 = 1000;
/// Gid of [`TEST_USER`]'s primary group (also named [`TEST_USER`]).
pub const TEST_GID: u32 = 1000;
/// A supplementary group [`TEST_USER`] belongs to, per `/etc/group`.
pub const TEST_SUPPLEMENTARY_GROUP: &str = "staff";
/// Gid of [`TEST_SUPPLEMENTARY_GROUP`].
pub const TEST_SUPPLEMENTARY_GID: u32 = 50;

/// Fills `dir` (created if missing) with a busybox root filesystem.
///
/// Fails with an error naming the Debian package `busybox-static` when
/// `/bin/busybox` is missing or is not the static build (a dynamically
/// linked busybox would not run inside a root filesystem without its
/// libraries).
pub fn busybox_rootfs(dir: &Path) -> io::Result<()> {
    let host = Path::new(HOST_BUSYBOX);
    if !host.exists() {
        return Err(missing("/bin/busybox is missing"));
    }
    let output = Command::new(host)
        .arg("--list-full")
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running {HOST_BUSYBOX} --list-full: {e} (apt-get install busybox-static)"),
            )
        })?;
    if !output.status.success() {
        return Err(missing("/bin/busybox --list-full failed"));
    }
    if !is_static_elf(host)? {
        return Err(missing("/bin/busybox is not statically linked"));
    }

    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc",
        "root",
        "home/kiln",
        "proc",
        "sys",
        "dev",
        "var",
        "tmp",
    ] {
        fs::create_dir_all(dir.join(d))?;
    }
    fs::set_permissions(dir.join("tmp"), fs::Permissions::from_mode(0o1777))?;
    fs::copy(host, dir.join("bin/busybox"))?;
    fs::set_permissions(dir.join("bin/busybox"), fs::Permissions::from_mode(0o755))?;

    let list = String::from_utf8_lossy(&output.stdout);
    for applet in list.lines().map(str::trim).filter(|l| !l.is_empty()) {
        // `linuxrc` is the only applet at the top level; it is meaningless in
        // a container, and busybox itself is already in place.
        if applet == "linuxrc" || applet == "bin/busybox" {
            continue;
        }
        let link = dir.join(applet);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = link.parent() {
            fs::create_dir_all(parent)?;
        }
        symlink("/bin/busybox", &link)?;
    }

    fs::write(
        dir.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
             {TEST_USER}:x:{TEST_UID}:{TEST_GID}:kiln test user:/home/kiln:/bin/sh\n"
        ),
    )?;
    fs::write(
        dir.join("etc/group"),
        format!(
            "root:x:0:\n\
             {TEST_SUPPLEMENTARY_GROUP}:x:{TEST_SUPPLEMENTARY_GID}:{TEST_USER}\n\
             nogroup:x:65534:\n\
             {TEST_USER}:x:{TEST_GID}:\n"
        ),
    )?;
    // The test user owns its home when we can arrange it (as root); an
    // unprivileged caller (a rootless test) keeps ownership itself.
    let home = dir.join("home/kiln");
    match std::os::unix::fs::chown(&home, Some(TEST_UID), Some(TEST_GID)) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {}
        other => other?,
    }
    Ok(())
}

fn missing(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{what}: install Debian's busybox-static (apt-get install busybox-static)"),
    )
}

/// True when the ELF file has no `PT_INTERP` program header (no dynamic
/// loader), i.e. it runs without libraries.
fn is_static_elf(path: &Path) -> io::Result<bool> {
    let bytes = fs::read(path)?;
    if bytes.len() < 64 || &bytes[..4] != b"\x7fELF" || bytes[4] != 2 {
        return Ok(false);
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[o..o + 8]);
        u64::from_le_bytes(b)
    };
    let phoff = usize::try_from(u64_at(0x20)).unwrap_or(usize::MAX);
    let phentsize = usize::from(u16_at(0x36));
    let phnum = usize::from(u16_at(0x38));
    for i in 0..phnum {
        let off = phoff.saturating_add(i.saturating_mul(phentsize));
        if off.saturating_add(4) > bytes.len() {
            return Ok(false);
        }
        // PT_INTERP = 3.
        if u32::from_le_bytes([bytes[off], bytes[off + 1], bytes[off + 2], bytes[off + 3]]) == 3 {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn makes_a_busybox_rootfs() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        busybox_rootfs(dir.path())?;
        assert_eq!(
            fs::read_link(dir.path().join("bin/sh"))?,
            Path::new("/bin/busybox")
        );
        assert!(dir.path().join("usr/bin/env").symlink_metadata().is_ok());
        let mode = fs::metadata(dir.path().join("tmp"))?.permissions().mode();
        assert_eq!(mode & 0o7777, 0o1777);
        let passwd = fs::read_to_string(dir.path().join("etc/passwd"))?;
        assert!(passwd.contains("nobody:x:65534:65534:"));
        assert!(passwd.contains("kiln:x:1000:1000:"));
        let out = Command::new(dir.path().join("bin/busybox"))
            .arg("true")
            .status()?;
        assert!(out.success());
        Ok(())
    }
}
