//! An OCI image layout on disk, used as an image store.
//!
//! The directory follows the OCI image-layout spec (image-layout.md):
//! `oci-layout`, `index.json` and `blobs/<alg>/<hex>`, so skopeo, umoci,
//! buildah and containerd's importer read it as is. Tags are the
//! `org.opencontainers.image.ref.name` annotation of an `index.json` entry;
//! an entry without one is a *dangling* image (a tag moved away from it).
//!
//! Crash safety: a blob is written to a temporary file under
//! `.kiln-tmp/`, hashed while written, fsynced and renamed to its final
//! name only after its digest is known (and checked when one was claimed),
//! so a final name never holds a partial or wrong blob. `index.json` is
//! replaced by an fsynced temporary file and `rename(2)`. Changes to
//! `index.json` and garbage collection hold an exclusive `flock(2)` on
//! `.kiln.lock`, so several processes can share one store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci_spec::image::{
    ANNOTATION_REF_NAME, Descriptor, ImageConfiguration, ImageManifest, MediaType,
};
use serde_json::Value;

use crate::digest::{Algorithm, Digest, DigestWriter};
use crate::error::{Error, Result, io_err};

const TMP_DIR: &str = ".kiln-tmp";
const LOCK_FILE: &str = ".kiln.lock";
const OCI_LAYOUT: &str = r#"{"imageLayoutVersion":"1.0.0"}"#;

/// An OCI image layout directory used as an image store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// One `index.json` entry: an image (manifest or index) and its tag.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageEntry {
    /// The manifest (or image index) descriptor as recorded in `index.json`.
    pub descriptor: Descriptor,
    /// The tag (`org.opencontainers.image.ref.name`), `None` for a dangling
    /// image.
    pub name: Option<String>,
}

impl ImageEntry {
    /// True when no tag points at this image any more.
    pub fn is_dangling(&self) -> bool {
        self.name.is_none()
    }

    /// The manifest digest.
    pub fn digest(&self) -> Result<Digest> {
        Digest::from_oci(self.descriptor.digest())
    }
}

/// Choices for [`Store::gc`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GcOptions {
    /// Blobs and temporary files younger than this are kept even when
    /// unreachable, so a concurrent writer that has stored layers but not
    /// yet tagged its manifest does not lose them. Default: one hour.
    pub grace: Duration,
    /// Also remove dangling images (untagged `index.json` entries) before
    /// collecting. Default: false.
    pub prune_dangling: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            prune_dangling: false,
        }
    }
}

/// What [`Store::gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcReport {
    /// Blobs removed.
    pub removed: Vec<Digest>,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Unreachable blobs kept because they are younger than the grace period.
    pub kept_young: usize,
    /// Dangling images removed from `index.json`.
    pub pruned_images: usize,
}

/// What [`Store::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Reachable blobs whose content was hashed and matched.
    pub checked: usize,
    /// Reachable blobs that are missing.
    pub missing: Vec<Digest>,
    /// Blobs whose content does not hash to their name: (name, actual).
    pub corrupt: Vec<(Digest, Digest)>,
    /// Blobs whose size differs from the descriptor that references them:
    /// (digest, descriptor size, file size).
    pub wrong_size: Vec<(Digest, u64, u64)>,
    /// Blobs present but not reachable from `index.json`.
    pub unreachable: usize,
}

impl VerifyReport {
    /// True when nothing is missing, corrupt or of the wrong size.
    pub fn is_ok(&self) -> bool {
        self.missing.is_empty() && self.corrupt.is_empty() && self.wrong_size.is_empty()
    }
}

/// An exclusive lock on the store, held until dropped.
#[derive(Debug)]
pub struct StoreLock {
    file: File,
}

impl Drop for StoreLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the flock too; unlocking first
        // just makes the release independent of other fds of this file.
        let _ = fs4::fs_std::FileExt::unlock(&self.file);
    }
}

/// A blob being written to the store; see [`Store::blob_writer`].
///
/// Nothing appears under a final blob name until [`BlobWriter::commit`];
/// dropping the writer removes the temporary file.
#[derive(Debug)]
pub struct BlobWriter {
    dir: PathBuf,
    inner: DigestWriter<BufWriter<tempfile::NamedTempFile>>,
    algorithm: Algorithm,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl BlobWriter {
    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.inner.count()
    }

    /// Makes the blob durable under its digest and returns its descriptor.
    pub fn commit(self, media_type: MediaType) -> Result<Descriptor> {
        self.commit_inner(None, None, media_type)
    }

    /// Like [`commit`](Self::commit), but fails (storing nothing) unless the
    /// content hashes to `expected` (and has `expected_size` bytes, when
    /// given).
    pub fn commit_expecting(
        self,
        expected: &Digest,
        expected_size: Option<u64>,
        media_type: MediaType,
    ) -> Result<Descriptor> {
        self.commit_inner(Some(expected), expected_size, media_type)
    }

    fn commit_inner(
        self,
        expected: Option<&Digest>,
        expected_size: Option<u64>,
        media_type: MediaType,
    ) -> Result<Descriptor> {
        let (buf, digest, size) = self.inner.finish();
        let tmp = buf
            .into_inner()
            .map_err(|e| io_err("flush blob temp file", &self.dir)(e.into_error()))?;
        if let Some(expected) = expected
            && expected != &digest
        {
            return Err(Error::DigestMismatch {
                what: format!("blob written to store {}", self.dir.display()),
                expected: expected.clone(),
                actual: digest,
            });
        }
        if let Some(expected) = expected_size
            && expected != size
        {
            return Err(Error::SizeMismatch {
                what: format!("blob {digest}"),
                expected,
                actual: size,
            });
        }
        debug_assert_eq!(digest.algorithm(), self.algorithm);
        let alg_dir = self.dir.join("blobs").join(digest.algorithm().as_str());
        let final_path = alg_dir.join(digest.hex());
        if !final_path.exists() {
            tmp.as_file()
                .sync_data()
                .map_err(io_err("fsync blob", tmp.path()))?;
            fs::create_dir_all(&alg_dir).map_err(io_err("create blob directory", &alg_dir))?;
            tmp.persist(&final_path)
                .map_err(|e| io_err("rename blob into place", &final_path)(e.error))?;
            sync_dir(&alg_dir)?;
        }
        Ok(Descriptor::new(media_type, size, digest.to_oci()))
    }
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
    let what = what.into();
    move |source| Error::Json { what, source }
}

/// Checks a tag name: the `ref.name` grammar of the image-spec annotations
/// (alphanumerics with `-._:@+/` separators), bounded length.
fn validate_tag(name: &str) -> Result<()> {
    let bad = |reason| Error::InvalidTag {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > 512 {
        return Err(bad("longer than 512 bytes"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:@+/".contains(&b))
    {
        return Err(bad("only A-Z a-z 0-9 and - . _ : @ + / are allowed"));
    }
    if !name.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(bad("must start with a letter or digit"));
    }
    Ok(())
}

fn entry_name(v: &Value) -> Option<&str> {
    v.get("annotations")?.get(ANNOTATION_REF_NAME)?.as_str()
}

fn entry_digest(v: &Value) -> Option<&str> {
    v.get("digest")?.as_str()
}

impl Store {
    /// Opens the image layout at `root`, creating an empty one (directory,
    /// `oci-layout`, `index.json`, `blobs/sha256`) if it does not exist.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(root.join("blobs").join("sha256"))
            .map_err(io_err("create store directory", &root))?;
        fs::create_dir_all(root.join(TMP_DIR)).map_err(io_err("create store directory", &root))?;
        let store = Store { root };
        let layout = store.root.join("oci-layout");
        let index = store.root.join("index.json");
        if !layout.exists() || !index.exists() {
            let _lock = store.lock()?;
            if !layout.exists() {
                store.write_atomic(&layout, OCI_LAYOUT.as_bytes())?;
            }
            if !index.exists() {
                let empty = serde_json::json!({
                    "schemaVersion": 2,
                    "mediaType": "application/vnd.oci.image.index.v1+json",
                    "manifests": []
                });
                store.write_index(&empty)?;
            }
        } else {
            let text = fs::read(&layout).map_err(io_err("read", &layout))?;
            let v: Value = serde_json::from_slice(&text).map_err(json_err("oci-layout"))?;
            if v.get("imageLayoutVersion")
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(Error::InvalidLayout {
                    path: layout,
                    reason: "oci-layout has no imageLayoutVersion".into(),
                });
            }
        }
        Ok(store)
    }

    /// The layout directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Takes the store's exclusive lock (blocking), for callers that need
    /// several steps to be atomic with respect to other processes.
    ///
    /// The store's own `index.json` updates and [`gc`](Self::gc) take this
    /// lock internally, and `flock(2)` locks on separate opens of the file
    /// exclude each other even within one process: do not call those
    /// methods while holding the guard.
    pub fn lock(&self) -> Result<StoreLock> {
        let path = self.root.join(LOCK_FILE);
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err("open store lock", &path))?;
        fs4::fs_std::FileExt::lock_exclusive(&file).map_err(io_err("flock", &path))?;
        Ok(StoreLock { file })
    }

    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<()> {
        let dir = path.parent().unwrap_or(&self.root);
        let mut tmp = tempfile::NamedTempFile::new_in(self.root.join(TMP_DIR))
            .map_err(io_err("create temp file", dir))?;
        tmp.write_all(data).map_err(io_err("write", tmp.path()))?;
        tmp.as_file()
            .sync_data()
            .map_err(io_err("fsync", tmp.path()))?;
        tmp.persist(path)
            .map_err(|e| io_err("rename into place", path)(e.error))?;
        sync_dir(dir)
    }

    // ---- blobs --------------------------------------------------------------

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.root
            .join("blobs")
            .join(digest.algorithm().as_str())
            .join(digest.hex())
    }

    /// True if the blob is present.
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Starts writing a sha256 blob.
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        self.blob_writer_with(Algorithm::Sha256)
    }

    /// Starts writing a blob hashed with `algorithm`.
    pub fn blob_writer_with(&self, algorithm: Algorithm) -> Result<BlobWriter> {
        let tmp_dir = self.root.join(TMP_DIR);
        let tmp = tempfile::Builder::new()
            .prefix("blob-")
            .tempfile_in(&tmp_dir)
            .map_err(io_err("create blob temp file", &tmp_dir))?;
        Ok(BlobWriter {
            dir: self.root.clone(),
            inner: DigestWriter::new(BufWriter::with_capacity(1 << 20, tmp), algorithm),
            algorithm,
        })
    }

    /// Stores everything `reader` yields as a sha256 blob.
    pub fn put_blob(&self, mut reader: impl Read, media_type: MediaType) -> Result<Descriptor> {
        let mut w = self.blob_writer()?;
        io::copy(&mut reader, &mut w).map_err(io_err("copy into blob", &self.root))?;
        w.commit(media_type)
    }

    /// Stores a blob that must hash to `expected` (and be `expected_size`
    /// bytes long when given); on a mismatch nothing is stored.
    pub fn put_blob_expecting(
        &self,
        mut reader: impl Read,
        expected: &Digest,
        expected_size: Option<u64>,
        media_type: MediaType,
    ) -> Result<Descriptor> {
        if self.has_blob(expected) {
            // Content-addressed and verified when it was stored: the
            // reader is left unread, nothing needs rewriting.
            let size = fs::metadata(self.blob_path(expected))
                .map_err(io_err("stat blob", self.blob_path(expected)))?
                .len();
            return Ok(Descriptor::new(media_type, size, expected.to_oci()));
        }
        let mut w = self.blob_writer_with(expected.algorithm())?;
        io::copy(&mut reader, &mut w).map_err(io_err("copy into blob", &self.root))?;
        w.commit_expecting(expected, expected_size, media_type)
    }

    /// Stores `bytes` as a blob.
    pub fn put_bytes(&self, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor> {
        let digest = Digest::sha256(bytes);
        if self.has_blob(&digest) {
            return Ok(Descriptor::new(
                media_type,
                bytes.len() as u64,
                digest.to_oci(),
            ));
        }
        self.put_blob(bytes, media_type)
    }

    /// Opens a blob for reading (not verified; see [`read_blob`](Self::read_blob)).
    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let path = self.blob_path(digest);
        File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound {
                    digest: digest.clone(),
                }
            } else {
                io_err("open blob", &path)(e)
            }
        })
    }

    /// Reads a whole blob into memory and verifies its digest.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut data = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut data)
            .map_err(io_err("read blob", self.blob_path(digest)))?;
        let actual = Digest::of(digest.algorithm(), &data);
        if &actual != digest {
            return Err(Error::DigestMismatch {
                what: format!("stored blob {}", self.blob_path(digest).display()),
                expected: digest.clone(),
                actual,
            });
        }
        Ok(data)
    }

    /// Serialises and stores an image manifest.
    pub fn put_manifest(&self, manifest: &ImageManifest) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(manifest).map_err(json_err("image manifest"))?;
        self.put_bytes(MediaType::ImageManifest, &bytes)
    }

    /// Serialises and stores an image configuration.
    pub fn put_config(&self, config: &ImageConfiguration) -> Result<Descriptor> {
        let bytes = serde_json::to_vec(config).map_err(json_err("image configuration"))?;
        self.put_bytes(MediaType::ImageConfig, &bytes)
    }

    /// Reads and parses a manifest; also returns its raw bytes (oci-spec
    /// drops unknown fields, so re-serialising would change the digest).
    pub fn manifest(&self, digest: &Digest) -> Result<(ImageManifest, Vec<u8>)> {
        let raw = self.read_blob(digest)?;
        let m = serde_json::from_slice(&raw).map_err(json_err(format!("manifest {digest}")))?;
        Ok((m, raw))
    }

    /// Reads and parses an image configuration, with its raw bytes.
    pub fn config(&self, digest: &Digest) -> Result<(ImageConfiguration, Vec<u8>)> {
        let raw = self.read_blob(digest)?;
        let c = serde_json::from_slice(&raw).map_err(json_err(format!("config {digest}")))?;
        Ok((c, raw))
    }

    // ---- index.json ---------------------------------------------------------

    fn read_index(&self) -> Result<Value> {
        let path = self.root.join("index.json");
        let data = fs::read(&path).map_err(io_err("read", &path))?;
        let v: Value = serde_json::from_slice(&data).map_err(json_err("index.json"))?;
        if !v.get("manifests").is_some_and(Value::is_array) && v.get("manifests").is_some() {
            return Err(Error::InvalidLayout {
                path,
                reason: "index.json manifests is not an array".into(),
            });
        }
        Ok(v)
    }

    fn write_index(&self, index: &Value) -> Result<()> {
        let bytes = serde_json::to_vec(index).map_err(json_err("index.json"))?;
        self.write_atomic(&self.root.join("index.json"), &bytes)
    }

    /// Read-modify-write of index.json's `manifests` under the lock.
    fn update_index<T>(&self, f: impl FnOnce(&mut Vec<Value>) -> Result<T>) -> Result<T> {
        let _lock = self.lock()?;
        let mut index = self.read_index()?;
        let mut manifests = match index.get_mut("manifests").map(Value::take) {
            Some(Value::Array(a)) => a,
            _ => Vec::new(),
        };
        let out = f(&mut manifests)?;
        if let Some(obj) = index.as_object_mut() {
            obj.insert("manifests".into(), Value::Array(manifests));
        }
        self.write_index(&index)?;
        Ok(out)
    }

    fn entries(&self) -> Result<Vec<Value>> {
        let index = self.read_index()?;
        Ok(match index.get("manifests") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        })
    }

    /// Points tag `name` at the image `manifest` (a manifest or index
    /// descriptor, normally from [`put_manifest`](Self::put_manifest)). The
    /// image that held the tag before stays in the store as a dangling
    /// image unless another tag still names it.
    pub fn tag(&self, name: &str, manifest: &Descriptor) -> Result<()> {
        validate_tag(name)?;
        let digest = Digest::from_oci(manifest.digest())?;
        if !self.has_blob(&digest) {
            return Err(Error::BlobNotFound { digest });
        }
        let mut desc = serde_json::to_value(manifest).map_err(json_err("descriptor"))?;
        self.update_index(|entries| {
            let mut displaced = None;
            entries.retain(|e| {
                if entry_name(e) == Some(name) {
                    displaced = Some(e.clone());
                    false
                } else {
                    // An untagged entry for the same image is superseded by
                    // the tagged one.
                    !(entry_name(e).is_none() && entry_digest(e) == Some(&digest.to_string()))
                }
            });
            if let Some(mut old) = displaced {
                let old_digest = entry_digest(&old).map(str::to_owned);
                let still_named = entries
                    .iter()
                    .any(|e| entry_digest(e).map(str::to_owned) == old_digest);
                if old_digest.as_deref() != Some(&digest.to_string()) && !still_named {
                    remove_ref_name(&mut old);
                    entries.push(old);
                }
            }
            set_ref_name(&mut desc, name);
            entries.push(desc);
            Ok(())
        })
    }

    /// Records an image in `index.json` without a tag (so garbage
    /// collection keeps it), unless it is already there.
    pub fn add_untagged(&self, manifest: &Descriptor) -> Result<()> {
        let digest = Digest::from_oci(manifest.digest())?;
        if !self.has_blob(&digest) {
            return Err(Error::BlobNotFound { digest });
        }
        let mut desc = serde_json::to_value(manifest).map_err(json_err("descriptor"))?;
        remove_ref_name(&mut desc);
        self.update_index(|entries| {
            if !entries
                .iter()
                .any(|e| entry_digest(e) == Some(&digest.to_string()))
            {
                entries.push(desc);
            }
            Ok(())
        })
    }

    /// Lists every image in `index.json`, tagged and dangling, in index order.
    pub fn list(&self) -> Result<Vec<ImageEntry>> {
        self.entries()?
            .into_iter()
            .map(|e| {
                let name = entry_name(&e).map(str::to_owned);
                let descriptor: Descriptor =
                    serde_json::from_value(e).map_err(json_err("index.json entry"))?;
                Ok(ImageEntry { descriptor, name })
            })
            .collect()
    }

    /// Resolves a tag, or a digest (`sha256:...`) of an image in the index
    /// or of any stored manifest, to its descriptor.
    pub fn resolve(&self, reference: &str) -> Result<Descriptor> {
        let list = self.list()?;
        if let Some(e) = list.iter().find(|e| e.name.as_deref() == Some(reference)) {
            return Ok(e.descriptor.clone());
        }
        if let Ok(d) = Digest::parse(reference) {
            if let Some(e) = list
                .iter()
                .find(|e| e.descriptor.digest().as_ref() == reference)
            {
                let mut desc = e.descriptor.clone();
                desc.set_annotations(None);
                return Ok(desc);
            }
            if self.has_blob(&d) {
                let raw = self.read_blob(&d)?;
                let v: Value =
                    serde_json::from_slice(&raw).map_err(json_err(format!("blob {d}")))?;
                let mt = v
                    .get("mediaType")
                    .and_then(Value::as_str)
                    .map_or(MediaType::ImageManifest, MediaType::from);
                return Ok(Descriptor::new(mt, raw.len() as u64, d.to_oci()));
            }
        }
        Err(Error::ImageNotFound {
            reference: reference.to_owned(),
        })
    }

    /// Removes tag `name`; the image stays as a dangling image unless
    /// another tag names it. Returns the descriptor the tag pointed at.
    pub fn untag(&self, name: &str) -> Result<Descriptor> {
        self.update_index(|entries| {
            let pos = entries
                .iter()
                .position(|e| entry_name(e) == Some(name))
                .ok_or_else(|| Error::ImageNotFound {
                    reference: name.to_owned(),
                })?;
            let mut old = entries.remove(pos);
            let d = entry_digest(&old).map(str::to_owned);
            let desc: Descriptor =
                serde_json::from_value(old.clone()).map_err(json_err("index.json entry"))?;
            if !entries
                .iter()
                .any(|e| entry_digest(e).map(str::to_owned) == d)
            {
                remove_ref_name(&mut old);
                entries.push(old);
            }
            Ok(desc)
        })
    }

    /// Removes an image (by tag or digest) from `index.json` with all its
    /// tags. Its blobs go at the next [`gc`](Self::gc).
    pub fn delete(&self, reference: &str) -> Result<Vec<ImageEntry>> {
        let target = self.resolve(reference)?;
        let digest = target.digest().to_string();
        self.update_index(|entries| {
            let mut removed = Vec::new();
            let mut keep = Vec::new();
            for e in entries.drain(..) {
                if entry_digest(&e) == Some(&digest) {
                    let name = entry_name(&e).map(str::to_owned);
                    let descriptor =
                        serde_json::from_value(e).map_err(json_err("index.json entry"))?;
                    removed.push(ImageEntry { descriptor, name });
                } else {
                    keep.push(e);
                }
            }
            *entries = keep;
            Ok(removed)
        })
    }

    /// Removes all dangling images from `index.json`.
    pub fn prune_dangling(&self) -> Result<Vec<Descriptor>> {
        self.update_index(|entries| {
            let mut removed = Vec::new();
            let mut keep = Vec::new();
            for e in entries.drain(..) {
                if entry_name(&e).is_none() {
                    removed.push(serde_json::from_value(e).map_err(json_err("index.json entry"))?);
                } else {
                    keep.push(e);
                }
            }
            *entries = keep;
            Ok(removed)
        })
    }

    /// Every blob reachable from `index.json` with the sizes descriptors
    /// claim for it. Manifests and indexes are followed (config, layers,
    /// manifests, subject); blobs that are referenced but missing are
    /// included so callers can report them.
    pub fn reachable(&self) -> Result<BTreeMap<Digest, u64>> {
        let mut seen = BTreeMap::new();
        let mut queue: Vec<Value> = self.entries()?;
        while let Some(desc) = queue.pop() {
            let Some(d) = entry_digest(&desc).and_then(|s| Digest::parse(s).ok()) else {
                continue;
            };
            let size = desc.get("size").and_then(Value::as_u64).unwrap_or(0);
            if seen.insert(d.clone(), size).is_some() {
                continue;
            }
            let mt = desc.get("mediaType").and_then(Value::as_str).unwrap_or("");
            let is_container = matches!(
                mt,
                "application/vnd.oci.image.manifest.v1+json"
                    | "application/vnd.oci.image.index.v1+json"
                    | "application/vnd.docker.distribution.manifest.v2+json"
                    | "application/vnd.docker.distribution.manifest.list.v2+json"
            );
            if !is_container || !self.has_blob(&d) {
                continue;
            }
            let raw = self.read_blob(&d)?;
            let Ok(v) = serde_json::from_slice::<Value>(&raw) else {
                continue;
            };
            for key in ["config", "subject"] {
                if let Some(c) = v.get(key) {
                    queue.push(c.clone());
                }
            }
            for key in ["layers", "manifests", "blobs"] {
                if let Some(Value::Array(a)) = v.get(key) {
                    queue.extend(a.iter().cloned());
                }
            }
        }
        Ok(seen)
    }

    /// Every blob file present, by digest.
    pub fn blobs(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for alg in [Algorithm::Sha256, Algorithm::Sha512] {
            let dir = self.root.join("blobs").join(alg.as_str());
            let rd = match fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("read directory", &dir)(e)),
            };
            for ent in rd {
                let ent = ent.map_err(io_err("read directory", &dir))?;
                if let Some(name) = ent.file_name().to_str()
                    && let Ok(d) = Digest::parse(&format!("{alg}:{name}"))
                {
                    out.push(d);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Removes blobs that no image in `index.json` reaches (and stale
    /// temporary files), holding the store lock throughout.
    pub fn gc(&self, options: &GcOptions) -> Result<GcReport> {
        let mut report = GcReport::default();
        if options.prune_dangling {
            report.pruned_images = self.prune_dangling()?.len();
        }
        let _lock = self.lock()?;
        let reachable = self.reachable()?;
        let now = SystemTime::now();
        let young = |p: &Path| -> bool {
            fs::symlink_metadata(p)
                .and_then(|m| m.modified())
                .map(|t| now.duration_since(t).unwrap_or_default() < options.grace)
                .unwrap_or(false)
        };
        for d in self.blobs()? {
            if reachable.contains_key(&d) {
                continue;
            }
            let path = self.blob_path(&d);
            if young(&path) {
                report.kept_young += 1;
                continue;
            }
            let len = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            fs::remove_file(&path).map_err(io_err("remove blob", &path))?;
            report.freed_bytes += len;
            report.removed.push(d);
        }
        let tmp = self.root.join(TMP_DIR);
        if let Ok(rd) = fs::read_dir(&tmp) {
            for ent in rd.flatten() {
                if !young(&ent.path()) {
                    let _ = fs::remove_file(ent.path());
                }
            }
        }
        Ok(report)
    }

    /// Removes those of `candidates` that no image in `index.json` reaches
    /// any more (the blobs of an image just deleted, say), holding the
    /// store lock so that a concurrent tag cannot revive one halfway.
    /// Unlike [`gc`](Self::gc) there is no grace period: call it only with
    /// blobs of images the caller removed. Returns what was removed, with
    /// the bytes each freed, in `candidates` order.
    pub fn remove_unreachable(&self, candidates: &[Digest]) -> Result<Vec<(Digest, u64)>> {
        let _lock = self.lock()?;
        let reachable = self.reachable()?;
        let mut removed = Vec::new();
        let mut seen = BTreeSet::new();
        for d in candidates {
            if reachable.contains_key(d) || !seen.insert(d.clone()) {
                continue;
            }
            let path = self.blob_path(d);
            let len = match fs::metadata(&path) {
                Ok(m) => m.len(),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err("stat blob", &path)(e)),
            };
            fs::remove_file(&path).map_err(io_err("remove blob", &path))?;
            removed.push((d.clone(), len));
        }
        Ok(removed)
    }

    /// Checks every reachable blob: present, hashing to its name, of the
    /// size its descriptors claim.
    pub fn verify(&self) -> Result<VerifyReport> {
        let reachable = self.reachable()?;
        let mut report = VerifyReport::default();
        for (d, size) in &reachable {
            let path = self.blob_path(d);
            let mut f = match File::open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    report.missing.push(d.clone());
                    continue;
                }
                Err(e) => return Err(io_err("open blob", &path)(e)),
            };
            let mut w = DigestWriter::new(io::sink(), d.algorithm());
            io::copy(&mut f, &mut w).map_err(io_err("read blob", &path))?;
            let (_, actual, len) = w.finish();
            if &actual != d {
                report.corrupt.push((d.clone(), actual));
            } else if len != *size {
                report.wrong_size.push((d.clone(), *size, len));
            } else {
                report.checked += 1;
            }
        }
        let present: BTreeSet<Digest> = self.blobs()?.into_iter().collect();
        report.unreachable = present
            .iter()
            .filter(|d| !reachable.contains_key(*d))
            .count();
        Ok(report)
    }
}

fn set_ref_name(desc: &mut Value, name: &str) {
    if let Some(obj) = desc.as_object_mut() {
        let ann = obj
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if !ann.is_object() {
            *ann = Value::Object(Default::default());
        }
        if let Some(a) = ann.as_object_mut() {
            a.insert(ANNOTATION_REF_NAME.into(), Value::String(name.into()));
        }
    }
}

fn remove_ref_name(desc: &mut Value) {
    if let Some(obj) = desc.as_object_mut() {
        let empty = if let Some(Value::Object(a)) = obj.get_mut("annotations") {
            a.remove(ANNOTATION_REF_NAME);
            a.is_empty()
        } else {
            false
        };
        if empty {
            obj.remove("annotations");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_names_are_validated() {
        for ok in [
            "latest",
            "app:1.0",
            "docker.io/library/busybox:latest",
            "a_b-c.d",
        ] {
            assert!(validate_tag(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a b", "a\nb", "ä"] {
            assert!(validate_tag(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ref_name_annotation_edits() {
        let mut v = serde_json::json!({"digest": "x", "annotations": {"a": "b"}});
        set_ref_name(&mut v, "t");
        assert_eq!(entry_name(&v), Some("t"));
        remove_ref_name(&mut v);
        assert_eq!(entry_name(&v), None);
        assert_eq!(v["annotations"]["a"], "b");
        let mut w = serde_json::json!({"digest": "x"});
        set_ref_name(&mut w, "t");
        remove_ref_name(&mut w);
        assert!(w.get("annotations").is_none());
    }
}
