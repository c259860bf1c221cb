//! `devenv.yaml`: every key optional, defaults from the seed projects' conventions, and
//! `DEVENV_<KEY>` environment variables over the file. Unknown keys and wrong types are errors
//! that name the file, line and key; listed SQL files must exist.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod prod;
pub use prod::{ProdConfig, DEFAULT_IP_SERVICE, PASSWORD_VAR};

/// The config file's name at the project root.
pub const FILE_NAME: &str = "devenv.yaml";

/// Where the server comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Docker when an engine answers, else native binaries.
    Auto,
    /// A container through testcontainers.
    Docker,
    /// Local PostgreSQL binaries.
    Native,
    /// An existing server at `url`.
    External,
}

impl std::str::FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Backend::Auto),
            "docker" => Ok(Backend::Docker),
            "native" => Ok(Backend::Native),
            "external" => Ok(Backend::External),
            other => Err(format!(
                "unknown backend `{other}` (expected auto, docker, native or external)"
            )),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Docker => "docker",
            Backend::Native => "native",
            Backend::External => "external",
        })
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
    image: Option<String>,
    port: Option<u16>,
    schema: Option<Vec<PathBuf>>,
    seed: Option<Vec<PathBuf>>,
    watch: Option<Vec<String>>,
    network: Option<String>,
    backend: Option<Backend>,
    url: Option<String>,
    prod: Option<prod::RawProd>,
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
    /// `backend: external` without a `url`.
    #[error("backend `external` needs `url:` in {FILE_NAME} (or DEVENV_URL)")]
    NoUrl,
}

/// The resolved configuration of one project.
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// Globs of files to watch.
    pub watch: Vec<String>,
    /// Docker network.
    pub network: String,
    /// Backend choice.
    pub backend: Backend,
    /// Server URL for `backend: external`.
    pub url: Option<String>,
    /// The `prod:` section: AWS settings of `devenv prod ...`.
    pub prod: ProdConfig,
}

impl Config {
    /// Loads `root/devenv.yaml` (if present) and the `DEVENV_*` variables of this process.
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(root, |name| std::env::var(name).ok())
    }

    /// Like [`Config::load`] with an explicit environment (for tests).
    pub fn load_with_env(
        root: &Path,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
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
            None => raw.backend.unwrap_or(Backend::Auto),
        };
        let paths = |v: Vec<String>| v.into_iter().map(PathBuf::from).collect::<Vec<_>>();
        let database = var("database").or(raw.database).unwrap_or(dir_name);
        let config = Config {
            root: root.to_path_buf(),
            prod: ProdConfig::resolve(raw.prod, &database, &env),
            database,
            user: var("user")
                .or(raw.user)
                .unwrap_or_else(|| "postgres".into()),
            password: var("password")
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
            watch: list("watch")
                .or(raw.watch)
                .unwrap_or_else(|| vec!["db/**/*.sql".into()]),
            network: var("network")
                .or(raw.network)
                .unwrap_or_else(|| "devenv".into()),
            backend,
            url: var("url").or(raw.url),
        };
        if config.backend == Backend::External && config.url.is_none() {
            return Err(ConfigError::NoUrl);
        }
        Ok(config)
    }

    /// Schema then seed files, in load order.
    pub fn sql_files(&self) -> Vec<PathBuf> {
        self.schema.iter().chain(&self.seed).cloned().collect()
    }

    /// Checks that every listed SQL file exists.
    pub fn check_files(&self) -> Result<(), ConfigError> {
        for (key, files) in [("schema", &self.schema), ("seed", &self.seed)] {
            for path in files {
                if !self.root.join(path).is_file() {
                    return Err(ConfigError::MissingFile {
                        path: path.clone(),
                        key,
                    });
                }
            }
        }
        Ok(())
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
        assert_eq!((c.network.as_str(), c.backend), ("devenv", Backend::Auto));
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
        assert_eq!(c.backend, Backend::Native);
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
