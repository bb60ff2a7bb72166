//! The image-config state machine: every Dockerfile instruction applied to
//! an OCI image configuration as Docker does it.
//!
//! The config is kept as raw JSON (`serde_json::Value`) rather than
//! `oci_spec::image::ImageConfiguration`, because oci-spec drops fields it
//! does not know, and Docker's extension fields (`Healthcheck`, `OnBuild`,
//! `Shell`, `ArgsEscaped`) must survive into the image a stage is based on.

use serde_json::{Map, Value, json};

/// One change to the runtime part (`config`) of an image configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigChange {
    /// `ENV k=v ...`: replaces a variable of the same name, else appends.
    Env(Vec<(String, String)>),
    /// `CMD`: the command, already in exec form.
    Cmd(Vec<String>),
    /// `ENTRYPOINT`, exec form; resets an inherited `CMD`.
    Entrypoint(Vec<String>),
    /// `WORKDIR`, absolute after resolution.
    WorkingDir(String),
    /// `USER`.
    User(String),
    /// `EXPOSE`, each `port[/proto]` (ranges expanded by the caller).
    Expose(Vec<String>),
    /// `VOLUME`.
    Volume(Vec<String>),
    /// `LABEL k=v ...`.
    Label(Vec<(String, String)>),
    /// `STOPSIGNAL`.
    StopSignal(String),
    /// `HEALTHCHECK`: Docker's `Healthcheck` object (Test, Interval, ...).
    Healthcheck(Value),
    /// `SHELL`.
    Shell(Vec<String>),
    /// `ONBUILD` with the trigger's text.
    OnBuild(String),
}

/// An image configuration being built.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageConfig {
    root: Map<String, Value>,
    /// Whether `CMD` was set in this stage (an inherited one is reset by
    /// `ENTRYPOINT`, per the Dockerfile reference).
    cmd_set_here: bool,
}

impl ImageConfig {
    /// The config of `FROM scratch`.
    pub fn scratch(os: &str, architecture: &str) -> Self {
        let root = json!({
            "architecture": architecture,
            "os": os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        });
        let Value::Object(root) = root else {
            unreachable_object()
        };
        ImageConfig {
            root,
            cmd_set_here: false,
        }
    }

    /// Starts from a base image's config JSON. `OnBuild` triggers are taken
    /// out (they are returned separately so the caller runs them; Docker does
    /// not inherit them into the new image).
    pub fn from_base(bytes: &[u8]) -> Result<(Self, Vec<String>), serde_json::Error> {
        let mut root: Map<String, Value> = serde_json::from_slice(bytes)?;
        let mut triggers = Vec::new();
        let cfg = root.entry("config").or_insert_with(|| json!({}));
        if !cfg.is_object() {
            *cfg = json!({});
        }
        if let Some(obj) = cfg.as_object_mut()
            && let Some(Value::Array(list)) = obj.remove("OnBuild")
        {
            triggers = list
                .into_iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
        }
        root.entry("rootfs")
            .or_insert_with(|| json!({"type": "layers", "diff_ids": []}));
        root.entry("history").or_insert_with(|| json!([]));
        // Base image metadata that describes the base, not us.
        root.remove("created");
        root.remove("author");
        Ok((
            ImageConfig {
                root,
                cmd_set_here: false,
            },
            triggers,
        ))
    }

    fn config_mut(&mut self) -> &mut Map<String, Value> {
        let v = self.root.entry("config").or_insert_with(|| json!({}));
        if !v.is_object() {
            *v = json!({});
        }
        match v {
            Value::Object(m) => m,
            _ => unreachable_object(),
        }
    }

    fn config(&self) -> Option<&Map<String, Value>> {
        self.root.get("config").and_then(Value::as_object)
    }

    /// Applies one instruction's change.
    pub fn apply(&mut self, change: ConfigChange) {
        match change {
            ConfigChange::Env(pairs) => {
                let cfg = self.config_mut();
                let mut env: Vec<String> = strings(cfg.get("Env"));
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter_mut()
                        .find(|e| e.split('=').next() == Some(k.as_str()))
                    {
                        Some(slot) => *slot = entry,
                        None => env.push(entry),
                    }
                }
                cfg.insert("Env".into(), json!(env));
            }
            ConfigChange::Cmd(cmd) => {
                self.cmd_set_here = true;
                self.config_mut().insert("Cmd".into(), json!(cmd));
            }
            ConfigChange::Entrypoint(ep) => {
                let reset_cmd = !self.cmd_set_here;
                let cfg = self.config_mut();
                cfg.insert("Entrypoint".into(), json!(ep));
                if reset_cmd {
                    cfg.remove("Cmd");
                }
            }
            ConfigChange::WorkingDir(d) => {
                self.config_mut().insert("WorkingDir".into(), json!(d));
            }
            ConfigChange::User(u) => {
                self.config_mut().insert("User".into(), json!(u));
            }
            ConfigChange::Expose(ports) => {
                let cfg = self.config_mut();
                let map = object_entry(cfg, "ExposedPorts");
                for p in ports {
                    map.insert(p, json!({}));
                }
            }
            ConfigChange::Volume(vols) => {
                let cfg = self.config_mut();
                let map = object_entry(cfg, "Volumes");
                for v in vols {
                    map.insert(v, json!({}));
                }
            }
            ConfigChange::Label(pairs) => {
                let cfg = self.config_mut();
                let map = object_entry(cfg, "Labels");
                for (k, v) in pairs {
                    map.insert(k, json!(v));
                }
            }
            ConfigChange::StopSignal(s) => {
                self.config_mut().insert("StopSignal".into(), json!(s));
            }
            ConfigChange::Healthcheck(h) => {
                self.config_mut().insert("Healthcheck".into(), h);
            }
            ConfigChange::Shell(s) => {
                self.config_mut().insert("Shell".into(), json!(s));
            }
            ConfigChange::OnBuild(t) => {
                let cfg = self.config_mut();
                let mut list = strings(cfg.get("OnBuild"));
                list.push(t);
                cfg.insert("OnBuild".into(), json!(list));
            }
        }
    }

    /// The `Env` list as pairs.
    pub fn env(&self) -> Vec<(String, String)> {
        strings(self.config().and_then(|c| c.get("Env")))
            .into_iter()
            .map(|e| match e.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (e, String::new()),
            })
            .collect()
    }

    /// Looks up one environment variable.
    pub fn env_var(&self, key: &str) -> Option<String> {
        self.env()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// `WorkingDir`, `/` when unset.
    pub fn working_dir(&self) -> String {
        self.config()
            .and_then(|c| c.get("WorkingDir"))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    /// `User`, empty when unset.
    pub fn user(&self) -> String {
        self.config()
            .and_then(|c| c.get("User"))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    }

    /// The shell for shell-form instructions: `Shell`, else `/bin/sh -c`.
    pub fn shell(&self) -> Vec<String> {
        let s = strings(self.config().and_then(|c| c.get("Shell")));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    /// `Entrypoint`.
    pub fn entrypoint(&self) -> Vec<String> {
        strings(self.config().and_then(|c| c.get("Entrypoint")))
    }

    /// `Cmd`.
    pub fn cmd(&self) -> Vec<String> {
        strings(self.config().and_then(|c| c.get("Cmd")))
    }

    /// `os` and `architecture`.
    pub fn platform(&self) -> (String, String) {
        let get = |k: &str| {
            self.root
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        (get("os"), get("architecture"))
    }

    /// The rootfs diffIDs.
    pub fn diff_ids(&self) -> Vec<String> {
        strings(self.root.get("rootfs").and_then(|r| r.get("diff_ids")))
    }

    /// Appends a layer's diffID.
    pub fn push_diff_id(&mut self, diff_id: &str) {
        let rootfs = object_entry(&mut self.root, "rootfs");
        rootfs.insert("type".into(), json!("layers"));
        let ids = rootfs.entry("diff_ids").or_insert_with(|| json!([]));
        if let Value::Array(a) = ids {
            a.push(json!(diff_id));
        } else {
            *ids = json!([diff_id]);
        }
    }

    /// Appends a history entry (`empty_layer` when the step made no layer).
    pub fn push_history(&mut self, created: &str, created_by: &str, empty_layer: bool) {
        let mut h = Map::new();
        h.insert("created".into(), json!(created));
        h.insert("created_by".into(), json!(created_by));
        h.insert("comment".into(), json!("kiln"));
        if empty_layer {
            h.insert("empty_layer".into(), json!(true));
        }
        let hist = self.root.entry("history").or_insert_with(|| json!([]));
        if let Value::Array(a) = hist {
            a.push(Value::Object(h));
        } else {
            *hist = json!([h]);
        }
    }

    /// Sets the comment of the last history entry (`docker commit -m`).
    pub fn set_history_comment(&mut self, comment: &str) {
        if let Some(Value::Array(a)) = self.root.get_mut("history")
            && let Some(Value::Object(last)) = a.last_mut()
        {
            if comment.is_empty() {
                last.remove("comment");
            } else {
                last.insert("comment".into(), json!(comment));
            }
        }
    }

    /// Sets the image's `author` (`docker commit -a`, `MAINTAINER`).
    pub fn set_author(&mut self, author: &str) {
        self.root.insert("author".into(), json!(author));
    }

    /// Sets the image's `created` time (RFC 3339).
    pub fn set_created(&mut self, created: &str) {
        self.root.insert("created".into(), json!(created));
    }

    /// The whole document.
    pub fn as_json(&self) -> &Map<String, Value> {
        &self.root
    }

    /// Serialises the config (compact, as registries store it).
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(&self.root).unwrap_or_default()
    }
}

fn unreachable_object() -> ! {
    // `json!({...})` always builds an object; this is a programming error.
    panic!("json object literal was not an object")
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(String::from))
            .collect(),
        _ => Vec::new(),
    }
}

fn object_entry<'a>(m: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = m.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    match v {
        Value::Object(o) => o,
        _ => unreachable_object(),
    }
}

/// Resolves a WORKDIR argument against the current working directory, as
/// Docker does (relative paths join, the result is cleaned and absolute).
pub fn resolve_workdir(current: &str, arg: &str) -> String {
    let joined = if arg.starts_with('/') {
        arg.to_string()
    } else {
        format!("{}/{}", current.trim_end_matches('/'), arg)
    };
    crate::dockerignore::clean(&format!("/{}", joined.trim_start_matches('/')))
}

/// Expands `EXPOSE` arguments: `80` -> `80/tcp`, `8000-8002/udp` -> three.
pub fn expand_ports(arg: &str) -> Result<Vec<String>, String> {
    let (ports, proto) = match arg.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (arg, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid protocol {proto:?} in EXPOSE {arg}"));
    }
    let parse = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("invalid port {s:?} in EXPOSE {arg}"))
    };
    match ports.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (parse(a)?, parse(b)?);
            if b < a {
                return Err(format!("invalid port range in EXPOSE {arg}"));
            }
            Ok((a..=b).map(|p| format!("{p}/{proto}")).collect())
        }
        None => Ok(vec![format!("{}/{proto}", parse(ports)?)]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entrypoint_resets_inherited_cmd_only() {
        let base = br#"{"os":"linux","architecture":"amd64","config":{"Cmd":["sh"],"OnBuild":["RUN echo hi"],"Healthcheck":{"Test":["NONE"]}},"rootfs":{"type":"layers","diff_ids":["sha256:aa"]}}"#;
        let (mut c, triggers) = ImageConfig::from_base(base)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(triggers, vec!["RUN echo hi".to_string()]);
        c.apply(ConfigChange::Entrypoint(vec!["/app".into()]));
        assert!(c.cmd().is_empty());
        // Extension fields survive.
        assert_eq!(c.as_json()["config"]["Healthcheck"]["Test"][0], "NONE");
        assert!(c.as_json()["config"].get("OnBuild").is_none());

        let mut c = ImageConfig::scratch("linux", "amd64");
        c.apply(ConfigChange::Cmd(vec!["x".into()]));
        c.apply(ConfigChange::Entrypoint(vec!["/app".into()]));
        assert_eq!(c.cmd(), vec!["x".to_string()]);
    }

    #[test]
    fn env_replaces_in_place() {
        let mut c = ImageConfig::scratch("linux", "amd64");
        c.apply(ConfigChange::Env(vec![
            ("A".into(), "1".into()),
            ("B".into(), "2".into()),
        ]));
        c.apply(ConfigChange::Env(vec![("A".into(), "3".into())]));
        assert_eq!(c.as_json()["config"]["Env"], json!(["A=3", "B=2"]));
        assert_eq!(c.env_var("A").as_deref(), Some("3"));
    }

    #[test]
    fn workdir_and_ports() {
        assert_eq!(resolve_workdir("/app", "src/../lib"), "/app/lib");
        assert_eq!(resolve_workdir("/app", "/x/"), "/x");
        assert_eq!(resolve_workdir("/", "a"), "/a");
        assert_eq!(expand_ports("80"), Ok(vec!["80/tcp".to_string()]));
        assert_eq!(expand_ports("53/UDP"), Ok(vec!["53/udp".to_string()]));
        assert_eq!(expand_ports("1-2").map(|v| v.len()), Ok(2));
        assert!(expand_ports("x").is_err());
    }

    #[test]
    fn history_and_layers() {
        let mut c = ImageConfig::scratch("linux", "amd64");
        c.push_diff_id("sha256:11");
        c.push_history("2024-01-01T00:00:00Z", "COPY x /", false);
        c.push_history("2024-01-01T00:00:00Z", "ENV A=1", true);
        assert_eq!(c.diff_ids(), vec!["sha256:11".to_string()]);
        assert_eq!(c.as_json()["history"][1]["empty_layer"], true);
    }
}
