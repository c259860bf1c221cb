//! psql variables from outside: a setup script written for `psql -v NAME=VALUE -f` loads
//! unedited with `vars:` in devenv.yaml (values from the environment too) and `--set` on
//! `up`, `up -d`, `reload` and the `db` jobs, with the same result as psql 15 given the same
//! `-v`; secret values never appear in what devenv prints. Native backend.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{query, stderr, var, wait_until, Project};

/// A setup script as written for `psql -v USER_NAME=... -v USER_PASSWORD=... -v DB_VERSION=...`.
const SETUP: &str = "SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'USER_NAME') AS new_user \\gset\n\
    \\if :new_user\n  CREATE USER :USER_NAME PASSWORD :'USER_PASSWORD';\n\\else\n  ALTER USER :USER_NAME PASSWORD :'USER_PASSWORD';\n\\endif\n\
    CREATE TABLE app_meta (version text, owner text);\n\
    INSERT INTO app_meta VALUES (:'DB_VERSION', :'USER_NAME');\n\
    \\echo setup for :USER_NAME version :DB_VERSION pw :USER_PASSWORD\n";

const META: &str = "SELECT version || ' ' || owner FROM app_meta";

fn project(user: &str) -> Project {
    let project = Project::native();
    project.write("db/setup.sql", SETUP);
    let yaml = std::fs::read_to_string(project.path().join("devenv.yaml")).unwrap();
    let yaml = yaml.replace(
        "  - db/schema.sql\n",
        "  - db/schema.sql\n  - db/setup.sql\n",
    );
    project.write(
        "devenv.yaml",
        &format!("{yaml}vars:\n  USER_NAME: {user}\n  USER_PASSWORD: ${{TEST_APP_PASSWORD}}\n"),
    );
    project
}

/// The URL of `url`'s server as `user` with `password`.
fn as_user(url: &str, user: &str, password: &str) -> String {
    let at = url.find('@').unwrap();
    format!("postgresql://{user}:{password}{}", &url[at..])
}

#[test]
fn a_psql_v_setup_script_loads_with_vars_and_set_as_psql_loads_it() {
    let user = format!("app_{}", std::process::id());
    let password = "Sekrit-9f3e";
    let project = project(&user);
    let env = [("TEST_APP_PASSWORD", password)];

    // A variable the environment does not set is a config error naming it, before anything.
    let out = project.run(&["up", "--set", "DB_VERSION=1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let yaml = std::fs::read_to_string(project.path().join("devenv.yaml")).unwrap();
    let line = yaml
        .lines()
        .position(|l| l.contains("${TEST_APP_PASSWORD}"))
        .unwrap()
        + 1;
    assert!(
        stderr(&out).contains(&format!(
            "devenv.yaml:{line}: vars.USER_PASSWORD: environment variable `TEST_APP_PASSWORD` is not set"
        )),
        "{}",
        stderr(&out)
    );

    let mut up = project.spawn(&["up", "--set", "DB_VERSION=1"], &env);
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert_eq!(
        query(&url, META).as_deref(),
        Some(format!("1 {user}").as_str())
    );
    // The password was set as given: the role logs in with it.
    assert_eq!(
        query(&as_user(&url, &user, password), "SELECT current_user").as_deref(),
        Some(user.as_str())
    );
    // Printed masked: a secret by its name and because it came from the environment.
    let said = up.stderr();
    assert!(
        said.contains(&format!("setup for {user} version 1 pw ****")),
        "{said}"
    );
    assert!(!said.contains(password), "{said}");
    assert!(!project.path().join(".devenv/set.json").exists());

    // `devenv reload --set` reaches the running supervisor; its values stay for later reloads.
    let out = project
        .command(&["reload", "--set", "DB_VERSION=2"])
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    wait_until(
        &up,
        "a reload with DB_VERSION=2",
        Duration::from_secs(30),
        || query(&url, META).is_some_and(|v| v.starts_with("2 ")),
    );
    project.add_users_column("bio");
    wait_until(&up, "a reload of the edit", Duration::from_secs(30), || {
        query(&url, "SELECT count(bio) FROM users").is_some()
    });
    assert_eq!(
        query(&url, META).as_deref(),
        Some(format!("2 {user}").as_str())
    );

    // The db jobs take --set too.
    let out = project
        .command(&["db", "setup", "--set", "DB_VERSION=3"])
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        query(&url, META).as_deref(),
        Some(format!("3 {user}").as_str())
    );
    assert!(!stderr(&out).contains(password), "{}", stderr(&out));
    up.stop();
    assert!(!up.stderr().contains(password));
    let out = project.run(&["down", "--volumes"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn set_reaches_a_background_up_and_builds_what_psql_v_builds() {
    let user = format!("app_d{}", std::process::id());
    let password = "Sekrit-b7a1";
    let project = project(&user);
    let env = [("TEST_APP_PASSWORD", password)];
    // In the background: the values reach the supervisor without a command line.
    let out = project
        .command(&["up", "-d", "--set", "DB_VERSION=4"])
        .envs(env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let env_file = std::fs::read_to_string(project.env_file()).unwrap();
    let url = env_file
        .lines()
        .find_map(|l| {
            l.strip_prefix("CONNECTION_URL=")
                .map(|u| u.trim_matches('"').to_owned())
        })
        .expect("the URL in .devenv/env");
    assert_eq!(
        query(&url, META).as_deref(),
        Some(format!("4 {user}").as_str())
    );
    assert!(!project.path().join(".devenv/set.json").exists());
    let down = project.run(&["down"]);
    assert!(down.status.success(), "{}", stderr(&down));

    // psql 15 with the same `-v` values builds the same.
    let psql_db = format!("vars_psql_{}", std::process::id());
    let mut up = project.spawn(&["up", "--set", "DB_VERSION=5"], &env);
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    query(&url, &format!("CREATE DATABASE {psql_db}")).unwrap();
    let psql_url = url.replace("/cruddur", &format!("/{psql_db}"));
    let out = Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &psql_url])
        .args([
            "-v",
            &format!("USER_NAME={user}"),
            "-v",
            &format!("USER_PASSWORD={password}"),
        ])
        .args(["-v", "DB_VERSION=5", "-f", "db/setup.sql"])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("setup for {user} version 5 pw {password}")
    );
    assert_eq!(query(&psql_url, META), query(&url, META));
    assert_eq!(
        query(&url, META).as_deref(),
        Some(format!("5 {user}").as_str())
    );
    up.stop();
    // The role is the server's, not the database's: it goes with the kept data.
    let out = project.run(&["down", "--volumes"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
