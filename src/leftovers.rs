//! What earlier runs left behind: the server a supervisor that died recorded, and devenv's
//! labelled `up` containers of the project whatever the record says. Used by `up` before it
//! starts and by `down`.

use devenv_core::state::StateDir;
use devenv_core::Project;
use devenv_server::Choice;

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
#[cfg_attr(
    not(feature = "docker"),
    expect(clippy::unused_async, reason = "only the docker backend awaits here")
)]
pub async fn sweep_containers(project: &Project, ui: &Ui) -> anyhow::Result<Option<usize>> {
    #[cfg(feature = "docker")]
    {
        use devenv_server::docker;
        if matches!(project.config.backend, Choice::Native | Choice::External) {
            return Ok(Some(0));
        }
        let Ok(engine) = docker::engine_client().await else {
            return Ok(None);
        };
        let role = [
            (devenv_server::PROJECT_LABEL, project.id.as_str()),
            (devenv_server::ROLE_LABEL, "up"),
        ];
        let found = docker::find(&engine, &role).await?;
        if !found.is_empty() {
            ui.say(format!(
                "removing {} container(s) left by an earlier run: {}",
                found.len(),
                found
                    .iter()
                    .map(|f| f.names.join(","))
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        Ok(Some(docker::remove(&engine, &found).await?))
    }
    #[cfg(not(feature = "docker"))]
    {
        let _ = (project, ui, Choice::Auto);
        Ok(Some(0))
    }
}
