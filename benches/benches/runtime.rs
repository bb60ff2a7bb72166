//! Start-to-exit latency of `/bin/true` in a container with a fresh overlay
//! root filesystem (new upper and work directories per run) over a busybox
//! lower, run in-process by kiln-runtime-linux with Docker's default spec
//! (namespaces, mounts, capabilities, seccomp).
//!
//! `benches/scripts/runtime.sh` measures the same beside `crun run` and
//! `runc run` of the same bundle and prints the ratios.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_runtime_linux::{Container, RootFs, RunOptions, Stdio, docker_default_spec};

fn true_in_fresh_overlay(c: &mut Criterion) {
    let lower = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    if let Err(e) = kiln_testutil::rootfs::busybox_rootfs(lower.path()) {
        panic!("busybox rootfs: {e}");
    }
    let spec = docker_default_spec(vec!["/bin/true".into()]);
    c.bench_function("runtime/true_fresh_overlay", |b| {
        b.iter(|| run_once(lower.path(), &spec));
    });
}

fn run_once(lower: &Path, spec: &kiln_runtime_linux::oci_spec::runtime::Spec) {
    let tmp = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => panic!("tempdir: {e}"),
    };
    let (upper, work) = (tmp.path().join("upper"), tmp.path().join("work"));
    for d in [&upper, &work] {
        if let Err(e) = std::fs::create_dir(d) {
            panic!("mkdir: {e}");
        }
    }
    let rootfs = RootFs::Overlay {
        lowers: vec![lower.to_path_buf()],
        upper,
        work,
    };
    let (mut out, mut err) = (std::io::sink(), std::io::sink());
    match Container::new(spec.clone(), rootfs, RunOptions::new())
        .run(Stdio::new(&mut out, &mut err))
    {
        Ok(s) if s.success() => {}
        other => panic!("/bin/true failed: {other:?}"),
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50);
    targets = true_in_fresh_overlay
}
criterion_main!(benches);
