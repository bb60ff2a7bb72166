//! The daemonless Dockerfile builder (skeleton; lands with issue 6).
//!
//! Will compose the kiln leaf crates: plan a Dockerfile into a DAG, look up a
//! content-addressed cache, run steps in parallel, and write OCI images.

pub use oci_spec;
