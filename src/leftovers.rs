//! What earlier runs left behind: the server a supervisor that died recorded, and devenv's
//! labelled `up` containers of the project whatever the record says. Used by `up` before it
//! starts and by `down`.

use devenv_core::state::StateDir;
use devenv_core::Project;

use crate::ui::Ui;

/// Removes what the recorded supervisor left (it is gone: we hold the lock).
pub async fn clean_record(dir: &StateDir, ui: &Ui) -> anyhow::Result<usize> {
    let state = match dir.read() {
        Ok(state) => state,
        Err(e) => {
            ui.warn(format!("{}; removing it", crate::ui::chain(&e.into())));
            dir.remove();
            return Ok(0);
        }
    };
    let Some(state) = state else {
        return Ok(0);
    };
    let mut stopped = 0;
    if let Some(record) = &state.server {
        if devenv_server::clean(record, false).await? {
            ui.say(format!(
                "removed the server a devenv up (pid {}) left running",
                state.pid
            ));
            stopped += 1;
        }
    }
    dir.remove();
    Ok(stopped)
}

/// Removes the project's `up` containers whatever the record says (found by label); returns
/// how many went, or `None` when the project may use Docker and no engine answers (its
/// containers could not be looked for).
pub async fn sweep_containers(project: &Project, ui: &Ui) -> anyhow::Result<Option<usize>> {
    let removed =
        devenv_server::remove_leftover_containers(&project.up_identity(), project.config.backend)
            .await?;
    if let Some(names) = removed.as_ref().filter(|n| !n.is_empty()) {
        ui.say(format!(
            "removed {} container(s) left by an earlier run: {}",
            names.len(),
            names.join(" ")
        ));
    }
    Ok(removed.map(|n| n.len()))
}
