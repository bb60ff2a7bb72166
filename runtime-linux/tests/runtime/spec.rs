//! Specs with Docker's defaults run as Docker runs them.

use crate::support::*;
use kiln_runtime_linux::{docker_default_spec, make_rootless};

#[test]
fn default_mounts_are_in_place() {
    let r = run(sh("mount | awk '{print $3, $5}' | sort"));
    let want = [
        "/dev tmpfs",
        "/dev/mqueue mqueue",
        "/dev/pts devpts",
        "/dev/shm tmpfs",
        "/proc proc",
        "/sys sysfs",
        "/sys/fs/cgroup ",
    ];
    for w in want {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(w)),
            "missing {w:?} in {}",
            r.stdout
        );
    }
    assert!(r.stdout.lines().any(|l| l == "/ overlay"), "{}", r.stdout);
    // Device nodes and links.
    let r = run(sh(
        "ls /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty /dev/ptmx /dev/fd >/dev/null && echo ok; head -c 4 /dev/zero | wc -c",
    ));
    assert_eq!(r.stdout, "ok\n4\n", "{r:?}");
}

#[test]
fn sys_is_read_only() {
    let r = run(sh("grep ' /sys ' /proc/mounts | grep -c ' ro,'"));
    assert_eq!(r.stdout, "1\n");
}

#[test]
fn rootless_spec_is_valid_json_round_trip() {
    let mut spec = docker_default_spec(vec!["/bin/true".into()]);
    make_rootless(&mut spec, 1000, 1000);
    let json = serde_json::to_string(&spec).unwrap_or_default();
    let back: kiln_runtime_linux::oci_spec::runtime::Spec =
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(back, spec);
}
