//! What to run: a server's [`Spec`] (identity, credentials, port, image, network, storage),
//! the backends ([`Backend`], the configured [`Choice`]), and start-up [`Progress`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::files;

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
    /// As in labels and names.
    pub fn as_str(self) -> &'static str {
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
    /// SCRAM-SHA-256 with a verifier of [`crate::scram::QUICK_ITERATIONS`] rounds, set after
    /// every start: microseconds per login instead of a few hundred milliseconds in an
    /// unoptimised (debug) client, the password still required; for the fixture's test server,
    /// whose logins every test pays for ([`crate::scram`]).
    QuickScram,
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

/// What to run (its `Debug` masks the password).
#[derive(Clone)]
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

impl std::fmt::Debug for Spec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spec")
            .field("identity", &self.identity)
            .field("user", &self.user)
            .field("password", &crate::conninfo::MASK)
            .field("database", &self.database)
            .field("port", &self.port)
            .field("image", &self.image)
            .field("network", &self.network)
            .field("storage", &self.storage)
            .field("password_auth", &self.password_auth)
            .field("timeout", &self.timeout)
            .field("progress", &self.progress)
            .finish()
    }
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
