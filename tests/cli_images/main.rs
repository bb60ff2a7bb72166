#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! End-to-end tests of the local image commands (`kiln images`, `tag`,
//! `rmi`, `history`, `inspect`, `save`, `load`, `import`, `image prune`):
//! the real binary on a state directory holding a busybox image built by
//! `kiln build` (tests/cli_build/support.rs), each test on its own copy of
//! that store, asserting the printed columns and what the store holds, and
//! interop with skopeo's docker-archive and oci transports.

mod archive;
mod common;
mod history_inspect;
mod list;
mod remove;
#[path = "../cli_build/support.rs"]
#[allow(dead_code)]
mod support;
