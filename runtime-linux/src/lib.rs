//! Run a process in a Linux container from an OCI runtime spec (skeleton;
//! lands with issue 5).
//!
//! Will provide: namespaces (user namespaces for rootless), overlayfs rootfs
//! with pivot_root, the standard mounts, capabilities, seccomp, cgroups v1 and
//! v2, a pty, streamed output, timeouts and leak-free cleanup, in-process.

pub use oci_spec;
