//! A private state directory per test (a copy of the shared busybox store)
//! and readers for what the store holds.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::support;

/// A state directory of its own holding `busybox:latest`.
pub struct Fresh {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Fresh {
    pub fn new() -> Fresh {
        let shared = support::root();
        let dir = tempfile::Builder::new()
            .prefix("kiln-images-")
            .tempdir()
            .expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        let st = Command::new("cp")
            .arg("-a")
            .arg(shared.join("store"))
            .arg(root.join("store"))
            .status()
            .expect("cp");
        assert!(st.success(), "copy the busybox store");
        Fresh { _dir: dir, root }
    }

    pub fn kiln(&self, args: &[&str]) -> Output {
        support::kiln_in(&self.root, args)
    }

    /// Runs kiln, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.kiln(args);
        assert!(
            out.status.success(),
            "kiln {args:?} failed:\n{}",
            support::text(&out)
        );
        support::stdout(&out)
    }

    pub fn kiln_stdin(&self, args: &[&str], input: &[u8]) -> Output {
        let mut child = Command::new(support::KILN)
            .args(args)
            .env("KILN_ROOT", &self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn kiln");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(input).expect("write stdin");
        drop(stdin);
        child.wait_with_output().expect("wait kiln")
    }

    pub fn index(&self) -> Vec<Value> {
        let v: Value = serde_json::from_slice(
            &std::fs::read(self.root.join("store/index.json")).expect("index.json"),
        )
        .expect("index json");
        v["manifests"].as_array().expect("manifests").clone()
    }

    /// The stored tags (normalised names).
    pub fn tags(&self) -> Vec<String> {
        self.index()
            .iter()
            .filter_map(|m| {
                m["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    }

    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let (alg, hex) = digest.split_once(':').expect("digest");
        self.root.join("store/blobs").join(alg).join(hex)
    }

    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).is_file()
    }

    pub fn json_blob(&self, digest: &str) -> Value {
        serde_json::from_slice(&std::fs::read(self.blob_path(digest)).expect("blob"))
            .expect("blob json")
    }

    /// Manifest digest of a stored tag.
    pub fn manifest_digest(&self, tag: &str) -> String {
        self.index()
            .iter()
            .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("tag {tag} not in index.json"))["digest"]
            .as_str()
            .expect("digest")
            .to_owned()
    }

    pub fn manifest(&self, tag: &str) -> Value {
        self.json_blob(&self.manifest_digest(tag))
    }

    /// The image ID (config digest) of a stored tag.
    pub fn image_id(&self, tag: &str) -> String {
        self.manifest(tag)["config"]["digest"]
            .as_str()
            .expect("config digest")
            .to_owned()
    }

    pub fn config(&self, tag: &str) -> Value {
        self.json_blob(&self.image_id(tag))
    }
}

/// Splits `docker images`-style output into header and rows of cells
/// (cells are separated by runs of two or more spaces; Docker's tables
/// always pad with at least three).
pub fn table(out: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let split = |l: &str| -> Vec<String> {
        l.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let mut lines = out.lines();
    let header = split(lines.next().expect("header line"));
    (header, lines.map(split).collect())
}

/// A gzip tarball of a busybox root filesystem.
pub fn rootfs_tarball(dir: &Path) -> PathBuf {
    let rootfs = dir.join("rootfs");
    kiln_testutil::rootfs::busybox_rootfs(&rootfs).expect("busybox rootfs");
    let path = dir.join("rootfs.tar.gz");
    let st = Command::new("tar")
        .arg("-C")
        .arg(&rootfs)
        .arg("-czf")
        .arg(&path)
        .arg(".")
        .status()
        .expect("tar");
    assert!(st.success(), "tar the rootfs");
    path
}
