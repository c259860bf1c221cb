//! The running environment of a project: the one owner of "what runs for this project".
//!
//! Built from the project, the holder of its supervisor lock ([`crate::lock`]) and the record
//! that holder wrote ([`crate::state`]), read once and checked against each other: the record
//! counts only when the lock's holder is the pid it names. It says who runs and whether the
//! database is ready, how to reach the server (parsed: the URL `up` recorded, which is the
//! external URL's own hosts and port, or the local server's address and published port), the
//! record a supervisor that is gone left behind, and where the project's databases live when
//! nothing runs (`backend: external`). Every command and the fixture's server discovery ask
//! it; nobody else reads `state.json` or builds a [`Server`] for a running environment.

use std::path::Path;

use devenv_server::{Backend, Record, Server};

use crate::error::CoreError;
use crate::lock::{self, Holder};
use crate::project::Project;
use crate::state::{State, StateDir};

/// A project's running environment, as found in the world.
#[derive(Debug)]
pub struct Environment {
    project: Project,
    dir: StateDir,
    supervisor: Option<Supervisor>,
    stale: Option<State>,
    corrupt: Option<CoreError>,
}

/// The live supervisor: the lock's holder and the record it wrote.
#[derive(Debug, Clone)]
pub struct Supervisor {
    /// The holder of the supervisor lock.
    pub holder: Holder,
    /// What it recorded.
    pub state: State,
}

impl Supervisor {
    /// Its pid (the lock's holder's).
    pub fn pid(&self) -> u32 {
        self.holder.pid
    }

    /// Whether the database is loaded and the URLs handed out.
    pub fn is_ready(&self) -> bool {
        self.state.ready
    }

    /// The backend it runs, as recorded.
    pub fn backend(&self) -> Option<Backend> {
        self.state.backend()
    }

    /// What it runs, as recorded.
    pub fn record(&self) -> Option<&Record> {
        self.state.server.as_ref()
    }
}

impl Environment {
    /// The environment of the project at `root` (which must exist).
    pub fn open(root: &Path) -> Result<Environment, CoreError> {
        Environment::of(Project::open(root)?)
    }

    /// The environment of an opened project.
    pub fn of(project: Project) -> Result<Environment, CoreError> {
        let dir = project.state_dir();
        let holder = lock::holder(&dir.dir);
        // A record that does not parse is no record: reported by those who show it, cleaned
        // by `down` and the next `up`.
        let (recorded, corrupt) = match dir.read() {
            Ok(recorded) => (recorded, None),
            Err(e) => (None, Some(e)),
        };
        let (supervisor, stale) = match (holder, recorded) {
            (Some(holder), Some(state)) if state.pid == holder.pid => {
                (Some(Supervisor { holder, state }), None)
            }
            // Held by a supervisor that has not written its record yet, or by `down`.
            (Some(_), _) => (None, None),
            (None, state) => (None, state),
        };
        Ok(Environment {
            project,
            dir,
            supervisor,
            stale,
            corrupt,
        })
    }

    /// The project.
    pub fn project(&self) -> &Project {
        &self.project
    }

    /// Its `.devenv/`.
    pub fn state_dir(&self) -> &StateDir {
        &self.dir
    }

    /// The live supervisor, ready or starting.
    pub fn supervisor(&self) -> Option<&Supervisor> {
        self.supervisor.as_ref()
    }

    /// The live supervisor once its database is ready; else [`CoreError::NotRunning`].
    pub fn ready(&self) -> Result<&Supervisor, CoreError> {
        self.supervisor
            .as_ref()
            .filter(|s| s.is_ready())
            .ok_or(CoreError::NotRunning)
    }

    /// The record of a supervisor that is gone (nobody holds the lock), left for `down` or the
    /// next `up` to clean up.
    pub fn stale(&self) -> Option<&State> {
        self.stale.as_ref()
    }

    /// Why the record could not be read, when it is corrupt (then there is no supervisor and
    /// no stale record to act on).
    pub fn corrupt_record(&self) -> Option<&CoreError> {
        self.corrupt.as_ref()
    }

    /// How to reach the server of the ready supervisor: the server it recorded, with the
    /// password it runs with. `None` when nothing is ready.
    pub fn server(&self) -> Result<Option<Server>, CoreError> {
        let Some(supervisor) = self.supervisor.as_ref().filter(|s| s.is_ready()) else {
            return Ok(None);
        };
        self.recorded_server(&supervisor.state).map(Some)
    }

    fn recorded_server(&self, state: &State) -> Result<Server, CoreError> {
        let config = &self.project.config;
        match &state.url {
            Some(url) => Ok(Server::parse(url, |_| None)
                .map_err(|source| CoreError::Url { source })?
                .0),
            // A record of a devenv before the server was recorded whole.
            None => match self.project.external_server()? {
                Some(external) if state.backend() == Some(Backend::External) => Ok(external),
                _ => Ok(Server::local(
                    state.port.unwrap_or_default(),
                    &config.user,
                    &config.password,
                )),
            },
        }
    }

    /// The server the project's databases are on when no supervisor is ready:
    /// `backend: external`'s, else `None`.
    pub fn configured_server(&self) -> Result<Option<Server>, CoreError> {
        self.project.external_server()
    }

    /// The server of the ready supervisor, else the configured external one: where `db`
    /// jobs, snapshots and the fixture go without `--url`.
    pub fn server_or_configured(&self) -> Result<Option<Server>, CoreError> {
        match self.server()? {
            Some(server) => Ok(Some(server)),
            None => self.configured_server(),
        }
    }
}
