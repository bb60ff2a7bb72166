//! The seam between the builder and whatever runs RUN steps: [`Executor`],
//! with [`LinuxExecutor`] on top of kiln-runtime-linux.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use kiln_runtime_linux::oci_spec::runtime::{Mount, MountBuilder};
use kiln_runtime_linux::{Container, RootFs, RunOptions, Stdio, docker_default_spec, set_network};

use crate::error::{Error, Result};
use crate::progress::Stream;

/// Network of a RUN step or container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NetworkMode {
    /// The host's network (what `RUN` gets by default, as with BuildKit's
    /// default network, minus the bridge).
    #[default]
    Host,
    /// Only a loopback interface.
    None,
}

/// One extra mount of a RUN step (`RUN --mount`) or container (`-v`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecMount {
    /// Bind `source` (host path) at `target`.
    Bind {
        /// Host path.
        source: PathBuf,
        /// Path in the container.
        target: String,
        /// Read-only.
        read_only: bool,
    },
    /// A tmpfs at `target`.
    Tmpfs {
        /// Path in the container.
        target: String,
        /// Size limit in bytes.
        size: Option<u64>,
    },
}

/// Everything needed to run one process.
#[derive(Debug, Clone)]
pub struct ExecJob {
    /// argv.
    pub args: Vec<String>,
    /// `KEY=value` pairs.
    pub env: Vec<String>,
    /// Working directory.
    pub cwd: String,
    /// `USER` as written (resolved in the container's /etc/passwd).
    pub user: String,
    /// Read-only layers, top-most first.
    pub lowers: Vec<PathBuf>,
    /// Writable layer.
    pub upper: PathBuf,
    /// overlayfs work dir.
    pub work: PathBuf,
    /// Network.
    pub network: NetworkMode,
    /// Extra mounts.
    pub mounts: Vec<ExecMount>,
    /// Set when the build is cancelled (another stage failed): the
    /// executor should kill the process and return.
    pub cancel: Arc<AtomicBool>,
}

/// Runs build steps. The engine owns the policy (what to run, where its
/// writes go); implementations own the mechanism.
pub trait Executor: Send + Sync + std::fmt::Debug {
    /// Runs `job` to completion, passing each chunk of output to `output`,
    /// and returns the exit code (128 + signal when killed).
    fn run(&self, job: &ExecJob, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32>;
}

/// [`Executor`] on kiln-runtime-linux: namespaces, overlay root, Docker's
/// default capabilities and seccomp profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct LinuxExecutor;

type OutputFn<'b> = &'b mut dyn FnMut(Stream, &[u8]);

struct Sink<'a, 'b> {
    stream: Stream,
    f: &'a std::cell::RefCell<OutputFn<'b>>,
}

impl Write for Sink<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        (self.f.borrow_mut())(self.stream, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(crate) fn oci_mounts(mounts: &[ExecMount]) -> Result<Vec<Mount>> {
    let mut out = Vec::new();
    for m in mounts {
        let built = match m {
            ExecMount::Bind {
                source,
                target,
                read_only,
            } => {
                let mut opts = vec!["rbind".to_string()];
                if *read_only {
                    opts.push("ro".into());
                }
                MountBuilder::default()
                    .destination(target)
                    .typ("bind")
                    .source(source)
                    .options(opts)
                    .build()
            }
            ExecMount::Tmpfs { target, size } => {
                let mut opts = vec!["nosuid".to_string(), "nodev".into()];
                if let Some(s) = size {
                    opts.push(format!("size={s}"));
                }
                MountBuilder::default()
                    .destination(target)
                    .typ("tmpfs")
                    .source("tmpfs")
                    .options(opts)
                    .build()
            }
        };
        out.push(built.map_err(|e| Error::step("build mount spec", e))?);
    }
    Ok(out)
}

impl Executor for LinuxExecutor {
    fn run(&self, job: &ExecJob, output: &mut dyn FnMut(Stream, &[u8])) -> Result<i32> {
        let mut spec = docker_default_spec(job.args.clone());
        set_network(
            &mut spec,
            match job.network {
                NetworkMode::Host => kiln_runtime_linux::Network::Host,
                NetworkMode::None => kiln_runtime_linux::Network::None,
            },
        );
        // oci-spec's default root is read-only; a build step writes.
        let root = kiln_runtime_linux::oci_spec::runtime::RootBuilder::default()
            .path("rootfs")
            .readonly(false)
            .build()
            .map_err(|e| Error::step("runtime spec root", e))?;
        spec.set_root(Some(root));
        if let Some(p) = spec.process_mut().as_mut() {
            p.set_env(Some(job.env.clone()));
            p.set_cwd(job.cwd.clone().into());
        }
        let mut mounts = spec.mounts().clone().unwrap_or_default();
        mounts.extend(oci_mounts(&job.mounts)?);
        spec.set_mounts(Some(mounts));
        let mut lowers = job.lowers.clone();
        let mut made_empty = None;
        if lowers.is_empty() {
            // overlayfs needs at least one lower dir; an empty work-side
            // directory stands in for `FROM scratch`.
            let empty = job.work.with_extension("empty");
            std::fs::create_dir_all(&empty)
                .map_err(|e| Error::io("create directory", &empty, e))?;
            lowers.push(empty.clone());
            made_empty = Some(empty);
        }
        let rootfs = RootFs::Overlay {
            lowers,
            upper: job.upper.clone(),
            work: job.work.clone(),
        };
        let mut opts = RunOptions::new();
        if !job.user.is_empty() {
            opts.user = Some(job.user.clone());
        }
        let control = kiln_runtime_linux::Control::new();
        opts.control = Some(control.clone());
        let container = Container::new(spec, rootfs, opts);
        // A watcher turns the build's cancel flag into a kill.
        let done = Arc::new(AtomicBool::new(false));
        let watcher = {
            let done = done.clone();
            let cancel = job.cancel.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if cancel.load(Ordering::Relaxed) {
                        control.cancel();
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            })
        };
        let cell = std::cell::RefCell::new(output);
        let mut out = Sink {
            stream: Stream::Stdout,
            f: &cell,
        };
        let mut err = Sink {
            stream: Stream::Stderr,
            f: &cell,
        };
        let status = container.run(Stdio::new(&mut out, &mut err));
        done.store(true, Ordering::Relaxed);
        if let Some(e) = made_empty {
            let _ = std::fs::remove_dir(e);
        }
        let _ = watcher.join();
        let status = status.map_err(|e| Error::step(format!("run {:?}", job.args), e))?;
        if status == kiln_runtime_linux::ExitStatus::Cancelled {
            return Err(Error::Cancelled);
        }
        Ok(status.code())
    }
}
