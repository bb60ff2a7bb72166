//! Manifests: media types, parsing with schema detection, and platform
//! selection from an index. All pure functions.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};

use crate::error::Error;

/// Media types this client speaks.
pub mod media_types {
    /// OCI image manifest.
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    /// OCI image index.
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    /// Docker image manifest, schema 2.
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    /// Docker manifest list (schema 2 "fat manifest").
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    /// Docker schema 1 (unsigned); refused.
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    /// Docker schema 1 (signed); refused.
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    /// OCI image config.
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Docker image config.
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    /// The OCI empty descriptor's media type (artifacts without config).
    pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
}

/// The `Accept` header sent for manifests: every type we can parse, so the
/// registry does not down-convert to schema 1.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// Manifests larger than this are refused (the distribution server's own
/// limit is 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 << 20;

/// A parsed manifest: an image manifest or an index (OCI index or Docker
/// manifest list; both share one JSON shape).
// Boxing would make every caller deref for no gain: manifests are few and
// short-lived, and both variants are large.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Manifest {
    /// An image manifest (OCI or Docker schema 2), also used for artifacts.
    Image(ImageManifest),
    /// An index / manifest list.
    Index(ImageIndex),
}

impl Manifest {
    /// Parses manifest bytes. The media type comes from `content_type` (the
    /// response header) when it names a known type, else from the JSON's
    /// `mediaType`, else from its shape (`manifests` vs `layers`). Schema 1
    /// is refused with [`Error::UnsupportedSchema1`]. `reference` is only for
    /// error messages. Returns the manifest and its media type.
    pub fn parse(
        bytes: &[u8],
        content_type: Option<&str>,
        reference: &str,
    ) -> Result<(Manifest, String), Error> {
        #[derive(serde::Deserialize)]
        struct Probe {
            #[serde(rename = "schemaVersion")]
            schema_version: Option<u64>,
            #[serde(rename = "mediaType")]
            media_type: Option<String>,
            manifests: Option<serde_json::Value>,
            layers: Option<serde_json::Value>,
            #[serde(rename = "fsLayers")]
            fs_layers: Option<serde_json::Value>,
        }
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_owned());
        let invalid = |mt: &str, what: String| Error::InvalidManifest {
            reference: reference.to_owned(),
            media_type: mt.to_owned(),
            what,
        };
        if let Some(ct) = &ct
            && (ct == media_types::DOCKER_SCHEMA1 || ct == media_types::DOCKER_SCHEMA1_SIGNED)
        {
            return Err(Error::UnsupportedSchema1 {
                reference: reference.to_owned(),
                media_type: ct.clone(),
            });
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| invalid(ct.as_deref().unwrap_or("?"), e.to_string()))?;
        if probe.schema_version == Some(1) || probe.fs_layers.is_some() {
            return Err(Error::UnsupportedSchema1 {
                reference: reference.to_owned(),
                media_type: ct
                    .or(probe.media_type)
                    .unwrap_or_else(|| media_types::DOCKER_SCHEMA1.to_owned()),
            });
        }
        if probe.schema_version != Some(2) {
            return Err(invalid(
                ct.as_deref().unwrap_or("?"),
                format!("schemaVersion {:?}, want 2", probe.schema_version),
            ));
        }
        let known = |m: &str| {
            [
                media_types::OCI_MANIFEST,
                media_types::OCI_INDEX,
                media_types::DOCKER_MANIFEST,
                media_types::DOCKER_LIST,
            ]
            .contains(&m)
        };
        let media_type = match (ct, probe.media_type) {
            (Some(c), _) if known(&c) => c,
            (_, Some(m)) if known(&m) => m,
            (_, Some(m)) => m,
            (_, None) if probe.manifests.is_some() => media_types::OCI_INDEX.to_owned(),
            (_, None) => media_types::OCI_MANIFEST.to_owned(),
        };
        let is_index = media_type == media_types::OCI_INDEX
            || media_type == media_types::DOCKER_LIST
            || (probe.manifests.is_some() && probe.layers.is_none());
        let m = if is_index {
            Manifest::Index(
                serde_json::from_slice(bytes).map_err(|e| invalid(&media_type, e.to_string()))?,
            )
        } else {
            Manifest::Image(
                serde_json::from_slice(bytes).map_err(|e| invalid(&media_type, e.to_string()))?,
            )
        };
        Ok((m, media_type))
    }

    /// Every descriptor this manifest points at (config and layers, or the
    /// index's manifests), plus the subject if any.
    pub fn references(&self) -> Vec<Descriptor> {
        match self {
            Manifest::Image(m) => {
                let mut v = vec![m.config().clone()];
                v.extend(m.layers().iter().cloned());
                v
            }
            Manifest::Index(i) => i.manifests().clone(),
        }
    }
}

/// A target platform: os, architecture and optional variant.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Platform {
    /// Operating system (`linux`).
    pub os: String,
    /// Architecture in Go's naming (`amd64`, `arm64`, `arm`).
    pub architecture: String,
    /// CPU variant (`v7`, `v8`), if any.
    pub variant: Option<String>,
}

impl Platform {
    /// A platform from parts.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        }
    }

    /// The platform of the running host, in Go's naming (what Docker
    /// defaults to).
    pub fn host() -> Platform {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
            "riscv64" => "riscv64",
            "s390x" => "s390x",
            "loongarch64" => "loong64",
            other => other,
        };
        let variant = if arch == "arm" { Some("v7") } else { None };
        Platform::new("linux", arch, variant)
    }

    /// Architecture and variant normalised as containerd's platforms
    /// package does: `arm64/v8` == `arm64`, `amd64/v1` == `amd64`, plain
    /// `arm` == `arm/v7`.
    fn normalized(&self) -> (String, String, Option<String>) {
        let v = self.variant.clone().filter(|v| !v.is_empty());
        let (a, v) = match (self.architecture.as_str(), v.as_deref()) {
            ("aarch64", v) | ("arm64", v) => ("arm64", v.filter(|v| *v != "v8").map(str::to_owned)),
            ("x86_64", v) | ("amd64", v) => ("amd64", v.filter(|v| *v != "v1").map(str::to_owned)),
            ("arm", None) => ("arm", Some("v7".to_owned())),
            (a, v) => (a, v.map(str::to_owned)),
        };
        (self.os.to_ascii_lowercase(), a.to_owned(), v)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

impl FromStr for Platform {
    type Err = Error;
    /// Parses `os/arch[/variant]` (`linux/arm64/v8`).
    fn from_str(s: &str) -> Result<Platform, Error> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform::new(os, arch, None)),
            [os, arch, v] if !os.is_empty() && !arch.is_empty() && !v.is_empty() => {
                Ok(Platform::new(os, arch, Some(v)))
            }
            _ => Err(Error::Config {
                what: format!("invalid platform {s:?} (want os/arch[/variant])"),
            }),
        }
    }
}

/// The platform a descriptor in an index declares, if any.
pub fn descriptor_platform(d: &Descriptor) -> Option<Platform> {
    d.platform().as_ref().map(|p| {
        Platform::new(
            &p.os().to_string(),
            &p.architecture().to_string(),
            p.variant().as_deref(),
        )
    })
}

/// Picks the manifest for `want` from an index's descriptors, as containerd's
/// platform matcher does: os and (normalised) architecture must match; a
/// requested variant must match exactly, except that `arm/vN` also accepts
/// `arm/vM` for M < N (preferring the highest); with no variant requested,
/// a descriptor without one is preferred. Entries with os `unknown`
/// (BuildKit attestations) never match. Returns the index into `manifests`.
pub fn select_platform(manifests: &[Descriptor], want: &Platform) -> Option<usize> {
    let (wos, warch, wvar) = want.normalized();
    let mut best: Option<(usize, i64)> = None;
    for (i, d) in manifests.iter().enumerate() {
        let Some(p) = descriptor_platform(d) else {
            continue;
        };
        let (os, arch, var) = p.normalized();
        if os == "unknown" || os != wos || arch != warch {
            continue;
        }
        let score = match (&wvar, &var) {
            (None, None) => 100,
            (None, Some(_)) => 50,
            (Some(w), Some(v)) if w == v => 100,
            (Some(w), Some(v)) if warch == "arm" => match (arm_level(w), arm_level(v)) {
                (Some(wl), Some(vl)) if vl < wl => vl,
                _ => continue,
            },
            _ => continue,
        };
        if best.is_none_or(|(_, s)| score > s) {
            best = Some((i, score));
        }
    }
    best.map(|(i, _)| i)
}

fn arm_level(v: &str) -> Option<i64> {
    v.strip_prefix('v').and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn index(platforms: &[(&str, &str, Option<&str>)]) -> Vec<Descriptor> {
        let entries: Vec<String> = platforms
            .iter()
            .map(|(os, arch, v)| {
                let v = v.map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
                format!(
                    r#"{{"mediaType":"{}","digest":"{D}","size":1,"platform":{{"os":"{os}","architecture":"{arch}"{v}}}}}"#,
                    media_types::OCI_MANIFEST
                )
            })
            .collect();
        let json = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{}]}}"#,
            media_types::OCI_INDEX,
            entries.join(",")
        );
        match Manifest::parse(json.as_bytes(), None, "t").unwrap().0 {
            Manifest::Index(i) => i.manifests().clone(),
            Manifest::Image(_) => panic!("not an index"),
        }
    }

    #[test]
    fn selects_platforms() {
        let m = index(&[
            ("unknown", "unknown", None),
            ("linux", "amd64", None),
            ("linux", "arm", Some("v6")),
            ("linux", "arm", Some("v7")),
            ("linux", "arm64", Some("v8")),
            ("windows", "amd64", None),
        ]);
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "amd64", None)),
            Some(1)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm64", None)),
            Some(4)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm64", Some("v8"))),
            Some(4)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm", None)),
            Some(3)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm", Some("v6"))),
            Some(2)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("windows", "amd64", None)),
            Some(5)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "s390x", None)),
            None
        );
        let m = index(&[("linux", "arm", Some("v5")), ("linux", "arm", Some("v6"))]);
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm", Some("v7"))),
            Some(1)
        );
        assert_eq!(
            select_platform(&m, &Platform::new("linux", "arm", Some("v5"))),
            Some(0)
        );
    }

    #[test]
    fn platform_strings() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!("linux".parse::<Platform>().is_err());
        assert!("linux//".parse::<Platform>().is_err());
        assert_eq!(Platform::host().os, "linux");
    }

    #[test]
    fn parses_docker_and_oci() {
        let docker = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","size":2,"digest":"{D}"}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"{D}"}}]}}"#,
            media_types::DOCKER_MANIFEST,
            media_types::DOCKER_CONFIG
        );
        let (m, mt) = Manifest::parse(
            docker.as_bytes(),
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
            "r",
        )
        .unwrap();
        assert_eq!(mt, media_types::DOCKER_MANIFEST);
        assert_eq!(m.references().len(), 2);
        // No media type anywhere: inferred from shape.
        let oci = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","size":2,"digest":"{D}"}},"layers":[]}}"#,
            media_types::OCI_CONFIG
        );
        let (m, mt) =
            Manifest::parse(oci.as_bytes(), Some("application/octet-stream"), "r").unwrap();
        assert_eq!(mt, media_types::OCI_MANIFEST);
        assert!(matches!(m, Manifest::Image(_)));
        let list = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[]}}"#,
            media_types::DOCKER_LIST
        );
        let (m, mt) = Manifest::parse(list.as_bytes(), None, "r").unwrap();
        assert_eq!(mt, media_types::DOCKER_LIST);
        assert!(matches!(m, Manifest::Index(_)));
    }

    #[test]
    fn refuses_schema1_and_garbage() {
        let s1 = br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            Manifest::parse(s1, None, "r"),
            Err(Error::UnsupportedSchema1 { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"{}", Some(media_types::DOCKER_SCHEMA1_SIGNED), "r"),
            Err(Error::UnsupportedSchema1 { .. })
        ));
        let e = Manifest::parse(b"not json", None, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("invalid manifest"), "{e}");
        let e = Manifest::parse(br#"{"schemaVersion":3}"#, None, "r")
            .unwrap_err()
            .to_string();
        assert!(e.contains("schemaVersion"), "{e}");
    }
}
