//! Content-addressed cache keys and the local, crash-safe cache index.
//!
//! A step's key is the sha256 of its [`CacheInputs`]: the parent step's key,
//! the instruction after variable expansion, the build args and env it can
//! see, and for COPY/ADD the fingerprints of every file it reads. Keys are
//! chained, so a change anywhere invalidates everything after it.
//!
//! The index is a directory of small JSON files, one per key, written
//! atomically (temp file + rename): a crash leaves either the old or the
//! new record, and concurrent builds sharing one store never see a torn
//! record. Besides the key -> result records, the index remembers the inputs
//! of the last build of each *slot* (Dockerfile, stage, step index), which is
//! what `--explain-cache` diffs against on a miss.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::fsutil::atomic_write;

/// The named inputs of one step, in order. Two steps with equal inputs have
/// equal keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheInputs {
    items: Vec<(String, String)>,
}

impl CacheInputs {
    /// Inputs that start from `parent` (the previous step's key, or the base
    /// image's manifest digest).
    pub fn new(parent: &str) -> Self {
        let mut c = CacheInputs::default();
        c.push("parent", parent);
        c
    }

    /// Adds one named input (`"instruction"`, `"arg:HTTP_X"`, `"file:src/a.rs"`).
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.items.push((name.into(), value.into()));
    }

    /// The inputs, in order.
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// The content-addressed key: `sha256:` + hex of a length-prefixed
    /// encoding (unambiguous, unlike plain concatenation).
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"kiln-cache-v1\0");
        for (k, v) in &self.items {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k.as_bytes());
            h.update((v.len() as u64).to_le_bytes());
            h.update(v.as_bytes());
        }
        format!("sha256:{}", hex::encode(h.finalize()))
    }

    /// Human explanation of how `self` (this build) differs from `old`
    /// (the last build of the same step).
    pub fn explain_against(&self, old: &CacheInputs) -> Vec<String> {
        let mut out = Vec::new();
        for (k, v) in &self.items {
            match old.items.iter().find(|(ok, _)| ok == k) {
                None => out.push(format!("{} is new", describe(k))),
                Some((_, ov)) if ov != v => {
                    if k == "parent" {
                        out.push("the previous step changed".into());
                    } else if k == "instruction" {
                        out.push(format!("instruction changed (was: {ov})"));
                    } else if k.starts_with("file:") {
                        out.push(format!("{} changed content or mode", describe(k)));
                    } else {
                        out.push(format!("{} changed (was {ov:?}, now {v:?})", describe(k)));
                    }
                }
                Some(_) => {}
            }
        }
        for (k, _) in &old.items {
            if !self.items.iter().any(|(nk, _)| nk == k) {
                out.push(format!("{} was removed", describe(k)));
            }
        }
        out
    }
}

fn describe(name: &str) -> String {
    if let Some(f) = name.strip_prefix("file:") {
        format!("file {f}")
    } else if let Some(a) = name.strip_prefix("arg:") {
        format!("build arg {a}")
    } else if let Some(e) = name.strip_prefix("env:") {
        format!("env {e}")
    } else {
        name.to_string()
    }
}

/// A layer a cached step produced (already in the image store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the compressed blob.
    pub digest: String,
    /// Digest of the uncompressed tar (the config's diffID).
    pub diff_id: String,
    /// Size of the blob.
    pub size: u64,
    /// Media type of the blob.
    pub media_type: String,
}

/// What a step produced, stored under its key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheRecord {
    /// The layer, or `None` for a step that changed nothing on disk.
    pub layer: Option<LayerRecord>,
    /// When the step ran (RFC 3339), kept for the history entry.
    pub created: String,
}

/// The local cache index (a directory).
#[derive(Debug, Clone)]
pub struct CacheIndex {
    dir: PathBuf,
}

impl CacheIndex {
    /// Opens (creating) an index in `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        for sub in ["keys", "slots"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create directory", &d, e))?;
        }
        Ok(CacheIndex {
            dir: dir.to_path_buf(),
        })
    }

    fn key_path(&self, key: &str) -> PathBuf {
        self.dir.join("keys").join(key.replace(':', "-"))
    }

    fn slot_path(&self, slot: &str) -> PathBuf {
        let h = hex::encode(Sha256::digest(slot.as_bytes()));
        self.dir.join("slots").join(h)
    }

    /// The record for `key`, if any. A corrupt record (it cannot be torn,
    /// but a disk can fail) is treated as a miss.
    pub fn get(&self, key: &str) -> Option<CacheRecord> {
        let bytes = std::fs::read(self.key_path(key)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores `record` under `key`, atomically.
    pub fn put(&self, key: &str, record: &CacheRecord) -> Result<()> {
        let bytes = serde_json::to_vec(record).map_err(|e| Error::Json {
            what: format!("cache record {key}"),
            source: e,
        })?;
        atomic_write(&self.key_path(key), &bytes)
    }

    /// The inputs of the last build of `slot`.
    pub fn last_inputs(&self, slot: &str) -> Option<CacheInputs> {
        let bytes = std::fs::read(self.slot_path(slot)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Remembers `inputs` as the last build of `slot`.
    pub fn set_last_inputs(&self, slot: &str, inputs: &CacheInputs) -> Result<()> {
        let bytes = serde_json::to_vec(inputs).map_err(|e| Error::Json {
            what: format!("cache slot {slot}"),
            source: e,
        })?;
        let path = self.slot_path(slot);
        // A rebuild with nothing changed writes nothing (and fsyncs
        // nothing): the common case should not wait on the disk.
        if std::fs::read(&path).is_ok_and(|old| old == bytes) {
            return Ok(());
        }
        atomic_write(&path, &bytes)
    }

    /// Removes the record for `key`; false when there was none.
    pub fn remove(&self, key: &str) -> Result<bool> {
        let path = self.key_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(Error::io("remove cache record", path, e)),
        }
    }

    /// Forgets the inputs of every slot (what `--explain-cache` compares
    /// against), returning the bytes freed.
    pub fn clear_history(&self) -> Result<u64> {
        let d = self.dir.join("slots");
        let rd = std::fs::read_dir(&d).map_err(|e| Error::io("read directory", &d, e))?;
        let mut freed = 0;
        for ent in rd.flatten() {
            freed += ent.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(ent.path())
                .map_err(|e| Error::io("remove cache slot", ent.path(), e))?;
        }
        Ok(freed)
    }

    /// Every key in the index (for export and garbage collection).
    pub fn keys(&self) -> Result<Vec<String>> {
        let d = self.dir.join("keys");
        let rd = std::fs::read_dir(&d).map_err(|e| Error::io("read directory", &d, e))?;
        let mut out = Vec::new();
        for ent in rd.flatten() {
            let name = ent.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_prefix("sha256-") {
                out.push(format!("sha256:{hex}"));
            }
        }
        out.sort();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_content_addressed_and_unambiguous() {
        let mut a = CacheInputs::new("p");
        a.push("instruction", "RUN x");
        let mut b = CacheInputs::new("p");
        b.push("instruction", "RUN x");
        assert_eq!(a.key(), b.key());
        let mut c = CacheInputs::new("p");
        c.push("instructio", "nRUN x");
        assert_ne!(a.key(), c.key());
    }

    #[test]
    fn explains_what_changed() {
        let mut old = CacheInputs::new("k1");
        old.push("instruction", "COPY . /app");
        old.push("file:a.txt", "d1");
        old.push("file:gone", "d");
        let mut new = CacheInputs::new("k1");
        new.push("instruction", "COPY . /app");
        new.push("file:a.txt", "d2");
        new.push("arg:V", "2");
        let why = new.explain_against(&old);
        assert_eq!(
            why,
            vec![
                "file a.txt changed content or mode".to_string(),
                "build arg V is new".into(),
                "file gone was removed".into()
            ]
        );
    }

    #[test]
    fn index_round_trips_and_survives_garbage() -> Result<()> {
        let dir = tempfile::tempdir().map_err(|e| Error::io("tempdir", "/tmp", e))?;
        let idx = CacheIndex::open(dir.path())?;
        let rec = CacheRecord {
            layer: None,
            created: "2024-01-01T00:00:00Z".into(),
        };
        idx.put("sha256:ab", &rec)?;
        assert_eq!(idx.get("sha256:ab"), Some(rec));
        assert_eq!(idx.keys()?, vec!["sha256:ab".to_string()]);
        std::fs::write(dir.path().join("keys/sha256-cd"), b"{torn")
            .map_err(|e| Error::io("write", "x", e))?;
        assert_eq!(idx.get("sha256:cd"), None);
        Ok(())
    }
}
