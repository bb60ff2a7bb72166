//! kiln-image-layers benchmarks.
//!
//! Sizes are small by default so the whole bench runs in a few minutes on
//! two cores; scale them with environment variables:
//!
//! - `KILN_BENCH_LAYER_MB` (default 128): size of the change set written,
//!   compressed and applied (the issue's reference size is 1024).
//! - `KILN_BENCH_FILES` (default 20000): files in the tree for the diff
//!   benchmarks (reference: 100000); 1% of them are changed.
//!
//! `cargo bench -p kiln-benches --bench layers`; for side-by-side ratios
//! against `tar | zstd -T0`, `tar -x` and `sha256sum` run
//! `benches/scripts/layers.sh`.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_image_layers::{
    Algorithm, ApplyOptions, ChangeSet, Compression, DigestWriter, WriteOptions, apply_layer,
    write_layer,
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Data that compresses like real binaries and text (~3:1 with zstd -3),
/// not like zeros or noise.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let words: [&[u8]; 8] = [
        b"container ",
        b"layer ",
        b"\x00\x00\x00\x01",
        b"kiln ",
        b"/usr/lib/",
        b"\x7fELF",
        b"digest ",
        b"0123456789",
    ];
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x.is_multiple_of(3) {
            out.extend_from_slice(&x.to_le_bytes());
        } else {
            out.extend_from_slice(words[(x % 8) as usize]);
        }
    }
    out.truncate(len);
    out
}

/// A tree of `total` bytes in files of 1 KiB .. 8 MiB.
fn make_tree(root: &Path, total: usize) {
    let mut left = total;
    let mut i = 0u64;
    while left > 0 {
        let size = match i % 4 {
            0 => 8 << 20,
            1 => 1 << 20,
            2 => 64 << 10,
            _ => 1 << 10,
        }
        .min(left);
        let dir = root.join(format!("d{}", i % 16));
        fs::create_dir_all(&dir).ok();
        fs::write(dir.join(format!("f{i}")), payload(size, i)).ok();
        left -= size;
        i += 1;
    }
}

fn bench_digest(c: &mut Criterion) {
    let data = payload(64 << 20, 1);
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        g.bench_function(alg.as_str(), |b| {
            b.iter(|| {
                let mut w = DigestWriter::new(std::io::sink(), alg);
                w.write_all(&data).ok();
                w.finish().1
            })
        });
    }
    g.finish();
}

fn bench_write_apply(c: &mut Criterion) {
    let mb = env_usize("KILN_BENCH_LAYER_MB", 128);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let src = tmp.path().join("src");
    make_tree(&src, mb << 20);
    let cs = ChangeSet::added_tree(&src).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("layer");
    g.throughput(Throughput::Bytes((mb << 20) as u64));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u32)
        .unwrap_or(1);
    let cases = [
        ("write-none", Compression::None, 1),
        ("write-gzip", Compression::Gzip, 1),
        ("write-zstd-1t", Compression::Zstd, 1),
        ("write-zstd-mt", Compression::Zstd, cpus),
    ];
    let mut blob_for_apply = Vec::new();
    for (name, comp, threads) in cases {
        let mut o = WriteOptions::with_compression(comp);
        o.threads = threads;
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut f =
                    fs::File::create(tmp.path().join("out.blob")).unwrap_or_else(|e| panic!("{e}"));
                write_layer(&cs, &mut f, &o).unwrap_or_else(|e| panic!("{e}"))
            })
        });
        if comp == Compression::Zstd {
            blob_for_apply = fs::read(tmp.path().join("out.blob")).unwrap_or_default();
        }
    }
    g.bench_function("apply-zstd", |b| {
        b.iter_batched(
            || {
                let dst = tmp.path().join("dst");
                let _ = fs::remove_dir_all(&dst);
                fs::create_dir(&dst).ok();
                dst
            },
            |dst| {
                apply_layer(&blob_for_apply[..], &dst, &ApplyOptions::default())
                    .unwrap_or_else(|e| panic!("{e}"))
            },
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn bench_diff(c: &mut Criterion) {
    let files = env_usize("KILN_BENCH_FILES", 20_000);
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let (before, after, upper) = (
        tmp.path().join("b"),
        tmp.path().join("a"),
        tmp.path().join("u"),
    );
    for i in 0..files {
        let rel = format!("d{}/e{}/f{i}", i % 100, i % 7);
        for root in [&before, &after] {
            let p = root.join(&rel);
            if let Some(d) = p.parent() {
                fs::create_dir_all(d).ok();
            }
            fs::write(&p, format!("file {i}")).ok();
        }
    }
    // Same mtimes on both sides so only the 1% really differs.
    let st = std::process::Command::new("touch")
        .args(["-r"])
        .arg(before.join("d0/e0/f0"))
        .arg(&before)
        .status();
    let _ = st;
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", before.display()))
        .arg(&after)
        .status();
    assert!(cp.is_ok_and(|s| s.success()), "cp -a");
    for i in (0..files).step_by(100) {
        let rel = format!("d{}/e{}/f{i}", i % 100, i % 7);
        fs::write(after.join(&rel), format!("changed {i}")).ok();
        // The upper dir of an overlay holds exactly the changed files.
        let p = upper.join(&rel);
        if let Some(d) = p.parent() {
            fs::create_dir_all(d).ok();
        }
        fs::write(&p, format!("changed {i}")).ok();
    }
    let mut g = c.benchmark_group("diff");
    g.sample_size(10);
    g.throughput(Throughput::Elements(files as u64));
    g.bench_function("tree-compare", |b| {
        b.iter(|| {
            ChangeSet::diff_trees(&before, &after)
                .unwrap_or_else(|e| panic!("{e}"))
                .changes()
                .len()
        })
    });
    g.bench_function("overlay-upper", |b| {
        b.iter(|| {
            ChangeSet::from_overlay_upper(&upper)
                .unwrap_or_else(|e| panic!("{e}"))
                .changes()
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench_digest, bench_write_apply, bench_diff);
criterion_main!(benches);
