//! kiln-registry-client benchmarks: the pure parsers, and blob pull/push
//! throughput against a real local `docker-registry` (plain http on
//! loopback).
//!
//! `KILN_BENCH_BLOB_MB` (default 64) sets the blob size. For the side-by-side
//! comparison with `skopeo copy` (ratios and peak memory) run
//! `benches/scripts/registry.sh`.
//!
//! `cargo bench -p kiln-benches --bench registry`

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_registry_client::{
    Client, ClientConfig, Manifest, MemoryBlobs, PushOptions, Reference, no_progress,
    parse_www_authenticate,
};
use kiln_testutil::registry::{Registry, RegistryConfig};

fn parsers(c: &mut Criterion) {
    let refs = [
        "busybox",
        "user/repo:tag",
        "registry.example.com:5000/a/b/c:v1.2.3",
        "localhost/x@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
    ];
    c.bench_function("reference/parse_4", |b| {
        b.iter(|| {
            for r in refs {
                black_box(Reference::parse(black_box(r)).ok());
            }
        })
    });
    let header = r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#;
    c.bench_function("www_authenticate/parse", |b| {
        b.iter(|| black_box(parse_www_authenticate(black_box(header))))
    });
    let layers: Vec<String> = (0..20)
        .map(|i| format!(r#"{{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:{:064x}","size":{}}}"#, i, 1000 + i))
        .collect();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:{:064x}","size":7}},"layers":[{}]}}"#,
        99,
        layers.join(",")
    );
    let mut g = c.benchmark_group("manifest");
    g.throughput(Throughput::Bytes(manifest.len() as u64));
    g.bench_function("parse_20_layers", |b| {
        b.iter(|| black_box(Manifest::parse(black_box(manifest.as_bytes()), None, "bench").ok()))
    });
    g.finish();
}

fn transfer(c: &mut Criterion) {
    let mb: usize = std::env::var("KILN_BENCH_BLOB_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let reg = match Registry::start(RegistryConfig::http()) {
        Ok(r) => r,
        Err(e) => panic!("starting docker-registry: {e}"),
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => panic!("tokio runtime: {e}"),
    };
    let mut config = ClientConfig::default();
    config.use_docker_config = false;
    let client = match Client::new(config) {
        Ok(c) => c,
        Err(e) => panic!("client: {e}"),
    };
    // Incompressible content (xorshift), like real compressed layers.
    let mut x: u64 = 0x9e3779b97f4a7c15;
    let data: Vec<u8> = (0..mb << 20)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let mut blobs = MemoryBlobs::new();
    let digest = blobs.insert(Bytes::from(data));
    let size = (mb << 20) as u64;
    let repo = match Reference::parse(&format!("{}/bench/blob", reg.addr())) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    };
    let mut g = c.benchmark_group("registry_blob");
    g.throughput(Throughput::Bytes(size));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(15));
    let mut n = 0u64;
    g.bench_function("push", |b| {
        b.iter(|| {
            // A fresh repository each time so nothing is skipped.
            n += 1;
            let r = match repo.with_repository(&format!("bench/push{n}")) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            };
            let mut opts = PushOptions::default();
            opts.skip_existence_check = true;
            if let Err(e) =
                rt.block_on(client.push_blob(&r, &digest, size, &blobs, &opts, &no_progress()))
            {
                panic!("push: {e}");
            }
        })
    });
    g.bench_function("pull_to_sink", |b| {
        b.iter(|| {
            let mut sink = tokio::io::sink();
            let r = rt.block_on(
                client.pull_blob(
                    &repo
                        .with_repository("bench/push1")
                        .unwrap_or_else(|e| panic!("{e}")),
                    &digest,
                    Some(size),
                    &mut sink,
                    &no_progress(),
                ),
            );
            if let Err(e) = r {
                panic!("pull: {e}");
            }
        })
    });
    g.finish();
}

criterion_group!(benches, parsers, transfer);
criterion_main!(benches);
