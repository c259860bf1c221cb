//! `devenv reload`: asks the project's running supervisor (the holder of its lock, never a pid
//! from a file alone) to reload now, with SIGUSR1; its output (terminal or `devenv logs`)
//! shows the outcome. `--set` values go first into `.devenv/set.json`, which the supervisor
//! takes at the signal ([`crate::vars`]), as `--fresh` goes into `.devenv/reload-fresh`.

use std::path::Path;

use devenv_core::CoreError;

use crate::ui::Ui;

/// `devenv reload` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ReloadArgs {
    /// psql variables for this reload and the ones after it.
    #[command(flatten)]
    pub vars: crate::vars::SetArgs,
    /// Rebuild from schema and seed only: the rows typed since are not carried over (they
    /// stay in the automatic snapshot).
    #[arg(long)]
    pub fresh: bool,
}

/// Runs `devenv reload`.
pub fn run(root: &Path, args: &ReloadArgs, ui: &Ui) -> anyhow::Result<()> {
    let environment = devenv_core::Environment::open(root)?;
    let Some(holder) = environment.supervisor().map(|s| &s.holder) else {
        if let Some(stale) = environment.stale() {
            ui.note(format!(
                "a record of a devenv up (pid {}) that is gone is left; `devenv down` cleans it up",
                stale.pid
            ));
        }
        return Err(CoreError::NotRunning.into());
    };
    if !args.vars.set.is_empty() {
        environment.state_dir().put_set(&args.vars.set)?;
    }
    if args.fresh {
        environment.state_dir().put_fresh()?;
    }
    if !devenv_server::process::signal(holder.pid, nix::sys::signal::Signal::SIGUSR1) {
        return Err(CoreError::NotRunning.into());
    }
    ui.result(format!(
        "asked devenv {} (pid {}) to reload; its output shows the outcome{}",
        holder.command,
        holder.pid,
        if holder.command.ends_with("-d") {
            " (`devenv logs -f`)"
        } else {
            ""
        }
    ));
    Ok(())
}
