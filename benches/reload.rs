//! Reload latency: from the moment `db/schema.sql` is written to the moment a polling client
//! sees the change through the same URL, with `devenv up` watching (debounce included),
//! against the seed projects' way on the same server in the same run: a bash `db-setup`
//! (drop, create, `psql` schema, `psql` seed) run right after the write, once with the `psql`
//! on PATH as the seed scripts call it (on Debian and Ubuntu a Perl wrapper that costs about
//! 40 ms a call) and once with the real psql binary. Alternating edits, `BENCH_RUNS` each
//! (default 21), p50 and p95.
//!
//! Run: `cargo bench --bench reload` (Docker engine + `scripts/build-test-image.sh`).

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_example, ms, percentile};

const BIN: &str = env!("CARGO_BIN_EXE_devenv");
const PSQL: &str = "/usr/lib/postgresql/15/bin/psql";

/// The seeds' `db-setup`, condensed: four psql processes.
const DB_SETUP: &str = r#"set -e
NO_DB_URL="$1"; URL="$2"; DIR="$3"
psql -X -q "$NO_DB_URL" -c "DROP DATABASE IF EXISTS cruddur_baseline;"
psql -X -q "$NO_DB_URL" -c "CREATE DATABASE cruddur_baseline;"
psql -X -q -v ON_ERROR_STOP=1 "$URL" < "$DIR/db/schema.sql" > /dev/null
psql -X -q -v ON_ERROR_STOP=1 "$URL" < "$DIR/db/seed.sql" > /dev/null
"#;

fn with_column(schema: &str, column: &str) -> String {
    schema.replace(
        "  email text NOT NULL,",
        &format!("  email text NOT NULL,\n  {column} text,"),
    )
}

/// Polls `url` until `SELECT column FROM users` works, reconnecting after a swap.
async fn wait_visible(url: &str, column: &str, client: &mut Option<tokio_postgres::Client>) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let sql = format!("SELECT {column} FROM users LIMIT 0");
    loop {
        assert!(Instant::now() < deadline, "{column} not visible after 30 s");
        if client
            .as_ref()
            .is_none_or(tokio_postgres::Client::is_closed)
        {
            *client = match tokio_postgres::connect(url, tokio_postgres::NoTls).await {
                Ok((c, conn)) => {
                    tokio::spawn(conn);
                    Some(c)
                }
                Err(_) => None,
            };
        }
        if let Some(c) = client.as_ref() {
            if c.simple_query(&sql).await.is_ok() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

#[tokio::main]
#[expect(
    clippy::too_many_lines,
    reason = "one straight run: set up, alternate the three ways, print the table"
)]
async fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(21);
    let image =
        std::env::var("DEVENV_TEST_IMAGE").unwrap_or_else(|_| "devenv-test/postgres:13".into());
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let project = copy_example("devenv-reload-");
    let baseline = copy_example("devenv-reload-baseline-");
    let schema = std::fs::read_to_string(root.join("db/schema.sql")).unwrap();
    let log = project.path().join("up.log");
    let mut up = Command::new(BIN)
        .arg("up")
        .current_dir(project.path())
        .env("DEVENV_IMAGE", &image)
        .env("DEVENV_PORT", "0")
        .env("DEVENV_BACKEND", "docker")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let env = project.path().join(".devenv/env");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !env.exists() {
        assert!(Instant::now() < deadline, "devenv up not ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let url = std::fs::read_to_string(&env)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CONNECTION_URL=").map(str::to_owned))
        .unwrap();
    let no_db_url = url.rsplit_once('/').unwrap().0.to_owned() + "/postgres";
    let baseline_url = url.rsplit_once('/').unwrap().0.to_owned() + "/cruddur_baseline";
    let psql_dir = Path::new(PSQL).parent().unwrap();
    let real_path = format!(
        "{}:{}",
        psql_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let seeds_path = std::env::var("PATH").unwrap_or_default();

    let (mut devenv, mut seeds, mut real) = (Vec::new(), Vec::new(), Vec::new());
    let mut client = None;
    for i in 0..=runs {
        let column = format!("c_{i}");
        // devenv: write, then wait until the watcher's reload is visible.
        let started = Instant::now();
        std::fs::write(
            project.path().join("db/schema.sql"),
            with_column(&schema, &column),
        )
        .unwrap();
        wait_visible(&url, &column, &mut client).await;
        let took = started.elapsed();
        // The seeds' way: write, run db-setup, then look.
        let baseline_run = |path: &str| {
            let started = Instant::now();
            std::fs::write(
                baseline.path().join("db/schema.sql"),
                with_column(&schema, &column),
            )
            .unwrap();
            let status = Command::new("bash")
                .args(["-c", DB_SETUP, "db-setup", &no_db_url, &baseline_url])
                .arg(baseline.path())
                .env("PATH", path)
                .status()
                .unwrap();
            assert!(status.success(), "db-setup failed");
            started
        };
        let started = baseline_run(&seeds_path);
        wait_visible(&baseline_url, &column, &mut None).await;
        let seeds_took = started.elapsed();
        let started = baseline_run(&real_path);
        wait_visible(&baseline_url, &column, &mut None).await;
        let real_took = started.elapsed();
        if i > 0 {
            devenv.push(took);
            seeds.push(seeds_took);
            real.push(real_took);
        }
        // Let the background work (old database dropped, spare created) finish.
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let _ = up.wait();
    let stderr = std::fs::read_to_string(&log).unwrap_or_default();
    let reloads = stderr.matches("devenv: reload [").count();
    let (d50, d95) = (percentile(&mut devenv, 0.5), percentile(&mut devenv, 0.95));
    let (s50, s95) = (percentile(&mut seeds, 0.5), percentile(&mut seeds, 0.95));
    let (r50, r95) = (percentile(&mut real, 0.5), percentile(&mut real, 0.95));
    println!("reload latency, write -> visible to a polling client, {runs} edits each, alternating, image {image}:");
    println!(
        "  devenv up (watch, debounce {} ms, build + swap)      p50 {:>6.1} ms   p95 {:>6.1} ms   ({reloads} reloads)",
        devenv::supervisor::reloader::QUIET.as_millis(),
        ms(d50),
        ms(d95)
    );
    println!(
        "  bash db-setup, psql on PATH (as the seeds run it)  p50 {:>6.1} ms   p95 {:>6.1} ms   {:.1}x devenv's p50",
        ms(s50),
        ms(s95),
        s50.as_secs_f64() / d50.as_secs_f64()
    );
    println!(
        "  bash db-setup, real psql binary                    p50 {:>6.1} ms   p95 {:>6.1} ms   {:.1}x devenv's p50",
        ms(r50),
        ms(r95),
        r50.as_secs_f64() / d50.as_secs_f64()
    );
}
