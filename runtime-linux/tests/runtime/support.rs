//! Shared fixtures: a busybox lower layer made once per test binary, fresh
//! overlay upper/work directories per test, and a runner that captures
//! output.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use kiln_runtime_linux::oci_spec::runtime::Spec;
use kiln_runtime_linux::{Container, ExitStatus, RootFs, RunOptions, Stdio, docker_default_spec};

/// The busybox root filesystem shared (read-only, as a lower) by all tests:
/// made once under Cargo's per-target temporary directory (so nothing is
/// left in /tmp), atomically, so concurrent test processes agree.
pub fn busybox() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("busybox-rootfs");
        if dir.join("bin/sh").symlink_metadata().is_ok() {
            return dir;
        }
        let staging = dir.with_extension(format!("tmp{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        if let Err(e) = kiln_testutil::rootfs::busybox_rootfs(&staging) {
            panic!("making the busybox rootfs in {}: {e}", staging.display());
        }
        // Lost the race to another process: its copy is as good as ours.
        if std::fs::rename(&staging, &dir).is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        dir
    })
}

/// A fresh overlay (upper and work in a new temporary directory) over the
/// busybox lower.
pub struct Overlay {
    pub tmp: tempfile::TempDir,
}

impl Overlay {
    pub fn new() -> Overlay {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        for d in ["upper", "work"] {
            std::fs::create_dir(tmp.path().join(d)).unwrap_or_else(|e| panic!("mkdir {d}: {e}"));
        }
        Overlay { tmp }
    }

    pub fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }

    pub fn rootfs(&self) -> RootFs {
        RootFs::Overlay {
            lowers: vec![busybox().to_path_buf()],
            upper: self.upper(),
            work: self.tmp.path().join("work"),
        }
    }
}

/// Output of one run.
#[derive(Debug)]
pub struct Run {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

pub fn sh(script: &str) -> Spec {
    docker_default_spec(vec!["/bin/sh".into(), "-c".into(), script.into()])
}

pub fn run_with(
    spec: Spec,
    rootfs: RootFs,
    options: RunOptions,
) -> kiln_runtime_linux::Result<Run> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = Container::new(spec, rootfs, options).run(Stdio::new(&mut out, &mut err))?;
    Ok(Run {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    })
}

/// Runs `spec` on a fresh overlay with default options.
pub fn run(spec: Spec) -> Run {
    let ov = Overlay::new();
    match run_with(spec, ov.rootfs(), RunOptions::new()) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {}", error_chain(&e)),
    }
}

pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// Mount points of this process's mount namespace that mention `needle`.
pub fn host_mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}
