//! `devenv down`: stops the project's supervisor (foreground or detached; the lock's holder),
//! removes what a supervisor that died left (by its record, and devenv's labelled containers),
//! stops the fixture's shared test server, and with `--volumes` forgets the kept data
//! (volume or data directory, snapshots included), naming it first, and the Docker network
//! kept with it.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::Args;
use devenv_core::lock;
use devenv_core::state::StateDir;
use devenv_core::Project;
use devenv_server::{Choice, Role, Storage};

use crate::exit::CliError;
use crate::ui::Ui;

/// `devenv down` arguments.
#[derive(Debug, Clone, Args)]
pub struct DownArgs {
    /// Also remove the kept data (Docker volume or data directory, snapshots included).
    #[arg(short = 'v', long)]
    pub volumes: bool,
}

/// How long a supervisor may take to stop before `down` gives up waiting.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Runs `devenv down`.
pub async fn run(root: &Path, args: DownArgs, ui: &Ui) -> anyhow::Result<()> {
    let project = Project::open(root)?;
    let dir = StateDir::new(&project.state_dir());
    let mut stopped = 0;
    let mut engine_silent = false;
    if let Some(holder) = lock::holder(&dir.dir) {
        ui.say(format!(
            "stopping devenv {} (pid {})",
            holder.command, holder.pid
        ));
        devenv_server::process::signal(holder.pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + STOP_WAIT;
        // The lock goes a moment before the process: wait for both, so nothing runs after.
        while lock::holder(&dir.dir).is_some_and(|h| h.pid == holder.pid)
            || devenv_server::process::alive(holder.pid)
        {
            if Instant::now() > deadline {
                anyhow::bail!(
                    "devenv {} (pid {}) did not stop within {}s",
                    holder.command,
                    holder.pid,
                    STOP_WAIT.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stopped += 1;
    }
    if dir.dir.is_dir() {
        // Held while cleaning up, so an `up` cannot start in between.
        let _lock = match lock::try_acquire(&dir.dir, "down")? {
            Ok(lock) => lock,
            Err(holder) => return Err(CliError::from(holder).into()),
        };
        stopped += crate::leftovers::clean_record(&dir, ui).await?;
        match crate::leftovers::sweep_containers(&project, ui).await? {
            Some(n) => stopped += n,
            None => engine_silent = true,
        }
        if args.volumes {
            forget_data(&project, ui).await?;
        }
    }
    match devenv_testdbs::stop_shared_server(&project).await {
        Ok(Some(server)) => {
            ui.say(format!(
                "stopped the shared test server ({} on 127.0.0.1:{})",
                server.backend(),
                server.port
            ));
            stopped += 1;
        }
        Ok(None) => {}
        Err(e) => ui.warn(format!(
            "could not stop the shared test server: {}",
            crate::ui::chain(&e.into())
        )),
    }
    if engine_silent {
        ui.warn("the Docker engine does not answer, so this project's containers could not be looked for; run `devenv down` again once it answers");
    }
    ui.result(if stopped == 0 && engine_silent {
        "nothing found running (containers not checked: no Docker engine answered)"
    } else if stopped == 0 {
        "nothing was running for this project"
    } else if args.volumes {
        "stopped; nothing left running, no data kept"
    } else {
        "stopped; nothing left running"
    });
    Ok(())
}

/// On an external server: removes devenv's own databases of the project (snapshots and their
/// copies, the spare, the fixture's templates and leftover test databases), naming them; the
/// project's database stays (the data lives there; `devenv db drop` drops it).
async fn forget_on_external(project: &Project, ui: &Ui) -> anyhow::Result<()> {
    let Some(server) = project.external_server()? else {
        return Ok(());
    };
    let live = &project.config.database;
    let admin = devenv_core::db::admin(&server).await?;
    let dropped = devenv_core::snapshot::remove_all_copies(&admin, &project.id, live).await?;
    if !dropped.is_empty() {
        ui.say(format!(
            "removed devenv's databases of {live} on the external server: {}",
            dropped.join(", ")
        ));
    }
    if let Some(pruned) =
        devenv_testdbs::inventory::prune(&project.root, devenv_testdbs::inventory::Prune::All)
            .await?
    {
        let n = pruned.test_dbs.len() + pruned.templates.len();
        if n > 0 {
            ui.say(format!(
                "removed {n} test database(s) and template(s) of the fixture there"
            ));
        }
    }
    ui.note(format!(
        "backend external: {live} itself stays on that server (`devenv db drop` drops it)"
    ));
    Ok(())
}

/// Removes the kept data of both local backends (whichever exists), naming it first.
async fn forget_data(project: &Project, ui: &Ui) -> anyhow::Result<()> {
    if project.config.backend == Choice::External {
        return forget_on_external(project, ui).await;
    }
    let identity = project.identity(Role::Up, &project.state_dir());
    let run_as = devenv_server::native::run_as().ok().flatten();
    let layout =
        devenv_server::native::Layout::new(&identity, Storage::Persistent, run_as.as_ref());
    if layout.has_cluster() || layout.data_root.as_ref().is_some_and(|r| r.exists()) {
        ui.say(format!(
            "removing the kept data in {} ({} MB, snapshots included)",
            layout
                .data_root
                .as_ref()
                .unwrap_or(&layout.data_dir)
                .display(),
            layout.data_size() / 1_000_000
        ));
        layout.remove_data();
    }
    #[cfg(feature = "docker")]
    if let Ok(engine) = devenv_server::docker::engine_client().await {
        let volume = identity.volume_name();
        if devenv_server::docker::forget_volume(&engine, &volume).await? {
            ui.say(format!(
                "removed the volume {volume} (the kept data, snapshots included)"
            ));
        }
        // Kept with the data; removed with it unless another project's container uses it.
        devenv_server::docker::forget_network(&engine, &project.config.network).await;
    }
    Ok(())
}
