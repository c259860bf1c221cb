//! Hot reload while `devenv up` runs: watch the SQL files, rebuild the database from scratch
//! under a temporary name, swap it in only when everything loaded.
//!
//! - notify watches the directories the `watch` globs name (recursively where the glob needs
//!   it), the directories of files the loader included with `\i`, and `devenv.yaml`. Only
//!   create, write, rename and delete events count (reading the files during a reload must
//!   not trigger another one).
//! - Debounce: after the first event, events are collected until [`QUIET`] passes without one
//!   (at most [`MAX_WAIT`]); a burst of saves gives one reload of the latest content. Events
//!   that arrive during a reload give one more reload after it. Editors that write a temp file
//!   and rename it over the original, or delete and recreate, produce events on the watched
//!   path either way.
//! - A broken file prints the loader's `path:line:col` report and "kept the previous
//!   database"; the supervisor goes on watching. Nothing here ends `devenv up`.
//! - `devenv reload` (another terminal) sends SIGUSR1 to `devenv up`: a reload by hand.
//! - A change to `devenv.yaml`: new `schema`/`seed`/`watch` lists apply at once (reload);
//!   other keys need a restart, which is said.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use devenv_core::rebuild::{RebuildError, Rebuilder};
use devenv_core::Config;
use devenv_server::Server;
use devenv_sql::Loader;
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// Quiet time that ends a burst of events.
pub const QUIET: Duration = Duration::from_millis(20);
/// Longest wait for a burst to end before reloading anyway.
pub const MAX_WAIT: Duration = Duration::from_millis(500);

/// What asks for a reload.
#[derive(Debug)]
pub enum Trigger {
    /// A watched path changed.
    Changed(PathBuf),
    /// `devenv reload` (SIGUSR1).
    Manual,
}

/// The file watcher; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    globs: GlobSet,
    extra: BTreeSet<PathBuf>,
    root: PathBuf,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// The directory a glob's literal prefix names, and whether its rest needs recursion.
fn glob_base(glob: &str) -> (PathBuf, bool) {
    let parts: Vec<&str> = glob.split('/').collect();
    // The last part is a file name (or pattern); directories before the first pattern count.
    let literal = parts[..parts.len() - 1]
        .iter()
        .take_while(|p| !p.contains(['*', '?', '[', '{']))
        .count();
    let base: PathBuf = parts[..literal].iter().collect();
    let rest = &parts[literal..];
    let recursive = rest.len() > 1 || rest.iter().any(|p| p.contains("**"));
    (base, recursive)
}

impl Watch {
    /// Starts watching for `config` plus `included` files (paths on disk).
    pub fn start(
        config: &Config,
        included: &[PathBuf],
        tx: mpsc::UnboundedSender<Trigger>,
    ) -> Result<Watch, String> {
        let mut builder = GlobSetBuilder::new();
        for glob in &config.watch {
            builder.add(Glob::new(glob).map_err(|e| format!("watch glob `{glob}`: {e}"))?);
        }
        let globs = builder.build().map_err(|e| e.to_string())?;
        let root = std::fs::canonicalize(&config.root).unwrap_or_else(|_| config.root.clone());
        let extra: BTreeSet<PathBuf> = included
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .chain([root.join(devenv_core::config::FILE_NAME)])
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                if matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) && !matches!(
                    event.kind,
                    EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                ) {
                    for path in event.paths {
                        let _ = tx.send(Trigger::Changed(path));
                    }
                }
            })
            .map_err(|e| watch_error(&e))?;
        let mut dirs: BTreeSet<(PathBuf, bool)> = config
            .watch
            .iter()
            .map(|g| {
                let (base, recursive) = glob_base(g);
                (root.join(base), recursive)
            })
            .collect();
        dirs.extend(
            extra
                .iter()
                .filter_map(|p| p.parent().map(|d| (d.to_path_buf(), false))),
        );
        for (dir, recursive) in &dirs {
            if !dir.is_dir() {
                eprintln!(
                    "devenv: note: not watching {} (no such directory)",
                    dir.display()
                );
                continue;
            }
            let mode = if *recursive {
                RecursiveMode::Recursive
            } else {
                RecursiveMode::NonRecursive
            };
            watcher.watch(dir, mode).map_err(|e| watch_error(&e))?;
        }
        Ok(Watch {
            _watcher: watcher,
            globs,
            extra,
            root,
        })
    }

    /// Whether a changed path concerns the database (or the config).
    pub fn relevant(&self, path: &Path) -> bool {
        if self.extra.contains(path) {
            return true;
        }
        path.strip_prefix(&self.root)
            .is_ok_and(|rel| self.globs.is_match(rel))
    }

    fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
    }
}

fn watch_error(e: &notify::Error) -> String {
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        "the system's limit of watched files is reached; raise it (`sudo sysctl fs.inotify.max_user_watches=524288`) or narrow `watch:` in devenv.yaml".into()
    } else {
        format!("cannot watch files: {e}")
    }
}

/// Collects a burst of triggers starting with `first`: changed paths (relevant ones) and
/// whether a manual reload was asked for.
async fn collect_burst(
    first: Trigger,
    rx: &mut mpsc::UnboundedReceiver<Trigger>,
    watch: &Watch,
) -> (BTreeSet<PathBuf>, bool) {
    let mut changed = BTreeSet::new();
    let mut manual = false;
    let mut add = |t: Trigger| match t {
        Trigger::Changed(p) if watch.relevant(&p) => {
            changed.insert(p);
        }
        Trigger::Changed(_) => {}
        Trigger::Manual => manual = true,
    };
    add(first);
    let started = Instant::now();
    while started.elapsed() < MAX_WAIT {
        match tokio::time::timeout(QUIET, rx.recv()).await {
            Ok(Some(t)) => add(t),
            Ok(None) | Err(_) => break,
        }
    }
    (changed, manual)
}

/// The reload side of `devenv up`.
pub struct Reloader {
    /// The configuration in force.
    pub config: Config,
    server: Server,
    verbose: bool,
    watch: Option<Watch>,
    tx: mpsc::UnboundedSender<Trigger>,
    rebuilder: Rebuilder,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("watch", &self.watch)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// Builds the database the first time (the caller reports errors and stops), then starts
    /// the watcher when `watch`. Returns the reloader and the trigger receiver.
    pub async fn start(
        config: Config,
        server: Server,
        verbose: bool,
        watch: bool,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Trigger>), RebuildError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut reloader = Reloader {
            config,
            server: server.clone(),
            verbose,
            watch: None,
            tx,
            rebuilder: Rebuilder::new(server),
        };
        let rebuilt = reloader.build().await?;
        eprintln!(
            "devenv: loaded {} ({} statements, {} COPY rows) in {} ms",
            reloader
                .config
                .sql_files()
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            rebuilt.0.statements,
            rebuilt.0.copy_rows,
            rebuilt.1.as_millis()
        );
        if watch {
            reloader.watch(&rebuilt.0.files);
        }
        Ok((reloader, rx))
    }

    /// Starts watching (after the first build).
    pub fn watch(&mut self, included: &[PathBuf]) {
        match Watch::start(&self.config, included, self.tx.clone()) {
            Ok(w) => self.watch = Some(w),
            Err(e) => eprintln!("devenv: warning: {e}; reload only with `devenv reload`"),
        }
    }

    async fn build(&mut self) -> Result<(devenv_sql::LoadSummary, Duration), RebuildError> {
        let loader = Loader::new(self.server.config("postgres"), &self.config.root)
            .events(devenv_sql::stderr_events(self.verbose));
        let rebuilt = self
            .rebuilder
            .rebuild(&loader, &self.config.database, &self.config.sql_files())
            .await?;
        Ok((rebuilt.summary, rebuilt.total))
    }

    /// Handles one burst starting with `first`; never fails: outcomes are printed.
    pub async fn handle(&mut self, first: Trigger, rx: &mut mpsc::UnboundedReceiver<Trigger>) {
        let Some(watch) = self.watch.as_ref() else {
            // Without a watcher only manual triggers arrive.
            if matches!(first, Trigger::Manual) {
                self.reload("by hand (devenv reload)".into()).await;
            }
            return;
        };
        let (changed, manual) = collect_burst(first, rx, watch).await;
        if changed.is_empty() && !manual {
            return;
        }
        let config_file = watch.root.join(devenv_core::config::FILE_NAME);
        let mut names: Vec<String> = changed.iter().map(|p| watch.display(p)).collect();
        if manual {
            names.push("by hand (devenv reload)".into());
        }
        if changed.contains(&config_file) && !self.apply_config_change() {
            return;
        }
        self.reload(names.join(", ")).await;
    }

    /// Re-reads devenv.yaml; returns whether to reload.
    fn apply_config_change(&mut self) -> bool {
        let new = match Config::load(&self.config.root) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("devenv: {e}; keeping the running settings");
                return false;
            }
        };
        let old = &self.config;
        let restart: Vec<&str> = [
            ("database", old.database != new.database),
            ("user", old.user != new.user),
            ("password", old.password != new.password),
            ("image", old.image != new.image),
            ("port", old.port != new.port),
            ("network", old.network != new.network),
            ("backend", old.backend != new.backend),
            ("url", old.url != new.url),
        ]
        .into_iter()
        .filter_map(|(k, changed)| changed.then_some(k))
        .collect();
        if !restart.is_empty() {
            eprintln!(
                "devenv: devenv.yaml changed {}: restart needed (Ctrl-C, then `devenv up`); still running with the old settings",
                restart.join(", ")
            );
            return false;
        }
        let files_changed = old.schema != new.schema || old.seed != new.seed;
        let watch_changed = old.watch != new.watch;
        if !files_changed && !watch_changed {
            return false;
        }
        eprintln!("devenv: devenv.yaml changed the file lists; applying them");
        self.config = new;
        if watch_changed {
            let included: Vec<PathBuf> = self
                .watch
                .as_ref()
                .map(|w| w.extra.iter().cloned().collect())
                .unwrap_or_default();
            self.watch = None;
            self.watch(&included);
        }
        true
    }

    async fn reload(&mut self, what: String) {
        let started = Instant::now();
        match self.build().await {
            Ok((summary, _)) => {
                eprintln!(
                    "devenv: reload [{what}]: ok, {} statements in {} ms",
                    summary.statements,
                    started.elapsed().as_millis()
                );
                if let Some(watch) = self.watch.as_mut() {
                    // Newly included files get watched from the next start of the watcher.
                    let known = &watch.extra;
                    if summary.files.iter().any(|f| {
                        let f = std::fs::canonicalize(f).unwrap_or_else(|_| f.clone());
                        !known.contains(&f) && !watch.relevant(&f)
                    }) {
                        let included = summary.files.clone();
                        self.watch = None;
                        self.watch(&included);
                    }
                }
            }
            Err(e) => {
                eprintln!("{e}");
                eprintln!(
                    "devenv: reload [{what}]: failed after {} ms; kept the previous database",
                    started.elapsed().as_millis()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::glob_base;
    use std::path::PathBuf;

    #[test]
    fn glob_bases() {
        assert_eq!(glob_base("db/**/*.sql"), (PathBuf::from("db"), true));
        assert_eq!(glob_base("db/*.sql"), (PathBuf::from("db"), false));
        assert_eq!(glob_base("*.sql"), (PathBuf::new(), false));
        assert_eq!(
            glob_base("sql/seed/data.sql"),
            (PathBuf::from("sql/seed"), false)
        );
    }
}
