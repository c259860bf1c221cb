//! A project: its directory, its id, its configuration, and how its servers are described to
//! [`devenv_server`] (identity, names, labels, storage). One place derives every name devenv
//! gives to what it creates for a project.

use std::path::{Path, PathBuf};
use std::time::Duration;

use devenv_server::files::short_id;
use devenv_server::{Choice, Identity, PasswordAuth, Progress, Role, Server, Spec, Storage};

use crate::config::{Config, ConfigError};
use crate::error::CoreError;
use crate::state::StateDir;

/// The state directory under the project root.
pub const STATE_DIR: &str = ".devenv";

/// How long a server may take to answer `SELECT 1`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A project, resolved once: canonical root, id and configuration.
#[derive(Debug, Clone)]
pub struct Project {
    /// The canonical project directory.
    pub root: PathBuf,
    /// Its id: a hash of the canonical path, in every name and label.
    pub id: String,
    /// Its configuration.
    pub config: Config,
}

impl Project {
    /// Loads the project at `root` (which must exist).
    pub fn open(root: &Path) -> Result<Project, ConfigError> {
        let config = Config::load(root)?;
        Ok(Self::with_config(config))
    }

    /// The project of an already loaded configuration.
    pub fn with_config(mut config: Config) -> Project {
        let root = std::fs::canonicalize(&config.root).unwrap_or_else(|_| config.root.clone());
        config.root.clone_from(&root);
        Project {
            id: id_of(&root),
            root,
            config,
        }
    }

    /// `.devenv/` (not created).
    pub fn state_dir(&self) -> StateDir {
        StateDir::new(&self.root.join(STATE_DIR))
    }

    /// The identity of the project's server for `role`.
    pub fn identity(&self, role: Role, state_dir: &Path) -> Identity {
        Identity::new(&self.root, state_dir, &self.id, role)
    }

    /// The identity of the project's `devenv up` server.
    pub fn up_identity(&self) -> Identity {
        self.identity(Role::Up, &self.state_dir().dir)
    }

    /// What `devenv up` runs: the configured image, port, network and credentials.
    pub fn up_spec(&self, storage: Storage, progress: Progress) -> Spec {
        let c = &self.config;
        Spec {
            identity: self.up_identity(),
            user: c.user.clone(),
            password: c.password.clone(),
            // The image creates nothing but `postgres`: the project's database is built (and
            // marked) by devenv, never an empty one the image made.
            database: "postgres".into(),
            port: c.port,
            image: c.image.clone(),
            network: Some(c.network.clone()),
            storage,
            password_auth: PasswordAuth::Scram,
            timeout: READY_TIMEOUT,
            progress,
        }
    }

    /// What `devenv up` keeps: the configured `persist`, unless the run is ephemeral.
    pub fn storage(&self, ephemeral: bool) -> Storage {
        if self.config.persist && !ephemeral {
            Storage::Persistent
        } else {
            Storage::Ephemeral
        }
    }

    /// The server `backend: external` names, parsed from `url` (with the configured
    /// credentials when the URL has none); `None` for other backends.
    pub fn external_server(&self) -> Result<Option<Server>, CoreError> {
        if self.config.backend != Choice::External {
            return Ok(None);
        }
        let url = self.config.url.as_deref().ok_or(ConfigError::NoUrl)?;
        let (server, _) = parse_url(url)?;
        Ok(Some(server))
    }
}

/// The project id of the directory `root`: 12 hex digits of a hash of its canonical path.
pub fn id_of(root: &Path) -> String {
    let canonical = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    short_id(&[canonical.to_string_lossy().as_bytes()])
}

/// Parses a connection string the user gave (`url:`, `--url`, PROD_CONNECTION_URL), with
/// libpq's environment defaults; returns the server and the database it names.
pub fn parse_url(url: &str) -> Result<(Server, Option<String>), CoreError> {
    Server::parse(url, |name| std::env::var(name).ok()).map_err(|source| CoreError::Url { source })
}
