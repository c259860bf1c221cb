//! The crate's one error type. Messages are lowercase fragments that say what to do; a broken
//! SQL file shows the loader's compiler-style report (`path:line:col: error: ...`) as it is.
//! Causes are kept as `#[source]` and told apart by value (SQLSTATE, I/O kind), never by text.
//!
//! `Debug` prints the message and its causes, so `TestDb::new().await.unwrap()` in a test
//! shows the report rather than a struct dump.

use std::path::PathBuf;

use devenv_core::{ConfigError, CoreError};
use devenv_server::ServerError;
use devenv_sql::LoadError;
use tokio_postgres::error::SqlState;

/// Why a test database could not be had (or a test-database command failed).
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No `devenv.yaml` above the crate.
    #[error("no devenv.yaml found in {} or any parent directory; create one at the project root (every key is optional) or pass the root with TestDb::builder().root(..)", start.display())]
    NoProject {
        /// Where the search started.
        start: PathBuf,
    },
    /// `devenv.yaml` or a `DEVENV_*` variable is wrong, or a project operation failed.
    #[error(transparent)]
    Core(#[from] Box<CoreError>),
    /// The shared test server could not be started or found.
    #[error("the shared test server")]
    Server(#[source] Box<ServerError>),
    /// `DEVENV_FIXTURE_BACKEND` holds something else than `native` or `docker`.
    #[error("DEVENV_FIXTURE_BACKEND={0:?}: expected `native` or `docker`")]
    BackendVar(String),
    /// The server could not be reached, or refused the connection.
    #[error("{what}")]
    Connect {
        /// Which step.
        what: String,
        /// Why (explained when devenv knows).
        #[source]
        source: devenv_server::ConnectError,
    },
    /// The server refused an operation.
    #[error("{what}")]
    Db {
        /// Which step.
        what: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The shared test server is not what the configuration now asks for, and other test
    /// processes still use it.
    #[error("the shared test server runs with another {differences} than devenv.yaml now asks for, and other test processes use it; run `devenv test-dbs --stop-server` once they end (the next test starts a new one)")]
    ServerChanged {
        /// What differs ("image postgres:13 (now postgres:17)").
        differences: String,
    },
    /// A client library the test uses (sqlx, diesel) failed on the test database.
    #[error("{what}")]
    Driver {
        /// Which step.
        what: String,
        /// The library's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A record of the shared server is not what devenv wrote.
    #[error("{} is not valid (`devenv test-dbs --stop-server` cleans up)", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// File system trouble (the shared server's directory, its lock, the SQL files).
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

impl std::fmt::Debug for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)?;
        let mut source = std::error::Error::source(self);
        let mut last = self.to_string();
        while let Some(cause) = source {
            let text = cause.to_string();
            // tokio-postgres repeats its cause in its own message.
            if !last.ends_with(&text) {
                write!(f, ": {text}")?;
            }
            last = text;
            source = cause.source();
        }
        Ok(())
    }
}

impl From<CoreError> for Error {
    fn from(e: CoreError) -> Self {
        Error::Core(Box::new(e))
    }
}

impl From<ConfigError> for Error {
    fn from(e: ConfigError) -> Self {
        Error::Core(Box::new(CoreError::Config(e)))
    }
}

impl From<LoadError> for Error {
    fn from(e: LoadError) -> Self {
        Error::Core(Box::new(CoreError::from(e)))
    }
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Self {
        Error::Server(Box::new(e))
    }
}

/// Maps a client error to [`Error::Db`] for the step `what`.
pub(crate) fn db(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
    let what = what.into();
    move |source| Error::Db { what, source }
}

/// Maps an I/O error to [`Error::Io`].
pub(crate) fn io(
    what: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { what, path, source }
}

impl Error {
    /// The client error behind this one, if any.
    fn client_error(&self) -> Option<&tokio_postgres::Error> {
        match self {
            Error::Db { source, .. } => Some(source),
            Error::Connect { source, .. } => source.postgres(),
            Error::Core(core) => match core.as_ref() {
                CoreError::Db { source, .. } => Some(source),
                CoreError::Connect { source, .. } => source.postgres(),
                _ => None,
            },
            _ => None,
        }
    }

    /// Whether the server could not be reached (so a cached server is stale): the connection
    /// failed or closed without the server answering with an error.
    pub fn is_unreachable(&self) -> bool {
        self.client_error().is_some_and(|e| {
            e.as_db_error().is_none()
                && (e.is_closed()
                    || std::error::Error::source(e)
                        .and_then(|s| s.downcast_ref::<std::io::Error>())
                        .is_some())
        })
    }

    /// Whether a database (the template) is gone: SQLSTATE 3D000.
    pub fn is_missing_database(&self) -> bool {
        self.client_error()
            .is_some_and(|e| e.code() == Some(&SqlState::UNDEFINED_DATABASE))
    }
}
