//! The remote form of the cache: an OCI artifact in any registry, so many
//! machines share one cache (`--cache-to` / `--cache-from`).
//!
//! The artifact is an image manifest whose layers are the layer blobs the
//! cached steps produced and whose config (media type
//! [`CACHE_CONFIG_MEDIA_TYPE`]) maps cache keys to their records. Keys are
//! content addresses (instruction after expansion, parent key, file
//! content digests), so they mean the same on every machine.

use std::collections::BTreeMap;

use bytes::Bytes;
use kiln_image_layers::Digest;
use kiln_image_layers::oci_spec::image::MediaType;
use kiln_registry_client::{Client, OciLayoutBlobs, PushOptions, Reference, no_progress};
use serde_json::json;

use crate::cache::CacheRecord;
use crate::error::{Error, Result};
use crate::root::Root;

/// Media type of the cache artifact's config blob.
pub const CACHE_CONFIG_MEDIA_TYPE: &str = "application/vnd.kiln.cache.config.v1+json";

fn reg_err(reference: &str, message: &str, e: kiln_registry_client::Error) -> Error {
    Error::Image {
        reference: reference.to_string(),
        message: message.to_string(),
        source: Some(Box::new(e)),
    }
}

fn client(root: &Root, _reference: &str) -> Result<Client> {
    root.registry_client()
}

/// Pushes `records` (and the layers they name) to `reference`.
pub async fn export_cache(
    root: &Root,
    records: &BTreeMap<String, CacheRecord>,
    reference: &str,
) -> Result<()> {
    let c = client(root, reference)?;
    let r = Reference::parse(reference).map_err(|e| reg_err(reference, "invalid reference", e))?;
    let config = serde_json::to_vec(&json!({ "records": records })).map_err(|e| Error::Json {
        what: "cache config".into(),
        source: e,
    })?;
    let config_desc = root
        .store()
        .put_bytes(MediaType::Other(CACHE_CONFIG_MEDIA_TYPE.into()), &config)
        .map_err(|e| Error::step("store cache config", e))?;
    let mut layers: BTreeMap<String, serde_json::Value> = BTreeMap::new();
    for rec in records.values() {
        if let Some(l) = &rec.layer {
            layers.insert(
                l.digest.clone(),
                json!({"mediaType": l.media_type, "digest": l.digest, "size": l.size}),
            );
        }
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": CACHE_CONFIG_MEDIA_TYPE, "digest": config_desc.digest().to_string(), "size": config.len()},
        "layers": layers.into_values().collect::<Vec<_>>(),
    });
    let bytes = serde_json::to_vec(&manifest).map_err(|e| Error::Json {
        what: "cache manifest".into(),
        source: e,
    })?;
    let provider = OciLayoutBlobs::new(root.store().root());
    c.push_image(
        &r,
        Bytes::from(bytes),
        "application/vnd.oci.image.manifest.v1+json",
        &provider,
        &PushOptions::default(),
        &no_progress(),
    )
    .await
    .map_err(|e| reg_err(reference, "push cache", e))?;
    Ok(())
}

/// Pulls the cache at `reference` into the local index: records whose key
/// is not known locally are added, with their layer blobs. Returns how many
/// records were imported.
pub async fn import_cache(root: &Root, reference: &str) -> Result<usize> {
    let c = client(root, reference)?;
    let r = Reference::parse(reference).map_err(|e| reg_err(reference, "invalid reference", e))?;
    let m = c
        .pull_manifest(&r)
        .await
        .map_err(|e| reg_err(reference, "pull cache manifest", e))?;
    let manifest: serde_json::Value =
        serde_json::from_slice(&m.bytes).map_err(|e| Error::Json {
            what: format!("cache manifest {reference}"),
            source: e,
        })?;
    if manifest["config"]["mediaType"] != CACHE_CONFIG_MEDIA_TYPE {
        return Err(Error::Image {
            reference: reference.to_string(),
            message: "not a kiln cache (config media type differs)".into(),
            source: None,
        });
    }
    let cfg_digest = manifest["config"]["digest"].as_str().unwrap_or_default();
    let cfg_oci: kiln_image_layers::oci_spec::image::Digest = cfg_digest
        .parse()
        .map_err(|e| Error::step(format!("cache config digest {cfg_digest}"), e))?;
    let mut buf: Vec<u8> = Vec::new();
    c.pull_blob(&r, &cfg_oci, None, &mut buf, &no_progress())
        .await
        .map_err(|e| reg_err(reference, "pull cache config", e))?;
    #[derive(serde::Deserialize)]
    struct Config {
        records: BTreeMap<String, CacheRecord>,
    }
    let cfg: Config = serde_json::from_slice(&buf).map_err(|e| Error::Json {
        what: format!("cache config of {reference}"),
        source: e,
    })?;
    let store = root.store();
    let mut n = 0;
    for (key, rec) in cfg.records {
        if root.cache().get(&key).is_some() {
            continue;
        }
        if let Some(l) = &rec.layer {
            let d = Digest::parse(&l.digest).map_err(|e| Error::step("cached layer digest", e))?;
            if !store.has_blob(&d) {
                let tmp = root.tempdir("cache-pull-")?;
                let path = tmp.path().join("blob");
                c.pull_blob_to_file(&r, &d.to_oci(), Some(l.size), &path, &no_progress())
                    .await
                    .map_err(|e| reg_err(reference, "pull cached layer", e))?;
                let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
                store
                    .put_blob_expecting(f, &d, Some(l.size), MediaType::from(l.media_type.as_str()))
                    .map_err(|e| Error::step(format!("store cached layer {d}"), e))?;
            }
        }
        root.cache().put(&key, &rec)?;
        n += 1;
    }
    Ok(n)
}
