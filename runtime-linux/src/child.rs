//! The container's first process: `clone(2)` into new namespaces, then set
//! up mounts, credentials and security, then `execve(2)`.
//!
//! The parent may be multi-threaded (a test harness, a tokio runtime), so
//! after `clone` the child must not allocate, lock or unwind: another
//! thread may have held the allocator's lock at the moment of the clone.
//! Everything the child needs is therefore computed by the parent into a
//! [`ChildPlan`] of C strings, numbers and pointer arrays, and the child
//! only issues raw system calls with it. This is the same discipline as
//! runc's `nsexec.c`, minus the re-exec. Failures are reported to the
//! parent as `(step, errno)` over a close-on-exec pipe; a successful
//! `execve` closes it, which the parent reads as end-of-file.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::RawFd;
use std::ptr;

use libc::{c_char, c_int, c_ulong, c_void};

/// One set-up operation, run in order by the child.
#[derive(Debug)]
pub(crate) enum Op {
    /// `mount(2)`; with `bind_fallback`, an `EPERM` (a user namespace that
    /// does not own the network namespace cannot mount sysfs) is retried as
    /// a recursive bind of that source followed by a read-only remount.
    Mount {
        src: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: c_ulong,
        data: Option<CString>,
        bind_fallback: Option<CString>,
    },
    /// `MS_REMOUNT | MS_BIND` with `flags`, keeping the flags the kernel
    /// locks in a user namespace (nosuid, nodev, noexec, atime flags).
    Remount { target: CString, flags: c_ulong },
    /// Change propagation of a mount (`MS_PRIVATE`, `MS_SLAVE`, ...).
    Propagate { target: CString, flags: c_ulong },
    /// `mkdir` of each prefix in turn (EEXIST is fine).
    MkdirAll { prefixes: Vec<CString> },
    /// Create an empty regular file if missing (a bind-mount target).
    Touch { path: CString },
    /// `mknod` of a device (EEXIST is fine).
    Mknod {
        path: CString,
        mode: libc::mode_t,
        dev: libc::dev_t,
    },
    /// `symlink` (EEXIST is fine).
    Symlink { target: CString, link: CString },
    /// Write a small file (mode 0644).
    WriteFile { path: CString, data: Vec<u8> },
    /// `unlink`.
    Unlink { path: CString },
    /// `rmdir`.
    Rmdir { path: CString },
    /// `pivot_root(new_root, put_old)` then `chdir("/")`.
    Pivot { new_root: CString, put_old: CString },
    /// `umount2` with flags.
    Umount { target: CString, flags: c_int },
    /// Fails with ELOOP if the path is a symbolic link (a root filesystem
    /// whose `/dev` points elsewhere would make us mount on the host).
    NotSymlink { path: CString },
    /// Docker's masked paths: a directory gets a read-only tmpfs, anything
    /// else `/dev/null`; a missing path is skipped.
    Mask { path: CString },
    /// Docker's read-only paths: bind onto itself, remount read-only; a
    /// missing path is skipped.
    ReadOnly { path: CString },
    /// `sethostname`.
    Hostname { name: CString },
    /// `setdomainname`.
    Domainname { name: CString },
    /// Bring the loopback interface up in a new network namespace.
    LoopbackUp,
}

/// Steps outside the op list, reported with these codes (ops report their
/// index in the list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub(crate) enum Fixed {
    WaitParent = 0x1000,
    JoinCgroup,
    Setns,
    MountPrivate,
    Chdir,
    Mkcwd,
    Rlimit,
    Setsid,
    Ctty,
    Dup2,
    Keepcaps,
    Bounding,
    Setgroups,
    Setgid,
    Setuid,
    Capset,
    Ambient,
    NoNewPrivs,
    Seccomp,
    Pdeathsig,
    CloseRange,
    Exec,
    SetUidZero,
    Console,
    InitFork,
}

impl Fixed {
    pub(crate) fn from_code(code: u32) -> Option<Fixed> {
        const ALL: [Fixed; 25] = [
            Fixed::WaitParent,
            Fixed::JoinCgroup,
            Fixed::Setns,
            Fixed::MountPrivate,
            Fixed::Chdir,
            Fixed::Mkcwd,
            Fixed::Rlimit,
            Fixed::Setsid,
            Fixed::Ctty,
            Fixed::Dup2,
            Fixed::Keepcaps,
            Fixed::Bounding,
            Fixed::Setgroups,
            Fixed::Setgid,
            Fixed::Setuid,
            Fixed::Capset,
            Fixed::Ambient,
            Fixed::NoNewPrivs,
            Fixed::Seccomp,
            Fixed::Pdeathsig,
            Fixed::CloseRange,
            Fixed::Exec,
            Fixed::SetUidZero,
            Fixed::Console,
            Fixed::InitFork,
        ];
        ALL.into_iter().find(|f| *f as u32 == code)
    }

    pub(crate) fn describe(self) -> &'static str {
        match self {
            Fixed::WaitParent => "wait for the parent to write the user namespace maps",
            Fixed::JoinCgroup => "write 0 to cgroup.procs",
            Fixed::Setns => "setns into a namespace of the spec",
            Fixed::MountPrivate => "make / private (mount MS_REC|MS_PRIVATE)",
            Fixed::Chdir => "chdir to the working directory",
            Fixed::Mkcwd => "mkdir the working directory",
            Fixed::Rlimit => "setrlimit",
            Fixed::Setsid => "setsid",
            Fixed::Ctty => "ioctl TIOCSCTTY on the pty",
            Fixed::Dup2 => "dup2 the standard streams",
            Fixed::Keepcaps => "prctl PR_SET_KEEPCAPS",
            Fixed::Bounding => "prctl PR_CAPBSET_DROP",
            Fixed::Setgroups => "setgroups",
            Fixed::Setgid => "setresgid",
            Fixed::Setuid => "setresuid",
            Fixed::Capset => "capset",
            Fixed::Ambient => "prctl PR_CAP_AMBIENT_RAISE",
            Fixed::NoNewPrivs => "prctl PR_SET_NO_NEW_PRIVS",
            Fixed::Seccomp => "seccomp SECCOMP_SET_MODE_FILTER",
            Fixed::Pdeathsig => "prctl PR_SET_PDEATHSIG",
            Fixed::CloseRange => "close_range CLOSE_RANGE_CLOEXEC",
            Fixed::Exec => "execve",
            Fixed::SetUidZero => "setresuid 0 in the new user namespace",
            Fixed::Console => "open the container's pty (/dev/ptmx) and send it to the parent",
            Fixed::InitFork => "fork the process from the container's init",
        }
    }
}

/// Capability sets as bit masks (bit n = capability number n).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct CapSets {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Highest capability number the kernel knows (`cap_last_cap`).
    pub last_cap: u32,
}

/// Everything the child needs, precomputed by the parent.
#[derive(Debug)]
pub(crate) struct ChildPlan {
    /// Wait on this fd for one byte before anything else (user namespace
    /// maps are written by the parent).
    pub sync_fd: Option<RawFd>,
    /// `cgroup.procs` files opened by the parent, one per hierarchy.
    pub cgroup_fds: Vec<RawFd>,
    /// Namespaces to join: (fd, CLONE_NEW* type).
    pub setns: Vec<(RawFd, c_int)>,
    /// Unshare the cgroup namespace after joining the cgroup.
    pub new_cgroupns: bool,
    pub ops: Vec<Op>,
    pub rlimits: Vec<(c_int, u64, u64)>,
    pub cwd: CString,
    pub cwd_prefixes: Vec<CString>,
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// With a terminal: the socket on which the pty master, opened in the
    /// container's own devpts instance, is sent to the parent; the slave
    /// becomes the process's stdio and controlling terminal.
    pub console_sock: Option<RawFd>,
    /// The terminal's size (rows, cols) when the caller set one before the
    /// start: applied before exec, so the process never sees 0x0.
    pub console_size: Option<(u16, u16)>,
    /// Bind-mount the pty slave on `/dev/console` (the container's first
    /// process; not a process joining a running container).
    pub bind_console: bool,
    /// Run a minimal init as pid 1 that reaps zombies and forwards signals.
    pub init: bool,
    pub uid: libc::uid_t,
    pub gid: libc::gid_t,
    pub groups: Vec<libc::gid_t>,
    /// Become uid/gid 0 after the user namespace maps are written.
    pub userns: bool,
    /// Skip `setgroups` (forbidden when `/proc/PID/setgroups` is `deny`).
    pub skip_setgroups: bool,
    pub umask: Option<libc::mode_t>,
    pub caps: Option<CapSets>,
    pub no_new_privs: bool,
    pub seccomp: Option<Vec<crate::seccomp::SockFilter>>,
    pub err_fd: RawFd,
    /// Candidate paths for `args[0]` (PATH search done by the parent's
    /// reading of the environment, tried in order by the child).
    pub exe_candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

type StepResult = Result<(), (u32, c_int)>;

fn errno() -> c_int {
    std::io::Error::last_os_error()
        .raw_os_error()
        .unwrap_or(libc::EIO)
}

fn check(ret: c_int, code: u32) -> StepResult {
    if ret < 0 {
        Err((code, errno()))
    } else {
        Ok(())
    }
}

/// A raw three-argument id system call. glibc's `setresuid` and friends
/// must not be used in the child: in a process glibc believes to be
/// multi-threaded they broadcast the change to every thread (POSIX
/// semantics) and wait for threads that do not exist in the clone.
fn raw3(nr: libc::c_long, a: u32, b: u32, c: u32) -> c_int {
    // SAFETY: the id system calls take three integers.
    unsafe { libc::syscall(nr, a, b, c) as c_int }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(ptr::null(), |s| s.as_ptr())
}

/// Creates the container's first process in new namespaces (`flags` are
/// `CLONE_NEW*` bits) and runs `plan` in it. Returns the child's pid in
/// the parent's pid namespace.
pub(crate) fn spawn(flags: c_int, plan: &ChildPlan) -> std::io::Result<libc::pid_t> {
    // Build the pointer arrays before the clone: the child cannot allocate.
    let argv: Vec<*const c_char> = plan
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([ptr::null()])
        .collect();
    let envp: Vec<*const c_char> = plan
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([ptr::null()])
        .collect();

    // SAFETY: a raw clone without CLONE_VM behaves like fork(2): the child
    // gets a copy-on-write copy of this address space and continues on a
    // copy of this stack. It never returns from `child_main` (which ends in
    // execve or _exit) and only makes async-signal-safe system calls, so
    // locks held by other threads of the parent at the time of the clone
    // are never touched.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as c_ulong,
            ptr::null_mut::<c_void>(),
            ptr::null_mut::<c_void>(),
            ptr::null_mut::<c_void>(),
            0 as c_ulong,
        )
    };
    if pid < 0 {
        return Err(std::io::Error::last_os_error());
    }
    if pid == 0 {
        child_main(plan, &argv, &envp);
    }
    Ok(pid as libc::pid_t)
}

fn child_main(plan: &ChildPlan, argv: &[*const c_char], envp: &[*const c_char]) -> ! {
    let (code, err) = match setup(plan, argv, envp) {
        Ok(()) => (Fixed::Exec as u32, libc::ENOENT),
        Err(e) => e,
    };
    let mut msg = [0u8; 8];
    let (a, b) = msg.split_at_mut(4);
    a.copy_from_slice(&code.to_ne_bytes());
    b.copy_from_slice(&err.to_ne_bytes());
    // SAFETY: writing a stack buffer to a pipe and exiting without running
    // atexit handlers or destructors (which belong to the parent's copy).
    unsafe {
        libc::write(plan.err_fd, msg.as_ptr().cast(), msg.len());
        libc::_exit(127);
    }
}

fn setup(plan: &ChildPlan, argv: &[*const c_char], envp: &[*const c_char]) -> StepResult {
    // SAFETY (for every `unsafe` block in this function and the ones it
    // calls): the arguments are pointers into `plan`, which outlives the
    // call, NUL-terminated C strings, stack buffers of the sizes passed, or
    // plain integers; none of the calls allocate or take user-space locks.
    unsafe {
        if let Some(fd) = plan.sync_fd {
            let mut b = 0u8;
            let n = libc::read(fd, (&raw mut b).cast(), 1);
            if n != 1 {
                return Err((
                    Fixed::WaitParent as u32,
                    if n < 0 { errno() } else { libc::EPIPE },
                ));
            }
            libc::close(fd);
        }
        if plan.userns {
            check(raw3(libc::SYS_setresgid, 0, 0, 0), Fixed::SetUidZero as u32)?;
            check(raw3(libc::SYS_setresuid, 0, 0, 0), Fixed::SetUidZero as u32)?;
        }
        for &fd in &plan.cgroup_fds {
            if libc::write(fd, b"0".as_ptr().cast(), 1) < 0 {
                return Err((Fixed::JoinCgroup as u32, errno()));
            }
            libc::close(fd);
        }
        if plan.new_cgroupns {
            check(libc::unshare(libc::CLONE_NEWCGROUP), Fixed::Setns as u32)?;
        }
        for &(fd, nstype) in &plan.setns {
            check(libc::setns(fd, nstype), Fixed::Setns as u32)?;
            libc::close(fd);
        }
        // Device nodes and files are created with exact modes.
        libc::umask(0);
        check(
            libc::mount(
                ptr::null(),
                c"/".as_ptr(),
                ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                ptr::null(),
            ),
            Fixed::MountPrivate as u32,
        )?;
        for (i, op) in plan.ops.iter().enumerate() {
            run_op(op).map_err(|e| (i as u32, e))?;
        }

        for &(res, soft, hard) in &plan.rlimits {
            set_rlimit(res, soft, hard)?;
        }

        // The working directory is created as root, as Docker does for
        // WORKDIR, before dropping privileges.
        for p in &plan.cwd_prefixes {
            if libc::mkdir(p.as_ptr(), 0o755) < 0 && errno() != libc::EEXIST {
                return Err((Fixed::Mkcwd as u32, errno()));
            }
        }
        check(libc::chdir(plan.cwd.as_ptr()), Fixed::Chdir as u32)?;

        check(libc::setsid(), Fixed::Setsid as u32)?;
        let mut stdio = [plan.stdin, plan.stdout, plan.stderr];
        if let Some(sock) = plan.console_sock {
            let slave = open_console(sock, plan.console_size, plan.bind_console)
                .map_err(|e| (Fixed::Console as u32, e))?;
            check(libc::ioctl(slave, libc::TIOCSCTTY, 0), Fixed::Ctty as u32)?;
            stdio = [slave; 3];
        }
        for (from, to) in [(stdio[0], 0), (stdio[1], 1), (stdio[2], 2)] {
            check(libc::dup2(from, to), Fixed::Dup2 as u32)?;
        }

        // Signals: the parent's mask and ignored signals (Rust ignores
        // SIGPIPE) must not leak into the container.
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, ptr::null_mut());
        for sig in 1..32 {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }

        // Credentials and capabilities, in runc's order
        // (libcontainer/init_linux.go finalizeNamespace).
        if let Some(caps) = &plan.caps {
            for cap in 0..=caps.last_cap {
                if caps.bounding & (1u64 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as c_ulong, 0, 0, 0) < 0
                    && errno() != libc::EINVAL
                {
                    return Err((Fixed::Bounding as u32, errno()));
                }
            }
        }
        if !plan.no_new_privs {
            // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN,
            // which we still hold here.
            load_seccomp(plan)?;
        }
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0),
            Fixed::Keepcaps as u32,
        )?;
        if !plan.skip_setgroups {
            let r = libc::syscall(libc::SYS_setgroups, plan.groups.len(), plan.groups.as_ptr());
            check(r as c_int, Fixed::Setgroups as u32)?;
        }
        check(
            raw3(libc::SYS_setresgid, plan.gid, plan.gid, plan.gid),
            Fixed::Setgid as u32,
        )?;
        check(
            raw3(libc::SYS_setresuid, plan.uid, plan.uid, plan.uid),
            Fixed::Setuid as u32,
        )?;
        check(
            libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0),
            Fixed::Keepcaps as u32,
        )?;
        if let Some(caps) = &plan.caps {
            apply_caps(caps)?;
        }
        if let Some(mask) = plan.umask {
            libc::umask(mask);
        } else {
            libc::umask(0o022);
        }
        if plan.no_new_privs {
            check(
                libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0),
                Fixed::NoNewPrivs as u32,
            )?;
            load_seccomp(plan)?;
        }
        // Die with the thread that runs the container (set after the
        // credential change, which clears it).
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as c_ulong, 0, 0, 0),
            Fixed::Pdeathsig as u32,
        )?;
        // No descriptor of the parent (a test harness, an engine) may leak
        // into the container; the error pipe closes on a successful exec.
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) < 0
        {
            return Err((Fixed::CloseRange as u32, errno()));
        }

        if plan.init {
            let pid = libc::syscall(
                libc::SYS_clone,
                libc::SIGCHLD as c_ulong,
                0usize,
                0usize,
                0usize,
                0usize,
            );
            if pid < 0 {
                return Err((Fixed::InitFork as u32, errno()));
            }
            if pid > 0 {
                init_loop(pid as libc::pid_t, plan.err_fd);
            }
        }

        let mut last = libc::ENOENT;
        for exe in &plan.exe_candidates {
            libc::execve(exe.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = errno();
            match e {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => last = e,
                _ => return Err((Fixed::Exec as u32, e)),
            }
        }
        Err((Fixed::Exec as u32, last))
    }
}

/// Opens a pty in the container's devpts instance (as runc does with its
/// console socket), bind-mounts the slave on `/dev/console`, sends the
/// master to the parent and returns the slave.
unsafe fn open_console(
    sock: RawFd,
    size: Option<(u16, u16)>,
    bind_console: bool,
) -> Result<RawFd, c_int> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    use std::mem::MaybeUninit;
    use std::os::fd::BorrowedFd;
    // SAFETY: see `setup`; the fds are ours and live through the calls.
    unsafe {
        let master = libc::open(
            c"/dev/ptmx".as_ptr(),
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        );
        if master < 0 {
            return Err(errno());
        }
        let unlock: c_int = 0;
        if libc::ioctl(master, libc::TIOCSPTLCK, &unlock) < 0 {
            return Err(errno());
        }
        let slave = libc::ioctl(master, libc::TIOCGPTPEER, libc::O_RDWR | libc::O_NOCTTY);
        if slave < 0 {
            return Err(errno());
        }
        if let Some((rows, cols)) = size {
            let ws = libc::winsize {
                ws_row: rows,
                ws_col: cols,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            if libc::ioctl(master, libc::TIOCSWINSZ, &ws) < 0 {
                return Err(errno());
            }
        }
        let mut n: libc::c_uint = 0;
        if libc::ioctl(master, libc::TIOCGPTN, &mut n) < 0 {
            return Err(errno());
        }
        // "/dev/pts/<n>\0" without allocating.
        let mut path = [0u8; 32];
        let prefix = b"/dev/pts/";
        path[..prefix.len()].copy_from_slice(prefix);
        let mut digits = [0u8; 10];
        let mut len = 0;
        loop {
            digits[len] = b'0' + (n % 10) as u8;
            len += 1;
            n /= 10;
            if n == 0 || len == digits.len() {
                break;
            }
        }
        for i in 0..len {
            path[prefix.len() + i] = digits[len - 1 - i];
        }
        let console = c"/dev/console";
        let fd = if !bind_console {
            -1
        } else {
            libc::open(
                console.as_ptr(),
                libc::O_WRONLY
                    | libc::O_CREAT
                    | libc::O_CLOEXEC
                    | libc::O_NOCTTY
                    | libc::O_NONBLOCK,
                0o666,
            )
        };
        if fd >= 0 {
            libc::close(fd);
        }
        if bind_console
            && libc::mount(
                path.as_ptr().cast(),
                console.as_ptr(),
                ptr::null(),
                libc::MS_BIND,
                ptr::null(),
            ) < 0
        {
            return Err(errno());
        }
        let fds = [BorrowedFd::borrow_raw(master)];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(libc::ENOBUFS);
        }
        let sock = BorrowedFd::borrow_raw(sock);
        if let Err(e) = sendmsg(
            sock,
            &[std::io::IoSlice::new(b"p")],
            &mut control,
            SendFlags::empty(),
        ) {
            return Err(e.raw_os_error());
        }
        libc::close(master);
        Ok(slave)
    }
}

/// pid 1 with [`ChildPlan::init`]: reaps every child (orphans are
/// reparented to it), forwards all other signals to the process, and exits
/// with the process's status (128 + signal when it was killed), as tini
/// (`docker run --init`) does.
unsafe fn init_loop(main: libc::pid_t, err_fd: RawFd) -> ! {
    // SAFETY: plain system calls with stack buffers; see `setup`.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, c"kiln-init".as_ptr() as c_ulong, 0, 0, 0);
        // The process holds the standard streams and the error pipe; the
        // parent waits for them to close. Every other descriptor goes too:
        // this process never executes, so close-on-exec ones (the parent's
        // end of the stdin pipe, in particular) would otherwise stay open
        // and the process would never see end-of-file on its input.
        for fd in [err_fd, 0, 1, 2] {
            libc::close(fd);
        }
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut set);
        libc::sigprocmask(libc::SIG_BLOCK, &set, ptr::null_mut());
        loop {
            // Reap before waiting: a process that ended before the signals
            // were blocked had its SIGCHLD discarded (the default action),
            // and waiting for another would hang forever.
            loop {
                let mut status: c_int = 0;
                let pid = libc::waitpid(-1, &mut status, libc::WNOHANG);
                if pid <= 0 {
                    break;
                }
                if pid == main {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else {
                        128 + libc::WTERMSIG(status)
                    };
                    libc::_exit(code);
                }
            }
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let sig = libc::sigwaitinfo(&set, &mut info);
            if sig > 0 && sig != libc::SIGCHLD {
                libc::kill(main, sig);
            }
        }
    }
}

unsafe fn load_seccomp(plan: &ChildPlan) -> StepResult {
    let Some(filter) = &plan.seccomp else {
        return Ok(());
    };
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut().cast(),
    };
    // SAFETY: `prog` points at `filter`, a live array of `struct sock_filter`
    // (same layout as `SockFilter`), for the duration of the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            1, /* SECCOMP_SET_MODE_FILTER */
            0u32,
            &raw const prog,
        )
    };
    if r < 0 {
        Err((Fixed::Seccomp as u32, errno()))
    } else {
        Ok(())
    }
}

unsafe fn set_rlimit(res: c_int, soft: u64, hard: u64) -> StepResult {
    // SAFETY: getrlimit/setrlimit with pointers to stack structs.
    unsafe {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        if libc::setrlimit(res as _, &lim) == 0 {
            return Ok(());
        }
        if errno() != libc::EPERM {
            return Err((Fixed::Rlimit as u32, errno()));
        }
        // Without CAP_SYS_RESOURCE a hard limit cannot be raised: clamp to
        // what the environment allows rather than fail (podman fails here).
        let mut cur = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        check(libc::getrlimit(res as _, &mut cur), Fixed::Rlimit as u32)?;
        let max = hard.min(cur.rlim_max);
        let lim = libc::rlimit {
            rlim_cur: soft.min(max),
            rlim_max: max,
        };
        check(libc::setrlimit(res as _, &lim), Fixed::Rlimit as u32)
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: c_int,
}
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

unsafe fn apply_caps(caps: &CapSets) -> StepResult {
    let header = CapHeader {
        version: 0x2008_0522,
        pid: 0,
    };
    let lo = |v: u64| v as u32;
    let hi = |v: u64| (v >> 32) as u32;
    let data = [
        CapData {
            effective: lo(caps.effective),
            permitted: lo(caps.permitted),
            inheritable: lo(caps.inheritable),
        },
        CapData {
            effective: hi(caps.effective),
            permitted: hi(caps.permitted),
            inheritable: hi(caps.inheritable),
        },
    ];
    // SAFETY: capset with a version-3 header and the two data structs the
    // version requires.
    unsafe {
        if libc::syscall(libc::SYS_capset, &raw const header, data.as_ptr()) < 0 {
            return Err((Fixed::Capset as u32, errno()));
        }
        for cap in 0..=caps.last_cap {
            if caps.ambient & (1u64 << cap) != 0
                && libc::prctl(
                    libc::PR_CAP_AMBIENT,
                    libc::PR_CAP_AMBIENT_RAISE,
                    cap as c_ulong,
                    0,
                    0,
                ) < 0
            {
                return Err((Fixed::Ambient as u32, errno()));
            }
        }
    }
    Ok(())
}

/// Mount flags the kernel locks on mounts inherited into a user namespace;
/// a remount must repeat them or fail with EPERM.
fn locked_flags(target: &CString) -> c_ulong {
    // Not glibc's statvfs, which may read /proc/mounts through stdio
    // (allocating); rustix issues statfs(2) directly.
    let Ok(st) = rustix::fs::statvfs(target.as_c_str()) else {
        return 0;
    };
    let f = st.f_flag.bits() as c_ulong;
    let mut out = 0;
    for (st_flag, ms_flag) in [
        (libc::ST_NOSUID, libc::MS_NOSUID),
        (libc::ST_NODEV, libc::MS_NODEV),
        (libc::ST_NOEXEC, libc::MS_NOEXEC),
        (libc::ST_NOATIME, libc::MS_NOATIME),
        (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
        (libc::ST_RELATIME, libc::MS_RELATIME),
    ] {
        if f & st_flag != 0 {
            out |= ms_flag;
        }
    }
    out
}

unsafe fn remount(target: &CString, flags: c_ulong) -> Result<(), c_int> {
    // SAFETY: see `setup`.
    unsafe {
        let base = libc::MS_REMOUNT | libc::MS_BIND | flags;
        if libc::mount(ptr::null(), target.as_ptr(), ptr::null(), base, ptr::null()) == 0 {
            return Ok(());
        }
        let e = errno();
        if e != libc::EPERM {
            return Err(e);
        }
        let with_locked = base | locked_flags(target);
        if libc::mount(
            ptr::null(),
            target.as_ptr(),
            ptr::null(),
            with_locked,
            ptr::null(),
        ) == 0
        {
            Ok(())
        } else {
            Err(errno())
        }
    }
}

unsafe fn run_op(op: &Op) -> Result<(), c_int> {
    let ok_if = |ret: c_int, allowed: c_int| -> Result<(), c_int> {
        if ret < 0 {
            let e = errno();
            if e != allowed { Err(e) } else { Ok(()) }
        } else {
            Ok(())
        }
    };
    // SAFETY: see `setup`: C strings from the plan, stack buffers, integers.
    unsafe {
        match op {
            Op::Mount {
                src,
                target,
                fstype,
                flags,
                data,
                bind_fallback,
            } => {
                let r = libc::mount(
                    opt_ptr(src),
                    target.as_ptr(),
                    opt_ptr(fstype),
                    *flags,
                    opt_ptr(data).cast(),
                );
                if r == 0 {
                    return Ok(());
                }
                let e = errno();
                match bind_fallback {
                    Some(fb) if e == libc::EPERM => {
                        if libc::mount(
                            fb.as_ptr(),
                            target.as_ptr(),
                            ptr::null(),
                            libc::MS_BIND | libc::MS_REC,
                            ptr::null(),
                        ) < 0
                        {
                            return Err(errno());
                        }
                        remount(target, *flags & !(libc::MS_BIND | libc::MS_REC))
                    }
                    _ => Err(e),
                }
            }
            Op::Remount { target, flags } => remount(target, *flags),
            Op::Propagate { target, flags } => ok_if(
                libc::mount(
                    ptr::null(),
                    target.as_ptr(),
                    ptr::null(),
                    *flags,
                    ptr::null(),
                ),
                0,
            ),
            Op::MkdirAll { prefixes } => {
                for p in prefixes {
                    ok_if(libc::mkdir(p.as_ptr(), 0o755), libc::EEXIST)?;
                }
                Ok(())
            }
            Op::Touch { path } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY
                        | libc::O_CREAT
                        | libc::O_CLOEXEC
                        | libc::O_NOCTTY
                        | libc::O_NONBLOCK,
                    0o644,
                );
                if fd < 0 {
                    // An existing file we cannot open for writing (a
                    // read-only bind target) is fine.
                    let e = errno();
                    let mut st: libc::stat = std::mem::zeroed();
                    if libc::stat(path.as_ptr(), &mut st) == 0 {
                        return Ok(());
                    }
                    return Err(e);
                }
                libc::close(fd);
                Ok(())
            }
            Op::Mknod { path, mode, dev } => {
                ok_if(libc::mknod(path.as_ptr(), *mode, *dev), libc::EEXIST)
            }
            Op::Symlink { target, link } => {
                ok_if(libc::symlink(target.as_ptr(), link.as_ptr()), libc::EEXIST)
            }
            Op::WriteFile { path, data } => {
                let fd = libc::open(
                    path.as_ptr(),
                    libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
                    0o644,
                );
                if fd < 0 {
                    return Err(errno());
                }
                let mut off = 0usize;
                while off < data.len() {
                    let rest = data.get(off..).unwrap_or_default();
                    let n = libc::write(fd, rest.as_ptr().cast(), rest.len());
                    if n <= 0 {
                        let e = errno();
                        libc::close(fd);
                        return Err(e);
                    }
                    off += n as usize;
                }
                libc::close(fd);
                Ok(())
            }
            Op::Unlink { path } => ok_if(libc::unlink(path.as_ptr()), 0),
            Op::Rmdir { path } => ok_if(libc::rmdir(path.as_ptr()), 0),
            Op::Pivot { new_root, put_old } => {
                if libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) < 0 {
                    return Err(errno());
                }
                ok_if(libc::chdir(c"/".as_ptr()), 0)
            }
            Op::Umount { target, flags } => ok_if(libc::umount2(target.as_ptr(), *flags), 0),
            Op::NotSymlink { path } => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::lstat(path.as_ptr(), &mut st) == 0
                    && st.st_mode & libc::S_IFMT == libc::S_IFLNK
                {
                    return Err(libc::ELOOP);
                }
                Ok(())
            }
            Op::Mask { path } => {
                let mut st: libc::stat = std::mem::zeroed();
                if libc::stat(path.as_ptr(), &mut st) < 0 {
                    return if errno() == libc::ENOENT {
                        Ok(())
                    } else {
                        Err(errno())
                    };
                }
                if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
                    ok_if(
                        libc::mount(
                            c"tmpfs".as_ptr(),
                            path.as_ptr(),
                            c"tmpfs".as_ptr(),
                            libc::MS_RDONLY,
                            ptr::null(),
                        ),
                        0,
                    )
                } else {
                    ok_if(
                        libc::mount(
                            c"/dev/null".as_ptr(),
                            path.as_ptr(),
                            ptr::null(),
                            libc::MS_BIND,
                            ptr::null(),
                        ),
                        0,
                    )
                }
            }
            Op::ReadOnly { path } => {
                if libc::mount(
                    path.as_ptr(),
                    path.as_ptr(),
                    ptr::null(),
                    libc::MS_BIND | libc::MS_REC,
                    ptr::null(),
                ) < 0
                {
                    return if errno() == libc::ENOENT {
                        Ok(())
                    } else {
                        Err(errno())
                    };
                }
                remount(
                    path,
                    libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                )
                .or_else(|_| remount(path, libc::MS_RDONLY))
            }
            Op::Hostname { name } => {
                ok_if(libc::sethostname(name.as_ptr(), name.as_bytes().len()), 0)
            }
            Op::Domainname { name } => {
                ok_if(libc::setdomainname(name.as_ptr(), name.as_bytes().len()), 0)
            }
            Op::LoopbackUp => {
                let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                if s < 0 {
                    return Err(errno());
                }
                let mut req: libc::ifreq = std::mem::zeroed();
                for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0") {
                    *d = *c as c_char;
                }
                let mut r = libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req);
                if r == 0 {
                    req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                    r = libc::ioctl(s, libc::SIOCSIFFLAGS, &req);
                }
                let e = errno();
                libc::close(s);
                if r < 0 { Err(e) } else { Ok(()) }
            }
        }
    }
}
