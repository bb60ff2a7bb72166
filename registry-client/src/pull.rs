//! Pull: manifests (with verification and platform selection) and blobs
//! (streamed, verified, resumable).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_spec::image::{Descriptor, Digest, ImageManifest};
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue, RANGE};
use reqwest::{Method, StatusCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::blob::{Hasher, ProgressSink};
use crate::client::{Client, Endpoint, ReqBody, describe, redact_url, status_error};
use crate::error::Error;
use crate::manifest::{
    MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Manifest, Platform, descriptor_platform, select_platform,
};
use crate::reference::Reference;

/// A manifest as fetched: the exact bytes (what the digest covers), the
/// media type, the verified digest and the parsed form.
#[derive(Clone, Debug)]
pub struct PulledManifest {
    /// The bytes as served; push these to keep the digest.
    pub bytes: Bytes,
    /// The media type (from `Content-Type`, else the JSON).
    pub media_type: String,
    /// The digest of `bytes` (checked against the reference's digest or the
    /// registry's `Docker-Content-Digest`).
    pub digest: Digest,
    /// The parsed manifest.
    pub manifest: Manifest,
}

impl PulledManifest {
    /// A descriptor for this manifest.
    pub fn descriptor(&self) -> Descriptor {
        Descriptor::new(
            self.media_type.as_str().into(),
            self.bytes.len() as u64,
            self.digest.clone(),
        )
    }
}

/// An image resolved for one platform: the image manifest, the index it was
/// chosen from (if the reference named an index) and the config blob.
#[derive(Clone, Debug)]
pub struct PulledImage {
    /// The index or manifest list the reference resolved to, if any.
    pub index: Option<PulledManifest>,
    /// The image manifest.
    pub manifest: PulledManifest,
    /// The parsed image manifest (same as in `manifest`).
    pub image: ImageManifest,
    /// The config blob bytes (digest verified).
    pub config: Bytes,
}

/// The scope string for pulling from `repo`.
pub(crate) fn pull_scope(repo: &str) -> String {
    format!("repository:{repo}:pull")
}

/// Largest config blob read into memory.
const MAX_CONFIG_SIZE: u64 = 64 << 20;

impl Client {
    /// Fetches the manifest `reference` names (tag or digest), from a mirror
    /// if one is configured and has it, else from the registry. Verifies the
    /// digest: against the reference's digest when it has one, else against
    /// the registry's `Docker-Content-Digest` header when sent.
    pub async fn pull_manifest(&self, reference: &Reference) -> Result<PulledManifest, Error> {
        let mut last = None;
        for ep in self.pull_endpoints(reference.registry()).await? {
            match self.pull_manifest_from(&ep, reference).await {
                Ok(m) => return Ok(m),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::NotFound {
            reference: reference.to_string(),
        }))
    }

    async fn pull_manifest_from(
        &self,
        ep: &Endpoint,
        reference: &Reference,
    ) -> Result<PulledManifest, Error> {
        let url = format!(
            "/v2/{}/manifests/{}",
            reference.repository(),
            reference.manifest_reference()
        );
        let mut h = HeaderMap::new();
        h.insert(ACCEPT, HeaderValue::from_static(MANIFEST_ACCEPT));
        let scopes = [pull_scope(reference.repository())];
        let resp = self
            .request(ep, &scopes, Method::GET, &url, h, ReqBody::Empty, true)
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::NotFound {
                reference: reference.to_string(),
            });
        }
        if !resp.status().is_success() {
            return Err(status_error(&Method::GET, &format!("{}{url}", ep.base), resp).await);
        }
        let content_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let header_digest = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if resp.content_length().is_some_and(|l| l > MAX_MANIFEST_SIZE) {
            return Err(Error::ManifestTooLarge {
                reference: reference.to_string(),
                limit: MAX_MANIFEST_SIZE,
            });
        }
        let mut body = BytesMut::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Error::Http {
                method: "GET".to_owned(),
                url: format!("{}{url}", ep.base),
                what: describe(&e),
                source: Some(e),
            })?;
            if (body.len() + chunk.len()) as u64 > MAX_MANIFEST_SIZE {
                return Err(Error::ManifestTooLarge {
                    reference: reference.to_string(),
                    limit: MAX_MANIFEST_SIZE,
                });
            }
            body.extend_from_slice(&chunk);
        }
        let bytes = body.freeze();
        let expected = match (
            reference.digest(),
            header_digest
                .as_deref()
                .and_then(|d| crate::reference::parse_digest(d).ok()),
        ) {
            (Some(d), _) => Some(d.clone()),
            (None, Some(d)) => Some(d),
            (None, None) => None,
        };
        let digest = match expected {
            Some(want) => {
                let mut h = Hasher::for_digest(&want).ok_or_else(|| Error::InvalidReference {
                    reference: reference.to_string(),
                    kind: crate::error::ReferenceErrorKind::UnsupportedDigestAlgorithm(
                        want.algorithm().to_string(),
                    ),
                })?;
                h.update(&bytes);
                let got = h.finish();
                if got != want.to_string() {
                    return Err(Error::DigestMismatch {
                        what: "manifest",
                        expected: want.to_string(),
                        actual: got,
                    });
                }
                want
            }
            None => crate::blob::sha256_digest(&bytes),
        };
        let (manifest, media_type) =
            Manifest::parse(&bytes, content_type.as_deref(), &reference.to_string())?;
        Ok(PulledManifest {
            bytes,
            media_type,
            digest,
            manifest,
        })
    }

    /// Resolves `reference` to the digest of the manifest it names (the index
    /// itself for a multi-platform image).
    pub async fn resolve(&self, reference: &Reference) -> Result<Digest, Error> {
        Ok(self.pull_manifest(reference).await?.digest)
    }

    /// Resolves `reference` for `platform` (see [`Platform::host`]): fetches
    /// the manifest, picks the platform's manifest from an index, and reads
    /// the config blob. Layers are left to [`Client::pull_blob`].
    pub async fn pull_image(
        &self,
        reference: &Reference,
        platform: &Platform,
    ) -> Result<PulledImage, Error> {
        let top = self.pull_manifest(reference).await?;
        let (index, manifest) = match &top.manifest {
            Manifest::Image(_) => (None, top),
            Manifest::Index(idx) => {
                let i = select_platform(idx.manifests(), platform).ok_or_else(|| {
                    Error::NoMatchingPlatform {
                        reference: reference.to_string(),
                        platform: platform.to_string(),
                        available: idx
                            .manifests()
                            .iter()
                            .filter_map(descriptor_platform)
                            .map(|p| p.to_string())
                            .collect::<Vec<_>>()
                            .join(", "),
                    }
                })?;
                let child = reference.with_digest(idx.manifests()[i].digest().clone());
                let m = self.pull_manifest(&child).await?;
                (Some(top), m)
            }
        };
        let image = match &manifest.manifest {
            Manifest::Image(m) => m.clone(),
            Manifest::Index(_) => {
                return Err(Error::InvalidManifest {
                    reference: reference.to_string(),
                    media_type: manifest.media_type.clone(),
                    what: "index entry points at another index".to_owned(),
                });
            }
        };
        let cfg = image.config();
        if cfg.size() > MAX_CONFIG_SIZE {
            return Err(Error::SizeMismatch {
                what: "config",
                digest: cfg.digest().to_string(),
                expected: MAX_CONFIG_SIZE,
                actual: cfg.size(),
            });
        }
        let mut buf = Vec::with_capacity(cfg.size() as usize);
        self.pull_blob(
            reference,
            cfg.digest(),
            Some(cfg.size()),
            &mut buf,
            &crate::blob::no_progress(),
        )
        .await?;
        Ok(PulledImage {
            index,
            manifest,
            image,
            config: Bytes::from(buf),
        })
    }

    /// Streams blob `digest` of `repo` (only the registry and repository of
    /// the reference are used) into `writer`, verifying size (when `size` is
    /// given, as descriptors do) and digest. Interrupted transfers resume
    /// with `Range` requests, from a mirror or the registry.
    ///
    /// The writer sees bytes as they arrive; if this returns an error,
    /// whatever was written is unverified and must be discarded (see
    /// [`Client::pull_blob_to_file`], which does that). Memory use is
    /// bounded by the HTTP chunk size, whatever the blob size. Returns the
    /// number of bytes written.
    pub async fn pull_blob<W: AsyncWrite + Unpin + Send + ?Sized>(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        writer: &mut W,
        progress: &ProgressSink,
    ) -> Result<u64, Error> {
        let mut hasher = Hasher::for_digest(digest).ok_or_else(|| Error::InvalidReference {
            reference: digest.to_string(),
            kind: crate::error::ReferenceErrorKind::UnsupportedDigestAlgorithm(
                digest.algorithm().to_string(),
            ),
        })?;
        let mut written: u64 = 0;
        let mut expected = size;
        let mut failures = 0u32;
        let endpoints = self.pull_endpoints(repo.registry()).await?;
        let scopes = [pull_scope(repo.repository())];
        let mut ep_index = 0usize;
        loop {
            let ep = &endpoints[ep_index.min(endpoints.len() - 1)];
            let url = format!("/v2/{}/blobs/{digest}", repo.repository());
            let full = format!("{}{url}", ep.base);
            let mut h = HeaderMap::new();
            if written > 0
                && let Ok(v) = HeaderValue::from_str(&format!("bytes={written}-"))
            {
                h.insert(RANGE, v);
            }
            let outcome = self
                .request(ep, &scopes, Method::GET, &url, h, ReqBody::Empty, true)
                .await;
            let resp = match outcome {
                Ok(r) => r,
                Err(e) => {
                    if ep_index + 1 < endpoints.len() {
                        ep_index += 1;
                        continue;
                    }
                    return Err(e);
                }
            };
            let status = resp.status();
            if !status.is_success() {
                if ep_index + 1 < endpoints.len() {
                    ep_index += 1;
                    continue;
                }
                if status == StatusCode::NOT_FOUND {
                    return Err(Error::NotFound {
                        reference: format!("{}@{digest}", repo.name()),
                    });
                }
                return Err(status_error(&Method::GET, &full, resp).await);
            }
            // A 200 to a Range request restarts from byte 0: skip what we
            // already have (it is the same content-addressed blob).
            let mut skip = if written > 0 && status == StatusCode::OK {
                written
            } else {
                0
            };
            if status == StatusCode::PARTIAL_CONTENT {
                let start = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.parse::<u64>().ok());
                if start != Some(written) {
                    return Err(Error::Http {
                        method: "GET".to_owned(),
                        url: redact_url(&full),
                        what: format!(
                            "asked for bytes from {written}, got Content-Range starting at {start:?}"
                        ),
                        source: None,
                    });
                }
            }
            if expected.is_none() && status == StatusCode::OK {
                expected = resp.content_length();
            }
            let mut stream = resp.bytes_stream();
            let mut interrupted = None;
            while let Some(chunk) = stream.next().await {
                let mut chunk = match chunk {
                    Ok(c) => c,
                    Err(e) => {
                        interrupted = Some(e);
                        break;
                    }
                };
                if skip > 0 {
                    let n = (skip as usize).min(chunk.len());
                    let _ = chunk.split_to(n);
                    skip -= n as u64;
                    if chunk.is_empty() {
                        continue;
                    }
                }
                if let Some(want) = expected
                    && written + chunk.len() as u64 > want
                {
                    return Err(Error::SizeMismatch {
                        what: "blob",
                        digest: digest.to_string(),
                        expected: want,
                        actual: written + chunk.len() as u64,
                    });
                }
                hasher.update(&chunk);
                writer
                    .write_all(&chunk)
                    .await
                    .map_err(|source| Error::Stream {
                        step: "writing blob",
                        digest: digest.to_string(),
                        source,
                    })?;
                written += chunk.len() as u64;
                progress.on_progress(digest, written, expected);
            }
            let short = expected.is_some_and(|w| written < w);
            if interrupted.is_some() || short {
                failures += 1;
                if failures > self.inner.config.max_retries {
                    let what = match &interrupted {
                        Some(e) => {
                            format!("transfer interrupted at byte {written}: {}", describe(e))
                        }
                        None => {
                            format!("body ended at byte {written} of {}", expected.unwrap_or(0))
                        }
                    };
                    return Err(Error::Http {
                        method: "GET".to_owned(),
                        url: redact_url(&full),
                        what,
                        source: interrupted,
                    });
                }
                tokio::time::sleep(self.backoff(failures - 1, None)).await;
                continue;
            }
            break;
        }
        writer.flush().await.map_err(|source| Error::Stream {
            step: "flushing blob",
            digest: digest.to_string(),
            source,
        })?;
        let got = hasher.finish();
        if got != digest.to_string() {
            return Err(Error::DigestMismatch {
                what: "blob",
                expected: digest.to_string(),
                actual: got,
            });
        }
        Ok(written)
    }

    /// Downloads blob `digest` into `path`: written to a temporary file
    /// beside it, verified, then renamed into place, so `path` only ever
    /// holds verified content. A verification failure removes the temporary
    /// file.
    pub async fn pull_blob_to_file(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: Option<u64>,
        path: &Path,
        progress: &ProgressSink,
    ) -> Result<u64, Error> {
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp: PathBuf =
            path.with_file_name(format!(".{name}.kiln-partial-{}-{seq}", std::process::id()));
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| Error::io("creating blob file", &tmp, e))?;
        // Removes the temporary file on every exit, including cancellation
        // (the future dropped mid-transfer), unless it was renamed.
        let mut guard = TempFile(Some(tmp.clone()));
        let mut w = tokio::io::BufWriter::with_capacity(1 << 20, file);
        let n = self.pull_blob(repo, digest, size, &mut w, progress).await?;
        // Data reaches the disk before the rename makes it visible, so a
        // crash never leaves a complete-looking but truncated blob.
        w.into_inner()
            .sync_data()
            .await
            .map_err(|e| Error::io("syncing blob file", &tmp, e))?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| Error::io("renaming blob file", path, e))?;
        guard.0 = None;
        Ok(n)
    }

    /// Pulls `reference` for `platform` into an OCI image layout at `dir`
    /// (created if needed; existing blobs of the right size are kept), with
    /// up to [`ClientConfig::max_concurrent_transfers`](crate::ClientConfig)
    /// blobs at once, and records it in `index.json` under `tag` (as
    /// `org.opencontainers.image.ref.name`). Returns the image.
    pub async fn pull_image_to_layout(
        &self,
        reference: &Reference,
        platform: &Platform,
        dir: &Path,
        tag: &str,
        progress: &ProgressSink,
    ) -> Result<PulledImage, Error> {
        let img = self.pull_image(reference, platform).await?;
        let blobs = crate::blob::OciLayoutBlobs::new(dir);
        let write_small = |d: &Digest, data: &Bytes| -> Result<(), Error> {
            let p = blobs.path(d);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| Error::io("creating layout directory", parent, e))?;
            }
            std::fs::write(&p, data).map_err(|e| Error::io("writing blob", &p, e))
        };
        write_small(img.image.config().digest(), &img.config)?;
        write_small(&img.manifest.digest, &img.manifest.bytes)?;
        // One task per layer (at most `limit` at once), so hashing and
        // copying spread over the runtime's threads rather than one task.
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.inner.config.max_concurrent_transfers.max(1),
        ));
        let mut tasks = tokio::task::JoinSet::new();
        for l in img.image.layers() {
            let p = blobs.path(l.digest());
            if std::fs::metadata(&p)
                .map(|m| m.len() == l.size())
                .unwrap_or(false)
            {
                continue;
            }
            let l = l.clone();
            let (client, reference, progress, limit) = (
                self.clone(),
                reference.clone(),
                Arc::clone(progress),
                Arc::clone(&limit),
            );
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                client
                    .pull_blob_to_file(&reference, l.digest(), Some(l.size()), &p, &progress)
                    .await
            });
        }
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(r) => {
                    r?;
                }
                Err(e) => {
                    return Err(Error::Stream {
                        // Only a panic inside the task gets here.
                        step: "layer download task panicked",
                        digest: "(one of the layers)".to_owned(),
                        source: std::io::Error::other(e.to_string()),
                    });
                }
            }
        }
        crate::layout::add_to_index(dir, &img.manifest.descriptor(), tag)?;
        Ok(img)
    }
}

/// Deletes the file it names when dropped, unless emptied.
struct TempFile(Option<PathBuf>);

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}
