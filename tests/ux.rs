//! The user-facing side of devenv end to end (issue #14), with the real binary: `up -d` and
//! its log, status and stop; progress and colour on a terminal (a pseudo-terminal from
//! util-linux `script`) and their absence elsewhere; completions; `--json` documents; a closed
//! stdout; `db` jobs on a `backend: external` server; the dotenv file direnv reads; help texts
//! and the README's command table.
//!
//! Native servers where the item is not about Docker (faster); one test runs `up -d` on the
//! Docker engine with the local test image (DEVENV_TEST_IMAGE). Without an engine that test
//! fails with a message; `DEVENV_SKIP_DOCKER_TESTS=1` is the only way to skip it.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{docker_ready, process_alive, psql_count, query, Project, BIN};

const README: &str = include_str!("../README.md");

/// `error` as devenv styles it on a terminal: bold red.
const RED_ERROR: &str = "\u{1b}[1m\u{1b}[31merror\u{1b}[0m";
/// `warning`: bold yellow.
const YELLOW_WARNING: &str = "\u{1b}[1m\u{1b}[33mwarning\u{1b}[0m";
/// The caret under a SQL error's column: bold red.
const RED_CARET: &str = "\u{1b}[1m\u{1b}[31m^\u{1b}[0m";
/// The report's gutter (`12 |`): bold blue.
const BLUE_GUTTER: &str = "\u{1b}[1m\u{1b}[34m";

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The project's canonical root, as devenv names it to its processes.
fn root(project: &Project) -> PathBuf {
    project.path().canonicalize().unwrap()
}

/// A command of `project` whose kept native data lives inside the project (when root), so
/// every process of its environment names the project's directory on its command line.
fn cmd(project: &Project, args: &[&str]) -> Command {
    let mut cmd = project.command(args);
    cmd.env("DEVENV_DATA_HOME", root(project).join("data"))
        .stdin(Stdio::null());
    cmd
}

fn run(project: &Project, args: &[&str]) -> Output {
    cmd(project, args).output().unwrap()
}

/// Runs and asserts success.
fn ok(project: &Project, args: &[&str]) -> Output {
    let out = run(project, args);
    assert!(
        out.status.success(),
        "devenv {args:?} exited with {}:\n{}{}",
        out.status,
        stdout(&out),
        stderr(&out)
    );
    out
}

fn json(project: &Project, args: &[&str]) -> Value {
    let out = run(project, args);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "devenv {args:?}: not one JSON document ({e}):\n{}{}",
            stdout(&out),
            stderr(&out)
        )
    })
}

/// `devenv up -d`, asserted ready; returns the exported variables (`env --format json`).
fn up_d(project: &Project) -> Value {
    ok(project, &["up", "-d"]);
    json(project, &["env", "--format", "json"])
}

/// Processes (not zombies, not this one) whose command line names `path`.
fn processes_naming(path: &Path) -> Vec<String> {
    let needle = path.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == std::process::id() || !process_alive(pid) {
            continue;
        }
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn wait_for(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `text` holds an SGR sequence (colour or bold): `ESC [ digits;... m`.
fn has_sgr(text: &str) -> bool {
    text.match_indices("\u{1b}[").any(|(i, _)| {
        let rest = &text[i + 2..];
        let params = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ';'))
            .unwrap_or(rest.len());
        rest[params..].starts_with('m')
    })
}

fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// `devenv args` under a pseudo-terminal (util-linux `script`), with `project`'s environment
/// and a colour-capable TERM; what the terminal showed goes to `screen`.
fn under_pty(project: &Project, args: &[&str], screen: &Path) -> Command {
    let inner = cmd(project, args);
    let line = std::iter::once(BIN)
        .chain(args.iter().copied())
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ");
    let mut script = Command::new("script");
    script
        .args(["-qfec", &line, "/dev/null"])
        .current_dir(project.path())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(screen).unwrap())
        .stderr(Stdio::null());
    for (key, value) in inner.get_envs() {
        match value {
            Some(value) => script.env(key, value),
            None => script.env_remove(key),
        };
    }
    script
        .env("TERM", "xterm-256color")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR");
    script
}

fn read(path: &Path) -> String {
    String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned()
}

/// Follows a command's stdout into a string, in a thread.
struct Follow {
    child: std::process::Child,
    seen: Arc<Mutex<String>>,
}

impl Follow {
    fn start(mut command: Command) -> Follow {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let out = child.stdout.take().unwrap();
        let seen = Arc::new(Mutex::new(String::new()));
        let into = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let mut seen = into.lock().unwrap();
                seen.push_str(&line);
                seen.push('\n');
            }
        });
        Follow { child, seen }
    }

    fn text(&self) -> String {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const STATUS_KEYS: [&str; 11] = [
    "running",
    "pid",
    "detached",
    "started_at",
    "ready",
    "backend",
    "database",
    "port",
    "urls",
    "data",
    "stale_pid",
];

fn keys(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect()
}

fn is_rfc3339_utc(text: &str) -> bool {
    let b = text.as_bytes();
    text.len() == 20
        && b[4] == b'-'
        && b[7] == b'-'
        && b[10] == b'T'
        && b[13] == b':'
        && b[16] == b':'
        && b[19] == b'Z'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| [4, 7, 10, 13, 16, 19].contains(&i) || c.is_ascii_digit())
}

/// Appends `sql` to the project's db/seed.sql; returns the whole file.
fn append_to_seed(project: &Project, sql: &str) -> String {
    let seed = project.path().join("db/seed.sql");
    let mut text = std::fs::read_to_string(&seed).unwrap();
    text.push_str(sql);
    std::fs::write(&seed, &text).unwrap();
    text
}

/// `status --json` when nothing runs: exit 1, the same keys as when something does.
fn not_running(project: &Project) -> Value {
    let status = run(project, &["status", "--json"]);
    assert_eq!(status.status.code(), Some(1));
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(keys(&status), names(&STATUS_KEYS));
    status
}

fn names(keys: &[&str]) -> BTreeSet<String> {
    keys.iter().map(|k| (*k).to_owned()).collect()
}

/// `status --json` of a running `up -d` at `url`: documented fields, detached, since when.
/// Returns the supervisor's pid and the port.
fn running_status(project: &Project, url: &str) -> (u32, u64) {
    let status = json(project, &["status", "--json"]);
    assert_eq!(keys(&status), names(&STATUS_KEYS));
    assert_eq!(status["running"], true);
    assert_eq!(status["detached"], true);
    assert_eq!(status["ready"], true);
    assert_eq!(status["backend"], "native");
    assert_eq!(status["database"], "cruddur");
    assert!(status["stale_pid"].is_null());
    assert!(
        is_rfc3339_utc(status["started_at"].as_str().unwrap()),
        "{status}"
    );
    let port = status["port"].as_u64().unwrap();
    assert!(
        url.contains(&format!("@127.0.0.1:{port}/")),
        "{url} {status}"
    );
    assert_eq!(
        status["urls"]["CONNECTION_URL"],
        url.replace(":password@", ":****@")
    );
    assert_eq!(status["data"]["kept"], true);
    assert!(
        status["data"]["size_bytes"].as_u64().unwrap() > 0,
        "{status}"
    );
    let pid = u32::try_from(status["pid"].as_u64().unwrap()).unwrap();
    assert!(process_alive(pid));
    (pid, port)
}

/// `snapshot list --json` and `test-dbs --json` with `up` running (pid, port): their fields.
fn snapshot_and_test_dbs_json(project: &Project, pid: u32, port: u64) {
    // snapshot list --json: its documented fields.
    ok(project, &["snapshot", "save", "mine"]);
    let snapshots = json(project, &["snapshot", "list", "--json"]);
    let mine = snapshots
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "mine")
        .unwrap_or_else(|| panic!("{snapshots}"));
    assert_eq!(
        keys(mine),
        names(&["name", "database", "created_at", "size_bytes", "kind"])
    );
    assert_eq!(mine["kind"], "manual");
    assert!(is_rfc3339_utc(mine["created_at"].as_str().unwrap()));

    // test-dbs --json names the running up as the tests' server.
    let inventory = json(project, &["test-dbs", "--json"]);
    assert_eq!(inventory["server"]["source"], "up", "{inventory}");
    assert_eq!(inventory["server"]["pid"], pid, "{inventory}");
    assert_eq!(inventory["server"]["port"], port, "{inventory}");
}

#[test]
fn up_d_is_ready_on_return_then_logs_status_reload_snapshot_and_down() {
    let project = Project::native();
    let started = Instant::now();
    let out = ok(&project, &["up", "-d"]);
    let took = started.elapsed();
    let said = stderr(&out);
    assert!(
        said.contains("CONNECTION_URL=postgresql://postgres:****@127.0.0.1:"),
        "{said}"
    );
    assert!(said.contains("running in the background (pid "), "{said}");
    assert!(!said.contains(":password@"), "{said}");

    // Ready on return: the database answers with the seed, at once.
    let env = json(&project, &["env", "--format", "json"]);
    let url = env["CONNECTION_URL"].as_str().unwrap().to_owned();
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "3");

    let (pid, port) = running_status(&project, &url);
    let text = stderr(&ok(&project, &["status"]));
    assert!(text.contains("detached since "), "{text}");
    assert!(took < Duration::from_secs(60), "up -d took {took:?}");

    // logs: the supervisor's output, the last N lines, the server's log.
    // The supervisor writes its ready state (which `up -d` waits for), then its ready line.
    wait_for("the ready line in the log", Duration::from_secs(10), || {
        stdout(&ok(&project, &["logs"])).contains("devenv: ready in ")
    });
    let logs = stdout(&ok(&project, &["logs"]));
    assert!(
        logs.contains("devenv: loaded db/schema.sql, db/seed.sql"),
        "{logs}"
    );
    assert!(!has_sgr(&logs) && !logs.contains('\r'), "{logs:?}");
    let last = stdout(&ok(&project, &["logs", "-n", "1"]));
    assert_eq!(last.lines().count(), 1, "{last}");
    assert_eq!(last.lines().next(), logs.lines().last());
    let server = stdout(&ok(&project, &["logs", "--server"]));
    assert!(
        server.contains("database system is ready to accept connections"),
        "{server}"
    );

    // A reload shows in `logs -f`.
    let follow = Follow::start(cmd(&project, &["logs", "-f", "-n", "0"]));
    std::thread::sleep(Duration::from_millis(300));
    append_to_seed(&project, "\nINSERT INTO public.users (display_name, email, handle, cognito_user_id) VALUES ('Z', 'z@x', 'zed', 'MOCK');\n",
    );
    wait_for("the reload in logs -f", Duration::from_secs(60), || {
        follow.text().contains("devenv: reload [db/seed.sql]: ok")
    });
    assert_eq!(psql_count(&url, "SELECT count(*) FROM users"), "4");
    assert!(
        !follow.text().contains("devenv: loaded db/schema.sql"),
        "-n 0 printed old lines: {}",
        follow.text()
    );

    snapshot_and_test_dbs_json(&project, pid, port);

    // down: nothing of the environment runs any more; logs -f ends by itself.
    let mut follow = follow;
    ok(&project, &["down"]);
    assert!(!process_alive(pid), "the supervisor still runs");
    let left = processes_naming(&root(&project));
    assert!(left.is_empty(), "left running: {left:?}");
    wait_for("logs -f to end", Duration::from_secs(10), || {
        follow.child.try_wait().unwrap().is_some()
    });
    let status = not_running(&project);
    assert_eq!(status["running"], false);
    assert!(status["pid"].is_null() && status["started_at"].is_null());
}

#[test]
fn up_d_on_a_broken_schema_exits_3_with_the_report_and_leaves_nothing() {
    let project = Project::native();
    std::fs::write(
        project.path().join("db/schema.sql"),
        "CREATE TABLE a (x int);\nCREATE TABLE b (y nosuchtype);\n",
    )
    .unwrap();
    let out = run(&project, &["up", "-d"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("db/schema.sql:2:19: error: type \"nosuchtype\" does not exist"),
        "{said}"
    );
    assert!(said.contains("  |                   ^"), "{said}");
    assert!(said.contains("nothing is left running"), "{said}");
    assert!(!has_sgr(&said), "colour without a terminal: {said:?}");
    assert!(!project.path().join(".devenv/state.json").exists());
    let left = processes_naming(&root(&project));
    assert!(left.is_empty(), "left running: {left:?}");
    assert_eq!(run(&project, &["status"]).status.code(), Some(1));

    // On a terminal the report comes back in colour.
    let screen = project.path().join("screen");
    let status = under_pty(&project, &["up", "-d"], &screen)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3), "{}", read(&screen));
    let shown = read(&screen);
    assert!(shown.contains(RED_ERROR), "{shown:?}");
    assert!(shown.contains(RED_CARET), "{shown:?}");
    assert!(
        shown.contains("\u{1b}[1mdb/schema.sql:2:19\u{1b}[0m"),
        "{shown:?}"
    );
    let left = processes_naming(&root(&project));
    assert!(left.is_empty(), "left running: {left:?}");
}

#[test]
fn interrupting_up_d_while_it_starts_stops_the_background_supervisor() {
    let project = Project::native();
    append_to_seed(&project, "\nSELECT pg_sleep(5);\n");
    let said = project.path().join("said");
    let mut up = cmd(&project, &["up", "-d"])
        .stderr(std::fs::File::create(&said).unwrap())
        .spawn()
        .unwrap();
    let log = project.path().join(".devenv/up.log");
    wait_for("the server to start", Duration::from_secs(60), || {
        read(&log).contains("devenv: backend: native")
    });
    assert!(up.try_wait().unwrap().is_none(), "{}", read(&said));
    let status = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = up.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{}", read(&said));
    assert!(
        read(&said).contains("interrupted: stopping the background supervisor"),
        "{}",
        read(&said)
    );
    let left = processes_naming(&root(&project));
    assert!(left.is_empty(), "left running: {left:?}");
    assert!(!project.path().join(".devenv/state.json").exists());
}

#[test]
fn docker_up_d_serves_queries_shows_the_container_log_and_down_removes_it() {
    if !docker_ready() {
        return;
    }
    let project = Project::new();
    let env = up_d(&project);
    let url = env["CONNECTION_URL"].as_str().unwrap();
    assert_eq!(psql_count(url, "SELECT count(*) FROM activities"), "1");
    let status = json(&project, &["status", "--json"]);
    assert_eq!(status["backend"], "docker");
    assert_eq!(status["detached"], true);
    assert_eq!(project.containers().len(), 1);
    let server = stdout(&ok(&project, &["logs", "--server", "-n", "200"]));
    assert!(
        server.contains("database system is ready to accept connections"),
        "{server}"
    );
    let pid = u32::try_from(status["pid"].as_u64().unwrap()).unwrap();
    ok(&project, &["down"]);
    assert!(!process_alive(pid), "the supervisor still runs");
    assert!(project.containers().is_empty(), "container left after down");
    assert!(query(url, "SELECT 1").is_none(), "the server still answers");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let project = Project::native();
    up_d(&project);
    // ripgrep's rule, literally: `devenv env | head -1` exits 0 and says nothing.
    let out = Command::new("bash")
        .args([
            "-c",
            &format!("set -o pipefail; {} env | head -1", shell_quote(BIN)),
        ])
        .current_dir(project.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("export CONNECTION_URL="),
        "{out:?}"
    );
    assert_eq!(stderr(&out), "");
    // And deterministically: stdout closed before the first write.
    for args in [
        &["env"][..],
        &["env", "--format", "json"],
        &["status", "--json"],
        &["logs"],
        &["completions", "bash"],
        &["--help"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = cmd(&project, args).stdout(writer).output().unwrap();
        assert!(
            out.status.success(),
            "devenv {args:?} into a closed pipe: {}",
            out.status
        );
        assert_eq!(stderr(&out), "", "devenv {args:?}");
    }
}

#[test]
fn completion_scripts_load_and_bash_completes_subcommands() {
    let script = format!(
        "source <({} completions bash) && complete -p devenv && \
         COMP_WORDS=(devenv sna) COMP_CWORD=1 COMP_LINE='devenv sna' COMP_POINT=10 && _devenv devenv sna devenv && \
         echo \"words: ${{COMPREPLY[*]}}\"",
        shell_quote(BIN)
    );
    let out = Command::new("bash").args(["-c", &script]).output().unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("complete "), "{}", stdout(&out));
    assert!(stdout(&out).contains("words: snapshot"), "{}", stdout(&out));
    assert_eq!(stderr(&out), "");
    for shell in ["zsh", "fish", "powershell", "elvish"] {
        let out = Command::new(BIN)
            .args(["completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success(), "{shell}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains("devenv") && text.contains("snapshot") && text.len() > 1000,
            "{shell}: {text}"
        );
    }
    let out = Command::new(BIN)
        .args(["completions", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

/// A project whose devenv.yaml names an external server: `backend: external`, `url`.
fn external(url: &str, database: &str) -> Project {
    let mut project = Project::native();
    project.backend = Some("external");
    std::fs::write(
        project.path().join("devenv.yaml"),
        format!("database: {database}\nbackend: external\nurl: {url}\n"),
    )
    .unwrap();
    project
}

#[test]
fn db_jobs_use_the_external_server_without_up_and_guard_it() {
    let server = Project::native();
    let env = up_d(&server);
    let live = env["CONNECTION_URL"].as_str().unwrap().to_owned();
    let base = live.rsplit_once('/').unwrap().0.to_owned();

    // No `up` runs in this project: `db setup` builds the database on the external server,
    // without --url and without asking (loopback, and the database does not exist yet).
    let project = external(&format!("{base}/postgres"), "ext_app");
    let out = run(&project, &["db", "setup"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("on the external server (postgresql://postgres:****@127.0.0.1:"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        psql_count(&format!("{base}/ext_app"), "SELECT count(*) FROM users"),
        "3"
    );
    // Now it is this project's: every job goes ahead without asking.
    for job in [
        &["db", "setup"][..],
        &["db", "drop"],
        &["db", "create"],
        &["db", "schema-load"],
        &["db", "seed"],
        &["db", "sessions"],
    ] {
        let out = run(&project, job);
        assert!(out.status.success(), "{job:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("external server") || job == ["db", "sessions"],
            "{job:?}: {}",
            stderr(&out)
        );
    }
    assert_eq!(
        psql_count(&format!("{base}/ext_app"), "SELECT count(*) FROM users"),
        "3"
    );

    // A loopback server's database that is not this project's: asked, so refused here.
    let other = external(&format!("{base}/postgres"), "cruddur");
    let out = run(&other, &["db", "drop"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no terminal to confirm on; pass --yes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(query(&live, "SELECT 1").as_deref(), Some("1"));

    // A remote external server counts as remote: refused before any connection.
    let remote = external(
        "postgresql://postgres:secret@db.example.invalid:5432/postgres",
        "app",
    );
    for job in [&["db", "drop"][..], &["db", "setup"], &["db", "seed"]] {
        let out = run(&remote, job);
        assert_eq!(out.status.code(), Some(5), "{job:?}: {}", stderr(&out));
        assert!(
            stderr(&out)
                .contains("the external server (postgresql://postgres:****@db.example.invalid"),
            "{}",
            stderr(&out)
        );
        assert!(!stderr(&out).contains("secret"), "{}", stderr(&out));
    }
}

#[test]
fn the_dotenv_file_direnv_reads_parses_to_what_env_prints_as_json() {
    let project = Project::native();
    let weird = "postgresql://u:p%20w@h:5/d?x=1 'quoted' \"double\" $HOME \\back";
    let out = cmd(&project, &["up", "-d"])
        .env("PROD_CONNECTION_URL", weird)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = json(&project, &["env", "--format", "json"]);
    let file = project.path().join(".devenv/env");
    let parsed: serde_json::Map<String, Value> = dotenvy::from_path_iter(&file)
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap_or_else(|e| panic!("{}: {e}", read(&file)));
            (k, Value::String(v))
        })
        .collect();
    assert_eq!(Value::Object(parsed), printed, "{}", read(&file));
    assert_eq!(printed["PROD_CONNECTION_URL"], weird);
    for name in ["CONNECTION_URL", "DATABASE_URL"] {
        assert!(printed[name].is_string(), "{name}: {printed}");
    }
    // The README shows the .envrc that reads it.
    assert!(README.contains("dotenv_if_exists .devenv/env"));
    assert!(README.contains("watch_file .devenv/env"));
}

/// A schema that warns (`\quit` with a line after it) and a seed that fails at 1:13.
fn warn_then_fail(project: &Project) {
    std::fs::write(
        project.path().join("db/schema.sql"),
        "CREATE TABLE a (x int);\n\\quit\nSELECT 1;\n",
    )
    .unwrap();
    std::fs::write(
        project.path().join("db/seed.sql"),
        "INSERT INTO nope VALUES (1);\n",
    )
    .unwrap();
}

#[test]
fn errors_and_warnings_are_coloured_on_a_terminal_only() {
    let project = Project::native();
    warn_then_fail(&project);
    let error = "db/seed.sql:1:13: error: relation \"nope\" does not exist";
    let warning = "db/schema.sql:2: warning: \\quit stops loading this file here";

    let screen = project.path().join("screen");
    let status = under_pty(&project, &["up"], &screen).status().unwrap();
    assert_eq!(status.code(), Some(3), "{}", read(&screen));
    let shown = read(&screen);
    assert!(shown.contains(RED_ERROR), "{shown:?}");
    assert!(shown.contains(YELLOW_WARNING), "{shown:?}");
    assert!(shown.contains(RED_CARET), "{shown:?}");
    assert!(shown.contains(BLUE_GUTTER), "{shown:?}");
    assert!(
        shown.contains("\u{1b}[1mdb/seed.sql:1:13\u{1b}[0m"),
        "{shown:?}"
    );

    // Not a terminal: the same words, no colour.
    let out = run(&project, &["up"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(said.contains(error), "{said}");
    assert!(said.contains(warning), "{said}");
    assert!(!said.contains('\u{1b}'), "{said:?}");

    // NO_COLOR on a terminal: no colour either.
    let status = under_pty(&project, &["up"], &screen)
        .env("NO_COLOR", "1")
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
    let shown = read(&screen);
    assert!(shown.contains(error), "{shown:?}");
    assert!(shown.contains(warning), "{shown:?}");
    assert!(!has_sgr(&shown), "{shown:?}");
}

/// Runs a foreground `up` (under a pty when `screen` is given) until ready, then `down`;
/// returns what it showed.
fn up_until_ready(project: &Project, args: &[&str], pty: bool) -> String {
    let screen = project.path().join("screen");
    let mut child = if pty {
        under_pty(project, args, &screen).spawn().unwrap()
    } else {
        cmd(project, args)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&screen).unwrap())
            .spawn()
            .unwrap()
    };
    wait_for("devenv up to be ready", Duration::from_secs(90), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("devenv up exited with {status}: {}", read(&screen));
        }
        project.env_file().exists()
    });
    ok(project, &["down"]);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {}", read(&screen));
    read(&screen)
}

#[test]
fn progress_shows_on_a_terminal_only_and_names_a_slow_file() {
    let project = Project::native();
    let text = append_to_seed(
        &project,
        "\nSELECT pg_sleep(1.2);\n-- the end of the seed\n",
    );

    let shown = up_until_ready(&project, &["up", "--fresh"], true);
    assert!(
        shown.contains("loading db/schema.sql, db/seed.sql"),
        "{shown:?}"
    );
    assert!(
        shown.contains("starting the server") || shown.contains("waiting until it answers"),
        "{shown:?}"
    );
    // The slow seed, named with its bytes done and its size.
    let size = indicatif_bytes(text.len());
    assert!(
        shown.contains(" — db/seed.sql: ") && shown.contains(&format!(" of {size}")),
        "no progress of db/seed.sql ({size}): {shown:?}"
    );
    assert!(
        !shown.contains(" — db/schema.sql: "),
        "a fast file was shown: {shown:?}"
    );

    for (args, pty) in [
        (&["up", "--fresh"][..], false),
        (&["--quiet", "up", "--fresh"], true),
    ] {
        let shown = up_until_ready(&project, args, pty);
        assert!(shown.contains("devenv: ready in "), "{shown:?}");
        for step in [
            "loading db/",
            "starting the server",
            "waiting until it answers",
            " — db/seed.sql",
        ] {
            assert!(
                !shown.contains(step),
                "{args:?} pty {pty}: {step} in {shown:?}"
            );
        }
        assert!(
            !pty || !shown.contains("devenv: watching "),
            "--quiet: {shown:?}"
        );
    }
}

/// `bytes` as the spinner shows them (indicatif's binary units).
fn indicatif_bytes(bytes: usize) -> String {
    #[expect(clippy::cast_precision_loss, reason = "a file size, shown rounded")]
    let bytes = bytes as f64;
    if bytes < 1024.0 {
        format!("{bytes} B")
    } else {
        format!("{:.2} KiB", bytes / 1024.0)
    }
}

/// The commands a `--help` lists under `Commands:`: (name, summary).
fn commands(help: &str) -> Vec<(String, String)> {
    let mut lines = help.lines().skip_while(|l| *l != "Commands:").skip(1);
    let mut found = Vec::new();
    for line in lines.by_ref() {
        if line.trim().is_empty() {
            break;
        }
        assert!(
            line.starts_with("  ") && !line.starts_with("    "),
            "a command's summary runs over one line: {line:?}\n{help}"
        );
        let (name, summary) = line.trim().split_once(' ').unwrap_or((line.trim(), ""));
        found.push((name.to_owned(), summary.trim().to_owned()));
    }
    found
}

/// `Example: ` followed by a command line that runs devenv.
fn is_example(line: &str) -> bool {
    line.trim_start()
        .strip_prefix("Example: `")
        .is_some_and(|rest| rest.contains("devenv "))
}

fn help(args: &[&str]) -> String {
    let out = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    stdout(&out)
}

#[test]
fn every_command_has_a_summary_and_an_example_and_the_readme_lists_them() {
    let top = help(&[]);
    assert!(top.contains("Examples:"), "{top}");
    let listed = commands(&top);
    assert!(listed.len() >= 11, "{top}");
    for (name, summary) in &listed {
        assert!(!summary.is_empty(), "{name} has no summary");
        if name == "help" {
            continue;
        }
        let text = help(&[name]);
        assert!(
            // clap drops the summary's final period in the list.
            text.lines()
                .next()
                .is_some_and(|l| l.trim_end_matches('.') == summary),
            "{name}: the help's first line is not its summary:\n{text}"
        );
        assert!(
            text.lines().any(is_example),
            "{name} has no example:\n{text}"
        );
        for (sub, summary) in commands(&text) {
            if sub == "help" {
                continue;
            }
            assert!(!summary.is_empty(), "{name} {sub} has no summary");
            let text = help(&[name, &sub]);
            assert!(
                text.lines().any(is_example),
                "{name} {sub} has no example:\n{text}"
            );
        }
    }
    // The README's command table lists exactly these commands.
    let section = &README[README.find("## Commands\n").unwrap()..];
    let table: BTreeSet<String> = section
        .lines()
        .skip_while(|l| !l.starts_with("| command |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cell = l.trim_start_matches("| `devenv ");
            cell.split([' ', '`']).next().unwrap().to_owned()
        })
        .collect();
    let from_help: BTreeSet<String> = listed.into_iter().map(|(n, _)| n).collect();
    assert_eq!(table, from_help, "README table against devenv --help");
}

#[test]
fn version_and_readme_say_which_devenv_this_is() {
    let out = Command::new(BIN).arg("--version").output().unwrap();
    assert!(out.status.success());
    let version = stdout(&out);
    assert!(
        version.starts_with("devenv ")
            && version.contains("PostgreSQL dev-environment supervisor")
            && version.contains("not cachix's devenv.sh"),
        "{version}"
    );
    // The first screen of the README says so, and how to tell them apart.
    let first: String = README.lines().take(40).collect::<Vec<_>>().join("\n");
    for needed in ["cachix", "devenv.sh", "devenv --version", version.trim()] {
        assert!(
            first.contains(needed),
            "{needed} not on the README's first screen"
        );
    }
}

#[test]
fn json_documents_without_a_running_up_have_their_documented_fields() {
    let project = Project::native();
    let status = not_running(&project);
    assert_eq!(status["data"]["kept"], false);

    let doctor = json(&project, &["doctor", "--json"]);
    assert_eq!(
        keys(&doctor),
        names(&["checks", "backend", "would_use", "reason"])
    );
    assert_eq!(doctor["backend"], "native");
    assert_eq!(doctor["would_use"], "native", "{doctor}");
    for check in doctor["checks"].as_array().unwrap() {
        assert_eq!(keys(check), names(&["name", "ok", "detail"]));
    }

    let inventory = json(&project, &["test-dbs", "--json"]);
    assert_eq!(
        inventory,
        serde_json::json!({"server": null, "templates": [], "test_dbs": []})
    );

    // Every field the commands print is documented in the README's JSON section.
    let section = &README[README.find("### JSON output").unwrap()..];
    let section = &section[..section.find("\n## ").unwrap()];
    for field in STATUS_KEYS.iter().chain(&[
        "kept",
        "size_bytes",
        "checks",
        "name",
        "ok",
        "detail",
        "would_use",
        "reason",
        "database",
        "created_at",
        "kind",
        "server",
        "source",
        "host",
        "templates",
        "built_at",
        "strategy",
        "files",
        "test_dbs",
        "template",
        "test",
        "pooled",
        "owner_alive",
        // prod status --json (cargo feature `aws`)
        "instance",
        "region",
        "engine",
        "engine_version",
        "class",
        "status",
        "endpoint",
        "security_groups",
        "ip",
        "ip_allowed",
        "allowed_by",
        "ip_error",
    ]) {
        assert!(
            section.contains(&format!("`{field}`")) || section.contains(&format!("\"{field}\"")),
            "{field} is not documented in the README"
        );
    }
}
