//! Image references, parsed and normalised exactly as Docker's
//! `github.com/distribution/reference` package does (`ParseNormalizedNamed`,
//! `FamiliarString`).
//!
//! Grammar (from `reference/regexp.go`):
//!
//! ```text
//! reference      := name [ ":" tag ] [ "@" digest ]
//! name           := [domain '/'] remote-name
//! domain         := host [':' port-number]
//! host           := domain-name | IPv4address | \[ IPv6address \]
//! remote-name    := path-component ['/' path-component]*
//! path-component := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric  := /[a-z0-9]+/
//! separator      := /[_.]|__|[-]+/
//! tag            := /[\w][\w.-]{0,127}/
//! digest         := algorithm ":" encoded
//! ```

use std::fmt;
use std::str::FromStr;

use oci_spec::image::Digest;

use crate::error::{Error, ReferenceErrorKind};

/// The registry Docker assumes when a reference names none.
pub const DOCKER_HUB: &str = "docker.io";
/// The host that actually serves [`DOCKER_HUB`]'s API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";
/// The tag Docker assumes when a reference has neither tag nor digest.
pub const DEFAULT_TAG: &str = "latest";
/// Longest repository name (domain included) Docker accepts.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// A parsed, normalised image reference: registry, repository, and a tag
/// and/or a digest.
///
/// [`Display`](fmt::Display) prints the fully qualified form
/// (`docker.io/library/busybox:latest`); [`Reference::familiar`] prints the
/// short form Docker shows users (`busybox:latest`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

impl Reference {
    /// Parses and normalises `s` as `docker pull` does: a missing registry
    /// becomes `docker.io`, a single-component Docker Hub name gets the
    /// `library/` prefix, and a reference without tag or digest gets the tag
    /// `latest`.
    pub fn parse(s: &str) -> Result<Reference, Error> {
        let mut r = Reference::parse_normalized_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Like [`Reference::parse`] but without adding the `latest` tag
    /// (Docker's `ParseNormalizedNamed` without `TagNameOnly`).
    pub fn parse_normalized_named(s: &str) -> Result<Reference, Error> {
        let err = |kind| Error::InvalidReference {
            reference: s.to_owned(),
            kind,
        };
        if s.is_empty() {
            return Err(err(ReferenceErrorKind::Empty));
        }
        if s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(err(ReferenceErrorKind::BareDigest));
        }
        // Split off digest, then tag (a ':' after the last '/').
        let (rest, digest) = match s.split_once('@') {
            Some((rest, d)) => (rest, Some(parse_digest(d).map_err(err)?)),
            None => (s, None),
        };
        let (name, tag) = match rest.rfind(':') {
            Some(i) if !rest[i + 1..].contains('/') => (&rest[..i], Some(&rest[i + 1..])),
            _ => (rest, None),
        };
        if let Some(t) = tag {
            validate_tag(t).map_err(err)?;
        }
        let (mut domain, mut remainder) = split_docker_domain(name);
        if domain == "index.docker.io" {
            domain = DOCKER_HUB.to_owned();
        }
        if domain == DOCKER_HUB && !remainder.contains('/') {
            remainder = format!("library/{remainder}");
        }
        if remainder.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err(ReferenceErrorKind::Uppercase));
        }
        validate_domain(&domain).map_err(err)?;
        validate_path(&remainder).map_err(err)?;
        if domain.len() + 1 + remainder.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(ReferenceErrorKind::NameTooLong));
        }
        Ok(Reference {
            registry: domain,
            repository: remainder,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// Builds a reference from parts, validating each as [`Reference::parse`]
    /// would (no normalisation).
    pub fn from_parts(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<Reference, Error> {
        let whole = format!("{registry}/{repository}");
        let err = |kind| Error::InvalidReference {
            reference: whole.clone(),
            kind,
        };
        validate_domain(registry).map_err(err)?;
        if repository.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(err(ReferenceErrorKind::Uppercase));
        }
        validate_path(repository).map_err(err)?;
        if let Some(t) = tag {
            validate_tag(t).map_err(err)?;
        }
        if whole.len() > NAME_TOTAL_LENGTH_MAX {
            return Err(err(ReferenceErrorKind::NameTooLong));
        }
        Ok(Reference {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The registry (domain and optional port), e.g. `docker.io`,
    /// `localhost:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host:port the registry API is reached at (`docker.io` is served by
    /// `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// The repository path, e.g. `library/busybox`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What to put after `/manifests/` to fetch this reference: the digest
    /// when there is one (it pins the content), else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// The same repository with `tag` (and no digest).
    pub fn with_tag(&self, tag: &str) -> Result<Reference, Error> {
        validate_tag(tag).map_err(|kind| Error::InvalidReference {
            reference: format!("{}:{tag}", self.name()),
            kind,
        })?;
        Ok(Reference {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }

    /// The same repository pinned to `digest` (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Reference {
        Reference {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Another repository in the same registry (no tag, no digest).
    pub fn with_repository(&self, repository: &str) -> Result<Reference, Error> {
        Reference::from_parts(&self.registry, repository, None, None)
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The short form Docker shows users (`FamiliarString`): `docker.io/` and
    /// `library/` are dropped for Docker Hub (`busybox:latest`,
    /// `user/repo:tag`), other registries are kept.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_name();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_ref());
        }
        s
    }

    /// The short form of the name only (`FamiliarName`).
    pub fn familiar_name(&self) -> String {
        if self.registry == DOCKER_HUB {
            match self.repository.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_owned(),
                _ => self.repository.clone(),
            }
        } else {
            self.name()
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl FromStr for Reference {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        Reference::parse(s)
    }
}

/// Docker's `splitDockerDomain`: the part before the first `/` is a domain
/// only if it contains `.` or `:`, is `localhost`, or has upper-case letters
/// (which a path component never may).
fn split_docker_domain(name: &str) -> (String, String) {
    match name.find('/') {
        Some(i) => {
            let first = &name[..i];
            if !first.contains(['.', ':'])
                && first != "localhost"
                && first.to_ascii_lowercase() == first
            {
                (DOCKER_HUB.to_owned(), name.to_owned())
            } else {
                (first.to_owned(), name[i + 1..].to_owned())
            }
        }
        None => (DOCKER_HUB.to_owned(), name.to_owned()),
    }
}

fn validate_tag(t: &str) -> Result<(), ReferenceErrorKind> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let b = t.as_bytes();
    if b.is_empty()
        || b.len() > 128
        || !word(b[0])
        || !b[1..].iter().all(|&c| word(c) || c == b'.' || c == b'-')
    {
        return Err(ReferenceErrorKind::InvalidTag(t.to_owned()));
    }
    Ok(())
}

fn validate_domain(d: &str) -> Result<(), ReferenceErrorKind> {
    let bad = || ReferenceErrorKind::InvalidDomain(d.to_owned());
    // Split host and port; IPv6 literals are bracketed.
    let (host, port) = if let Some(rest) = d.strip_prefix('[') {
        let (v6, after) = rest.split_once(']').ok_or_else(bad)?;
        if v6.is_empty()
            || !v6
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err(bad());
        }
        match after {
            "" => ("", None),
            p => ("", Some(p.strip_prefix(':').ok_or_else(bad)?)),
        }
    } else {
        match d.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (d, None),
        }
    };
    if let Some(p) = port
        && (p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if !d.starts_with('[') {
        if host.is_empty() {
            return Err(bad());
        }
        for comp in host.split('.') {
            let b = comp.as_bytes();
            let ok = !b.is_empty()
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
                && b.iter().all(|&c| c.is_ascii_alphanumeric() || c == b'-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

fn validate_path(p: &str) -> Result<(), ReferenceErrorKind> {
    let bad = || ReferenceErrorKind::InvalidPath(p.to_owned());
    if p.is_empty() {
        return Err(bad());
    }
    for comp in p.split('/') {
        let b = comp.as_bytes();
        let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        if b.is_empty() || !alnum(b[0]) || !alnum(b[b.len() - 1]) {
            return Err(bad());
        }
        // Separators: one '.', one '_', exactly "__", or any run of '-'.
        let mut i = 0;
        while i < b.len() {
            if alnum(b[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && !alnum(b[i]) {
                i += 1;
            }
            let sep = &comp[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(())
}

/// Parses and validates a digest (`algorithm:hex`). `sha256` and `sha512`
/// must be lower-case hex of the right length, as the OCI image spec
/// requires.
pub fn parse_digest(s: &str) -> Result<Digest, ReferenceErrorKind> {
    let bad = || ReferenceErrorKind::InvalidDigest(s.to_owned());
    let (alg, hex) = s.split_once(':').ok_or_else(bad)?;
    let want = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => {
            return Err(ReferenceErrorKind::UnsupportedDigestAlgorithm(
                alg.to_owned(),
            ));
        }
    };
    if hex.len() != want
        || !hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return Err(bad());
    }
    Digest::from_str(s).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn norm(s: &str) -> String {
        Reference::parse(s)
            .map(|r| r.to_string())
            .unwrap_or_else(|e| format!("ERR {e}"))
    }

    #[test]
    fn normalises_like_docker() {
        let table = [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("user/repo", "docker.io/user/repo:latest"),
            ("user/repo/deep:v1", "docker.io/user/repo/deep:v1"),
            ("host:5000/a/b:tag", "host:5000/a/b:tag"),
            ("host:5000/a", "host:5000/a:latest"),
            ("localhost/x", "localhost/x:latest"),
            ("localhost:5000/x:y", "localhost:5000/x:y"),
            ("example.com/x", "example.com/x:latest"),
            (
                "127.0.0.1:5000/a_b.c-d__e---f",
                "127.0.0.1:5000/a_b.c-d__e---f:latest",
            ),
            ("[::1]:5000/x", "[::1]:5000/x:latest"),
            ("Example.com/x", "Example.com/x:latest"),
        ];
        for (input, want) in table {
            assert_eq!(norm(input), want, "input {input}");
        }
    }

    #[test]
    fn digests_and_tags() {
        let r = Reference::parse(&format!("busybox@sha256:{H}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest().unwrap().to_string(), format!("sha256:{H}"));
        assert_eq!(r.manifest_reference(), format!("sha256:{H}"));
        assert_eq!(r.familiar(), format!("busybox@sha256:{H}"));
        let r = Reference::parse(&format!("repo:tag@sha256:{H}")).unwrap();
        assert_eq!(r.tag(), Some("tag"));
        assert_eq!(
            r.to_string(),
            format!("docker.io/library/repo:tag@sha256:{H}")
        );
        assert_eq!(r.manifest_reference(), format!("sha256:{H}"));
    }

    #[test]
    fn familiar_forms() {
        let f = |s: &str| Reference::parse(s).unwrap().familiar();
        assert_eq!(f("docker.io/library/busybox"), "busybox:latest");
        assert_eq!(f("docker.io/user/repo:1"), "user/repo:1");
        assert_eq!(f("docker.io/library/a/b"), "library/a/b:latest");
        assert_eq!(f("localhost:5000/x"), "localhost:5000/x:latest");
        assert_eq!(
            Reference::parse("busybox").unwrap().familiar_name(),
            "busybox"
        );
    }

    #[test]
    fn rejections_name_the_reason() {
        let cases = [
            ("", "empty"),
            ("Busybox", "lowercase"),
            ("user/Repo", "lowercase"),
            ("docker.io/User/repo", "lowercase"),
            (H, "64-byte hexadecimal"),
            ("a:tag!", "tag"),
            ("-a", "path"),
            ("a-", "path"),
            ("a//b", "path"),
            ("a..b", "path"),
            ("a___b", "path"),
            ("a@sha256:abc", "digest"),
            ("a@md5:0123456789abcdef0123456789abcdef", "algorithm"),
            ("host:port/x", "registry"),
            ("-host.com/x", "registry"),
        ];
        for (input, needle) in cases {
            let e = Reference::parse(input).expect_err(input).to_string();
            assert!(e.contains(needle), "{input}: {e}");
        }
        let long = format!("example.com/{}", "a".repeat(250));
        assert!(
            Reference::parse(&long)
                .unwrap_err()
                .to_string()
                .contains("255")
        );
        let long_tag = format!("a:{}", "t".repeat(129));
        assert!(Reference::parse(&long_tag).is_err());
        assert!(Reference::parse(&format!("a:{}", "t".repeat(128))).is_ok());
    }

    #[test]
    fn api_host_and_with() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(
            r.with_tag("x").unwrap().to_string(),
            "docker.io/library/busybox:x"
        );
        assert!(r.with_tag("!").is_err());
        let r = Reference::parse("localhost:5000/a").unwrap();
        assert_eq!(r.api_host(), "localhost:5000");
        assert_eq!(
            r.with_repository("b/c").unwrap().to_string(),
            "localhost:5000/b/c"
        );
    }

    /// Docker's familiar form is lossy when a Docker Hub repository's first
    /// component looks like a registry; we match Docker (found by fuzzing).
    #[test]
    fn familiar_form_matches_docker_even_when_ambiguous() {
        let r = Reference::parse("docker.io/or.io/obtag").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.repository(), "or.io/obtag");
        assert_eq!(r.familiar(), "or.io/obtag:latest");
        assert_eq!(Reference::parse(&r.familiar()).unwrap().registry(), "or.io");
    }

    #[test]
    fn round_trip_of_display() {
        for s in [
            "busybox",
            "a/b:c",
            "localhost:1/x/y",
            &format!("q@sha256:{H}"),
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
            assert_eq!(Reference::parse(&r.familiar()).unwrap(), r);
        }
    }
}
