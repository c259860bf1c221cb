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
    /// How to reach the server, once ready: its URL without a database, password included
    /// (the file is 0600), as `devenv up` connects to it. Read back only through
    /// [`crate::environment::Environment`].
    #[serde(default)]
    pub url: Option<String>,
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
            url: None,
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
    /// The state directory `dir` (a project's is [`crate::Project::state_dir`]).
    pub(crate) fn new(dir: &Path) -> Self {
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

    /// `set.json`: `--set` values given to `up` or `devenv reload`, waiting for the
    /// supervisor to take them (0600, as every file here: values may be secrets).
    pub fn set_file(&self) -> PathBuf {
        self.dir.join("set.json")
    }

    /// Adds `values` (`NAME`, `VALUE`) to those waiting for the supervisor; a later value
    /// of a name wins.
    pub fn put_set(&self, values: &[(String, String)]) -> Result<(), CoreError> {
        self.create()?;
        let path = self.set_file();
        let mut all: Vec<(String, String)> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or_default();
        for (name, value) in values {
            all.retain(|(n, _)| n != name);
            all.push((name.clone(), value.clone()));
        }
        let json = serde_json::to_string(&all).unwrap_or_default();
        write_private(&path, json.as_bytes()).map_err(crate::error::io("writing", &path))
    }

    /// Takes the values waiting (read and removed), if any.
    pub fn take_set(&self) -> Result<Vec<(String, String)>, CoreError> {
        let path = self.set_file();
        // Moved away first: a `put_set` meanwhile writes a new file, not lost in this one.
        let taken = self.dir.join(format!(".set.{}.taken", std::process::id()));
        match std::fs::rename(&path, &taken) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(crate::error::io("taking", &path)(e)),
        }
        let text = std::fs::read_to_string(&taken);
        let _ = std::fs::remove_file(&taken);
        let text = text.map_err(crate::error::io("reading", &path))?;
        serde_json::from_str(&text).map_err(|source| CoreError::Corrupt { path, source })
    }

    /// Asks the supervisor's next reload to rebuild from the files only (`devenv reload
    /// --fresh`): the file `reload-fresh`, taken with the signal.
    pub fn put_fresh(&self) -> Result<(), CoreError> {
        self.create()?;
        let path = self.dir.join("reload-fresh");
        write_private(&path, b"").map_err(crate::error::io("writing", &path))
    }

    /// Whether the next reload was asked to be fresh (the request is taken: removed).
    pub fn take_fresh(&self) -> bool {
        std::fs::remove_file(self.dir.join("reload-fresh")).is_ok()
    }

    /// Removes `state.json` and `env`.
    pub fn remove(&self) {
        let _ = std::fs::remove_file(self.state());
        let _ = std::fs::remove_file(self.env());
    }
}

#[cfg(test)]
mod tests {
    use super::StateDir;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn set_values_wait_privately_for_the_supervisor_and_are_taken_once() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::new(&dir.path().join(".devenv"));
        assert!(state.take_set().unwrap().is_empty());
        let pair = |n: &str, v: &str| (n.to_owned(), v.to_owned());
        state.put_set(&[pair("A", "1"), pair("PW", "x")]).unwrap();
        state.put_set(&[pair("A", "2")]).unwrap();
        let mode = std::fs::metadata(state.set_file())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(state.take_set().unwrap(), [pair("PW", "x"), pair("A", "2")]);
        assert!(state.take_set().unwrap().is_empty());
    }
}
