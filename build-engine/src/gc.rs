//! Garbage collection of the state directory: what `docker system prune`,
//! `docker builder prune` and `docker system df` do, for kiln's store.
//!
//! What is kept and why:
//! - **Containers** that are running stay; stopped ones go when asked
//!   ([`PruneOptions::containers`], `system prune`).
//! - **Images** in the store stay unless asked ([`PruneOptions::images`]):
//!   then dangling ones go (or, with [`PruneOptions::all`], every image no
//!   container uses), never one a container was created from.
//! - **Snapshots** (unpacked layers, keyed by chain id) stay while an image
//!   in the store or a container's image has that chain; the others are
//!   build leftovers (intermediate stages) and go.
//! - **Build cache records** go when their layer blob is gone or no image
//!   reaches it (the layer exists only for the cache); with
//!   [`PruneOptions::all`] every record goes, with the `--explain-cache`
//!   history and the context digest cache.
//! - **Cache mounts** (`RUN --mount=type=cache`) go only on request
//!   ([`PruneOptions::cache_mounts`]).
//! - **Scratch space** (`tmp/`, half-unpacked snapshots) of builds that were
//!   killed goes. A running build holds a shared [`BuildLock`]; while one
//!   does, collection is limited to what cannot be in use (images, blobs
//!   and scratch entries older than [`PruneOptions::grace`]) and the report
//!   says so ([`PruneReport::limited`]).
//!
//! Layer blobs no image reaches are then removed by the store's own
//! [`Store::gc`](kiln_image_layers::Store::gc).
//!
//! # Example
//!
//! ```no_run
//! use kiln_build_engine::{Root, gc};
//! # fn demo() -> Result<(), kiln_build_engine::Error> {
//! let root = Root::open(&Root::default_dir())?;
//! let report = gc::prune(&root, &gc::PruneOptions::build_cache())?;
//! println!("Total reclaimed space: {}", gc::human_size(report.reclaimed_bytes));
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kiln_image_layers::{Digest, GcOptions, chain_id};

use crate::error::{Error, Result};
use crate::root::Root;

/// A lock on the state directory that marks a build in progress (shared)
/// or a collection in progress (exclusive). Released on drop.
#[derive(Debug)]
pub struct BuildLock {
    _file: File,
}

fn lock_file(root: &Root) -> Result<File> {
    let path = root.dir().join("gc.lock");
    std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io("open lock", &path, e))
}

impl BuildLock {
    /// Takes the shared lock a build (or anything else that uses scratch
    /// space and snapshots without recording them yet) holds while it
    /// runs. Blocks while a collection runs.
    pub fn shared(root: &Root) -> Result<BuildLock> {
        let file = lock_file(root)?;
        fs4::fs_std::FileExt::lock_shared(&file)
            .map_err(|e| Error::io("lock", root.dir().join("gc.lock"), e))?;
        Ok(BuildLock { _file: file })
    }

    /// The exclusive lock, if nothing holds a shared one.
    pub(crate) fn try_exclusive(root: &Root) -> Result<Option<BuildLock>> {
        let file = lock_file(root)?;
        match fs4::fs_std::FileExt::try_lock_exclusive(&file) {
            Ok(true) => Ok(Some(BuildLock { _file: file })),
            Ok(false) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(Error::io("lock", root.dir().join("gc.lock"), e)),
        }
    }
}

/// What [`prune`] removes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PruneOptions {
    /// Remove stopped containers first (`system prune`).
    pub containers: bool,
    /// Prune images too (`system prune`): dangling ones, or with `all`
    /// every image no container uses.
    pub images: bool,
    /// `-a`: all unused images (with `images`) and all build cache, not
    /// only what nothing references.
    pub all: bool,
    /// Also empty `RUN --mount=type=cache` directories.
    pub cache_mounts: bool,
    /// While a build runs, scratch entries and blobs younger than this are
    /// kept. Default: one hour.
    pub grace: Duration,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions {
            containers: false,
            images: false,
            all: false,
            cache_mounts: false,
            grace: Duration::from_secs(3600),
        }
    }
}

impl PruneOptions {
    /// `kiln builder prune`: unreferenced build cache only.
    pub fn build_cache() -> Self {
        PruneOptions::default()
    }

    /// `kiln system prune`: stopped containers, dangling images and
    /// unreferenced build cache.
    pub fn system() -> Self {
        PruneOptions {
            containers: true,
            images: true,
            ..PruneOptions::default()
        }
    }

    /// Sets `all` (`-a`); all build cache includes the cache mounts.
    pub fn with_all(mut self, all: bool) -> Self {
        self.all = all;
        self.cache_mounts |= all;
        self
    }
}

/// What [`prune`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PruneReport {
    /// Containers removed (ids).
    pub deleted_containers: Vec<String>,
    /// Tags removed (`untagged: NAME`).
    pub untagged: Vec<String>,
    /// Images removed (manifest digests).
    pub deleted_images: Vec<String>,
    /// Build cache objects removed: cache records, snapshots and cache
    /// mounts, by id.
    pub cache_objects: Vec<String>,
    /// Bytes freed on disk (blobs, snapshots, cache mounts, scratch).
    pub reclaimed_bytes: u64,
    /// A build was running: only what it cannot be using was collected.
    pub limited: bool,
    /// Containers whose image is not in the store (so their snapshots
    /// cannot be told apart): every snapshot was kept.
    pub unknown_containers: Vec<String>,
}

/// A container as garbage collection sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ContainerUse {
    id: String,
    image_digest: String,
    running: bool,
    dir: PathBuf,
}

/// The containers (`containers::list`) and the images they use. A
/// container directory whose record cannot be read (being created or
/// removed, or damaged) is reported with an empty digest, which makes
/// collection keep every snapshot: not knowing what a container uses must
/// never delete it.
fn containers(root: &Root) -> Result<Vec<ContainerUse>> {
    let mut out: Vec<ContainerUse> = crate::containers::list(root)?
        .into_iter()
        .map(|c| ContainerUse {
            dir: crate::containers::container_dir(root, &c.id),
            running: c.effective_state() == crate::containers::ContainerState::Running,
            id: c.id,
            image_digest: c.image_digest,
        })
        .collect();
    let dir = crate::containers::containers_dir(root);
    if let Ok(rd) = std::fs::read_dir(&dir) {
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let is_id = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            if is_id && !out.iter().any(|c| c.id == name) {
                out.push(ContainerUse {
                    id: name,
                    image_digest: String::new(),
                    running: true,
                    dir: ent.path(),
                });
            }
        }
    }
    Ok(out)
}

/// Chain ids of every prefix of an image's layers (its snapshots).
fn image_chains(root: &Root, reference: &str) -> Option<Vec<Digest>> {
    let img = crate::image::resolve_local(root, reference).ok()?;
    let layers = img.layer_digests().ok()?;
    let mut ids = Vec::new();
    let mut out = Vec::new();
    for (_, diff_id) in layers {
        ids.push(diff_id);
        out.extend(chain_id(&ids));
    }
    Some(out)
}

/// Bytes under `path` (files and links, each inode once).
fn tree_size(path: &Path) -> u64 {
    let mut seen = HashSet::new();
    let mut total = 0;
    for ent in walkdir::WalkDir::new(path)
        .follow_links(false)
        .into_iter()
        .flatten()
    {
        let Ok(md) = ent.metadata() else { continue };
        if md.is_dir() || !seen.insert((md.dev(), md.ino())) {
            continue;
        }
        total += md.len();
    }
    total
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default() >= age)
        .unwrap_or(true)
}

fn remove_tree(path: &Path) -> Result<u64> {
    let size = tree_size(path);
    let md = std::fs::symlink_metadata(path).map_err(|e| Error::io("stat", path, e))?;
    if md.is_dir() {
        std::fs::remove_dir_all(path).map_err(|e| Error::io("remove", path, e))?;
    } else {
        std::fs::remove_file(path).map_err(|e| Error::io("remove", path, e))?;
    }
    Ok(size)
}

fn short(id: &str) -> String {
    let hex = id.rsplit([':', '-']).next().unwrap_or(id);
    hex.chars().take(25).collect()
}

/// The state of the store that collection and `df` both look at.
struct Survey {
    containers: Vec<ContainerUse>,
    /// Manifest digests containers use.
    used_images: BTreeSet<String>,
    /// Snapshots to keep (dir names), or `None` to keep all.
    keep_snapshots: Option<BTreeSet<String>>,
    unknown_containers: Vec<String>,
}

fn snapshot_name(chain: &Digest) -> String {
    format!("{}-{}", chain.algorithm().as_str(), chain.hex())
}

fn survey(root: &Root) -> Result<Survey> {
    let containers = containers(root)?;
    let used_images: BTreeSet<String> = containers
        .iter()
        .filter(|c| !c.image_digest.is_empty())
        .map(|c| c.image_digest.clone())
        .collect();
    let mut keep = BTreeSet::new();
    let mut unknown = Vec::new();
    for entry in root
        .store()
        .list()
        .map_err(|e| Error::step("list images", e))?
    {
        let digest = entry.descriptor.digest().to_string();
        for c in image_chains(root, &digest).unwrap_or_default() {
            keep.insert(snapshot_name(&c));
        }
    }
    for c in &containers {
        match image_chains(root, &c.image_digest) {
            Some(chains) if !c.image_digest.is_empty() => {
                keep.extend(chains.iter().map(snapshot_name));
            }
            _ => unknown.push(c.id.clone()),
        }
    }
    Ok(Survey {
        containers,
        used_images,
        keep_snapshots: unknown.is_empty().then_some(keep),
        unknown_containers: unknown,
    })
}

/// Removes what `options` asks for; see the module documentation.
pub fn prune(root: &Root, options: &PruneOptions) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    let exclusive = BuildLock::try_exclusive(root)?;
    report.limited = exclusive.is_none();
    let store = root.store();

    // Stopped containers first: the images they held become unused.
    if options.containers {
        let (removed, bytes) = crate::containers::prune(root)?;
        report.deleted_containers = removed.into_iter().map(|c| c.id).collect();
        report.reclaimed_bytes += bytes;
    }

    // Images next: what they stop holding becomes collectable below.
    if options.images {
        let survey = survey(root)?;
        let entries = store.list().map_err(|e| Error::step("list images", e))?;
        let mut by_digest: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
        for e in &entries {
            by_digest
                .entry(e.descriptor.digest().to_string())
                .or_default()
                .push(e.name.clone());
        }
        for (digest, names) in by_digest {
            let dangling = names.iter().all(Option::is_none);
            if survey.used_images.contains(&digest) || !(dangling || options.all) {
                continue;
            }
            let removed = store
                .delete(&digest)
                .map_err(|e| Error::step(format!("delete image {digest}"), e))?;
            report
                .untagged
                .extend(removed.into_iter().filter_map(|e| e.name));
            report.deleted_images.push(digest);
        }
    }

    let survey = survey(root)?;
    report.unknown_containers = survey.unknown_containers.clone();
    let reachable = store
        .reachable()
        .map_err(|e| Error::step("walk the image store", e))?;

    if !report.limited {
        // Cache records: whose layer is gone or only the cache holds.
        let cache = root.cache();
        for key in cache.keys()? {
            let drop = match cache.get(&key) {
                None => true,
                Some(rec) => match &rec.layer {
                    None => options.all,
                    Some(l) => {
                        options.all
                            || Digest::parse(&l.digest)
                                .map(|d| !reachable.contains_key(&d) || !store.has_blob(&d))
                                .unwrap_or(true)
                    }
                },
            };
            if drop && cache.remove(&key)? {
                report.cache_objects.push(short(&key));
            }
        }
        if options.all {
            report.reclaimed_bytes += cache.clear_history()?;
            let digests = root.dir().join("cache/context-digests.json");
            if let Ok(md) = std::fs::metadata(&digests) {
                std::fs::remove_file(&digests).map_err(|e| Error::io("remove", &digests, e))?;
                report.reclaimed_bytes += md.len();
            }
        }

        // Snapshots no image or container has.
        if let Some(keep) = &survey.keep_snapshots {
            let dir = root.dir().join("snapshots");
            let rd = std::fs::read_dir(&dir).map_err(|e| Error::io("read directory", &dir, e))?;
            for ent in rd.flatten() {
                let name = ent.file_name().to_string_lossy().into_owned();
                if name.starts_with(".unpack-") || !keep.contains(&name) {
                    report.reclaimed_bytes += remove_tree(&ent.path())?;
                    if !name.starts_with('.') {
                        report.cache_objects.push(short(&name));
                    }
                }
            }
        }
    }

    // Cache mounts, on request. A running build may be using one.
    if options.cache_mounts && !report.limited {
        let dir = root.dir().join("cache-mounts");
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for ent in rd.flatten() {
                report.reclaimed_bytes += remove_tree(&ent.path())?;
                report
                    .cache_objects
                    .push(short(&ent.file_name().to_string_lossy()));
            }
        }
    }

    // Scratch space of builds that are gone.
    let tmp = root.dir().join("tmp");
    if let Ok(rd) = std::fs::read_dir(&tmp) {
        for ent in rd.flatten() {
            if !report.limited || older_than(&ent.path(), options.grace) {
                report.reclaimed_bytes += remove_tree(&ent.path())?;
            }
        }
    }

    // Blobs no image reaches (the cache-only layers whose records went).
    let mut gc = GcOptions::default();
    gc.grace = if report.limited {
        options.grace
    } else {
        Duration::ZERO
    };
    let blobs = store
        .gc(&gc)
        .map_err(|e| Error::step("collect unreferenced blobs", e))?;
    report.reclaimed_bytes += blobs.freed_bytes;
    drop(exclusive);
    Ok(report)
}

/// One row of `kiln system df`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageRow {
    /// How many there are.
    pub total: usize,
    /// How many are in use.
    pub active: usize,
    /// Bytes on disk.
    pub size: u64,
    /// Bytes a prune (with `-a`) would free.
    pub reclaimable: u64,
}

/// What `kiln system df` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DiskUsage {
    /// Images in the store (distinct manifests); active: used by a
    /// container; size: their blobs, shared ones once.
    pub images: UsageRow,
    /// Containers; active: running; size: their writable layers.
    pub containers: UsageRow,
    /// Build cache: cache records, snapshots, cache mounts, scratch space
    /// and the layer blobs only the cache holds.
    pub build_cache: UsageRow,
}

/// Measures the state directory (`docker system df`).
pub fn disk_usage(root: &Root) -> Result<DiskUsage> {
    let store = root.store();
    let survey = survey(root)?;
    let mut usage = DiskUsage::default();

    // Images: blobs reachable per image; reclaimable = blobs no used image
    // reaches.
    let entries = store.list().map_err(|e| Error::step("list images", e))?;
    let digests: BTreeSet<String> = entries
        .iter()
        .map(|e| e.descriptor.digest().to_string())
        .collect();
    let mut all_blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    let mut used_blobs: BTreeSet<Digest> = BTreeSet::new();
    for d in &digests {
        let blobs = image_blobs(root, d);
        if survey.used_images.contains(d) {
            used_blobs.extend(blobs.keys().cloned());
        }
        all_blobs.extend(blobs);
    }
    usage.images = UsageRow {
        total: digests.len(),
        active: digests
            .iter()
            .filter(|d| survey.used_images.contains(*d))
            .count(),
        size: all_blobs.values().sum(),
        reclaimable: all_blobs
            .iter()
            .filter(|(d, _)| !used_blobs.contains(*d))
            .map(|(_, s)| s)
            .sum(),
    };

    for c in &survey.containers {
        let size = tree_size(&c.dir.join("upper"));
        usage.containers.total += 1;
        usage.containers.size += size;
        if c.running {
            usage.containers.active += 1;
        } else {
            usage.containers.reclaimable += size;
        }
    }

    // Build cache.
    let reachable = store
        .reachable()
        .map_err(|e| Error::step("walk the image store", e))?;
    let mut cache_only: BTreeMap<Digest, u64> = BTreeMap::new();
    let keys = root.cache().keys()?;
    for key in &keys {
        if let Some(l) = root.cache().get(key).and_then(|r| r.layer)
            && let Ok(d) = Digest::parse(&l.digest)
            && !reachable.contains_key(&d)
            && store.has_blob(&d)
        {
            let size = std::fs::metadata(store.blob_path(&d))
                .map(|m| m.len())
                .unwrap_or(l.size);
            cache_only.insert(d, size);
        }
    }
    let mut row = UsageRow {
        total: keys.len(),
        size: cache_only.values().sum(),
        reclaimable: cache_only.values().sum(),
        ..UsageRow::default()
    };
    let snaps = root.dir().join("snapshots");
    if let Ok(rd) = std::fs::read_dir(&snaps) {
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            let size = tree_size(&ent.path());
            row.size += size;
            let kept = survey
                .keep_snapshots
                .as_ref()
                .is_none_or(|k| k.contains(&name));
            if kept && !name.starts_with('.') {
                row.active += 1;
            } else {
                row.reclaimable += size;
            }
            row.total += 1;
        }
    }
    for sub in ["cache-mounts", "tmp"] {
        let dir = root.dir().join(sub);
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for ent in rd.flatten() {
                let size = tree_size(&ent.path());
                row.total += usize::from(sub == "cache-mounts");
                row.size += size;
                row.reclaimable += size;
            }
        }
    }
    usage.build_cache = row;
    Ok(usage)
}

/// Blobs (config, layers, the manifest itself) of one image, with sizes.
fn image_blobs(root: &Root, manifest: &str) -> BTreeMap<Digest, u64> {
    let mut out = BTreeMap::new();
    let Ok(d) = Digest::parse(manifest) else {
        return out;
    };
    let store = root.store();
    let Ok(raw) = store.read_blob(&d) else {
        return out;
    };
    out.insert(d, raw.len() as u64);
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&raw) else {
        return out;
    };
    let descs = v.get("config").into_iter().chain(
        v.get("layers")
            .and_then(|l| l.as_array())
            .into_iter()
            .flatten(),
    );
    for desc in descs {
        if let Some(d) = desc
            .get("digest")
            .and_then(|d| d.as_str())
            .and_then(|d| Digest::parse(d).ok())
        {
            let size = desc.get("size").and_then(|s| s.as_u64()).unwrap_or(0);
            out.insert(d, size);
        }
    }
    out
}

/// Docker's human size (go-units `HumanSize`): decimal units, four
/// significant digits, e.g. `0B`, `512B`, `1.2MB`, `16.43GB`.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    let int_digits = if value < 1.0 {
        1
    } else {
        (value.log10().floor() as usize) + 1
    };
    let decimals = 4usize.saturating_sub(int_digits);
    let mut text = format!("{value:.decimals$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(512), "512B");
        assert_eq!(human_size(1_200_000), "1.2MB");
        assert_eq!(human_size(16_430_000_000), "16.43GB");
        assert_eq!(human_size(998_400_000), "998.4MB");
        assert_eq!(human_size(1_000), "1kB");
    }
}
