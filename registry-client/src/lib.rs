//! An async client for the OCI distribution protocol: pull and push images
//! and artifacts from any OCI registry (the distribution reference server,
//! Docker Hub, GHCR, Harbor, cloud registries), checking everything the
//! registry says.
//!
//! # What it does
//! - [`Reference`]: image references parsed and normalised exactly as Docker
//!   does (`busybox` → `docker.io/library/busybox:latest`), with the short
//!   "familiar" form for display.
//! - [`Client`]: one connection pool, token cache and [`ClientConfig`]
//!   (mirrors, insecure registries, CA certificates, retries, timeouts,
//!   user agent). Auth is anonymous, Basic or Bearer (from the registry's
//!   `WWW-Authenticate` challenge), with [`Credentials`] from
//!   [`Client::set_credentials`] or Docker's `config.json`
//!   ([`DockerConfig`], including `docker-credential-*` helpers).
//! - Pull: [`Client::pull_manifest`] returns a [`PulledManifest`] (raw
//!   bytes, media type, verified digest, parsed [`Manifest`]);
//!   [`Client::pull_image`] selects a [`Platform`] from an index and reads
//!   the config; [`Client::pull_blob`] streams a blob into any
//!   `AsyncWrite`, verifying size and digest and resuming with `Range`;
//!   [`Client::pull_blob_to_file`] only ever leaves verified files;
//!   [`Client::pull_image_to_layout`] writes an OCI image layout.
//! - Push: [`Client::push_blob`] (HEAD check, cross-repository mount,
//!   monolithic or chunked resumable upload), [`Client::push_manifest`],
//!   and [`Client::push_image`], reading blobs through the [`BlobProvider`]
//!   seam ([`MemoryBlobs`], [`OciLayoutBlobs`]).
//! - Tags ([`Client::list_tags`], paginated), [`Client::catalog`],
//!   [`Client::search`] (catalog, or Docker Hub's search endpoint),
//!   [`Client::delete_manifest`], [`Client::referrers`] (with the tag-schema
//!   fallback), [`Client::push_artifact`] / [`Client::pull_artifact`].
//! - Pure parsers: [`parse_www_authenticate`], [`parse_link_next`],
//!   [`Manifest::parse`], [`select_platform`].
//!
//! # What it does not do
//! It does not unpack layers or keep an image store (that is
//! `kiln-image-layers`), does not build images, and does not verify
//! signatures. It never talks to a registry that a reference did not name
//! (or a configured mirror of it).
//!
//! # TLS
//! HTTPS is rustls with the `ring` provider, through reqwest: it builds from
//! crates.io alone with a C compiler (no OpenSSL headers, no cmake/nasm as
//! aws-lc-rs needs), trusting the system roots plus
//! [`ClientConfig::ca_certificates_pem`]. Loopback and insecure registries
//! try https first and fall back to plain http, as Docker does.
//!
//! # Data flow
//! `Reference` → `Client::pull_image` (manifest → platform → config) →
//! `Client::pull_blob` per layer into the caller's store; for push, the
//! caller's store implements `BlobProvider` and `Client::push_image` sends
//! blobs, then the manifest.
//!
//! # Example
//! ```no_run
//! use kiln_registry_client::{Client, ClientConfig, Platform, Reference, no_progress};
//! # async fn run() -> Result<(), kiln_registry_client::Error> {
//! let client = Client::new(ClientConfig::default())?;
//! let reference = Reference::parse("localhost:5000/busybox")?;
//! let image = client.pull_image(&reference, &Platform::host()).await?;
//! for layer in image.image.layers() {
//!     let mut sink = tokio::io::sink();
//!     client.pull_blob(&reference, layer.digest(), Some(layer.size()), &mut sink, &no_progress()).await?;
//! }
//! println!("{} is {}", reference.familiar(), image.manifest.digest);
//! # Ok(())
//! # }
//! ```

// Unit tests may unwrap: a panic is the failure report. The lib target
// (built without cfg(test)) is still linted.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod api;
mod blob;
mod challenge;
mod client;
mod credentials;
mod error;
mod layout;
mod manifest;
mod pull;
mod push;
mod reference;

pub use oci_spec;

pub use api::{Artifact, DOCKER_HUB_SEARCH_URL, EMPTY_JSON, SearchResult};
pub use blob::{
    BlobProvider, BoxFuture, BoxRead, MemoryBlobs, NoProgress, OciLayoutBlobs, Progress,
    ProgressSink, no_progress, sha256_digest,
};
pub use challenge::{Challenge, parse_link_next, parse_www_authenticate};
pub use client::{Client, ClientConfig};
pub use credentials::{
    Credentials, DOCKER_HUB_AUTH_KEY, DockerConfig, Secret, configured_registries,
};
pub use error::{Error, ReferenceErrorKind};
pub use layout::{REF_NAME_ANNOTATION, add_to_index, find_in_index};
pub use manifest::{
    MANIFEST_ACCEPT, MAX_MANIFEST_SIZE, Manifest, Platform, descriptor_platform, media_types,
    select_platform,
};
pub use pull::{PulledImage, PulledManifest};
pub use push::{BlobPush, PushOptions};
pub use reference::{
    DEFAULT_TAG, DOCKER_HUB, DOCKER_HUB_API_HOST, NAME_TOTAL_LENGTH_MAX, Reference, parse_digest,
};
