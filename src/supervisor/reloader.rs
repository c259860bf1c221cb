//! Hot reload: rebuild the database from scratch under a temporary name and swap it in only
//! when everything loaded ([`devenv_core::rebuild`]); the database it replaces is kept as an
//! automatic snapshot.
//!
//! - Debounce: after the first event, events are collected until [`QUIET`] passes without one
//!   (at most [`MAX_WAIT`]); a burst of saves gives one reload of the latest content. Events
//!   that arrive during a reload give one more reload after it.
//! - A broken file prints the loader's `path:line:col` report and "kept the previous
//!   database"; nothing here ends `devenv up` (errors are reported and the loop goes on).
//! - A change to `devenv.yaml`: new `schema`/`seed`/`watch` lists and `vars` apply at once
//!   (the `--set` values stay over them); other keys need a restart, which is said.
//! - With `branches: true`, a change of the checked-out git branch is a switch of databases,
//!   not a reload (`reloader/branches.rs`).

mod branches;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use devenv_core::files::Sources;
use devenv_core::rebuild::{Rebuilder, Target};
use devenv_core::{Config, Project};
use devenv_server::Server;
use devenv_sql::Loader;
use tokio::sync::mpsc;

use super::watch::{Trigger, Watch};
use crate::ui::Ui;

/// Quiet time that ends a burst of events.
pub const QUIET: Duration = Duration::from_millis(20);
/// Longest wait for a burst to end before reloading anyway.
pub const MAX_WAIT: Duration = Duration::from_millis(500);

/// The reload side of `devenv up`.
pub struct Reloader {
    /// The project, with the configuration in force.
    pub project: Project,
    server: Server,
    ui: &'static Ui,
    watch: Option<Watch>,
    /// Files the last build read (watched even outside the globs).
    included: Vec<PathBuf>,
    tx: mpsc::UnboundedSender<Trigger>,
    /// The rebuilder (kept: its admin connection and spare make reloads fast).
    pub rebuilder: Rebuilder,
    /// Whether the server is devenv's own: a database devenv did not make may be replaced
    /// there, and a replaced database is kept as a snapshot.
    replace_unmarked: bool,
    /// The `--set` values of `up` and `devenv reload` (over devenv.yaml's `vars:`), kept
    /// for every reload ([`crate::vars`]).
    pub set: Vec<(String, String)>,
    /// The git branch followed (`branches: true`).
    branches: Option<branches::Branches>,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader for `project`'s database on `server`; returns it and its trigger channel.
    pub fn new(
        project: Project,
        server: Server,
        ui: &'static Ui,
        replace_unmarked: bool,
    ) -> (Self, mpsc::UnboundedReceiver<Trigger>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let reloader = Reloader {
            rebuilder: Rebuilder::new(server.clone()).carry_progress(ui.carry_progress()),
            project,
            server,
            ui,
            watch: None,
            included: Vec::new(),
            tx,
            replace_unmarked,
            set: Vec::new(),
            branches: None,
        };
        (reloader, rx)
    }

    fn config(&self) -> &Config {
        &self.project.config
    }

    /// The loader for this server.
    pub fn loader(&self) -> Loader {
        devenv_core::files::loader(self.config(), &self.server)
            .events(self.ui.sql_events())
            .progress(true)
    }

    /// Builds the database from the files now (at start-up, or on a reload), carrying over
    /// the rows of the one it replaces unless `reload: fresh` or `fresh`.
    pub async fn build(&mut self, fresh: bool) -> anyhow::Result<devenv_core::rebuild::Rebuilt> {
        let sources = Sources::read(self.config())?;
        let loader = self.loader();
        let target = build_target(&self.project, &sources.digest, self.replace_unmarked, fresh);
        let rebuilt = self
            .rebuilder
            .rebuild(
                &loader,
                &target,
                &devenv_core::files::steps(self.config(), devenv_core::files::Part::All)?,
            )
            .await?;
        self.included.clone_from(&rebuilt.summary.files);
        Ok(rebuilt)
    }

    /// Starts (or restarts) the watcher on the files of the last build, or `files` when given.
    pub fn watch(&mut self, files: Option<&[PathBuf]>) {
        if let Some(files) = files {
            self.included = files.to_vec();
        }
        self.watch = None;
        let mut files = self.included.clone();
        files.extend(self.branches.as_ref().map(branches::Branches::head_file));
        match Watch::start(self.config(), &files, self.tx.clone()) {
            Ok(w) => {
                for dir in w.missing() {
                    self.ui.note(format!(
                        "{} does not exist yet; it is watched once it does",
                        w.display(dir)
                    ));
                }
                self.watch = Some(w);
            }
            Err(e) => self.ui.warn(format!(
                "{}; reload only with `devenv reload`",
                crate::ui::chain(&e.into())
            )),
        }
    }

    /// Re-arms the watcher when a watched directory was replaced, moved or appeared, and
    /// reloads (its files may have changed meanwhile); opens the live database again when a
    /// one-shot command that died left it closed ([`Rebuilder::recover`]).
    pub async fn check_world(&mut self) {
        Box::pin(self.follow_branch(false)).await;
        if self.watch.as_ref().is_some_and(Watch::needs_rearm) {
            self.watch(None);
            if self.absorbed() {
                return;
            }
            self.reload("watched directories replaced".into(), false)
                .await;
        }
        let (live, project) = (&self.project.config.database, &self.project.id);
        // An error here is the server's trouble, which its own watch reports.
        if let Ok(recovered) = self.rebuilder.recover(live, project, false).await {
            self.report_recovered(&recovered);
        }
    }

    /// Says what [`Rebuilder::recover`] put right.
    pub fn report_recovered(&self, recovered: &devenv_core::rebuild::Recovered) {
        let live = &self.project.config.database;
        if recovered.reopened {
            self.ui.warn(format!(
                "{live} was left closed to connections by a snapshot save, restore or reload that was interrupted; opened it again"
            ));
        }
        if !recovered.dropped.is_empty() {
            self.ui.note(format!(
                "removed {} half-made cop{} an interrupted snapshot save or copy left: {}",
                recovered.dropped.len(),
                if recovered.dropped.len() == 1 {
                    "y"
                } else {
                    "ies"
                },
                recovered.dropped.join(", ")
            ));
        }
    }

    /// A stop signal came during a reload: the half-built database goes (ending its load at
    /// once), the previous database stays.
    pub async fn cancelled(&mut self, why: &str) {
        self.ui.done();
        self.ui.result(format!(
            "{why}: the reload under way was cancelled; kept the previous database"
        ));
        self.rebuilder.abandon(&self.project.config.database).await;
    }

    /// Handles one burst starting with `first`; never fails: outcomes are printed.
    pub async fn handle(&mut self, first: Trigger, rx: &mut mpsc::UnboundedReceiver<Trigger>) {
        let Some(watch) = self.watch.as_ref() else {
            return;
        };
        let (mut changed, rearm) = collect_burst(first, rx, watch).await;
        if rearm {
            self.watch(None);
        }
        let config_file = self.project.root.join(devenv_core::config::FILE_NAME);
        if self.branches.is_some() {
            self.not_files(&mut changed);
            let config_changed = changed.contains(&config_file);
            if Box::pin(self.follow_branch(config_changed)).await || self.absorbed() {
                return;
            }
        }
        if changed.is_empty() && !rearm {
            return;
        }
        let watch = self.watch.as_ref();
        let mut names: Vec<String> = changed
            .iter()
            .map(|p| watch.map_or_else(|| p.display().to_string(), |w| w.display(p)))
            .collect();
        if rearm && names.is_empty() {
            names.push("watched directories replaced".into());
        }
        if changed.contains(&config_file) && !self.apply_config_change() {
            return;
        }
        self.reload(names.join(", "), false).await;
    }

    /// Prunes, makes the spare and ready copies in the background (after a one-shot command
    /// such as `devenv snapshot restore` changed the database).
    pub fn tidy(&mut self) {
        let (live, project) = (
            self.project.config.database.clone(),
            self.project.id.clone(),
        );
        self.rebuilder.tidy(&live, &project);
    }

    /// A reload by hand (`devenv reload`), with the `--set` values it handed over.
    pub async fn manual(&mut self) {
        let dir = self.project.state_dir();
        let set = match dir.take_set() {
            Ok(set) => set,
            Err(e) => {
                self.ui.warn(format!(
                    "{}; reloading without the new --set values",
                    crate::ui::chain(&e.into())
                ));
                Vec::new()
            }
        };
        let fresh = dir.take_fresh();
        let flag = if fresh { " --fresh" } else { "" };
        let what = if set.is_empty() {
            format!("by hand (devenv reload{flag})")
        } else {
            let names: Vec<&str> = set.iter().map(|(n, _)| n.as_str()).collect();
            format!("by hand (devenv reload{flag} --set {})", names.join(", "))
        };
        for (name, value) in set {
            self.set.retain(|(n, _)| *n != name);
            self.set.push((name, value));
        }
        crate::vars::apply(&mut self.project.config.vars, &self.set);
        self.reload(what, fresh).await;
    }

    /// Re-reads devenv.yaml; returns whether to reload.
    fn apply_config_change(&mut self) -> bool {
        let loaded = Config::load(&self.project.root).and_then(|c| c.check_vars().map(|()| c));
        let mut new = match loaded {
            Ok(c) => c,
            Err(e) => {
                self.ui.warn(format!(
                    "{}; keeping the running settings",
                    crate::ui::chain(&e.into())
                ));
                return false;
            }
        };
        let old = self.config();
        let restart = old.restart_needed(&new);
        if !restart.is_empty() {
            self.ui.warn(format!(
                "devenv.yaml changed {}: restart needed (`devenv down`, then `devenv up`); still running with the old settings",
                restart.join(", ")
            ));
            return false;
        }
        crate::vars::apply(&mut new.vars, &self.set);
        let files_changed =
            old.schema != new.schema || old.seed != new.seed || old.vars != new.vars;
        let watch_changed = old.watch != new.watch;
        if !files_changed && !watch_changed {
            return false;
        }
        self.ui
            .say("devenv.yaml changed the file lists or vars; applying them");
        self.project.config = new;
        if watch_changed {
            self.watch(None);
        }
        true
    }

    async fn reload(&mut self, what: String, fresh: bool) {
        let started = Instant::now();
        match self.build(fresh).await {
            Ok(rebuilt) => {
                self.ui.done();
                self.ui.result(format!(
                    "reload [{what}]: ok, {} statements in {} ms{}{}",
                    rebuilt.summary.statements,
                    started.elapsed().as_millis(),
                    rebuilt
                        .carried
                        .as_ref()
                        .map(|c| format!("; {c}"))
                        .unwrap_or_default(),
                    rebuilt
                        .kept
                        .map(|s| format!("; the replaced database is snapshot {s}"))
                        .unwrap_or_default()
                ));
                // Newly included files are watched from now on.
                let known = self.watch.as_ref().map(|w| w.extra.clone());
                let new_file = known.is_some_and(|known| {
                    self.included.iter().any(|f| {
                        let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
                        !known.contains(&f) && !self.watch.as_ref().is_some_and(|w| w.relevant(&f))
                    })
                });
                if new_file {
                    self.watch(None);
                }
            }
            Err(e) => {
                self.ui.error(&e);
                self.ui.result(format!(
                    "reload [{what}]: failed after {} ms; kept the previous database",
                    started.elapsed().as_millis()
                ));
            }
        }
    }
}

/// What a build of `project`'s live database from files hashing to `files_hash` is: the one
/// place that says whether it may replace an unmarked database and keeps the replaced one
/// (`replace_unmarked`: devenv's own server), and whether rows are carried over (`reload:
/// carry`, unless `fresh`).
fn build_target<'a>(
    project: &'a Project,
    files_hash: &'a str,
    replace_unmarked: bool,
    fresh: bool,
) -> Target<'a> {
    Target {
        live: &project.config.database,
        project: &project.id,
        files_hash,
        replace_unmarked,
        keep_replaced: replace_unmarked,
        carry: !fresh && project.config.reload == devenv_core::config::Reload::Carry,
    }
}

/// Collects a burst of triggers starting with `first`: the relevant changed paths, and whether
/// a watched directory itself changed (re-arm).
async fn collect_burst(
    first: Trigger,
    rx: &mut mpsc::UnboundedReceiver<Trigger>,
    watch: &Watch,
) -> (BTreeSet<PathBuf>, bool) {
    let mut changed = BTreeSet::new();
    let mut rearm = false;
    let mut add = |Trigger::Changed(p): Trigger| {
        if watch.is_armed_dir(&p) {
            rearm = true;
        } else if watch.relevant(&p) {
            changed.insert(p);
        }
    };
    add(first);
    let started = Instant::now();
    while started.elapsed() < MAX_WAIT {
        match tokio::time::timeout(QUIET, rx.recv()).await {
            Ok(Some(t)) => add(t),
            Ok(None) | Err(_) => break,
        }
    }
    (changed, rearm || watch.needs_rearm())
}
