//! Cgroups for resource limits: v1 (one directory per controller), v2 (one
//! directory in the unified hierarchy), or a hybrid host, where the v1
//! controllers are used as runc does.
//!
//! A container's cgroup is created as a child of the caller's own cgroup
//! (from `/proc/self/cgroup`), limits are written before the container
//! joins it, and it is removed when the [`Cgroup`] is dropped, after the
//! container's processes are gone.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::runtime::LinuxResources;

use crate::error::{Error, Result};

const ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Which cgroup layout the host has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Only the unified (v2) hierarchy at /sys/fs/cgroup.
    V2,
    /// v1 controllers (possibly beside a v2 `unified` mount).
    V1,
}

pub(crate) fn layout() -> Layout {
    match rustix::fs::statfs(ROOT) {
        Ok(st) if st.f_type == CGROUP2_SUPER_MAGIC => Layout::V2,
        _ => Layout::V1,
    }
}

/// The limits this runtime applies, extracted from the spec's resources.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Limits {
    pub memory: Option<i64>,
    pub swap: Option<i64>,
    pub cpu_shares: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub pids: Option<i64>,
}

impl Limits {
    pub(crate) fn from_resources(r: &LinuxResources) -> Limits {
        let mem = r.memory().as_ref();
        let cpu = r.cpu().as_ref();
        Limits {
            memory: mem.and_then(|m| m.limit()).filter(|v| *v > 0),
            swap: mem.and_then(|m| m.swap()).filter(|v| *v != 0),
            cpu_shares: cpu.and_then(|c| c.shares()).filter(|v| *v > 0),
            cpu_quota: cpu.and_then(|c| c.quota()).filter(|v| *v > 0),
            cpu_period: cpu.and_then(|c| c.period()).filter(|v| *v > 0),
            pids: r.pids().as_ref().map(|p| p.limit()).filter(|v| *v > 0),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        *self == Limits::default()
    }
}

/// A container's cgroup directories; removed on drop.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dirs: Vec<PathBuf>,
    memory_dir: Option<PathBuf>,
    layout: Layout,
}

fn own_path(controller: Option<&str>) -> io::Result<String> {
    let text = fs::read_to_string("/proc/self/cgroup")?;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or("/"),
        );
        let matches = match controller {
            None => ctrls.is_empty(),
            Some(c) => ctrls.split(',').any(|x| x == c),
        };
        if matches {
            return Ok(path.to_string());
        }
    }
    Ok("/".to_string())
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    fs::write(&path, value).map_err(|source| Error::Cgroup {
        step: format!("write {value:?} to {file}"),
        path,
        source,
    })
}

fn unique_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "kiln-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

impl Cgroup {
    /// Creates the cgroup and writes the limits.
    pub(crate) fn create(limits: &Limits) -> Result<Cgroup> {
        let layout = layout();
        let name = unique_name();
        let mut cg = Cgroup {
            dirs: Vec::new(),
            memory_dir: None,
            layout,
        };
        match layout {
            Layout::V2 => {
                let mut want = Vec::new();
                if limits.memory.is_some() || limits.swap.is_some() {
                    want.push("+memory");
                }
                if limits.cpu_shares.is_some() || limits.cpu_quota.is_some() {
                    want.push("+cpu");
                }
                if limits.pids.is_some() {
                    want.push("+pids");
                }
                let enable = want.join(" ");
                // cgroup v2 forbids processes in a cgroup whose controllers
                // are delegated to children ("no internal processes"), so
                // the caller's own cgroup usually cannot be the parent. As
                // runc does, put containers under the root: /sys/fs/cgroup/
                // kiln/<name> (a stable parent, kept for the next run);
                // fall back to the caller's cgroup (e.g. a delegated
                // systemd scope).
                let under_root = || -> Result<PathBuf> {
                    let base = PathBuf::from(ROOT).join("kiln");
                    if !enable.is_empty() {
                        write(Path::new(ROOT), "cgroup.subtree_control", &enable)?;
                    }
                    fs::create_dir_all(&base).map_err(|source| Error::Cgroup {
                        step: "mkdir".into(),
                        path: base.clone(),
                        source,
                    })?;
                    if !enable.is_empty() {
                        write(&base, "cgroup.subtree_control", &enable)?;
                    }
                    Ok(base)
                };
                let parent = match under_root() {
                    Ok(p) => p,
                    Err(first) => {
                        let own = own_path(None).map_err(|source| Error::Cgroup {
                            step: "read /proc/self/cgroup".into(),
                            path: "/proc/self/cgroup".into(),
                            source,
                        })?;
                        let parent = PathBuf::from(ROOT).join(own.trim_start_matches('/'));
                        if !enable.is_empty()
                            && write(&parent, "cgroup.subtree_control", &enable).is_err()
                        {
                            return Err(first);
                        }
                        parent
                    }
                };
                let dir = parent.join(&name);
                cg.mkdir(&dir)?;
                cg.memory_dir = Some(dir.clone());
                if let Some(m) = limits.memory {
                    write(&dir, "memory.max", &m.to_string())?;
                }
                if let Some(s) = limits.swap {
                    // The spec's swap is memory+swap (v1 semantics).
                    let swap = match (s, limits.memory) {
                        (-1, _) => "max".to_string(),
                        (s, Some(m)) => (s - m).max(0).to_string(),
                        (s, None) => s.to_string(),
                    };
                    write(&dir, "memory.swap.max", &swap)?;
                }
                if let Some(shares) = limits.cpu_shares {
                    // runc's conversion from v1 shares to v2 weight.
                    let weight = 1 + ((shares.clamp(2, 262_144) - 2) * 9999) / 262_142;
                    write(&dir, "cpu.weight", &weight.to_string())?;
                }
                if let Some(q) = limits.cpu_quota {
                    let period = limits.cpu_period.unwrap_or(100_000);
                    write(&dir, "cpu.max", &format!("{q} {period}"))?;
                }
                if let Some(p) = limits.pids {
                    write(&dir, "pids.max", &p.to_string())?;
                }
            }
            Layout::V1 => {
                if limits.memory.is_some() || limits.swap.is_some() {
                    let dir = cg.v1_dir("memory", &name)?;
                    if let Some(m) = limits.memory {
                        write(&dir, "memory.limit_in_bytes", &m.to_string())?;
                    }
                    if let Some(s) = limits.swap
                        && dir.join("memory.memsw.limit_in_bytes").exists()
                    {
                        write(&dir, "memory.memsw.limit_in_bytes", &s.to_string())?;
                    }
                    cg.memory_dir = Some(dir);
                }
                if limits.cpu_shares.is_some() || limits.cpu_quota.is_some() {
                    let dir = cg.v1_dir("cpu", &name)?;
                    if let Some(s) = limits.cpu_shares {
                        write(&dir, "cpu.shares", &s.to_string())?;
                    }
                    if let Some(p) = limits.cpu_period {
                        write(&dir, "cpu.cfs_period_us", &p.to_string())?;
                    }
                    if let Some(q) = limits.cpu_quota {
                        write(&dir, "cpu.cfs_quota_us", &q.to_string())?;
                    }
                }
                if let Some(p) = limits.pids {
                    let dir = cg.v1_dir("pids", &name)?;
                    write(&dir, "pids.max", &p.to_string())?;
                }
            }
        }
        Ok(cg)
    }

    fn mkdir(&mut self, dir: &Path) -> Result<()> {
        if let Some(parent) = dir.parent() {
            remove_stale(parent);
        }
        fs::create_dir(dir).map_err(|source| Error::Cgroup {
            step: "mkdir".into(),
            path: dir.to_path_buf(),
            source,
        })?;
        self.dirs.push(dir.to_path_buf());
        Ok(())
    }

    fn v1_dir(&mut self, controller: &str, name: &str) -> Result<PathBuf> {
        let own = own_path(Some(controller)).map_err(|source| Error::Cgroup {
            step: "read /proc/self/cgroup".into(),
            path: "/proc/self/cgroup".into(),
            source,
        })?;
        let dir = PathBuf::from(ROOT)
            .join(controller)
            .join(own.trim_start_matches('/'))
            .join(name);
        self.mkdir(&dir)?;
        Ok(dir)
    }

    /// Opens `cgroup.procs` of every directory, for the child to join.
    pub(crate) fn procs_files(&self) -> Result<Vec<OwnedFd>> {
        self.dirs
            .iter()
            .map(|d| {
                let path = d.join("cgroup.procs");
                fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map(OwnedFd::from)
                    .map_err(|source| Error::Cgroup {
                        step: "open".into(),
                        path,
                        source,
                    })
            })
            .collect()
    }

    /// Number of processes the kernel's OOM killer killed in this cgroup.
    pub(crate) fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory_dir else {
            return 0;
        };
        let file = match self.layout {
            Layout::V2 => "memory.events",
            Layout::V1 => "memory.oom_control",
        };
        fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }

    /// Whether the host can give this process a cgroup at all (the
    /// hierarchy of its own cgroup is writable).
    pub(crate) fn available() -> bool {
        let probe = match layout() {
            Layout::V2 => {
                own_path(None).map(|p| PathBuf::from(ROOT).join(p.trim_start_matches('/')))
            }
            Layout::V1 => own_path(Some("memory")).map(|p| {
                PathBuf::from(ROOT)
                    .join("memory")
                    .join(p.trim_start_matches('/'))
            }),
        };
        probe.is_ok_and(|p| rustix::fs::access(&p, rustix::fs::Access::WRITE_OK).is_ok())
    }
}

/// Removes empty `kiln-<pid>-<n>` cgroups whose creating process is gone
/// (it was killed with SIGKILL, so its `Drop` never ran). Best effort:
/// `rmdir` fails on a cgroup that still has processes.
fn remove_stale(parent: &Path) {
    let Ok(entries) = fs::read_dir(parent) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("kiln-"))
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir(e.path());
        }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in self.dirs.iter().rev() {
            // The processes are gone when we get here, but the kernel may
            // still be tearing them down: EBUSY for a few milliseconds.
            for _ in 0..200 {
                match fs::remove_dir(dir) {
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    _ => break,
                }
            }
        }
    }
}
