//! Pulling base images from registries into the store
//! (kiln-registry-client for the protocol, kiln-image-layers for storage).

use kiln_image_layers::Digest;
use kiln_image_layers::oci_spec::image::MediaType;
use kiln_registry_client::{Client, Platform, Reference, no_progress};

use crate::builder::HOST_ARCH;
use crate::error::{Error, Result};
use crate::image::{ImageRef, LocalImage, resolve_local};
use crate::root::Root;

/// Pulls `reference` for the host platform into the store and tags it with
/// its normalised name. Blobs already in the store are not downloaded
/// again. Mirrors, insecure registries and credentials come from `client`
/// (`None`: [`Root::registry_client`], from the settings).
pub async fn pull_image(
    root: &Root,
    reference: &str,
    client: Option<&Client>,
) -> Result<LocalImage> {
    let img_err = |message: String, source: Option<crate::error::Cause>| Error::Image {
        reference: reference.to_string(),
        message,
        source,
    };
    let owned;
    let client = match client {
        Some(c) => c,
        None => {
            owned = root.registry_client()?;
            &owned
        }
    };
    let r = Reference::parse(reference)
        .map_err(|e| img_err("invalid reference".into(), Some(Box::new(e))))?;
    let pulled = client
        .pull_image(&r, &Platform::new("linux", HOST_ARCH, None))
        .await
        .map_err(|e| img_err("pull".into(), Some(Box::new(e))))?;
    let store = root.store();
    for layer in pulled.image.layers() {
        let digest =
            Digest::from_oci(layer.digest()).map_err(|e| Error::step("layer digest", e))?;
        if store.has_blob(&digest) {
            continue;
        }
        let tmp = root.tempdir("pull-")?;
        let path = tmp.path().join("blob");
        client
            .pull_blob_to_file(
                &r,
                layer.digest(),
                Some(layer.size()),
                &path,
                &no_progress(),
            )
            .await
            .map_err(|e| img_err(format!("pull layer {digest}"), Some(Box::new(e))))?;
        let f = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        store
            .put_blob_expecting(f, &digest, Some(layer.size()), layer.media_type().clone())
            .map_err(|e| Error::step(format!("store layer {digest}"), e))?;
    }
    store
        .put_bytes(MediaType::ImageConfig, &pulled.config)
        .map_err(|e| Error::step("store image config", e))?;
    let manifest = store
        .put_bytes(
            MediaType::from(pulled.manifest.media_type.as_str()),
            &pulled.manifest.bytes,
        )
        .map_err(|e| Error::step("store manifest", e))?;
    let name = ImageRef::parse(reference)
        .map_err(|m| img_err(m, None))?
        .to_string();
    store
        .tag(&name, &manifest)
        .map_err(|e| Error::step(format!("tag {name}"), e))?;
    resolve_local(root, &name)
}

/// Runs `fut` to completion from synchronous code: on the current tokio
/// runtime when there is one (blocking-pool threads), else on a small
/// runtime of its own.
pub(crate) fn block_on<F: std::future::Future>(fut: F) -> Result<F::Output> {
    match tokio::runtime::Handle::try_current() {
        // Blocking-pool threads (where `Builder::build` runs the build) may
        // block on the runtime's handle.
        Ok(h) => Ok(h.block_on(fut)),
        Err(_) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::step("start an async runtime for pulling", e))?;
            Ok(rt.block_on(fut))
        }
    }
}
