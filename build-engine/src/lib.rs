//! The daemonless Dockerfile builder: composes the kiln leaf crates into
//! `docker build` and `docker run`, as a library.
//!
//! # What it does
//!
//! [`Builder::build`] takes a [`BuildRequest`] (context directory,
//! Dockerfile, tags, [`BuildOptions`]) and produces an OCI image in the
//! store under [`Root`]: the Dockerfile is parsed by
//! `kiln-dockerfile-parser`, planned into stages (`--target`, unused
//! stages pruned, independent stages in parallel), and each step is looked
//! up in a content-addressed cache ([`CacheInputs`], [`CacheIndex`]) before
//! it runs. RUN steps execute through an [`Executor`] ([`LinuxExecutor`]
//! on `kiln-runtime-linux`) on an overlay of layer snapshots keyed by chain
//! id; the overlay's upper dir becomes the layer. COPY writes its layer
//! straight from the context files or the source stage's snapshots, with
//! the owner and mode it assigns (ADD, heredocs and URLs are staged first)
//! (`kiln-image-layers`). The image config
//! follows Docker's rules ([`ImageConfig`]). Progress is a stream of typed
//! [`Event`]s on a tokio channel. [`run_image`] runs a container from an
//! image with Docker's ENTRYPOINT/CMD rules; [`containers`] keeps containers
//! (records, logs, detached runs through a supervisor process) and does what
//! `docker ps/start/stop/logs/commit/exec/cp/export` do with them.
//! [`images`] holds the local image commands (list, tag, rmi, history,
//! inspect, save, load, import, prune) as functions returning typed data.
//!
//! Registries: [`pull`] downloads an image with its layers in parallel,
//! verified while they stream and unpacked into snapshots as they arrive,
//! so it is ready to run; [`push`] uploads one (skipping blobs the
//! registry has, mounting blobs other repositories of it hold, as recorded
//! per blob by [`blob_sources`]); [`login`], [`logout`] and [`search`]
//! share Docker's `config.json`. Every registry client comes from
//! [`registry_client`] ([`Root::registry_client`]).
//!
//! # What it does not do
//!
//! It never prints (the CLI renders events). It builds for the host
//! platform only. Not implemented yet (each is an error naming it, never
//! silently ignored): `ADD` from git, `RUN --mount=type=ssh`,
//! `RUN --security`, `--device`, `--platform` other than the host's.
//! The builder itself does not push (the CLI's `build --push` calls
//! [`push`] afterwards); the cache does go to registries ([`export_cache`], [`import_cache`]). Base images missing
//! from the store are pulled with `kiln-registry-client` ([`pull_image`]);
//! results can also be written as a directory, an OCI archive or a docker
//! archive ([`Output`]). Garbage collection of images, snapshots, the
//! build cache and scratch space is in [`gc`].
//!
//! # Data flow
//!
//! ```text
//! BuildRequest ─▶ parse ─▶ Plan (stages, deps, target)
//!                              │ per stage (parallel when independent)
//!                              ▼
//!          step ─▶ CacheInputs::key ─▶ CacheIndex hit? ──yes──▶ reuse layer
//!                                         │ no
//!                                         ▼
//!               RUN: Executor on overlay(snapshots) ─▶ upper dir ─▶ layer
//!               COPY/ADD: context / snapshot files ──────────────▶ layer
//!                                         ▼
//!                      ImageConfig + manifest ─▶ Store (tagged)
//! ```
//!
//! # Example
//!
//! ```no_run
//! use kiln_build_engine::{BuildRequest, Builder, Root};
//! # async fn demo() -> Result<(), kiln_build_engine::Error> {
//! let root = Root::open_configured()?;
//! let result = Builder::new(root).build(BuildRequest::new("./app").tag("app:dev")).await?;
//! println!("built {}", result.manifest_digest);
//! # Ok(()) }
//! ```

mod builder;
mod cache;
mod config;
pub mod containers;
mod context;
mod copy;
mod dockerignore;
mod error;
mod exec;
mod fsutil;
pub mod gc;
mod image;
pub mod images;
mod output;
mod progress;
mod pull;
mod push;
mod registry;
mod remote_cache;
mod root;
mod run;
pub mod settings;
mod snapshot;

pub use builder::{
    BuildOptions, BuildRequest, BuildResult, Builder, DockerfileSource, HOST_ARCH, HOST_OS,
};
pub use cache::{CacheIndex, CacheInputs, CacheRecord, LayerRecord};
pub use config::{ConfigChange, ImageConfig, expand_ports, resolve_workdir};
pub use containers::{ContainerRecord, ContainerState};
pub use context::{BuildContext, ContextEntry, DigestCache, EntryKind, unpack_context_tar};
pub use dockerignore::DockerIgnore;
pub use error::{Cause, Error, Result};
pub use exec::{ExecJob, ExecMount, Executor, LinuxExecutor, NetworkMode};
pub use image::{ImageRef, LocalImage, resolve_local};
pub use kiln_registry_client::{Client as RegistryClient, SearchResult};
pub use output::Output;
pub use progress::{Event, EventKind, Progress, StepId, Stream};
pub use pull::{
    LayerStatus, PullEvent, PullOptions, PullProgress, PullResult, no_pull_progress, pull,
    pull_image,
};
pub use push::{
    PushEvent, PushProgress, PushResult, PushStatus, blob_sources, push, repository_tags,
};
pub use registry::{login, logout, registry_client, registry_name, search};
pub use remote_cache::{CACHE_CONFIG_MEDIA_TYPE, export_cache, import_cache};
pub use root::Root;
pub use run::{RunRequest, import_rootfs, run_image};
pub use settings::Settings;
pub use snapshot::{MergedView, Snapshots};

/// Forwards signals to, or resizes the terminal of, a running container.
pub use kiln_runtime_linux::Control;
pub use oci_spec;
