//! The engine's state directory: the OCI image store, layer snapshots, the
//! cache index and scratch space, all on one file system so that finished
//! directories can be renamed into place.

use std::path::{Path, PathBuf};

use kiln_image_layers::Store;

use crate::cache::CacheIndex;
use crate::error::{Error, Result};
use crate::snapshot::Snapshots;

/// An opened state directory (`$KILN_ROOT`).
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    store: Store,
    cache: CacheIndex,
    snapshots: Snapshots,
}

impl Root {
    /// The default location: `$KILN_ROOT`, else `<data dir>/kiln`
    /// (`~/.local/share/kiln`), else `/var/lib/kiln`.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KILN_ROOT").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        dirs::data_dir()
            .map(|d| d.join("kiln"))
            .unwrap_or_else(|| PathBuf::from("/var/lib/kiln"))
    }

    /// Opens (creating) the state directory at `dir`.
    pub fn open(dir: &Path) -> Result<Root> {
        for sub in ["store", "snapshots", "cache", "tmp", "cache-mounts"] {
            let d = dir.join(sub);
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create directory", &d, e))?;
        }
        let store = Store::open(dir.join("store"))
            .map_err(|e| Error::step(format!("open image store in {}", dir.display()), e))?;
        Ok(Root {
            dir: dir.to_path_buf(),
            store,
            cache: CacheIndex::open(&dir.join("cache"))?,
            snapshots: Snapshots::new(&dir.join("snapshots")),
        })
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The OCI image layout store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The cache index.
    pub fn cache(&self) -> &CacheIndex {
        &self.cache
    }

    /// Unpacked layers.
    pub fn snapshots(&self) -> &Snapshots {
        &self.snapshots
    }

    /// A fresh scratch directory that is removed when dropped.
    pub(crate) fn tempdir(&self, prefix: &str) -> Result<tempfile::TempDir> {
        let tmp = self.dir.join("tmp");
        tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&tmp)
            .map_err(|e| Error::io("create scratch directory in", tmp, e))
    }
}
