//! Copying files into a staging directory with the ownership and mode a
//! COPY/ADD asks for.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use filetime::FileTime;

use crate::error::{Error, Result};

/// Ownership and mode overrides (`--chown`, `--chmod`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CopyAttrs {
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mode: Option<u32>,
}

/// Copies one node (not its children): a file's content, a directory
/// (created or updated), a symlink. Mode, mtime and ownership follow the
/// source unless `attrs` overrides them.
pub(crate) fn copy_node(src: &Path, dest: &Path, attrs: Option<&CopyAttrs>) -> Result<()> {
    let md = std::fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    let a = attrs.copied().unwrap_or_default();
    let uid = a.uid.unwrap_or(md.uid());
    let gid = a.gid.unwrap_or(md.gid());
    if let Some(parent) = dest.parent()
        && !parent.exists()
    {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    let ft = md.file_type();
    if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|e| Error::io("read link", src, e))?;
        if std::fs::symlink_metadata(dest).is_ok() {
            remove_any(dest)?;
        }
        std::os::unix::fs::symlink(&target, dest)
            .map_err(|e| Error::io("create symlink", dest, e))?;
        std::os::unix::fs::lchown(dest, Some(uid), Some(gid))
            .map_err(|e| Error::io("chown", dest, e))?;
        let mtime = FileTime::from_last_modification_time(&md);
        filetime::set_symlink_file_times(dest, mtime, mtime)
            .map_err(|e| Error::io("set times", dest, e))?;
        return Ok(());
    }
    if ft.is_dir() {
        match std::fs::symlink_metadata(dest) {
            Ok(d) if d.is_dir() => {}
            Ok(_) => {
                remove_any(dest)?;
                std::fs::create_dir(dest).map_err(|e| Error::io("create directory", dest, e))?;
            }
            Err(_) => {
                std::fs::create_dir(dest).map_err(|e| Error::io("create directory", dest, e))?
            }
        }
    } else if ft.is_file() {
        if let Ok(d) = std::fs::symlink_metadata(dest)
            && (d.is_dir() || d.file_type().is_symlink())
        {
            remove_any(dest)?;
        }
        std::fs::copy(src, dest).map_err(|e| Error::io("copy file to", dest, e))?;
    } else {
        // Devices, fifos, sockets: not produced by COPY from a context in
        // practice; skip rather than fail (BuildKit copies them as such,
        // which needs mknod; kiln reports nothing is lost for regular use).
        return Ok(());
    }
    std::os::unix::fs::lchown(dest, Some(uid), Some(gid))
        .map_err(|e| Error::io("chown", dest, e))?;
    let mode = match a.mode {
        Some(m) => m,
        None => md.mode() & 0o7777,
    };
    std::fs::set_permissions(dest, std::fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io("chmod", dest, e))?;
    let mtime = FileTime::from_last_modification_time(&md);
    filetime::set_file_times(dest, mtime, mtime).map_err(|e| Error::io("set times", dest, e))?;
    Ok(())
}

/// Copies a plain directory tree (no overlay semantics) recursively.
pub(crate) fn copy_tree(src: &Path, dest: &Path, attrs: Option<&CopyAttrs>) -> Result<()> {
    copy_node(src, dest, attrs)?;
    let md = std::fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    if md.is_dir() {
        let rd = std::fs::read_dir(src).map_err(|e| Error::io("read directory", src, e))?;
        for ent in rd {
            let ent = ent.map_err(|e| Error::io("read directory", src, e))?;
            copy_tree(&ent.path(), &dest.join(ent.file_name()), attrs)?;
        }
        // Children's writes changed the directory's mtime; restore it.
        let mtime = FileTime::from_last_modification_time(&md);
        filetime::set_file_times(dest, mtime, mtime)
            .map_err(|e| Error::io("set times", dest, e))?;
    }
    Ok(())
}

fn remove_any(p: &Path) -> Result<()> {
    let md = std::fs::symlink_metadata(p).map_err(|e| Error::io("stat", p, e))?;
    if md.is_dir() {
        std::fs::remove_dir_all(p).map_err(|e| Error::io("remove", p, e))
    } else {
        std::fs::remove_file(p).map_err(|e| Error::io("remove", p, e))
    }
}

/// Creates `rel` (and its parents) under `root` as directories owned by
/// `uid:gid` with mode 0755, the way COPY and WORKDIR create destinations.
pub(crate) fn mkdir_all(root: &Path, rel: &str, uid: u32, gid: u32) -> Result<()> {
    let mut p = root.to_path_buf();
    for part in rel.split('/').filter(|s| !s.is_empty()) {
        p.push(part);
        if std::fs::symlink_metadata(&p).is_err() {
            std::fs::create_dir(&p).map_err(|e| Error::io("create directory", &p, e))?;
            std::os::unix::fs::lchown(&p, Some(uid), Some(gid))
                .map_err(|e| Error::io("chown", &p, e))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| Error::io("chmod", &p, e))?;
        }
    }
    Ok(())
}
