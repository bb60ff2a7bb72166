//! The default seccomp profile, loaded by the kernel for real.

use crate::support::*;
use kiln_runtime_linux::oci_spec::runtime::Capability;
use kiln_runtime_linux::{DOCKER_DEFAULT_CAPS, docker_default_seccomp};

#[test]
fn filter_is_installed() {
    let r = run(sh("grep -E '^Seccomp(_filters)?:' /proc/self/status"));
    assert_eq!(r.stdout, "Seccomp:\t2\nSeccomp_filters:\t1\n", "{r:?}");
}

/// Creating a user namespace needs no capability at all, so only the
/// filter can stop `unshare -U` (clone/unshare with CLONE_NEWUSER).
#[test]
fn namespace_creation_is_blocked_by_the_filter_alone() {
    let script = "unshare -U true 2>/dev/null; echo $?";
    assert_eq!(run(sh(script)).stdout, "1\n");
    let mut spec = sh(script);
    if let Some(l) = spec.linux_mut() {
        l.set_seccomp(None);
    }
    assert_eq!(run(spec).stdout, "0\n");
}

/// With CAP_SYS_ADMIN granted but the profile built for Docker's default
/// capabilities, `mount` is refused by the filter (EPERM), while the same
/// capability without the filter mounts.
#[test]
fn mount_without_sys_admin_in_the_profile_is_blocked() {
    let script = "mkdir -p /mnt/t; mount -t tmpfs none /mnt/t 2>/dev/null; echo $?";
    let with_sys_admin = |profile_caps: Option<&[Capability]>| {
        let mut spec = sh(script);
        if let Some(p) = spec.process_mut()
            && let Some(mut caps) = p.capabilities().clone()
        {
            let mut all = caps.bounding().clone().unwrap_or_default();
            all.insert(Capability::SysAdmin);
            caps.set_bounding(Some(all.clone()));
            caps.set_effective(Some(all.clone()));
            caps.set_permitted(Some(all));
            p.set_capabilities(Some(caps));
        }
        if let Some(l) = spec.linux_mut() {
            l.set_seccomp(profile_caps.map(docker_default_seccomp));
        }
        run(spec).stdout
    };
    assert_eq!(with_sys_admin(Some(&DOCKER_DEFAULT_CAPS)), "1\n");
    assert_eq!(with_sys_admin(None), "0\n");
    let mut caps = DOCKER_DEFAULT_CAPS.to_vec();
    caps.push(Capability::SysAdmin);
    assert_eq!(with_sys_admin(Some(&caps)), "0\n");
}

#[test]
fn personality_and_vsock_rules_apply() {
    // `setarch linux32` calls personality(PER_LINUX32 = 8), which Docker
    // allows; `uname -m` then reports i686.
    let r = run(sh("setarch linux32 uname -m 2>&1 || linux32 uname -m 2>&1"));
    assert!(
        r.stdout.contains("i686") || r.stdout.contains("not found"),
        "{r:?}"
    );
}
