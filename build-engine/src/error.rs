//! The engine's error type.

use std::path::PathBuf;

/// Boxed cause from a leaf crate or the standard library.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can make a build, a pull or a run fail.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file operation failed; `op` says what was being done.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done ("read", "create directory", ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// The Dockerfile does not parse.
    #[error("Dockerfile {}: {message}", path.display())]
    Dockerfile {
        /// The Dockerfile's path (or `-`).
        path: PathBuf,
        /// The rendered diagnostics.
        message: String,
    },
    /// An instruction is semantically invalid (bad flag value, unknown
    /// stage, bad expansion).
    #[error("line {line}: {message}")]
    Instruction {
        /// Line in the Dockerfile.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A Dockerfile feature or flag kiln does not implement: never ignored.
    #[error("line {line}: {feature} is not supported by kiln")]
    Unsupported {
        /// Line in the Dockerfile (0 when it came from the command line).
        line: usize,
        /// The feature, e.g. `RUN --mount=type=ssh`.
        feature: String,
    },
    /// The configuration file or an environment override is invalid.
    #[error("configuration {}: {message}", path.display())]
    Settings {
        /// The file (or `$VARIABLE`) holding the bad setting.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// `--target` names no stage.
    #[error("target stage {0:?} not found")]
    TargetNotFound(String),
    /// A RUN step exited with a non-zero status.
    #[error("step {step} (line {line}) failed: exit code {exit_code}{}", tail_text(.tail))]
    StepFailed {
        /// The step label, e.g. `[2/5] RUN make`.
        step: String,
        /// Line in the Dockerfile.
        line: usize,
        /// The exit code (128 + signal for a signal).
        exit_code: i32,
        /// The last lines of the step's output.
        tail: Vec<String>,
    },
    /// A step failed in a leaf crate (store, layer writer, runtime,
    /// registry); `context` says which step and what it was doing.
    #[error("{context}")]
    Step {
        /// The step and operation.
        context: String,
        /// The underlying error.
        #[source]
        source: Cause,
    },
    /// An image reference could not be resolved (not in the store, and no
    /// registry has it).
    #[error("image {reference}: {message}")]
    Image {
        /// The reference as written.
        reference: String,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A registry refused or failed an account operation (login, search).
    #[error("registry {registry}: {message}")]
    Registry {
        /// The registry (`docker.io`, `localhost:5000`).
        registry: String,
        /// What went wrong.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Cause>,
    },
    /// A JSON document (config, manifest, cache record) is malformed.
    #[error("{what}: invalid JSON")]
    Json {
        /// Which document.
        what: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// No image in the store matches the reference (tag, digest or ID
    /// prefix). The message is Docker's.
    #[error("No such image: {reference}")]
    NoSuchImage {
        /// The reference as written.
        reference: String,
    },
    /// An image operation conflicts with the store's state (a container
    /// uses the image, it has several tags, an ID prefix is ambiguous); the
    /// message is Docker's.
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicts, and whether `--force` would help.
        message: String,
    },
    /// An image `--filter` is malformed.
    #[error("{message}")]
    Filter {
        /// What is wrong with it.
        message: String,
    },
    /// No container has this name or id (prefix).
    #[error("no such container: {0}")]
    NoSuchContainer(String),
    /// An operation on a container cannot be done in its current state
    /// (removing a running container without force, an ambiguous id prefix).
    #[error("container {container}: {message}")]
    Container {
        /// The container as named by the caller.
        container: String,
        /// What is wrong.
        message: String,
    },
    /// A container's command could not be executed (Docker's exit code 127
    /// for a command not found, 126 for one that is not executable).
    #[error("container command {program:?} cannot be run")]
    ContainerCommand {
        /// The command (`args[0]`).
        program: String,
        /// 127 (not found) or 126 (not executable).
        exit_code: i32,
        /// The errno of `execve`.
        #[source]
        source: std::io::Error,
    },
    /// The build was cancelled (another stage failed, or the caller asked).
    #[error("build cancelled")]
    Cancelled,
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!(
            "\n  output (last {} lines):\n    {}",
            tail.len(),
            tail.join("\n    ")
        )
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Image`] about `reference`.
    pub(crate) fn image(
        reference: &str,
        message: impl Into<String>,
        source: Option<Cause>,
    ) -> Self {
        Error::Image {
            reference: reference.to_string(),
            message: message.into(),
            source,
        }
    }

    pub(crate) fn step(context: impl Into<String>, source: impl Into<Cause>) -> Self {
        Error::Step {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn instruction(line: usize, message: impl Into<String>) -> Self {
        Error::Instruction {
            line,
            message: message.into(),
        }
    }
}
