//! `devenv up`, the supervisor: the one live process of a project that starts its server,
//! builds or reuses its database, exports the URLs, watches the files and the server, and
//! stops what it started.
//!
//! In order:
//! 1. Take the project's lock ([`devenv_core::lock`]); a second `up` fails at once naming the
//!    first. Remove what a supervisor that died left (its record, its labelled containers).
//! 2. Record, then start the server ([`devenv_server::start`]): whatever is created is in
//!    `.devenv/state.json` before it exists. A stop signal during the start waits for the
//!    engine step under way, then removes what it made.
//! 3. The database: reused when it was built from the same files (content hash marked on
//!    it), else built under a temporary name and swapped in (the replaced one kept as an
//!    automatic snapshot). `--fresh` always builds. A stop signal cancels the load.
//! 4. Ready: `.devenv/env`, the URLs, `gp env` inside Gitpod.
//! 5. Until a stop signal: reload on file changes and on `devenv reload` (SIGUSR1), re-arm the
//!    watcher when watched directories are replaced, and watch the server: when it dies, say
//!    so, and exit with code 4 (the data is kept; the next `up` starts it again and postgres
//!    recovers it). Restarting it in place would hide whatever killed it (an OOM, a `docker
//!    kill`) and could loop; the developer decides.
//! 6. Stop: the server stops (kept data stays), the state goes, nothing runs.

pub mod reloader;
mod signals;
pub mod watch;

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use devenv_core::lock;
use devenv_core::state::{State, StateDir};
use devenv_core::{db, Project};
use devenv_server::{Backend, Handle, Record};

use crate::exit::CliError;
use crate::ui::Ui;
use reloader::Reloader;
use signals::Signals;

/// How `up` runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Rebuild even when the files did not change.
    pub fresh: bool,
    /// Throw the data away at stop, whatever `persist` says.
    pub ephemeral: bool,
    /// Running as the background supervisor of `up -d`.
    pub detached: bool,
}

/// Runs `devenv up` until a stop signal, the server's death, or a start-up failure.
pub async fn run(root: &Path, options: Options, ui: &'static Ui) -> anyhow::Result<()> {
    let mut signals = Signals::install()?;
    let mut project = Project::open(root)?;
    project.config.check_files()?;
    crate::ui::secret(&project.config.password);
    let dir = project.state_dir();
    dir.create()?;
    let command = if options.detached { "up -d" } else { "up" };
    let _lock = match lock::try_acquire(&dir.dir, command)? {
        Ok(lock) => lock,
        Err(holder) => return Err(CliError::from(holder).into()),
    };
    // `--set` values `up` handed over (`crate::vars`).
    let set = dir.take_set()?;
    crate::vars::apply(&mut project.config.vars, &set);
    if !options.detached {
        ui.tee(&dir.up_log());
    }
    clean_stale(&project, &dir, ui).await?;
    let state = Arc::new(Mutex::new(State::starting(
        &project.config.database,
        options.detached,
    )));
    dir.write(&state.lock().unwrap_or_else(PoisonError::into_inner))?;
    let started = Instant::now();
    let handle = match start_server(&project, &dir, &state, options, ui, &mut signals).await {
        Ok(handle) => handle,
        Err(e) => {
            dir.remove();
            ui.done();
            return Err(e);
        }
    };
    let server_after = started.elapsed();
    let prepared = tokio::select! {
        r = Box::pin(prepare(&project, &handle, options, ui)) => r,
        why = signals.stop() => Err(CliError::Cancelled(why).into()),
    };
    ui.done();
    let (mut reloader, mut rx) = match prepared {
        Ok(p) => p,
        Err(e) => {
            handle.stop().await;
            dir.remove();
            return Err(e);
        }
    };
    reloader.set = set;
    let vars = ready(&project, &dir, &state, &handle, options, ui)?;
    ui.result(format!(
        "ready in {:.2}s (server answered after {:.2}s); wrote {}",
        started.elapsed().as_secs_f64(),
        server_after.as_secs_f64(),
        dir.env().display()
    ));
    if options.detached {
        crate::commands::up::tell_parent_ready();
    }
    gitpod_persist(&vars, ui).await;
    let outcome = Box::pin(supervise(&handle, &mut reloader, &mut rx, &mut signals)).await;
    ui.say("stopping");
    if handle.backend() == Backend::External {
        reloader
            .rebuilder
            .drop_spare(&project.config.database)
            .await;
    } else {
        reloader.rebuilder.settle().await;
    }
    drop(reloader);
    if !handle.stop().await {
        // The engine does not answer: the record stays (not ready, no URLs), so that `devenv
        // down` or the next `up` removes the container once it does.
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ready = false;
        state.env.clear();
        let _ = dir.write(&state);
        let _ = std::fs::remove_file(dir.env());
        ui.warn("the Docker engine does not answer, so the container could not be removed; `devenv down` removes it once the engine is back (the data is kept)");
        return outcome;
    }
    dir.remove();
    let kept = handle.record().keeps_data() && outcome.is_ok();
    ui.result(if kept && handle.backend() == Backend::Docker {
        "stopped, nothing left running; the data and the network are kept (`devenv down --volumes` forgets them)"
    } else if kept {
        "stopped, nothing left running; the data is kept (`devenv down --volumes` forgets it)"
    } else {
        "stopped, nothing left running"
    });
    outcome
}

/// Writes the ready state and `.devenv/env`, prints the URLs (masked) and what is watched;
/// returns the exported variables.
fn ready(
    project: &Project,
    dir: &StateDir,
    state: &Mutex<State>,
    handle: &Handle,
    options: Options,
    ui: &Ui,
) -> anyhow::Result<Vec<(String, String)>> {
    let vars = devenv_core::env::exported_vars(&project.config, handle.server(), handle.backend());
    {
        let mut state = state.lock().unwrap_or_else(PoisonError::into_inner);
        state.ready = true;
        state.port = Some(handle.server().port());
        state.url = Some(handle.server().url(""));
        state.env.clone_from(&vars);
        dir.write(&state)?;
    }
    for (name, value) in &vars {
        ui.result(format!("  {name}={}", devenv_server::mask(value)));
    }
    ui.say(format!(
        "watching {}; `devenv reload` reloads by hand; {}",
        project.config.watch.join(", "),
        if options.detached {
            "`devenv down` stops it"
        } else {
            "Ctrl-C stops it"
        }
    ));
    Ok(vars)
}

/// The loop of a ready supervisor; returns when it should stop.
async fn supervise(
    handle: &Handle,
    reloader: &mut Reloader,
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<watch::Trigger>,
    signals: &mut Signals,
) -> anyhow::Result<()> {
    // The server's watch and the world's are polled once a second: the live database left
    // closed by a one-shot command that died has no event to wait on.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let died = handle.exited();
    tokio::pin!(died);
    loop {
        let work = tokio::select! {
            asked = signals.next() => match asked {
                signals::Asked::Stop(_) => return Ok(()),
                signals::Asked::Reload => Work::Manual,
                signals::Asked::Tidy => {
                    reloader.tidy();
                    continue;
                }
            },
            Some(trigger) = rx.recv() => Work::Burst(trigger),
            _ = tick.tick() => Work::CheckWorld,
            reason = &mut died => return Err(CliError::ServerDied(reason).into()),
        };
        // A stop signal cancels the reload under way: the previous database stays. Once its
        // swap has begun, it ends first (milliseconds; the new database stays).
        let swapping = reloader.rebuilder.swapping();
        let cancelled = {
            let done = async {
                match work {
                    Work::Manual => reloader.manual().await,
                    Work::Burst(trigger) => reloader.handle(trigger, rx).await,
                    Work::CheckWorld => reloader.check_world().await,
                }
            };
            tokio::pin!(done);
            let why = tokio::select! {
                () = &mut done => None,
                why = signals.stop() => Some(why),
                reason = &mut died => return Err(CliError::ServerDied(reason).into()),
            };
            if why.is_some() && swapping.load(std::sync::atomic::Ordering::SeqCst) {
                done.await;
                return Ok(());
            }
            why
        };
        if let Some(why) = cancelled {
            reloader.cancelled(why).await;
            return Ok(());
        }
    }
}

/// What the supervisor's loop does next.
enum Work {
    /// `devenv reload`.
    Manual,
    /// A burst of file events starting with this one.
    Burst(watch::Trigger),
    /// The once-a-second look at the watcher and the live database.
    CheckWorld,
}

/// Removes what a supervisor that is gone left behind: its recorded server, its labelled
/// containers. Runs under the lock, so the record's writer is not running.
async fn clean_stale(project: &Project, dir: &StateDir, ui: &Ui) -> anyhow::Result<()> {
    let state = match dir.read() {
        Ok(state) => state,
        Err(e) => {
            ui.warn(format!("{}; ignoring it", crate::ui::chain(&e.into())));
            dir.remove();
            None
        }
    };
    if let Some(state) = state {
        ui.note(format!(
            "a devenv up (pid {}) ended without cleaning up; removing what it left",
            state.pid
        ));
        if let Some(record) = &state.server {
            devenv_server::clean(record, false).await?;
        }
        dir.remove();
    }
    // Without an engine there is nothing it could have left running there.
    let _ = crate::leftovers::sweep_containers(project, ui).await?;
    Ok(())
}

/// Records, then starts the server. A stop signal during the start lets the step under way
/// finish (an engine call cannot be taken back half-way), then removes what it made.
async fn start_server(
    project: &Project,
    dir: &StateDir,
    state: &Arc<Mutex<State>>,
    options: Options,
    ui: &'static Ui,
    signals: &mut Signals,
) -> anyhow::Result<Handle> {
    let spec = project.up_spec(project.storage(options.ephemeral), ui.server_progress());
    let external = project.external_server()?;
    let choice = project.config.backend;
    let (dir2, state2) = (dir.clone(), state.clone());
    let mut record = move |record: &Record| {
        let mut state = state2.lock().unwrap_or_else(PoisonError::into_inner);
        state.server = Some(record.clone());
        dir2.write(&state).map_err(std::io::Error::other)
    };
    let mut task = tokio::spawn(async move {
        devenv_server::start(choice, &spec, external.as_ref(), &mut record).await
    });
    let started = tokio::select! {
        r = &mut task => r,
        why = signals.stop() => {
            ui.done();
            ui.say(format!("{why}: waiting for the server start under way, then removing it"));
            if let Ok(Ok((handle, _))) = task.await {
                handle.stop().await;
            }
            let record = state.lock().unwrap_or_else(PoisonError::into_inner).server.clone();
            if let Some(record) = record {
                devenv_server::clean(&record, false).await?;
            }
            return Err(CliError::Cancelled(why).into());
        }
    };
    let (handle, why) = started.map_err(|e| anyhow::anyhow!("the server start stopped: {e}"))??;
    ui.done();
    ui.say(why);
    Ok(handle)
}

/// The database: reused when built from the same files, else built and swapped in. Returns
/// the reloader (watching) and its trigger channel.
async fn prepare(
    project: &Project,
    handle: &Handle,
    options: Options,
    ui: &'static Ui,
) -> anyhow::Result<(
    Reloader,
    tokio::sync::mpsc::UnboundedReceiver<watch::Trigger>,
)> {
    let server = handle.server().clone();
    let external = handle.backend() == Backend::External;
    let (mut reloader, rx) = Reloader::new(project.clone(), server.clone(), ui, !external);
    let sources = devenv_core::files::Sources::read(&project.config)?;
    let live = &project.config.database;
    // What an earlier run or a one-shot command killed half-way left: a live database
    // closed to connections, half-made copies.
    let recovered = reloader.rebuilder.recover(live, &project.id, true).await?;
    reloader.report_recovered(&recovered);
    // A checkout while `up` was down is a branch switch before anything else.
    Box::pin(reloader.start_branches()).await;
    let admin = db::admin(&server).await?;
    let marks = db::Marks::read(&admin, live).await?;
    drop(admin);
    let ours = marks.as_ref().is_some_and(|m| m.is_of(&project.id));
    let same_files = marks
        .as_ref()
        .and_then(|m| m.files.as_deref())
        .is_some_and(|h| h == sources.digest);
    if ours && same_files && !options.fresh {
        let built = marks
            .as_ref()
            .and_then(|m| m.built)
            .map_or_else(|| "?".to_owned(), crate::ui::since);
        ui.result(format!("reusing {live}, unchanged since {built}"));
        let files: Vec<_> = sources.inputs.iter().map(|i| i.path.clone()).collect();
        reloader.rebuilder.prepare_spare(live, &project.id);
        reloader.watch(Some(&files));
        return Ok((reloader, rx));
    }
    let why = match (&marks, options.fresh) {
        (None, _) => "a new database",
        (Some(_), true) => "--fresh",
        (Some(_), false) if ours => "the files changed since it was built",
        (Some(_), false) => "the database there was not built by devenv",
    };
    let files = project
        .config
        .sql_files()
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    ui.loading(format!("loading {files} ({why})"));
    let rebuilt = reloader.build(options.fresh).await?;
    ui.done();
    ui.result(format!(
        "loaded {files} ({} statements, {} COPY rows) in {} ms ({why}){}{}",
        rebuilt.summary.statements,
        rebuilt.summary.copy_rows,
        rebuilt.total.as_millis(),
        rebuilt
            .carried
            .as_ref()
            .map(|c| format!("; {c}"))
            .unwrap_or_default(),
        rebuilt
            .kept
            .map(|s| format!("; the database it replaced is snapshot {s}"))
            .unwrap_or_default()
    ));
    reloader.watch(None);
    Ok((reloader, rx))
}

/// Inside Gitpod, persists the URLs for new terminals with `gp env`.
async fn gitpod_persist(vars: &[(String, String)], ui: &Ui) {
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
            Ok(s) if s.success() => ui.say(format!("gp env {name} persisted for new workspaces")),
            Ok(s) => ui.note(format!("`gp env {name}=...` failed ({s}); set it by hand")),
            Err(e) => ui.note(format!(
                "`gp` not usable ({e}); {name} not persisted in Gitpod"
            )),
        }
    }
}
