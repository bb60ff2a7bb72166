//! The scheduler and the cache, with a synthetic executor that counts
//! what runs and writes one file per execution into the upper dir.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use kiln_build_engine::{
    BuildRequest, Builder, Error, EventKind, ExecJob, Executor, Progress, Root, Stream,
};

#[derive(Debug, Default)]
struct Counting {
    runs: Mutex<Vec<String>>,
    /// Commands containing "rendezvous" wait here for a partner.
    waiting: Mutex<usize>,
    met: Mutex<bool>,
    cv: Condvar,
}

impl Executor for Counting {
    fn run(&self, job: &ExecJob, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        let cmd = job.args.join(" ");
        self.runs.lock().unwrap().push(cmd.clone());
        if cmd.contains("rendezvous") {
            let mut n = self.waiting.lock().unwrap();
            *n += 1;
            if *n >= 2 {
                *self.met.lock().unwrap() = true;
                self.cv.notify_all();
            } else {
                let (_g, _) = self.cv.wait_timeout(n, Duration::from_secs(20)).unwrap();
            }
        }
        if cmd.contains("wait-for-cancel") {
            for _ in 0..1000 {
                if job.cancel.load(std::sync::atomic::Ordering::Relaxed) {
                    self.runs.lock().unwrap().push("saw-cancel".into());
                    return Err(Error::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        output(Stream::Stdout, format!("ran {cmd}\n").as_bytes());
        if cmd.contains("fail") {
            output(Stream::Stderr, b"something broke\n");
            return Ok(2);
        }
        let name = format!("out-{}", self.runs.lock().unwrap().len());
        std::fs::write(job.upper.join(name), cmd).unwrap();
        Ok(0)
    }
}

fn setup(df: &str) -> (tempfile::TempDir, tempfile::TempDir, Root) {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(ctx.path().join("Dockerfile"), df).unwrap();
    std::fs::write(ctx.path().join("a.txt"), "a").unwrap();
    std::fs::write(ctx.path().join("b.txt"), "b").unwrap();
    let state = tempfile::tempdir().unwrap();
    let root = Root::open(state.path()).unwrap();
    (ctx, state, root)
}

#[tokio::test(flavor = "multi_thread")]
async fn second_build_is_all_cache_and_a_file_change_reruns_its_readers_only() {
    let df =
        "FROM scratch\nRUN step-one\nCOPY a.txt /a\nRUN step-two\nCOPY b.txt /b\nRUN step-three\n";
    let (ctx, _state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    let b = Builder::new(root).with_executor(exec.clone());
    let r1 = b
        .build(BuildRequest::new(ctx.path()).tag("t:1"))
        .await
        .unwrap();
    assert_eq!((r1.steps, r1.cached), (5, 0));
    assert_eq!(exec.runs.lock().unwrap().len(), 3);
    let r2 = b
        .build(BuildRequest::new(ctx.path()).tag("t:1"))
        .await
        .unwrap();
    assert_eq!((r2.steps, r2.cached), (5, 5));
    assert_eq!(r2.manifest_digest, r1.manifest_digest);
    assert_eq!(exec.runs.lock().unwrap().len(), 3, "nothing ran again");
    std::fs::write(ctx.path().join("b.txt"), "B").unwrap();
    let r3 = b
        .build(BuildRequest::new(ctx.path()).tag("t:1"))
        .await
        .unwrap();
    assert_eq!(r3.cached, 3, "steps before COPY b.txt come from cache");
    assert_eq!(
        exec.runs.lock().unwrap().as_slice().last().unwrap(),
        "/bin/sh -c step-three"
    );
    assert_eq!(exec.runs.lock().unwrap().len(), 4);
    assert_eq!(r3.config["rootfs"]["diff_ids"].as_array().unwrap().len(), 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn independent_stages_run_in_parallel_and_unneeded_ones_never() {
    let df = "FROM scratch AS unused\nRUN never\n\nFROM scratch AS a\nRUN rendezvous-a\n\nFROM scratch AS b\nRUN rendezvous-b\n\nFROM scratch\nCOPY --from=a / /x/\nCOPY --from=b / /y/\n";
    let (ctx, _state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    let b = Builder::new(root).with_executor(exec.clone());
    b.build(BuildRequest::new(ctx.path())).await.unwrap();
    assert!(
        *exec.met.lock().unwrap(),
        "stages a and b did not run at the same time"
    );
    let runs = exec.runs.lock().unwrap().clone();
    assert!(!runs.iter().any(|r| r.contains("never")), "{runs:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn failure_reports_step_line_exit_code_and_output_tail_via_events() {
    let df = "FROM scratch\nRUN ok\nRUN fail now\n";
    let (ctx, _state, root) = setup(df);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let b = Builder::new(root)
        .with_executor(Arc::new(Counting::default()))
        .with_progress(Progress::new(tx));
    let err = b
        .build(BuildRequest::new(ctx.path()).tag("t:x"))
        .await
        .unwrap_err();
    match &err {
        Error::StepFailed {
            line,
            exit_code,
            tail,
            ..
        } => {
            assert_eq!((*line, *exit_code), (3, 2));
            assert_eq!(tail.last().map(String::as_str), Some("something broke"));
        }
        other => panic!("unexpected error {other:?}"),
    }
    drop(b);
    let mut kinds = Vec::new();
    while let Some(ev) = rx.recv().await {
        kinds.push(ev.kind);
    }
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::Log { line, .. } if line == "ran /bin/sh -c ok"))
    );
    assert!(kinds.iter().any(|k| matches!(k, EventKind::Failed { .. })));
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::Finished { .. }))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn build_args_scope_and_unused_warning_and_explained_misses() {
    let df = "ARG G=global\nFROM scratch\nARG G\nARG L=local\nRUN echo $G $L\n";
    let (ctx, _state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let b = Builder::new(root)
        .with_executor(exec.clone())
        .with_progress(Progress::new(tx));
    let mut req = BuildRequest::new(ctx.path());
    req.options.build_args.insert("L".into(), "v1".into());
    req.options.build_args.insert("STRAY".into(), "x".into());
    let r = b.build(req.clone()).await.unwrap();
    let hist = r.config["history"].as_array().unwrap();
    let run = hist
        .iter()
        .find(|h| h["created_by"].as_str().unwrap().starts_with("RUN"))
        .unwrap();
    assert_eq!(
        run["created_by"],
        "RUN |2 G=global L=v1 /bin/sh -c echo $G $L"
    );
    req.options.build_args.insert("L".into(), "v2".into());
    b.build(req).await.unwrap();
    drop(b);
    let mut warnings = Vec::new();
    let mut reasons = Vec::new();
    while let Some(ev) = rx.recv().await {
        match ev.kind {
            EventKind::Warning { message } => warnings.push(message),
            EventKind::CacheMiss { reasons: r } => reasons.extend(r),
            _ => {}
        }
    }
    assert!(
        warnings.iter().any(|w| w.contains("\"STRAY\"")),
        "{warnings:?}"
    );
    assert!(
        !warnings.iter().any(|w| w.contains("\"L\"")),
        "{warnings:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("the previous step changed") || r.contains("instruction changed")),
        "{reasons:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_stage_cancels_its_parallel_sibling_and_its_error_is_reported() {
    // Both RUNs meet at the rendezvous first, so stage b is inside the
    // executor when stage a fails (otherwise b may be cancelled before it
    // ever starts, which is also correct but not what this test checks).
    let df = "FROM scratch AS a\nRUN rendezvous fail fast\n\nFROM scratch AS b\nRUN rendezvous wait-for-cancel\n\nFROM scratch\nCOPY --from=a / /a/\nCOPY --from=b / /b/\n";
    let (ctx, _state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    let b = Builder::new(root).with_executor(exec.clone());
    let err = b
        .build(BuildRequest::new(ctx.path()).tag("t:c"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::StepFailed { exit_code: 2, .. }),
        "{err:?}"
    );
    assert!(exec.runs.lock().unwrap().iter().any(|r| r == "saw-cancel"));
}

/// Collects the events of one build, keyed by step label.
async fn build_events(
    root: Root,
    ctx: &std::path::Path,
    exec: Arc<Counting>,
) -> Vec<kiln_build_engine::Event> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let b = Builder::new(root)
        .with_executor(exec)
        .with_progress(Progress::new(tx));
    b.build(BuildRequest::new(ctx)).await.unwrap();
    drop(b);
    let mut out = Vec::new();
    while let Some(ev) = rx.recv().await {
        out.push(ev);
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_step_reports_started_and_finished_or_cached() {
    let df = "FROM scratch\nARG V=1\nENV A=b\nLABEL l=v\nEXPOSE 80\nUSER 0\nWORKDIR /\nRUN one\nCMD [\"x\"]\nCOPY a.txt /a\nSTOPSIGNAL SIGINT\n";
    let (ctx, state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    for round in 0..2 {
        let root = Root::open(state.path()).unwrap();
        let events = build_events(root, ctx.path(), exec.clone()).await;
        // Every instruction (11 lines, FROM included) is a step with events.
        let mut labels: Vec<String> = Vec::new();
        for ev in &events {
            if let Some(s) = &ev.step
                && !labels.contains(&s.label)
            {
                labels.push(s.label.clone());
            }
        }
        assert_eq!(labels.len(), 11, "round {round}: {labels:?}");
        for label in &labels {
            let kinds: Vec<&EventKind> = events
                .iter()
                .filter(|e| e.step.as_ref().is_some_and(|s| &s.label == label))
                .map(|e| &e.kind)
                .filter(|k| !matches!(k, EventKind::CacheMiss { .. } | EventKind::Log { .. }))
                .collect();
            let ok = matches!(
                kinds.as_slice(),
                [EventKind::Started, EventKind::Finished { .. }] | [EventKind::Cached]
            );
            assert!(ok, "round {round}: {label}: {kinds:?}");
        }
        // Layer steps are cached on the second round; metadata steps still
        // report start and finish.
        let cached: Vec<&String> = labels
            .iter()
            .filter(|l| {
                events.iter().any(|e| {
                    e.step.as_ref().is_some_and(|s| &s.label == *l)
                        && matches!(e.kind, EventKind::Cached)
                })
            })
            .collect();
        if round == 0 {
            assert!(cached.is_empty(), "{cached:?}");
        } else {
            // WORKDIR on `scratch` creates its directory: a layer step.
            assert_eq!(cached.len(), 3, "WORKDIR, RUN and COPY: {cached:?}");
        }
        let env = labels.iter().find(|l| l.contains("ENV A=b")).unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.step.as_ref().is_some_and(|s| &s.label == env)
                    && matches!(e.kind, EventKind::Finished { .. }))
        );
    }
    drop(root);
}

fn diff_ids(config: &serde_json::Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_link_layer_is_independent_of_the_base_and_cached_across_bases() {
    // Two different bases; the linked layer must be byte-identical on both
    // and come from the cache once built on either.
    let df = "ARG BASE=one\nFROM scratch AS one\nCOPY b.txt /base\nFROM scratch AS two\nRUN other-base\nFROM ${BASE}\nCOPY --link a.txt /app/\nRUN after\n";
    let (ctx, _state, root) = setup(df);
    let exec = Arc::new(Counting::default());
    let b = Builder::new(root.clone()).with_executor(exec.clone());
    let mut req = BuildRequest::new(ctx.path()).tag("link:1");
    let r1 = b.build(req.clone()).await.unwrap();
    let ids1 = diff_ids(&r1.config);
    assert_eq!(ids1.len(), 3, "base, link, run: {ids1:?}");

    // Another base: the linked COPY is a hit, the RUN after it is not.
    req.options.build_args.insert("BASE".into(), "two".into());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let b2 = Builder::new(root.clone())
        .with_executor(exec.clone())
        .with_progress(Progress::new(tx));
    let r2 = b2.build(req.clone()).await.unwrap();
    drop(b2);
    let mut cached = Vec::new();
    while let Some(ev) = rx.recv().await {
        if matches!(ev.kind, EventKind::Cached) {
            cached.push(ev.step.unwrap().label);
        }
    }
    assert!(
        cached.iter().any(|l| l.contains("COPY --link")),
        "linked COPY not cached on a new base: {cached:?}"
    );
    assert!(
        !cached.iter().any(|l| l.contains("RUN after")),
        "{cached:?}"
    );
    let ids2 = diff_ids(&r2.config);
    assert_eq!(ids2.len(), 3, "{ids2:?}");
    assert_ne!(ids1[0], ids2[0], "the bases differ");
    assert_eq!(ids1[1], ids2[1], "the linked layer is the same layer");
    let runs = exec.runs.lock().unwrap().clone();
    assert_eq!(
        runs.iter().filter(|r| r.contains("after")).count(),
        2,
        "{runs:?}"
    );

    // The base changes content (same Dockerfile, BASE=one): still a hit.
    std::fs::write(ctx.path().join("b.txt"), "changed base").unwrap();
    req.options.build_args.insert("BASE".into(), "one".into());
    let r3 = b.build(req.clone()).await.unwrap();
    let ids3 = diff_ids(&r3.config);
    assert_ne!(ids3[0], ids1[0]);
    assert_eq!(ids3[1], ids1[1]);
    // steps: COPY b.txt (miss), COPY --link (hit), RUN after (miss).
    assert_eq!((r3.steps, r3.cached), (3, 1));

    // The rebased image holds the base's file and the linked file.
    let img = kiln_build_engine::resolve_local(&root, "link:1").unwrap();
    let lowers = root
        .snapshots()
        .ensure(root.store(), &img.layer_digests().unwrap())
        .unwrap();
    let view = kiln_build_engine::MergedView::new(lowers);
    assert_eq!(view.read("base").unwrap(), b"changed base");
    assert_eq!(view.read("app/a.txt").unwrap(), b"a");

    // Without --link the same change invalidates the COPY.
    let df_nolink = df.replace("COPY --link", "COPY");
    std::fs::write(ctx.path().join("Dockerfile"), df_nolink).unwrap();
    let r4 = b.build(req.clone()).await.unwrap();
    std::fs::write(ctx.path().join("b.txt"), "changed again").unwrap();
    let r5 = b.build(req).await.unwrap();
    assert_eq!((r4.steps, r5.steps, r5.cached), (3, 3, 0));
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_link_builds_the_same_bytes_on_any_base_without_the_cache() {
    // Built from scratch each time (--no-cache), on two different bases:
    // the linked layer does not read the base, so its blob is identical.
    // (SOURCE_DATE_EPOCH fixes the times of the directories it creates.)
    let df = "ARG BASE=one\nFROM scratch AS one\nCOPY b.txt /app\nFROM scratch AS two\nRUN other-base\nFROM ${BASE}\nCOPY --link a.txt /app\n";
    let (ctx, _state, root) = setup(df);
    let b = Builder::new(root).with_executor(Arc::new(Counting::default()));
    let mut layers = Vec::new();
    for base in ["one", "two"] {
        let mut req = BuildRequest::new(ctx.path());
        req.options.no_cache = true;
        req.options.source_date_epoch = Some(1_700_000_000);
        req.options.build_args.insert("BASE".into(), base.into());
        let r = b.build(req).await.unwrap();
        layers.push(diff_ids(&r.config).last().unwrap().clone());
    }
    // Base `one` has a file /app, base `two` has none: the linked COPY
    // (no trailing slash) writes the same file /app on both.
    assert_eq!(layers[0], layers[1]);
}

/// Looks at the RUN step's bind mounts while it "runs", as the process
/// inside would: what is visible, and whether it is the source itself.
#[derive(Debug, Default)]
struct BindInspector {
    seen: Mutex<Vec<(String, std::path::PathBuf, bool)>>,
    facts: Mutex<std::collections::BTreeMap<String, String>>,
}

impl Executor for BindInspector {
    fn run(&self, job: &ExecJob, _output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        use std::os::unix::fs::MetadataExt;
        let mut facts = self.facts.lock().unwrap();
        for m in &job.mounts {
            if let kiln_build_engine::ExecMount::Bind {
                source,
                target,
                read_only,
            } = m
            {
                self.seen
                    .lock()
                    .unwrap()
                    .push((target.clone(), source.clone(), *read_only));
                let mut names: Vec<String> = std::fs::read_dir(source)
                    .map(|rd| {
                        rd.flatten()
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                names.sort();
                facts.insert(format!("{target} names"), names.join(","));
                if let Ok(md) = std::fs::metadata(source.join("a.txt")) {
                    facts.insert(format!("{target} a.txt ino"), md.ino().to_string());
                }
                if !*read_only {
                    // A step writing to an rw bind mount.
                    std::fs::write(source.join("a.txt"), "scribbled").unwrap();
                    std::fs::write(source.join("new.txt"), "new").unwrap();
                }
            }
        }
        std::fs::write(job.upper.join("ran"), "x").unwrap();
        Ok(0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bind_mounts_are_the_sources_read_only_and_rw_writes_are_discarded() {
    use std::os::unix::fs::MetadataExt;
    let df = "FROM scratch AS base\nCOPY a.txt /data/a.txt\nCOPY b.txt /data/b.txt\n\nFROM scratch\nRUN --mount=type=bind,target=/ctx --mount=type=bind,source=sub,target=/sub --mount=type=bind,from=base,source=/data,target=/st --mount=type=bind,from=base,source=/data/a.txt,target=/one --mount=type=bind,target=/rw,rw check\n";
    let (ctx, _state, root) = setup(df);
    std::fs::write(ctx.path().join(".dockerignore"), "secret.txt\n").unwrap();
    std::fs::write(ctx.path().join("secret.txt"), "s").unwrap();
    std::fs::create_dir(ctx.path().join("sub")).unwrap();
    std::fs::write(ctx.path().join("sub/a.txt"), "sub a").unwrap();
    let exec = Arc::new(BindInspector::default());
    let b = Builder::new(root.clone()).with_executor(exec.clone());
    b.build(BuildRequest::new(ctx.path())).await.unwrap();

    let seen = exec.seen.lock().unwrap().clone();
    let facts = exec.facts.lock().unwrap().clone();
    let by_target = |t: &str| {
        seen.iter()
            .find(|(target, ..)| target == t)
            .unwrap()
            .clone()
    };
    // A context directory with nothing ignored below it: the directory.
    let (_, sub_src, sub_ro) = by_target("/sub");
    assert!(sub_ro);
    assert_eq!(sub_src, ctx.path().join("sub"));
    // The whole context has an ignored file: a filtered view whose files
    // are the context's own (hard links), never a copy of the content.
    let (_, ctx_src, ctx_ro) = by_target("/ctx");
    assert!(ctx_ro);
    assert_ne!(ctx_src, ctx.path());
    assert!(!facts["/ctx names"].contains("secret.txt"), "{facts:?}");
    assert!(facts["/ctx names"].contains("a.txt"));
    let ctx_ino = std::fs::metadata(ctx.path().join("a.txt")).unwrap().ino();
    assert_eq!(facts["/ctx a.txt ino"], ctx_ino.to_string());
    // Another stage: its layers merged, files shared with the snapshots.
    let (_, st_src, st_ro) = by_target("/st");
    assert!(st_ro);
    assert_eq!(facts["/st names"], "a.txt,b.txt");
    assert!(st_src.starts_with(root.dir().join("tmp")));
    let img_layers = std::fs::read_dir(root.dir().join("snapshots"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::metadata(e.path().join("data/a.txt")).ok())
        .map(|m| m.ino().to_string())
        .collect::<Vec<_>>();
    assert!(
        img_layers.contains(&facts["/st a.txt ino"]),
        "{img_layers:?} {facts:?}"
    );
    // A single file of a stage: bound straight from its snapshot.
    let (_, one_src, _) = by_target("/one");
    assert!(
        one_src.starts_with(root.dir().join("snapshots")),
        "{one_src:?}"
    );
    // rw: a scratch copy; what the step wrote is gone, the context intact.
    let (_, rw_src, rw_ro) = by_target("/rw");
    assert!(!rw_ro);
    assert_eq!(
        std::fs::read_to_string(ctx.path().join("a.txt")).unwrap(),
        "a"
    );
    assert!(!ctx.path().join("new.txt").exists());
    assert!(!rw_src.exists(), "scratch copy removed after the step");
    // Nothing of the mounts went into the layer.
    b.build(BuildRequest::new(ctx.path()).tag("bind:1"))
        .await
        .unwrap();
    let img = kiln_build_engine::resolve_local(&root, "bind:1").unwrap();
    let lowers = root
        .snapshots()
        .ensure(root.store(), &img.layer_digests().unwrap())
        .unwrap();
    let view = kiln_build_engine::MergedView::new(lowers);
    assert_eq!(view.read_dir("").into_keys().collect::<Vec<_>>(), ["ran"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_from_the_context_writes_owner_mode_and_parents_without_staging() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let df = "FROM scratch\nCOPY --exclude=**/*.log . /app/\nCOPY --chmod=600 a.txt /b/c.txt\nRUN after\n";
    let (ctx, _state, root) = setup(df);
    std::fs::create_dir(ctx.path().join("sub")).unwrap();
    std::fs::write(ctx.path().join("sub/x.txt"), "x").unwrap();
    std::fs::write(ctx.path().join("sub/noise.log"), "log").unwrap();
    std::os::unix::fs::symlink("x.txt", ctx.path().join("sub/link")).unwrap();
    std::fs::set_permissions(
        ctx.path().join("sub"),
        std::fs::Permissions::from_mode(0o750),
    )
    .unwrap();
    for p in ["a.txt", "sub", "sub/x.txt"] {
        std::os::unix::fs::chown(ctx.path().join(p), Some(1234), Some(1234)).unwrap();
    }
    let b = Builder::new(root.clone()).with_executor(Arc::new(Counting::default()));
    b.build(BuildRequest::new(ctx.path()).tag("direct:1"))
        .await
        .unwrap();
    // The RUN after the COPYs needed their snapshots: unpacked from the
    // layers, since nothing was staged.
    let img = kiln_build_engine::resolve_local(&root, "direct:1").unwrap();
    let lowers = root
        .snapshots()
        .ensure(root.store(), &img.layer_digests().unwrap())
        .unwrap();
    let view = kiln_build_engine::MergedView::new(lowers);
    let md = |p: &str| std::fs::symlink_metadata(view.lookup(p).unwrap()).unwrap();
    assert_eq!(view.read("app/sub/x.txt").unwrap(), b"x");
    assert!(!view.exists("app/sub/noise.log"), "--exclude");
    assert_eq!((md("app/a.txt").uid(), md("app/a.txt").gid()), (0, 0));
    assert_eq!(md("app/sub").mode() & 0o7777, 0o750);
    assert_eq!(md("app/sub").uid(), 0);
    assert_eq!(
        std::fs::read_link(view.lookup("app/sub/link").unwrap())
            .unwrap()
            .to_str(),
        Some("x.txt")
    );
    assert_eq!(md("app").mode() & 0o7777, 0o755);
    assert_eq!(md("b").mode() & 0o7777, 0o755);
    assert_eq!(md("b/c.txt").mode() & 0o7777, 0o600);
    assert_eq!(view.read("b/c.txt").unwrap(), b"a");
    assert_eq!(
        md("app/sub/x.txt").mtime(),
        std::fs::metadata(ctx.path().join("sub/x.txt"))
            .unwrap()
            .mtime(),
        "context times are kept"
    );
}

/// Records how many RUN steps run at the same time.
#[derive(Debug, Default)]
struct Overlap {
    now: std::sync::atomic::AtomicUsize,
    max: std::sync::atomic::AtomicUsize,
    runs: std::sync::atomic::AtomicUsize,
}

impl Executor for Overlap {
    fn run(&self, job: &ExecJob, _output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        use std::sync::atomic::Ordering::SeqCst;
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
        std::thread::sleep(Duration::from_millis(60));
        self.now.fetch_sub(1, SeqCst);
        self.runs.fetch_add(1, SeqCst);
        std::fs::write(job.upper.join("x"), job.args.join(" ")).unwrap();
        Ok(0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_parallelism_setting_caps_concurrent_stages() {
    use std::sync::atomic::Ordering::SeqCst;
    let mut df = String::new();
    for s in ["a", "b", "c", "d"] {
        df.push_str(&format!("FROM scratch AS {s}\nRUN make-{s}\n\n"));
    }
    df.push_str("FROM scratch\nCOPY --from=a /x /a\nCOPY --from=b /x /b\nCOPY --from=c /x /c\nCOPY --from=d /x /d\n");
    for (parallelism, want_max) in [(1usize, 1usize), (2, 2)] {
        let (ctx, state, _) = setup(&df);
        let settings =
            kiln_build_engine::Settings::from_toml(&format!("parallelism = {parallelism}"), None)
                .unwrap();
        let root = Root::open_with(state.path(), settings).unwrap();
        let exec = Arc::new(Overlap::default());
        let b = Builder::new(root).with_executor(exec.clone());
        b.build(BuildRequest::new(ctx.path())).await.unwrap();
        assert_eq!(exec.runs.load(SeqCst), 4);
        if parallelism == 1 {
            assert_eq!(exec.max.load(SeqCst), want_max, "one stage at a time");
        } else {
            // Never more than the cap (how many actually overlap depends on
            // the machine's load).
            assert!(exec.max.load(SeqCst) <= want_max);
        }
    }
}

/// `rm-a` deletes /d/a.txt the way overlayfs records it: a 0/0 character
/// device (whiteout) in the upper dir.
#[derive(Debug, Default)]
struct Deleter;

impl Executor for Deleter {
    fn run(&self, job: &ExecJob, _output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        std::fs::create_dir_all(job.upper.join("d")).unwrap();
        let st = std::process::Command::new("mknod")
            .arg(job.upper.join("d/a.txt"))
            .args(["c", "0", "0"])
            .status()
            .expect("mknod (coreutils)");
        assert!(st.success());
        std::fs::write(job.upper.join("d/new.txt"), "new").unwrap();
        Ok(0)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_from_a_stage_reads_its_merged_layers_directly() {
    use std::os::unix::fs::MetadataExt;
    let df = "FROM scratch AS a\nCOPY a.txt /d/a.txt\nCOPY b.txt /d/b.txt\nRUN rm-a\n\nFROM scratch\nCOPY --from=a /d /out/\nCOPY --from=a --chown=7:8 /d/b.txt /owned\n";
    let (ctx, _state, root) = setup(df);
    let b = Builder::new(root.clone()).with_executor(Arc::new(Deleter));
    b.build(BuildRequest::new(ctx.path()).tag("from:1"))
        .await
        .unwrap();
    let img = kiln_build_engine::resolve_local(&root, "from:1").unwrap();
    let lowers = root
        .snapshots()
        .ensure(root.store(), &img.layer_digests().unwrap())
        .unwrap();
    let view = kiln_build_engine::MergedView::new(lowers);
    let names: Vec<String> = view.read_dir("out").into_keys().collect();
    assert_eq!(names, ["b.txt", "new.txt"], "the whiteout hides a.txt");
    assert_eq!(view.read("out/b.txt").unwrap(), b"b");
    let md = |p: &str| std::fs::symlink_metadata(view.lookup(p).unwrap()).unwrap();
    assert_eq!((md("out/b.txt").uid(), md("out/b.txt").gid()), (0, 0));
    assert_eq!((md("owned").uid(), md("owned").gid()), (7, 8));
    assert_eq!(view.read("owned").unwrap(), b"b");
}
