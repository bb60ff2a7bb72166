//! Push: blob existence checks, cross-repository mounts, monolithic and
//! chunked (resumable) uploads, manifests by tag and digest, whole images.

use bytes::Bytes;
use futures_util::StreamExt;
use oci_spec::image::{Descriptor, Digest};
use reqwest::header::{
    CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, HeaderMap, HeaderValue, LOCATION,
};
use reqwest::{Method, StatusCode, Url};
use tokio::io::AsyncReadExt;

use crate::blob::{BlobProvider, ProgressSink};
use crate::client::{Client, Endpoint, ReqBody, redact_url, status_error};
use crate::error::Error;
use crate::manifest::Manifest;
use crate::reference::Reference;

/// What [`Client::push_blob`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlobPush {
    /// The registry already had the blob (HEAD said so).
    Existed,
    /// Mounted from another repository of the same registry.
    Mounted,
    /// Uploaded.
    Uploaded,
}

/// Options for [`Client::push_blob`] and [`Client::push_image`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct PushOptions {
    /// Try to mount blobs from this repository (same registry) before
    /// uploading them.
    pub mount_from: Option<String>,
    /// Skip the HEAD existence check (the caller knows the registry lacks
    /// the blobs).
    pub skip_existence_check: bool,
}

impl PushOptions {
    /// Mount blobs from `repository` when possible.
    pub fn mount_from(repository: &str) -> PushOptions {
        PushOptions {
            mount_from: Some(repository.to_owned()),
            ..PushOptions::default()
        }
    }
}

pub(crate) fn push_scopes(repo: &str, mount_from: Option<&str>) -> Vec<String> {
    let mut v = vec![format!("repository:{repo}:pull,push")];
    if let Some(m) = mount_from.filter(|m| *m != repo) {
        v.push(format!("repository:{m}:pull"));
    }
    v
}

impl Client {
    /// HEADs blob `digest` in `repo`: its size if the registry has it.
    pub async fn blob_exists(
        &self,
        repo: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, Error> {
        let ep = self.endpoint(repo.registry()).await?;
        let url = format!("/v2/{}/blobs/{digest}", repo.repository());
        let resp = self
            .request(
                &ep,
                &push_scopes(repo.repository(), None),
                Method::HEAD,
                &url,
                HeaderMap::new(),
                ReqBody::Empty,
                true,
            )
            .await?;
        match resp.status() {
            // HEAD has no body, so read the header rather than the body size.
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(status_error(&Method::HEAD, &format!("{}{url}", ep.base), resp).await),
        }
    }

    /// Uploads blob `digest` (`size` bytes, read from `provider`) to `repo`
    /// unless it is there already, trying a cross-repository mount first if
    /// `options.mount_from` is set. Blobs up to
    /// [`ClientConfig::chunk_size`](crate::ClientConfig) go in one PUT
    /// (restarted on failure); larger ones in PATCH chunks, resumed from the
    /// offset the registry reports after a failure.
    pub async fn push_blob(
        &self,
        repo: &Reference,
        digest: &Digest,
        size: u64,
        provider: &dyn BlobProvider,
        options: &PushOptions,
        progress: &ProgressSink,
    ) -> Result<BlobPush, Error> {
        if !options.skip_existence_check && self.blob_exists(repo, digest).await?.is_some() {
            progress.on_progress(digest, size, Some(size));
            return Ok(BlobPush::Existed);
        }
        let ep = self.endpoint(repo.registry()).await?;
        let scopes = push_scopes(repo.repository(), options.mount_from.as_deref());
        let mut failures = 0u32;
        loop {
            let mut start = format!("/v2/{}/blobs/uploads/", repo.repository());
            if let Some(from) = options
                .mount_from
                .as_deref()
                .filter(|f| *f != repo.repository())
            {
                start.push_str(&format!("?mount={digest}&from={from}"));
            }
            let resp = self
                .request(
                    &ep,
                    &scopes,
                    Method::POST,
                    &start,
                    HeaderMap::new(),
                    ReqBody::Empty,
                    true,
                )
                .await?;
            if resp.status() == StatusCode::CREATED && options.mount_from.is_some() {
                progress.on_progress(digest, size, Some(size));
                return Ok(BlobPush::Mounted);
            }
            if resp.status() != StatusCode::ACCEPTED {
                return Err(
                    status_error(&Method::POST, &format!("{}{start}", ep.base), resp).await,
                );
            }
            let location = location(&ep, &resp)?;
            let result = if size <= self.inner.config.chunk_size {
                self.upload_monolithic(&ep, &scopes, location, digest, size, provider, progress)
                    .await
            } else {
                self.upload_chunked(&ep, &scopes, location, digest, size, provider, progress)
                    .await
            };
            match result {
                Ok(()) => return Ok(BlobPush::Uploaded),
                Err(e) if failures < self.inner.config.max_retries && retryable(&e) => {
                    failures += 1;
                    tokio::time::sleep(self.backoff(failures - 1, None)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_monolithic(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        location: Url,
        digest: &Digest,
        size: u64,
        provider: &dyn BlobProvider,
        progress: &ProgressSink,
    ) -> Result<(), Error> {
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        let body = ReqBody::Stream {
            provider,
            digest,
            offset: 0,
            len: size,
            progress,
            total: Some(size),
        };
        let resp = self
            .request(ep, scopes, Method::PUT, url.as_str(), h, body, false)
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&Method::PUT, url.as_str(), resp).await);
        }
        check_digest_header(&resp, digest)
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_chunked(
        &self,
        ep: &Endpoint,
        scopes: &[String],
        mut location: Url,
        digest: &Digest,
        size: u64,
        provider: &dyn BlobProvider,
        progress: &ProgressSink,
    ) -> Result<(), Error> {
        let chunk = self.inner.config.chunk_size.max(1);
        let mut offset = 0u64;
        let mut failures = 0u32;
        while offset < size {
            let len = chunk.min(size - offset);
            let mut h = HeaderMap::new();
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            );
            if let Ok(v) = HeaderValue::from_str(&format!("{offset}-{}", offset + len - 1)) {
                h.insert(CONTENT_RANGE, v);
            }
            let body = ReqBody::Stream {
                provider,
                digest,
                offset,
                len,
                progress,
                total: Some(size),
            };
            let r = self
                .request(ep, scopes, Method::PATCH, location.as_str(), h, body, false)
                .await;
            let ok: Result<(), Error> = match r {
                Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                    location = crate::push::location(ep, &resp)?;
                    offset = range_end(&resp).map_or(offset + len, |e| e + 1);
                    continue;
                }
                Ok(resp)
                    if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE
                        || resp.status().is_server_error() =>
                {
                    Err(status_error(&Method::PATCH, location.as_str(), resp).await)
                }
                Ok(resp) => return Err(status_error(&Method::PATCH, location.as_str(), resp).await),
                Err(e) => Err(e),
            };
            let Err(e) = ok else { continue };
            failures += 1;
            if failures > self.inner.config.max_retries {
                return Err(e);
            }
            tokio::time::sleep(self.backoff(failures - 1, None)).await;
            // Ask the registry how much of the upload it has and go on from
            // there (distribution spec: "Resuming an upload").
            let resp = self
                .request(
                    ep,
                    scopes,
                    Method::GET,
                    location.as_str(),
                    HeaderMap::new(),
                    ReqBody::Empty,
                    true,
                )
                .await?;
            if resp.status() != StatusCode::NO_CONTENT {
                return Err(e);
            }
            offset = range_end(&resp).map(|e| e + 1).unwrap_or(0);
            if let Ok(l) = crate::push::location(ep, &resp) {
                location = l;
            }
        }
        let mut url = location;
        url.query_pairs_mut().append_pair("digest", digest.as_ref());
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        let resp = self
            .request(
                ep,
                scopes,
                Method::PUT,
                url.as_str(),
                h,
                ReqBody::Empty,
                true,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&Method::PUT, url.as_str(), resp).await);
        }
        check_digest_header(&resp, digest)
    }

    /// Pushes manifest `bytes` of `media_type` to `reference`: by its tag if
    /// it has one, else by digest. A digest in the reference must match the
    /// bytes. Returns the manifest's digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        bytes: Bytes,
        media_type: &str,
    ) -> Result<Digest, Error> {
        let digest = crate::blob::sha256_digest(&bytes);
        if let Some(d) = reference.digest() {
            let mut h =
                crate::blob::Hasher::for_digest(d).ok_or_else(|| Error::InvalidReference {
                    reference: reference.to_string(),
                    kind: crate::error::ReferenceErrorKind::UnsupportedDigestAlgorithm(
                        d.algorithm().to_string(),
                    ),
                })?;
            h.update(&bytes);
            let got = h.finish();
            if got != d.to_string() {
                return Err(Error::DigestMismatch {
                    what: "manifest",
                    expected: d.to_string(),
                    actual: got,
                });
            }
        }
        let target = match (reference.tag(), reference.digest()) {
            (Some(t), _) => t.to_owned(),
            (None, Some(d)) => d.to_string(),
            (None, None) => digest.to_string(),
        };
        let ep = self.endpoint(reference.registry()).await?;
        let url = format!("/v2/{}/manifests/{target}", reference.repository());
        let mut h = HeaderMap::new();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type).map_err(|_| Error::Config {
                what: format!("media type {media_type:?} is not a valid header"),
            })?,
        );
        let resp = self
            .request(
                &ep,
                &push_scopes(reference.repository(), None),
                Method::PUT,
                &url,
                h,
                ReqBody::Bytes(bytes.clone()),
                true,
            )
            .await?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&Method::PUT, &format!("{}{url}", ep.base), resp).await);
        }
        check_digest_header(&resp, &digest)?;
        let subject_ok = resp.headers().contains_key("oci-subject");
        // Registries without the referrers API: maintain the fallback tag
        // (distribution spec, "Pushing Manifests with Subject").
        if !subject_ok
            && let Ok((Manifest::Image(m), _)) =
                Manifest::parse(&bytes, Some(media_type), &reference.to_string())
            && let Some(subject) = m.subject()
        {
            let mut desc = Descriptor::new(media_type.into(), bytes.len() as u64, digest.clone());
            desc.set_artifact_type(
                m.artifact_type()
                    .clone()
                    .or_else(|| Some(m.config().media_type().clone())),
            );
            desc.set_annotations(m.annotations().clone());
            self.add_to_referrers_fallback(reference, subject.digest(), desc)
                .await?;
        }
        Ok(digest)
    }

    /// Pushes a whole image or index: every blob (in parallel, up to
    /// [`ClientConfig::max_concurrent_transfers`](crate::ClientConfig),
    /// skipping those the registry has), child manifests of an index by
    /// digest, then `manifest` itself to `reference`. `provider` supplies
    /// blobs and, for an index, the child manifests. Returns the digest of
    /// `manifest`.
    pub async fn push_image(
        &self,
        reference: &Reference,
        manifest: Bytes,
        media_type: &str,
        provider: &dyn BlobProvider,
        options: &PushOptions,
        progress: &ProgressSink,
    ) -> Result<Digest, Error> {
        let (parsed, media_type) =
            Manifest::parse(&manifest, Some(media_type), &reference.to_string())?;
        match &parsed {
            Manifest::Image(m) => {
                let mut blobs: Vec<Descriptor> = vec![m.config().clone()];
                for l in m.layers() {
                    if !blobs.iter().any(|b| b.digest() == l.digest()) {
                        blobs.push(l.clone());
                    }
                }
                let limit = self.inner.config.max_concurrent_transfers.max(1);
                let results: Vec<Result<BlobPush, Error>> =
                    futures_util::stream::iter(blobs.iter().map(|b| {
                        self.push_blob(reference, b.digest(), b.size(), provider, options, progress)
                    }))
                    .buffer_unordered(limit)
                    .collect()
                    .await;
                for r in results {
                    r?;
                }
            }
            Manifest::Index(idx) => {
                for child in idx.manifests() {
                    let mut r =
                        provider
                            .open(child.digest(), 0)
                            .await
                            .map_err(|source| Error::Stream {
                                step: "opening child manifest",
                                digest: child.digest().to_string(),
                                source,
                            })?;
                    let mut buf = Vec::new();
                    (&mut r)
                        .take(crate::manifest::MAX_MANIFEST_SIZE)
                        .read_to_end(&mut buf)
                        .await
                        .map_err(|source| Error::Stream {
                            step: "reading child manifest",
                            digest: child.digest().to_string(),
                            source,
                        })?;
                    let child_ref = Reference::from_parts(
                        reference.registry(),
                        reference.repository(),
                        None,
                        Some(child.digest().clone()),
                    )?;
                    Box::pin(self.push_image(
                        &child_ref,
                        Bytes::from(buf),
                        child.media_type().as_ref(),
                        provider,
                        options,
                        progress,
                    ))
                    .await?;
                }
            }
        }
        self.push_manifest(reference, manifest, &media_type).await
    }
}

fn retryable(e: &Error) -> bool {
    match e {
        Error::Http { .. } => true,
        Error::Status { status, .. } => {
            *status == 429 || *status >= 500 || *status == 416 || *status == 404
        }
        _ => false,
    }
}

/// The upload URL from a `Location` header, resolved against the endpoint.
pub(crate) fn location(ep: &Endpoint, resp: &reqwest::Response) -> Result<Url, Error> {
    let loc = resp
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| Error::Status {
            method: "POST".to_owned(),
            url: redact_url(resp.url().as_str()),
            status: resp.status().as_u16(),
            body: "no Location header for the upload".to_owned(),
        })?;
    let base = Url::parse(&format!("{}/", ep.base)).map_err(|e| Error::Config {
        what: format!("endpoint {}: {e}", ep.base),
    })?;
    base.join(loc).map_err(|e| Error::Config {
        what: format!("upload Location {:?}: {e}", redact_url(loc)),
    })
}

/// The last byte the registry has, from a `Range: 0-N` header. The
/// distribution server reports an empty upload as `0-0` (it clamps the end
/// at 0), so `0-0` is read as "nothing yet": resuming from 0 is always
/// safe, as the registry refuses a chunk at the wrong offset with 416.
fn range_end(resp: &reqwest::Response) -> Option<u64> {
    let r = resp.headers().get("range")?.to_str().ok()?;
    let r = r.strip_prefix("bytes=").unwrap_or(r);
    let end: u64 = r.split('-').nth(1)?.trim().parse().ok()?;
    if end == 0 { None } else { Some(end) }
}

fn check_digest_header(resp: &reqwest::Response, digest: &Digest) -> Result<(), Error> {
    match resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
    {
        Some(d) if d != digest.to_string() => Err(Error::DigestMismatch {
            what: "upload",
            expected: digest.to_string(),
            actual: d.to_owned(),
        }),
        _ => Ok(()),
    }
}
