//! `kiln`: the command-line shell around the kiln crates.
//!
//! Argument parsing, rendering and exit codes live here; all the work is done
//! by the libraries.

mod build;
mod containers;
mod dockerfile;
mod progress;
mod run;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Daemonless OCI image builder: build, pull, push and run container images.
#[derive(Debug, Parser)]
#[command(name = "kiln", version, about, propagate_version = true)]
struct Cli {
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
    /// Supervise a detached container (internal).
    #[command(name = "__monitor", hide = true)]
    Monitor(containers::MonitorArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
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
