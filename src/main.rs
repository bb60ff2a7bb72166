//! `kiln`: the command-line shell around the kiln crates.
//!
//! Argument parsing, rendering and exit codes live here; all the work is done
//! by the libraries.

mod dockerfile;

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dockerfile(cmd) => dockerfile::run(cmd),
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
