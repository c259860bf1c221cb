//! Where devenv's PostgreSQL comes from: the one server abstraction every part of devenv uses
//! to start, find, watch and stop servers.
//!
//! - [`Spec`] says what to run (identity, credentials, port, image, network, [`Storage`]);
//!   [`start`] picks the backend ([`Choice`], `auto` and its reason decided only here) and
//!   returns a [`Handle`]. Before creating anything, `start` hands the caller a [`Record`] of
//!   what it is about to create, so a `down` after a SIGKILL at any moment finds all of it.
//! - A [`Handle`] is a running server of any backend: [`Handle::server`] says how to reach it,
//!   [`Handle::exited`] resolves when it dies, [`Handle::stop`] stops it (kept data stays),
//!   [`Handle::forget_data`] removes kept data, and dropping a handle leaves the server
//!   running (the explicit keep switch: nothing is stopped behind the caller's back).
//! - [`Handle::attach`] finds the running server a record describes, checked against the
//!   world (container id and labels, `postmaster.pid` and data directory); [`clean`] removes
//!   what a record names when nothing runs it any more.
//! - Backends: [`docker`] (cargo feature `docker`, on by default), [`native`], and external
//!   servers, which are never started or stopped.
//! - [`conninfo`]: how to reach a server, connection strings parsed and masked, local or not.
//! - [`ready`]: readiness is "a connection authenticates and `SELECT 1` answers".
//! - [`process`] and [`files`]: pids checked against the world; private files and ids.

pub mod conninfo;
#[cfg(feature = "docker")]
pub mod docker;
pub mod error;
pub mod files;
pub mod native;
pub mod process;
pub mod ready;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use conninfo::{mask, ConnInfoError, Server, APPLICATION_NAME};
pub use error::ServerError;

/// Server settings of every dev server devenv starts, as `-c` arguments. `fsync` and
/// `full_page_writes` are off: a crash of postgres alone (SIGKILL, `docker kill`, OOM) loses
/// nothing with them off, since what it wrote is in the operating system's cache, and postgres
/// recovers from its WAL; only a crash of the machine could lose recent writes, which a dev
/// database accepts. `synchronous_commit` stays on for kept data (off, a commit returns before
/// its WAL is written, and a SIGKILL can lose a committed row) and is off for throw-away data.
/// Room for many per-test connections.
pub fn dev_settings_args(storage: Storage) -> Vec<String> {
    let mut settings = vec!["fsync=off", "full_page_writes=off", "max_connections=200"];
    if storage == Storage::Ephemeral {
        settings.push("synchronous_commit=off");
    }
    settings
        .into_iter()
        .flat_map(|s| ["-c".to_owned(), s.to_owned()])
        .collect()
}

/// An SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    postgres_protocol::escape::escape_identifier(name)
}

/// An SQL string literal, quoted.
pub fn quote_literal(value: &str) -> String {
    postgres_protocol::escape::escape_literal(value)
}

/// A free TCP port on 127.0.0.1 (for `port: 0`).
pub fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Whether something already listens on 127.0.0.1:`port`.
pub fn port_in_use(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_err()
}

/// Which backend runs a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A container.
    Docker,
    /// Local PostgreSQL binaries.
    Native,
    /// A server devenv did not start.
    External,
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Docker => "docker",
            Backend::Native => "native",
            Backend::External => "external",
        })
    }
}

/// The configured backend (`backend:` in devenv.yaml).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Choice {
    /// Docker when an engine answers (and the image is present or can be pulled), else native.
    Auto,
    /// A container through testcontainers.
    Docker,
    /// Local PostgreSQL binaries.
    Native,
    /// An existing server at `url`.
    External,
}

impl std::str::FromStr for Choice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Choice::Auto),
            "docker" => Ok(Choice::Docker),
            "native" => Ok(Choice::Native),
            "external" => Ok(Choice::External),
            other => Err(format!(
                "unknown backend `{other}` (expected auto, docker, native or external)"
            )),
        }
    }
}

impl std::fmt::Display for Choice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Choice::Auto => "auto",
            Choice::Docker => "docker",
            Choice::Native => "native",
            Choice::External => "external",
        })
    }
}

/// What a server is for; part of its names and labels, so servers of one project never mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The project's `devenv up`.
    Up,
    /// The test fixture's shared test server.
    Fixture,
    /// A throw-away server of devenv's own tests and benchmarks.
    Test,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Up => "up",
            Role::Fixture => "fixture",
            Role::Test => "test",
        }
    }
}

/// Label marking everything devenv created (containers, volumes, networks).
pub const MANAGED_LABEL: &str = "dev.devenv.managed";
/// Label holding the project's id.
pub const PROJECT_LABEL: &str = "dev.devenv.project";
/// Label holding what the server is for (`up`, `fixture`, `test`).
pub const ROLE_LABEL: &str = "dev.devenv.role";
/// Label holding the project's directory (for people reading `docker ps`).
pub const ROOT_LABEL: &str = "dev.devenv.root";

/// Whose server it is: names and labels of everything created for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The project's id (a hash of its canonical path).
    pub project_id: String,
    /// What the server is for.
    pub role: Role,
    /// The project's directory.
    pub root: PathBuf,
    /// Where the server's log goes (and, for the native backend, kept data when devenv does
    /// not run as root): `.devenv/` for `up`.
    pub state_dir: PathBuf,
    /// The container name (unique per project and role).
    pub name: String,
}

impl Identity {
    /// The identity of `role`'s server of the project at `root` with id `project_id`, its
    /// files in `state_dir`.
    pub fn new(root: &Path, state_dir: &Path, project_id: &str, role: Role) -> Identity {
        let dir: String = root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let dir = dir.trim_matches('-');
        let name = match role {
            Role::Up => format!("devenv-{dir}-{project_id}"),
            Role::Fixture | Role::Test => format!("devenv-{}-{project_id}", role.as_str()),
        };
        Identity {
            project_id: project_id.to_owned(),
            role,
            root: root.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            name,
        }
    }

    /// A short key naming this server's files outside the project (`/dev/shm/devenv-<key>`).
    pub fn key(&self) -> String {
        match self.role {
            Role::Up => self.project_id.clone(),
            role => format!("{}-{}", role.as_str(), self.project_id),
        }
    }

    /// The Docker volume that keeps its data.
    pub fn volume_name(&self) -> String {
        format!("{}-data", self.name)
    }

    /// Docker labels of everything created for it.
    pub fn labels(&self) -> Vec<(String, String)> {
        vec![
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (PROJECT_LABEL.to_owned(), self.project_id.clone()),
            (ROLE_LABEL.to_owned(), self.role.as_str().to_owned()),
            (ROOT_LABEL.to_owned(), self.root.display().to_string()),
        ]
    }
}

/// Whether the server's data outlives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    /// Kept across stops (a named volume, a data directory on disk).
    Persistent,
    /// Thrown away at stop (a tmpfs).
    Ephemeral,
}

/// How clients prove the password over TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordAuth {
    /// SCRAM-SHA-256 (the default of PostgreSQL 14+).
    Scram,
    /// md5: microseconds per connection instead of SCRAM's ~100 ms in a debug test build; for
    /// the fixture's throw-away test server on loopback.
    Md5,
}

/// A step of a start, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Connecting to the Docker engine.
    Connecting,
    /// Pulling an image.
    Pulling {
        /// The image.
        image: String,
        /// Layers seen so far.
        layers: usize,
        /// Bytes done.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// Creating and starting the server.
    Starting,
    /// Waiting for `SELECT 1`.
    WaitingReady,
}

/// Where start-up steps are reported (nowhere by default).
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<dyn Fn(Step) + Send + Sync>>);

impl Progress {
    /// Reports to `f`.
    pub fn to(f: impl Fn(Step) + Send + Sync + 'static) -> Self {
        Progress(Some(Arc::new(f)))
    }

    /// Reports a step.
    pub fn report(&self, step: Step) {
        if let Some(f) = &self.0 {
            f(step);
        }
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Progress(on)"
        } else {
            "Progress(off)"
        })
    }
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Spec {
    /// Whose server, and the names of what is created for it.
    pub identity: Identity,
    /// Superuser.
    pub user: String,
    /// Superuser password.
    pub password: String,
    /// The database the docker image creates at first start (`POSTGRES_DB`).
    pub database: String,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Docker image, `name:tag`.
    pub image: String,
    /// Docker network to join with the alias `db`.
    pub network: Option<String>,
    /// Whether the data outlives the server.
    pub storage: Storage,
    /// How TCP clients prove the password.
    pub password_auth: PasswordAuth,
    /// How long the server may take to answer `SELECT 1`.
    pub timeout: Duration,
    /// Where start-up steps are reported.
    pub progress: Progress,
}

impl Spec {
    /// A throw-away server of devenv's own tests and benchmarks, named `name` (unique per
    /// run), superuser `postgres` with `password`, on a free port.
    pub fn temporary(name: &str, image: &str, password: &str) -> Spec {
        let dir = std::env::temp_dir();
        let mut identity =
            Identity::new(&dir, &dir, &files::short_id(&[name.as_bytes()]), Role::Test);
        name.clone_into(&mut identity.name);
        Spec {
            identity,
            user: "postgres".into(),
            password: password.into(),
            database: "postgres".into(),
            port: 0,
            image: image.into(),
            network: None,
            storage: Storage::Ephemeral,
            password_auth: PasswordAuth::Scram,
            timeout: Duration::from_secs(60),
            progress: Progress::default(),
        }
    }
}

/// What a server is made of, as recorded before it is created: enough to find it again and
/// remove all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "lowercase")]
pub enum Record {
    /// A container, its network and volume.
    #[cfg(feature = "docker")]
    Docker(docker::DockerRecord),
    /// A native cluster.
    Native(native::Layout),
    /// A server devenv does not own.
    External,
}

impl Record {
    /// Which backend.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(_) => Backend::Docker,
            Record::Native(_) => Backend::Native,
            Record::External => Backend::External,
        }
    }

    /// Whether the record keeps data across stops.
    pub fn keeps_data(&self) -> bool {
        match self {
            #[cfg(feature = "docker")]
            Record::Docker(r) => r.volume.is_some(),
            Record::Native(layout) => !layout.ephemeral,
            Record::External => false,
        }
    }
}

/// A running server of any backend. Dropping it leaves the server running.
#[derive(Debug)]
pub enum Handle {
    /// A container.
    #[cfg(feature = "docker")]
    Docker(Box<docker::DockerServer>),
    /// A native postmaster.
    Native(native::NativeServer),
    /// A server devenv did not start and never stops.
    External(Server),
}

impl Handle {
    /// How to reach it.
    pub fn server(&self) -> &Server {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => &d.server,
            Handle::Native(n) => &n.server,
            Handle::External(s) => s,
        }
    }

    /// Which backend.
    pub fn backend(&self) -> Backend {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(_) => Backend::Docker,
            Handle::Native(_) => Backend::Native,
            Handle::External(_) => Backend::External,
        }
    }

    /// What it is made of.
    pub fn record(&self) -> Record {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => Record::Docker(docker::DockerRecord {
                container: d.name.clone(),
                container_id: Some(d.id.clone()),
                network: d.network.as_ref().map(|n| n.name.clone()),
                volume: d.volume.clone(),
            }),
            Handle::Native(n) => Record::Native(n.layout.clone()),
            Handle::External(_) => Record::External,
        }
    }

    /// Finds the running server `record` describes, checked against the world; `port` is the
    /// one recorded for a native server.
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn attach(
        record: &Record,
        user: &str,
        password: &str,
        port: u16,
    ) -> Result<Option<Handle>, ServerError> {
        Ok(match record {
            #[cfg(feature = "docker")]
            Record::Docker(r) => docker::DockerServer::attach(r, user, password)
                .await?
                .map(|d| Handle::Docker(Box::new(d))),
            Record::Native(layout) => {
                native::NativeServer::attach(layout, user, password, port).map(Handle::Native)
            }
            Record::External => None,
        })
    }

    /// Resolves when the server stops running, with how it ended. Never resolves for an
    /// external server.
    pub async fn exited(&self) -> String {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => d.exited().await,
            Handle::Native(n) => n.exited().await,
            Handle::External(_) => std::future::pending().await,
        }
    }

    /// Stops the server; kept data stays, throw-away data goes. An external server is left
    /// alone.
    pub async fn stop(&self) {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => d.stop().await,
            Handle::Native(n) => n.stop().await,
            Handle::External(_) => {}
        }
    }

    /// The server's log, when devenv can read it: the last `n` lines.
    #[cfg_attr(
        not(feature = "docker"),
        expect(clippy::unused_async, reason = "only the docker backend awaits here")
    )]
    pub async fn log_tail(&self, n: usize) -> Option<String> {
        match self {
            #[cfg(feature = "docker")]
            Handle::Docker(d) => Some(d.logs_tail(n).await),
            Handle::Native(n_) => Some(native::log_tail(&n_.layout.log, n)),
            Handle::External(_) => None,
        }
    }
}

/// Removes what `record` names when no supervisor runs it any more: a container, a native
/// postmaster (recognised by its data directory), throw-away data, a devenv-made network that
/// nothing uses; with `forget`, kept data too. Returns whether a server was running.
pub async fn clean(record: &Record, forget: bool) -> Result<bool, ServerError> {
    match record {
        #[cfg(feature = "docker")]
        Record::Docker(r) => docker::clean(r, forget).await,
        Record::Native(layout) => Ok(layout.clean(forget).await.is_some()),
        Record::External => Ok(false),
    }
}

/// Starts the server `spec` describes with the backend `choice` names (`external` takes
/// `external`); returns it and a sentence saying which backend runs it and why. `record` is
/// called before anything is created, and again as parts get their ids.
pub async fn start(
    choice: Choice,
    spec: &Spec,
    external: Option<&Server>,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<(Handle, String), ServerError> {
    match choice {
        Choice::Docker => Ok((
            start_docker(spec, record).await?,
            "backend: docker (configured)".into(),
        )),
        Choice::Native => Ok((
            start_native(spec, record).await?,
            "backend: native (configured)".into(),
        )),
        Choice::External => {
            let server = external.cloned().ok_or(ServerError::NoUrl)?;
            record(&Record::External).map_err(|source| ServerError::Io {
                what: "recording the server in",
                path: spec.identity.state_dir.clone(),
                source,
            })?;
            check_external(&server, spec.timeout).await?;
            Ok((
                Handle::External(server),
                "backend: external (configured url)".into(),
            ))
        }
        Choice::Auto => start_auto(spec, record).await,
    }
}

async fn check_external(server: &Server, timeout: Duration) -> Result<(), ServerError> {
    match ready::wait_ready(
        &server.config("postgres"),
        timeout.min(Duration::from_secs(10)),
        || None,
    )
    .await
    {
        Ok(_) => Ok(()),
        Err(
            ready::NotReady::Refused(source)
            | ready::NotReady::Timeout {
                last: Some(source), ..
            },
        ) => Err(ServerError::Db {
            what: "connecting to the external server",
            server: server.masked_url("postgres"),
            source,
        }),
        Err(_) => Err(ServerError::Command {
            what: "connecting to the external server",
            stderr: format!("{} did not answer", server.masked_url("postgres")),
        }),
    }
}

#[cfg(feature = "docker")]
async fn start_docker(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    let server =
        docker::DockerServer::start(spec, &mut |r| record(&Record::Docker(r.clone()))).await?;
    Ok(Handle::Docker(Box::new(server)))
}

#[cfg(not(feature = "docker"))]
#[expect(
    clippy::unused_async,
    reason = "the same signature as the docker build's"
)]
async fn start_docker(
    _spec: &Spec,
    _record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    Err(ServerError::NoDockerSupport)
}

async fn start_native(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<Handle, ServerError> {
    let server =
        native::NativeServer::start(spec, &mut |l| record(&Record::Native(l.clone()))).await?;
    Ok(Handle::Native(server))
}

/// `auto`: docker when an engine answers and the image can be had, else native when binaries
/// are found, else one error naming both ways.
async fn start_auto(
    spec: &Spec,
    record: &mut (dyn FnMut(&Record) -> std::io::Result<()> + Send),
) -> Result<(Handle, String), ServerError> {
    #[cfg(feature = "docker")]
    let docker_error = match docker::engine_client().await {
        Ok(engine) => {
            let present = docker::image_present(&engine, &spec.image).await;
            match start_docker(spec, record).await {
                Ok(handle) => {
                    let how = if present { "present" } else { "pulled" };
                    let why = format!(
                        "backend: docker (auto: an engine answered; image {} {how})",
                        spec.image
                    );
                    return Ok((handle, why));
                }
                Err(e @ ServerError::ImageMissing { .. }) => e,
                Err(e) => return Err(e),
            }
        }
        Err(e) => e,
    };
    #[cfg(not(feature = "docker"))]
    let docker_error = ServerError::NoDockerSupport;
    match native::find_bin_dir().await {
        Ok(dir) => {
            let handle = start_native(spec, record).await?;
            let why = format!(
                "backend: native (auto: {}; using PostgreSQL binaries in {})",
                first_line(&docker_error),
                dir.display()
            );
            Ok((handle, why))
        }
        Err(native_error) => Err(ServerError::NoServer {
            docker: Box::new(docker_error),
            native: Box::new(native_error),
        }),
    }
}

/// An error's message with its first cause, on one line.
fn first_line(e: &ServerError) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}
