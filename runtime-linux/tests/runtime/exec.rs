//! `exec_in`: a second process inside a running container joins its
//! namespaces (pid, mount, uts, net, ipc), root, cgroup and security
//! set-up, and its exit status comes back.

use std::time::{Duration, Instant};

use crate::support::*;
use kiln_runtime_linux::oci_spec::runtime::{LinuxPidsBuilder, LinuxResourcesBuilder};
use kiln_runtime_linux::{
    Container, Control, Error, ExitStatus, RunOptions, Stdio, docker_default_spec, exec_in,
};

/// Runs `spec` in a background thread until the test is done; returns the
/// container's pid and a handle to stop it.
struct Background {
    control: Control,
    thread: Option<std::thread::JoinHandle<()>>,
    _overlay: Overlay,
}

impl Background {
    fn start(spec: kiln_runtime_linux::oci_spec::runtime::Spec) -> (Background, i32) {
        let overlay = Overlay::new();
        let control = Control::new();
        let mut opts = RunOptions::new();
        opts.control = Some(control.clone());
        let rootfs = overlay.rootfs();
        let thread = std::thread::spawn(move || {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let _ = Container::new(spec, rootfs, opts).run(Stdio::new(&mut out, &mut err));
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        let pid = loop {
            if let Some(p) = control.pid() {
                break p;
            }
            assert!(Instant::now() < deadline, "container did not start");
            std::thread::sleep(Duration::from_millis(5));
        };
        // Wait until the container's command runs (its marker file exists).
        while !std::path::Path::new(&format!("/proc/{pid}/root/tmp/ready")).exists() {
            assert!(Instant::now() < deadline, "container did not get ready");
            std::thread::sleep(Duration::from_millis(5));
        }
        (
            Background {
                control,
                thread: Some(thread),
                _overlay: overlay,
            },
            pid,
        )
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.control.cancel();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn exec(pid: i32, spec: kiln_runtime_linux::oci_spec::runtime::Spec) -> Run {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let status = exec_in(pid, spec, RunOptions::new(), Stdio::new(&mut out, &mut err))
        .unwrap_or_else(|e| panic!("exec: {}", error_chain(&e)));
    Run {
        status,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}

#[test]
fn exec_joins_the_running_containers_namespaces_and_root() {
    let mut spec = sh("echo from-init > /tmp/marker; touch /tmp/ready; sleep 60");
    spec.set_hostname(Some("box-exec".into()));
    let (bg, pid) = Background::start(spec);
    let r = exec(
        pid,
        sh(
            "cat /tmp/marker; hostname; echo $$; ls /proc | grep -c '^[0-9]'; ls /sys/class/net; exit 7",
        ),
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "from-init", "{r:?}");
    assert_eq!(lines[1], "box-exec", "{r:?}");
    // Inside the container's pid namespace: not pid 1 (that is sleep's sh),
    // and only the container's processes are visible.
    assert_ne!(lines[2], "1", "{r:?}");
    let n: u32 = lines[3].parse().unwrap_or(99);
    assert!(n <= 6, "saw {n} processes: {r:?}");
    assert_eq!(lines[4], "lo", "{r:?}");
    assert_eq!(r.status, ExitStatus::Exited(7));
    // Writes from exec land in the container's root.
    let w = exec(pid, sh("echo from-exec > /tmp/second"));
    assert!(w.status.success(), "{w:?}");
    let seen = std::fs::read_to_string(format!("/proc/{pid}/root/tmp/second")).unwrap_or_default();
    assert_eq!(seen, "from-exec\n");
    drop(bg);
}

#[test]
fn exec_has_the_containers_security_and_cgroup() {
    let mut spec = sh("touch /tmp/ready; sleep 60");
    let res = LinuxResourcesBuilder::default()
        .pids(
            LinuxPidsBuilder::default()
                .limit(50)
                .build()
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    if let Some(l) = spec.linux_mut().as_mut() {
        l.set_resources(Some(res));
    }
    let (bg, pid) = Background::start(spec);
    let r = exec(
        pid,
        sh(
            "for p in 1 self; do grep -E '^(NoNewPrivs|Seccomp|CapBnd|CapEff):' /proc/$p/status; cat /proc/$p/cgroup; echo --; done",
        ),
    );
    // The same security set-up and cgroups as the container's pid 1.
    let parts: Vec<&str> = r.stdout.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{r:?}");
    assert_eq!(parts[0], parts[1], "{r:?}");
    assert!(parts[0].contains("Seccomp:\t2"), "{r:?}");
    assert!(parts[0].contains("CapBnd:\t00000000a80425fb"), "{r:?}");
    // The pids limit (its own cgroup) applies to the exec'd process.
    let host_view = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(host_view.contains("kiln-"), "{host_view}");

    let mut as_nobody = sh("id -u");
    let mut opts = RunOptions::new();
    opts.user = Some("nobody".into());
    as_nobody.set_hostname(None);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let st = exec_in(pid, as_nobody, opts, Stdio::new(&mut out, &mut err))
        .unwrap_or_else(|e| panic!("exec: {}", error_chain(&e)));
    assert!(st.success());
    assert_eq!(String::from_utf8_lossy(&out).trim(), "65534");
    drop(bg);
}

#[test]
fn exec_of_a_missing_command_is_an_exec_error() {
    let (bg, pid) = Background::start(sh("touch /tmp/ready; sleep 60"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let r = exec_in(
        pid,
        docker_default_spec(vec!["no-such-command".into()]),
        RunOptions::new(),
        Stdio::new(&mut out, &mut err),
    );
    assert!(matches!(r, Err(Error::Exec { .. })), "{r:?}");
    drop(bg);
}

#[test]
fn exec_into_a_gone_process_fails_cleanly() {
    let r = exec_in(
        i32::MAX - 1,
        sh("true"),
        RunOptions::new(),
        Stdio::new(&mut Vec::new(), &mut Vec::new()),
    );
    assert!(matches!(r, Err(Error::Read { .. })), "{r:?}");
}

#[test]
fn exec_stdin_reaches_end_of_file() {
    // Regression: the forking intermediate kept the parent's end of the
    // stdin pipe open, so `cat` never saw end-of-file.
    let (bg, pid) = Background::start(sh("touch /tmp/ready; sleep 60"));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stdin: Box<dyn std::io::Read + Send> = Box::new(std::io::Cursor::new(b"in\n".to_vec()));
    let mut opts = RunOptions::new();
    opts.timeout = Some(Duration::from_secs(20));
    let status = exec_in(
        pid,
        sh("cat; echo end"),
        opts,
        Stdio::new(&mut out, &mut err).with_stdin(stdin),
    )
    .unwrap_or_else(|e| panic!("exec: {}", error_chain(&e)));
    assert_eq!(status, ExitStatus::Exited(0));
    assert_eq!(String::from_utf8_lossy(&out), "in\nend\n");
    drop(bg);
}

#[test]
fn exec_with_a_terminal_gets_its_own_pty_in_the_containers_devpts() {
    let (bg, pid) = Background::start(sh("touch /tmp/ready; sleep 60"));
    let console_mounts = || {
        std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("/dev/console"))
            .count()
    };
    let before = console_mounts();
    let mut spec =
        sh("test -t 0 && test -t 1 && echo tty; tty; stty size; read line; echo got $line");
    if let Some(p) = spec.process_mut() {
        p.set_terminal(Some(true));
    }
    let control = Control::new();
    control.resize(20, 70);
    let mut opts = RunOptions::new();
    opts.control = Some(control);
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let stdio = Stdio::new(&mut out, &mut err)
        .with_stdin(Box::new(std::io::Cursor::new(b"typed\n".to_vec())));
    let status =
        exec_in(pid, spec, opts, stdio).unwrap_or_else(|e| panic!("exec: {}", error_chain(&e)));
    assert!(status.success());
    let text = String::from_utf8_lossy(&out).replace('\r', "");
    let text = text.replacen("typed\n", "", 1);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "tty", "{text:?}");
    assert!(lines[1].starts_with("/dev/pts/"), "{text:?}");
    assert_eq!(lines[2..], ["20 70", "got typed"], "{text:?}");
    // The container's /dev/console is left alone (only its first process
    // gets the console).
    assert_eq!(console_mounts(), before);
    drop(bg);
}

#[test]
fn quick_exits_are_always_reaped() {
    // Regression: a process that exited before the forking intermediate
    // blocked its signals lost its SIGCHLD, and exec hung forever.
    let (bg, pid) = Background::start(sh("touch /tmp/ready; sleep 60"));
    for _ in 0..40 {
        let mut opts = RunOptions::new();
        opts.timeout = Some(Duration::from_secs(20));
        let status = exec_in(
            pid,
            docker_default_spec(vec!["true".into()]),
            opts,
            Stdio::new(&mut Vec::new(), &mut Vec::new()),
        )
        .unwrap_or_else(|e| panic!("exec: {}", error_chain(&e)));
        assert_eq!(status, ExitStatus::Exited(0));
    }
    drop(bg);
}
