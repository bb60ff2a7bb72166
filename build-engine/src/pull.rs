//! Pulling images from registries into the store, ready to run
//! (kiln-registry-client for the protocol, kiln-image-layers for storage
//! and unpacking).
//!
//! [`pull`] fetches the manifest and config, then transfers the layers in
//! parallel. Each layer is unpacked *while* it downloads: the HTTP body is
//! hashed (the blob digest, checked by `Client::pull_blob`), written to a
//! blob file in the state directory and, through a pipe, decompressed and
//! applied by a blocking thread into a snapshot staging directory (which
//! also hashes the tar stream: the diffID). Only when both digests match
//! what the manifest and config claim is the blob renamed into the store
//! and the staging directory moved into place as the snapshot of the
//! layer's chain id. Snapshots are independent lower dirs (overlay
//! whiteouts), so layers unpack in any order; the chain ids preserve the
//! stacking order. After a pull, `kiln run` finds every snapshot present.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kiln_image_layers::oci_spec::image::MediaType;
use kiln_image_layers::{ApplyOptions, Digest, OverlayXattr, Whiteouts, apply_layer, chain_id};
use kiln_registry_client::{Client, Platform, Reference};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::builder::HOST_ARCH;
use crate::error::{Error, Result};
use crate::image::{ImageRef, LocalImage, resolve_local};
use crate::root::Root;

/// What happened to one layer during a pull (Docker's per-layer statuses).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LayerStatus {
    /// Waiting for a transfer slot.
    Waiting,
    /// `done` of `total` compressed bytes received (and being unpacked).
    Downloading {
        /// Bytes received.
        done: u64,
        /// The layer's size.
        total: u64,
    },
    /// The download finished; unpacking is finishing.
    Extracting,
    /// Downloaded, verified and unpacked.
    PullComplete,
    /// The store already had the layer.
    AlreadyExists,
}

/// A progress event of [`pull`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PullEvent {
    /// The manifest was resolved; `layers` (blob digests, bottom-most
    /// first) will be fetched. Docker prints `TAG: Pulling from REPO`.
    Resolved {
        /// The tag or digest pulled.
        reference: String,
        /// The repository, in Docker's short form (`library/busybox`).
        repository: String,
        /// Layer blob digests, bottom-most first.
        layers: Vec<String>,
    },
    /// A layer changed status.
    Layer {
        /// The layer's blob digest.
        digest: String,
        /// Its new status.
        status: LayerStatus,
    },
}

/// Receives [`PullEvent`]s (from several tasks at once).
pub type PullProgress = Arc<dyn Fn(PullEvent) + Send + Sync>;

/// A [`PullProgress`] that ignores everything.
pub fn no_pull_progress() -> PullProgress {
    Arc::new(|_| {})
}

/// Choices for [`pull`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PullOptions {
    /// `os/arch[/variant]` to select from a multi-platform image (default:
    /// the host's).
    pub platform: Option<String>,
    /// Layers transferred at once (0: the client's
    /// `max_concurrent_transfers`).
    pub max_concurrent: usize,
}

/// What [`pull`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PullResult {
    /// The image as stored (platform manifest).
    pub image: LocalImage,
    /// The normalised name it is tagged with
    /// (`docker.io/library/busybox:latest`, or `NAME@DIGEST`).
    pub name: String,
    /// Docker's short form of the reference (`busybox:latest`).
    pub familiar: String,
    /// The digest of the manifest the reference named (an index for a
    /// multi-platform image), as Docker prints on its `Digest:` line.
    pub digest: String,
    /// True when the store already had this image under this name.
    pub up_to_date: bool,
}

/// Parses `os/arch[/variant]`.
fn parse_platform(s: &str) -> Result<Platform> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
        [os, arch, v] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, Some(v))),
        _ => Err(Error::Unsupported {
            line: 0,
            feature: format!("platform {s:?} (expected os/arch[/variant])"),
        }),
    }
}

/// Pulls `reference` for the host platform into the store and tags it with
/// its normalised name (what the builder does for a missing base image).
/// `client`: `None` uses [`Root::registry_client`] (from the settings).
pub async fn pull_image(
    root: &Root,
    reference: &str,
    client: Option<&Client>,
) -> Result<LocalImage> {
    let owned;
    let client = match client {
        Some(c) => c,
        None => {
            owned = root.registry_client()?;
            &owned
        }
    };
    let r = pull(
        root,
        reference,
        &PullOptions::default(),
        client,
        &no_pull_progress(),
    )
    .await?;
    Ok(r.image)
}

/// Pulls `reference` (`NAME[:TAG|@DIGEST]`) into the store, ready to run:
/// layers are downloaded in parallel, verified while they stream, and
/// unpacked into snapshots as they arrive. A digest in the reference is
/// verified against the manifest's bytes. The image is tagged with its
/// normalised name.
pub async fn pull(
    root: &Root,
    reference: &str,
    options: &PullOptions,
    client: &Client,
    progress: &PullProgress,
) -> Result<PullResult> {
    // Keeps `gc` away from the scratch and snapshot directories in use.
    let _gc = crate::gc::BuildLock::shared(root)?;
    let r = Reference::parse(reference)
        .map_err(|e| Error::image(reference, "invalid reference", Some(Box::new(e))))?;
    let platform = match &options.platform {
        Some(p) => parse_platform(p)?,
        None => Platform::new("linux", HOST_ARCH, None),
    };
    let pulled = client
        .pull_image(&r, &platform)
        .await
        .map_err(|e| Error::image(reference, "pull", Some(Box::new(e))))?;
    let top_digest = pulled
        .index
        .as_ref()
        .map_or(&pulled.manifest.digest, |i| &i.digest)
        .to_string();
    let name = ImageRef::parse(reference)
        .map_err(|m| Error::image(reference, m, None))?
        .to_string();

    // Pair each layer blob with its diffID and chain id from the config
    // (verified by digest), so snapshots are keyed as the builder keys them.
    let config: serde_json::Value =
        serde_json::from_slice(&pulled.config).map_err(|e| Error::Json {
            what: format!("config of {reference}"),
            source: e,
        })?;
    let diff_ids: Vec<Digest> = config["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str())
                .map(Digest::parse)
                .collect()
        })
        .unwrap_or_else(|| Ok(Vec::new()))
        .map_err(|e| Error::step(format!("diffIDs in the config of {reference}"), e))?;
    let layers = pulled.image.layers();
    if layers.len() != diff_ids.len() {
        return Err(Error::image(
            reference,
            format!(
                "manifest lists {} layers but the config {} diffIDs",
                layers.len(),
                diff_ids.len()
            ),
            None,
        ));
    }
    let mut jobs = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let digest = Digest::from_oci(l.digest()).map_err(|e| Error::step("layer digest", e))?;
        let chain = chain_id(&diff_ids[..=i])
            .ok_or_else(|| Error::image(reference, "image has no layers", None))?;
        jobs.push(LayerJob {
            digest,
            size: l.size(),
            media_type: l.media_type().clone(),
            diff_id: diff_ids[i].clone(),
            chain,
        });
    }

    let store = root.store();
    let manifest_digest =
        Digest::from_oci(&pulled.manifest.digest).map_err(|e| Error::step("manifest digest", e))?;
    let complete =
        |j: &LayerJob| store.has_blob(&j.digest) && root.snapshots().path(&j.chain).exists();
    let up_to_date = store
        .resolve(&name)
        .ok()
        .is_some_and(|d| d.digest() == &pulled.manifest.digest)
        && store.has_blob(&manifest_digest)
        && jobs.iter().all(complete);

    if !up_to_date {
        progress(PullEvent::Resolved {
            reference: r
                .digest()
                .map(|d| d.to_string())
                .or_else(|| r.tag().map(str::to_owned))
                .unwrap_or_default(),
            repository: familiar_repository(&r),
            layers: jobs.iter().map(|j| j.digest.to_string()).collect(),
        });
        fetch_layers(root, client, &r, jobs, options, progress).await?;
    }
    for l in layers {
        crate::push::record_source(root, l.digest().as_ref(), &r);
    }
    crate::push::record_source(root, pulled.image.config().digest().as_ref(), &r);

    store
        .put_bytes(MediaType::ImageConfig, &pulled.config)
        .map_err(|e| Error::step("store image config", e))?;
    let manifest = store
        .put_bytes(
            MediaType::from(pulled.manifest.media_type.as_str()),
            &pulled.manifest.bytes,
        )
        .map_err(|e| Error::step("store manifest", e))?;
    store
        .tag(&name, &manifest)
        .map_err(|e| Error::step(format!("tag {name}"), e))?;
    Ok(PullResult {
        image: resolve_local(root, &name)?,
        familiar: r.familiar(),
        name,
        digest: top_digest,
        up_to_date,
    })
}

/// `library/busybox` for Docker Hub, `host:port/repo` elsewhere, as in
/// Docker's `Pulling from` line.
fn familiar_repository(r: &Reference) -> String {
    if r.registry() == kiln_registry_client::DOCKER_HUB {
        r.repository().to_string()
    } else {
        r.name()
    }
}

#[derive(Debug, Clone)]
struct LayerJob {
    digest: Digest,
    size: u64,
    media_type: MediaType,
    diff_id: Digest,
    chain: Digest,
}

async fn fetch_layers(
    root: &Root,
    client: &Client,
    r: &Reference,
    jobs: Vec<LayerJob>,
    options: &PullOptions,
    progress: &PullProgress,
) -> Result<()> {
    let limit = if options.max_concurrent > 0 {
        options.max_concurrent
    } else {
        client.config().max_concurrent_transfers.max(1)
    };
    let sem = Arc::new(tokio::sync::Semaphore::new(limit));
    let mut tasks = tokio::task::JoinSet::new();
    let mut seen = std::collections::HashSet::new();
    for job in jobs {
        // An image may list the same layer twice; fetch it once.
        if !seen.insert(job.chain.clone()) {
            continue;
        }
        progress(PullEvent::Layer {
            digest: job.digest.to_string(),
            status: LayerStatus::Waiting,
        });
        let (root, client, r, progress, sem) = (
            root.clone(),
            client.clone(),
            r.clone(),
            Arc::clone(progress),
            Arc::clone(&sem),
        );
        tasks.spawn(async move {
            let _permit = sem.acquire_owned().await;
            fetch_layer(&root, &client, &r, &job, &progress).await
        });
    }
    let mut first_err = None;
    while let Some(joined) = tasks.join_next().await {
        let res = match joined {
            Ok(r) => r,
            Err(e) => Err(Error::step(
                "layer task",
                std::io::Error::other(e.to_string()),
            )),
        };
        if let Err(e) = res
            && first_err.is_none()
        {
            first_err = Some(e);
            // One failure fails the pull: stop the other transfers
            // (their staging files and directories clean up on drop).
            tasks.abort_all();
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

fn apply_options(digest: &Digest) -> ApplyOptions {
    let mut opts = ApplyOptions::default();
    opts.whiteouts = Whiteouts::Overlay(OverlayXattr::Trusted);
    opts.layer_name = digest.to_string();
    opts
}

/// A staging directory for a snapshot, beside the snapshots (same file
/// system, so it can be renamed into place).
fn staging_dir(root: &Root, chain: &Digest) -> Result<tempfile::TempDir> {
    let path = root.snapshots().path(chain);
    let dir = path.parent().unwrap_or(root.dir());
    tempfile::Builder::new()
        .prefix(".pull-")
        .tempdir_in(dir)
        .map_err(|e| Error::io("create snapshot directory in", dir, e))
}

async fn fetch_layer(
    root: &Root,
    client: &Client,
    r: &Reference,
    job: &LayerJob,
    progress: &PullProgress,
) -> Result<()> {
    let store = root.store();
    let event = |status| {
        progress(PullEvent::Layer {
            digest: job.digest.to_string(),
            status,
        })
    };
    let have_snapshot = root.snapshots().path(&job.chain).exists();
    if store.has_blob(&job.digest) {
        if !have_snapshot {
            // The blob is here (pulled or built before) but not unpacked:
            // unpack it from the store, checking digest and diffID.
            let (root2, job2) = (root.clone(), job.clone());
            tokio::task::spawn_blocking(move || unpack_stored(&root2, &job2))
                .await
                .map_err(|e| Error::step("unpack task", std::io::Error::other(e.to_string())))??;
        }
        event(LayerStatus::AlreadyExists);
        return Ok(());
    }

    let tmp = root.tempdir("pull-")?;
    let blob_path = tmp.path().join("blob");
    let staging = staging_dir(root, &job.chain)?;
    let (mut writer, reader) = tokio::io::duplex(1 << 20);
    let handle = tokio::runtime::Handle::current();
    let (blob_path2, staging_path, digest) = (
        blob_path.clone(),
        staging.path().to_path_buf(),
        job.digest.clone(),
    );
    let apply = tokio::task::spawn_blocking(move || {
        unpack_stream(handle, reader, &blob_path2, &staging_path, &digest)
    });
    let total = job.size;
    let dl_progress: kiln_registry_client::ProgressSink = {
        let progress = Arc::clone(progress);
        let digest = job.digest.to_string();
        let last = std::sync::atomic::AtomicU64::new(0);
        Arc::new(
            move |_: &kiln_registry_client::oci_spec::image::Digest, done: u64, _: Option<u64>| {
                // Report about every 256 KiB (and the end), not every chunk.
                let prev = last.load(std::sync::atomic::Ordering::Relaxed);
                if done >= total || done.saturating_sub(prev) >= 256 << 10 || done < prev {
                    last.store(done, std::sync::atomic::Ordering::Relaxed);
                    progress(PullEvent::Layer {
                        digest: digest.clone(),
                        status: LayerStatus::Downloading { done, total },
                    });
                }
            },
        )
    };
    let oci_digest = job.digest.to_oci();
    let downloaded = client
        .pull_blob(r, &oci_digest, Some(job.size), &mut writer, &dl_progress)
        .await;
    // End of stream for the unpacker (or a broken pipe if it already failed).
    let _ = writer.shutdown().await;
    drop(writer);
    if downloaded.is_ok() {
        event(LayerStatus::Extracting);
    }
    let applied = apply
        .await
        .map_err(|e| Error::step("unpack task", std::io::Error::other(e.to_string())))?;
    let layer_err = |what: &str, e: crate::error::Cause| {
        Error::step(
            format!("{what} layer {} of {}", job.digest, r.familiar()),
            e,
        )
    };
    match (downloaded, applied) {
        // The unpacker stopped reading: its error is the cause.
        (Err(kiln_registry_client::Error::Stream { .. }), Err(e)) => return Err(e),
        (Err(e), _) => return Err(layer_err("download", Box::new(e))),
        (Ok(_), Err(e)) => return Err(e),
        (Ok(_), Ok(diff_id)) => {
            if diff_id != job.diff_id {
                return Err(layer_err(
                    "verify",
                    format!(
                        "uncompressed content is {diff_id}, the config's diffID is {}",
                        job.diff_id
                    )
                    .into(),
                ));
            }
        }
    }
    // Both digests verified: make the blob and the snapshot visible.
    let dest = store.blob_path(&job.digest);
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io("create directory", parent, e))?;
    }
    std::fs::rename(&blob_path, &dest).map_err(|e| Error::io("move blob into place", &dest, e))?;
    root.snapshots().adopt(&job.chain, staging.keep())?;
    event(LayerStatus::PullComplete);
    Ok(())
}

/// Reads a tokio stream from a blocking thread.
struct BlockingReader {
    handle: tokio::runtime::Handle,
    inner: tokio::io::DuplexStream,
}

impl Read for BlockingReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let BlockingReader { handle, inner } = self;
        handle.block_on(inner.read(buf))
    }
}

/// Copies everything read to a file as well.
struct TeeReader<R, W> {
    inner: R,
    copy: W,
    path: PathBuf,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.copy.write_all(&buf[..n]).map_err(|e| {
            std::io::Error::new(e.kind(), format!("write {}: {e}", self.path.display()))
        })?;
        Ok(n)
    }
}

/// The blocking half of a layer download: tees the compressed stream into
/// the blob file and applies it to `staging`. Returns the diffID.
fn unpack_stream(
    handle: tokio::runtime::Handle,
    reader: tokio::io::DuplexStream,
    blob_path: &Path,
    staging: &Path,
    digest: &Digest,
) -> Result<Digest> {
    let file = std::fs::File::create(blob_path).map_err(|e| Error::io("create", blob_path, e))?;
    let mut tee = TeeReader {
        inner: BlockingReader {
            handle,
            inner: reader,
        },
        copy: std::io::BufWriter::with_capacity(1 << 20, file),
        path: blob_path.to_path_buf(),
    };
    let report = apply_layer(&mut tee, staging, &apply_options(digest))
        .map_err(|e| Error::step(format!("unpack layer {digest}"), e))?;
    // Whatever the decompressor left unread (padding, trailing bytes) still
    // belongs to the blob.
    std::io::copy(&mut tee, &mut std::io::sink())
        .map_err(|e| Error::io("read layer stream into", blob_path, e))?;
    let file = tee
        .copy
        .into_inner()
        .map_err(|e| Error::io("write", blob_path, e.into_error()))?;
    // The blob must be on disk before the rename makes it visible.
    file.sync_data()
        .map_err(|e| Error::io("sync", blob_path, e))?;
    Ok(report.diff_id)
}

/// Unpacks a layer whose blob is already in the store into its snapshot.
fn unpack_stored(root: &Root, job: &LayerJob) -> Result<()> {
    let staging = staging_dir(root, &job.chain)?;
    let desc = kiln_image_layers::oci_spec::image::Descriptor::new(
        job.media_type.clone(),
        job.size,
        job.digest.to_oci(),
    );
    let report = root
        .store()
        .apply_layer(&desc, staging.path(), &apply_options(&job.digest))
        .map_err(|e| Error::step(format!("unpack layer {}", job.digest), e))?;
    if report.diff_id != job.diff_id {
        return Err(Error::step(
            format!("verify layer {}", job.digest),
            format!(
                "uncompressed content is {}, the config's diffID is {}",
                report.diff_id, job.diff_id
            ),
        ));
    }
    root.snapshots().adopt(&job.chain, staging.keep())?;
    Ok(())
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
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| Error::step("start an async runtime for pulling", e))?;
            Ok(rt.block_on(fut))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platforms_parse() {
        assert!(parse_platform("linux/amd64").is_ok());
        assert!(parse_platform("linux/arm/v7").is_ok());
        assert!(parse_platform("linux").is_err());
        assert!(parse_platform("/amd64").is_err());
    }
}
