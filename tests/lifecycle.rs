//! A lifecycle that checks the world (#9): stale pids, racing `up`s, dead servers, SIGKILL at
//! any moment of start-up, replaced watched directories, Ctrl-C and `down` during start-up, and
//! the small things. Each test is named after the failure it pins.

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    docker_ready, eventually, process_alive, psql_count, stderr, var, wait_for_column, wait_until,
    Project,
};

/// A schema that takes a while to load (to act during the load).
fn slow_schema(project: &Project, seconds: u32) {
    let schema = std::fs::read_to_string(project.path().join("db/schema.sql")).unwrap();
    project.write(
        "db/schema.sql",
        &format!("SELECT pg_sleep({seconds});\n{schema}"),
    );
}

/// Postmasters whose data directory is under `dir` (checked against the world).
fn postmasters_under(dir: &std::path::Path) -> Vec<u32> {
    let out = Command::new("sh")
        .arg("-c")
        .arg("for p in /proc/[0-9]*; do readlink \"$p/cwd\" 2>/dev/null | sed \"s|^|${p#/proc/} |\"; done")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, cwd)| std::path::Path::new(cwd).starts_with(dir))
        .filter_map(|(pid, _)| pid.parse().ok())
        .filter(|pid| process_alive(*pid))
        .collect()
}

/// A `sleep` process: a pid that is alive and is not devenv's.
struct Bystander(std::process::Child);

impl Bystander {
    fn new() -> Self {
        Bystander(Command::new("sleep").arg("300").spawn().unwrap())
    }
    fn pid(&self) -> u32 {
        self.0.id()
    }
    fn alive(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(None))
    }
}

impl Drop for Bystander {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn stale_pids_in_the_record_are_never_signalled() {
    let project = Project::native();
    let mut bystander = Bystander::new();
    let pid = bystander.pid();
    // A record as a crashed `up` would leave it after a reboot, whose pids now belong to
    // others: the supervisor's, the lock file's, a data directory's postmaster.pid.
    let fake_data = project.path().join("fake-pgdata");
    std::fs::create_dir_all(&fake_data).unwrap();
    std::fs::write(fake_data.join("postmaster.pid"), format!("{pid}\n")).unwrap();
    std::fs::create_dir_all(project.path().join(".devenv")).unwrap();
    project.write(".devenv/lock", &format!("{pid}\nup\n0\n"));
    project.write(
        ".devenv/state.json",
        &serde_json::json!({
            "pid": pid, "started_at": 0, "detached": false, "ready": true,
            "server": {"backend": "native", "data_dir": fake_data,
                       "socket_dir": "/nonexistent/devenv-sock", "log": "/nonexistent/log",
                       "data_root": null, "ephemeral": false},
            "port": 1, "database": "x", "env": []
        })
        .to_string(),
    );
    let reload = project.run(&["reload"]);
    assert_eq!(reload.status.code(), Some(1), "{}", stderr(&reload));
    assert!(
        stderr(&reload).contains("no `devenv up` runs"),
        "{}",
        stderr(&reload)
    );
    let status = project.run(&["status"]);
    assert_eq!(status.status.code(), Some(1), "{}", stderr(&status));
    assert!(
        stderr(&status).contains("not running"),
        "{}",
        stderr(&status)
    );
    let down = project.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(bystander.alive(), "down signalled a stranger");
    // Again for `up`: the record is recognised as stale, reported, cleaned; up starts.
    project.write(".devenv/lock", &format!("{pid}\nup\n0\n"));
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    up.stop();
    assert!(bystander.alive(), "up signalled a stranger");
}

#[test]
fn a_second_up_of_the_same_project_fails_at_once_naming_the_first() {
    let project = Project::native();
    let mut first = project.spawn_up();
    let vars = project.wait_env(&mut first);
    let started = Instant::now();
    let second = project.run(&["up"]);
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    assert!(started.elapsed() < Duration::from_secs(5));
    let said = stderr(&second);
    assert!(
        said.contains("already runs for this project")
            && said.contains(&format!("pid {}", first.child.id())),
        "{said}"
    );
    // The first is untouched.
    assert_eq!(
        psql_count(var(&vars, "CONNECTION_URL"), "SELECT count(*) FROM users"),
        "3"
    );
    first.stop();
}

#[test]
fn two_ups_of_one_project_started_together_give_one_and_a_clear_error() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut a = project.spawn_up();
    let mut b = project.spawn_up();
    let (status_a, _) = loop {
        let done_a = a.child.try_wait().unwrap();
        let done_b = b.child.try_wait().unwrap();
        if done_a.is_some() || done_b.is_some() {
            break (done_a, done_b);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (loser, winner) = if status_a.is_some() { (a, b) } else { (b, a) };
    let mut loser = loser;
    let mut winner = winner;
    let code = loser.wait().code();
    assert_eq!(code, Some(4), "the second fails as an environment error");
    project.wait_env(&mut winner);
    assert!(winner.child.try_wait().unwrap().is_none(), "the first runs");
    winner.stop();
    // Nothing is left that blocks the next start: no duplicate network, no container.
    let mut again = project.spawn_up();
    project.wait_env(&mut again);
    again.stop();
}

/// Two starts on one network name racing to create it make one network, never an ambiguous
/// name; since #25 only one project answers as `db` there, so the other is refused (naming
/// the first) instead of coming up beside it.
#[test]
fn two_projects_on_one_network_name_started_together_make_one_network_and_one_db() {
    if !docker_ready() {
        return;
    }
    let one = Project::new();
    let mut two = Project::new();
    two.network.clone_from(&one.network);
    let mut up_one = one.spawn_up();
    let mut up_two = two.spawn_up();
    let (status_one, status_two) = (
        up_one.wait_ready_or_exit(&one),
        up_two.wait_ready_or_exit(&two),
    );
    let (winner, mut up_winner, loser_said) = match (status_one, status_two) {
        (None, Some(status)) => {
            assert_eq!(status.code(), Some(4), "{}", up_two.stderr());
            (&one, up_one, up_two.stderr())
        }
        (Some(status), None) => {
            assert_eq!(status.code(), Some(4), "{}", up_one.stderr());
            (&two, up_two, up_one.stderr())
        }
        _ => panic!(
            "exactly one comes up:\n{}\n{}",
            up_one.stderr(),
            up_two.stderr()
        ),
    };
    assert!(
        loser_said.contains("already answers as `db`") && !loser_said.contains("ambiguous"),
        "{loser_said}"
    );
    let vars = winner.wait_env(&mut up_winner);
    assert_eq!(
        psql_count(var(&vars, "CONNECTION_URL"), "SELECT count(*) FROM users"),
        "3"
    );
    let nets = Command::new("docker")
        .args([
            "network",
            "ls",
            "-q",
            "--filter",
            &format!("name=^{}$", one.network),
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&nets.stdout).lines().count(),
        1,
        "one network of that name"
    );
    up_winner.signal("INT");
    assert!(up_winner.wait().success(), "{}", up_winner.stderr());
    assert!(one.network_exists(), "the network is kept with the data");
    assert!(winner.run(&["down", "--volumes"]).status.success());
    assert!(
        !one.network_exists(),
        "the unused network goes with the data"
    );
}

#[test]
fn a_killed_container_under_up_is_noticed() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let id = project.container_id().expect("recorded container");
    let kill = Command::new("docker").args(["kill", &id]).output().unwrap();
    assert!(kill.status.success());
    let status = up.wait();
    assert_eq!(status.code(), Some(4), "{}", up.stderr());
    assert!(
        up.stderr().contains("the server stopped under devenv up"),
        "{}",
        up.stderr()
    );
    // status and env tell the truth.
    assert_eq!(project.run(&["status"]).status.code(), Some(1));
    assert_eq!(project.run(&["env"]).status.code(), Some(1));
}

#[test]
fn a_killed_postmaster_under_up_is_noticed() {
    let project = Project::native();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let postmaster = project.server_pid().unwrap();
    Command::new("kill")
        .args(["-KILL", &postmaster.to_string()])
        .status()
        .unwrap();
    let started = Instant::now();
    let status = up.wait();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(4), "{}", up.stderr());
    assert!(
        up.stderr().contains("the server stopped under devenv up"),
        "{}",
        up.stderr()
    );
    assert_eq!(project.run(&["status"]).status.code(), Some(1));
    assert_eq!(project.run(&["env"]).status.code(), Some(1));
    // The data is kept: the next `up` starts it again and postgres recovers it.
    let mut again = project.spawn_up();
    let vars = project.wait_env(&mut again);
    assert!(again.stderr().contains("reusing"), "{}", again.stderr());
    assert_eq!(
        psql_count(var(&vars, "CONNECTION_URL"), "SELECT count(*) FROM users"),
        "3"
    );
    again.stop();
}

/// When during start-up `up` is killed.
#[derive(Debug, Clone, Copy)]
enum Moment {
    /// As soon as the record exists.
    Recorded,
    /// Once the server has an id (container) or a postmaster.pid (native).
    ServerCreated,
    /// During the load.
    Loading,
}

fn kill_at(project: &Project, moment: Moment) {
    let mut up = project.spawn_up_with(&[("DEVENV_PERSIST", "false")]);
    let deadline = Duration::from_secs(60);
    match moment {
        Moment::Recorded => wait_until(&up, "the record", deadline, || project.record().is_some()),
        Moment::ServerCreated => wait_until(&up, "the server", deadline, || {
            project.container_id().is_some() || project.server_pid().is_some()
        }),
        Moment::Loading => {
            wait_until(&up, "the server", deadline, || {
                project.container_id().is_some() || project.server_pid().is_some()
            });
            std::thread::sleep(Duration::from_millis(1500));
        }
    }
    up.signal("KILL");
    up.wait();
    let data = project.data_dir();
    let down = project.run(&["down"]);
    assert!(down.status.success(), "{moment:?}: {}", stderr(&down));
    assert!(
        project.containers().is_empty(),
        "{moment:?}: a container is left"
    );
    if project.network_exists() {
        let inspect = Command::new("docker")
            .args(["network", "inspect", &project.network])
            .output()
            .unwrap();
        panic!(
            "{moment:?}: the network is left; down said: {}\n{}\nup said: {}",
            stderr(&down),
            String::from_utf8_lossy(&inspect.stdout),
            up.stderr()
        );
    }
    assert!(project.state().is_none(), "{moment:?}: the record is left");
    if let Some(data) = data {
        let root = data.parent().unwrap().to_path_buf();
        assert!(
            postmasters_under(&root).is_empty(),
            "{moment:?}: a postmaster is left"
        );
        assert!(
            !root.exists(),
            "{moment:?}: the throw-away cluster {} is left",
            root.display()
        );
    }
}

#[test]
fn sigkill_at_any_moment_of_start_up_then_down_leaves_nothing_native() {
    let project = Project::native();
    slow_schema(&project, 3);
    for moment in [Moment::Recorded, Moment::ServerCreated, Moment::Loading] {
        kill_at(&project, moment);
    }
}

#[test]
fn sigkill_at_any_moment_of_start_up_then_down_leaves_nothing_docker() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    slow_schema(&project, 3);
    for moment in [Moment::Recorded, Moment::ServerCreated, Moment::Loading] {
        kill_at(&project, moment);
    }
}

#[test]
fn watched_directories_removed_and_recreated_or_moved_back_are_watched_again() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    let db = project.path().join("db");
    let copy = project.path().join("db-copy");
    // `rm -rf db && cp -r`, as a checkout does.
    Command::new("cp")
        .arg("-r")
        .arg(&db)
        .arg(&copy)
        .status()
        .unwrap();
    std::fs::remove_dir_all(&db).unwrap();
    Command::new("cp")
        .arg("-r")
        .arg(&copy)
        .arg(&db)
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    project.add_users_column("bio");
    wait_for_column(&up, &url, "bio");
    // Moved away and back, as `git stash` can.
    let away = project.path().join("db-away");
    std::fs::rename(&db, &away).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::rename(&away, &db).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    project.add_users_column("motto");
    wait_for_column(&up, &url, "motto");
    up.stop();
}

/// Starts an `up` whose load takes 30 s and waits until the load runs; returns it and the
/// directory of its throw-away cluster.
fn up_in_the_middle_of_a_long_load(project: &Project) -> (support::Up, std::path::PathBuf) {
    slow_schema(project, 30);
    let up = project.spawn_up_with(&[("DEVENV_PERSIST", "false")]);
    wait_until(&up, "the server", Duration::from_secs(60), || {
        project.server_pid().is_some()
    });
    let root = project.data_dir().unwrap().parent().unwrap().to_path_buf();
    std::thread::sleep(Duration::from_millis(800));
    (up, root)
}

#[test]
fn ctrl_c_during_the_load_stops_promptly_and_leaves_nothing() {
    let project = Project::native();
    let (mut up, root) = up_in_the_middle_of_a_long_load(&project);
    let asked = Instant::now();
    up.signal("INT");
    let status = up.wait();
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "took {:?}",
        asked.elapsed()
    );
    assert!(!status.success());
    assert!(!up.stderr().contains("ready in"), "{}", up.stderr());
    assert!(postmasters_under(&root).is_empty(), "postgres left");
    assert!(project.state().is_none());
}

#[test]
fn down_during_start_up_stops_it_promptly_and_leaves_nothing() {
    let project = Project::native();
    let (mut up, root) = up_in_the_middle_of_a_long_load(&project);
    let asked = Instant::now();
    let down = project.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "took {:?}",
        asked.elapsed()
    );
    assert!(
        stderr(&down).contains("stopping devenv up"),
        "{}",
        stderr(&down)
    );
    up.wait();
    assert!(
        !up.stderr().contains("db/schema.sql:1:1"),
        "{}",
        up.stderr()
    );
    assert!(postmasters_under(&root).is_empty(), "postgres left");
}

#[test]
fn a_database_name_over_63_bytes_is_a_config_error_before_anything_starts() {
    let project = Project::native();
    let long = "x".repeat(64);
    let out = project
        .command(&["up"])
        .env("DEVENV_DATABASE", &long)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("longer than PostgreSQL's 63 bytes"),
        "{}",
        stderr(&out)
    );
    assert!(project.state().is_none());
}

#[test]
fn a_missing_project_directory_is_named() {
    let out = Command::new(support::BIN)
        .args(["-C", "/nonexistent/devenv-project", "up"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("project directory /nonexistent/devenv-project does not exist"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_project_path_with_a_comma_runs_natively() {
    let project = Project::native();
    let odd = project.path().join("with,comma");
    std::fs::create_dir_all(odd.join("db")).unwrap();
    for f in ["db/schema.sql", "db/seed.sql", "devenv.yaml"] {
        std::fs::copy(project.path().join(f), odd.join(f)).unwrap();
    }
    let mut up = Command::new(support::BIN)
        .args(["up"])
        .current_dir(&odd)
        .env("DEVENV_BACKEND", "native")
        .env("DEVENV_PORT", "0")
        .env("DEVENV_PERSIST", "false")
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    eventually("the comma project's env", Duration::from_secs(60), || {
        odd.join(".devenv/env").exists() || matches!(up.try_wait(), Ok(Some(_)))
    });
    assert!(odd.join(".devenv/env").exists(), "up failed");
    Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    let out = up.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_corrupt_state_file_is_named_and_does_not_block_up() {
    let project = Project::native();
    std::fs::create_dir_all(project.path().join(".devenv")).unwrap();
    project.write(".devenv/state.json", "{ not json");
    let status = project.run(&["status"]);
    assert_eq!(status.status.code(), Some(1));
    assert!(
        stderr(&status).contains(".devenv/state.json is not valid"),
        "{}",
        stderr(&status)
    );
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    assert!(
        up.stderr().contains("state.json is not valid"),
        "{}",
        up.stderr()
    );
    up.stop();
}

#[test]
fn status_exits_1_when_nothing_runs_and_0_when_up_runs() {
    let project = Project::native();
    assert_eq!(project.run(&["status"]).status.code(), Some(1));
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    assert_eq!(project.run(&["status"]).status.code(), Some(0));
    up.stop();
}

#[test]
fn no_terminal_colour_codes_land_in_non_terminal_stderr() {
    let project = Project::native();
    let mut up = project.spawn_up_with(&[("DEVENV_LOG", "debug")]);
    project.wait_env(&mut up);
    up.stop();
    assert!(!up.stderr().contains('\u{1b}'), "{}", up.stderr());
}
