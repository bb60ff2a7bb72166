//! OCI bundles: written by kiln, run by kiln, runc and crun alike.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use kiln_runtime_linux::{Bundle, ExitStatus, RunOptions, Stdio};

const SCRIPT: &str = "id -u; hostname; grep -E '^(CapEff|Seccomp|NoNewPrivs):' /proc/self/status; ls /sys/class/net; echo $$";

fn write_bundle(dir: &Path) -> Bundle {
    let mut spec = sh(SCRIPT);
    spec.set_hostname(Some("bundled".into()));
    let bundle = Bundle::write(dir, &spec).unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let status = Command::new("cp")
        .args([
            "-a",
            &format!("{}/.", busybox().display()),
            &bundle.rootfs().display().to_string(),
        ])
        .status()
        .unwrap_or_else(|e| panic!("cp: {e}"));
    assert!(status.success());
    bundle
}

fn expected() -> String {
    "0\nbundled\nCapEff:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\nlo\n1\n".to_string()
}

fn sorted(s: &str) -> String {
    let mut v: Vec<&str> = s.lines().collect();
    v.sort();
    v.join("\n")
}

#[test]
fn kiln_runs_a_bundle_it_wrote_and_loaded() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("b");
    write_bundle(&dir);
    let bundle = Bundle::load(&dir).unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = bundle
        .container(RunOptions::new())
        .run(Stdio::new(&mut out, &mut err))
        .unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(
        status,
        ExitStatus::Exited(0),
        "{}",
        String::from_utf8_lossy(&err)
    );
    assert_eq!(sorted(&String::from_utf8_lossy(&out)), sorted(&expected()));
}

fn runtime_output(cmd: &mut Command, what: &str) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {what}: {e} (apt-get install {what})"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn runc_runs_the_same_bundle() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("b");
    write_bundle(&dir);
    let id = format!("kiln-test-runc-{}", std::process::id());
    let out = runtime_output(
        Command::new("runc").args(["run", "-b"]).arg(&dir).arg(&id),
        "runc",
    );
    assert_eq!(sorted(&out), sorted(&expected()));
}

#[test]
fn crun_runs_the_same_bundle_on_a_legacy_cgroup_view() {
    let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let dir = tmp.path().join("b");
    write_bundle(&dir);
    let id = format!("kiln-test-crun-{}", std::process::id());
    // crun 1.8 refuses hybrid cgroup hosts; hide the v2 mount in a private
    // mount namespace (as /work/shared/bench/anchors.sh does).
    let out = runtime_output(
        Command::new("unshare")
            .args(["-m", "--propagation", "private", "--", "sh", "-c"])
            .arg("umount /sys/fs/cgroup/unified 2>/dev/null; exec crun run -b \"$0\" \"$1\"")
            .arg(&dir)
            .arg(&id),
        "crun",
    );
    assert_eq!(sorted(&out), sorted(&expected()));
}
