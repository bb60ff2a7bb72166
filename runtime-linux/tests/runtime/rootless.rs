//! Rootless mode: the test binary re-runs this test as an unprivileged uid
//! (via `setpriv`), which then runs a container in a user namespace.

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use crate::support::*;
use kiln_runtime_linux::{RunOptions, make_rootless};

const UID: u32 = 4242;
const ENV: &str = "KILN_RUNTIME_ROOTLESS_CHILD";

#[test]
fn unprivileged_user_runs_a_container() {
    if std::env::var_os(ENV).is_some() {
        return in_child();
    }
    assert_eq!(
        rustix_uid(),
        0,
        "the test suite runs as root and drops to uid {UID} itself"
    );
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("setpriv")
        .args([
            format!("--reuid={UID}"),
            format!("--regid={UID}"),
            "--clear-groups".into(),
        ])
        .arg(&exe)
        .args([
            "--exact",
            "rootless::unprivileged_user_runs_a_container",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ENV, "1")
        .env("TMPDIR", "/tmp")
        .output()
        .unwrap_or_else(|e| panic!("setpriv: {e} (apt-get install util-linux)"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "rootless run failed:\n{text}");
    assert!(
        text.contains("ROOTLESS-OK"),
        "the child did not run the container:\n{text}"
    );
}

fn rustix_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(u32::MAX)
}

fn in_child() {
    assert_eq!(rustix_uid(), UID);
    // As for podman, the image must be owned by ids mapped into the user
    // namespace: the child makes its own busybox lower (owned by UID).
    let lower = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    kiln_testutil::rootfs::busybox_rootfs(lower.path()).unwrap_or_else(|e| panic!("{e}"));
    let ov = Overlay::new();
    let rootfs = kiln_runtime_linux::RootFs::Overlay {
        lowers: vec![lower.path().to_path_buf()],
        upper: ov.upper(),
        work: ov.tmp.path().join("work"),
    };
    let mut spec =
        sh("id -u; touch /tmp/made; grep -c . /proc/self/uid_map; ls /sys/class/net; hostname");
    make_rootless(&mut spec, UID, UID);
    let r =
        run_with(spec, rootfs, RunOptions::new()).unwrap_or_else(|e| panic!("{}", error_chain(&e)));
    assert_eq!(r.stdout, "0\n1\nlo\nkiln\n", "{r:?}");
    // Root in the container is uid 4242 on the host.
    let meta = std::fs::metadata(ov.upper().join("tmp/made")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(meta.uid(), UID);
    // overlayfs makes work/work mode 000; as an unprivileged owner we must
    // open it up before the temporary directory can be removed.
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(
        ov.tmp.path().join("work/work"),
        std::fs::Permissions::from_mode(0o700),
    );
    println!("ROOTLESS-OK");
}
