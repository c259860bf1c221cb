//! Shared by the end-to-end tests: a temp copy of the example project run with the real
//! binary against a real Docker engine and the local test image (DEVENV_TEST_IMAGE, default
//! `devenv-test/postgres:13`, built by `scripts/build-test-image.sh`).
//!
//! Without a Docker engine the tests fail with a message; `DEVENV_SKIP_DOCKER_TESTS=1` is the
//! only way to skip them, and CI never sets it.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]
pub mod reflink;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_devenv");

pub fn test_image() -> String {
    std::env::var("DEVENV_TEST_IMAGE").unwrap_or_else(|_| "devenv-test/postgres:13".into())
}

/// False only when the explicit opt-out is set and no engine answers.
pub fn docker_ready() -> bool {
    engine_ready(
        None,
        &test_image(),
        "scripts/ensure-docker.sh and scripts/build-test-image.sh",
    )
}

/// Whether the engine at `engine` (a DOCKER_HOST value; `None`: the environment's) answers
/// and holds `image`: false only when the explicit opt-out is set, else a failure naming
/// `how` to get them.
pub fn engine_ready(engine: Option<&str>, image: &str, how: &str) -> bool {
    let mut inspect = Command::new("docker");
    if let Some(engine) = engine {
        inspect.env("DOCKER_HOST", engine);
    }
    let ok = inspect
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return true;
    }
    let at = engine.map_or_else(String::new, |e| format!(" at {e}"));
    if std::env::var("DEVENV_SKIP_DOCKER_TESTS").as_deref() == Ok("1") {
        skipped(&format!(
            "DEVENV_SKIP_DOCKER_TESTS=1 and no engine{at} with the image {image}"
        ));
        return false;
    }
    panic!(
        "these tests need a Docker engine{at} and the image {image} (run {how}, or set \
         DEVENV_SKIP_DOCKER_TESTS=1 to skip them)"
    );
}

/// Records a skipped test where scripts/test reports it (`DEVENV_SKIP_LOG`): a skip is
/// reported as a skip, never counted as a pass.
pub fn skipped(reason: &str) {
    use std::io::Write as _;
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    eprintln!("skipped {test}: {reason}");
    if let Some(log) = std::env::var_os("DEVENV_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(log)
        {
            let _ = writeln!(file, "{test}: {reason}");
        }
    }
}

/// A temp copy of the example project with its own network.
pub struct Project {
    pub dir: tempfile::TempDir,
    pub network: String,
    /// DEVENV_BACKEND for every command; `None` leaves the config's (`auto`).
    pub backend: Option<&'static str>,
    /// DOCKER_HOST for every command (devenv's and the `docker` client's); `None` leaves the
    /// environment's.
    pub engine: Option<String>,
}

impl Project {
    pub fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = tempfile::Builder::new()
            .prefix("devenv-up-")
            .tempdir()
            .unwrap();
        let src = Path::new(env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        for f in ["db/schema.sql", "db/seed.sql", "devenv.yaml"] {
            std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
        }
        let network = format!(
            "devenv-test-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        Project {
            dir,
            network,
            backend: Some("docker"),
            engine: None,
        }
    }

    /// A project run with the native backend, in a directory the account postgres runs as
    /// (when the tests run as root) can reach.
    pub fn native() -> Self {
        let mut project = Project::new();
        std::fs::set_permissions(
            project.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        project.backend = Some("native");
        project
    }

    /// The record of what `devenv up` runs (`.devenv/state.json`'s `server`).
    pub fn record(&self) -> Option<serde_json::Value> {
        let state = std::fs::read_to_string(self.path().join(".devenv/state.json")).ok()?;
        let state: serde_json::Value = serde_json::from_str(&state).ok()?;
        Some(state["server"].clone()).filter(|r| !r.is_null())
    }

    /// The data directory of a native `devenv up`, as recorded.
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.record()?["data_dir"].as_str().map(PathBuf::from)
    }

    /// The postmaster of a native `devenv up`: the pid its data directory's postmaster.pid
    /// names.
    pub fn server_pid(&self) -> Option<u32> {
        let dir = self.data_dir()?;
        let pid = std::fs::read_to_string(dir.join("postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(self.path())
            .env("DEVENV_IMAGE", test_image())
            .env("DEVENV_PORT", "0")
            .env("DEVENV_BACKEND", self.backend.unwrap_or("auto"))
            .env("DEVENV_NETWORK", &self.network)
            .env_remove("GITPOD_WORKSPACE_ID");
        if let Some(engine) = &self.engine {
            cmd.env("DOCKER_HOST", engine);
        }
        cmd
    }

    /// The `docker` client, talking to this project's engine.
    pub fn docker(&self) -> Command {
        let mut cmd = Command::new("docker");
        if let Some(engine) = &self.engine {
            cmd.env("DOCKER_HOST", engine);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// Starts `devenv up` in the background, stderr into a file.
    pub fn spawn_up(&self) -> Up {
        self.spawn_up_with(&[])
    }

    /// Starts `devenv up` with extra environment variables.
    pub fn spawn_up_with(&self, env: &[(&str, &str)]) -> Up {
        self.spawn(&["up"], env)
    }

    /// Starts `devenv ARGS` (an `up` with its flags) with extra environment variables.
    pub fn spawn(&self, args: &[&str], env: &[(&str, &str)]) -> Up {
        let log = self.path().join("up.log");
        let child = self
            .command(args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Up { child, log }
    }

    /// `.devenv/state.json`, parsed, when there is one.
    pub fn state(&self) -> Option<serde_json::Value> {
        let text = std::fs::read_to_string(self.path().join(".devenv/state.json")).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// The container id a docker `devenv up` recorded.
    pub fn container_id(&self) -> Option<String> {
        self.record()?["container_id"].as_str().map(str::to_owned)
    }

    /// Writes `text` to a file of the project.
    pub fn write(&self, file: &str, text: &str) {
        std::fs::write(self.path().join(file), text).unwrap();
    }

    pub fn env_file(&self) -> PathBuf {
        self.path().join(".devenv/env")
    }

    /// Waits until this `up` is ready (its own state, not one a killed `up` left) and returns
    /// the variables of `.devenv/env`.
    pub fn wait_env(&self, up: &mut Up) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let pid = u64::from(up.child.id());
        loop {
            let ready = self
                .state()
                .is_some_and(|s| s["pid"].as_u64() == Some(pid) && s["ready"] == true);
            if ready {
                break;
            }
            if let Some(status) = up.child.try_wait().unwrap() {
                panic!("devenv up exited with {status}:\n{}", up.stderr());
            }
            assert!(
                Instant::now() < deadline,
                "not ready after 90 s:\n{}",
                up.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::fs::read_to_string(self.env_file())
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
            .collect()
    }

    /// Containers carrying this project's label.
    pub fn containers(&self) -> Vec<String> {
        self.labelled(&["ps", "-aq"])
    }

    /// Volumes carrying this project's label.
    pub fn volumes(&self) -> Vec<String> {
        self.labelled(&["volume", "ls", "-q"])
    }

    fn labelled(&self, list: &[&str]) -> Vec<String> {
        let root = self.path().canonicalize().unwrap();
        let out = self
            .docker()
            .args(list)
            .args([
                "--filter",
                &format!("label=dev.devenv.root={}", root.display()),
            ])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Adds a `column text` to the users table of db/schema.sql (as a developer's edit).
    pub fn add_users_column(&self, column: &str) {
        let schema = self.path().join("db/schema.sql");
        let text = std::fs::read_to_string(&schema).unwrap();
        let edited = text.replace(
            "  email text NOT NULL,",
            &format!("  email text NOT NULL,\n  {column} text,"),
        );
        assert_ne!(text, edited, "the schema has the email column to add after");
        std::fs::write(&schema, edited).unwrap();
    }

    pub fn network_exists(&self) -> bool {
        self.docker()
            .args(["network", "inspect", &self.network])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        // Leave nothing behind even when an assertion failed: the supervisor, its server, kept
        // data (volumes, data directories), containers and the test network.
        let _ = self.command(&["down", "--volumes"]).output();
        for id in self.containers() {
            let _ = self.docker().args(["rm", "-f", &id]).output();
        }
        let _ = self
            .docker()
            .args(["network", "rm", &self.network])
            .output();
    }
}

pub struct Up {
    pub child: Child,
    pub log: PathBuf,
}

impl Drop for Up {
    /// A test that failed half-way must not leave `devenv up` (and its server) running.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = Command::new("kill")
                .args(["-INT", &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(20);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Up {
    /// Waits until this `up` of `project` is ready (`None`) or has exited (its status).
    pub fn wait_ready_or_exit(&mut self, project: &Project) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let pid = u64::from(self.child.id());
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if project
                .state()
                .is_some_and(|s| s["pid"].as_u64() == Some(pid) && s["ready"] == true)
            {
                return None;
            }
            assert!(
                Instant::now() < deadline,
                "neither ready nor exited after 90 s:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Ctrl-C, and the exit must be a success.
    pub fn stop(&mut self) {
        self.signal("INT");
        let status = self.wait();
        assert!(
            status.success(),
            "devenv up ended with {status}:\n{}",
            self.stderr()
        );
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "devenv up did not exit:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Polls `check` until it holds or `timeout` passes (without a running `up` to report).
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The stderr of a finished command.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub fn var<'a>(vars: &'a [(String, String)], name: &str) -> &'a str {
    &vars.iter().find(|(k, _)| k == name).unwrap().1
}

pub fn psql_count(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-At", url, "-c", sql])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// Whether a process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|s| s != "Z"))
        })
        .unwrap_or(false)
}

/// Polls `check` until it holds or `timeout` passes; panics with `what` and up's stderr then.
pub fn wait_until(up: &Up, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; devenv up said:\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until `column` of users answers at `url` (a reload made it).
pub fn wait_for_column(up: &Up, url: &str, column: &str) {
    wait_until(
        up,
        &format!("a reload adding {column}"),
        Duration::from_secs(20),
        || query(url, &format!("SELECT count({column}) FROM users")).is_some(),
    );
}

/// Runs one query with psql; `None` when it fails.
pub fn query(url: &str, sql: &str) -> Option<String> {
    let out = Command::new("psql")
        .args(["-X", "-At", url, "-c", sql])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
