//! `.devenv/`: what a project's supervisor has started, as it records it. The directory is
//! 0700 and every file in it 0600, created so; files are replaced atomically.
//!
//! `state.json` is written before anything is created and again as each part gets its id
//! ([`State::server`] is a [`Record`]), so `down` after a SIGKILL at any moment finds all of
//! it. It is a record, not the truth: who runs is decided by the supervisor lock
//! ([`crate::lock`]), what runs by checking the record against the world.

use std::path::{Path, PathBuf};

use devenv_server::files::{private_dir, write_private};
use devenv_server::{Backend, Record};
use serde::{Deserialize, Serialize};

use crate::env::{format_env, EnvFormat};
use crate::error::CoreError;

/// What a `devenv up` runs, in `.devenv/state.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// The supervisor's pid (trusted only while it holds the lock).
    pub pid: u32,
    /// When it started, seconds since the epoch.
    pub started_at: u64,
    /// Whether it runs in the background (`up -d`).
    pub detached: bool,
    /// Whether the database is loaded and the URLs handed out.
    pub ready: bool,
    /// What it started (or is starting): recorded before creation.
    pub server: Option<Record>,
    /// Port on [`State::host`] (or the external server's).
    pub port: Option<u16>,
    /// The database.
    pub database: String,
    /// The exported variables (hold the password: the file is 0600).
    pub env: Vec<(String, String)>,
}

impl State {
    /// A supervisor of this process, starting now.
    pub fn starting(database: &str, detached: bool) -> State {
        State {
            pid: std::process::id(),
            started_at: now(),
            detached,
            ready: false,
            server: None,
            port: None,
            database: database.to_owned(),
            env: Vec::new(),
        }
    }

    /// The backend it records.
    pub fn backend(&self) -> Option<Backend> {
        self.server.as_ref().map(Record::backend)
    }

    /// The host its server is reached on (with [`State::port`]): 127.0.0.1, or the host of
    /// the Docker engine the container runs on ([`Record::host`]).
    pub fn host(&self) -> String {
        self.server
            .as_ref()
            .map_or_else(|| "127.0.0.1".to_owned(), Record::host)
    }
}

/// Seconds since the epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The files of a project's `.devenv/`.
#[derive(Debug, Clone)]
pub struct StateDir {
    /// `.devenv/`.
    pub dir: PathBuf,
}

impl StateDir {
    /// The state directory of the project at `root`.
    pub fn new(dir: &Path) -> Self {
        StateDir {
            dir: dir.to_path_buf(),
        }
    }

    /// Creates it (0700) when missing.
    pub fn create(&self) -> Result<(), CoreError> {
        private_dir(&self.dir).map_err(crate::error::io("creating", &self.dir))
    }

    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// `env` (dotenv).
    pub fn env(&self) -> PathBuf {
        self.dir.join("env")
    }

    /// `up.log`: a detached supervisor's output.
    pub fn up_log(&self) -> PathBuf {
        self.dir.join("up.log")
    }

    /// `postgres.log`: the native server's log.
    pub fn server_log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Writes `env` once the state is ready, then `state.json` (so a ready state always has
    /// its `env` beside it).
    pub fn write(&self, state: &State) -> Result<(), CoreError> {
        self.create()?;
        if state.ready {
            let env = self.env();
            write_private(&env, format_env(&state.env, EnvFormat::Dotenv).as_bytes())
                .map_err(crate::error::io("writing", &env))?;
        }
        let json = serde_json::to_string_pretty(state).unwrap_or_default();
        let path = self.state();
        write_private(&path, json.as_bytes()).map_err(crate::error::io("writing", &path))
    }

    /// Reads `state.json`, if there is one; a corrupt file is an error naming it.
    pub fn read(&self) -> Result<Option<State>, CoreError> {
        let path = self.state();
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| CoreError::Corrupt { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(crate::error::io("reading", &path)(e)),
        }
    }

    /// Removes `state.json` and `env`.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.state());
        let _ = std::fs::remove_file(self.env());
    }
}
