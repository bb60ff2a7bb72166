//! `kiln completion bash|zsh|fish|elvish|powershell`: shell completion
//! scripts generated from the same clap definitions that parse the
//! arguments, so they never drift from the real flags.

use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// `kiln completion` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  kiln completion bash > /etc/bash_completion.d/kiln
  kiln completion zsh > \"${fpath[1]}/_kiln\"
  kiln completion fish > ~/.config/fish/completions/kiln.fish")]
pub struct CompletionArgs {
    /// The shell to write the completion script for.
    #[arg(value_enum)]
    shell: Shell,
}

/// Writes the completion script for `args.shell` to standard output.
pub fn run(args: CompletionArgs) -> anyhow::Result<ExitCode> {
    let mut cmd = crate::Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "kiln", &mut script);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
        .map_err(|e| anyhow::anyhow!("write the completion script: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
