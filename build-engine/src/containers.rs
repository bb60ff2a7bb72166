//! Containers kept after `kiln run` (without `--rm`): their records, logs and
//! writable layers under `<root>/containers/<id>/`, and what `docker ps`,
//! `rm`, `start`, `logs`, `commit` and `exec` do with them, without a daemon.
//!
//! Each container is a directory named by its 64-hex id holding
//! `container.json` (a [`ContainerRecord`], always replaced atomically by
//! write-to-temp + rename), `upper/` (the overlay upper dir: the
//! container's changes to its image), `work/` (overlayfs scratch) and
//! `container.log` (Docker's json-file log format, one JSON object per
//! output chunk). A record whose state says running but whose process is
//! gone (kiln was killed) reads as exited, so nothing depends on a
//! process staying alive to clean up after itself.
//!
//! # Example
//!
//! ```no_run
//! use kiln_build_engine::{Root, containers};
//! # fn demo() -> Result<(), kiln_build_engine::Error> {
//! let root = Root::open(&Root::default_dir())?;
//! for c in containers::list(&root)? {
//!     println!("{} {} {:?}", &c.id[..12], c.image, c.state);
//! }
//! # Ok(()) }
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::exec::{ExecMount, NetworkMode};
use crate::root::Root;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ContainerState {
    /// Created, never started.
    Created,
    /// Its process runs.
    Running,
    /// Its process ended.
    Exited,
}

impl ContainerState {
    /// Docker's name for the state (`docker ps --filter status=`).
    pub fn as_str(self) -> &'static str {
        match self {
            ContainerState::Created => "created",
            ContainerState::Running => "running",
            ContainerState::Exited => "exited",
        }
    }
}

/// A bind mount (`-v`) kept in the record so `start` mounts it again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VolumeRecord {
    /// Host path.
    pub source: PathBuf,
    /// Path in the container.
    pub target: String,
    /// Read-only.
    pub read_only: bool,
}

/// The options a container was created with, enough to start it again.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RunConfig {
    /// The process: entrypoint + command, resolved with Docker's rules.
    pub args: Vec<String>,
    /// `KEY=value`, the image's environment merged with `-e`.
    pub env: Vec<String>,
    /// `-u` or the image's USER (empty: root).
    pub user: String,
    /// `-w` or the image's WORKDIR.
    pub workdir: String,
    /// `-v` bind mounts.
    pub volumes: Vec<VolumeRecord>,
    /// `--network host` (else none: loopback only).
    pub host_network: bool,
    /// `-t`.
    pub tty: bool,
    /// `-i`.
    pub interactive: bool,
    /// `--read-only`.
    pub read_only: bool,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
}

impl RunConfig {
    /// The bind mounts in the executor's form.
    pub fn mounts(&self) -> Vec<ExecMount> {
        self.volumes
            .iter()
            .map(|v| ExecMount::Bind {
                source: v.source.clone(),
                target: v.target.clone(),
                read_only: v.read_only,
            })
            .collect()
    }

    /// The network mode.
    pub fn network(&self) -> NetworkMode {
        if self.host_network {
            NetworkMode::Host
        } else {
            NetworkMode::None
        }
    }
}

/// What `container.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ContainerRecord {
    /// 64 hex digits.
    pub id: String,
    /// Unique name (`--name`, or Docker-style `adjective_surname`).
    pub name: String,
    /// The image as the user wrote it.
    pub image: String,
    /// Manifest digest of the image (`sha256:...`): what `rmi` must not
    /// delete while this container exists.
    pub image_digest: String,
    /// Config digest of the image (Docker's image id).
    pub config_digest: String,
    /// The options to (re)start it.
    pub config: RunConfig,
    /// Creation time, seconds since the epoch.
    pub created: i64,
    /// State as last written (see [`ContainerRecord::effective_state`]).
    pub state: ContainerState,
    /// Pid (in kiln's pid namespace) of the container's first process while
    /// running.
    pub pid: Option<i32>,
    /// Start time of `pid` (field 22 of `/proc/PID/stat`), so a reused pid
    /// is not mistaken for the container.
    pub pid_start_time: Option<u64>,
    /// Pid of the kiln process that supervises the container.
    pub monitor_pid: Option<i32>,
    /// When the process last started, seconds since the epoch.
    pub started_at: Option<i64>,
    /// Exit code of the last run (128 + signal when killed).
    pub exit_code: Option<i32>,
    /// When the process last ended, seconds since the epoch.
    pub finished_at: Option<i64>,
}

/// Start time of process `pid` (clock ticks since boot), if it exists.
pub(crate) fn process_start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // rest starts at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

impl ContainerRecord {
    /// The state, corrected for a process that vanished without kiln
    /// recording it (kiln was killed): such a container is exited.
    pub fn effective_state(&self) -> ContainerState {
        if self.state == ContainerState::Running && !self.process_alive() {
            ContainerState::Exited
        } else {
            self.state
        }
    }

    /// Whether the recorded process still exists (and is the same process).
    pub fn process_alive(&self) -> bool {
        match (self.pid, self.pid_start_time) {
            (Some(pid), Some(t)) => process_start_time(pid) == Some(t),
            (Some(pid), None) => process_start_time(pid).is_some(),
            _ => false,
        }
    }

    /// The first 12 hex digits, as `docker ps` shows ids.
    pub fn short_id(&self) -> &str {
        &self.id[..self.id.len().min(12)]
    }

    /// The record with the state corrected as [`effective_state`] does
    /// (exit code 137 when it vanished: its supervisor was killed, and the
    /// container with it).
    ///
    /// [`effective_state`]: ContainerRecord::effective_state
    pub(crate) fn corrected(mut self) -> ContainerRecord {
        if self.state == ContainerState::Running && !self.process_alive() {
            self.state = ContainerState::Exited;
            self.exit_code = Some(self.exit_code.unwrap_or(137));
            self.pid = None;
            self.pid_start_time = None;
            if self.finished_at.is_none() {
                self.finished_at = Some(now());
            }
        }
        self
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The directory holding every container.
pub fn containers_dir(root: &Root) -> PathBuf {
    root.dir().join("containers")
}

/// The directory of container `id`.
pub fn container_dir(root: &Root, id: &str) -> PathBuf {
    containers_dir(root).join(id)
}

fn is_id(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads `container.json` of the container in `dir`.
pub(crate) fn read_record(dir: &Path) -> Result<ContainerRecord> {
    let path = dir.join("container.json");
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Json {
        what: path.display().to_string(),
        source: e,
    })
}

/// Writes a record atomically (temp file in the same directory, fsync,
/// rename), so a reader never sees half a record.
#[allow(dead_code)] // used by run and start (next commits)
pub(crate) fn write_record(root: &Root, record: &ContainerRecord) -> Result<()> {
    let dir = container_dir(root, &record.id);
    let bytes = serde_json::to_vec_pretty(record).map_err(|e| Error::Json {
        what: format!("record of container {}", record.id),
        source: e,
    })?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".container.json-")
        .tempfile_in(&dir)
        .map_err(|e| Error::io("create temporary record in", &dir, e))?;
    tmp.write_all(&bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| Error::io("write", tmp.path().to_path_buf(), e))?;
    let path = dir.join("container.json");
    tmp.persist(&path)
        .map_err(|e| Error::io("rename record into place", &path, e.error))?;
    Ok(())
}

/// Every container, newest first, with vanished processes read as exited.
/// Directories without a readable record (one being created or removed)
/// are skipped.
pub fn list(root: &Root) -> Result<Vec<ContainerRecord>> {
    let dir = containers_dir(root);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read directory", &dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read directory", &dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_id(&name) {
            continue;
        }
        if let Ok(rec) = read_record(&entry.path()) {
            out.push(rec.corrected());
        }
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(out)
}

/// Finds a container by full id, unique id prefix, or name (as Docker
/// resolves `CONTAINER` arguments).
pub fn lookup(root: &Root, name_or_id: &str) -> Result<ContainerRecord> {
    let all = list(root)?;
    if let Some(c) = all
        .iter()
        .find(|c| c.id == name_or_id || c.name == name_or_id)
    {
        return Ok(c.clone());
    }
    let matches: Vec<&ContainerRecord> = if name_or_id.is_empty() {
        Vec::new()
    } else {
        all.iter()
            .filter(|c| c.id.starts_with(name_or_id))
            .collect()
    };
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::NoSuchContainer(name_or_id.to_string())),
        _ => Err(Error::Container {
            container: name_or_id.to_string(),
            message: "the id prefix matches several containers".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(root: &Root, id: &str, name: &str, created: i64) -> ContainerRecord {
        let r = ContainerRecord {
            id: id.to_string(),
            name: name.to_string(),
            image: "busybox".into(),
            image_digest: "sha256:00".into(),
            config_digest: "sha256:11".into(),
            config: RunConfig::default(),
            created,
            state: ContainerState::Running,
            pid: Some(i32::MAX),
            pid_start_time: Some(1),
            monitor_pid: None,
            started_at: Some(created),
            exit_code: None,
            finished_at: None,
        };
        let dir = container_dir(root, id);
        std::fs::create_dir_all(&dir).ok();
        write_record(root, &r).ok();
        r
    }

    #[test]
    fn lists_newest_first_and_reads_vanished_processes_as_exited() {
        let tmp = tempfile::tempdir()
            .ok()
            .unwrap_or_else(|| panic!("tempdir"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let a = "a".repeat(64);
        let b = "b".repeat(64);
        record(&root, &a, "old", 10);
        record(&root, &b, "new", 20);
        std::fs::create_dir_all(container_dir(&root, "not-an-id")).ok();
        let all = list(&root).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = all.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["new", "old"]);
        assert_eq!(all[0].state, ContainerState::Exited);
        assert_eq!(all[0].exit_code, Some(137));
        assert_eq!(lookup(&root, "old").map(|c| c.id).ok(), Some(a.clone()));
        assert_eq!(lookup(&root, "bbbb").map(|c| c.id).ok(), Some(b));
        assert!(matches!(
            lookup(&root, "zzz"),
            Err(Error::NoSuchContainer(_))
        ));
    }

    #[test]
    fn start_time_of_this_process_is_readable() {
        let pid = std::process::id() as i32;
        assert!(process_start_time(pid).is_some());
    }
}
