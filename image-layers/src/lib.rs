//! OCI image layers and an on-disk OCI image store.
//!
//! This crate turns file system changes into OCI layers, applies layers
//! safely, and keeps images in an OCI image layout directory that skopeo,
//! umoci and containerd read. It is synchronous and `std::io` based.
//!
//! What it does **not** do: talk to registries (see `kiln-registry-client`),
//! mount overlays or run containers (see `kiln-runtime-linux`), or decide
//! what goes into an image config (the build engine does).
//!
//! # Principal types and data flow
//!
//! - [`Digest`] — a validated `sha256:`/`sha512:` content digest;
//!   [`DigestReader`]/[`DigestWriter`] hash whatever streams through them.
//! - [`ChangeSet`] — what changed between two trees
//!   ([`ChangeSet::diff_trees`]), in an overlayfs upper directory
//!   ([`ChangeSet::from_overlay_upper`]) or a tree of pure additions
//!   ([`ChangeSet::added_tree`]).
//! - [`write_layer`] — change set → deterministic layer tar, compressed
//!   ([`Compression`]), with blob digest and diffID from one pass
//!   ([`LayerInfo`]); [`Store::put_layer`] streams it straight into the store.
//! - [`apply_layer`] — layer blob → directory, refusing anything that would
//!   reach outside the target ([`ApplyOptions`], [`Whiteouts`]).
//! - [`Store`] — the OCI image layout: blobs, manifests, configs, tags,
//!   garbage collection, `verify`; [`archive`] imports and exports
//!   `docker save` archives and rootfs tarballs.
//!
//! ```text
//!  before/after trees ─┐
//!  overlay upper dir ──┴─> ChangeSet ─> write_layer ─> (gzip|zstd) ─> Store blob + diffID
//!                                                                        │
//!  target dir <─ apply_layer <─ Store::open_blob <───────────────────────┘
//! ```
//!
//! # Guarantees worth knowing
//!
//! - **Hostile layers**: [`apply_layer`] resolves every parent directory
//!   with `openat2(RESOLVE_IN_ROOT)` and creates the final component with
//!   `*at` calls that never follow a symlink, so no entry (`..`, absolute
//!   paths, symlinks planted earlier in the same layer, hardlinks) can
//!   create or modify anything outside the target; entries with `..` are
//!   refused, absolute paths are taken relative to the target, oversized
//!   entries are refused ([`ApplyOptions::max_entry_size`]).
//! - **Verified content**: every blob the [`Store`] writes is hashed while
//!   written and renamed into place only afterwards (and only if it matches
//!   a claimed digest); [`Store::apply_layer`] re-checks the digest of the
//!   blob it applies; [`ApplyReport::diff_id`] is the digest of the tar
//!   actually applied.
//! - **Determinism**: the same [`ChangeSet`] and [`WriteOptions`] give the
//!   same bytes (sorted entries, no atime/ctime/user names, fixed gzip
//!   header; gzip and zstd output is independent of the thread count for
//!   any count above one); [`WriteOptions::source_date_epoch`] clamps times.
//! - **Concurrency**: `index.json` changes and [`Store::gc`] take an
//!   exclusive `flock(2)`; blob writes need no lock; `gc` spares
//!   unreferenced blobs younger than [`GcOptions::grace`] so a concurrent
//!   build's not-yet-tagged layers survive.
//!
//! # Example
//!
//! ```
//! use kiln_image_layers::{ChangeSet, Store, WriteOptions, apply_layer, ApplyOptions};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let files = tmp.path().join("files");
//! std::fs::create_dir_all(files.join("etc"))?;
//! std::fs::write(files.join("etc/motd"), "hello\n")?;
//!
//! let store = Store::open(tmp.path().join("store"))?;
//! let layer = store.put_layer(&ChangeSet::added_tree(&files)?, &WriteOptions::default())?;
//!
//! let target = tmp.path().join("rootfs");
//! std::fs::create_dir(&target)?;
//! apply_layer(store.open_blob(&layer.digest()?)?, &target, &ApplyOptions::default())?;
//! assert_eq!(std::fs::read_to_string(target.join("etc/motd"))?, "hello\n");
//! # Ok(()) }
//! ```

pub use oci_spec;

mod apply;
pub mod archive;
mod changes;
mod compression;
mod control;
mod digest;
mod error;
mod fsutil;
mod store;
mod write;

pub use apply::{
    ApplyOptions, ApplyReport, DevicePolicy, OverlayXattr, Ownership, Whiteouts, apply_layer,
};
pub use changes::{Change, ChangeKind, ChangeSet};
pub use compression::Compression;
pub use control::{Control, Progress};
pub use digest::{Algorithm, Digest, DigestReader, DigestWriter, Hasher, chain_id};
pub use error::{Error, Result};
pub use store::{BlobWriter, GcOptions, GcReport, ImageEntry, Store, StoreLock, VerifyReport};
pub use write::{
    Layer, LayerInfo, SourceEntry, SourceKind, WriteOptions, write_entries, write_layer,
};
