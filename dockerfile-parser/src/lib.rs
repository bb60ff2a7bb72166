//! Lossless Dockerfile parser (skeleton; the full crate lands with issue 2).
//!
//! Will provide: a span-carrying syntax tree that prints back byte for byte,
//! typed instructions with validated flags, parser directives, heredocs,
//! Docker's shell-word expansion, diagnostics with line and column, and lints
//! equal to BuildKit's build checks. Pure functions: no I/O, no async.
