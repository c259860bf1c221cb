//! `devenv snapshot save|restore|list|rm`: copies of the live database kept in the running
//! server's cluster ([`devenv_core::snapshot`]). Restoring goes through the same swap as a
//! reload: clients are disconnected, the URLs do not change, and the database it replaces is
//! kept as an automatic snapshot.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

use clap::{Args, Subcommand};
use devenv_core::rebuild::{Rebuilder, Target};
use devenv_core::{db, snapshot, CoreError, Environment};
use devenv_server::Server;

use crate::exit::CliError;
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
    /// List the snapshots: name, created, size, manual, automatic or branch (a git branch's database).
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
    let environment = Environment::open(root)?;
    let supervisor = environment.ready()?;
    let server = environment.server()?.ok_or(CoreError::NotRunning)?;
    let project = environment.project();
    let live = project.config.database.clone();
    let admin = db::admin(&server).await?;
    let mut on = Guard {
        server: &server,
        admin: &admin,
        live: &live,
        project: &project.id,
        record: supervisor.record(),
        signals: Interrupts::install()?,
    };
    match args.command {
        SnapshotCommand::Save { name } => {
            let name = name.unwrap_or_else(snapshot::timestamp);
            if devenv_core::branch::branch_of(&name).is_some() {
                return Err(CliError::Refused {
                    what: format!("save a snapshot called {name}"),
                    why: format!(
                        "names starting with `{}` are those of git branches' databases (branches: true); pick another name",
                        devenv_core::branch::PREFIX
                    ),
                }
                .into());
            }
            ui.say(format!(
                "saving {live} as snapshot {name}: its clients are disconnected for the moment of the copy"
            ));
            let started = Instant::now();
            let saved = on
                .guarded(
                    snapshot::save(&admin, &project.id, &live, &name),
                    "no snapshot was made",
                    ui,
                )
                .await?;
            let took = started.elapsed();
            // A second copy, made from the snapshot (no client is disturbed), so that a
            // restore only renames. An interruption here leaves the snapshot whole; the
            // supervisor makes the copy in its own time.
            on.guarded(
                snapshot::prepare_ready(&admin, &project.id, &live, &saved),
                "the snapshot is saved; devenv up makes its ready copy",
                ui,
            )
            .await?;
            ui.result(format!(
                "saved snapshot {} ({}) in {} ms",
                saved.name,
                megabytes(saved.size_bytes),
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
                // A restore gives back the snapshot as it was.
                carry: false,
            };
            let restored = on
                .guarded(
                    Box::pin(rebuilder.restore(&found.database, &target)),
                    "the live database was not replaced",
                    ui,
                )
                .await?;
            // The supervisor prunes, makes the spare and the next ready copy in its own time.
            devenv_server::process::signal(supervisor.pid(), nix::sys::signal::Signal::SIGUSR2);
            ui.result(format!(
                "restored snapshot {name} as {live} in {} ms (clients were disconnected; the URLs did not change){}",
                started.elapsed().as_millis(),
                restored
                    .kept
                    .map(|s| format!("; the database it replaced is snapshot {s}"))
                    .unwrap_or_default()
            ));
        }
        SnapshotCommand::List { json } => list(&admin, &live, json).await?,
        SnapshotCommand::Rm { name } => {
            let removed = snapshot::remove(&admin, &live, &name).await?;
            ui.result(format!("removed snapshot {}", removed.name));
        }
    }
    Ok(())
}

/// `devenv snapshot list [--json]`.
async fn list(admin: &db::Admin, live: &str, json: bool) -> anyhow::Result<()> {
    let all = snapshot::list(admin, live).await?;
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
                "{:<32} {:<24} {:>10}  {}",
                s.name,
                crate::ui::since(s.created),
                megabytes(s.size_bytes),
                match s.kind {
                    snapshot::Kind::Manual => "manual",
                    snapshot::Kind::Automatic => "automatic",
                    snapshot::Kind::Branch => "branch",
                }
            );
        }
        crate::output::stdout(&text)?;
    }
    Ok(())
}

/// A size for people; `?` when unknown.
fn megabytes(bytes: Option<i64>) -> String {
    bytes.map_or_else(|| "? MB".to_owned(), |b| format!("{} MB", b / 1_000_000))
}

/// The live database a one-shot command works on, and how to put it right after an
/// interruption.
struct Guard<'a> {
    server: &'a Server,
    admin: &'a db::Admin,
    live: &'a str,
    project: &'a str,
    record: Option<&'a devenv_server::Record>,
    /// Installed before any work, so a signal between two steps is not lost either.
    signals: Interrupts,
}

/// Ctrl-C and SIGTERM, caught for the whole command.
struct Interrupts {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

impl Interrupts {
    fn install() -> std::io::Result<Interrupts> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Interrupts {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// The next one, named.
    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.interrupt.recv() => "Ctrl-C",
            _ = self.terminate.recv() => "SIGTERM",
        }
    }
}

impl Guard<'_> {
    /// Runs `work` (which may close the live database for a moment) so that no interruption
    /// leaves the live database closed: Ctrl-C or SIGTERM cancels the statement under way and
    /// the work's own error path opens the database again and drops its half-made copy
    /// (`left` says what the user is left with); a lost connection (the server crashed or
    /// restarted, e.g. on a full disk) is followed by connecting again and opening it. A
    /// SIGKILL cannot be caught: the supervisor opens the database again within a second
    /// (`Rebuilder::recover`).
    async fn guarded<T>(
        &mut self,
        work: impl std::future::Future<Output = Result<T, CoreError>>,
        left: &str,
        ui: &Ui,
    ) -> anyhow::Result<T> {
        tokio::pin!(work);
        let mut interrupted = None;
        let result = loop {
            tokio::select! {
                r = &mut work => break r,
                why = self.signals.next(), if interrupted.is_none() => interrupted = Some(why),
            }
            ui.say(format!(
                "{}: cancelling; {} stays as it was",
                interrupted.unwrap_or_default(),
                self.live
            ));
            let _ = self.server.tls().cancel(&self.admin.cancel_token()).await;
        };
        let e = match (result, interrupted) {
            (Ok(done), None) => return Ok(done),
            (Ok(done), Some(why)) => {
                ui.note(format!("{why} came too late to cancel: it was done"));
                return Ok(done);
            }
            (Err(e), _) if e.is_connection_lost() || matches!(e, CoreError::DiskFull { .. }) => e,
            (Err(_), Some(why)) => {
                return Err(CliError::Interrupted {
                    why,
                    left: format!("{left}; {} is open", self.live),
                }
                .into())
            }
            (Err(e), None) => return Err(e.into()),
        };
        // The server went away under the work (or its disk is full): the live database may be
        // closed with nobody left to open it.
        let log = match self.record {
            Some(record) => record.log_tail(50).await.unwrap_or_default(),
            None => String::new(),
        };
        let disk_full =
            matches!(e, CoreError::DiskFull { .. }) || log.contains("No space left on device");
        let wait = std::time::Duration::from_secs(30);
        let reopened =
            db::reopen_after_lost_connection(self.server, self.live, self.project, wait).await;
        let state = match reopened {
            Ok(true) => format!("{} was opened to connections again", self.live),
            Ok(false) => format!("{} is open", self.live),
            Err(_) => format!(
                "the server does not answer yet; `devenv up` opens {} again once it does",
                self.live
            ),
        };
        if disk_full {
            return Err(CliError::DiskFull {
                where_: self.record.map_or_else(
                    || "the server's data directory".to_owned(),
                    devenv_server::Record::data_location,
                ),
                advice: format!(
                    "{left}, {state}, no committed row is lost; free space, then try again"
                ),
            }
            .into());
        }
        Err(anyhow::Error::new(e).context(format!("the server went away ({left}; {state})")))
    }
}
