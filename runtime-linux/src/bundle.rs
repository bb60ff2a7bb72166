//! OCI bundles: a directory with `config.json` (the runtime spec) and the
//! root filesystem (`root.path`, `rootfs` by default), as `runc run` and
//! `crun run` take them.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;

use crate::container::{Container, RootFs, RunOptions};
use crate::error::{Error, Result};

/// An OCI bundle on disk.
#[derive(Debug, Clone)]
pub struct Bundle {
    dir: PathBuf,
    spec: Spec,
}

impl Bundle {
    /// Writes `spec` as `dir/config.json` (creating `dir`), with `root.path`
    /// set to `rootfs` when the spec has none, and creates the root
    /// filesystem directory if missing. Fill it, then run the bundle with
    /// [`Bundle::container`] or any OCI runtime.
    pub fn write(dir: &Path, spec: &Spec) -> Result<Bundle> {
        let mut spec = spec.clone();
        if spec
            .root()
            .as_ref()
            .is_none_or(|r| r.path().as_os_str().is_empty())
        {
            let mut root = spec.root().clone().unwrap_or_default();
            root.set_path(PathBuf::from("rootfs"));
            spec.set_root(Some(root));
        }
        let config = dir.join("config.json");
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Write { path, source }
        };
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let json = serde_json::to_vec_pretty(&spec)
            .map_err(|e| Error::spec(format!("serialising the spec: {e}")))?;
        fs::write(&config, json).map_err(io_err(&config))?;
        let bundle = Bundle {
            dir: dir.to_path_buf(),
            spec,
        };
        let rootfs = bundle.rootfs();
        fs::create_dir_all(&rootfs).map_err(io_err(&rootfs))?;
        Ok(bundle)
    }

    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Bundle> {
        let config = dir.join("config.json");
        let bytes = fs::read(&config).map_err(|source| Error::Read {
            path: config.clone(),
            source,
        })?;
        let spec: Spec = serde_json::from_slice(&bytes).map_err(|source| Error::ParseSpec {
            path: config,
            source,
        })?;
        Ok(Bundle {
            dir: dir.to_path_buf(),
            spec,
        })
    }

    /// The bundle's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The runtime spec.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The root filesystem directory (`root.path`, relative to the bundle
    /// unless absolute).
    pub fn rootfs(&self) -> PathBuf {
        let rel = self
            .spec
            .root()
            .as_ref()
            .map(|r| r.path().clone())
            .unwrap_or_else(|| PathBuf::from("rootfs"));
        self.dir.join(rel)
    }

    /// A container that runs this bundle in place (its root filesystem
    /// directory, relative bind sources resolved against the bundle).
    pub fn container(&self, options: RunOptions) -> Container {
        Container::new(self.spec.clone(), RootFs::Dir(self.rootfs()), options)
            .with_base_dir(&self.dir)
    }
}
