//! Which server the test databases live on, and the shared test server started when there is
//! nothing to use.
//!
//! In order: the project's running `devenv up` (the holder of its supervisor lock, once ready),
//! the `url` of `backend: external`, else the project's shared test server, started once and
//! reused by every test process after it:
//!
//! - Its directory, [`shared_dir`]: `devenv-tests-<project id>` under `DEVENV_FIXTURE_DIR`,
//!   else `/dev/shm` (when roomy) or the temp directory. `server.json` records what runs (a
//!   [`Record`] written before anything is created), `fixture.log` has a line per server
//!   start and per template build.
//! - Start-or-reuse runs under an exclusive `flock` of the directory's `lock` file, so 16
//!   processes starting at once start one server: the first starts it, the others wait, then
//!   find it alive. The lock goes with its process, even on `kill -9`.
//! - It is started through [`devenv_server::start`] (role `fixture`, throw-away data, a
//!   quick SCRAM verifier for cheap logins in the user's debug test builds:
//!   [`devenv_server::scram`]) and kept running when the handle is
//!   dropped; [`stop_shared_server`] stops it (`devenv test-dbs --stop-server`, `devenv down`).
//! - The backend: `DEVENV_FIXTURE_BACKEND` (`native` or `docker`), else the config's `backend`
//!   (`auto`: docker when an engine answers, else native). A live server of another backend
//!   than the one asked for is stopped and replaced; `auto` takes whichever runs.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use devenv_core::{Environment, Project};
use devenv_server::{
    Backend, Choice, Handle, PasswordAuth, Progress, Record, Role, Server, Spec, Storage,
};
use serde::{Deserialize, Serialize};

use crate::error::{io, Error};

/// The shared server's record in its directory.
pub const SERVER_FILE: &str = "server.json";
/// The log of server starts and template builds in the shared directory.
pub const LOG_FILE: &str = "fixture.log";
/// The file whose `flock` guards start-or-reuse.
pub const LOCK_FILE: &str = "lock";

const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a recorded server has to take a login before it is taken for dead: a server busy
/// with many starting test processes may answer slowly, and stopping it then would pull it
/// from under them, so a few seconds.
const ATTACH_TIMEOUT: Duration = Duration::from_secs(3);

/// What `server.json` says about the shared server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedServer {
    /// What it is made of (recorded before creation).
    pub record: Record,
    /// Port on 127.0.0.1 (0 until it runs).
    pub port: u16,
    /// Superuser it was started with.
    pub user: String,
    /// The process that started it.
    pub started_by: u32,
    /// What it was started as, compared with the configuration at every reuse (a record
    /// without it, written by an older devenv, is taken as different).
    #[serde(default)]
    pub made_of: Option<MadeOf>,
}

/// What the configuration makes of the shared server: a change means another server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MadeOf {
    /// The image (docker).
    pub image: Option<String>,
    /// SHA-256 of the password, hex (the record is private, but needs no password).
    pub password: String,
    /// How logins are checked.
    pub auth: String,
}

impl MadeOf {
    fn of(config: &devenv_core::Config, backend: Backend) -> Self {
        use sha2::Digest as _;
        MadeOf {
            image: (backend == Backend::Docker).then(|| config.image.clone()),
            password: devenv_server::files::hex(&sha2::Sha256::digest(config.password.as_bytes())),
            auth: "scram-sha-256 (quick)".into(),
        }
    }
}

impl SharedServer {
    /// What differs between this server and what `config` asks for, in words.
    fn differences(&self, config: &devenv_core::Config) -> Vec<String> {
        let wanted = MadeOf::of(config, self.backend());
        let mut found = Vec::new();
        if self.user != config.user {
            found.push(format!("user {} (now {})", self.user, config.user));
        }
        let Some(made) = &self.made_of else {
            found.push("devenv version (its record predates this check)".into());
            return found;
        };
        if made.image != wanted.image {
            found.push(format!(
                "image {} (now {})",
                made.image.as_deref().unwrap_or("-"),
                wanted.image.as_deref().unwrap_or("-")
            ));
        }
        if made.password != wanted.password {
            found.push("password".into());
        }
        if made.auth != wanted.auth {
            found.push(format!(
                "authentication {} (now {})",
                made.auth, wanted.auth
            ));
        }
        found
    }
}

/// The file test processes hold a shared `flock` of while they use the shared server: a
/// server nobody holds it for may be replaced.
pub const USERS_FILE: &str = "users";

/// This process's shared locks of [`USERS_FILE`] (one per shared directory it used), held
/// until it exits.
type Held = Vec<(PathBuf, nix::fcntl::Flock<std::fs::File>)>;
static IN_USE: std::sync::Mutex<Held> = std::sync::Mutex::new(Vec::new());

fn users_lock(dir: &Path, arg: nix::fcntl::FlockArg) -> Option<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(USERS_FILE))
        .ok()?;
    nix::fcntl::Flock::lock(file, arg).ok()
}

/// Marks the shared server in use by this process until it exits.
fn hold_in_use(dir: &Path) {
    let mut held = IN_USE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !held.iter().any(|(d, _)| d == dir) {
        let lock = users_lock(dir, nix::fcntl::FlockArg::LockSharedNonblock)
            .or_else(|| users_lock(dir, nix::fcntl::FlockArg::LockShared));
        if let Some(lock) = lock {
            held.push((dir.to_path_buf(), lock));
        }
    }
}

/// Whether another process uses the shared server (holds its [`USERS_FILE`] lock), this
/// process's own use aside.
fn used_by_others(dir: &Path) -> bool {
    let mut held = IN_USE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Our own shared lock would stand in the way of the exclusive one asked for below.
    let before = held.len();
    held.retain(|(d, _)| d != dir);
    let ours = held.len() != before;
    let others = users_lock(dir, nix::fcntl::FlockArg::LockExclusiveNonblock).is_none();
    drop(held);
    if ours {
        hold_in_use(dir);
    }
    others
}

impl SharedServer {
    /// Its backend.
    pub fn backend(&self) -> Backend {
        self.record.backend()
    }
}

/// Where the server the tests use comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The project's running `devenv up`.
    DevenvUp {
        /// Its pid.
        pid: u32,
    },
    /// `backend: external` and its `url`.
    External,
    /// The shared test server.
    Shared(Box<SharedServer>),
}

/// The shared directory of the project with id `project_id`.
pub fn shared_dir(project_id: &str) -> PathBuf {
    let base = std::env::var_os("DEVENV_FIXTURE_DIR")
        .map_or_else(devenv_server::native::scratch_dir, PathBuf::from);
    base.join(format!("devenv-tests-{project_id}"))
}

/// The server to use for `project`, starting the shared one when needed; with a session on
/// it when finding it took one (the first admin connection).
pub(crate) async fn resolve(project: &Project) -> Result<Found, Error> {
    if let Some((server, source)) = running_devenv_up(project)? {
        return Ok((server, source, None));
    }
    crate::trace::mark("no devenv up");
    if let Some(server) = project.external_server()? {
        return Ok((server, Source::External, None));
    }
    let dir = shared_dir(&project.id);
    let wanted = wanted_backend(project)?;
    let config = &project.config;
    let unanswered = match take_live(&dir, wanted, config).await? {
        Ok(found) => return Ok(found),
        Err(unanswered) => unanswered,
    };
    // Anything else under the lock throughout: start, replace, or take what another process
    // started meanwhile.
    let _lock = lock_dir(&dir).await?;
    if let Some(record) = read_record(&dir)? {
        let backend_ok = wanted == Choice::Auto || choice_of(record.backend()) == wanted;
        let differences = record.differences(config);
        // The server that did not answer above is not asked again.
        let retry = unanswered.as_ref() != Some(&record);
        if backend_ok && differences.is_empty() && retry {
            if let Some((handle, client)) = attach(&record, &config.password).await? {
                hold_in_use(&dir);
                return Ok((
                    handle.server().clone(),
                    Source::Shared(Box::new(record)),
                    Some(client),
                ));
            }
        } else if !differences.is_empty() && used_by_others(&dir) {
            return Err(Error::ServerChanged {
                differences: differences.join(", "),
            });
        }
        if !differences.is_empty() {
            log_event(
                &dir,
                &format!(
                    "replacing the shared test server: devenv.yaml now asks for another {}",
                    differences.join(", ")
                ),
            );
        }
        devenv_server::clean(&record.record, true).await?;
        remove_record(&dir);
    }
    let spec = Spec {
        identity: project.identity(Role::Fixture, &dir),
        user: config.user.clone(),
        password: config.password.clone(),
        database: "postgres".into(),
        port: 0,
        image: config.image.clone(),
        network: None,
        storage: Storage::Ephemeral,
        password_auth: PasswordAuth::QuickScram,
        timeout: START_TIMEOUT,
        progress: Progress::default(),
    };
    let started_by = std::process::id();
    let mut recorded = |record: &Record| {
        let shared = SharedServer {
            record: record.clone(),
            port: 0,
            user: spec.user.clone(),
            started_by,
            made_of: Some(MadeOf::of(config, record.backend())),
        };
        write_record(&dir, &shared).map_err(std::io::Error::other)
    };
    let (handle, why) = devenv_server::start(wanted, &spec, None, &mut recorded).await?;
    let server = handle.server().clone();
    let record = SharedServer {
        record: handle.record(),
        port: server.port(),
        user: spec.user.clone(),
        started_by,
        made_of: Some(MadeOf::of(config, handle.record().backend())),
    };
    write_record(&dir, &record)?;
    hold_in_use(&dir);
    log_event(
        &dir,
        &format!(
            "started the shared test server on 127.0.0.1:{} ({why})",
            server.port()
        ),
    );
    // Other test processes use it after this one ends: dropping the handle leaves it running.
    drop(handle);
    Ok((server, Source::Shared(Box::new(record)), None))
}

/// The shared server's session (the first admin connection), when the record names a live
/// server as asked for (the common case): the lock is held only to read the record and find
/// the server's process, and the login happens after, so test processes starting together do
/// not queue behind each other's logins. Else the recorded server when it did not take the
/// login (not asked again).
async fn take_live(
    dir: &Path,
    wanted: Choice,
    config: &devenv_core::Config,
) -> Result<Result<Found, Option<SharedServer>>, Error> {
    let lock = lock_dir(dir).await?;
    crate::trace::mark("shared directory locked");
    let Some(record) = read_record(dir)? else {
        return Ok(Err(None));
    };
    let backend_ok = wanted == Choice::Auto || choice_of(record.backend()) == wanted;
    if !backend_ok || !record.differences(config).is_empty() {
        return Ok(Err(None));
    }
    let found = Handle::attach(&record.record, &record.user, &config.password, record.port).await?;
    let Some(handle) = found else {
        return Ok(Err(None));
    };
    crate::trace::mark("server process found");
    // In use from now on: a process that would replace it waits for us.
    hold_in_use(dir);
    drop(lock);
    Ok(match first_session(handle.server(), ATTACH_TIMEOUT).await {
        Some(client) => Ok((
            handle.server().clone(),
            Source::Shared(Box::new(record)),
            Some(client),
        )),
        None => Err(Some(record)),
    })
}

/// What [`resolve`] finds: the server, where it comes from, and a session on it when finding
/// it took one.
type Found = (Server, Source, Option<tokio_postgres::Client>);

fn choice_of(backend: Backend) -> Choice {
    match backend {
        Backend::Docker => Choice::Docker,
        Backend::Native => Choice::Native,
        Backend::External => Choice::External,
    }
}

/// The project's running `devenv up`, once it is ready, as its [`Environment`] says.
pub fn running_devenv_up(project: &Project) -> Result<Option<(Server, Source)>, Error> {
    let environment = Environment::of(project.clone())?;
    let Ok(supervisor) = environment.ready() else {
        return Ok(None);
    };
    let pid = supervisor.pid();
    Ok(environment
        .server()?
        .map(|server| (server, Source::DevenvUp { pid })))
}

fn wanted_backend(project: &Project) -> Result<Choice, Error> {
    match std::env::var("DEVENV_FIXTURE_BACKEND") {
        Ok(v) if v == "native" => Ok(Choice::Native),
        Ok(v) if v == "docker" => Ok(Choice::Docker),
        Ok(v) if !v.is_empty() => Err(Error::BackendVar(v)),
        _ => Ok(match project.config.backend {
            Choice::External => Choice::Auto,
            other => other,
        }),
    }
}

/// The running server a record describes, when it takes a login with these credentials;
/// with that session, which the test process keeps as its first admin connection (a probe of
/// its own would cost another login).
async fn attach(
    record: &SharedServer,
    password: &str,
) -> Result<Option<(Handle, tokio_postgres::Client)>, Error> {
    let Some(handle) = Handle::attach(&record.record, &record.user, password, record.port).await?
    else {
        return Ok(None);
    };
    let client = first_session(handle.server(), ATTACH_TIMEOUT).await;
    Ok(client.map(|client| (handle, client)))
}

/// A session on `server`'s `postgres` database, tried until `timeout` (the way
/// [`devenv_server::ready::wait_ready`] polls); `None` when it never took one, or the login was
/// refused.
async fn first_session(server: &Server, timeout: Duration) -> Option<tokio_postgres::Client> {
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(2);
    loop {
        match crate::registry::connect(server, "postgres").await {
            Ok(client) => return Some(client),
            Err(Error::Connect { source, .. })
                if source.is_settings()
                    || source.why().is_some()
                    || source
                        .postgres()
                        .is_some_and(devenv_server::ready::is_auth_failure) =>
            {
                return None
            }
            Err(_) if started.elapsed() < timeout => {}
            Err(_) => return None,
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_millis(50));
    }
}

/// Takes the exclusive lock of the shared directory (creating it), waiting off the async
/// threads. [`stop_shared_server`] removes the directory, lock file included, while it holds
/// the lock; a process that was waiting then holds a lock on a removed file, so it checks that
/// the file it locked is still the one at the path, and starts over if not.
async fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, Error> {
    let dir = dir.to_path_buf();
    let path = dir.join(LOCK_FILE);
    let locked = tokio::task::spawn_blocking(move || lock_blocking(&dir))
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|r| r);
    locked.map_err(io("locking", &path))
}

fn lock_blocking(dir: &Path) -> std::io::Result<nix::fcntl::Flock<std::fs::File>> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let path = dir.join(LOCK_FILE);
    loop {
        devenv_server::files::private_dir(dir)?;
        let mut file = match std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => file,
            // Removed between the two calls: start over.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let lock = loop {
            match nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusive) {
                Ok(lock) => break lock,
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, errno)) => return Err(std::io::Error::from(errno)),
            }
        };
        let same = match std::fs::metadata(&path) {
            Ok(at_path) => {
                let locked = lock.metadata()?;
                at_path.ino() == locked.ino() && at_path.dev() == locked.dev()
            }
            Err(_) => false,
        };
        if same {
            return Ok(lock);
        }
    }
}

fn read_record(dir: &Path) -> Result<Option<SharedServer>, Error> {
    let path = dir.join(SERVER_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|source| Error::Corrupt { path, source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io("reading", &path)(e)),
    }
}

fn write_record(dir: &Path, record: &SharedServer) -> Result<(), Error> {
    let path = dir.join(SERVER_FILE);
    let json = serde_json::to_string_pretty(record).unwrap_or_default();
    devenv_server::files::write_private(&path, json.as_bytes()).map_err(io("writing", &path))
}

fn remove_record(dir: &Path) {
    let _ = std::fs::remove_file(dir.join(SERVER_FILE));
}

/// The shared server of the project at `root` as recorded, when it still answers.
pub async fn shared_server(root: &Path) -> Result<Option<(Server, SharedServer)>, Error> {
    let project = Project::open(root)?;
    let dir = shared_dir(&project.id);
    let Some(record) = read_record(&dir)? else {
        return Ok(None);
    };
    Ok(attach(&record, &project.config.password)
        .await?
        .map(|(handle, _)| (handle.server().clone(), record)))
}

/// Stops the project's shared test server and removes its directory (data, log, record);
/// returns what was running. Test databases on it go with it. Safe to call when nothing runs;
/// waits for a start in progress to finish first.
pub async fn stop_shared_server(project: &Project) -> Result<Option<SharedServer>, Error> {
    let dir = shared_dir(&project.id);
    if !dir.is_dir() {
        return Ok(None);
    }
    let _lock = lock_dir(&dir).await?;
    let record = read_record(&dir)?;
    let mut stopped = None;
    if let Some(record) = record {
        if devenv_server::clean(&record.record, true).await? {
            stopped = Some(record);
        }
    }
    std::fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
    Ok(stopped)
}

/// Appends one line to the fixture's log in `dir` (`fixture.log`): server starts and template
/// builds, with the pid that did them. Best effort: the log only explains.
pub(crate) fn log_event(dir: &Path, line: &str) {
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let text = format!("{now} pid={} {line}\n", std::process::id());
    if let Ok(mut file) = devenv_server::files::append_private(&dir.join(LOG_FILE)) {
        // One write of one short line: O_APPEND keeps lines of concurrent processes whole.
        let _ = file.write_all(text.as_bytes());
    }
}
