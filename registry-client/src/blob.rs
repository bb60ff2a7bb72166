//! Blob plumbing: digest verification, progress reporting and the
//! [`BlobProvider`] seam that push reads blobs through.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use oci_spec::image::{Digest, DigestAlgorithm};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncSeekExt, ReadBuf};

/// A boxed async reader, as [`BlobProvider::open`] returns.
pub type BoxRead = Pin<Box<dyn AsyncRead + Send>>;

/// A boxed future (the seam traits are object-safe without `async_trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where push reads blobs (and child manifests of an index) from.
///
/// `open` must return the blob's bytes starting at `offset`; it is called
/// again after a failure to resume an upload, so it must be repeatable.
pub trait BlobProvider: Send + Sync {
    /// Opens blob `digest` at byte `offset`.
    fn open<'a>(&'a self, digest: &'a Digest, offset: u64) -> BoxFuture<'a, io::Result<BoxRead>>;
}

/// Blobs held in memory, keyed by digest (small images, artifacts, tests).
#[derive(Clone, Debug, Default)]
pub struct MemoryBlobs {
    blobs: HashMap<String, Bytes>,
}

impl MemoryBlobs {
    /// An empty set.
    pub fn new() -> MemoryBlobs {
        MemoryBlobs::default()
    }
    /// Adds `data`, returning its sha256 digest.
    pub fn insert(&mut self, data: impl Into<Bytes>) -> Digest {
        let data = data.into();
        let d = sha256_digest(&data);
        self.blobs.insert(d.to_string(), data);
        d
    }
    /// The bytes of `digest`, if held.
    pub fn get(&self, digest: &Digest) -> Option<&Bytes> {
        self.blobs.get(&digest.to_string())
    }
}

impl BlobProvider for MemoryBlobs {
    fn open<'a>(&'a self, digest: &'a Digest, offset: u64) -> BoxFuture<'a, io::Result<BoxRead>> {
        Box::pin(async move {
            let b = self.get(digest).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("blob {digest} not held"))
            })?;
            let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
            Ok(Box::pin(io::Cursor::new(b.slice(start..))) as BoxRead)
        })
    }
}

/// Blobs in an OCI image layout directory (`blobs/<alg>/<hex>`), such as
/// `skopeo copy ... oci:DIR` or [`crate::Client::pull_image_to_layout`]
/// write.
#[derive(Clone, Debug)]
pub struct OciLayoutBlobs {
    root: PathBuf,
}

impl OciLayoutBlobs {
    /// Blobs under `root/blobs`.
    pub fn new(root: impl Into<PathBuf>) -> OciLayoutBlobs {
        OciLayoutBlobs { root: root.into() }
    }
    /// The path of `digest`'s blob.
    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_ref())
            .join(digest.digest())
    }
}

impl BlobProvider for OciLayoutBlobs {
    fn open<'a>(&'a self, digest: &'a Digest, offset: u64) -> BoxFuture<'a, io::Result<BoxRead>> {
        Box::pin(async move {
            let path = self.path(digest);
            let mut f = tokio::fs::File::open(&path)
                .await
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            if offset > 0 {
                f.seek(io::SeekFrom::Start(offset)).await?;
            }
            Ok(Box::pin(tokio::io::BufReader::with_capacity(1 << 20, f)) as BoxRead)
        })
    }
}

/// Observes bytes transferred per blob (for progress bars). Called from the
/// transfer task; keep it cheap.
pub trait Progress: Send + Sync {
    /// `done` bytes of blob `digest` (of `total`, if known) have been
    /// transferred. After a resume, `done` continues from the resume point;
    /// after a restart it may go back.
    fn on_progress(&self, digest: &Digest, done: u64, total: Option<u64>);
}

/// How operations take a [`Progress`]: shared, because uploads report from
/// inside the HTTP body stream.
pub type ProgressSink = Arc<dyn Progress>;

/// A [`ProgressSink`] that ignores everything.
pub fn no_progress() -> ProgressSink {
    Arc::new(NoProgress)
}

/// A [`Progress`] that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn on_progress(&self, _: &Digest, _: u64, _: Option<u64>) {}
}

impl<F: Fn(&Digest, u64, Option<u64>) + Send + Sync> Progress for F {
    fn on_progress(&self, digest: &Digest, done: u64, total: Option<u64>) {
        self(digest, done, total)
    }
}

/// Incremental digest of a supported algorithm.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    pub(crate) fn for_digest(d: &Digest) -> Option<Hasher> {
        match d.algorithm() {
            DigestAlgorithm::Sha256 => Some(Hasher::Sha256(sha2::Sha256::new())),
            DigestAlgorithm::Sha512 => Some(Hasher::Sha512(sha2::Sha512::new())),
            _ => None,
        }
    }
    pub(crate) fn update(&mut self, b: &[u8]) {
        match self {
            Hasher::Sha256(h) => h.update(b),
            Hasher::Sha512(h) => h.update(b),
        }
    }
    /// `algorithm:hex` of what was hashed.
    pub(crate) fn finish(self) -> String {
        match self {
            Hasher::Sha256(h) => format!("sha256:{}", hex::encode(h.finalize())),
            Hasher::Sha512(h) => format!("sha512:{}", hex::encode(h.finalize())),
        }
    }
}

/// The sha256 digest of `data`.
pub fn sha256_digest(data: &[u8]) -> Digest {
    let s = format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)));
    match crate::reference::parse_digest(&s) {
        Ok(d) => d,
        // A formatted sha256 always parses; keep a total function anyway.
        Err(_) => {
            Digest::try_from(s.as_str()).unwrap_or_else(|_| unreachable!("sha256 digest is valid"))
        }
    }
}

/// Wraps a reader to report progress as it is read.
pub(crate) struct ProgressReader {
    pub(crate) inner: BoxRead,
    pub(crate) progress: ProgressSink,
    pub(crate) digest: Digest,
    pub(crate) done: u64,
    pub(crate) total: Option<u64>,
    pub(crate) counter: Option<Arc<std::sync::atomic::AtomicU64>>,
}

impl AsyncRead for ProgressReader {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = self.inner.as_mut().poll_read(cx, buf);
        let n = (buf.filled().len() - before) as u64;
        if n > 0 {
            self.done += n;
            let (d, done, total) = (self.digest.clone(), self.done, self.total);
            self.progress.on_progress(&d, done, total);
            if let Some(c) = &self.counter {
                c.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
            }
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_digest(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let mut h = Hasher::for_digest(&sha256_digest(b"")).unwrap();
        h.update(b"");
        assert_eq!(h.finish(), sha256_digest(b"").to_string());
    }

    #[tokio::test]
    async fn memory_blobs_open_at_offset() {
        let mut m = MemoryBlobs::new();
        let d = m.insert(Bytes::from_static(b"hello world"));
        let mut s = String::new();
        m.open(&d, 6)
            .await
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "world");
        let other = sha256_digest(b"x");
        assert!(m.open(&other, 0).await.is_err());
    }

    #[tokio::test]
    async fn layout_blobs_open_at_offset() {
        let dir = tempfile::tempdir().unwrap();
        let d = sha256_digest(b"abcdef");
        let l = OciLayoutBlobs::new(dir.path());
        std::fs::create_dir_all(l.path(&d).parent().unwrap()).unwrap();
        std::fs::write(l.path(&d), b"abcdef").unwrap();
        let mut s = String::new();
        l.open(&d, 2)
            .await
            .unwrap()
            .read_to_string(&mut s)
            .await
            .unwrap();
        assert_eq!(s, "cdef");
    }
}
