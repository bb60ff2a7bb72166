//! The build context: a directory walked once, filtered by `.dockerignore`,
//! with file contents fingerprinted on demand.
//!
//! Fingerprints hash *content* (sha256) plus the metadata that ends up in a
//! COPY layer (type, permission bits, symlink target). BuildKit trusts mtime
//! and size alone and has shipped stale COPYs because of it; kiln only uses
//! metadata to skip re-hashing through a [`DigestCache`], and only when the
//! file is not "racy" (modified within the second the cache entry was
//! recorded, git's racy-index rule), so a same-size edit inside one second
//! is still seen.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dockerignore::DockerIgnore;
use crate::error::{Error, Result};

/// The type of a context entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link with its target.
    Symlink(PathBuf),
    /// A device, fifo or socket (copied as metadata only).
    Other,
}

/// One file, directory or link in the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContextEntry {
    /// Type.
    pub kind: EntryKind,
    /// `st_mode` (type and permission bits).
    pub mode: u32,
    /// Size in bytes.
    pub size: u64,
    stat: StatKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct StatKey {
    size: u64,
    mtime_ns: i128,
    ctime_ns: i128,
    ino: u64,
    dev: u64,
}

/// A walked build context.
#[derive(Debug)]
pub struct BuildContext {
    root: PathBuf,
    entries: BTreeMap<String, ContextEntry>,
    /// Paths `.dockerignore` left out (an excluded directory stands for
    /// everything below it).
    excluded: Vec<String>,
    digests: Mutex<HashMap<String, String>>,
    cache: Option<DigestCache>,
}

impl BuildContext {
    /// Walks `root`, leaving out what `ignore` excludes. Excluded
    /// directories are not descended into unless an exception pattern could
    /// re-include something inside them.
    pub fn open(root: &Path, ignore: &DockerIgnore, cache: Option<DigestCache>) -> Result<Self> {
        let mut entries = BTreeMap::new();
        let mut excluded = Vec::new();
        let walk_exceptions = ignore.has_exceptions();
        let mut it = walkdir::WalkDir::new(root)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter();
        while let Some(item) = it.next() {
            let entry = item.map_err(|e| {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                Error::io("walk build context", path, e.into())
            })?;
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let rel = rel.to_string_lossy().into_owned();
            if rel.is_empty() {
                continue;
            }
            let md = entry
                .metadata()
                .map_err(|e| Error::io("stat", entry.path(), e.into()))?;
            if ignore.is_excluded(&rel) {
                excluded.push(rel.clone());
                if md.is_dir() && !walk_exceptions {
                    it.skip_current_dir();
                }
                continue;
            }
            let ft = md.file_type();
            let kind = if ft.is_file() {
                EntryKind::File
            } else if ft.is_dir() {
                EntryKind::Dir
            } else if ft.is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| Error::io("read link", entry.path(), e))?;
                EntryKind::Symlink(target)
            } else {
                EntryKind::Other
            };
            // A re-included child of an excluded directory needs its parents.
            if walk_exceptions {
                let mut parent = Path::new(&rel).parent();
                while let Some(p) = parent {
                    let ps = p.to_string_lossy().into_owned();
                    if ps.is_empty() || entries.contains_key(&ps) {
                        break;
                    }
                    let pmd = std::fs::metadata(root.join(p))
                        .map_err(|e| Error::io("stat", root.join(p), e))?;
                    entries.insert(ps, entry_from(EntryKind::Dir, &pmd));
                    parent = p.parent();
                }
            }
            entries.insert(rel, entry_from(kind, &md));
        }
        Ok(BuildContext {
            root: root.to_path_buf(),
            entries,
            excluded,
            digests: Mutex::new(HashMap::new()),
            cache,
        })
    }

    /// The context directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All entries by `/`-separated path relative to the root, sorted.
    pub fn entries(&self) -> &BTreeMap<String, ContextEntry> {
        &self.entries
    }

    /// Whether the file or directory tree at `rel` (`""`: the whole
    /// context) on disk holds exactly what the context holds there: nothing
    /// below it was left out by `.dockerignore`, and neither it nor a parent
    /// is a symlink (which could lead out of the context). Only then may it
    /// be shown to a RUN step as it is (a read-only bind mount) instead of
    /// through a filtered copy.
    pub fn is_whole(&self, rel: &str) -> bool {
        let prefix = format!("{rel}/");
        let clean = self
            .excluded
            .iter()
            .all(|x| !(rel.is_empty() || x == rel || x.starts_with(&prefix)));
        let mut parts = String::new();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            if !parts.is_empty() {
                parts.push('/');
            }
            parts.push_str(part);
            let last = parts.len() == rel.len();
            match self.get(&parts).map(|e| &e.kind) {
                Some(EntryKind::Dir) => {}
                Some(EntryKind::File) if last => {}
                _ => return false,
            }
        }
        clean
    }

    /// One entry.
    pub fn get(&self, rel: &str) -> Option<&ContextEntry> {
        self.entries.get(rel)
    }

    /// Entries whose path matches the COPY source `pattern` (Go
    /// `filepath.Match` per path component, after cleaning). `.` is the
    /// root itself, returned as `""`.
    pub fn glob(&self, pattern: &str) -> Vec<String> {
        let cleaned = crate::dockerignore::clean(pattern.trim_start_matches('/'));
        let cleaned = cleaned.trim_start_matches('/').to_string();
        if cleaned == "." || cleaned.is_empty() {
            return vec![String::new()];
        }
        if !has_meta(&cleaned) {
            return if self.entries.contains_key(&cleaned) {
                vec![cleaned]
            } else {
                Vec::new()
            };
        }
        let want: Vec<&str> = cleaned.split('/').collect();
        self.entries
            .keys()
            .filter(|k| {
                let parts: Vec<&str> = k.split('/').collect();
                parts.len() == want.len() && parts.iter().zip(&want).all(|(p, w)| fnmatch(w, p))
            })
            .cloned()
            .collect()
    }

    /// Entries at or below `rel` (`""` is the whole context), sorted.
    pub fn subtree<'a>(
        &'a self,
        rel: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a ContextEntry)> + 'a {
        let prefix = if rel.is_empty() {
            String::new()
        } else {
            format!("{rel}/")
        };
        self.entries
            .range(rel.to_string()..)
            .take_while(move |(k, _)| rel.is_empty() || k.as_str() == rel || k.starts_with(&prefix))
    }

    /// Fingerprint of one entry: content + type + permission bits (+ link
    /// target); for a directory, of everything under it with relative names.
    pub fn digest(&self, rel: &str) -> Result<String> {
        if let Ok(map) = self.digests.lock()
            && let Some(d) = map.get(rel)
        {
            return Ok(d.clone());
        }
        let digest =
            if rel.is_empty() || matches!(self.get(rel).map(|e| &e.kind), Some(EntryKind::Dir)) {
                let mut h = Sha256::new();
                let entries: Vec<(String, ContextEntry)> = self
                    .subtree(rel)
                    .map(|(k, e)| (k.clone(), e.clone()))
                    .collect();
                let digests = self.entry_digests(&entries)?;
                for ((k, _), d) in entries.iter().zip(digests) {
                    let name = if rel.is_empty() {
                        k.as_str()
                    } else {
                        &k[rel.len()..]
                    };
                    h.update(name.as_bytes());
                    h.update([0]);
                    h.update(d.as_bytes());
                    h.update([0]);
                }
                format!("sha256:{}", hex::encode(h.finalize()))
            } else {
                let e = self
                    .get(rel)
                    .ok_or_else(|| {
                        Error::io(
                            "find in build context",
                            self.root.join(rel),
                            std::io::ErrorKind::NotFound.into(),
                        )
                    })?
                    .clone();
                self.entry_digest(rel, &e)?
            };
        if let Ok(mut map) = self.digests.lock() {
            map.insert(rel.to_string(), digest.clone());
        }
        Ok(digest)
    }

    /// [`Self::entry_digest`] of each entry, in order. File contents are
    /// hashed on all CPUs (a cold 20k-file context is read once, in
    /// parallel); the digest cache makes warm builds skip the reads.
    fn entry_digests(&self, entries: &[(String, ContextEntry)]) -> Result<Vec<String>> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        if threads <= 1 || entries.len() < 64 {
            return entries
                .iter()
                .map(|(k, e)| self.entry_digest(k, e))
                .collect();
        }
        let chunk = entries.len().div_ceil(threads);
        let parts: Vec<Result<Vec<String>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = entries
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|(k, e)| self.entry_digest(k, e))
                            .collect::<Result<Vec<String>>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::io(
                            "hash build context in",
                            self.root.clone(),
                            std::io::Error::other("hashing thread panicked"),
                        ))
                    })
                })
                .collect()
        });
        let mut out = Vec::with_capacity(entries.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    fn entry_digest(&self, rel: &str, e: &ContextEntry) -> Result<String> {
        let perm = e.mode & 0o7777;
        Ok(match &e.kind {
            EntryKind::Dir => format!("dir:{perm:o}"),
            EntryKind::Symlink(t) => format!("link:{}", t.to_string_lossy()),
            EntryKind::Other => format!("other:{:o}", e.mode),
            EntryKind::File => {
                let content = self.content_digest(rel, e)?;
                format!("file:{perm:o}:{content}")
            }
        })
    }

    fn content_digest(&self, rel: &str, e: &ContextEntry) -> Result<String> {
        let path = self.root.join(rel);
        if let Some(cache) = &self.cache
            && let Some(d) = cache.lookup(&path, &e.stat)
        {
            return Ok(d);
        }
        let mut f = std::fs::File::open(&path).map_err(|err| Error::io("open", &path, err))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|err| Error::io("read", &path, err))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let d = format!("sha256:{}", hex::encode(h.finalize()));
        if let Some(cache) = &self.cache {
            cache.record(&path, e.stat, &d);
        }
        Ok(d)
    }

    /// Writes the digest cache back (atomically), if one is attached.
    pub fn save_digest_cache(&self) -> Result<()> {
        match &self.cache {
            Some(c) => c.save(),
            None => Ok(()),
        }
    }
}

impl ContextEntry {
    /// Modification time when the context was walked (seconds, nanoseconds).
    pub fn mtime(&self) -> (i64, u32) {
        let ns = self.stat.mtime_ns;
        (
            ns.div_euclid(1_000_000_000) as i64,
            ns.rem_euclid(1_000_000_000) as u32,
        )
    }
}

fn entry_from(kind: EntryKind, md: &std::fs::Metadata) -> ContextEntry {
    ContextEntry {
        kind,
        mode: md.mode(),
        size: md.len(),
        stat: StatKey {
            size: md.len(),
            mtime_ns: i128::from(md.mtime()) * 1_000_000_000 + i128::from(md.mtime_nsec()),
            ctime_ns: i128::from(md.ctime()) * 1_000_000_000 + i128::from(md.ctime_nsec()),
            ino: md.ino(),
            dev: md.dev(),
        },
    }
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '\\'])
}

/// Go's `filepath.Match` for one path component (`*`, `?`, `[...]`, `\`).
pub(crate) fn fnmatch(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    fn go(p: &[char], n: &[char]) -> bool {
        let Some((&c, rest)) = p.split_first() else {
            return n.is_empty();
        };
        match c {
            '*' => (0..=n.len()).any(|i| go(rest, &n[i..])),
            '?' => !n.is_empty() && go(rest, &n[1..]),
            '\\' if !rest.is_empty() => n.first() == Some(&rest[0]) && go(&rest[1..], &n[1..]),
            '[' => {
                let Some(&ch) = n.first() else { return false };
                let mut i = 0;
                let neg = matches!(rest.first(), Some('^'));
                if neg {
                    i += 1;
                }
                let mut hit = false;
                let mut first = true;
                while i < rest.len() && (rest[i] != ']' || first) {
                    first = false;
                    let lo = rest[i];
                    if i + 2 < rest.len() && rest[i + 1] == '-' && rest[i + 2] != ']' {
                        if lo <= ch && ch <= rest[i + 2] {
                            hit = true;
                        }
                        i += 3;
                    } else {
                        if lo == ch {
                            hit = true;
                        }
                        i += 1;
                    }
                }
                if i >= rest.len() {
                    return false;
                }
                hit != neg && go(&rest[i + 1..], &n[1..])
            }
            c => n.first() == Some(&c) && go(rest, &n[1..]),
        }
    }
    go(&p, &n)
}

/// A persistent map from file metadata to content digest, so unchanged
/// context files are not re-hashed on every build.
#[derive(Debug)]
pub struct DigestCache {
    path: PathBuf,
    loaded_at_ns: i128,
    map: Mutex<HashMap<PathBuf, DigestRecord>>,
    dirty: std::sync::atomic::AtomicBool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DigestRecord {
    stat: StatKey,
    recorded_ns: i128,
    digest: String,
}

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

impl DigestCache {
    /// Loads the cache file at `path` (a missing or corrupt file is an
    /// empty cache: it only ever saves work).
    pub fn load(path: &Path) -> Self {
        let map: HashMap<PathBuf, DigestRecord> = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Vec<(PathBuf, DigestRecord)>>(&b).ok())
            .map(|v| v.into_iter().collect())
            .unwrap_or_default();
        DigestCache {
            path: path.to_path_buf(),
            loaded_at_ns: now_ns(),
            map: Mutex::new(map),
            dirty: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn lookup(&self, path: &Path, stat: &StatKey) -> Option<String> {
        let map = self.map.lock().ok()?;
        let rec = map.get(path)?;
        // Racy rule: a file modified within a second of when its digest was
        // recorded may have changed again without changing size or mtime.
        let settled = rec.stat.mtime_ns + 1_000_000_000 < rec.recorded_ns
            && rec.stat.ctime_ns + 1_000_000_000 < rec.recorded_ns;
        (rec.stat == *stat && settled).then(|| rec.digest.clone())
    }

    fn record(&self, path: &Path, stat: StatKey, digest: &str) {
        self.dirty.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Ok(mut map) = self.map.lock() {
            map.insert(
                path.to_path_buf(),
                DigestRecord {
                    stat,
                    recorded_ns: self.loaded_at_ns,
                    digest: digest.to_string(),
                },
            );
        }
    }

    /// Writes the cache atomically (temp file + rename), if anything was
    /// hashed since it was loaded.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        let Ok(map) = self.map.lock() else {
            return Ok(());
        };
        let list: Vec<(&PathBuf, &DigestRecord)> = map.iter().collect();
        let bytes = serde_json::to_vec(&list).map_err(|e| Error::Json {
            what: "context digest cache".into(),
            source: e,
        })?;
        crate::fsutil::atomic_write(&self.path, &bytes)
    }
}

/// Unpacks a build context sent as a tar stream (`kiln build -`), plain or
/// compressed, into `dest`, refusing entries that would escape it.
pub fn unpack_context_tar(reader: impl std::io::Read, dest: &Path) -> Result<()> {
    let mut opts = kiln_image_layers::ApplyOptions::default();
    opts.whiteouts = kiln_image_layers::Whiteouts::Apply;
    kiln_image_layers::apply_layer(reader, dest, &opts)
        .map(|_| ())
        .map_err(|e| Error::step(format!("unpack build context into {}", dest.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_filepath_match() {
        assert!(fnmatch("*.txt", "a.txt"));
        assert!(!fnmatch("*.txt", "a.txt.bak"));
        assert!(fnmatch("a?c", "abc"));
        assert!(fnmatch("[a-c]x", "bx"));
        assert!(!fnmatch("[^a-c]x", "bx"));
        assert!(fnmatch("\\*", "*"));
        assert!(fnmatch("*", ""));
    }

    #[test]
    fn parallel_hashing_of_a_large_context_is_stable_and_sees_every_file() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        for i in 0..300 {
            let p = dir.path().join(format!("d{}/f{i}", i % 7));
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))
                .map_err(|e| Error::io("mkdir", &p, e))?;
            std::fs::write(&p, format!("file {i}")).map_err(|e| Error::io("write", &p, e))?;
        }
        let ign = DockerIgnore::parse("");
        let whole = BuildContext::open(dir.path(), &ign, None)?.digest("")?;
        // The same fold done one entry at a time gives the same digest.
        let ctx = BuildContext::open(dir.path(), &ign, None)?;
        let mut h = Sha256::new();
        for (k, e) in ctx.entries() {
            h.update(k.as_bytes());
            h.update([0]);
            h.update(ctx.entry_digest(k, e)?.as_bytes());
            h.update([0]);
        }
        assert_eq!(whole, format!("sha256:{}", hex::encode(h.finalize())));
        std::fs::write(dir.path().join("d3/f10"), "changed")
            .map_err(|e| Error::io("write", "d3/f10", e))?;
        assert_ne!(
            BuildContext::open(dir.path(), &ign, None)?.digest("")?,
            whole
        );
        Ok(())
    }

    #[test]
    fn walk_ignores_and_fingerprints_content() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let w = |p: &str, c: &str| {
            let path = dir.path().join(p);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| Error::io("mkdir", parent, e))?;
            }
            std::fs::write(&path, c).map_err(|e| Error::io("write", &path, e))
        };
        w("a.txt", "one")?;
        w("docs/x.md", "x")?;
        w("docs/keep.md", "k")?;
        w("node_modules/m/i.js", "js")?;
        let ign = DockerIgnore::parse("node_modules\ndocs\n!docs/keep.md\n");
        let ctx = BuildContext::open(dir.path(), &ign, None)?;
        let keys: Vec<&str> = ctx.entries().keys().map(String::as_str).collect();
        assert_eq!(keys, ["a.txt", "docs", "docs/keep.md"]);
        let d1 = ctx.digest("a.txt")?;
        let whole1 = ctx.digest("")?;
        w("a.txt", "two")?;
        let ctx2 = BuildContext::open(dir.path(), &ign, None)?;
        assert_ne!(ctx2.digest("a.txt")?, d1);
        assert_ne!(ctx2.digest("")?, whole1);
        assert_eq!(ctx2.glob("*.txt"), vec!["a.txt".to_string()]);
        assert_eq!(ctx2.glob("docs/*.md"), vec!["docs/keep.md".to_string()]);
        Ok(())
    }
}
