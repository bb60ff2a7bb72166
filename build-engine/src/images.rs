//! The local image commands as a library: what `docker images`, `tag`,
//! `rmi`, `history`, `image inspect`, `save`, `load`, `import` and `image
//! prune` do, returning typed data so an embedder gets what the CLI prints.
//!
//! Conventions taken from Docker:
//!
//! - An image's **ID** is the digest of its config blob (`sha256:...`,
//!   shown as its first 12 hex digits); the manifest digest is its
//!   **digest** (`repo@sha256:...`). [`find_image`] accepts a tag (in any
//!   spelling Docker accepts: `busybox`, `docker.io/library/busybox:latest`),
//!   a manifest or config digest, or a unique prefix of the ID.
//! - Tags are stored normalised (`docker.io/library/busybox:latest`) and
//!   shown in Docker's short form by [`familiar_name`] (`busybox:latest`).
//! - `rmi` untags first and deletes the image (and the blobs nothing else
//!   reaches) only when no tag is left, refusing images a container uses.
//!
//! Where kiln differs on purpose: [`ImageSummary::size`] is the bytes the
//! image occupies in the store (config and layer blobs as stored, usually
//! compressed), not the unpacked size Docker's graph drivers report; and
//! `rmi -f` on an image a container uses untags it but keeps its blobs,
//! because the container's next start or commit needs them.
//!
//! ```no_run
//! use kiln_build_engine::{Root, images};
//! # fn demo() -> Result<(), kiln_build_engine::Error> {
//! let root = Root::open(&Root::default_dir())?;
//! for image in images::list_images(&root)? {
//!     println!("{} {:?} {}", image.short_id(), image.familiar_tags(), image.size);
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};

use kiln_dockerfile_parser::{CommandLine, InstructionKind, expand_word, parse_instruction};
use kiln_image_layers::archive::{
    LoadedImage as LayersLoaded, SaveImage, docker_load_named, docker_save_named,
    import_rootfs_layer,
};
use kiln_image_layers::oci_spec::image::Descriptor;
use kiln_image_layers::{Compression, Digest};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::builder::{HOST_ARCH, HOST_OS, LayerRef, timestamp};
use crate::cache::LayerRecord;
use crate::config::{ConfigChange, ImageConfig, expand_ports, resolve_workdir};
use crate::error::{Error, Result};
use crate::image::{ImageRef, write_image};
use crate::root::Root;

// ---- names ----------------------------------------------------------------

/// Docker's short form of a normalised name: `docker.io/library/busybox:1`
/// -> `busybox:1`, `docker.io/user/app` -> `user/app`; other registries are
/// kept (`localhost:5000/app:1`).
pub fn familiar_name(name: &str) -> String {
    let Some(rest) = name.strip_prefix("docker.io/") else {
        return name.to_owned();
    };
    match rest.strip_prefix("library/") {
        // `library/` goes only for a single-component path.
        Some(short) if !short.split(['@', ':']).next().unwrap_or("").contains('/') => {
            short.to_owned()
        }
        _ => rest.to_owned(),
    }
}

/// Splits a stored name into repository and tag (`None` for a
/// `repo@digest` name).
pub fn split_name(name: &str) -> (&str, Option<&str>) {
    if let Some((repo, _)) = name.split_once('@') {
        return (repo, None);
    }
    match name.rfind(':') {
        Some(i) if !name[i + 1..].contains('/') => (&name[..i], Some(&name[i + 1..])),
        _ => (name, None),
    }
}

/// The name a reference is stored under: `busybox` ->
/// `docker.io/library/busybox:latest`.
pub fn normalize_name(reference: &str) -> Result<String> {
    ImageRef::parse(reference)
        .map(|r| r.to_string())
        .map_err(|message| Error::Image {
            reference: reference.to_owned(),
            message,
            source: None,
        })
}

// ---- listing --------------------------------------------------------------

/// One image in the store (one manifest, with all its tags).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ImageSummary {
    /// The image ID: the config digest (`sha256:...`).
    pub id: String,
    /// The manifest digest (`sha256:...`).
    pub manifest_digest: String,
    /// The tags, as stored (normalised), in `index.json` order; empty for
    /// a dangling image.
    pub repo_tags: Vec<String>,
    /// `created` of the config (RFC 3339), if it has one.
    pub created: Option<String>,
    /// `created` in seconds since the epoch, if it parses.
    pub created_unix: Option<i64>,
    /// Bytes the image occupies in the store: config plus layer blobs.
    pub size: u64,
    /// The config's `Labels`.
    pub labels: BTreeMap<String, String>,
    /// Config digest, manifest digest and layer blob digests: the blobs
    /// that go when the image is deleted (unless another image shares them).
    pub blobs: Vec<String>,
}

impl ImageSummary {
    /// True when no tag names the image.
    pub fn is_dangling(&self) -> bool {
        self.repo_tags.is_empty()
    }

    /// The first 12 hex digits of the ID, as Docker shows it.
    pub fn short_id(&self) -> &str {
        short_id(&self.id)
    }

    /// The tags in Docker's short form (`busybox:latest`).
    pub fn familiar_tags(&self) -> Vec<String> {
        self.repo_tags.iter().map(|t| familiar_name(t)).collect()
    }

    /// `repo@manifest-digest` for each repository the image is tagged in
    /// (Docker's `RepoDigests`, as its containerd image store reports them).
    pub fn repo_digests(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for t in &self.repo_tags {
            let (repo, _) = split_name(t);
            let d = format!("{}@{}", familiar_name(repo), self.manifest_digest);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }
}

/// The first 12 hex digits of a digest.
pub fn short_id(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

fn parse_digest(s: &str) -> Result<Digest> {
    Digest::parse(s).map_err(|e| Error::step(format!("digest {s}"), e))
}

fn read_json(root: &Root, digest: &str, what: &str) -> Result<(Value, u64)> {
    let d = parse_digest(digest)?;
    let raw = root
        .store()
        .read_blob(&d)
        .map_err(|e| Error::step(format!("read {what} {digest}"), e))?;
    let v = serde_json::from_slice(&raw).map_err(|e| Error::Json {
        what: format!("{what} {digest}"),
        source: e,
    })?;
    Ok((v, raw.len() as u64))
}

/// The manifest of an `index.json` entry; for an image index, the entry
/// for the host platform (the one kiln pulls and runs).
fn platform_manifest(root: &Root, digest: &str) -> Result<(String, Value, u64)> {
    let (v, size) = read_json(root, digest, "manifest")?;
    let Some(list) = v.get("manifests").and_then(Value::as_array) else {
        return Ok((digest.to_owned(), v, size));
    };
    let pick = list
        .iter()
        .find(|m| {
            m.pointer("/platform/os").and_then(Value::as_str) == Some(HOST_OS)
                && m.pointer("/platform/architecture").and_then(Value::as_str) == Some(HOST_ARCH)
        })
        .or_else(|| list.first())
        .and_then(|m| m.get("digest").and_then(Value::as_str))
        .ok_or_else(|| Error::Image {
            reference: digest.to_owned(),
            message: "image index without manifests".into(),
            source: None,
        })?;
    let (m, msize) = read_json(root, pick, "manifest")?;
    Ok((pick.to_owned(), m, msize))
}

fn summarize(root: &Root, manifest_digest: &str, tags: Vec<String>) -> Result<ImageSummary> {
    let (child, manifest, _) = platform_manifest(root, manifest_digest)?;
    let config_digest = manifest
        .pointer("/config/digest")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Image {
            reference: manifest_digest.to_owned(),
            message: "manifest has no config".into(),
            source: None,
        })?
        .to_owned();
    let (config, config_size) = read_json(root, &config_digest, "config")?;
    let mut blobs = vec![config_digest.clone(), manifest_digest.to_owned()];
    if child != manifest_digest {
        blobs.push(child);
    }
    let mut size = config_size;
    for l in manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        size += l.get("size").and_then(Value::as_u64).unwrap_or(0);
        if let Some(d) = l.get("digest").and_then(Value::as_str) {
            blobs.push(d.to_owned());
        }
    }
    let created = config
        .get("created")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let labels = config
        .pointer("/config/Labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default();
    Ok(ImageSummary {
        id: config_digest,
        manifest_digest: manifest_digest.to_owned(),
        repo_tags: tags,
        created_unix: created.as_deref().and_then(parse_rfc3339),
        created,
        size,
        labels,
        blobs,
    })
}

/// Every image in the store, newest first (as `docker images` sorts), one
/// entry per manifest with all its tags.
pub fn list_images(root: &Root) -> Result<Vec<ImageSummary>> {
    let entries = root
        .store()
        .list()
        .map_err(|e| Error::step("list images", e))?;
    let mut order: Vec<String> = Vec::new();
    let mut tags: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in entries {
        let d = e.descriptor.digest().to_string();
        if !tags.contains_key(&d) {
            order.push(d.clone());
        }
        let slot = tags.entry(d).or_default();
        if let Some(n) = e.name {
            slot.push(n);
        }
    }
    let mut out = Vec::with_capacity(order.len());
    for d in order {
        let t = tags.remove(&d).unwrap_or_default();
        out.push(summarize(root, &d, t)?);
    }
    // Stable: images without a date keep their index order at the end.
    out.sort_by_key(|i| std::cmp::Reverse(i.created_unix));
    Ok(out)
}

/// How a reference matched in [`find_image`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Matched {
    /// A tag; the normalised name.
    Tag(String),
    /// A digest or ID (prefix).
    Id,
}

/// Finds an image by tag (any spelling), manifest or config digest
/// (`sha256:...`, also `name@sha256:...`), or a unique prefix of the ID
/// (with or without `sha256:`), in that order, as Docker looks them up.
pub fn find_image(root: &Root, reference: &str) -> Result<(ImageSummary, Matched)> {
    let images = list_images(root)?;
    find_in(&images, reference).map(|(i, m)| (i.clone(), m))
}

fn no_such(reference: &str) -> Error {
    Error::NoSuchImage {
        reference: reference.to_owned(),
    }
}

fn find_in<'a>(images: &'a [ImageSummary], reference: &str) -> Result<(&'a ImageSummary, Matched)> {
    let by_tag = |name: &str| {
        images
            .iter()
            .find(|i| i.repo_tags.iter().any(|t| t == name))
            .map(|i| (i, Matched::Tag(name.to_owned())))
    };
    if let Some(hit) = by_tag(reference) {
        return Ok(hit);
    }
    let parsed = ImageRef::parse(reference).ok();
    if let Some(r) = &parsed {
        if let Some(d) = &r.digest {
            if let Some(i) = images
                .iter()
                .find(|i| &i.manifest_digest == d || &i.id == d)
            {
                return Ok((i, Matched::Id));
            }
        } else if let Some(hit) = by_tag(&r.to_string()) {
            return Ok(hit);
        }
    }
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    if !hex.is_empty() && hex.len() <= 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        let hex = hex.to_ascii_lowercase();
        let hits: Vec<&ImageSummary> = images
            .iter()
            .filter(|i| {
                short_hex(&i.id).starts_with(&hex)
                    || (hex.len() == 64 && short_hex(&i.manifest_digest) == hex)
            })
            .collect();
        match hits.as_slice() {
            [one] => return Ok((one, Matched::Id)),
            [] => {}
            _ => {
                let ids: BTreeSet<&str> = hits.iter().map(|i| i.id.as_str()).collect();
                if ids.len() > 1 {
                    return Err(Error::Conflict {
                        message: format!("image ID prefix {reference:?} is ambiguous"),
                    });
                }
                return Ok((hits[0], Matched::Id));
            }
        }
    }
    Err(no_such(reference))
}

fn short_hex(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// Resolves a reference (tag, digest or ID prefix) to the manifest digest
/// of the image; what [`crate::run_image`] and the builder use to accept
/// image IDs.
pub fn resolve_manifest_digest(root: &Root, reference: &str) -> Result<String> {
    find_image(root, reference).map(|(i, _)| i.manifest_digest)
}

// ---- filters --------------------------------------------------------------

/// One `docker images --filter` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImageFilter {
    /// `dangling=true|false`.
    Dangling(bool),
    /// `reference=PATTERN`: a glob over `repo` and `repo:tag` in Docker's
    /// short form; only the matching tags are kept.
    Reference(String),
    /// `label=KEY` or `label=KEY=VALUE`.
    Label(String, Option<String>),
    /// `before=IMAGE`: created before that image.
    Before(String),
    /// `since=IMAGE`: created after that image.
    Since(String),
}

impl ImageFilter {
    /// Parses `key=value` as `docker images --filter` takes it.
    pub fn parse(s: &str) -> Result<ImageFilter> {
        let bad = |m: String| Error::Filter { message: m };
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| bad(format!("bad format of filter (expected name=value): {s}")))?;
        match k.trim().to_ascii_lowercase().as_str() {
            "dangling" => match v.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(ImageFilter::Dangling(true)),
                "false" | "0" => Ok(ImageFilter::Dangling(false)),
                _ => Err(bad(format!(
                    "invalid filter 'dangling={v}': expected true or false"
                ))),
            },
            "reference" => Ok(ImageFilter::Reference(v.to_owned())),
            "label" => Ok(match v.split_once('=') {
                Some((k, v)) => ImageFilter::Label(k.to_owned(), Some(v.to_owned())),
                None => ImageFilter::Label(v.to_owned(), None),
            }),
            "before" => Ok(ImageFilter::Before(v.to_owned())),
            "since" => Ok(ImageFilter::Since(v.to_owned())),
            other => Err(bad(format!("invalid filter '{other}'"))),
        }
    }
}

/// Applies filters (all must hold; several `reference` filters are
/// alternatives, as in Docker) to a listing, narrowing `repo_tags` to the
/// tags a reference pattern matches.
pub fn filter_images(
    images: Vec<ImageSummary>,
    filters: &[ImageFilter],
) -> Result<Vec<ImageSummary>> {
    let mut before = None;
    let mut since = None;
    for f in filters {
        match f {
            ImageFilter::Before(r) => before = find_in(&images, r)?.0.created_unix,
            ImageFilter::Since(r) => since = find_in(&images, r)?.0.created_unix,
            _ => {}
        }
    }
    let patterns: Vec<&str> = filters
        .iter()
        .filter_map(|f| match f {
            ImageFilter::Reference(p) => Some(p.as_str()),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for mut img in images {
        let mut keep = true;
        for f in filters {
            keep &= match f {
                ImageFilter::Dangling(d) => img.is_dangling() == *d,
                ImageFilter::Label(k, v) => match (img.labels.get(k), v) {
                    (Some(have), Some(want)) => have == want,
                    (Some(_), None) => true,
                    (None, _) => false,
                },
                ImageFilter::Before(_) => {
                    matches!((img.created_unix, before), (Some(c), Some(b)) if c < b)
                }
                ImageFilter::Since(_) => {
                    matches!((img.created_unix, since), (Some(c), Some(s)) if c > s)
                }
                ImageFilter::Reference(_) => true,
            };
        }
        if keep && !patterns.is_empty() {
            img.repo_tags.retain(|t| {
                let short = familiar_name(t);
                let (repo, _) = split_name(&short);
                patterns
                    .iter()
                    .any(|p| glob_match(p, repo) || glob_match(p, &short))
            });
            keep = !img.repo_tags.is_empty();
        }
        if keep {
            out.push(img);
        }
    }
    Ok(out)
}

/// Go's `path.Match`: `*` and `?` never match `/`; `[...]` classes with
/// ranges and `^`/`!` negation; `\` escapes.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_at(&p, &n)
}

fn glob_at(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len())
            .take_while(|&i| i == 0 || n[i - 1] != '/')
            .any(|i| glob_at(&p[1..], &n[i..])),
        Some('?') => n.first().is_some_and(|c| *c != '/') && glob_at(&p[1..], &n[1..]),
        Some('[') => {
            let Some(&c) = n.first() else { return false };
            let mut i = 1;
            let negate = matches!(p.get(1), Some('^' | '!'));
            if negate {
                i += 1;
            }
            let mut hit = false;
            let mut first = true;
            while i < p.len() && (p[i] != ']' || first) {
                first = false;
                let lo = p[i];
                if p.get(i + 1) == Some(&'-') && p.get(i + 2).is_some_and(|c| *c != ']') {
                    hit |= lo <= c && c <= p[i + 2];
                    i += 3;
                } else {
                    hit |= lo == c;
                    i += 1;
                }
            }
            if i >= p.len() {
                return false;
            }
            hit != negate && c != '/' && glob_at(&p[i + 1..], &n[1..])
        }
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob_at(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob_at(&p[1..], &n[1..]),
    }
}

// ---- tag ------------------------------------------------------------------

/// `docker tag SOURCE TARGET`: points the normalised `target` at the image
/// `source` names. Returns the stored target name.
pub fn tag_image(root: &Root, source: &str, target: &str) -> Result<String> {
    let (img, _) = find_image(root, source)?;
    let r = ImageRef::parse(target).map_err(|message| Error::Image {
        reference: target.to_owned(),
        message,
        source: None,
    })?;
    if r.digest.is_some() {
        return Err(Error::Image {
            reference: target.to_owned(),
            message: "refusing to create a tag with a digest reference".into(),
            source: None,
        });
    }
    let name = r.to_string();
    let desc = root
        .store()
        .resolve(&img.manifest_digest)
        .map_err(|e| Error::step(format!("read image {source}"), e))?;
    root.store()
        .tag(&name, &desc)
        .map_err(|e| Error::step(format!("tag {name}"), e))?;
    Ok(name)
}

// ---- remove and prune -----------------------------------------------------

/// One line of `docker rmi` / `docker image prune` output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum RemoveEvent {
    /// A tag was removed (Docker's short form).
    Untagged(String),
    /// An image (its ID) or a layer blob was deleted.
    Deleted(String),
}

/// A container that uses an image, for the conflict checks of `rmi`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImageUser {
    /// The container's short ID.
    pub container: String,
    /// Whether it is running (then even `-f` does not delete the image).
    pub running: bool,
}

/// The containers of `root` whose image is `manifest_digest`.
pub fn containers_using(root: &Root, manifest_digest: &str) -> Result<Vec<ImageUser>> {
    Ok(crate::containers::list(root)?
        .into_iter()
        .filter(|c| c.image_digest == manifest_digest)
        .map(|c| ImageUser {
            container: c.short_id().to_owned(),
            running: c.effective_state() == crate::containers::ContainerState::Running,
        })
        .collect())
}

/// Deletes an image's `index.json` entries and then its blobs that no
/// other image reaches; returns (deleted blob, bytes) pairs.
///
/// A build or pull running at the same moment may be about to reference
/// those blobs (the image as its base, or a layer it shares) without having
/// recorded that in `index.json` yet: while any of them holds the shared
/// [`crate::gc::BuildLock`], the blobs stay and the next prune collects
/// them, so no process is ever left pointing at a deleted blob.
fn delete_image(root: &Root, img: &ImageSummary) -> Result<Vec<(Digest, u64)>> {
    let store = root.store();
    store
        .delete(&img.manifest_digest)
        .map_err(|e| Error::step(format!("delete image {}", img.short_id()), e))?;
    let Some(_exclusive) = crate::gc::BuildLock::try_exclusive(root)? else {
        return Ok(Vec::new());
    };
    let blobs = img
        .blobs
        .iter()
        .map(|d| parse_digest(d))
        .collect::<Result<Vec<_>>>()?;
    store
        .remove_unreachable(&blobs)
        .map_err(|e| Error::step(format!("remove blobs of image {}", img.short_id()), e))
}

fn deleted_events(img: &ImageSummary, removed: &[(Digest, u64)]) -> Vec<RemoveEvent> {
    let mut out = vec![RemoveEvent::Deleted(img.id.clone())];
    // Layer blobs, as Docker lists the layers it deleted; the manifest is
    // bookkeeping Docker never shows.
    for (d, _) in removed {
        let s = d.to_string();
        if s != img.id && s != img.manifest_digest {
            out.push(RemoveEvent::Deleted(s));
        }
    }
    out
}

/// `docker rmi [-f] IMAGE`: removes the tag `reference` names, and the
/// image with its unshared blobs when no tag is left. By ID, an image with
/// several tags needs `force` (all its tags go). An image a container uses
/// is never deleted; without `force` it is not even untagged.
pub fn remove_image(root: &Root, reference: &str, force: bool) -> Result<Vec<RemoveEvent>> {
    let (img, matched) = find_image(root, reference)?;
    let users = containers_using(root, &img.manifest_digest)?;
    let mut events = Vec::new();
    match matched {
        Matched::Tag(name) if img.repo_tags.len() > 1 => {
            root.store()
                .untag(&name)
                .map_err(|e| Error::step(format!("untag {name}"), e))?;
            events.push(RemoveEvent::Untagged(familiar_name(&name)));
            return Ok(events);
        }
        // The last tag: it goes, and the image with it unless a container
        // needs it.
        Matched::Tag(_) => {
            if let Some(u) = users.first()
                && !force
            {
                return Err(Error::Conflict {
                    message: format!(
                        "unable to remove repository reference \"{}\" (must force) - container {} is using its referenced image {}",
                        reference,
                        u.container,
                        img.short_id()
                    ),
                });
            }
        }
        Matched::Id => {
            if let Some(u) = users.iter().find(|u| u.running) {
                return Err(Error::Conflict {
                    message: format!(
                        "unable to delete {} (cannot be forced) - image is being used by running container {}",
                        img.short_id(),
                        u.container
                    ),
                });
            }
            if let Some(u) = users.first()
                && !force
            {
                return Err(Error::Conflict {
                    message: format!(
                        "unable to delete {} (must be forced) - image is being used by stopped container {}",
                        img.short_id(),
                        u.container
                    ),
                });
            }
            if img.repo_tags.len() > 1 && !force {
                return Err(Error::Conflict {
                    message: format!(
                        "unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        img.short_id()
                    ),
                });
            }
        }
    }
    for t in &img.repo_tags {
        root.store()
            .untag(t)
            .map_err(|e| Error::step(format!("untag {t}"), e))?;
        events.push(RemoveEvent::Untagged(familiar_name(t)));
    }
    if users.is_empty() {
        let removed = delete_image(root, &img)?;
        events.extend(deleted_events(&img, &removed));
    }
    Ok(events)
}

/// What [`prune_images`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Untagged and deleted lines, in order.
    pub events: Vec<RemoveEvent>,
    /// Bytes of blobs removed.
    pub reclaimed: u64,
}

/// One `docker image prune --filter` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PruneFilter {
    /// `until=TIME`: only images created before this (seconds since the
    /// epoch).
    Until(i64),
    /// `label=KEY[=VALUE]` (`negate` false) or `label!=KEY[=VALUE]`.
    Label {
        /// The label's key.
        key: String,
        /// The value it must have, if given.
        value: Option<String>,
        /// `label!=`: images *without* the label (value) are pruned.
        negate: bool,
    },
}

/// Go's `time.ParseDuration` for the units Docker users write
/// (`90s`, `30m`, `24h`, `1h30m`, `1.5h`).
fn parse_go_duration(s: &str) -> Option<f64> {
    let mut total = 0.0;
    let mut rest = s;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let u = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += num * mult;
        rest = &rest[u..];
    }
    Some(total)
}

impl PruneFilter {
    /// Parses `until=...` (a Go duration before `now`, an RFC 3339 time, a
    /// `YYYY-MM-DD` date or Unix seconds) or `label[!]=KEY[=VALUE]`.
    pub fn parse(s: &str, now: i64) -> Result<PruneFilter> {
        let bad = |m: String| Error::Filter { message: m };
        if let Some(rest) = s.strip_prefix("label!=") {
            let (key, value) = match rest.split_once('=') {
                Some((k, v)) => (k.to_owned(), Some(v.to_owned())),
                None => (rest.to_owned(), None),
            };
            return Ok(PruneFilter::Label {
                key,
                value,
                negate: true,
            });
        }
        let (k, v) = s
            .split_once('=')
            .ok_or_else(|| bad(format!("bad format of filter (expected name=value): {s}")))?;
        match k {
            "until" => {
                let t = if let Some(d) = parse_go_duration(v) {
                    now - d as i64
                } else if let Some(t) = parse_rfc3339(v) {
                    t
                } else if v.len() == 10 && v.as_bytes()[4] == b'-' {
                    parse_rfc3339(&format!("{v}T00:00:00Z"))
                        .ok_or_else(|| bad(format!("invalid until value {v:?}")))?
                } else {
                    v.split('.')
                        .next()
                        .and_then(|n| n.parse::<i64>().ok())
                        .ok_or_else(|| bad(format!("invalid until value {v:?}")))?
                };
                Ok(PruneFilter::Until(t))
            }
            "label" => Ok(match v.split_once('=') {
                Some((k, v)) => PruneFilter::Label {
                    key: k.to_owned(),
                    value: Some(v.to_owned()),
                    negate: false,
                },
                None => PruneFilter::Label {
                    key: v.to_owned(),
                    value: None,
                    negate: false,
                },
            }),
            other => Err(bad(format!("invalid filter '{other}'"))),
        }
    }

    fn matches(&self, img: &ImageSummary) -> bool {
        match self {
            PruneFilter::Until(t) => img.created_unix.is_some_and(|c| c < *t),
            PruneFilter::Label { key, value, negate } => {
                let has = match (img.labels.get(key), value) {
                    (Some(h), Some(w)) => h == w,
                    (Some(_), None) => true,
                    (None, _) => false,
                };
                has != *negate
            }
        }
    }
}

/// `docker image prune [-a] [--filter ...]`: deletes dangling images, or
/// with `all` every image no container uses, among those all `filters`
/// select.
pub fn prune_images(root: &Root, all: bool, filters: &[PruneFilter]) -> Result<PruneReport> {
    let mut report = PruneReport::default();
    for img in list_images(root)? {
        if !all && !img.is_dangling() {
            continue;
        }
        if !filters.iter().all(|f| f.matches(&img)) {
            continue;
        }
        if !containers_using(root, &img.manifest_digest)?.is_empty() {
            continue;
        }
        for t in &img.repo_tags {
            report.events.push(RemoveEvent::Untagged(familiar_name(t)));
        }
        let removed = delete_image(root, &img)?;
        report.reclaimed += removed.iter().map(|(_, n)| n).sum::<u64>();
        report.events.extend(deleted_events(&img, &removed));
    }
    Ok(report)
}

// ---- history --------------------------------------------------------------

/// One row of `docker history`, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct HistoryEntry {
    /// The image ID for the top entry; `None` (Docker's `<missing>`) for
    /// the entries below it, which have no image of their own.
    pub id: Option<String>,
    /// `created` (RFC 3339).
    pub created: Option<String>,
    /// `created` in seconds since the epoch.
    pub created_unix: Option<i64>,
    /// `created_by`.
    pub created_by: String,
    /// Size of the entry's layer blob; 0 for an `empty_layer` entry.
    pub size: u64,
    /// `comment`.
    pub comment: String,
    /// Whether the entry made no layer.
    pub empty_layer: bool,
}

/// `docker history IMAGE`: the config's history, newest first, with the
/// size of each entry's layer.
pub fn history(root: &Root, reference: &str) -> Result<Vec<HistoryEntry>> {
    let (img, _) = find_image(root, reference)?;
    let (_, manifest, _) = platform_manifest(root, &img.manifest_digest)?;
    let (config, _) = read_json(root, &img.id, "config")?;
    let sizes: Vec<u64> = manifest
        .get("layers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|l| l.get("size").and_then(Value::as_u64).unwrap_or(0))
        .collect();
    let hist = config
        .get("history")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    if hist.is_empty() {
        for s in &sizes {
            out.push(HistoryEntry {
                id: None,
                created: None,
                created_unix: None,
                created_by: String::new(),
                size: *s,
                comment: String::new(),
                empty_layer: false,
            });
        }
    } else {
        let mut layer = 0;
        for h in &hist {
            let empty = h.get("empty_layer").and_then(Value::as_bool) == Some(true);
            let size = if empty {
                0
            } else {
                layer += 1;
                sizes.get(layer - 1).copied().unwrap_or(0)
            };
            let s = |k: &str| h.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let created = h.get("created").and_then(Value::as_str).map(str::to_owned);
            out.push(HistoryEntry {
                id: None,
                created_unix: created.as_deref().and_then(parse_rfc3339),
                created,
                created_by: s("created_by"),
                size,
                comment: s("comment"),
                empty_layer: empty,
            });
        }
    }
    out.reverse();
    if let Some(top) = out.first_mut() {
        top.id = Some(img.id.clone());
    }
    Ok(out)
}

// ---- inspect --------------------------------------------------------------

/// `docker image inspect` output for one image, in Docker's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct ImageInspect {
    /// The image ID (config digest).
    pub id: String,
    /// Tags in Docker's short form.
    pub repo_tags: Vec<String>,
    /// `repo@manifest-digest` per repository.
    pub repo_digests: Vec<String>,
    /// Always empty: images in an OCI store have no parent image.
    pub parent: String,
    /// The config's `comment` (set by `import -m`).
    pub comment: String,
    /// The config's `created`.
    pub created: String,
    /// The config's `docker_version`, if any.
    pub docker_version: String,
    /// The config's `author`.
    pub author: String,
    /// The runtime config, with Docker's keys.
    pub config: InspectConfig,
    /// `architecture`.
    pub architecture: String,
    /// `variant`, when the config has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// `os`.
    pub os: String,
    /// Bytes in the store (see [`ImageSummary::size`]).
    pub size: u64,
    /// The layers' diffIDs.
    #[serde(rename = "RootFS")]
    pub root_fs: InspectRootFs,
    /// Local metadata.
    pub metadata: InspectMetadata,
}

/// `RootFS` of [`ImageInspect`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct InspectRootFs {
    /// `layers`.
    #[serde(rename = "Type")]
    pub kind: String,
    /// diffIDs, bottom first.
    pub layers: Vec<String>,
}

/// `Metadata` of [`ImageInspect`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
pub struct InspectMetadata {
    /// Not recorded by kiln: Go's zero time, as Docker shows for images
    /// never tagged locally.
    pub last_tag_time: String,
}

/// The `Config` of [`ImageInspect`]: Docker's container-config keys in
/// Docker's order (the image config's own values, defaults for the rest).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
#[non_exhaustive]
#[allow(missing_docs)]
pub struct InspectConfig {
    pub hostname: String,
    pub domainname: String,
    pub user: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<Value>,
    pub tty: bool,
    pub open_stdin: bool,
    pub stdin_once: bool,
    pub env: Option<Value>,
    pub cmd: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args_escaped: Option<Value>,
    pub image: String,
    pub volumes: Option<Value>,
    pub working_dir: String,
    pub entrypoint: Option<Value>,
    pub on_build: Option<Value>,
    pub labels: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shell: Option<Value>,
}

impl InspectConfig {
    fn from_config(c: &Map<String, Value>) -> InspectConfig {
        let get = |k: &str| c.get(k).filter(|v| !v.is_null()).cloned();
        let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        InspectConfig {
            hostname: String::new(),
            domainname: String::new(),
            user: text("User"),
            attach_stdin: false,
            attach_stdout: false,
            attach_stderr: false,
            exposed_ports: get("ExposedPorts"),
            tty: false,
            open_stdin: false,
            stdin_once: false,
            env: get("Env"),
            cmd: get("Cmd"),
            healthcheck: get("Healthcheck"),
            args_escaped: get("ArgsEscaped"),
            image: String::new(),
            volumes: get("Volumes"),
            working_dir: text("WorkingDir"),
            entrypoint: get("Entrypoint"),
            on_build: get("OnBuild"),
            labels: get("Labels"),
            stop_signal: get("StopSignal"),
            shell: get("Shell"),
        }
    }
}

/// `docker image inspect IMAGE`.
pub fn inspect(root: &Root, reference: &str) -> Result<ImageInspect> {
    let (img, _) = find_image(root, reference)?;
    let (config, _) = read_json(root, &img.id, "config")?;
    let s = |k: &str| {
        config
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let empty = Map::new();
    let runtime = config
        .get("config")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    Ok(ImageInspect {
        id: img.id.clone(),
        repo_tags: img.familiar_tags(),
        repo_digests: img.repo_digests(),
        parent: String::new(),
        comment: s("comment"),
        created: s("created"),
        docker_version: s("docker_version"),
        author: s("author"),
        config: InspectConfig::from_config(runtime),
        architecture: s("architecture"),
        variant: config
            .get("variant")
            .and_then(Value::as_str)
            .map(str::to_owned),
        os: s("os"),
        size: img.size,
        root_fs: InspectRootFs {
            kind: config
                .pointer("/rootfs/type")
                .and_then(Value::as_str)
                .unwrap_or("layers")
                .to_owned(),
            layers: config
                .pointer("/rootfs/diff_ids")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        },
        metadata: InspectMetadata {
            last_tag_time: "0001-01-01T00:00:00Z".into(),
        },
    })
}

// ---- save and load --------------------------------------------------------

/// `docker save IMAGE...`: writes one archive (manifest.json, repositories
/// and an OCI layout, as Docker 25+ writes) with the images `references`
/// name; a name is recorded in Docker's short form, a repository without a
/// tag saves all its tags, an ID saves the image without a name.
pub fn save_images(root: &Root, references: &[&str], out: impl Write) -> Result<()> {
    let images = list_images(root)?;
    let mut picked: Vec<(String, Option<String>)> = Vec::new();
    for r in references {
        // A repository without a tag saves every tag of it, as `docker save
        // fedora` does.
        let whole_repo = match ImageRef::parse(r) {
            Ok(p) if !r.contains('@') && split_name(r).1.is_none() => {
                let repo = format!("{}/{}", p.registry, p.repository);
                images
                    .iter()
                    .flat_map(|i| i.repo_tags.iter().map(move |t| (i, t)))
                    .filter(|(_, t)| split_name(t).0 == repo)
                    .map(|(i, t)| (i.manifest_digest.clone(), Some(familiar_name(t))))
                    .collect::<Vec<_>>()
            }
            _ => Vec::new(),
        };
        if !whole_repo.is_empty() {
            picked.extend(whole_repo);
            continue;
        }
        let (img, matched) = find_in(&images, r)?;
        let name = match matched {
            Matched::Tag(n) => Some(familiar_name(&n)),
            Matched::Id => None,
        };
        picked.push((img.manifest_digest.clone(), name));
    }
    let list: Vec<SaveImage<'_>> = picked
        .iter()
        .map(|(d, n)| SaveImage {
            reference: d,
            name: n.as_deref(),
        })
        .collect();
    docker_save_named(root.store(), &list, out).map_err(|e| Error::step("write docker archive", e))
}

/// An image [`load_images`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct LoadedImage {
    /// The image ID (config digest).
    pub id: String,
    /// Its names from the archive, in Docker's short form.
    pub names: Vec<String>,
}

/// `docker load`: reads a `docker save` archive (classic or OCI-layout
/// style, plain, gzip or zstd) and tags its images with their normalised
/// names.
pub fn load_images(root: &Root, reader: impl Read) -> Result<Vec<LoadedImage>> {
    let reader = refuse_unknown_compression(reader, "image archive")?;
    let rename = |n: &str| normalize_name(n).unwrap_or_else(|_| n.to_owned());
    let loaded: Vec<LayersLoaded> = docker_load_named(root.store(), reader, &rename)
        .map_err(|e| Error::step("load docker archive", e))?;
    let mut out = Vec::new();
    for l in loaded {
        let d = l.descriptor.digest().to_string();
        let s = summarize(root, &d, Vec::new())?;
        out.push(LoadedImage {
            id: s.id,
            names: l.names.iter().map(|n| familiar_name(n)).collect(),
        });
    }
    Ok(out)
}

// ---- import ---------------------------------------------------------------

/// Choices for [`import_image`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportRequest {
    /// `REPOSITORY[:TAG]`; untagged when `None`.
    pub tag: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, USER, WORKDIR, VOLUME, STOPSIGNAL,
    /// ONBUILD).
    pub changes: Vec<String>,
    /// `-m`: the commit message (config `comment` and history comment);
    /// default `Imported from <source>`.
    pub message: Option<String>,
    /// `--platform os/arch[/variant]`; default the host's.
    pub platform: Option<String>,
    /// Where the tarball came from (`-` or a URL), for the default message.
    pub source: String,
}

impl ImportRequest {
    /// A request for a tarball from `source` (`-`, a path or a URL).
    pub fn new(source: impl Into<String>) -> ImportRequest {
        ImportRequest {
            source: source.into(),
            ..ImportRequest::default()
        }
    }
}

/// Applies one `--change` instruction to an image config, as `docker
/// import -c` and `docker commit -c` do (variables expand against the
/// config's `Env`; shell-form CMD/ENTRYPOINT run with its `Shell`).
pub fn apply_change(config: &mut ImageConfig, instruction: &str) -> Result<()> {
    let bad = |m: String| Error::Instruction {
        line: 0,
        message: format!("--change {instruction:?}: {m}"),
    };
    let ins = parse_instruction(instruction, '\\').map_err(|e| bad(e.to_string()))?;
    let env = config.env();
    let expand = |w: &str| expand_word(w, &env, '\\').map_err(|e| bad(e.to_string()));
    let pairs = |kvs: &[kiln_dockerfile_parser::KeyValue]| -> Result<Vec<(String, String)>> {
        kvs.iter()
            .map(|kv| Ok((expand(&kv.key)?, expand(&kv.value)?)))
            .collect()
    };
    let command = |c: &CommandLine, config: &ImageConfig| match c {
        CommandLine::Exec(v) => v.clone(),
        CommandLine::Shell(s) => {
            let mut v = config.shell();
            v.push(s.clone());
            v
        }
    };
    let change = match &ins.kind {
        InstructionKind::Env(e) => ConfigChange::Env(pairs(&e.pairs)?),
        InstructionKind::Label(l) => ConfigChange::Label(pairs(&l.pairs)?),
        InstructionKind::Cmd(c) => ConfigChange::Cmd(command(&c.command, config)),
        InstructionKind::Entrypoint(c) => ConfigChange::Entrypoint(command(&c.command, config)),
        InstructionKind::User(u) => ConfigChange::User(expand(&u.user)?),
        InstructionKind::Workdir(w) => {
            ConfigChange::WorkingDir(resolve_workdir(&config.working_dir(), &expand(&w.path)?))
        }
        InstructionKind::Expose(e) => {
            let mut ports = Vec::new();
            for w in &e.ports {
                ports.extend(expand_ports(&expand(&w.text)?).map_err(bad)?);
            }
            ConfigChange::Expose(ports)
        }
        InstructionKind::Volume(v) => {
            ConfigChange::Volume(v.paths.iter().map(|p| expand(p)).collect::<Result<_>>()?)
        }
        InstructionKind::Stopsignal(s) => ConfigChange::StopSignal(expand(&s.signal)?),
        InstructionKind::Onbuild(o) => ConfigChange::OnBuild(o.expression.clone()),
        _ => {
            return Err(bad(format!(
                "{} cannot be used as a change; allowed: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR",
                ins.keyword.to_ascii_uppercase()
            )));
        }
    };
    config.apply(change);
    Ok(())
}

/// What [`import_image`] made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportedImage {
    /// The image ID (config digest), what `docker import` prints.
    pub id: String,
    /// The manifest digest.
    pub manifest_digest: String,
    /// The stored (normalised) tag, if one was given.
    pub tag: Option<String>,
}

fn parse_platform(p: &str) -> Result<(String, String, Option<String>)> {
    let parts: Vec<&str> = p.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => {
            Ok((os.to_string(), arch.to_string(), None))
        }
        [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
            Ok((os.to_string(), arch.to_string(), Some(v.to_string())))
        }
        _ => Err(Error::Image {
            reference: p.to_owned(),
            message: "invalid platform: expected os/arch[/variant]".into(),
            source: None,
        }),
    }
}

/// Fails with a clear message for compressions Docker accepts but kiln
/// does not decode (xz, bzip2), instead of a tar error further on.
fn refuse_unknown_compression<R: Read>(reader: R, what: &str) -> Result<std::io::BufReader<R>> {
    use std::io::BufRead;
    let mut buf = std::io::BufReader::with_capacity(256 * 1024, reader);
    let head = buf
        .fill_buf()
        .map_err(|e| Error::step(format!("read {what}"), e))?;
    let name = if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Some("xz")
    } else if head.starts_with(b"BZh") {
        Some("bzip2")
    } else {
        None
    };
    match name {
        Some(n) => Err(Error::Unsupported {
            line: 0,
            feature: format!("a {n}-compressed {what} (decompress it first, or use gzip or zstd)"),
        }),
        None => Ok(buf),
    }
}

/// `docker import`: a root filesystem tarball (plain, gzip or zstd) as a
/// one-layer image with `req`'s changes applied.
pub fn import_image(root: &Root, reader: impl Read, req: &ImportRequest) -> Result<ImportedImage> {
    let (os, arch, variant) = match &req.platform {
        Some(p) => parse_platform(p)?,
        None => (HOST_OS.to_owned(), HOST_ARCH.to_owned(), None),
    };
    let tag = req.tag.as_deref().map(normalize_name).transpose()?;
    let mut config = ImageConfig::scratch(&os, &arch);
    for c in &req.changes {
        apply_change(&mut config, c)?;
    }
    let reader = refuse_unknown_compression(reader, "tarball")?;
    let (layer, diff_id) = import_rootfs_layer(root.store(), reader, Compression::Gzip)
        .map_err(|e| Error::step(format!("import {}", req.source), e))?;
    config.push_diff_id(&diff_id.to_string());
    let message = req
        .message
        .clone()
        .unwrap_or_else(|| format!("Imported from {}", req.source));
    let created = timestamp(None);
    config.set_created(&created);
    // Docker's import writes a top-level `comment` and a history entry with
    // only `created` and `comment`; ImageConfig has no setter for either,
    // so they are added to its JSON.
    let mut doc = config.as_json().clone();
    doc.insert("comment".into(), json!(message));
    doc.insert(
        "history".into(),
        json!([{"created": created, "comment": message}]),
    );
    if let Some(v) = variant {
        doc.insert("variant".into(), json!(v));
    }
    let bytes = serde_json::to_vec(&doc).map_err(|e| Error::Json {
        what: "import config".into(),
        source: e,
    })?;
    let (config, _) = ImageConfig::from_base(&bytes).map_err(|e| Error::Json {
        what: "import config".into(),
        source: e,
    })?;
    // from_base drops `created` (it describes a base); put it back.
    let mut config = config;
    config.set_created(&created);
    let layers = vec![LayerRef {
        record: LayerRecord {
            digest: layer.digest().to_string(),
            diff_id: diff_id.to_string(),
            size: layer.size(),
            media_type: layer.media_type().to_string(),
        },
    }];
    let (manifest, config_desc) = write_image(root.store(), &config, &layers)?;
    record(root, &manifest, tag.as_deref())?;
    Ok(ImportedImage {
        id: config_desc.digest().to_string(),
        manifest_digest: manifest.digest().to_string(),
        tag,
    })
}

fn record(root: &Root, manifest: &Descriptor, tag: Option<&str>) -> Result<()> {
    let desc = manifest.clone();
    match tag {
        Some(t) => root
            .store()
            .tag(t, &desc)
            .map_err(|e| Error::step(format!("tag {t}"), e)),
        None => root
            .store()
            .add_untagged(&desc)
            .map_err(|e| Error::step("record imported image", e)),
    }
}

/// `docker import URL`: downloads the tarball (http or https) into the
/// state directory's scratch space, then imports it as [`import_image`]
/// does.
pub async fn import_url(root: &Root, url: &str, req: &ImportRequest) -> Result<ImportedImage> {
    let fail = |m: String, e: Option<crate::error::Cause>| Error::Image {
        reference: url.to_owned(),
        message: m,
        source: e,
    };
    let mut resp = reqwest::get(url)
        .await
        .map_err(|e| fail("download".into(), Some(Box::new(e))))?;
    if !resp.status().is_success() {
        return Err(fail(format!("download: HTTP {}", resp.status()), None));
    }
    let tmp = root.tempdir("import-")?;
    let path = tmp.path().join("rootfs.tar");
    let mut f = std::fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| fail("download".into(), Some(Box::new(e))))?
    {
        f.write_all(&chunk)
            .map_err(|e| Error::io("write", &path, e))?;
    }
    drop(f);
    let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
    import_image(root, std::io::BufReader::new(f), req)
}

// ---- time -----------------------------------------------------------------

/// Parses an RFC 3339 time (`2024-01-02T03:04:05.123Z`, `...+01:00`) to
/// seconds since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[n..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        r if r.len() == 6 && (r.starts_with('+') || r.starts_with('-')) => {
            let oh: i64 = r.get(1..3)?.parse().ok()?;
            let om: i64 = r.get(4..6)?.parse().ok()?;
            let o = oh * 3600 + om * 60;
            if r.starts_with('-') { -o } else { o }
        }
        _ => return None,
    };
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn familiar_names_as_docker_shows_them() {
        assert_eq!(
            familiar_name("docker.io/library/busybox:latest"),
            "busybox:latest"
        );
        assert_eq!(familiar_name("docker.io/user/app:1"), "user/app:1");
        assert_eq!(familiar_name("docker.io/library/a/b:1"), "library/a/b:1");
        assert_eq!(
            familiar_name("localhost:5000/app:1"),
            "localhost:5000/app:1"
        );
        assert_eq!(familiar_name("docker.io/library/busybox"), "busybox");
        assert_eq!(
            split_name("localhost:5000/app:1"),
            ("localhost:5000/app", Some("1"))
        );
        assert_eq!(
            split_name("localhost:5000/app"),
            ("localhost:5000/app", None)
        );
        assert_eq!(split_name("x@sha256:00"), ("x", None));
    }

    #[test]
    fn globs_match_like_go_path_match() {
        assert!(glob_match("busy*", "busybox"));
        assert!(glob_match("busybox:*", "busybox:latest"));
        assert!(!glob_match("*", "user/app"));
        assert!(glob_match("*/app", "user/app"));
        assert!(glob_match("b?sybox", "busybox"));
        assert!(glob_match("[a-c]usybox", "busybox"));
        assert!(!glob_match("[^b]usybox", "busybox"));
        assert!(!glob_match("busy", "busybox"));
    }

    #[test]
    fn rfc3339_times() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.5Z"), Some(1_709_208_000));
        assert_eq!(
            parse_rfc3339("2024-02-29T13:00:00+01:00"),
            Some(1_709_208_000)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
        // Round trip with the builder's formatter.
        assert_eq!(
            parse_rfc3339(&timestamp(Some(1_700_000_000))),
            Some(1_700_000_000)
        );
    }

    #[test]
    fn filters_parse() {
        assert_eq!(
            ImageFilter::parse("dangling=true").ok(),
            Some(ImageFilter::Dangling(true))
        );
        assert_eq!(
            ImageFilter::parse("label=a=b").ok(),
            Some(ImageFilter::Label("a".into(), Some("b".into())))
        );
        assert!(ImageFilter::parse("bogus=1").is_err());
        assert!(ImageFilter::parse("dangling").is_err());
    }

    fn tiny_tar() -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(3);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, "hello", &b"hi\n"[..])
            .unwrap_or_else(|e| panic!("{e}"));
        b.into_inner().unwrap_or_else(|e| panic!("{e}"))
    }

    fn container(root: &Root, id: &str, image: &ImportedImage, running: bool) {
        use crate::containers::{ContainerRecord, ContainerState, RunConfig};
        let pid = std::process::id() as i32;
        let rec = ContainerRecord {
            id: id.to_owned(),
            name: format!("c{}", &id[..4]),
            image: "img".into(),
            image_digest: image.manifest_digest.clone(),
            config_digest: image.id.clone(),
            config: RunConfig::default(),
            created: 1,
            created_nanos: 0,
            state: if running {
                ContainerState::Running
            } else {
                ContainerState::Exited
            },
            pid: running.then_some(pid),
            pid_start_time: if running {
                crate::containers::process_start_time(pid)
            } else {
                None
            },
            monitor_pid: None,
            monitor_start_time: None,
            started_at: None,
            exit_code: None,
            finished_at: None,
        };
        let dir = crate::containers::container_dir(root, id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        crate::containers::write_record(root, &rec).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn images_in_use_by_containers_are_kept() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut req = ImportRequest::new("-");
        req.tag = Some("used:1".into());
        let img = import_image(&root, &tiny_tar()[..], &req).unwrap_or_else(|e| panic!("{e}"));
        let stopped = "a".repeat(64);
        container(&root, &stopped, &img, false);
        let err = |r: Result<Vec<RemoveEvent>>| match r {
            Err(e) => e.to_string(),
            Ok(ev) => format!("removed: {ev:?}"),
        };
        let short = short_id(&img.id).to_owned();
        assert_eq!(
            err(remove_image(&root, "used:1", false)),
            format!(
                "conflict: unable to remove repository reference \"used:1\" (must force) - container aaaaaaaaaaaa is using its referenced image {short}"
            )
        );
        assert_eq!(
            err(remove_image(&root, &short, false)),
            format!(
                "conflict: unable to delete {short} (must be forced) - image is being used by stopped container aaaaaaaaaaaa"
            )
        );
        // prune -a skips it.
        let report = prune_images(&root, true, &[]).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.events.is_empty(), "{report:?}");
        // A running container: not even -f by ID.
        container(&root, &"b".repeat(64), &img, true);
        assert!(err(remove_image(&root, &short, true)).contains(
            "(cannot be forced) - image is being used by running container bbbbbbbbbbbb"
        ));
        // -f by name untags but keeps the image for the containers.
        let ev = remove_image(&root, "used:1", true).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev, [RemoveEvent::Untagged("used:1".into())]);
        let left = list_images(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(left.len(), 1);
        assert!(left[0].is_dangling());
        for b in &left[0].blobs {
            assert!(
                root.store()
                    .has_blob(&parse_digest(b).unwrap_or_else(|e| panic!("{e}")))
            );
        }
    }

    #[test]
    fn rmi_during_a_build_leaves_the_blobs_for_the_next_prune() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let mut req = ImportRequest::new("-");
        req.tag = Some("gone:1".into());
        import_image(&root, &tiny_tar()[..], &req).unwrap_or_else(|e| panic!("{e}"));
        let (img, _) = find_image(&root, "gone:1").unwrap_or_else(|e| panic!("{e}"));
        let blobs: Vec<Digest> = img
            .blobs
            .iter()
            .map(|b| parse_digest(b).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        // A build is running: the image goes, its blobs stay.
        let build = crate::gc::BuildLock::shared(&root).unwrap_or_else(|e| panic!("{e}"));
        remove_image(&root, "gone:1", false).unwrap_or_else(|e| panic!("{e}"));
        assert!(
            list_images(&root)
                .unwrap_or_else(|e| panic!("{e}"))
                .is_empty()
        );
        assert!(blobs.iter().all(|b| root.store().has_blob(b)));
        drop(build);
        // The next prune collects them.
        crate::gc::prune(&root, &crate::gc::PruneOptions::system())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(blobs.iter().all(|b| !root.store().has_blob(b)));
    }

    #[test]
    fn image_indexes_list_as_their_host_platform_image() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let img = import_image(&root, &tiny_tar()[..], &ImportRequest::new("-"))
            .unwrap_or_else(|e| panic!("{e}"));
        // Only the import's untagged entry: replace it by an index over it,
        // as a multi-platform pull records images.
        root.store()
            .delete(&img.manifest_digest)
            .unwrap_or_else(|e| panic!("{e}"));
        let size = root
            .store()
            .resolve(&img.manifest_digest)
            .map(|d| d.size())
            .unwrap_or_else(|e| panic!("{e}"));
        let index = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:0000000000000000000000000000000000000000000000000000000000000000", "size": 1, "platform": {"os": "linux", "architecture": "other"}},
                {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": img.manifest_digest, "size": size, "platform": {"os": HOST_OS, "architecture": HOST_ARCH}},
            ],
        });
        let desc = root
            .store()
            .put_bytes(
                kiln_image_layers::oci_spec::image::MediaType::ImageIndex,
                &serde_json::to_vec(&index).unwrap_or_default(),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        root.store()
            .tag("docker.io/library/multi:1", &desc)
            .unwrap_or_else(|e| panic!("{e}"));
        let list = list_images(&root).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].id, img.id);
        assert_eq!(list[0].manifest_digest, desc.digest().to_string());
        assert_eq!(list[0].familiar_tags(), ["multi:1"]);
        let h = history(&root, "multi:1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].id.as_deref(), Some(img.id.as_str()));
        let i = inspect(&root, &img.id[7..15]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(i.repo_tags, ["multi:1"]);
        // Removing it takes the index, the platform manifest, config and layer.
        let ev = remove_image(&root, "multi:1", false).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(ev[0], RemoveEvent::Untagged("multi:1".into()));
        let left = root.store().blobs().unwrap_or_else(|e| panic!("{e}"));
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn prune_filters_parse() {
        let now = 1_000_000;
        assert_eq!(
            PruneFilter::parse("until=24h", now).ok(),
            Some(PruneFilter::Until(now - 86_400))
        );
        assert_eq!(
            PruneFilter::parse("until=1h30m", now).ok(),
            Some(PruneFilter::Until(now - 5400))
        );
        assert_eq!(
            PruneFilter::parse("until=1970-01-02", now).ok(),
            Some(PruneFilter::Until(86_400))
        );
        assert_eq!(
            PruneFilter::parse("until=2024-02-29T12:00:00Z", now).ok(),
            Some(PruneFilter::Until(1_709_208_000))
        );
        assert_eq!(
            PruneFilter::parse("until=12345", now).ok(),
            Some(PruneFilter::Until(12345))
        );
        assert_eq!(
            PruneFilter::parse("label!=a=b", now).ok(),
            Some(PruneFilter::Label {
                key: "a".into(),
                value: Some("b".into()),
                negate: true
            })
        );
        assert!(PruneFilter::parse("until=soon", now).is_err());
        assert!(PruneFilter::parse("dangling=true", now).is_err());
    }

    #[test]
    fn xz_and_bzip2_are_refused_by_name() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let xz = [0xfd, b'7', b'z', b'X', b'Z', 0, 0, 0];
        let e = import_image(&root, &xz[..], &ImportRequest::new("-"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("xz-compressed tarball"), "{e}");
        let e = load_images(&root, &b"BZh91AY"[..])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("bzip2-compressed image archive"), "{e}");
    }

    #[test]
    fn changes_apply_to_configs() {
        let mut c = ImageConfig::scratch("linux", "amd64");
        for ins in [
            "ENV A=1 B=two",
            "ENV C=${A}x",
            "CMD echo hi",
            "ENTRYPOINT [\"/bin/sh\", \"-c\"]",
            "EXPOSE 80 53/udp",
            "LABEL k=v",
            "USER nobody",
            "WORKDIR /srv",
            "WORKDIR app",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
            "ONBUILD RUN true",
        ] {
            assert!(apply_change(&mut c, ins).is_ok(), "{ins}");
        }
        let j = &c.as_json()["config"];
        assert_eq!(j["Env"], json!(["A=1", "B=two", "C=1x"]));
        assert_eq!(j["Cmd"], json!(["/bin/sh", "-c", "echo hi"]));
        assert_eq!(j["Entrypoint"], json!(["/bin/sh", "-c"]));
        assert_eq!(j["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(j["Labels"], json!({"k": "v"}));
        assert_eq!(j["User"], "nobody");
        assert_eq!(j["WorkingDir"], "/srv/app");
        assert_eq!(j["Volumes"], json!({"/data": {}}));
        assert_eq!(j["StopSignal"], "SIGINT");
        assert_eq!(j["OnBuild"], json!(["RUN true"]));
        assert!(apply_change(&mut c, "RUN true").is_err());
        assert!(apply_change(&mut c, "FROM x").is_err());
    }
}
