//! The crate's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while preparing, running or cleaning up a
/// container.
///
/// `Display` describes the failing step; the OS error, when there is one, is
/// the [`std::error::Error::source`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The runtime spec asks for something this runtime cannot do or is
    /// internally inconsistent (no `process`, empty `args`, a NUL byte in a
    /// string, an unknown mount option, ...).
    #[error("invalid runtime spec: {reason}")]
    InvalidSpec {
        /// What is wrong, naming the field.
        reason: String,
    },

    /// A file of the root filesystem or of the bundle could not be read.
    #[error("reading {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A file could not be written (OCI bundle, cgroup control file).
    #[error("writing {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// `config.json` of a bundle is not a valid OCI runtime spec.
    #[error("parsing OCI runtime spec {}", path.display())]
    ParseSpec {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },

    /// The user named by the image or the caller does not exist in the
    /// container's `/etc/passwd` (names must exist; numeric ids need not).
    #[error("unable to find user {user}: no matching entries in passwd file")]
    UserNotFound {
        /// The user as given.
        user: String,
    },

    /// The group named by the caller does not exist in the container's
    /// `/etc/group`.
    #[error("unable to find group {group}: no matching entries in group file")]
    GroupNotFound {
        /// The group as given.
        group: String,
    },

    /// A seccomp rule names a system call this runtime does not know for
    /// the host architecture, or uses an action or operator it cannot
    /// express.
    #[error("seccomp profile: {reason}")]
    Seccomp {
        /// The offending rule.
        reason: String,
    },

    /// A system call made by the runtime itself (outside the container's
    /// set-up) failed: creating pipes, `clone`, waiting, the pty.
    #[error("{step}")]
    Sys {
        /// The step, naming the system call and its argument.
        step: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },

    /// Setting up the container inside the new namespaces failed. The child
    /// reported the step (which mount, which namespace, which system call)
    /// and the errno over a pipe before exiting.
    #[error("container set-up: {step}")]
    Setup {
        /// The step that failed, e.g. `mount proc on /proc`.
        step: String,
        /// The errno the child saw.
        #[source]
        source: io::Error,
    },

    /// The command could not be executed inside the container (not found,
    /// not executable); the container's set-up itself succeeded.
    #[error("exec {program} in the container")]
    Exec {
        /// `args[0]` of the process.
        program: String,
        /// The errno of the last `execve` attempt.
        #[source]
        source: io::Error,
    },

    /// Writing the uid/gid maps of a user namespace failed.
    #[error("user namespace: {step}")]
    IdMap {
        /// What was being written or run (e.g. `newuidmap 1234 0 1000 1`).
        step: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A cgroup operation failed (create, set a limit, read a counter).
    #[error("cgroup: {step} {}", path.display())]
    Cgroup {
        /// What was attempted, e.g. `write memory.limit_in_bytes`.
        step: String,
        /// The cgroup file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Resource limits were requested but no writable cgroup hierarchy is
    /// available (typical for rootless use without systemd delegation).
    #[error("cgroup limits requested but {reason}")]
    CgroupUnavailable {
        /// Why no cgroup can be used.
        reason: String,
    },

    /// Writing the container's output to the caller's sink, or its input
    /// from the caller's reader, failed.
    #[error("forwarding container {stream}")]
    Stream {
        /// `stdout`, `stderr` or `stdin`.
        stream: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn sys(step: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Error::Sys {
            step: step.into(),
            source: source.into(),
        }
    }

    pub(crate) fn spec(reason: impl Into<String>) -> Self {
        Error::InvalidSpec {
            reason: reason.into(),
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
