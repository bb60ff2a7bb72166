//! `kiln run`.

use std::process::ExitCode;

use anyhow::{Context, bail};
use kiln_build_engine::{Control, ExecMount, NetworkMode, Root, RunRequest, containers, run_image};

/// The process options `kiln run` and `kiln exec` share (Docker's names).
#[derive(Debug, clap::Args)]
pub struct ProcessArgs {
    /// Keep standard input open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Set an environment variable `KEY=VALUE` (or `KEY` from the environment).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// User (`name`, `uid`, `name:group`, `uid:gid`).
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Working directory in the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
}

/// `kiln run` arguments (docker run's names).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln run --rm busybox echo hello
  kiln run --rm -it -v \"$PWD\":/src:ro -w /src busybox sh
  kiln run --rm --network host --memory 512m -e MODE=prod app:1
  kiln run -d --name web busybox httpd -f -p 8080")]
pub struct RunArgs {
    /// Run the container in the background and print its id.
    #[arg(short = 'd', long)]
    detach: bool,
    #[command(flatten)]
    container: ContainerArgs,
}

/// `kiln create` arguments (docker create's names).
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln create --name job busybox sh -c 'echo hi'
  kiln start -a job")]
pub struct CreateArgs {
    #[command(flatten)]
    container: ContainerArgs,
}

/// What `kiln run` and `kiln create` share: the container's options.
#[derive(Debug, clap::Args)]
pub struct ContainerArgs {
    /// Remove the container when it exits.
    #[arg(long)]
    rm: bool,
    #[command(flatten)]
    process: ProcessArgs,
    /// Overwrite the image's ENTRYPOINT.
    #[arg(long)]
    entrypoint: Option<String>,
    /// Bind mount `SRC:DST[:ro]`.
    #[arg(short = 'v', long = "volume")]
    volumes: Vec<String>,
    /// Mount the root file system read-only.
    #[arg(long)]
    read_only: bool,
    /// Memory limit (`512m`, `1g`, bytes).
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// CPU limit (`1.5`).
    #[arg(long)]
    cpus: Option<f64>,
    /// Maximum number of processes.
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Network: `none` (default, loopback only) or `host`.
    #[arg(long, default_value = "none")]
    network: String,
    /// Name of the container (its writable layer is kept under this name
    /// without --rm).
    #[arg(long)]
    name: Option<String>,
    /// Pull the image before creating the container: `missing` (when it is
    /// not in the store), `always` or `never`.
    #[arg(long, default_value = "missing", value_parser = ["missing", "always", "never"])]
    pull: String,
    /// The image.
    image: String,
    /// Command and arguments (replace the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

fn parse_bytes(s: &str) -> anyhow::Result<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('b') => (&s[..s.len() - 1], 1),
        Some('k') => (&s[..s.len() - 1], 1 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    let n: i64 = num.parse().with_context(|| format!("invalid size {s:?}"))?;
    Ok(n * mult)
}

/// The engine's request for a container with `args`' options.
fn request(args: &ContainerArgs) -> anyhow::Result<RunRequest> {
    let mut req = RunRequest::default();
    req.image = args.image.clone();
    req.cmd = args.command.clone();
    req.entrypoint = args.entrypoint.clone();
    req.env = args.process.env.clone();
    req.user = args.process.user.clone();
    req.workdir = args.process.workdir.clone();
    req.read_only = args.read_only;
    req.memory = args.memory.as_deref().map(parse_bytes).transpose()?;
    req.cpus = args.cpus;
    req.pids_limit = args.pids_limit;
    req.tty = args.process.tty;
    req.interactive = args.process.interactive;
    req.remove = args.rm;
    req.name = args.name.clone();
    req.network = match args.network.as_str() {
        "host" => NetworkMode::Host,
        "none" => NetworkMode::None,
        other => bail!("--network {other:?}: kiln supports none and host"),
    };
    for v in &args.volumes {
        let parts: Vec<&str> = v.split(':').collect();
        let (src, dst, ro) = match parts.as_slice() {
            [s, d] => (*s, *d, false),
            [s, d, "ro"] => (*s, *d, true),
            [s, d, "rw"] => (*s, *d, false),
            _ => bail!("-v {v:?}: expected SRC:DST[:ro]"),
        };
        let src = std::fs::canonicalize(src).with_context(|| format!("-v {v}: source {src:?}"))?;
        if !dst.starts_with('/') {
            bail!("-v {v}: the destination must be an absolute path");
        }
        req.volumes.push(ExecMount::Bind {
            source: src,
            target: dst.to_string(),
            read_only: ro,
        });
    }
    Ok(req)
}

/// `docker run`'s `--pull`: pulls the image when it is not in the store
/// (`missing`) or every time (`always`), with Docker's lines on stderr.
/// The async runtime is gone when this returns, so no thread of it can
/// receive the signals [`proxy_signals`] blocks afterwards.
fn pull_if_needed(root: &Root, image: &str, policy: &str) -> anyhow::Result<()> {
    let present = kiln_build_engine::resolve_local(root, image).is_ok();
    match policy {
        "never" if !present => {
            bail!("image {image}: not in the local store, and --pull never forbids pulling it")
        }
        "missing" if present => return Ok(()),
        "never" => return Ok(()),
        _ => {}
    }
    if !present {
        eprintln!("Unable to find image '{image}' locally");
    }
    let client = root.registry_client()?;
    let progress: kiln_build_engine::PullProgress =
        std::sync::Arc::new(|ev: kiln_build_engine::PullEvent| match ev {
            kiln_build_engine::PullEvent::Resolved {
                reference,
                repository,
                ..
            } => eprintln!("{reference}: Pulling from {repository}"),
            kiln_build_engine::PullEvent::Layer {
                digest,
                status: kiln_build_engine::LayerStatus::PullComplete,
            } => eprintln!("{}: Pull complete", short_digest(&digest)),
            _ => {}
        });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let result = rt.block_on(kiln_build_engine::pull(
        root,
        image,
        &kiln_build_engine::PullOptions::default(),
        &client,
        &progress,
    ));
    drop(rt);
    let result = result.with_context(|| format!("pull {image}"))?;
    eprintln!("Digest: {}", result.digest);
    eprintln!("Status: Downloaded newer image for {}", result.familiar);
    Ok(())
}

/// The 12 hex digits Docker shows for a layer.
fn short_digest(d: &str) -> &str {
    let hex = d.split_once(':').map_or(d, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// Runs `kiln create`: prints the new container's id.
pub fn create(args: CreateArgs) -> anyhow::Result<ExitCode> {
    let req = request(&args.container)?;
    let root = Root::open_configured()?;
    pull_if_needed(&root, &req.image, &args.container.pull)?;
    let record = containers::create(&root, &req)?;
    println!("{}", record.id);
    Ok(ExitCode::SUCCESS)
}

/// Runs `kiln run`; the container's exit status becomes kiln's.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let mut req = request(&args.container)?;
    let root = Root::open_configured()?;
    pull_if_needed(&root, &req.image, &args.container.pull)?;
    if args.detach {
        // Detached: the output goes only to the container's log; with -i
        // its standard input is a fifo that `kiln attach` writes to.
        let record = containers::create(&root, &req)?;
        containers::start_detached(
            &root,
            &record.id,
            crate::containers::monitor_command(&root, &record.id)?,
        )?;
        println!("{}", record.id);
        return Ok(ExitCode::SUCCESS);
    }
    req.control = Some(proxy_signals(req.tty));
    // With -t on a terminal, the container's pty does the line editing and
    // echo: put the user's terminal in raw mode for the run, and restore it.
    let saved = if args.container.process.tty {
        RawMode::enter()
    } else {
        None
    };
    let code = run_image(&root, &req);
    drop(saved);
    Ok(exit_code(code?))
}

/// Docker's signal proxy (`docker run --sig-proxy`, on by default): the
/// signals a user or a supervisor sends to kiln while it runs a container
/// in the foreground (Ctrl-C without `-t`, `kill`, `timeout`) go to the
/// container's process instead of ending kiln, whose death would SIGKILL
/// the container. Call before any other thread starts, so that every
/// thread has them blocked and only the forwarding thread receives them.
pub fn proxy_signals(tty: bool) -> Control {
    use nix::sys::signal::{SigSet, SigmaskHow, Signal, pthread_sigmask};
    let control = Control::new();
    // With -t, the container's terminal gets the size of ours, and follows
    // it when the window changes (SIGWINCH), as `docker run -it` does.
    let resize = move |c: &Control| {
        if let Ok(ws) = rustix::termios::tcgetwinsize(std::io::stdin())
            && ws.ws_row > 0
            && ws.ws_col > 0
        {
            c.resize(ws.ws_row, ws.ws_col);
        }
    };
    if tty {
        resize(&control);
    }
    let mut set = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGWINCH,
    ] {
        set.add(s);
    }
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None).is_ok() {
        let c = control.clone();
        std::thread::spawn(move || {
            while let Ok(sig) = set.wait() {
                if sig == Signal::SIGWINCH {
                    if tty {
                        resize(&c);
                    }
                } else {
                    c.signal(sig as i32);
                }
            }
        });
    }
    control
}

/// A container's exit code as kiln's.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(255))
}

/// The terminal's settings before raw mode; restored on drop.
pub struct RawMode(rustix::termios::Termios);

impl RawMode {
    /// Puts the terminal on stdin in raw mode (None when it is not one).
    pub fn enter() -> Option<RawMode> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawMode(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.0,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_takes_them() {
        assert_eq!(parse_bytes("512").ok(), Some(512));
        assert_eq!(parse_bytes("64m").ok(), Some(64 << 20));
        assert_eq!(parse_bytes("1G").ok(), Some(1 << 30));
        assert_eq!(parse_bytes("10k").ok(), Some(10 << 10));
        assert!(parse_bytes("lots").is_err());
    }
}
