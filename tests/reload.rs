//! Hot reload end to end: `devenv up` (real binary, real Docker engine, local image) watching a
//! temp copy of the example project while the tests edit its files the way editors do.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{docker_ready, query, var, wait_until, Project, Up};

fn reloads(up: &Up) -> usize {
    up.stderr().matches("devenv: reload [").count()
}

/// Starts `devenv up` on a fresh project; returns it with CONNECTION_URL and the schema text.
fn start() -> Option<(Project, Up, String, String)> {
    if !docker_ready() {
        return None;
    }
    let project = Project::new();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    let schema = std::fs::read_to_string(project.path().join("db/schema.sql")).unwrap();
    Some((project, up, url, schema))
}

fn with_column(schema: &str, column: &str) -> String {
    schema.replace(
        "  email text NOT NULL,",
        &format!("  email text NOT NULL,\n  {column},"),
    )
}

fn write_schema(project: &Project, text: &str) {
    std::fs::write(project.path().join("db/schema.sql"), text).unwrap();
}

#[test]
fn added_column_becomes_visible_through_the_same_url() {
    let Some((project, up, url, schema)) = start() else {
        return;
    };
    write_schema(&project, &with_column(&schema, "bio text"));
    wait_until(&up, "the new column", Duration::from_secs(20), || {
        query(&url, "SELECT count(bio) FROM users").is_some()
    });
    // Seed data came along.
    assert_eq!(
        query(&url, "SELECT count(*) FROM users").as_deref(),
        Some("3")
    );
    let stderr = up.stderr();
    assert!(
        stderr.contains("devenv: reload [db/schema.sql]: ok"),
        "{stderr}"
    );
}

#[test]
fn broken_edit_keeps_the_old_database_and_a_fix_reloads() {
    let Some((project, up, url, schema)) = start() else {
        return;
    };
    let broken = with_column(&schema, "bio txet");
    let line = broken.lines().position(|l| l.contains("bio txet")).unwrap() + 1;
    write_schema(&project, &broken);
    wait_until(&up, "the failed reload", Duration::from_secs(20), || {
        up.stderr().contains("kept the previous database")
    });
    let stderr = up.stderr();
    assert!(
        stderr.contains(&format!(
            "db/schema.sql:{line}:7: error: type \"txet\" does not exist"
        )),
        "{stderr}"
    );
    // The old database still answers, with its data.
    assert_eq!(
        query(&url, "SELECT count(*) FROM users").as_deref(),
        Some("3")
    );
    assert!(query(&url, "SELECT count(bio) FROM users").is_none());
    write_schema(&project, &with_column(&schema, "bio text"));
    wait_until(&up, "the fixed reload", Duration::from_secs(20), || {
        query(&url, "SELECT count(bio) FROM users").is_some()
    });
    assert!(
        project.path().join(".devenv/env").exists(),
        "up kept running"
    );
}

#[test]
fn an_idle_client_connection_does_not_block_a_reload() {
    let Some((project, up, url, schema)) = start() else {
        return;
    };
    // psql with an open stdin holds an idle session on the database.
    let mut idle = Command::new("psql")
        .args(["-X", "-q", &url])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    idle.stdin
        .as_mut()
        .unwrap()
        .write_all(b"SELECT 1;\n")
        .unwrap();
    wait_until(&up, "the idle session", Duration::from_secs(10), || {
        query(
            &url,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'psql' AND pid <> pg_backend_pid()",
        )
        .is_some_and(|n| n != "0")
    });
    write_schema(&project, &with_column(&schema, "bio text"));
    wait_until(&up, "the new column", Duration::from_secs(20), || {
        query(&url, "SELECT count(bio) FROM users").is_some()
    });
    let _ = idle.kill();
    let _ = idle.wait();
}

#[test]
fn a_burst_of_50_saves_gives_few_reloads_and_the_last_content_wins() {
    let Some((project, up, url, schema)) = start() else {
        return;
    };
    for i in 1..=50 {
        write_schema(&project, &format!("{schema}\nCREATE TABLE burst_{i} ();\n"));
        std::thread::sleep(Duration::from_millis(2));
    }
    wait_until(&up, "the last save", Duration::from_secs(30), || {
        query(&url, "SELECT to_regclass('burst_50') IS NOT NULL").as_deref() == Some("t")
    });
    // Let any reload still under way finish, then check nothing older won.
    let mut last = reloads(&up);
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let now = reloads(&up);
        if now == last {
            break;
        }
        last = now;
    }
    assert_eq!(
        query(
            &url,
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'burst\\_%'"
        )
        .as_deref(),
        Some("1"),
        "only the last save's table exists"
    );
    assert!(last < 10, "{last} reloads for 50 saves:\n{}", up.stderr());
}

#[test]
fn rename_over_and_delete_then_recreate_both_reload() {
    let Some((project, up, url, schema)) = start() else {
        return;
    };
    // An editor writing a temp file and renaming it over the original.
    let tmp = project.path().join("db/.schema.sql.tmp");
    std::fs::write(&tmp, with_column(&schema, "renamed text")).unwrap();
    std::fs::rename(&tmp, project.path().join("db/schema.sql")).unwrap();
    wait_until(
        &up,
        "the renamed-over file",
        Duration::from_secs(20),
        || query(&url, "SELECT count(renamed) FROM users").is_some(),
    );
    // An editor deleting the file and writing it again.
    std::fs::remove_file(project.path().join("db/schema.sql")).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    write_schema(&project, &with_column(&schema, "recreated text"));
    wait_until(&up, "the recreated file", Duration::from_secs(20), || {
        query(&url, "SELECT count(recreated) FROM users").is_some()
    });
}

#[test]
fn devenv_reload_by_hand_and_config_changes_are_reported() {
    let Some((project, up, _url, _schema)) = start() else {
        return;
    };
    let out = project.run(&["reload"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until(&up, "the manual reload", Duration::from_secs(20), || {
        up.stderr().contains("reload [by hand (devenv reload)]: ok")
    });
    let yaml = project.path().join("devenv.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.replace("user: postgres", "user: admin")).unwrap();
    wait_until(&up, "the restart notice", Duration::from_secs(20), || {
        up.stderr()
            .contains("devenv.yaml changed user: restart needed")
    });
    std::fs::write(&yaml, "port: [not a number\n").unwrap();
    wait_until(&up, "the config error", Duration::from_secs(20), || {
        up.stderr().contains("keeping the running settings")
    });
}

#[test]
fn a_file_included_from_outside_the_watch_globs_is_watched_too() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    std::fs::create_dir_all(project.path().join("sql")).unwrap();
    std::fs::write(
        project.path().join("sql/extra.sql"),
        "CREATE TABLE extra_v1 ();\n",
    )
    .unwrap();
    let schema = project.path().join("db/schema.sql");
    let text = std::fs::read_to_string(&schema).unwrap();
    std::fs::write(&schema, format!("{text}\n\\i sql/extra.sql\n")).unwrap();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert_eq!(
        query(&url, "SELECT to_regclass('extra_v1') IS NOT NULL").as_deref(),
        Some("t")
    );
    std::fs::write(
        project.path().join("sql/extra.sql"),
        "CREATE TABLE extra_v2 ();\n",
    )
    .unwrap();
    wait_until(
        &up,
        "the included file's change",
        Duration::from_secs(20),
        || query(&url, "SELECT to_regclass('extra_v2') IS NOT NULL").as_deref() == Some("t"),
    );
    assert!(
        up.stderr().contains("reload [sql/extra.sql]: ok"),
        "{}",
        up.stderr()
    );
}
