//! Without Docker and against other servers: the native backend end to end (run as root in
//! CI, so postgres runs as an unprivileged account), `auto` falling back to it, every
//! `devenv db` job, the prod guard, and `devenv doctor`.

mod support;

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{
    process_alive, psql_count, query, stderr, var, wait_for_column, wait_until, Project,
};

#[test]
fn native_up_loads_reloads_and_leaves_no_process() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert!(
        up.stderr().contains("backend: native (configured)"),
        "{}",
        up.stderr()
    );
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    assert!(project.data_dir().unwrap().join("PG_VERSION").is_file());
    let postmaster = project.server_pid().expect("state names the postmaster");
    assert!(process_alive(postmaster));

    project.add_users_column("bio");
    wait_for_column(&up, &url, "bio");

    up.stop();
    assert!(!process_alive(postmaster), "postgres left running");
    assert!(!project.env_file().exists());
}

/// Regression: every first native run failed (`writing .../run/.pwfile: No such file or
/// directory`) because initdb's password file went next to a data directory on /dev/shm whose
/// parent had no `run/`; CI stayed green on a warm initdb cache. Cold, then warm.
#[test]
fn native_up_starts_with_an_empty_initdb_cache() {
    let cache = tempfile::tempdir().unwrap();
    for round in ["cold", "warm"] {
        let project = Project::native();
        let mut up = project.spawn_up_with(&[("DEVENV_CACHE_DIR", cache.path().to_str().unwrap())]);
        let vars = project.wait_env(&mut up);
        assert_eq!(
            psql_count(var(&vars, "CONNECTION_URL"), "SELECT count(*) FROM users"),
            "3",
            "{round}"
        );
        up.signal("INT");
        assert!(up.wait().success(), "{round}: {}", up.stderr());
        let cached = std::fs::read_dir(cache.path())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("initdb-"))
            .count();
        assert_eq!(cached, 1, "{round}: one initialised cluster is cached");
    }
}

#[test]
fn native_down_after_kill_9_stops_the_server() {
    let project = Project::native();
    let mut up = project.spawn_up();
    project.wait_env(&mut up);
    let postmaster = project.server_pid().unwrap();
    up.signal("KILL");
    up.wait();
    assert!(
        process_alive(postmaster),
        "the server outlives a kill -9 of up"
    );
    let out = project.run(&["down"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!process_alive(postmaster), "down left postgres running");
}

#[test]
fn auto_falls_back_to_native_when_no_engine_answers_and_says_why() {
    let mut project = Project::native();
    project.backend = None;
    let mut up = project.spawn_up_with(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    project.wait_env(&mut up);
    let said = up.stderr();
    assert!(
        said.contains("backend: native (auto: no Docker engine answered (tried DOCKER_HOST=unix:///nonexistent/docker.sock)"),
        "{said}"
    );
    up.signal("TERM");
    assert!(up.wait().success(), "{}", up.stderr());
}

/// Run as root, postgres runs as an unprivileged account that cannot enter a 0700 project
/// (like /root): the kept cluster lives in /var/lib/devenv/<key>, owned by that account, and
/// nothing of the project needs to be reachable.
#[test]
fn a_private_project_directory_works_as_root() {
    if !nix_is_root() {
        support::skipped(
            "not root: postgres runs as this user and reaches every directory it does",
        );
        return;
    }
    let mut project = Project::new();
    std::fs::set_permissions(
        project.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    project.backend = Some("native");
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    assert_eq!(
        psql_count(var(&vars, "CONNECTION_URL"), "SELECT count(*) FROM users"),
        "3"
    );
    let data = project.data_dir().unwrap();
    assert!(data.starts_with("/var/lib/devenv/"), "{}", data.display());
    up.stop();
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn db_jobs_against_the_local_server_and_another_url() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    let other = format!("{}/other_db", url.rsplit_once('/').unwrap().0);
    let db = |args: &[&str]| {
        let mut all = vec!["db"];
        all.extend_from_slice(args);
        project.run(&all)
    };

    for job in ["create", "schema-load", "seed"] {
        let out = db(&[job, "--url", &other]);
        assert!(out.status.success(), "db {job}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains(":password@"),
            "password shown: {}",
            stderr(&out)
        );
    }
    assert_eq!(psql_count(&other, "SELECT count(*) FROM users"), "3");
    let out = db(&["create", "--url", &other]);
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let out = db(&["drop", "--url", &other]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        query(&other, "SELECT 1").is_none(),
        "dropped database still answers"
    );

    // setup and reset on the local environment go through build-then-swap.
    std::fs::write(
        project.path().join("db/seed.sql"),
        "INSERT INTO public.users (display_name, email, handle, cognito_user_id) VALUES ('A', 'a@x', 'a', 'MOCK');\n",
    )
    .unwrap();
    let out = db(&["setup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "1");
    std::fs::write(
        project.path().join("db/seed.sql"),
        "INSERT INTO nope VALUES (1);\n",
    )
    .unwrap();
    let out = db(&["reset"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("db/seed.sql:1:13: error: relation \"nope\" does not exist"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        psql_count(&url, "SELECT count(*) FROM users"),
        "1",
        "broken reset kept the database"
    );

    // sessions lists a connected client; --kill-idle ends it.
    let mut client = Command::new("psql")
        .args(["-X", "-q", &format!("{url}?application_name=idle_client")])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    client
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"SELECT 1;\n")
        .unwrap();
    wait_until(&up, "the idle client", Duration::from_secs(20), || {
        String::from_utf8_lossy(&db(&["sessions"]).stdout).contains("idle_client")
    });
    let out = db(&["sessions", "--kill-idle"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("ended 1 idle session"),
        "{}",
        stderr(&out)
    );
    assert!(!String::from_utf8_lossy(&db(&["sessions"]).stdout).contains("idle_client"));
    drop(client.stdin.take());
    let _ = client.wait();

    up.stop();
}

#[test]
fn the_prod_guard_refuses_without_yes_and_without_a_terminal() {
    let project = Project::native();
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    // A local stand-in for prod: plain, so the URL says so (`--target prod` verifies TLS
    // unless the URL says otherwise, #21).
    let prod = format!(
        "{}/prod_copy?sslmode=disable",
        url.rsplit_once('/').unwrap().0
    );
    let prod_db = |args: &[&str], yes: bool| {
        let mut cmd = project.command(&[&["db"], args, &["--target", "prod"]].concat());
        if yes {
            cmd.arg("--yes");
        }
        cmd.env("PROD_CONNECTION_URL", &prod)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    assert!(prod_db(&["create"], false).status.success());
    for job in [
        &["drop"][..],
        &["setup"],
        &["seed"],
        &["sessions", "--kill-idle"],
    ] {
        let out = prod_db(job, false);
        assert_eq!(out.status.code(), Some(5), "{job:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("no terminal to confirm on; pass --yes"),
            "{}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("prod (postgresql://postgres:****@"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        query(&prod, "SELECT 1").as_deref(),
        Some("1"),
        "guarded drop dropped"
    );
    let out = prod_db(&["drop"], true);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(query(&prod, "SELECT 1").is_none());
    up.stop();
}

#[test]
fn doctor_reports_each_check_with_its_fix() {
    let project = Project::native();
    let out = project
        .command(&["doctor"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}{}", stderr(&out));
    assert!(
        report.contains("ok   config: database cruddur, backend native"),
        "{report}"
    );
    assert!(
        report.contains("FAIL docker engine: no Docker engine answered"),
        "{report}"
    );
    assert!(
        report.contains("ok   postgres binaries: PostgreSQL"),
        "{report}"
    );
    assert!(
        report.contains("`devenv up` would use: native (configured; binaries found)"),
        "{report}"
    );

    // With backend docker and no engine, doctor fails.
    let out = project
        .command(&["doctor"])
        .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        .env("DEVENV_BACKEND", "docker")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4));
}

/// `backend: external` (#10): a database devenv did not make is never replaced (its oid and a
/// table someone else made survive `up`); a missing one is created, marked and loaded, reused
/// by the next `up`, reloaded on save; devenv never stops that server and leaves nothing of
/// its own there (no `__devenv_next`).
#[test]
fn external_backend_never_replaces_what_devenv_did_not_make() {
    let host = Project::native();
    let mut host_up = host.spawn_up();
    let vars = host.wait_env(&mut host_up);
    let base = var(&vars, "CONNECTION_URL")
        .rsplit_once('/')
        .unwrap()
        .0
        .to_owned();
    let server_url = format!("{base}/postgres");
    // Someone else's database on that server.
    psql_count(&server_url, "CREATE DATABASE theirs");
    let theirs = format!("{base}/theirs");
    psql_count(&theirs, "CREATE TABLE precious (x int)");
    let oid = psql_count(
        &server_url,
        "SELECT oid FROM pg_database WHERE datname = 'theirs'",
    );

    let mut project = Project::native();
    project.backend = Some("external");
    let refused = project
        .command(&["up"])
        .env("DEVENV_URL", &server_url)
        .env("DEVENV_DATABASE", "theirs")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(5), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("was not made by devenv"),
        "{}",
        stderr(&refused)
    );
    assert_eq!(psql_count(&theirs, "SELECT count(*) FROM precious"), "0");
    assert_eq!(
        psql_count(
            &server_url,
            "SELECT oid FROM pg_database WHERE datname = 'theirs'"
        ),
        oid
    );

    // A database that does not exist yet is created, loaded and marked as devenv's.
    let env = [
        ("DEVENV_URL", server_url.as_str()),
        ("DEVENV_DATABASE", "external_app"),
    ];
    let mut up = project.spawn_up_with(&env);
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert!(url.ends_with("/external_app"), "{url}");
    assert!(
        vars.iter().all(|(k, _)| k != "COMPOSE_CONNECTION_URL"),
        "no compose network for an external server: {vars:?}"
    );
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    // A save reloads it: it is devenv's.
    project.add_users_column("bio");
    wait_for_column(&up, &url, "bio");
    up.stop();
    // The server goes on running: it was not ours to stop; nothing of devenv's is left there
    // but the database it made.
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");
    assert_eq!(
        psql_count(
            &server_url,
            "SELECT coalesce(string_agg(datname, ', '), '') FROM pg_database \
             WHERE datname LIKE 'external_app\\_\\_%'"
        ),
        "",
        "devenv's databases left on the external server after up stopped"
    );
    // The next `up` reuses it as it is.
    let mut up = project.spawn_up_with(&env);
    project.wait_env(&mut up);
    assert!(
        up.stderr().contains("reusing external_app"),
        "{}",
        up.stderr()
    );
    up.stop();
    assert_eq!(psql_count(&theirs, "SELECT count(*) FROM precious"), "0");
    host_up.stop();
}

/// `devenv test-dbs` sees what the test fixture made, prunes it and stops the shared server.
#[tokio::test(flavor = "multi_thread")]
async fn test_dbs_lists_prunes_and_stops_the_fixture_server() {
    let project = Project::native();
    // The fixture reads the project's devenv.yaml (this process sets no DEVENV_BACKEND).
    let yaml = project.path().join("devenv.yaml");
    let text = std::fs::read_to_string(&yaml).unwrap();
    std::fs::write(&yaml, text.replace("backend: auto", "backend: native")).unwrap();
    let db = devenv_fixture::TestDb::builder()
        .root(project.path())
        .build()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let name = db.name().to_owned();
    let listing = project.run(&["test-dbs"]);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(listing.status.success(), "{}", stderr(&listing));
    assert!(text.contains("the shared test server"), "{text}");
    assert!(
        text.contains(&name) && text.contains("owner running"),
        "{text}"
    );
    assert!(text.contains("templates (1):"), "{text}");
    drop(db);
    let out = project.run(&["test-dbs", "--prune-all"]);
    assert!(
        stderr(&out).contains("and 1 template(s)"),
        "{}",
        stderr(&out)
    );
    let out = project.run(&["test-dbs", "--stop-server"]);
    assert!(
        stderr(&out).contains("stopped the shared test server"),
        "{}",
        stderr(&out)
    );
    let out = project.run(&["test-dbs"]);
    assert!(
        stderr(&out).contains("no server runs for this project's tests"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn migrations_load_between_schema_and_seed_and_a_new_one_reloads_up() {
    let project = Project::native();
    let dir = project.path();
    std::fs::create_dir_all(dir.join("migrations")).unwrap();
    project.write(
        "migrations/20240101000000_add_bio.sql",
        "ALTER TABLE users ADD COLUMN bio text DEFAULT 'from a migration';\n",
    );
    let yaml = std::fs::read_to_string(dir.join("devenv.yaml")).unwrap();
    project.write("devenv.yaml", &format!("{yaml}\nmigrations: migrations\n"));
    let mut up = project.spawn_up();
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    // The seed's rows came after the migration's column (its default filled them).
    assert_eq!(
        query(
            &url,
            "SELECT count(*) FROM users WHERE bio = 'from a migration'"
        )
        .as_deref(),
        Some("3")
    );
    assert_eq!(
        query(
            &url,
            "SELECT version || ' ' || description FROM _sqlx_migrations"
        )
        .as_deref(),
        Some("20240101000000 add bio")
    );
    // A migration added while `up` runs reloads it.
    project.write(
        "migrations/20240102000000_add_table.sql",
        "CREATE TABLE added_later (id int);\n",
    );
    wait_until(&up, "the added migration", Duration::from_secs(20), || {
        query(&url, "SELECT count(*) FROM _sqlx_migrations").as_deref() == Some("2")
    });
    // A broken one keeps the database and says where.
    project.write(
        "migrations/20240103000000_broken.sql",
        "CREATE TABLE fine (id int);\nSELECT nope;\n",
    );
    wait_until(
        &up,
        "the broken migration's report",
        Duration::from_secs(20),
        || {
            up.stderr()
                .contains("migrations/20240103000000_broken.sql:2:8")
        },
    );
    assert_eq!(
        query(&url, "SELECT count(*) FROM _sqlx_migrations").as_deref(),
        Some("2")
    );
}
