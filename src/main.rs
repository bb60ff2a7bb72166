//! `kiln`: the command-line shell around the kiln crates.
//!
//! Argument parsing, rendering and exit codes live here; all the work is done
//! by the libraries.

mod build;
mod dockerfile;
mod progress;
mod run;
mod system;

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
    /// Manage kiln's disk space: prune, df.
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage the build cache: prune.
    #[command(subcommand, alias = "buildx")]
    Builder(system::BuilderCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
        Command::System(cmd) => system::run_system(cmd),
        Command::Builder(cmd) => system::run_builder(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            if cli.debug {
                eprintln!("kiln: {err:?}");
            } else {
                eprintln!("kiln: {err:#}");
            }
            // Docker's convention: 125 when the tool itself failed.
            ExitCode::from(125)
        }
    }
}
