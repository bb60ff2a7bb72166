//! Build outputs besides the store (`kiln build -o`): a directory with the
//! image's file system, an OCI image-layout tar, a `docker save` tar.

use std::path::{Path, PathBuf};

use kiln_image_layers::oci_spec::image::Descriptor;
use kiln_image_layers::{ApplyOptions, Digest, Whiteouts, apply_layer};

use crate::builder::LayerRef;
use crate::error::{Error, Result};
use crate::root::Root;

/// Where else a build's result goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Output {
    /// `type=local,dest=DIR` (or a bare `DIR`): the final file system.
    Local(PathBuf),
    /// `type=oci,dest=FILE`: a tar of an OCI image layout.
    OciArchive(PathBuf),
    /// `type=docker,dest=FILE`: a `docker load`-able archive.
    DockerArchive(PathBuf),
}

impl Output {
    /// Parses docker build's `-o` syntax.
    pub fn parse(spec: &str) -> std::result::Result<Output, String> {
        if !spec.contains('=') {
            return Ok(Output::Local(PathBuf::from(spec)));
        }
        let mut typ = None;
        let mut dest = None;
        for part in spec.split(',') {
            match part.split_once('=') {
                Some(("type", v)) => typ = Some(v.to_string()),
                Some(("dest", v)) => dest = Some(PathBuf::from(v)),
                _ => return Err(format!("output {spec:?}: unsupported option {part:?}")),
            }
        }
        let dest = dest.ok_or_else(|| format!("output {spec:?}: dest= is required"))?;
        match typ.as_deref() {
            Some("local") | None => Ok(Output::Local(dest)),
            Some("oci") => Ok(Output::OciArchive(dest)),
            Some("docker") => Ok(Output::DockerArchive(dest)),
            Some(other) => Err(format!(
                "output type {other:?} is not supported (local, oci, docker)"
            )),
        }
    }
}

/// Writes `out` for the image whose manifest is `manifest`.
pub(crate) fn export(
    root: &Root,
    manifest: &Descriptor,
    config_digest: &str,
    layers: &[LayerRef],
    name: Option<&str>,
    out: &Output,
) -> Result<()> {
    let store = root.store();
    let digest = |s: &str| Digest::parse(s).map_err(|e| Error::step(format!("digest {s}"), e));
    match out {
        Output::Local(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
            let mut opts = ApplyOptions::default();
            opts.whiteouts = Whiteouts::Apply;
            for l in layers {
                let d = digest(&l.record.digest)?;
                let blob = store
                    .open_blob(&d)
                    .map_err(|e| Error::step(format!("open layer {d}"), e))?;
                apply_layer(blob, dir, &opts)
                    .map_err(|e| Error::step(format!("apply layer {d} to {}", dir.display()), e))?;
            }
            Ok(())
        }
        Output::DockerArchive(file) => {
            let f = create(file)?;
            let reference = name
                .map(str::to_string)
                .unwrap_or_else(|| manifest.digest().to_string());
            kiln_image_layers::archive::docker_save(store, &[reference.as_str()], f)
                .map_err(|e| Error::step(format!("write docker archive {}", file.display()), e))
        }
        Output::OciArchive(file) => {
            let f = create(file)?;
            let mut tar = tar::Builder::new(f);
            let mut add_bytes = |path: &str, bytes: &[u8]| -> Result<()> {
                let mut h = tar::Header::new_gnu();
                h.set_size(bytes.len() as u64);
                h.set_mode(0o644);
                h.set_mtime(0);
                h.set_cksum();
                tar.append_data(&mut h, path, bytes)
                    .map_err(|e| Error::io("write OCI archive", file, e))
            };
            add_bytes("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            let mut desc = serde_json::to_value(manifest).map_err(|e| Error::Json {
                what: "manifest descriptor".into(),
                source: e,
            })?;
            if let Some(n) = name {
                desc["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": n});
            }
            let index = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]});
            add_bytes("index.json", index.to_string().as_bytes())?;
            let mut blobs = vec![manifest.digest().to_string(), config_digest.to_string()];
            blobs.extend(layers.iter().map(|l| l.record.digest.clone()));
            for b in blobs {
                let d = digest(&b)?;
                let path = store.blob_path(&d);
                let name = format!("blobs/{}/{}", d.algorithm().as_str(), d.hex());
                tar.append_path_with_name(&path, &name)
                    .map_err(|e| Error::io("write OCI archive", file, e))?;
            }
            tar.into_inner()
                .and_then(|mut f| std::io::Write::flush(&mut f))
                .map_err(|e| Error::io("finish OCI archive", file, e))
        }
    }
}

fn create(file: &Path) -> Result<std::fs::File> {
    if let Some(p) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(p).map_err(|e| Error::io("create directory", p, e))?;
    }
    std::fs::File::create(file).map_err(|e| Error::io("create", file, e))
}
