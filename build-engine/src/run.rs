//! `docker run`: a container from an image in the store, and importing a
//! root file system as an image.

use std::path::{Path, PathBuf};

use kiln_image_layers::{ChangeSet, WriteOptions};
use kiln_runtime_linux::oci_spec::runtime::{
    LinuxCpuBuilder, LinuxMemoryBuilder, LinuxPidsBuilder, LinuxResourcesBuilder, RootBuilder,
};
use kiln_runtime_linux::{Container, RootFs, RunOptions, Stdio, docker_default_spec, set_network};

use crate::builder::{HOST_ARCH, HOST_OS, timestamp};
use crate::cache::LayerRecord;
use crate::config::{ConfigChange, ImageConfig};
use crate::error::{Error, Result};
use crate::exec::{ExecMount, NetworkMode, oci_mounts};
use crate::image::{ImageRef, resolve_local};
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
    /// `--rm`: remove the container's writable layer afterwards; otherwise
    /// it is kept under `<root>/containers/<name>`.
    pub remove: bool,
    /// `--name`.
    pub name: Option<String>,
}

/// Docker's rule for the process arguments: `--entrypoint` replaces the
/// image's entrypoint and discards its CMD; a command replaces CMD; the
/// result is entrypoint + cmd.
pub(crate) fn process_args(config: &ImageConfig, req: &RunRequest) -> Vec<String> {
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
    entrypoint.into_iter().chain(cmd).collect()
}

/// Runs a container from `req.image` with the caller's standard streams and
/// returns its exit code (125 is never produced here; errors are errors).
pub fn run_image(root: &Root, req: &RunRequest) -> Result<i32> {
    let image = resolve_local(root, &req.image)?;
    let config = image.config()?;
    let args = process_args(&config, req);
    if args.is_empty() {
        return Err(Error::Image {
            reference: req.image.clone(),
            message: "no command specified (the image has neither ENTRYPOINT nor CMD)".into(),
            source: None,
        });
    }
    let mut spec = docker_default_spec(args);
    set_network(
        &mut spec,
        match req.network {
            NetworkMode::Host => kiln_runtime_linux::Network::Host,
            NetworkMode::None => kiln_runtime_linux::Network::None,
        },
    );
    let root_spec = RootBuilder::default()
        .path("rootfs")
        .readonly(req.read_only)
        .build()
        .map_err(|e| Error::step("runtime spec root", e))?;
    spec.set_root(Some(root_spec));
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
    if let Some(p) = spec.process_mut().as_mut() {
        p.set_env(Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()));
        p.set_cwd(
            req.workdir
                .clone()
                .unwrap_or_else(|| config.working_dir())
                .into(),
        );
        p.set_terminal(Some(req.tty));
    }
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.extend(oci_mounts(&req.volumes)?);
    spec.set_mounts(Some(mounts));
    if req.memory.is_some() || req.cpus.is_some() || req.pids_limit.is_some() {
        let mut res = LinuxResourcesBuilder::default();
        if let Some(m) = req.memory {
            res = res.memory(
                LinuxMemoryBuilder::default()
                    .limit(m)
                    .build()
                    .map_err(|e| Error::step("memory limit", e))?,
            );
        }
        if let Some(c) = req.cpus {
            let period: u64 = 100_000;
            res = res.cpu(
                LinuxCpuBuilder::default()
                    .period(period)
                    .quota((c * period as f64) as i64)
                    .build()
                    .map_err(|e| Error::step("cpu limit", e))?,
            );
        }
        if let Some(p) = req.pids_limit {
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

    let layers = image.layer_digests()?;
    let lowers = root.snapshots().ensure(root.store(), &layers)?;
    let containers = root.dir().join("containers");
    std::fs::create_dir_all(&containers)
        .map_err(|e| Error::io("create directory", &containers, e))?;
    let cdir: PathBuf = match &req.name {
        Some(n) => {
            let d = containers.join(n);
            std::fs::create_dir(&d)
                .map_err(|e| Error::io("create container (is the name in use?)", &d, e))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("c-")
            .tempdir_in(&containers)
            .map_err(|e| Error::io("create container in", &containers, e))?
            .keep(),
    };
    let result = run_in(&cdir, spec, lowers, req, &config);
    if req.remove {
        let _ = std::fs::remove_dir_all(&cdir);
    } else {
        let _ = std::fs::remove_dir_all(cdir.join("work"));
    }
    result
}

fn run_in(
    cdir: &Path,
    spec: kiln_runtime_linux::oci_spec::runtime::Spec,
    mut lowers: Vec<PathBuf>,
    req: &RunRequest,
    config: &ImageConfig,
) -> Result<i32> {
    let upper = cdir.join("upper");
    let work = cdir.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(|e| Error::io("create directory", d, e))?;
    }
    if lowers.is_empty() {
        let empty = cdir.join("empty");
        std::fs::create_dir_all(&empty).map_err(|e| Error::io("create directory", &empty, e))?;
        lowers.push(empty);
    }
    let mut opts = RunOptions::new();
    let user = req.user.clone().unwrap_or_else(|| config.user());
    if !user.is_empty() {
        opts.user = Some(user);
    }
    let container = Container::new(
        spec,
        RootFs::Overlay {
            lowers,
            upper,
            work,
        },
        opts,
    );
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    let mut stdio = Stdio::new(&mut out, &mut err);
    if req.interactive {
        stdio = stdio.with_stdin(Box::new(std::io::stdin()));
    }
    let status = container
        .run(stdio)
        .map_err(|e| Error::step(format!("run container from {}", req.image), e))?;
    Ok(status.code())
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
