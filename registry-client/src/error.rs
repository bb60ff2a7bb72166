//! The crate's one error type.

use std::path::PathBuf;

/// Why a reference string was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReferenceErrorKind {
    /// The string was empty.
    Empty,
    /// A bare 64-character hex string (Docker refuses these as names).
    BareDigest,
    /// The repository had upper-case letters.
    Uppercase,
    /// The tag did not match `[\w][\w.-]{0,127}`.
    InvalidTag(String),
    /// The registry part was not a host name, IP address or `[IPv6]`
    /// with an optional numeric port.
    InvalidDomain(String),
    /// A path component was empty or used a separator other than `.`, `_`,
    /// `__` or a run of `-`, or did not start and end with `[a-z0-9]`.
    InvalidPath(String),
    /// The digest was malformed (wrong length, upper-case hex, no `:`).
    InvalidDigest(String),
    /// The digest algorithm is not `sha256` or `sha512`.
    UnsupportedDigestAlgorithm(String),
    /// Registry and repository together exceed 255 characters.
    NameTooLong,
}

impl std::fmt::Display for ReferenceErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Empty => write!(f, "reference is empty"),
            Self::BareDigest => write!(
                f,
                "cannot specify 64-byte hexadecimal strings as a repository name"
            ),
            Self::Uppercase => write!(f, "repository name must be lowercase"),
            Self::InvalidTag(t) => write!(
                f,
                "invalid tag {t:?} (want [A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})"
            ),
            Self::InvalidDomain(d) => write!(f, "invalid registry {d:?} (want host[:port])"),
            Self::InvalidPath(p) => write!(
                f,
                "invalid repository path {p:?} (components of [a-z0-9] joined by '.', '_', '__' or '-')"
            ),
            Self::InvalidDigest(d) => write!(f, "invalid digest {d:?}"),
            Self::UnsupportedDigestAlgorithm(a) => {
                write!(f, "unsupported digest algorithm {a:?} (sha256, sha512)")
            }
            Self::NameTooLong => {
                write!(f, "repository name must not be longer than 255 characters")
            }
        }
    }
}

/// Everything that can go wrong talking to a registry.
///
/// Messages name the registry, repository, digest or file involved; secrets
/// (passwords, tokens) never appear in them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference string could not be parsed.
    #[error("invalid reference format {reference:?}: {kind}")]
    InvalidReference {
        /// The input.
        reference: String,
        /// Why it was rejected.
        kind: ReferenceErrorKind,
    },
    /// The HTTP request could not be sent or its response could not be read
    /// (connection refused or reset, TLS failure, timeout), after retries.
    #[error("{method} {url}: {what}")]
    Http {
        /// HTTP method.
        method: String,
        /// The URL (never contains credentials).
        url: String,
        /// What failed.
        what: String,
        /// The underlying transport error.
        #[source]
        source: Option<reqwest::Error>,
    },
    /// The registry answered with an unexpected status.
    #[error("{method} {url}: registry answered {status}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Status {
        /// HTTP method.
        method: String,
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the error body (the registry's `errors` JSON).
        body: String,
    },
    /// The registry wants credentials we do not have, or rejected ours.
    #[error("{registry}: authentication failed: {what}")]
    Auth {
        /// Registry host.
        registry: String,
        /// What failed (never includes secrets).
        what: String,
    },
    /// The manifest or blob does not exist.
    #[error("{reference}: not found")]
    NotFound {
        /// What was looked up (reference, or repository@digest).
        reference: String,
    },
    /// Content did not match its digest: the registry (or something between
    /// us) served wrong bytes. Nothing of it was kept.
    #[error("{what} {expected}: digest mismatch (got {actual})")]
    DigestMismatch {
        /// What was fetched (`blob`, `manifest`).
        what: &'static str,
        /// The digest asked for.
        expected: String,
        /// The digest of what arrived.
        actual: String,
    },
    /// Content had the wrong length.
    #[error("{what} {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// What was fetched.
        what: &'static str,
        /// Its digest.
        digest: String,
        /// The size the descriptor promised.
        expected: u64,
        /// The size that arrived (or was about to be exceeded).
        actual: u64,
    },
    /// A Docker schema 1 manifest (deprecated, signed, unverifiable here).
    #[error(
        "{reference}: Docker image manifest schema 1 ({media_type}) is not supported; re-push the image with a current client"
    )]
    UnsupportedSchema1 {
        /// The reference fetched.
        reference: String,
        /// The media type the registry sent.
        media_type: String,
    },
    /// A manifest could not be understood.
    #[error("{reference}: invalid manifest ({media_type}): {what}")]
    InvalidManifest {
        /// The reference fetched.
        reference: String,
        /// Its media type.
        media_type: String,
        /// What is wrong.
        what: String,
    },
    /// An index had no manifest for the requested platform.
    #[error("{reference}: no manifest for platform {platform} (available: {available})")]
    NoMatchingPlatform {
        /// The reference.
        reference: String,
        /// The platform asked for.
        platform: String,
        /// Platforms the index offers.
        available: String,
    },
    /// A manifest larger than the limit (protects memory).
    #[error("{reference}: manifest larger than {limit} bytes")]
    ManifestTooLarge {
        /// The reference.
        reference: String,
        /// The limit.
        limit: u64,
    },
    /// A local file could not be read or written.
    #[error("{step} {}: {source}", path.display())]
    Io {
        /// What we were doing.
        step: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to the caller's writer or reading the caller's source failed.
    #[error("{step} (blob {digest}): {source}")]
    Stream {
        /// What we were doing.
        step: &'static str,
        /// The blob.
        digest: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The Docker config file could not be parsed or written.
    #[error("docker config {}: {what}", path.display())]
    DockerConfig {
        /// The config file.
        path: PathBuf,
        /// What is wrong.
        what: String,
    },
    /// A `docker-credential-*` helper failed.
    #[error("credential helper docker-credential-{helper} {action} for {server}: {what}")]
    CredentialHelper {
        /// Helper name (the part after `docker-credential-`).
        helper: String,
        /// `get`, `store` or `erase`.
        action: &'static str,
        /// The server URL asked about.
        server: String,
        /// What failed (helper stderr, without secrets).
        what: String,
    },
    /// Client configuration is invalid (bad CA bundle, bad mirror URL).
    #[error("client configuration: {what}")]
    Config {
        /// What is wrong.
        what: String,
    },
    /// A JSON response (token, tag list, catalog) could not be parsed.
    #[error("{url}: invalid JSON response: {source}")]
    Json {
        /// Where it came from.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(
        step: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Error {
        Error::Io {
            step,
            path: path.into(),
            source,
        }
    }
}
