//! `kiln`: the command-line shell around the kiln crates.
//!
//! Argument parsing, rendering and exit codes live here; all the work is done
//! by the libraries.

mod build;
mod completion;
mod containers;
mod dockerfile;
mod format;
mod images;
mod info;
mod progress;
mod registry;
mod run;
mod system;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Daemonless OCI image builder: build, pull, push and run container images.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// Print error chains with full detail.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with Dockerfiles: parse, lint.
    #[command(subcommand)]
    Dockerfile(dockerfile::DockerfileCommand),
    /// Build an image from a Dockerfile and a context directory.
    Build(build::BuildArgs),
    /// Run a command in a new container from an image.
    Run(run::RunArgs),
    /// Download an image from a registry, ready to run.
    Pull(registry::PullArgs),
    /// Upload an image to a registry.
    Push(registry::PushArgs),
    /// Log in to a registry (credentials shared with Docker's config.json).
    Login(registry::LoginArgs),
    /// Log out from a registry.
    Logout(registry::LogoutArgs),
    /// Search a registry for images.
    Search(registry::SearchArgs),
    /// List images.
    Images(images::ImagesArgs),
    /// Manage images (ls, rm, tag, history, inspect, save, load, import, prune).
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(images::TagArgs),
    /// Remove one or more images.
    Rmi(images::RmiArgs),
    /// Show the history of an image.
    History(images::HistoryArgs),
    /// Display detailed information on one or more images.
    Inspect(images::InspectArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(images::SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(images::LoadArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(images::ImportArgs),
    /// Show the configuration, the state directory and the host.
    Info(info::InfoArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completion(completion::CompletionArgs),
    /// Manage kiln's disk space: prune, df.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage the build cache: prune.
    #[command(subcommand, alias = "buildx")]
    Builder(system::BuilderCommand),
    /// List containers.
    Ps(containers::PsArgs),
    /// Remove one or more containers.
    Rm(containers::RmArgs),
    /// Start one or more stopped containers.
    Start(containers::StartArgs),
    /// Stop one or more running containers (SIGTERM, then SIGKILL).
    Stop(containers::StopArgs),
    /// Send a signal to one or more running containers.
    Kill(containers::KillArgs),
    /// Block until containers stop, then print their exit codes.
    Wait(containers::WaitArgs),
    /// Fetch the logs of a container.
    Logs(containers::LogsArgs),
    /// Create a new image from a container's changes.
    Commit(containers::CommitArgs),
    /// Run a command in a running container.
    Exec(containers::ExecArgs),
    /// Create a new container from an image without starting it.
    Create(run::CreateArgs),
    /// Rename a container.
    Rename(containers::RenameArgs),
    /// Attach to a running container's input and output.
    Attach(containers::AttachArgs),
    /// Export a container's file system as a tar archive.
    Export(containers::ExportArgs),
    /// Restart one or more containers.
    Restart(containers::RestartArgs),
    /// Copy files between a container and the host.
    Cp(containers::CpArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff(containers::DiffArgs),
    /// Manage containers (ls, inspect, prune, rm, logs, exec, commit, ...).
    #[command(subcommand)]
    Container(containers::ContainerCommand),
    /// Supervise a detached container (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor(containers::MonitorArgs),
}

/// Makes `kiln images | head` end quietly, as Unix tools do, when the
/// reader closes the pipe. SIGPIPE stays ignored (the runtime writes to
/// container pipes and sockets whose readers may go away, and must see
/// EPIPE rather than die), so a closed standard output shows up as a
/// `print!` panic: this hook turns exactly that panic into a quiet exit
/// with the status a shell reports for SIGPIPE (141).
fn quiet_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    quiet_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version print to stdout and succeed; a usage error
        // exits 125 like Docker's own flag errors (clap would use 2).
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(125)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
        Command::Pull(args) => registry::pull(args),
        Command::Push(args) => registry::push(args),
        Command::Login(args) => registry::login(args),
        Command::Logout(args) => registry::logout(args),
        Command::Search(args) => registry::search(args),
        Command::Completion(args) => completion::run(args),
        Command::Info(args) => info::run(args),
        Command::System(cmd) => system::run_system(cmd),
        Command::Builder(cmd) => system::run_builder(cmd),
        Command::Ps(args) => containers::ps(args),
        Command::Rm(args) => containers::rm(args),
        Command::Start(args) => containers::start(args),
        Command::Stop(args) => containers::stop(args),
        Command::Kill(args) => containers::kill(args),
        Command::Wait(args) => containers::wait(args),
        Command::Logs(args) => containers::logs(args),
        Command::Commit(args) => containers::commit(args),
        Command::Exec(args) => containers::exec(args),
        Command::Monitor(args) => containers::monitor(args),
        Command::Container(cmd) => containers::run_container(cmd),
        Command::Rename(args) => containers::rename(args),
        Command::Attach(args) => containers::attach(args),
        Command::Export(args) => containers::export(args),
        Command::Restart(args) => containers::restart(args),
        Command::Cp(args) => containers::cp(args),
        Command::Create(args) => run::create(args),
        Command::Diff(args) => containers::diff(args),
        Command::Images(args) => images::run_images(args),
        Command::Image(cmd) => images::run_image(cmd),
        Command::Tag(args) => images::run_tag(args),
        Command::Rmi(args) => images::run_rmi(args),
        Command::History(args) => images::run_history(args),
        Command::Inspect(args) => images::run_inspect(args, "object"),
        Command::Save(args) => images::run_save(args),
        Command::Load(args) => images::run_load(args),
        Command::Import(args) => images::run_import(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if cli.debug {
                eprintln!("kiln: {err:?}");
            } else {
                eprintln!("kiln: {err:#}");
            }
            // Docker's convention: 126/127 when the container's command
            // cannot be run, 125 when the tool itself failed.
            match err.downcast_ref::<kiln_build_engine::Error>() {
                Some(kiln_build_engine::Error::ContainerCommand { exit_code, .. }) => {
                    ExitCode::from(u8::try_from(*exit_code).unwrap_or(125))
                }
                _ => ExitCode::from(125),
            }
        }
    }
}
