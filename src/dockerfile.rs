//! `kiln dockerfile parse|lint`.

use std::process::ExitCode;

use clap::Subcommand;

/// `kiln dockerfile` subcommands.
#[derive(Debug, Subcommand)]
pub enum DockerfileCommand {
    /// Print the typed instructions of a Dockerfile.
    Parse {
        /// Print JSON (one object per instruction).
        #[arg(long)]
        json: bool,
        /// The Dockerfile, or `-` for standard input.
        file: String,
    },
}

/// Runs a `kiln dockerfile` subcommand.
pub fn run(cmd: DockerfileCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DockerfileCommand::Parse { json: _, file } => {
            anyhow::bail!("parsing {file}: the parser is not built yet")
        }
    }
}
