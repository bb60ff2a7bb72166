//! `kiln`: the command-line shell around the kiln crates.
//!
//! Argument parsing, rendering and exit codes live here; all the work is done
//! by the libraries.

mod build;
mod dockerfile;
mod progress;
mod registry;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
        Command::Build(args) => build::run(args),
        Command::Run(args) => run::run(args),
        Command::Pull(args) => registry::pull(args),
        Command::Push(args) => registry::push(args),
        Command::Login(args) => registry::login(args),
        Command::Logout(args) => registry::logout(args),
        Command::Search(args) => registry::search(args),
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
