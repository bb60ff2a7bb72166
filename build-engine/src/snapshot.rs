//! Layer snapshots: each layer unpacked once, in overlayfs lower-dir form,
//! keyed by its chain id, and stacked as overlay lower dirs for RUN and
//! `kiln run`. [`MergedView`] reads the union of a stack without mounting
//! it (COPY --from, `/etc/passwd` lookups, WORKDIR existence).

use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use kiln_image_layers::{
    ApplyOptions, Digest, OverlayXattr, Store, Whiteouts, apply_layer, chain_id,
};

use crate::error::{Error, Result};

/// The snapshot directory.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

impl Snapshots {
    pub(crate) fn new(dir: &Path) -> Self {
        Snapshots {
            dir: dir.to_path_buf(),
        }
    }

    /// Where the snapshot of the layer whose chain id is `chain` lives.
    pub fn path(&self, chain: &Digest) -> PathBuf {
        self.dir
            .join(format!("{}-{}", chain.algorithm().as_str(), chain.hex()))
    }

    /// Makes sure every layer of an image is unpacked, returning the lower
    /// dirs top-most first (overlayfs order). `layers` are (blob digest,
    /// diffID) pairs, bottom-most first.
    pub fn ensure(&self, store: &Store, layers: &[(Digest, Digest)]) -> Result<Vec<PathBuf>> {
        let mut lowers = Vec::with_capacity(layers.len());
        let mut diff_ids = Vec::with_capacity(layers.len());
        for (blob, diff_id) in layers {
            diff_ids.push(diff_id.clone());
            let Some(chain) = chain_id(&diff_ids) else {
                continue;
            };
            let path = self.path(&chain);
            if !path.exists() {
                let tmp = tempfile::Builder::new()
                    .prefix(".unpack-")
                    .tempdir_in(&self.dir)
                    .map_err(|e| Error::io("create snapshot directory in", &self.dir, e))?;
                let reader = store
                    .open_blob(blob)
                    .map_err(|e| Error::step(format!("open layer {blob}"), e))?;
                let mut opts = ApplyOptions::default();
                opts.whiteouts = Whiteouts::Overlay(OverlayXattr::Trusted);
                apply_layer(reader, tmp.path(), &opts)
                    .map_err(|e| Error::step(format!("unpack layer {blob}"), e))?;
                self.adopt(&chain, tmp.keep())?;
            }
            lowers.push(path);
        }
        lowers.reverse();
        Ok(lowers)
    }

    /// Moves a finished directory (an overlay upper dir or a COPY staging
    /// dir, both valid lower dirs) into place as the snapshot for `chain`.
    /// If another build got there first, `dir` is removed instead.
    pub fn adopt(&self, chain: &Digest, dir: PathBuf) -> Result<PathBuf> {
        let path = self.path(chain);
        if path.exists() {
            let _ = std::fs::remove_dir_all(&dir);
            return Ok(path);
        }
        match std::fs::rename(&dir, &path) {
            Ok(()) => Ok(path),
            Err(_) if path.exists() => {
                let _ = std::fs::remove_dir_all(&dir);
                Ok(path)
            }
            Err(e) => Err(Error::io("move snapshot into place", path, e)),
        }
    }
}

/// The union of a stack of lower dirs (top-most first), read without
/// mounting: whiteouts hide, opaque directories stop the search.
#[derive(Debug, Clone, Default)]
pub struct MergedView {
    lowers: Vec<PathBuf>,
}

fn is_whiteout(md: &std::fs::Metadata) -> bool {
    md.file_type().is_char_device() && md.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    matches!(xattr::get(path, OPAQUE_XATTR), Ok(Some(v)) if v == b"y")
}

impl MergedView {
    /// A view of `lowers`, top-most first.
    pub fn new(lowers: Vec<PathBuf>) -> Self {
        MergedView { lowers }
    }

    /// The lower dirs.
    pub fn lowers(&self) -> &[PathBuf] {
        &self.lowers
    }

    /// The real path of `rel` (relative, `/`-separated, no symlink
    /// resolution) in the top-most layer that has it.
    pub fn lookup(&self, rel: &str) -> Option<PathBuf> {
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for lower in &self.lowers {
            let mut stop = false;
            let mut p = lower.clone();
            let mut blocked = false;
            for (i, part) in parts.iter().enumerate() {
                p.push(part);
                let Ok(md) = std::fs::symlink_metadata(&p) else {
                    blocked = true;
                    break;
                };
                if is_whiteout(&md) {
                    return None;
                }
                if i + 1 < parts.len() {
                    if !md.is_dir() {
                        return None;
                    }
                    if is_opaque(&p) {
                        stop = true;
                    }
                }
            }
            if !blocked {
                return Some(p);
            }
            if stop {
                return None;
            }
        }
        None
    }

    /// Reads a file of the merged tree.
    pub fn read(&self, rel: &str) -> Option<Vec<u8>> {
        std::fs::read(self.lookup(rel)?).ok()
    }

    /// Whether `rel` exists.
    pub fn exists(&self, rel: &str) -> bool {
        self.lookup(rel).is_some()
    }

    /// The merged children of directory `rel`: name -> real path.
    pub fn read_dir(&self, rel: &str) -> BTreeMap<String, PathBuf> {
        let mut seen: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
        let parts: Vec<&str> = rel
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        let joined = parts.join("/");
        // Only layers at or below the one that defines `rel` contribute.
        for lower in &self.lowers {
            let dir = if joined.is_empty() {
                lower.clone()
            } else {
                lower.join(&joined)
            };
            let Ok(md) = std::fs::symlink_metadata(&dir) else {
                continue;
            };
            if is_whiteout(&md) || !md.is_dir() {
                break;
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for ent in rd.flatten() {
                    let name = ent.file_name().to_string_lossy().into_owned();
                    if seen.contains_key(&name) {
                        continue;
                    }
                    let hidden = ent.metadata().map(|m| is_whiteout(&m)).unwrap_or(false);
                    seen.insert(name, (!hidden).then(|| ent.path()));
                }
            }
            if is_opaque(&dir) {
                break;
            }
        }
        seen.into_iter()
            .filter_map(|(k, v)| v.map(|p| (k, p)))
            .collect()
    }

    /// Copies `rel` (file, link or directory, recursively merged) to `dest`.
    /// Returns false when `rel` does not exist.
    pub fn copy_out(&self, rel: &str, dest: &Path) -> Result<bool> {
        self.materialize(rel, dest, false)
    }

    /// Like [`MergedView::copy_out`], but regular files are hard links to
    /// the snapshot's files (copied only where a link is impossible, e.g.
    /// across file systems): the merged tree at the cost of its metadata.
    /// The result shares inodes with the snapshots, so it must only ever
    /// be exposed read-only (a read-only bind mount).
    pub fn link_out(&self, rel: &str, dest: &Path) -> Result<bool> {
        self.materialize(rel, dest, true)
    }

    fn materialize(&self, rel: &str, dest: &Path, link: bool) -> Result<bool> {
        let Some(real) = self.lookup(rel) else {
            return Ok(false);
        };
        let md = std::fs::symlink_metadata(&real).map_err(|e| Error::io("stat", &real, e))?;
        if md.is_dir() {
            crate::copy::copy_node(&real, dest, None)?;
            for (name, _) in self.read_dir(rel) {
                let child = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{}/{name}", rel.trim_end_matches('/'))
                };
                self.materialize(&child, &dest.join(&name), link)?;
            }
        } else {
            let linked = link && md.is_file() && std::fs::hard_link(&real, dest).is_ok();
            if !linked {
                crate::copy::copy_node(&real, dest, None)?;
            }
        }
        Ok(true)
    }
}
