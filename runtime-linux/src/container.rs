//! The public entry point: [`Container`], its inputs and its outcome, and
//! the parent's side of a run (plan, spawn, stream, wait, clean up).

use std::ffi::CString;
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxNamespaceType, Mount, Spec};
use rustix::event::{PollFd, PollFlags};
use rustix::process::{Pid, PidfdFlags, Signal, WaitIdOptions};

use crate::cgroup::{self, Cgroup, Limits};
use crate::child::{self, CapSets, ChildPlan, Fixed, Op};
use crate::error::{Error, Result};
use crate::spec::{DEFAULT_PATH, cap_mask};
use crate::user::resolve_user;

/// The container's root filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootFs {
    /// A directory used as it is (bind-mounted); writes go to it.
    Dir(PathBuf),
    /// An overlay of read-only `lowers` (first is the top-most, as in
    /// overlayfs' `lowerdir=`) under a writable `upper`; `work` is the empty
    /// directory overlayfs needs on the same filesystem as `upper`. The
    /// container's writes land in `upper`, which the build engine turns into
    /// a layer. The overlay is mounted inside the container's own mount
    /// namespace only, so it disappears with the container.
    Overlay {
        /// Read-only layers, top-most first.
        lowers: Vec<PathBuf>,
        /// Writable layer.
        upper: PathBuf,
        /// overlayfs work directory.
        work: PathBuf,
    },
}

impl RootFs {
    /// Resolves a Docker `USER` string (`name`, `uid`, `name:group`,
    /// `uid:gid`) against this root filesystem's `/etc/passwd` and
    /// `/etc/group` (in an overlay, the upper directory first, then the
    /// lowers), with supplementary groups.
    pub fn resolve_user(&self, user: &str) -> Result<crate::user::User> {
        resolve_user(
            user,
            &self.read_file("etc/passwd")?,
            &self.read_file("etc/group")?,
        )
    }

    /// Reads a file of the root filesystem (empty when missing), as the
    /// container would see it: in an overlay, the upper directory first,
    /// then the lowers in order; symbolic links are resolved inside the
    /// root filesystem, never on the host.
    pub(crate) fn read_file(&self, rel: &str) -> Result<String> {
        let layers: Vec<&Path> = match self {
            RootFs::Dir(d) => vec![d.as_path()],
            RootFs::Overlay { lowers, upper, .. } => std::iter::once(upper.as_path())
                .chain(lowers.iter().map(PathBuf::as_path))
                .collect(),
        };
        let Some(path) = resolve_in_layers(&layers, rel) else {
            return Ok(String::new());
        };
        match fs::read(&path) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).into_owned()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(String::new()),
            Err(source) => Err(Error::Read { path, source }),
        }
    }
}

/// Finds the host path of container path `rel` in a stack of layers (top
/// first), following symbolic links within the stack (at most 40, as the
/// kernel). `None` when missing, hidden by a whiteout, or not a regular
/// file.
fn resolve_in_layers(layers: &[&Path], rel: &str) -> Option<PathBuf> {
    use std::os::unix::fs::FileTypeExt;
    let mut todo: Vec<String> = rel
        .split('/')
        .filter(|c| !c.is_empty())
        .rev()
        .map(String::from)
        .collect();
    let mut cur: Vec<String> = Vec::new();
    let mut links = 0;
    while let Some(comp) = todo.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur.pop();
                continue;
            }
            _ => {}
        }
        cur.push(comp);
        let inner: PathBuf = cur.iter().collect();
        let (host, meta) = layers.iter().find_map(|l| {
            let p = l.join(&inner);
            p.symlink_metadata().ok().map(|m| (p, m))
        })?;
        let ft = meta.file_type();
        if ft.is_char_device() && meta.rdev() == 0 {
            return None; // whiteout
        }
        if ft.is_symlink() {
            links += 1;
            if links > 40 {
                return None;
            }
            let target = fs::read_link(&host).ok()?;
            let target = target.to_string_lossy().into_owned();
            cur.pop();
            if target.starts_with('/') {
                cur.clear();
            }
            todo.extend(
                target
                    .split('/')
                    .filter(|c| !c.is_empty())
                    .rev()
                    .map(String::from),
            );
            continue;
        }
        if todo.is_empty() {
            return ft.is_file().then_some(host);
        }
    }
    None
}

/// Empty `/etc/hosts`, `/etc/hostname`, `/etc/resolv.conf` files the
/// runtime creates in an overlay's upper directory as bind-mount targets;
/// removed on drop if still empty (the container's writes go to the
/// bind-mounted files, never to these).
struct EtcMountpoints {
    files: Vec<PathBuf>,
}

impl EtcMountpoints {
    fn new(c: &Container) -> EtcMountpoints {
        let mut files = Vec::new();
        if let (RootFs::Overlay { lowers, upper, .. }, true) = (&c.rootfs, c.options.etc_files) {
            let mounted: Vec<PathBuf> = c
                .spec
                .mounts()
                .iter()
                .flatten()
                .map(|m| m.destination().clone())
                .collect();
            for name in ["hosts", "hostname", "resolv.conf"] {
                let rel = Path::new("etc").join(name);
                if mounted.iter().any(|d| d == &Path::new("/").join(&rel)) {
                    continue;
                }
                let exists = std::iter::once(upper)
                    .chain(lowers.iter())
                    .any(|d| d.join(&rel).symlink_metadata().is_ok());
                if !exists {
                    files.push(upper.join(rel));
                }
            }
        }
        EtcMountpoints { files }
    }
}

impl Drop for EtcMountpoints {
    fn drop(&mut self) {
        for f in &self.files {
            if f.symlink_metadata()
                .is_ok_and(|m| m.is_file() && m.len() == 0)
            {
                // Best effort: a leftover empty file is harmless.
                let _ = fs::remove_file(f);
            }
        }
    }
}

/// Choices for one run. Required inputs (spec, root filesystem) go to
/// [`Container::new`]; everything here has a default.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunOptions {
    /// `USER` as Docker takes it (`name`, `uid`, `name:group`, `uid:gid`),
    /// resolved in the container's `/etc/passwd` and `/etc/group`;
    /// overrides the spec's `process.user`. Supplementary groups come from
    /// `/etc/group`.
    pub user: Option<String>,
    /// Kill the container after this long ([`ExitStatus::TimedOut`]).
    pub timeout: Option<Duration>,
    /// Provide `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf` as
    /// Docker does (bind-mounted files; not written into the rootfs).
    /// Defaults to `true` through [`RunOptions::new`]; `Default` gives
    /// `false`, so use `new`.
    pub etc_files: bool,
    /// Handle for cancelling the run or forwarding signals from another
    /// thread.
    pub control: Option<Control>,
    /// Run a minimal init as pid 1, like `docker run --init`: it reaps
    /// orphaned zombies and forwards signals to the process, which is then
    /// pid 2. A process killed by a signal is then reported as
    /// `Exited(128 + signal)`, as tini reports it.
    pub init: bool,
}

impl RunOptions {
    /// The defaults: no user override, no timeout, Docker's `/etc` files.
    pub fn new() -> RunOptions {
        RunOptions {
            etc_files: true,
            ..RunOptions::default()
        }
    }
}

/// Where the container's standard streams go.
///
/// Output is written to the sinks as it arrives (the build shows RUN output
/// live). With a terminal (`process.terminal` in the spec), stdout and
/// stderr are one stream, written to `stdout`.
pub struct Stdio<'a> {
    /// Copied to the container's stdin by a helper thread; `None` gives the
    /// container `/dev/null`.
    pub stdin: Option<Box<dyn Read + Send>>,
    /// Receives the container's stdout.
    pub stdout: &'a mut dyn Write,
    /// Receives the container's stderr.
    pub stderr: &'a mut dyn Write,
}

impl<'a> Stdio<'a> {
    /// Output to the two sinks, no input.
    pub fn new(stdout: &'a mut dyn Write, stderr: &'a mut dyn Write) -> Stdio<'a> {
        Stdio {
            stdin: None,
            stdout,
            stderr,
        }
    }

    /// Adds an input stream.
    pub fn with_stdin(mut self, stdin: Box<dyn Read + Send>) -> Stdio<'a> {
        self.stdin = Some(stdin);
        self
    }
}

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExitStatus {
    /// The process exited with this code.
    Exited(i32),
    /// The process was killed by this signal.
    Signaled(i32),
    /// The kernel's OOM killer killed a process of the container because it
    /// exceeded its memory limit.
    OomKilled,
    /// [`RunOptions::timeout`] passed; the container was killed.
    TimedOut,
    /// [`Control::cancel`] was called; the container was killed.
    Cancelled,
}

impl ExitStatus {
    /// True for `Exited(0)`.
    pub fn success(self) -> bool {
        self == ExitStatus::Exited(0)
    }

    /// The code a shell would report: the exit code, or 128 + signal
    /// (137 for OOM kills, timeouts and cancellation, which use SIGKILL).
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Exited(c) => c,
            ExitStatus::Signaled(s) => 128 + s,
            ExitStatus::OomKilled | ExitStatus::TimedOut | ExitStatus::Cancelled => 137,
        }
    }
}

#[derive(Debug, Default)]
struct ControlState {
    /// Pid of the container's first process once it has been created.
    pid: Option<i32>,
    cancelled: bool,
    signals: Vec<i32>,
    /// Terminal size (rows, columns) and whether it changed since applied.
    size: Option<(u16, u16)>,
    size_changed: bool,
    waker: Option<OwnedFd>,
}

/// Cancels a run or forwards signals to its process, from any thread.
///
/// Clone it into [`RunOptions::control`] before [`Container::run`].
#[derive(Debug, Clone, Default)]
pub struct Control {
    state: Arc<Mutex<ControlState>>,
}

impl Control {
    /// A new handle.
    pub fn new() -> Control {
        Control::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut ControlState) -> R) -> R {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let r = f(&mut guard);
        if let Some(w) = &guard.waker {
            // A full pipe already wakes the loop; nothing else can fail here.
            let _ = rustix::io::write(w, b"x");
        }
        r
    }

    /// Kills the container (all its processes); the run returns
    /// [`ExitStatus::Cancelled`]. A run that has not started yet returns
    /// `Cancelled` at once.
    pub fn cancel(&self) {
        self.with(|s| s.cancelled = true);
    }

    /// Sets the size of the container's terminal (with `process.terminal`),
    /// as `docker run -it` does when the user's window changes; the process
    /// gets SIGWINCH. Called before the run, it sets the initial size.
    pub fn resize(&self, rows: u16, cols: u16) {
        self.with(|s| {
            s.size = Some((rows, cols));
            s.size_changed = true;
        });
    }

    /// The pid (in the caller's pid namespace) of the container's first
    /// process, once [`Container::run`] has created it; `None` before.
    /// Tools that keep containers (`kiln run -d`) record it to find the
    /// container's namespaces later ([`crate::exec_in`]).
    pub fn pid(&self) -> Option<i32> {
        self.with_quiet(|s| s.pid)
    }

    /// Sends `signal` (e.g. `libc::SIGTERM`) to the container's process.
    /// As for any pid 1, the kernel drops signals the process has no
    /// handler for, except SIGKILL and SIGSTOP.
    pub fn signal(&self, signal: i32) {
        self.with(|s| s.signals.push(signal));
    }
}

/// A container to run: an OCI runtime spec, a root filesystem and options.
#[derive(Debug, Clone)]
pub struct Container {
    spec: Spec,
    rootfs: RootFs,
    options: RunOptions,
    base_dir: Option<PathBuf>,
}

const OLDROOT: &str = "/dev/.kiln-oldroot";

impl Container {
    /// A container running `spec.process` on `rootfs`. The spec's
    /// `root.path` is ignored (the root filesystem is `rootfs`) except for
    /// `root.readonly`.
    pub fn new(spec: Spec, rootfs: RootFs, options: RunOptions) -> Container {
        Container {
            spec,
            rootfs,
            options,
            base_dir: None,
        }
    }

    /// Resolves relative bind-mount sources against `dir` (a bundle's
    /// directory) instead of the current directory.
    pub fn with_base_dir(mut self, dir: impl Into<PathBuf>) -> Container {
        self.base_dir = Some(dir.into());
        self
    }

    /// The spec this container runs.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// Runs the container to completion, streaming its output to `stdio`.
    ///
    /// Returns how the process ended. Errors are returned for failures of
    /// the runtime or of the container's set-up (naming the step and
    /// errno), and for a command that cannot be executed. Whatever the
    /// outcome (including a panic in a sink), the container's processes are
    /// killed and reaped and its cgroup removed before this returns; its
    /// mounts live only in its own mount namespace and vanish with it.
    pub fn run(&self, stdio: Stdio<'_>) -> Result<ExitStatus> {
        let control = self.options.control.clone().unwrap_or_default();
        if control.with(|s| s.cancelled) {
            return Ok(ExitStatus::Cancelled);
        }
        let prepared = self.prepare()?;
        // Mount points for Docker's /etc files that the image lacks are
        // created in the upper directory; remove them afterwards so they do
        // not end up in the layer (BuildKit does the same).
        let _mountpoints = EtcMountpoints::new(self);
        run_prepared(
            prepared,
            stdio,
            &control,
            self.options.timeout,
            self.options.init,
        )
    }

    /// Runs the spec's process in existing namespaces (`namespaces`: open
    /// `/proc/PID/ns/*` files with their `CLONE_NEW*` type, user first) and
    /// cgroups instead of new ones: no mounts, no new namespaces, no id
    /// maps; the credentials, capabilities, no_new_privs, seccomp, rlimits,
    /// working directory and stdio set-up are those of [`Container::run`].
    /// The process is forked after the joins (as the `init` option does) so
    /// that it is inside the joined pid namespace.
    pub(crate) fn run_joined(
        &self,
        namespaces: Vec<(OwnedFd, libc::c_int)>,
        cgroups: Vec<OwnedFd>,
        stdio: Stdio<'_>,
    ) -> Result<ExitStatus> {
        let control = self.options.control.clone().unwrap_or_default();
        if control.with(|s| s.cancelled) {
            return Ok(ExitStatus::Cancelled);
        }
        let mut p = self.prepare()?;
        p.ops.clear();
        p.steps.clear();
        p.clone_flags = 0;
        p.new_cgroupns = false;
        p.limits = Limits::default();
        p.userns = false;
        p.uid_maps.clear();
        p.gid_maps.clear();
        p.setns = namespaces;
        p.join_cgroups = cgroups;
        p.joined = true;
        run_prepared(p, stdio, &control, self.options.timeout, true)
    }

    fn prepare(&self) -> Result<Prepared> {
        let spec = &self.spec;
        let process = spec
            .process()
            .as_ref()
            .ok_or_else(|| Error::spec("no process"))?;
        let args = process.args().clone().unwrap_or_default();
        if args.is_empty() {
            return Err(Error::spec("process.args is empty"));
        }
        let linux = spec.linux().clone().unwrap_or_default();
        let namespaces = linux.namespaces().clone().unwrap_or_default();
        let has_ns = |t: LinuxNamespaceType| {
            namespaces
                .iter()
                .any(|n| n.typ() == t && n.path().is_none())
        };
        let userns = has_ns(LinuxNamespaceType::User);
        if !has_ns(LinuxNamespaceType::Mount) {
            return Err(Error::spec(
                "a mount namespace is required (linux.namespaces has no \"mount\")",
            ));
        }

        // --- user --------------------------------------------------------
        let passwd = self.rootfs.read_file("etc/passwd")?;
        let group = self.rootfs.read_file("etc/group")?;
        let user = match &self.options.user {
            Some(u) => resolve_user(u, &passwd, &group)?,
            None => {
                let u = process.user();
                let mut r = resolve_user(&u.uid().to_string(), &passwd, &group)?;
                r.gid = u.gid();
                if let Some(extra) = u.additional_gids() {
                    r.additional_gids = extra.clone();
                }
                r
            }
        };

        // --- environment and executable ----------------------------------
        let mut env = process.env().clone().unwrap_or_default();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        if !env.iter().any(|e| e.starts_with("HOME=")) {
            env.push(format!("HOME={}", user.home));
        }
        if process.terminal() == Some(true) && !env.iter().any(|e| e.starts_with("TERM=")) {
            env.push("TERM=xterm".to_string());
        }
        let path_var = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or(DEFAULT_PATH)
            .to_string();
        let argv0 = &args[0];
        let exe_candidates: Vec<CString> = if argv0.contains('/') {
            vec![cstr(argv0)?]
        } else {
            path_var
                .split(':')
                .filter(|d| !d.is_empty())
                .map(|d| cstr(&format!("{}/{argv0}", d.trim_end_matches('/'))))
                .collect::<Result<_>>()?
        };

        let cwd = process.cwd().to_string_lossy().into_owned();
        if !cwd.starts_with('/') {
            return Err(Error::spec(format!("process.cwd {cwd:?} is not absolute")));
        }

        // --- mounts --------------------------------------------------------
        let mut ops = Vec::new();
        let mut steps = Vec::new();
        let mut push = |op: Op, what: String| {
            ops.push(op);
            steps.push(what);
        };
        let (root, rootfs_op, root_desc) = match &self.rootfs {
            RootFs::Dir(dir) => (
                dir.clone(),
                Op::Mount {
                    src: Some(path_cstr(dir)?),
                    target: path_cstr(dir)?,
                    fstype: None,
                    flags: libc::MS_BIND | libc::MS_REC,
                    data: None,
                    bind_fallback: None,
                },
                format!("bind mount rootfs {}", dir.display()),
            ),
            RootFs::Overlay {
                lowers,
                upper,
                work,
            } => {
                if lowers.is_empty() {
                    return Err(Error::spec(
                        "overlay rootfs needs at least one lower directory",
                    ));
                }
                let check = |p: &Path| -> Result<String> {
                    let s = p
                        .to_str()
                        .ok_or_else(|| Error::spec(format!("{} is not UTF-8", p.display())))?;
                    if s.contains([',', ':']) || !s.starts_with('/') {
                        return Err(Error::spec(format!(
                            "overlay directory {s:?} must be absolute and contain no ',' or ':'"
                        )));
                    }
                    Ok(s.to_string())
                };
                let lower = lowers
                    .iter()
                    .map(|l| check(l))
                    .collect::<Result<Vec<_>>>()?
                    .join(":");
                let mut data = format!(
                    "lowerdir={lower},upperdir={},workdir={}",
                    check(upper)?,
                    check(work)?
                );
                if userns {
                    data.push_str(",userxattr");
                }
                (
                    upper.clone(),
                    Op::Mount {
                        src: Some(c"overlay".into()),
                        target: path_cstr(upper)?,
                        fstype: Some(c"overlay".into()),
                        flags: 0,
                        data: Some(cstr(&data)?),
                        bind_fallback: None,
                    },
                    format!("mount overlay on {} ({data})", upper.display()),
                )
            }
        };
        push(rootfs_op, root_desc);
        let root_s = root.to_string_lossy().trim_end_matches('/').to_string();
        let mounts = spec.mounts().clone().unwrap_or_default();
        let dev_mount = mounts.iter().find(|m| m.destination() == Path::new("/dev"));
        let (dev_flags, dev_data) = match dev_mount {
            Some(m) => parse_options(m.options().as_deref().unwrap_or_default())?,
            None => (
                MountFlags {
                    flags: libc::MS_NOSUID,
                    ..MountFlags::default()
                },
                vec!["mode=755".to_string(), "size=65536k".to_string()],
            ),
        };
        push(
            Op::NotSymlink {
                path: cstr(&format!("{root_s}/dev"))?,
            },
            "check that /dev in the rootfs is not a symlink".into(),
        );
        push(
            Op::MkdirAll {
                prefixes: prefixes(&format!("{root_s}/dev"), &root_s)?,
            },
            "mkdir /dev in the rootfs".into(),
        );
        push(
            Op::Mount {
                src: Some(c"tmpfs".into()),
                target: cstr(&format!("{root_s}/dev"))?,
                fstype: Some(c"tmpfs".into()),
                flags: dev_flags.flags,
                data: Some(cstr(&dev_data.join(","))?),
                bind_fallback: None,
            },
            "mount tmpfs on /dev".into(),
        );
        push(
            Op::MkdirAll {
                prefixes: vec![cstr(&format!("{root_s}{OLDROOT}"))?],
            },
            format!("mkdir {OLDROOT}"),
        );
        push(
            Op::Pivot {
                new_root: cstr(&root_s)?,
                put_old: cstr(&format!("{root_s}{OLDROOT}"))?,
            },
            format!("pivot_root to {root_s}"),
        );

        let cg_layout = cgroup::layout();
        for m in &mounts {
            if m.destination() == Path::new("/dev") {
                continue;
            }
            self.mount_ops(m, cg_layout, &mut push)?;
        }

        // Devices: mknod as real root; bind from the host in a user
        // namespace, where mknod is not allowed (as runc does rootless).
        let mut devices: Vec<(String, u32, u32, u32)> = [
            ("/dev/null", 1, 3),
            ("/dev/zero", 1, 5),
            ("/dev/full", 1, 7),
            ("/dev/random", 1, 8),
            ("/dev/urandom", 1, 9),
            ("/dev/tty", 5, 0),
        ]
        .iter()
        .map(|(p, ma, mi)| (p.to_string(), *ma, *mi, 0o666))
        .collect();
        for d in linux.devices().iter().flatten() {
            let path = d.path().to_string_lossy().into_owned();
            if !devices.iter().any(|x| x.0 == path) {
                devices.push((
                    path,
                    d.major() as u32,
                    d.minor() as u32,
                    d.file_mode().unwrap_or(0o666),
                ));
            }
        }
        for (path, major, minor, mode) in devices {
            let parent = Path::new(&path)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            push(
                Op::MkdirAll {
                    prefixes: prefixes(&parent, "")?,
                },
                format!("mkdir {parent}"),
            );
            if userns {
                push(Op::Touch { path: cstr(&path)? }, format!("create {path}"));
                push(
                    Op::Mount {
                        src: Some(cstr(&format!("{OLDROOT}{path}"))?),
                        target: cstr(&path)?,
                        fstype: None,
                        flags: libc::MS_BIND,
                        data: None,
                        bind_fallback: None,
                    },
                    format!("bind mount host {path}"),
                );
            } else {
                push(
                    Op::Mknod {
                        path: cstr(&path)?,
                        mode: libc::S_IFCHR | mode,
                        dev: libc::makedev(major, minor),
                    },
                    format!("mknod {path}"),
                );
            }
        }
        for (target, link) in [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
            ("/proc/kcore", "/dev/core"),
        ] {
            push(
                Op::Symlink {
                    target: cstr(target)?,
                    link: cstr(link)?,
                },
                format!("symlink {link}"),
            );
        }
        if mounts
            .iter()
            .any(|m| m.destination() == Path::new("/dev/pts"))
        {
            push(
                Op::Symlink {
                    target: c"pts/ptmx".into(),
                    link: c"/dev/ptmx".into(),
                },
                "symlink /dev/ptmx".into(),
            );
        }

        let hostname = spec.hostname().clone().unwrap_or_default();
        if self.options.etc_files {
            let host_net = !has_ns(LinuxNamespaceType::Network);
            for (name, contents) in etc_files(&hostname, host_net) {
                let dest = format!("/etc/{name}");
                if mounts.iter().any(|m| m.destination() == Path::new(&dest)) {
                    continue;
                }
                let staging = format!("/dev/.kiln-{name}");
                push(
                    Op::WriteFile {
                        path: cstr(&staging)?,
                        data: contents.into_bytes(),
                    },
                    format!("write {staging}"),
                );
                push(
                    Op::MkdirAll {
                        prefixes: vec![c"/etc".into()],
                    },
                    "mkdir /etc".into(),
                );
                push(Op::Touch { path: cstr(&dest)? }, format!("create {dest}"));
                push(
                    Op::Mount {
                        src: Some(cstr(&staging)?),
                        target: cstr(&dest)?,
                        fstype: None,
                        flags: libc::MS_BIND,
                        data: None,
                        bind_fallback: None,
                    },
                    format!("bind mount {dest}"),
                );
                push(
                    Op::Unlink {
                        path: cstr(&staging)?,
                    },
                    format!("unlink {staging}"),
                );
            }
        }

        for (key, value) in linux.sysctl().iter().flatten() {
            let path = format!("/proc/sys/{}", key.replace('.', "/"));
            push(
                Op::WriteFile {
                    path: cstr(&path)?,
                    data: value.clone().into_bytes(),
                },
                format!("sysctl {key}={value}"),
            );
        }

        push(
            Op::Umount {
                target: cstr(OLDROOT)?,
                flags: libc::MNT_DETACH,
            },
            format!("umount {OLDROOT}"),
        );
        push(
            Op::Rmdir {
                path: cstr(OLDROOT)?,
            },
            format!("rmdir {OLDROOT}"),
        );

        for p in linux.masked_paths().iter().flatten() {
            push(Op::Mask { path: cstr(p)? }, format!("mask {p}"));
        }
        for p in linux.readonly_paths().iter().flatten() {
            push(
                Op::ReadOnly { path: cstr(p)? },
                format!("make {p} read-only"),
            );
        }
        if has_ns(LinuxNamespaceType::Uts) {
            if !hostname.is_empty() {
                push(
                    Op::Hostname {
                        name: cstr(&hostname)?,
                    },
                    format!("sethostname {hostname}"),
                );
            }
            if let Some(d) = spec.domainname().as_ref().filter(|d| !d.is_empty()) {
                push(
                    Op::Domainname { name: cstr(d)? },
                    format!("setdomainname {d}"),
                );
            }
        }
        if has_ns(LinuxNamespaceType::Network) {
            push(Op::LoopbackUp, "bring up lo (ioctl SIOCSIFFLAGS)".into());
        }
        if let Some(p) = linux.rootfs_propagation() {
            let flags = propagation_flag(p)
                .ok_or_else(|| Error::spec(format!("rootfsPropagation {p:?}")))?;
            push(
                Op::Propagate {
                    target: c"/".into(),
                    flags,
                },
                format!("set / propagation {p}"),
            );
        }
        if spec
            .root()
            .as_ref()
            .is_some_and(|r| r.readonly() == Some(true))
        {
            push(
                Op::Remount {
                    target: c"/".into(),
                    flags: libc::MS_RDONLY,
                },
                "remount / read-only".into(),
            );
        }

        // --- process -------------------------------------------------------
        let mut rlimits = Vec::new();
        for r in process.rlimits().iter().flatten() {
            rlimits.push((rlimit_resource(r.typ()), r.soft(), r.hard()));
        }
        let caps = process.capabilities().as_ref().map(|c| CapSets {
            bounding: c.bounding().as_ref().map_or(0, cap_mask),
            effective: c.effective().as_ref().map_or(0, cap_mask),
            permitted: c.permitted().as_ref().map_or(0, cap_mask),
            inheritable: c.inheritable().as_ref().map_or(0, cap_mask),
            ambient: c.ambient().as_ref().map_or(0, cap_mask),
            last_cap: fs::read_to_string("/proc/sys/kernel/cap_last_cap")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(40),
        });
        let seccomp = match linux.seccomp() {
            Some(profile) => Some(crate::seccomp::compile(profile)?),
            None => None,
        };

        let limits = linux
            .resources()
            .as_ref()
            .map(Limits::from_resources)
            .unwrap_or_default();
        let mut setns = Vec::new();
        for ns in &namespaces {
            if let Some(path) = ns.path() {
                let file = fs::File::open(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                setns.push((OwnedFd::from(file), ns_flag(ns.typ())));
            }
        }
        let mut clone_flags = 0;
        for ns in namespaces.iter().filter(|n| n.path().is_none()) {
            if ns.typ() != LinuxNamespaceType::Cgroup {
                clone_flags |= ns_flag(ns.typ());
            }
        }
        Ok(Prepared {
            clone_flags,
            new_cgroupns: has_ns(LinuxNamespaceType::Cgroup),
            ops,
            steps,
            rlimits,
            cwd_prefixes: prefixes(&cwd, "")?,
            cwd: cstr(&cwd)?,
            tty: process.terminal() == Some(true),
            uid: user.uid,
            gid: user.gid,
            groups: user.additional_gids.clone(),
            userns,
            umask: process.user().umask().map(|u| u as libc::mode_t),
            caps,
            no_new_privs: process.no_new_privileges() == Some(true),
            seccomp,
            exe_candidates,
            argv: args.iter().map(|a| cstr(a)).collect::<Result<_>>()?,
            envp: env.iter().map(|e| cstr(e)).collect::<Result<_>>()?,
            program: argv0.clone(),
            limits,
            setns,
            join_cgroups: Vec::new(),
            joined: false,
            uid_maps: linux
                .uid_mappings()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|m| (m.container_id(), m.host_id(), m.size()))
                .collect(),
            gid_maps: linux
                .gid_mappings()
                .clone()
                .unwrap_or_default()
                .iter()
                .map(|m| (m.container_id(), m.host_id(), m.size()))
                .collect(),
        })
    }

    fn mount_ops(
        &self,
        m: &Mount,
        cg_layout: cgroup::Layout,
        push: &mut impl FnMut(Op, String),
    ) -> Result<()> {
        let dest = m.destination().to_string_lossy().into_owned();
        if !dest.starts_with('/') {
            return Err(Error::spec(format!(
                "mount destination {dest:?} is not absolute"
            )));
        }
        let typ = m.typ().clone().unwrap_or_default();
        let opts = m.options().clone().unwrap_or_default();
        let (mf, data) = parse_options(&opts)?;
        let data = (!data.is_empty()).then(|| data.join(","));
        let is_bind = typ == "bind" || mf.flags & libc::MS_BIND != 0;
        if is_bind {
            let source = m
                .source()
                .clone()
                .ok_or_else(|| Error::spec(format!("bind mount {dest} has no source")))?;
            let source = if source.is_absolute() {
                source
            } else {
                match &self.base_dir {
                    Some(b) => b.join(source),
                    None => std::env::current_dir()
                        .map_err(|e| Error::sys("getcwd", e))?
                        .join(source),
                }
            };
            let meta = fs::metadata(&source).map_err(|e| Error::Read {
                path: source.clone(),
                source: e,
            })?;
            if meta.is_dir() {
                push(
                    Op::MkdirAll {
                        prefixes: prefixes(&dest, "")?,
                    },
                    format!("mkdir {dest}"),
                );
            } else {
                let parent = Path::new(&dest)
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default();
                push(
                    Op::MkdirAll {
                        prefixes: prefixes(&parent, "")?,
                    },
                    format!("mkdir {parent}"),
                );
                push(Op::Touch { path: cstr(&dest)? }, format!("create {dest}"));
            }
            let src = format!("{OLDROOT}{}", normalize(&source)?);
            push(
                Op::Mount {
                    src: Some(cstr(&src)?),
                    target: cstr(&dest)?,
                    fstype: None,
                    flags: libc::MS_BIND | (mf.flags & libc::MS_REC),
                    data: None,
                    bind_fallback: None,
                },
                format!("bind mount {} on {dest}", source.display()),
            );
            let rest = mf.flags & !(libc::MS_BIND | libc::MS_REC);
            if rest != 0 {
                push(
                    Op::Remount {
                        target: cstr(&dest)?,
                        flags: rest,
                    },
                    format!("remount {dest} with {opts:?}"),
                );
            }
        } else {
            push(
                Op::MkdirAll {
                    prefixes: prefixes(&dest, "")?,
                },
                format!("mkdir {dest}"),
            );
            let (fstype, src, data) = match typ.as_str() {
                // v1 hierarchies are not exposed: an empty read-only tmpfs,
                // so tools find no host cgroups (runc binds the container's
                // own v1 cgroups here).
                "cgroup" if cg_layout == cgroup::Layout::V1 => (
                    "tmpfs".to_string(),
                    "tmpfs".to_string(),
                    Some("mode=755".to_string()),
                ),
                "cgroup" => ("cgroup2".to_string(), "cgroup2".to_string(), data),
                _ => (
                    typ.clone(),
                    m.source()
                        .as_ref()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_else(|| typ.clone()),
                    data,
                ),
            };
            push(
                Op::Mount {
                    src: Some(cstr(&src)?),
                    target: cstr(&dest)?,
                    fstype: Some(cstr(&fstype)?),
                    flags: mf.flags,
                    data: data.as_deref().map(cstr).transpose()?,
                    bind_fallback: if fstype == "sysfs" {
                        Some(cstr(&format!("{OLDROOT}/sys"))?)
                    } else {
                        None
                    },
                },
                format!("mount {fstype} on {dest}"),
            );
        }
        if mf.propagation != 0 {
            push(
                Op::Propagate {
                    target: cstr(&dest)?,
                    flags: mf.propagation,
                },
                format!("set propagation of {dest}"),
            );
        }
        Ok(())
    }
}

fn etc_files(hostname: &str, host_net: bool) -> Vec<(&'static str, String)> {
    let hosts = if host_net {
        fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        // Docker's default /etc/hosts (libnetwork etchosts.go).
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\n\
         ff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
            .to_string()
    };
    let host_resolv = fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let resolv = if host_net {
        host_resolv
    } else {
        // As Docker: loopback name servers are unreachable from another
        // network namespace; fall back to public ones when none remain.
        let mut out: Vec<&str> = host_resolv
            .lines()
            .filter(|l| {
                let mut w = l.split_whitespace();
                !(w.next() == Some("nameserver")
                    && w.next()
                        .is_some_and(|a| a.starts_with("127.") || a == "::1"))
            })
            .collect();
        let fallback = "nameserver 8.8.8.8\nnameserver 8.8.4.4";
        if !out.iter().any(|l| l.trim_start().starts_with("nameserver")) {
            out.push(fallback);
        }
        out.join("\n") + "\n"
    };
    vec![
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ]
}

fn ns_flag(t: LinuxNamespaceType) -> libc::c_int {
    match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => 0x80, // CLONE_NEWTIME
    }
}

fn rlimit_resource(t: oci_spec::runtime::PosixRlimitType) -> libc::c_int {
    use oci_spec::runtime::PosixRlimitType as R;
    (match t {
        R::RlimitCpu => libc::RLIMIT_CPU,
        R::RlimitFsize => libc::RLIMIT_FSIZE,
        R::RlimitData => libc::RLIMIT_DATA,
        R::RlimitStack => libc::RLIMIT_STACK,
        R::RlimitCore => libc::RLIMIT_CORE,
        R::RlimitRss => libc::RLIMIT_RSS,
        R::RlimitNproc => libc::RLIMIT_NPROC,
        R::RlimitNofile => libc::RLIMIT_NOFILE,
        R::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        R::RlimitAs => libc::RLIMIT_AS,
        R::RlimitLocks => libc::RLIMIT_LOCKS,
        R::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        R::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        R::RlimitNice => libc::RLIMIT_NICE,
        R::RlimitRtprio => libc::RLIMIT_RTPRIO,
        R::RlimitRttime => libc::RLIMIT_RTTIME,
    }) as libc::c_int
}

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct MountFlags {
    pub flags: libc::c_ulong,
    pub propagation: libc::c_ulong,
}

fn propagation_flag(p: &str) -> Option<libc::c_ulong> {
    Some(match p {
        "private" => libc::MS_PRIVATE,
        "rprivate" => libc::MS_PRIVATE | libc::MS_REC,
        "shared" => libc::MS_SHARED,
        "rshared" => libc::MS_SHARED | libc::MS_REC,
        "slave" => libc::MS_SLAVE,
        "rslave" => libc::MS_SLAVE | libc::MS_REC,
        "unbindable" => libc::MS_UNBINDABLE,
        "runbindable" => libc::MS_UNBINDABLE | libc::MS_REC,
        _ => return None,
    })
}

/// Splits mount options into flags, propagation and filesystem data, as
/// runc's `parseMountOptions` does.
pub(crate) fn parse_options(options: &[String]) -> Result<(MountFlags, Vec<String>)> {
    let mut mf = MountFlags::default();
    let mut data = Vec::new();
    for o in options {
        let (set, clear) = match o.as_str() {
            "ro" => (libc::MS_RDONLY, 0),
            "rw" => (0, libc::MS_RDONLY),
            "nosuid" => (libc::MS_NOSUID, 0),
            "suid" => (0, libc::MS_NOSUID),
            "nodev" => (libc::MS_NODEV, 0),
            "dev" => (0, libc::MS_NODEV),
            "noexec" => (libc::MS_NOEXEC, 0),
            "exec" => (0, libc::MS_NOEXEC),
            "sync" => (libc::MS_SYNCHRONOUS, 0),
            "async" => (0, libc::MS_SYNCHRONOUS),
            "dirsync" => (libc::MS_DIRSYNC, 0),
            "mand" => (libc::MS_MANDLOCK, 0),
            "nomand" => (0, libc::MS_MANDLOCK),
            "atime" => (0, libc::MS_NOATIME),
            "noatime" => (libc::MS_NOATIME, 0),
            "diratime" => (0, libc::MS_NODIRATIME),
            "nodiratime" => (libc::MS_NODIRATIME, 0),
            "relatime" => (libc::MS_RELATIME, 0),
            "norelatime" => (0, libc::MS_RELATIME),
            "strictatime" => (libc::MS_STRICTATIME, 0),
            "nostrictatime" => (0, libc::MS_STRICTATIME),
            "bind" => (libc::MS_BIND, 0),
            "rbind" => (libc::MS_BIND | libc::MS_REC, 0),
            "defaults" | "tmpcopyup" => (0, 0),
            p => {
                if let Some(f) = propagation_flag(p) {
                    mf.propagation = f;
                } else {
                    data.push(p.to_string());
                }
                (0, 0)
            }
        };
        mf.flags = (mf.flags | set) & !clear;
    }
    Ok((mf, data))
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::spec(format!("{s:?} contains a NUL byte")))
}

fn path_cstr(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| Error::spec(format!("{} contains a NUL byte", p.display())))
}

/// Lexically normalises an absolute path (no `..` above the root).
fn normalize(p: &Path) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => parts.push(
                s.to_str()
                    .ok_or_else(|| Error::spec(format!("{} is not UTF-8", p.display())))?,
            ),
            Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    Ok(format!("/{}", parts.join("/")))
}

/// Every prefix of `path` below `base`, for `mkdir -p` without allocating
/// in the child: `/a/b/c` gives `/a`, `/a/b`, `/a/b/c`.
fn prefixes(path: &str, base: &str) -> Result<Vec<CString>> {
    let norm = normalize(Path::new(path))?;
    let mut out = Vec::new();
    let mut cur = String::new();
    for part in norm.split('/').filter(|s| !s.is_empty()) {
        cur.push('/');
        cur.push_str(part);
        let ancestor_of_base =
            base.starts_with(&cur) && matches!(base.as_bytes().get(cur.len()), None | Some(b'/'));
        if !ancestor_of_base {
            out.push(cstr(&cur)?);
        }
    }
    Ok(out)
}

/// The parent's view of a run, ready to spawn.
struct Prepared {
    clone_flags: libc::c_int,
    new_cgroupns: bool,
    ops: Vec<Op>,
    steps: Vec<String>,
    rlimits: Vec<(libc::c_int, u64, u64)>,
    cwd: CString,
    cwd_prefixes: Vec<CString>,
    tty: bool,
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
    userns: bool,
    umask: Option<libc::mode_t>,
    caps: Option<CapSets>,
    no_new_privs: bool,
    seccomp: Option<Vec<crate::seccomp::SockFilter>>,
    exe_candidates: Vec<CString>,
    argv: Vec<CString>,
    envp: Vec<CString>,
    program: String,
    limits: Limits,
    setns: Vec<(OwnedFd, libc::c_int)>,
    /// `cgroup.procs` files of existing cgroups to join (exec).
    join_cgroups: Vec<OwnedFd>,
    /// The process joins a running container (exec).
    joined: bool,
    uid_maps: Vec<(u32, u32, u32)>,
    gid_maps: Vec<(u32, u32, u32)>,
}

fn pipe() -> Result<(OwnedFd, OwnedFd)> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| Error::sys("pipe2", e))
}

/// Kills and reaps the container and removes its cgroup when dropped,
/// whatever happened (error, panic in a sink, cancellation).
struct Running {
    pidfd: OwnedFd,
    reaped: bool,
    cgroup: Option<Cgroup>,
}

impl Running {
    fn kill(&self) {
        // ESRCH: already gone.
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
    }

    fn wait(&mut self) -> Result<rustix::process::WaitIdStatus> {
        loop {
            match rustix::process::waitid(
                rustix::process::WaitId::PidFd(self.pidfd.as_fd()),
                WaitIdOptions::EXITED,
            ) {
                Ok(Some(st)) => {
                    self.reaped = true;
                    return Ok(st);
                }
                Ok(None) => continue,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Error::sys("waitid on the container's pidfd", e)),
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            self.kill();
            let _ = self.wait();
        }
        // Dropping the cgroup removes it, now that its processes are gone.
        self.cgroup.take();
    }
}

fn write_id_maps(pid: i32, p: &Prepared) -> Result<()> {
    let fmt = |maps: &[(u32, u32, u32)]| {
        maps.iter()
            .map(|(c, h, s)| format!("{c} {h} {s}\n"))
            .collect::<String>()
    };
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let simple =
        |maps: &[(u32, u32, u32)], own: u32| maps.len() == 1 && maps[0].1 == own && maps[0].2 == 1;
    let proc_write = |file: &str, data: &str| -> Result<()> {
        let path = format!("/proc/{pid}/{file}");
        fs::write(&path, data).map_err(|source| Error::IdMap {
            step: format!("write {data:?} to {path}"),
            source,
        })
    };
    let helper = |tool: &str, maps: &[(u32, u32, u32)]| -> Result<()> {
        let mut cmd = std::process::Command::new(tool);
        cmd.arg(pid.to_string());
        for (c, h, s) in maps {
            cmd.args([c.to_string(), h.to_string(), s.to_string()]);
        }
        let step = format!("{cmd:?}");
        let out = cmd.output().map_err(|source| Error::IdMap {
            step: format!("{step} (install the uidmap package)"),
            source,
        })?;
        if !out.status.success() {
            return Err(Error::IdMap {
                step,
                source: io::Error::other(String::from_utf8_lossy(&out.stderr).trim().to_string()),
            });
        }
        Ok(())
    };
    if !p.uid_maps.is_empty() {
        if euid == 0 || simple(&p.uid_maps, euid) {
            proc_write("uid_map", &fmt(&p.uid_maps))?;
        } else {
            helper("newuidmap", &p.uid_maps)?;
        }
    }
    if !p.gid_maps.is_empty() {
        if euid == 0 {
            proc_write("gid_map", &fmt(&p.gid_maps))?;
        } else if simple(&p.gid_maps, egid) {
            proc_write("setgroups", "deny")?;
            proc_write("gid_map", &fmt(&p.gid_maps))?;
        } else {
            helper("newgidmap", &p.gid_maps)?;
        }
    }
    Ok(())
}

fn run_prepared(
    mut p: Prepared,
    mut stdio: Stdio<'_>,
    control: &Control,
    timeout: Option<Duration>,
    init: bool,
) -> Result<ExitStatus> {
    let start = Instant::now();
    let cgroup = if p.limits.is_empty() {
        None
    } else {
        if p.userns && rustix::process::geteuid().as_raw() != 0 && !Cgroup::available() {
            return Err(Error::CgroupUnavailable {
                reason: "this user cannot write to its cgroup (no delegation)".into(),
            });
        }
        Some(Cgroup::create(&p.limits)?)
    };
    let mut cgroup_fds = match &cgroup {
        Some(c) => c.procs_files()?,
        None => Vec::new(),
    };
    cgroup_fds.append(&mut p.join_cgroups);

    let (err_r, err_w) = pipe()?;
    let (sync_r, sync_w) = if p.userns {
        let (r, w) = pipe()?;
        (Some(r), Some(w))
    } else {
        (None, None)
    };
    // Standard streams: a pty (one stream) or pipes.
    let (stdin_child, stdin_parent): (OwnedFd, Option<OwnedFd>);
    let (out_child, out_parent, err_child, err_parent);
    let mut console: Option<(OwnedFd, OwnedFd)> = None;
    if p.tty {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, socketpair};
        let pair = socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .map_err(|e| Error::sys("socketpair for the console", e))?;
        // The slave is opened by the child in the container's devpts; the
        // standard streams handed over here are placeholders.
        stdin_child = fs::File::open("/dev/null")
            .map(OwnedFd::from)
            .map_err(|e| Error::sys("open /dev/null", e))?;
        out_child = stdin_child.try_clone().map_err(|e| Error::sys("dup", e))?;
        err_child = stdin_child.try_clone().map_err(|e| Error::sys("dup", e))?;
        stdin_parent = None;
        out_parent = None;
        err_parent = None;
        console = Some(pair);
    } else {
        if stdio.stdin.is_some() {
            let (r, w) = pipe()?;
            stdin_child = r;
            stdin_parent = Some(w);
        } else {
            stdin_child = fs::File::open("/dev/null")
                .map(OwnedFd::from)
                .map_err(|e| Error::sys("open /dev/null", e))?;
            stdin_parent = None;
        }
        let (r, w) = pipe()?;
        out_parent = Some(r);
        out_child = w;
        let (r, w) = pipe()?;
        err_parent = Some(r);
        err_child = w;
    }

    let plan = ChildPlan {
        sync_fd: sync_r.as_ref().map(|f| f.as_raw_fd()),
        cgroup_fds: cgroup_fds.iter().map(|f| f.as_raw_fd()).collect(),
        setns: p.setns.iter().map(|(f, t)| (f.as_raw_fd(), *t)).collect(),
        new_cgroupns: p.new_cgroupns,
        ops: std::mem::take(&mut p.ops),
        rlimits: p.rlimits.clone(),
        cwd: p.cwd.clone(),
        cwd_prefixes: p.cwd_prefixes.clone(),
        stdin: stdin_child.as_raw_fd(),
        stdout: out_child.as_raw_fd(),
        stderr: err_child.as_raw_fd(),
        console_sock: console.as_ref().map(|(_, child)| child.as_raw_fd()),
        console_size: control.with_quiet(|s| s.size),
        bind_console: !p.joined,
        init,
        uid: p.uid,
        gid: p.gid,
        groups: p.groups.clone(),
        userns: p.userns,
        skip_setgroups: p.userns && rustix::process::geteuid().as_raw() != 0,
        umask: p.umask,
        caps: p.caps,
        no_new_privs: p.no_new_privs,
        seccomp: p.seccomp.take(),
        err_fd: err_w.as_raw_fd(),
        exe_candidates: std::mem::take(&mut p.exe_candidates),
        argv: std::mem::take(&mut p.argv),
        envp: std::mem::take(&mut p.envp),
    };

    let deadline = timeout.map(|t| start + t);
    let pid = child::spawn(p.clone_flags, &plan)
        .map_err(|e| Error::sys(format!("clone (flags {:#x})", p.clone_flags), e))?;
    // SAFETY-free: pidfd_open on our own, not yet reaped child.
    let pidfd = rustix::process::pidfd_open(
        Pid::from_raw(pid).ok_or_else(|| {
            Error::sys(
                "clone returned pid 0",
                io::Error::from_raw_os_error(libc::EINVAL),
            )
        })?,
        PidfdFlags::empty(),
    )
    .map_err(|e| Error::sys("pidfd_open", e))?;
    control.with_quiet(|s| s.pid = Some(pid));
    let mut running = Running {
        pidfd,
        reaped: false,
        cgroup,
    };
    // The child holds its own copies now.
    drop((err_w, stdin_child, out_child, err_child, cgroup_fds));
    let console_parent = console.map(|(parent, child)| {
        drop(child);
        parent
    });
    drop(std::mem::take(&mut p.setns));

    if let Some(w) = sync_w {
        write_id_maps(pid, &p)?;
        rustix::io::write(&w, b"1").map_err(|e| Error::sys("write to the sync pipe", e))?;
        drop(w);
        drop(sync_r);
    }

    // With a terminal, the child sends the pty master before it executes
    // (nothing arrives if its set-up failed first: the error pipe says why).
    let mut pty_master: Option<OwnedFd> = None;
    if let Some(sock) = &console_parent {
        if !wait_readable(sock, deadline)? {
            drop(running);
            return Ok(ExitStatus::TimedOut);
        }
        pty_master = receive_fd(sock)?;
    }
    drop(console_parent);
    let resize_fd = match &pty_master {
        Some(m) => Some(m.try_clone().map_err(|e| Error::sys("dup pty", e))?),
        None => None,
    };
    let apply_size = |fd: &Option<OwnedFd>| {
        let size = control.with_quiet(|s| {
            let changed = std::mem::take(&mut s.size_changed);
            s.size.filter(|_| changed)
        });
        if let (Some(fd), Some((rows, cols))) = (fd, size) {
            let ws = rustix::termios::Winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            // A failure leaves the old size: nothing to report.
            let _ = rustix::termios::tcsetwinsize(fd, ws);
        }
    };
    if resize_fd.is_some() {
        control.with_quiet(|s| s.size_changed = s.size.is_some());
        apply_size(&resize_fd);
    }
    let stdin_parent = match (&pty_master, stdin_parent) {
        (Some(m), None) if stdio.stdin.is_some() => {
            Some(m.try_clone().map_err(|e| Error::sys("dup pty", e))?)
        }
        (_, s) => s,
    };

    // Set-up result: EOF means execve succeeded (the pipe is close-on-exec).
    let mut msg = [0u8; 8];
    let mut got = 0;
    while got < msg.len() {
        // A set-up that hangs (a mount on a dead network filesystem) still
        // honours the timeout.
        if !wait_readable(&err_r, deadline)? {
            drop(running);
            return Ok(ExitStatus::TimedOut);
        }
        match rustix::io::read(&err_r, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("read the child's error pipe", e)),
        }
    }
    if got == msg.len() {
        let code = u32::from_ne_bytes([msg[0], msg[1], msg[2], msg[3]]);
        let errno = i32::from_ne_bytes([msg[4], msg[5], msg[6], msg[7]]);
        let source = io::Error::from_raw_os_error(errno);
        drop(running);
        return Err(match Fixed::from_code(code) {
            Some(Fixed::Exec) => Error::Exec {
                program: p.program,
                source,
            },
            Some(f) => Error::Setup {
                step: f.describe().to_string(),
                source,
            },
            None => Error::Setup {
                step: p
                    .steps
                    .get(code as usize)
                    .cloned()
                    .unwrap_or_else(|| format!("step {code}")),
                source,
            },
        });
    }
    drop(err_r);
    drop(plan);

    // Stdin: a detached thread (the reader may block forever, e.g. on a
    // terminal); it ends at EOF or when the container's side is closed.
    if let (Some(mut reader), Some(w)) = (stdio.stdin.take(), stdin_parent) {
        std::thread::spawn(move || {
            let mut file = fs::File::from(w);
            let _ = io::copy(&mut reader, &mut file);
        });
    }

    // Wake-up pipe for the control handle.
    let (wake_r, wake_w) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )
    .map_err(|e| Error::sys("pipe2", e))?;
    control.with(|s| s.waker = Some(wake_w));
    let _unregister = Unregister(control);

    let mut outs: Vec<(OwnedFd, bool)> = Vec::new();
    match pty_master {
        Some(m) => outs.push((m, true)),
        None => {
            if let Some(o) = out_parent {
                outs.push((o, true));
            }
            if let Some(e) = err_parent {
                outs.push((e, false));
            }
        }
    }
    let mut buf = vec![0u8; 64 * 1024];
    let mut outcome: Option<ExitStatus> = None;
    let mut exited: Option<rustix::process::WaitIdStatus> = None;
    loop {
        if exited.is_some() && outs.is_empty() {
            break;
        }
        let mut fds: Vec<PollFd<'_>> = outs
            .iter()
            .map(|(f, _)| PollFd::new(f, PollFlags::IN))
            .collect();
        let n_out = fds.len();
        if exited.is_none() {
            fds.push(PollFd::new(&running.pidfd, PollFlags::IN));
            fds.push(PollFd::new(&wake_r, PollFlags::IN));
        }
        let wait = match (deadline, exited.is_some()) {
            (_, true) => Some(Duration::from_millis(500)),
            (Some(d), false) => Some(d.saturating_duration_since(Instant::now())),
            (None, false) => None,
        };
        let ts = wait.map(|w| rustix::event::Timespec {
            tv_sec: w.as_secs() as i64,
            tv_nsec: w.subsec_nanos() as i64,
        });
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
        let ready: Vec<bool> = fds.iter().map(|f| !f.revents().is_empty()).collect();
        let nothing = !ready.iter().any(|r| *r);
        drop(fds);
        if nothing {
            if exited.is_some() {
                // Output still open after the container's processes are gone
                // (someone else holds the pipe): stop reading.
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                running.kill();
                outcome = Some(ExitStatus::TimedOut);
                exited = Some(running.wait()?);
            }
            continue;
        }
        let mut closed = Vec::new();
        for (i, (fd, is_out)) in outs.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            match rustix::io::read(fd, &mut buf) {
                Ok(0) | Err(rustix::io::Errno::IO) => closed.push(i),
                Ok(n) => {
                    let (sink, name) = if *is_out {
                        (&mut *stdio.stdout, "stdout")
                    } else {
                        (&mut *stdio.stderr, "stderr")
                    };
                    sink.write_all(&buf[..n])
                        .and_then(|()| sink.flush())
                        .map_err(|source| Error::Stream {
                            stream: name,
                            source,
                        })?;
                }
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(Error::sys("read container output", e)),
            }
        }
        for i in closed.into_iter().rev() {
            outs.remove(i);
        }
        if exited.is_none() && ready.get(n_out + 1).copied().unwrap_or(false) {
            let mut drain = [0u8; 64];
            while matches!(rustix::io::read(&wake_r, &mut drain), Ok(n) if n > 0) {}
            apply_size(&resize_fd);
            let (cancel, signals) =
                control.with_quiet(|s| (s.cancelled, std::mem::take(&mut s.signals)));
            for sig in signals {
                // SAFETY-free: signal numbers come from the caller; invalid
                // ones are reported by the kernel and ignored here.
                if let Some(signal) = Signal::from_named_raw(sig) {
                    let _ = rustix::process::pidfd_send_signal(&running.pidfd, signal);
                }
            }
            if cancel {
                running.kill();
                outcome = Some(ExitStatus::Cancelled);
                exited = Some(running.wait()?);
                continue;
            }
        }
        if exited.is_none() && ready.get(n_out).copied().unwrap_or(false) {
            exited = Some(running.wait()?);
        }
    }
    let status = match exited {
        Some(s) => s,
        None => running.wait()?,
    };
    if let Some(o) = outcome {
        return Ok(o);
    }
    let oom = running.cgroup.as_ref().map_or(0, Cgroup::oom_kills) > 0;
    Ok(match (status.exit_status(), status.terminating_signal()) {
        (_, Some(libc::SIGKILL)) if oom => ExitStatus::OomKilled,
        (Some(137), _) if oom => ExitStatus::OomKilled,
        (_, Some(sig)) => ExitStatus::Signaled(sig),
        (Some(code), _) => ExitStatus::Exited(code),
        (None, None) => ExitStatus::Exited(0),
    })
}

/// Waits until `fd` is readable (or closed); `false` when `deadline`
/// passes first.
fn wait_readable(fd: &OwnedFd, deadline: Option<Instant>) -> Result<bool> {
    loop {
        let ts = deadline.map(|d| {
            let w = d.saturating_duration_since(Instant::now());
            rustix::event::Timespec {
                tv_sec: w.as_secs() as i64,
                tv_nsec: i64::from(w.subsec_nanos()),
            }
        });
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, ts.as_ref()) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("poll", e)),
        }
    }
}

/// Receives one file descriptor sent with SCM_RIGHTS; `None` at EOF.
fn receive_fd(sock: &OwnedFd) -> Result<Option<OwnedFd>> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    use std::mem::MaybeUninit;
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    loop {
        match recvmsg(
            sock,
            &mut [io::IoSliceMut::new(&mut byte)],
            &mut control,
            RecvFlags::CMSG_CLOEXEC,
        ) {
            Ok(_) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("recvmsg the pty master", e)),
        }
    }
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = msg
            && let Some(fd) = fds.next()
        {
            return Ok(Some(fd));
        }
    }
    Ok(None)
}

struct Unregister<'a>(&'a Control);

impl Drop for Unregister<'_> {
    fn drop(&mut self) {
        self.0.with_quiet(|s| s.waker = None);
    }
}

impl Control {
    fn with_quiet<R>(&self, f: impl FnOnce(&mut ControlState) -> R) -> R {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_propagation_and_data() -> Result<()> {
        let opts: Vec<String> = ["nosuid", "ro", "rbind", "rslave", "mode=755", "size=1k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let (mf, data) = parse_options(&opts)?;
        assert_eq!(
            mf.flags,
            libc::MS_NOSUID | libc::MS_RDONLY | libc::MS_BIND | libc::MS_REC
        );
        assert_eq!(mf.propagation, libc::MS_SLAVE | libc::MS_REC);
        assert_eq!(data, vec!["mode=755", "size=1k"]);
        Ok(())
    }

    #[test]
    fn prefixes_for_mkdir_p() -> Result<()> {
        let p = prefixes("/a/b/../c", "")?;
        assert_eq!(p, vec![cstr("/a")?, cstr("/a/c")?]);
        let p = prefixes("/root/fs/dev", "/root/fs")?;
        assert_eq!(p, vec![cstr("/root/fs/dev")?]);
        Ok(())
    }

    #[test]
    fn rootfs_files_resolve_symlinks_inside_the_layers() -> std::io::Result<()> {
        use std::os::unix::fs::symlink;
        let (upper, lower) = (tempfile::tempdir()?, tempfile::tempdir()?);
        fs::create_dir_all(lower.path().join("usr/lib"))?;
        fs::create_dir_all(upper.path().join("etc"))?;
        fs::write(lower.path().join("usr/lib/passwd"), "x")?;
        // Absolute and relative links, across layers; a link to a host path
        // resolves inside the layers (missing there).
        symlink("/usr/lib/passwd", upper.path().join("etc/passwd"))?;
        symlink("../usr/lib/passwd", upper.path().join("etc/rel"))?;
        symlink("/etc/shadow", upper.path().join("etc/host"))?;
        let layers = [upper.path(), lower.path()];
        let want = Some(lower.path().join("usr/lib/passwd"));
        assert_eq!(resolve_in_layers(&layers, "etc/passwd"), want);
        assert_eq!(resolve_in_layers(&layers, "etc/rel"), want);
        assert_eq!(resolve_in_layers(&layers, "etc/../../etc/passwd"), want);
        assert_eq!(resolve_in_layers(&layers, "etc/host"), None);
        Ok(())
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ExitStatus::Signaled(9).code(), 137);
        assert_eq!(ExitStatus::Exited(3).code(), 3);
        assert!(ExitStatus::Exited(0).success());
        assert!(!ExitStatus::OomKilled.success());
    }
}
