//! `devenv completions SHELL`: a completion script for bash, zsh, fish, PowerShell or elvish
//! (clap_complete), on stdout.

use clap::{Args, CommandFactory as _};
use clap_complete::Shell;

/// `devenv completions` arguments.
#[derive(Debug, Clone, Args)]
pub struct CompletionsArgs {
    /// The shell.
    pub shell: Shell,
}

/// Runs `devenv completions`.
pub fn run(args: &CompletionsArgs) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_complete::generate(
        args.shell,
        &mut crate::cli::Cli::command(),
        "devenv",
        &mut out,
    );
    crate::output::stdout(&String::from_utf8_lossy(&out))
}
