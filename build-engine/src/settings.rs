//! Kiln's configuration file and its environment overrides.
//!
//! One TOML file, found in this order (the first that exists wins):
//! `$KILN_CONFIG`, `$XDG_CONFIG_HOME/kiln/config.toml` (usually
//! `~/.config/kiln/config.toml`), `/etc/kiln/config.toml`. A missing file
//! means the defaults; a file that does not parse, or names a key kiln does
//! not know, is an error naming the file and the key, never ignored.
//!
//! ```toml
//! # Where images, snapshots and the build cache live (default:
//! # ~/.local/share/kiln, or /var/lib/kiln when there is no home).
//! root = "/var/lib/kiln"
//!
//! # How many stages run at once in a build, and how many blobs a pull or
//! # push transfers at once (default: 3, Docker's transfer default).
//! parallelism = 4
//!
//! [registries]
//! # Registries (host[:port]) that may be reached over plain http.
//! # Loopback registries always may.
//! insecure = ["registry.lan:5000"]
//!
//! # Pull mirrors, tried in order before the registry itself.
//! [registries.mirrors]
//! "docker.io" = ["https://mirror.example.com"]
//! ```
//!
//! Environment overrides, applied after the file: `KILN_ROOT` (root),
//! `KILN_PARALLELISM`, `KILN_INSECURE_REGISTRIES` (comma-separated, added to
//! the file's list) and `KILN_REGISTRY_MIRRORS`
//! (`docker.io=https://m1,docker.io=https://m2`, added before the file's).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use kiln_registry_client::ClientConfig;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The parallelism when neither the file nor the environment sets one.
pub const DEFAULT_PARALLELISM: usize = 3;

/// Kiln's settings: the configuration file plus environment overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The file the settings were read from (`None`: defaults only).
    pub file: Option<PathBuf>,
    /// The state directory (store, snapshots, cache).
    pub root: PathBuf,
    /// Stages run at once by a build, blobs transferred at once by a pull or
    /// push. At least 1.
    pub parallelism: usize,
    /// Registries (`host[:port]`) reachable over plain http.
    pub insecure_registries: BTreeSet<String>,
    /// Pull mirrors per registry name (`docker.io`), in the order tried.
    pub mirrors: BTreeMap<String, Vec<String>>,
}

/// The file's shape. Unknown keys are rejected.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    root: Option<PathBuf>,
    parallelism: Option<usize>,
    #[serde(default)]
    registries: FileRegistries,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRegistries {
    #[serde(default)]
    insecure: Vec<String>,
    #[serde(default)]
    mirrors: BTreeMap<String, Vec<String>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            file: None,
            root: default_root(),
            parallelism: DEFAULT_PARALLELISM,
            insecure_registries: BTreeSet::new(),
            mirrors: BTreeMap::new(),
        }
    }
}

fn default_root() -> PathBuf {
    dirs::data_dir()
        .map(|d| d.join("kiln"))
        .unwrap_or_else(|| PathBuf::from("/var/lib/kiln"))
}

impl Settings {
    /// The configuration file that [`Settings::load`] reads, if any exists.
    pub fn find_file() -> Option<PathBuf> {
        if let Some(p) = std::env::var_os("KILN_CONFIG").filter(|p| !p.is_empty()) {
            return Some(PathBuf::from(p));
        }
        let user = dirs::config_dir().map(|d| d.join("kiln").join("config.toml"));
        user.into_iter()
            .chain(std::iter::once(PathBuf::from("/etc/kiln/config.toml")))
            .find(|p| p.is_file())
    }

    /// Reads the configuration file (see the module docs for where) and
    /// applies the environment overrides. `$KILN_CONFIG` naming a file that
    /// does not exist is an error.
    pub fn load() -> Result<Settings> {
        let mut settings = match Settings::find_file() {
            Some(path) => Settings::from_file(&path)?,
            None => Settings::default(),
        };
        settings.apply_env(|k| std::env::var(k).ok())?;
        Ok(settings)
    }

    /// Reads `path` (no environment overrides).
    pub fn from_file(path: &Path) -> Result<Settings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io("read configuration file", path, e))?;
        Settings::from_toml(&text, Some(path))
    }

    /// Parses the file's text; `path` only names it in errors and in
    /// [`Settings::file`].
    pub fn from_toml(text: &str, path: Option<&Path>) -> Result<Settings> {
        let shown = path.map_or_else(|| PathBuf::from("<config>"), Path::to_path_buf);
        let parsed: FileSettings = toml::from_str(text).map_err(|e| Error::Settings {
            path: shown.clone(),
            message: e.message().to_string(),
        })?;
        let mut s = Settings {
            file: path.map(Path::to_path_buf),
            ..Settings::default()
        };
        if let Some(root) = parsed.root {
            s.root = root;
        }
        if let Some(p) = parsed.parallelism {
            s.parallelism = check_parallelism(p, &shown.display().to_string())?;
        }
        for host in parsed.registries.insecure {
            s.insecure_registries
                .insert(check_host(&host, &shown.display().to_string())?);
        }
        for (registry, urls) in parsed.registries.mirrors {
            for url in &urls {
                check_mirror(&registry, url, &shown.display().to_string())?;
            }
            s.mirrors.insert(registry, urls);
        }
        Ok(s)
    }

    /// Applies the environment overrides, reading variables through `var`
    /// (so tests need not touch the process environment).
    pub fn apply_env(&mut self, var: impl Fn(&str) -> Option<String>) -> Result<()> {
        let set = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        if let Some(root) = set("KILN_ROOT") {
            self.root = PathBuf::from(root);
        }
        if let Some(p) = set("KILN_PARALLELISM") {
            let n = p.trim().parse::<usize>().map_err(|_| Error::Settings {
                path: PathBuf::from("$KILN_PARALLELISM"),
                message: format!("{p:?} is not a whole number"),
            })?;
            self.parallelism = check_parallelism(n, "$KILN_PARALLELISM")?;
        }
        if let Some(list) = set("KILN_INSECURE_REGISTRIES") {
            for host in list.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                self.insecure_registries
                    .insert(check_host(host, "$KILN_INSECURE_REGISTRIES")?);
            }
        }
        if let Some(list) = set("KILN_REGISTRY_MIRRORS") {
            let mut added: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
                let (registry, url) = item.split_once('=').ok_or_else(|| Error::Settings {
                    path: PathBuf::from("$KILN_REGISTRY_MIRRORS"),
                    message: format!("{item:?}: expected REGISTRY=URL"),
                })?;
                check_mirror(registry, url, "$KILN_REGISTRY_MIRRORS")?;
                added
                    .entry(registry.to_string())
                    .or_default()
                    .push(url.to_string());
            }
            for (registry, mut urls) in added {
                let entry = self.mirrors.entry(registry).or_default();
                for old in entry.drain(..) {
                    if !urls.contains(&old) {
                        urls.push(old);
                    }
                }
                *entry = urls;
            }
        }
        Ok(())
    }

    /// The registry client configuration these settings ask for (mirrors,
    /// insecure registries, transfer parallelism; credentials from Docker's
    /// `config.json`).
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::default();
        c.mirrors = self
            .mirrors
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        c.insecure_registries = self.insecure_registries.iter().cloned().collect();
        c.max_concurrent_transfers = self.parallelism;
        c
    }
}

fn check_parallelism(n: usize, source: &str) -> Result<usize> {
    if n == 0 {
        return Err(Error::Settings {
            path: PathBuf::from(source),
            message: "parallelism must be at least 1".into(),
        });
    }
    Ok(n)
}

fn check_host(host: &str, source: &str) -> Result<String> {
    let bad = host.is_empty()
        || host.contains("://")
        || host.contains('/')
        || host.chars().any(char::is_whitespace);
    if bad {
        return Err(Error::Settings {
            path: PathBuf::from(source),
            message: format!(
                "insecure registry {host:?}: expected host[:port], without a scheme or path"
            ),
        });
    }
    Ok(host.to_ascii_lowercase())
}

fn check_mirror(registry: &str, url: &str, source: &str) -> Result<()> {
    let ok_scheme = url.starts_with("http://") || url.starts_with("https://");
    if registry.is_empty() || !ok_scheme || url::Url::parse(url).is_err() {
        return Err(Error::Settings {
            path: PathBuf::from(source),
            message: format!(
                "mirror {url:?} for {registry:?}: expected an http:// or https:// URL"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = r#"
root = "/var/lib/kiln"
parallelism = 4
[registries]
insecure = ["Registry.lan:5000"]
[registries.mirrors]
"docker.io" = ["https://mirror.example.com"]
"#;
        let s =
            Settings::from_toml(text, Some(Path::new("/etc/kiln/config.toml"))).expect("parses");
        assert_eq!(s.root, PathBuf::from("/var/lib/kiln"));
        assert_eq!(s.parallelism, 4);
        assert!(s.insecure_registries.contains("registry.lan:5000"));
        assert_eq!(s.mirrors["docker.io"], vec!["https://mirror.example.com"]);
        let c = s.client_config();
        assert_eq!(c.max_concurrent_transfers, 4);
        assert!(c.insecure_registries.contains("registry.lan:5000"));
        assert_eq!(c.mirrors["docker.io"], vec!["https://mirror.example.com"]);
    }

    #[test]
    fn an_empty_file_is_the_defaults() {
        let s = Settings::from_toml("", None).expect("parses");
        assert_eq!(s.parallelism, DEFAULT_PARALLELISM);
        assert!(s.mirrors.is_empty() && s.insecure_registries.is_empty());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors_naming_the_file() {
        for (text, needle) in [
            ("paralelism = 2", "paralelism"),
            ("parallelism = 0", "at least 1"),
            ("parallelism = \"x\"", "invalid type"),
            (
                "[registries]\ninsecure = [\"http://x:5000\"]",
                "without a scheme",
            ),
            (
                "[registries.mirrors]\n\"docker.io\" = [\"ftp://m\"]",
                "http://",
            ),
            ("[registries]\nmirror = {}", "mirror"),
        ] {
            let err = Settings::from_toml(text, Some(Path::new("/x/config.toml")))
                .expect_err(text)
                .to_string();
            assert!(err.contains("/x/config.toml"), "{err}");
            assert!(err.contains(needle), "{text}: {err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut s = Settings::from_toml(
            "parallelism = 2\n[registries.mirrors]\n\"docker.io\" = [\"https://file\"]",
            None,
        )
        .expect("parses");
        let env: BTreeMap<&str, &str> = [
            ("KILN_ROOT", "/tmp/k"),
            ("KILN_PARALLELISM", "8"),
            ("KILN_INSECURE_REGISTRIES", "a:5000, b"),
            (
                "KILN_REGISTRY_MIRRORS",
                "docker.io=http://127.0.0.1:5000,quay.io=https://q",
            ),
        ]
        .into_iter()
        .collect();
        s.apply_env(|k| env.get(k).map(|v| v.to_string()))
            .expect("applies");
        assert_eq!(s.root, PathBuf::from("/tmp/k"));
        assert_eq!(s.parallelism, 8);
        assert_eq!(
            s.insecure_registries.iter().collect::<Vec<_>>(),
            vec!["a:5000", "b"]
        );
        assert_eq!(
            s.mirrors["docker.io"],
            vec!["http://127.0.0.1:5000", "https://file"]
        );
        assert_eq!(s.mirrors["quay.io"], vec!["https://q"]);
        let err = s
            .apply_env(|k| (k == "KILN_PARALLELISM").then(|| "many".to_string()))
            .expect_err("not a number")
            .to_string();
        assert!(err.contains("KILN_PARALLELISM"), "{err}");
    }
}
