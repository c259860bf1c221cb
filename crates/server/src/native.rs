//! The native backend: PostgreSQL from local binaries, no Docker needed.
//!
//! Binaries are found through `DEVENV_PG_BIN`, `PATH`, `pg_config --bindir`, then
//! `/usr/lib/postgresql/*/bin` (newest first). The cluster lives in `DIR/pgdata`, its socket in
//! `DIR/run` and its log in `DIR/postgres.log` (DIR is `.devenv/` for `devenv up`). `initdb` is
//! slow (about 1.4 s), so one initialised cluster per (version, superuser, password) is kept in
//! a cache directory and copied (tens of milliseconds). Durability is off (`fsync`,
//! `synchronous_commit`, `full_page_writes`): a dev database is rebuilt from its files.
//!
//! PostgreSQL refuses to run as root; when devenv is root it runs `initdb` and `postgres` as an
//! unprivileged user (`postgres` if that account exists, else `nobody`) and hands it the
//! directories.

use std::fs;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::ready::{wait_ready, NotReady};
use crate::Server;

/// Native backend failures, each with what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum NativeError {
    /// No binaries anywhere.
    #[error("no PostgreSQL server binaries found (tried {tried}); install them (Debian: `apt-get install postgresql-15`) or set DEVENV_PG_BIN to the directory holding initdb and postgres")]
    NoBinaries {
        /// What was looked at.
        tried: String,
    },
    /// Running as root and no unprivileged account to run postgres as.
    #[error("PostgreSQL refuses to run as root and no unprivileged user (postgres, nobody) exists to run it as; create one (`useradd postgres`) or run devenv as a normal user")]
    NoUser,
    /// The run user cannot use a directory.
    #[error("user {user} cannot write to {}: make the path reachable for it (chmod o+x on its parents) or run devenv as a normal user", dir.display())]
    Unreachable {
        /// The account postgres runs as.
        user: String,
        /// The directory.
        dir: PathBuf,
    },
    /// A tool failed.
    #[error("{what} failed: {message}")]
    Command {
        /// Which step.
        what: String,
        /// Its output or error.
        message: String,
    },
    /// File system trouble.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// Which step.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The server did not become ready.
    #[error("{source}\n--- last lines of {} ---\n{tail}", log.display())]
    NotReady {
        /// Why.
        #[source]
        source: NotReady,
        /// The server log.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
}

fn io<'p>(what: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> NativeError + 'p {
    move |source| NativeError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Finds a directory holding `initdb` and `postgres`.
pub fn find_bin_dir() -> Result<PathBuf, NativeError> {
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
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
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
    Err(NativeError::NoBinaries {
        tried: tried.join(", "),
    })
}

/// The account postgres runs as: `None` for the current user (not root).
#[derive(Debug, Clone)]
pub struct RunAs {
    /// Account name.
    pub name: String,
    /// uid.
    pub uid: u32,
    /// gid.
    pub gid: u32,
}

/// Picks the account to run postgres as.
pub fn run_as() -> Result<Option<RunAs>, NativeError> {
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
    Err(NativeError::NoUser)
}

fn command(program: &Path, run_as: Option<&RunAs>) -> Command {
    let mut cmd = Command::new(program);
    if let Some(user) = run_as {
        // std drops supplementary groups when root changes uid.
        cmd.uid(user.uid).gid(user.gid);
        cmd.env("HOME", "/tmp").env("USER", &user.name);
    }
    cmd.env("LC_ALL", "C.UTF-8").env("LANG", "C.UTF-8");
    cmd
}

/// The major version of the binaries in `bin_dir` (`postgres --version`).
pub fn major_version(bin_dir: &Path) -> Result<u32, NativeError> {
    let out = Command::new(bin_dir.join("postgres"))
        .arg("--version")
        .output()
        .map_err(io("running", &bin_dir.join("postgres")))?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .last()
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| NativeError::Command {
            what: "postgres --version".into(),
            message: text.into_owned(),
        })
}

/// What to start.
#[derive(Debug, Clone)]
pub struct NativeOptions {
    /// Directory for `pgdata/`, `run/` and `postgres.log`.
    pub dir: PathBuf,
    /// Port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// Superuser.
    pub user: String,
    /// Superuser password.
    pub password: String,
    /// Where initialised clusters are cached (default: [`default_cache_dir`]).
    pub cache_dir: Option<PathBuf>,
    /// How long to wait for readiness.
    pub timeout: Duration,
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

/// A running native server; stopped (fast shutdown) when dropped.
#[derive(Debug)]
pub struct NativeServer {
    child: Option<Child>,
    /// How to reach it.
    pub server: Server,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The server log.
    pub log: PathBuf,
    /// The postmaster's pid.
    pub pid: u32,
    /// Major version.
    pub version: u32,
}

impl NativeServer {
    /// Initialises (from the cache when it can) and starts a server, and waits until it answers.
    pub async fn start(options: &NativeOptions) -> Result<Self, NativeError> {
        let bin_dir = find_bin_dir()?;
        let version = major_version(&bin_dir)?;
        let run_as = run_as()?;
        fs::create_dir_all(&options.dir).map_err(io("creating", &options.dir))?;
        // Absolute: postgres runs with this directory as its working directory.
        let dir = &fs::canonicalize(&options.dir).map_err(io("resolving", &options.dir))?;
        let link = dir.join("pgdata");
        let run_dir = dir.join("run");
        let log = dir.join("postgres.log");
        remove_data_dir(&link)?;
        // On a tmpfs the cluster copy and the server's writes cost a fraction of the disk's;
        // `DIR/pgdata` then links to it.
        let data_dir = match memory_dir(dir) {
            Some(mem) => {
                fs::create_dir_all(&mem).map_err(io("creating", &mem))?;
                fs::set_permissions(&mem, fs::Permissions::from_mode(0o755))
                    .map_err(io("setting permissions of", &mem))?;
                let real = mem.join("pgdata");
                std::os::unix::fs::symlink(&real, &link).map_err(io("linking", &link))?;
                real
            }
            None => link,
        };
        fs::create_dir_all(&run_dir).map_err(io("creating", &run_dir))?;
        let owner = run_as.as_ref().map(|u| (u.uid, u.gid));
        if let Some((uid, gid)) = owner {
            chown(&run_dir, Some(uid), Some(gid)).map_err(io("changing owner of", &run_dir))?;
            check_reachable(run_as.as_ref().expect("owner implies run_as"), &run_dir)?;
        }
        let cache_root = options.cache_dir.clone().unwrap_or_else(default_cache_dir);
        let cached = cache_root.join(cache_key(&bin_dir, version, options));
        if cached.join("PG_VERSION").is_file() {
            copy_tree(&cached, &data_dir, owner)?;
        } else {
            initdb(&bin_dir, run_as.as_ref(), &data_dir, options)?;
            // Cache it for next time; a failure here only costs speed.
            let tmp = cache_root.join(format!(".tmp-{}", std::process::id()));
            if copy_tree(&data_dir, &tmp, None).is_ok() && fs::rename(&tmp, &cached).is_err() {
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        fs::set_permissions(&data_dir, fs::Permissions::from_mode(0o700))
            .map_err(io("setting permissions of", &data_dir))?;
        let port = if options.port == 0 {
            crate::free_port().map_err(io("finding a free port for", dir))?
        } else {
            options.port
        };
        let log_file = fs::File::create(&log).map_err(io("creating", &log))?;
        let child = command(&bin_dir.join("postgres"), run_as.as_ref())
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-p",
                &port.to_string(),
                "-k",
            ])
            .arg(&run_dir)
            .args(crate::dev_settings_args())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().map_err(io("opening", &log))?)
            .stderr(log_file)
            .current_dir(dir)
            .spawn()
            .map_err(io("starting", &bin_dir.join("postgres")))?;
        let pid = child.id();
        let server = Server {
            host: "127.0.0.1".into(),
            port,
            user: options.user.clone(),
            password: options.password.clone(),
        };
        let mut native = NativeServer {
            child: Some(child),
            server,
            data_dir,
            log,
            pid,
            version,
        };
        let config = native.server.config("postgres");
        let child = native.child.as_mut().expect("just started");
        let ready = wait_ready(&config, options.timeout, || match child.try_wait() {
            Ok(Some(status)) => Err(format!("postgres {status}")),
            _ => Ok(()),
        })
        .await;
        if let Err(source) = ready {
            let tail = log_tail(&native.log, 20);
            native.stop();
            return Err(NativeError::NotReady {
                source,
                log: native.log.clone(),
                tail,
            });
        }
        Ok(native)
    }

    /// Fast shutdown (SIGINT), then SIGKILL after 10 s. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_pid(self.pid, Duration::from_secs(10));
            let _ = child.wait();
            // A cluster in memory goes with its server; the next start copies a fresh one.
            if let Some(mem) = self.data_dir.parent().filter(|p| {
                p.starts_with("/dev/shm")
                    && p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("devenv-native-"))
            }) {
                let _ = fs::remove_dir_all(mem);
            }
        }
    }

    /// Leaves the server running when this value is dropped (for `devenv up`'s pid file).
    pub fn detach(mut self) -> u32 {
        self.child = None;
        self.pid
    }
}

impl Drop for NativeServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Stops a postmaster by pid: SIGINT (fast shutdown), SIGKILL after `grace`.
pub fn stop_pid(pid: u32, grace: Duration) {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let Ok(raw) = i32::try_from(pid) else { return };
    let pid = Pid::from_raw(raw);
    if kill(pid, Signal::SIGINT).is_err() {
        return;
    }
    let deadline = std::time::Instant::now() + grace;
    while std::time::Instant::now() < deadline {
        // Reap it if it is our child; otherwise poll for its disappearance.
        let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
        if kill(pid, None).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = kill(pid, Signal::SIGKILL);
}

/// Removes a data directory, or the link `devenv up` made to one in memory and its target.
fn remove_data_dir(path: &Path) -> Result<(), NativeError> {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        if let Ok(target) = fs::read_link(path) {
            let _ = fs::remove_dir_all(&target);
        }
        fs::remove_file(path).map_err(io("removing", path))
    } else {
        fs::remove_dir_all(path).map_err(io("removing", path))
    }
}

/// Room a tmpfs must have free before a cluster goes there.
const MIN_MEMORY_ROOM: u64 = 1 << 30;

/// A directory on `/dev/shm` for the cluster of `dir`, when it is writable and roomy and
/// `dir` is not there already (`DEVENV_NATIVE_DISK=1` keeps the cluster on disk).
fn memory_dir(dir: &Path) -> Option<PathBuf> {
    if std::env::var_os("DEVENV_NATIVE_DISK").is_some_and(|v| v == "1")
        || dir.starts_with("/dev/shm")
    {
        return None;
    }
    let shm = Path::new("/dev/shm");
    let stat = nix::sys::statvfs::statvfs(shm).ok()?;
    let room = stat.blocks_available().saturating_mul(stat.fragment_size());
    let writable = nix::unistd::access(shm, nix::unistd::AccessFlags::W_OK).is_ok();
    if room < MIN_MEMORY_ROOM || !writable {
        return None;
    }
    let digest = Sha256::digest(dir.to_string_lossy().as_bytes());
    let id: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    Some(shm.join(format!("devenv-native-{id}")))
}

fn cache_key(bin_dir: &Path, version: u32, options: &NativeOptions) -> String {
    let mut hash = Sha256::new();
    for part in [
        bin_dir.to_string_lossy().as_bytes(),
        options.user.as_bytes(),
        options.password.as_bytes(),
    ] {
        hash.update(part);
        hash.update([0]);
    }
    let digest = hash.finalize();
    let hex: String = digest.iter().take(8).fold(String::new(), |mut out, b| {
        use std::fmt::Write as _;
        let _ = write!(out, "{b:02x}");
        out
    });
    format!("initdb-pg{version}-{hex}")
}

fn check_reachable(user: &RunAs, dir: &Path) -> Result<(), NativeError> {
    let ok = command(Path::new("test"), Some(user))
        .arg("-w")
        .arg(dir)
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(())
    } else {
        Err(NativeError::Unreachable {
            user: user.name.clone(),
            dir: dir.to_path_buf(),
        })
    }
}

fn initdb(
    bin_dir: &Path,
    run_as: Option<&RunAs>,
    data_dir: &Path,
    options: &NativeOptions,
) -> Result<(), NativeError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    fs::create_dir_all(data_dir).map_err(io("creating", data_dir))?;
    // The password goes through a file of its own in a private directory (0700, the file 0600):
    // never next to the data directory, whose parent may not exist (a cluster on /dev/shm) or
    // may be readable by others.
    let tmp = std::env::temp_dir();
    let pw_dir = tempfile::Builder::new()
        .prefix("devenv-pw-")
        .tempdir()
        .map_err(io("creating a private directory in", &tmp))?;
    let pwfile = pw_dir.path().join("pwfile");
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&pwfile)
        .and_then(|mut f| f.write_all(format!("{}\n", options.password).as_bytes()))
        .map_err(io("writing", &pwfile))?;
    if let Some(user) = run_as {
        for path in [data_dir, pw_dir.path(), pwfile.as_path()] {
            chown(path, Some(user.uid), Some(user.gid)).map_err(io("changing owner of", path))?;
        }
        check_reachable(user, data_dir)?;
    }
    let out = command(&bin_dir.join("initdb"), run_as)
        .arg("-D")
        .arg(data_dir)
        .args(["-U", &options.user, "-A", "scram-sha-256", "-E", "UTF8"])
        .args(["--locale=C.UTF-8", "--no-sync", "--no-instructions"])
        .arg(format!("--pwfile={}", pwfile.display()))
        .stdin(Stdio::null())
        .output();
    drop(pw_dir);
    let out = out.map_err(io("running", &bin_dir.join("initdb")))?;
    if !out.status.success() {
        return Err(NativeError::Command {
            what: "initdb".into(),
            message: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// Copies a directory tree, giving every entry to `owner` when set.
fn copy_tree(from: &Path, to: &Path, owner: Option<(u32, u32)>) -> Result<(), NativeError> {
    fs::create_dir_all(to).map_err(io("creating", to))?;
    let mode = fs::metadata(from)
        .map_err(io("reading", from))?
        .permissions();
    fs::set_permissions(to, mode).map_err(io("setting permissions of", to))?;
    if let Some((uid, gid)) = owner {
        chown(to, Some(uid), Some(gid)).map_err(io("changing owner of", to))?;
    }
    for entry in fs::read_dir(from).map_err(io("reading", from))? {
        let entry = entry.map_err(io("reading", from))?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().map_err(io("reading", &src))?;
        if kind.is_dir() {
            copy_tree(&src, &dst, owner)?;
        } else if kind.is_file() {
            fs::copy(&src, &dst).map_err(io("copying", &src))?;
            if let Some((uid, gid)) = owner {
                chown(&dst, Some(uid), Some(gid)).map_err(io("changing owner of", &dst))?;
            }
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

/// A native server in a temporary directory of its own, removed with it: for tests, benches
/// and the test fixture's shared server.
#[derive(Debug)]
pub struct TempServer {
    /// The server (declared first: it stops before its directory goes).
    pub native: NativeServer,
    _dir: tempfile::TempDir,
}

impl TempServer {
    /// Starts a server on a free port with superuser `postgres` and `password`.
    pub async fn start(password: &str) -> Result<Self, NativeError> {
        let dir = tempfile::Builder::new()
            .prefix("devenv-pg-")
            .tempdir()
            .map_err(io(
                "creating a temporary directory in",
                &std::env::temp_dir(),
            ))?;
        // postgres may run as another user (when devenv is root): let it reach the directory.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
            .map_err(io("setting permissions of", dir.path()))?;
        let native = NativeServer::start(&NativeOptions {
            dir: dir.path().to_path_buf(),
            port: 0,
            user: "postgres".into(),
            password: password.into(),
            cache_dir: None,
            timeout: Duration::from_secs(30),
        })
        .await?;
        Ok(TempServer { native, _dir: dir })
    }

    /// How to reach it.
    pub fn server(&self) -> &Server {
        &self.native.server
    }
}
