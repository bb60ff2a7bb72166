//! `kiln build`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use kiln_build_engine::{
    BuildOptions, BuildRequest, Builder, DockerfileSource, NetworkMode, Progress, Root,
};

use crate::progress::{ProgressMode, render};

/// `kiln build` arguments (docker build's names).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln build -t app:1 .
  kiln build -t app:dev --target test --build-arg VERSION=2 -f docker/Dockerfile .
  tar -c . | kiln build -t app -
  kiln build --secret id=npm,src=$HOME/.npmrc -o type=oci,dest=app.tar .")]
pub struct BuildArgs {
    /// Name and optionally a tag (`name:tag`); may be repeated.
    #[arg(short = 't', long = "tag")]
    tags: Vec<String>,
    /// The Dockerfile (default `CONTEXT/Dockerfile`); `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    file: Option<String>,
    /// A build argument `KEY=VALUE` (or `KEY`, taken from the environment).
    #[arg(long = "build-arg")]
    build_args: Vec<String>,
    /// The stage to build.
    #[arg(long)]
    target: Option<String>,
    /// Do not use the cache.
    #[arg(long)]
    no_cache: bool,
    /// Do not use the cache for these stages (repeatable).
    #[arg(long = "no-cache-filter")]
    no_cache_filter: Vec<String>,
    /// Always pull base images, even when the store has them.
    #[arg(long)]
    pull: bool,
    /// Target platform (only the host's is supported).
    #[arg(long)]
    platform: Option<String>,
    /// A label `KEY=VALUE` for the image.
    #[arg(long = "label")]
    labels: Vec<String>,
    /// A secret `id=ID,src=PATH` (or `id=ID,env=VAR`) for `RUN --mount=type=secret`.
    #[arg(long = "secret")]
    secrets: Vec<String>,
    /// Network for RUN steps: `host` (default) or `none`.
    #[arg(long, default_value = "host")]
    network: String,
    /// Also export the result: `DIR`, `type=local,dest=DIR`, `type=oci,dest=FILE.tar`,
    /// `type=docker,dest=FILE.tar` (the image always goes to the store).
    #[arg(short = 'o', long = "output")]
    output: Vec<String>,
    /// Push every `-t` name to its registry after a successful build
    /// (same as `-o type=registry`).
    #[arg(long)]
    push: bool,
    /// Import cache from a registry: `REF` or `type=registry,ref=REF`.
    #[arg(long = "cache-from")]
    cache_from: Vec<String>,
    /// Export this build's cache to a registry: `REF` or `type=registry,ref=REF`.
    #[arg(long = "cache-to")]
    cache_to: Vec<String>,
    /// Write the image id (manifest digest) to this file.
    #[arg(long)]
    iidfile: Option<PathBuf>,
    /// Print only the image id.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Progress output.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// For every step that misses the cache, say which input changed.
    #[arg(long)]
    explain_cache: bool,
    /// The context directory, or `-` for a tar on standard input.
    context: String,
}

fn kv(s: &str, what: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => bail!("{what} {s:?}: expected KEY=VALUE"),
    }
}

/// Where a `--secret`'s value comes from.
#[derive(Debug, PartialEq, Eq)]
enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// BuildKit's `--secret` forms: `id=ID,src=PATH` (or `source=`,
/// `type=file`), `id=ID,env=VAR` (`type=env`), and `id=ID` alone, which
/// takes the environment variable named ID when it is set, else the file
/// named ID.
fn parse_secret(spec: &str) -> anyhow::Result<(String, SecretSource)> {
    let (mut id, mut src, mut env, mut kind) = (None, None, None, None);
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("id", v)) if !v.is_empty() => id = Some(v.to_string()),
            Some(("src" | "source", v)) if !v.is_empty() => src = Some(PathBuf::from(v)),
            Some(("env", v)) if !v.is_empty() => env = Some(v.to_string()),
            Some(("type", t @ ("file" | "env"))) => kind = Some(t),
            _ => bail!(
                "--secret {spec:?}: expected id=ID,src=PATH or id=ID,env=VARIABLE (unknown part {part:?})"
            ),
        }
    }
    let Some(id) = id else {
        bail!("--secret {spec:?}: id= is required");
    };
    let source = match (src, env, kind) {
        (Some(_), Some(_), _) => bail!("--secret {spec:?}: give src= or env=, not both"),
        (Some(_), None, Some("env")) | (None, Some(_), Some("file")) => {
            bail!("--secret {spec:?}: type= does not match the src=/env= given")
        }
        (Some(p), None, _) => SecretSource::File(p),
        (None, Some(v), _) => SecretSource::Env(v),
        (None, None, Some("env")) => SecretSource::Env(id.clone()),
        (None, None, Some("file")) => SecretSource::File(PathBuf::from(&id)),
        (None, None, _) => {
            if std::env::var_os(&id).is_some() {
                SecretSource::Env(id.clone())
            } else {
                SecretSource::File(PathBuf::from(&id))
            }
        }
    };
    Ok((id, source))
}

/// A private (0600) file holding `value`, on /dev/shm when it exists so the
/// secret never reaches a disk.
fn secret_file(value: &[u8]) -> anyhow::Result<tempfile::NamedTempFile> {
    let dir = std::path::Path::new("/dev/shm");
    let mut b = tempfile::Builder::new();
    b.prefix("kiln-secret-");
    let mut file = if dir.is_dir() {
        b.tempfile_in(dir)
    } else {
        b.tempfile()
    }
    .context("create a private file for a secret")?;
    std::io::Write::write_all(&mut file, value).context("write a secret")?;
    Ok(file)
}

/// `REF` or BuildKit's `type=registry,ref=REF[,mode=max]`.
fn cache_ref(spec: &str) -> anyhow::Result<String> {
    if !spec.contains('=') {
        return Ok(spec.to_string());
    }
    let mut reference = None;
    for part in spec.split(',') {
        match part.split_once('=') {
            Some(("type", "registry")) | Some(("mode", "max" | "min")) => {}
            Some(("ref", r)) => reference = Some(r.to_string()),
            _ => bail!("cache {spec:?}: only type=registry,ref=REF is supported (got {part:?})"),
        }
    }
    reference.ok_or_else(|| anyhow::anyhow!("cache {spec:?}: ref= is required"))
}

/// Runs `kiln build`.
pub fn run(args: BuildArgs) -> anyhow::Result<ExitCode> {
    let mut options = BuildOptions::default();
    for a in &args.build_args {
        match a.split_once('=') {
            Some((k, v)) => {
                options.build_args.insert(k.to_string(), v.to_string());
            }
            None => {
                if let Ok(v) = std::env::var(a) {
                    options.build_args.insert(a.clone(), v);
                }
            }
        }
    }
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = kv(l, "--label")?;
        labels.insert(k, v);
    }
    options.labels = labels;
    // Secrets given by value (env=) are written to private files on a
    // tmpfs for the length of the build, so RUN can bind them like file
    // secrets; the files vanish when `_secret_files` drops.
    let mut _secret_files = Vec::new();
    for spec in &args.secrets {
        let (id, secret) = parse_secret(spec)?;
        let path = match secret {
            SecretSource::File(p) => p,
            SecretSource::Env(var) => {
                let value = std::env::var_os(&var).ok_or_else(|| {
                    anyhow::anyhow!("--secret {spec:?}: environment variable {var} is not set")
                })?;
                let file = secret_file(std::os::unix::ffi::OsStrExt::as_bytes(value.as_os_str()))
                    .with_context(|| {
                    format!("--secret {spec:?}: keep the value for the build")
                })?;
                let p = file.path().to_path_buf();
                _secret_files.push(file);
                p
            }
        };
        options.secrets.insert(id, path);
    }
    options.target = args.target.clone();
    options.no_cache = args.no_cache;
    options.no_cache_filter = args.no_cache_filter.clone();
    options.pull = args.pull;
    for c in &args.cache_from {
        options.cache_from.push(cache_ref(c)?);
    }
    for c in &args.cache_to {
        options.cache_to.push(cache_ref(c)?);
    }
    let mut push = args.push;
    for o in &args.output {
        if crate::registry::is_registry_output(o) {
            push = true;
            continue;
        }
        options
            .outputs
            .push(kiln_build_engine::Output::parse(o).map_err(anyhow::Error::msg)?);
    }
    options.platform = args.platform.clone();
    options.network = match args.network.as_str() {
        "host" | "default" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => bail!("--network {other:?}: kiln supports host and none"),
    };
    if let Ok(v) = std::env::var("SOURCE_DATE_EPOCH") {
        options.source_date_epoch = Some(
            v.parse()
                .with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number"))?,
        );
    }

    // Context: a directory, or a tar on stdin.
    let mut _ctx_tmp = None;
    let context = if args.context == "-" {
        let tmp = tempfile::tempdir().context("create a directory for the stdin context")?;
        kiln_build_engine::unpack_context_tar(std::io::stdin().lock(), tmp.path())?;
        let p = tmp.path().to_path_buf();
        _ctx_tmp = Some(tmp);
        p
    } else {
        PathBuf::from(&args.context)
    };
    if !context.is_dir() {
        bail!("context {:?} is not a directory", args.context);
    }
    let dockerfile = match args.file.as_deref() {
        Some("-") => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read Dockerfile from stdin")?;
            DockerfileSource::Text(text)
        }
        Some(p) => DockerfileSource::Path(Some(PathBuf::from(p))),
        None => DockerfileSource::Path(None),
    };
    let mut request = BuildRequest::new(context);
    request.dockerfile = dockerfile;
    request.tags = args.tags.clone();
    request.options = options;

    let root = Root::open_configured()?;
    let push_root = root.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        args.progress
    };
    let explain = args.explain_cache;
    let result = rt.block_on(async move {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let renderer = tokio::spawn(render(rx, mode, explain));
        let builder = Builder::new(root).with_progress(Progress::new(tx));
        let result = builder.build(request).await;
        drop(builder);
        let _ = renderer.await;
        result
    })?;
    if push {
        crate::registry::push_after_build(&push_root, &args.tags, args.quiet)?;
    }
    if let Some(f) = &args.iidfile {
        std::fs::write(f, &result.manifest_digest)
            .with_context(|| format!("write {}", f.display()))?;
    }
    if args.quiet {
        println!("{}", result.manifest_digest);
    } else {
        eprintln!(
            "built {} ({} of {} steps cached)",
            result.manifest_digest, result.cached, result.steps
        );
        for t in &result.tags {
            eprintln!("tagged {t}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_buildkit_spellings() {
        let p = |s: &str| parse_secret(s).map_err(|e| e.to_string());
        assert_eq!(
            p("id=a,src=/x").ok(),
            Some(("a".into(), SecretSource::File("/x".into())))
        );
        assert_eq!(
            p("type=file,id=a,source=/x").ok(),
            Some(("a".into(), SecretSource::File("/x".into())))
        );
        assert_eq!(
            p("id=tok,env=GH_TOKEN").ok(),
            Some(("tok".into(), SecretSource::Env("GH_TOKEN".into())))
        );
        assert_eq!(
            p("type=env,id=GH_TOKEN").ok(),
            Some(("GH_TOKEN".into(), SecretSource::Env("GH_TOKEN".into())))
        );
        assert_eq!(
            p("id=kiln-no-such-variable-xyz").ok(),
            Some((
                "kiln-no-such-variable-xyz".into(),
                SecretSource::File("kiln-no-such-variable-xyz".into())
            ))
        );
        for bad in [
            "src=/x",
            "id=a,src=/x,env=V",
            "id=a,bogus=1",
            "type=env,id=a,src=/x",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_refs_in_both_spellings() {
        assert_eq!(
            cache_ref("localhost:5000/c:t").ok(),
            Some("localhost:5000/c:t".into())
        );
        assert_eq!(
            cache_ref("type=registry,ref=localhost:5000/c:t,mode=max").ok(),
            Some("localhost:5000/c:t".into())
        );
        assert!(cache_ref("type=local,dest=/x").is_err());
        assert!(cache_ref("type=registry").is_err());
    }
}
