//! Image references, reading base images from the store, and writing the
//! result (config + manifest) into it.

use std::fmt;

use kiln_image_layers::oci_spec::image::{Descriptor, MediaType};
use kiln_image_layers::{Digest, Store};
use serde_json::{Value, json};

use crate::builder::LayerRef;
use crate::cache::LayerRecord;
use crate::config::ImageConfig;
use crate::error::{Error, Result};
use crate::root::Root;

/// A normalised image reference, as Docker normalises them:
/// `busybox` -> `docker.io/library/busybox:latest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host (`docker.io`, `localhost:5000`).
    pub registry: String,
    /// Repository path (`library/busybox`).
    pub repository: String,
    /// Tag, if any (`latest` when neither tag nor digest is given).
    pub tag: Option<String>,
    /// Digest, if any.
    pub digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises a reference.
    pub fn parse(input: &str) -> std::result::Result<ImageRef, String> {
        if input.is_empty() || input.chars().any(|c| c.is_whitespace()) {
            return Err(format!("invalid reference {input:?}"));
        }
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (input, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => {
                (&rest[..i], Some(rest[i + 1..].to_string()))
            }
            _ => (rest, None),
        };
        if name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(format!(
                "invalid reference {input:?}: repository names must be lower case"
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((host, path)) if host.contains(['.', ':']) || host == "localhost" => {
                (host.to_string(), path.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let registry = if registry == "index.docker.io" {
            "docker.io".to_string()
        } else {
            registry
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        let tag = if tag.is_none() && digest.is_none() {
            Some("latest".into())
        } else {
            tag
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// An image read from the store.
#[derive(Debug, Clone)]
pub struct LocalImage {
    /// Manifest digest.
    pub manifest_digest: String,
    /// The config's raw bytes (extension fields intact).
    pub config_bytes: Vec<u8>,
    pub(crate) layers: Vec<LayerRef>,
}

impl LocalImage {
    /// The config, parsed.
    pub fn config(&self) -> Result<ImageConfig> {
        ImageConfig::from_base(&self.config_bytes)
            .map(|(c, _)| c)
            .map_err(|e| Error::Json {
                what: format!("config of image {}", self.manifest_digest),
                source: e,
            })
    }

    /// (blob digest, diffID) of each layer, bottom-most first.
    pub fn layer_digests(&self) -> Result<Vec<(Digest, Digest)>> {
        self.layers
            .iter()
            .map(|l| {
                let d =
                    Digest::parse(&l.record.digest).map_err(|e| Error::step("layer digest", e))?;
                let i =
                    Digest::parse(&l.record.diff_id).map_err(|e| Error::step("layer diffID", e))?;
                Ok((d, i))
            })
            .collect()
    }
}

/// Finds `reference` (a tag in any spelling, or a digest) in the store.
pub fn resolve_local(root: &Root, reference: &str) -> Result<LocalImage> {
    let store = root.store();
    let not_found = |message: String| Error::Image {
        reference: reference.to_string(),
        message,
        source: None,
    };
    let mut candidates = vec![reference.to_string()];
    if let Ok(r) = ImageRef::parse(reference) {
        candidates.push(r.to_string());
    }
    let desc = match candidates.iter().find_map(|c| store.resolve(c).ok()) {
        Some(d) => d,
        // An image ID (config digest) or a unique prefix of one, as Docker
        // accepts wherever it takes an image.
        None => match crate::images::resolve_manifest_digest(root, reference) {
            Ok(d) => store
                .resolve(&d)
                .map_err(|e| Error::step(format!("read image {reference}"), e))?,
            Err(Error::Conflict { message }) => return Err(not_found(message)),
            Err(_) => {
                return Err(not_found(
                    "not found in the local store (pull it, or build it first)".into(),
                ));
            }
        },
    };
    let digest = Digest::from_oci(desc.digest()).map_err(|e| Error::step("manifest digest", e))?;
    let raw = store
        .read_blob(&digest)
        .map_err(|e| Error::step(format!("read manifest of {reference}"), e))?;
    let manifest: Value = serde_json::from_slice(&raw).map_err(|e| Error::Json {
        what: format!("manifest of {reference}"),
        source: e,
    })?;
    if manifest.get("manifests").is_some() {
        return Err(Error::Unsupported {
            line: 0,
            feature: format!("image index as a base ({reference}); pull a single-platform image"),
        });
    }
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .ok_or_else(|| not_found("manifest has no config".into()))?;
    let config_digest =
        Digest::parse(config_digest).map_err(|e| Error::step("config digest", e))?;
    let config_bytes = store
        .read_blob(&config_digest)
        .map_err(|e| Error::step(format!("read config of {reference}"), e))?;
    let config: Value = serde_json::from_slice(&config_bytes).map_err(|e| Error::Json {
        what: format!("config of {reference}"),
        source: e,
    })?;
    let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    let blobs = manifest["layers"].as_array().cloned().unwrap_or_default();
    if blobs.len() != diff_ids.len() {
        return Err(not_found(format!(
            "manifest lists {} layers but the config {} diffIDs",
            blobs.len(),
            diff_ids.len()
        )));
    }
    let layers = blobs
        .iter()
        .zip(diff_ids)
        .map(|(b, diff_id)| LayerRef {
            record: LayerRecord {
                digest: b["digest"].as_str().unwrap_or_default().to_string(),
                diff_id,
                size: b["size"].as_u64().unwrap_or(0),
                media_type: b["mediaType"].as_str().unwrap_or_default().to_string(),
            },
        })
        .collect();
    Ok(LocalImage {
        manifest_digest: digest.to_string(),
        config_bytes,
        layers,
    })
}

/// The OCI media type for a layer of a Docker schema 2 image, so that an
/// OCI manifest never lists Docker media types (the bytes are the same).
fn oci_layer_media_type(mt: &str) -> &str {
    match mt {
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        other => other,
    }
}

/// Stores `config` and a manifest listing `layers`; returns the manifest
/// and config descriptors.
pub(crate) fn write_image(
    store: &Store,
    config: &ImageConfig,
    layers: &[LayerRef],
) -> Result<(Descriptor, Descriptor)> {
    let config_bytes = config.to_bytes();
    let config_desc = store
        .put_bytes(MediaType::ImageConfig, &config_bytes)
        .map_err(|e| Error::step("store image config", e))?;
    let layer_json: Vec<Value> = layers
        .iter()
        .map(|l| {
            json!({
                "mediaType": oci_layer_media_type(&l.record.media_type),
                "digest": l.record.digest,
                "size": l.record.size,
            })
        })
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_desc.digest().to_string(),
            "size": config_bytes.len(),
        },
        "layers": layer_json,
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Json {
        what: "image manifest".into(),
        source: e,
    })?;
    let manifest_desc = store
        .put_bytes(MediaType::ImageManifest, &bytes)
        .map_err(|e| Error::step("store image manifest", e))?;
    Ok((manifest_desc, config_desc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalises_like_docker() {
        let n = |s: &str| ImageRef::parse(s).map(|r| r.to_string());
        assert_eq!(n("busybox"), Ok("docker.io/library/busybox:latest".into()));
        assert_eq!(n("user/app:1"), Ok("docker.io/user/app:1".into()));
        assert_eq!(n("localhost:5000/x"), Ok("localhost:5000/x:latest".into()));
        assert_eq!(
            n("quay.io/a/b@sha256:00"),
            Ok("quay.io/a/b@sha256:00".into())
        );
        assert!(n("Upper").is_err());
    }
}
