//! Parse throughput of kiln-dockerfile-parser (MB/s) over two corpora:
//! `benches/corpus/dockerfiles` (realistic Dockerfiles written for this
//! bench, 1-6 KB each, in the style of official images) and the parser's
//! test corpus (`dockerfile-parser/tests/fixtures/ok`, many tiny files, so
//! per-file overhead dominates).
//!
//! Run: `cargo bench -p kiln-benches --bench parse`. Criterion prints the
//! throughput; BuildKit's Go parser manages about 7 MB/s on the reference
//! machine, the goal here is at least 60 MB/s.

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kiln_dockerfile_parser::{Dockerfile, LintOptions, SyntaxTree, lint};

/// Every Dockerfile under `rel` (files, or `<case>/Dockerfile`).
fn corpus(rel: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| {
            let p = e.path();
            if p.is_dir() { p.join("Dockerfile") } else { p }
        })
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .collect()
}

fn bench(c: &mut Criterion) {
    for (group, rel) in [
        ("realistic", "corpus/dockerfiles"),
        ("fixtures", "../dockerfile-parser/tests/fixtures/ok"),
    ] {
        bench_corpus(c, group, &corpus(rel));
    }
}

fn bench_corpus(c: &mut Criterion, group: &str, files: &[String]) {
    let bytes: usize = files.iter().map(String::len).sum();
    let mut g = c.benchmark_group(group);
    g.throughput(Throughput::Bytes(bytes as u64));
    g.bench_function("syntax_tree", |b| {
        b.iter(|| {
            for f in files {
                std::hint::black_box(SyntaxTree::parse(std::hint::black_box(f)));
            }
        })
    });
    g.bench_function("parse_typed", |b| {
        b.iter(|| {
            for f in files {
                let _ = std::hint::black_box(Dockerfile::parse(std::hint::black_box(f)));
            }
        })
    });
    g.bench_function("parse_and_lint", |b| {
        let opts = LintOptions::default();
        b.iter(|| {
            for f in files {
                let (df, _) = Dockerfile::parse_partial(std::hint::black_box(f));
                std::hint::black_box(lint(&df, &opts));
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
