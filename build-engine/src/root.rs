//! The engine's state directory: the OCI image store, layer snapshots, the
//! cache index and scratch space, all on one file system so that finished
//! directories can be renamed into place.

use std::path::{Path, PathBuf};

use kiln_image_layers::Store;

use crate::cache::CacheIndex;
use crate::error::{Error, Result};
use crate::settings::Settings;
use crate::snapshot::Snapshots;

/// An opened state directory (`$KILN_ROOT`).
#[derive(Debug, Clone)]
pub struct Root {
    dir: PathBuf,
    store: Store,
    cache: CacheIndex,
    snapshots: Snapshots,
    settings: std::sync::Arc<Settings>,
}

impl Root {
    /// The default location: `$KILN_ROOT`, else `<data dir>/kiln`
    /// (`~/.local/share/kiln`), else `/var/lib/kiln`. This ignores the
    /// configuration file; [`Root::open_configured`] honours it.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = std::env::var_os("KILN_ROOT").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        Settings::default().root
    }

    /// Loads the [`Settings`] (configuration file + environment) and opens
    /// the state directory they name: what the `kiln` CLI does.
    pub fn open_configured() -> Result<Root> {
        let settings = Settings::load()?;
        let dir = settings.root.clone();
        Root::open_with(&dir, settings)
    }

    /// Opens (creating) the state directory at `dir` with default
    /// [`Settings`] (registry mirrors and insecure registries unset).
    pub fn open(dir: &Path) -> Result<Root> {
        Root::open_with(dir, Settings::default())
    }

    /// Opens (creating) the state directory at `dir` with `settings` (their
    /// `root` field is not consulted: `dir` is).
    pub fn open_with(dir: &Path, settings: Settings) -> Result<Root> {
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
            settings: std::sync::Arc::new(settings),
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

    /// The settings this root was opened with (registry mirrors, insecure
    /// registries, parallelism).
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A registry client configured by [`Root::settings`], credentials from
    /// Docker's `config.json`.
    pub fn registry_client(&self) -> Result<kiln_registry_client::Client> {
        crate::registry::registry_client(&self.settings)
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
