//! `devenv up`: the supervisor. Starts the server, loads schema then seed with the loader,
//! writes `.devenv/env` and `.devenv/state.json`, prints the URLs (password masked), then runs
//! until Ctrl-C or SIGTERM and removes everything it started.
//!
//! A SQL error prints the loader's `path:line:col` report and leaves nothing running.

use std::path::Path;
use std::time::Instant;

use devenv_core::project::{exported_vars, State, StateFiles};
use devenv_core::{db, Config};
use devenv_server::mask_url;
use devenv_sql::{stderr_events, Loader};

use crate::backend::{self, Running};
use crate::Failure;

/// Runs `devenv up` in the foreground.
pub async fn up(root: &Path, verbose: bool) -> Result<(), Failure> {
    let config = Config::load(root)?;
    config.check_files()?;
    let files = StateFiles::new(root);
    crate::commands::clean_leftovers(&config, &files, true).await?;

    let started = Instant::now();
    let (running, why) = backend::start(&config).await?;
    eprintln!("devenv: {why}");
    let ready_after = started.elapsed();
    // From here on, anything that fails must stop what was started.
    let result = prepare(&config, &running, &files, verbose).await;
    let vars = match result {
        Ok(vars) => vars,
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
        "devenv: ready in {:.2}s (server answered after {:.2}s); wrote {}; Ctrl-C stops and removes it",
        started.elapsed().as_secs_f64(),
        ready_after.as_secs_f64(),
        files.env().display()
    );
    gitpod_persist(&vars).await;

    wait_for_stop_signal().await;
    eprintln!("devenv: stopping");
    running.stop().await;
    files.remove();
    eprintln!("devenv: stopped, nothing left running");
    Ok(())
}

/// Loads the database and writes the state files; returns the exported variables.
async fn prepare(
    config: &Config,
    running: &Running,
    files: &StateFiles,
    verbose: bool,
) -> Result<Vec<(String, String)>, Failure> {
    let server = running.server();
    if !matches!(running, Running::Docker(_)) {
        // The docker image creates POSTGRES_DB itself; other backends start without it.
        let admin = db::admin(server).await?;
        db::drop_if_exists(&admin, &config.database).await?;
        db::create(&admin, &config.database).await?;
    }
    let loader =
        Loader::new(server.config("postgres"), &config.root).events(stderr_events(verbose));
    let summary = loader
        .load_files(&config.database, &config.sql_files())
        .await?;
    eprintln!(
        "devenv: loaded {} ({} statements, {} COPY rows) in {} ms",
        config
            .sql_files()
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", "),
        summary.statements,
        summary.copy_rows,
        summary.elapsed.as_millis()
    );
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

async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hup = signal(SignalKind::hangup()).ok();
    let term = async {
        match term.as_mut() {
            Some(s) => drop(s.recv().await),
            None => std::future::pending().await,
        }
    };
    let hup = async {
        match hup.as_mut() {
            Some(s) => drop(s.recv().await),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
        () = hup => {}
    }
}
