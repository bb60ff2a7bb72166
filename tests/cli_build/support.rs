//! Shared set-up: one state directory per test binary holding the busybox
//! base image, and helpers to run kiln and read images from the store.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

pub const KILN: &str = env!("CARGO_BIN_EXE_kiln");

/// The shared state dir with `busybox:latest` built from the host busybox.
pub fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        // The directory outlives this process (a static is never dropped):
        // name it after the pid and remove those of test processes that
        // are gone, so repeated runs do not fill the disk.
        remove_stale_roots();
        let dir = tempfile::Builder::new()
            .prefix(&format!("kiln-e2e-{}-", std::process::id()))
            .tempdir()
            .expect("create state dir")
            .keep();
        let ctx = dir.join("busybox-ctx");
        std::fs::create_dir_all(&ctx).expect("mkdir");
        assert!(
            Path::new("/bin/busybox").exists(),
            "/bin/busybox is missing: apt-get install busybox-static"
        );
        std::fs::copy("/bin/busybox", ctx.join("busybox")).expect("copy busybox");
        let df = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/busybox/Dockerfile"
        ))
        .expect("read examples/busybox/Dockerfile");
        std::fs::write(ctx.join("Dockerfile"), df).expect("write Dockerfile");
        let out = kiln_in(
            &dir,
            &[
                "build",
                "--progress=plain",
                "-t",
                "busybox",
                ctx.to_str().expect("utf8"),
            ],
        );
        assert!(
            out.status.success(),
            "building the busybox base failed:\n{}",
            text(&out)
        );
        dir
    })
}

/// Removes `kiln-e2e-<pid>-*` directories whose process no longer runs.
fn remove_stale_roots() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("kiln-e2e-")
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

pub fn kiln_in(root: &Path, args: &[&str]) -> Output {
    Command::new(KILN)
        .args(args)
        .env("KILN_ROOT", root)
        .env_remove("SOURCE_DATE_EPOCH")
        .output()
        .expect("run kiln")
}

/// Runs kiln against the shared root.
pub fn kiln(args: &[&str]) -> Output {
    kiln_in(root(), args)
}

pub fn kiln_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut c = Command::new(KILN);
    c.args(args).env("KILN_ROOT", root());
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().expect("run kiln")
}

// Other test binaries include this file with #[path] and use only some.
#[allow(unused_imports)]
pub use kiln_testutil::cli::{context, stdout, text};

/// Builds `ctx` as `tag`, asserting success; returns the output.
pub fn build(tag: &str, ctx: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["build", "--progress=plain", "-t", tag];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().expect("utf8"));
    let out = kiln(&args);
    assert!(out.status.success(), "kiln build failed:\n{}", text(&out));
    out
}

fn blob(digest: &str) -> Vec<u8> {
    let (alg, hex) = digest.split_once(':').expect("digest");
    std::fs::read(root().join("store/blobs").join(alg).join(hex)).expect("read blob")
}

/// The manifest tagged `tag` (normalised name).
pub fn manifest(tag: &str) -> Value {
    let index: Value =
        serde_json::from_slice(&std::fs::read(root().join("store/index.json")).expect("index"))
            .expect("json");
    let d = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap_or_else(|| panic!("tag {tag} not in index.json"))["digest"]
        .as_str()
        .expect("digest")
        .to_string();
    serde_json::from_slice(&blob(&d)).expect("manifest json")
}

pub fn has_tag(tag: &str) -> bool {
    let index: Value =
        serde_json::from_slice(&std::fs::read(root().join("store/index.json")).expect("index"))
            .expect("json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .any(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
}

/// The config of the image tagged `tag`.
pub fn config(tag: &str) -> Value {
    let m = manifest(tag);
    serde_json::from_slice(&blob(
        m["config"]["digest"].as_str().expect("config digest"),
    ))
    .expect("config json")
}

/// The files of layer `i` of `tag`: path -> (mode, uid, content).
pub fn layer_files(tag: &str, i: usize) -> Vec<(String, u32, u64, Vec<u8>)> {
    let m = manifest(tag);
    let d = m["layers"][i]["digest"].as_str().expect("layer digest");
    let data = blob(d);
    let reader: Box<dyn Read> = if data.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::read::GzDecoder::new(&data[..]))
    } else if data.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::stream::read::Decoder::new(&data[..]).expect("zstd"))
    } else {
        Box::new(&data[..])
    };
    let mut ar = tar::Archive::new(reader);
    let mut out = Vec::new();
    for e in ar.entries().expect("entries") {
        let mut e = e.expect("entry");
        let path = e.path().expect("path").to_string_lossy().into_owned();
        let mode = e.header().mode().expect("mode");
        let uid = e.header().uid().expect("uid");
        let mut content = Vec::new();
        e.read_to_end(&mut content).expect("read entry");
        out.push((path, mode, uid, content));
    }
    out
}

/// Digest of the manifest tagged `tag`.
pub fn manifest_digest(tag: &str) -> String {
    let index: Value =
        serde_json::from_slice(&std::fs::read(root().join("store/index.json")).expect("index"))
            .expect("json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag")["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}
