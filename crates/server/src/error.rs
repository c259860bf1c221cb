//! The server crate's one error type. Each message is a lowercase fragment that says what to
//! do; the cause is kept as `#[source]` (printed once by whoever reports the chain), never
//! repeated in the message.

use std::path::PathBuf;
use std::time::Duration;

/// A boxed cause from a library whose error type is not part of this crate's API.
pub type Cause = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a server could not be started, found, reached or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// No Docker engine answered.
    #[error("no Docker engine answered (tried {tried}); start one (`dockerd`, Docker Desktop) or use `backend: native`")]
    NoEngine {
        /// Where the client looked.
        tried: String,
        /// The client's error.
        #[source]
        source: Cause,
    },
    /// Neither backend of `auto` can run.
    #[error("no way to get a PostgreSQL server:\n  docker: {docker}\n  native: {native}")]
    NoServer {
        /// Why not docker.
        docker: Box<ServerError>,
        /// Why not native.
        native: Box<ServerError>,
    },
    /// `backend: external` without a server to use.
    #[error("backend `external` needs `url:` in devenv.yaml (or DEVENV_URL)")]
    NoUrl,
    /// This build has no Docker client.
    #[error("this devenv was built without Docker support (cargo feature `docker`); use `backend: native` or `backend: external`, or rebuild with the feature")]
    NoDockerSupport,
    /// The image is missing and could not be pulled.
    #[error("image {image} is not present and could not be pulled; pull or build it, or set `image:` in devenv.yaml (or DEVENV_IMAGE) to an image you have")]
    ImageMissing {
        /// The image.
        image: String,
        /// The pull error.
        #[source]
        source: Cause,
    },
    /// Another project's database (or another container) already answers as `db` on the
    /// network.
    #[error("on the Docker network `{network}`, {other} already answers as `db`: two databases would both answer there and compose services could reach either; give this project a network of its own (`network: {suggested}` in devenv.yaml or DEVENV_NETWORK, and the same name in its compose file), or stop the other")]
    DbNameTaken {
        /// The network.
        network: String,
        /// Who answers: the container, and the project it belongs to.
        other: String,
        /// A network name to use instead.
        suggested: String,
    },
    /// The port is taken.
    #[error("port {port} on 127.0.0.1 is already in use; stop what uses it or set `port:` in devenv.yaml (or DEVENV_PORT; 0 picks a free port)")]
    PortTaken {
        /// The port.
        port: u16,
    },
    /// The server did not answer `SELECT 1` in time.
    #[error(
        "PostgreSQL did not answer `SELECT 1` within {waited:?}; last lines of {log_name}:\n{tail}"
    )]
    NotReady {
        /// How long we waited.
        waited: Duration,
        /// The server's log, or the container's.
        log_name: String,
        /// Its last lines.
        tail: String,
        /// The last connection error.
        #[source]
        source: Option<tokio_postgres::Error>,
    },
    /// The server process or container went away while starting.
    #[error("PostgreSQL exited before it was ready ({status}); last lines of {log_name}:\n{tail}")]
    Exited {
        /// Exit status or container state.
        status: String,
        /// The server's log, or the container's.
        log_name: String,
        /// Its last lines.
        tail: String,
    },
    /// No server binaries anywhere.
    #[error("no PostgreSQL server binaries found (tried {tried}); install them (Debian: `apt-get install postgresql-15`) or set DEVENV_PG_BIN to the directory holding initdb and postgres")]
    NoBinaries {
        /// Where we looked.
        tried: String,
    },
    /// Running as root and no unprivileged account to run postgres as.
    #[error("PostgreSQL refuses to run as root and no unprivileged user (postgres, nobody) exists to run it as; create one (`useradd postgres`) or run devenv as a normal user")]
    NoUser,
    /// The kept cluster was made by other binaries.
    #[error("the data kept in {} was made by PostgreSQL {found}, the binaries in {} are {wanted}; point DEVENV_PG_BIN at PostgreSQL {found} binaries, or `devenv down --volumes` to start over", data_dir.display(), bin_dir.display())]
    VersionMismatch {
        /// The data directory.
        data_dir: PathBuf,
        /// Its `PG_VERSION`.
        found: String,
        /// The binaries' major version.
        wanted: u32,
        /// Where the binaries are.
        bin_dir: PathBuf,
    },
    /// The kept data belongs to another superuser than the configured one.
    #[error("the kept data was initialised for user `{found}`, devenv.yaml now says `{wanted}`: set `user: {found}` back, or `devenv down --volumes` to start over with `{wanted}`")]
    UserChanged {
        /// The user the data was made for.
        found: String,
        /// The configured user.
        wanted: String,
    },
    /// A postmaster already serves the data directory.
    #[error("a PostgreSQL server (pid {pid}) already runs on {}; `devenv down` stops it", data_dir.display())]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// The data directory.
        data_dir: PathBuf,
    },
    /// A tool failed.
    #[error("{what} failed: {stderr}")]
    Command {
        /// Which tool.
        what: &'static str,
        /// What it printed.
        stderr: String,
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
    /// The Docker engine refused a step.
    #[error("{what}")]
    Engine {
        /// Which step.
        what: &'static str,
        /// The engine's error.
        #[source]
        source: Cause,
    },
    /// The server refused an operation or could not be reached.
    #[error("{what} ({server})")]
    Db {
        /// Which step.
        what: &'static str,
        /// The server, password masked.
        server: String,
        /// The client's error.
        #[source]
        source: tokio_postgres::Error,
    },
}

impl ServerError {
    /// Whether the error is about the machine's environment (engine, image, port, binaries,
    /// accounts) rather than a bug or a refused operation: the CLI's exit code 4.
    pub fn is_environment(&self) -> bool {
        !matches!(
            self,
            ServerError::Command { .. } | ServerError::Io { .. } | ServerError::Db { .. }
        )
    }
}

/// Maps an I/O error of step `what` on `path`.
pub(crate) fn io<'p>(
    what: &'static str,
    path: &'p std::path::Path,
) -> impl FnOnce(std::io::Error) -> ServerError + 'p {
    move |source| ServerError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}
