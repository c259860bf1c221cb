//! Never harm what is not ours, show a secret to no one (#10): private files and sockets that
//! another OS user cannot read, the guard deciding from every host, no password in any output
//! of a whole session, psql given its password through the environment, and `doctor` telling
//! what `up` would do.

mod support;

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{docker_ready, stderr, var, wait_until, Project};

const PASSWORD: &str = "Pa55-w0rd-Sekr1t";
const PROD_PASSWORD: &str = "Pr0d-Sekr1t-xyz";

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn nobody() -> Option<(u32, u32)> {
    let out = Command::new("id").args(["-u", "nobody"]).output().ok()?;
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    let out = Command::new("id").args(["-g", "nobody"]).output().ok()?;
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().ok()?;
    Some((uid, gid))
}

/// Runs `sh -c script` as the `nobody` account.
fn as_nobody(script: &str) -> std::process::Output {
    let (uid, gid) = nobody().expect("a `nobody` account");
    Command::new("sh")
        .args(["-c", script])
        .uid(uid)
        .gid(gid)
        .current_dir("/")
        .output()
        .unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

#[test]
fn every_file_and_socket_devenv_keeps_is_private_to_its_user() {
    if !is_root() {
        support::skipped("needs root to run a check as another OS user");
        return;
    }
    let project = Project::native();
    let cache = tempfile::tempdir().unwrap();
    let mut up = project.spawn_up_with(&[
        ("DEVENV_PASSWORD", PASSWORD),
        ("DEVENV_CACHE_DIR", cache.path().to_str().unwrap()),
    ]);
    let vars = project.wait_env(&mut up);
    assert!(
        vars.iter().all(|(k, _)| k != "COMPOSE_CONNECTION_URL"),
        "no compose network for a native server: {vars:?}"
    );
    let dir = project.path().join(".devenv");
    assert_eq!(mode(&dir), 0o700);
    for entry in std::fs::read_dir(&dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_file() {
            assert_eq!(mode(&entry.path()), 0o600, "{}", entry.path().display());
        }
    }
    let record = project.record().unwrap();
    let socket_dir = Path::new(record["socket_dir"].as_str().unwrap()).to_path_buf();
    assert_eq!(mode(&socket_dir), 0o700);
    let socket = std::fs::read_dir(&socket_dir)
        .unwrap()
        .flatten()
        .find(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(".s.PGSQL.")
                && std::path::Path::new(&name)
                    .extension()
                    .is_none_or(|e| e != "lock")
        })
        .expect("the socket")
        .path();
    assert_eq!(mode(&socket), 0o700, "{}", socket.display());
    // The cache holds no password (the superuser gets it at start) and is private.
    assert_eq!(mode(cache.path()), 0o700);
    let grep = Command::new("grep")
        .args(["-r", "-l", PASSWORD])
        .arg(cache.path())
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&grep.stdout)
    );

    // Another OS user can read nothing and connect to nothing through the socket.
    let read = as_nobody(&format!(
        "cat {0}/env; cat {0}/state.json; ls {0}",
        dir.display()
    ));
    assert!(!String::from_utf8_lossy(&read.stdout).contains(PASSWORD));
    assert!(!read.status.success());
    let connect = as_nobody(&format!(
        "psql -X -h {} -p {} -U postgres -d postgres -c 'select 1'",
        socket_dir.display(),
        var(&vars, "CONNECTION_URL")
            .rsplit_once(':')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
    ));
    assert!(
        !connect.status.success(),
        "nobody connected through the socket"
    );
    up.stop();
}

#[test]
fn the_guard_decides_local_from_every_host_and_hostaddr() {
    let project = Project::native();
    let remote = [
        (
            "postgresql://u:p@localhost:5432/db?hostaddr=192.0.2.1",
            None,
        ),
        ("postgresql://u:p@127.0.0.1:1,192.0.2.1:5432/db", None),
        (
            "host=localhost hostaddr=192.0.2.1 dbname=db user=u password=Secret",
            None,
        ),
        (
            "host=127.0.0.1,db.example.com dbname=db user=u password=Secret",
            None,
        ),
        ("postgresql:///db", Some("192.0.2.1")),
    ];
    for (url, pghost) in remote {
        let mut cmd = project.command(&["db", "drop", "--url", url]);
        cmd.stdin(Stdio::null());
        if let Some(host) = pghost {
            cmd.env("PGHOST", host);
        }
        let started = Instant::now();
        let out = cmd.output().unwrap();
        let said = stderr(&out);
        assert_eq!(out.status.code(), Some(5), "{url}: {said}");
        assert!(said.contains("refusing to drop"), "{url}: {said}");
        assert!(
            !said.contains("Secret") && !said.contains(":p@"),
            "{url}: {said}"
        );
        // Refused before any connection: nothing was sent to 192.0.2.1.
        assert!(started.elapsed() < Duration::from_secs(3), "{url}");
    }
}

/// Every output stream and log file of a whole session, `devenv env` excepted (showing the
/// secret is its purpose), holds no password.
fn session_without_passwords(project: &Project, extra_env: &[(&str, &str)]) {
    let prod = format!("postgresql://admin:{PROD_PASSWORD}@db.example.com:5432/prod");
    let mut env: Vec<(&str, &str)> = vec![
        ("DEVENV_PASSWORD", PASSWORD),
        ("DEVENV_LOG", "debug"),
        ("PROD_CONNECTION_URL", &prod),
    ];
    env.extend_from_slice(extra_env);
    let mut outputs = Vec::new();
    let run = |args: &[&str]| {
        let mut cmd = project.command(args);
        cmd.envs(env.iter().copied()).stdin(Stdio::null());
        cmd.output().unwrap()
    };
    let mut up = project.command(&["up", "--verbose"]);
    up.envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(project.path().join("up.log")).unwrap());
    let mut up = support::Up {
        child: up.spawn().unwrap(),
        log: project.path().join("up.log"),
    };
    let vars = project.wait_env(&mut up);
    let url = var(&vars, "CONNECTION_URL").to_owned();
    assert!(
        url.contains(PASSWORD),
        "the URL itself has it (for the code under test)"
    );
    for args in [
        &["status"][..],
        &["status", "--json"],
        &["reload"],
        &["db", "sessions"],
        &["db", "setup"],
        &["snapshot", "save", "s1"],
        &["snapshot", "list", "--json"],
        &["doctor", "--json"],
        &["logs"],
        &["logs", "--server"],
        &["test-dbs"],
        &["db", "drop", "--target", "prod"],
    ] {
        outputs.push((args.join(" "), run(args)));
    }
    let kv = format!("host=db.example.com user=admin password={PROD_PASSWORD} dbname=prod");
    outputs.push((
        "db drop --url kv".into(),
        run(&["db", "drop", "--url", &kv]),
    ));
    project.add_users_column("bio");
    wait_until(&up, "the reload", Duration::from_secs(20), || {
        up.stderr().matches("reload [").count() >= 2
    });
    up.stop();
    let mut texts: Vec<(String, String)> = outputs
        .into_iter()
        .map(|(what, out)| {
            (
                what,
                format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            )
        })
        .collect();
    texts.push(("up's stderr".into(), up.stderr()));
    for log in [".devenv/up.log", ".devenv/postgres.log"] {
        if let Ok(text) = std::fs::read_to_string(project.path().join(log)) {
            texts.push((log.into(), text));
        }
    }
    for (what, text) in &texts {
        for secret in [PASSWORD, PROD_PASSWORD] {
            assert!(!text.contains(secret), "{what} shows a password:\n{text}");
        }
    }
    assert!(
        texts
            .iter()
            .any(|(_, t)| t.contains("PROD_CONNECTION_URL=postgresql://admin:****@db.example.com")),
        "the prod URL is shown masked"
    );
}

#[test]
fn no_password_in_any_output_of_a_native_session() {
    session_without_passwords(&Project::native(), &[]);
}

#[test]
fn no_password_in_any_output_of_a_docker_session() {
    if !docker_ready() {
        return;
    }
    session_without_passwords(&Project::new(), &[]);
}

#[test]
fn db_connect_hands_psql_the_password_through_the_environment() {
    let project = Project::native();
    let mut up = project.spawn_up_with(&[("DEVENV_PASSWORD", PASSWORD)]);
    project.wait_env(&mut up);
    // A psql on PATH that records how it was called.
    let bin = tempfile::tempdir().unwrap();
    let record = bin.path().join("called");
    let fake = bin.path().join("psql");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf 'argv: %s\\n' \"$*\" > {0}\nprintf 'PGPASSWORD: %s\\n' \"$PGPASSWORD\" >> {0}\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = project
        .command(&["db", "connect"])
        .env("PATH", path)
        .env("DEVENV_PASSWORD", PASSWORD)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let called = std::fs::read_to_string(&record).unwrap();
    let argv = called.lines().next().unwrap();
    assert!(
        !argv.contains(PASSWORD),
        "the password is on psql's command line: {argv}"
    );
    assert!(argv.contains("postgresql://postgres@127.0.0.1:"), "{argv}");
    assert!(
        called.contains(&format!("PGPASSWORD: {PASSWORD}")),
        "{called}"
    );
    up.stop();
}

#[test]
fn doctor_reports_a_broken_yaml_first_and_checks_nothing_it_depends_on() {
    let project = Project::native();
    project.write("devenv.yaml", "database: cruddur\nimgae: postgres:15\n");
    let out = project.run(&["doctor"]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{report}{}", stderr(&out));
    assert!(
        report.lines().next().unwrap().starts_with("FAIL config: ")
            && report.contains("devenv.yaml:2:1: unknown field `imgae`"),
        "{report}"
    );
    assert!(
        !report.contains("docker image"),
        "no check of a default image: {report}"
    );
    assert!(report.contains("would use: nothing"), "{report}");
}
