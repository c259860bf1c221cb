//! An engine restart under `up` (#25): named as such, `status` and `down` say the engine does
//! not answer instead of "nothing was running", and `down` removes the stopped container once
//! the engine is back; the kept data is reused by the next `up`.
//!
//! The engine restarted is a private `dockerd` of this test (its own data root, socket and
//! bridge, the test image loaded into it), so no other test's containers are touched. It needs
//! root and Debian's `docker.io` (`scripts/ensure-docker.sh` installs it).

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{docker_ready, eventually, psql_count, stderr, var, Project};

/// A private Docker engine on a socket of its own.
struct Engine {
    dir: tempfile::TempDir,
    bridge: String,
    daemon: Option<std::process::Child>,
}

impl Engine {
    fn start() -> Engine {
        let dir = tempfile::Builder::new()
            .prefix("devenv-engine-")
            .tempdir()
            .unwrap();
        let bridge = format!("dvbr{}", std::process::id() % 100_000);
        let ip = |args: &[&str]| {
            let out = Command::new("ip").args(args).output().unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        };
        let _ = Command::new("ip").args(["link", "del", &bridge]).output();
        ip(&["link", "add", "name", &bridge, "type", "bridge"]);
        let third = std::process::id() % 200 + 20;
        ip(&[
            "addr",
            "add",
            &format!("172.30.{third}.1/24"),
            "dev",
            &bridge,
        ]);
        ip(&["link", "set", &bridge, "up"]);
        let mut engine = Engine {
            dir,
            bridge,
            daemon: None,
        };
        engine.run_daemon();
        // The test image, from the machine's engine.
        let mut save = Command::new("docker")
            .args(["save", &support::test_image()])
            .env_remove("DOCKER_HOST")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let load = Command::new("docker")
            .arg("load")
            .env("DOCKER_HOST", engine.host())
            .stdin(save.stdout.take().unwrap())
            .output()
            .unwrap();
        assert!(save.wait().unwrap().success());
        assert!(load.status.success(), "{}", stderr(&load));
        engine
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path("docker.sock").display())
    }

    fn run_daemon(&mut self) {
        let log = std::fs::File::create(self.path("dockerd.log")).unwrap();
        let daemon = Command::new("/usr/sbin/dockerd")
            .arg("--data-root")
            .arg(self.path("root"))
            .arg("--exec-root")
            .arg(self.path("exec"))
            .arg("--pidfile")
            .arg(self.path("dockerd.pid"))
            .args(["-H", &self.host(), "--bridge", &self.bridge])
            .args(["--iptables=false", "--ip-masq=false"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("dockerd (Debian's docker.io; scripts/ensure-docker.sh installs it)");
        self.daemon = Some(daemon);
        eventually("the private engine", Duration::from_secs(60), || {
            self.answers()
        });
    }

    fn answers(&self) -> bool {
        Command::new("docker")
            .arg("info")
            .env("DOCKER_HOST", self.host())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Stops the daemon as a restart does (its containers stop with it).
    fn stop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &daemon.id().to_string()])
                .status();
            let _ = daemon.wait();
        }
    }

    fn docker(&self, args: &[&str]) -> String {
        let out = Command::new("docker")
            .args(args)
            .env("DOCKER_HOST", self.host())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.daemon.is_some() {
            for id in self.docker(&["ps", "-aq"]).lines() {
                self.docker(&["rm", "-f", id]);
            }
            for volume in self.docker(&["volume", "ls", "-q"]).lines() {
                self.docker(&["volume", "rm", "-f", volume]);
            }
        }
        self.stop();
        let _ = Command::new("umount")
            .arg("-R")
            .arg(self.path("root"))
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .output();
        let _ = std::fs::remove_dir_all(self.path("root"));
    }
}

fn on(engine: &Engine, project: &Project, args: &[&str]) -> std::process::Output {
    project
        .command(args)
        .env("DOCKER_HOST", engine.host())
        .output()
        .unwrap()
}

fn wait_exit(up: &mut support::Up, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "devenv up did not notice:\n{}",
            up.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_engine_restart_under_up_is_named_and_down_removes_the_container_once_it_is_back() {
    if !docker_ready() {
        return;
    }
    assert!(
        Path::new("/usr/sbin/dockerd").exists(),
        "this test runs a private dockerd (Debian's docker.io)"
    );
    let mut engine = Engine::start();
    let project = Project::new();
    let mut up = project.spawn_up_with(&[("DOCKER_HOST", &engine.host())]);
    let url = var(&project.wait_env(&mut up), "CONNECTION_URL").to_owned();
    psql_count(
        &url,
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('Typed', 'typed', 'typed@example.com', 'MOCK')",
    );
    engine.stop();
    let status = wait_exit(&mut up, Duration::from_secs(60));
    assert_eq!(status.code(), Some(4), "{}", up.stderr());
    let said = up.stderr();
    assert!(said.contains("the Docker engine stopped"), "{said}");
    assert!(!said.contains("the container was removed"), "{said}");
    assert!(
        said.contains("`devenv down` removes it once the engine is back"),
        "{said}"
    );

    // While the engine is away: status and down say so.
    let status = on(&engine, &project, &["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(json["running"], false);
    assert_eq!(json["data"]["kept"], serde_json::Value::Null, "{json}");
    assert!(json["stale_pid"].is_u64(), "{json}");
    let text = on(&engine, &project, &["status"]);
    assert!(
        stderr(&text).contains("the Docker engine does not answer"),
        "{}",
        stderr(&text)
    );
    let down = on(&engine, &project, &["down"]);
    assert_eq!(down.status.code(), Some(4), "{}", stderr(&down));
    assert!(
        stderr(&down).contains("no Docker engine answered")
            && !stderr(&down).contains("nothing was running"),
        "{}",
        stderr(&down)
    );

    // The engine is back: down removes the stopped container; the data stays for the next up.
    engine.run_daemon();
    let containers = engine.docker(&["ps", "-aq", "--filter", "label=dev.devenv.managed=true"]);
    assert!(
        !containers.is_empty(),
        "the engine brought the container back stopped"
    );
    let down = on(&engine, &project, &["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert_eq!(
        engine.docker(&["ps", "-aq", "--filter", "label=dev.devenv.managed=true"]),
        "",
        "{}",
        stderr(&down)
    );
    let mut up = project.spawn_up_with(&[("DOCKER_HOST", &engine.host())]);
    let url = var(&project.wait_env(&mut up), "CONNECTION_URL").to_owned();
    assert_eq!(
        psql_count(&url, "SELECT count(*) FROM users WHERE handle = 'typed'"),
        "1"
    );
    up.stop();
    let down = on(&engine, &project, &["down", "--volumes"]);
    assert!(down.status.success(), "{}", stderr(&down));
}
