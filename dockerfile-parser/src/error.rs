//! The crate's error type and the located diagnostics it carries.

use std::fmt;

use serde::Serialize;

use crate::span::{LineIndex, Position, Span};

/// A problem found at a place in a Dockerfile: what, where, and the text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// What is wrong, in BuildKit's wording where BuildKit has one.
    pub message: String,
    /// The offending bytes in the source.
    pub span: Span,
    /// Line and column of `span.start`.
    pub start: Position,
    /// Line and column of `span.end`.
    pub end: Position,
    /// The offending text itself (a copy of `span` in the source).
    pub text: String,
    /// A suggestion, such as "did you mean FROM?".
    pub hint: Option<String>,
}

impl Diagnostic {
    /// Builds a diagnostic for `span` of `source`.
    pub fn new(source: &str, index: &LineIndex, span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            message: message.into(),
            span,
            start: index.position(source, span.start),
            end: index.position(source, span.end),
            text: span.text(source).to_owned(),
            hint: None,
        }
    }

    /// Adds a hint.
    pub fn with_hint(mut self, hint: Option<String>) -> Self {
        self.hint = hint;
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}",
            self.start.line, self.start.column, self.message
        )?;
        if let Some(hint) = &self.hint {
            write!(f, " ({hint})")?;
        }
        Ok(())
    }
}

/// Why a shell-word expansion failed (see [`crate::expand_word`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum ExpandErrorKind {
    /// A quote or `${` was opened and never closed; holds BuildKit's message.
    Unterminated(String),
    /// `${}`, `${:x}` or another malformed substitution.
    BadSubstitution,
    /// `${V:?msg}` / `${V?msg}` with `V` unset or empty: `name: message`.
    Required {
        /// The variable name.
        name: String,
        /// The user's message, or BuildKit's default one.
        message: String,
    },
    /// A modifier that is not supported, such as `${V:#x}`.
    UnsupportedModifier(String),
    /// A `#`, `%` or `/` pattern that cannot be compiled (bad escape).
    InvalidPattern {
        /// The pattern as written.
        pattern: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl fmt::Display for ExpandErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpandErrorKind::Unterminated(m) => f.write_str(m),
            ExpandErrorKind::BadSubstitution => f.write_str("syntax error: bad substitution"),
            ExpandErrorKind::Required { name, message } => write!(f, "{name}: {message}"),
            ExpandErrorKind::UnsupportedModifier(m) => {
                write!(f, "unsupported modifier ({m}) in substitution")
            }
            ExpandErrorKind::InvalidPattern { pattern, reason } => {
                write!(f, "invalid pattern ({pattern}) in substitution: {reason}")
            }
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The Dockerfile is malformed: an unknown instruction or flag, a wrong
    /// number of arguments, an unterminated heredoc, an invalid directive.
    /// The diagnostic holds the line, column and offending text.
    #[error("{0}")]
    Parse(Box<Diagnostic>),
    /// A shell word could not be expanded; `word` is the input as given.
    #[error("failed to process {word:?}: {kind}")]
    Expand {
        /// The word being expanded.
        word: String,
        /// What went wrong.
        kind: ExpandErrorKind,
    },
}

impl Error {
    /// The diagnostic of a [`Error::Parse`] error.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            Error::Parse(d) => Some(d),
            Error::Expand { .. } => None,
        }
    }
}

impl From<Diagnostic> for Error {
    fn from(d: Diagnostic) -> Self {
        Error::Parse(Box::new(d))
    }
}
