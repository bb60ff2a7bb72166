//! The layer tar writer.
//!
//! Output follows the OCI image-spec layer format (layer.md): POSIX ustar
//! headers, PAX extended headers where ustar cannot express a value (paths
//! or link targets over 100 bytes, sizes over 8 GiB, ids over 2097151,
//! sub-second modification times, xattrs as `SCHILY.xattr.*`, the
//! convention GNU tar and Docker use), whiteouts as `.wh.<name>` and opaque
//! directories as `.wh..wh..opq`. Entries are sorted by path component, so
//! parents precede children and the same change set always gives the same
//! bytes; uname/gname, atime and ctime are left out for the same reason.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};

use crate::changes::{ChangeKind, ChangeSet, index};
use crate::compression::{Compression, Encoder, EncoderSettings};
use crate::control::{Control, Progress};
use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::error::{Error, Result, io_err};
use crate::fsutil::{self, Kind};
use crate::store::Store;

/// Choices for [`write_layer`].
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct WriteOptions {
    /// Compression of the blob. Default: gzip.
    pub compression: Compression,
    /// Compression level (gzip 0-9, zstd 1-22); `None` for the format's
    /// default (gzip 6, zstd 3).
    pub level: Option<i32>,
    /// Compression threads: libzstd workers for zstd, pigz-style parallel
    /// blocks for gzip (output then independent of the thread count, but
    /// different from single-threaded gzip's); 1 compresses on the calling
    /// thread. Default: the number of CPUs.
    pub threads: u32,
    /// `SOURCE_DATE_EPOCH`: clamp every modification time to at most this
    /// many seconds since the epoch (as BuildKit's `rewrite-timestamp`
    /// does), dropping sub-second parts, so rebuilding gives the same bytes.
    pub source_date_epoch: Option<i64>,
    /// Set every modification time to exactly this value (wins over
    /// `source_date_epoch`).
    pub set_mtime: Option<i64>,
    /// Progress sink and cancellation flag. Default: none.
    pub control: Control,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            compression: Compression::Gzip,
            level: None,
            threads: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            source_date_epoch: None,
            set_mtime: None,
            control: Control::default(),
        }
    }
}

impl WriteOptions {
    /// The defaults with another compression.
    pub fn with_compression(compression: Compression) -> WriteOptions {
        WriteOptions {
            compression,
            ..WriteOptions::default()
        }
    }
}

/// What [`write_layer`] produced.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LayerInfo {
    /// Digest of the blob as written (compressed).
    pub digest: Digest,
    /// Size of the blob as written.
    pub size: u64,
    /// The diffID: digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
    /// The compression used.
    pub compression: Compression,
}

impl LayerInfo {
    /// The OCI layer media type matching the compression.
    pub fn media_type(&self) -> MediaType {
        self.compression.oci_media_type()
    }

    /// A descriptor for the blob.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(self.media_type(), self.size, self.digest.to_oci())
    }
}

/// A layer stored in a [`Store`].
#[derive(Clone, Debug, PartialEq)]
pub struct Layer {
    /// The blob's descriptor (media type, size, digest) for a manifest.
    pub descriptor: Descriptor,
    /// The diffID for the image config's `rootfs.diff_ids`.
    pub diff_id: Digest,
    /// Size of the uncompressed tar.
    pub uncompressed_size: u64,
}

impl Layer {
    /// The blob digest.
    pub fn digest(&self) -> Result<Digest> {
        Digest::from_oci(self.descriptor.digest())
    }
}

impl Store {
    /// Writes `changes` as a layer blob straight into the store, in one
    /// streaming pass.
    pub fn put_layer(&self, changes: &ChangeSet, options: &WriteOptions) -> Result<Layer> {
        let mut w = self.blob_writer()?;
        // The blob writer hashes what it stores: the compressed stream is
        // hashed once, there, not a second time on the way in.
        let (_, diff_id, uncompressed_size) =
            write_tar_into(&mut w, options, changes.source(), |tw| {
                tw.write_all_changes(changes)
            })?;
        let descriptor = w.commit(options.compression.oci_media_type())?;
        Ok(Layer {
            descriptor,
            diff_id,
            uncompressed_size,
        })
    }
}

/// Writes `changes` as a layer to `out`: tar → diffID hash → compressor →
/// blob hash → `out`, one pass, bounded memory.
pub fn write_layer<W: Write>(
    changes: &ChangeSet,
    out: W,
    options: &WriteOptions,
) -> Result<LayerInfo> {
    write_with(out, options, changes.source(), |tw| {
        tw.write_all_changes(changes)
    })
}

/// What a [`SourceEntry`] is.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SourceKind {
    /// A directory (no content).
    Dir,
    /// A regular file whose content is read from this path.
    File(PathBuf),
    /// A symbolic link to this target.
    Symlink(PathBuf),
}

/// One entry of a layer given explicitly, with the metadata it gets in the
/// layer, instead of being found in a directory tree: a `COPY` writes its
/// sources straight from the build context this way, with the owner and
/// mode it assigns, without staging a copy of them on disk first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SourceEntry {
    /// Path in the layer, relative (no leading `/`).
    pub path: PathBuf,
    /// Type and where the content comes from.
    pub kind: SourceKind,
    /// Permission bits (`0o7777`).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Modification time (seconds, nanoseconds); clamped like every entry
    /// by [`WriteOptions::source_date_epoch`] / [`WriteOptions::set_mtime`].
    pub mtime: (i64, u32),
}

impl SourceEntry {
    /// An entry of `kind` at `path` in the layer.
    pub fn new(
        path: impl Into<PathBuf>,
        kind: SourceKind,
        mode: u32,
        (uid, gid): (u32, u32),
        mtime: (i64, u32),
    ) -> SourceEntry {
        SourceEntry {
            path: path.into(),
            kind,
            mode,
            uid,
            gid,
            mtime,
        }
    }
}

/// Writes explicit entries as a layer (see [`SourceEntry`]), in one pass
/// like [`write_layer`]. Entries are sorted (parents before children; of
/// two entries for one path the later wins); a parent directory that is
/// not listed is written as `0755`, owned by root, with time 0 (clamped).
pub fn write_entries<W: Write>(
    entries: &[SourceEntry],
    out: W,
    options: &WriteOptions,
) -> Result<LayerInfo> {
    write_with(out, options, Path::new(""), |tw| {
        tw.write_source_entries(entries)
    })
}

impl Store {
    /// [`write_entries`] straight into the store.
    pub fn put_entries(&self, entries: &[SourceEntry], options: &WriteOptions) -> Result<Layer> {
        let mut w = self.blob_writer()?;
        let (_, diff_id, uncompressed_size) =
            write_tar_into(&mut w, options, Path::new(""), |tw| {
                tw.write_source_entries(entries)
            })?;
        let descriptor = w.commit(options.compression.oci_media_type())?;
        Ok(Layer {
            descriptor,
            diff_id,
            uncompressed_size,
        })
    }
}

/// The pipeline: tar → diffID hash → compressor → blob hash → `out`.
fn write_with<W: Write>(
    out: W,
    options: &WriteOptions,
    source: &Path,
    body: impl FnOnce(&mut TarWriter<'_, &mut dyn Write>) -> Result<()> + Send,
) -> Result<LayerInfo> {
    let blob = DigestWriter::new(out, Algorithm::Sha256);
    let (blob, diff_id, uncompressed_size) = write_tar_into(blob, options, source, body)?;
    let (mut out, digest, size) = blob.finish();
    out.flush().map_err(|e| Error::Io {
        op: "write layer",
        path: source.to_path_buf(),
        source: e,
    })?;
    Ok(LayerInfo {
        digest,
        size,
        diff_id,
        uncompressed_size,
        compression: options.compression,
    })
}

/// Size of the tar chunks handed from the tar thread to the compressor.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between them (bounded memory: `CHUNK * (DEPTH + 2)`).
const DEPTH: usize = 8;

/// The tar thread's end of the pipe: fills `CHUNK`-sized buffers (recycled
/// through `spare`) and sends them to the compressing thread.
struct ChunkWriter {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    spare: std::sync::mpsc::Receiver<Vec<u8>>,
    buf: Vec<u8>,
}

impl ChunkWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let mut next = self
            .spare
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let full = std::mem::replace(&mut self.buf, next);
        self.tx
            .send(full)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "compressor stopped"))
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = buf.len().min(room);
        self.buf.extend_from_slice(&buf[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// tar → diffID hash → compressor → `blob`; returns the blob sink, the
/// diffID and the uncompressed size.
///
/// When the compressor has threads of its own, the tar is made (files
/// read, headers written, the diffID hashed) on a helper thread and handed
/// over in chunks, the way `tar -c | zstd -T0` splits the work between two
/// processes: the thread feeding the compression workers never waits on
/// file reads, so the workers stay busy.
fn write_tar_into<B: Write>(
    blob: B,
    options: &WriteOptions,
    source: &Path,
    body: impl FnOnce(&mut TarWriter<'_, &mut dyn Write>) -> Result<()> + Send,
) -> Result<(B, Digest, u64)> {
    let sink_err = |e: io::Error| Error::Io {
        op: "write layer",
        path: source.to_path_buf(),
        source: e,
    };
    let mut enc = Encoder::new(
        blob,
        EncoderSettings {
            compression: options.compression,
            level: options.level,
            threads: options.threads,
        },
    )
    .map_err(sink_err)?;
    if options.threads <= 1 || options.compression == Compression::None {
        let mut tar =
            BufWriter::with_capacity(256 * 1024, DigestWriter::new(enc, Algorithm::Sha256));
        let mut tw = TarWriter::new(&mut tar as &mut dyn Write, options, source);
        body(&mut tw)?;
        drop(tw);
        let tar = tar.into_inner().map_err(|e| sink_err(e.into_error()))?;
        let (enc, diff_id, uncompressed_size) = tar.finish();
        let blob = enc.finish().map_err(sink_err)?;
        return Ok((blob, diff_id, uncompressed_size));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(DEPTH);
    let (back_tx, back_rx) = std::sync::mpsc::channel::<Vec<u8>>();
    let (consumed, produced) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || -> Result<(Digest, u64)> {
            let chunks = ChunkWriter {
                tx,
                spare: back_rx,
                buf: Vec::with_capacity(CHUNK),
            };
            let mut tar = DigestWriter::new(chunks, Algorithm::Sha256);
            let mut tw = TarWriter::new(&mut tar as &mut dyn Write, options, source);
            body(&mut tw)?;
            drop(tw);
            let (mut chunks, diff_id, n) = tar.finish();
            chunks.flush().map_err(sink_err)?;
            Ok((diff_id, n))
        });
        let mut consumed: io::Result<()> = Ok(());
        for chunk in rx {
            if let Err(e) = enc.write_all(&chunk) {
                // Leaving the loop drops the receiver, which stops the tar
                // thread at its next send.
                consumed = Err(e);
                break;
            }
            let _ = back_tx.send(chunk);
        }
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(sink_err(io::Error::other("tar thread panicked"))));
        (consumed, produced)
    });
    consumed.map_err(sink_err)?;
    let (diff_id, uncompressed_size) = produced?;
    let blob = enc.finish().map_err(sink_err)?;
    Ok((blob, diff_id, uncompressed_size))
}

struct TarWriter<'a, W: Write> {
    out: W,
    options: &'a WriteOptions,
    source: &'a Path,
    /// (dev, ino) of regular files already written -> their tar path.
    links: HashMap<(u64, u64), Vec<u8>>,
    progress: Progress,
    /// File contents pass through this buffer (large reads, whatever `W`).
    copy_buf: Vec<u8>,
}

/// The header fields of one entry before encoding.
struct Entry {
    path: Vec<u8>,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    mtime: (i64, u32),
    link: Vec<u8>,
    dev: (u32, u32),
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Entry {
    fn plain(path: Vec<u8>, kind: u8, mode: u32, mtime: (i64, u32)) -> Entry {
        Entry {
            path,
            kind,
            mode,
            uid: 0,
            gid: 0,
            size: 0,
            mtime,
            link: Vec::new(),
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }
}

fn pax_record(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    // "%d %s=%s\n" where %d counts the whole record including itself.
    let rest = key.len() + value.len() + 3;
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    out.extend_from_slice(value);
    out.push(b'\n');
}

const USTAR_MAX_OCTAL_8: u64 = 0o7777777;
const USTAR_MAX_OCTAL_12: u64 = 0o77777777777;

fn tar_path(rel: &Path, dir: bool) -> Vec<u8> {
    let mut p = rel.as_os_str().as_bytes().to_vec();
    if dir {
        p.push(b'/');
    }
    p
}

impl<'a, W: Write> TarWriter<'a, W> {
    fn new(out: W, options: &'a WriteOptions, source: &'a Path) -> Self {
        TarWriter {
            out,
            options,
            source,
            links: HashMap::new(),
            progress: Progress {
                entries: 0,
                bytes: 0,
            },
            copy_buf: vec![0u8; 256 * 1024],
        }
    }

    fn err(&self, op: &'static str, rel: &Path) -> impl FnOnce(io::Error) -> Error {
        io_err(op, self.source.join(rel))
    }

    fn clamp(&self, t: (i64, u32)) -> (i64, u32) {
        if let Some(s) = self.options.set_mtime {
            (s, 0)
        } else if let Some(e) = self.options.source_date_epoch {
            if t.0 >= e { (e, 0) } else { (t.0, 0) }
        } else {
            t
        }
    }

    fn write_all_changes(&mut self, changes: &ChangeSet) -> Result<()> {
        let idx = index(changes.changes());
        // Ancestors of every change that are not changes themselves are
        // written as plain directory entries so the tar extracts alone.
        let mut paths: BTreeSet<(PathBuf, Option<ChangeKind>)> = BTreeSet::new();
        for c in changes.changes() {
            let mut anc = c.path.parent();
            while let Some(a) = anc {
                if a.as_os_str().is_empty() {
                    break;
                }
                if !idx.contains_key(a) {
                    paths.insert((a.to_path_buf(), None));
                }
                anc = a.parent();
            }
            paths.insert((c.path.clone(), Some(c.kind)));
        }
        for (rel, kind) in &paths {
            match kind {
                Some(ChangeKind::Deleted) => self.whiteout(rel)?,
                Some(ChangeKind::Opaque) => {
                    self.file_entry(rel)?;
                    let marker = rel.join(".wh..wh..opq");
                    let e = Entry::plain(tar_path(&marker, false), b'0', 0o644, self.clamp((0, 0)));
                    self.emit(&e, None, &marker)?;
                }
                _ => self.file_entry(rel)?,
            }
            self.progress.entries += 1;
            self.options.control.tick("write layer", self.progress)?;
        }
        let end = [0u8; 1024];
        self.out
            .write_all(&end)
            .map_err(self.err("write tar end", Path::new("")))
    }

    fn write_source_entries(&mut self, entries: &[SourceEntry]) -> Result<()> {
        // Later entries win; BTreeMap orders paths by component, so
        // parents come before children.
        let mut by_path: BTreeMap<&Path, &SourceEntry> = BTreeMap::new();
        for e in entries {
            by_path.insert(e.path.as_path(), e);
        }
        let mut missing: BTreeSet<&Path> = BTreeSet::new();
        for p in by_path.keys() {
            let mut anc = p.parent();
            while let Some(a) = anc {
                if a.as_os_str().is_empty() || by_path.contains_key(a) {
                    break;
                }
                missing.insert(a);
                anc = a.parent();
            }
        }
        let mut all: Vec<(&Path, Option<&SourceEntry>)> =
            by_path.iter().map(|(p, e)| (*p, Some(*e))).collect();
        all.extend(missing.into_iter().map(|p| (p, None)));
        all.sort_by(|a, b| a.0.cmp(b.0));
        for (path, e) in all {
            let Some(se) = e else {
                let e = Entry::plain(tar_path(path, true), b'5', 0o755, self.clamp((0, 0)));
                self.emit(&e, None, path)?;
                continue;
            };
            let mut e = Entry::plain(
                tar_path(path, se.kind == SourceKind::Dir),
                b'5',
                se.mode & 0o7777,
                self.clamp(se.mtime),
            );
            e.uid = u64::from(se.uid);
            e.gid = u64::from(se.gid);
            match &se.kind {
                SourceKind::Dir => self.emit(&e, None, path)?,
                SourceKind::Symlink(target) => {
                    e.kind = b'2';
                    e.link = target.as_os_str().as_bytes().to_vec();
                    self.emit(&e, None, path)?;
                }
                SourceKind::File(src) => {
                    e.kind = b'0';
                    let f = File::open(src).map_err(io_err("open", src))?;
                    e.size = f.metadata().map_err(io_err("stat", src))?.len();
                    self.emit(&e, Some(f), src)?;
                }
            }
            self.progress.entries += 1;
            self.options.control.tick("write layer", self.progress)?;
        }
        let end = [0u8; 1024];
        self.out
            .write_all(&end)
            .map_err(self.err("write tar end", Path::new("")))
    }

    fn whiteout(&mut self, rel: &Path) -> Result<()> {
        let name = rel
            .file_name()
            .map(|n| n.as_bytes().to_vec())
            .unwrap_or_default();
        let mut wh = b".wh.".to_vec();
        wh.extend_from_slice(&name);
        let path = match rel.parent() {
            Some(p) if !p.as_os_str().is_empty() => {
                let mut v = tar_path(p, true);
                v.extend_from_slice(&wh);
                v
            }
            _ => wh,
        };
        let e = Entry::plain(path, b'0', 0o644, self.clamp((0, 0)));
        self.emit(&e, None, rel)
    }

    fn file_entry(&mut self, rel: &Path) -> Result<()> {
        let full = self.source.join(rel);
        let m = fs::symlink_metadata(&full).map_err(io_err("lstat", &full))?;
        let kind = Kind::of(&m);
        let xattrs = fsutil::xattrs(&full)
            .map_err(io_err("list xattrs", &full))?
            .into_iter()
            .filter(|(k, _)| !fsutil::is_overlay_xattr(k))
            .collect();
        let mut e = Entry {
            path: tar_path(rel, kind == Kind::Dir),
            kind: b'0',
            mode: m.mode() & 0o7777,
            uid: u64::from(m.uid()),
            gid: u64::from(m.gid()),
            size: 0,
            mtime: self.clamp(fsutil::mtime(&m)),
            link: Vec::new(),
            dev: (0, 0),
            xattrs,
        };
        match kind {
            Kind::Dir => e.kind = b'5',
            Kind::Symlink => {
                e.kind = b'2';
                e.link = fs::read_link(&full)
                    .map_err(io_err("readlink", &full))?
                    .as_os_str()
                    .as_bytes()
                    .to_vec();
            }
            Kind::Char | Kind::Block => {
                e.kind = if kind == Kind::Char { b'3' } else { b'4' };
                e.dev = fsutil::dev_major_minor(m.rdev());
            }
            Kind::Fifo => e.kind = b'6',
            // Sockets are runtime objects; Docker and BuildKit leave them
            // out of layers too.
            Kind::Socket => return Ok(()),
            Kind::File => {
                if m.nlink() > 1 {
                    if let Some(target) = self.links.get(&(m.dev(), m.ino())) {
                        e.kind = b'1';
                        e.link = target.clone();
                        return self.emit(&e, None, rel);
                    }
                    self.links.insert((m.dev(), m.ino()), e.path.clone());
                }
                e.size = m.len();
                let f = File::open(&full).map_err(io_err("open", &full))?;
                return self.emit(&e, Some(f), rel);
            }
        }
        self.emit(&e, None, rel)
    }

    fn emit(&mut self, e: &Entry, data: Option<File>, rel: &Path) -> Result<()> {
        let mut pax = Vec::new();
        if e.path.len() > 100 {
            pax_record(&mut pax, b"path", &e.path);
        }
        if e.link.len() > 100 {
            pax_record(&mut pax, b"linkpath", &e.link);
        }
        if e.size > USTAR_MAX_OCTAL_12 {
            pax_record(&mut pax, b"size", e.size.to_string().as_bytes());
        }
        if e.uid > USTAR_MAX_OCTAL_8 {
            pax_record(&mut pax, b"uid", e.uid.to_string().as_bytes());
        }
        if e.gid > USTAR_MAX_OCTAL_8 {
            pax_record(&mut pax, b"gid", e.gid.to_string().as_bytes());
        }
        if e.mtime.1 != 0 || e.mtime.0 < 0 || e.mtime.0 as u64 > USTAR_MAX_OCTAL_12 {
            let v = if e.mtime.1 != 0 {
                format!("{}.{:09}", e.mtime.0, e.mtime.1)
            } else {
                e.mtime.0.to_string()
            };
            pax_record(&mut pax, b"mtime", v.as_bytes());
        }
        for (k, v) in &e.xattrs {
            let mut key = b"SCHILY.xattr.".to_vec();
            key.extend_from_slice(k);
            pax_record(&mut pax, &key, v);
        }
        if !pax.is_empty() {
            let mut name = b"PaxHeaders/".to_vec();
            let base = e
                .path
                .rsplit(|&b| b == b'/')
                .find(|s| !s.is_empty())
                .unwrap_or(b"x");
            name.extend_from_slice(&base[..base.len().min(80)]);
            let h = self.header(&name, b'x', 0o644, 0, 0, pax.len() as u64, 0, b"", (0, 0));
            self.out
                .write_all(h.as_bytes())
                .map_err(self.err("write tar", rel))?;
            self.out
                .write_all(&pax)
                .map_err(self.err("write tar", rel))?;
            self.pad(pax.len() as u64, rel)?;
        }
        let mtime = if e.mtime.0 < 0 {
            0
        } else {
            (e.mtime.0 as u64).min(USTAR_MAX_OCTAL_12)
        };
        let h = self.header(
            &e.path,
            e.kind,
            e.mode,
            e.uid.min(USTAR_MAX_OCTAL_8),
            e.gid.min(USTAR_MAX_OCTAL_8),
            e.size.min(USTAR_MAX_OCTAL_12),
            mtime,
            &e.link,
            e.dev,
        );
        self.out
            .write_all(h.as_bytes())
            .map_err(self.err("write tar", rel))?;
        if let Some(f) = data {
            // Copy exactly the size recorded in the header: a file that
            // grows or shrinks meanwhile must not corrupt the archive.
            let mut limited = io::Read::take(f, e.size);
            let mut n = 0u64;
            loop {
                let got = io::Read::read(&mut limited, &mut self.copy_buf)
                    .map_err(self.err("read file into layer", rel))?;
                if got == 0 {
                    break;
                }
                self.out
                    .write_all(&self.copy_buf[..got])
                    .map_err(self.err("write tar", rel))?;
                n += got as u64;
            }
            if n != e.size {
                return Err(Error::SizeMismatch {
                    what: format!(
                        "{} (changed while writing the layer)",
                        self.source.join(rel).display()
                    ),
                    expected: e.size,
                    actual: n,
                });
            }
            self.pad(e.size, rel)?;
            self.progress.bytes += e.size;
        }
        Ok(())
    }

    fn pad(&mut self, len: u64, rel: &Path) -> Result<()> {
        let rem = (len % 512) as usize;
        if rem != 0 {
            let zeros = [0u8; 512];
            self.out
                .write_all(&zeros[..512 - rem])
                .map_err(self.err("write tar", rel))?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn header(
        &self,
        path: &[u8],
        kind: u8,
        mode: u32,
        uid: u64,
        gid: u64,
        size: u64,
        mtime: u64,
        link: &[u8],
        dev: (u32, u32),
    ) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        if let Some(u) = h.as_ustar_mut() {
            // The name field holds at most 100 bytes; longer paths are in
            // the PAX record written just before, which readers prefer.
            let n = path.len().min(100);
            u.name[..n].copy_from_slice(&path[..n]);
            let l = link.len().min(100);
            u.linkname[..l].copy_from_slice(&link[..l]);
        }
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_size(size);
        h.set_mtime(mtime);
        if kind == b'3' || kind == b'4' {
            // Values that do not fit the 7 octal digits are clamped; Linux
            // device numbers in container images are small.
            let _ = h.set_device_major(dev.0.min(0o7777777));
            let _ = h.set_device_minor(dev.1.min(0o7777777));
        }
        h.set_cksum();
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        for (k, v) in [
            ("path", "a"),
            ("path", &"x".repeat(95) as &str),
            ("mtime", "1.5"),
        ] {
            let mut out = Vec::new();
            pax_record(&mut out, k.as_bytes(), v.as_bytes());
            let s = String::from_utf8(out.clone()).unwrap_or_default();
            let (len, _) = s.split_once(' ').unwrap_or_default();
            assert_eq!(len.parse::<usize>().ok(), Some(out.len()), "{s:?}");
        }
    }
}
