//! The file watcher of `devenv up`: notify behind a small type.
//!
//! - It watches the directories the `watch` globs name (recursively where the glob needs
//!   it), the directories of files the loader read (includes, `\copy` data), and `devenv.yaml`.
//!   Only create, write, rename and delete events count (reading the files during a reload must
//!   not trigger another one).
//! - Watches follow inodes, so a watched directory that is removed and recreated, or moved
//!   away and back (`git checkout`, `git stash`, editors that replace directories), would go
//!   deaf. [`Watch::needs_rearm`] compares each armed directory's identity (device and inode)
//!   with the world, and the supervisor re-arms when one changed or a missing one appeared.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

use devenv_core::Config;
use globset::{Glob, GlobSet, GlobSetBuilder};
use notify::{EventKind, RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

/// What asks for a reload.
#[derive(Debug)]
pub enum Trigger {
    /// A watched path changed.
    Changed(PathBuf),
}

/// The file watcher; dropping it stops watching.
pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    globs: GlobSet,
    /// Files watched outside the globs (includes, devenv.yaml).
    pub extra: BTreeSet<PathBuf>,
    /// The canonical project root.
    pub root: PathBuf,
    /// Each watched directory with its identity when armed (`None`: it did not exist).
    armed: Vec<(PathBuf, Option<(u64, u64)>)>,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watch")
            .field("root", &self.root)
            .field("armed", &self.armed)
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

fn identity(dir: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(dir)
        .ok()
        .filter(std::fs::Metadata::is_dir)
        .map(|m| (m.dev(), m.ino()))
}

/// Why watching failed, with what to do.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A `watch:` glob does not parse.
    #[error("watch glob `{glob}` in devenv.yaml")]
    Glob {
        /// The glob.
        glob: String,
        /// The parser's error.
        #[source]
        source: globset::Error,
    },
    /// The system's limit of inotify watches.
    #[error("the system's limit of watched files is reached; raise it (`sudo sysctl fs.inotify.max_user_watches=524288`) or narrow `watch:` in devenv.yaml")]
    Limit,
    /// Anything else notify said.
    #[error("cannot watch files")]
    Notify(#[source] notify::Error),
}

fn notify_error(e: notify::Error) -> WatchError {
    if matches!(e.kind, notify::ErrorKind::MaxFilesWatch) {
        WatchError::Limit
    } else {
        WatchError::Notify(e)
    }
}

impl Watch {
    /// Starts watching for `config` plus `included` files (paths on disk).
    pub fn start(
        config: &Config,
        included: &[PathBuf],
        tx: mpsc::UnboundedSender<Trigger>,
    ) -> Result<Watch, WatchError> {
        let mut builder = GlobSetBuilder::new();
        for glob in &config.watch {
            builder.add(Glob::new(glob).map_err(|source| WatchError::Glob {
                glob: glob.clone(),
                source,
            })?);
        }
        let globs = builder.build().map_err(|source| WatchError::Glob {
            glob: config.watch.join(", "),
            source,
        })?;
        let root = std::fs::canonicalize(&config.root).unwrap_or_else(|_| config.root.clone());
        let extra: BTreeSet<PathBuf> = included
            .iter()
            .map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.clone()))
            .chain([root.join(devenv_core::config::FILE_NAME)])
            .collect();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else { return };
                let counts = matches!(
                    event.kind,
                    EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)
                ) && !matches!(
                    event.kind,
                    EventKind::Modify(notify::event::ModifyKind::Metadata(_))
                );
                if counts {
                    for path in event.paths {
                        let _ = tx.send(Trigger::Changed(path));
                    }
                }
            })
            .map_err(notify_error)?;
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
        let mut armed = Vec::new();
        for (dir, recursive) in &dirs {
            let id = identity(dir);
            if id.is_some() {
                let mode = if *recursive {
                    RecursiveMode::Recursive
                } else {
                    RecursiveMode::NonRecursive
                };
                match watcher.watch(dir, mode) {
                    Ok(()) => {}
                    // Gone between the look and the watch: the next check re-arms.
                    Err(e) if matches!(e.kind, notify::ErrorKind::PathNotFound) => {}
                    Err(e) => return Err(notify_error(e)),
                }
            }
            armed.push((dir.clone(), id));
        }
        Ok(Watch {
            _watcher: watcher,
            globs,
            extra,
            root,
            armed,
        })
    }

    /// Directories that do not exist (so nothing in them is watched until they do).
    pub fn missing(&self) -> Vec<&Path> {
        self.armed
            .iter()
            .filter(|(_, id)| id.is_none())
            .map(|(dir, _)| dir.as_path())
            .collect()
    }

    /// Whether a watched directory was replaced, moved away or back, or appeared: the watch
    /// must be armed again.
    pub fn needs_rearm(&self) -> bool {
        self.armed.iter().any(|(dir, id)| identity(dir) != *id)
    }

    /// Whether a changed path concerns the database (or the config).
    pub fn relevant(&self, path: &Path) -> bool {
        if self.extra.contains(path) {
            return true;
        }
        path.strip_prefix(&self.root)
            .is_ok_and(|rel| self.globs.is_match(rel))
    }

    /// Whether `path` is a watched directory itself (its removal or rename means re-arming).
    pub fn is_armed_dir(&self, path: &Path) -> bool {
        self.armed.iter().any(|(dir, _)| dir == path)
    }

    /// `path` relative to the project, for messages.
    pub fn display(&self, path: &Path) -> String {
        path.strip_prefix(&self.root)
            .unwrap_or(path)
            .display()
            .to_string()
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
