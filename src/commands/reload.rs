//! `devenv reload`: asks the project's running supervisor (the holder of its lock, never a pid
//! from a file alone) to reload now, with SIGUSR1; its output (terminal or `devenv logs`)
//! shows the outcome.

use std::path::Path;

use crate::exit::CliError;
use crate::ui::Ui;

/// Runs `devenv reload`.
pub fn run(root: &Path, ui: &Ui) -> anyhow::Result<()> {
    let dir = crate::running::state_dir(root)?;
    let Some((holder, _)) = crate::running::running(&dir)? else {
        if let Ok(Some(stale)) = dir.read() {
            ui.note(format!(
                "a record of a devenv up (pid {}) that is gone is left; `devenv down` cleans it up",
                stale.pid
            ));
        }
        return Err(CliError::NotRunning.into());
    };
    if !devenv_server::process::signal(holder.pid, nix::sys::signal::Signal::SIGUSR1) {
        return Err(CliError::NotRunning.into());
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
