//! The native backend: PostgreSQL from local binaries, no Docker needed.
//!
//! - Binaries: `DEVENV_PG_BIN`, `PATH`, `pg_config --bindir`, then `/usr/lib/postgresql/*/bin`
//!   (newest first).
//! - Where the cluster lives ([`Layout`]): kept data in the state directory (`.devenv/pgdata`),
//!   or, when devenv runs as root (postgres refuses root and runs as the `postgres` account,
//!   which cannot enter the 0700 `.devenv/`), in `/var/lib/devenv/<key>` owned by that account;
//!   throw-away data on `/dev/shm` (a tmpfs: copying a cluster there is several times faster)
//!   when it has room, else the temp directory. The Unix socket sits in a short private
//!   directory of its own (`$TMPDIR/devenv-<key>.s`, 0700, `unix_socket_permissions=0700`).
//! - `initdb` is slow (about 1.4 s), so one cluster per (binaries, superuser) is initialised
//!   once into a private cache directory and copied. It holds no password: the superuser gets
//!   its password at every start, over the private socket (`local ... trust`), which also
//!   follows a password changed in devenv.yaml on kept data.
//! - The postmaster runs in a process group of its own (a terminal's Ctrl-C reaches devenv,
//!   which stops it in order), its output in the log file devenv opened (0600).
//! - A running server is recognised by its data directory's `postmaster.pid` and the process's
//!   working directory ([`crate::process::postmaster_of`]), never by a bare pid.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::conninfo::{Server, APPLICATION_NAME};
use crate::error::{io, ServerError};
use crate::files::{create_private, private_dir, short_id};
use crate::process;
use crate::ready::{wait_ready, NotReady};
use crate::spec::{Identity, PasswordAuth, Progress, Role, Spec, Storage};
use crate::tls::{ConnectError, Tls};

/// Finds a directory holding `initdb` and `postgres`.
pub async fn find_bin_dir() -> Result<PathBuf, ServerError> {
    let has_bins = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let mut tried = Vec::new();
    if let Some(dir) = std::env::var_os("DEVENV_PG_BIN") {
        let dir = PathBuf::from(dir);
        if has_bins(&dir) {
            return Ok(dir);
        }
        tried.push(format!("DEVENV_PG_BIN={}", dir.display()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        if let Some(dir) = std::env::split_paths(&path).find(|d| has_bins(d)) {
            // PATH often holds symlinks (/usr/local/bin/postgres); psql and friends sit
            // beside the real binary.
            return Ok(fs::canonicalize(dir.join("postgres"))
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or(dir));
        }
        tried.push("PATH".into());
    }
    if let Ok(out) = tokio::process::Command::new("pg_config")
        .arg("--bindir")
        .output()
        .await
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if out.status.success() && has_bins(&dir) {
            return Ok(dir);
        }
    }
    tried.push("pg_config --bindir".into());
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, dir)| has_bins(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Ok(dir);
    }
    tried.push("/usr/lib/postgresql/*/bin".into());
    Err(ServerError::NoBinaries {
        tried: tried.join(", "),
    })
}

/// The major version of the binaries in `bin_dir` (`postgres --version`).
pub async fn major_version(bin_dir: &Path) -> Result<u32, ServerError> {
    let postgres = bin_dir.join("postgres");
    let out = tokio::process::Command::new(&postgres)
        .arg("--version")
        .output()
        .await
        .map_err(io("running", &postgres))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| ServerError::Command {
            what: "postgres --version",
            stderr: text.into_owned(),
        })
}

/// The account postgres runs as when devenv is root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// Account name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

/// Picks the account to run postgres as: `None` for the current user (not root).
pub fn run_as() -> Result<Option<RunAs>, ServerError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(None);
    }
    for name in ["postgres", "nobody"] {
        if let Ok(Some(user)) = nix::unistd::User::from_name(name) {
            return Ok(Some(RunAs {
                name: name.to_owned(),
                uid: user.uid.as_raw(),
                gid: user.gid.as_raw(),
            }));
        }
    }
    Err(ServerError::NoUser)
}

/// `DEVENV_CACHE_DIR`, else `$XDG_CACHE_HOME/devenv`, else `~/.cache/devenv`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("DEVENV_CACHE_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("devenv");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/devenv"),
        None => std::env::temp_dir().join("devenv-cache"),
    }
}

/// Room a tmpfs must have free before a throw-away cluster goes there.
const MIN_MEMORY_ROOM: u64 = 1 << 30;

/// `/dev/shm` when it is writable and roomy, else the temp directory.
pub fn scratch_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let roomy = nix::sys::statvfs::statvfs(shm)
        .is_ok_and(|s| s.blocks_available().saturating_mul(s.fragment_size()) >= MIN_MEMORY_ROOM);
    let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
    if roomy && writable && std::env::var_os("DEVENV_NATIVE_DISK").is_none_or(|v| v != "1") {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Where kept clusters live when devenv runs as root (`DEVENV_DATA_HOME` overrides).
fn root_data_home() -> PathBuf {
    std::env::var_os("DEVENV_DATA_HOME")
        .map_or_else(|| PathBuf::from("/var/lib/devenv"), PathBuf::from)
}

/// Where one server's files are, and what goes with it. Serialised into the project's record
/// before anything is created, so `down` after a SIGKILL finds all of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// The data directory (`PGDATA`).
    pub data_dir: PathBuf,
    /// The private directory of the Unix socket; removed when the server stops.
    pub socket_dir: PathBuf,
    /// The server log (opened by devenv, 0600).
    pub log: PathBuf,
    /// A directory devenv made for the data that goes with it: removed at stop for throw-away
    /// data, with `down --volumes` for kept data.
    pub data_root: Option<PathBuf>,
    /// Whether the data is thrown away at stop.
    pub ephemeral: bool,
}

impl Layout {
    /// The layout of `identity`'s server with `storage`, for postgres running as `run_as`.
    pub fn new(identity: &Identity, storage: Storage, run_as: Option<&RunAs>) -> Layout {
        let key = identity.key();
        let socket_dir = std::env::temp_dir().join(format!("devenv-{key}.s"));
        let log = identity.state_dir.join("postgres.log");
        match (storage, run_as) {
            (Storage::Ephemeral, _) => {
                let root = scratch_dir().join(format!("devenv-{key}"));
                Layout {
                    data_dir: root.join("pgdata"),
                    socket_dir,
                    log,
                    data_root: Some(root),
                    ephemeral: true,
                }
            }
            (Storage::Persistent, None) => Layout {
                data_dir: identity.state_dir.join("pgdata"),
                socket_dir,
                log,
                data_root: None,
                ephemeral: false,
            },
            (Storage::Persistent, Some(_)) => {
                let root = root_data_home().join(&key);
                Layout {
                    data_dir: root.join("pgdata"),
                    socket_dir,
                    log,
                    data_root: Some(root),
                    ephemeral: false,
                }
            }
        }
    }

    /// Whether a cluster is there.
    pub fn has_cluster(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// Bytes the data takes on disk.
    pub fn data_size(&self) -> u64 {
        dir_size(&self.data_dir)
    }

    /// Removes what stopping leaves: the socket directory, and throw-away data.
    fn remove_after_stop(&self) {
        let _ = fs::remove_dir_all(&self.socket_dir);
        if self.ephemeral {
            self.remove_data();
        }
    }

    /// Removes the data (kept or not), with copies interrupted half-way.
    pub fn remove_data(&self) {
        if let Some(root) = &self.data_root {
            let _ = fs::remove_dir_all(root);
        } else {
            let _ = fs::remove_dir_all(&self.data_dir);
            self.remove_partial_copies();
        }
    }

    /// Where a new cluster is copied before it is renamed to the data directory: a hidden
    /// sibling named after this process.
    fn partial_copy(&self) -> PathBuf {
        let name = self
            .data_dir
            .file_name()
            .map_or_else(|| "pgdata".into(), |n| n.to_string_lossy().into_owned());
        self.data_dir
            .with_file_name(format!(".{name}.partial-{}", std::process::id()))
    }

    /// Removes copies that an interrupted start left beside the data directory (the caller
    /// holds the lock that makes it the only starter of this server).
    fn remove_partial_copies(&self) {
        let Some(parent) = self.data_dir.parent() else {
            return;
        };
        let name = self
            .data_dir
            .file_name()
            .map_or_else(|| "pgdata".into(), |n| n.to_string_lossy().into_owned());
        let prefix = format!(".{name}.partial-");
        for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with(&prefix) {
                let _ = fs::remove_dir_all(entry.path());
            }
        }
    }

    /// Stops a postmaster a record names (checked against the world) and removes what goes
    /// with it; `forget` removes kept data too. Returns the pid it stopped.
    pub async fn clean(&self, forget: bool) -> Option<u32> {
        let pid = process::postmaster_of(&self.data_dir);
        if let Some(pid) = pid {
            process::stop_postmaster(pid, STOP_GRACE).await;
        }
        self.remove_after_stop();
        if forget {
            self.remove_data();
        }
        pid
    }
}

fn dir_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| dir_size(&e.path()))
        .sum()
}

/// How long a fast shutdown may take before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// A running native server.
#[derive(Debug)]
pub struct NativeServer {
    /// How to reach it.
    pub server: Server,
    /// Its files.
    pub layout: Layout,
    /// The postmaster's pid.
    pub pid: u32,
    /// Major version.
    pub version: u32,
    /// Becomes `Some(reason)` when the postmaster exits.
    exited: watch::Receiver<Option<String>>,
}

impl NativeServer {
    /// Initialises (reusing kept data, else from the cache, else with `initdb`) and starts the
    /// server of `spec`, and waits until it answers. `record` is called with the layout before
    /// anything is created.
    pub async fn start(
        spec: &Spec,
        record: &mut (dyn FnMut(&Layout) -> std::io::Result<()> + Send),
    ) -> Result<Self, ServerError> {
        let bin_dir = find_bin_dir().await?;
        let version = major_version(&bin_dir).await?;
        let run_as = run_as()?;
        let layout = Layout::new(&spec.identity, spec.storage, run_as.as_ref());
        record(&layout).map_err(io("recording", &layout.data_dir))?;
        if let Some(pid) = process::postmaster_of(&layout.data_dir) {
            return Err(ServerError::AlreadyRunning {
                pid,
                data_dir: layout.data_dir.clone(),
            });
        }
        spec.progress.report(crate::Step::Starting);
        let spawned = async {
            prepare_cluster(&bin_dir, version, run_as.as_ref(), &layout, spec).await?;
            let port = match spec.port {
                0 => crate::ports::free_port()
                    .map_err(io("finding a free port for", &layout.data_dir))?,
                port if crate::ports::port_in_use(port) => {
                    return Err(ServerError::PortTaken { port })
                }
                port => port,
            };
            spawn_postmaster(&bin_dir, run_as.as_ref(), &layout, port)
                .map(|(pid, exited)| (port, pid, exited))
        }
        .await;
        let (port, pid, exited) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                // A failed start leaves nothing but kept data: no socket directory, no
                // throw-away cluster.
                layout.remove_after_stop();
                return Err(e);
            }
        };
        let native = NativeServer {
            server: Server::local(port, &spec.user, &spec.password),
            layout,
            pid,
            version,
            exited,
        };
        if let Err(e) = native.finish_start(spec).await {
            native.stop().await;
            return Err(e);
        }
        Ok(native)
    }

    /// Waits for the socket to answer, then gives the superuser its password.
    async fn finish_start(&self, spec: &Spec) -> Result<(), ServerError> {
        let mut socket = tokio_postgres::Config::new();
        socket
            .host_path(&self.layout.socket_dir)
            .port(self.server.port())
            .user(&spec.user)
            .dbname("postgres")
            .application_name(APPLICATION_NAME);
        let exited = self.exited.clone();
        spec.progress.report(crate::Step::WaitingReady);
        // The private socket: no TLS there (PostgreSQL has none on Unix sockets).
        let ready = wait_ready(&socket, &Tls::plain(), spec.timeout, || {
            exited.borrow().clone()
        })
        .await;
        match ready {
            Ok(_) => {}
            Err(NotReady::Exited(status)) => {
                return Err(ServerError::Exited {
                    status,
                    log_name: self.layout.log.display().to_string(),
                    tail: log_tail(&self.layout.log, 20),
                })
            }
            Err(NotReady::Refused(source)) => {
                return Err(self.user_changed(spec, source));
            }
            Err(NotReady::Timeout { waited, last }) => {
                return Err(ServerError::NotReady {
                    waited,
                    log_name: self.layout.log.display().to_string(),
                    tail: log_tail(&self.layout.log, 20),
                    source: last,
                })
            }
        }
        set_password(&socket, &spec.user, &spec.password, spec.password_auth).await
    }

    /// The error for a configured superuser the kept cluster does not know.
    fn user_changed(&self, spec: &Spec, source: ConnectError) -> ServerError {
        let found = fs::metadata(self.layout.data_dir.join("PG_VERSION"))
            .ok()
            .and_then(|_| fs::read_to_string(self.layout.data_dir.join(SUPERUSER_FILE)).ok())
            .map(|s| s.trim().to_owned());
        match found {
            Some(found) if found != spec.user => ServerError::UserChanged {
                found,
                wanted: spec.user.clone(),
            },
            _ => ServerError::Connect {
                what: "connecting over the private socket",
                server: self.layout.socket_dir.display().to_string(),
                source,
            },
        }
    }

    /// Finds the running server a layout describes (checked against the world).
    pub fn attach(layout: &Layout, user: &str, password: &str, port: u16) -> Option<Self> {
        let pid = process::postmaster_of(&layout.data_dir)?;
        let (tx, exited) = watch::channel(None);
        tokio::spawn(async move {
            // Not this process's child (another `up` started it), so no exit status to wait
            // on: polled.
            while process::alive(pid) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            let _ = tx.send(Some("the postmaster exited".into()));
        });
        Some(NativeServer {
            server: Server::local(port, user, password),
            layout: layout.clone(),
            pid,
            version: 0,
            exited,
        })
    }

    /// Resolves when the postmaster exits, with how it ended.
    pub async fn exited(&self) -> String {
        let mut rx = self.exited.clone();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return "the postmaster's watcher stopped".into();
            }
        }
    }

    /// Fast shutdown, then SIGKILL after a grace period; removes the socket directory and
    /// throw-away data.
    pub async fn stop(&self) {
        if process::signal(self.pid, nix::sys::signal::Signal::SIGINT)
            && tokio::time::timeout(STOP_GRACE, self.exited())
                .await
                .is_err()
        {
            process::signal(self.pid, nix::sys::signal::Signal::SIGKILL);
            let _ = tokio::time::timeout(STOP_GRACE, self.exited()).await;
        }
        self.layout.remove_after_stop();
    }
}

/// Where the superuser a cluster was initialised for is written, inside the data directory.
const SUPERUSER_FILE: &str = "devenv.superuser";

/// Makes `layout.data_dir` hold a cluster for `spec`: kept data as it is, else a copy of the
/// cached cluster, else `initdb` (and cache it). Rewrites `pg_hba.conf` for `spec`.
async fn prepare_cluster(
    bin_dir: &Path,
    version: u32,
    run_as: Option<&RunAs>,
    layout: &Layout,
    spec: &Spec,
) -> Result<(), ServerError> {
    let owner = run_as.map(|u| (u.uid, u.gid));
    if let Some(root) = &layout.data_root {
        let parent = root.parent().unwrap_or(root);
        if !layout.ephemeral && run_as.is_some() {
            // /var/lib/devenv: root's, traversable, not listable.
            fs::create_dir_all(parent).map_err(io("creating", parent))?;
            fs::set_permissions(parent, fs::Permissions::from_mode(0o711))
                .map_err(io("setting permissions of", parent))?;
        }
        private_dir(root).map_err(io("creating", root))?;
        give(root, owner)?;
    }
    if let Some(parent) = layout.data_dir.parent() {
        fs::create_dir_all(parent).map_err(io("creating", parent))?;
    }
    if layout.has_cluster() {
        let found = fs::read_to_string(layout.data_dir.join("PG_VERSION"))
            .map_err(io("reading", &layout.data_dir))?;
        if found.trim() != version.to_string() {
            return Err(ServerError::VersionMismatch {
                data_dir: layout.data_dir.clone(),
                found: found.trim().to_owned(),
                wanted: version,
                bin_dir: bin_dir.to_path_buf(),
            });
        }
    } else {
        // A data directory without PG_VERSION is not a cluster (PG_VERSION is copied among
        // the first files, so a devenv before this one could leave half a cluster under the
        // final name; none does now): it goes, with copies interrupted half-way.
        let _ = fs::remove_dir_all(&layout.data_dir);
        layout.remove_partial_copies();
        let cache_root = default_cache_dir();
        let cached = cache_root.join(format!(
            "initdb-pg{version}-{}",
            short_id(&[bin_dir.to_string_lossy().as_bytes(), spec.user.as_bytes()])
        ));
        if !cached.join("PG_VERSION").is_file() {
            initdb_into_cache(bin_dir, run_as, &cache_root, &cached, &spec.user).await?;
        }
        // Copied under another name and renamed in whole: an interruption at any moment
        // (a SIGKILL of `up`) leaves nothing an `up` could take for kept data.
        let partial = layout.partial_copy();
        copy_tree_blocking(cached, partial.clone(), owner).await?;
        fs::rename(&partial, &layout.data_dir).map_err(io("renaming into place", &partial))?;
    }
    fs::set_permissions(&layout.data_dir, fs::Permissions::from_mode(0o700))
        .map_err(io("setting permissions of", &layout.data_dir))?;
    write_hba(layout, spec.password_auth)?;
    private_dir(&layout.socket_dir).map_err(io("creating", &layout.socket_dir))?;
    give(&layout.socket_dir, owner)
}

fn give(path: &Path, owner: Option<(u32, u32)>) -> Result<(), ServerError> {
    match owner {
        Some((uid, gid)) => {
            chown(path, Some(uid), Some(gid)).map_err(io("changing owner of", path))
        }
        None => Ok(()),
    }
}

/// `pg_hba.conf` for a dev server: the private socket trusts (only its owner can reach it),
/// TCP on loopback asks for the password.
fn write_hba(layout: &Layout, auth: PasswordAuth) -> Result<(), ServerError> {
    let method = match auth {
        PasswordAuth::Scram | PasswordAuth::QuickScram => "scram-sha-256",
    };
    let hba = layout.data_dir.join("pg_hba.conf");
    let text = format!(
        "# Written by devenv at every start.\n\
         local all all trust\n\
         host all all 127.0.0.1/32 {method}\n\
         host all all ::1/128 {method}\n"
    );
    // Writing in place keeps the file's owner (the account postgres runs as).
    fs::write(&hba, text).map_err(io("writing", &hba))
}

/// Runs `initdb` (no password: see the module docs) into a private temporary directory in the
/// cache and renames it into place, so concurrent first runs never see half a cluster.
async fn initdb_into_cache(
    bin_dir: &Path,
    run_as: Option<&RunAs>,
    cache_root: &Path,
    cached: &Path,
    user: &str,
) -> Result<(), ServerError> {
    private_dir(cache_root).map_err(io("creating", cache_root))?;
    // Private to this call: concurrent first runs (threads or processes) each initialise
    // their own, and the first rename wins.
    let work_dir = tempfile::Builder::new()
        .prefix(".initdb-")
        .tempdir_in(cache_root)
        .map_err(io("creating a temporary directory in", cache_root))?;
    let work = work_dir.path().to_path_buf();
    let data = work.join("pgdata");
    // As root, initdb runs as the unprivileged account, which must reach its directory.
    let initdb_in = match run_as {
        Some(user) => {
            let scratch = tempfile::Builder::new()
                .prefix("devenv-initdb-")
                .tempdir()
                .map_err(io(
                    "creating a temporary directory in",
                    &std::env::temp_dir(),
                ))?;
            chown(scratch.path(), Some(user.uid), Some(user.gid))
                .map_err(io("changing owner of", scratch.path()))?;
            Some(scratch)
        }
        None => None,
    };
    let target = initdb_in
        .as_ref()
        .map_or_else(|| data.clone(), |d| d.path().join("pgdata"));
    let initdb = bin_dir.join("initdb");
    let out = command(&initdb, run_as)
        .arg("-D")
        .arg(&target)
        .args([
            "-U",
            user,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .args([
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
            "--no-instructions",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(io("running", &initdb))?;
    if !out.status.success() {
        return Err(ServerError::Command {
            what: "initdb",
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    fs::write(target.join(SUPERUSER_FILE), user).map_err(io("writing", &target))?;
    if target != data {
        copy_tree_blocking(target, data.clone(), None).await?;
    }
    drop(initdb_in);
    // Another process may have cached the same cluster meanwhile: either copy is good.
    if let Err(source) = fs::rename(&data, cached) {
        if !cached.join("PG_VERSION").is_file() {
            return Err(ServerError::Io {
                what: "caching the initialised cluster in",
                path: cached.to_path_buf(),
                source,
            });
        }
    }
    drop(work_dir);
    Ok(())
}

fn command(program: &Path, run_as: Option<&RunAs>) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    if let Some(user) = run_as {
        // std drops supplementary groups when root changes uid.
        cmd.uid(user.uid).gid(user.gid);
        cmd.env("HOME", "/tmp").env("USER", &user.name);
    }
    cmd.env("LC_ALL", "C.UTF-8").env("LANG", "C.UTF-8");
    cmd
}

/// Starts the postmaster; returns its pid and a channel that says when it exited.
fn spawn_postmaster(
    bin_dir: &Path,
    run_as: Option<&RunAs>,
    layout: &Layout,
    port: u16,
) -> Result<(u32, watch::Receiver<Option<String>>), ServerError> {
    let log = create_private(&layout.log).map_err(io("creating", &layout.log))?;
    let log_err = log.try_clone().map_err(io("opening", &layout.log))?;
    let postgres = bin_dir.join("postgres");
    // A list setting: a directory holding a comma must be quoted.
    let socket_dirs = format!(
        "unix_socket_directories=\"{}\"",
        layout.socket_dir.display().to_string().replace('"', "\\\"")
    );
    let mut child = command(&postgres, run_as)
        .arg("-D")
        .arg(&layout.data_dir)
        .args(["-c", "listen_addresses=127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &socket_dirs, "-c", "unix_socket_permissions=0700"])
        .args(crate::spec::dev_settings_args(if layout.ephemeral {
            Storage::Ephemeral
        } else {
            Storage::Persistent
        }))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .current_dir(&layout.data_dir)
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(io("starting", &postgres))?;
    let pid = child.id().unwrap_or_default();
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => format!("postgres {status}"),
            Err(e) => format!("postgres could not be waited for: {e}"),
        };
        let _ = tx.send(Some(status));
    });
    Ok((pid, rx))
}

/// Gives the superuser its password (a quick verifier for [`PasswordAuth::QuickScram`]:
/// SCRAM's 4096 PBKDF2 rounds run in the client, a few hundred ms per connection in a debug
/// build; [`crate::scram`]).
async fn set_password(
    socket: &tokio_postgres::Config,
    user: &str,
    password: &str,
    auth: PasswordAuth,
) -> Result<(), ServerError> {
    let (client, connection) =
        Tls::plain()
            .connect(socket)
            .await
            .map_err(|source| ServerError::Connect {
                what: "connecting over the private socket",
                server: "the private socket".into(),
                source,
            })?;
    let task = tokio::spawn(connection);
    let sql = match auth {
        PasswordAuth::Scram => format!(
            "SET password_encryption = 'scram-sha-256'; ALTER ROLE {} PASSWORD {}",
            crate::sql::quote_ident(user),
            crate::sql::quote_literal(password)
        ),
        PasswordAuth::QuickScram => crate::scram::alter_role_sql(user, password),
    };
    let result = client
        .batch_execute(&sql)
        .await
        .map_err(|source| ServerError::Db {
            what: "setting the superuser's password",
            server: "the private socket".into(),
            source,
        });
    drop(client);
    let _ = task.await;
    result
}

/// Copies a directory tree off the async workers, giving every entry to `owner` when set.
async fn copy_tree_blocking(
    from: PathBuf,
    to: PathBuf,
    owner: Option<(u32, u32)>,
) -> Result<(), ServerError> {
    tokio::task::spawn_blocking(move || copy_tree(&from, &to, owner))
        .await
        .map_err(|e| ServerError::Io {
            what: "copying a cluster",
            path: PathBuf::new(),
            source: std::io::Error::other(e.to_string()),
        })?
}

fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), ServerError> {
    fs::create_dir_all(to).map_err(io("creating", to))?;
    let mode = fs::metadata(from)
        .map_err(io("reading", from))?
        .permissions();
    fs::set_permissions(to, mode).map_err(io("setting permissions of", to))?;
    give(to, owner)?;
    for entry in fs::read_dir(from).map_err(io("reading", from))? {
        let entry = entry.map_err(io("reading", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io("reading", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst, owner)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io("copying", &src))?;
            give(&dst, owner)?;
        }
    }
    Ok(())
}

/// The last `n` lines of a log file.
pub fn log_tail(path: &Path, n: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A throw-away native server in a temporary directory of its own, for tests and benchmarks.
#[derive(Debug)]
pub struct TempServer {
    /// The server (declared first: it stops before its directory goes).
    pub native: NativeServer,
    dir: Option<tempfile::TempDir>,
}

impl TempServer {
    /// Starts a server on a free port with superuser `postgres` and `password`.
    pub async fn start(password: &str) -> Result<Self, ServerError> {
        let dir = tempfile::Builder::new()
            .prefix("devenv-pg-")
            .tempdir()
            .map_err(io(
                "creating a temporary directory in",
                &std::env::temp_dir(),
            ))?;
        let root = dir.path().to_path_buf();
        let spec = Spec {
            identity: Identity::new(
                &root,
                &root,
                &format!("temp-{}", short_id(&[root.to_string_lossy().as_bytes()])),
                Role::Test,
            ),
            user: "postgres".into(),
            password: password.into(),
            database: "postgres".into(),
            port: 0,
            image: String::new(),
            network: None,
            storage: Storage::Ephemeral,
            password_auth: PasswordAuth::Scram,
            timeout: Duration::from_secs(60),
            progress: Progress::default(),
        };
        let native = NativeServer::start(&spec, &mut |_| Ok(())).await?;
        Ok(TempServer {
            native,
            dir: Some(dir),
        })
    }

    /// How to reach it.
    pub fn server(&self) -> &Server {
        &self.native.server
    }

    /// Stops the server and removes its files.
    pub async fn stop(mut self) {
        self.native.stop().await;
        self.dir.take();
    }
}

impl Drop for TempServer {
    /// A test helper dropped without [`TempServer::stop`]: stop the postmaster (briefly
    /// blocking: a fast shutdown of a test server takes tens of milliseconds) so that no
    /// server outlives the test process and its directory can be removed.
    fn drop(&mut self) {
        if self.dir.is_none() {
            return;
        }
        let pid = self.native.pid;
        if process::signal(pid, nix::sys::signal::Signal::SIGINT) {
            let deadline = std::time::Instant::now() + STOP_GRACE;
            while process::alive(pid) && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            process::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        self.native.layout.remove_after_stop();
    }
}
