//! Beyond one engine and one version, end to end with the real binary:
//!
//! - the pinned Docker client (bollard through testcontainers, locked in Cargo.lock) against
//!   Docker 20.10, the engine `scripts/ensure-docker.sh` installs: a client that stops speaking
//!   to it fails here, loudly, and `doctor` reports the engine's API version range;
//! - an engine on TCP at a loopback address other than 127.0.0.1 (rootful Podman's
//!   `podman system service tcp:127.0.0.2:23750`, started by `scripts/ensure-podman.sh`;
//!   `DEVENV_PODMAN_TCP`): the URLs, the published port, `status`, `snapshot` and the fixture
//!   use the engine's address, and `doctor` says which engine answered;
//! - PostgreSQL 18 (`scripts/build-test-image.sh 18`) with its data on XFS with reflink
//!   (`scripts/ensure-reflink-fs.sh`, `DEVENV_REFLINK_DIR`): snapshots and the fixture's
//!   copies share the template's blocks (`file_copy_method = clone`); on a tmpfs they copy,
//!   silently.
//!
//! Podman's own run of the docker tests (up, reload, the fixture, snapshots, kept data,
//! `down -v`, `down` after `kill -9`, `db` on the network) is `scripts/test` running those
//! test binaries with `DOCKER_HOST` at Podman's socket.
//!
//! Without an engine or image these tests fail with a message; `DEVENV_SKIP_DOCKER_TESTS=1`
//! is the only way to skip them, and CI never sets it.

mod support;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::reflink::{create_bound_volume, reflink_dir};
use support::{engine_ready, psql_count, stderr, var, Project};

/// Docker 20.10's socket, whatever DOCKER_HOST says (the Podman runs of the suite set it).
const DOCKER_20_10: &str = "unix:///var/run/docker.sock";

/// The version of `package` in Cargo.lock.
fn locked_version(package: &str) -> String {
    let lock = include_str!("../Cargo.lock");
    let entry = format!("name = \"{package}\"\nversion = \"");
    let at = lock.find(&entry).expect("the package is locked") + entry.len();
    lock[at..].split('"').next().unwrap().to_owned()
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// The `docker engine` check of `devenv doctor --json`.
fn doctor_engine_detail(project: &Project) -> String {
    let doctor = json(&project.run(&["doctor", "--json"]));
    doctor["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "docker engine")
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_else(|| panic!("no docker engine check: {doctor}"))
        .to_owned()
}

/// bollard up to 0.21 sends no API version in its requests (every engine takes them); 0.22
/// pins one (1.52) that Docker 20.10 (API up to 1.41) refuses. This test talks to 20.10
/// through exactly what devenv links, and says so when that stops working.
#[test]
fn the_pinned_docker_client_speaks_to_docker_20_10_and_doctor_shows_its_api_range() {
    let mut project = Project::new();
    project.engine = Some(DOCKER_20_10.to_owned());
    if !engine_ready(
        Some(DOCKER_20_10),
        &support::test_image(),
        "scripts/ensure-docker.sh and scripts/build-test-image.sh",
    ) {
        return;
    }
    let out = project
        .docker()
        .args([
            "version",
            "--format",
            "{{.Server.Version}} {{.Server.MinAPIVersion}} {{.Server.APIVersion}}",
        ])
        .output()
        .unwrap();
    let server = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let fields: Vec<&str> = server.split(' ').collect();
    assert!(
        fields.len() == 3 && fields[0].starts_with("20.10.") && fields[2] == "1.41",
        "this test pins the client against Docker 20.10 (API 1.41), Debian bookworm's docker.io \
         that scripts/ensure-docker.sh installs; the engine at {DOCKER_20_10} is `{server}` {}",
        stderr(&out)
    );
    let (bollard, testcontainers) = (locked_version("bollard"), locked_version("testcontainers"));
    let up = project.run(&["up", "-d"]);
    assert!(
        up.status.success(),
        "the pinned Docker client (bollard {bollard} through testcontainers {testcontainers}, \
         locked in Cargo.lock) no longer speaks to Docker {} (API {} to {}): `devenv up -d` \
         failed. bollard 0.22 and later pin API 1.52 in every request, which 20.10 refuses \
         (\"client version 1.52 is too new\"): keep the pair locked, or negotiate the version \
         down. devenv said:\n{}",
        fields[0],
        fields[1],
        fields[2],
        stderr(&up)
    );
    let env = project.run(&["env", "--format", "json"]);
    let url = json(&env)["CONNECTION_URL"].as_str().unwrap().to_owned();
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    let detail = doctor_engine_detail(&project);
    assert!(
        detail.starts_with(&format!(
            "Docker Engine {} (API {} to {}) answered at {DOCKER_20_10}; ports are published on 127.0.0.1",
            fields[0], fields[1], fields[2]
        )),
        "{detail}"
    );
    let down = project.run(&["down", "--volumes"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(project.containers().is_empty());
}

/// The TCP address of the loopback engine (`scripts/ensure-podman.sh`).
fn tcp_engine() -> String {
    format!(
        "tcp://{}",
        std::env::var("DEVENV_PODMAN_TCP").unwrap_or_else(|_| "127.0.0.2:23750".into())
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_on_tcp_at_a_loopback_address_is_reached_at_that_address() {
    let engine = tcp_engine();
    if !engine_ready(
        Some(&engine),
        &support::test_image(),
        "scripts/ensure-podman.sh",
    ) {
        return;
    }
    let host = engine
        .trim_start_matches("tcp://")
        .rsplit_once(':')
        .unwrap()
        .0
        .to_owned();
    assert_ne!(
        host, "127.0.0.1",
        "the test needs another address than the default"
    );
    let mut project = Project::new();
    project.engine = Some(engine.clone());
    // The fixture reads devenv.yaml; the supervisor takes the image from DEVENV_IMAGE.
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL");
    assert!(
        url.starts_with(&format!("postgresql://postgres:password@{host}:")),
        "{url}"
    );
    assert_eq!(psql_count(url, "SELECT count(*) FROM users"), "3");
    let port: u16 = url
        .rsplit_once(':')
        .unwrap()
        .1
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();

    // Published on the engine's loopback address only, not on 127.0.0.1 nor everywhere.
    let ports = project
        .docker()
        .args(["port", &project.container_id().unwrap(), "5432/tcp"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ports.stdout).trim(),
        format!("{host}:{port}"),
        "{}",
        stderr(&ports)
    );
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port answers on 127.0.0.1 too"
    );

    // Everything that finds the running server finds it there.
    let status = project.run(&["status"]);
    assert!(
        stderr(&status).contains(&format!("on {host}:{port}")),
        "{}",
        stderr(&status)
    );
    let saved = project.run(&["snapshot", "save", "on-tcp"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    let list = json(&project.run(&["snapshot", "list", "--json"]));
    assert!(list.to_string().contains("\"on-tcp\""), "{list}");
    let db = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        db.config().get_hosts(),
        [tokio_postgres::config::Host::Tcp(host.clone())]
    );
    assert_eq!(
        db.query_json_array("SELECT handle FROM users", &[])
            .await
            .unwrap()
            .as_array()
            .map(Vec::len),
        Some(3)
    );
    drop(db);

    // doctor says which engine answered, where, and where its ports go.
    let detail = doctor_engine_detail(&project);
    assert!(
        detail.contains(&format!(
            "answered at {engine}; ports are published on {host}"
        )) && detail.contains("(API "),
        "{detail}"
    );
    up.stop();
    assert!(project.containers().is_empty());
    assert!(project.run(&["down", "--volumes"]).status.success());
}

fn pg18_image() -> String {
    std::env::var("DEVENV_TEST_IMAGE_18").unwrap_or_else(|_| "devenv-test/postgres:18".into())
}

/// Whether any extent of `file` shares its blocks with another file (`filefrag -v` flags).
fn shares_blocks(file: &Path) -> bool {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(file)
        .output()
        .unwrap();
    assert!(out.status.success(), "filefrag: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l.trim_start().starts_with(char::is_numeric) && l.contains("shared"))
}

/// The data file of table `users` in database `database`, under the data directory `data`.
fn users_file(admin_url: &str, data: &Path, database: &str) -> PathBuf {
    let oid = psql_count(
        admin_url,
        &format!("SELECT oid FROM pg_database WHERE datname = '{database}'"),
    );
    let base = admin_url.rsplit_once('/').unwrap().0;
    let filenode = psql_count(
        &format!("{base}/{database}"),
        "SELECT pg_relation_filenode('users')",
    );
    data.join("base").join(oid).join(filenode)
}

#[tokio::test(flavor = "multi_thread")]
async fn pg18_copies_share_blocks_on_a_reflink_filesystem() {
    let image = pg18_image();
    if !engine_ready(
        None,
        &image,
        "scripts/ensure-docker.sh and scripts/build-test-image.sh 18",
    ) {
        return;
    }
    let project = Project::new();
    // The kept data's volume is a directory on the reflink filesystem: made here before `up`
    // (which then finds it under its name), with devenv's labels so `down -v` removes it.
    let data = tempfile::Builder::new()
        .prefix("devenv-pg18-")
        .tempdir_in(reflink_dir())
        .unwrap();
    let core = devenv_core::Project::open(project.path()).unwrap();
    let identity = core.up_identity();
    create_bound_volume(
        project.docker(),
        &identity.volume_name(),
        data.path(),
        &identity.labels(),
    );

    let mut up = project.spawn_up_with(&[("DEVENV_IMAGE", image.as_str())]);
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    let admin = format!("{}/postgres", url.rsplit_once('/').unwrap().0);
    assert!(
        psql_count(&admin, "SHOW server_version_num").starts_with("18"),
        "the PostgreSQL 18 image"
    );
    let live = users_file(&admin, data.path(), "cruddur");
    assert!(
        !shares_blocks(&live),
        "users, loaded into the live database, shares no blocks yet: {}",
        live.display()
    );

    // A snapshot is a clone: its users file shares the live one's blocks.
    let saved = project.run(&["snapshot", "save", "cow"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    let list = json(&project.run(&["snapshot", "list", "--json"]));
    let snapshot = list
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cow")
        .and_then(|s| s["database"].as_str())
        .unwrap_or_else(|| panic!("{list}"))
        .to_owned();
    let oid = psql_count(
        &admin,
        &format!("SELECT oid FROM pg_database WHERE datname = '{snapshot}'"),
    );
    // A FILE_COPY copy keeps its template's file numbers (a snapshot takes no connections).
    let copy = data
        .path()
        .join("base")
        .join(oid)
        .join(live.file_name().unwrap());
    assert!(
        shares_blocks(&copy),
        "the snapshot copied: {}",
        copy.display()
    );

    // The fixture on this `up`: a test database shares its template's blocks.
    let db = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let test_file = users_file(&admin, data.path(), db.name());
    assert!(
        shares_blocks(&test_file),
        "the test database copied: {}",
        test_file.display()
    );
    drop(db);
    up.stop();
    assert!(project.run(&["down", "--volumes"]).status.success());
    assert!(project.volumes().is_empty(), "down -v left the volume");
}

/// On a tmpfs (throw-away data) nothing clones, and nothing says so.
#[test]
fn pg18_copies_on_a_tmpfs_copy_silently() {
    let image = pg18_image();
    if !engine_ready(
        None,
        &image,
        "scripts/ensure-docker.sh and scripts/build-test-image.sh 18",
    ) {
        return;
    }
    let tmpfs = Project::new();
    let mut up = tmpfs.spawn_up_with(&[
        ("DEVENV_IMAGE", image.as_str()),
        ("DEVENV_PERSIST", "false"),
    ]);
    tmpfs.wait_env(&mut up);
    let saved = tmpfs.run(&["snapshot", "save", "plain"]);
    assert!(saved.status.success(), "{}", stderr(&saved));
    assert!(
        stderr(&saved)
            .lines()
            .all(|l| !l.contains("file_copy_method")),
        "{}",
        stderr(&saved)
    );
    let restored = tmpfs.run(&["snapshot", "restore", "plain"]);
    assert!(restored.status.success(), "{}", stderr(&restored));
    up.stop();
}
