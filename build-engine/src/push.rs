//! Pushing images from the store to registries (`kiln push`,
//! `kiln build --push`), and the distribution metadata that makes
//! cross-repository mounts possible.
//!
//! Like Docker's distribution metadata (`image/overlay2/distribution/`),
//! the state directory remembers, for each blob, the repositories it was
//! pulled from or pushed to (`distribution/<alg>/<hex>`, one
//! `registry/repository` per line). When an image is pushed to a
//! repository of a registry that already holds a blob in another
//! repository, the blob is mounted (`POST /v2/<name>/blobs/uploads/?mount=
//! &from=`, distribution spec "Mounting a blob from another repository")
//! rather than uploaded again.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use kiln_image_layers::Digest;
use kiln_registry_client::{BlobPush, Client, OciLayoutBlobs, PushOptions, Reference};

use crate::error::{Error, Result};
use crate::image::ImageRef;
use crate::root::Root;

/// What happened to one layer during a push (Docker's statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushStatus {
    /// Waiting for a transfer slot.
    Waiting,
    /// `done` of `total` bytes sent.
    Pushing {
        /// Bytes sent.
        done: u64,
        /// The layer's size.
        total: u64,
    },
    /// Uploaded.
    Pushed,
    /// The repository already had it.
    AlreadyExists,
    /// Mounted from another repository of the same registry.
    MountedFrom(String),
}

/// A progress event of [`push`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushEvent {
    /// The push starts: `repository` is the target's normalised name,
    /// `layers` the layer digests, bottom-most first.
    Started {
        /// `registry/repository`.
        repository: String,
        /// Layer blob digests, bottom-most first.
        layers: Vec<String>,
    },
    /// A layer changed status.
    Layer {
        /// The layer's blob digest.
        digest: String,
        /// Its new status.
        status: PushStatus,
    },
}

/// Receives [`PushEvent`]s (from several tasks at once).
pub type PushProgress = Arc<dyn Fn(PushEvent) + Send + Sync>;

/// What [`push`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PushResult {
    /// The tag pushed (or the digest, for a digest reference).
    pub tag: String,
    /// The manifest digest.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: u64,
}

fn metadata_path(root: &Root, digest: &str) -> Option<PathBuf> {
    let (alg, hex) = digest.split_once(':')?;
    if alg.is_empty() || hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(root.dir().join("distribution").join(alg).join(hex))
}

/// The repositories (`registry/repository`) blob `digest` is known to be
/// in, oldest first.
pub fn blob_sources(root: &Root, digest: &str) -> Vec<String> {
    metadata_path(root, digest)
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Remembers that blob `digest` is in repository `r` (best effort: the
/// metadata only enables mounts, it is never needed for correctness).
pub(crate) fn record_source(root: &Root, digest: &str, r: &Reference) {
    let Some(path) = metadata_path(root, digest) else {
        return;
    };
    let name = r.name();
    if blob_sources(root, digest).contains(&name) {
        return;
    }
    if let Some(parent) = path.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // One short O_APPEND write per line: concurrent writers never
    // interleave within a line.
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
    {
        let _ = f.write_all(format!("{name}\n").as_bytes());
    }
}

/// A repository of `target`'s registry, other than `target`'s, that holds
/// `digest` according to the distribution metadata.
fn mount_source(root: &Root, digest: &str, target: &Reference) -> Option<String> {
    let prefix = format!("{}/", target.registry());
    blob_sources(root, digest)
        .into_iter()
        .rev()
        .filter_map(|s| s.strip_prefix(&prefix).map(str::to_owned))
        .find(|repo| repo != target.repository())
}

/// The tagged names in the store of repository `name` (`NAME` without tag
/// or digest), normalised and sorted: what `kiln push --all-tags` pushes.
pub fn repository_tags(root: &Root, name: &str) -> Result<Vec<String>> {
    let want = ImageRef::parse(name).map_err(|m| Error::image(name, m, None))?;
    if want.digest.is_some() || name.rsplit('/').next().is_some_and(|l| l.contains(':')) {
        return Err(Error::image(
            name,
            "a tag or digest cannot be used with --all-tags",
            None,
        ));
    }
    let entries = root
        .store()
        .list()
        .map_err(|e| Error::step("list the images in the store", e))?;
    let mut tags: Vec<String> = entries
        .into_iter()
        .filter_map(|e| e.name)
        .filter(|n| {
            ImageRef::parse(n).is_ok_and(|r| {
                r.registry == want.registry
                    && r.repository == want.repository
                    && r.digest.is_none()
                    && r.tag.is_some()
            })
        })
        .collect();
    tags.sort();
    tags.dedup();
    if tags.is_empty() {
        return Err(Error::image(
            name,
            "no tags of this repository in the local store",
            None,
        ));
    }
    Ok(tags)
}

/// Pushes the image the store holds as `reference` (`NAME[:TAG]`; `latest`
/// when no tag is given) to its registry: blobs the repository has are
/// skipped, blobs another repository of the registry has are mounted, the
/// rest are uploaded in parallel; then the manifest, byte for byte as
/// stored (so the digest is the local image's).
pub async fn push(
    root: &Root,
    reference: &str,
    client: &Client,
    progress: &PushProgress,
) -> Result<PushResult> {
    // Blobs are read from the store while they upload: keep `gc` away.
    let _gc = crate::gc::BuildLock::shared(root)?;
    let target = Reference::parse(reference)
        .map_err(|e| Error::image(reference, "invalid reference", Some(Box::new(e))))?;
    let name = ImageRef::parse(reference)
        .map_err(|m| Error::image(reference, m, None))?
        .to_string();
    let store = root.store();
    let desc = store
        .resolve(&name)
        .or_else(|_| store.resolve(reference))
        .map_err(|e| {
            Error::image(
                reference,
                "no such image in the local store (tag an image with this name first)",
                Some(Box::new(e)),
            )
        })?;
    let manifest_digest =
        Digest::from_oci(desc.digest()).map_err(|e| Error::step("manifest digest", e))?;
    let bytes = store
        .read_blob(&manifest_digest)
        .map_err(|e| Error::step(format!("read manifest of {reference}"), e))?;
    let manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        what: format!("manifest of {reference}"),
        source: e,
    })?;
    let media_type = manifest["mediaType"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| desc.media_type().to_string());
    let provider = OciLayoutBlobs::new(store.root());
    let push_err = |what: String, e: kiln_registry_client::Error| {
        Error::image(reference, what, Some(Box::new(e)))
    };
    let tag = target
        .tag()
        .map(str::to_owned)
        .or_else(|| target.digest().map(|d| d.to_string()))
        .unwrap_or_else(|| "latest".to_owned());

    if manifest.get("manifests").is_some() {
        // An index: let the client push its children and blobs.
        let digest = client
            .push_image(
                &target,
                Bytes::from(bytes.clone()),
                &media_type,
                &provider,
                &PushOptions::default(),
                &kiln_registry_client::no_progress(),
            )
            .await
            .map_err(|e| push_err("push index".into(), e))?;
        return Ok(PushResult {
            tag,
            digest: digest.to_string(),
            size: bytes.len() as u64,
        });
    }

    let blob_list = |v: &serde_json::Value| -> Result<(String, u64)> {
        match (v["digest"].as_str(), v["size"].as_u64()) {
            (Some(d), Some(s)) => Ok((d.to_owned(), s)),
            _ => Err(Error::image(
                reference,
                "manifest has a descriptor without digest or size",
                None,
            )),
        }
    };
    let layers: Vec<(String, u64)> = manifest["layers"]
        .as_array()
        .map(|a| a.iter().map(blob_list).collect::<Result<Vec<_>>>())
        .transpose()?
        .unwrap_or_default();
    let config = blob_list(&manifest["config"])?;
    progress(PushEvent::Started {
        repository: target.name(),
        layers: layers.iter().map(|(d, _)| d.clone()).collect(),
    });

    let limit = client.config().max_concurrent_transfers.max(1);
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = std::collections::HashSet::new();
    let all = layers
        .iter()
        .map(|l| (l.clone(), true))
        .chain(std::iter::once((config.clone(), false)));
    for ((digest, size), is_layer) in all {
        if !seen.insert(digest.clone()) {
            continue;
        }
        let oci = kiln_registry_client::parse_digest(&digest)
            .map_err(|k| Error::image(reference, format!("digest {digest:?}: {k}"), None))?;
        if is_layer {
            progress(PushEvent::Layer {
                digest: digest.clone(),
                status: PushStatus::Waiting,
            });
        }
        let mount = mount_source(root, &digest, &target);
        let (client, target, provider, sem, progress, root) = (
            client.clone(),
            target.clone(),
            provider.clone(),
            Arc::clone(&sem),
            Arc::clone(progress),
            root.clone(),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let options = match &mount {
                Some(m) => PushOptions::mount_from(m),
                None => PushOptions::default(),
            };
            let sink: kiln_registry_client::ProgressSink = {
                let progress = Arc::clone(&progress);
                let d = digest.clone();
                Arc::new(
                    move |_: &kiln_registry_client::oci_spec::image::Digest,
                          done: u64,
                          _: Option<u64>| {
                        if is_layer {
                            progress(PushEvent::Layer {
                                digest: d.clone(),
                                status: PushStatus::Pushing { done, total: size },
                            });
                        }
                    },
                )
            };
            let outcome = client
                .push_blob(&target, &oci, size, &provider, &options, &sink)
                .await
                .map_err(|e| (digest.clone(), e))?;
            record_source(&root, &digest, &target);
            if is_layer {
                let status = match outcome {
                    BlobPush::Existed => PushStatus::AlreadyExists,
                    BlobPush::Mounted => PushStatus::MountedFrom(mount.unwrap_or_default()),
                    _ => PushStatus::Pushed,
                };
                progress(PushEvent::Layer { digest, status });
            }
            Ok::<(), (String, kiln_registry_client::Error)>(())
        });
    }
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(())) => {}
            Ok(Err((digest, e))) => {
                tasks.abort_all();
                return Err(push_err(format!("push blob {digest}"), e));
            }
            Err(e) => {
                tasks.abort_all();
                return Err(Error::step(
                    "push task",
                    std::io::Error::other(e.to_string()),
                ));
            }
        }
    }
    let digest = client
        .push_manifest(&target, Bytes::from(bytes.clone()), &media_type)
        .await
        .map_err(|e| push_err("push manifest".into(), e))?;
    record_source(root, digest.as_ref(), &target);
    Ok(PushResult {
        tag,
        digest: digest.to_string(),
        size: bytes.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_recorded_once_and_mounts_stay_in_the_registry() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let a = Reference::parse("localhost:5000/a/img:1").unwrap_or_else(|e| panic!("{e}"));
        let b = Reference::parse("localhost:5000/b:2").unwrap_or_else(|e| panic!("{e}"));
        let other = Reference::parse("example.com/a/img").unwrap_or_else(|e| panic!("{e}"));
        record_source(&root, d, &a);
        record_source(&root, d, &a);
        record_source(&root, d, &other);
        assert_eq!(
            blob_sources(&root, d),
            vec!["localhost:5000/a/img", "example.com/a/img"]
        );
        assert_eq!(mount_source(&root, d, &b).as_deref(), Some("a/img"));
        assert_eq!(mount_source(&root, d, &a), None);
        assert!(blob_sources(&root, "sha256:../../etc").is_empty());
    }
}
