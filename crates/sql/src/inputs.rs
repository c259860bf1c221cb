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

#[cfg(test)]
mod tests {
    use super::*;

    fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    fn shown(root: &Path, files: &[&str]) -> Vec<(String, InputKind)> {
        files_read(root, files)
            .into_iter()
            .map(|i| {
                assert_eq!(i.path, on_disk(root, &i.shown));
                (i.shown.display().to_string(), i.kind)
            })
            .collect()
    }

    #[test]
    fn includes_and_copy_files_resolve_as_the_loader_resolves_them() {
        use InputKind::{Data, Sql};
        let dir = project(&[
            (
                "db/schema.sql",
                "\\i db/common.sql\n\\ir parts/a.sql\nCREATE TABLE t (x int);\n",
            ),
            ("db/common.sql", "\\include_relative parts/a.sql\n"),
            (
                "db/parts/a.sql",
                "\\copy t FROM 'data/t.csv' WITH (FORMAT csv)\n\\copy t from stdin\n1\n\\.\n",
            ),
            ("db/parts/data/t.csv", "1\n"),
            (
                "db/seed.sql",
                "\\include db/more.sql\n\\copy t from ../t2.csv csv\n",
            ),
            ("db/more.sql", "select 1;\n"),
            ("t2.csv", "2\n"),
        ]);
        assert_eq!(
            shown(dir.path(), &["db/schema.sql", "db/seed.sql"]),
            [
                ("db/schema.sql".into(), Sql),
                ("db/common.sql".into(), Sql),
                ("db/parts/a.sql".into(), Sql),
                ("db/parts/data/t.csv".into(), Data),
                ("db/seed.sql".into(), Sql),
                ("db/more.sql".into(), Sql),
                ("db/../t2.csv".into(), Data),
            ]
        );
    }

    #[test]
    fn every_branch_is_listed_set_variables_followed_and_missing_files_left_out() {
        let dir = project(&[
            (
                "main.sql",
                "\\set dir sub\n\\if false\n\\ir :dir/a.sql\n\\else\n\\ir b.sql\n\\endif\n\\ir nope.sql\n\\ir :unknown/c.sql\n\\ir main.sql\n",
            ),
            ("sub/a.sql", "\\ir ../b.sql\n"),
            ("b.sql", ""),
            ("c.sql", ""),
        ]);
        let files: Vec<String> = shown(dir.path(), &["main.sql"])
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(files, ["main.sql", "sub/a.sql", "sub/../b.sql"]);
    }

    #[test]
    fn absolute_paths_stay_absolute() {
        let dir = project(&[("abs.csv", "1\n")]);
        let csv = dir.path().join("abs.csv");
        let other = project(&[("s.sql", &format!("\\copy t from '{}'\n", csv.display()))]);
        let got = files_read(other.path(), &["s.sql"]);
        assert_eq!(got[1].path, csv);
        assert_eq!(
            included("ir", Path::new("db/x.sql"), "/abs/y.sql"),
            Path::new("/abs/y.sql")
        );
    }
}
