//! The files a project's database is built from: the schema and seed files with everything
//! they include (followed with the loader's own scanner, resolved as the loader resolves
//! them), and their content hash. The hash is recorded on the databases `up` builds (a kept
//! database built from the same files is reused as is) and names the fixture's templates.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{io, CoreError};

/// One SQL file that goes into the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The path as listed or included (what the loader's reports show).
    pub shown: PathBuf,
    /// The path on disk.
    pub path: PathBuf,
}

/// File metadata that says whether anything changed since the last hash: cheap to take, unlike
/// hashing the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp(Vec<(PathBuf, Option<(u64, SystemTime)>)>);

impl Stamp {
    /// The metadata of `paths` now.
    pub fn take(paths: impl IntoIterator<Item = PathBuf>) -> Self {
        Stamp(
            paths
                .into_iter()
                .map(|p| {
                    let meta = std::fs::metadata(&p)
                        .ok()
                        .and_then(|m| Some((m.len(), m.modified().ok()?)));
                    (p, meta)
                })
                .collect(),
        )
    }

    /// The same paths, looked at again.
    #[must_use]
    pub fn retake(&self) -> Self {
        Stamp::take(self.0.iter().map(|(p, _)| p.clone()))
    }
}

/// A project's SQL as of one look: files (includes followed), their hash and their stamp.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Every file, top-level and included, in load order.
    pub inputs: Vec<Input>,
    /// SHA-256 of the files' paths and bytes, hex.
    pub digest: String,
    /// The metadata of the files and of devenv.yaml at the time of the hash.
    pub stamp: Stamp,
}

impl Sources {
    /// Reads and hashes the SQL files of `config` (which must exist: [`Config::check_files`]).
    pub fn read(config: &Config) -> Result<Self, CoreError> {
        let inputs = collect_inputs(config);
        // Stamp first: a file written while we hash is seen as changed next time.
        let stamp = Stamp::take(
            std::iter::once(config.root.join(crate::config::FILE_NAME))
                .chain(inputs.iter().map(|i| i.path.clone())),
        );
        let mut hash = Sha256::new();
        for input in &inputs {
            let bytes = std::fs::read(&input.path).map_err(io("reading", &input.path))?;
            hash.update(input.shown.to_string_lossy().as_bytes());
            hash.update([0]);
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
        Ok(Sources {
            inputs,
            digest: devenv_server::files::hex(&hash.finalize()),
            stamp,
        })
    }
}

/// The schema and seed files with the files they `\i`/`\ir` include, each once, in load order.
fn collect_inputs(config: &Config) -> Vec<Input> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for file in config.sql_files() {
        visit(&config.root, &file, 0, &mut seen, &mut out);
    }
    out
}

fn resolve(root: &Path, shown: &Path) -> PathBuf {
    if shown.is_absolute() {
        shown.to_path_buf()
    } else {
        root.join(shown)
    }
}

fn visit(
    root: &Path,
    shown: &Path,
    depth: usize,
    seen: &mut std::collections::HashSet<PathBuf>,
    out: &mut Vec<Input>,
) {
    let path = resolve(root, shown);
    let key = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
    if depth > 32 || !seen.insert(key) {
        return;
    }
    let Ok(bytes) = std::fs::read(&path) else {
        // A missing include: the loader reports it with its line and column.
        return;
    };
    out.push(Input {
        shown: shown.to_path_buf(),
        path,
    });
    for item in devenv_sql::split(&bytes) {
        let devenv_sql::Item::Meta(meta) = item else {
            continue;
        };
        let [arg] = meta.args.as_slice() else {
            continue;
        };
        let target = Path::new(arg);
        let next = match meta.name.as_str() {
            "i" | "include" => target.to_path_buf(),
            "ir" | "include_relative" => shown
                .parent()
                .map_or_else(|| target.to_path_buf(), |dir| dir.join(target)),
            _ => continue,
        };
        visit(root, &next, depth + 1, seen, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn includes_are_followed_and_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("db/parts")).unwrap();
        std::fs::write(
            root.join("devenv.yaml"),
            "schema: [db/schema.sql]\nseed: []\n",
        )
        .unwrap();
        std::fs::write(
            root.join("db/schema.sql"),
            "\\ir parts/a.sql\nSELECT 1;\n\\i db/parts/b.sql\n\\ir parts/a.sql\n",
        )
        .unwrap();
        std::fs::write(root.join("db/parts/a.sql"), "SELECT 'a';\n").unwrap();
        std::fs::write(root.join("db/parts/b.sql"), "SELECT 'b';\n").unwrap();
        let config = Config::load_with_env(root, |_| None).unwrap();
        let before = Sources::read(&config).unwrap();
        let shown: Vec<_> = before.inputs.iter().map(|i| i.shown.clone()).collect();
        assert_eq!(
            shown,
            [
                PathBuf::from("db/schema.sql"),
                PathBuf::from("db/parts/a.sql"),
                PathBuf::from("db/parts/b.sql")
            ]
        );
        assert_eq!(before.stamp, before.stamp.retake());
        std::fs::write(root.join("db/parts/b.sql"), "SELECT 'b2';\n").unwrap();
        let after = Sources::read(&config).unwrap();
        assert_ne!(before.digest, after.digest);
        assert_ne!(before.stamp, before.stamp.retake());
    }
}
