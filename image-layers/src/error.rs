//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

use crate::digest::Digest;

/// Everything that can go wrong in this crate.
///
/// Each variant carries the context a user needs to act on it (the path, the
/// digest, the step); the underlying cause, when there is one, is the
/// [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file system operation failed. `op` names the step ("create blob
    /// temp file", "mkdirat"), `path` the file it was applied to; the errno
    /// is in the source.
    #[error("{op} {}", path.display())]
    Io {
        /// The step that failed.
        op: &'static str,
        /// The path the step was applied to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// A digest string is malformed: unknown algorithm, wrong length, or
    /// characters other than lowercase hex.
    #[error("invalid digest {input:?}: {reason}")]
    InvalidDigest {
        /// The text that was parsed.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Content did not hash to the digest it was claimed to have. Nothing
    /// was stored under the claimed digest.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was being verified (a blob, a layer, a file in an archive).
        what: String,
        /// The digest the content was supposed to have.
        expected: Digest,
        /// The digest the content actually has.
        actual: Digest,
    },

    /// Content did not have the size it was claimed to have.
    #[error("size mismatch for {what}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was being verified.
        what: String,
        /// The claimed size.
        expected: u64,
        /// The actual size.
        actual: u64,
    },

    /// The store holds no blob with this digest.
    #[error("blob {digest} not found in the store")]
    BlobNotFound {
        /// The missing blob.
        digest: Digest,
    },

    /// No image in the store has this tag or digest.
    #[error("no image {reference:?} in the store")]
    ImageNotFound {
        /// The tag or digest that was looked up.
        reference: String,
    },

    /// A tag name is not acceptable (empty, too long, or with characters
    /// outside `[A-Za-z0-9._:/@-]`).
    #[error("invalid tag {name:?}: {reason}")]
    InvalidTag {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// A JSON document (index.json, a manifest, a config, a docker archive's
    /// manifest.json) could not be parsed or written.
    #[error("JSON of {what}")]
    Json {
        /// Which document.
        what: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// The directory is not a usable OCI image layout.
    #[error("{}: not an OCI image layout: {reason}", path.display())]
    InvalidLayout {
        /// The layout directory (or the file in it that is wrong).
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A layer archive could not be read (truncated, corrupt tar or
    /// compression stream).
    #[error("read layer {layer}{}", entry.as_ref().map(|e| format!(" at entry {e:?}")).unwrap_or_default())]
    LayerRead {
        /// The layer digest when known, else a description of the source.
        layer: String,
        /// The entry being read, if the failure is inside one.
        entry: Option<String>,
        /// The decoder's error.
        #[source]
        source: io::Error,
    },

    /// A layer entry was refused because applying it would be unsafe (a
    /// path that leaves the root, a hardlink to outside, an oversized
    /// entry, a device node when the policy forbids them).
    #[error("layer {layer}: unsafe entry {entry:?}: {reason}")]
    UnsafeEntry {
        /// The layer digest when known, else a description of the source.
        layer: String,
        /// The entry's path as written in the archive.
        entry: String,
        /// Why it was refused.
        reason: String,
    },

    /// Applying one layer entry failed at the file system level.
    #[error("layer {layer}: apply entry {entry:?}: {op}")]
    Apply {
        /// The layer digest when known, else a description of the source.
        layer: String,
        /// The entry's path as written in the archive.
        entry: String,
        /// The step that failed ("mknodat", "lsetxattr security.capability").
        op: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },

    /// An overlayfs upper directory uses a feature that cannot be expressed
    /// as an OCI layer (redirect_dir renames, metacopy-only files).
    #[error("{}: overlayfs {feature} is not supported in layers; mount the overlay with {hint}", path.display())]
    UnsupportedOverlay {
        /// The file carrying the feature.
        path: PathBuf,
        /// `redirect_dir` or `metacopy`.
        feature: &'static str,
        /// The mount option that avoids it.
        hint: &'static str,
    },

    /// A file type that cannot go into a layer (a socket).
    #[error("{}: {kind} cannot be stored in a layer", path.display())]
    UnsupportedFileType {
        /// The file.
        path: PathBuf,
        /// Its type.
        kind: &'static str,
    },

    /// The caller cancelled the operation through its [`crate::Control`].
    /// Nothing was stored under a final blob name; a partly applied target
    /// directory should be discarded.
    #[error("{op} cancelled")]
    Cancelled {
        /// The operation ("write layer", "apply layer").
        op: &'static str,
    },

    /// A docker save archive or rootfs import is malformed.
    #[error("archive {what}: {reason}")]
    Archive {
        /// Which archive or which member of it.
        what: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for building [`Error::Io`] in `map_err`.
pub(crate) fn io_err(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
