//! Faults at bad moments (#25): `snapshot save` killed, interrupted or crashed under at several
//! moments of a copy of a few hundred MB, a full disk, `up` killed while its cluster is copied,
//! two projects answering as `db` on one network, long database names, odd passwords, a
//! reload cancelled by Ctrl-C and `down`, config errors caught before anything starts, the
//! `--kill-idle` prompt, `down --volumes` on an external server, and a failed native start.
//! Each test is named after the failure it pins; the real binary against Docker and native
//! servers. (An engine restart under `up` has a test binary of its own: `engine_restart.rs`.)

mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{docker_ready, eventually, psql_count, query, stderr, var, Project};

/// Runs `devenv ARGS` with `env`; it must succeed.
fn ok_with(project: &Project, env: &[(&str, &str)], args: &[&str]) {
    let out = project
        .command(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
}

fn url_of(project: &Project, up: &mut support::Up) -> String {
    var(&project.wait_env(up), "CONNECTION_URL").to_owned()
}

/// The maintenance database's URL beside `url`.
fn admin_url(url: &str) -> String {
    format!("{}/postgres", url.rsplit_once('/').unwrap().0)
}

/// Every database on the server of `url`.
fn databases(url: &str) -> Vec<String> {
    psql_count(
        &admin_url(url),
        "SELECT datname FROM pg_database ORDER BY 1",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// The snapshots `snapshot list --json` shows: (name, database).
fn snapshots(project: &Project) -> Vec<(String, String)> {
    let out = project.run(&["snapshot", "list", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["database"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Databases on the server that are neither the server's own, the live one and its spare, nor
/// a listed snapshot or its ready copy.
fn unlisted(project: &Project, url: &str, live: &str) -> Vec<String> {
    let listed: Vec<String> = snapshots(project)
        .into_iter()
        .flat_map(|(_, db)| [db.replace("__snap_", "__rdy_"), db])
        .collect();
    databases(url)
        .into_iter()
        .filter(|d| {
            !["postgres", "template0", "template1"].contains(&d.as_str())
                && d != live
                && *d != format!("{live}__devenv_next")
                && !listed.contains(d)
        })
        .collect()
}

/// About `mb` MB of rows in a table `big` of the live database.
fn fill(url: &str, mb: u32) -> String {
    let rows = mb * 1000;
    psql_count(
        url,
        &format!(
            "CREATE TABLE big AS SELECT g, repeat(md5(g::text), 30) AS pad \
             FROM generate_series(1, {rows}) g"
        ),
    );
    rows.to_string()
}

fn signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Checks after an interrupted save: the live database answers with its rows, nothing
/// unlisted stays, and `name` either is a whole snapshot or does not exist.
fn after_interruption(project: &Project, url: &str, name: &str, rows: &str, what: &str) {
    eventually(
        &format!("{what}: the live database answering"),
        Duration::from_secs(30),
        || query(url, "SELECT count(*) FROM big").as_deref() == Some(rows),
    );
    // The server may still finish a copy whose client was killed; the supervisor then drops
    // it (unmarked: a copy is marked last).
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let left = unlisted(project, url, "cruddur");
        if left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: unlisted databases stay: {left:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    if snapshots(project).iter().any(|(n, _)| n == name) {
        // Whole: restoring it gives every row back.
        let restore = project.run(&["snapshot", "restore", name]);
        assert!(restore.status.success(), "{what}: {}", stderr(&restore));
        assert_eq!(
            query(url, "SELECT count(*) FROM big").as_deref(),
            Some(rows),
            "{what}"
        );
        // Checked: its few hundred MB go (the next cuts need the disk).
        let rm = project.run(&["snapshot", "rm", name]);
        assert!(rm.status.success(), "{what}: {}", stderr(&rm));
    }
}

/// The pid of the backend running `CREATE DATABASE` on the server of `url`, once it runs.
fn copying_backend(url: &str) -> Option<u32> {
    query(
        &admin_url(url),
        "SELECT pid FROM pg_stat_activity WHERE query ILIKE 'CREATE DATABASE%' LIMIT 1",
    )
    .and_then(|p| p.parse().ok())
}

/// Waits until a `CREATE DATABASE` runs on the server of `url`; returns its backend's pid.
fn wait_for_the_copy(url: &str) -> u32 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(pid) = copying_backend(url) {
            return pid;
        }
        assert!(Instant::now() < deadline, "the copy never started");
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn interrupting_snapshot_save_never_leaves_the_live_database_closed(project: &Project) {
    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    let rows = fill(&url, 300);
    // How long the copy of a whole save takes here, to interrupt the next ones part-way
    // through their copy: the faster of two (the first copy on a new server can take six
    // times as long as the next).
    let took = (0..2)
        .map(|k| {
            let whole = project.run(&["snapshot", "save", &format!("whole-{k}")]);
            assert!(whole.status.success(), "{}", stderr(&whole));
            // "saved snapshot whole-0 (314 MB) in 401 ms": the copy's own time.
            let ms: u64 = stderr(&whole)
                .rsplit_once(" in ")
                .and_then(|(_, t)| t.trim().strip_suffix(" ms"))
                .and_then(|t| t.parse().ok())
                .unwrap_or_else(|| panic!("{}", stderr(&whole)));
            let rm = project.run(&["snapshot", "rm", &format!("whole-{k}")]);
            assert!(rm.status.success(), "{}", stderr(&rm));
            Duration::from_millis(ms)
        })
        .min()
        .unwrap();
    for (i, (sig, part)) in [
        ("KILL", 0.1),
        ("KILL", 0.4),
        ("KILL", 0.8),
        ("INT", 0.2),
        ("INT", 0.6),
        ("TERM", 0.5),
    ]
    .into_iter()
    .enumerate()
    {
        let what = format!("{sig} at {:.0}% of a {took:?} copy", part * 100.0);
        // A copy may still run faster than the measured one and end before the signal; then
        // that save is whole, and the cut is tried again, three times at most.
        for attempt in 0.. {
            let name = format!("cut-{i}-{attempt}");
            let mut save = project
                .command(&["snapshot", "save", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            wait_for_the_copy(&url);
            std::thread::sleep(took.mul_f64(part));
            let ended_first = save.try_wait().unwrap().is_some();
            if !ended_first {
                signal(save.id(), sig);
            }
            let out = save.wait_with_output().unwrap();
            // Ended before the signal (or as it was sent): a save that says nothing of one.
            if out.status.success()
                && !stderr(&out).contains("interrupted")
                && !stderr(&out).contains("came too late to cancel")
            {
                assert!(attempt < 2, "{what}: three copies ended before the signal");
                after_interruption(project, &url, &name, &rows, "a copy that ended first");
                continue;
            }
            assert!(!ended_first, "{what}: {}", stderr(&out));
            if sig != "KILL" {
                assert!(
                    stderr(&out).contains("interrupted") && stderr(&out).contains("is open")
                        || stderr(&out).contains("came too late to cancel"),
                    "{what}: {}",
                    stderr(&out)
                );
            }
            after_interruption(project, &url, &name, &rows, &what);
            break;
        }
    }
    crash_a_save(project, &url, &rows);
    // And after a restart.
    up.stop();
    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    assert_eq!(
        query(&url, "SELECT count(*) FROM big").as_deref(),
        Some(rows.as_str())
    );
    assert_eq!(unlisted(project, &url, "cruddur"), Vec::<String>::new());
    up.stop();
}

/// The server crashes during a save's copy: the backend that copies is killed, and postgres
/// restarts every session. A copy can finish between being seen and the kill (the kill goes
/// through `docker exec`); then that save is whole, and another is cut, five at most.
fn crash_a_save(project: &Project, url: &str, rows: &str) {
    let mut attempt = 0;
    let (name, out) = loop {
        attempt += 1;
        let name = format!("crashed-{attempt}");
        let save = project
            .command(&["snapshot", "save", &name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let backend = wait_for_the_copy(url);
        // The backend may be gone by now; the save's outcome says whether the kill landed.
        let _ = match project.container_id() {
            Some(container) => Command::new("docker")
                .args([
                    "exec",
                    &container,
                    "sh",
                    "-c",
                    &format!("kill -9 {backend}"),
                ])
                .stderr(Stdio::null())
                .status(),
            None => Command::new("kill")
                .args(["-KILL", &backend.to_string()])
                .stderr(Stdio::null())
                .status(),
        };
        let out = save.wait_with_output().unwrap();
        if !out.status.success() {
            break (name, out);
        }
        assert!(
            attempt < 5,
            "five copies all finished before the kill reached them"
        );
        after_interruption(project, url, &name, rows, "a copy finished before its kill");
    };
    assert!(
        stderr(&out).contains("the server went away"),
        "{}",
        stderr(&out)
    );
    after_interruption(project, url, &name, rows, "a server crash during a save");
}

#[test]
fn interrupting_snapshot_save_never_leaves_the_live_database_closed_native() {
    interrupting_snapshot_save_never_leaves_the_live_database_closed(&Project::native());
}

#[test]
fn interrupting_snapshot_save_never_leaves_the_live_database_closed_docker() {
    if !docker_ready() {
        return;
    }
    interrupting_snapshot_save_never_leaves_the_live_database_closed(&Project::new());
}

/// A tmpfs of `mb` MB mounted on a new directory; unmounted when dropped.
struct SmallDisk(tempfile::TempDir);

impl SmallDisk {
    fn new(mb: u64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("devenv-small-disk-")
            .tempdir()
            .unwrap();
        let mounted = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mb}m,mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(
            mounted.success(),
            "this test mounts a small tmpfs and needs root (CI runs as root)"
        );
        SmallDisk(dir)
    }

    fn resize(&self, mb: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mb}m")])
            .arg(self.0.path())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// MB in use.
    fn used_mb(&self) -> u64 {
        let out = Command::new("df")
            .args(["--output=used", "-m"])
            .arg(self.0.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok())
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).status();
    }
}

#[test]
fn a_full_disk_during_snapshot_save_is_named_and_keeps_the_database_native() {
    // Kept native data as root goes to DEVENV_DATA_HOME (as another user to .devenv/, which
    // this test could not put on a small disk).
    assert!(
        nix_is_root(),
        "this test puts the kept data on a small tmpfs through DEVENV_DATA_HOME, which is for root"
    );
    let disk = SmallDisk::new(400);
    let project = Project::native();
    let home = disk.0.path().to_str().unwrap();
    let env = [("DEVENV_DATA_HOME", home)];
    let mut up = project.spawn_up_with(&env);
    let url = url_of(&project, &mut up);
    let rows = fill(&url, 60);
    psql_count(
        &url,
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('Typed', 'typed', 'typed@example.com', 'MOCK')",
    );
    // Written out and the WAL recycled, then the disk shrunk to leave too little room for a
    // copy of the database.
    psql_count(&admin_url(&url), "CHECKPOINT");
    disk.resize(disk.used_mb() + 25);
    let save = project
        .command(&["snapshot", "save", "full"])
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(save.status.code(), Some(4), "{}", stderr(&save));
    let said = stderr(&save);
    assert!(
        said.contains("no space left on the server's disk") && said.contains("free space"),
        "{said}"
    );
    // The live database answers, with every committed row.
    eventually(
        "the live database answering",
        Duration::from_secs(60),
        || query(&url, "SELECT count(*) FROM big").as_deref() == Some(rows.as_str()),
    );
    assert_eq!(
        psql_count(&url, "SELECT count(*) FROM users WHERE handle = 'typed'"),
        "1"
    );
    assert!(
        !snapshots(&project).iter().any(|(n, _)| n == "full"),
        "no half snapshot"
    );
    assert_eq!(unlisted(&project, &url, "cruddur"), Vec::<String>::new());
    // Space freed: after down and up, the database answers and a save works.
    disk.resize(800);
    up.stop();
    let mut up = project.spawn_up_with(&env);
    let url = url_of(&project, &mut up);
    assert_eq!(
        psql_count(&url, "SELECT count(*) FROM users WHERE handle = 'typed'"),
        "1"
    );
    ok_with(&project, &env, &["snapshot", "save", "roomy"]);
    up.stop();
    ok_with(&project, &env, &["down", "--volumes"]);
}

fn nix_is_root() -> bool {
    String::from_utf8_lossy(&Command::new("id").arg("-u").output().unwrap().stdout).trim() == "0"
}

#[test]
fn an_early_sigkill_of_a_native_up_leaves_no_half_copied_cluster() {
    let project = Project::native();
    let data_home = tempfile::Builder::new()
        .prefix("devenv-data-home-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(
        data_home.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let env = [("DEVENV_DATA_HOME", data_home.path().to_str().unwrap())];
    // A first run fills the initdb cache, so the next starts copy a cluster at once.
    let mut up = project.spawn_up_with(&env);
    project.wait_env(&mut up);
    up.stop();
    for ms in [20, 50, 80, 120, 200, 400] {
        ok_with(&project, &env, &["down", "--volumes"]);
        let mut up = project.spawn_up_with(&env);
        std::thread::sleep(Duration::from_millis(ms));
        up.signal("KILL");
        up.wait();
        // The next up starts: whatever the kill left is not taken for kept data.
        let mut up = project.spawn_up_with(&env);
        let url = url_of(&project, &mut up);
        assert_eq!(
            psql_count(&url, "SELECT count(*) FROM users"),
            "3",
            "after a SIGKILL at {ms} ms: {}",
            up.stderr()
        );
        up.stop();
        let partial: Vec<_> = walk(data_home.path())
            .into_iter()
            .chain(walk(&project.path().join(".devenv")))
            .filter(|p| p.to_string_lossy().contains(".partial-"))
            .collect();
        assert!(
            partial.is_empty(),
            "after a SIGKILL at {ms} ms: {partial:?}"
        );
    }
    ok_with(&project, &env, &["down", "--volumes"]);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|e| {
            let p = e.path();
            if e.file_type().is_ok_and(|t| t.is_dir()) && !p.ends_with("pgdata") {
                let mut below = walk(&p);
                below.push(p);
                below
            } else {
                vec![p]
            }
        })
        .collect()
}

/// Who answers at `db:5432` from a container on `network`: the value of the `marker` table.
fn who_answers_as_db(network: &str) -> String {
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", network, "--entrypoint", "psql"])
        .arg(support::test_image())
        .args([
            "-XAt",
            "postgresql://postgres:password@db:5432/cruddur",
            "-c",
            "SELECT v FROM marker",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn two_projects_on_one_network_never_both_answer_as_db() {
    if !docker_ready() {
        return;
    }
    let one = Project::new();
    let mut two = Project::new();
    two.network.clone_from(&one.network);
    let mut up_one = one.spawn_up();
    let url = url_of(&one, &mut up_one);
    psql_count(&url, "CREATE TABLE marker AS SELECT 'one' AS v");
    let refused = two.run(&["up"]);
    assert_eq!(refused.status.code(), Some(4), "{}", stderr(&refused));
    let said = stderr(&refused);
    let root = one.path().canonicalize().unwrap();
    assert!(
        said.contains(&format!("devenv project in {}", root.display()))
            && said.contains("already answers as `db`")
            && said.contains("network: "),
        "{said}"
    );
    assert!(
        two.containers().is_empty(),
        "the refused up left a container"
    );
    for _ in 0..4 {
        assert_eq!(who_answers_as_db(&one.network), "one");
    }
    up_one.stop();
    // Started together, exactly one comes up; the other is refused naming it.
    let mut up_one = one.spawn_up();
    let mut up_two = two.spawn_up();
    let (a, b) = (
        up_one.wait_ready_or_exit(&one),
        up_two.wait_ready_or_exit(&two),
    );
    let (loser, said) = match (a, b) {
        (None, Some(status)) => (status, up_two.stderr()),
        (Some(status), None) => (status, up_one.stderr()),
        _ => panic!(
            "exactly one comes up:\n{}\n{}",
            up_one.stderr(),
            up_two.stderr()
        ),
    };
    assert_eq!(loser.code(), Some(4), "{said}");
    assert!(said.contains("already answers as `db`"), "{said}");
}

#[test]
fn database_names_of_45_to_63_bytes_keep_snapshots_working() {
    for len in [45, 50, 63] {
        let project = Project::native();
        let name: String = std::iter::repeat_n("a", len - 3).collect::<String>() + "-db";
        let env = [("DEVENV_DATABASE", name.as_str())];
        let mut up = project.spawn_up_with(&env);
        let url = url_of(&project, &mut up);
        let save = project
            .command(&["snapshot", "save", "kept"])
            .envs(env)
            .output()
            .unwrap();
        assert!(save.status.success(), "{len} bytes: {}", stderr(&save));
        let list = |project: &Project| {
            let out = project
                .command(&["snapshot", "list", "--json"])
                .envs(env)
                .output()
                .unwrap();
            let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            list.as_array().unwrap().clone()
        };
        assert_eq!(list(&project).len(), 1, "{len} bytes");
        // Reloads keep the newest automatic snapshots only.
        for i in 0..5 {
            project.write(
                "db/seed.sql",
                &format!(
                    "{}\n-- edit {i}\n",
                    std::fs::read_to_string(project.path().join("db/seed.sql")).unwrap()
                ),
            );
            eventually("the reload", Duration::from_secs(30), || {
                up.stderr().matches("]: ok").count() > i
            });
        }
        eventually("pruning", Duration::from_secs(30), || {
            let all = list(&project);
            all.iter().filter(|s| s["kind"] == "automatic").count() == 3
                && all.iter().filter(|s| s["kind"] == "manual").count() == 1
        });
        psql_count(&url, "DELETE FROM activities");
        ok_with(&project, &env, &["snapshot", "restore", "kept"]);
        assert_ne!(psql_count(&url, "SELECT count(*) FROM activities"), "0");
        ok_with(&project, &env, &["snapshot", "rm", "kept"]);
        up.stop();
    }
}

#[test]
fn reserved_database_names_are_config_errors_before_anything_starts() {
    for name in ["postgres", "template0", "template1"] {
        let project = Project::native();
        project.write("devenv.yaml", &format!("database: {name}\n"));
        let out = project.run(&["up"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("devenv.yaml:1:11: database: is the name of the server's own database"),
            "{}",
            stderr(&out)
        );
        assert!(project.state().is_none() && !project.path().join(".devenv/state.json").exists());
    }
}

#[test]
fn a_password_with_an_unescaped_at_is_masked_whole() {
    let project = Project::native();
    let url = "postgresql://u:Broken@Secret2@127.0.0.1:1/app";
    project.write(
        "devenv.yaml",
        &format!("backend: external\nurl: \"{url}\"\ndatabase: app\n"),
    );
    for args in [
        vec!["up"],
        vec!["doctor"],
        vec!["db", "drop", "--url", url],
        vec!["db", "sessions", "--url", url],
    ] {
        let out = project
            .command(&args)
            .env("DEVENV_BACKEND", "external")
            .env("DEVENV_LOG", "debug")
            .output()
            .unwrap();
        let said = format!("{}{}", stderr(&out), String::from_utf8_lossy(&out.stdout));
        assert!(
            !said.contains("Secret2") && !said.contains("Broken"),
            "{args:?}: {said}"
        );
        if args[0] != "doctor" {
            assert!(!out.status.success(), "{args:?}: {said}");
        }
    }
}

#[test]
fn a_password_with_quotes_and_backslashes_stays_out_of_the_debug_log() {
    let project = Project::native();
    let mut up =
        project.spawn_up_with(&[("DEVENV_PASSWORD", r"Qu'ote\Pw99"), ("DEVENV_LOG", "debug")]);
    let url = url_of(&project, &mut up);
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    up.stop();
    let said = up.stderr();
    for form in ["Qu'ote", "Qu''ote", r"ote\Pw99", r"ote\\Pw99", "Qu%27ote"] {
        assert!(!said.contains(form), "{form} in:\n{said}");
    }
}

#[test]
fn ctrl_c_and_down_cancel_a_reload_under_way() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let mut url = url_of(&project, &mut up);
    psql_count(
        &url,
        "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('Typed', 'typed', 'typed@example.com', 'MOCK')",
    );
    let schema = std::fs::read_to_string(project.path().join("db/schema.sql")).unwrap();
    for stop in ["INT", "down"] {
        project.write(
            "db/schema.sql",
            &format!("{schema}\nSELECT pg_sleep(60);\n"),
        );
        support::wait_until(&up, "the slow reload", Duration::from_secs(30), || {
            query(
                &admin_url(&url),
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(60)%' AND pid <> pg_backend_pid()",
            )
            .is_some_and(|r| r != "0")
        });
        let asked = Instant::now();
        if stop == "INT" {
            up.signal("INT");
        } else {
            let down = project.run(&["down"]);
            assert!(down.status.success(), "{}", stderr(&down));
        }
        let status = up.wait();
        assert!(
            asked.elapsed() < Duration::from_secs(15),
            "{stop} took {:?}:\n{}",
            asked.elapsed(),
            up.stderr()
        );
        assert!(status.success(), "{stop}: {}", up.stderr());
        assert!(
            up.stderr()
                .contains("the reload under way was cancelled; kept the previous database"),
            "{}",
            up.stderr()
        );
        // The previous database stays: the next up (with the edit undone) reuses it.
        project.write("db/schema.sql", &schema);
        up = project.spawn_up();
        url = url_of(&project, &mut up);
        assert!(up.stderr().contains("reusing"), "{}", up.stderr());
        assert_eq!(
            psql_count(&url, "SELECT count(*) FROM users WHERE handle = 'typed'"),
            "1"
        );
    }
    up.stop();
}

#[test]
fn config_errors_are_caught_before_anything_starts() {
    let seventy = "u".repeat(70);
    for (yaml, wanted) in [
        ("user: \"\"\n", "devenv.yaml:1:7: user: must not be empty"),
        (
            &format!("user: {seventy}\n") as &str,
            "devenv.yaml:1:7: user: is 70 bytes, longer than",
        ),
        (
            "password: \"\"\n",
            "devenv.yaml:1:11: password: must not be empty",
        ),
        (
            "network: \"\"\n",
            "devenv.yaml:1:10: network: must not be empty",
        ),
        (
            "watch: [\"db/[x\"]\n",
            "devenv.yaml:1:9: watch[0]: `db/[x` is not a valid glob",
        ),
    ] {
        let project = Project::native();
        project.write("devenv.yaml", yaml);
        let out = project
            .command(&["up"])
            .env_remove("DEVENV_NETWORK")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{yaml}: {}", stderr(&out));
        assert!(stderr(&out).contains(wanted), "{yaml}: {}", stderr(&out));
        assert!(project.state().is_none(), "{yaml}: a record was written");
    }
}

#[test]
fn kill_idle_asks_on_every_server_that_is_not_this_projects() {
    let other = Project::native();
    let mut up = other.spawn_up();
    let url = url_of(&other, &mut up);
    let this = Project::native();
    // Local, another project's: refused without a terminal and without --yes.
    let out = this.run(&["db", "sessions", "--kill-idle", "--url", &url]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("refusing to end idle sessions"),
        "{}",
        stderr(&out)
    );
    let out = this.run(&["db", "sessions", "--kill-idle", "--url", &url, "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // This project's own server: no question.
    let out = other.run(&["db", "sessions", "--kill-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    up.stop();
}

#[test]
fn down_volumes_on_an_external_server_leaves_no_devenv_database() {
    let host = Project::native();
    let mut host_up = host.spawn_up();
    let host_url = url_of(&host, &mut host_up);
    let server = admin_url(&host_url);
    let project = Project::native();
    project.write(
        "devenv.yaml",
        &format!("backend: external\nurl: \"{server}\"\ndatabase: extapp\n"),
    );
    let mut up = project.spawn_up_with(&[("DEVENV_BACKEND", "external")]);
    let url = url_of(&project, &mut up);
    let save = project
        .command(&["snapshot", "save", "one"])
        .env("DEVENV_BACKEND", "external")
        .output()
        .unwrap();
    assert!(save.status.success(), "{}", stderr(&save));
    project.add_users_column("motto");
    support::wait_for_column(&up, &url, "motto");
    up.stop();
    let down = project
        .command(&["down", "--volumes"])
        .env("DEVENV_BACKEND", "external")
        .output()
        .unwrap();
    assert!(down.status.success(), "{}", stderr(&down));
    let left: Vec<String> = databases(&host_url)
        .into_iter()
        .filter(|d| d.starts_with("extapp"))
        .collect();
    assert_eq!(left, ["extapp"], "{}", stderr(&down));
    host_up.stop();
}

#[test]
fn a_failed_native_start_leaves_no_socket_directory() {
    let project = Project::native();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let socket_dir = std::env::temp_dir().join(format!(
        "devenv-{}.s",
        devenv_core::project::id_of(project.path())
    ));
    let out = project
        .command(&["up"])
        .env("DEVENV_PORT", &port)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(stderr(&out).contains("already in use"), "{}", stderr(&out));
    assert!(!socket_dir.exists(), "{} is left", socket_dir.display());
    drop(taken);
}
