//! Container commands: `kiln ps`, `rm`, `start`, `stop`, `kill`, `logs`,
//! `wait`, `commit`, `exec`, and the hidden monitor that supervises a
//! detached container.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use kiln_build_engine::Root;
use kiln_build_engine::containers::{
    self, CommitOptions, ContainerRecord, ContainerState, ExecRequest,
};

/// Docker's `units.HumanDuration` (go-units), which `docker ps` uses for
/// CREATED and STATUS.
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let minutes = s / 60;
    // Go rounds hours: int(d.Hours() + 0.5).
    let hours = (s + 1800) / 3600;
    if s < 1 {
        "Less than a second".into()
    } else if s == 1 {
        "1 second".into()
    } else if s < 60 {
        format!("{s} seconds")
    } else if minutes == 1 {
        "About a minute".into()
    } else if minutes < 60 {
        format!("{minutes} minutes")
    } else if hours == 1 {
        "About an hour".into()
    } else if hours < 48 {
        format!("{hours} hours")
    } else if hours < 24 * 7 * 2 {
        format!("{} days", hours / 24)
    } else if hours < 24 * 30 * 2 {
        format!("{} weeks", hours / 24 / 7)
    } else if hours < 24 * 365 * 2 {
        format!("{} months", hours / 24 / 30)
    } else {
        format!("{} years", s / 3600 / 24 / 365)
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

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

/// Docker's `Ellipsis`: at most `max` characters, the last one `…`.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// Prints rows as Docker's tabwriter does (minimum width 10, padding 3).
fn print_table(rows: &[Vec<String>]) {
    let cols = rows.first().map_or(0, Vec::len);
    let mut widths = vec![0usize; cols];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let mut out = std::io::stdout().lock();
    for r in rows {
        let mut line = String::new();
        for (i, cell) in r.iter().enumerate() {
            if i + 1 == cols {
                line.push_str(cell);
            } else {
                let w = (widths[i] + 3).max(10);
                line.push_str(cell);
                line.push_str(&" ".repeat(w - cell.chars().count()));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
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
    let mut rows = vec![
        [
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for c in &list {
        let command = c.config.args.join(" ");
        let command = if args.no_trunc {
            command
        } else {
            ellipsis(&command, 20)
        };
        rows.push(vec![
            if args.no_trunc {
                c.id.clone()
            } else {
                c.short_id().to_string()
            },
            c.image.clone(),
            format!("{command:?}"),
            format!("{} ago", human_duration(now - c.created)),
            status_text(c, now),
            String::new(),
            c.name.clone(),
        ]);
    }
    print_table(&rows);
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
            crate::run::proxy_signals(),
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
    let (mut entries, mut offset) = containers::read_log(&root, &c.id, 0)?;
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
            let (more, next) = containers::read_log(&root, &c.id, offset)?;
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
    /// Rename a container.
    Rename(RenameArgs),
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
        ContainerCommand::Rename(a) => rename(a),
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
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    serde::Serialize::serialize(&found, &mut ser)?;
    println!("{}", String::from_utf8(buf)?);
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
    println!("Total reclaimed space: {}", human_size(bytes));
    Ok(ExitCode::SUCCESS)
}

/// Docker's `units.HumanSize` (decimal units, 3 significant digits).
fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let s = format!("{:.*}", digits, s.parse::<f64>().unwrap_or(v));
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    format!("{s}{}", units[i])
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
    fn durations_as_docker_prints_them() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(1), "1 second");
        assert_eq!(human_duration(59), "59 seconds");
        assert_eq!(human_duration(60), "About a minute");
        assert_eq!(human_duration(5 * 60), "5 minutes");
        assert_eq!(human_duration(3600), "About an hour");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86_400), "3 days");
        assert_eq!(human_duration(20 * 86_400), "2 weeks");
    }

    #[test]
    fn sizes_as_docker_prints_them() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(1500), "1.5kB");
        assert_eq!(human_size(123_456_789), "123MB");
    }

    #[test]
    fn signals_by_name_and_number() {
        assert_eq!(parse_signal("KILL").ok(), Some(9));
        assert_eq!(parse_signal("sigterm").ok(), Some(15));
        assert_eq!(parse_signal("1").ok(), Some(1));
        assert!(parse_signal("NOPE").is_err());
    }

    #[test]
    fn commands_are_truncated_with_an_ellipsis() {
        assert_eq!(ellipsis("short", 20), "short");
        assert_eq!(
            ellipsis("sh -c echo hi > /f; sleep 100", 20),
            "sh -c echo hi > /f;…"
        );
    }
}
