//! The core crate's error type: what failed, on which file or database, with the cause kept
//! as `#[source]` and never repeated in the message.

use std::path::{Path, PathBuf};

pub use devenv_server::ServerError;
pub use devenv_sql::LoadError;

use crate::config::ConfigError;

/// Why a core operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// devenv.yaml or a `DEVENV_*` variable is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A SQL file did not load: the loader's `path:line:col` report.
    #[error(transparent)]
    Load(#[from] Box<LoadError>),
    /// Starting, finding or stopping a server failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// The `migrations` directory cannot be applied as it is.
    #[error("migrations in {}: {problem}", dir.display())]
    Migrations {
        /// The directory as configured.
        dir: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A connection string does not parse.
    #[error("`url` in devenv.yaml (or DEVENV_URL)")]
    Url {
        /// The parser's error.
        #[source]
        source: devenv_server::ConnInfoError,
    },
    /// The server could not be reached, or refused the connection.
    #[error("connecting to \"{database}\"")]
    Connect {
        /// Which database.
        database: String,
        /// Why (explained when devenv knows).
        #[source]
        source: devenv_server::ConnectError,
    },
    /// The server refused an operation on a database.
    #[error("{what} \"{database}\"")]
    Db {
        /// Which step.
        what: &'static str,
        /// Which database.
        database: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The server's disk filled up during an operation on a database.
    #[error("no space left on the server's disk (its data directory) while {what} \"{database}\": free space, then try again")]
    DiskFull {
        /// Which step.
        what: &'static str,
        /// Which database.
        database: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// No `devenv up` runs (or it is not ready yet) for the project.
    #[error("no `devenv up` runs for this project; start one with `devenv up`")]
    NotRunning,
    /// No snapshot has that name.
    #[error("no snapshot named {name:?}; {}", if existing.is_empty() { "there are none (`devenv snapshot save` makes one)".to_owned() } else { format!("there are: {}", existing.join(", ")) })]
    SnapshotNotFound {
        /// The name asked for.
        name: String,
        /// The names there are.
        existing: Vec<String>,
    },
    /// A snapshot of that name exists.
    #[error("a snapshot named {name:?} exists; pick another name or `devenv snapshot rm {name}`")]
    SnapshotExists {
        /// The name.
        name: String,
    },
    /// A database devenv did not make is in the way.
    #[error("database \"{database}\" on {server} was not made by devenv (it has no devenv mark), so devenv will not replace it; set `database:` to another name, or replace it deliberately with `devenv db setup --yes`")]
    NotOurs {
        /// The database.
        database: String,
        /// The server, password masked.
        server: String,
    },
    /// A file of devenv's own is not what devenv wrote.
    #[error("{} is not valid (delete it; `devenv down` cleans up)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// File system trouble.
    #[error("{what} {}", path.display())]
    Io {
        /// Which step.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

impl From<LoadError> for CoreError {
    fn from(e: LoadError) -> Self {
        CoreError::Load(Box::new(e))
    }
}

/// Maps an I/O error of step `what` on `path`.
pub(crate) fn io<'p>(
    what: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> CoreError + 'p {
    move |source| CoreError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Maps a client error of step `what` on `database` (a full disk to [`CoreError::DiskFull`]).
pub(crate) fn db(
    what: &'static str,
    database: &str,
) -> impl FnOnce(tokio_postgres::Error) -> CoreError {
    let database = database.to_owned();
    move |source| {
        if crate::db::is_disk_full(&source) {
            CoreError::DiskFull {
                what,
                database,
                source,
            }
        } else {
            CoreError::Db {
                what,
                database,
                source,
            }
        }
    }
}

impl CoreError {
    /// Whether the error is a lost connection to the server (it closed, crashed or
    /// restarted), rather than a refusal.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            CoreError::Db { source, .. } => source.is_closed() || source.as_db_error().is_none(),
            _ => false,
        }
    }
}
