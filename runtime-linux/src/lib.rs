//! Run a process in a Linux container, in-process: `clone(2)` into new
//! namespaces and `execve(2)`, with no runtime binary, daemon or shim.
//!
//! Given an OCI runtime spec ([`oci_spec::runtime::Spec`]) and a root
//! filesystem, [`Container::run`] sets up what runc would (namespaces,
//! overlayfs or directory rootfs with `pivot_root`, `/proc`, `/sys`, `/dev`
//! with its nodes, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, the spec's bind
//! and tmpfs mounts, Docker's `/etc/hosts`, `/etc/hostname` and
//! `/etc/resolv.conf`, users and groups from the image, capabilities,
//! no_new_privs, a seccomp BPF filter, masked and read-only paths, rlimits,
//! cgroup v1/v2 limits, user namespaces for rootless use, a pty opened in
//! the container's own devpts for interactive use, an optional tini-like
//! init), streams the output to the caller, and returns how the process
//! ended. Nothing is left behind: mounts live in the container's mount
//! namespace, the container is killed with its pid namespace, and its
//! cgroup is removed, whatever the outcome.
//!
//! Errors from the container's set-up are sent by the child over a pipe
//! and name the step and errno, e.g. `container set-up: mount nosuchfs on
//! /bogus: No such device (os error 19)`.
//!
//! It does **not**: pull or unpack images (see `kiln-image-layers`), set up
//! networks beyond `none` (loopback only) and `host`, keep containers
//! running in the background (`run` blocks until the process ends; a
//! supervisor such as `kiln`'s monitor does that), run
//! OCI hooks, or apply AppArmor/SELinux labels. Seccomp
//! filters are compiled for x86_64 only. Resource limits cover memory
//! (+swap), CPU shares/quota and pids.
//!
//! # Principal types
//! - [`Container`]: spec + [`RootFs`] + [`RunOptions`]; [`Container::run`]
//!   takes a [`Stdio`] (sinks for stdout/stderr, optional stdin) and
//!   returns an [`ExitStatus`] (exit code, signal, OOM kill, timeout,
//!   cancellation).
//! - [`Control`]: cancel a run, forward signals or resize its terminal from
//!   another thread.
//! - [`docker_default_spec`]: a spec with Docker's defaults (capabilities,
//!   mounts, masked paths, [`docker_default_seccomp`]); [`set_network`],
//!   [`make_rootless`] adjust it.
//! - [`exec_in`]: run another process in a running container's
//!   namespaces and cgroups (`docker exec`).
//! - [`Bundle`]: write or load an OCI bundle, so the same spec runs under
//!   `runc` or `crun`.
//! - [`Error`]: names the failing step (which mount, namespace or system
//!   call) and carries the errno.
//!
//! Data flow: the parent resolves the user in the image's `/etc/passwd`,
//! compiles the spec into a plan of system calls (C strings, flags, a BPF
//! program), creates the cgroup, clones the child into the namespaces; the
//! child runs the plan without allocating (the parent may be
//! multi-threaded) and executes the process; the parent streams its output
//! until it exits, then reaps it and removes the cgroup.
//!
//! # Example
//! ```no_run
//! use kiln_runtime_linux::{docker_default_spec, Container, RootFs, RunOptions, Stdio};
//!
//! # fn main() -> Result<(), kiln_runtime_linux::Error> {
//! let spec = docker_default_spec(vec!["/bin/echo".into(), "hello".into()]);
//! let rootfs = RootFs::Overlay {
//!     lowers: vec!["/var/lib/kiln/snapshots/base".into()],
//!     upper: "/var/lib/kiln/snapshots/step1/upper".into(),
//!     work: "/var/lib/kiln/snapshots/step1/work".into(),
//! };
//! let (mut out, mut err) = (Vec::new(), Vec::new());
//! let status = Container::new(spec, rootfs, RunOptions::new())
//!     .run(Stdio::new(&mut out, &mut err))?;
//! assert!(status.success());
//! assert_eq!(out, b"hello\n");
//! # Ok(())
//! # }
//! ```

mod bundle;
mod cgroup;
mod child;
mod container;
mod error;
mod exec;
mod seccomp;
mod spec;
mod user;

pub use bundle::Bundle;
pub use container::{Container, Control, ExitStatus, RootFs, RunOptions, Stdio};
pub use error::{Error, Result};
pub use exec::exec_in;
pub use oci_spec;
pub use seccomp::{docker_default_seccomp, syscall_number};
pub use spec::{
    DEFAULT_PATH, DOCKER_DEFAULT_CAPS, DOCKER_MASKED_PATHS, DOCKER_READONLY_PATHS, Network,
    capability_number, docker_default_mounts, docker_default_spec, make_rootless, set_network,
};
pub use user::{User, resolve_user};
