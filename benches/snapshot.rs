//! `devenv snapshot restore` of the Cruddur database (the example project's schema + seed),
//! side by side in one run with the two ways to get the same database back without it:
//! `pg_dump | psql` into a fresh database, and a full rebuild from the files (`devenv db
//! setup`, the same build-then-swap as a reload). Whole commands, as a developer runs them,
//! on one native `devenv up` with kept data; alternating, `BENCH_RUNS` runs each (default 11).
//!
//! Run: `cargo bench --bench snapshot` (needs PostgreSQL binaries; psql and pg_dump from the
//! same directory).

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{copy_example, ms, percentile};

const BIN: &str = env!("CARGO_BIN_EXE_devenv");
/// Pause before each timed command (see `idle` in `main`).
const IDLE_MS: u64 = 500;

fn timed(cmd: &mut Command) -> Duration {
    let started = Instant::now();
    let out = cmd.output().expect("run a command");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(11);
    let bin_dir = std::path::PathBuf::from(
        std::env::var("DEVENV_PG_BIN").unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".into()),
    );
    let dir = copy_example("devenv-bench-snapshot-");
    let devenv = |args: &[&str]| {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(dir.path())
            .env("DEVENV_BACKEND", "native")
            .env("DEVENV_PORT", "0")
            .stdin(Stdio::null());
        cmd
    };
    let mut up = devenv(&["up"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !dir.path().join(".devenv/env").exists() {
        assert!(Instant::now() < deadline, "devenv up not ready");
        std::thread::sleep(Duration::from_millis(10));
    }
    let env = std::fs::read_to_string(dir.path().join(".devenv/env")).unwrap();
    let url = env
        .lines()
        .find_map(|l| l.strip_prefix("CONNECTION_URL="))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let base = url.rsplit_once('/').unwrap().0.to_owned();
    timed(&mut devenv(&["snapshot", "save", "bench"]));
    let psql = |db: &str| {
        let mut cmd = Command::new(bin_dir.join("psql"));
        cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &format!("{base}/{db}")]);
        cmd
    };
    let (mut restore, mut dump, mut rebuild) = (Vec::new(), Vec::new(), Vec::new());
    // Each timed command starts on an idle server, as a developer's commands do: the work the
    // supervisor does after a change (pruning, the spare, ready copies) is done by then.
    let idle = || std::thread::sleep(Duration::from_millis(IDLE_MS));
    for i in 0..runs {
        idle();
        restore.push(timed(&mut devenv(&["snapshot", "restore", "bench"])));
        // pg_dump | psql into a fresh database (created and dropped outside the timing).
        let fresh = format!("bench_copy_{i}");
        timed(psql("postgres").args(["-c", &format!("CREATE DATABASE {fresh}")]));
        idle();
        let started = Instant::now();
        let mut dumper = Command::new(bin_dir.join("pg_dump"))
            .args(["--no-owner", &url])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let loaded = psql(&fresh)
            .stdin(dumper.stdout.take().unwrap())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(dumper.wait().unwrap().success() && loaded.success());
        dump.push(started.elapsed());
        timed(psql("postgres").args(["-c", &format!("DROP DATABASE {fresh}")]));
        idle();
        rebuild.push(timed(&mut devenv(&["db", "setup"])));
    }
    // The restores and rebuilds kept the replaced databases as automatic snapshots: only the
    // newest three stay, so the cluster does not grow with the runs.
    let p50 = |v: &mut Vec<Duration>| percentile(v, 0.5);
    let (r, d, b) = (p50(&mut restore), p50(&mut dump), p50(&mut rebuild));
    println!("restoring the Cruddur database, {runs} runs each, alternating, whole commands, native PostgreSQL, each after {IDLE_MS} ms idle:");
    println!(
        "  devenv snapshot restore          p50 {:>8.1} ms   p95 {:>8.1} ms",
        ms(r),
        ms(percentile(&mut restore, 0.95))
    );
    println!(
        "  pg_dump | psql (fresh database)  p50 {:>8.1} ms   p95 {:>8.1} ms   {:.1}x the restore",
        ms(d),
        ms(percentile(&mut dump, 0.95)),
        ms(d) / ms(r)
    );
    println!(
        "  devenv db setup (full rebuild)   p50 {:>8.1} ms   p95 {:>8.1} ms   {:.1}x the restore",
        ms(b),
        ms(percentile(&mut rebuild, 0.95)),
        ms(b) / ms(r)
    );
    let _ = Command::new("kill")
        .args(["-INT", &up.id().to_string()])
        .status();
    let _ = up.wait();
    let _ = devenv(&["down", "--volumes"]).output();
}
