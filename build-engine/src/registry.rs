//! The engine's registry plumbing: the one place a registry [`Client`] is
//! configured ([`registry_client`]), and the account commands `kiln login`,
//! `kiln logout` and `kiln search` ([`login`], [`logout`], [`search`]),
//! which share Docker's `config.json` (`$DOCKER_CONFIG/config.json`, else
//! `~/.docker/config.json`) so a login with either tool serves both.

use std::path::{Path, PathBuf};

use kiln_registry_client::{Client, Credentials, DockerConfig, SearchResult};

use crate::settings::Settings;

use crate::error::{Error, Result};

pub use kiln_registry_client::DOCKER_HUB;

/// Directories of per-registry CA certificates, as Docker and podman keep
/// them (`certs.d/<host:port>/*.crt`): `$KILN_CERTS_D` when set, else
/// `/etc/docker/certs.d` and `/etc/containers/certs.d`.
fn cert_dirs() -> Vec<PathBuf> {
    match std::env::var_os("KILN_CERTS_D").filter(|v| !v.is_empty()) {
        Some(d) => vec![PathBuf::from(d)],
        None => vec![
            PathBuf::from("/etc/docker/certs.d"),
            PathBuf::from("/etc/containers/certs.d"),
        ],
    }
}

/// `*.crt` files directly in `dir` and in its sub-directories.
fn ca_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for ent in rd.flatten() {
        let p = ent.path();
        if p.is_dir() {
            if let Ok(sub) = std::fs::read_dir(&p) {
                out.extend(
                    sub.flatten()
                        .map(|e| e.path())
                        .filter(|f| f.extension().is_some_and(|x| x == "crt")),
                );
            }
        } else if p.extension().is_some_and(|x| x == "crt") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// The registry client every engine operation uses (pull, push, build base
/// images, cache import/export, login, search; [`Root::registry_client`]
/// calls this): mirrors, insecure registries and transfer parallelism from
/// `settings`, credentials from Docker's `config.json`, CA certificates
/// from the `certs.d` directories.
///
/// [`Root::registry_client`]: crate::Root::registry_client
pub fn registry_client(settings: &Settings) -> Result<Client> {
    let mut config = settings.client_config();
    for dir in cert_dirs() {
        for f in ca_files(&dir) {
            let pem = std::fs::read(&f).map_err(|e| Error::io("read CA certificate", &f, e))?;
            config.ca_certificates_pem.push(pem);
        }
    }
    Client::new(config).map_err(|e| Error::step("create registry client", e))
}

/// The registry a login command names: `docker.io` when none is given;
/// `https://host/v1/` and `host` are the same registry.
pub fn registry_name(server: Option<&str>) -> String {
    let Some(s) = server.filter(|s| !s.is_empty()) else {
        return DOCKER_HUB.to_string();
    };
    let s = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = s.split('/').next().unwrap_or(s);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    }
}

fn reg_err(registry: &str, message: &str, e: kiln_registry_client::Error) -> Error {
    Error::Registry {
        registry: registry.to_string(),
        message: message.to_string(),
        source: Some(Box::new(e)),
    }
}

/// Checks `username`/`password` against `registry` (a `GET /v2/`, with the
/// token exchange when it uses Bearer auth) and, only if they are
/// accepted, stores them in Docker's config file (mode 0600, other keys
/// kept), as `docker login` does. Returns the config file's path.
pub async fn login(
    client: &Client,
    registry: &str,
    username: &str,
    password: &str,
) -> Result<PathBuf> {
    if username.is_empty() || password.is_empty() {
        return Err(Error::Registry {
            registry: registry.to_string(),
            message: "user name and password must not be empty".into(),
            source: None,
        });
    }
    client
        .login(registry, Credentials::basic(username, password), true)
        .await
        .map_err(|e| reg_err(registry, "login failed", e))?;
    config_path(registry)
}

fn config_path(registry: &str) -> Result<PathBuf> {
    DockerConfig::default_path().ok_or_else(|| Error::Registry {
        registry: registry.to_string(),
        message: "no home directory and no $DOCKER_CONFIG for the credentials".into(),
        source: None,
    })
}

/// Removes the stored credentials for `registry`. Returns false when there
/// were none (Docker then says "Not logged in").
pub fn logout(registry: &str) -> Result<bool> {
    let path = config_path(registry)?;
    let mut dc =
        DockerConfig::load(&path).map_err(|e| reg_err(registry, "read docker config", e))?;
    dc.erase(registry)
        .map_err(|e| reg_err(registry, "remove credentials", e))
}

/// Searches `registry` for repositories matching `term` (at most `limit`):
/// Docker Hub's search endpoint for `docker.io`, the `/v2/_catalog`
/// listing filtered by name elsewhere. A registry that offers neither gets
/// an error that says so.
pub async fn search(
    client: &Client,
    registry: &str,
    term: &str,
    limit: usize,
) -> Result<Vec<SearchResult>> {
    client
        .search(registry, term, limit)
        .await
        .map_err(|e| {
            let why = match &e {
                kiln_registry_client::Error::NotFound { .. } => {
                    "offers no search: its catalog (/v2/_catalog) is not available (404)"
                }
                kiln_registry_client::Error::Status {
                    status: 401 | 403, ..
                }
                | kiln_registry_client::Error::Auth { .. } => {
                    "offers no search to this user: its catalog (/v2/_catalog) refused access (log in, or the catalog is restricted)"
                }
                kiln_registry_client::Error::Status { .. } => {
                    "offers no search: its catalog (/v2/_catalog) answered with an error"
                }
                _ => "search failed",
            };
            reg_err(registry, why, e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_server_names_normalise() {
        assert_eq!(registry_name(None), "docker.io");
        assert_eq!(
            registry_name(Some("https://index.docker.io/v1/")),
            "docker.io"
        );
        assert_eq!(registry_name(Some("localhost:5000")), "localhost:5000");
        assert_eq!(
            registry_name(Some("http://127.0.0.1:5000/v2/")),
            "127.0.0.1:5000"
        );
    }
}
