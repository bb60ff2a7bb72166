//! Test support shared by the kiln crates' test suites. Not published.
//!
//! Everything here sets up the *real* thing (a registry process, a busybox
//! root filesystem from Debian's `busybox-static`) and fails with a message
//! naming the package to install when a part is missing; nothing skips.
//!
//! - [`registry`]: start Debian's `docker-registry` on a free loopback port
//!   (plain http, https with a CA made for the test, Basic and Bearer auth).
//! - [`rootfs`]: busybox root filesystems for containers and base images.
//! - [`tar`]: builders for ordinary and hostile layer archives.

pub mod cli;
pub mod registry;
pub mod rootfs;
pub mod tar;
