//! Credentials: the [`Secret`] wrapper that keeps passwords and tokens out
//! of logs, and Docker's `config.json` (`auths`, `credHelpers`,
//! `credsStore`, the `docker-credential-*` helper protocol).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value};

use crate::error::Error;
use crate::reference::DOCKER_HUB;

/// A secret string (password, token). `Debug` and `Display` print
/// `<redacted>`; use [`Secret::expose`] to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    /// The secret itself. Call only where it is sent to the registry.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Credentials for one registry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// No credentials: anonymous access (anonymous Bearer tokens still work).
    Anonymous,
    /// User name and password (Basic auth, or exchanged for a Bearer token).
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An identity (refresh) token, exchanged for access tokens with the
    /// OAuth2 `refresh_token` grant. Docker stores these with the user name
    /// `<token>`.
    IdentityToken(Secret),
}

impl Credentials {
    /// User name and password.
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials::Basic {
            username: username.to_owned(),
            password: Secret::new(password),
        }
    }
}

/// The key Docker uses in `auths` for Docker Hub.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A Docker CLI configuration file (`config.json`).
#[derive(Clone, Debug)]
pub struct DockerConfig {
    path: PathBuf,
    json: Map<String, Value>,
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    /// Where Docker looks: `$DOCKER_CONFIG/config.json`, else
    /// `~/.docker/config.json`.
    pub fn default_path() -> Option<PathBuf> {
        match std::env::var_os("DOCKER_CONFIG") {
            Some(d) if !d.is_empty() => Some(PathBuf::from(d).join("config.json")),
            _ => dirs::home_dir().map(|h| h.join(".docker").join("config.json")),
        }
    }

    /// Loads the file at [`DockerConfig::default_path`] (an empty config if
    /// it does not exist).
    pub fn load_default() -> Result<DockerConfig, Error> {
        let path = DockerConfig::default_path().ok_or_else(|| Error::Config {
            what: "no home directory and no $DOCKER_CONFIG".to_owned(),
        })?;
        DockerConfig::load(&path)
    }

    /// Loads `path` (an empty config if it does not exist).
    pub fn load(path: &Path) -> Result<DockerConfig, Error> {
        let json = match std::fs::read(path) {
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(Error::DockerConfig {
                        path: path.to_owned(),
                        what: "not a JSON object".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(Error::DockerConfig {
                        path: path.to_owned(),
                        what: e.to_string(),
                    });
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(Error::io("reading docker config", path, e)),
        };
        Ok(DockerConfig {
            path: path.to_owned(),
            json,
            helper_dir: None,
        })
    }

    /// Looks for `docker-credential-*` helpers in `dir` instead of `$PATH`.
    pub fn set_helper_dir(&mut self, dir: impl Into<PathBuf>) {
        self.helper_dir = Some(dir.into());
    }

    /// The file this config was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Credentials for `registry` (as in a reference: `docker.io`,
    /// `localhost:5000`), in Docker's order: `credHelpers[registry]`, then
    /// `credsStore`, then `auths` (whose keys may carry a scheme and path).
    /// `Ok(None)` when nothing is configured.
    pub fn credentials_for(&self, registry: &str) -> Result<Option<Credentials>, Error> {
        let server = server_key(registry);
        if let Some(helper) = self
            .json
            .get("credHelpers")
            .and_then(|h| h.get(registry).or_else(|| h.get(&server)))
            .and_then(Value::as_str)
        {
            return helper_get(self.helper_dir.as_deref(), helper, &server);
        }
        if let Some(store) = self.json.get("credsStore").and_then(Value::as_str)
            && let Some(c) = helper_get(self.helper_dir.as_deref(), store, &server)?
        {
            return Ok(Some(c));
        }
        let Some(auths) = self.json.get("auths").and_then(Value::as_object) else {
            return Ok(None);
        };
        for (key, entry) in auths {
            if normalize_auth_key(key) != normalize_auth_key(&server) {
                continue;
            }
            if let Some(t) = entry
                .get("identitytoken")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                return Ok(Some(Credentials::IdentityToken(Secret::new(t))));
            }
            if let Some(a) = entry
                .get("auth")
                .and_then(Value::as_str)
                .filter(|a| !a.is_empty())
            {
                let decoded = STANDARD.decode(a.trim()).map_err(|e| Error::DockerConfig {
                    path: self.path.clone(),
                    what: format!("auths[{key:?}].auth is not base64: {e}"),
                })?;
                let s = String::from_utf8(decoded).map_err(|_| Error::DockerConfig {
                    path: self.path.clone(),
                    what: format!("auths[{key:?}].auth is not UTF-8"),
                })?;
                let (u, p) = s.split_once(':').ok_or_else(|| Error::DockerConfig {
                    path: self.path.clone(),
                    what: format!("auths[{key:?}].auth has no ':'"),
                })?;
                return Ok(Some(Credentials::basic(u, p)));
            }
            if let (Some(u), Some(p)) = (
                entry.get("username").and_then(Value::as_str),
                entry.get("password").and_then(Value::as_str),
            ) {
                return Ok(Some(Credentials::basic(u, p)));
            }
        }
        Ok(None)
    }

    /// Stores credentials for `registry` the way `docker login` does: with
    /// the registry's `credHelpers` entry or `credsStore` if configured,
    /// else base64 in `auths`. Writes the file atomically (mode 0600).
    pub fn store(&mut self, registry: &str, creds: &Credentials) -> Result<(), Error> {
        let server = server_key(registry);
        let (user, secret) = match creds {
            Credentials::Basic { username, password } => (username.clone(), password.clone()),
            Credentials::IdentityToken(t) => ("<token>".to_owned(), t.clone()),
            Credentials::Anonymous => return Ok(()),
        };
        let helper = self
            .json
            .get("credHelpers")
            .and_then(|h| h.get(registry))
            .or_else(|| self.json.get("credsStore"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(helper) = helper {
            let payload = serde_json::json!({"ServerURL": server, "Username": user, "Secret": secret.expose()});
            run_helper(
                self.helper_dir.as_deref(),
                &helper,
                "store",
                &server,
                payload.to_string().as_bytes(),
            )?;
            // Docker leaves an empty entry in auths so `docker info` lists it.
            self.auths_mut().insert(server, Value::Object(Map::new()));
        } else {
            let mut entry = Map::new();
            match creds {
                Credentials::IdentityToken(t) => {
                    entry.insert("identitytoken".into(), Value::String(t.expose().to_owned()));
                }
                _ => {
                    entry.insert(
                        "auth".into(),
                        Value::String(STANDARD.encode(format!("{user}:{}", secret.expose()))),
                    );
                }
            }
            self.auths_mut().insert(server, Value::Object(entry));
        }
        self.save()
    }

    /// Removes the credentials for `registry` as `docker logout` does:
    /// every `auths` entry naming it (in any spelling: `https://host/v1/`,
    /// `host`), and the helper's copy when a helper holds them. Other keys
    /// of the file are kept. Returns false when nothing was stored.
    pub fn erase(&mut self, registry: &str) -> Result<bool, Error> {
        let server = server_key(registry);
        let want = normalize_auth_key(&server);
        let helper = self
            .json
            .get("credHelpers")
            .and_then(|h| h.get(registry))
            .or_else(|| self.json.get("credsStore"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut removed = false;
        if let Some(auths) = self.json.get_mut("auths").and_then(Value::as_object_mut) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| normalize_auth_key(k) == want)
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                removed = true;
            }
        }
        if let Some(helper) = helper {
            // The helper may hold credentials even without an auths entry;
            // "not found" from it is not an error for logout.
            if run_helper(
                self.helper_dir.as_deref(),
                &helper,
                "erase",
                &server,
                server.as_bytes(),
            )
            .is_ok()
            {
                removed = true;
            }
        }
        if removed {
            self.save()?;
        }
        Ok(removed)
    }

    fn auths_mut(&mut self) -> &mut Map<String, Value> {
        let v = self
            .json
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !v.is_object() {
            *v = Value::Object(Map::new());
        }
        match v {
            Value::Object(m) => m,
            _ => unreachable!("just made an object"),
        }
    }

    fn save(&self) -> Result<(), Error> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io("creating docker config directory", dir, e))?;
        let tmp = self.path.with_extension("json.kiln-tmp");
        let body = serde_json::to_vec_pretty(&Value::Object(self.json.clone())).map_err(|e| {
            Error::DockerConfig {
                path: self.path.clone(),
                what: e.to_string(),
            }
        })?;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::io("writing docker config", &tmp, e))?;
        f.write_all(&body)
            .map_err(|e| Error::io("writing docker config", &tmp, e))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| Error::io("replacing docker config", &self.path, e))
    }
}

/// The key Docker uses for a registry in `auths` and with helpers.
fn server_key(registry: &str) -> String {
    if registry == DOCKER_HUB || registry == "index.docker.io" || registry == "registry-1.docker.io"
    {
        DOCKER_HUB_AUTH_KEY.to_owned()
    } else {
        registry.to_owned()
    }
}

/// `https://host:5000/v1/` and `host:5000` name the same registry
/// (Docker's `ConvertToHostname`).
fn normalize_auth_key(k: &str) -> String {
    let k = k
        .strip_prefix("https://")
        .or_else(|| k.strip_prefix("http://"))
        .unwrap_or(k);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

fn helper_get(
    dir: Option<&Path>,
    helper: &str,
    server: &str,
) -> Result<Option<Credentials>, Error> {
    let out = run_helper(dir, helper, "get", server, server.as_bytes())?;
    let Some(out) = out else { return Ok(None) };
    let v: Value = serde_json::from_slice(&out).map_err(|e| Error::CredentialHelper {
        helper: helper.to_owned(),
        action: "get",
        server: server.to_owned(),
        what: format!("invalid JSON answer: {e}"),
    })?;
    let user = v.get("Username").and_then(Value::as_str).unwrap_or("");
    let secret = v.get("Secret").and_then(Value::as_str).unwrap_or("");
    if secret.is_empty() {
        return Ok(None);
    }
    if user == "<token>" {
        return Ok(Some(Credentials::IdentityToken(Secret::new(secret))));
    }
    Ok(Some(Credentials::basic(user, secret)))
}

/// Runs `docker-credential-<helper> <action>` with `input` on stdin. `get`
/// answering "credentials not found" gives `Ok(None)`.
fn run_helper(
    dir: Option<&Path>,
    helper: &str,
    action: &'static str,
    server: &str,
    input: &[u8],
) -> Result<Option<Vec<u8>>, Error> {
    let err = |what: String| Error::CredentialHelper {
        helper: helper.to_owned(),
        action,
        server: server.to_owned(),
        what,
    };
    let program = format!("docker-credential-{helper}");
    let program = match dir {
        Some(d) => d.join(program),
        None => PathBuf::from(program),
    };
    let mut child = Command::new(program)
        .arg(action)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| err(format!("cannot run: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| err(format!("writing stdin: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| err(format!("waiting: {e}")))?;
    if !out.status.success() {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        if action == "get" && text.contains("credentials not found") {
            return Ok(None);
        }
        // Helper output could echo input; only the first line, which for
        // the standard helpers is the error message.
        return Err(err(format!(
            "{}: {}",
            out.status,
            text.lines().next().unwrap_or("").trim()
        )));
    }
    Ok(Some(out.stdout))
}

/// Parsed `auths` map, for callers that list logins.
pub fn configured_registries(config: &DockerConfig) -> Vec<String> {
    let mut v: BTreeMap<String, ()> = BTreeMap::new();
    if let Some(a) = config.json.get("auths").and_then(Value::as_object) {
        for k in a.keys() {
            v.insert(normalize_auth_key(k), ());
        }
    }
    if let Some(h) = config.json.get("credHelpers").and_then(Value::as_object) {
        for k in h.keys() {
            v.insert(normalize_auth_key(k), ());
        }
    }
    v.into_keys().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        let c = Credentials::basic("me", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(format!("{c:?}").contains("<redacted>"));
        let t = Credentials::IdentityToken(Secret::new("tok-123"));
        assert!(!format!("{t:?}").contains("tok-123"));
    }

    #[test]
    fn erase_removes_every_spelling_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"psFormat":"x","auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"http://localhost:5000/v2/":{"auth":"YTpi"},"localhost:5000":{"auth":"YTpi"},"other:1":{"auth":"bzpw"}}}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        assert!(c.erase("localhost:5000").unwrap());
        assert!(!c.erase("localhost:5000").unwrap());
        assert!(c.erase("docker.io").unwrap());
        let v: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"psFormat":"x","auths":{"other:1":{"auth":"bzpw"}}})
        );
    }

    #[test]
    fn auths_lookup_and_store() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"},"http://localhost:5000/v2/":{"username":"a","password":"b"},"tok.example":{"identitytoken":"idt"}}}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&path).unwrap();
        assert_eq!(
            c.credentials_for("docker.io").unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        assert_eq!(
            c.credentials_for("localhost:5000").unwrap(),
            Some(Credentials::basic("a", "b"))
        );
        assert_eq!(
            c.credentials_for("tok.example").unwrap(),
            Some(Credentials::IdentityToken(Secret::new("idt")))
        );
        assert_eq!(c.credentials_for("other:1").unwrap(), None);
        c.store("reg.example:443", &Credentials::basic("x", "y:z"))
            .unwrap();
        let c2 = DockerConfig::load(&path).unwrap();
        assert_eq!(
            c2.credentials_for("reg.example:443").unwrap(),
            Some(Credentials::basic("x", "y:z"))
        );
        assert_eq!(
            c2.credentials_for("docker.io").unwrap(),
            Some(Credentials::basic("u", "p"))
        );
        assert!(configured_registries(&c2).contains(&"reg.example:443".to_owned()));
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn missing_file_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let c = DockerConfig::load(&dir.path().join("none.json")).unwrap();
        assert_eq!(c.credentials_for("docker.io").unwrap(), None);
        let p = dir.path().join("bad.json");
        std::fs::write(&p, "[1]").unwrap();
        assert!(
            DockerConfig::load(&p)
                .unwrap_err()
                .to_string()
                .contains("not a JSON object")
        );
    }

    #[test]
    fn credential_helper_protocol() {
        // A real helper program on PATH speaking the protocol.
        let dir = tempfile::tempdir().unwrap();
        let helper = dir.path().join("docker-credential-kilntest");
        let store = dir.path().join("stored");
        std::fs::write(
            &helper,
            format!(
                "#!/bin/sh\ncase \"$1\" in\n get) read s; if [ \"$s\" = reg.test ]; then echo '{{\"ServerURL\":\"reg.test\",\"Username\":\"hu\",\"Secret\":\"hs\"}}'; else echo 'credentials not found in native keychain'; exit 1; fi;;\n store) cat > {};;\nesac\n",
                store.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cfg = dir.path().join("config.json");
        std::fs::write(
            &cfg,
            r#"{"credHelpers":{"reg.test":"kilntest","reg2.test":"kilntest"}}"#,
        )
        .unwrap();
        let mut c = DockerConfig::load(&cfg).unwrap();
        c.set_helper_dir(dir.path());
        assert_eq!(
            c.credentials_for("reg.test").unwrap(),
            Some(Credentials::basic("hu", "hs"))
        );
        assert_eq!(c.credentials_for("reg2.test").unwrap(), None);
        c.store("reg2.test", &Credentials::basic("su", "ss"))
            .unwrap();
        let stored: Value = serde_json::from_slice(&std::fs::read(&store).unwrap()).unwrap();
        assert_eq!(stored["Secret"], "ss");
        assert_eq!(stored["ServerURL"], "reg2.test");
        // credsStore: the same helper for every registry without its own.
        std::fs::write(&cfg, r#"{"credsStore":"kilntest"}"#).unwrap();
        let mut c = DockerConfig::load(&cfg).unwrap();
        c.set_helper_dir(dir.path());
        assert_eq!(
            c.credentials_for("reg.test").unwrap(),
            Some(Credentials::basic("hu", "hs"))
        );
        assert_eq!(c.credentials_for("other.test").unwrap(), None);
        // A helper that is not installed is a clear error naming it.
        std::fs::write(&cfg, r#"{"credsStore":"absent-helper"}"#).unwrap();
        let c = DockerConfig::load(&cfg).unwrap();
        let e = c.credentials_for("reg.test").unwrap_err().to_string();
        assert!(e.contains("docker-credential-absent-helper"), "{e}");
    }
}
