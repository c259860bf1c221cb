//! `devenv snapshot save|restore|list|rm`: copies of the live database kept in the running
//! server's cluster ([`devenv_core::snapshot`]). Restoring goes through the same swap as a
//! reload: clients are disconnected, the URLs do not change, and the database it replaces is
//! kept as an automatic snapshot.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use clap::{Args, Subcommand};
use devenv_core::rebuild::{Rebuilder, Target};
use devenv_core::{db, snapshot, Project};
use devenv_server::Server;

use crate::ui::Ui;

/// `devenv snapshot` subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum SnapshotCommand {
    /// Save the live database as a snapshot (its clients are disconnected for the moment of
    /// the copy).
    ///
    /// Example: `devenv snapshot save before-migration`
    Save {
        /// Its name (default: the time).
        name: Option<String>,
    },
    /// Swap a copy of a snapshot in as the live database.
    ///
    /// Example: `devenv snapshot restore before-migration`
    Restore {
        /// The snapshot.
        name: String,
    },
    /// List the snapshots: name, created, size, manual or automatic.
    ///
    /// Example: `devenv snapshot list --json`
    List {
        /// Print one JSON array on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Remove a snapshot.
    ///
    /// Example: `devenv snapshot rm before-migration`
    Rm {
        /// The snapshot.
        name: String,
    },
}

/// `devenv snapshot` arguments.
#[derive(Debug, Clone, Args)]
pub struct SnapshotArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: SnapshotCommand,
}

/// Runs `devenv snapshot ...`.
pub async fn run(root: &Path, args: SnapshotArgs, ui: &Ui) -> anyhow::Result<()> {
    let project = Project::open(root)?;
    let dir = crate::running::state_dir(&project.root)?;
    let (holder, state) = crate::running::ready(&dir)?;
    let server = match project.external_server()? {
        Some(external) => external,
        None => Server::on(
            &state.host(),
            state.port.unwrap_or_default(),
            &project.config.user,
            &project.config.password,
        ),
    };
    let live = project.config.database.clone();
    let admin = db::admin(&server).await?;
    match args.command {
        SnapshotCommand::Save { name } => {
            let name = name.unwrap_or_else(snapshot::timestamp);
            ui.say(format!(
                "saving {live} as snapshot {name}: its clients are disconnected for the moment of the copy"
            ));
            let started = Instant::now();
            let saved = snapshot::save(&admin, &project.id, &live, &name).await?;
            let took = started.elapsed();
            // A second copy, made from the snapshot (no client is disturbed), so that a
            // restore only renames.
            snapshot::prepare_ready(&admin, &project.id, &live, &saved).await?;
            ui.result(format!(
                "saved snapshot {} ({} MB) in {} ms",
                saved.name,
                saved.size_bytes / 1_000_000,
                took.as_millis()
            ));
        }
        SnapshotCommand::Restore { name } => {
            let found = snapshot::find(&admin, &live, &name).await?;
            let started = Instant::now();
            let mut rebuilder = Rebuilder::new(server.clone()).one_shot();
            let files = devenv_core::files::Sources::read(&project.config)
                .map(|s| s.digest)
                .unwrap_or_default();
            let target = Target {
                live: &live,
                project: &project.id,
                // Marked with the files as they are: the restored data is what the developer
                // asked for, so the next `up` keeps it; a change to the files rebuilds.
                files_hash: &files,
                replace_unmarked: project.external_server()?.is_none(),
                keep_replaced: true,
            };
            let restored = rebuilder.restore(&found.database, &target).await?;
            // The supervisor prunes, makes the spare and the next ready copy in its own time.
            devenv_server::process::signal(holder.pid, nix::sys::signal::Signal::SIGUSR2);
            ui.result(format!(
                "restored snapshot {name} as {live} in {} ms (clients were disconnected; the URLs did not change){}",
                started.elapsed().as_millis(),
                restored
                    .kept
                    .map(|s| format!("; the database it replaced is snapshot {s}"))
                    .unwrap_or_default()
            ));
        }
        SnapshotCommand::List { json } => {
            let all = snapshot::list(&admin, &live).await?;
            if json {
                crate::output::json(&serde_json::json!(all
                    .iter()
                    .map(|s| serde_json::json!({
                        "name": s.name,
                        "database": s.database,
                        "created_at": crate::output::timestamp(s.created),
                        "size_bytes": s.size_bytes,
                        "kind": s.kind,
                    }))
                    .collect::<Vec<_>>()))?;
            } else {
                let mut text = format!("{:<32} {:<24} {:>10}  kind\n", "name", "created", "size");
                for s in &all {
                    let _ = writeln!(
                        text,
                        "{:<32} {:<24} {:>7} MB  {}",
                        s.name,
                        crate::ui::since(s.created),
                        s.size_bytes / 1_000_000,
                        match s.kind {
                            snapshot::Kind::Manual => "manual",
                            snapshot::Kind::Automatic => "automatic",
                        }
                    );
                }
                crate::output::stdout(&text)?;
            }
        }
        SnapshotCommand::Rm { name } => {
            let removed = snapshot::remove(&admin, &live, &name).await?;
            ui.result(format!("removed snapshot {}", removed.name));
        }
    }
    Ok(())
}
