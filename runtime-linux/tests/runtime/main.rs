//! Integration tests of kiln-runtime-linux against the real kernel (run as
//! root; the rootless test drops to an unprivileged uid itself).

mod bundle;
mod container;
mod exec;
mod rootless;
mod seccomp;
mod spec;
mod support;
