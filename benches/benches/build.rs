//! kiln-build-engine benchmarks: the parts of a rebuild that run when
//! nothing changed (walk + fingerprint the context, `.dockerignore`
//! matching, cache keys) and a whole no-op rebuild through `Builder` with a
//! synthetic executor (FROM scratch + COPY of the context + RUN), so the
//! number is the engine's own overhead. `KILN_BENCH_FILES` (default 20000)
//! sets the context size.
//!
//! `cargo bench -p kiln-benches --bench build`; for side-by-side ratios
//! with `buildah bud` run `benches/scripts/build.sh` (as root).

// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use std::path::Path;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use kiln_build_engine::{
    BuildContext, BuildRequest, Builder, CacheInputs, DigestCache, DockerIgnore, Error, ExecJob,
    Executor, Root, Stream,
};

fn files() -> usize {
    std::env::var("KILN_BENCH_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn make_context(dir: &Path, n: usize) {
    for i in 0..n {
        let d = dir.join(format!("d{:03}", i % 200));
        if i < 200 {
            std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("mkdir: {e}"));
        }
        let body = format!("{i:08}\n").repeat(1 + i % 64);
        std::fs::write(d.join(format!("f{i:05}.txt")), body)
            .unwrap_or_else(|e| panic!("write: {e}"));
    }
    std::fs::write(
        dir.join(".dockerignore"),
        "**/*.tmp\nd199\n!d199/f19999.txt\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
}

#[derive(Debug)]
struct Touch;

impl Executor for Touch {
    fn run(&self, job: &ExecJob, _output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        std::fs::write(job.upper.join("ran"), job.args.join(" ")).map_err(|e| Error::Io {
            op: "write",
            path: job.upper.clone(),
            source: e,
        })?;
        Ok(0)
    }
}

fn bench(c: &mut Criterion) {
    let n = files();
    let ctx = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    make_context(ctx.path(), n);
    let ignore = DockerIgnore::for_context(ctx.path(), None).unwrap_or_else(|e| panic!("{e}"));
    let mut g = c.benchmark_group("build");
    g.sample_size(10);

    g.bench_function(format!("dockerignore.match.{n}"), |b| {
        let paths: Vec<String> = (0..n)
            .map(|i| format!("d{:03}/f{i:05}.txt", i % 200))
            .collect();
        b.iter(|| paths.iter().filter(|p| ignore.is_excluded(p)).count())
    });
    g.bench_function(format!("context.walk+hash.cold.{n}"), |b| {
        b.iter(|| {
            let c = BuildContext::open(ctx.path(), &ignore, None).unwrap_or_else(|e| panic!("{e}"));
            c.digest("").unwrap_or_else(|e| panic!("{e}"))
        })
    });
    let state = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let cache_file = state.path().join("digests.json");
    {
        let c = BuildContext::open(ctx.path(), &ignore, Some(DigestCache::load(&cache_file)))
            .unwrap_or_else(|e| panic!("{e}"));
        c.digest("").unwrap_or_else(|e| panic!("{e}"));
        c.save_digest_cache().unwrap_or_else(|e| panic!("{e}"));
    }
    // Let the racy-file window pass so the stat cache is trusted.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    g.bench_function(format!("context.walk+hash.warm.{n}"), |b| {
        b.iter(|| {
            let c = BuildContext::open(ctx.path(), &ignore, Some(DigestCache::load(&cache_file)))
                .unwrap_or_else(|e| panic!("{e}"));
            c.digest("").unwrap_or_else(|e| panic!("{e}"))
        })
    });
    g.bench_function("cache.key", |b| {
        b.iter(|| {
            let mut i = CacheInputs::new("sha256:0000");
            i.push("instruction", "RUN make -j4 all");
            i.push("env", "PATH=/usr/bin\nA=1");
            i.key()
        })
    });

    // A whole rebuild with nothing changed.
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch\nCOPY . /app\nRUN step\nENV A=1\nCMD [\"x\"]\n",
    )
    .unwrap_or_else(|e| panic!("write: {e}"));
    let root_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let root = Root::open(root_dir.path()).unwrap_or_else(|e| panic!("{e}"));
    let builder = Builder::new(root).with_executor(Arc::new(Touch));
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| panic!("runtime: {e}"));
    let req = BuildRequest::new(ctx.path()).tag("bench:noop");
    rt.block_on(builder.build(req.clone()))
        .unwrap_or_else(|e| panic!("first build: {e}"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    rt.block_on(builder.build(req.clone()))
        .unwrap_or_else(|e| panic!("second build: {e}"));
    g.bench_function(format!("rebuild.noop.{n}"), |b| {
        b.iter(|| {
            rt.block_on(builder.build(req.clone()))
                .unwrap_or_else(|e| panic!("{e}"))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
