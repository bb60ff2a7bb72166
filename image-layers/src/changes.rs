//! Change sets: what a layer must record.
//!
//! A [`ChangeSet`] is a list of paths (relative to a *source* directory that
//! holds their new content) with what happened to each. It comes from one
//! of three places:
//!
//! - [`ChangeSet::from_overlay_upper`]: an overlayfs upper directory after
//!   a `RUN`. Cost grows with the number of changed files only, because the
//!   kernel already recorded the changes (whiteout devices, opaque xattrs).
//! - [`ChangeSet::diff_trees`]: two full trees, compared by metadata first
//!   and by content only where metadata cannot decide.
//! - [`ChangeSet::added_tree`]: a staged tree whose every entry is new
//!   (`COPY`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, io_err};
use crate::fsutil::{self, Kind};

/// What happened to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ChangeKind {
    /// The path is new.
    Added,
    /// The path existed and its content, type or metadata changed.
    Modified,
    /// The path was removed (written as a `.wh.<name>` whiteout).
    Deleted,
    /// The directory replaces whatever was below it before (written as the
    /// directory plus `.wh..wh..opq`); its current children are listed as
    /// separate [`ChangeKind::Added`] entries.
    Opaque,
}

/// One changed path.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Change {
    /// Path relative to the change set's source directory, without a
    /// leading `/` or `./`.
    pub path: PathBuf,
    /// What happened to it.
    pub kind: ChangeKind,
}

/// A set of changes plus the directory holding the new content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangeSet {
    source: PathBuf,
    changes: Vec<Change>,
}

const OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];
const REDIRECT_XATTRS: [&str; 2] = ["trusted.overlay.redirect", "user.overlay.redirect"];
const METACOPY_XATTRS: [&str; 2] = ["trusted.overlay.metacopy", "user.overlay.metacopy"];
const XWHITEOUT_XATTRS: [&str; 2] = ["trusted.overlay.whiteout", "user.overlay.whiteout"];

fn sorted_children(dir: &Path) -> Result<Vec<OsString>> {
    let mut names = Vec::new();
    match fs::read_dir(dir) {
        Ok(rd) => {
            for e in rd {
                names.push(e.map_err(io_err("read directory", dir))?.file_name());
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(io_err("read directory", dir)(e)),
    }
    names.sort();
    Ok(names)
}

fn lstat(path: &Path) -> Result<Option<fs::Metadata>> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("lstat", path)(e)),
    }
}

impl ChangeSet {
    /// A change set from explicit parts. Paths are taken relative to
    /// `source`; the order does not matter (writers sort).
    pub fn new(source: impl Into<PathBuf>, changes: Vec<Change>) -> ChangeSet {
        let mut changes = changes;
        changes.sort();
        changes.dedup();
        ChangeSet {
            source: source.into(),
            changes,
        }
    }

    /// The directory holding the new content of added and modified paths.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The changes, sorted by path.
    pub fn changes(&self) -> &[Change] {
        &self.changes
    }

    /// True when nothing changed.
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    /// Every entry below `dir` (not `dir` itself) as an addition.
    pub fn added_tree(dir: impl AsRef<Path>) -> Result<ChangeSet> {
        let dir = dir.as_ref();
        let mut changes = Vec::new();
        add_all(dir, Path::new(""), &mut changes)?;
        Ok(ChangeSet::new(dir, changes))
    }

    /// The changes an overlayfs upper directory records.
    ///
    /// Whiteouts (character devices 0/0, and files carrying the
    /// `overlay.whiteout` xattr of kernel 6.7's "xwhiteouts") become
    /// deletions, directories with `trusted.overlay.opaque=y` or
    /// `user.overlay.opaque=y` become opaque replacements, everything else
    /// is an addition or modification. Directories renamed with
    /// `redirect_dir` and metadata-only copy-ups (`metacopy`) cannot be
    /// expressed as a layer from the upper directory alone and are refused
    /// with [`Error::UnsupportedOverlay`]; mount with `redirect_dir=off,metacopy=off`
    /// (the kernel default) to avoid them.
    pub fn from_overlay_upper(upper: impl AsRef<Path>) -> Result<ChangeSet> {
        let upper = upper.as_ref();
        let mut changes = Vec::new();
        walk_upper(upper, Path::new(""), &mut changes)?;
        Ok(ChangeSet::new(upper, changes))
    }

    /// The changes that turn `before` into `after` (the new content is read
    /// from `after`).
    ///
    /// Entries are compared by type, mode, owner, size, modification time,
    /// symlink target, device number and xattrs; file content is compared
    /// only when all of those match but the modification time has no
    /// sub-second part (a coarse-timestamp file system could hide an edit).
    /// Type changes are modifications (the applier replaces the old entry);
    /// a directory whose old children are all gone becomes
    /// [`ChangeKind::Opaque`] instead of one whiteout per child. Files
    /// hardlinked together in `after` are all included when one of them
    /// changes, so the layer keeps them linked.
    pub fn diff_trees(before: impl AsRef<Path>, after: impl AsRef<Path>) -> Result<ChangeSet> {
        let (before, after) = (before.as_ref(), after.as_ref());
        let mut d = Differ {
            before,
            after,
            changes: Vec::new(),
            links: HashMap::new(),
        };
        d.dir(Path::new(""))?;
        let Differ {
            mut changes, links, ..
        } = d;
        // Keep hardlink groups whole: if any member is in the set, all are.
        let in_set: BTreeSet<PathBuf> = changes.iter().map(|c| c.path.clone()).collect();
        for group in links.values().filter(|g| g.len() > 1) {
            if group.iter().any(|p| in_set.contains(p)) {
                for p in group.iter().filter(|p| !in_set.contains(*p)) {
                    changes.push(Change {
                        path: p.clone(),
                        kind: ChangeKind::Modified,
                    });
                }
            }
        }
        Ok(ChangeSet::new(after, changes))
    }
}

fn add_all(root: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_children(&root.join(rel))? {
        let child = rel.join(&name);
        out.push(Change {
            path: child.clone(),
            kind: ChangeKind::Added,
        });
        let m =
            fs::symlink_metadata(root.join(&child)).map_err(io_err("lstat", root.join(&child)))?;
        if m.is_dir() {
            add_all(root, &child, out)?;
        }
    }
    Ok(())
}

fn has_any_xattr(path: &Path, names: &[&str]) -> Result<Option<Vec<u8>>> {
    for n in names {
        if let Some(v) = fsutil::xattr(path, n).map_err(io_err("getxattr", path))? {
            return Ok(Some(v));
        }
    }
    Ok(None)
}

fn walk_upper(upper: &Path, rel: &Path, out: &mut Vec<Change>) -> Result<()> {
    for name in sorted_children(&upper.join(rel))? {
        let child = rel.join(&name);
        let full = upper.join(&child);
        let m = fs::symlink_metadata(&full).map_err(io_err("lstat", &full))?;
        let kind = Kind::of(&m);
        if kind == Kind::Char && m.rdev() == 0 {
            out.push(Change {
                path: child,
                kind: ChangeKind::Deleted,
            });
            continue;
        }
        if kind == Kind::File {
            if has_any_xattr(&full, &METACOPY_XATTRS)?.is_some() {
                return Err(Error::UnsupportedOverlay {
                    path: full,
                    feature: "metacopy",
                    hint: "metacopy=off",
                });
            }
            if m.len() == 0 && has_any_xattr(&full, &XWHITEOUT_XATTRS)?.is_some() {
                out.push(Change {
                    path: child,
                    kind: ChangeKind::Deleted,
                });
                continue;
            }
        }
        if kind == Kind::Dir {
            if has_any_xattr(&full, &REDIRECT_XATTRS)?.is_some() {
                return Err(Error::UnsupportedOverlay {
                    path: full,
                    feature: "redirect_dir",
                    hint: "redirect_dir=off",
                });
            }
            // "y" marks an opaque directory; "x" (kernel 6.7+) only says the
            // directory contains xwhiteouts, which the walk handles.
            let opaque = has_any_xattr(&full, &OPAQUE_XATTRS)?.is_some_and(|v| v == b"y");
            out.push(Change {
                path: child.clone(),
                kind: if opaque {
                    ChangeKind::Opaque
                } else {
                    ChangeKind::Modified
                },
            });
            walk_upper(upper, &child, out)?;
            continue;
        }
        out.push(Change {
            path: child,
            kind: ChangeKind::Added,
        });
    }
    Ok(())
}

struct Differ<'a> {
    before: &'a Path,
    after: &'a Path,
    changes: Vec<Change>,
    /// (dev, ino) -> paths in `after`, for files with more than one link.
    links: HashMap<(u64, u64), Vec<PathBuf>>,
}

impl Differ<'_> {
    fn note_links(&mut self, rel: &Path, m: &fs::Metadata) {
        if !m.is_dir() && m.nlink() > 1 {
            self.links
                .entry((m.dev(), m.ino()))
                .or_default()
                .push(rel.to_path_buf());
        }
    }

    fn push(&mut self, path: &Path, kind: ChangeKind) {
        self.changes.push(Change {
            path: path.to_path_buf(),
            kind,
        });
    }

    /// Everything below `rel` in `after` is new.
    fn added_below(&mut self, rel: &Path) -> Result<()> {
        for name in sorted_children(&self.after.join(rel))? {
            let child = rel.join(&name);
            let full = self.after.join(&child);
            let m = fs::symlink_metadata(&full).map_err(io_err("lstat", &full))?;
            self.note_links(&child, &m);
            self.push(&child, ChangeKind::Added);
            if m.is_dir() {
                self.added_below(&child)?;
            }
        }
        Ok(())
    }

    fn dir(&mut self, rel: &Path) -> Result<()> {
        let b_names = sorted_children(&self.before.join(rel))?;
        let a_names = sorted_children(&self.after.join(rel))?;
        let b_set: BTreeSet<&OsString> = b_names.iter().collect();
        let a_set: BTreeSet<&OsString> = a_names.iter().collect();
        let union: BTreeSet<&OsString> = b_set.union(&a_set).copied().collect();
        for name in union {
            let child = rel.join(name);
            let b = lstat(&self.before.join(&child))?;
            let a = lstat(&self.after.join(&child))?;
            match (b, a) {
                (Some(_), None) => self.push(&child, ChangeKind::Deleted),
                (None, Some(a)) => {
                    self.note_links(&child, &a);
                    self.push(&child, ChangeKind::Added);
                    if a.is_dir() {
                        self.added_below(&child)?;
                    }
                }
                (Some(b), Some(a)) => {
                    self.note_links(&child, &a);
                    let (bk, ak) = (Kind::of(&b), Kind::of(&a));
                    if bk != ak {
                        self.push(&child, ChangeKind::Modified);
                        if ak == Kind::Dir {
                            self.added_below(&child)?;
                        }
                    } else if ak == Kind::Dir {
                        let old = sorted_children(&self.before.join(&child))?;
                        let new = sorted_children(&self.after.join(&child))?;
                        let none_kept =
                            !old.is_empty() && old.iter().all(|n| new.binary_search(n).is_err());
                        if none_kept && old.len() > 1 {
                            // Replaced wholesale: one opaque marker instead
                            // of a whiteout per old child.
                            self.push(&child, ChangeKind::Opaque);
                            self.added_below(&child)?;
                        } else {
                            if !self.same_meta(&child, &b, &a)? {
                                self.push(&child, ChangeKind::Modified);
                            }
                            self.dir(&child)?;
                        }
                    } else if !self.same_entry(&child, &b, &a, ak)? {
                        self.push(&child, ChangeKind::Modified);
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    fn same_meta(&self, rel: &Path, b: &fs::Metadata, a: &fs::Metadata) -> Result<bool> {
        if b.mode() != a.mode()
            || b.uid() != a.uid()
            || b.gid() != a.gid()
            || fsutil::mtime(b) != fsutil::mtime(a)
        {
            return Ok(false);
        }
        let (bp, ap) = (self.before.join(rel), self.after.join(rel));
        let bx = fsutil::xattrs(&bp).map_err(io_err("list xattrs", &bp))?;
        let ax = fsutil::xattrs(&ap).map_err(io_err("list xattrs", &ap))?;
        Ok(bx == ax)
    }

    fn same_entry(
        &self,
        rel: &Path,
        b: &fs::Metadata,
        a: &fs::Metadata,
        kind: Kind,
    ) -> Result<bool> {
        if b.len() != a.len() || !self.same_meta(rel, b, a)? {
            return Ok(false);
        }
        let (bp, ap) = (self.before.join(rel), self.after.join(rel));
        match kind {
            Kind::Symlink => {
                let bt = fs::read_link(&bp).map_err(io_err("readlink", &bp))?;
                let at = fs::read_link(&ap).map_err(io_err("readlink", &ap))?;
                Ok(bt == at)
            }
            Kind::Char | Kind::Block => Ok(b.rdev() == a.rdev()),
            Kind::File => {
                if a.mtime_nsec() != 0 || (a.dev() == b.dev() && a.ino() == b.ino()) {
                    return Ok(true);
                }
                same_content(&bp, &ap)
            }
            Kind::Fifo | Kind::Socket | Kind::Dir => Ok(true),
        }
    }
}

fn same_content(x: &Path, y: &Path) -> Result<bool> {
    let mut fx = File::open(x).map_err(io_err("open", x))?;
    let mut fy = File::open(y).map_err(io_err("open", y))?;
    let mut bx = vec![0u8; 64 * 1024];
    let mut by = vec![0u8; 64 * 1024];
    loop {
        let nx = read_full(&mut fx, &mut bx).map_err(io_err("read", x))?;
        let ny = read_full(&mut fy, &mut by).map_err(io_err("read", y))?;
        if nx != ny || bx[..nx] != by[..ny] {
            return Ok(false);
        }
        if nx == 0 {
            return Ok(true);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Paths of a change set grouped for quick lookup (used by the writer).
pub(crate) fn index(changes: &[Change]) -> BTreeMap<&Path, ChangeKind> {
    changes.iter().map(|c| (c.path.as_path(), c.kind)).collect()
}
