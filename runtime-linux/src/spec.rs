//! Runtime specs with Docker's defaults, and the capability numbering the
//! kernel uses.

use std::collections::HashSet;

use oci_spec::runtime::{
    Capability, LinuxCapabilities, LinuxIdMappingBuilder, LinuxNamespace, LinuxNamespaceType,
    Mount, Process, Root, Spec,
};

/// The network a container gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Network {
    /// A new, empty network namespace with only `lo`, brought up (Docker's
    /// `--network none`; the default).
    #[default]
    None,
    /// The host's network namespace (`--network host`).
    Host,
}

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT_CAPS: [Capability; 14] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// Paths Docker hides from containers (moby `oci/defaults.go`).
pub const DOCKER_MASKED_PATHS: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker makes read-only in containers (moby `oci/defaults.go`).
pub const DOCKER_READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The `PATH` Docker sets when the image does not.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The kernel's number for a capability (`linux/capability.h`).
pub fn capability_number(cap: Capability) -> u32 {
    use Capability as C;
    match cap {
        C::Chown => 0,
        C::DacOverride => 1,
        C::DacReadSearch => 2,
        C::Fowner => 3,
        C::Fsetid => 4,
        C::Kill => 5,
        C::Setgid => 6,
        C::Setuid => 7,
        C::Setpcap => 8,
        C::LinuxImmutable => 9,
        C::NetBindService => 10,
        C::NetBroadcast => 11,
        C::NetAdmin => 12,
        C::NetRaw => 13,
        C::IpcLock => 14,
        C::IpcOwner => 15,
        C::SysModule => 16,
        C::SysRawio => 17,
        C::SysChroot => 18,
        C::SysPtrace => 19,
        C::SysPacct => 20,
        C::SysAdmin => 21,
        C::SysBoot => 22,
        C::SysNice => 23,
        C::SysResource => 24,
        C::SysTime => 25,
        C::SysTtyConfig => 26,
        C::Mknod => 27,
        C::Lease => 28,
        C::AuditWrite => 29,
        C::AuditControl => 30,
        C::Setfcap => 31,
        C::MacOverride => 32,
        C::MacAdmin => 33,
        C::Syslog => 34,
        C::WakeAlarm => 35,
        C::BlockSuspend => 36,
        C::AuditRead => 37,
        C::Perfmon => 38,
        C::Bpf => 39,
        C::CheckpointRestore => 40,
    }
}

/// Bit mask (bit n = capability n) of a capability set.
pub(crate) fn cap_mask<'a>(caps: impl IntoIterator<Item = &'a Capability>) -> u64 {
    caps.into_iter()
        .fold(0, |m, c| m | 1u64 << capability_number(*c))
}

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Mount {
    let mut m = Mount::default();
    m.set_destination(dest.into());
    m.set_typ(Some(typ.to_string()));
    m.set_source(Some(source.into()));
    m.set_options(Some(options.iter().map(|s| (*s).to_string()).collect()));
    m
}

/// Docker's default mounts (moby `oci/defaults.go`): `/proc`, `/dev`,
/// `/dev/pts` (new instance), `/sys` read-only, `/sys/fs/cgroup`
/// read-only, `/dev/mqueue`, `/dev/shm` (64 MiB).
pub fn docker_default_mounts() -> Vec<Mount> {
    vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"]),
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        ),
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["ro", "nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=67108864"],
        ),
    ]
}

fn namespace(typ: LinuxNamespaceType) -> LinuxNamespace {
    let mut ns = LinuxNamespace::default();
    ns.set_typ(typ);
    ns
}

/// A runtime spec with Docker's defaults for running `args`: pid, ipc, uts,
/// mount and network (`none`) namespaces; Docker's mounts, capability set
/// (bounding, effective, permitted), masked and read-only paths and default
/// seccomp profile; `PATH` set; working directory `/`; root user;
/// hostname `kiln`; no new privileges off (as BuildKit runs build steps).
///
/// The root filesystem is not part of the result: it is given to
/// [`crate::Container::new`] (and `root.path` is `rootfs`, as in a bundle).
pub fn docker_default_spec(args: Vec<String>) -> Spec {
    let mut spec = Spec::default();
    spec.set_hostname(Some("kiln".to_string()));
    spec.set_mounts(Some(docker_default_mounts()));
    spec.set_annotations(None);
    let mut root = Root::default();
    root.set_readonly(Some(false));
    spec.set_root(Some(root));

    let mut process = Process::default();
    process.set_args(Some(args));
    process.set_env(Some(vec![format!("PATH={DEFAULT_PATH}")]));
    process.set_cwd("/".into());
    process.set_terminal(Some(false));
    process.set_no_new_privileges(Some(false));
    process.set_rlimits(None);
    let set: HashSet<Capability> = DOCKER_DEFAULT_CAPS.into_iter().collect();
    let mut caps = LinuxCapabilities::default();
    caps.set_bounding(Some(set.clone()));
    caps.set_effective(Some(set.clone()));
    caps.set_permitted(Some(set));
    caps.set_inheritable(None);
    caps.set_ambient(None);
    process.set_capabilities(Some(caps));
    spec.set_process(Some(process));

    if let Some(linux) = spec.linux_mut() {
        linux.set_namespaces(Some(
            [
                LinuxNamespaceType::Pid,
                LinuxNamespaceType::Ipc,
                LinuxNamespaceType::Uts,
                LinuxNamespaceType::Mount,
                LinuxNamespaceType::Network,
            ]
            .into_iter()
            .map(namespace)
            .collect(),
        ));
        linux.set_masked_paths(Some(
            DOCKER_MASKED_PATHS
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        ));
        linux.set_readonly_paths(Some(
            DOCKER_READONLY_PATHS
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        ));
        linux.set_seccomp(Some(crate::seccomp::docker_default_seccomp(
            &DOCKER_DEFAULT_CAPS,
        )));
        linux.set_resources(None);
        linux.set_devices(None);
        linux.set_uid_mappings(None);
        linux.set_gid_mappings(None);
    }
    spec
}

/// Selects the container's network: a new namespace with only `lo`, or the
/// host's.
pub fn set_network(spec: &mut Spec, network: Network) {
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    namespaces.retain(|n| n.typ() != LinuxNamespaceType::Network);
    if network == Network::None {
        namespaces.push(namespace(LinuxNamespaceType::Network));
    }
    linux.set_namespaces(Some(namespaces));
}

/// Adapts `spec` for a container run by an unprivileged user, as
/// `runc spec --rootless` does: a user namespace mapping container root to
/// `host_uid`/`host_gid` (one id each, which needs no helper binaries), no
/// `gid=5` on `/dev/pts` (gid 5 is not mapped), no cgroup limits.
pub fn make_rootless(spec: &mut Spec, host_uid: u32, host_gid: u32) {
    let map = |host: u32| {
        LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(host)
            .size(1u32)
            .build()
            .ok()
    };
    if let Some(mounts) = spec.mounts_mut() {
        for m in mounts.iter_mut() {
            if let Some(opts) = m.options().clone() {
                m.set_options(Some(opts.into_iter().filter(|o| o != "gid=5").collect()));
            }
        }
    }
    let Some(linux) = spec.linux_mut() else {
        return;
    };
    let mut namespaces = linux.namespaces().clone().unwrap_or_default();
    if !namespaces
        .iter()
        .any(|n| n.typ() == LinuxNamespaceType::User)
    {
        namespaces.push(namespace(LinuxNamespaceType::User));
    }
    linux.set_namespaces(Some(namespaces));
    linux.set_uid_mappings(map(host_uid).map(|m| vec![m]));
    linux.set_gid_mappings(map(host_gid).map(|m| vec![m]));
    linux.set_resources(None);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_caps_mask() {
        // CapBnd of `docker run busybox grep Cap /proc/self/status`.
        assert_eq!(cap_mask(DOCKER_DEFAULT_CAPS.iter()), 0x00000000a80425fb);
    }

    #[test]
    fn network_and_rootless_edit_namespaces() {
        let mut spec = docker_default_spec(vec!["true".into()]);
        let has = |s: &Spec, t| {
            s.linux()
                .as_ref()
                .and_then(|l| l.namespaces().clone())
                .unwrap_or_default()
                .iter()
                .any(|n| n.typ() == t)
        };
        assert!(has(&spec, LinuxNamespaceType::Network));
        set_network(&mut spec, Network::Host);
        assert!(!has(&spec, LinuxNamespaceType::Network));
        make_rootless(&mut spec, 1000, 1000);
        assert!(has(&spec, LinuxNamespaceType::User));
        let pts = spec
            .mounts()
            .iter()
            .flatten()
            .find(|m| m.destination().to_str() == Some("/dev/pts"));
        assert!(pts.is_some_and(|m| !m.options().iter().flatten().any(|o| o == "gid=5")));
    }
}
