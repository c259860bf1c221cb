//! `devenv up`: the supervisor. Starts the server, loads schema then seed with the loader,
//! writes `.devenv/env` and `.devenv/state.json`, prints the URLs (password masked), then
//! watches the SQL files and reloads on change ([`crate::reload`]) until Ctrl-C or SIGTERM, and
//! removes everything it started.
//!
//! A SQL error prints the loader's `path:line:col` report and leaves nothing running.

use std::path::Path;
use std::time::Instant;

use devenv_core::project::{exported_vars, State, StateFiles};
use devenv_core::rebuild::RebuildError;
use devenv_core::Config;
use devenv_server::mask_url;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::backend::{self, Running};
use crate::reload::{Reloader, Trigger};
use crate::Failure;

/// Runs `devenv up` in the foreground.
pub async fn up(root: &Path, verbose: bool) -> Result<(), Failure> {
    let mut stop = StopSignals::install()?;
    // `devenv reload` sends SIGUSR1, whose default action would end the process.
    let mut manual = signal(SignalKind::user_defined1()).ok();
    let config = Config::load(root)?;
    config.check_files()?;
    let files = StateFiles::new(root);
    crate::commands::clean_leftovers(&config, &files, true).await?;

    let started = Instant::now();
    let (running, why) = backend::start(&config).await?;
    eprintln!("devenv: {why}");
    let ready_after = started.elapsed();
    // Reload never touches a server devenv did not start.
    let watch = !matches!(running, Running::External(_));
    // From here on, anything that fails must stop what was started.
    let prepared = async {
        let (reloader, rx) =
            Reloader::start(config.clone(), running.server().clone(), verbose, watch)
                .await
                .map_err(|e| match e {
                    RebuildError::Load(e) => Failure::from(e),
                    other @ RebuildError::Db { .. } => Failure::other(other),
                })?;
        let vars = write_state(&config, &running, &files)?;
        Ok::<_, Failure>((reloader, rx, vars))
    }
    .await;
    let (mut reloader, mut rx, vars) = match prepared {
        Ok(p) => p,
        Err(e) => {
            running.stop().await;
            files.remove();
            return Err(e);
        }
    };
    for (name, value) in &vars {
        eprintln!("  {name}={}", mask_url(value));
    }
    eprintln!(
        "devenv: ready in {:.2}s (server answered after {:.2}s); wrote {}",
        started.elapsed().as_secs_f64(),
        ready_after.as_secs_f64(),
        files.env().display()
    );
    if watch {
        eprintln!(
            "devenv: watching {}; `devenv reload` reloads by hand; Ctrl-C stops and removes everything",
            config.watch.join(", ")
        );
    } else {
        eprintln!("devenv: external server: no reload; Ctrl-C stops");
    }
    gitpod_persist(&vars).await;

    loop {
        tokio::select! {
            () = stop.recv() => break,
            Some(trigger) = rx.recv() => reloader.handle(trigger, &mut rx).await,
            Some(()) = recv(&mut manual) => reloader.handle(Trigger::Manual, &mut rx).await,
        }
    }
    eprintln!("devenv: stopping");
    drop(reloader);
    running.stop().await;
    files.remove();
    eprintln!("devenv: stopped, nothing left running");
    Ok(())
}

async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// Writes the state files; returns the exported variables.
fn write_state(
    config: &Config,
    running: &Running,
    files: &StateFiles,
) -> Result<Vec<(String, String)>, Failure> {
    let server = running.server();
    let vars = exported_vars(config, &server.host, server.port);
    let (container_id, container_name, server_pid) = match running {
        Running::Docker(d) => (
            Some(d.id.clone()),
            Some(devenv_core::project::container_name(config)),
            None,
        ),
        Running::Native(n) => (None, None, Some(n.pid)),
        Running::External(_) => (None, None, None),
    };
    files.write(&State {
        backend: running.backend(),
        container_id,
        container_name,
        server_pid,
        host_port: server.port,
        pid: std::process::id(),
        database: config.database.clone(),
        env: vars.clone(),
    })?;
    Ok(vars)
}

/// Inside Gitpod, persists the URLs for new terminals with `gp env`.
async fn gitpod_persist(vars: &[(String, String)]) {
    if std::env::var_os("GITPOD_WORKSPACE_ID").is_none() {
        return;
    }
    for (name, value) in vars
        .iter()
        .filter(|(n, _)| n == "CONNECTION_URL" || n == "COMPOSE_CONNECTION_URL")
    {
        match tokio::process::Command::new("gp")
            .arg("env")
            .arg(format!("{name}={value}"))
            .stdout(std::process::Stdio::null())
            .status()
            .await
        {
            Ok(s) if s.success() => eprintln!("devenv: gp env {name} persisted for new workspaces"),
            Ok(s) => eprintln!("devenv: note: `gp env {name}=...` failed ({s}); set it by hand"),
            Err(e) => {
                eprintln!("devenv: note: `gp` not usable ({e}); {name} not persisted in Gitpod");
            }
        }
    }
}

/// Ctrl-C, SIGTERM and SIGHUP, installed before anything starts: a signal that arrives
/// during start-up waits until what was started can be removed, instead of killing the
/// process and orphaning the container.
struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    fn install() -> std::io::Result<Self> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
        }
    }
}
