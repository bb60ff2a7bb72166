//! Integration tests of kiln-image-layers, one module per source module.
//! Runs as root on the CI machine (device nodes, chown, trusted xattrs).

mod apply;
mod archive;
mod changes;
mod common;
mod digest;
mod interop;
mod store;
mod write;
