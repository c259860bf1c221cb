//! `migrations:` in devenv.yaml: a directory of migrations, applied in version order after the
//! `schema` files and before the `seed` files, and recorded the way the project's own tool
//! records them, so that the app's migrator finds everything applied and does nothing.
//!
//! The layout is read off the directory:
//! - **diesel**: subdirectories `<TIMESTAMP>_<name>/up.sql` (and `down.sql`), recorded in
//!   `__diesel_schema_migrations` (version = the name's part before the first `_`, dashes
//!   removed, as diesel_migrations reads it); each in a transaction unless its
//!   `metadata.toml` says `run_in_transaction = false`.
//! - **sqlx**: files `<VERSION>_<DESCRIPTION>.sql` or reversible `.up.sql` / `.down.sql`
//!   (downs are not run), recorded in `_sqlx_migrations` as sqlx 0.8 and 0.9 record them:
//!   version, description (the name's underscores as spaces), `success`, `checksum` = SHA-384
//!   of the file's bytes, `execution_time` in nanoseconds. A file whose first line starts with
//!   `-- no-transaction` runs outside a transaction, every other inside one, as sqlx does. The
//!   table is created before the first migration (a migration may say `LIKE _sqlx_migrations`).
//! - **anything else**: the `*.sql` files in natural sort order (`2_b.sql` before `10_a.sql`),
//!   each run as psql runs a file, recorded in devenv's own `_devenv_migrations`.
//!
//! A migration is one [`devenv_sql::Step`]: its record is written in its own transaction,
//! so a migration is recorded if and only if it committed. Every load of a project's files goes
//! through [`crate::files::steps`], which puts them between schema and seed.

use std::path::{Path, PathBuf};

use devenv_sql::Step;
use sha2::{Digest, Sha384};

use crate::error::{io, CoreError};

/// How the directory's migrations are laid out and recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// sqlx: `<VERSION>_<DESCRIPTION>.sql`, `_sqlx_migrations`.
    Sqlx,
    /// diesel: `<TIMESTAMP>_<name>/up.sql`, `__diesel_schema_migrations`.
    Diesel,
    /// `*.sql` in natural order, `_devenv_migrations`.
    Plain,
}

/// One migration to apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The file to run, relative to the project root (as errors show it).
    pub path: PathBuf,
    /// Its version as its tool writes it (sqlx: the number; diesel: the timestamp digits;
    /// plain: the file name).
    pub version: String,
    /// sqlx's description; diesel's and plain's name.
    pub description: String,
    /// Runs inside a transaction.
    pub transaction: bool,
    /// SHA-384 of the file's bytes (sqlx's checksum; also what plain records).
    pub checksum: Vec<u8>,
}

/// The migrations of a directory, in the order they apply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migrations {
    /// The directory as configured.
    pub dir: PathBuf,
    /// Its layout.
    pub layout: Layout,
    /// In order.
    pub list: Vec<Migration>,
}

fn problem(dir: &Path, what: impl Into<String>) -> CoreError {
    CoreError::Migrations {
        dir: dir.to_path_buf(),
        problem: what.into(),
    }
}

impl Migrations {
    /// Reads `dir` (relative to `root`): its layout and migrations.
    pub fn read(root: &Path, dir: &Path) -> Result<Self, CoreError> {
        let full = root.join(dir);
        let mut files = Vec::new();
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(&full).map_err(io("reading the directory", &full))? {
            let entry = entry.map_err(io("reading the directory", &full))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let meta = std::fs::metadata(entry.path()).map_err(io("reading", &entry.path()))?;
            if meta.is_dir() {
                dirs.push(name);
            } else if meta.is_file() {
                files.push(name);
            }
        }
        let diesel_dirs: Vec<&String> = dirs
            .iter()
            .filter(|d| root.join(dir).join(d).join("up.sql").is_file())
            .collect();
        let sql_files: Vec<&String> = files
            .iter()
            .filter(|f| {
                Path::new(f.as_str())
                    .extension()
                    .is_some_and(|e| e == "sql")
            })
            .collect();
        let (layout, mut list) = if !diesel_dirs.is_empty() && sql_files.is_empty() {
            (Layout::Diesel, diesel(root, dir, &diesel_dirs)?)
        } else if !sql_files.is_empty() && sql_files.iter().all(|f| sqlx_name(f).is_some()) {
            (Layout::Sqlx, sqlx(root, dir, &sql_files)?)
        } else {
            (Layout::Plain, plain(root, dir, &sql_files)?)
        };
        match layout {
            Layout::Sqlx => list.sort_by_key(|m| m.version.parse::<i64>().unwrap_or(i64::MAX)),
            Layout::Diesel => list.sort_by(|a, b| a.version.cmp(&b.version)),
            Layout::Plain => list.sort_by(|a, b| natord::compare(&a.version, &b.version)),
        }
        for pair in list.windows(2) {
            if pair[0].version == pair[1].version {
                return Err(problem(
                    dir,
                    format!(
                        "{} and {} have the same version {}",
                        pair[0].path.display(),
                        pair[1].path.display(),
                        pair[0].version
                    ),
                ));
            }
        }
        Ok(Migrations {
            dir: dir.to_path_buf(),
            layout,
            list,
        })
    }

    /// The migrations `client`'s database has not recorded yet (all of them when it has no
    /// table), for a load onto a database that exists (`db schema-load`). A recorded sqlx or
    /// plain migration whose file changed since is an error, as sqlx's migrator makes it.
    pub async fn pending(
        mut self,
        client: &tokio_postgres::Client,
        database: &str,
    ) -> Result<Self, CoreError> {
        let read = crate::error::db("reading the migrations recorded in", database);
        let table = self.table();
        let exists: bool = client
            .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
            .await
            .map_err(read)?
            .get(0);
        if !exists {
            return Ok(self);
        }
        let sql = match self.layout {
            Layout::Sqlx => "SELECT version::text, checksum FROM _sqlx_migrations WHERE success",
            Layout::Diesel => "SELECT version::text, NULL::bytea FROM __diesel_schema_migrations",
            Layout::Plain => "SELECT name, checksum FROM _devenv_migrations",
        };
        let rows = client.query(sql, &[]).await.map_err(crate::error::db(
            "reading the migrations recorded in",
            database,
        ))?;
        let recorded: std::collections::BTreeMap<String, Option<Vec<u8>>> =
            rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        for m in &self.list {
            if let Some(Some(checksum)) = recorded.get(&m.version) {
                if *checksum != m.checksum {
                    return Err(problem(
                        &self.dir,
                        format!(
                            "migration {} ({}) was applied to \"{database}\" but {} has changed since",
                            m.version,
                            m.description,
                            m.path.display()
                        ),
                    ));
                }
            }
        }
        self.list.retain(|m| !recorded.contains_key(&m.version));
        Ok(self)
    }

    /// The table the migrations are recorded in.
    pub fn table(&self) -> &'static str {
        match self.layout {
            Layout::Sqlx => "_sqlx_migrations",
            Layout::Diesel => "__diesel_schema_migrations",
            Layout::Plain => "_devenv_migrations",
        }
    }

    /// The loader's steps: each migration with its record, the table created before the
    /// first.
    pub fn steps(&self) -> Vec<Step> {
        self.list
            .iter()
            .enumerate()
            .map(|(i, m)| Step {
                path: m.path.clone(),
                text: None,
                transaction: m.transaction,
                before: (i == 0).then(|| self.create_table_sql()),
                after: Some(self.record_sql(m)),
                label: Some(format!("migration {} ({})", m.version, m.description)),
            })
            .collect()
    }

    fn create_table_sql(&self) -> String {
        match self.layout {
            // sqlx-postgres 0.8's `ensure_migrations_table`.
            Layout::Sqlx => "CREATE TABLE IF NOT EXISTS _sqlx_migrations (\n    \
                version BIGINT PRIMARY KEY,\n    \
                description TEXT NOT NULL,\n    \
                installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),\n    \
                success BOOLEAN NOT NULL,\n    \
                checksum BYTEA NOT NULL,\n    \
                execution_time BIGINT NOT NULL\n);"
                .into(),
            // diesel_migrations 2's `CREATE_MIGRATIONS_TABLE`.
            Layout::Diesel => "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (\n       \
                version VARCHAR(50) PRIMARY KEY NOT NULL,\n       \
                run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP\n);"
                .into(),
            Layout::Plain => "CREATE TABLE IF NOT EXISTS _devenv_migrations (\n    \
                name TEXT PRIMARY KEY,\n    \
                checksum BYTEA NOT NULL,\n    \
                applied_on TIMESTAMPTZ NOT NULL DEFAULT now()\n);"
                .into(),
        }
    }

    fn record_sql(&self, m: &Migration) -> String {
        let lit = devenv_server::sql::quote_literal;
        let checksum = format!("'\\x{}'::bytea", devenv_server::files::hex(&m.checksum));
        match self.layout {
            // As sqlx's `apply`: success TRUE, the checksum, the time the migration took (in
            // its transaction: from the transaction's start; sqlx measures around it).
            Layout::Sqlx => format!(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES ({}, {}, TRUE, {checksum}, \
                 (extract(epoch FROM clock_timestamp() - now()) * 1000000000)::bigint)",
                m.version,
                lit(&m.description)
            ),
            Layout::Diesel => format!(
                "INSERT INTO __diesel_schema_migrations (version) VALUES ({})",
                lit(&m.version)
            ),
            Layout::Plain => format!(
                "INSERT INTO _devenv_migrations (name, checksum) VALUES ({}, {checksum})",
                lit(&m.version)
            ),
        }
    }
}

/// sqlx's reading of a file name: `(version, description, is a down migration)`.
fn sqlx_name(name: &str) -> Option<(i64, String, bool)> {
    let (version, rest) = name.split_once('_')?;
    let version: i64 = version.parse().ok()?;
    let (stem, down) = if let Some(stem) = rest.strip_suffix(".up.sql") {
        (stem, false)
    } else if let Some(stem) = rest.strip_suffix(".down.sql") {
        (stem, true)
    } else {
        (rest.strip_suffix(".sql")?, false)
    };
    Some((version, stem.replace('_', " "), down))
}

fn read_bytes(root: &Path, path: &Path) -> Result<Vec<u8>, CoreError> {
    let full = root.join(path);
    std::fs::read(&full).map_err(io("reading", &full))
}

fn sqlx(root: &Path, dir: &Path, files: &[&String]) -> Result<Vec<Migration>, CoreError> {
    let mut list = Vec::new();
    for name in files {
        let Some((version, description, down)) = sqlx_name(name) else {
            continue;
        };
        if down {
            continue;
        }
        let path = dir.join(name.as_str());
        let bytes = read_bytes(root, &path)?;
        if std::str::from_utf8(&bytes).is_err() {
            return Err(problem(
                dir,
                format!("{}: is not UTF-8, which sqlx requires", path.display()),
            ));
        }
        list.push(Migration {
            transaction: !bytes.starts_with(b"-- no-transaction"),
            checksum: Sha384::digest(&bytes).to_vec(),
            path,
            version: version.to_string(),
            description,
        });
    }
    Ok(list)
}

fn diesel(root: &Path, dir: &Path, dirs: &[&String]) -> Result<Vec<Migration>, CoreError> {
    let mut list = Vec::new();
    for name in dirs {
        let version = name.split('_').next().unwrap_or(name).replace('-', "");
        let path = dir.join(name.as_str()).join("up.sql");
        let bytes = read_bytes(root, &path)?;
        let metadata =
            std::fs::read_to_string(root.join(dir).join(name.as_str()).join("metadata.toml"))
                .unwrap_or_default();
        let no_transaction = metadata.lines().any(|l| {
            let l: String = l.chars().filter(|c| !c.is_whitespace()).collect();
            l == "run_in_transaction=false"
        });
        list.push(Migration {
            path,
            version,
            description: name.split_once('_').map_or("", |(_, n)| n).to_owned(),
            transaction: !no_transaction,
            checksum: Sha384::digest(&bytes).to_vec(),
        });
    }
    Ok(list)
}

fn plain(root: &Path, dir: &Path, files: &[&String]) -> Result<Vec<Migration>, CoreError> {
    files
        .iter()
        .map(|name| {
            let path = dir.join(name.as_str());
            let bytes = read_bytes(root, &path)?;
            Ok(Migration {
                checksum: Sha384::digest(&bytes).to_vec(),
                path,
                version: (*name).clone(),
                description: (*name).clone(),
                transaction: false,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let path = dir.path().join("m").join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        dir
    }

    #[test]
    fn layouts_are_read_off_the_names() {
        let d = dir_with(&[
            ("10_ten.sql", "SELECT 10;"),
            ("2_add_users.up.sql", "-- no-transaction\nSELECT 2;"),
            ("2_add_users.down.sql", "SELECT -2;"),
        ]);
        let m = Migrations::read(d.path(), Path::new("m")).unwrap();
        assert_eq!(m.layout, Layout::Sqlx);
        let got: Vec<_> = m
            .list
            .iter()
            .map(|m| (m.version.as_str(), m.description.as_str(), m.transaction))
            .collect();
        assert_eq!(got, [("2", "add users", false), ("10", "ten", true)]);
        assert_eq!(m.list[1].checksum, Sha384::digest(b"SELECT 10;").to_vec());

        let d = dir_with(&[
            ("2020-01-02-000000_b/up.sql", "SELECT 2;"),
            ("2020-01-02-000000_b/down.sql", "SELECT -2;"),
            ("2020-01-01-000000_a/up.sql", "SELECT 1;"),
            (
                "2020-01-01-000000_a/metadata.toml",
                "run_in_transaction = false\n",
            ),
        ]);
        let m = Migrations::read(d.path(), Path::new("m")).unwrap();
        assert_eq!(m.layout, Layout::Diesel);
        let got: Vec<_> = m
            .list
            .iter()
            .map(|m| (m.version.as_str(), m.transaction))
            .collect();
        assert_eq!(got, [("20200101000000", false), ("20200102000000", true)]);

        let d = dir_with(&[("10_a.sql", ""), ("2_b.sql", ""), ("init.sql", "")]);
        let m = Migrations::read(d.path(), Path::new("m")).unwrap();
        assert_eq!(m.layout, Layout::Plain);
        let got: Vec<_> = m.list.iter().map(|m| m.version.as_str()).collect();
        assert_eq!(got, ["2_b.sql", "10_a.sql", "init.sql"]);
    }

    #[test]
    fn a_repeated_version_is_an_error() {
        let d = dir_with(&[("1_a.sql", ""), ("01_b.sql", "")]);
        let e = Migrations::read(d.path(), Path::new("m"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("have the same version 1"), "{e}");
    }
}
