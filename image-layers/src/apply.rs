//! The layer applier, safe against hostile archives.
//!
//! Every entry's path is cleaned (leading `/` and `./` dropped; any `..`
//! component refuses the layer) and its parent directory is opened with
//! `openat2(RESOLVE_IN_ROOT)`, so symlinks already in the tree are
//! followed *as if the target were `/`* — the scoping Docker's
//! `FollowSymlinkInScope` gives — and nothing can resolve outside the
//! target. The final component is then created with `*at` system calls
//! relative to that directory descriptor, never following a symlink
//! (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `linkat` without
//! `AT_SYMLINK_FOLLOW`). A symlink planted by one entry therefore cannot
//! redirect a later write, and a hardlink can only name a file inside the
//! target.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use oci_spec::image::Descriptor;
use rustix::fs::{AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;

use crate::compression::Compression;
use crate::control::{Control, Progress};
use crate::digest::{Algorithm, Digest, DigestReader};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::store::Store;

/// How whiteouts in the layer are applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Whiteouts {
    /// Delete what they name (flattening layers into one root filesystem).
    #[default]
    Apply,
    /// Turn them into overlayfs markers, for a directory that will be an
    /// overlay lower layer: `.wh.x` becomes a 0/0 character device `x`,
    /// `.wh..wh..opq` sets the opaque xattr on its directory.
    Overlay(OverlayXattr),
}

/// Which xattr namespace overlay opaque markers use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverlayXattr {
    /// `trusted.overlay.opaque` (needs CAP_SYS_ADMIN; the default mount).
    #[default]
    Trusted,
    /// `user.overlay.opaque` (overlay mounted with `userxattr`, rootless).
    User,
}

/// What to do with file owners recorded in the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ownership {
    /// Set owner and group as recorded (needs CAP_CHOWN).
    Preserve,
    /// Leave files owned by the applying user.
    Ignore,
    /// Add these offsets to uid and gid (a user namespace's host range).
    Shift {
        /// Added to every uid.
        uid: u32,
        /// Added to every gid.
        gid: u32,
    },
}

/// What to do with character and block devices in the layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DevicePolicy {
    /// Create them (needs CAP_MKNOD).
    Create,
    /// Leave them out and list them in [`ApplyReport::skipped`].
    Skip,
    /// Refuse the layer.
    Reject,
}

/// Choices for [`apply_layer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ApplyOptions {
    /// How whiteouts are applied. Default: [`Whiteouts::Apply`].
    pub whiteouts: Whiteouts,
    /// Owners. Default: [`Ownership::Preserve`] when running as root,
    /// else [`Ownership::Ignore`].
    pub ownership: Ownership,
    /// Device nodes. Default: [`DevicePolicy::Create`] as root, else
    /// [`DevicePolicy::Skip`].
    pub devices: DevicePolicy,
    /// Apply xattrs recorded in the layer (`SCHILY.xattr.*`). overlayfs
    /// private xattrs (`trusted.overlay.*`, `user.overlay.*`) are never
    /// applied from a layer. xattrs the file system refuses with
    /// EOPNOTSUPP/EPERM are listed in [`ApplyReport::skipped`]. Default: true.
    pub xattrs: bool,
    /// Refuse entries larger than this many bytes (a tar header can claim
    /// up to 8 EiB). Default: 64 GiB.
    pub max_entry_size: u64,
    /// Name of the layer for error messages (its digest). Default: "layer".
    pub layer_name: String,
    /// Progress sink and cancellation flag. Default: none.
    pub control: Control,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        let root = rustix::process::geteuid().is_root();
        ApplyOptions {
            whiteouts: Whiteouts::Apply,
            ownership: if root {
                Ownership::Preserve
            } else {
                Ownership::Ignore
            },
            devices: if root {
                DevicePolicy::Create
            } else {
                DevicePolicy::Skip
            },
            xattrs: true,
            max_entry_size: 64 << 30,
            layer_name: "layer".into(),
            control: Control::default(),
        }
    }
}

/// What [`apply_layer`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApplyReport {
    /// The compression detected.
    pub compression: Compression,
    /// The diffID: digest of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub uncompressed_size: u64,
    /// Entries applied (including whiteouts).
    pub entries: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    /// Entries or attributes left out by policy: (entry path, reason).
    pub skipped: Vec<(String, String)>,
}

impl Store {
    /// Applies the layer blob `layer` onto `target`, checking that the
    /// blob hashes to the descriptor's digest.
    pub fn apply_layer(
        &self,
        layer: &Descriptor,
        target: &Path,
        options: &ApplyOptions,
    ) -> Result<ApplyReport> {
        let digest = Digest::from_oci(layer.digest())?;
        let mut opts = options.clone();
        opts.layer_name = digest.to_string();
        let reader = DigestReader::new(self.open_blob(&digest)?, digest.algorithm());
        let mut counted = reader;
        let report = apply_layer(&mut counted, target, &opts)?;
        // Drain what the tar reader left (padding after the end marker).
        io::copy(&mut counted, &mut io::sink()).map_err(|e| Error::LayerRead {
            layer: digest.to_string(),
            entry: None,
            source: e,
        })?;
        let (_, actual, _) = counted.finish();
        if actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("layer blob applied to {}", target.display()),
                expected: digest,
                actual,
            });
        }
        Ok(report)
    }
}

/// Applies a layer (plain, gzip or zstd tar — detected from its first
/// bytes) onto the directory `target`, which must exist.
///
/// On error the target may hold part of the layer, but never anything
/// outside it.
pub fn apply_layer(
    reader: impl Read,
    target: &Path,
    options: &ApplyOptions,
) -> Result<ApplyReport> {
    let layer = options.layer_name.clone();
    let read_err = |entry: Option<String>| {
        let layer = layer.clone();
        move |source| Error::LayerRead {
            layer,
            entry,
            source,
        }
    };
    let (compression, decoder) = Compression::auto_decoder(reader).map_err(read_err(None))?;
    let mut tar_stream = DigestReader::new(decoder, Algorithm::Sha256);
    let root = rustix::fs::open(
        target,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "open target directory",
        path: target.to_path_buf(),
        source: e.into(),
    })?;
    let mut ap = Applier {
        root,
        options,
        written: HashSet::new(),
        ancestors: HashSet::new(),
        dir_times: Vec::new(),
        report_entries: 0,
        bytes: 0,
        skipped: Vec::new(),
        buf: vec![0u8; 1 << 20],
    };
    {
        let mut archive = tar::Archive::new(&mut tar_stream);
        let entries = archive.entries().map_err(read_err(None))?;
        for entry in entries {
            let mut entry = entry.map_err(read_err(None))?;
            let raw_path = entry.path_bytes().into_owned();
            let shown = String::from_utf8_lossy(&raw_path).into_owned();
            ap.entry(&mut entry, &raw_path, &shown)?;
            options.control.tick(
                "apply layer",
                Progress {
                    entries: ap.report_entries,
                    bytes: ap.bytes,
                },
            )?;
        }
    }
    // Directory times last, deepest first: creating children changes them.
    ap.finish_dir_times()?;
    io::copy(&mut tar_stream, &mut io::sink()).map_err(read_err(None))?;
    let (_, diff_id, uncompressed_size) = tar_stream.finish();
    Ok(ApplyReport {
        compression,
        diff_id,
        uncompressed_size,
        entries: ap.report_entries,
        bytes: ap.bytes,
        skipped: ap.skipped,
    })
}

/// Cleans an archive path into components inside the root. `None` means
/// the root itself.
fn clean(raw: &[u8]) -> std::result::Result<Vec<&[u8]>, &'static str> {
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path has a '..' component"),
            c => out.push(c),
        }
    }
    Ok(out)
}

fn join(c: &[&[u8]]) -> Vec<u8> {
    c.join(&b'/')
}

struct Applier<'a> {
    root: OwnedFd,
    options: &'a ApplyOptions,
    /// Paths (cleaned) written by this layer, for opaque directories.
    written: HashSet<Vec<u8>>,
    ancestors: HashSet<Vec<u8>>,
    dir_times: Vec<(Vec<u8>, (i64, u32))>,
    report_entries: u64,
    bytes: u64,
    skipped: Vec<(String, String)>,
    buf: Vec<u8>,
}

/// Numbers parsed from PAX records that ustar fields cannot hold.
struct Meta {
    mtime: (i64, u32),
    uid: u64,
    gid: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

fn os(b: &[u8]) -> &std::ffi::OsStr {
    std::os::unix::ffi::OsStrExt::from_bytes(b)
}

impl Applier<'_> {
    fn unsafe_entry(&self, entry: &str, reason: impl Into<String>) -> Error {
        Error::UnsafeEntry {
            layer: self.options.layer_name.clone(),
            entry: entry.to_owned(),
            reason: reason.into(),
        }
    }

    fn fail(&self, entry: &str, op: impl Into<String>) -> impl FnOnce(Errno) -> Error {
        let layer = self.options.layer_name.clone();
        let entry = entry.to_owned();
        let op = op.into();
        move |e| Error::Apply {
            layer,
            entry,
            op,
            source: e.into(),
        }
    }

    /// Opens directory `comps` under the root, creating missing
    /// directories (mode 0755) on the way, all resolved inside the root.
    fn open_dir(&self, comps: &[&[u8]], shown: &str) -> Result<OwnedFd> {
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let path = if comps.is_empty() {
            b".".to_vec()
        } else {
            join(comps)
        };
        match rustix::fs::openat2(&self.root, os(&path), flags, Mode::empty(), how) {
            Ok(fd) => return Ok(fd),
            Err(Errno::NOENT) => {}
            Err(e) => {
                return Err(self.fail(
                    shown,
                    format!("open parent directory {}", String::from_utf8_lossy(&path)),
                )(e));
            }
        }
        self.create_dirs(comps, shown)
    }

    /// The slow path of [`open_dir`](Self::open_dir): walks `comps` one
    /// component at a time from the root, creating missing directories and
    /// expanding symlinks *as if the root were `/`* (absolute targets
    /// restart at the root, `..` stops at it), so a symlink whose target
    /// does not exist yet gets that target created inside the root — what
    /// Docker's `FollowSymlinkInScope` + `MkdirAll` do.
    fn create_dirs(&self, comps: &[&[u8]], shown: &str) -> Result<OwnedFd> {
        let how = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        let open = |resolved: &[Vec<u8>]| {
            let p = if resolved.is_empty() {
                b".".to_vec()
            } else {
                resolved.join(&b'/')
            };
            rustix::fs::openat2(&self.root, os(&p), flags, Mode::empty(), how)
        };
        let mut queue: std::collections::VecDeque<Vec<u8>> =
            comps.iter().map(|c| c.to_vec()).collect();
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut links = 0;
        while let Some(c) = queue.pop_front() {
            if c.is_empty() || c == b"." {
                continue;
            }
            if c == b".." {
                resolved.pop();
                continue;
            }
            let parent = open(&resolved).map_err(self.fail(shown, "open parent directory"))?;
            match rustix::fs::statat(&parent, os(&c), AtFlags::SYMLINK_NOFOLLOW) {
                Err(Errno::NOENT) => {
                    match rustix::fs::mkdirat(&parent, os(&c), Mode::from_raw_mode(0o755)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(self.fail(shown, "mkdirat parent")(e)),
                    }
                    resolved.push(c);
                }
                Err(e) => return Err(self.fail(shown, "lstat parent")(e)),
                Ok(st) => match FileType::from_raw_mode(st.st_mode) {
                    FileType::Directory => resolved.push(c),
                    FileType::Symlink => {
                        links += 1;
                        if links > 40 {
                            return Err(self.fail(shown, "resolve parent directory")(Errno::LOOP));
                        }
                        let target = rustix::fs::readlinkat(&parent, os(&c), Vec::new())
                            .map_err(self.fail(shown, "readlinkat"))?;
                        let target = target.into_bytes();
                        if target.starts_with(b"/") {
                            resolved.clear();
                        }
                        for t in target.split(|&b| b == b'/').rev() {
                            queue.push_front(t.to_vec());
                        }
                    }
                    _ => return Err(self.fail(shown, "parent is not a directory")(Errno::NOTDIR)),
                },
            }
        }
        open(&resolved).map_err(self.fail(shown, "open created parent"))
    }

    fn note_written(&mut self, comps: &[&[u8]]) {
        self.written.insert(join(comps));
        for i in 1..comps.len() {
            self.ancestors.insert(join(&comps[..i]));
        }
    }

    fn entry<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        raw_path: &[u8],
        shown: &str,
    ) -> Result<()> {
        let header = entry.header().clone();
        let etype = header.entry_type();
        let comps = clean(raw_path).map_err(|r| self.unsafe_entry(shown, r))?;
        let mut meta = Meta {
            mtime: (header.mtime().unwrap_or(0) as i64, 0),
            uid: header.uid().unwrap_or(0),
            gid: header.gid().unwrap_or(0),
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().map_err(|e| Error::LayerRead {
            layer: self.options.layer_name.clone(),
            entry: Some(shown.to_owned()),
            source: e,
        })? {
            for ext in exts.flatten() {
                let key = ext.key_bytes();
                let value = ext.value_bytes();
                if let Some(name) = key.strip_prefix(b"SCHILY.xattr.") {
                    meta.xattrs.push((name.to_vec(), value.to_vec()));
                } else if key == b"mtime" {
                    if let Some(t) = parse_pax_time(value) {
                        meta.mtime = t;
                    }
                } else if key == b"uid" {
                    if let Some(v) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok()) {
                        meta.uid = v;
                    }
                } else if key == b"gid"
                    && let Some(v) = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok())
                {
                    meta.gid = v;
                }
            }
        }
        if matches!(
            etype,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        self.report_entries += 1;
        let Some((name, parent)) = comps.split_last() else {
            // The root directory itself: apply its metadata only.
            if etype.is_dir() {
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };
        let name: &[u8] = name;
        let size = entry.size();
        if size > self.options.max_entry_size {
            return Err(self.unsafe_entry(
                shown,
                format!(
                    "size {size} exceeds the limit of {} bytes",
                    self.options.max_entry_size
                ),
            ));
        }
        let dir = self.open_dir(parent, shown)?;

        // Whiteouts (image-spec layer.md "Whiteouts").
        if let Some(hidden) = name.strip_prefix(b".wh.") {
            if hidden == b".wh..opq" {
                return self.opaque(&dir, parent, shown);
            }
            if hidden.starts_with(b".wh.") {
                // aufs metadata (.wh..wh.plnk, .wh..wh.aufs): not content.
                return Ok(());
            }
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.unsafe_entry(shown, "whiteout of an invalid name"));
            }
            match self.options.whiteouts {
                Whiteouts::Apply => self.remove_all(&dir, hidden, shown)?,
                Whiteouts::Overlay(_) => {
                    self.remove_all(&dir, hidden, shown)?;
                    rustix::fs::mknodat(
                        &dir,
                        os(hidden),
                        FileType::CharacterDevice,
                        Mode::empty(),
                        0,
                    )
                    .map_err(self.fail(shown, "mknodat overlay whiteout (needs CAP_MKNOD)"))?;
                }
            }
            let mut c = parent.to_vec();
            c.push(hidden);
            self.note_written(&c);
            return Ok(());
        }

        // Replace what is there unless both are directories.
        let existing = rustix::fs::statat(&dir, os(name), AtFlags::SYMLINK_NOFOLLOW);
        let existing_is_dir = matches!(&existing, Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Directory);
        if existing.is_ok() && !(etype.is_dir() && existing_is_dir) {
            self.remove_all(&dir, name, shown)?;
        }
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mut owner_and_times = true;
        match etype {
            t if t.is_dir() => {
                if !existing_is_dir {
                    rustix::fs::mkdirat(&dir, os(name), Mode::from_raw_mode(0o700))
                        .map_err(self.fail(shown, "mkdirat"))?;
                }
            }
            t if t.is_file()
                || t == tar::EntryType::Continuous
                || t == tar::EntryType::GNUSparse =>
            {
                let fd = rustix::fs::openat(
                    &dir,
                    os(name),
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(self.fail(shown, "create file"))?;
                let mut file = std::fs::File::from(fd);
                let n = self.copy_sparse(entry, &mut file, shown)?;
                self.bytes += n;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                // The target text is stored as is: symlinks are only ever
                // resolved inside the root by this applier and by the
                // container's own root.
                rustix::fs::symlinkat(os(&target), &dir, os(name))
                    .map_err(self.fail(shown, "symlinkat"))?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let tcomps = clean(&target)
                    .map_err(|r| self.unsafe_entry(shown, format!("hardlink target: {r}")))?;
                let Some((tname, tparent)) = tcomps.split_last() else {
                    return Err(self.unsafe_entry(shown, "hardlink to the root directory"));
                };
                let tdir = self.open_dir(tparent, shown)?;
                rustix::fs::linkat(&tdir, os(tname), &dir, os(name), AtFlags::empty())
                    .map_err(self.fail(shown, "linkat"))?;
                // A hardlink shares the target's inode and metadata.
                owner_and_times = false;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                match self.options.devices {
                    DevicePolicy::Reject => {
                        return Err(self.unsafe_entry(shown, "device node refused by policy"));
                    }
                    DevicePolicy::Skip => {
                        self.skipped
                            .push((shown.to_owned(), "device node skipped by policy".into()));
                        return Ok(());
                    }
                    DevicePolicy::Create => {
                        let ft = if etype == tar::EntryType::Char {
                            FileType::CharacterDevice
                        } else {
                            FileType::BlockDevice
                        };
                        rustix::fs::mknodat(
                            &dir,
                            os(name),
                            ft,
                            Mode::from_raw_mode(mode),
                            rustix::fs::makedev(major, minor),
                        )
                        .map_err(self.fail(shown, "mknodat device"))?;
                    }
                }
            }
            tar::EntryType::Fifo => {
                rustix::fs::mknodat(&dir, os(name), FileType::Fifo, Mode::from_raw_mode(mode), 0)
                    .map_err(self.fail(shown, "mknodat fifo"))?;
            }
            other => {
                self.skipped.push((
                    shown.to_owned(),
                    format!("unsupported tar entry type {:?}", other.as_byte() as char),
                ));
                return Ok(());
            }
        }
        self.note_written(&comps);
        if owner_and_times {
            self.set_meta(&dir, name, &comps, etype, mode, &meta, shown)?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn set_meta(
        &mut self,
        dir: &OwnedFd,
        name: &[u8],
        comps: &[&[u8]],
        etype: tar::EntryType,
        mode: u32,
        meta: &Meta,
        shown: &str,
    ) -> Result<()> {
        let is_link = etype == tar::EntryType::Symlink;
        let ids = match self.options.ownership {
            Ownership::Preserve => Some((meta.uid, meta.gid)),
            Ownership::Ignore => None,
            Ownership::Shift { uid, gid } => {
                Some((meta.uid + u64::from(uid), meta.gid + u64::from(gid)))
            }
        };
        if let Some((uid, gid)) = ids {
            let (u, g) = (
                u32::try_from(uid).unwrap_or(u32::MAX - 1),
                u32::try_from(gid).unwrap_or(u32::MAX - 1),
            );
            // Ids beyond u32 cannot exist on Linux; clamp rather than wrap.
            rustix::fs::chownat(
                dir,
                os(name),
                Some(rustix::fs::Uid::from_raw(u)),
                Some(rustix::fs::Gid::from_raw(g)),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(self.fail(shown, format!("chown {u}:{g}")))?;
        }
        if !is_link {
            // After chown: chown clears set-id bits.
            rustix::fs::chmodat(dir, os(name), Mode::from_raw_mode(mode), AtFlags::empty())
                .map_err(self.fail(shown, "chmod"))?;
        }
        if self.options.xattrs && !meta.xattrs.is_empty() {
            // lsetxattr through the directory's /proc/self/fd magic link:
            // the directory is already resolved inside the root, and the
            // final component is not followed.
            let p =
                PathBuf::from(format!("/proc/self/fd/{}", dir.as_fd().as_raw_fd())).join(os(name));
            for (k, v) in &meta.xattrs {
                if fsutil::is_overlay_xattr(k) {
                    self.skipped.push((
                        shown.to_owned(),
                        format!(
                            "overlay xattr {} not applied from a layer",
                            String::from_utf8_lossy(k)
                        ),
                    ));
                    continue;
                }
                match rustix::fs::lsetxattr(&p, os(k), v, rustix::fs::XattrFlags::empty()) {
                    Ok(()) => {}
                    Err(e) if e == Errno::NOTSUP || e == Errno::PERM => {
                        self.skipped.push((
                            shown.to_owned(),
                            format!("xattr {}: {e}", String::from_utf8_lossy(k)),
                        ));
                    }
                    Err(e) => {
                        return Err(self
                            .fail(shown, format!("lsetxattr {}", String::from_utf8_lossy(k)))(
                            e,
                        ));
                    }
                }
            }
        }
        if etype.is_dir() {
            self.dir_times.push((join(comps), meta.mtime));
        } else {
            let t = Timespec {
                tv_sec: meta.mtime.0,
                tv_nsec: i64::from(meta.mtime.1) as _,
            };
            rustix::fs::utimensat(
                dir,
                os(name),
                &Timestamps {
                    last_access: t,
                    last_modification: t,
                },
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(self.fail(shown, "utimensat"))?;
        }
        Ok(())
    }

    fn finish_dir_times(&mut self) -> Result<()> {
        let mut times = std::mem::take(&mut self.dir_times);
        times.sort_by(|a, b| b.0.cmp(&a.0));
        times.dedup_by(|a, b| a.0 == b.0);
        for (path, t) in times {
            let shown = String::from_utf8_lossy(&path).into_owned();
            let comps = clean(&path).map_err(|r| self.unsafe_entry(&shown, r))?;
            let ts = Timespec {
                tv_sec: t.0,
                tv_nsec: i64::from(t.1) as _,
            };
            let stamps = Timestamps {
                last_access: ts,
                last_modification: ts,
            };
            match comps.split_last() {
                Some((name, parent)) => {
                    let dir = self.open_dir(parent, &shown)?;
                    match rustix::fs::utimensat(&dir, os(name), &stamps, AtFlags::SYMLINK_NOFOLLOW)
                    {
                        // Removed again by a later whiteout in the same layer.
                        Ok(()) | Err(Errno::NOENT) => {}
                        Err(e) => return Err(self.fail(&shown, "utimensat directory")(e)),
                    }
                }
                None => {
                    let dir = self.open_dir(&[], &shown)?;
                    let fd = rustix::fs::openat(
                        &dir,
                        ".",
                        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(self.fail(&shown, "open root"))?;
                    rustix::fs::futimens(&fd, &stamps)
                        .map_err(self.fail(&shown, "futimens root"))?;
                }
            }
        }
        Ok(())
    }

    /// Copies entry data, seeking over all-zero blocks so sparse files stay
    /// sparse; returns the bytes of content.
    fn copy_sparse(
        &mut self,
        r: &mut impl Read,
        f: &mut std::fs::File,
        shown: &str,
    ) -> Result<u64> {
        use std::io::Seek;
        let mut total = 0u64;
        let mut hole = false;
        loop {
            let n = match r.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(Error::LayerRead {
                        layer: self.options.layer_name.clone(),
                        entry: Some(shown.to_owned()),
                        source: e,
                    });
                }
            };
            let chunk = &self.buf[..n];
            let io_fail = |e: io::Error| Error::Apply {
                layer: self.options.layer_name.clone(),
                entry: shown.to_owned(),
                op: "write file".into(),
                source: e,
            };
            if n >= 4096 && chunk.iter().all(|&b| b == 0) {
                f.seek(io::SeekFrom::Current(n as i64)).map_err(io_fail)?;
                hole = true;
            } else {
                f.write_all(chunk).map_err(io_fail)?;
                hole = false;
            }
            total += n as u64;
        }
        if hole {
            f.set_len(total).map_err(|e| Error::Apply {
                layer: self.options.layer_name.clone(),
                entry: shown.to_owned(),
                op: "ftruncate".into(),
                source: e,
            })?;
        }
        Ok(total)
    }

    fn opaque(&mut self, parent_dir: &OwnedFd, parent: &[&[u8]], shown: &str) -> Result<()> {
        match self.options.whiteouts {
            Whiteouts::Overlay(x) => {
                let name = match x {
                    OverlayXattr::Trusted => "trusted.overlay.opaque",
                    OverlayXattr::User => "user.overlay.opaque",
                };
                let fd = rustix::fs::openat(
                    parent_dir,
                    ".",
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(self.fail(shown, "open opaque directory"))?;
                rustix::fs::fsetxattr(&fd, name, b"y", rustix::fs::XattrFlags::empty())
                    .map_err(self.fail(shown, format!("setxattr {name}")))?;
            }
            Whiteouts::Apply => {
                let prefix = join(parent);
                self.clear_unwritten(parent_dir, &prefix, shown)?;
            }
        }
        Ok(())
    }

    /// Removes children of `dir` (at cleaned path `prefix`) that this layer
    /// did not write, keeping directories on the way to written paths.
    fn clear_unwritten(&mut self, dir: &OwnedFd, prefix: &[u8], shown: &str) -> Result<()> {
        let rd_fd = rustix::fs::openat(
            dir,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(self.fail(shown, "open directory"))?;
        let mut names = Vec::new();
        let d = rustix::fs::Dir::read_from(&rd_fd).map_err(self.fail(shown, "read directory"))?;
        for ent in d {
            let ent = ent.map_err(self.fail(shown, "read directory"))?;
            let n = ent.file_name().to_bytes().to_vec();
            if n != b"." && n != b".." {
                names.push(n);
            }
        }
        for n in names {
            let full = if prefix.is_empty() {
                n.clone()
            } else {
                [prefix, b"/", &n].concat()
            };
            if self.written.contains(&full) || self.ancestors.contains(&full) {
                if self.ancestors.contains(&full) {
                    let sub = rustix::fs::openat(
                        &rd_fd,
                        os(&n),
                        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                        Mode::empty(),
                    );
                    if let Ok(sub) = sub {
                        self.clear_unwritten(&sub, &full, shown)?;
                    }
                }
                continue;
            }
            self.remove_all(&rd_fd, &n, shown)?;
        }
        Ok(())
    }

    /// Removes `name` in `dir`, recursively for directories, never
    /// following symlinks. Missing is fine.
    fn remove_all(&self, dir: &impl AsFd, name: &[u8], shown: &str) -> Result<()> {
        match rustix::fs::unlinkat(dir, os(name), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(self.fail(shown, "unlinkat")(e)),
        }
        let sub = match rustix::fs::openat(
            dir,
            os(name),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(()),
            Err(e) => return Err(self.fail(shown, "open directory to remove")(e)),
        };
        let mut names = Vec::new();
        let d = rustix::fs::Dir::read_from(&sub).map_err(self.fail(shown, "read directory"))?;
        for ent in d {
            let ent = ent.map_err(self.fail(shown, "read directory"))?;
            let n = ent.file_name().to_bytes().to_vec();
            if n != b"." && n != b".." {
                names.push(n);
            }
        }
        for n in names {
            self.remove_all(&sub, &n, shown)?;
        }
        rustix::fs::unlinkat(dir, os(name), AtFlags::REMOVEDIR).map_err(self.fail(shown, "rmdir"))
    }
}

fn parse_pax_time(v: &[u8]) -> Option<(i64, u32)> {
    let s = std::str::from_utf8(v).ok()?;
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    let sec: i64 = sec.parse().ok()?;
    let mut nanos = 0u32;
    if !frac.is_empty() {
        let digits: String = frac.chars().take(9).collect();
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = format!("{digits:0<9}").parse().ok()?;
    }
    Some((sec, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_strips_and_refuses() {
        assert_eq!(clean(b"/a/./b/"), Ok(vec![&b"a"[..], b"b"]));
        assert_eq!(clean(b"./"), Ok(vec![]));
        assert!(clean(b"a/../../etc").is_err());
        assert!(clean(b"..").is_err());
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time(b"12.5"), Some((12, 500_000_000)));
        assert_eq!(parse_pax_time(b"12"), Some((12, 0)));
        assert_eq!(parse_pax_time(b"12.1234567891"), Some((12, 123_456_789)));
        assert_eq!(parse_pax_time(b"x"), None);
    }
}
