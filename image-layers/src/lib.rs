//! OCI image layers and the on-disk image store (skeleton; lands with issue 3).
//!
//! Will provide: streaming digests, change sets between two trees and from an
//! overlayfs upper directory, a deterministic layer tar writer with gzip and
//! zstd, a layer applier that is safe against hostile archives, and an OCI
//! image layout store with atomic writes, locking and garbage collection.

pub use oci_spec;
