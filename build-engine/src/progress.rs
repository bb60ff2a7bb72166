//! Typed progress events, sent on a tokio channel that the CLI renders and
//! embedders consume. Libraries never print: everything a user may see
//! while a build runs is one of these events.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedSender;

/// Identifies one step of a build, e.g. `[build 2/5] RUN make`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StepId {
    /// Index of the stage in the Dockerfile (0-based).
    pub stage: usize,
    /// Index of the step inside its stage (0 is the `FROM`).
    pub index: usize,
    /// Human label: `[stage i/n] INSTRUCTION args`.
    pub label: String,
    /// Line of the instruction in the Dockerfile (1-based; 0 when synthetic).
    pub line: usize,
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The container's standard output.
    Stdout,
    /// The container's standard error.
    Stderr,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EventKind {
    /// The step started executing (after a cache miss).
    Started,
    /// The step's result was taken from the cache.
    Cached,
    /// The step missed the cache; each string names an input that differs
    /// from the last build of this step (file, arg, parent, instruction).
    CacheMiss {
        /// Human explanations, empty when no earlier build is known.
        reasons: Vec<String>,
    },
    /// One line of output of a RUN step.
    Log {
        /// Which stream.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// The step finished successfully.
    Finished {
        /// Wall time the step took.
        duration: Duration,
    },
    /// The step failed; the build fails with the matching error.
    Failed {
        /// The error, rendered.
        message: String,
    },
    /// Information about the build as a whole (cache imported, ...).
    Info {
        /// The text.
        message: String,
    },
    /// A warning that does not fail the build (e.g. an unused build arg).
    Warning {
        /// The warning text.
        message: String,
    },
}

/// One progress event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The step, or `None` for build-wide events (warnings).
    pub step: Option<StepId>,
    /// What happened.
    pub kind: EventKind,
}

/// Where events go: a channel, or nowhere.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    tx: Option<UnboundedSender<Event>>,
}

impl Progress {
    /// Events are sent to `tx`; a closed receiver is not an error.
    pub fn new(tx: UnboundedSender<Event>) -> Self {
        Progress { tx: Some(tx) }
    }

    /// Events are dropped.
    pub fn none() -> Self {
        Progress { tx: None }
    }

    /// Sends one event.
    pub fn send(&self, step: Option<&StepId>, kind: EventKind) {
        if let Some(tx) = &self.tx {
            // The receiver may have gone away (a CLI interrupted); the build
            // itself must not fail because nobody listens.
            let _ = tx.send(Event {
                step: step.cloned(),
                kind,
            });
        }
    }

    /// Sends a build-wide warning.
    pub fn warn(&self, message: impl Into<String>) {
        self.send(
            None,
            EventKind::Warning {
                message: message.into(),
            },
        );
    }
}
