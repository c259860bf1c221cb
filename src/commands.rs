//! `devenv down`, `devenv env`, `devenv status`, and the clean-up of leftovers they share
//! with `up`.

use std::path::Path;
use std::time::Duration;

use devenv_core::project::{format_env, project_id, EnvFormat, StateFiles};
use devenv_core::{Backend, Config};
use devenv_server::docker::{self, PROJECT_LABEL};

use crate::cli::Format;
use crate::Failure;

fn pid_alive(pid: u32) -> bool {
    i32::try_from(pid).is_ok_and(devenv_core::project::process_alive)
}

fn nix_kill(pid: i32, signal: Option<nix::sys::signal::Signal>) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).is_ok()
}

/// Removes what an earlier `devenv up` of this project left behind. With `refuse_running`, an
/// `up` that is still alive is an error instead.
pub async fn clean_leftovers(
    config: &Config,
    files: &StateFiles,
    refuse_running: bool,
) -> Result<usize, Failure> {
    let mut removed = 0;
    if let Some(state) = files.read().ok().flatten() {
        if state.pid != std::process::id() && pid_alive(state.pid) {
            if refuse_running {
                return Err(Failure {
                    code: 4,
                    message: format!(
                        "devenv up already runs for this project (pid {}); `devenv down` stops it",
                        state.pid
                    ),
                });
            }
            // Ask it to stop; it removes its own container and state.
            nix_kill(
                i32::try_from(state.pid).unwrap_or(0),
                Some(nix::sys::signal::Signal::SIGTERM),
            );
            for _ in 0..3000 {
                // It removes its state file once everything is gone.
                if !pid_alive(state.pid) || !files.state().exists() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            removed += 1;
        }
        if let Some(pid) = state.server_pid {
            if pid_alive(pid) {
                devenv_server::native::stop_pid(pid, Duration::from_secs(10));
                removed += 1;
            }
        }
    }
    // Containers are found by label, whatever the state file says.
    if config.backend != Backend::Native && config.backend != Backend::External {
        if let Ok(engine) = docker::engine_client().await {
            let found =
                docker::find_by_label(&engine, PROJECT_LABEL, &project_id(&config.root)).await?;
            if !found.is_empty() {
                eprintln!(
                    "devenv: removing {} container(s) left by an earlier run: {}",
                    found.len(),
                    found
                        .iter()
                        .map(|f| f.names.join(","))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
            }
            removed += docker::remove_containers(&engine, &found).await?;
        }
    }
    files.remove();
    Ok(removed)
}

/// `devenv down`.
pub async fn down(root: &Path) -> Result<(), Failure> {
    let config = Config::load(root)?;
    let files = StateFiles::new(root);
    let mut removed = clean_leftovers(&config, &files, false).await?;
    // The test fixture's shared server belongs to the project too.
    match devenv_fixture::stop_shared_server(root).await {
        Ok(Some(server)) => {
            eprintln!(
                "devenv: stopped the shared test server (127.0.0.1:{})",
                server.port
            );
            removed += 1;
        }
        Ok(None) => {}
        Err(e) => eprintln!("devenv: warning: could not stop the shared test server: {e}"),
    }
    if removed == 0 {
        eprintln!("devenv: nothing was running for this project");
    } else {
        eprintln!("devenv: stopped; nothing left running");
    }
    Ok(())
}

/// `devenv env`.
pub fn env(root: &Path, format: Format) -> Result<(), Failure> {
    let files = StateFiles::new(root);
    let state = files.read()?.ok_or_else(|| {
        Failure::other("no environment runs for this project; start one with `devenv up`")
    })?;
    let format = match format {
        Format::Sh => EnvFormat::Sh,
        Format::Dotenv => EnvFormat::Dotenv,
        Format::Json => EnvFormat::Json,
    };
    print!("{}", format_env(&state.env, format));
    Ok(())
}

/// `devenv status`.
pub fn status(root: &Path, json: bool) -> Result<(), Failure> {
    let files = StateFiles::new(root);
    let state = files.read()?;
    let running = state.as_ref().is_some_and(|s| pid_alive(s.pid));
    if json {
        let value = serde_json::json!({
            "running": running,
            "state": state,
        });
        println!("{value:#}");
        return Ok(());
    }
    match (&state, running) {
        (Some(s), true) => eprintln!(
            "devenv: running (pid {}), backend {}, database {} on 127.0.0.1:{}",
            s.pid, s.backend, s.database, s.host_port
        ),
        (Some(s), false) => eprintln!(
            "devenv: not running, but pid {} left state behind; `devenv down` cleans up",
            s.pid
        ),
        (None, _) => eprintln!("devenv: not running"),
    }
    Ok(())
}

/// `devenv reload`: SIGUSR1 to the running `devenv up`.
pub fn reload(root: &Path) -> Result<(), Failure> {
    let state = StateFiles::new(root)
        .read()?
        .filter(|s| pid_alive(s.pid))
        .ok_or_else(|| {
            Failure::other("no `devenv up` runs for this project; start one with `devenv up`")
        })?;
    let pid = i32::try_from(state.pid).map_err(Failure::other)?;
    if !nix_kill(pid, Some(nix::sys::signal::Signal::SIGUSR1)) {
        return Err(Failure::other(format!(
            "cannot signal devenv up (pid {pid})"
        )));
    }
    eprintln!("devenv: asked devenv up (pid {pid}) to reload; its terminal shows the outcome");
    Ok(())
}
