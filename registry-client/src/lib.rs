//! OCI distribution protocol client (skeleton; lands with issue 4).
//!
//! Will provide: Docker-compatible reference parsing, anonymous/Basic/Bearer
//! auth with `~/.docker/config.json`, digest-verified streaming pull, push with
//! mounts and chunked uploads, tags, catalog, referrers, mirrors and retries.

pub use oci_spec;
