//! Integration tests of kiln-build-engine, one module per source module.
//! The builder tests use a synthetic [`Executor`] that counts executions
//! (the scheduler and the cache are what is under test); real containers
//! are exercised by the CLI's end-to-end tests.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

mod builder;
mod cache;
mod config;
mod context;
mod dockerignore;
mod gc;
