//! Container commands: `kiln ps`, `rm`, `start`, `stop`, `kill`, `logs`,
//! `wait`, `commit`, `exec`, and the hidden monitor that supervises a
//! detached container.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use kiln_build_engine::Root;

use crate::format::{ellipsis, human_duration, human_size, now, pretty, print_rows};
use kiln_build_engine::containers::{
    self, CommitOptions, ContainerRecord, ContainerState, ExecRequest,
};

/// The STATUS column: `Up 3 seconds`, `Exited (0) 5 seconds ago`, `Created`.
pub fn status_text(c: &ContainerRecord, now: i64) -> String {
    match c.effective_state() {
        ContainerState::Running => format!(
            "Up {}",
            human_duration(now - c.started_at.unwrap_or(c.created))
        ),
        ContainerState::Exited => format!(
            "Exited ({}) {} ago",
            c.exit_code.unwrap_or(0),
            human_duration(now - c.finished_at.unwrap_or(c.created))
        ),
        _ => "Created".into(),
    }
}

/// `kiln ps` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln ps\n  kiln ps -a --filter status=exited\n  kiln ps -aq")]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    no_trunc: bool,
    /// Filter output: `status=running|exited|created`, `name=NAME`, `id=ID`.
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Show the n last created containers (all states).
    #[arg(short = 'n', long)]
    last: Option<usize>,
    /// Show the latest created container (all states).
    #[arg(short = 'l', long)]
    latest: bool,
    /// Format output: `table` (default), `table TEMPLATE`, `json` (one
    /// object per line) or a Go template (`{{.ID}} {{.Names}} {{.Status}}`).
    #[arg(long)]
    format: Option<String>,
}

/// A container's `docker ps` fields (`--format json`), keys sorted as
/// Docker prints them.
fn ps_fields(c: &ContainerRecord, now: i64, no_trunc: bool) -> serde_json::Value {
    let command = c.config.args.join(" ");
    let command = if no_trunc {
        command
    } else {
        ellipsis(&command, 20)
    };
    let created = chrono_like(c.created);
    serde_json::json!({
        "Command": format!("{command:?}"),
        "CreatedAt": created,
        "ID": if no_trunc { c.id.as_str() } else { c.short_id() },
        "Image": c.image,
        "Labels": c.config.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
        "LocalVolumes": "0",
        "Mounts": c.config.volumes.iter().map(|v| v.target.clone()).collect::<Vec<_>>().join(","),
        "Names": c.name,
        "Networks": if c.config.host_network { "host" } else { "none" },
        "Ports": "",
        "RunningFor": format!("{} ago", human_duration(now - c.created)),
        "Size": "0B",
        "State": c.effective_state().as_str(),
        "Status": status_text(c, now),
    })
}

/// Go's `time.Time.String()` for a UTC time (`2026-01-02 15:04:05 +0000 UTC`),
/// as `docker ps`'s CreatedAt.
fn chrono_like(secs: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    format!("{} {} +0000 UTC", &s[..10], &s[11..19])
}

/// Runs `kiln ps`.
pub fn ps(args: PsArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let mut filters: Vec<(String, String)> = Vec::new();
    for f in &args.filter {
        let Some((k, v)) = f.split_once('=') else {
            bail!("bad format of filter (expected name=value): {f}");
        };
        match k {
            "status" => {
                if !["created", "running", "exited"].contains(&v) {
                    bail!("invalid filter 'status={v}' (kiln knows created, running, exited)");
                }
            }
            "name" | "id" => {}
            _ => bail!("invalid filter '{k}' (kiln supports status, name, id)"),
        }
        filters.push((k.to_string(), v.to_string()));
    }
    let has_status = filters.iter().any(|(k, _)| k == "status");
    // -n/-l imply -a, as Docker's.
    let last = if args.latest { Some(1) } else { args.last };
    let all = args.all || last.is_some();
    let now = now();
    let list: Vec<ContainerRecord> = containers::list(&root)?
        .into_iter()
        .filter(|c| all || has_status || c.effective_state() == ContainerState::Running)
        .filter(|c| {
            // Values of one key are alternatives; keys all apply (Docker).
            ["status", "name", "id"].iter().all(|key| {
                let vals: Vec<&String> = filters
                    .iter()
                    .filter(|(k, _)| k == key)
                    .map(|(_, v)| v)
                    .collect();
                vals.is_empty()
                    || vals.iter().any(|v| match *key {
                        "status" => c.effective_state().as_str() == v.as_str(),
                        "name" => c.name.contains(v.as_str()),
                        _ => c.id.starts_with(v.as_str()),
                    })
            })
        })
        .take(last.unwrap_or(usize::MAX))
        .collect();
    if args.quiet {
        let mut out = std::io::stdout().lock();
        for c in &list {
            let id = if args.no_trunc { &c.id } else { c.short_id() };
            writeln!(out, "{id}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<serde_json::Value> = list
        .iter()
        .map(|c| ps_fields(c, now, args.no_trunc))
        .collect();
    const DEFAULT_TABLE: &str = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";
    print_rows(
        args.format.as_deref().unwrap_or(DEFAULT_TABLE),
        DEFAULT_TABLE,
        &rows,
        &[
            ("ID", "CONTAINER ID"),
            ("Image", "IMAGE"),
            ("Command", "COMMAND"),
            ("CreatedAt", "CREATED AT"),
            ("RunningFor", "CREATED"),
            ("Status", "STATUS"),
            ("Ports", "PORTS"),
            ("Names", "NAMES"),
            ("State", "STATE"),
            ("Size", "SIZE"),
            ("Labels", "LABELS"),
            ("Mounts", "MOUNTS"),
            ("Networks", "NETWORKS"),
            ("LocalVolumes", "LOCAL VOLUMES"),
        ],
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Prints per-container errors as Docker does and exits 1 if any failed.
fn each(
    names: &[String],
    mut f: impl FnMut(&str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    for n in names {
        if let Err(e) = f(n) {
            eprintln!("kiln: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `kiln rm` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln rm mycontainer\n  kiln rm -f web db")]
pub struct RmArgs {
    /// Force the removal of a running container (kills it).
    #[arg(short = 'f', long)]
    force: bool,
    /// Containers (name, id or id prefix).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln rm`.
pub fn rm(args: RmArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    each(&args.containers, |n| {
        containers::remove(&root, n, args.force)?;
        println!("{n}");
        Ok(())
    })
}

/// The command that runs the monitor of a detached container: this same
/// binary with the hidden `__monitor` subcommand.
pub fn monitor_command(root: &Root, id: &str) -> anyhow::Result<std::process::Command> {
    let exe = std::env::current_exe().context("find the kiln binary for the container monitor")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("__monitor").arg("--root").arg(root.dir()).arg(id);
    Ok(cmd)
}

/// `kiln start` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln start mycontainer\n  kiln start -a mycontainer   # wait, show output, return its exit code\n  kiln start -ai shell"
)]
pub struct StartArgs {
    /// Attach standard output and error, and return the container's exit code.
    #[arg(short = 'a', long)]
    attach: bool,
    /// Attach standard input.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Containers to start.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln start`.
pub fn start(args: StartArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    if args.attach || args.interactive {
        if args.containers.len() > 1 {
            bail!("you cannot start and attach multiple containers at once");
        }
        let c = containers::lookup(&root, &args.containers[0])?;
        let stdin: Option<Box<dyn std::io::Read + Send>> = if args.interactive {
            Some(Box::new(std::io::stdin()))
        } else {
            None
        };
        let saved = if c.config.tty {
            crate::run::RawMode::enter()
        } else {
            None
        };
        let code = containers::run_attached_with(
            &root,
            &c.id,
            &mut std::io::stdout(),
            &mut std::io::stderr(),
            stdin,
            crate::run::proxy_signals(c.config.tty),
        );
        drop(saved);
        return Ok(crate::run::exit_code(code?));
    }
    each(&args.containers, |n| {
        let c = containers::lookup(&root, n)?;
        containers::start_detached(&root, &c.id, monitor_command(&root, &c.id)?)?;
        println!("{n}");
        Ok(())
    })
}

/// `kiln diff` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln diff c1\n  kiln container diff web")]
pub struct DiffArgs {
    /// The container.
    container: String,
}

/// Runs `kiln diff`: `A`/`C`/`D` and the path, one per line.
pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let mut out = std::io::stdout().lock();
    for (letter, path) in containers::diff(&root, &args.container)? {
        writeln!(out, "{letter} {path}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln cp` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln cp c1:/etc/passwd ./passwd\n  kiln cp c1:/var/log/. ./logs   # a directory's contents\n  kiln cp ./config.json c1:/etc/app/"
)]
pub struct CpArgs {
    /// `CONTAINER:SRC_PATH` or a host path.
    src: String,
    /// `CONTAINER:DEST_PATH` or a host path.
    dest: String,
}

/// Splits `CONTAINER:PATH` (a host path containing `/` before any `:`
/// is a host path, as Docker decides).
fn container_path(arg: &str) -> Option<(&str, &str)> {
    let (c, p) = arg.split_once(':')?;
    (!c.is_empty() && !c.contains('/')).then_some((c, p))
}

/// Runs `kiln cp`.
pub fn cp(args: CpArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    if args.src == "-" || args.dest == "-" {
        bail!("kiln cp does not stream tar archives (-); copy to or from a path");
    }
    match (container_path(&args.src), container_path(&args.dest)) {
        (Some((c, p)), None) => {
            containers::copy_from(&root, c, p, std::path::Path::new(&args.dest))?;
        }
        (None, Some((c, p))) => {
            containers::copy_to(&root, c, std::path::Path::new(&args.src), p)?;
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source (CONTAINER:PATH)"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln export` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln export -o rootfs.tar c1\n  kiln export c1 | kiln import - flat:1"
)]
pub struct ExportArgs {
    /// Write to a file instead of standard output.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
    /// The container.
    container: String,
}

/// Runs `kiln export`.
pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let root = Root::open_configured()?;
    match &args.output {
        Some(path) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
            let mut tmp = tempfile::NamedTempFile::new_in(dir.unwrap_or(std::path::Path::new(".")))
                .with_context(|| format!("create {}", path.display()))?;
            containers::export(&root, &args.container, tmp.as_file_mut())?;
            tmp.persist(path)
                .with_context(|| format!("write {}", path.display()))?;
        }
        None => {
            if std::io::stdout().is_terminal() {
                bail!("cowardly refusing to write a tar archive to a terminal: use -o or redirect");
            }
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            containers::export(&root, &args.container, &mut out)?;
            out.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `kiln restart` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln restart web\n  kiln restart -t 1 web db")]
pub struct RestartArgs {
    /// Seconds to wait after SIGTERM before killing.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    /// Containers to restart.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln restart`.
pub fn restart(args: RestartArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    each(&args.containers, |n| {
        let c = containers::lookup(&root, n)?;
        containers::restart(
            &root,
            &c.id,
            Duration::from_secs(args.time),
            monitor_command(&root, &c.id)?,
        )?;
        println!("{n}");
        Ok(())
    })
}

/// `kiln attach` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln run -dit --name box busybox sh\n  kiln attach box\n  kiln attach --no-stdin web   # only follow the output"
)]
pub struct AttachArgs {
    /// Do not attach standard input.
    #[arg(long)]
    no_stdin: bool,
    /// The container.
    container: String,
}

/// Runs `kiln attach`: the container's exit code becomes kiln's.
pub fn attach(args: AttachArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let c = containers::lookup(&root, &args.container)?;
    let stdin: Option<Box<dyn std::io::Read + Send>> = if args.no_stdin {
        None
    } else {
        Some(Box::new(std::io::stdin()))
    };
    let saved = if c.config.tty && !args.no_stdin {
        crate::run::RawMode::enter()
    } else {
        None
    };
    let code = containers::attach(
        &root,
        &c.id,
        stdin,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    );
    drop(saved);
    Ok(crate::run::exit_code(code?))
}

/// `kiln rename` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln rename elegant_agnesi web")]
pub struct RenameArgs {
    /// The container.
    container: String,
    /// Its new name.
    new_name: String,
}

/// Runs `kiln rename`.
pub fn rename(args: RenameArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    containers::rename(&root, &args.container, &args.new_name)?;
    Ok(ExitCode::SUCCESS)
}

/// `kiln stop` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln stop web\n  kiln stop -t 1 web db")]
pub struct StopArgs {
    /// Seconds to wait after SIGTERM before killing.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    /// Containers to stop.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln stop`.
pub fn stop(args: StopArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    each(&args.containers, |n| {
        containers::stop(&root, n, Duration::from_secs(args.time))?;
        println!("{n}");
        Ok(())
    })
}

/// `kiln kill` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln kill web\n  kiln kill -s HUP web")]
pub struct KillArgs {
    /// Signal to send (name like `KILL`/`SIGHUP`, or number).
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    /// Containers to signal.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Parses a signal name or number as `docker kill -s` does.
pub fn parse_signal(s: &str) -> anyhow::Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return Ok(n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    let n = match name {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "KILL" => 9,
        "USR1" => 10,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        "CONT" => 18,
        "STOP" => 19,
        "WINCH" => 28,
        _ => bail!("invalid signal: {s}"),
    };
    Ok(n)
}

/// Runs `kiln kill`.
pub fn kill(args: KillArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let sig = parse_signal(&args.signal)?;
    each(&args.containers, |n| {
        containers::kill(&root, n, sig)?;
        println!("{n}");
        Ok(())
    })
}

/// `kiln wait` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln wait job1")]
pub struct WaitArgs {
    /// Containers to wait for.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln wait`: prints each container's exit code once it stops.
pub fn wait(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    each(&args.containers, |n| {
        let c = containers::lookup(&root, n)?;
        let c = containers::wait(&root, &c.id, None)?;
        println!("{}", c.exit_code.unwrap_or(0));
        Ok(())
    })
}

/// `kiln logs` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln logs web\n  kiln logs -f --tail 10 web\n  kiln logs -t job1"
)]
pub struct LogsArgs {
    /// Follow log output.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Show timestamps.
    #[arg(short = 't', long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs (`all` for all).
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (`2026-01-02T15:04:05Z`) or a relative
    /// time (`42m`, `1h30m`).
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp or a relative time.
    #[arg(long)]
    until: Option<String>,
    /// The container.
    container: String,
}

/// Runs `kiln logs`.
pub fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let c = containers::lookup(&root, &args.container)?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("--tail {n}: not a number"))?,
        ),
    };
    let since = args.since.as_deref().map(log_time).transpose()?;
    let until = args.until.as_deref().map(log_time).transpose()?;
    let in_window = |e: &containers::LogEntry| {
        since.as_ref().is_none_or(|s| e.time.as_str() >= s.as_str())
            && until.as_ref().is_none_or(|u| e.time.as_str() < u.as_str())
    };
    let (mut entries, mut offset) = containers::read_log(&root, &c.id, 0)?;
    entries.retain(|e| in_window(e));
    if let Some(n) = tail {
        let skip = entries.len().saturating_sub(n);
        entries.drain(..skip);
    }
    let print = |entries: &[containers::LogEntry]| -> anyhow::Result<()> {
        let mut out = std::io::stdout().lock();
        let mut err = std::io::stderr().lock();
        for e in entries {
            let w: &mut dyn Write = if e.stream == "stderr" {
                &mut err
            } else {
                &mut out
            };
            if args.timestamps {
                write!(w, "{} ", e.time)?;
            }
            w.write_all(e.log.as_bytes())?;
        }
        out.flush()?;
        Ok(())
    };
    print(&entries)?;
    if args.follow {
        loop {
            let running = containers::lookup(&root, &c.id)
                .map(|r| r.effective_state() == ContainerState::Running)
                .unwrap_or(false);
            let (mut more, next) = containers::read_log(&root, &c.id, offset)?;
            more.retain(|e| in_window(e));
            offset = next;
            print(&more)?;
            if more.is_empty() && !running {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A `--since`/`--until` value as a log timestamp (RFC 3339, nanoseconds,
/// UTC, the form the log's entries have, so that they compare as text).
fn log_time(s: &str) -> anyhow::Result<String> {
    let t = match humantime::parse_duration(s) {
        Ok(ago) => std::time::SystemTime::now()
            .checked_sub(ago)
            .context("--since/--until: too far in the past")?,
        Err(_) => match s.parse::<i64>() {
            // Unix seconds, as Docker also takes.
            Ok(secs) => std::time::UNIX_EPOCH + Duration::from_secs(secs.max(0) as u64),
            Err(_) => humantime::parse_rfc3339_weak(s.trim_end_matches('Z'))
                .with_context(|| format!("invalid time {s:?} (use 2026-01-02T15:04:05Z or 10m)"))?,
        },
    };
    Ok(humantime::format_rfc3339_nanos(t).to_string())
}

/// `kiln commit` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln commit c1 myimage:v2\n  kiln commit -m 'add config' -a 'Ann <ann@example.com>' c1 myimage\n  kiln commit -c 'CMD [\"/app\"]' -c 'ENV MODE=prod' c1 app:prod"
)]
pub struct CommitArgs {
    /// Commit message (the history entry's comment).
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Author (e.g. `Jane Doe <jane@example.com>`).
    #[arg(short = 'a', long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the image's config (CMD,
    /// ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
    /// WORKDIR).
    #[arg(short = 'c', long = "change")]
    changes: Vec<String>,
    /// Pause the container's processes while committing.
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pause: bool,
    /// The container.
    container: String,
    /// `REPOSITORY[:TAG]` for the new image.
    reference: Option<String>,
}

/// Runs `kiln commit`: prints the new image's id.
pub fn commit(args: CommitArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let mut opts = CommitOptions::default();
    opts.reference = args.reference.clone();
    opts.message = args.message.clone();
    opts.author = args.author.clone();
    opts.changes = args.changes.clone();
    opts.pause = args.pause;
    let done = containers::commit(&root, &args.container, &opts)?;
    println!("{}", done.image_id);
    Ok(ExitCode::SUCCESS)
}

/// `kiln exec` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  kiln exec web cat /etc/hostname\n  kiln exec -it web sh\n  kiln exec -e MODE=debug -u nobody -w /tmp web env"
)]
pub struct ExecArgs {
    #[command(flatten)]
    process: crate::run::ProcessArgs,
    /// The container.
    container: String,
    /// Command and arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Runs `kiln exec`: the command's exit code becomes kiln's.
pub fn exec(args: ExecArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let mut req = ExecRequest::default();
    req.cmd = args.command.clone();
    req.env = args.process.env.clone();
    req.user = args.process.user.clone();
    req.workdir = args.process.workdir.clone();
    req.tty = args.process.tty;
    req.control = Some(crate::run::proxy_signals(args.process.tty));
    let stdin: Option<Box<dyn std::io::Read + Send>> = if args.process.interactive {
        Some(Box::new(std::io::stdin()))
    } else {
        None
    };
    let saved = if args.process.tty {
        crate::run::RawMode::enter()
    } else {
        None
    };
    let code = containers::exec(
        &root,
        &args.container,
        &req,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
        stdin,
    );
    drop(saved);
    Ok(crate::run::exit_code(code?))
}

/// `kiln container ...`: Docker's `docker container` command group.
#[derive(Debug, clap::Subcommand)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_alias = "ps", alias = "list")]
    Ls(PsArgs),
    /// Display detailed information on one or more containers.
    Inspect(InspectArgs),
    /// Remove one or more containers.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Remove all stopped containers.
    Prune(PruneArgs),
    /// Create a new container from an image without starting it.
    Create(crate::run::CreateArgs),
    /// Run a command in a new container.
    Run(crate::run::RunArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// Attach to a running container's input and output.
    Attach(AttachArgs),
    /// Export a container's file system as a tar archive.
    Export(ExportArgs),
    /// Restart one or more containers.
    Restart(RestartArgs),
    /// Copy files between a container and the host.
    Cp(CpArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(DiffArgs),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Send a signal to one or more running containers.
    Kill(KillArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(WaitArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Run a command in a running container.
    Exec(ExecArgs),
}

/// Runs `kiln container SUBCOMMAND`.
pub fn run_container(cmd: ContainerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContainerCommand::Ls(a) => ps(a),
        ContainerCommand::Inspect(a) => inspect(a),
        ContainerCommand::Rm(a) => rm(a),
        ContainerCommand::Prune(a) => prune(a),
        ContainerCommand::Create(a) => crate::run::create(a),
        ContainerCommand::Run(a) => crate::run::run(a),
        ContainerCommand::Rename(a) => rename(a),
        ContainerCommand::Attach(a) => attach(a),
        ContainerCommand::Export(a) => export(a),
        ContainerCommand::Restart(a) => restart(a),
        ContainerCommand::Cp(a) => cp(a),
        ContainerCommand::Diff(a) => diff(a),
        ContainerCommand::Start(a) => start(a),
        ContainerCommand::Stop(a) => stop(a),
        ContainerCommand::Kill(a) => kill(a),
        ContainerCommand::Wait(a) => wait(a),
        ContainerCommand::Logs(a) => logs(a),
        ContainerCommand::Commit(a) => commit(a),
        ContainerCommand::Exec(a) => exec(a),
    }
}

/// `kiln container inspect` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln container inspect web\n  kiln container inspect c1 c2")]
pub struct InspectArgs {
    /// Format the output with a Go template (`{{.State.Status}}`).
    #[arg(short = 'f', long)]
    format: Option<String>,
    /// Containers (name, id or id prefix).
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Runs `kiln container inspect`: a JSON array in Docker's shape; missing
/// containers are reported on stderr and make the exit code 1.
pub fn inspect(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let root = Root::open_configured()?;
    let mut found = Vec::new();
    let mut failed = false;
    for c in &args.containers {
        match containers::inspect(&root, c) {
            Ok(i) => found.push(i),
            Err(e) => {
                eprintln!("Error: {e}");
                failed = true;
            }
        }
    }
    match &args.format {
        Some(f) => {
            let t = crate::format::template::Template::parse(f)?;
            for i in &found {
                println!("{}", t.render(&serde_json::to_value(i)?)?);
            }
        }
        None => println!("{}", pretty(&found)?),
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// `kiln container prune` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  kiln container prune -f")]
pub struct PruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short = 'f', long)]
    force: bool,
}

/// Runs `kiln container prune`.
pub fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    if !args.force {
        eprint!(
            "WARNING! This will remove all stopped containers.\nAre you sure you want to continue? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Ok(ExitCode::SUCCESS);
        }
    }
    let root = Root::open_configured()?;
    let (removed, bytes) = containers::prune(&root)?;
    if !removed.is_empty() {
        println!("Deleted Containers:");
        for c in &removed {
            println!("{}", c.id);
        }
        println!();
    }
    println!("Total reclaimed space: {}", human_size(bytes, 4));
    Ok(ExitCode::SUCCESS)
}

/// Arguments of the hidden monitor subcommand.
#[derive(Debug, clap::Args)]
pub struct MonitorArgs {
    /// The state directory.
    #[arg(long)]
    root: PathBuf,
    /// The container id.
    id: String,
}

/// Supervises a detached container: a new session (no terminal, not
/// killed with the shell that started it), the container run to its end,
/// its state recorded.
pub fn monitor(args: MonitorArgs) -> anyhow::Result<ExitCode> {
    // Already a session leader only if started that way; either is fine.
    let _ = rustix::process::setsid();
    let root = Root::open(&args.root)?;
    let code = containers::monitor(&root, &args.id)?;
    Ok(crate::run::exit_code(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").ok(), Some(9));
        assert_eq!(parse_signal("sigterm").ok(), Some(15));
        assert_eq!(parse_signal("1").ok(), Some(1));
        assert!(parse_signal("NOPE").is_err());
    }
}
