//! The files a project's database is built from, in load order ([`steps`]: schema files,
//! the `migrations` directory's migrations, seed files), with everything they read (includes and `\copy` data, as the loader itself lists them), and their content
//! hash, which covers the psql variables they start with (`vars:`, `--set`) too; and the
//! loader that runs them. The hash is recorded on the databases `up` builds (a kept
//! database built from the same files is reused as is) and names the fixture's templates.

use std::path::PathBuf;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{io, CoreError};
use crate::migrations::Migrations;

/// One SQL file that goes into the database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Input {
    /// The path as listed or included (what the loader's reports show).
    pub shown: PathBuf,
    /// The path on disk.
    pub path: PathBuf,
}

/// File metadata that says whether anything changed since the last hash: cheap to take, unlike
/// hashing the files. Serializable, so a [`Sources`] can be kept between processes (the
/// test fixture's) and trusted while its stamp is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sources {
    /// Every file, top-level and included, in load order.
    pub inputs: Vec<Input>,
    /// SHA-256 of the files' paths and bytes and of the `vars` they start with, hex.
    pub digest: String,
    /// The metadata of the files and of devenv.yaml at the time of the hash.
    pub stamp: Stamp,
}

impl Sources {
    /// Reads and hashes the SQL files of `config` (which must exist: [`Config::check_files`]).
    pub fn read(config: &Config) -> Result<Self, CoreError> {
        let steps = steps(config, Part::All)?;
        let listed: Vec<PathBuf> = steps.iter().map(|s| s.path.clone()).collect();
        let inputs = collect_inputs(config, &listed);
        // Stamp first: a file written while we hash is seen as changed next time. The
        // migrations directory's own stamp changes when a migration is added or removed.
        let stamp = Stamp::take(
            std::iter::once(config.root.join(crate::config::FILE_NAME))
                .chain(config.migrations.iter().map(|d| config.root.join(d)))
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
        // The variables the files start with build another database; none keeps the digests
        // of projects without them as they were.
        for (name, var) in config.vars.iter() {
            hash.update(b"\0var\0");
            hash.update(name.as_bytes());
            hash.update([0]);
            hash.update((var.value.len() as u64).to_le_bytes());
            hash.update(var.value.as_bytes());
        }
        Ok(Sources {
            inputs,
            digest: devenv_server::files::hex(&hash.finalize()),
            stamp,
        })
    }
}

/// Which of a project's files a load runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The schema files, then the migrations (`db schema-load`).
    Schema,
    /// The seed files (`db seed`).
    Seed,
    /// All of them: schema, migrations, seed (every build of the database).
    All,
}

/// The loader's steps for `part` of `config`'s files: schema files, the migrations with their
/// records ([`crate::migrations`]), seed files.
pub fn steps(config: &Config, part: Part) -> Result<Vec<devenv_sql::Step>, CoreError> {
    let migrations = match &config.migrations {
        Some(dir) => Some(Migrations::read(&config.root, dir)?),
        None => None,
    };
    Ok(assemble(config, part, migrations))
}

/// [`steps`] for a load onto `database` as it is (`db schema-load`, `db seed`): only the
/// migrations it has not recorded yet ([`Migrations::pending`]).
pub async fn steps_onto(
    config: &Config,
    part: Part,
    client: &tokio_postgres::Client,
    database: &str,
) -> Result<Vec<devenv_sql::Step>, CoreError> {
    let migrations = match &config.migrations {
        Some(dir) if part != Part::Seed => Some(
            Migrations::read(&config.root, dir)?
                .pending(client, database)
                .await?,
        ),
        _ => None,
    };
    Ok(assemble(config, part, migrations))
}

fn assemble(config: &Config, part: Part, migrations: Option<Migrations>) -> Vec<devenv_sql::Step> {
    let mut steps = Vec::new();
    if part != Part::Seed {
        steps.extend(config.schema.iter().map(devenv_sql::Step::file));
        if let Some(migrations) = migrations {
            steps.extend(migrations.steps());
        }
    }
    if part != Part::Schema {
        steps.extend(config.seed.iter().map(devenv_sql::Step::file));
    }
    steps
}

/// The loader for `config`'s files on `server`: its TLS rules ([`crate::db::loader`]),
/// relative paths from the project root, the `vars` set before the first file.
pub fn loader(config: &Config, server: &devenv_server::Server) -> devenv_sql::Loader {
    crate::db::loader(server, &config.root).vars(config.vars.values())
}

/// The `listed` files with everything they read (`\i`, `\ir`, `\copy ... FROM 'file'`),
/// each once, in load order: the loader's own answer ([`devenv_sql::files_read`]).
fn collect_inputs(config: &Config, listed: &[PathBuf]) -> Vec<Input> {
    devenv_sql::files_read(&config.root, listed, &config.vars.values())
        .into_iter()
        .map(|i| Input {
            shown: i.shown,
            path: i.path,
        })
        .collect()
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
        // The variables are part of the hash, and followed into includes.
        let mut with_vars = config.clone();
        with_vars.vars.set("part", "b");
        let one = Sources::read(&with_vars).unwrap();
        assert_ne!(one.digest, after.digest);
        with_vars.vars.set("part", "c");
        assert_ne!(Sources::read(&with_vars).unwrap().digest, one.digest);
        std::fs::write(root.join("db/schema.sql"), "\\i db/parts/:part.sql\n").unwrap();
        std::fs::write(root.join("db/parts/c.sql"), "SELECT 'c';\n").unwrap();
        let shown: Vec<_> = Sources::read(&with_vars)
            .unwrap()
            .inputs
            .iter()
            .map(|i| i.shown.clone())
            .collect();
        assert_eq!(
            shown,
            [
                PathBuf::from("db/schema.sql"),
                PathBuf::from("db/parts/c.sql")
            ]
        );
    }
}
