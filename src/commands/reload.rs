//! `devenv reload`: asks the project's running supervisor (the holder of its lock, never a pid
//! from a file alone) to reload now, with SIGUSR1; its output (terminal or `devenv logs`)
//! shows the outcome.

use std::path::Path;

use devenv_core::CoreError;

use crate::ui::Ui;

/// Runs `devenv reload`.
pub fn run(root: &Path, ui: &Ui) -> anyhow::Result<()> {
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
