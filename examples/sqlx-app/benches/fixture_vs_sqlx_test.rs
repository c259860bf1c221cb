//! devenv-fixture against `#[sqlx::test]` in a user's crate, as its user builds it (this crate:
//! outside devenv's workspace, no profile settings; run it with `--profile dev` for the
//! user's debug build, as `scripts/bench-sqlx-app` does). One run, one server (the fixture's
//! shared test server; sqlx's harness gets its superuser URL as `DATABASE_URL`), the same
//! database for both: the 30 migrations, the seed, then the `teams` fixture.
//!
//! 1. Per-test acquisition, p50 / p95, alternating (`BENCH_RUNS` each, default 50): from the
//!    call of the runner the attribute expands to (`devenv_fixture::runner::run_with_sqlx` with
//!    `fixtures("teams")`; sqlx's `TestFn::run_test` with the migrator and both fixtures) to
//!    the moment the test body holds its `PgPool` and `SELECT 1` answered.
//! 2. Parallelism: 1, 8 and 32 tests at once (threads, each a runner call as above), p50 / p99
//!    and the tests that failed to get a database (`PoolTimedOut` and the like), both ways;
//!    `BENCH_PAR_TOTAL` tests per level (default 128).
//! 3. A 200-test suite's wall time under `cargo nextest run` (nextest's default jobs), both
//!    ways (`tests/suite_*.rs`, feature `bench-suite`, built first, build excluded),
//!    alternating, `BENCH_SUITE_RUNS` each (default 2), best shown; `BENCH_SUITE=0` skips it.
//!    Beside them the floor, 200 tests that do nothing (`tests/suite_floor.rs`): nextest's own
//!    time, which neither harness can go below.

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use devenv_fixture::runner::{Migrations, SqlxArgs, TestInfo};
use devenv_fixture::TestDb;
use sqlx::testing::{TestArgs, TestFixture, TestFn};
use sqlx::PgPool;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
const SEED: &str = include_str!("../db/seed.sql");
const TEAMS: &str = include_str!("../tests/fixtures/teams.sql");
static SQLX_FIXTURES: [TestFixture; 2] = [
    TestFixture {
        path: "../db/seed.sql",
        contents: SEED,
    },
    TestFixture {
        path: "fixtures/teams.sql",
        contents: TEAMS,
    },
];

thread_local! {
    static STARTED: Cell<Option<Instant>> = const { Cell::new(None) };
    static READY: Cell<Option<Duration>> = const { Cell::new(None) };
}

async fn body(pool: PgPool) {
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .expect("SELECT 1");
    let started = STARTED.get().expect("set before the run");
    READY.set(Some(started.elapsed()));
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Way {
    Fixture,
    SqlxTest,
}

impl Way {
    fn label(self) -> &'static str {
        match self {
            Way::Fixture => "devenv-fixture",
            Way::SqlxTest => "#[sqlx::test]",
        }
    }
}

/// One test through `way`'s harness, named `name`: the time until its body was ready, or the
/// harness's panic message.
fn once(way: Way, name: &'static str) -> Result<Duration, String> {
    STARTED.set(Some(Instant::now()));
    READY.set(None);
    let ran = std::panic::catch_unwind(AssertUnwindSafe(|| match way {
        Way::Fixture => devenv_fixture::runner::run_with_sqlx::<PgPool, _, _>(
            TestInfo {
                name,
                manifest_dir: env!("CARGO_MANIFEST_DIR"),
            },
            SqlxArgs {
                file: "tests/bench.rs",
                fixtures: &[("fixtures/teams.sql", TEAMS)],
                migrations: Migrations::Project,
            },
            body,
        ),
        Way::SqlxTest => {
            let mut args = TestArgs::new(name);
            args.migrator(&MIGRATOR);
            args.fixtures(&SQLX_FIXTURES);
            let body: fn(PgPool) -> _ = body;
            TestFn::run_test(body, args);
        }
    }));
    match ran {
        Ok(()) => READY
            .take()
            .ok_or_else(|| "the body did not run".to_owned()),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic".to_owned())),
    }
}

fn name(way: Way, level: usize, i: usize) -> &'static str {
    let way = match way {
        Way::Fixture => "fixture",
        Way::SqlxTest => "sqlx",
    };
    Box::leak(format!("bench::{way}_{level}_{i}_{}", std::process::id()).into_boxed_str())
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    #[expect(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss,
        reason = "an index from a quantile of a short list"
    )]
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `total` tests through `way`, `level` at a time: their times and the failures' messages.
fn concurrent(way: Way, level: usize, total: usize) -> (Vec<Duration>, Vec<String>) {
    let barrier = Arc::new(Barrier::new(level));
    let threads: Vec<_> = (0..level)
        .map(|t| {
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                (0..total / level)
                    .map(|i| once(way, name(way, level, t * total + i)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut times = Vec::new();
    let mut failures = Vec::new();
    for thread in threads {
        for result in thread.join().expect("a bench thread") {
            match result {
                Ok(t) => times.push(t),
                Err(e) => failures.push(e),
            }
        }
    }
    (times, failures)
}

fn nextest(test: &str, database_url: &str, build_only: bool) -> Result<Duration, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "nextest",
            "run",
            "--features",
            "bench-suite",
            "--test",
            test,
        ])
        .env("DATABASE_URL", database_url)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if build_only {
        cmd.arg("--no-run");
    } else {
        cmd.arg("--no-fail-fast");
    }
    let started = Instant::now();
    let out = cmd
        .output()
        .map_err(|e| format!("running cargo nextest: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = err.lines().rev().take(15).collect();
        return Err(tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    Ok(started.elapsed())
}

fn main() {
    let runs = env_usize("BENCH_RUNS", 50).max(2);
    let par_total = env_usize("BENCH_PAR_TOTAL", 128).max(32);
    let suite_runs = env_usize("BENCH_SUITE_RUNS", 2).max(1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    // The server, the template and its fixture variant, once; sqlx's harness gets the same
    // server as DATABASE_URL.
    let (database_url, version, max_connections) = rt.block_on(async {
        let db = TestDb::new().await.expect("the fixture's server");
        let client = db.client().await.expect("a connection");
        let row = client
            .query_one(
                "SELECT current_setting('server_version'), current_setting('max_connections')",
                &[],
            )
            .await
            .expect("the server's settings");
        (
            db.admin_url(),
            row.get::<_, String>(0),
            row.get::<_, String>(1),
        )
    });
    std::env::set_var("DATABASE_URL", &database_url);
    println!(
        "examples/sqlx-app (30 migrations, seed, fixture `teams`), {} profile, PostgreSQL {version}, max_connections {max_connections}",
        if cfg!(debug_assertions) { "debug (dev)" } else { "release" }
    );
    // Warm both: the fixture's variant template, sqlx's master pool.
    for way in [Way::Fixture, Way::SqlxTest] {
        once(way, name(way, 0, 0)).unwrap_or_else(|e| panic!("{}: {e}", way.label()));
    }

    let mut times = [Vec::new(), Vec::new()];
    for i in 0..runs {
        let order = if i % 2 == 0 {
            [Way::Fixture, Way::SqlxTest]
        } else {
            [Way::SqlxTest, Way::Fixture]
        };
        for way in order {
            let t = once(way, name(way, 1, i)).unwrap_or_else(|e| panic!("{}: {e}", way.label()));
            times[usize::from(way == Way::SqlxTest)].push(t);
        }
    }
    println!("\n1. per-test acquisition, one at a time, {runs} runs each, alternating:");
    println!("| harness | p50 | p95 |");
    println!("| --- | --- | --- |");
    for (way, t) in [Way::Fixture, Way::SqlxTest].iter().zip(&times) {
        println!(
            "| {} | {} | {} |",
            way.label(),
            ms(percentile(t, 0.5)),
            ms(percentile(t, 0.95))
        );
    }
    let ratio = percentile(&times[1], 0.5).as_secs_f64() / percentile(&times[0], 0.5).as_secs_f64();
    println!("p50 ratio (#[sqlx::test] / devenv-fixture): {ratio:.1}x (target >= 10x)");

    println!("\n2. parallelism: {par_total} tests per level, `level` at a time:");
    println!("| harness | at once | p50 | p99 | failed | first failure |");
    println!("| --- | --- | --- | --- | --- | --- |");
    // Failures are counted and the first one shown; the harness's panic output is not.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    for level in [1, 8, 32] {
        for way in [Way::Fixture, Way::SqlxTest] {
            let (t, failures) = concurrent(way, level, par_total);
            let first = failures
                .first()
                .map(|e| {
                    e.lines()
                        .next()
                        .unwrap_or_default()
                        .chars()
                        .take(120)
                        .collect()
                })
                .unwrap_or_else(|| "-".to_owned());
            let (p50, p99) = if t.is_empty() {
                ("-".to_owned(), "-".to_owned())
            } else {
                (ms(percentile(&t, 0.5)), ms(percentile(&t, 0.99)))
            };
            println!(
                "| {} | {level} | {p50} | {p99} | {} of {} | {first} |",
                way.label(),
                failures.len(),
                t.len() + failures.len()
            );
        }
    }
    std::panic::set_hook(hook);

    if std::env::var("BENCH_SUITE").is_ok_and(|v| v == "0") {
        return;
    }
    const SUITES: [&str; 3] = ["suite_fixture", "suite_sqlx", "suite_floor"];
    if let Err(e) = SUITES
        .iter()
        .try_for_each(|test| nextest(test, &database_url, true).map(drop))
    {
        println!("\n3. 200-test suite: the build failed:\n{e}");
        return;
    }
    let mut best = [Duration::MAX; 3];
    for _ in 0..suite_runs {
        for (i, test) in SUITES.iter().enumerate() {
            match nextest(test, &database_url, false) {
                Ok(t) => best[i] = best[i].min(t),
                Err(e) => {
                    println!("\n3. 200-test suite: a run of {test} failed:\n{e}");
                    return;
                }
            }
        }
    }
    println!(
        "\n3. 200-test suite under `cargo nextest run` (default jobs, debug build, build excluded), best of {suite_runs}, whole-process:"
    );
    println!("| harness | wall time |");
    println!("| --- | --- |");
    println!("| devenv-fixture | {} |", ms(best[0]));
    println!("| #[sqlx::test] | {} |", ms(best[1]));
    println!("| floor: 200 empty tests | {} |", ms(best[2]));
    println!(
        "suite ratio (#[sqlx::test] / devenv-fixture): {:.1}x (target >= 3x)",
        best[1].as_secs_f64() / best[0].as_secs_f64()
    );
    let above = |t: Duration| t.saturating_sub(best[2]).as_secs_f64().max(1e-3);
    println!(
        "above the floor (what the databases cost): devenv-fixture {}, #[sqlx::test] {}: {:.1}x",
        ms(best[0].saturating_sub(best[2])),
        ms(best[1].saturating_sub(best[2])),
        above(best[1]) / above(best[0])
    );
}
