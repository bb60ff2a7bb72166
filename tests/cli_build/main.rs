#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! End-to-end tests of `kiln build` and `kiln run`: the real binary, real
//! containers (namespaces, overlayfs; run as root), a busybox base image
//! made from Debian's busybox-static with `kiln build` itself, and
//! assertions on the image config, the layers' contents and what
//! containers print.

mod build;
mod run;
mod support;
