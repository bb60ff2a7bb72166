//! `docker run`: a container from an image in the store, and importing a
//! root file system as an image.

use std::path::Path;

use kiln_image_layers::{ChangeSet, WriteOptions};
use kiln_runtime_linux::oci_spec::runtime::Spec;
use kiln_runtime_linux::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, RootBuilder,
};
use kiln_runtime_linux::{docker_default_spec, set_network};

use crate::builder::{HOST_ARCH, HOST_OS, timestamp};
use crate::cache::LayerRecord;
use crate::config::{ConfigChange, ImageConfig};
use crate::containers::{self, RunConfig, VolumeRecord};
use crate::error::{Error, Result};
use crate::exec::{ExecMount, NetworkMode, oci_mounts};
use crate::image::ImageRef;
use crate::root::Root;

/// What to run and how (`kiln run` flags).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct RunRequest {
    /// The image (tag or digest).
    pub image: String,
    /// Command after the image; replaces the image's `Cmd`.
    pub cmd: Vec<String>,
    /// `--entrypoint`: replaces the image's `Entrypoint` (and drops its
    /// `Cmd`, as Docker does); `Some("")` clears it.
    pub entrypoint: Option<String>,
    /// `-e K=V` (or `-e K`, taken from the caller's environment).
    pub env: Vec<String>,
    /// `-u`.
    pub user: Option<String>,
    /// `-w`.
    pub workdir: Option<String>,
    /// `-v SRC:DST[:ro]`.
    pub volumes: Vec<ExecMount>,
    /// `--read-only`.
    pub read_only: bool,
    /// `--memory` in bytes.
    pub memory: Option<i64>,
    /// `--cpus`.
    pub cpus: Option<f64>,
    /// `--pids-limit`.
    pub pids_limit: Option<i64>,
    /// `--network`.
    pub network: NetworkMode,
    /// `-t`: a pseudo-terminal.
    pub tty: bool,
    /// `-i`: pass standard input.
    pub interactive: bool,
    /// `--rm`: remove the container when its process ends; otherwise it is
    /// kept under `<root>/containers/<id>` (`kiln ps -a`, `start`, `commit`).
    pub remove: bool,
    /// `--name`.
    pub name: Option<String>,
    /// Forwards signals (and terminal sizes) to the container's process
    /// while [`run_image`] runs.
    pub control: Option<kiln_runtime_linux::Control>,
}

/// Docker's rule for the process arguments: `--entrypoint` replaces the
/// image's entrypoint and discards its CMD; a command replaces CMD; the
/// result is entrypoint + cmd.
pub(crate) fn process_args(config: &ImageConfig, req: &RunRequest) -> Vec<String> {
    let (entrypoint, cmd) = entrypoint_and_cmd(config, req);
    entrypoint.into_iter().chain(cmd).collect()
}

/// The two halves of [`process_args`].
fn entrypoint_and_cmd(config: &ImageConfig, req: &RunRequest) -> (Vec<String>, Vec<String>) {
    let (entrypoint, image_cmd) = match &req.entrypoint {
        Some(e) if e.is_empty() => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.clone()], Vec::new()),
        None => (config.entrypoint(), config.cmd()),
    };
    let cmd = if req.cmd.is_empty() {
        image_cmd
    } else {
        req.cmd.clone()
    };
    (entrypoint, cmd)
}

/// The options a container keeps (and is started again with): Docker's
/// ENTRYPOINT/CMD rules, the image's environment merged with `-e`, user
/// and working directory defaults from the image.
pub(crate) fn run_config(config: &ImageConfig, req: &RunRequest) -> Result<RunConfig> {
    let args = process_args(config, req);
    if args.is_empty() {
        return Err(Error::Image {
            reference: req.image.clone(),
            message: "no command specified (the image has neither ENTRYPOINT nor CMD)".into(),
            source: None,
        });
    }
    let mut env: Vec<(String, String)> = config.env();
    for e in &req.env {
        let (k, v) = match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => match std::env::var(e) {
                Ok(v) => (e.clone(), v),
                Err(_) => continue,
            },
        };
        match env.iter_mut().find(|(ek, _)| *ek == k) {
            Some(slot) => slot.1 = v,
            None => env.push((k, v)),
        }
    }
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), kiln_runtime_linux::DEFAULT_PATH.into()));
    }
    let mut volumes = Vec::new();
    for v in &req.volumes {
        match v {
            ExecMount::Bind {
                source,
                target,
                read_only,
            } => volumes.push(VolumeRecord {
                source: source.clone(),
                target: target.clone(),
                read_only: *read_only,
            }),
            ExecMount::Tmpfs { target, .. } => {
                return Err(Error::Unsupported {
                    line: 0,
                    feature: format!("a tmpfs mount ({target}) on `kiln run`"),
                });
            }
        }
    }
    let (entrypoint, cmd) = entrypoint_and_cmd(config, req);
    let labels = config
        .as_json()
        .get("config")
        .and_then(|c| c.get("Labels"))
        .and_then(|l| l.as_object())
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    Ok(RunConfig {
        args,
        entrypoint,
        cmd,
        labels,
        env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
        user: req.user.clone().unwrap_or_else(|| config.user()),
        workdir: req.workdir.clone().unwrap_or_else(|| config.working_dir()),
        volumes,
        host_network: req.network == NetworkMode::Host,
        tty: req.tty,
        interactive: req.interactive,
        read_only: req.read_only,
        memory: req.memory,
        cpus: req.cpus,
        pids_limit: req.pids_limit,
        auto_remove: req.remove,
    })
}

/// The runtime spec of a container (or of a process exec'd into it).
pub(crate) fn container_spec(cfg: &RunConfig, hostname: &str) -> Result<Spec> {
    let mut spec = docker_default_spec(cfg.args.clone());
    set_network(
        &mut spec,
        if cfg.host_network {
            kiln_runtime_linux::Network::Host
        } else {
            kiln_runtime_linux::Network::None
        },
    );
    if !cfg.host_network {
        spec.set_hostname(Some(hostname.to_string()));
    }
    let root_spec = RootBuilder::default()
        .path("rootfs")
        .readonly(cfg.read_only)
        .build()
        .map_err(|e| Error::step("runtime spec root", e))?;
    spec.set_root(Some(root_spec));
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_env(Some(cfg.env.clone()));
        p.set_cwd(if cfg.workdir.is_empty() {
            "/".into()
        } else {
            cfg.workdir.clone().into()
        });
        p.set_terminal(Some(cfg.tty));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(oci_mounts(&cfg.mounts())?);
    spec.set_mounts(Some(mounts));
    if cfg.memory.is_some() || cfg.cpus.is_some() || cfg.pids_limit.is_some() {
        let mut res = LinuxResourcesBuilder::default();
        if let Some(m) = cfg.memory {
            res = res.memory(
                LinuxMemoryBuilder::default()
                    .limit(m)
                    .build()
                    .map_err(|e| Error::step("memory limit", e))?,
            );
        }
        if let Some(c) = cfg.cpus {
            let period: u64 = 100_000;
            res = res.cpu(
                LinuxCpuBuilder::default()
                    .period(period)
                    .quota((c * period as f64) as i64)
                    .build()
                    .map_err(|e| Error::step("cpu limit", e))?,
            );
        }
        if let Some(p) = cfg.pids_limit {
            res = res.pids(
                LinuxPidsBuilder::default()
                    .limit(p)
                    .build()
                    .map_err(|e| Error::step("pids limit", e))?,
            );
        }
        let res = res.build().map_err(|e| Error::step("resources", e))?;
        if let Some(linux) = spec.linux_mut().as_mut() {
            linux.set_resources(Some(res));
        }
    }
    Ok(spec)
}

/// Runs a container from `req.image` with the caller's standard streams and
/// returns its exit code (125 is never produced here; errors are errors).
///
/// The container is kept under `<root>/containers/<id>/` (see
/// [`crate::containers`]) unless `req.remove`; its output also goes to its
/// log.
pub fn run_image(root: &Root, req: &RunRequest) -> Result<i32> {
    let record = containers::create(root, req)?;
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let stdin: Option<Box<dyn std::io::Read + Send>> = if req.interactive {
        Some(Box::new(std::io::stdin()))
    } else {
        None
    };
    let control = req.control.clone().unwrap_or_default();
    let result =
        containers::run_attached_with(root, &record.id, &mut out, &mut err, stdin, control);
    if req.remove {
        containers::remove_files(root, &record);
    }
    result
}

/// Imports a root file-system directory as a single-layer image tagged
/// `tag`, with `cmd` as its CMD (how the quickstart makes a busybox base
/// without any registry). Returns the manifest digest.
pub fn import_rootfs(root: &Root, dir: &Path, tag: &str, cmd: Vec<String>) -> Result<String> {
    let changes = ChangeSet::added_tree(dir)
        .map_err(|e| Error::step(format!("scan {}", dir.display()), e))?;
    let layer = root
        .store()
        .put_layer(&changes, &WriteOptions::default())
        .map_err(|e| Error::step(format!("write layer from {}", dir.display()), e))?;
    let mut config = ImageConfig::scratch(HOST_OS, HOST_ARCH);
    config.apply(ConfigChange::Env(vec![(
        "PATH".into(),
        kiln_runtime_linux::DEFAULT_PATH.into(),
    )]));
    if !cmd.is_empty() {
        config.apply(ConfigChange::Cmd(cmd));
    }
    config.push_diff_id(&layer.diff_id.to_string());
    let created = timestamp(None);
    config.push_history(&created, &format!("kiln import {}", dir.display()), false);
    config.set_created(&created);
    let layers = vec![crate::builder::LayerRef {
        record: LayerRecord {
            digest: layer.descriptor.digest().to_string(),
            diff_id: layer.diff_id.to_string(),
            size: layer.descriptor.size(),
            media_type: layer.descriptor.media_type().to_string(),
        },
    }];
    let (manifest, _) = crate::image::write_image(root.store(), &config, &layers)?;
    let name = ImageRef::parse(tag)
        .map_err(|m| Error::Image {
            reference: tag.to_string(),
            message: m,
            source: None,
        })?
        .to_string();
    root.store()
        .tag(&name, &manifest)
        .map_err(|e| Error::step(format!("tag {name}"), e))?;
    Ok(manifest.digest().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ep: &[&str], cmd: &[&str]) -> ImageConfig {
        let mut c = ImageConfig::scratch("linux", "amd64");
        if !cmd.is_empty() {
            c.apply(ConfigChange::Cmd(
                cmd.iter().map(|s| s.to_string()).collect(),
            ));
        }
        if !ep.is_empty() {
            c.apply(ConfigChange::Entrypoint(
                ep.iter().map(|s| s.to_string()).collect(),
            ));
        }
        c
    }

    #[test]
    fn docker_entrypoint_cmd_rules() {
        let c = cfg(&["/ep"], &["a"]);
        let mut r = RunRequest::default();
        assert_eq!(process_args(&c, &r), ["/ep", "a"]);
        r.cmd = vec!["b".into()];
        assert_eq!(process_args(&c, &r), ["/ep", "b"]);
        r.cmd.clear();
        r.entrypoint = Some("/other".into());
        assert_eq!(process_args(&c, &r), ["/other"]);
        r.entrypoint = Some(String::new());
        r.cmd = vec!["sh".into()];
        assert_eq!(process_args(&c, &r), ["sh"]);
    }
}
