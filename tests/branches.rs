//! A database per git branch (`branches: true`) end to end: `devenv up` (real binary, real
//! server, docker and native) on a git repository made in the test, two branches with
//! different schemas, rows typed in each through CONNECTION_URL, checkouts back and forth:
//! each branch sees its own rows, a switch to a branch's kept database renames it in (its time
//! is printed), the checkout's file events give no reload, a detached HEAD is no switch, a
//! checkout while `up` is down is followed at the next start, a deleted branch's database is
//! pruned, and `snapshot list`/`rm` show and remove branch databases.

mod support;

use std::process::Command;
use std::time::Duration;

use support::{docker_ready, psql_count, query, var, wait_until, Project, Up};

fn git(project: &Project, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(project.path())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The example project as a repository with `branches: true`: `main` has its schema,
/// `feature` adds `users.bio`, `broken`'s schema does not load; `main` is checked out.
fn repository(project: &Project) {
    let config = std::fs::read_to_string(project.path().join("devenv.yaml")).unwrap();
    project.write("devenv.yaml", &format!("{config}\nbranches: true\n"));
    project.write(".gitignore", ".devenv/\nup.log\n");
    git(project, &["init", "-q", "-b", "main"]);
    git(project, &["config", "user.name", "devenv test"]);
    git(project, &["config", "user.email", "test@devenv.invalid"]);
    git(project, &["config", "commit.gpgsign", "false"]);
    git(project, &["add", "-A"]);
    git(project, &["commit", "-q", "-m", "main"]);
    git(project, &["checkout", "-q", "-b", "feature"]);
    project.add_users_column("bio");
    git(project, &["commit", "-q", "-am", "feature: users.bio"]);
    git(project, &["checkout", "-q", "-b", "broken", "main"]);
    let schema = std::fs::read_to_string(project.path().join("db/schema.sql")).unwrap();
    project.write(
        "db/schema.sql",
        &schema.replace("text NOT NULL", "txet NOT NULL"),
    );
    git(
        project,
        &["commit", "-q", "-am", "broken: a type that does not exist"],
    );
    git(project, &["checkout", "-q", "main"]);
}

/// The switch lines `up` printed.
fn switches(up: &Up) -> Vec<String> {
    up.stderr()
        .lines()
        .filter_map(|l| l.split_once("devenv: branch ").map(|(_, s)| s.to_owned()))
        .collect()
}

fn reloads(up: &Up) -> usize {
    up.stderr().matches("devenv: reload [").count()
}

/// Waits for switch number `n` (1-based) and returns its line.
fn wait_switch(up: &Up, n: usize) -> String {
    wait_until(
        up,
        &format!("branch switch {n}"),
        Duration::from_secs(60),
        || switches(up).len() >= n,
    );
    switches(up)[n - 1].clone()
}

/// The milliseconds a switch line says it took.
fn millis(line: &str) -> u64 {
    let (before, _) = line.split_once(" ms").expect("a duration");
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn add_user(url: &str, handle: &str) {
    psql_count(
        url,
        &format!(
            "INSERT INTO users (display_name, handle, email, cognito_user_id) \
             VALUES ('{handle}', '{handle}', '{handle}@example.com', 'typed')"
        ),
    );
}

fn has_user(url: &str, handle: &str) -> bool {
    psql_count(
        url,
        &format!("SELECT count(*) FROM users WHERE handle = '{handle}'"),
    ) == "1"
}

fn has_bio(url: &str) -> bool {
    query(url, "SELECT count(bio) FROM users").is_some()
}

fn snapshot_list(project: &Project) -> serde_json::Value {
    let out = project.run(&["snapshot", "list", "--json"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn branch_databases(project: &Project) -> Vec<String> {
    snapshot_list(project)
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "branch")
        .map(|s| s["name"].as_str().unwrap().to_owned())
        .collect()
}

fn each_branch_keeps_its_rows(project: &Project) {
    repository(project);
    let mut up = project.spawn_up();
    let url = var(&project.wait_env(&mut up), "CONNECTION_URL").to_owned();
    assert!(
        up.stderr().contains("following git branches (on main)"),
        "{}",
        up.stderr()
    );
    back_and_forth(project, &up, &url);
    detached_is_no_switch(project, &up, &url);
    a_broken_branch_keeps_the_database(project, &up, &url);
    deleted_and_followed_while_down(project, up);
}

/// main -> feature (built), feature -> main and main -> feature (renamed in), rows typed in
/// each; no reload after the checkouts.
fn back_and_forth(project: &Project, up: &Up, url: &str) {
    add_user(url, "typed_on_main");

    git(project, &["checkout", "-q", "feature"]);
    let line = wait_switch(up, 1);
    assert!(
        line.starts_with("main -> feature: built from its files in ")
            && line.contains("(main's kept)"),
        "{line}"
    );
    assert!(has_bio(url), "feature's schema");
    add_user(url, "typed_on_feature");
    let built_ms = millis(&line);

    git(project, &["checkout", "-q", "main"]);
    let line = wait_switch(up, 2);
    assert!(
        line.starts_with("feature -> main: swapped in main's database in ")
            && line.ends_with("(feature's kept)"),
        "{line}"
    );
    assert!(!has_bio(url), "main's schema");
    assert!(has_user(url, "typed_on_main"));
    assert!(!has_user(url, "typed_on_feature"));
    let to_main_ms = millis(&line);

    git(project, &["checkout", "-q", "feature"]);
    let line = wait_switch(up, 3);
    assert!(
        line.starts_with("main -> feature: swapped in feature's database in "),
        "{line}"
    );
    assert!(has_bio(url));
    assert!(has_user(url, "typed_on_feature"));
    let to_feature_ms = millis(&line);
    eprintln!(
        "{}: switch to a new branch (built from its files) {built_ms} ms; to a kept branch database (renames) {to_main_ms} ms and {to_feature_ms} ms",
        project.backend.unwrap_or("auto")
    );
    // The checkouts' own file events were the switches': no reload came after them.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(reloads(up), 0, "{}", up.stderr());
    assert_eq!(branch_databases(project), ["branch:main"]);
}

/// A detached HEAD is no switch: its files reload the live database, which stays feature's;
/// coming back to feature is no switch either.
fn detached_is_no_switch(project: &Project, up: &Up, url: &str) {
    git(project, &["checkout", "-q", "--detach", "main"]);
    wait_until(
        up,
        "the detached checkout's reload",
        Duration::from_secs(30),
        || reloads(up) == 1,
    );
    assert!(!has_bio(url), "the detached checkout's files");
    git(project, &["checkout", "-q", "feature"]);
    wait_until(
        up,
        "the reload back on feature",
        Duration::from_secs(30),
        || reloads(up) == 2,
    );
    assert!(has_bio(url));
    assert_eq!(switches(up).len(), 3, "{}", up.stderr());
    assert_eq!(branch_databases(project), ["branch:main"]);
}

/// A switch to a branch whose files do not load keeps the database of the branch followed
/// (the switch line 4): back on that branch is no switch.
fn a_broken_branch_keeps_the_database(project: &Project, up: &Up, url: &str) {
    git(project, &["checkout", "-q", "broken"]);
    let line = wait_switch(up, 4);
    assert!(
        line.starts_with("feature -> broken: failed after ")
            && line.ends_with("kept feature's database (the next change tries again)"),
        "{line}"
    );
    assert!(
        up.stderr().contains("error: type \"txet\" does not exist"),
        "{}",
        up.stderr()
    );
    assert!(has_bio(url) && has_user(url, "typed_on_feature"));
    assert_eq!(branch_databases(project), ["branch:main"]);
    git(project, &["checkout", "-q", "feature"]);
    wait_until(
        up,
        "the reload back on feature",
        Duration::from_secs(30),
        || reloads(up) == 3,
    );
    assert_eq!(switches(up).len(), 4, "{}", up.stderr());
    assert!(has_bio(url) && has_user(url, "typed_on_feature"));
}

/// A branch made, left and deleted; then a checkout while `up` is down: followed at the
/// next start, which prunes the deleted branch's database; `snapshot list`, `save`, `rm`.
fn deleted_and_followed_while_down(project: &Project, mut up: Up) {
    git(project, &["checkout", "-q", "-b", "gone"]);
    let line = wait_switch(&up, 5);
    assert!(line.starts_with("feature -> gone: "), "{line}");
    git(project, &["checkout", "-q", "feature"]);
    let line = wait_switch(&up, 6);
    assert!(
        line.starts_with("gone -> feature: swapped in feature's database"),
        "{line}"
    );
    git(project, &["branch", "-q", "-D", "gone"]);
    let mut names = branch_databases(project);
    names.sort();
    assert_eq!(names, ["branch:gone", "branch:main"]);
    up.stop();

    git(project, &["checkout", "-q", "main"]);
    let mut up = project.spawn_up_with(&[("DEVENV_BRANCH_PRUNE_AFTER", "0s")]);
    let url = var(&project.wait_env(&mut up), "CONNECTION_URL").to_owned();
    let stderr = up.stderr();
    assert!(
        stderr.contains("removed the database of deleted branch gone"),
        "{stderr}"
    );
    let line = switches(&up).first().cloned().unwrap_or_default();
    assert!(
        line.starts_with("feature -> main: swapped in main's database"),
        "{stderr}"
    );
    assert!(stderr.contains("reusing cruddur"), "{stderr}");
    assert!(has_user(&url, "typed_on_main"));
    assert!(!has_bio(&url));
    assert_eq!(branch_databases(project), ["branch:feature"]);

    let text = project.run(&["snapshot", "list"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.lines()
            .any(|l| l.starts_with("branch:feature ") && l.ends_with("branch")),
        "{text}"
    );
    let out = project.run(&["snapshot", "save", "branch:mine"]);
    assert!(!out.status.success());
    assert!(
        support::stderr(&out).contains("git branches' databases"),
        "{}",
        support::stderr(&out)
    );
    let out = project.run(&["snapshot", "rm", "branch:feature"]);
    assert!(out.status.success(), "{}", support::stderr(&out));
    assert!(branch_databases(project).is_empty());
    up.stop();
}

#[test]
fn each_branch_keeps_its_rows_native() {
    each_branch_keeps_its_rows(&Project::native());
}

#[test]
fn each_branch_keeps_its_rows_docker() {
    if !docker_ready() {
        return;
    }
    each_branch_keeps_its_rows(&Project::new());
}
