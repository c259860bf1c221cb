//! `devenv completions SHELL`: a completion script for bash, zsh, fish, PowerShell or elvish
//! (clap_complete), on stdout. The script completes the name this binary was run as, so a copy
//! installed under another name (to keep it apart from cachix's `devenv`) completes too.

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
    let name = std::env::args_os()
        .next()
        .and_then(|arg0| {
            std::path::Path::new(&arg0)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_owned)
        })
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "devenv".to_owned());
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut crate::cli::Cli::command(), name, &mut out);
    crate::output::stdout(&String::from_utf8_lossy(&out))
}
