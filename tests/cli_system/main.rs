#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]
//! End-to-end tests of `kiln system prune|df` and `kiln builder prune`:
//! the real binary on a state directory filled by `kiln build`, asserting
//! Docker's output and what is left in the store.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const KILN: &str = env!("CARGO_BIN_EXE_kiln");

fn kiln(root: &Path, args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(KILN)
        .args(args)
        .env("KILN_ROOT", root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kiln");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for kiln")
}

fn ok(root: &Path, args: &[&str]) -> String {
    let out = kiln(root, args, "");
    assert!(
        out.status.success(),
        "kiln {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Images in index.json: (digest, tag).
fn index(root: &Path) -> Vec<(String, Option<String>)> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("store/index.json")).unwrap()).unwrap();
    v["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["digest"].as_str().unwrap().to_string(),
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(String::from),
            )
        })
        .collect()
}

fn df_row<'a>(df: &'a str, ty: &str) -> Vec<&'a str> {
    let line = df.lines().find(|l| l.starts_with(ty)).unwrap();
    line[ty.len()..].split_whitespace().collect()
}

/// A two-stage build (its first stage's layer is only build cache),
/// built twice with a change so that the first image is dangling.
fn setup() -> (tempfile::TempDir, tempfile::TempDir) {
    let ctx = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM scratch AS build\nCOPY big.bin /big.bin\n\nFROM scratch\nCOPY --from=build /big.bin /app/big.bin\nCOPY a.txt /a.txt\n",
    )
    .unwrap();
    // Incompressible, so sizes are visible after gzip.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let big: Vec<u8> = (0..400_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(ctx.path().join("big.bin"), big).unwrap();
    for content in ["one", "two"] {
        std::fs::write(ctx.path().join("a.txt"), content).unwrap();
        let c = ctx.path().to_str().unwrap();
        ok(
            state.path(),
            &["build", "--progress=quiet", "-t", "app:1", c],
        );
    }
    (ctx, state)
}

#[test]
fn df_shows_docker_columns_and_builder_prune_asks_then_drops_cache_only() {
    let (_ctx, state) = setup();
    let root = state.path();
    let df = ok(root, &["system", "df"]);
    let header: Vec<&str> = df.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]);
    let images = df_row(&df, "Images");
    assert_eq!(&images[..2], ["2", "0"], "{df}");
    assert_eq!(df_row(&df, "Containers")[..4], ["0", "0", "0B", "0B"]);
    assert_eq!(df_row(&df, "Local Volumes"), ["0", "0", "0B", "0B"]);
    let cache = df_row(&df, "Build Cache");
    assert_ne!(
        cache[3], "0B",
        "the build stage's layer is reclaimable: {df}"
    );

    // Answering no removes nothing.
    let before = std::fs::read_dir(root.join("cache/keys")).unwrap().count();
    let out = kiln(root, &["builder", "prune"], "n\n");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "WARNING! This will remove all dangling build cache. Are you sure you want to continue? [y/N] "
        ),
        "{text}"
    );
    assert!(!text.contains("Total reclaimed space"));
    assert_eq!(
        std::fs::read_dir(root.join("cache/keys")).unwrap().count(),
        before
    );

    // Yes: the cache-only layer goes, images stay.
    let out = kiln(root, &["builder", "prune"], "y\n");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Deleted build cache objects:\n"), "{text}");
    let total = text
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap();
    assert!(total.ends_with("kB") || total.ends_with("MB"), "{total}");
    assert!(std::fs::read_dir(root.join("cache/keys")).unwrap().count() < before);
    assert_eq!(index(root).len(), 2);

    // Nothing left to prune: 0B; `buildx prune` is the same command.
    let text = ok(root, &["buildx", "prune", "-f"]);
    assert_eq!(text, "Total reclaimed space: 0B\n");
    let df = ok(root, &["system", "df"]);
    assert_eq!(df_row(&df, "Images")[0], "2");
}

#[test]
fn system_prune_removes_dangling_images_then_all_with_a() {
    let (ctx, state) = setup();
    let root = state.path();
    let images = index(root);
    let dangling = images.iter().find(|(_, t)| t.is_none()).unwrap().0.clone();
    let tagged = images.iter().find(|(_, t)| t.is_some()).unwrap().0.clone();

    let out = kiln(root, &["system", "prune"], "y\n");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with(
            "WARNING! This will remove:\n  - all stopped containers\n  - all dangling images\n  - unused build cache\n\nAre you sure you want to continue? [y/N] "
        ),
        "{text}"
    );
    assert!(
        text.contains(&format!("Deleted Images:\ndeleted: {dangling}\n")),
        "{text}"
    );
    assert!(text.contains("Total reclaimed space: "));
    assert_eq!(
        index(root),
        vec![(tagged.clone(), Some("docker.io/library/app:1".into()))]
    );

    // -a -f: no prompt; the tagged image is untagged and deleted, its
    // blobs and snapshots go too.
    let text = ok(root, &["system", "prune", "-a", "-f"]);
    assert!(!text.contains("[y/N]"));
    assert!(
        text.contains(&format!(
            "Deleted Images:\nuntagged: docker.io/library/app:1\ndeleted: {tagged}\n"
        )),
        "{text}"
    );
    assert!(index(root).is_empty());
    let blobs = std::fs::read_dir(root.join("store/blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    assert_eq!(
        std::fs::read_dir(root.join("snapshots")).unwrap().count(),
        0
    );
    let df = ok(root, &["system", "df"]);
    assert_eq!(df_row(&df, "Images"), ["0", "0", "0B", "0B"]);
    assert_eq!(df_row(&df, "Build Cache")[3], "0B", "{df}");

    // The build works again from an empty store.
    let c = ctx.path().to_str().unwrap();
    ok(root, &["build", "--progress=quiet", "-t", "app:1", c]);
    assert_eq!(index(root).len(), 1);
}
