//! Containers kept after `kiln run` (without `--rm`): their records, logs and
//! writable layers under `<root>/containers/<id>/`, and what `docker ps`,
//! `create`, `start`, `stop`, `kill`, `wait`, `rm`, `rename`, `logs`,
//! `diff`, `commit`, `cp`, `export`, `inspect` and `exec` do with them,
//! without a daemon.
//!
//! Each container is a directory named by its 64-hex id holding
//! `container.json` (a [`ContainerRecord`], always replaced atomically by
//! write-to-temp + rename), `upper/` (the overlay upper dir: the
//! container's changes to its image), `work/` (overlayfs scratch),
//! `container.log` (Docker's json-file log format, one JSON object per
//! output line) and `lock` (held by the process running it). Names are
//! reserved by exclusively created files in `<root>/containers/names/`.
//!
//! Nothing runs in the background unless the caller asks: [`run_attached`]
//! runs a container in the calling process; [`start_detached`] spawns a
//! supervisor process the caller provides (the CLI re-executes itself, as
//! podman's conmon) that calls [`monitor`]. The pid of the supervisor (and
//! of the container's first process) is in the record with its start time;
//! a record whose state says running but whose supervisor is gone (kiln
//! was killed, and the container with it) reads as exited, so nothing
//! depends on a process staying alive to clean up after itself.
//!
//! Not done: pausing through the freezer cgroup (commit `-p` stops the
//! processes with SIGSTOP), attaching to a detached container's standard
//! input, copying into a running container, restart policies, ports.
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

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kiln_image_layers::{Change, ChangeKind, ChangeSet, WriteOptions};
use kiln_runtime_linux::{Container, Control, RootFs, RunOptions, Stdio, exec_in};
use serde::{Deserialize, Serialize};

use crate::builder::{LayerRef, timestamp};
use crate::cache::LayerRecord;
use crate::error::{Error, Result};
use crate::exec::{ExecMount, NetworkMode};
use crate::image::{ImageRef, resolve_local, write_image};
use crate::root::Root;
use crate::run::{RunRequest, container_spec, run_config};

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
#[serde(default)]
#[non_exhaustive]
pub struct RunConfig {
    /// The process: entrypoint + command, resolved with Docker's rules.
    pub args: Vec<String>,
    /// The entrypoint part of `args` (image's or `--entrypoint`).
    pub entrypoint: Vec<String>,
    /// The command part of `args` (image's CMD or the run's command).
    pub cmd: Vec<String>,
    /// The image's labels (`docker inspect`'s `Config.Labels`).
    pub labels: std::collections::BTreeMap<String, String>,
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
    /// `--rm`: removed when its process ends.
    pub auto_remove: bool,
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
    /// The sub-second part of the creation time (orders containers made
    /// within one second).
    #[serde(default)]
    pub created_nanos: u32,
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
    /// Start time of `monitor_pid`.
    #[serde(default)]
    pub monitor_start_time: Option<u64>,
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

    /// Whether the container is still running: its supervisor (the kiln
    /// process that runs it and records its end) is alive, or, without a
    /// recorded supervisor, its own process. Pids are compared together
    /// with their start times, so a reused pid is not mistaken for them.
    pub fn process_alive(&self) -> bool {
        let alive = |pid: i32, start: Option<u64>| match start {
            Some(t) => process_start_time(pid) == Some(t),
            None => process_start_time(pid).is_some(),
        };
        match (self.monitor_pid, self.pid) {
            (Some(m), _) => alive(m, self.monitor_start_time),
            (None, Some(p)) => alive(p, self.pid_start_time),
            (None, None) => false,
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
            self.monitor_pid = None;
            self.monitor_start_time = None;
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
    out.sort_by(|a, b| {
        (b.created, b.created_nanos)
            .cmp(&(a.created, a.created_nanos))
            .then_with(|| a.id.cmp(&b.id))
    });
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

// --- create ------------------------------------------------------------------

/// Adjectives and surnames of Docker's name generator
/// (moby/pkg/namesgenerator), a subset.
const LEFT: &[&str] = &[
    "admiring",
    "adoring",
    "affectionate",
    "amazing",
    "awesome",
    "blissful",
    "bold",
    "brave",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "cool",
    "dazzling",
    "determined",
    "eager",
    "ecstatic",
    "elegant",
    "epic",
    "focused",
    "friendly",
    "gallant",
    "gifted",
    "goofy",
    "happy",
    "hopeful",
    "jolly",
    "keen",
    "kind",
    "loving",
    "magical",
    "modest",
    "nifty",
    "nostalgic",
    "peaceful",
    "pensive",
    "quirky",
    "relaxed",
    "serene",
    "sharp",
    "stoic",
    "sweet",
    "tender",
    "trusting",
    "upbeat",
    "vibrant",
    "wizardly",
    "zealous",
];
const RIGHT: &[&str] = &[
    "agnesi",
    "albattani",
    "archimedes",
    "babbage",
    "bardeen",
    "bell",
    "bohr",
    "boyd",
    "curie",
    "darwin",
    "dijkstra",
    "einstein",
    "euclid",
    "fermat",
    "feynman",
    "galileo",
    "gauss",
    "goldberg",
    "hamilton",
    "hopper",
    "hypatia",
    "johnson",
    "kepler",
    "knuth",
    "lamport",
    "lovelace",
    "mccarthy",
    "meitner",
    "newton",
    "noether",
    "pascal",
    "pike",
    "ritchie",
    "shannon",
    "thompson",
    "torvalds",
    "turing",
    "wozniak",
    "yalow",
    "zhukovsky",
];

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::io("read", "/dev/urandom", e))?;
    Ok(b)
}

/// Docker's rule for container names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Reserves `name` for container `id` by creating `containers/names/<name>`
/// exclusively; a reservation whose container is gone is taken over.
fn reserve_name(root: &Root, name: &str, id: &str) -> Result<bool> {
    let dir = containers_dir(root).join("names");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create directory", &dir, e))?;
    let path = dir.join(name);
    for _ in 0..2 {
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                f.write_all(id.as_bytes())
                    .map_err(|e| Error::io("write", &path, e))?;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let owner = std::fs::read_to_string(&path).unwrap_or_default();
                // Owned by a container with a record, or by one being
                // created right now (its directory is young); a directory
                // without a record that is older is what a killed `create`
                // left behind.
                let owner_dir = container_dir(root, &owner);
                let young = std::fs::metadata(&owner_dir)
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < Duration::from_secs(60)));
                if is_id(&owner) && (owner_dir.join("container.json").exists() || young) {
                    return Ok(false);
                }
                // A leftover of a removed or never-finished container.
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => return Err(Error::io("create", &path, e)),
        }
    }
    Ok(false)
}

/// Creates a container from `req` (state `created`): resolves the image,
/// records the options, reserves the name and makes its directories.
pub fn create(root: &Root, req: &RunRequest) -> Result<ContainerRecord> {
    // Until the record exists, nothing tells a collection that the image
    // is in use.
    let _gc = crate::gc::BuildLock::shared(root)?;
    let image = resolve_local(root, &req.image)?;
    let config = image.config()?;
    let cfg = run_config(&config, req)?;
    let config_digest = {
        let d = kiln_image_layers::Digest::sha256(&image.config_bytes);
        d.to_string()
    };
    let id = hex::encode(random_bytes::<32>()?);
    let name = match &req.name {
        Some(n) => {
            if !valid_name(n) {
                return Err(Error::Container {
                    container: n.clone(),
                    message: "invalid container name: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                        .into(),
                });
            }
            if !reserve_name(root, n, &id)? {
                return Err(Error::Container {
                    container: n.clone(),
                    message: "the container name is already in use; remove that container or choose another name".into(),
                });
            }
            n.clone()
        }
        None => {
            let mut chosen = None;
            for attempt in 0..100 {
                let r = random_bytes::<2>()?;
                let mut n = format!(
                    "{}_{}",
                    LEFT[r[0] as usize % LEFT.len()],
                    RIGHT[r[1] as usize % RIGHT.len()]
                );
                if attempt >= 10 {
                    n.push_str(&(attempt % 10).to_string());
                }
                if reserve_name(root, &n, &id)? {
                    chosen = Some(n);
                    break;
                }
            }
            chosen.ok_or_else(|| Error::Container {
                container: id.clone(),
                message: "no free random name".into(),
            })?
        }
    };
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let dir = container_dir(root, &id);
    let record = ContainerRecord {
        id,
        name,
        image: req.image.clone(),
        image_digest: image.manifest_digest.clone(),
        config_digest,
        config: cfg,
        created: created.as_secs() as i64,
        created_nanos: created.subsec_nanos(),
        state: ContainerState::Created,
        pid: None,
        pid_start_time: None,
        monitor_pid: None,
        monitor_start_time: None,
        started_at: None,
        exit_code: None,
        finished_at: None,
    };
    let made = (|| {
        for d in [dir.join("upper"), dir.join("work")] {
            std::fs::create_dir_all(&d).map_err(|e| Error::io("create directory", &d, e))?;
        }
        if record.config.interactive {
            // The standard input of the container when it runs detached:
            // `attach` writes to it (see [`monitor`]).
            let fifo = dir.join("stdin");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
                .map_err(|e| Error::io("create fifo", &fifo, std::io::Error::from(e)))?;
        }
        write_record(root, &record)
    })();
    if let Err(e) = made {
        // Leave neither a half-made directory nor a reserved name behind.
        remove_files(root, &record);
        return Err(e);
    }
    Ok(record)
}

// --- logs --------------------------------------------------------------------

/// RFC 3339 with nanoseconds, UTC (Docker's log timestamps).
fn now_nanos() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = timestamp(Some(d.as_secs() as i64));
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
}

/// One line of `container.log`, Docker's json-file format.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LogEntry {
    /// The output (one line with its newline, or a partial line).
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// When it was written (RFC 3339, nanoseconds).
    pub time: String,
}

/// Tees a container's output stream into its log.
struct LogSink<'a> {
    log: &'a File,
    stream: &'static str,
    inner: &'a mut dyn Write,
    inner_ok: bool,
}

impl Write for LogSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.inner_ok
            && self
                .inner
                .write_all(buf)
                .and_then(|()| self.inner.flush())
                .is_err()
        {
            // The reader went away (a closed terminal): the container keeps
            // running and logging.
            self.inner_ok = false;
        }
        let time = now_nanos();
        let mut lines = Vec::new();
        for piece in buf.split_inclusive(|b| *b == b'\n') {
            let entry = LogEntry {
                log: String::from_utf8_lossy(piece).into_owned(),
                stream: self.stream.to_string(),
                time: time.clone(),
            };
            if let Ok(mut v) = serde_json::to_vec(&entry) {
                v.push(b'\n');
                lines.extend(v);
            }
        }
        // One write per chunk on an O_APPEND file: the two streams'
        // entries never interleave within a line.
        let mut log = self.log;
        log.write_all(&lines)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The entries of a container's log from byte `offset` on, and the offset
/// after the last complete line (for `logs -f`).
pub fn read_log(root: &Root, id: &str, offset: u64) -> Result<(Vec<LogEntry>, u64)> {
    let path = container_dir(root, id).join("container.log");
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), offset)),
        Err(e) => return Err(Error::io("open", &path, e)),
    };
    use std::io::Seek;
    f.seek(std::io::SeekFrom::Start(offset))
        .map_err(|e| Error::io("seek", &path, e))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)
        .map_err(|e| Error::io("read", &path, e))?;
    let complete = buf.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let mut out = Vec::new();
    for line in buf[..complete].split(|b| *b == b'\n') {
        if line.is_empty() {
            continue;
        }
        let entry: LogEntry = serde_json::from_slice(line).map_err(|e| Error::Json {
            what: path.display().to_string(),
            source: e,
        })?;
        out.push(entry);
    }
    Ok((out, offset + complete as u64))
}

// --- run ---------------------------------------------------------------------

/// Maps the runtime's "cannot execute the command" to Docker's 126/127.
fn command_error(
    e: kiln_runtime_linux::Error,
) -> std::result::Result<Error, kiln_runtime_linux::Error> {
    match e {
        kiln_runtime_linux::Error::Exec { program, source } => {
            // Docker: 127 when the command does not exist, 126 when it
            // exists but cannot be executed.
            let not_found = [nix::errno::Errno::ENOENT, nix::errno::Errno::ENOTDIR]
                .iter()
                .any(|e| source.raw_os_error() == Some(*e as i32));
            let exit_code = if not_found { 127 } else { 126 };
            Ok(Error::ContainerCommand {
                program,
                exit_code,
                source,
            })
        }
        other => Err(other),
    }
}

/// Runs (or re-runs) container `id`'s process on its kept upper layer,
/// streaming its output to `stdout`/`stderr` and its log, and records its
/// state (running with its pid, then exited with its code). Returns the
/// exit code.
pub fn run_attached(
    root: &Root,
    id: &str,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stdin: Option<Box<dyn Read + Send>>,
) -> Result<i32> {
    run_attached_with(root, id, stdout, stderr, stdin, Control::new())
}

/// [`run_attached`] with a handle to forward signals to the container's
/// process or resize its terminal from another thread while it runs
/// (`docker run`'s signal proxy).
pub fn run_attached_with(
    root: &Root,
    id: &str,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stdin: Option<Box<dyn Read + Send>>,
    control: Control,
) -> Result<i32> {
    let dir = container_dir(root, id);
    // One run at a time per container, whatever the records say: two
    // `kiln start` racing each other must not share an upper directory.
    let lock_path = dir.join("lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| Error::io("open", &lock_path, e))?;
    // The supervisor of a run that just ended holds the lock for a moment
    // after recording the exit: give it that moment.
    let mut locked = false;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if fs4::fs_std::FileExt::try_lock_exclusive(&lock)
            .map_err(|e| Error::io("lock", &lock_path, e))?
        {
            locked = true;
            break;
        }
        let running = read_record(&dir)?.corrected().state == ContainerState::Running;
        if running || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut rec = read_record(&dir)?.corrected();
    if !locked || rec.state == ContainerState::Running {
        return Err(Error::Container {
            container: rec.name.clone(),
            message: "is already running".into(),
        });
    }
    // Snapshots being unpacked are not recorded anywhere yet: hold off
    // collections meanwhile (the record protects them afterwards).
    let gc_lock = crate::gc::BuildLock::shared(root)?;
    let image = resolve_local(root, &rec.image_digest)?;
    let mut lowers = root
        .snapshots()
        .ensure(root.store(), &image.layer_digests()?)?;
    drop(gc_lock);
    if lowers.is_empty() {
        let empty = dir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| Error::io("create directory", &empty, e))?;
        lowers.push(empty);
    }
    let spec = container_spec(&rec.config, rec.short_id())?;
    let upper = dir.join("upper");
    let work = dir.join("work");
    let _ = std::fs::remove_dir_all(&work);
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
    }
    let mut opts = RunOptions::new();
    opts.control = Some(control.clone());
    if !rec.config.user.is_empty() {
        opts.user = Some(rec.config.user.clone());
    }
    let container = Container::new(
        spec,
        RootFs::Overlay {
            lowers,
            upper,
            work: work.clone(),
        },
        opts,
    );
    let log_path = dir.join("container.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Error::io("open", &log_path, e))?;

    rec.state = ContainerState::Running;
    rec.started_at = Some(now());
    rec.pid = None;
    rec.pid_start_time = None;
    rec.monitor_pid = Some(std::process::id() as i32);
    rec.monitor_start_time = process_start_time(std::process::id() as i32);
    rec.exit_code = None;
    rec.finished_at = None;
    write_record(root, &rec)?;

    let done = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        // Records the container's pid as soon as it exists, so that `ps`,
        // `exec` and `kill` find it while `run` blocks.
        let watcher = s.spawn(|| {
            while !done.load(Ordering::Acquire) {
                if let Some(pid) = control.pid() {
                    let mut r = read_record(&dir).unwrap_or_else(|_| rec.clone());
                    r.pid = Some(pid);
                    r.pid_start_time = process_start_time(pid);
                    let _ = write_record(root, &r);
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        let mut out = LogSink {
            log: &log,
            stream: "stdout",
            inner: stdout,
            inner_ok: true,
        };
        let mut err = LogSink {
            log: &log,
            stream: "stderr",
            inner: stderr,
            inner_ok: true,
        };
        let mut stdio = Stdio::new(&mut out, &mut err);
        if let Some(i) = stdin {
            stdio = stdio.with_stdin(i);
        }
        let r = container.run(stdio);
        done.store(true, Ordering::Release);
        let _ = watcher.join();
        r
    });
    let _ = std::fs::remove_dir_all(&work);
    rec.pid = None;
    rec.pid_start_time = None;
    rec.monitor_pid = None;
    rec.monitor_start_time = None;
    rec.finished_at = Some(now());
    rec.state = ContainerState::Exited;
    let outcome = match result {
        Ok(status) => {
            rec.exit_code = Some(status.code());
            Ok(status.code())
        }
        Err(e) => match command_error(e) {
            Ok(err) => {
                if let Error::ContainerCommand { exit_code, .. } = &err {
                    rec.exit_code = Some(*exit_code);
                }
                Err(err)
            }
            Err(e) => {
                // As Docker: a container whose set-up failed stays created.
                rec.state = ContainerState::Created;
                rec.exit_code = Some(128);
                Err(Error::step(format!("run container {}", rec.name), e))
            }
        },
    };
    // `rm -f` may have removed the container meanwhile: nothing to record.
    // Only the run's own fields are written back (`rename` may have
    // changed the record while it ran).
    if dir.exists() {
        let mut current = read_record(&dir).unwrap_or_else(|_| rec.clone());
        current.state = rec.state;
        current.pid = None;
        current.pid_start_time = None;
        current.monitor_pid = None;
        current.monitor_start_time = None;
        current.exit_code = rec.exit_code;
        current.started_at = rec.started_at;
        current.finished_at = rec.finished_at;
        write_record(root, &current)?;
    }
    outcome
}

/// `docker rename`: gives a container a new (unused, valid) name.
pub fn rename(root: &Root, name_or_id: &str, new_name: &str) -> Result<ContainerRecord> {
    let rec = lookup(root, name_or_id)?;
    if !valid_name(new_name) {
        return Err(Error::Container {
            container: new_name.to_string(),
            message: "invalid container name: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed".into(),
        });
    }
    if rec.name == new_name {
        return Ok(rec);
    }
    if !reserve_name(root, new_name, &rec.id)? {
        return Err(Error::Container {
            container: new_name.to_string(),
            message: "the container name is already in use".into(),
        });
    }
    let dir = container_dir(root, &rec.id);
    let mut current = read_record(&dir)?;
    let old = std::mem::replace(&mut current.name, new_name.to_string());
    write_record(root, &current)?;
    let old_file = containers_dir(root).join("names").join(&old);
    if std::fs::read_to_string(&old_file).is_ok_and(|owner| owner == rec.id) {
        let _ = std::fs::remove_file(old_file);
    }
    Ok(current.corrected())
}

/// The supervisor of a detached container (`kiln run -d`, `kiln start`):
/// runs it with its output going only to its log, records how it ended,
/// and removes it afterwards when it was created with `--rm`. A failure
/// is also written to `monitor.err` in the container's directory for
/// [`start_detached`] to report.
pub fn monitor(root: &Root, id: &str) -> Result<i32> {
    let dir = container_dir(root, id);
    // With -i, standard input is the container's fifo, opened read-write so
    // that it stays open (no end-of-file) between attaching clients, as
    // Docker keeps a detached container's stdin open.
    let fifo = dir.join("stdin");
    let stdin: Option<Box<dyn Read + Send>> = match read_record(&dir) {
        Ok(rec) if rec.config.interactive => std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&fifo)
            .ok()
            .map(|f| Box::new(f) as Box<dyn Read + Send>),
        _ => None,
    };
    let r = run_attached(root, id, &mut std::io::sink(), &mut std::io::sink(), stdin);
    if let Err(e) = &r {
        let mut text = e.to_string();
        let mut cur = std::error::Error::source(e);
        while let Some(c) = cur {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cur = c.source();
        }
        let _ = std::fs::write(dir.join("monitor.err"), text);
    }
    if let Ok(rec) = read_record(&dir)
        && rec.config.auto_remove
    {
        remove_files(root, &rec);
    }
    r
}

/// Starts container `id` in the background: spawns `monitor_command` (the
/// caller's way of running [`monitor`] in a new process, e.g. its own
/// binary with a hidden subcommand) with no standard streams, and waits
/// until the container's process exists (or has already ended).
pub fn start_detached(
    root: &Root,
    id: &str,
    mut monitor_command: std::process::Command,
) -> Result<ContainerRecord> {
    let dir = container_dir(root, id);
    let before = read_record(&dir)?.corrected();
    if before.state == ContainerState::Running {
        // Docker: starting a running container is a no-op.
        return Ok(before);
    }
    let err_file = dir.join("monitor.err");
    let _ = std::fs::remove_file(&err_file);
    monitor_command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = monitor_command.spawn().map_err(|e| {
        Error::io(
            "start the container monitor",
            PathBuf::from(monitor_command.get_program()),
            e,
        )
    })?;
    let monitor_pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(rec) = read_record(&dir)
            && rec.monitor_pid == Some(monitor_pid)
            && rec.pid.is_some()
        {
            return Ok(rec);
        }
        let exited = matches!(child.try_wait(), Ok(Some(_)));
        if exited {
            if let Ok(text) = std::fs::read_to_string(&err_file) {
                return Err(Error::Container {
                    container: before.name.clone(),
                    message: text,
                });
            }
            // Ran and ended already (or removed itself with --rm).
            return Ok(read_record(&dir).map(|r| r.corrected()).unwrap_or(before));
        }
        if Instant::now() > deadline {
            return Err(Error::Container {
                container: before.name.clone(),
                message: "the container did not start within 60 seconds".into(),
            });
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

// --- signals, wait, remove ---------------------------------------------------

/// Sends `signal` to a running container's first process (SIGKILL ends the
/// whole container: it is pid 1 of its pid namespace).
pub fn kill(root: &Root, name_or_id: &str, signal: i32) -> Result<ContainerRecord> {
    let mut rec = lookup(root, name_or_id)?;
    // Being started: its supervisor records the pid in a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    while rec.effective_state() == ContainerState::Running
        && rec.pid.is_none()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(5));
        rec = read_record(&container_dir(root, &rec.id))?.corrected();
    }
    let pid = match (rec.effective_state(), rec.pid) {
        (ContainerState::Running, Some(pid)) => pid,
        _ => {
            return Err(Error::Container {
                container: name_or_id.to_string(),
                message: "is not running".into(),
            });
        }
    };
    let sig = nix::sys::signal::Signal::try_from(signal).map_err(|e| Error::Container {
        container: name_or_id.to_string(),
        message: format!("invalid signal {signal}: {e}"),
    })?;
    match nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(rec),
        Err(e) => Err(Error::step(
            format!("send signal {signal} to container {}", rec.name),
            std::io::Error::from(e),
        )),
    }
}

/// Waits until the container is not running (or `timeout` passes) and
/// returns its record.
pub fn wait(root: &Root, id: &str, timeout: Option<Duration>) -> Result<ContainerRecord> {
    let start = Instant::now();
    loop {
        let rec = read_record(&container_dir(root, id))?.corrected();
        if rec.state != ContainerState::Running {
            return Ok(rec);
        }
        if timeout.is_some_and(|t| start.elapsed() >= t) {
            return Ok(rec);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `docker stop`: SIGTERM, then SIGKILL after `timeout`. Stopping a
/// container that is not running does nothing.
pub fn stop(root: &Root, name_or_id: &str, timeout: Duration) -> Result<ContainerRecord> {
    let rec = lookup(root, name_or_id)?;
    if rec.effective_state() != ContainerState::Running {
        return Ok(rec);
    }
    let _ = kill(root, &rec.id, libc_signal::SIGTERM);
    let rec = wait(root, &rec.id, Some(timeout))?;
    if rec.state != ContainerState::Running {
        return Ok(rec);
    }
    let _ = kill(root, &rec.id, libc_signal::SIGKILL);
    wait(root, &rec.id, Some(Duration::from_secs(30)))
}

/// Signal numbers used here.
mod libc_signal {
    pub const SIGTERM: i32 = nix::sys::signal::Signal::SIGTERM as i32;
    pub const SIGKILL: i32 = nix::sys::signal::Signal::SIGKILL as i32;
}

/// Deletes a container's directory and name reservation.
pub(crate) fn remove_files(root: &Root, rec: &ContainerRecord) {
    let dir = container_dir(root, &rec.id);
    // Rename first so that a concurrent `list` never sees half a container.
    let gone = containers_dir(root).join(format!(".removing-{}", rec.id));
    let target = if std::fs::rename(&dir, &gone).is_ok() {
        gone
    } else {
        dir
    };
    let _ = std::fs::remove_dir_all(&target);
    let name_file = containers_dir(root).join("names").join(&rec.name);
    if std::fs::read_to_string(&name_file).is_ok_and(|owner| owner == rec.id) {
        let _ = std::fs::remove_file(name_file);
    }
}

/// `docker rm`: removes a container; a running one only with `force`,
/// which kills it first.
pub fn remove(root: &Root, name_or_id: &str, force: bool) -> Result<ContainerRecord> {
    let rec = lookup(root, name_or_id)?;
    if rec.effective_state() == ContainerState::Running {
        if !force {
            return Err(Error::Container {
                container: name_or_id.to_string(),
                message: "cannot remove a running container: stop the container before removing or force remove (-f)".into(),
            });
        }
        let _ = kill(root, &rec.id, libc_signal::SIGKILL);
        wait(root, &rec.id, Some(Duration::from_secs(30)))?;
    }
    remove_files(root, &rec);
    Ok(rec)
}

// --- commit ------------------------------------------------------------------

/// `docker commit` options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CommitOptions {
    /// `REPOSITORY[:TAG]` to tag the image with (untagged when `None`).
    pub reference: Option<String>,
    /// `-m`: the history entry's comment.
    pub message: Option<String>,
    /// `-a`: the image's author.
    pub author: Option<String>,
    /// `-c`: Dockerfile instructions applied to the config (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
    /// WORKDIR).
    pub changes: Vec<String>,
    /// `-p`: stop (SIGSTOP) the container's processes while its changes
    /// are read, and continue them afterwards.
    pub pause: bool,
}

/// The processes in the pid namespace of `pid` (the container's).
fn container_processes(pid: i32) -> Vec<i32> {
    let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/pid")) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|p| std::fs::read_link(format!("/proc/{p}/ns/pid")).is_ok_and(|other| other == ns))
        .collect()
}

/// Stops the processes of a container and continues them when dropped.
struct Paused(Vec<nix::unistd::Pid>);

impl Paused {
    fn new(pid: i32) -> Paused {
        let mut stopped = Vec::new();
        for p in container_processes(pid) {
            let p = nix::unistd::Pid::from_raw(p);
            if nix::sys::signal::kill(p, nix::sys::signal::Signal::SIGSTOP).is_ok() {
                stopped.push(p);
            }
        }
        Paused(stopped)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = nix::sys::signal::kill(*p, nix::sys::signal::Signal::SIGCONT);
        }
    }
}

/// What [`commit`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Committed {
    /// The image id (config digest, `sha256:...`), what `docker commit` prints.
    pub image_id: String,
    /// The manifest digest.
    pub manifest_digest: String,
}

/// The changes of a container to its image, read from its overlay upper
/// directory, without what the runtime itself leaves there (Docker keeps
/// those in a separate init layer): the mount points `/dev`, `/proc` and
/// `/sys` when empty, `/etc` when only its mount-point files touched it,
/// and, while the container runs, the empty mount points of the /etc files
/// it bind-mounts (removed again when it ends).
fn container_changes(root: &Root, rec: &ContainerRecord, running: bool) -> Result<ChangeSet> {
    let upper = container_dir(root, &rec.id).join("upper");
    let set = ChangeSet::from_overlay_upper(&upper)
        .map_err(|e| Error::step(format!("scan the changes of container {}", rec.name), e))?;
    let runtime_files = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];
    let is_runtime_file = |c: &Change| {
        running
            && c.kind == ChangeKind::Added
            && runtime_files.iter().any(|f| c.path == Path::new(f))
            && std::fs::metadata(upper.join(&c.path)).is_ok_and(|m| m.len() == 0)
    };
    let changes = set.changes();
    let kept: Vec<Change> = changes
        .iter()
        .filter(|c| !is_runtime_file(c))
        .filter(|c| {
            let p = c.path.as_path();
            let empty_dir =
                || std::fs::read_dir(upper.join(p)).is_ok_and(|mut d| d.next().is_none());
            let mount_point = ["dev", "proc", "sys"].iter().any(|m| p == Path::new(m));
            let touched_etc = p == Path::new("etc")
                && c.kind == ChangeKind::Modified
                && !changes
                    .iter()
                    .any(|o| o.path != p && o.path.starts_with("etc") && !is_runtime_file(o));
            let runtime_mount_point = c.kind != ChangeKind::Deleted && mount_point && empty_dir();
            !(touched_etc || runtime_mount_point)
        })
        .cloned()
        .collect();
    Ok(ChangeSet::new(&upper, kept))
}

/// `docker diff`: the container's changed paths, sorted, each with Docker's
/// letter: `A` added, `C` changed (including directories whose contents
/// changed, and replaced directories), `D` deleted.
pub fn diff(root: &Root, name_or_id: &str) -> Result<Vec<(char, String)>> {
    let rec = lookup(root, name_or_id)?;
    let running = rec.effective_state() == ContainerState::Running;
    let set = container_changes(root, &rec, running)?;
    // The upper dir alone cannot tell a new directory from one that was
    // copied up: the image's layers can.
    let image = resolve_local(root, &rec.image_digest)?;
    let view = crate::snapshot::MergedView::new(
        root.snapshots()
            .ensure(root.store(), &image.layer_digests()?)?,
    );
    let mut out: Vec<(char, String)> = set
        .changes()
        .iter()
        .map(|c| {
            let rel = c.path.to_string_lossy();
            let letter = match c.kind {
                ChangeKind::Deleted => 'D',
                _ if view.exists(&rel) => 'C',
                _ => 'A',
            };
            (letter, format!("/{}", c.path.display()))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    out.dedup_by(|a, b| a.1 == b.1);
    Ok(out)
}

/// `docker commit`: the container's changes (its overlay upper dir:
/// whiteouts become deletions, opaque directories replacements) become a
/// new layer on top of its image; the config is the image's plus
/// `options.changes`, with a history entry; the image is stored (and
/// tagged when `options.reference` is given).
///
/// A running container is committed as it is at that moment, with its
/// processes stopped meanwhile when `options.pause` is set.
pub fn commit(root: &Root, name_or_id: &str, options: &CommitOptions) -> Result<Committed> {
    // The new layer blob is unreferenced until the image is stored.
    let _gc = crate::gc::BuildLock::shared(root)?;
    let rec = lookup(root, name_or_id)?;
    let image = resolve_local(root, &rec.image_digest)?;
    let mut config = image.config()?;
    // Docker applies the changes in order, each seeing the config as the
    // previous ones left it (shared with `kiln import -c`).
    for c in &options.changes {
        crate::images::apply_change(&mut config, c)?;
    }
    let running = rec.effective_state() == ContainerState::Running;
    let paused = match (options.pause, rec.effective_state(), rec.pid) {
        (true, ContainerState::Running, Some(pid)) => Some(Paused::new(pid)),
        _ => None,
    };
    let set = container_changes(root, &rec, running)?;
    let layer = root
        .store()
        .put_layer(&set, &WriteOptions::default())
        .map_err(|e| Error::step(format!("write the layer of container {}", rec.name), e))?;
    drop(paused);
    config.push_diff_id(&layer.diff_id.to_string());
    let created = timestamp(None);
    config.push_history(&created, &rec.config.args.join(" "), false);
    config.set_history_comment(options.message.as_deref().unwrap_or(""));
    if let Some(a) = &options.author {
        config.set_author(a);
    }
    config.set_created(&created);
    let mut layers = image.layers.clone();
    layers.push(LayerRef {
        record: LayerRecord {
            digest: layer.descriptor.digest().to_string(),
            diff_id: layer.diff_id.to_string(),
            size: layer.descriptor.size(),
            media_type: layer.descriptor.media_type().to_string(),
        },
    });
    let (manifest, config_desc) = write_image(root.store(), &config, &layers)?;
    match &options.reference {
        Some(r) => {
            let name = ImageRef::parse(r)
                .map_err(|m| Error::Image {
                    reference: r.clone(),
                    message: m,
                    source: None,
                })?
                .to_string();
            root.store()
                .tag(&name, &manifest)
                .map_err(|e| Error::step(format!("tag {name}"), e))?;
        }
        None => root
            .store()
            .add_untagged(&manifest)
            .map_err(|e| Error::step("record the committed image", e))?,
    }
    Ok(Committed {
        image_id: config_desc.digest().to_string(),
        manifest_digest: manifest.digest().to_string(),
    })
}

// --- exec --------------------------------------------------------------------

/// `docker exec` options.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ExecRequest {
    /// The command and its arguments.
    pub cmd: Vec<String>,
    /// `-e K=V` added to the container's environment.
    pub env: Vec<String>,
    /// `-u` (default: the container's user).
    pub user: Option<String>,
    /// `-w` (default: the container's working directory).
    pub workdir: Option<String>,
    /// `-t`.
    pub tty: bool,
    /// Forwards signals and terminal sizes to the process while it runs.
    pub control: Option<Control>,
}

/// Runs a command in a running container (its namespaces, root, cgroup,
/// user and security set-up) and returns its exit code.
pub fn exec(
    root: &Root,
    name_or_id: &str,
    req: &ExecRequest,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
    stdin: Option<Box<dyn Read + Send>>,
) -> Result<i32> {
    let rec = lookup(root, name_or_id)?;
    let pid = match (rec.effective_state(), rec.pid) {
        (ContainerState::Running, Some(pid)) => pid,
        _ => {
            return Err(Error::Container {
                container: name_or_id.to_string(),
                message: "is not running".into(),
            });
        }
    };
    if req.cmd.is_empty() {
        return Err(Error::Container {
            container: name_or_id.to_string(),
            message: "exec needs a command".into(),
        });
    }
    let mut cfg = rec.config.clone();
    cfg.args = req.cmd.clone();
    cfg.tty = req.tty;
    for e in &req.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        let value = match e.split_once('=') {
            Some(_) => e.clone(),
            None => match std::env::var(e) {
                Ok(v) => format!("{e}={v}"),
                Err(_) => continue,
            },
        };
        cfg.env
            .retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        cfg.env.push(value);
    }
    if let Some(w) = &req.workdir {
        cfg.workdir = w.clone();
    }
    let spec = container_spec(&cfg, rec.short_id())?;
    let mut opts = RunOptions::new();
    opts.control = req.control.clone();
    let user = req.user.clone().unwrap_or(cfg.user);
    if !user.is_empty() {
        opts.user = Some(user);
    }
    let mut stdio = Stdio::new(stdout, stderr);
    if let Some(i) = stdin {
        stdio = stdio.with_stdin(i);
    }
    match exec_in(pid, spec, opts, stdio) {
        Ok(status) => Ok(status.code()),
        Err(e) => Err(match command_error(e) {
            Ok(err) => err,
            Err(e) => Error::step(format!("exec in container {}", rec.name), e),
        }),
    }
}

// --- inspect -----------------------------------------------------------------

/// `State` of `docker container inspect`.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct InspectState {
    /// `created`, `running` or `exited`.
    #[serde(rename = "Status")]
    pub status: String,
    /// Whether it runs.
    #[serde(rename = "Running")]
    pub running: bool,
    /// Always false (kiln does not pause containers).
    #[serde(rename = "Paused")]
    pub paused: bool,
    /// Always false (no restart policies).
    #[serde(rename = "Restarting")]
    pub restarting: bool,
    /// Whether the OOM killer ended it (not tracked: false).
    #[serde(rename = "OOMKilled")]
    pub oom_killed: bool,
    /// Always false.
    #[serde(rename = "Dead")]
    pub dead: bool,
    /// Pid of its first process (0 when not running).
    #[serde(rename = "Pid")]
    pub pid: i32,
    /// Exit code of the last run.
    #[serde(rename = "ExitCode")]
    pub exit_code: i32,
    /// Empty (errors are reported by the command that failed).
    #[serde(rename = "Error")]
    pub error: String,
    /// RFC 3339 (`0001-01-01T00:00:00Z` when never started, as Docker).
    #[serde(rename = "StartedAt")]
    pub started_at: String,
    /// RFC 3339 (`0001-01-01T00:00:00Z` while it never ended).
    #[serde(rename = "FinishedAt")]
    pub finished_at: String,
}

/// `docker container inspect`'s document for one container (the fields
/// kiln has), keys in Docker's order.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ContainerInspect {
    /// Full id.
    #[serde(rename = "Id")]
    pub id: String,
    /// RFC 3339.
    #[serde(rename = "Created")]
    pub created: String,
    /// `args[0]`.
    #[serde(rename = "Path")]
    pub path: String,
    /// The remaining arguments.
    #[serde(rename = "Args")]
    pub args: Vec<String>,
    /// State.
    #[serde(rename = "State")]
    pub state: InspectState,
    /// Image id (config digest).
    #[serde(rename = "Image")]
    pub image: String,
    /// `/name`, as Docker shows it.
    #[serde(rename = "Name")]
    pub name: String,
    /// `overlay`.
    #[serde(rename = "Driver")]
    pub driver: String,
    /// `linux`.
    #[serde(rename = "Platform")]
    pub platform: String,
    /// Run options.
    #[serde(rename = "HostConfig")]
    pub host_config: serde_json::Value,
    /// Where the writable layer is.
    #[serde(rename = "GraphDriver")]
    pub graph_driver: serde_json::Value,
    /// The container's config.
    #[serde(rename = "Config")]
    pub config: serde_json::Value,
}

fn rfc3339(secs: Option<i64>) -> String {
    match secs {
        Some(s) => timestamp(Some(s)),
        None => "0001-01-01T00:00:00Z".into(),
    }
}

/// `docker container inspect`: what kiln knows about a container, in
/// Docker's shape.
pub fn inspect(root: &Root, name_or_id: &str) -> Result<ContainerInspect> {
    let c = lookup(root, name_or_id)?;
    let state = c.effective_state();
    let cfg = &c.config;
    let upper = container_dir(root, &c.id).join("upper");
    Ok(ContainerInspect {
        id: c.id.clone(),
        created: rfc3339(Some(c.created)),
        path: cfg.args.first().cloned().unwrap_or_default(),
        args: cfg.args.iter().skip(1).cloned().collect(),
        state: InspectState {
            status: state.as_str().into(),
            running: state == ContainerState::Running,
            paused: false,
            restarting: false,
            oom_killed: false,
            dead: false,
            pid: if state == ContainerState::Running {
                c.pid.unwrap_or(0)
            } else {
                0
            },
            exit_code: c.exit_code.unwrap_or(0),
            error: String::new(),
            started_at: rfc3339(c.started_at),
            finished_at: rfc3339(c.finished_at),
        },
        image: c.config_digest.clone(),
        name: format!("/{}", c.name),
        driver: "overlay".into(),
        platform: "linux".into(),
        host_config: serde_json::json!({
            "Binds": cfg.volumes.iter().map(|v| format!(
                "{}:{}{}",
                v.source.display(),
                v.target,
                if v.read_only { ":ro" } else { "" }
            )).collect::<Vec<_>>(),
            "NetworkMode": if cfg.host_network { "host" } else { "none" },
            "AutoRemove": cfg.auto_remove,
            "ReadonlyRootfs": cfg.read_only,
            "Memory": cfg.memory.unwrap_or(0),
            "NanoCpus": cfg.cpus.map_or(0, |c| (c * 1e9) as i64),
            "PidsLimit": cfg.pids_limit,
        }),
        graph_driver: serde_json::json!({
            "Data": {"UpperDir": upper.display().to_string()},
            "Name": "overlay",
        }),
        config: serde_json::json!({
            "Hostname": if cfg.host_network { String::new() } else { c.short_id().to_string() },
            "User": cfg.user,
            "Tty": cfg.tty,
            "OpenStdin": cfg.interactive,
            "Env": cfg.env,
            "Cmd": cfg.cmd,
            "Image": c.image,
            "WorkingDir": cfg.workdir,
            "Entrypoint": if cfg.entrypoint.is_empty() { serde_json::Value::Null } else { serde_json::json!(cfg.entrypoint) },
            "Labels": cfg.labels,
        }),
    })
}

/// `docker container prune`: removes every container that is not running;
/// returns the removed records and the bytes their directories held.
pub fn prune(root: &Root) -> Result<(Vec<ContainerRecord>, u64)> {
    let mut removed = Vec::new();
    let mut bytes = 0;
    for c in list(root)? {
        if c.effective_state() == ContainerState::Running {
            continue;
        }
        let size: u64 = walkdir::WalkDir::new(container_dir(root, &c.id))
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .filter(|m| m.is_file())
            .map(|m| m.len())
            .sum();
        // A container started meanwhile is kept (remove refuses it).
        if remove(root, &c.id, false).is_ok() {
            bytes += size;
            removed.push(c);
        }
    }
    Ok((removed, bytes))
}

// --- cp ----------------------------------------------------------------------

/// The merged view of a container's file system: its upper dir over its
/// image's layers (read without mounting; valid while it runs too).
fn container_view(root: &Root, rec: &ContainerRecord) -> Result<crate::snapshot::MergedView> {
    let image = resolve_local(root, &rec.image_digest)?;
    let lowers = root
        .snapshots()
        .ensure(root.store(), &image.layer_digests()?)?;
    let mut layers = vec![container_dir(root, &rec.id).join("upper")];
    layers.extend(lowers);
    Ok(crate::snapshot::MergedView::new(layers))
}

/// Resolves `path` in `view` as the kernel would inside the container,
/// following symbolic links in every component but the last (at most 40),
/// never above the root. Returns the relative path, or `None` when a
/// component is missing.
fn resolve_in_view(view: &crate::snapshot::MergedView, path: &str) -> Option<String> {
    let mut todo: std::collections::VecDeque<String> = path.split('/').map(String::from).collect();
    let mut done: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = todo.pop_front() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let last = todo.iter().all(|p| p.is_empty() || p == ".");
        let mut candidate = done.clone();
        candidate.push(part.clone());
        let rel = candidate.join("/");
        if last {
            done = candidate;
            break;
        }
        let real = view.lookup(&rel)?;
        let md = std::fs::symlink_metadata(&real).ok()?;
        if md.file_type().is_symlink() {
            hops += 1;
            if hops > 40 {
                return None;
            }
            let target = std::fs::read_link(&real).ok()?;
            let target = target.to_string_lossy();
            if target.starts_with('/') {
                done.clear();
            }
            for p in target.split('/').rev() {
                todo.push_front(p.to_string());
            }
        } else {
            done = candidate;
        }
    }
    Some(done.join("/"))
}

fn cp_error(container: &str, message: String) -> Error {
    Error::Container {
        container: container.to_string(),
        message,
    }
}

/// `docker cp CONTAINER:SRC DEST`: copies a file or directory (recursively,
/// `SRC/.` for a directory's contents) out of a container, running or not,
/// into `dest` (into it when it is an existing directory). The copies are
/// owned by the caller, as Docker's.
pub fn copy_from(root: &Root, name_or_id: &str, src: &str, dest: &Path) -> Result<PathBuf> {
    let rec = lookup(root, name_or_id)?;
    let view = container_view(root, &rec)?;
    let contents_only = src.ends_with("/.");
    let rel = resolve_in_view(&view, src.trim_end_matches("/."))
        .filter(|r| r.is_empty() || view.exists(r))
        .ok_or_else(|| {
            cp_error(
                name_or_id,
                format!("could not find the file {src} in the container"),
            )
        })?;
    let base = Path::new(&rel)
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "root".into());
    let target = if dest.is_dir() && !contents_only {
        dest.join(base)
    } else {
        if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(Error::io(
                "copy into",
                parent,
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        dest.to_path_buf()
    };
    view.copy_out(&rel, &target)?;
    let (uid, gid) = (
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    );
    for entry in walkdir::WalkDir::new(&target).into_iter().flatten() {
        std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))
            .map_err(|e| Error::io("chown", entry.path(), e))?;
    }
    Ok(target)
}

/// `docker cp SRC CONTAINER:DEST`: copies a host file or directory into a
/// container that is not running (written into its upper layer, owned by
/// root as Docker's default; parents that come from the image keep their
/// attributes). Returns the path in the container.
pub fn copy_to(root: &Root, name_or_id: &str, src: &Path, dest: &str) -> Result<String> {
    let rec = lookup(root, name_or_id)?;
    if rec.effective_state() == ContainerState::Running {
        return Err(cp_error(
            name_or_id,
            "copying into a running container is not supported by kiln (stop it first)".into(),
        ));
    }
    let md = std::fs::symlink_metadata(src).map_err(|e| Error::io("stat", src, e))?;
    let view = container_view(root, &rec)?;
    let contents_only = src.to_string_lossy().ends_with("/.");
    let dest_rel = resolve_in_view(&view, dest).ok_or_else(|| {
        cp_error(
            name_or_id,
            format!("no such directory for {dest} in the container"),
        )
    })?;
    // Into an existing directory, or as the named path.
    let dest_is_dir = view
        .lookup(&dest_rel)
        .and_then(|p| std::fs::metadata(p).ok())
        .is_some_and(|m| m.is_dir());
    let rel = if dest_is_dir && !contents_only {
        let name = src
            .file_name()
            .ok_or_else(|| cp_error(name_or_id, format!("{} has no file name", src.display())))?;
        let joined = Path::new(&dest_rel).join(name);
        joined.to_string_lossy().trim_start_matches('/').to_string()
    } else {
        dest_rel.clone()
    };
    let parent = Path::new(&rel)
        .parent()
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !parent.is_empty() && !view.lookup(&parent).is_some_and(|p| p.is_dir()) {
        return Err(cp_error(
            name_or_id,
            format!("no such directory /{parent} in the container"),
        ));
    }
    // Parents from the image are created in the upper dir with their
    // attributes, so the overlay merges them rather than replacing them.
    let upper = container_dir(root, &rec.id).join("upper");
    let mut prefix = PathBuf::new();
    for comp in Path::new(&parent).components() {
        prefix.push(comp);
        let in_upper = upper.join(&prefix);
        if std::fs::symlink_metadata(&in_upper).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        if let Some(real) = view.lookup(&prefix.to_string_lossy()) {
            crate::copy::copy_node(&real, &in_upper, None)?;
        }
    }
    let root_owned = crate::copy::CopyAttrs {
        uid: Some(0),
        gid: Some(0),
        mode: None,
    };
    let target = upper.join(&rel);
    // A path the container deleted is a whiteout (a 0/0 character device)
    // in the upper dir: replace it; a directory put there must be opaque,
    // or the image's old contents would show through again.
    let was_whiteout = std::fs::symlink_metadata(&target).is_ok_and(|m| {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        m.file_type().is_char_device() && m.rdev() == 0
    });
    if was_whiteout {
        std::fs::remove_file(&target).map_err(|e| Error::io("remove whiteout", &target, e))?;
    }
    if md.is_dir() {
        crate::copy::copy_tree(src, &target, Some(&root_owned))?;
        if was_whiteout {
            xattr::set(&target, "trusted.overlay.opaque", b"y")
                .map_err(|e| Error::io("mark opaque", &target, e))?;
        }
    } else {
        crate::copy::copy_node(src, &target, Some(&root_owned))?;
    }
    Ok(format!("/{rel}"))
}

// --- export, restart ---------------------------------------------------------

/// `docker export`: the container's whole file system (its image's layers
/// merged with its changes) as a plain tar written to `out`.
///
/// The merged tree is first copied to scratch space (no mount needed, so
/// it works for running and stopped containers alike); device nodes are
/// left out.
pub fn export(root: &Root, name_or_id: &str, out: &mut dyn Write) -> Result<()> {
    let _gc = crate::gc::BuildLock::shared(root)?;
    let rec = lookup(root, name_or_id)?;
    let view = container_view(root, &rec)?;
    let tmp = root.tempdir("export-")?;
    let tree = tmp.path().join("rootfs");
    view.copy_out("", &tree)?;
    let changes = ChangeSet::added_tree(&tree)
        .map_err(|e| Error::step(format!("scan the file system of container {}", rec.name), e))?;
    let mut opts = WriteOptions::default();
    opts.compression = kiln_image_layers::Compression::None;
    kiln_image_layers::write_layer(&changes, out, &opts).map_err(|e| {
        Error::step(
            format!("write the file system of container {}", rec.name),
            e,
        )
    })?;
    Ok(())
}

/// `docker restart`: stops the container if it runs (SIGTERM, SIGKILL
/// after `timeout`) and starts it again in the background with
/// `monitor_command` (see [`start_detached`]).
pub fn restart(
    root: &Root,
    name_or_id: &str,
    timeout: Duration,
    monitor_command: std::process::Command,
) -> Result<ContainerRecord> {
    let rec = stop(root, name_or_id, timeout)?;
    // The supervisor of the previous run releases the container's lock as
    // it records the exit; wait for that before starting again.
    let rec = wait(root, &rec.id, Some(Duration::from_secs(30)))?;
    start_detached(root, &rec.id, monitor_command)
}

// --- attach ------------------------------------------------------------------

/// `docker attach`: streams a running container's output from now on (from
/// its log) and, when `stdin` is given and the container was created with
/// `-i`, feeds it to the container's standard input; returns the exit code
/// once the container ends.
pub fn attach(
    root: &Root,
    name_or_id: &str,
    stdin: Option<Box<dyn Read + Send>>,
    stdout: &mut dyn Write,
    stderr: &mut dyn Write,
) -> Result<i32> {
    let rec = lookup(root, name_or_id)?;
    if rec.effective_state() != ContainerState::Running {
        return Err(Error::Container {
            container: name_or_id.to_string(),
            message: "you cannot attach to a stopped container, start it first".into(),
        });
    }
    let dir = container_dir(root, &rec.id);
    let log_path = dir.join("container.log");
    let mut offset = std::fs::metadata(&log_path).map(|m| m.len()).unwrap_or(0);
    if let Some(mut input) = stdin
        && rec.config.interactive
    {
        let fifo = dir.join("stdin");
        let mut w = std::fs::OpenOptions::new()
            .write(true)
            .open(&fifo)
            .map_err(|e| Error::io("open", &fifo, e))?;
        // Detached: it may block on a terminal forever; it ends with the
        // process.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut input, &mut w);
        });
    }
    loop {
        let state = read_record(&dir)?.corrected();
        let (entries, next) = read_log(root, &rec.id, offset)?;
        offset = next;
        for e in &entries {
            let w: &mut dyn Write = if e.stream == "stderr" {
                &mut *stderr
            } else {
                &mut *stdout
            };
            w.write_all(e.log.as_bytes())
                .and_then(|()| w.flush())
                .map_err(|err| Error::io("write", "standard output", err))?;
        }
        if entries.is_empty() && state.state != ContainerState::Running {
            return Ok(state.exit_code.unwrap_or(0));
        }
        std::thread::sleep(Duration::from_millis(50));
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
            created_nanos: 0,
            state: ContainerState::Running,
            pid: Some(i32::MAX),
            pid_start_time: Some(1),
            monitor_pid: None,
            monitor_start_time: None,
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
    fn log_sink_tees_and_writes_one_entry_per_line() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let id = "c".repeat(64);
        let dir = container_dir(&root, &id);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("container.log"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut seen = Vec::new();
        {
            let mut sink = LogSink {
                log: &log,
                stream: "stderr",
                inner: &mut seen,
                inner_ok: true,
            };
            sink.write_all(b"a\nb\npart")
                .unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(seen, b"a\nb\npart");
        let (entries, offset) = read_log(&root, &id, 0).unwrap_or_else(|e| panic!("{e}"));
        let logs: Vec<&str> = entries.iter().map(|e| e.log.as_str()).collect();
        assert_eq!(logs, ["a\n", "b\n", "part"]);
        assert!(
            entries
                .iter()
                .all(|e| e.stream == "stderr" && e.time.ends_with('Z'))
        );
        // A half-written line is not returned until it is complete.
        let mut f = &log;
        f.write_all(b"{\"log\":\"x")
            .unwrap_or_else(|e| panic!("{e}"));
        let (more, next) = read_log(&root, &id, offset).unwrap_or_else(|e| panic!("{e}"));
        assert!(more.is_empty());
        assert_eq!(next, offset);
    }

    #[test]
    fn names_left_by_a_killed_create_are_taken_over() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let root = Root::open(tmp.path()).unwrap_or_else(|e| panic!("{e}"));
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        assert!(reserve_name(&root, "web", &a).unwrap_or(false));
        // Another container may not take it while `a` is being created.
        std::fs::create_dir_all(container_dir(&root, &a)).unwrap_or_else(|e| panic!("{e}"));
        assert!(!reserve_name(&root, "web", &b).unwrap_or(true));
        // A record makes it `a`'s for good ...
        record(&root, &a, "web", 1);
        let old = filetime::FileTime::from_unix_time(1, 0);
        filetime::set_file_mtime(container_dir(&root, &a), old).unwrap_or_else(|e| panic!("{e}"));
        assert!(!reserve_name(&root, "web", &b).unwrap_or(true));
        // ... while an old directory without one is a leftover.
        std::fs::remove_file(container_dir(&root, &a).join("container.json"))
            .unwrap_or_else(|e| panic!("{e}"));
        filetime::set_file_mtime(container_dir(&root, &a), old).unwrap_or_else(|e| panic!("{e}"));
        assert!(reserve_name(&root, "web", &b).unwrap_or(false));
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(valid_name("web-1.a_b"));
        assert!(!valid_name("-web"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name(""));
    }

    #[test]
    fn start_time_of_this_process_is_readable() {
        let pid = std::process::id() as i32;
        assert!(process_start_time(pid).is_some());
    }
}
