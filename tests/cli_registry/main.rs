#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! End-to-end tests of the registry commands (`kiln pull`, `push`,
//! `login`, `logout`, `search`, `build --push`): the real binary against
//! the real distribution registry (kiln-testutil, Debian's
//! `docker-registry`), checked with skopeo and by reading the store.

mod login;
mod mirror;
mod pull;
mod push;
mod search;
mod support;
