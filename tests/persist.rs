//! A database that lives (#12): data kept across Ctrl-C, `down` and `kill -9`; files edited
//! while down rebuild and keep the old data as an automatic snapshot; snapshots saved,
//! restored, listed and removed; `down --volumes` and `persist: false` leave nothing; no
//! committed row is lost to a crash, ten times over with a writer running.

mod support;

use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::{docker_ready, psql_count, query, stderr, var, wait_until, Project};

fn url_of(project: &Project, up: &mut support::Up) -> String {
    var(&project.wait_env(up), "CONNECTION_URL").to_owned()
}

fn volume_exists(name: &str) -> bool {
    Command::new("docker")
        .args(["volume", "inspect", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The row `data_survives` typed through the app is there.
fn assert_typed_row_kept(url: &str) {
    assert_eq!(
        psql_count(url, "SELECT count(*) FROM users WHERE handle = 'typed'"),
        "1"
    );
}

/// Ctrl-C, `down` and `kill -9` of `up`: each time the next `up` reuses the same database.
fn data_survives(project: &Project) {
    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    psql_count(&url, "INSERT INTO users (display_name, handle, email, cognito_user_id) VALUES ('Typed', 'typed', 'typed@example.com', 'MOCK')");
    up.stop();

    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    assert!(up.stderr().contains("reusing"), "{}", up.stderr());
    assert_typed_row_kept(&url);
    let down = project.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));
    up.wait();

    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    assert_typed_row_kept(&url);
    let status = project.run(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["data"]["kept"], true, "{status}");
    assert!(
        status["data"]["size_bytes"].as_u64().unwrap() > 1_000_000,
        "{status}"
    );
    up.signal("KILL");
    up.wait();

    let mut up = project.spawn_up();
    let url = url_of(project, &mut up);
    assert_typed_row_kept(&url);
    up.stop();
}

#[test]
fn data_survives_ctrl_c_down_and_kill_9_native() {
    data_survives(&Project::native());
}

#[test]
fn data_survives_ctrl_c_down_and_kill_9_docker() {
    if !docker_ready() {
        return;
    }
    data_survives(&Project::new());
}

#[test]
fn an_sql_edit_while_down_rebuilds_and_keeps_the_old_data_as_a_snapshot() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let url = url_of(&project, &mut up);
    psql_count(
        &url,
        "UPDATE users SET display_name = 'Typed through the app' WHERE handle = 'andrewbrown'",
    );
    up.stop();
    project.add_users_column("bio");
    let mut up = project.spawn_up();
    let url = url_of(&project, &mut up);
    assert!(
        up.stderr().contains("the files changed since it was built")
            && up.stderr().contains("is snapshot"),
        "{}",
        up.stderr()
    );
    assert_eq!(psql_count(&url, "SELECT count(bio) FROM users"), "0");
    let list = project.run(&["snapshot", "list", "--json"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let snaps = list.as_array().unwrap();
    assert_eq!(snaps.len(), 1, "{list}");
    assert_eq!(snaps[0]["kind"], "automatic");
    // The typed data is one command away.
    let name = snaps[0]["name"].as_str().unwrap().to_owned();
    let restore = project.run(&["snapshot", "restore", &name]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_eq!(
        psql_count(
            &url,
            "SELECT display_name FROM users WHERE handle = 'andrewbrown'"
        ),
        "Typed through the app"
    );

    // Reloads keep the newest three automatic snapshots.
    for n in 0..4 {
        let text = std::fs::read_to_string(project.path().join("db/seed.sql")).unwrap();
        project.write("db/seed.sql", &format!("{text}\n-- edit {n}\n"));
        wait_until(&up, &format!("reload {n}"), Duration::from_secs(20), || {
            up.stderr().matches("reload [").count() > n
        });
    }
    wait_until(
        &up,
        "three automatic snapshots",
        Duration::from_secs(10),
        || {
            let list = project.run(&["snapshot", "list", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&list.stdout)
                .ok()
                .and_then(|l| {
                    l.as_array()
                        .map(|a| a.iter().filter(|s| s["kind"] == "automatic").count())
                })
                == Some(3)
        },
    );
    up.stop();
}

#[test]
fn snapshots_save_restore_list_and_remove() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let url = url_of(&project, &mut up);
    let save = project.run(&["snapshot", "save", "before"]);
    assert!(save.status.success(), "{}", stderr(&save));
    assert!(
        stderr(&save).contains("disconnected for the moment of the copy"),
        "{}",
        stderr(&save)
    );
    psql_count(&url, "DELETE FROM activities");
    assert_eq!(psql_count(&url, "SELECT count(*) FROM activities"), "0");
    // A client connected across the restore is disconnected; the URL does not change.
    let restore = project.run(&["snapshot", "restore", "before"]);
    assert!(restore.status.success(), "{}", stderr(&restore));
    assert_ne!(psql_count(&url, "SELECT count(*) FROM activities"), "0");
    let list = project.run(&["snapshot", "list"]);
    let text = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        text.contains("before") && text.contains("manual") && text.contains("automatic"),
        "{text}"
    );
    let missing = project.run(&["snapshot", "restore", "nope"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("no snapshot named \"nope\"; there are: ")
            && stderr(&missing).contains("before"),
        "{}",
        stderr(&missing)
    );
    let rm = project.run(&["snapshot", "rm", "before"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    let list = project.run(&["snapshot", "list", "--json"]);
    assert!(!String::from_utf8_lossy(&list.stdout).contains("\"before\""));
    up.stop();
    // Snapshots live in the cluster: they survive a restart with the data.
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let list = project.run(&["snapshot", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "the automatic one from the restore: {list}"
    );
    up.stop();
}

#[test]
fn down_volumes_and_persist_false_leave_no_data_docker() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    up.stop();
    assert_eq!(project.volumes().len(), 1, "the data is kept in a volume");
    assert!(project.network_exists(), "and the network with it");
    let volume = project.volumes()[0].clone();
    let down = project.run(&["down", "--volumes"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(
        stderr(&down).contains(&volume),
        "names what it removes: {}",
        stderr(&down)
    );
    assert!(!volume_exists(&volume));
    assert!(project.containers().is_empty());
    assert!(
        !project.network_exists(),
        "down --volumes removes the network"
    );

    let mut up = project.spawn_up_with(&[("DEVENV_PERSIST", "false")]);
    project.wait_env(&mut up);
    up.stop();
    assert!(project.volumes().is_empty(), "persist: false keeps nothing");
    assert!(project.containers().is_empty());
    assert!(!project.network_exists(), "persist: false keeps no network");
}

#[test]
fn down_volumes_and_persist_false_leave_no_data_native() {
    let project = Project::native();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let data = project.data_dir().unwrap();
    up.stop();
    assert!(data.join("PG_VERSION").is_file(), "the data is kept");
    let down = project.run(&["down", "-v"]);
    assert!(down.status.success(), "{}", stderr(&down));
    assert!(!data.exists(), "down --volumes removes {}", data.display());

    let mut up = project.spawn_up_with(&[("DEVENV_PERSIST", "false")]);
    project.wait_env(&mut up);
    let data = project.data_dir().unwrap();
    up.stop();
    assert!(
        !data.exists(),
        "persist: false keeps nothing: {}",
        data.display()
    );
}

/// Inserts rows one by one (each committed when its INSERT returns) until told to stop or the
/// server goes; returns the number of the last row whose commit was acknowledged.
fn writer(url: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<i64> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let Ok((client, conn)) = url
                .parse::<tokio_postgres::Config>()
                .unwrap()
                .connect(tokio_postgres::NoTls)
                .await
            else {
                return 0;
            };
            tokio::spawn(conn);
            let last = AtomicI64::new(0);
            let mut n: i64 = client
                .query_one("SELECT coalesce(max(n), 0) FROM crash", &[])
                .await
                .map_or(0, |r| r.get(0));
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                if client
                    .execute("INSERT INTO crash VALUES ($1)", &[&n])
                    .await
                    .is_err()
                {
                    break;
                }
                last.store(n, Ordering::Relaxed);
            }
            last.load(Ordering::Relaxed)
        })
    })
}

/// Ten crashes in the middle of writes; each time the next `up` reuses the database with every
/// acknowledged row.
fn no_committed_row_lost(project: &Project, kills: &[&str]) {
    let mut up = project.spawn_up();
    let mut url = url_of(project, &mut up);
    psql_count(&url, "CREATE TABLE crash (n bigint PRIMARY KEY)");
    for round in 0..10 {
        let stop = Arc::new(AtomicBool::new(false));
        let writing = writer(url.clone(), stop.clone());
        std::thread::sleep(Duration::from_millis(300));
        let kill = kills[round % kills.len()];
        match kill {
            "up" => up.signal("KILL"),
            "container" => {
                let id = project.container_id().unwrap();
                assert!(Command::new("docker")
                    .args(["kill", &id])
                    .status()
                    .unwrap()
                    .success());
            }
            "postmaster" => {
                let pid = project.server_pid().unwrap();
                Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status()
                    .unwrap();
            }
            other => unreachable!("{other}"),
        }
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Relaxed);
        let acknowledged = writing.join().unwrap();
        up.wait();
        up = project.spawn_up();
        let again = url_of(project, &mut up);
        assert!(
            up.stderr().contains("reusing"),
            "round {round} ({kill}): {}",
            up.stderr()
        );
        let kept: i64 = query(
            &again,
            &format!("SELECT count(*) FROM crash WHERE n <= {acknowledged}"),
        )
        .unwrap()
        .parse()
        .unwrap();
        assert_eq!(
            kept, acknowledged,
            "round {round} ({kill}): every acknowledged row is there"
        );
        assert!(acknowledged > 0, "round {round}: the writer wrote");
        url = again;
    }
    up.stop();
}

#[test]
fn no_committed_row_is_lost_to_a_crash_native() {
    no_committed_row_lost(&Project::native(), &["postmaster", "up"]);
}

#[test]
fn no_committed_row_is_lost_to_a_crash_docker() {
    if !docker_ready() {
        return;
    }
    no_committed_row_lost(&Project::new(), &["container", "up"]);
}

/// The fixture on the project's `devenv up` server: its template is kept with the data, so
/// after a restart the next test database is cloned from the same template, not rebuilt.
#[tokio::test(flavor = "multi_thread")]
async fn fixture_templates_on_the_up_server_survive_a_restart() {
    let project = Project::native();
    // The fixture reads the project's devenv.yaml (this process sets no DEVENV_BACKEND).
    project.write("devenv.yaml", "backend: native\nport: 0\n");
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let db = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    let template = db.template().to_owned();
    drop(db);
    up.stop();
    let mut up = project.spawn_up();
    let url = url_of(&project, &mut up);
    let base = url.rsplit_once('/').unwrap().0;
    assert_eq!(
        psql_count(
            &format!("{base}/postgres"),
            &format!("SELECT count(*) FROM pg_database WHERE datname = '{template}'")
        ),
        "1",
        "the template survived the restart"
    );
    let again = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(again.template(), template, "no new template was built");
    drop(again);
    up.stop();
}
