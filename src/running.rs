//! Which supervisor runs for a project, checked against the world: the holder of the project's
//! lock, with the state it wrote. Commands act on that and on nothing a file says alone.

use std::path::Path;

use devenv_core::lock;
use devenv_core::project::STATE_DIR;
use devenv_core::state::{State, StateDir};
use devenv_core::ConfigError;

use crate::exit::CliError;

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
