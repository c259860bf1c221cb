//! `devenv up` end to end with the real binary, a real Docker engine and the locally built
//! PostgreSQL 13 image (`scripts/build-test-image.sh`; name in DEVENV_TEST_IMAGE, default
//! `devenv-test/postgres:13`). Each test works on its own temp copy of the example project,
//! with its own Docker network and a free port.
//!
//! Without a Docker engine these tests fail with a message; `DEVENV_SKIP_DOCKER_TESTS=1` is the
//! only way to skip them, and CI never sets it.

mod support;

use std::net::TcpListener;
use std::process::Command;
use std::time::Instant;

use support::{docker_ready, psql_count, test_image, var, Project};

#[test]
fn up_loads_exports_reaches_the_network_and_cleans_up_on_sigint() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL");
    assert!(
        url.starts_with("postgresql://postgres:password@127.0.0.1:"),
        "{url}"
    );
    assert_eq!(var(&vars, "DATABASE_URL"), url);
    assert_eq!(
        var(&vars, "COMPOSE_CONNECTION_URL"),
        "postgresql://postgres:password@db:5432/cruddur"
    );
    assert_eq!(psql_count(url, "SELECT count(*) FROM users"), "3");
    assert_eq!(psql_count(url, "SELECT count(*) FROM activities"), "1");

    // The port is published on 127.0.0.1 only.
    let ports = Command::new("docker")
        .args([
            "ps",
            "--format",
            "{{.Ports}}",
            "--filter",
            &format!("network={}", project.network),
        ])
        .output()
        .unwrap();
    let ports = String::from_utf8_lossy(&ports.stdout);
    assert!(ports.starts_with("127.0.0.1:"), "{ports}");

    // A container on the same network reaches it as db:5432.
    let out = Command::new("docker")
        .args([
            "run",
            "--rm",
            "--network",
            &project.network,
            "--entrypoint",
            "psql",
            &test_image(),
        ])
        .args([
            "-X",
            "-At",
            var(&vars, "COMPOSE_CONNECTION_URL"),
            "-c",
            "SELECT count(*) FROM users",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "3",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // `devenv env` prints shell lines that eval can use; status sees it running.
    let env = project.run(&["env"]);
    assert!(
        String::from_utf8_lossy(&env.stdout).contains(&format!("export CONNECTION_URL='{url}'"))
    );
    let status = project.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["running"], true);
    assert_eq!(status["backend"], "docker");

    // The summary masks the password. A first start builds a new database and keeps no
    // snapshot of anything (the image made no database of its own).
    let stderr = up.stderr();
    assert!(
        stderr.contains("(a new database)") && !stderr.contains("is snapshot"),
        "{stderr}"
    );
    assert!(
        stderr.contains("CONNECTION_URL=postgresql://postgres:****@127.0.0.1:"),
        "{stderr}"
    );
    assert!(!stderr.contains(":password@"), "{stderr}");

    up.stop();
    assert!(
        project.containers().is_empty(),
        "container left after SIGINT"
    );
    assert!(
        project.network_exists(),
        "the network is kept with the data (compose services declare it external)"
    );
    assert!(!project.env_file().exists());
    let down = project.run(&["down", "--volumes"]);
    assert!(down.status.success());
    assert!(
        !project.network_exists(),
        "down --volumes left the network devenv created"
    );
}

#[test]
fn broken_schema_reports_path_line_col_and_leaves_nothing() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let schema = project.path().join("db/schema.sql");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(
        &schema,
        text.replace(
            "  handle text NOT NULL UNIQUE,",
            "  handle txet NOT NULL UNIQUE,",
        ),
    )
    .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains("handle text"))
        .unwrap()
        + 1;
    let out = project.run(&["up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "db/schema.sql:{line}:10: error: type \"txet\" does not exist [42704]"
        )),
        "{stderr}"
    );
    assert!(
        project.containers().is_empty(),
        "container left after a SQL error"
    );
    assert!(!project.env_file().exists());
}

#[test]
fn taken_port_is_one_clear_error() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let out = project
        .command(&["up"])
        .env("DEVENV_PORT", &port)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(&format!("port {port} on 127.0.0.1 is already in use"))
            && stderr.contains("`port:`"),
        "{stderr}"
    );
    assert!(project.containers().is_empty());
}

#[test]
fn missing_image_and_missing_engine_are_clear_errors() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let out = project
        .command(&["up"])
        .env("DEVENV_IMAGE", "devenv-test/no-such-image:0")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains("image devenv-test/no-such-image:0 is not present and could not be pulled")
            && stderr.contains("`image:`"),
        "{stderr}"
    );

    let out = project
        .command(&["up"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(
        stderr.contains(
            "no Docker engine answered (tried DOCKER_HOST=unix:///nonexistent/docker.sock)"
        ),
        "{stderr}"
    );
}

#[test]
fn down_after_kill_9_removes_what_up_left() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    up.signal("KILL");
    up.wait();
    assert_eq!(
        project.containers().len(),
        1,
        "kill -9 leaves the container"
    );
    let status = project.run(&["status"]);
    assert!(String::from_utf8_lossy(&status.stderr).contains("not running"));
    let out = project.run(&["down"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(project.containers().is_empty(), "down left the container");
    assert!(
        project.network_exists(),
        "the network is kept with the data"
    );
    assert!(!project.env_file().exists());
    assert!(project.run(&["down", "--volumes"]).status.success());
    assert!(
        !project.network_exists(),
        "down --volumes left the network devenv created"
    );
}

/// `devenv down` from another terminal stops a running `devenv up`, which cleans up after
/// itself and exits 0. (Here `up` is our child, so it stays a zombie until we reap it: `down`
/// must not mistake that for a live process.)
#[test]
fn down_stops_a_running_up() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let started = Instant::now();
    let out = project.run(&["down"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("devenv down took {:?}", started.elapsed());
    assert!(up.wait().success(), "{}", up.stderr());
    assert!(up
        .stderr()
        .contains("devenv: stopped, nothing left running"));
    assert!(project.containers().is_empty());
    assert!(!project.env_file().exists());
}
