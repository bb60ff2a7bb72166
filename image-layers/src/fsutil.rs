//! Small file system helpers shared by the differ, writer and applier.

use std::collections::BTreeMap;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// Linux limits both an xattr name list and a value to 64 KiB.
const XATTR_MAX: usize = 65536;

/// The kind of a file as layers know it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Char,
    Block,
    Fifo,
    Socket,
}

impl Kind {
    pub fn of(m: &std::fs::Metadata) -> Kind {
        let t = m.file_type();
        if t.is_dir() {
            Kind::Dir
        } else if t.is_symlink() {
            Kind::Symlink
        } else if t.is_char_device() {
            Kind::Char
        } else if t.is_block_device() {
            Kind::Block
        } else if t.is_fifo() {
            Kind::Fifo
        } else if t.is_socket() {
            Kind::Socket
        } else {
            Kind::File
        }
    }
}

/// All extended attributes of `path` (not following a final symlink),
/// sorted by name.
///
/// Asks for the list's size first: almost every file has no xattrs, and
/// that answer costs one system call and no allocation (this runs for
/// every entry of a tree comparison).
pub(crate) fn xattrs(path: &Path) -> io::Result<BTreeMap<Vec<u8>, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let size = match rustix::fs::llistxattr_query(path) {
        Ok(n) => n,
        Err(e) if e == rustix::io::Errno::NOTSUP || e == rustix::io::Errno::PERM => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    if size == 0 {
        return Ok(out);
    }
    let mut list = vec![0u8; XATTR_MAX];
    let n = rustix::fs::llistxattr(path, &mut list[..])?;
    for name in list[..n].split(|&b| b == 0).filter(|s| !s.is_empty()) {
        if let Some(v) = xattr_bytes(path, name)? {
            out.insert(name.to_vec(), v);
        }
    }
    Ok(out)
}

/// One extended attribute of `path`, if set.
pub(crate) fn xattr(path: &Path, name: &str) -> io::Result<Option<Vec<u8>>> {
    xattr_bytes(path, name.as_bytes())
}

fn xattr_bytes(path: &Path, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let absent = |e: rustix::io::Errno| {
        e == rustix::io::Errno::NODATA
            || e == rustix::io::Errno::NOTSUP
            || e == rustix::io::Errno::PERM
    };
    // Small values (overlay markers, most xattrs) fit a stack buffer.
    let mut small = [0u8; 256];
    match rustix::fs::lgetxattr(path, name, &mut small[..]) {
        Ok(len) => return Ok(Some(small[..len].to_vec())),
        Err(e) if absent(e) => return Ok(None),
        Err(rustix::io::Errno::RANGE) => {}
        Err(e) => return Err(e.into()),
    }
    let mut value = vec![0u8; XATTR_MAX];
    match rustix::fs::lgetxattr(path, name, &mut value[..]) {
        Ok(len) => {
            value.truncate(len);
            Ok(Some(value))
        }
        Err(e) if absent(e) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// True for the overlayfs private xattrs that must never travel in a layer
/// (they would let a layer forge whiteouts, redirects or metacopy files).
pub(crate) fn is_overlay_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.")
}

/// Major and minor numbers of a device number (glibc's encoding).
pub(crate) fn dev_major_minor(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff);
    let minor = ((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff);
    (major as u32, minor as u32)
}

/// Modification time of `m` as (seconds, nanoseconds).
pub(crate) fn mtime(m: &std::fs::Metadata) -> (i64, u32) {
    (m.mtime(), m.mtime_nsec() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_split() {
        assert_eq!(dev_major_minor(rustix::fs::makedev(1, 3)), (1, 3));
        assert_eq!(
            dev_major_minor(rustix::fs::makedev(259, 70000)),
            (259, 70000)
        );
    }

    #[test]
    fn overlay_xattrs_are_recognised() {
        assert!(is_overlay_xattr(b"trusted.overlay.opaque"));
        assert!(is_overlay_xattr(b"user.overlay.redirect"));
        assert!(!is_overlay_xattr(b"security.capability"));
    }
}
