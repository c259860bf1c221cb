//! One module per subcommand, each with its own arguments (clap derive) and its `run`. They
//! use the engine crates and [`crate::ui`]; none of them imports another's internals except
//! through the small helpers here.

pub mod completions;
pub mod db;
pub mod doctor;
pub mod down;
pub mod env;
pub mod logs;
pub mod prod;
pub mod reload;
pub mod snapshot;
pub mod status;
pub mod testdbs;
pub mod up;

use std::path::Path;

use devenv_core::lock;
use devenv_core::project::STATE_DIR;
use devenv_core::state::{State, StateDir};
use devenv_core::ConfigError;

use crate::exit::CliError;

/// A time in seconds since the epoch, for people: `2026-11-22 22:40:01 UTC`.
pub fn since(secs: u64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs);
    humantime::format_rfc3339_seconds(time)
        .to_string()
        .replace('T', " ")
        .replace('Z', " UTC")
}

/// The state directory of the project at `root` (which must exist).
pub fn state_dir(root: &Path) -> Result<StateDir, ConfigError> {
    if !root.is_dir() {
        return Err(ConfigError::NoProjectDir {
            path: root.to_path_buf(),
        });
    }
    Ok(StateDir::new(&root.join(STATE_DIR)))
}

/// The running supervisor of the project and its state, once ready; checked against the
/// world (the lock's holder is the pid the state names).
pub fn running(dir: &StateDir) -> anyhow::Result<Option<(lock::Holder, State)>> {
    let Some(holder) = lock::holder(&dir.dir) else {
        return Ok(None);
    };
    match dir.read()? {
        Some(state) if state.pid == holder.pid => Ok(Some((holder, state))),
        _ => Ok(None),
    }
}

/// Like [`running`], and only once the database is ready; else [`CliError::NotRunning`].
pub fn ready(dir: &StateDir) -> anyhow::Result<(lock::Holder, State)> {
    match running(dir)? {
        Some((holder, state)) if state.ready => Ok((holder, state)),
        _ => Err(CliError::NotRunning.into()),
    }
}
