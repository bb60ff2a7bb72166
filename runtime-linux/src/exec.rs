//! `docker exec`: run another process inside a running container.
//!
//! The process joins the container's namespaces with `setns(2)` on
//! `/proc/PID/ns/*` (the user namespace first, as runc's `nsexec` does),
//! joins its cgroups, and is then forked so that it lives inside the
//! container's pid namespace (`setns` on a pid namespace only applies to
//! children). Joining the mount namespace also moves the root directory to
//! the container's root, so no `chroot` is needed. Credentials,
//! capabilities, no_new_privs, the seccomp filter, rlimits, the working
//! directory and the standard streams (pipes, or a pty opened in the
//! container's devpts) are set up exactly as for the container's first
//! process, from the spec given.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::container::{Container, ExitStatus, RootFs, RunOptions, Stdio};
use crate::error::{Error, Result};

/// The name of a namespace type under `/proc/PID/ns/` and its `CLONE_NEW*`
/// flag.
fn ns_file(t: LinuxNamespaceType) -> Option<(&'static str, libc::c_int)> {
    Some(match t {
        LinuxNamespaceType::User => ("user", libc::CLONE_NEWUSER),
        LinuxNamespaceType::Mount => ("mnt", libc::CLONE_NEWNS),
        LinuxNamespaceType::Uts => ("uts", libc::CLONE_NEWUTS),
        LinuxNamespaceType::Ipc => ("ipc", libc::CLONE_NEWIPC),
        LinuxNamespaceType::Network => ("net", libc::CLONE_NEWNET),
        LinuxNamespaceType::Pid => ("pid", libc::CLONE_NEWPID),
        LinuxNamespaceType::Cgroup => ("cgroup", libc::CLONE_NEWCGROUP),
        LinuxNamespaceType::Time => return None,
    })
}

/// Opens `/proc/PID/ns/<name>` for each namespace the spec creates, user
/// namespace first.
fn open_namespaces(pid: i32, spec: &Spec) -> Result<Vec<(OwnedFd, libc::c_int)>> {
    let mut types: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .iter()
        .filter(|n| n.path().is_none())
        .map(|n| n.typ())
        .collect();
    // The user namespace grants the capabilities needed to join the others.
    types.sort_by_key(|t| *t != LinuxNamespaceType::User);
    let mut out = Vec::new();
    for t in types {
        let Some((name, flag)) = ns_file(t) else {
            continue;
        };
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let own = fs::read_link(format!("/proc/self/ns/{name}")).ok();
        let theirs = fs::read_link(&path).map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        // Joining one's own user namespace is EINVAL; the others are
        // harmless but pointless.
        if own.as_ref() == Some(&theirs) {
            continue;
        }
        let file = fs::File::open(&path).map_err(|source| Error::Read { path, source })?;
        out.push((OwnedFd::from(file), flag));
    }
    Ok(out)
}

/// The `cgroup.procs` files of the cgroups of `pid` that differ from this
/// process's own (cgroup v2's unified hierarchy, or each v1 hierarchy).
fn open_cgroups(pid: i32) -> Result<Vec<OwnedFd>> {
    let read = |p: String| -> Result<String> {
        fs::read_to_string(&p).map_err(|source| Error::Read {
            path: p.into(),
            source,
        })
    };
    let theirs = read(format!("/proc/{pid}/cgroup"))?;
    let ours = read("/proc/self/cgroup".to_string())?;
    let mut out = Vec::new();
    for line in theirs.lines() {
        if ours.lines().any(|l| l == line) {
            continue;
        }
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let dir = if controllers.is_empty() {
            PathBuf::from("/sys/fs/cgroup")
        } else {
            PathBuf::from("/sys/fs/cgroup").join(controllers.trim_start_matches("name="))
        };
        let procs = dir.join(path.trim_start_matches('/')).join("cgroup.procs");
        match fs::OpenOptions::new().write(true).open(&procs) {
            Ok(f) => out.push(OwnedFd::from(f)),
            // A v1 hierarchy that is not mounted where expected: the
            // process stays in ours for that controller.
            Err(e) if e.kind() == io::ErrorKind::NotFound && !controllers.is_empty() => {}
            Err(source) => {
                return Err(Error::Write {
                    path: procs,
                    source,
                });
            }
        }
    }
    Ok(out)
}

/// Runs `spec.process` inside the running container whose first process
/// is `pid` (as [`Control::pid`](crate::Control::pid) reported it), like
/// `docker exec`, and returns how it ended.
///
/// `spec` should be the container's own spec with the process replaced:
/// its `linux.namespaces` say which namespaces to join, and its
/// capabilities, no_new_privs, seccomp profile and rlimits apply to the
/// new process. Mounts, hostname, masked paths and resources of the spec
/// are ignored (the container already has them). [`RunOptions::user`]
/// is resolved in the container's `/etc/passwd`; [`RunOptions::control`]
/// forwards signals and terminal sizes; [`RunOptions::init`] is implied.
///
/// # Errors
/// The container is not running ([`Error::Read`] on `/proc/PID/ns/*`), a
/// namespace or cgroup cannot be joined ([`Error::Setup`]), or the command
/// cannot be executed ([`Error::Exec`]).
///
/// # Example
/// ```no_run
/// use kiln_runtime_linux::{docker_default_spec, exec_in, RunOptions, Stdio};
/// # fn main() -> Result<(), kiln_runtime_linux::Error> {
/// # let container_pid = 1234;
/// let spec = docker_default_spec(vec!["cat".into(), "/etc/hostname".into()]);
/// let (mut out, mut err) = (Vec::new(), Vec::new());
/// let status = exec_in(container_pid, spec, RunOptions::new(), Stdio::new(&mut out, &mut err))?;
/// assert!(status.success());
/// # Ok(()) }
/// ```
pub fn exec_in(pid: i32, spec: Spec, options: RunOptions, stdio: Stdio<'_>) -> Result<ExitStatus> {
    let namespaces = open_namespaces(pid, &spec)?;
    let cgroups = open_cgroups(pid)?;
    let mut spec = spec;
    spec.set_mounts(Some(Vec::new()));
    let mut options = options;
    options.etc_files = false;
    let container = Container::new(
        spec,
        RootFs::Dir(PathBuf::from(format!("/proc/{pid}/root"))),
        options,
    );
    container.run_joined(namespaces, cgroups, stdio)
}
