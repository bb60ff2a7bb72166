//! Garbage collection: what goes, what stays, and that a running build
//! or a container is never hurt.

use std::sync::Arc;

use kiln_build_engine::gc::{self, BuildLock, PruneOptions};
use kiln_build_engine::{BuildRequest, Builder, Error, ExecJob, Executor, Root, Stream};

/// Writes one file per RUN into the upper dir.
#[derive(Debug, Default)]
struct Writes;

impl Executor for Writes {
    fn run(&self, job: &ExecJob, _output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32, Error> {
        std::fs::write(job.upper.join("built"), job.args.join(" ").repeat(1000)).unwrap();
        Ok(0)
    }
}

struct Fixture {
    ctx: tempfile::TempDir,
    _state: tempfile::TempDir,
    root: Root,
}

fn snapshots(root: &Root) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.dir().join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A two-stage build (the builder stage's layers exist only in the
/// cache), tagged `app:1`, built twice so that the first image is dangling.
async fn fixture() -> Fixture {
    let ctx = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch AS build\nCOPY src.txt /src.txt\nRUN compile\n\nFROM scratch\nCOPY --from=build /built /app\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    std::fs::write(ctx.path().join("src.txt"), "source").unwrap();
    std::fs::write(ctx.path().join("a.txt"), "one").unwrap();
    let state = tempfile::tempdir().unwrap();
    let root = Root::open(state.path()).unwrap();
    let b = Builder::new(root.clone()).with_executor(Arc::new(Writes));
    b.build(BuildRequest::new(ctx.path()).tag("app:1"))
        .await
        .unwrap();
    std::fs::write(ctx.path().join("a.txt"), "two").unwrap();
    b.build(BuildRequest::new(ctx.path()).tag("app:1"))
        .await
        .unwrap();
    Fixture {
        ctx,
        _state: state,
        root,
    }
}

fn images(root: &Root) -> Vec<(String, Option<String>)> {
    root.store()
        .list()
        .unwrap()
        .into_iter()
        .map(|e| (e.descriptor.digest().to_string(), e.name))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn builder_prune_drops_cache_only_layers_and_leftovers_but_keeps_images() {
    let f = fixture().await;
    let root = &f.root;
    // A killed build's scratch space and half-unpacked snapshot.
    std::fs::create_dir_all(root.dir().join("tmp/run-killed/x")).unwrap();
    std::fs::write(root.dir().join("tmp/run-killed/x/f"), vec![0u8; 5000]).unwrap();
    std::fs::create_dir_all(root.dir().join("snapshots/.unpack-killed")).unwrap();
    std::fs::create_dir_all(root.dir().join("cache-mounts/abc")).unwrap();
    std::fs::write(root.dir().join("cache-mounts/abc/keep"), "k").unwrap();
    let before_snaps = snapshots(root);
    let before_keys = root.cache().keys().unwrap();
    let usage = gc::disk_usage(root).unwrap();
    assert!(usage.build_cache.reclaimable > 5000, "{usage:?}");
    assert_eq!(usage.images.total, 2, "tagged + dangling");

    let report = gc::prune(root, &PruneOptions::build_cache()).unwrap();
    assert!(!report.limited);
    assert!(
        report.deleted_images.is_empty(),
        "builder prune keeps images"
    );
    assert_eq!(images(root).len(), 2);
    // The build stage's snapshots (COPY src.txt, RUN) had no image.
    let after_snaps = snapshots(root);
    assert!(
        after_snaps.len() < before_snaps.len(),
        "{before_snaps:?} -> {after_snaps:?}"
    );
    assert!(!after_snaps.iter().any(|s| s.starts_with(".unpack-")));
    assert!(!root.dir().join("tmp/run-killed").exists());
    // Cache records of the build stage went; those of image layers stayed.
    let after_keys = root.cache().keys().unwrap();
    assert!(after_keys.len() < before_keys.len());
    assert!(!after_keys.is_empty());
    assert!(report.reclaimed_bytes >= 5000, "{report:?}");
    assert!(!report.cache_objects.is_empty());
    // Cache mounts only on request.
    assert!(root.dir().join("cache-mounts/abc/keep").exists());
    // The images are intact: every blob verifies and they still unpack.
    assert!(root.store().verify().unwrap().is_ok());
    let img = kiln_build_engine::resolve_local(root, "app:1").unwrap();
    let lowers = root
        .snapshots()
        .ensure(root.store(), &img.layer_digests().unwrap())
        .unwrap();
    let view = kiln_build_engine::MergedView::new(lowers);
    assert_eq!(view.read("a.txt").unwrap(), b"two");

    // -a: every record, the history and the cache mounts.
    let report = gc::prune(root, &PruneOptions::build_cache().with_all(true)).unwrap();
    assert!(root.cache().keys().unwrap().is_empty());
    assert!(!root.dir().join("cache-mounts/abc").exists());
    assert!(report.cache_objects.iter().any(|o| o == "abc"));
    assert_eq!(images(root).len(), 2);
    let usage = gc::disk_usage(root).unwrap();
    assert_eq!(usage.build_cache.reclaimable, 0, "{usage:?}");
    // A rebuild works from nothing cached.
    let b = Builder::new(root.clone()).with_executor(Arc::new(Writes));
    let r = b
        .build(BuildRequest::new(f.ctx.path()).tag("app:1"))
        .await
        .unwrap();
    assert_eq!(r.cached, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn system_prune_removes_dangling_then_unused_images_never_a_containers() {
    let f = fixture().await;
    let root = &f.root;
    let all = images(root);
    let tagged = all.iter().find(|(_, n)| n.is_some()).unwrap().0.clone();
    let dangling = all.iter().find(|(_, n)| n.is_none()).unwrap().0.clone();

    let report = gc::prune(root, &PruneOptions::system()).unwrap();
    assert_eq!(report.deleted_images, vec![dangling.clone()]);
    assert!(report.untagged.is_empty());
    assert_eq!(images(root).len(), 1);
    assert!(root.store().verify().unwrap().is_ok());

    // A (stopped) container made from app:1: while it exists, `-a` keeps
    // the image and its snapshots.
    let id = "c0ffee".repeat(10) + "c0ff";
    let cdir = root.dir().join("containers").join(&id);
    std::fs::create_dir_all(cdir.join("upper")).unwrap();
    std::fs::write(cdir.join("upper/data"), vec![1u8; 3000]).unwrap();
    std::fs::write(
        cdir.join("container.json"),
        serde_json::json!({
            "id": id, "name": "c0", "image": "app:1", "image_digest": tagged,
            "config_digest": "sha256:00", "config": {}, "created": 1, "state": "exited",
            "pid": null, "pid_start_time": null, "monitor_pid": null,
            "started_at": 1, "exit_code": 0, "finished_at": 2
        })
        .to_string(),
    )
    .unwrap();
    let snaps = snapshots(root);
    let mut keep_containers = PruneOptions::system().with_all(true);
    keep_containers.containers = false;
    let report = gc::prune(root, &keep_containers).unwrap();
    assert!(report.deleted_images.is_empty(), "{report:?}");
    assert_eq!(images(root).len(), 1);
    assert_eq!(snapshots(root), snaps);
    let usage = gc::disk_usage(root).unwrap();
    assert_eq!((usage.images.active, usage.containers.total), (1, 1));
    assert_eq!(usage.containers.reclaimable, 3000, "{usage:?}");
    assert_eq!(usage.images.reclaimable, 0);

    // `system prune -a` removes the stopped container first, then the
    // image it held, untagging it, and everything only it reached.
    let report = gc::prune(root, &PruneOptions::system().with_all(true)).unwrap();
    assert_eq!(report.deleted_containers, vec![id]);
    assert!(!cdir.exists());
    assert_eq!(report.deleted_images, vec![tagged]);
    assert_eq!(report.untagged, vec!["docker.io/library/app:1".to_string()]);
    assert!(images(root).is_empty());
    assert!(snapshots(root).is_empty(), "{:?}", snapshots(root));
    assert!(root.store().blobs().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_running_build_or_an_unknown_container_limits_collection() {
    let f = fixture().await;
    let root = &f.root;
    let snaps = snapshots(root);
    let keys = root.cache().keys().unwrap();
    std::fs::create_dir_all(root.dir().join("tmp/run-live")).unwrap();

    // A build holds the lock: its scratch space, the snapshots and the
    // cache records are left alone.
    let lock = BuildLock::shared(root).unwrap();
    let report = gc::prune(root, &PruneOptions::build_cache().with_all(true)).unwrap();
    assert!(report.limited);
    assert!(root.dir().join("tmp/run-live").exists());
    assert_eq!(snapshots(root), snaps);
    assert_eq!(root.cache().keys().unwrap(), keys);
    drop(lock);

    // A container directory whose record cannot be read: no snapshot goes.
    let mystery = "ab".repeat(32);
    std::fs::create_dir_all(root.dir().join("containers").join(&mystery)).unwrap();
    let report = gc::prune(root, &PruneOptions::build_cache()).unwrap();
    assert!(!report.limited);
    assert_eq!(report.unknown_containers, vec![mystery]);
    assert_eq!(snapshots(root), snaps);
    assert!(!root.dir().join("tmp/run-live").exists());
}
