//! `devenv.yaml`: every key optional, defaults from the seed projects' conventions, and
//! `DEVENV_<KEY>` environment variables over the file. Unknown keys and wrong types are errors
//! that name the file, line and key; listed SQL files must exist.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod prod;
pub mod vars;
pub use prod::{ProdConfig, ProdSettingsError, DEFAULT_IP_SERVICE, PASSWORD_VAR};
pub use vars::{Var, Vars};

/// The config file's name at the project root.
pub const FILE_NAME: &str = "devenv.yaml";

use devenv_server::Choice;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(default, deserialize_with = "de_database")]
    database: Option<String>,
    #[serde(default, deserialize_with = "de_user")]
    user: Option<String>,
    #[serde(default, deserialize_with = "de_password")]
    password: Option<String>,
    image: Option<String>,
    port: Option<u16>,
    schema: Option<Vec<PathBuf>>,
    seed: Option<Vec<PathBuf>>,
    migrations: Option<PathBuf>,
    #[serde(default, deserialize_with = "de_watch")]
    watch: Option<Vec<String>>,
    #[serde(default, deserialize_with = "de_network")]
    network: Option<String>,
    backend: Option<Choice>,
    url: Option<String>,
    persist: Option<bool>,
    reload: Option<Reload>,
    branches: Option<bool>,
    #[serde(default, deserialize_with = "de_prune_after")]
    branch_prune_after: Option<String>,
    prod: Option<prod::RawProd>,
    #[serde(default, deserialize_with = "vars::deserialize")]
    vars: Option<std::collections::BTreeMap<String, String>>,
}

/// What a rebuild of the live database (a reload, `up` after the files changed, `db setup
/// --keep-rows`) does with the rows of the database it replaces (`reload:` in devenv.yaml).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reload {
    /// The rows the new database lacks are carried in ([`crate::carry`]).
    #[default]
    Carry,
    /// Schema and seed only.
    Fresh,
}

impl Reload {
    /// `DEVENV_RELOAD` over the file's `reload:`, carry by default.
    fn resolve(env: Option<&str>, file: Option<Reload>) -> Result<Reload, ConfigError> {
        match env {
            Some("carry") => Ok(Reload::Carry),
            Some("fresh") => Ok(Reload::Fresh),
            Some(other) => Err(ConfigError::Env {
                name: "DEVENV_RELOAD".into(),
                value: other.to_owned(),
                message: "expected carry or fresh".into(),
            }),
            None => Ok(file.unwrap_or_default()),
        }
    }
}

/// Configuration errors.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The YAML is invalid, has an unknown key or a wrong type.
    #[error("{}:{line}:{col}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        col: usize,
        /// serde's message, naming the key.
        message: String,
    },
    /// A `DEVENV_*` variable has a bad value.
    #[error("environment variable {name}={value:?}: {message}")]
    Env {
        /// Variable.
        name: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// The file cannot be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        /// The file.
        file: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A listed SQL file is missing.
    #[error("{}: file not found (listed under `{key}` in {FILE_NAME} or its default)", path.display())]
    MissingFile {
        /// The path as listed.
        path: PathBuf,
        /// `schema` or `seed`.
        key: &'static str,
    },
    /// A listed SQL file is a directory, a symlink loop, or unreadable.
    #[error("{}: {what} (listed under `{key}` in {FILE_NAME} or its default)", path.display())]
    BadFile {
        /// The path as listed.
        path: PathBuf,
        /// `schema` or `seed`.
        key: &'static str,
        /// What it is instead of a readable file.
        what: String,
    },
    /// `backend: external` without a `url`.
    #[error("backend `external` needs `url:` in {FILE_NAME} (or DEVENV_URL)")]
    NoUrl,
    /// The project directory does not exist.
    #[error("project directory {} does not exist (given with -C, or the current directory)", path.display())]
    NoProjectDir {
        /// The directory.
        path: PathBuf,
    },
    /// A `vars:` value takes an environment variable that is not set.
    #[error("{}:{line}: vars.{name}: environment variable `{missing}` is not set (write `${{{missing}:-default}}` for a default)", file.display())]
    UnsetEnv {
        /// devenv.yaml.
        file: PathBuf,
        /// The line that names it.
        line: usize,
        /// The variable under `vars:`.
        name: String,
        /// The environment variable.
        missing: String,
    },
    /// The database name (from the directory's name) cannot be the project's database.
    #[error("database name {name:?} (the project directory's name) {why}; set `database:` in {FILE_NAME} (or DEVENV_DATABASE)")]
    BadDatabase {
        /// The name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
}

/// The resolved configuration of one project (its `Debug` masks the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// The project root (where devenv.yaml is, or would be).
    pub root: PathBuf,
    /// The database name.
    pub database: String,
    /// Superuser name.
    pub user: String,
    /// Superuser password.
    pub password: String,
    /// Docker image.
    pub image: String,
    /// Host port (0 = any free port).
    pub port: u16,
    /// Schema files, in order, relative to root.
    pub schema: Vec<PathBuf>,
    /// Seed files, in order, relative to root.
    pub seed: Vec<PathBuf>,
    /// A migrations directory (sqlx, diesel or plain `*.sql`), relative to root, applied
    /// between schema and seed ([`crate::migrations`]); none by default.
    pub migrations: Option<PathBuf>,
    /// Globs of files to watch.
    pub watch: Vec<String>,
    /// Docker network.
    pub network: String,
    /// Backend choice.
    pub backend: Choice,
    /// Server URL for `backend: external`.
    pub url: Option<String>,
    /// Whether the data outlives `devenv up` (`persist: false` throws it away at stop).
    pub persist: bool,
    /// What a rebuild does with the rows of the database it replaces.
    pub reload: Reload,
    /// A database per git branch ([`crate::branch`]): `up` keeps the live database as the
    /// branch's when the checked-out branch changes, and swaps the new branch's in.
    pub branches: bool,
    /// How long after it was last left a deleted branch's database is kept.
    pub branch_prune_after: std::time::Duration,
    /// The `prod:` section: AWS settings of `devenv prod ...`.
    pub prod: ProdConfig,
    /// psql variables set before the first file (`vars:`; `--set` adds to them).
    pub vars: Vars,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root", &self.root)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &devenv_server::conninfo::MASK)
            .field("image", &self.image)
            .field("port", &self.port)
            .field("schema", &self.schema)
            .field("seed", &self.seed)
            .field("migrations", &self.migrations)
            .field("watch", &self.watch)
            .field("network", &self.network)
            .field("backend", &self.backend)
            .field("url", &self.url.as_deref().map(devenv_server::mask))
            .field("persist", &self.persist)
            .field("reload", &self.reload)
            .field("branches", &self.branches)
            .field("branch_prune_after", &self.branch_prune_after)
            .field("prod", &self.prod)
            .field("vars", &self.vars)
            .finish()
    }
}

/// The keys a running `devenv up` cannot take on while it runs (what the server is, where it
/// listens, what it is called, whether it follows git branches): a change needs a restart.
/// The others (`schema`, `seed`, `watch`, `prod`, `vars`) apply at once.
const RESTART_KEYS: [&str; 11] = [
    "database",
    "user",
    "password",
    "image",
    "port",
    "network",
    "backend",
    "url",
    "persist",
    "branches",
    "branch_prune_after",
];

impl Config {
    /// The keys whose values differ from `other`'s and need a restart of `devenv up`.
    pub fn restart_needed(&self, other: &Config) -> Vec<&'static str> {
        let differs = [
            self.database != other.database,
            self.user != other.user,
            self.password != other.password,
            self.image != other.image,
            self.port != other.port,
            self.network != other.network,
            self.backend != other.backend,
            self.url != other.url,
            self.persist != other.persist,
            self.branches != other.branches,
            self.branch_prune_after != other.branch_prune_after,
        ];
        RESTART_KEYS
            .into_iter()
            .zip(differs)
            .filter_map(|(key, differs)| differs.then_some(key))
            .collect()
    }

    /// Loads `root/devenv.yaml` (if present) and the `DEVENV_*` variables of this process.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(root, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        root: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let (raw, dir_name) = read_raw(root)?;
        let var = |key: &str| env(&format!("DEVENV_{}", key.to_ascii_uppercase()));
        let list = |key: &str| {
            var(key).map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
        };
        let env_err = |key: &str, value: String, message: String| ConfigError::Env {
            name: format!("DEVENV_{}", key.to_ascii_uppercase()),
            value,
            message,
        };
        let port = match var("port") {
            Some(v) => v
                .parse::<u16>()
                .map_err(|e| env_err("port", v.clone(), e.to_string()))?,
            None => raw.port.unwrap_or(5432),
        };
        let backend = match var("backend") {
            Some(v) => v.parse().map_err(|e| env_err("backend", v.clone(), e))?,
            None => raw.backend.unwrap_or(Choice::Auto),
        };
        let persist = bool_setting(&var, "persist", raw.persist, true)?;
        let reload = Reload::resolve(var("reload").as_deref(), raw.reload)?;
        let (branches, prune_after) = branch_settings(&raw, &var)?;
        let paths = |v: Vec<String>| v.into_iter().map(PathBuf::from).collect::<Vec<_>>();
        // A value from the environment is checked here, one from the file as it is parsed
        // (so the error has its line), a default needs no check but the database name, which
        // comes from the directory's.
        let checked = |key: &str, check: Check| match var(key) {
            Some(v) => match check(&v) {
                Ok(()) => Ok(Some(v)),
                Err(message) => Err(env_err(
                    key,
                    if key == "password" {
                        devenv_server::conninfo::MASK.into()
                    } else {
                        v
                    },
                    message,
                )),
            },
            None => Ok(None),
        };
        let database = if let Some(name) = checked("database", check_database)?.or(raw.database) {
            name
        } else {
            check_database(&dir_name).map_err(|why| ConfigError::BadDatabase {
                name: dir_name.clone(),
                why,
            })?;
            dir_name
        };
        let watch = match list("watch") {
            Some(globs) => Some(check_globs(globs).map_err(|(v, m)| env_err("watch", v, m))?),
            None => raw.watch,
        };
        let config = Config {
            root: root.to_path_buf(),
            prod: ProdConfig::resolve(raw.prod, &database, &env),
            database,
            user: checked("user", check_user)?
                .or(raw.user)
                .unwrap_or_else(|| "postgres".into()),
            password: checked("password", check_password)?
                .or(raw.password)
                .unwrap_or_else(|| "password".into()),
            image: var("image")
                .or(raw.image)
                .unwrap_or_else(|| "postgres:13-alpine".into()),
            port,
            schema: list("schema")
                .map(paths)
                .or(raw.schema)
                .unwrap_or_else(|| vec![PathBuf::from("db/schema.sql")]),
            seed: list("seed")
                .map(paths)
                .or(raw.seed)
                .unwrap_or_else(|| vec![PathBuf::from("db/seed.sql")]),
            migrations: var("migrations").map(PathBuf::from).or(raw.migrations),
            watch: watch.unwrap_or_else(|| vec!["db/**/*.sql".into()]),
            network: checked("network", check_network)?
                .or(raw.network)
                .unwrap_or_else(|| "devenv".into()),
            backend,
            url: var("url").or(raw.url),
            persist,
            reload,
            branches,
            branch_prune_after: prune_after,
            vars: Vars::resolve(raw.vars.unwrap_or_default(), &env),
        };
        if config.backend == Choice::External && config.url.is_none() {
            return Err(ConfigError::NoUrl);
        }
        Ok(config.with_migrations_watched())
    }

    /// The watch globs with the migrations directory's: a migration added while `up` runs is a
    /// change like an edited schema file.
    fn with_migrations_watched(mut self) -> Self {
        if let Some(dir) = &self.migrations {
            let glob = format!("{}/**/*.sql", dir.display());
            if !self.watch.contains(&glob) {
                self.watch.push(glob);
            }
        }
        self
    }

    /// Schema then seed files, in load order.
    pub fn sql_files(&self) -> Vec<PathBuf> {
        self.schema.iter().chain(&self.seed).cloned().collect()
    }

    /// Checks what loading the files needs: every `vars:` value's environment variables set
    /// ([`Config::check_vars`]), every listed SQL file a readable regular file.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        self.check_vars()?;
        for (key, files) in [("schema", &self.schema), ("seed", &self.seed)] {
            for path in files {
                check_file(&self.root.join(path), path, key)?;
            }
        }
        if let Some(dir) = &self.migrations {
            match std::fs::metadata(self.root.join(dir)) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    return Err(ConfigError::BadFile {
                        path: dir.clone(),
                        key: "migrations",
                        what: "is not a directory".into(),
                    })
                }
                Err(_) => {
                    return Err(ConfigError::MissingFile {
                        path: dir.clone(),
                        key: "migrations",
                    })
                }
            }
        }
        Ok(())
    }

    /// Checks that every environment variable a `vars:` value takes is set.
    pub fn check_vars(&self) -> Result<(), ConfigError> {
        if let Some(unset) = &self.vars.unset {
            let file = self.root.join(FILE_NAME);
            let text = std::fs::read_to_string(&file).unwrap_or_default();
            let needle = format!("${{{}", unset.missing);
            let line = text
                .lines()
                .position(|l| l.contains(&needle))
                .map_or(1, |i| i + 1);
            return Err(ConfigError::UnsetEnv {
                file,
                line,
                name: unset.name.clone(),
                missing: unset.missing.clone(),
            });
        }
        Ok(())
    }
}

/// The file's values (none when there is no file) and the project directory's name.
fn read_raw(root: &Path) -> Result<(Raw, String), ConfigError> {
    if !root.is_dir() {
        return Err(ConfigError::NoProjectDir {
            path: root.to_path_buf(),
        });
    }
    let file = root.join(FILE_NAME);
    let raw = match std::fs::read_to_string(&file) {
        Ok(text) => parse(&file, &text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Raw::default(),
        Err(source) => return Err(ConfigError::Read { file, source }),
    };
    let dir_name = std::fs::canonicalize(root)
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "devenv".into());
    Ok((raw, dir_name))
}

fn check_file(full: &Path, path: &Path, key: &'static str) -> Result<(), ConfigError> {
    let bad = |what: String| ConfigError::BadFile {
        path: path.to_path_buf(),
        key,
        what,
    };
    match std::fs::metadata(full) {
        Ok(meta) if meta.is_dir() => Err(bad("is a directory, not a file".into())),
        // Opening a FIFO would wait for a writer: `up` would hang before it starts.
        Ok(meta) if !meta.is_file() => Err(bad(format!(
            "is {}, not a regular file",
            devenv_sql::inputs::not_regular(meta.file_type()).unwrap_or("not a regular file")
        ))),
        Ok(_) => std::fs::File::open(full)
            .map(drop)
            .map_err(|e| bad(format!("cannot be read ({e})"))),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            Err(bad("is a symbolic link loop".into()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::fs::symlink_metadata(full).is_ok() {
                Err(bad("is a symbolic link to nothing".into()))
            } else {
                Err(ConfigError::MissingFile {
                    path: path.to_path_buf(),
                    key,
                })
            }
        }
        Err(e) => Err(bad(format!("cannot be read ({e})"))),
    }
}

/// A value check: `Err` says what is wrong, as a fragment after the key.
type Check = fn(&str) -> Result<(), String>;

/// PostgreSQL's limits on a name (a role, a database): not empty, at most 63 bytes, no NUL.
fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        Err("must not be empty".into())
    } else if name.len() > 63 {
        Err(format!(
            "is {} bytes, longer than PostgreSQL's 63 bytes",
            name.len()
        ))
    } else if name.contains('\0') {
        Err("holds a NUL character".into())
    } else {
        Ok(())
    }
}

/// A database name: a name, and not one of the server's own databases (devenv renames,
/// closes and replaces the project's database).
fn check_database(name: &str) -> Result<(), String> {
    check_name(name)?;
    if ["postgres", "template0", "template1"].contains(&name) {
        return Err(format!(
            "is the name of the server's own database `{name}`, which devenv must not replace; pick the project's own name"
        ));
    }
    Ok(())
}

/// The superuser: a role name.
fn check_user(name: &str) -> Result<(), String> {
    check_name(name)
}

/// The superuser's password: the images refuse an empty one, and password logins need one.
fn check_password(password: &str) -> Result<(), String> {
    if password.is_empty() {
        Err("must not be empty (the server asks for it over TCP)".into())
    } else if password.contains('\0') {
        Err("holds a NUL character".into())
    } else {
        Ok(())
    }
}

/// A Docker network name, as the engine takes them.
fn check_network(name: &str) -> Result<(), String> {
    let valid = name
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if name.is_empty() {
        Err("must not be empty".into())
    } else if !valid {
        Err("must start with a letter or digit and hold only letters, digits, `_`, `.` and `-` (Docker's rule for network names)".into())
    } else if name.len() > 64 {
        Err("is longer than 64 characters".into())
    } else {
        Ok(())
    }
}

/// The globs of `watch` from the environment; the error has the variable's value.
fn check_globs(globs: Vec<String>) -> Result<Vec<String>, (String, String)> {
    for glob in &globs {
        check_glob(glob).map_err(|message| (globs.join(","), message))?;
    }
    Ok(globs)
}

/// A glob of `watch`.
fn check_glob(glob: &str) -> Result<(), String> {
    globset::Glob::new(glob)
        .map(drop)
        .map_err(|e| format!("`{glob}` is not a valid glob ({})", e.kind()))
}

/// Deserializes an optional string checked by `check`. The check runs inside the YAML
/// deserializer's own visit of the scalar, so its error carries the value's line and column
/// and the key's path, as serde_yaml's own errors do.
fn checked_string<'de, D: serde::Deserializer<'de>>(
    d: D,
    check: Check,
) -> Result<Option<String>, D::Error> {
    struct Optional(Check);
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(Checked(self.0)).map(Some)
        }
    }
    d.deserialize_option(Optional(check))
}

/// A string scalar checked as it is visited.
#[derive(Clone, Copy)]
struct Checked(Check);

impl serde::de::Visitor<'_> for Checked {
    type Value = String;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
        (self.0)(v).map(|()| v.to_owned()).map_err(E::custom)
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Checked {
    type Value = String;
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        d.deserialize_str(self)
    }
}

fn de_database<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_string(d, check_database)
}

fn de_user<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_string(d, check_user)
}

fn de_password<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_string(d, check_password)
}

fn de_network<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_string(d, check_network)
}

fn de_watch<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    struct Globs;
    impl<'de> serde::de::Visitor<'de> for Globs {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of globs")
        }
        fn visit_seq<A: serde::de::SeqAccess<'de>>(
            self,
            mut seq: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut globs = Vec::new();
            while let Some(glob) = seq.next_element_seed(Checked(check_glob))? {
                globs.push(glob);
            }
            Ok(globs)
        }
    }
    struct Optional;
    impl<'de> serde::de::Visitor<'de> for Optional {
        type Value = Option<Vec<String>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a list of globs")
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_seq(Globs).map(Some)
        }
    }
    d.deserialize_option(Optional)
}

/// A true-or-false key: the environment's value (`DEVENV_<KEY>`) over the file's.
fn bool_setting(
    var: &dyn Fn(&str) -> Option<String>,
    key: &str,
    file: Option<bool>,
    default: bool,
) -> Result<bool, ConfigError> {
    match var(key) {
        Some(v) => parse_bool(&v).ok_or_else(|| ConfigError::Env {
            name: format!("DEVENV_{}", key.to_ascii_uppercase()),
            value: v,
            message: "expected true or false".into(),
        }),
        None => Ok(file.unwrap_or(default)),
    }
}

/// `branches` and `branch_prune_after`, the environment's over the file's.
fn branch_settings(
    raw: &Raw,
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(bool, std::time::Duration), ConfigError> {
    let branches = bool_setting(var, "branches", raw.branches, false)?;
    let prune_after = match var("branch_prune_after") {
        Some(v) => parse_period(&v).map_err(|message| ConfigError::Env {
            name: "DEVENV_BRANCH_PRUNE_AFTER".into(),
            value: v.clone(),
            message,
        })?,
        // A value from the file was checked as it was parsed.
        None => raw
            .branch_prune_after
            .as_deref()
            .and_then(|v| parse_period(v).ok())
            .unwrap_or(DEFAULT_BRANCH_PRUNE_AFTER),
    };
    Ok((branches, prune_after))
}

/// How long a deleted branch's database is kept by default: a week.
pub const DEFAULT_BRANCH_PRUNE_AFTER: std::time::Duration =
    std::time::Duration::from_secs(7 * 24 * 3600);

/// A period of `branch_prune_after`: humantime's `7d`, `36h`, `90m`, `0s`.
fn parse_period(v: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(v.trim())
        .map_err(|e| format!("`{v}` is not a period such as 7d, 36h or 0s ({e})"))
}

fn check_period(v: &str) -> Result<(), String> {
    parse_period(v).map(drop)
}

fn de_prune_after<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked_string(d, check_period)
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse(file: &Path, text: &str) -> Result<Raw, ConfigError> {
    if text.trim().is_empty() {
        return Ok(Raw::default());
    }
    serde_yaml::from_str::<Option<Raw>>(text)
        .map(Option::unwrap_or_default)
        .map_err(|e| {
            let (line, col) = e.location().map_or((1, 1), |l| (l.line(), l.column()));
            ConfigError::Invalid {
                file: file.to_path_buf(),
                line,
                col,
                message: e
                    .to_string()
                    .split(" at line ")
                    .next()
                    .unwrap_or("")
                    .to_owned(),
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project(yaml: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(yaml) = yaml {
            std::fs::write(dir.path().join(FILE_NAME), yaml).unwrap();
        }
        dir
    }

    #[test]
    fn defaults_follow_the_seed_projects() {
        let dir = project(None);
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let name = dir.path().file_name().unwrap().to_string_lossy();
        assert_eq!(c.database, name);
        assert_eq!(
            (c.user.as_str(), c.password.as_str()),
            ("postgres", "password")
        );
        assert_eq!(c.image, "postgres:13-alpine");
        assert_eq!(c.port, 5432);
        assert_eq!(
            c.sql_files(),
            [PathBuf::from("db/schema.sql"), PathBuf::from("db/seed.sql")]
        );
        assert_eq!(c.watch, ["db/**/*.sql"]);
        assert_eq!((c.network.as_str(), c.backend), ("devenv", Choice::Auto));
    }

    #[test]
    fn no_debug_output_holds_the_password() {
        let dir = project(Some(
            "password: Sekr1t-Pw\nurl: postgresql://u:UrlSekr1t@db.example.com/app\n",
        ));
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let project = crate::Project::with_config(c.clone());
        let spec = project.up_spec(
            devenv_server::Storage::Persistent,
            devenv_server::Progress::default(),
        );
        for shown in [
            format!("{c:?}"),
            format!("{project:?}"),
            format!("{spec:?}"),
        ] {
            assert!(!shown.contains("Sekr1t"), "{shown}");
        }
    }

    #[test]
    fn file_values_and_env_overrides() {
        let dir = project(Some(
            "database: cruddur\nport: 0\nschema: [a.sql, b.sql]\nbackend: native\n",
        ));
        let c = Config::load_with_env(dir.path(), |k| match k {
            "DEVENV_PORT" => Some("6543".into()),
            "DEVENV_SEED" => Some("s1.sql, s2.sql".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.database, "cruddur");
        assert_eq!(c.port, 6543);
        assert_eq!(c.schema, [PathBuf::from("a.sql"), PathBuf::from("b.sql")]);
        assert_eq!(c.seed, [PathBuf::from("s1.sql"), PathBuf::from("s2.sql")]);
        assert_eq!(c.backend, Choice::Native);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let dir = project(Some("database: x\n\nimgae: postgres:15\n"));
        let e = Config::load_with_env(dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("devenv.yaml:3:1: unknown field `imgae`"), "{e}");
    }

    #[test]
    fn wrong_type_names_file_line_and_key() {
        let dir = project(Some("port: lots\n"));
        let e = Config::load_with_env(dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("devenv.yaml:1:7: port: invalid type"), "{e}");
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let dir = project(None);
        let e = Config::load_with_env(dir.path(), |k| (k == "DEVENV_PORT").then(|| "x".into()))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("environment variable DEVENV_PORT=\"x\""),
            "{e}"
        );
    }

    #[test]
    fn bad_database_names_are_config_errors() {
        let long = "x".repeat(64);
        for name in ["", long.as_str(), "postgres", "template0", "template1"] {
            let dir = project(Some(&format!("database: \"{name}\"\n")));
            let e = Config::load_with_env(dir.path(), |_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains("/devenv.yaml:1:11: database: "), "{name}: {e}");
        }
    }

    #[test]
    fn bad_values_name_the_key_and_line_before_anything_starts() {
        let seventy = "u".repeat(70);
        let cases = [
            ("user: \"\"", "devenv.yaml:2:7: user: must not be empty"),
            (
                &format!("user: {seventy}") as &str,
                "devenv.yaml:2:7: user: is 70 bytes, longer than PostgreSQL's 63 bytes",
            ),
            (
                "password: \"\"",
                "devenv.yaml:2:11: password: must not be empty",
            ),
            (
                "network: \"\"",
                "devenv.yaml:2:10: network: must not be empty",
            ),
            (
                "network: \"my net\"",
                "devenv.yaml:2:10: network: must start with",
            ),
            (
                "watch: [\"db/**/*.sql\", \"db/[a\"]",
                "devenv.yaml:2:24: watch[1]: `db/[a` is not a valid glob",
            ),
        ];
        for (line, wanted) in cases {
            let dir = project(Some(&format!("database: app\n{line}\n")));
            let e = Config::load_with_env(dir.path(), |_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("/{wanted}")), "{line}: {e}");
        }
        let dir = project(None);
        for (var, value, wanted) in [
            (
                "DEVENV_USER",
                "",
                "environment variable DEVENV_USER=\"\": must not be empty",
            ),
            (
                "DEVENV_PASSWORD",
                "",
                "environment variable DEVENV_PASSWORD=\"****\"",
            ),
            (
                "DEVENV_NETWORK",
                "a b",
                "environment variable DEVENV_NETWORK=\"a b\": must start",
            ),
            (
                "DEVENV_WATCH",
                "db/[a",
                "environment variable DEVENV_WATCH=\"db/[a\"",
            ),
            (
                "DEVENV_DATABASE",
                "template0",
                "environment variable DEVENV_DATABASE=\"template0\"",
            ),
        ] {
            let e = Config::load_with_env(dir.path(), |k| (k == var).then(|| value.to_owned()))
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(wanted), "{var}: {e}");
        }
    }

    #[test]
    fn a_directory_named_like_a_server_database_needs_a_database_key() {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("postgres");
        std::fs::create_dir(&dir).unwrap();
        let e = Config::load_with_env(&dir, |_| None).unwrap_err();
        assert!(matches!(e, ConfigError::BadDatabase { .. }), "{e}");
        std::fs::write(dir.join(FILE_NAME), "database: app\n").unwrap();
        assert_eq!(
            Config::load_with_env(&dir, |_| None).unwrap().database,
            "app"
        );
    }

    #[test]
    fn a_missing_project_directory_is_named() {
        let e = Config::load_with_env(Path::new("/nonexistent/devenv-project"), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("project directory /nonexistent/devenv-project does not exist"),
            "{e}"
        );
    }

    #[test]
    fn listed_directories_and_symlink_loops_are_named_as_such() {
        let dir = project(None);
        std::fs::create_dir_all(dir.path().join("db/schema.sql")).unwrap();
        std::os::unix::fs::symlink("seed.sql", dir.path().join("db/seed.sql")).unwrap();
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(e.contains("db/schema.sql: is a directory"), "{e}");
        std::fs::remove_dir(dir.path().join("db/schema.sql")).unwrap();
        std::fs::write(dir.path().join("db/schema.sql"), "").unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(e.contains("db/seed.sql: is a symbolic link loop"), "{e}");
    }

    #[test]
    fn a_fifo_listed_as_a_seed_is_a_config_error_not_a_hang() {
        let dir = project(None);
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/schema.sql"), "").unwrap();
        // No writer ever opens it: opening it to read would wait for good.
        nix::unistd::mkfifo(
            &dir.path().join("db/seed.sql"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert_eq!(
            e,
            "db/seed.sql: is a FIFO (named pipe), not a regular file (listed under `seed` in devenv.yaml or its default)"
        );
    }

    #[test]
    fn vars_are_psql_variables_with_environment_values() {
        let dir = project(Some(
            "vars:\n  USER_NAME: app\n  USER_PASSWORD: ${APP_PW}\n  PORT: 5432\n  ON: true\n",
        ));
        let c =
            Config::load_with_env(dir.path(), |k| (k == "APP_PW").then(|| "pw1".into())).unwrap();
        let vars: Vec<_> = c
            .vars
            .iter()
            .map(|(n, v)| (n, v.value.as_str(), v.secret))
            .collect();
        assert_eq!(
            vars,
            [
                ("ON", "true", false),
                ("PORT", "5432", false),
                ("USER_NAME", "app", false),
                ("USER_PASSWORD", "pw1", true)
            ]
        );
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(
            e.ends_with("devenv.yaml:3: vars.USER_PASSWORD: environment variable `APP_PW` is not set (write `${APP_PW:-default}` for a default)"),
            "{e}"
        );
        for (yaml, message) in [
            (
                "vars:\n  ok: 1\n  bad-name: 2\n",
                "devenv.yaml:3:3: vars: `bad-name` is not a psql variable name",
            ),
            (
                "vars:\n  V: 1.10\n",
                "devenv.yaml:2:6: vars.V: YAML reads this value as the number 1.1",
            ),
            (
                "vars: [a]\n",
                "devenv.yaml:1:7: vars: invalid type: sequence",
            ),
        ] {
            let dir = project(Some(yaml));
            let e = Config::load_with_env(dir.path(), |_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(message), "{e}");
        }
    }

    #[test]
    fn persist_defaults_on_and_can_be_turned_off() {
        let dir = project(None);
        assert!(Config::load_with_env(dir.path(), |_| None).unwrap().persist);
        let dir = project(Some("persist: false\n"));
        assert!(!Config::load_with_env(dir.path(), |_| None).unwrap().persist);
    }

    #[test]
    fn reload_carries_by_default_and_can_be_fresh() {
        let dir = project(None);
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        assert_eq!(c.reload, Reload::Carry);
        let dir = project(Some("reload: fresh\n"));
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        assert_eq!(c.reload, Reload::Fresh);
        let c = Config::load_with_env(dir.path(), |k| {
            (k == "DEVENV_RELOAD").then(|| "carry".into())
        })
        .unwrap();
        assert_eq!(c.reload, Reload::Carry);
        let e = Config::load_with_env(dir.path(), |k| {
            (k == "DEVENV_RELOAD").then(|| "keep".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("DEVENV_RELOAD") && e.contains("expected carry or fresh"),
            "{e}"
        );
        let dir = project(Some("reload: keep\n"));
        let e = Config::load_with_env(dir.path(), |_| None)
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "devenv.yaml:1:9: reload: unknown variant `keep`, expected `carry` or `fresh`"
            ),
            "{e}"
        );
    }

    #[test]
    fn branches_default_off_with_a_week_of_grace() {
        let dir = project(None);
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        assert!(!c.branches);
        assert_eq!(c.branch_prune_after, DEFAULT_BRANCH_PRUNE_AFTER);
        let dir = project(Some("branches: true\nbranch_prune_after: 36h\n"));
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        assert!(c.branches);
        assert_eq!(c.branch_prune_after.as_secs(), 36 * 3600);
        let c = Config::load_with_env(dir.path(), |k| match k {
            "DEVENV_BRANCHES" => Some("off".into()),
            "DEVENV_BRANCH_PRUNE_AFTER" => Some("0s".into()),
            _ => None,
        })
        .unwrap();
        assert!(!c.branches);
        assert_eq!(c.branch_prune_after.as_secs(), 0);
        let old = Config::load_with_env(project(None).path(), |_| None).unwrap();
        let new = Config {
            branches: true,
            ..old.clone()
        };
        assert_eq!(old.restart_needed(&new), ["branches"]);
        for (yaml, wanted) in [
            (
                "database: app\nbranch_prune_after: soon\n",
                "devenv.yaml:2:21: branch_prune_after: `soon` is not a period",
            ),
            (
                "database: app\nbranches: maybe\n",
                "devenv.yaml:2:11: branches: invalid type",
            ),
            (
                "database: app\nbranch: true\n",
                "devenv.yaml:2:1: unknown field `branch`",
            ),
        ] {
            let dir = project(Some(yaml));
            let e = Config::load_with_env(dir.path(), |_| None)
                .unwrap_err()
                .to_string();
            assert!(e.contains(wanted), "{yaml}: {e}");
        }
        let e = Config::load_with_env(dir.path(), |k| {
            (k == "DEVENV_BRANCH_PRUNE_AFTER").then(|| "a week".into())
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("environment variable DEVENV_BRANCH_PRUNE_AFTER=\"a week\""),
            "{e}"
        );
    }

    #[test]
    fn missing_sql_file_is_named() {
        let dir = project(None);
        let c = Config::load_with_env(dir.path(), |_| None).unwrap();
        let e = c.check_files().unwrap_err().to_string();
        assert!(
            e.starts_with("db/schema.sql: file not found (listed under `schema`"),
            "{e}"
        );
    }
}
