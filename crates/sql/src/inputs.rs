//! Which files loading some SQL files reads, known without a server: the files themselves,
//! what they include (`\i`, `\ir`, `\include`, `\include_relative`) and the data files of
//! `\copy ... FROM 'file'`, with paths resolved exactly as the loader resolves them. This is
//! the one owner of that question, for the fixture's template key and for anything else that
//! must know the inputs of a load before running it.
//!
//! Statically, a branch of `\if` cannot be known to run, so files under any branch are listed;
//! `\set` values are followed in file order, so `\i :dir/x.sql` is found when `dir` was set
//! with a literal before it. A path that needs a value known only at run time (a `\gset`
//! result, an automatic variable) is not. Files that do not exist are left out: loading fails
//! on them, with their `path:line:col`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::copy::{CopySource, SlashCopy};
use crate::scan::{valid_variable_name, Item, Scanner};

/// Includes nest at most this deep, in the loader as here.
pub const MAX_INCLUDE_DEPTH: usize = 32;

/// What the loader does with a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A SQL file: given, or included with `\i` and friends.
    Sql,
    /// A data file read by `\copy ... FROM 'file'`.
    Data,
}

/// A file that loading reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The path as errors show it: as given, or as an include resolved it (relative to the
    /// loader's root unless absolute).
    pub shown: PathBuf,
    /// The path on disk.
    pub path: PathBuf,
    /// SQL or data.
    pub kind: InputKind,
}

/// The path on disk of a file the loader names `shown`: relative paths are under `root`.
pub fn on_disk(root: &Path, shown: &Path) -> PathBuf {
    if shown.is_absolute() {
        shown.to_path_buf()
    } else {
        root.join(shown)
    }
}

/// The path (as shown) that meta-command `command` names with `target` in the file shown as
/// `including`: `\i` and `\include` take it as given (relative to the root, psql's working
/// directory); `\ir`, `\include_relative` and `\copy` relative to the including file's
/// directory.
pub fn included(command: &str, including: &Path, target: &str) -> PathBuf {
    let target = Path::new(target);
    match command {
        "ir" | "include_relative" | "copy" => including
            .parent()
            .map_or_else(|| target.to_path_buf(), |dir| dir.join(target)),
        _ => target.to_path_buf(),
    }
}

/// Every file that loading `files` (in order, under `root`) reads, each once, in the order the
/// loader first reads it. See the module documentation for what a static reading can know.
pub fn files_read<P: AsRef<Path>>(root: &Path, files: &[P]) -> Vec<Input> {
    let mut walk = Walk {
        root,
        seen: HashSet::new(),
        out: Vec::new(),
        vars: crate::scan::Variables::new(),
    };
    for file in files {
        walk.sql(file.as_ref(), 0);
    }
    walk.out
}

struct Walk<'r> {
    root: &'r Path,
    seen: HashSet<PathBuf>,
    out: Vec<Input>,
    /// `\set` values so far, as one psql run carries them from file to file.
    vars: crate::scan::Variables,
}

impl Walk<'_> {
    /// Records `shown` if it exists and was not seen; returns its bytes when it is new.
    fn add(&mut self, shown: &Path, kind: InputKind) -> Option<Vec<u8>> {
        let path = on_disk(self.root, shown);
        let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        if self.seen.contains(&key) {
            return None;
        }
        let bytes = std::fs::read(&path).ok()?;
        self.seen.insert(key);
        self.out.push(Input {
            shown: shown.to_path_buf(),
            path,
            kind,
        });
        Some(bytes)
    }

    fn sql(&mut self, shown: &Path, depth: usize) {
        if depth > MAX_INCLUDE_DEPTH {
            return;
        }
        let Some(bytes) = self.add(shown, InputKind::Sql) else {
            return;
        };
        let mut scanner = Scanner::new(&bytes);
        scanner.vars = std::mem::take(&mut self.vars);
        while let Some(item) = scanner.next_item() {
            let Item::Meta(meta) = item else {
                continue;
            };
            match (meta.name.as_str(), meta.args.as_slice()) {
                ("i" | "include" | "ir" | "include_relative", [target]) => {
                    let next = included(&meta.name, shown, target);
                    self.vars = std::mem::take(&mut scanner.vars);
                    self.sql(&next, depth + 1);
                    scanner.vars = std::mem::take(&mut self.vars);
                }
                ("copy", [line]) => {
                    if let Ok(SlashCopy {
                        source: CopySource::File(target),
                        ..
                    }) = SlashCopy::parse(line)
                    {
                        self.add(&included("copy", shown, &target), InputKind::Data);
                    }
                }
                ("set", [name, values @ ..]) if valid_variable_name(name) => {
                    scanner.vars.insert(name.clone(), values.concat());
                }
                ("unset", [name]) => {
                    scanner.vars.remove(name);
                }
                _ => {}
            }
        }
        self.vars = std::mem::take(&mut scanner.vars);
    }
}
