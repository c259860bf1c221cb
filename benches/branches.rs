//! A git branch switch under `devenv up` with `branches: true` (issue 24's target: under
//! 100 ms to a branch's kept database): the example project as a repository, `main` and
//! `feature` (which adds `users.bio`), each with `BENCH_ROWS` typed users (default 10,000) and
//! an activity each, then `BENCH_RUNS` checkouts back and forth (default 20). Printed: the
//! switch as `up` times it (the renames, from the rebuild lock to the open database) and
//! from `git checkout`'s start to the database answering with the branch's schema (the
//! checkout itself, the watcher, the wait for git's index and HEAD, the switch).
//!
//! Run: `cargo bench --bench branches` (native PostgreSQL; git).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_example, ms, percentile};

const BIN: &str = env!("CARGO_BIN_EXE_devenv");

fn git(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", url, "-c", sql])
        .stderr(Stdio::null())
        .output()
        .expect("psql");
    if out.status.success() {
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    } else {
        String::new()
    }
}

/// The milliseconds of the switch lines in `log` (`... in N ms ...`).
fn switch_times(log: &str) -> Vec<Duration> {
    log.lines()
        .filter(|l| l.contains("devenv: branch ") && l.contains("swapped in"))
        .filter_map(|l| {
            let (before, _) = l.split_once(" ms")?;
            before.rsplit(' ').next()?.parse().ok()
        })
        .map(Duration::from_millis)
        .collect()
}

/// The example project as a repository with `branches: true`: `main`, and `feature` which
/// adds `users.bio`; `main` checked out.
fn repository(root: &std::path::Path) {
    let config = std::fs::read_to_string(root.join("devenv.yaml")).unwrap();
    std::fs::write(
        root.join("devenv.yaml"),
        format!("{config}\nbranches: true\n"),
    )
    .unwrap();
    std::fs::write(root.join(".gitignore"), ".devenv/\nup.log\n").unwrap();
    git(root, &["init", "-q", "-b", "main"]);
    git(root, &["config", "user.name", "devenv bench"]);
    git(root, &["config", "user.email", "bench@devenv.invalid"]);
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", "main"]);
    git(root, &["checkout", "-q", "-b", "feature"]);
    let schema = std::fs::read_to_string(root.join("db/schema.sql")).unwrap();
    let feature = schema.replace(
        "  email text NOT NULL,",
        "  email text NOT NULL,\n  bio text,",
    );
    std::fs::write(root.join("db/schema.sql"), feature).unwrap();
    git(root, &["commit", "-q", "-am", "feature"]);
    git(root, &["checkout", "-q", "main"]);
}

/// `devenv up` (native) in `root`, its stderr into `log`, once ready; with CONNECTION_URL.
fn start_up(root: &std::path::Path, log: &std::path::Path) -> (std::process::Child, String) {
    let up = Command::new(BIN)
        .arg("up")
        .current_dir(root)
        .env("DEVENV_BACKEND", "native")
        .env("DEVENV_PORT", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !root.join(".devenv/env").exists() {
        assert!(Instant::now() < deadline, "devenv up not ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let env = std::fs::read_to_string(root.join(".devenv/env")).unwrap();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("CONNECTION_URL="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    (up, url)
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let rows: usize = std::env::var("BENCH_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = copy_example("devenv-bench-branches-");
    let root = dir.path();
    repository(root);
    let log = root.join("up.log");
    let (mut up, url) = start_up(root, &log);
    let has_bio = || !psql(&url, "SELECT count(bio) FROM users").is_empty();
    let answers = |bio: bool| {
        let deadline = Instant::now() + Duration::from_secs(30);
        while has_bio() != bio {
            assert!(Instant::now() < deadline, "no switch");
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    let type_rows = |tag: &str| {
        psql(
            &url,
            &format!(
                "INSERT INTO users (display_name, handle, email, cognito_user_id) \
                 SELECT 'u' || i, '{tag}' || i, i || '@example.com', 'typed' \
                 FROM generate_series(1, {rows}) i; \
                 INSERT INTO activities (user_uuid, message) \
                 SELECT uuid, 'typed on {tag}' FROM users WHERE handle LIKE '{tag}%'"
            ),
        );
    };
    type_rows("main_");
    git(root, &["checkout", "-q", "feature"]);
    answers(true);
    type_rows("feature_");
    let mut end_to_end = Vec::new();
    for i in 0..runs {
        // An idle server, as a developer's checkouts find it.
        std::thread::sleep(Duration::from_millis(500));
        let (branch, bio) = if i % 2 == 0 {
            ("main", false)
        } else {
            ("feature", true)
        };
        let started = Instant::now();
        git(root, &["checkout", "-q", branch]);
        answers(bio);
        end_to_end.push(started.elapsed());
    }
    std::thread::sleep(Duration::from_millis(200));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut switches = switch_times(&text);
    assert_eq!(switches.len(), runs, "{text}");
    let users = psql(&url, "SELECT count(*) FROM users");
    println!(
        "git branch switches to a kept branch database, {runs} runs, native PostgreSQL; {rows} users and as many activities typed in each branch (feature has {users} users: main's were carried in when it was built):"
    );
    println!(
        "  the switch (renames, as up times it)        p50 {:>7.1} ms   p95 {:>7.1} ms",
        ms(percentile(&mut switches, 0.5)),
        ms(percentile(&mut switches, 0.95))
    );
    println!(
        "  git checkout to the branch's schema answering p50 {:>7.1} ms   p95 {:>7.1} ms",
        ms(percentile(&mut end_to_end, 0.5)),
        ms(percentile(&mut end_to_end, 0.95))
    );
    let reloads = text.matches("devenv: reload [").count();
    println!("  reloads after the checkouts: {reloads}");
    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let _ = up.wait();
    let _ = Command::new(BIN)
        .args(["down", "--volumes"])
        .current_dir(root)
        .env("DEVENV_BACKEND", "native")
        .output();
}
